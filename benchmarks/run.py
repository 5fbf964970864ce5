"""Benchmarks of the book's claims about cost, each against the fastest idiomatic baseline.

Usage:
    python benchmarks/run.py [--quick] [--write book/benchmarks_table.md]

Each comparison is built as data first (``Workload``: the function whose call is
timed, the prepared inputs it reads, its batch size and how much work it does),
so that ``tests/test_benchmarks.py`` can check that both sides do the same work
without timing anything. Inputs are validated and converted to tensors once,
before any timing; the first call of every function (tracing) is not timed;
then the functions of a comparison are called in turn, ``repeats`` times, and
each keeps its best time. Sections (appendix "Benchmarks"):

1. Second derivatives of the post's network, against a compiled ``tf.function``
   computing the gradient of the Keras model's mean loss, same batches.
2. A pruning sweep over many sparsity levels, against sorting once and
   evaluating each level with a compiled ``tf.function``.
3. Training steps of ``helpers.training``, against Keras ``model.fit`` running
   the same number of steps on the same tensors.

``--quick`` times the same rows at smaller sizes (``SIZES``).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# helpers first: importing it loads TensorFlow with its C++ start-up log silenced.
from helpers import data, hessian, models, network, pruning, saliency, seeding, training  # noqa: E402, I001

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

#: Batches of (inputs, labels) tensors, made once before timing.
Batches = tuple[tuple[tf.Tensor, tf.Tensor], ...]


@dataclass(frozen=True)
class Sizes:
    """How big each comparison is; ``--quick`` and the full run differ only here."""

    images: int          # training images for second derivatives
    batch_size: int      # their batch size
    naive_hvps: int      # Hessian-vector products timed for the naive row
    levels: int          # sparsity levels of the sweep (on the 10,000 test images)
    train_images: int    # training images for section 3 (a multiple of 64: full batches only)
    train_epochs: int    # epochs of section 3
    repeats: int         # best of this many, sections 1 and 2
    train_repeats: int   # best of this many, section 3


SIZES = {
    "quick": Sizes(images=10_000, batch_size=2048, naive_hvps=3, levels=25, train_images=54_976,
                   train_epochs=2, repeats=3, train_repeats=2),
    "full": Sizes(images=60_000, batch_size=2048, naive_hvps=3, levels=100, train_images=54_976,
                  train_epochs=10, repeats=5, train_repeats=3),
}
TRAIN_BATCH = 64


@dataclass(frozen=True)
class Workload:
    """One row of a comparison: ``run()`` is the timed region."""

    label: str
    run: Callable[[], object]
    inputs: object       # the prepared data ``run`` reads (the same object on both sides)
    batch_size: int
    work: int            # units of work per call: images, levels or steps
    scale: float = 1.0   # the row's time is the timed call's times this (extrapolated rows)


@dataclass(frozen=True)
class Comparison:
    """Workloads timed against each other; ratios are to the fastest baseline."""

    title: str
    timed: str           # what every timed region contains, for the table
    unit: str            # what ``Workload.work`` counts
    baselines: tuple[Workload, ...]
    methods: tuple[Workload, ...]
    repeats: int

    @property
    def workloads(self) -> tuple[Workload, ...]:
        return self.baselines + self.methods


def prepare_batches(model: keras.Model, x: np.ndarray, y: np.ndarray, batch_size: int) -> Batches:
    """Validate once and cut into tensor batches: what every timed region of section 1 reads."""
    chain = network.dense_chain(model)
    x, y = network.check_xy(x, y, chain.input_width, chain.n_classes)
    return tuple((tf.constant(x[i:i + batch_size]), tf.constant(y[i:i + batch_size]))
                 for i in range(0, len(x), batch_size))


def _n_images(batches: Batches) -> int:
    return sum(int(xb.shape[0]) for xb, _ in batches)


# --- 1. Second derivatives --------------------------------------------------------------------

def gradient_pass(model: keras.Model, batches: Batches) -> Callable[[], list[np.ndarray]]:
    """The baseline: mean-loss gradient of the Keras model, one compiled call per batch."""
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    weights = model.trainable_weights

    @tf.function
    def add_gradient(totals, xb, yb):
        with tf.GradientTape() as tape:
            loss = loss_fn(yb, model(xb, training=False))
        n = tf.cast(tf.shape(xb)[0], tf.float32)
        return [t + g * n for t, g in zip(totals, tape.gradient(loss, weights))]

    n_images = _n_images(batches)

    def run() -> list[np.ndarray]:
        totals = [tf.zeros_like(w) for w in weights]
        for xb, yb in batches:
            totals = add_gradient(totals, xb, yb)
        return [t.numpy() / n_images for t in totals]

    return run


_DIAGONAL_STEPS = {"exact": hessian._exact_batch, "lecun": hessian._lecun_batch,
                   "fisher": hessian._fisher_batch}
#: The row of section 1 that times what the post's code computed: ``hessian.hessian_row_sums``.
ROW_SUMS = "the post's row sums H·1 (hessian_row_sums)"


def diagonal_pass(model: keras.Model, batches: Batches, method: str) -> Callable[[], list[np.ndarray]]:
    """``hessian.hessian_diagonal`` from prepared batches: its compiled step per batch, no checks."""
    chain = network.dense_chain(model)
    n_images = _n_images(batches)
    kernels, biases = hessian._parameters(chain)
    step_and_add = hessian._step_and_add(_DIAGONAL_STEPS[method])

    def run() -> list[np.ndarray]:
        totals = [(tf.zeros_like(w), tf.zeros_like(b)) for w, b in zip(kernels, biases)]
        for xb, yb in batches:
            totals = step_and_add(totals, xb, yb, kernels, biases)
        return [t.numpy() / np.float32(n_images) for t in hessian._align(chain, totals)]

    return run


def row_sums_pass(model: keras.Model, batches: Batches) -> Callable[[], list[np.ndarray]]:
    """``hessian.hessian_row_sums`` (global scope) from prepared batches: H times a vector of ones."""
    ones = [tf.ones_like(v) for v in model.trainable_weights]
    n_images = _n_images(batches)
    return lambda: hvp_pass(model, batches, ones, n_images)


def hvp_pass(model: keras.Model, batches: Batches, vectors: list[tf.Tensor],
             n_images: int) -> list[np.ndarray]:
    """``hessian.hessian_vector_product`` (and ``hessian_row_sums``) from prepared batches."""
    totals = [np.zeros(v.shape, np.float64) for v in vectors]
    for xb, yb in batches:
        for i, part in enumerate(hessian._hvp_sum(model, xb, yb, vectors)):
            totals[i] += part.numpy()
    return [(t / n_images).astype(np.float32) for t in totals]


def second_derivatives(model: keras.Model, batches: Batches, sizes: Sizes) -> Comparison:
    n_images = _n_images(batches)
    batch = sizes.batch_size
    baseline = Workload("gradient pass (tf.function on the Keras model)", gradient_pass(model, batches),
                        batches, batch, n_images)
    methods = [Workload(method, diagonal_pass(model, batches, method), batches, batch, n_images)
               for method in hessian.METHODS]
    methods.append(Workload(ROW_SUMS, row_sums_pass(model, batches), batches, batch, n_images))
    # The naive way: one Hessian-vector product per parameter, timed on a few.
    n_params = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    units = []
    for k in range(sizes.naive_hvps):
        e = [np.zeros(w.shape, np.float32) for w in model.trainable_weights]
        e[0].flat[k] = 1.0
        units.append([tf.constant(a) for a in e])

    def naive() -> None:
        for v in units:
            hvp_pass(model, batches, v, n_images)

    methods.append(Workload(f"naive: one HVP per parameter ({n_params:,} HVPs, timed on "
                            f"{sizes.naive_hvps})", naive, batches, batch, n_images,
                            scale=n_params / sizes.naive_hvps))
    return Comparison(
        title=f"1. Second derivatives of the post's network over {n_images:,} training images, "
              f"batch {batch}",
        timed="one pass over tensor batches made before timing: per batch one compiled call "
              "(baseline: Keras forward pass, mean cross-entropy, gradient; methods: the "
              "`helpers.hessian` step, for the row sums its Hessian-vector product) added to "
              "running totals, then the totals to NumPy",
        unit="image", baselines=(baseline,), methods=tuple(methods), repeats=sizes.repeats)


# --- 2. Pruning sweep -------------------------------------------------------------------------

def sweep_vectorised(model: keras.Model, scores: list[np.ndarray], fractions: list[float],
                     test: tuple[tf.Tensor, tf.Tensor]) -> Callable[[], np.ndarray]:
    """``pruning.sweep`` (global scope) from checked scores and test tensors: sort once, one graph."""
    chain = network.dense_chain(model)

    def run() -> np.ndarray:
        ranks = pruning._ranks(scores, "global")
        ks = np.asarray(pruning._ks(scores, fractions, "global"), np.int32)
        acc = pruning._sweep_graph(tuple(tf.constant(w) for w in chain.weights()),
                                   tuple(tf.constant(r) for r in ranks), tf.constant(ks),
                                   *test, chain.structure)
        return acc.numpy().astype(np.float64)

    return run


def sweep_loop(model: keras.Model, scores: list[np.ndarray], fractions: list[float],
               test: tuple[tf.Tensor, tf.Tensor]) -> Callable[[], np.ndarray]:
    """The baseline: sort once, then per level mask the weights and evaluate a compiled accuracy."""
    @tf.function
    def accuracy(x, y):
        predicted = tf.argmax(model(x, training=False), axis=1, output_type=tf.int32)
        return tf.reduce_mean(tf.cast(tf.equal(predicted, y), tf.float32))

    def run() -> np.ndarray:
        original = model.get_weights()
        flat = np.concatenate([s.ravel().astype(np.float64) for s in scores])
        order = np.argsort(flat, kind="stable")
        out = []
        for f in fractions:
            keep = np.ones(flat.size, np.float32)
            keep[order[:pruning.n_pruned(f, flat.size)]] = 0.0
            parts, start = [], 0
            for w in original:
                parts.append(w * keep[start:start + w.size].reshape(w.shape))
                start += w.size
            model.set_weights(parts)
            out.append(float(accuracy(*test)))
        model.set_weights(original)
        return np.asarray(out)

    return run


def sweep(model: keras.Model, scores: Sequence[np.ndarray], x_test: np.ndarray, y_test: np.ndarray,
          sizes: Sizes) -> Comparison:
    weights = network.dense_chain(model).weights()
    fractions = list(np.linspace(0.0, 0.99, sizes.levels))
    scores, fractions, _ = pruning.check_sweep(scores, weights, fractions, "global")
    x, y = network.check_xy(x_test, y_test, int(x_test.shape[1]), len(weights[-1]))
    test = (tf.constant(x), tf.constant(y))
    n = sizes.levels
    return Comparison(
        title=f"2. Pruning sweep: {n} levels of global magnitude pruning, each evaluated on "
              f"{len(x):,} test images",
        timed="ranking the scores once and the accuracy of the network pruned at every level, "
              "test images as tensors made before timing",
        unit="level",
        baselines=(Workload("sort once, evaluate each level (tf.function on the Keras model)",
                            sweep_loop(model, scores, fractions, test), test, len(x), n),),
        methods=(Workload("pruning.sweep (all levels in one graph)",
                          sweep_vectorised(model, scores, fractions, test), test, len(x), n),),
        repeats=sizes.repeats)


# --- 3. Training ------------------------------------------------------------------------------

def _compiled_twin(build: Callable[[], keras.Model], config: training.TrainConfig):
    seeding.set_seed(config.seed)
    model = build()
    optimizer = keras.optimizers.Adam(learning_rate=config.learning_rate, beta_1=config.beta_1,
                                      beta_2=config.beta_2, epsilon=config.epsilon)
    return model, optimizer


def train_ours(build: Callable[[], keras.Model], train: tuple[tf.Tensor, tf.Tensor],
               steps: int, config: training.TrainConfig) -> Callable[[], int]:
    """``helpers.training``'s loop from tensors: ``config.log_every`` steps per compiled call."""
    model, optimizer = _compiled_twin(build, config)
    optimizer.build(model.trainable_variables)
    run_chunk = training._make_chunk_runner(model, optimizer, *train, config.loss)
    n = int(train[0].shape[0])

    def run() -> int:
        before = int(optimizer.iterations)
        indices = training.batch_indices(n, config.batch_size, steps, "shuffle", config.seed)
        for start in range(0, steps, config.log_every):
            run_chunk(tf.constant(indices[start:start + config.log_every]))
        return int(optimizer.iterations) - before

    return run


