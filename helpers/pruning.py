"""Masks, applying them, and fast accuracy-versus-sparsity sweeps (chapter "Saliencies").

``prune_masks`` zeroes exactly ``round(fraction * n)`` of the lowest scores
(half rounds up), either over all tensors at once (``scope="global"``, the
post's "all layers") or in each tensor separately (``scope="layer"``). Ties
are broken by position: the earlier parameter in ``trainable_weights`` order
(each tensor flattened in C order) is pruned first, as ``tf.nn.top_k`` does.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence

import keras
import numpy as np
import tensorflow as tf

from helpers import checks, network

SCOPES = ("global", "layer")


def n_pruned(fraction: float, n: int) -> int:
    """How many of ``n`` parameters a ``fraction`` in [0, 1] removes: round half up."""
    return _n_pruned(checks.fraction(fraction), checks.integer(n, "n", 0))


def prune_masks(scores: Sequence[np.ndarray], fraction: float,
                scope: str = "global") -> list[np.ndarray]:
    """0/1 float32 masks, 0 where a parameter is pruned."""
    scores = check_scores(scores)
    fraction = checks.fraction(fraction)
    scope = check_scope(scope)
    ranks = _ranks(scores, scope)
    ks = _ks(scores, [fraction], scope)[0]
    return [(r >= k).astype(np.float32) for r, k in zip(ranks, ks)]


def apply_masks(model: keras.Model, masks: Sequence[np.ndarray]) -> None:
    """Multiply the model's weights (an MLP's or a conv net's) by ``masks`` in place."""
    weights = network.describe(model).weights()
    masks = check_masks(masks, weights)
    model.set_weights([w * m for w, m in zip(weights, masks)])


@contextlib.contextmanager
def pruned(model: keras.Model, masks: Sequence[np.ndarray]) -> Iterator[keras.Model]:
    """Inside the ``with`` block the model (an MLP or a conv net) is pruned; afterwards its
    weights are restored."""
    original = network.describe(model).weights()
    masks = check_masks(masks, original)
    model.set_weights([w * m for w, m in zip(original, masks)])
    try:
        yield model
    finally:
        model.set_weights(original)


def sparsity(masks: Sequence[np.ndarray]) -> np.ndarray:
    """The fraction of zeros in each mask."""
    masks = check_scores(masks, name="masks")
    return np.array([1.0 - float(np.mean(m)) for m in masks])


def pruned_counts(scores: Sequence[np.ndarray], fractions: Sequence[float],
                  scope: str = "global") -> np.ndarray:
    """Parameters of each tensor that ``prune_masks`` removes, per fraction (chapter "Explore it yourself").

    An int array of shape ``(len(fractions), len(scores))``: row ``i`` holds
    the zeros per mask of ``prune_masks(scores, fractions[i], scope)``, from one sort.
    """
    scores = check_scores(scores)
    fractions = checks.fractions(fractions)
    scope = check_scope(scope)
    ranks = [np.sort(r.ravel()) for r in _ranks(scores, scope)]
    ks = _ks(scores, fractions, scope)
    return np.array([[int(np.searchsorted(r, k)) for r, k in zip(ranks, level)] for level in ks],
                    dtype=np.int64).reshape(len(ks), len(scores))


def sweep(model: keras.Model, scores: Sequence[np.ndarray], fractions: Sequence[float],
          x: np.ndarray, y: np.ndarray, scope: str = "global") -> np.ndarray:
    """Test accuracy after pruning each fraction (no retraining), restarting from the model's weights.

    Vectorised: one sort per scope, then every level is masked and evaluated
    inside one compiled loop. The model (an MLP or a conv net) is not modified.
    """
    net = network.describe(model)
    weights = net.weights()
    scores, fractions, scope = check_sweep(scores, weights, fractions, scope)
    x, y = network.check_xy(x, y, net.input_width, net.n_classes)
    ranks = _ranks(scores, scope)
    ks = np.asarray(_ks(scores, fractions, scope), np.int32)
    acc = _sweep_graph(tuple(tf.constant(w) for w in weights), tuple(tf.constant(r) for r in ranks),
                       tf.constant(ks), tf.constant(x), tf.constant(y), net.structure)
    return acc.numpy().astype(np.float64)


