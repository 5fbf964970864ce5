"""Tests of the replay's open questions (appendix "Forensics of the replay").

Chapter code for one appendix, not library code: nothing in ``helpers`` imports it.
Three tests of what chapter "What the post's code computed" leaves open, each cached on disk:

- ``offset_scan``: the layer-wise OBD run as a reader that had already served
  ``offset`` batches of 64 would have scored it (file order, shifted), for every
  offset whose first four batches lie in the first epoch, with both CPU back ends;
  with it, the first four steps of the shuffled replays behind ``as_ran.replay_band``.
- ``dropout_cut``: the dropout run's file-order loop, step by step, with the row
  sums computed twice, in float32 as the replay does and in float64, to count the
  scores that are zero up to float64 rounding where the ranking cuts.
- ``scaled_2016_replays``: the five runs replayed on pixels scaled as TensorFlow
  0.x's reader scaled them (a float32 multiply by the rounded reciprocal of 255).

Every computation runs in a fresh process with TensorFlow's oneDNN kernels on or off
(``as_ran.in_back_ends``), so a result does not depend on the caller's kernels, and is
cached per back end, keyed by its ``as_ran.kernel_setting``.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from helpers import checks, data, metrics, network
from helpers.post import as_ran, checkpoints, published

#: Batches of 64 in the 55,000-image split: 859 whole ones (the last 24 images make no batch).
N_BATCHES = 55_000 // 64
#: The layer-wise OBD levels the offset scan replays: 1 to 4 percent.
SCAN_FRACTIONS = (0.01, 0.02, 0.03, 0.04)
#: Offsets whose four batches all lie in the first (unshuffled) epoch: 0 to 855.
SCAN_OFFSETS = tuple(range(N_BATCHES - len(SCAN_FRACTIONS) + 1))
#: Shuffled replays of the layer-wise band whose first four steps are recomputed.
N_SHUFFLED = 50
#: The dropout run's levels where the kernel settings disagree.
CUT_FRACTIONS = tuple(k / 100 for k in range(9, 20))
#: A nonzero float64 row sum this small, relative to the largest, lies within float32's
#: rounding of the sums that make it up (float32 keeps about 6e-8 of a number).
TINY_SHARE = 1e-6


# --- scaling pixels as the 2016 reader did ---------------------------------------------------

def pixels_2016(images: np.ndarray) -> np.ndarray:
    """uint8 images scaled as TensorFlow 0.x's reader did: float32 times float32(1 / 255)."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise TypeError(f"images must be uint8, got {images.dtype}")
    return images.astype(np.float32) * np.float32(1.0 / 255.0)


def uint8_from_scaled(x: np.ndarray) -> np.ndarray:
    """The uint8 pixels behind the book's float32 images (``uint8 / 255``), checked by a round trip."""
    x = np.asarray(x)
    if x.dtype != np.float32:
        raise TypeError(f"x must be float32, got {x.dtype}")
    u = np.rint(x.astype(np.float64) * 255)
    if u.min() < 0 or u.max() > 255:
        raise ValueError("x holds values outside [0, 1]")
    u = u.astype(np.uint8)
    if not np.array_equal(u.astype(np.float32) / 255, x):
        raise ValueError("x is not uint8 / 255 in float32")
    return u


def levels_that_differ() -> np.ndarray:
    """The grey levels 0..255 whose 2016 scaling differs from ``level / 255`` in float32."""
    levels = np.arange(256, dtype=np.uint8)
    return np.flatnonzero(pixels_2016(levels) != levels.astype(np.float32) / 255)


def _data_2016():
    """The post's training split and the test set, rescaled the 2016 way."""
    (x_pool, y_pool), _ = data.load_post_split()
    _, (x_test, y_test) = data.load_mnist()
    return (pixels_2016(uint8_from_scaled(x_pool)), y_pool), (pixels_2016(uint8_from_scaled(x_test)), y_test)


def scaled_2016_here() -> dict[str, np.ndarray]:
    """Every run's file-order replay on 2016-scaled pixels, in this process's kernels."""
    images = _data_2016()
    return {run: as_ran.replay_post_run(run, images=images)["accuracy"] for run in published.RUNS}


def scaled_2016_replays() -> dict[bool, dict[str, np.ndarray]]:
    """``out[onednn][run]``: the replay on 2016-scaled pixels with each back end, cached."""
    return _both_back_ends("scaled_2016_here")


# --- layer-wise OBD with an offset ---------------------------------------------------------

