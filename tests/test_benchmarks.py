"""The benchmark harness (benchmarks/run.py) compares like with like; nothing here is timed."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import hessian, pruning
from conftest import small_data, small_mlp

_spec = importlib.util.spec_from_file_location(
    "benchmarks_run", Path(__file__).resolve().parent.parent / "benchmarks" / "run.py")
run = sys.modules["benchmarks_run"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(run)

SIZES = dataclasses.replace(run.SIZES["quick"], batch_size=16, naive_hvps=2, levels=7)


def _same_work(comparison, inputs, batch_size: int, work: int) -> None:
    for w in comparison.workloads:
        assert w.inputs is inputs, w.label
        assert (w.batch_size, w.work) == (batch_size, work), w.label


def test_second_derivatives_read_the_same_prepared_batches():
    model, (x, y) = small_mlp(), small_data(n=40)
    batches = run.prepare_batches(model, x, y, SIZES.batch_size)
    assert [int(xb.shape[0]) for xb, _ in batches] == [16, 16, 8]
    # The batches hold the images and labels in order, none dropped or repeated.
    np.testing.assert_array_equal(np.concatenate([xb.numpy() for xb, _ in batches]), x)
    np.testing.assert_array_equal(np.concatenate([yb.numpy() for _, yb in batches]), y)
    comparison = run.second_derivatives(model, batches, SIZES)
    _same_work(comparison, batches, 16, 40)
    labels = [w.label for w in comparison.methods]
    assert labels[:len(hessian.METHODS) + 1] == [*hessian.METHODS, run.ROW_SUMS]
    n_params = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert comparison.methods[-1].scale == n_params / 2


def test_timed_regions_compute_what_the_public_functions_compute():
    """The baseline is the mean-loss gradient; each diagonal row gives hessian_diagonal's result
    and the row-sum row hessian_row_sums', bit for bit (the same compiled steps, batches and sums)."""
    model, (x, y) = small_mlp(), small_data(n=40)
    comparison = run.second_derivatives(model, run.prepare_batches(model, x, y, 16), SIZES)
    for got, want in zip(comparison.baselines[0].run(), hessian.gradient(model, x, y, batch_size=16)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    rows = {w.label: w for w in comparison.methods}
    expected = {method: hessian.hessian_diagonal(model, x, y, method, batch_size=16)
                for method in hessian.METHODS}
    expected[run.ROW_SUMS] = hessian.hessian_row_sums(model, x, y, batch_size=16)
    for label, want in expected.items():
        got = rows[label].run()
        assert len(got) == len(want), label
        for g, v in zip(got, want):
            np.testing.assert_array_equal(g, v, err_msg=label)


def test_sweep_baseline_and_method_evaluate_the_same_levels():
    model, (x, y) = small_mlp(), small_data(n=40)
    scores = [np.abs(w) for w in model.get_weights()]
    comparison = run.sweep(model, scores, x, y, SIZES)
    _same_work(comparison, comparison.baselines[0].inputs, 40, 7)
    before = model.get_weights()
    want = pruning.sweep(model, scores, np.linspace(0.0, 0.99, 7), x, y)
    for w in comparison.workloads:
        np.testing.assert_allclose(w.run(), want, atol=1e-6, err_msg=w.label)
    for a, b in zip(model.get_weights(), before):  # the baseline restores the weights
        np.testing.assert_array_equal(a, b)


def test_training_rows_take_equal_step_counts():
    (x, y) = small_data(n=128)
    comparison = run.training_steps(small_mlp, x, y, epochs=2, repeats=1)
    _same_work(comparison, comparison.methods[0].inputs, 64, 4)
    for w in comparison.workloads:  # each call advances its optimiser by exactly `work` steps
        assert w.run() == w.work == 4, w.label
    with pytest.raises(ValueError, match="multiple of 64"):
        run.training_steps(small_mlp, x[:100], y[:100], epochs=1, repeats=1)


def test_table_states_repeats_and_divides_by_the_fastest_baseline():
    noop = run.Workload("x", lambda: None, None, 1, 10)
    comparison = run.Comparison("T", "what is timed", "step",
                                (dataclasses.replace(noop, label="slow"), noop),
                                (dataclasses.replace(noop, label="ours"),), repeats=3)
    text = run.table(comparison, [4.0, 2.0, 1.0])
    assert "Best of 3, interleaved" in text and "what is timed" in text
    assert "| baseline: slow | 4.000 | 400 | 2.00 |" in text
    assert "| ours | 1.000 | 100 | 0.50 |" in text
    assert "load average" not in text
    loads = []
    times = run.interleaved(comparison.workloads, 3, loads)
    assert len(times) == len(comparison.workloads)
    assert len(loads) == 3 + 1  # before every round and after the last
    text = run.table(comparison, [4.0, 2.0, 1.0], [0.4, 1.3, 0.9])
    assert "interleaved; one-minute load average 0.4 to 1.3 on" in text
