"""Optimal Brain Surgeon (chapter "Optimal Brain Surgeon").

Hassibi and Stork (1993) delete parameter ``q`` by solving, on the quadratic
model ``dE = 1/2 du^T H du``, the problem "minimise dE subject to
``u_q + du_q = 0``". The answer is the saliency ``L_q = u_q^2 / (2 [H^-1]_qq)``
and the compensating change ``du = -(u_q / [H^-1]_qq) H^-1 e_q`` of all the
other parameters. After the deletion the inverse Hessian *of the remaining
parameters* is ``H^-1 - H^-1 e_q e_q^T H^-1 / [H^-1]_qq`` (a Schur complement,
a rank-one downdate), whose row and column ``q`` are zero.

``prune_path`` runs that greedy recipe on one quadratic (full OBS) or on many
independent rows that start from the same inverse (layer-wise OBS, where each
output unit's incoming weights form one row). With ``block_size=1`` it is the
exact sequential procedure; with larger blocks it removes the ``block_size``
lowest saliencies at once and applies the exact joint update for that block,
``du = -H^-1[:, Q] ([H^-1]_QQ)^-1 u_Q`` (only the *choice* within a block
ignores the interactions between its members).

``gauss_newton_matrix`` is the positive semi-definite outer-product part
``J^T A J`` of the Hessian; ``layer_second_moments`` and ``layerwise_obs``
give the layer-wise OBS of Dong, Chen and Pan (2017) and of Optimal Brain
Compression (Frantar and Alistarh, 2022) for an MLP: each layer's curvature is
``X^T X / N + lambda I`` over its inputs ``X`` (with a column of ones for the
bias), the output curvature replaced by the identity.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import keras
import numpy as np

from helpers import cache, checks, data, network, pruning, training


def obs_saliencies(u: np.ndarray, h_inv: np.ndarray) -> np.ndarray:
    """``L_q = u_q^2 / (2 [H^-1]_qq)`` for every ``q``: the least loss increase of deleting ``u_q``."""
    u, h_inv = _check_vector_and_inverse(u, h_inv)
    return u ** 2 / (2.0 * np.diag(h_inv))


def obs_update(u: np.ndarray, h_inv: np.ndarray, q: int) -> np.ndarray:
    """The compensating change ``du = -(u_q / [H^-1]_qq) H^-1 e_q`` that deletes ``u_q``.

    ``u + du`` has a zero at ``q`` (up to rounding, which the caller may clear).
    """
    u, h_inv = _check_vector_and_inverse(u, h_inv)
    q = _check_index(q, len(u))
    return -(u[q] / h_inv[q, q]) * h_inv[:, q]


def remove_from_inverse(h_inv: np.ndarray, q: int) -> np.ndarray:
    """The inverse Hessian of the parameters left after deleting ``q``, padded with zeros.

    ``H^-1 - H^-1 e_q e_q^T H^-1 / [H^-1]_qq``: on the remaining indices it
    equals the inverse of ``H`` with row and column ``q`` removed.
    """
    h_inv = _check_square(h_inv, "h_inv")
    q = _check_index(q, len(h_inv))
    out = h_inv - np.outer(h_inv[:, q], h_inv[q, :]) / h_inv[q, q]
    out[q, :] = 0.0
    out[:, q] = 0.0
    return out


@dataclass
class ObsPath:
    """Snapshots of a greedy OBS run, one per requested count.

    ``weights[i]`` and ``masks[i]`` (shaped like the rows given to
    ``prune_path``) after ``counts[i]`` deletions; ``predicted[i]`` is the
    increase of the quadratic model ``1/2 du^T H du`` accumulated so far.
    ``order`` lists the flat indices in the order they were deleted.
    """

    counts: np.ndarray
    weights: np.ndarray
    masks: np.ndarray
    predicted: np.ndarray
    order: np.ndarray


def prune_path(u: np.ndarray, h_inv: np.ndarray, counts: Sequence[int],
               block_size: int = 1) -> ObsPath:
    """Greedy OBS: delete the lowest-saliency parameter, compensate, downdate, repeat.

    ``u`` is one vector (full OBS) or a matrix whose rows are independent
    problems that all start from the same ``h_inv`` (layer-wise OBS: one row
    per output unit); the lowest saliency over all rows goes first. ``h_inv``
    must be the inverse of a symmetric positive definite matrix. ``counts``
    are increasing numbers of deletions at which to take a snapshot.
    """
    if not isinstance(u, np.ndarray):
        raise TypeError(f"u must be a numpy array, got {type(u).__name__}")
    if u.ndim not in (1, 2):
        raise ValueError(f"u must be a vector or a matrix of rows, got shape {u.shape}")
    rows = np.atleast_2d(u)
    checks.numbers(rows, "u")
    h_inv = _check_square(h_inv, "h_inv")
    if h_inv.shape[0] != rows.shape[1]:
        raise ValueError(f"h_inv must be {rows.shape[1]}x{rows.shape[1]} to match u, got {h_inv.shape}")
    if np.any(np.diag(h_inv) <= 0):
        raise ValueError("h_inv must be positive definite (its diagonal is not positive)")
    counts = _check_counts(counts, rows.size)
    block_size = checks.integer(block_size, "block_size")

    n_rows, d = rows.shape
    weights = rows.astype(np.float64).copy()
    inverses = np.repeat(h_inv[None].astype(np.float64), n_rows, axis=0)
    alive = np.ones((n_rows, d), bool)
    removed, increase = 0, 0.0
    snaps_w, snaps_m, snaps_p, order = [], [], [], []
    arange = np.arange(d)
    for target in counts:
        while removed < target:
            k = min(block_size, target - removed)
            diag = inverses[:, arange, arange]
            with np.errstate(divide="ignore", invalid="ignore"):
                saliency = np.where(alive, weights ** 2 / (2.0 * diag), np.inf).ravel()
            chosen = _lowest(saliency, k)
            order.append(chosen)
            for r in np.unique(chosen // d):
                q = np.sort(chosen[chosen // d == r] % d)
                increase += _delete_block(weights[r], inverses[r], q)
                alive[r, q] = False
            removed += k
        snaps_w.append(weights.copy())
        snaps_m.append(alive.astype(np.float32))
        snaps_p.append(increase)
    shape = (len(counts),) + np.shape(u)
    return ObsPath(counts=np.asarray(counts, np.int64),
                   weights=np.asarray(snaps_w).reshape(shape),
                   masks=np.asarray(snaps_m).reshape(shape),
                   predicted=np.asarray(snaps_p),
                   order=np.concatenate(order) if order else np.zeros(0, np.int64))


def damped_inverse(matrix: np.ndarray, damping: float) -> np.ndarray:
    """``(M + damping I)^-1`` for a symmetric ``M``; raises if ``M + damping I`` is not positive definite."""
    matrix = _check_square(matrix, "matrix")
    damping = checks.real(damping, "damping", 0.0)
    sym = 0.5 * (matrix + matrix.T) + float(damping) * np.eye(len(matrix))
    try:
        chol = np.linalg.cholesky(sym)
    except np.linalg.LinAlgError as error:
        raise ValueError(f"matrix + damping * I is not positive definite (damping={damping!r}); "
                         "increase damping") from error
    inv_chol = np.linalg.solve(chol, np.eye(len(sym)))
    return inv_chol.T @ inv_chol


def gauss_newton_matrix(model: keras.Model, x: np.ndarray, y: np.ndarray,
                        batch_size: int = 500) -> np.ndarray:
    """``G = mean_i J_i^T A_i J_i`` with ``A_i = diag(p_i) - p_i p_i^T``, parameters in ``trainable_weights`` order.

    The outer-product (Gauss-Newton) part of the Hessian of the mean
    cross-entropy: positive semi-definite, and for a ReLU MLP its diagonal is
    the Hessian's. Built from ``A = B B^T`` with ``B[:, c] = sqrt(p_c)(e_c - p)``:
    each (sample, c) pair contributes one outer product. For small networks
    (its size is the square of the parameter count).
    """
    chain = network.dense_chain(model)
    x, y = network.check_xy(x, y, chain.input_width, chain.n_classes)
    batch_size = network.check_batch_size(batch_size)
    n_params = sum(w.size for w in chain.weights())
    if n_params > 5000:
        raise ValueError(f"model has {n_params} parameters; gauss_newton_matrix is for models of "
                         "at most 5000")
    kernels, biases = _layers64(chain)
    total = np.zeros((n_params, n_params))
    for start in range(0, len(x), batch_size):
        rows = _gauss_newton_rows(x[start:start + batch_size].astype(np.float64), kernels, biases)
        total += rows.T @ rows
    return total / len(x)


def layer_masks(scores: Sequence[np.ndarray], fraction: float,
                layout: Sequence[bool]) -> list[np.ndarray]:
    """Prune ``round(fraction * n_l)`` lowest scores in each Dense layer, kernel and bias pooled.

    ``layout`` says which layers have a bias (``network.DenseChain.layout``);
    ties go to the earlier index (kernel first, C order). Every method of the
    chapter prunes the same number of parameters in each layer this way.
    """
    scores = pruning.check_scores(scores)
    fraction = checks.fraction(fraction)
    groups = _layer_groups(layout, len(scores))
    masks = []
    for group in groups:
        flat = np.concatenate([scores[i].ravel().astype(np.float64) for i in group])
        keep = np.ones(flat.size, np.float32)
        keep[np.argsort(flat, kind="stable")[:pruning.n_pruned(fraction, flat.size)]] = 0.0
        start = 0
        for i in group:
            masks.append(keep[start:start + scores[i].size].reshape(scores[i].shape))
            start += scores[i].size
    return masks


def layer_inputs(model: keras.Model, x: np.ndarray) -> list[np.ndarray]:
    """The input of every Dense layer of the (unpruned) model, float64, with a ones column if it has a bias."""
    chain = network.dense_chain(model)
    x = network.check_x(x, chain.input_width)
    inputs = network.forward_trace(x.astype(np.float64), *_layers64(chain))[0]
    inputs = [a.numpy() for a in inputs]
    return [np.hstack([a, np.ones((len(a), 1))]) if has_bias else a
            for a, has_bias in zip(inputs, chain.layout)]


def layer_second_moments(model: keras.Model, x: np.ndarray) -> list[np.ndarray]:
    """``X^T X / N`` of each Dense layer's (bias-augmented) inputs: the layer-wise OBS curvature before damping."""
    return [a.T @ a / len(a) for a in layer_inputs(model, x)]


