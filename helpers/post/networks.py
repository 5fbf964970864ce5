"""The trained networks every chapter shares, and sweeps over training seeds.

Chapter "Training the two networks" introduces them: the post's network
without dropout, and with dropout (keep probability 0.8) at the post's
learning rate 1e-5 and at the fair 1e-4. Each is trained for every seed in
``SEEDS`` and cached, so any chapter can ask for them in any order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from helpers import pruning, saliency, training

#: Training seeds behind every curve with a band.
SEEDS: tuple[int, ...] = (0, 1, 2)
#: The post's dropout rate (keep probability 0.8).
POST_DROPOUT = 0.2

VARIANTS = {
    "plain": dict(dropout=0.0, learning_rate=1e-4),
    "dropout": dict(dropout=POST_DROPOUT, learning_rate=1e-4),
    "dropout_lr1e-5": dict(dropout=POST_DROPOUT, learning_rate=1e-5),
}


def post_config(variant: str = "plain", seed: int = 0) -> training.TrainConfig:
    """The post's training recipe for one network variant and seed."""
    if not isinstance(variant, str) or variant not in VARIANTS:
        raise ValueError(f"variant must be one of {tuple(VARIANTS)}, got {variant!r}")
    return training.TrainConfig(seed=seed, **VARIANTS[variant])


def post_models(variant: str = "plain", seeds: Sequence[int] = SEEDS) -> list[training.TrainedModel]:
    """One trained (or cached) network per seed."""
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Sequence) or len(seeds) == 0:
        raise ValueError(f"seeds must be a non-empty sequence of ints, got {seeds!r}")
    return training.train_models([post_config(variant, seed) for seed in seeds])


def sweep_over_seeds(trained: Sequence[training.TrainedModel], method: str, scope: str,
                     fractions: Sequence[float], x_score: np.ndarray | None,
                     y_score: np.ndarray | None, x_test: np.ndarray,
                     y_test: np.ndarray) -> np.ndarray:
    """Accuracy after one-shot pruning, shape ``(len(trained), len(fractions))``.

    Scores come from ``saliency.saliency(model, method, x_score, y_score)``;
    for ``"published_obd"`` the row-sum block follows ``scope``.
    """
    rows = []
    for t in trained:
        scores = saliency.saliency(t.model, method, x_score, y_score, scope=scope)
        rows.append(pruning.sweep(t.model, scores, fractions, x_test, y_test, scope=scope))
    return np.array(rows)
