"""The terms of the Taylor expansion of the loss for a deletion (chapters "The Taylor
expansion of the loss" and "Do the assumptions hold?").

For parameters u, a perturbation du and the mean cross-entropy E,

    E(u + du) - E(u) = g.du + 1/2 sum_k h_kk du_k^2 + 1/2 sum_{j != k} h_jk du_j du_k + R,

first-order (gradient) term, diagonal term, cross term and remainder.
Deleting the parameters in a set S is du_k = -u_k for k in S, 0 elsewhere; then
the diagonal term is the sum of the OBD saliencies s_k = h_kk u_k^2 / 2 over S.

``expand`` measures every term for one perturbation without forming the
Hessian. It pushes the line ``t -> u + t du`` through the network in Taylor
mode: with ``a(t) = a + t a' + t^2/2 a''`` for the input of a Dense layer and
``W + t dW``, ``b + t db`` for its parameters, the pre-activation has
``z' = a' W + a dW + db`` and ``z'' = a'' W + 2 a' dW``; a ReLU multiplies all
three by its 0/1 mask (its second derivative is zero away from the kink). At
the logits, with ``p`` the softmax and ``r = p - onehot(y)``, the per-sample
loss has ``dl/dt = r.z'`` and ``d2l/dt2 = r.z'' + sum_c p_c z'_c^2 - (p.z')^2``.
Their means are ``g.du`` and ``du^T H du``, exactly (the quadratic form in
one pass instead of a Hessian-vector product). The same pass evaluates
``E(u + du) - E(u)`` as a mean of per-sample differences. Everything runs in
float64, so even the tiny loss changes of single deletions are resolved.

``obd_deletion_terms`` and ``single_deletion_terms`` measure a trained network of
the book on the post's 55,000 training images and keep the result in the on-disk
cache, keyed by the network's configuration, a digest of its weights and the
deletions asked for, so that a rerun reads the terms back instead of measuring.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from helpers import cache, checks, data, hessian, network, pruning, training

_TERMS = ("first_order", "diagonal", "cross", "actual")
_SINGLE = ("index", "tensor", "first_order", "saliency", "actual")


@dataclass(frozen=True)
class Expansion:
    """The terms of ``E(u + du) - E(u)`` for one perturbation ``du``.

    ``first_order`` is ``g.du``; ``diagonal`` is ``1/2 sum_k h_kk du_k^2`` (the
    sum of OBD saliencies for a deletion); ``cross`` is
    ``1/2 sum_{j != k} h_jk du_j du_k``; ``actual`` is the measured change.
    """

    first_order: float
    diagonal: float
    cross: float
    actual: float

    @property
    def quadratic(self) -> float:
        """``1/2 du^T H du``: the diagonal and cross terms together."""
        return self.diagonal + self.cross

    @property
    def second_order(self) -> float:
        """The full second-order prediction, ``g.du + 1/2 du^T H du``."""
        return self.first_order + self.quadratic

    @property
    def remainder(self) -> float:
        """What the second-order expansion misses: third and higher orders."""
        return self.actual - self.second_order

    def as_dict(self) -> dict[str, float]:
        """All terms, named, for tables."""
        return {"first_order": self.first_order, "diagonal": self.diagonal, "cross": self.cross,
                "remainder": self.remainder, "quadratic": self.quadratic,
                "second_order": self.second_order, "actual": self.actual}


@dataclass(frozen=True)
class SingleDeletions:
    """Deleting one parameter at a time (arrays aligned with ``index``).

    ``index``: positions in the flattened parameter vector (``trainable_weights``
    order, each tensor in C order); ``tensor``: which weight tensor each one is
    in; ``first_order``: ``-g_k u_k``; ``saliency``: ``s_k = h_kk u_k^2 / 2``
    (the whole quadratic term: one deletion has no cross term); ``actual``:
    ``E(u - u_k e_k) - E(u)``.
    """

    index: np.ndarray
    tensor: np.ndarray
    first_order: np.ndarray
    saliency: np.ndarray
    actual: np.ndarray

    @property
    def remainder(self) -> np.ndarray:
        """``actual - first_order - saliency``: the third- and higher-order terms."""
        return self.actual - self.first_order - self.saliency


def deletion(model: keras.Model, masks: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The perturbation that deletes every parameter whose mask is 0: ``du_k = -u_k`` there, else 0.

    ``masks``: 0/1 arrays shaped like ``model.trainable_weights`` (as
    ``pruning.prune_masks`` returns them).
    """
    weights = network.dense_chain(model).weights()
    masks = pruning.check_masks(masks, weights)
    return [np.where(m == 0, -w, 0).astype(np.float64) for w, m in zip(weights, masks)]