def train_fit(build: Callable[[], keras.Model], train: tuple[tf.Tensor, tf.Tensor], epochs: int,
              config: training.TrainConfig, steps_per_execution: int = 1) -> Callable[[], int]:
    """Keras ``model.fit`` on the same tensors, loss, optimiser and batch size."""
    model, optimizer = _compiled_twin(build, config)
    model.compile(optimizer=optimizer, steps_per_execution=steps_per_execution,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=config.loss))

    def run() -> int:
        before = int(optimizer.iterations)
        model.fit(*train, batch_size=config.batch_size, epochs=epochs, shuffle=True, verbose=0)
        return int(optimizer.iterations) - before

    return run


def training_steps(build: Callable[[], keras.Model], x: np.ndarray, y: np.ndarray, epochs: int,
                   repeats: int) -> Comparison:
    config = training.TrainConfig(batch_size=TRAIN_BATCH)
    if len(x) % TRAIN_BATCH:
        raise ValueError(f"x must hold a multiple of {TRAIN_BATCH} images (full batches only), "
                         f"got {len(x)}")
    model = build()
    x, y = network.check_xy(x, y, int(model.input_shape[1]), int(model.output_shape[1]))
    train = (tf.constant(x), tf.constant(y))
    per_epoch = len(x) // TRAIN_BATCH
    steps = epochs * per_epoch
    return Comparison(
        title=f"3. Training the post's network: {steps:,} steps ({epochs} epochs of {len(x):,} "
              f"images), batch {TRAIN_BATCH}, Adam, summed loss",
        timed=f"{steps:,} optimiser steps with shuffling, from training tensors made before "
              "timing, on a model already built and traced",
        unit="step",
        baselines=(Workload("keras model.fit", train_fit(build, train, epochs, config), train,
                            TRAIN_BATCH, steps),
                   Workload(f"keras model.fit, steps_per_execution={per_epoch}",
                            train_fit(build, train, epochs, config, per_epoch), train, TRAIN_BATCH,
                            steps)),
        methods=(Workload(f"helpers.training ({config.log_every:,} steps per compiled call)",
                          train_ours(build, train, steps, config), train, TRAIN_BATCH, steps),),
        repeats=repeats)