@dataclass
class LayerwiseObs:
    """Layer-wise OBS of a whole MLP at several sparsities.

    ``weights[i]`` and ``masks[i]`` are lists aligned with
    ``model.trainable_weights`` after pruning ``fractions[i]`` of each layer's
    parameters (kernel and bias pooled) with compensation.
    """

    fractions: np.ndarray
    weights: list[list[np.ndarray]]
    masks: list[list[np.ndarray]]


def layerwise_obs(model: keras.Model, x: np.ndarray, fractions: Sequence[float], *,
                  damping: float = 0.01, block_fraction: float = 0.005) -> LayerwiseObs:
    """Layer-wise OBS: every layer pruned to each fraction, each output unit's row compensated.

    Layer ``l``'s curvature is ``X^T X / N + lambda_l I`` with ``lambda_l =
    damping * mean(diag(X^T X / N))``, from the inputs the *unpruned* network
    feeds that layer on ``x``. Rows (output units) share it but keep their own
    inverse as weights leave them; the lowest saliency in the whole layer goes
    first, ``block_fraction`` of the layer's parameters per block.
    """
    chain = network.dense_chain(model)
    x = network.check_x(x, chain.input_width)
    fractions = tuple(checks.fractions(fractions, order="non-decreasing"))
    damping = checks.positive(damping, "damping")
    block_fraction = checks.positive(block_fraction, "block_fraction")
    if block_fraction > 1:
        raise ValueError(f"block_fraction must be in (0, 1], got {block_fraction!r}")
    weights = chain.weights()
    per_level_w = [[] for _ in fractions]
    per_level_m = [[] for _ in fractions]
    i = 0
    for has_bias, moment in zip(chain.layout, layer_second_moments(model, x)):
        kernel = weights[i]
        rows = np.vstack([kernel, weights[i + 1][None]]) if has_bias else kernel
        rows = rows.T  # one row per output unit, over its inputs (and the bias)
        lam = damping * float(np.mean(np.diag(moment)))
        counts = [pruning.n_pruned(f, rows.size) for f in fractions]
        block = max(1, int(round(block_fraction * rows.size)))
        path = prune_path(rows, damped_inverse(moment, lam), counts, block_size=block)
        for level in range(len(fractions)):
            for store, arr in ((per_level_w, path.weights[level]), (per_level_m, path.masks[level])):
                cols = arr.T
                if has_bias:
                    store[level] += [cols[:-1].astype(np.float32), cols[-1].astype(np.float32)]
                else:
                    store[level].append(cols.astype(np.float32))
        i += 2 if has_bias else 1
    return LayerwiseObs(np.asarray(fractions), per_level_w, per_level_m)


