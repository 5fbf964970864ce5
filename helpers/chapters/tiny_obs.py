"""Optimal Brain Surgeon on chapter 1's tiny network, all parameters pooled (chapter "Optimal Brain Surgeon").

The tiny network (``helpers.chapters.tiny``) is small enough for its whole
Hessian, so full OBS runs on it exactly; results are cached on disk, keyed by
the ``TinyConfig`` and the OBS settings.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from helpers import cache, checks, hessian, pruning, surgeon
from helpers.chapters import tiny


def obs_path(config: tiny.TinyConfig, fractions: Sequence[float], *, curvature: str,
             damping: float, block_size: int = 1) -> surgeon.ObsPath:
    """Full OBS of chapter 1's tiny network (``helpers.chapters.tiny``), all parameters pooled, cached.

    ``curvature="hessian"``: the brute-force Hessian ``tiny.tiny_hessian``;
    ``"gauss_newton"``: ``surgeon.gauss_newton_matrix`` on the same training images.
    ``damping`` is relative: ``lambda = damping * mean(diag)``. Weights and
    masks come back flat, in ``trainable_weights`` order.
    """
    if not isinstance(config, tiny.TinyConfig):
        raise TypeError(f"config must be a tiny.TinyConfig, got {type(config).__name__}")
    if curvature not in ("hessian", "gauss_newton"):
        raise ValueError(f"curvature must be 'hessian' or 'gauss_newton', got {curvature!r}")
    fractions = tuple(checks.fractions(fractions, order="non-decreasing"))
    damping = checks.positive(damping, "damping")
    block_size = checks.integer(block_size, "block_size")
    key = {"tiny": config.to_dict(), "fractions": list(fractions), "curvature": curvature,
           "damping": float(damping), "block_size": block_size}

    def build() -> dict[str, np.ndarray]:
        matrix = curvature_matrix(config, curvature)
        lam = damping * float(np.mean(np.diag(matrix)))
        model = tiny.train_tiny(config)
        u = hessian.flatten(model.get_weights()).astype(np.float64)
        counts = [pruning.n_pruned(f, u.size) for f in fractions]
        path = surgeon.prune_path(u, surgeon.damped_inverse(matrix, lam), counts, block_size=block_size)
        return {"counts": path.counts, "weights": path.weights, "masks": path.masks,
                "predicted": path.predicted, "order": path.order}

    arrays = cache.fetch("obs_tiny", key, build, version=cache.code_version(__name__))
    return surgeon.ObsPath(arrays["counts"], arrays["weights"], arrays["masks"],
                           arrays["predicted"], arrays["order"])


def curvature_matrix(config: tiny.TinyConfig, curvature: str) -> np.ndarray:
    """The tiny network's Hessian (``"hessian"``) or Gauss-Newton matrix (``"gauss_newton"``), cached."""
    if curvature == "hessian":
        return tiny.tiny_hessian(config)
    if curvature != "gauss_newton":
        raise ValueError(f"curvature must be 'hessian' or 'gauss_newton', got {curvature!r}")

    def build() -> dict[str, np.ndarray]:
        (x, y), _ = tiny.tiny_data(config)
        return {"matrix": surgeon.gauss_newton_matrix(tiny.train_tiny(config), x, y)}

    return cache.fetch("obs_tiny_gn", config.to_dict(), build,
                       version=cache.code_version(__name__))["matrix"]
