"""Second derivatives of the cross-entropy loss of an MLP (chapter "Second derivatives in practice").

All functions use the mean over samples of the per-sample cross-entropy of the
softmax of the model's logits, and return arrays aligned with
``model.trainable_weights``.

Why the exact diagonal is cheap: write the logits as f(u). The Hessian is
``J^T A J + sum_i (dE/df_i) d2f_i/du2`` with ``A = diag(p) - p p^T``. For a
ReLU network each logit is piecewise linear in any *single* weight, so the
second term has a zero diagonal and ``diag(H) = diag(J^T A J)``, the
Gauss-Newton diagonal. Factor ``A = B B^T`` with columns
``B[:, c] = sqrt(p_c) (e_c - p)``; then ``H_kk = sum_c (J_k . B[:, c])^2``.
Backpropagating the ten columns of B at once and using that a Dense weight's
per-sample gradient is an outer product ``a_j delta_k`` gives the diagonal in
about the cost of two gradient passes.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from helpers import checks, network

METHODS = ("exact", "lecun", "fisher")
ROW_SUM_SCOPES = ("global", "layer")


def hessian_diagonal(model: keras.Model, x: np.ndarray, y: np.ndarray, method: str = "exact",
                     batch_size: int = 2048) -> list[np.ndarray]:
    """The diagonal of the loss Hessian, or one of its stand-ins, averaged over samples.

    ``method``: ``"exact"`` (the true diagonal), ``"lecun"`` (LeCun et al. 1990's
    backpropagated approximation, off-diagonal terms dropped at every layer),
    ``"fisher"`` (mean squared per-sample gradient). What the post's code computed
    instead, the row sums ``H @ 1``, is :func:`hessian_row_sums`.
    """
    method = checks.choice(method, "method", METHODS)
    chain = network.dense_chain(model)
    x, y = network.check_xy(x, y, chain.input_width, chain.n_classes)
    batch_size = network.check_batch_size(batch_size)
    kernels, biases = _parameters(chain)
    step = {"exact": _exact_batch, "lecun": _lecun_batch, "fisher": _fisher_batch}[method]
    totals = _accumulate(step, x, y, batch_size, kernels, biases)
    return [t.numpy() / np.float32(len(x)) for t in _align(chain, totals)]


def hessian_row_sums(model: keras.Model, x: np.ndarray, y: np.ndarray, scope: str = "global",
                     batch_size: int = 2048) -> list[np.ndarray]:
    """Row sums of the Hessian, ``H @ 1``, as ``tf.gradients(grad, var)`` computed them.

    ``scope="global"`` sums each row over all parameters (the post's all-layer
    scripts); ``scope="layer"`` sums only within the variable's own diagonal
    block (its layer-wise scripts). Chapter "What the post's code computed".
    """
    scope = checks.choice(scope, "scope", ROW_SUM_SCOPES)
    chain = network.dense_chain(model)
    x, y = network.check_xy(x, y, chain.input_width, chain.n_classes)
    batch_size = network.check_batch_size(batch_size)
    variables = model.trainable_weights
    ones = [tf.ones_like(v) for v in variables]
    totals = [np.zeros(v.shape, np.float64) for v in variables]
    for start in range(0, len(x), batch_size):
        xb, yb = x[start:start + batch_size], y[start:start + batch_size]
        if scope == "global":
            parts = _hvp_sum(model, xb, yb, ones)
        else:
            parts = _block_row_sums(model, xb, yb)
        for i, part in enumerate(parts):
            totals[i] += part.numpy()
    return [(t / len(x)).astype(np.float32) for t in totals]


def gradient(model: keras.Model, x: np.ndarray, y: np.ndarray,
             batch_size: int = 2048) -> list[np.ndarray]:
    """The gradient of the mean loss, the first-order term of the Taylor expansion
    (chapter "Do the assumptions hold?")."""
    chain = network.dense_chain(model)
    x, y = network.check_xy(x, y, chain.input_width, chain.n_classes)
    batch_size = network.check_batch_size(batch_size)
    variables = model.trainable_weights
    totals = [np.zeros(v.shape, np.float64) for v in variables]
    for start in range(0, len(x), batch_size):
        xb, yb = tf.constant(x[start:start + batch_size]), tf.constant(y[start:start + batch_size])
        with tf.GradientTape() as tape:
            loss = _mean_loss(model, xb, yb) * tf.cast(tf.shape(xb)[0], tf.float32)
        for i, g in enumerate(tape.gradient(loss, variables)):
            totals[i] += g.numpy()
    return [(t / len(x)).astype(np.float32) for t in totals]


def hessian_vector_product(model: keras.Model, x: np.ndarray, y: np.ndarray,
                           vectors: Sequence[np.ndarray], batch_size: int = 2048) -> list[np.ndarray]:
    """``H v`` for the mean loss, with ``v`` given per weight tensor (chapter "Do the assumptions hold?")."""
    chain = network.dense_chain(model)
    x, y = network.check_xy(x, y, chain.input_width, chain.n_classes)
    batch_size = network.check_batch_size(batch_size)
    vectors = network.check_like(model.trainable_weights, vectors, "vectors")
    v = [tf.constant(a) for a in vectors]
    totals = [np.zeros(a.shape, np.float64) for a in vectors]
    for start in range(0, len(x), batch_size):
        parts = _hvp_sum(model, x[start:start + batch_size], y[start:start + batch_size], v)
        for i, part in enumerate(parts):
            totals[i] += part.numpy()
    return [(t / len(x)).astype(np.float32) for t in totals]


def full_hessian(model: keras.Model, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The whole Hessian of the mean loss, by brute force (nested tapes).

    Size grows as the square of the parameter count: for small networks only
    (chapter "The Taylor expansion of the loss"). Parameters are flattened in
    ``model.trainable_weights`` order, each tensor in C order.
    """
    chain = network.dense_chain(model)
    x, y = network.check_xy(x, y, chain.input_width, chain.n_classes)
    n_params = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    if n_params > 5000:
        raise ValueError(f"model has {n_params} parameters; full_hessian is for models of at "
                         "most 5000 (use hessian_diagonal or hessian_vector_product)")
    variables = model.trainable_weights
    with tf.GradientTape(persistent=True) as outer:
        with tf.GradientTape() as inner:
            loss = _mean_loss(model, tf.constant(x), tf.constant(y))
        grads = inner.gradient(loss, variables)
        flat = tf.concat([tf.reshape(g, [-1]) for g in grads], axis=0)
    blocks = [tf.reshape(outer.jacobian(flat, v), (n_params, -1)) for v in variables]
    del outer
    return tf.concat(blocks, axis=1).numpy().astype(np.float64)


