"""Benchmarks of the book's claims about cost, measured side by side in one process.

Usage:
    python benchmarks/run.py [--quick] [--write book/benchmarks_table.md]

Every comparison times both sides in the same run, interleaved, and keeps the
best of ``--repeats`` runs, so the printed ratios hold on a busy machine better
than absolute times do. Sections:

1. Second derivatives of the post's network over the 60,000 training images,
   against one gradient pass at the same batch size (target: exact <= 3x).
2. A 100-level pruning sweep on the 10,000 test images (target: < 5 s), against
   a naive loop (sort and ``model.evaluate`` per level).
3. The post's 50,001-step training loop against Keras ``model.fit`` on the same
   configuration (timed on ``--train-steps`` steps; target: ratio <= 1).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from helpers import data, experiments, hessian, models, pruning, saliency, seeding, training  # noqa: E402


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def interleaved(fns: dict, repeats: int) -> dict[str, float]:
    """Best time of each function, calling them in turn ``repeats`` times."""
    for fn in fns.values():  # warm up (tracing, caches)
        fn()
    best = {name: float("inf") for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def gradient_pass(model: keras.Model, batch_size: int):
    """One pass of mean-loss gradients over the data, in the same in-graph loop."""
    chain = hessian.network.dense_chain(model)
    kernels, biases = hessian._parameters(chain)

    def step(x, y, kernels, biases):  # defined once per model: one compiled loop each
        with tf.GradientTape() as tape:
            tape.watch(kernels + biases)
            logits = hessian._forward(x, kernels, biases)[2]
            loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))
        grads = tape.gradient(loss, kernels + biases)
        return list(zip(grads[:len(kernels)], grads[len(kernels):]))

    def run(x, y):
        xs, ys = hessian.network.check_xy(x, y, chain.input_width, chain.n_classes)
        totals = hessian._accumulate(step, xs, ys, batch_size, list(kernels), list(biases))
        return [t.numpy() for pair in totals for t in pair]

    return run


def second_derivatives(model, x, y, batch_size: int, repeats: int) -> list[tuple[str, float, float]]:
    grad = gradient_pass(model, batch_size)
    fns = {"gradient pass": lambda: grad(x, y)}
    for method in ("exact", "lecun", "fisher", "row_sum"):
        fns[method] = (lambda m: lambda: hessian.hessian_diagonal(model, x, y, m, batch_size))(method)
    best = interleaved(fns, repeats)
    # The naive way: one Hessian-vector product per parameter, timed on a sample.
    n_params = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    weights = model.get_weights()
    sample = 3

    def naive_sample():
        for k in range(sample):
            e = [np.zeros_like(w) for w in weights]
            e[0].flat[k] = 1.0
            hessian.hessian_vector_product(model, x, y, e, batch_size)

    naive = best_of(naive_sample, 1) / sample * n_params
    rows = [(name, t, t / best["gradient pass"]) for name, t in best.items()]
    rows.append((f"naive: one HVP per parameter ({n_params:,} HVPs, extrapolated from {sample})",
                 naive, naive / best["gradient pass"]))
    return rows


def sweep_vs_naive(model, x_test, y_test, levels: int, naive_levels: int) -> list[tuple[str, float, float]]:
    scores = saliency.saliency(model, "magnitude")
    fractions = np.linspace(0.0, 0.99, levels)
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])

    def fast():
        pruning.sweep(model, scores, fractions, x_test, y_test)

    def naive():
        original = model.get_weights()
        flat = np.concatenate([s.ravel() for s in scores])
        for f in fractions[:naive_levels]:
            order = np.argsort(flat, kind="stable")
            mask = np.ones(flat.size, np.float32)
            mask[order[:pruning.n_pruned(f, flat.size)]] = 0
            parts, start = [], 0
            for w in original:
                parts.append(w * mask[start:start + w.size].reshape(w.shape))
                start += w.size
            model.set_weights(parts)
            model.evaluate(x_test, y_test, batch_size=1000, verbose=0)
        model.set_weights(original)

    t_fast = best_of(fast, 3)
    fast()
    t_naive = best_of(naive, 1) * levels / naive_levels
    return [(f"vectorised sweep, {levels} levels", t_fast, 1.0),
            (f"naive loop, {levels} levels (timed on {naive_levels})", t_naive, t_naive / t_fast)]


def fit_steps(steps: int, n: int) -> int:
    """Steps ``model.fit`` runs: whole epochs of ``n // 64`` batches (partial batch dropped)."""
    per_epoch = -(-n // 64)
    return steps if steps < per_epoch else -(-steps // (n // 64)) * per_epoch


def training_vs_fit(steps: int) -> list[tuple[str, float, float]]:
    config = training.TrainConfig(steps=steps, log_every=steps)
    (x, y), _ = data.load_post_split()

    def ours():
        training.train_model(config, use_cache=False)

    def fit():
        seeding.set_seed(0)
        model = models.seed_mlp()
        model.compile(optimizer=keras.optimizers.Adam(1e-4, epsilon=1e-8),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True,
                                                                      reduction="sum"))
        per_epoch = len(x) // 64
        model.fit(x, y, batch_size=64, epochs=-(-steps // per_epoch), steps_per_epoch=None,
                  shuffle=True, verbose=0) if steps >= per_epoch else \
            model.fit(x[:steps * 64], y[:steps * 64], batch_size=64, epochs=1, verbose=0)

    best = interleaved({"ours": ours, "fit": fit}, 1)
    return [(f"helpers.training, {steps:,} steps", best["ours"], 1.0),
            (f"keras model.fit, {fit_steps(steps, len(x)):,} steps", best["fit"], best["fit"] / best["ours"])]


def table(title: str, rows, unit_name: str) -> str:
    lines = [f"**{title}**", "", f"| what | time (s) | {unit_name} |", "|---|---:|---:|"]
    lines += [f"| {name} | {t:.3f} | {ratio:.2f} |" for name, t, ratio in rows]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repeats and steps")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--train-steps", type=int, default=None)
    parser.add_argument("--write", type=Path, default=None, help="also write the tables (Markdown) here")
    args = parser.parse_args()
    repeats = args.repeats or (1 if args.quick else 3)
    train_steps = args.train_steps or (2_000 if args.quick else 10_000)

    seeding.set_seed(0)
    (x_train, y_train), (x_test, y_test) = data.load_mnist()
    model = experiments.post_models("plain", seeds=(0,))[0].model
    header = (f"Measured on {platform.machine()} with {os.cpu_count()} cores, Python "
              f"{platform.python_version()}, TensorFlow {tf.__version__}, Keras {keras.__version__}; "
              f"best of {repeats}.\n")
    parts = [header]
    parts.append(table(f"1. Second derivatives of the post's network over {len(x_train):,} images, "
                       f"batch {args.batch_size}", second_derivatives(model, x_train, y_train,
                                                                      args.batch_size, repeats),
                       "× one gradient pass"))
    print(parts[-1], flush=True)
    parts.append(table(f"2. Pruning sweep on {len(x_test):,} test images",
                       sweep_vs_naive(model, x_test, y_test, 100, 10 if args.quick else 25),
                       "× vectorised sweep"))
    print(parts[-1], flush=True)
    parts.append(table("3. Training the post's network (batch 64, Adam, summed loss)",
                       training_vs_fit(train_steps), "× helpers.training"))
    print(parts[-1], flush=True)
    if args.write:
        args.write.write_text("\n".join(parts))
        print(f"wrote {args.write}")


if __name__ == "__main__":
    sys.exit(main())