def expand(model: keras.Model, x: np.ndarray, y: np.ndarray, delta: Sequence[np.ndarray], *,
           diagonal: Sequence[np.ndarray] | None = None, batch_size: int = 8192) -> Expansion:
    """Every term of the Taylor expansion of the mean loss on ``(x, y)`` along ``delta``.

    ``delta``: one array per weight tensor (``deletion`` builds it for a
    deletion). ``diagonal``: the Hessian diagonal on the same data, aligned
    with ``trainable_weights``; computed with
    ``hessian.hessian_diagonal(model, x, y)`` when not given. The cross term
    is the full quadratic form minus its diagonal part.
    """
    if not _is_weight_list(delta):
        raise TypeError("delta must be a list of arrays shaped like model.trainable_weights")
    network.check_like(network.dense_chain(model).weights(), delta, "delta", np.float64)
    return expand_many(model, x, y, [delta], diagonal=diagonal, batch_size=batch_size)[0]


def expand_many(model: keras.Model, x: np.ndarray, y: np.ndarray,
                deltas: Sequence[Sequence[np.ndarray]], *,
                diagonal: Sequence[np.ndarray] | None = None,
                batch_size: int = 8192) -> list[Expansion]:
    """``expand`` for several perturbations at once, sharing the first layer's forward pass.

    Chapter "Do the assumptions hold?" expands along a whole series of
    deletion sets; the unperturbed pre-activations of the first layer (the
    largest matrix product) are computed once per batch for all of them.
    """
    chain = network.dense_chain(model)
    x, y = network.check_xy(x, y, chain.input_width, chain.n_classes)
    weights = chain.weights()
    if not isinstance(deltas, Sequence) or isinstance(deltas, (str, bytes)) or len(deltas) == 0:
        raise TypeError("deltas must be a non-empty list of perturbations (each a list of arrays)")
    deltas = [network.check_like(weights, d, f"deltas[{i}]", np.float64) for i, d in enumerate(deltas)]
    batch_size = network.check_batch_size(batch_size)
    if diagonal is None:
        diagonal = hessian.hessian_diagonal(model, x, y)
    diagonal = network.check_like(weights, diagonal, "diagonal", np.float64)
    moments = _along(chain, weights, x, y, deltas, batch_size)
    out = []
    for delta, (first, quadratic_form, actual) in zip(deltas, moments):
        diagonal_term = 0.5 * sum(float(np.sum(h * d * d)) for h, d in zip(diagonal, delta))
        out.append(Expansion(first_order=first, diagonal=diagonal_term,
                             cross=0.5 * quadratic_form - diagonal_term, actual=actual))
    return out


def expand_with_hessian(hessian_matrix: np.ndarray, gradient: np.ndarray, delta: np.ndarray,
                        actual: float) -> Expansion:
    """The same terms from an explicit Hessian (small networks; chapter 1).

    ``hessian_matrix``: (N, N); ``gradient`` and ``delta``: flat length-N
    vectors in ``trainable_weights`` order (``hessian.flatten``); ``actual``:
    the measured loss change, e.g. from ``expand`` or ``loss_change``.
    """
    h = checks.numbers(hessian_matrix, "hessian_matrix").astype(np.float64)
    if h.ndim != 2 or h.shape[0] != h.shape[1]:
        raise ValueError(f"hessian_matrix must be square, got shape {h.shape}")
    g = checks.numbers(gradient, "gradient").astype(np.float64)
    d = checks.numbers(delta, "delta").astype(np.float64)
    for name, v in (("gradient", g), ("delta", d)):
        if v.shape != (h.shape[0],):
            raise ValueError(f"{name} must be a vector of length {h.shape[0]}, got shape {v.shape}")
    actual = checks.real(actual, "actual")
    diagonal = 0.5 * float(np.sum(np.diag(h) * d * d))
    return Expansion(first_order=float(g @ d), diagonal=diagonal,
                     cross=float(0.5 * d @ h @ d - diagonal), actual=float(actual))