def offset_scan_here() -> dict[str, np.ndarray]:
    """The uncached work of ``offset_scan`` for this process's kernels."""
    run = "obd_layerwise_prune"
    model = checkpoints.load_post_network(run)
    (x_pool, y_pool), _ = data.load_post_split()
    _, (x_test, y_test) = data.load_mnist()
    n = len(SCAN_FRACTIONS) * 64
    memo = {}  # many offsets reach the same pruned network in their first steps
    acc, tied = [], []
    for offset in SCAN_OFFSETS:
        sl = slice(64 * offset, 64 * offset + n)
        a, t = as_ran.obd_as_ran(model, SCAN_FRACTIONS, "layer", x_pool[sl], y_pool[sl], x_test, y_test,
                                 batch_order="file", accuracy_memo=memo)
        acc.append(a), tied.append(t)
    out = {"accuracy": np.array(acc), "tied": np.array(tied)}
    published_1_4 = published.curve(run)[1][1:1 + len(SCAN_FRACTIONS)]
    hits = [o for o, a in zip(SCAN_OFFSETS, acc) if np.array_equal(np.round(a, 4), published_1_4)]
    full = []  # every offset that gives 1-4 percent exactly, continued to 19 percent
    for offset in hits:
        sl = slice(64 * offset, 64 * (offset + len(as_ran.FIGURE1_FRACTIONS)))
        if sl.stop > len(x_pool):
            continue
        full.append((offset, as_ran.obd_as_ran(model, as_ran.FIGURE1_FRACTIONS, "layer", x_pool[sl], y_pool[sl],
                                               x_test, y_test, batch_order="file", accuracy_memo=memo)[0]))
    out |= {"hit_offset": np.array([o for o, _ in full], int),
            "hit_accuracy": np.array([a for _, a in full]).reshape(len(full), len(as_ran.FIGURE1_FRACTIONS))}
    shuffled_acc, shuffled_tied = [], []
    for s in range(N_SHUFFLED):  # as replay_band's replay s: generator seed 2 * s, consecutive slices
        batch = np.random.default_rng(2 * s).permutation(len(x_pool))[:n]
        a, t = as_ran.obd_as_ran(model, SCAN_FRACTIONS, "layer", x_pool[batch], y_pool[batch], x_test,
                                 y_test, batch_order="file", accuracy_memo=memo)
        shuffled_acc.append(a), shuffled_tied.append(t)
    out |= {"shuffled_accuracy": np.array(shuffled_acc), "shuffled_tied": np.array(shuffled_tied)}
    return out


def offset_scan() -> dict[str, np.ndarray]:
    """Layer-wise OBD at 1-4 percent for every offset in ``SCAN_OFFSETS``, both back ends, cached.

    ``"offset"``; ``"accuracy_onednn"``, ``"tied_onednn"`` (shape ``(offsets, 4)``:
    test accuracy, and whether the step ranked NaN scores), the same with
    ``_plain``; ``"hit_offset_onednn"``, ``"hit_accuracy_onednn"`` (and ``_plain``):
    the offsets that give the published 1-4 percent to the fourth decimal, with
    their replay continued to 19 percent; ``"shuffled_accuracy"``, ``"shuffled_tied"`` (shape ``(50, 4)``,
    oneDNN): the first four steps of the shuffled replays of ``as_ran.replay_band``.
    """
    out = {"offset": np.array(SCAN_OFFSETS)}
    both = _both_back_ends("offset_scan_here")
    for onednn, name in ((True, "onednn"), (False, "plain")):
        for field in ("accuracy", "tied", "hit_offset", "hit_accuracy"):
            out[f"{field}_{name}"] = both[onednn][field]
    out["shuffled_accuracy"] = both[True]["shuffled_accuracy"]
    out["shuffled_tied"] = both[True]["shuffled_tied"]
    return out


# --- the dropout run's cut, in float32 and float64 -------------------------------------------

def _row_sums_float64(weights, x, y, layout, n_classes):
    """Full-Hessian row sums of the summed loss in float64 (the dropout network never saturates)."""
    w64 = [tf.constant(w, tf.float64) for w in weights]
    xt = tf.constant(x, tf.float64)
    onehot = tf.one_hot(y, n_classes, dtype=tf.float64)
    with tf.GradientTape() as outer:
        outer.watch(w64)
        with tf.GradientTape() as inner:
            inner.watch(w64)
            loss = -tf.reduce_sum(onehot * tf.nn.log_softmax(network.logits(xt, w64, layout)))
        total = tf.add_n([tf.reduce_sum(g) for g in inner.gradient(loss, w64)])
    return [g.numpy() for g in outer.gradient(total, w64)]


