"""The post's OBD procedure as its scripts ran it (chapter "As the code ran").

The published OBD scripts did not prune one saved network at each level.
At every percentile step they drew a new batch of 64 training images, ranked
parameters by the Hessian row sums on the *current* network, zeroed the k
percent most negative, measured test accuracy, and then "restored" only the
parameters that a ranking recomputed on the pruned network (same batch) put
in its bottom k. Parameters pruned at one step but not re-selected stay zero
into the next step. ``published_obd_sweep`` replays that loop.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np

from helpers import hessian, metrics, network, pruning


def published_obd_sweep(model: keras.Model, fractions: Sequence[float], scope: str,
                        x_pool: np.ndarray, y_pool: np.ndarray, x_test: np.ndarray,
                        y_test: np.ndarray, batch_size: int = 64, seed: int = 0,
                        carry_over: bool = True) -> np.ndarray:
    """Test accuracy at each fraction, pruning by the post's row-sum ranking.

    ``scope``: ``"global"`` (all-layer scripts: full-Hessian row sums, one
    packed ranking) or ``"layer"`` (block row sums, k percent of every
    variable). ``carry_over=False`` restores every parameter exactly after each
    step instead, to separate the effect of the faulty restore. The batches
    of ``batch_size`` images are drawn from ``x_pool`` with ``seed``. The
    model's weights are the same afterwards as before.
    """
    chain = network.dense_chain(model)
    scope = pruning.check_scope(scope)
    if isinstance(fractions, (str, bytes)) or len(fractions) == 0:
        raise ValueError(f"fractions must be a non-empty sequence of floats, got {fractions!r}")
    fractions = [pruning.check_fraction(f, "fractions") for f in fractions]
    x_pool, y_pool = network.check_xy(x_pool, y_pool, chain.input_width, chain.n_classes,
                                      "x_pool", "y_pool")
    x_test, y_test = network.check_xy(x_test, y_test, chain.input_width, chain.n_classes,
                                      "x_test", "y_test")
    batch_size = network.check_batch_size(batch_size)
    if not isinstance(carry_over, bool):
        raise TypeError(f"carry_over must be a bool, got {carry_over!r}")

    rng = np.random.default_rng(seed)
    original = chain.weights()
    current = [w.copy() for w in original]
    accuracies = []
    try:
        for fraction in fractions:
            batch = rng.choice(len(x_pool), size=batch_size, replace=False)
            xb, yb = x_pool[batch], y_pool[batch]
            model.set_weights(current)
            masks = pruning.prune_masks(hessian.hessian_row_sums(model, xb, yb, scope=scope),
                                        fraction, scope)
            pruned = [w * m for w, m in zip(current, masks)]
            model.set_weights(pruned)
            accuracies.append(metrics.accuracy(model, x_test, y_test))
            if carry_over:
                again = pruning.prune_masks(hessian.hessian_row_sums(model, xb, yb, scope=scope),
                                            fraction, scope)
                current = [np.where(m == 0, w0, w) for w0, w, m in zip(original, pruned, again)]
    finally:
        model.set_weights(original)
    return np.array(accuracies)