def loss_change(model: keras.Model, x: np.ndarray, y: np.ndarray, delta: Sequence[np.ndarray],
                batch_size: int = 8192) -> float:
    """``E(u + delta) - E(u)`` for the mean cross-entropy on ``(x, y)``, in float64."""
    chain = network.dense_chain(model)
    x, y = network.check_xy(x, y, chain.input_width, chain.n_classes)
    weights = chain.weights()
    delta = network.check_like(weights, delta, "delta", np.float64)
    batch_size = network.check_batch_size(batch_size)
    return _along(chain, weights, x, y, [delta], batch_size)[0][2]


def single_deletions(model: keras.Model, x: np.ndarray, y: np.ndarray, index: Sequence[int], *,
                     gradient: Sequence[np.ndarray] | None = None,
                     diagonal: Sequence[np.ndarray] | None = None,
                     batch_size: int = 8192) -> SingleDeletions:
    """Delete each parameter in ``index`` on its own and measure the terms (vectorised).

    ``index``: flat positions (``trainable_weights`` order). ``gradient`` and
    ``diagonal`` default to ``hessian.gradient`` and
    ``hessian.hessian_diagonal`` on ``(x, y)``. The actual change reuses the
    layer's cached pre-activations: deleting weight (i, j) of a layer only
    shifts column j of its pre-activation, so just the layers above it are
    recomputed, in float64.
    """
    chain = network.dense_chain(model)
    x, y = network.check_xy(x, y, chain.input_width, chain.n_classes)
    weights = chain.weights()
    batch_size = network.check_batch_size(batch_size)
    index = _check_index(index, sum(w.size for w in weights))
    gradient = hessian.gradient(model, x, y) if gradient is None else gradient
    diagonal = hessian.hessian_diagonal(model, x, y) if diagonal is None else diagonal
    g = hessian.flatten(network.check_like(weights, gradient, "gradient", np.float64))
    h = hessian.flatten(network.check_like(weights, diagonal, "diagonal", np.float64))
    u = hessian.flatten(weights).astype(np.float64)

    # Where each flat index sits: tensor, layer, and row/column in the layer's [W; b].
    edges = np.cumsum([0] + [w.size for w in weights])
    tensor = np.searchsorted(edges, index, side="right") - 1
    tensor_layer, tensor_is_bias = _tensor_roles(chain.layout)
    layer = tensor_layer[tensor]
    offset = index - edges[tensor]
    rows, cols = np.empty_like(index), np.empty_like(index)
    for t in np.unique(tensor):
        sel = tensor == t
        shape = weights[t].shape
        if tensor_is_bias[t]:
            rows[sel] = weights[t - 1].shape[0]  # a bias follows its kernel: the ones row
            cols[sel] = offset[sel]
        else:
            rows[sel], cols[sel] = np.unravel_index(offset[sel], shape)

    kernels, biases = _layers64(weights, chain.layout)
    per_layer = [np.flatnonzero(layer == ell) for ell in range(len(kernels))]
    rows_t = tuple(tf.constant(rows[sel], tf.int64) for sel in per_layer)
    cols_t = tuple(tf.constant(cols[sel], tf.int32) for sel in per_layer)
    values_t = tuple(tf.constant(u[index[sel]], tf.float64) for sel in per_layer)
    sums = np.zeros(index.size)
    for start in range(0, len(x), batch_size):
        xb = tf.constant(x[start:start + batch_size])
        yb = tf.constant(y[start:start + batch_size])
        inputs, pre = _inputs_and_pre_activations(xb, kernels, biases)
        changes = _single_deletion_sums(tuple(inputs), tuple(pre), yb, kernels, biases,
                                        rows_t, cols_t, values_t)
        for sel, change in zip(per_layer, changes):
            sums[sel] += change.numpy()
    return SingleDeletions(index=index.copy(), tensor=tensor, first_order=-g[index] * u[index],
                           saliency=0.5 * h[index] * u[index] ** 2, actual=sums / len(x))


