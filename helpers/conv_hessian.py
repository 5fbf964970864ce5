"""Second derivatives of the loss of a small convolutional network (chapter "A convolutional network").

The chapter extends the exact Hessian diagonal of ``helpers.hessian`` (which
reads only MLPs) to LeNet-style networks: 2-D convolutions with ReLU, max
pooling, flattening and Dense layers, ending in a linear (logit) layer. As
there, the loss is the mean over samples of the cross-entropy of the softmax.

Why the Gauss-Newton diagonal is still the exact diagonal: the Hessian is
``J^T A J + sum_i (dE/df_i) d2f_i/du2``. A convolution is linear in its own
kernel, and ReLU and max pooling are piecewise linear (max pooling selects
one input of each window), so every logit is piecewise linear in any *single*
parameter and the second term has a zero diagonal (almost everywhere).

How it is computed: factor ``A = B B^T`` with ``B[:, c] = sqrt(p_c)(e_c - p)``,
so ``H_kk = mean_n sum_c (J_n[:, k] . B_n[:, c])^2``. For each of the ten
columns of ``B`` one backward pass gives, per sample, the gradient of the loss
at every layer's pre-activation; a Dense kernel's per-sample gradient is the
outer product of its input and that delta, and a convolution kernel's is the
sum over positions of input patch times delta (``tf.image.extract_patches``
and one ``einsum``). Squaring those per-sample gradients and summing over
samples gives the diagonal: ten backward passes in all.

The cheaper estimator ``method="mc"`` (Monte-Carlo Gauss-Newton, as in
BackPACK's ``DiagGGNMC``) draws a label from the model's own softmax for every
sample and squares the per-sample gradient of the loss at that label: since
``E[(p - e_c)(p - e_c)^T] = diag(p) - p p^T = A`` when ``c ~ p``, its
expectation is the exact diagonal, at the cost of ``samples`` backward passes
instead of ten. ``method="fisher"`` uses the true labels instead (the
empirical Fisher, which is *not* an unbiased estimate of the Hessian).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from helpers import checks, network

METHODS = ("exact", "mc", "fisher")
_DRAWS_PER_CALL = 10  # Monte-Carlo draws backpropagated per compiled call (one forward pass)
MAX_FULL_HESSIAN_PARAMS = 5000


def hessian_diagonal(model: keras.Model, x: np.ndarray, y: np.ndarray, method: str = "exact",
                     samples: int = 1, seed: int = 0, batch_size: int = 1000) -> list[np.ndarray]:
    """The diagonal of the mean-loss Hessian of a conv net, or an estimate of it.

    ``method="exact"``: the Gauss-Newton diagonal, equal to the Hessian
    diagonal for ReLU/max-pool networks (ten backward passes per batch).
    ``method="mc"``: the Monte-Carlo Gauss-Newton estimate with ``samples``
    labels drawn per image from the model's softmax (``seed`` fixes the draws;
    ``samples`` backward passes per batch, one forward pass per ten draws). ``method="fisher"``: the empirical
    Fisher diagonal (true labels). Arrays are aligned with
    ``model.trainable_weights``. Chapter "A convolutional network".
    """
    method = checks.choice(method, "method", METHODS)
    samples = checks.integer(samples, "samples", 1, 2**20)
    seed = checks.seed(seed)
    if seed >= 2**31:  # the Monte Carlo draws use it as a stateless int32-pair seed
        raise ValueError(f"seed must be below 2**31 here, got {seed!r}")
    net = network.conv_net(model)
    x, y = network.check_xy(x, y, net.input_width, net.n_classes)
    batch_size = network.check_batch_size(batch_size)
    weights = tuple(tf.constant(w) for w in model.get_weights())
    totals = [np.zeros(w.shape, np.float64) for w in weights]
    for number, start in enumerate(range(0, len(x), batch_size)):
        xb = tf.constant(x[start:start + batch_size])
        yb = tf.constant(y[start:start + batch_size])
        if method == "exact":
            parts = [_exact_batch(xb, weights, net.spec)]
        elif method == "fisher":
            parts = [_label_batch(xb, yb, weights, net.spec)]
        else:
            parts = [_mc_batch(xb, weights, net.spec,
                               tf.constant([seed, number * 2**20 + chunk], tf.int64),
                               min(_DRAWS_PER_CALL, samples - chunk))
                     for chunk in range(0, samples, _DRAWS_PER_CALL)]
        for part in parts:
            for i, p in enumerate(part):
                totals[i] += p.numpy()
    scale = len(x) * (samples if method == "mc" else 1)
    return [(t / scale).astype(np.float32) for t in totals]


def full_hessian(model: keras.Model, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The whole Hessian of the mean loss by brute force (nested tapes), for tiny conv nets only.

    Parameters are flattened in ``model.trainable_weights`` order, each tensor
    in C order; at most 5000 parameters. Used to check ``hessian_diagonal``.
    """
    net = network.conv_net(model)
    x, y = network.check_xy(x, y, net.input_width, net.n_classes)
    n_params = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    if n_params > MAX_FULL_HESSIAN_PARAMS:
        raise ValueError(f"model has {n_params} parameters; full_hessian is for models of at most "
                         f"{MAX_FULL_HESSIAN_PARAMS}")
    weights = tuple(tf.constant(w, tf.float64) for w in model.get_weights())
    return _full_hessian_graph(tf.constant(x, tf.float64), tf.constant(y), weights,
                               net.spec).numpy()