# --- timing and tables ------------------------------------------------------------------------

def interleaved(workloads: Sequence[Workload], repeats: int,
                loads: list[float] | None = None) -> list[float]:
    """Best time of each workload (times its ``scale``), calling them in turn ``repeats`` times.

    If ``loads`` is given, the one-minute load average is appended to it before every round
    and after the last, so that the table can say how busy the machine was.
    """
    for w in workloads:  # warm up: tracing and caches
        w.run()
    best = [math.inf] * len(workloads)
    for _ in range(repeats):
        if loads is not None:
            loads.append(os.getloadavg()[0])
        for i, w in enumerate(workloads):
            start = time.perf_counter()
            w.run()
            best[i] = min(best[i], time.perf_counter() - start)
    if loads is not None:
        loads.append(os.getloadavg()[0])
    return [t * w.scale for t, w in zip(best, workloads)]


PER_UNIT = {"image": ("µs per image", 1e6), "level": ("ms per level", 1e3), "step": ("ms per step", 1e3)}


def table(comparison: Comparison, times: Sequence[float], loads: Sequence[float] = ()) -> str:
    """The comparison as a Markdown table; ``loads`` (from ``interleaved``) adds the load average."""
    reference = min(times[:len(comparison.baselines)])
    per_name, factor = PER_UNIT[comparison.unit]
    load = (f"; one-minute load average {min(loads):.1f} to {max(loads):.1f} on "
            f"{os.cpu_count()} cores while timing" if loads else "")
    lines = [f"**{comparison.title}**", "",
             f"Timed: {comparison.timed}. Best of {comparison.repeats}, interleaved{load}.", "",
             f"| what | time (s) | {per_name} | × fastest baseline |", "|---|---:|---:|---:|"]
    for i, (w, t) in enumerate(zip(comparison.workloads, times)):
        label = f"baseline: {w.label}" if i < len(comparison.baselines) else w.label
        lines.append(f"| {label} | {t:.3f} | {t / w.work * factor:.3g} | {t / reference:.2f} |")
    return "\n".join(lines) + "\n"