def obd_deletion_terms(trained: training.TrainedModel, fractions: Sequence[float], *,
                       dormant_last: bool = False) -> list[Expansion]:
    """Every term of the expansion for OBD's deletion set of each of ``fractions``, cached on disk.

    Chapter "Do the assumptions hold?". The set of fraction f holds the f lowest-saliency
    parameters of ``trained.model`` (``s_k = h_kk u_k^2 / 2``, one ranking over the whole
    network, ``pruning.prune_masks``); gradient, Hessian diagonal and loss are those of the mean
    cross-entropy over the post's 55,000 training images. The terms come from one ``expand_many``
    pass; they are read back from the cache when the network's configuration, its weights and the
    fractions are those of an earlier call. With ``dormant_last`` the parameters that no training
    image reaches (``dormant``) are ranked last, so kept (the chapter's fine walk, section 5).
    """
    weights = _trained_weights(trained)
    fractions = checks.fractions(fractions)
    dormant_last = checks.flag(dormant_last, "dormant_last")
    key = {**_network_key(trained, weights), "fractions": fractions, "dormant_last": dormant_last}

    def build() -> dict[str, np.ndarray]:
        model = trained.model
        (x, y), _ = data.load_post_split()
        diagonal = hessian.hessian_diagonal(model, x, y)
        scores = [0.5 * h * w.astype(np.float64) ** 2 for h, w in zip(diagonal, weights)]
        if dormant_last:
            top = 2 * max(s.max() for s in scores)
            scores = [np.where(d, top, s) for s, d in zip(scores, dormant(model, x))]
        deltas = [deletion(model, pruning.prune_masks(scores, f)) for f in fractions]
        terms = expand_many(model, x, y, deltas, diagonal=diagonal)
        return {name: np.array([getattr(t, name) for t in terms]) for name in _TERMS}

    arrays = cache.fetch("taylor_obd_sets", key, build, version=cache.code_version(__name__))
    return [Expansion(**{name: float(arrays[name][i]) for name in _TERMS})
            for i in range(len(fractions))]


def single_deletion_terms(trained: training.TrainedModel, index: Sequence[int]) -> SingleDeletions:
    """``single_deletions`` of the parameters at ``index`` of ``trained.model``, cached on disk.

    Chapter "Do the assumptions hold?". ``index``: flat positions in ``trainable_weights``
    order. Loss, gradient and Hessian diagonal are those of the mean cross-entropy over the
    post's 55,000 training images; the result is read back from the cache when the network's
    configuration, its weights and ``index`` are those of an earlier call.
    """
    weights = _trained_weights(trained)
    index = _check_index(index, sum(w.size for w in weights))
    key = {**_network_key(trained, weights), "index": [int(i) for i in index]}

    def build() -> dict[str, np.ndarray]:
        model = trained.model
        (x, y), _ = data.load_post_split()
        single = single_deletions(model, x, y, index, gradient=hessian.gradient(model, x, y),
                                  diagonal=hessian.hessian_diagonal(model, x, y))
        return {name: getattr(single, name) for name in _SINGLE}

    arrays = cache.fetch("taylor_single", key, build, version=cache.code_version(__name__))
    return SingleDeletions(**{name: arrays[name] for name in _SINGLE})


def dormant(model: keras.Model, x: np.ndarray) -> list[np.ndarray]:
    """Parameters that cannot change the loss on ``x`` to any order of the expansion at ``u``.

    A kernel weight from input i to hidden unit j is dormant when, on every
    sample, its input is zero or unit j is off (pre-activation <= 0): an
    always-black pixel, a hidden unit that never fires, or an input that is
    only ever on when the unit is off. A weight into the logits is dormant
    when its input is zero on every sample; a hidden bias when its unit is
    off on every sample. Such parameters have ``g_k = 0`` and an all-zero
    Hessian row, so ``s_k = 0``: OBD deletes them first, and only a ReLU
    switching can make their deletion matter (chapters 1 and 2). Returns
    boolean arrays aligned with ``model.trainable_weights``.
    """
    chain = network.dense_chain(model)
    x = network.check_x(x, chain.input_width)
    kernels, biases = _layers64(chain.weights(), chain.layout)
    inputs, masks, logits = network.forward_trace(tf.constant(x, tf.float64), kernels, biases)
    out = []
    for ell, has_bias in enumerate(chain.layout):
        # 0/1 indicators; float32 counts are exact up to 2**24 samples.
        source = (inputs[ell].numpy() != 0).astype(np.float32)
        if ell < len(masks):
            on = masks[ell].numpy().astype(np.float32)
        else:
            on = np.ones(logits.shape, np.float32)  # logits are never switched off
        together = source.T @ on  # samples on which input i and unit j are both active
        out.append(together == 0)
        if has_bias:
            out.append(on.sum(axis=0) == 0)
    return out