# --- internals -------------------------------------------------------------------------------

@tf.function(reduce_retracing=True)
def _full_hessian_graph(x, y, weights, spec):
    """Nested tapes in one graph: the Jacobian of the flat gradient, block by block."""
    n_params = sum(int(np.prod(w.shape)) for w in weights)
    with tf.GradientTape(persistent=True) as outer:
        outer.watch(weights)
        with tf.GradientTape() as inner:
            inner.watch(weights)
            out = network.conv_logits(x, weights, spec)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, out))
        grads = inner.gradient(loss, weights)
        flat = tf.concat([tf.reshape(g, [-1]) for g in grads], axis=0)
    blocks = [tf.reshape(outer.jacobian(flat, w, experimental_use_pfor=False), (n_params, -1))
              for w in weights]
    return tf.concat(blocks, axis=1)


def _square_sums(inputs, deltas, spec):
    """Sum over samples of squared per-sample gradients, per parametric layer."""
    out = []
    layers = [s for s in spec if s[0] in ("conv", "dense")]
    for a, d, item in zip(inputs, deltas, layers):
        if item[0] == "dense":
            out.append(tf.matmul(tf.square(a), tf.square(d), transpose_a=True))
            bias_grad, has_bias = d, item[2]
        else:
            kh, kw = item[5]
            patches = tf.image.extract_patches(a, sizes=[1, kh, kw, 1],
                                               strides=[1, *item[1], 1], rates=[1, 1, 1, 1],
                                               padding=item[2])
            per_sample = tf.einsum("nhwp,nhwc->npc", patches, d)
            cin = a.shape[-1]
            out.append(tf.reshape(tf.reduce_sum(tf.square(per_sample), axis=0),
                                  (kh, kw, cin, d.shape[-1])))
            bias_grad, has_bias = tf.reduce_sum(d, axis=[1, 2]), item[4]
        if has_bias:
            out.append(tf.reduce_sum(tf.square(bias_grad), axis=0))
    return out


@tf.function(reduce_retracing=True)
def _exact_batch(x, weights, spec):
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(weights)
        inputs, pre, out = network.conv_forward(x, weights, spec)
    p = tf.nn.softmax(out)
    sqrt_p = tf.sqrt(p)
    n_classes = out.shape[-1]
    totals = None
    for c in range(n_classes):
        column = sqrt_p[:, c:c + 1] * (tf.one_hot(c, n_classes)[None] - p)  # B[:, c] per sample
        deltas = tape.gradient(out, pre, output_gradients=column)
        parts = _square_sums(inputs, deltas, spec)
        totals = parts if totals is None else [t + q for t, q in zip(totals, parts)]
    del tape
    return totals


@tf.function(reduce_retracing=True)
def _mc_batch(x, weights, spec, seed, draws):
    """Sum over ``draws`` label draws from the softmax, and over samples, of squared gradients."""
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(weights)
        inputs, pre, out = network.conv_forward(x, weights, spec)
    p = tf.nn.softmax(out)
    labels = tf.random.stateless_categorical(out, draws, seed=seed, dtype=tf.int32)
    totals = None
    for j in range(draws):
        delta = p - tf.one_hot(labels[:, j], out.shape[-1])
        parts = _square_sums(inputs, tape.gradient(out, pre, output_gradients=delta), spec)
        totals = parts if totals is None else [t + q for t, q in zip(totals, parts)]
    del tape
    return totals


@tf.function(reduce_retracing=True)
def _label_batch(x, labels, weights, spec):
    """Sum over samples of squared per-sample gradients of the loss at ``labels``."""
    with tf.GradientTape() as tape:
        tape.watch(weights)
        inputs, pre, out = network.conv_forward(x, weights, spec)
    delta = tf.nn.softmax(out) - tf.one_hot(labels, out.shape[-1])
    deltas = tape.gradient(out, pre, output_gradients=delta)
    return _square_sums(inputs, deltas, spec)