def flatten(tensors: Sequence[np.ndarray]) -> np.ndarray:
    """Concatenate per-tensor arrays into one vector, in ``trainable_weights`` order."""
    return np.concatenate([np.asarray(t).ravel() for t in tensors])


# --- internals -------------------------------------------------------------------------------

def _parameters(chain: network.DenseChain):
    """Each Dense layer's kernel and bias as tensors (zeros for a layer without bias).

    The values are read once, so that every compiled call receives plain tensors:
    passing the Keras variables themselves costs a millisecond or more per call.
    """
    kernels = [tf.convert_to_tensor(layer.kernel) for layer in chain.layers]
    biases = [tf.convert_to_tensor(layer.bias) if layer.use_bias
              else tf.zeros(layer.kernel.shape[1]) for layer in chain.layers]
    return kernels, biases


def _align(chain: network.DenseChain, parts):
    """Drop the bias entries of layers without bias, keeping trainable_weights order."""
    out = []
    for layer, (dk, db) in zip(chain.layers, parts):
        out.append(dk)
        if layer.use_bias:
            out.append(db)
    return out


def _accumulate(step, x: np.ndarray, y: np.ndarray, batch_size: int, kernels, biases):
    """Sum ``step`` over consecutive batches.

    Batches are copied to TensorFlow one at a time: converting the whole
    training set at once costs more than the exact diagonal itself.
    """
    step_and_add = _step_and_add(step)
    totals = [(tf.zeros_like(w), tf.zeros_like(b)) for w, b in zip(kernels, biases)]
    for start in range(0, len(x), batch_size):
        xb = tf.constant(x[start:start + batch_size])
        yb = tf.constant(y[start:start + batch_size])
        totals = step_and_add(totals, xb, yb, kernels, biases)
    return totals


@functools.cache
def _step_and_add(step):
    """One compiled function per step kind, so methods and shapes do not retrace each other."""
    @tf.function(reduce_retracing=True)
    def run(totals, x, y, kernels, biases):
        parts = step(x, y, kernels, biases)
        return [(tw + pw, tb + pb) for (tw, tb), (pw, pb) in zip(totals, parts)]

    return run


def _outer_sums(inputs, deltas_sq):
    """Per layer: sum over samples of a_j^2 * d_k (kernel) and of d_k (bias)."""
    return [(tf.matmul(tf.square(a), d, transpose_a=True), tf.reduce_sum(d, axis=0))
            for a, d in zip(inputs, deltas_sq)]