def format_terms(labels: Sequence[str], expansions: Sequence[Expansion]) -> str:
    """A plain-text table of the terms of several expansions, one row per label (chapters 1, 2).

    Columns: first-order, diagonal (the OBD prediction for a deletion), cross,
    remainder and the actual change, in scientific notation.
    """
    if isinstance(labels, (str, bytes)) or not isinstance(labels, Sequence):
        raise TypeError("labels must be a sequence of strings")
    if not isinstance(expansions, Sequence) or \
            not all(isinstance(e, Expansion) for e in expansions):
        raise TypeError("expansions must be a sequence of Expansion")
    if len(labels) != len(expansions):
        raise ValueError(f"labels and expansions must have the same length, got {len(labels)} "
                         f"and {len(expansions)}")
    names = ("first_order", "diagonal", "cross", "remainder", "actual")
    heads = ("g.du", "diagonal", "cross", "remainder", "actual dE")
    width = max([len(str(label)) for label in labels] + [8])
    lines = [f"{'':<{width}}" + "".join(f"{h:>12}" for h in heads)]
    for label, e in zip(labels, expansions):
        values = e.as_dict()
        lines.append(f"{str(label):<{width}}" + "".join(f"{values[n]:>12.3e}" for n in names))
    return "\n".join(lines)


# --- internals -------------------------------------------------------------------------------

def _tensor_roles(layout: tuple[bool, ...]) -> tuple[np.ndarray, np.ndarray]:
    """For each weight tensor: the index of its Dense layer, and whether it is a bias."""
    layer, is_bias = [], []
    for ell, has_bias in enumerate(layout):
        layer.append(ell)
        is_bias.append(False)
        if has_bias:
            layer.append(ell)
            is_bias.append(True)
    return np.array(layer), np.array(is_bias)


def _layers64(weights: list[np.ndarray], layout: tuple[bool, ...]) -> tuple[tuple, tuple]:
    """Per layer: the kernel and the bias (``None`` if it has none) as float64 constants."""
    kernels, biases = network.kernels_and_biases(
        [tf.constant(w, tf.float64) for w in weights], layout)
    return tuple(kernels), tuple(biases)


def _check_index(index: object, n_total: int) -> np.ndarray:
    """Require a non-empty 1-D integer array of flat parameter positions in ``[0, n_total)``."""
    index = np.asarray(index)
    if index.ndim != 1 or index.size == 0 or not np.issubdtype(index.dtype, np.integer) \
            or index.dtype == bool:
        raise ValueError("index must be a non-empty 1-D array of integer positions")
    if index.min() < 0 or index.max() >= n_total:
        raise ValueError(f"index must lie in [0, {n_total}), got values from {index.min()} "
                         f"to {index.max()}")
    return index


def _trained_weights(trained: object) -> list[np.ndarray]:
    """The weights of a ``training.TrainedModel``'s MLP, ``trainable_weights`` order."""
    if not isinstance(trained, training.TrainedModel):
        raise TypeError(f"trained must be a training.TrainedModel, got {type(trained).__name__}")
    return network.dense_chain(trained.model).weights()


def _network_key(trained: training.TrainedModel, weights: list[np.ndarray]) -> dict[str, object]:
    """A trained network's part of a cache key: its configuration and a digest of its weights."""
    return {"network": trained.config.to_dict(), "weights": cache.checksum(weights)}


def _is_weight_list(arrays: object) -> bool:
    return isinstance(arrays, Sequence) and not isinstance(arrays, (str, bytes))


def _along(chain: network.DenseChain, weights: list[np.ndarray], x: np.ndarray, y: np.ndarray,
           deltas: list[list[np.ndarray]], batch_size: int) -> list[tuple[float, float, float]]:
    """Per perturbation: means of dl/dt and d2l/dt2 at t = 0 and of l(u + du) - l(u)."""
    w64 = tuple(tf.constant(w, tf.float64) for w in weights)
    d64 = [tuple(tf.constant(d, tf.float64) for d in delta) for delta in deltas]
    kernels, biases = network.kernels_and_biases(w64, chain.layout)
    sums = np.zeros((len(deltas), 3))
    for start in range(0, len(x), batch_size):
        xb = tf.constant(x[start:start + batch_size], tf.float64)
        yb = tf.constant(y[start:start + batch_size])
        # The first layer's pre-activation: the logits of that layer alone.
        z1 = network.forward_trace(xb, kernels[:1], biases[:1])[2]
        for j, delta in enumerate(d64):
            sums[j] += np.array([float(v) for v in _jet(xb, yb, z1, w64, delta, chain.layout)])
    return [tuple(float(v) for v in row / len(x)) for row in sums]


def _with_ones(a: tf.Tensor) -> tf.Tensor:
    return tf.concat([a, tf.ones_like(a[:, :1])], axis=1)


