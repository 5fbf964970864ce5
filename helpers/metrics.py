"""Test accuracy and loss of a (possibly pruned) MLP or conv net (chapter "Training the two networks")."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from helpers import network


def accuracy(model: keras.Model, x: np.ndarray, y: np.ndarray) -> float:
    """The fraction of samples whose largest logit is the label (dropout off)."""
    hits, _ = _evaluate(model, x, y)
    return hits


def mean_loss(model: keras.Model, x: np.ndarray, y: np.ndarray) -> float:
    """The mean per-sample cross-entropy, the E of the book's Taylor expansion."""
    _, loss = _evaluate(model, x, y)
    return loss


def scorer(model: keras.Model, x: np.ndarray, y: np.ndarray) -> Callable[[Sequence[np.ndarray]], float]:
    """``accuracy`` of ``model``'s network with other weights: ``score(weights)``, weights aligned
    with ``model.trainable_weights``, the model itself untouched. The model and ``(x, y)`` are
    checked (and the data converted) once, for loops that score many pruned copies (chapter
    "What the post's code computed")."""
    net = network.describe(model)
    x, y = network.check_xy(x, y, net.input_width, net.n_classes)
    x_t, y_t = tf.constant(x), tf.constant(y)
    like = net.weights()

    def score(weights: Sequence[np.ndarray]) -> float:
        if len(weights) != len(like) or any(np.shape(w) != m.shape for w, m in zip(weights, like)):
            raise ValueError(f"weights must have the shapes {[m.shape for m in like]}")
        tensors = tuple(tf.constant(np.asarray(w, m.dtype)) for w, m in zip(weights, like))
        return float(_graph(tensors, x_t, y_t, net.structure)[0])

    return score


def _evaluate(model: keras.Model, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    net = network.describe(model)
    x, y = network.check_xy(x, y, net.input_width, net.n_classes)
    hits, loss = _graph(tuple(tf.constant(w) for w in net.weights()), tf.constant(x),
                        tf.constant(y), net.structure)
    return float(hits), float(loss)


@tf.function(reduce_retracing=True)
def _graph(weights, x, y, structure):
    logits = network.structure_logits(x, weights, structure)
    hits = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, 1, output_type=tf.int32), y), tf.float32))
    per_sample = tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits)
    return hits, tf.reduce_mean(tf.cast(per_sample, tf.float64))
