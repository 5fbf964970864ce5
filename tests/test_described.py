"""helpers.post.described: the post's runs as described, on small stand-in networks and data."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import data, hessian, metrics, models, pruning, saliency, seeding, training
from helpers.post import checkpoints, described, networks

SIZES = (784, 6, 5, 10)


def _fake_setup(monkeypatch, isolated_cache):
    """Replace training and data by a tiny network and small random data; count trainings."""
    rng = np.random.default_rng(0)
    x = rng.random((300, 784), dtype=np.float32)
    y = rng.integers(0, 10, 300)
    calls = []

    def fake_train(config, **_ignored):
        calls.append(config)
        seeding.set_seed(config.seed + (100 if config.dropout else 0))
        model = models.mlp(config.layer_sizes, dropout=config.dropout,
                           init_stddev=3 * config.init_stddev, bias_init=config.bias_init)
        return training.TrainedModel(model, config, {})

    def small_config(variant, seed, init):
        return training.TrainConfig(seed=seed, layer_sizes=SIZES, init_stddev=init[0],
                                    bias_init=init[1], **networks.VARIANTS[variant])

    monkeypatch.setattr(training, "train_model", fake_train)
    monkeypatch.setattr(networks, "_config", small_config)  # post_config(s) still check arguments
    monkeypatch.setattr(data, "load_post_split", lambda: ((x[:200], y[:200]), (x[200:], y[200:])))
    monkeypatch.setattr(data, "load_mnist", lambda: ((x[:200], y[:200]), (x[200:], y[200:])))
    return x, y, fake_train, calls


def test_run_variants_are_the_shared_ones():
    assert described.RUN_VARIANTS is networks.RUN_VARIANTS  # notebooks read it from described


@pytest.mark.parametrize("kwargs, error", [
    (dict(run="obd"), ValueError),
    (dict(run=3), TypeError),
    (dict(run="obd_all_layers_prune", fractions=[]), ValueError),
    (dict(run="obd_all_layers_prune", fractions="0.1"), TypeError),
    (dict(run="obd_all_layers_prune", fractions=[1.5]), ValueError),
    (dict(run="obd_all_layers_prune", seeds=[]), ValueError),
    (dict(run="obd_all_layers_prune", seeds=[0.5]), TypeError),
    (dict(run="obd_all_layers_prune", seeds=[-1]), ValueError),
    (dict(run="obd_all_layers_prune", variant="big"), ValueError),
    (dict(run="obd_all_layers_prune", init=(0.0, 0.1)), ValueError),
    (dict(run="obd_all_layers_prune", init=0.1), TypeError),
])
def test_described_sweep_rejects_bad_arguments(kwargs, error, monkeypatch):
    # The message names the offending argument (the last key given).
    def no_training(config):
        raise AssertionError("validation must come before any work")
    monkeypatch.setattr(training, "train_model", no_training)
    args = dict(fractions=[0.1], seeds=[0]) | kwargs
    with pytest.raises(error, match=list(kwargs)[-1]):
        described.described_sweep(args.pop("run"), **args)


def test_described_scores_rejects_bad_arguments():
    with pytest.raises(ValueError, match="run"):
        described.described_scores("nope")
    with pytest.raises(ValueError, match="variant"):
        described.described_scores("obd_all_layers_prune", 0, variant="nope")
    with pytest.raises(TypeError, match="seed"):
        described.described_scores("obd_all_layers_prune", "0")
    with pytest.raises(ValueError, match="bias_init"):
        described.described_scores("obd_all_layers_prune", 0, init=(0.1, float("nan")))


def test_obd_scores_are_half_diagonal_times_square(monkeypatch, isolated_cache):
    x, y, fake_train, _ = _fake_setup(monkeypatch, isolated_cache)
    scores = described.described_scores("obd_all_layers_prune", seed=1)
    model = fake_train(networks.post_config("plain", 1)).model
    diag = hessian.hessian_diagonal(model, x[:200], y[:200])
    for s, h, w in zip(scores, diag, model.get_weights()):
        np.testing.assert_allclose(s, 0.5 * h * w ** 2, rtol=1e-5, atol=1e-12)
    magnitude = described.described_scores("magnitude_layerwise_prune", seed=1)
    for s, w in zip(magnitude, model.get_weights()):
        np.testing.assert_array_equal(s, np.abs(w))


def test_sweep_matches_direct_pruning_and_is_cached(monkeypatch, isolated_cache):
    x, y, fake_train, calls = _fake_setup(monkeypatch, isolated_cache)
    fractions = [0.0, 0.1, 0.5, 0.9]
    for run in ("obd_layerwise_prune", "magnitude_all_layers_prune"):
        acc = described.described_sweep(run, fractions, seeds=(0, 2))
        assert acc.shape == (2, 4)
        for row, seed in zip(acc, (0, 2)):
            model = fake_train(networks.post_config("plain", seed)).model
            scope = "layer" if "layerwise" in run else "global"
            scores = described.described_scores(run, seed)
            for f, a in zip(fractions, row):
                masks = pruning.prune_masks(scores, f, scope)
                with pruning.pruned(model, masks):
                    pred = np.argmax(model.predict(x[200:], verbose=0), axis=1)
                assert a == pytest.approx(np.mean(pred == y[200:]), abs=1e-6)
    n_calls = len(calls)
    again = described.described_sweep("obd_layerwise_prune", fractions, seeds=(0, 2))
    assert len(calls) == n_calls, "a cached sweep must not load or train a network"
    np.testing.assert_array_equal(again, described.described_sweep("obd_layerwise_prune", fractions,
                                                                   seeds=(0, 2)))


def test_dropout_run_uses_its_own_network_and_variant_override(monkeypatch, isolated_cache):
    _, _, _, calls = _fake_setup(monkeypatch, isolated_cache)
    described.described_sweep("obd_all_layers_dropout", [0.2], seeds=(0,))
    assert calls[-1].dropout == pytest.approx(0.2) and calls[-1].learning_rate == pytest.approx(1e-5)
    described.described_sweep("obd_all_layers_dropout", [0.2], seeds=(0,), variant="dropout")
    assert calls[-1].dropout == pytest.approx(0.2) and calls[-1].learning_rate == pytest.approx(1e-4)
    a = described.described_sweep("obd_all_layers_prune", [0.0, 0.3], seeds=(0,))
    b = described.described_sweep("obd_all_layers_prune", [0.0, 0.3], seeds=(0,), variant="dropout")
    assert not np.array_equal(a, b)


def test_initial_scale_reaches_the_scored_network(monkeypatch, isolated_cache):
    _fake_setup(monkeypatch, isolated_cache)
    scores = described.described_scores("magnitude_all_layers_prune", 0, init=(0.5, 0.25))
    for s in scores:
        if s.ndim == 1:
            np.testing.assert_array_equal(s, np.full_like(s, 0.25))
    stated = described.described_scores("obd_all_layers_prune", 0)
    scaled = described.described_scores("obd_all_layers_prune", 0, init=(0.5, 0.25))
    assert not np.allclose(stated[0], scaled[0])
    described.described_sweep("obd_all_layers_prune", [0.0, 0.3], seeds=(0,))
    b = described.described_sweep("obd_all_layers_prune", [0.0, 0.3], seeds=(0,), init=(0.5, 0.25))
    assert b.shape == (1, 2)
    entries = list((isolated_cache / "described_sweep").glob("*.npz"))
    assert len(entries) == 2, "another initial scale is another cache entry"
    with pytest.raises(ValueError, match="init_stddev"):
        described.described_sweep("obd_all_layers_prune", [0.1], init=(-1.0, 0.0))
    with pytest.raises(TypeError, match="init_stddev"):
        described.described_sweep("obd_all_layers_prune", [0.1], init_stddev=0.1)


def test_checkpoint_saliencies_and_sweeps_reject_bad_arguments():
    with pytest.raises(ValueError, match="checkpoint"):
        described.checkpoint_scores("no_such_network", "obd")
    with pytest.raises(ValueError, match="method"):
        described.checkpoint_scores("obd_layerwise_prune", "fisher")
    with pytest.raises(ValueError, match="scope"):
        described.checkpoint_sweep("obd_layerwise_prune", "obd", "tensor", [0.1])
    with pytest.raises(ValueError, match="fraction"):
        described.checkpoint_sweep("obd_layerwise_prune", "obd", "global", [1.5])


@pytest.mark.parametrize("method", ["magnitude", "obd"])
def test_checkpoint_sweep_is_direct_pruning_of_the_posts_network(method, isolated_cache):
    model = checkpoints.load_post_network("magnitude_all_layers_prune")
    (x_pool, y_pool), _ = data.load_post_split()
    _, (x_test, y_test) = data.load_mnist()
    scores = saliency.saliency(model, "obd", x_pool, y_pool) if method == "obd" else saliency.saliency(model, method)
    for a, b in zip(described.checkpoint_scores("magnitude_all_layers_prune", method), scores):
        np.testing.assert_array_equal(a, b)
    fractions = [0.0, 0.3, 0.6]
    expected = pruning.sweep(model, scores, fractions, x_test, y_test, "layer")
    for _ in range(2):  # built, then read back
        got = described.checkpoint_sweep("magnitude_all_layers_prune", method, "layer", fractions)
        np.testing.assert_array_equal(got, expected)
    assert got[0] == metrics.accuracy(model, x_test, y_test)