def _cross_entropy(logits: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
    """Per-sample cross-entropy of integer labels, in the logits' precision."""
    return tf.reduce_logsumexp(logits, axis=1) - tf.gather(logits, y, axis=1, batch_dims=1)


@tf.function(reduce_retracing=True)
def _inputs_and_pre_activations(x, kernels, biases):
    """Each layer's input and its pre-activation (the last are the logits), in float64."""
    inputs, _, logits = network.forward_trace(tf.cast(x, tf.float64), kernels, biases)
    # A hidden layer's pre-activation is the logits of that layer alone, applied to its input.
    pre = [network.forward_trace(a, [k], [b])[2]
           for a, k, b in zip(inputs[:-1], kernels[:-1], biases[:-1])]
    return inputs, pre + [logits]


@tf.function(reduce_retracing=True)
def _single_deletion_sums(inputs, pre, y, kernels, biases, rows, cols, values):
    """Per layer: the sum over the batch of the loss change of each single deletion in it.

    ``rows``, ``cols`` and ``values`` hold one (possibly empty) vector per
    layer; one graph covers all layers, so a network is traced once per
    batch shape.
    """
    base = _cross_entropy(pre[-1], y)
    out = []
    for ell in range(len(kernels)):
        n_out = tf.shape(pre[ell])[1]
        augmented_input = _with_ones(inputs[ell])  # a bias is the weight of a constant 1 input

        def one(args, ell=ell, n_out=n_out, augmented_input=augmented_input):
            row, col, value = args
            source = tf.gather(augmented_input, row, axis=1)
            # Only samples whose input to this weight is non-zero feel its deletion.
            touched = tf.where(source != 0)[:, 0]
            shift = -tf.gather(source, touched) * value
            z = tf.gather(pre[ell], touched) \
                + shift[:, None] * tf.one_hot(col, n_out, dtype=tf.float64)[None, :]
            logits = z if ell == len(kernels) - 1 else network.forward_trace(
                tf.nn.relu(z), kernels[ell + 1:], biases[ell + 1:])[2]
            return tf.reduce_sum(_cross_entropy(logits, tf.gather(y, touched))
                                 - tf.gather(base, touched))

        out.append(tf.map_fn(one, (rows[ell], cols[ell], values[ell]),
                             fn_output_signature=tf.float64))
    return out


@tf.function(reduce_retracing=True)
def _jet(x, y, z1, weights, deltas, layout):
    """Batch sums of dl/dt, d2l/dt2 at t = 0 and of l(u + du) - l(u) along u + t du.

    ``z1`` is the first layer's unperturbed pre-activation; the input does
    not move with t, so that layer has ``z' = x dW + db``, ``z'' = 0`` and its
    perturbed pre-activation is exactly ``z + z'``.
    """
    # Not a plain forward pass: it carries z', z'' and the perturbed z through each layer.
    n_layers = len(layout)
    i = 0
    a = a_dot = a_ddot = a_new = None
    for ell, has_bias in enumerate(layout):
        w, dw = weights[i], deltas[i]
        i += 1
        if ell == 0:
            z = z1
            z_dot = tf.matmul(x, dw)
            z_ddot = tf.zeros_like(z)
            if has_bias:
                z_dot += deltas[i]
                i += 1
            z_new = z + z_dot
        else:
            z = tf.matmul(a, w)
            z_dot = tf.matmul(a_dot, w) + tf.matmul(a, dw)
            z_ddot = tf.matmul(a_ddot, w) + 2.0 * tf.matmul(a_dot, dw)
            z_new = tf.matmul(a_new, w + dw)
            if has_bias:
                b, db = weights[i], deltas[i]
                i += 1
                z += b
                z_dot += db
                z_new += b + db
        if ell < n_layers - 1:
            mask = tf.cast(z > 0, tf.float64)
            a, a_dot, a_ddot = z * mask, z_dot * mask, z_ddot * mask
            a_new = tf.nn.relu(z_new)
        else:
            a, a_dot, a_ddot, a_new = z, z_dot, z_ddot, z_new
    p = tf.nn.softmax(a)
    r = p - tf.one_hot(y, tf.shape(a)[1], dtype=tf.float64)
    first = tf.reduce_sum(r * a_dot)
    second = tf.reduce_sum(r * a_ddot) + tf.reduce_sum(p * a_dot ** 2) \
        - tf.reduce_sum(tf.reduce_sum(p * a_dot, axis=1) ** 2)
    actual = tf.reduce_sum(_cross_entropy(a_new, y) - _cross_entropy(a, y))
    return first, second, actual