def dropout_cut_here() -> dict[str, np.ndarray]:
    """The uncached work of ``dropout_cut`` for this process's kernels."""
    run = "obd_all_layers_dropout"
    model = checkpoints.load_post_network(run)
    chain = network.dense_chain(model)
    (x_pool, y_pool), _ = data.load_post_split()
    _, (x_test, y_test) = data.load_mnist()
    fractions = as_ran.FIGURE1_FRACTIONS
    original = chain.weights()
    current = [w.copy() for w in original]
    rows = {name: [] for name in ("fraction", "k", "negative64", "zero64", "zero_pruned", "zero_nonzero32",
                                  "tiny64", "tiny_neg32", "flipped", "accuracy", "choice", "carried")}
    try:
        for step, fraction in enumerate(fractions):
            xb, yb = x_pool[64 * step:64 * (step + 1)], y_pool[64 * step:64 * (step + 1)]
            model.set_weights(current)
            s32 = as_ran.tf0_row_sums(model, xb, yb)
            masks = as_ran.tf0_masks(s32, fraction)
            pruned = [w * m for w, m in zip(current, masks)]
            model.set_weights(pruned)
            accuracy = metrics.accuracy(model, x_test, y_test)
            s64 = np.concatenate([s.ravel() for s in _row_sums_float64(current, xb, yb, chain.layout,
                                                                       chain.n_classes)])
            f32 = np.concatenate([s.ravel() for s in s32]).astype(np.float64)
            gone = np.concatenate([m.ravel() for m in masks]) == 0
            zero = s64 == 0
            tiny = ~zero & (np.abs(s64) <= TINY_SHARE * np.abs(s64).max())
            for name, value in (("fraction", fraction), ("k", int(gone.sum())),
                                ("negative64", int((s64 < 0).sum())), ("zero64", int(zero.sum())),
                                ("zero_pruned", int((zero & gone).sum())),
                                ("zero_nonzero32", int((zero & (f32 != 0)).sum())),
                                ("tiny64", int(tiny.sum())), ("tiny_neg32", int((tiny & (f32 < 0)).sum())),
                                ("flipped", int((np.sign(f32) != np.sign(s64)).sum())),
                                ("accuracy", accuracy)):
                rows[name].append(value)
            again = as_ran.tf0_masks(as_ran.tf0_row_sums(model, xb, yb), fraction)
            current = [np.where(m == 0, w0, w) for w0, w, m in zip(original, pruned, again)]
            zeros = np.concatenate([(w == 0) & (w0 != 0) for w, w0 in zip(current, original)], axis=None)
            rows["choice"].append(int(np.flatnonzero(gone).sum()) % 1_000_003)  # a fingerprint of the choice
            rows["carried"].append(int(np.flatnonzero(zeros).sum()) % 1_000_003)  # and of the zeros kept
    finally:
        model.set_weights(original)
    return {name: np.array(values) for name, values in rows.items()}


def dropout_cut() -> dict[str, dict[str, np.ndarray]]:
    """Per step of the dropout run's first script run (1-19 percent, file order), each back end, cached.

    ``out["onednn"]`` and ``out["plain"]`` hold per step: ``"k"`` (parameters
    pruned), ``"negative64"`` (float64 row sums below zero beyond rounding),
    ``"zero64"`` (row sums exactly zero in float64), ``"zero_pruned"`` (how
    many of those the float32 ranking pruned), ``"zero_nonzero32"`` (how many
    of them are not zero in float32), ``"tiny64"`` (nonzero float64 row sums
    below ``TINY_SHARE`` of the largest), ``"tiny_neg32"`` (how many of those
    are negative in float32), ``"flipped"`` (row sums whose float32 sign
    differs from the float64 one), the step's test ``"accuracy"``, and
    fingerprints of the parameters it pruned (``"choice"``) and of the zeros
    the restore carried on (``"carried"``), which tell where two back ends
    part. Each back end follows its own chain of steps.
    """
    both = _both_back_ends("dropout_cut_here")
    return {"onednn": both[True], "plain": both[False]}


# --- child processes -------------------------------------------------------------------------

_FUNCTIONS = ("offset_scan_here", "dropout_cut_here", "scaled_2016_here")


def _both_back_ends(function: str) -> dict[bool, dict[str, np.ndarray]]:
    """``{onednn: function()}`` of this module with oneDNN on and off, cached per back end; the
    two are computed in processes of their own, side by side (``as_ran.in_back_ends``)."""
    function = checks.choice(function, "function", _FUNCTIONS)
    both = as_ran.in_back_ends(f"forensics_{function}", __name__, function, [((), True), ((), False)])
    return dict(zip((True, False), both))


def in_band(values: np.ndarray, band: np.ndarray, percentiles=(2.5, 97.5)) -> np.ndarray:
    """Whether each value lies inside the band's central range (``values`` shape ``(..., points)``)."""
    values = np.asarray(values, float)
    band = np.asarray(band, float)
    if band.ndim != 2 or band.shape[1] != values.shape[-1]:
        raise ValueError(f"band must have shape (replays, {values.shape[-1]}), got {band.shape}")
    lo, hi = np.percentile(band, percentiles, axis=0)
    return (lo - 5e-5 <= values) & (values <= hi + 5e-5)