def check_sweep(scores: object, weights: Sequence[np.ndarray], fractions: object,
                scope: object) -> tuple[list[np.ndarray], list[float], str]:
    """Validate a sweep's scores (shaped like ``weights``), fractions and scope."""
    scores = check_scores(scores)
    if [s.shape for s in scores] != [np.shape(w) for w in weights]:
        raise ValueError("scores must have the shapes of model.trainable_weights, got "
                         f"{[s.shape for s in scores]}")
    return scores, checks.fractions(fractions), check_scope(scope)


def check_scope(scope: object) -> str:
    """One of ``SCOPES``."""
    return checks.choice(scope, "scope", SCOPES)


def check_scores(scores: object, name: str = "scores", finite: bool = True) -> list[np.ndarray]:
    """Validate a non-empty list of numeric arrays (finite unless ``finite=False``)."""
    if isinstance(scores, np.ndarray) or not isinstance(scores, Sequence):
        raise TypeError(f"{name} must be a list of arrays (one per weight tensor)")
    if len(scores) == 0:
        raise ValueError(f"{name} is empty")
    return [checks.numbers(s, f"{name}[{i}]", finite) for i, s in enumerate(scores)]


def check_masks(masks: object, weights: Sequence[np.ndarray],
                name: str = "masks") -> list[np.ndarray]:
    """Validate 0/1 masks (numbers or bools) shaped like ``weights``; return them as float32."""
    masks = network.check_like(weights, masks, name, np.float32, bools=True)
    for i, m in enumerate(masks):
        if not np.all((m == 0) | (m == 1)):
            raise ValueError(f"{name}[{i}] must contain only 0 and 1")
    return masks


def _ranks(scores: list[np.ndarray], scope: str) -> list[np.ndarray]:
    """Each parameter's position in ascending score order (stable: ties by index)."""
    def rank_of(flat: np.ndarray) -> np.ndarray:
        order = np.argsort(flat, kind="stable")
        ranks = np.empty(flat.size, np.int32)
        ranks[order] = np.arange(flat.size, dtype=np.int32)
        return ranks

    if scope == "layer":
        return [rank_of(s.ravel()).reshape(s.shape) for s in scores]
    flat = np.concatenate([s.ravel().astype(np.float64) for s in scores])
    ranks = rank_of(flat)
    out, start = [], 0
    for s in scores:
        out.append(ranks[start:start + s.size].reshape(s.shape))
        start += s.size
    return out


def _ks(scores: list[np.ndarray], fractions: Sequence[float], scope: str) -> list[list[int]]:
    """Per level and tensor: prune the parameters whose rank is below k."""
    if scope == "layer":
        return [[_n_pruned(f, s.size) for s in scores] for f in fractions]
    total = sum(s.size for s in scores)
    return [[_n_pruned(f, total)] * len(scores) for f in fractions]


def _n_pruned(fraction: float, n: int) -> int:
    return int(math.floor(fraction * n + 0.5))


@tf.function(reduce_retracing=True)
def _sweep_graph(weights, ranks, ks, x, y, structure):
    accuracies = tf.TensorArray(tf.float32, size=tf.shape(ks)[0])
    for level in tf.range(tf.shape(ks)[0]):
        masked = [tf.where(r >= ks[level, i], w, tf.zeros_like(w))
                  for i, (w, r) in enumerate(zip(weights, ranks))]
        logits = network.structure_logits(x, masked, structure)
        hits = tf.equal(tf.argmax(logits, axis=1, output_type=tf.int32), y)
        accuracies = accuracies.write(level, tf.reduce_mean(tf.cast(hits, tf.float32)))
    return accuracies.stack()