def comparisons(sizes: Sizes) -> list[Callable[[], Comparison]]:
    """The three comparisons of a run, each built only when it is its turn."""
    (x_train, y_train), (x_test, y_test) = data.load_mnist()
    (x_post, y_post), _ = data.load_post_split()
    model = training.train_model(training.TrainConfig()).model  # the post's plain network, seed 0
    return [
        lambda: second_derivatives(model, prepare_batches(model, x_train[:sizes.images],
                                                          y_train[:sizes.images], sizes.batch_size),
                                   sizes),
        lambda: sweep(model, saliency.saliency(model, "magnitude"), x_test, y_test, sizes),
        lambda: training_steps(models.seed_mlp,
                               x_post[:sizes.train_images], y_post[:sizes.train_images],
                               sizes.train_epochs, sizes.train_repeats),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the same rows at smaller sizes")
    parser.add_argument("--write", type=Path, default=None, help="also write the tables (Markdown) here")
    args = parser.parse_args()
    sizes = SIZES["quick" if args.quick else "full"]

    seeding.set_seed(0)
    parts = [f"Measured on {platform.machine()} with {os.cpu_count()} cores, Python "
             f"{platform.python_version()}, TensorFlow {tf.__version__}, Keras {keras.__version__} "
             f"({'--quick' if args.quick else 'full run'}).\n"]
    for build in comparisons(sizes):
        comparison = build()
        loads: list[float] = []
        times = interleaved(comparison.workloads, comparison.repeats, loads)
        parts.append(table(comparison, times, loads))
        print(parts[-1], flush=True)
    if args.write:
        args.write.write_text("\n".join(parts))
        print(f"wrote {args.write}")


if __name__ == "__main__":
    sys.exit(main())