def cached_layerwise_obs(trained: training.TrainedModel, fractions: Sequence[float], *,
                         n_score: int = 10_000, damping: float = 0.01,
                         block_fraction: float = 0.005) -> LayerwiseObs:
    """``layerwise_obs`` of one of the book's trained networks on the first ``n_score``
    images of the post's 55,000-image split, cached by all of its settings."""
    if not isinstance(trained, training.TrainedModel):
        raise TypeError(f"trained must be a training.TrainedModel, got {type(trained).__name__}")
    fractions = tuple(checks.fractions(fractions, order="non-decreasing"))
    n_score = checks.integer(n_score, "n_score")
    config = {"trained": trained.config.to_dict(), "fractions": list(fractions),
              "n_score": n_score, "damping": float(damping), "block_fraction": float(block_fraction)}

    def build() -> dict[str, np.ndarray]:
        (x, _), _ = data.load_post_split()
        result = layerwise_obs(trained.model, x[:n_score], fractions, damping=damping,
                               block_fraction=block_fraction)
        arrays = {}
        for level in range(len(fractions)):
            for j, (w, m) in enumerate(zip(result.weights[level], result.masks[level])):
                arrays[f"w{level}_{j}"] = w
                arrays[f"m{level}_{j}"] = m
        return arrays

    arrays = cache.fetch("obs_layerwise", config, build,
                         version=cache.code_version(__name__))
    n = len(trained.model.trainable_weights)
    return LayerwiseObs(np.asarray(fractions),
                        [[arrays[f"w{lv}_{j}"] for j in range(n)] for lv in range(len(fractions))],
                        [[arrays[f"m{lv}_{j}"] for j in range(n)] for lv in range(len(fractions))])