@tf.function(reduce_retracing=True)
def _exact_batch(x, y, kernels, biases):
    inputs, masks, logits = network.forward_trace(x, kernels, biases)
    p = tf.nn.softmax(logits)
    sqrt_p = tf.sqrt(p)
    n, n_classes = tf.shape(p)[0], tf.shape(p)[1]
    # delta[n, c, k] = sqrt(p_c) * (1[k == c] - p_k): column c of B for sample n. Built as
    # sqrt(p_c) * (0 - p_k) with sqrt(p_c) * (1 - p_c) set on the diagonal: the same
    # products as subtracting p from an identity, without broadcasting both operands.
    delta = tf.linalg.set_diag(sqrt_p[:, :, None] * (0.0 - p)[:, None, :], sqrt_p * (1.0 - p))
    deltas_sq = [tf.reduce_sum(tf.square(delta), axis=1)]
    layers = list(zip(reversed(kernels[1:]), reversed(masks)))
    for i, (w, mask) in enumerate(layers):
        # All ten columns of B at once: rows (sample, c) in one matmul per layer.
        back = tf.matmul(tf.reshape(delta, (n * n_classes, -1)), w, transpose_b=True)
        back = tf.reshape(back, (n, n_classes, -1))
        if i == len(layers) - 1:
            # The first layer's columns are not backpropagated further, so its 0/1 mask,
            # the same for all ten columns, is applied to their sum of squares instead.
            deltas_sq.append(tf.reduce_sum(tf.square(back), axis=1) * mask)
        else:
            delta = back * mask[:, None, :]
            deltas_sq.append(tf.reduce_sum(tf.square(delta), axis=1))
    return _outer_sums(inputs, deltas_sq[::-1])


@tf.function(reduce_retracing=True)
def _lecun_batch(x, y, kernels, biases):
    inputs, masks, logits = network.forward_trace(x, kernels, biases)
    p = tf.nn.softmax(logits)
    h = p * (1.0 - p)  # the diagonal of the softmax cross-entropy's output Hessian
    hs = [h]
    for w, mask in zip(reversed(kernels[1:]), reversed(masks)):
        h = tf.matmul(h, tf.square(w), transpose_b=True) * mask
        hs.append(h)
    return _outer_sums(inputs, hs[::-1])


@tf.function(reduce_retracing=True)
def _fisher_batch(x, y, kernels, biases):
    inputs, masks, logits = network.forward_trace(x, kernels, biases)
    delta = tf.nn.softmax(logits) - tf.one_hot(y, tf.shape(logits)[1])
    deltas_sq = [tf.square(delta)]
    for w, mask in zip(reversed(kernels[1:]), reversed(masks)):
        delta = tf.matmul(delta, w, transpose_b=True) * mask
        deltas_sq.append(tf.square(delta))
    return _outer_sums(inputs, deltas_sq[::-1])


def _mean_loss(model, x, y):
    return _loss_of_logits(model(x, training=False), y) / tf.cast(tf.shape(x)[0], tf.float32)


def _loss_of_logits(logits, y):
    """Summed cross-entropy, written out (not the fused op) so that second derivatives exist."""
    log_p = tf.nn.log_softmax(logits)
    return -tf.reduce_sum(tf.one_hot(y, tf.shape(logits)[1]) * log_p)


def _hvp_sum(model, x, y, vectors):
    """(sum over the batch of per-sample Hessians) @ v, by double backprop."""
    chain = network.dense_chain(model)
    return _hvp_sum_graph(_values(model), chain.layout, tf.constant(x), tf.constant(y),
                          list(vectors))


def _block_row_sums(model, x, y):
    chain = network.dense_chain(model)
    return _block_row_sums_graph(_values(model), chain.layout, tf.constant(x), tf.constant(y))


def _values(model):
    return [tf.convert_to_tensor(v) for v in model.trainable_weights]


# These take the weights' values, not the model, so that one trace serves every model of a shape.
@tf.function(reduce_retracing=True)
def _hvp_sum_graph(variables, layout, x, y, vectors):
    with tf.GradientTape() as outer:
        outer.watch(variables)
        with tf.GradientTape() as inner:
            inner.watch(variables)
            loss = _loss_of_logits(network.logits(x, variables, layout), y)
        grads = inner.gradient(loss, variables)
        dot = tf.add_n([tf.reduce_sum(g * v) for g, v in zip(grads, vectors)])
    return outer.gradient(dot, variables)


@tf.function(reduce_retracing=True)
def _block_row_sums_graph(variables, layout, x, y):
    with tf.GradientTape(persistent=True) as outer:
        outer.watch(variables)
        with tf.GradientTape() as inner:
            inner.watch(variables)
            loss = _loss_of_logits(network.logits(x, variables, layout), y)
        sums = [tf.reduce_sum(g) for g in inner.gradient(loss, variables)]
    parts = [outer.gradient(s, v) for s, v in zip(sums, variables)]
    del outer
    return parts
