"""The post's own checkpoints: verified, read in both layouts, and as accurate as its logs say."""

from __future__ import annotations

import shutil
from importlib import resources

import keras
import numpy as np
import pytest

from helpers import data, metrics
from helpers.post import checkpoints
from helpers.post import published

RUNS = tuple(published.RUNS)


def _logged_dense_accuracy(run: str) -> float:
    """The first line of the run's own ``results.txt`` (the unpruned network)."""
    log = resources.files("helpers.post").joinpath("trained", run, "results.txt").read_text()
    first = log.splitlines()[0]
    assert first.startswith("Variables Perecent: 100,"), first
    return float(first.rsplit(":", 1)[1])


def test_every_published_run_has_a_checkpoint():
    assert set(checkpoints.CHECKPOINTS) == set(published.RUNS)


@pytest.mark.parametrize("run", RUNS)
def test_test_accuracy_equals_the_runs_log(run):
    _, (x_test, y_test) = data.load_mnist()
    model = checkpoints.load_post_network(run)
    accuracy = metrics.accuracy(model, x_test, y_test)
    assert round(accuracy, 4) == _logged_dense_accuracy(run)
    fractions, published_acc = published.curve(run)
    assert round(accuracy, 4) == published_acc[fractions == 0][0]


def test_layouts_give_the_books_tensor_order():
    for run in ("magnitude_layerwise_prune", "obd_all_layers_prune"):  # per-variable, packed
        ckpt = checkpoints.read_post_checkpoint(run)
        shapes = [w.shape for w in ckpt.weights]
        assert shapes == [(784, 50), (50,), (50, 50), (50,), (50, 50), (50,), (50, 50), (50,),
                          (50, 10), (10,)]
        assert [m.shape for m in ckpt.adam_m] == shapes == [v.shape for v in ckpt.adam_v]
        assert sum(w.size for w in ckpt.weights) == 47_410


def test_dropout_run_keeps_its_dropout_layers_inactive_at_inference():
    model = checkpoints.load_post_network("obd_all_layers_dropout")
    rates = [layer.rate for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    assert rates == [0.2] * 4
    x = np.random.default_rng(0).random((8, 784), dtype=np.float32)
    np.testing.assert_array_equal(model(x, training=False), model(x, training=False))
    plain = checkpoints.load_post_network("obd_all_layers_prune")
    assert not any(isinstance(layer, keras.layers.Dropout) for layer in plain.layers)


def test_blank_pixels_never_moved_in_adam():
    """Rows of W1 for pixels blank in all training images have a zero second moment."""
    ckpt = checkpoints.read_post_checkpoint("magnitude_layerwise_prune")
    (x_train, _), _ = data.load_post_split()
    blank = (x_train == 0).all(axis=0)
    untouched = (ckpt.adam_v[0] == 0).all(axis=1)
    assert untouched.sum() > 0
    assert not untouched[~blank].any()  # every row that never moved is a blank pixel


@pytest.mark.parametrize("run, error, words", [
    ("nope", ValueError, "run must be one of"),
    ("", ValueError, "run must be one of"),
    (3, TypeError, "run must be a str"),
    (None, TypeError, "run must be a str"),
])
def test_bad_run_names(run, error, words):
    with pytest.raises(error, match=words):
        checkpoints.load_post_network(run)


def test_altered_file_is_refused(tmp_path, monkeypatch):
    run = "obd_layerwise_prune"
    original = checkpoints.checkpoint_path(run)
    copy = tmp_path / original.name
    shutil.copyfile(original, copy)
    raw = bytearray(copy.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    copy.write_bytes(bytes(raw))
    monkeypatch.setattr(checkpoints, "checkpoint_path", lambda r: copy)
    with pytest.raises(ValueError, match=rf"{run}.*altered.*{copy.name}"):
        checkpoints.load_post_network(run)


def test_missing_file_is_named(tmp_path, monkeypatch):
    run = "magnitude_all_layers_prune"
    missing = tmp_path / "model.ckpt-50000"
    monkeypatch.setattr(checkpoints, "checkpoint_path", lambda r: missing)
    with pytest.raises(FileNotFoundError, match=rf"{run}.*missing.*model.ckpt-50000"):
        checkpoints.read_post_checkpoint(run)
