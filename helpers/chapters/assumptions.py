"""Chapter "Do the assumptions hold?": the fine walk of its section 5, cached.

Section 4 of the chapter expands the loss along growing OBD deletion sets, in
the open; section 5 repeats that walk on a fine grid of forty sets that start
where the dormant block ends (dormant parameters ranked last, so kept). The
fine walk costs about half a minute per network, so it is cached on disk,
keyed by the network's training configuration and the grid.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from helpers import cache, checks, data, hessian, pruning, taylor, training

_FIELDS = ("first_order", "diagonal", "cross", "actual")


def walk_past_dormant(trained: training.TrainedModel,
                      fractions: Sequence[float]) -> list[taylor.Expansion]:
    """The terms of the loss change for each OBD deletion set of ``fractions``, the dormant
    parameters (``taylor.dormant``) ranked last, on the post's 55,000 training images."""
    if not isinstance(trained, training.TrainedModel):
        raise TypeError(f"trained must be a training.TrainedModel, got {type(trained).__name__}")
    fractions = checks.fractions(fractions, order="increasing")
    key = {"network": trained.config.to_dict(), "fractions": [float(f) for f in fractions]}

    def build() -> dict[str, np.ndarray]:
        model = trained.model
        (x, y), _ = data.load_post_split()
        diagonal = hessian.hessian_diagonal(model, x, y)
        scores = [0.5 * h * w.astype(np.float64) ** 2 for h, w in zip(diagonal, model.get_weights())]
        top = 2 * max(s.max() for s in scores)
        ranked = [np.where(d, top, s) for s, d in zip(scores, taylor.dormant(model, x))]
        deltas = [taylor.deletion(model, pruning.prune_masks(ranked, f)) for f in fractions]
        terms = taylor.expand_many(model, x, y, deltas, diagonal=diagonal)
        return {name: np.array([getattr(t, name) for t in terms]) for name in _FIELDS}

    arrays = cache.fetch("assumptions_walk", key, build, version=cache.code_version(__name__))
    return [taylor.Expansion(**{name: float(arrays[name][i]) for name in _FIELDS})
            for i in range(len(fractions))]