def unflatten(vector: np.ndarray, like: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Split a flat parameter vector into arrays shaped like ``like`` (float32)."""
    vector = np.asarray(vector)
    sizes = [np.size(a) for a in like]
    if vector.ndim != 1 or vector.size != sum(sizes):
        raise ValueError(f"vector must be flat with {sum(sizes)} entries, got shape {vector.shape}")
    out, start = [], 0
    for a, n in zip(like, sizes):
        out.append(vector[start:start + n].reshape(np.shape(a)).astype(np.float32))
        start += n
    return out


# --- internals -------------------------------------------------------------------------------

def _delete_block(w: np.ndarray, h_inv: np.ndarray, q: np.ndarray) -> float:
    """Delete indices ``q`` of one row in place (weights and inverse); return the loss increase."""
    block = h_inv[np.ix_(q, q)]
    coef = np.linalg.solve(block, w[q])
    increase = 0.5 * float(w[q] @ coef)
    columns = h_inv[:, q]
    # einsum, not BLAS: no thread pool (fast on a busy machine) and the same sums on any CPU.
    w -= np.einsum("ik,k->i", columns, coef)
    w[q] = 0.0
    h_inv -= np.einsum("ik,kj->ij", columns, np.linalg.solve(block, columns.T))
    h_inv[q, :] = 0.0
    h_inv[:, q] = 0.0
    return increase


def _lowest(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` smallest values, ties by index, in increasing order of value."""
    if k >= values.size:
        return np.argsort(values, kind="stable")
    part = np.argpartition(values, k - 1)[:k]
    threshold = values[part].max()
    candidates = np.flatnonzero(values <= threshold)  # all ties at the threshold, by index
    ordered = candidates[np.argsort(values[candidates], kind="stable")]
    return ordered[:k]


def _layers64(chain: network.DenseChain) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
    """The chain's kernels and biases (``None`` where a layer has none), in float64."""
    return network.kernels_and_biases([w.astype(np.float64) for w in chain.weights()],
                                      chain.layout)


def _gauss_newton_rows(x: np.ndarray, kernels: list[np.ndarray],
                       biases: list[np.ndarray | None]) -> np.ndarray:
    """Rows ``B[:, c]^T J_i`` for every sample ``i`` and class ``c``: shape (n * classes, params)."""
    inputs, masks, logits = network.forward_trace(x, kernels, biases)
    inputs, masks = [a.numpy() for a in inputs], [m.numpy() for m in masks]
    logits = logits.numpy()
    logits = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    n, classes = p.shape
    # delta[i, c, k] = sqrt(p_c) (1[k == c] - p_k): the backpropagated column c of B.
    delta = np.sqrt(p)[:, :, None] * (np.eye(classes)[None] - p[:, None, :])
    deltas = [delta]
    for w, mask in zip(reversed(kernels[1:]), reversed(masks)):
        delta = (delta @ w.T) * mask[:, None, :]
        deltas.append(delta)
    deltas = deltas[::-1]
    parts = []
    for a_in, d, bias in zip(inputs, deltas, biases):
        parts.append(np.einsum("ij,ick->icjk", a_in, d).reshape(n * classes, -1))
        if bias is not None:
            parts.append(d.reshape(n * classes, -1))
    return np.hstack(parts)


def _layer_groups(layout: Sequence[bool], n_tensors: int) -> list[list[int]]:
    if isinstance(layout, (str, bytes)) or not isinstance(layout, Sequence) \
            or not all(isinstance(b, (bool, np.bool_)) for b in layout):
        raise TypeError(f"layout must be a sequence of bools (which layers have a bias), got {layout!r}")
    groups, i = [], 0
    for has_bias in layout:
        groups.append([i, i + 1] if has_bias else [i])
        i += 2 if has_bias else 1
    if i != n_tensors:
        raise ValueError(f"layout describes {i} tensors but scores has {n_tensors}")
    return groups


def _check_square(matrix: object, name: str) -> np.ndarray:
    if not isinstance(matrix, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(matrix).__name__}")
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty square matrix, got shape {matrix.shape}")
    checks.numbers(matrix, name)
    return matrix.astype(np.float64)


def _check_vector_and_inverse(u: object, h_inv: object) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(u, np.ndarray):
        raise TypeError(f"u must be a numpy array, got {type(u).__name__}")
    if u.ndim != 1:
        raise ValueError(f"u must be a vector, got shape {u.shape}")
    checks.numbers(u, "u")
    h_inv = _check_square(h_inv, "h_inv")
    if h_inv.shape[0] != u.size:
        raise ValueError(f"h_inv must be {u.size}x{u.size} to match u, got {h_inv.shape}")
    if np.any(np.diag(h_inv) <= 0):
        raise ValueError("h_inv must be positive definite (its diagonal is not positive)")
    return u.astype(np.float64), h_inv


def _check_index(q: object, n: int) -> int:
    return checks.integer(q, "q", 0, n - 1)


def _check_counts(counts: object, n: int) -> list[int]:
    if isinstance(counts, (str, bytes)) or not isinstance(counts, (Sequence, np.ndarray)) \
            or len(counts) == 0:
        raise TypeError(f"counts must be a non-empty sequence of ints, got {counts!r}")
    out = [checks.integer(c, f"counts[{i}]", 0, n) for i, c in enumerate(counts)]
    if any(b < a for a, b in zip(out, out[1:])):
        raise ValueError(f"counts must be non-decreasing, got {out}")
    return out
