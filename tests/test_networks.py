"""helpers.post.networks: the shared networks and their initial scale."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import models, seeding, training
from helpers.post import networks, published

SIZES = (784, 8, 6, 10)


def test_run_variants_follow_the_post():
    assert networks.RUN_VARIANTS["obd_all_layers_dropout"] == "dropout_lr1e-5"
    assert networks.RUN_VARIANTS["magnitude_layerwise_prune"] == "plain"
    assert set(networks.RUN_VARIANTS) == set(published.RUNS)
    assert set(networks.RUN_VARIANTS.values()) <= set(networks.VARIANTS)


@pytest.mark.parametrize("variant", ["huge", 3, None])
def test_check_variant_refuses_unknown_networks(variant):
    with pytest.raises(ValueError if isinstance(variant, str) else TypeError, match="variant"):
        networks.check_variant(variant)
    assert networks.check_variant("dropout") == "dropout"


def test_check_init_rejects_bad_values():
    with pytest.raises(ValueError, match="init_stddev"):
        networks.check_init((0.0, 0.0))
    with pytest.raises(ValueError, match="init_stddev"):
        networks.check_init((-0.1, 0.0))
    with pytest.raises(ValueError, match="bias_init"):
        networks.check_init((0.1, float("nan")))
    with pytest.raises(TypeError, match="init_stddev"):
        networks.check_init(("0.1", 0.0))
    with pytest.raises(TypeError, match="bias_init"):
        networks.check_init((0.1, True))
    for bad in (0.1, (0.1,), (0.1, 0.1, 0.1), [0.1, 0.1], None):
        with pytest.raises(TypeError, match="init must be a"):
            networks.check_init(bad)
    assert networks.check_init((1, 0)) == (1.0, 0.0)
    assert networks.check_init(networks.POST_STATED) == networks.POST_STATED


def test_post_config_and_post_models_validate_before_work(monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("validation must come before any work")
    monkeypatch.setattr(training, "train_models", no_training)
    with pytest.raises(ValueError, match="init_stddev"):
        networks.post_config("plain", 0, init=(0.0, 0.1))
    with pytest.raises(ValueError, match="variant"):
        networks.post_config("huge", 0)
    with pytest.raises(ValueError, match="seeds"):
        networks.post_models("plain", seeds=[], init=(0.1, 0.1))
    with pytest.raises(TypeError, match="seeds"):
        networks.post_models("plain", seeds="012", init=(0.1, 0.1))
    with pytest.raises(ValueError, match="variant"):
        networks.post_models("huge", seeds=[0], init=(0.1, 0.1))
    with pytest.raises(ValueError, match="bias_init"):
        networks.post_models("plain", seeds=[0], init=(0.1, float("inf")))
    with pytest.raises(ValueError, match="bias_init"):
        networks.post_configs("plain", [0], init=(0.1, float("inf")))
    with pytest.raises(TypeError):  # the scale is one keyword argument, never two numbers
        networks.post_models("plain", [0], 0.02, 0.0)
    with pytest.raises(TypeError, match="variants"):
        networks.post_models_by_variant("plain")
    with pytest.raises(ValueError, match="variant"):
        networks.post_models_by_variant(["plain", "huge"])
    with pytest.raises(ValueError, match="bias_init"):
        networks.post_models_by_variant(init=(0.1, float("nan")))


def test_shared_networks_follow_the_scripts_scale(monkeypatch):
    # post_models trains what the (test session's empty) cache lacks through train_models: hand back the configs
    monkeypatch.setattr(training, "train_models", lambda configs: list(configs))
    configs = networks.post_models("dropout_lr1e-5", (0, 1))
    assert [(c.seed, c.dropout, c.learning_rate, c.init_stddev, c.bias_init) for c in configs] == [
        (0, 0.2, 1e-5, 0.1, 0.1), (1, 0.2, 1e-5, 0.1, 0.1)]
    stated = networks.post_config("plain", 2, init=networks.POST_STATED)
    assert (stated.init_stddev, stated.bias_init) == (0.02, 0.0)
    assert networks.post_configs("plain", (2,), init=networks.POST_STATED) == [stated]
    assert networks.post_models("plain", (2,), init=networks.POST_STATED) == [stated]
    # All variants in one batch, handed out per variant in order.
    by_variant = networks.post_models_by_variant(("plain", "dropout"), (0, 2))
    assert {v: [(c.dropout, c.seed) for c in cs] for v, cs in by_variant.items()} == {
        "plain": [(0.0, 0), (0.0, 2)], "dropout": [(0.2, 0), (0.2, 2)]}
    assert stated.to_dict() == training.TrainConfig(seed=2).to_dict(), \
        "the stated scale keeps the cache key of TrainConfig's defaults"
    assert networks.post_config("plain", 2).to_dict() != stated.to_dict()


def test_same_draw_scaled():
    seeding.set_seed(3)
    stated = models.mlp(SIZES).get_weights()
    config = training.TrainConfig(layer_sizes=SIZES, steps=1, seed=3)
    seeding.set_seed(3)
    scaled = models.mlp(SIZES, init_stddev=0.1, bias_init=0.25).get_weights()
    for a, b in zip(stated, scaled):
        if a.ndim == 2:
            np.testing.assert_allclose(b, 5.0 * a, rtol=1e-5, atol=1e-8)
        else:
            np.testing.assert_array_equal(b, np.full_like(a, 0.25))
    assert config.init_stddev == networks.POST_STATED[0]


def test_trains_from_the_requested_scale_and_caches(isolated_cache):
    config = training.TrainConfig(layer_sizes=SIZES, steps=3, log_every=1, seed=0,
                                  init_stddev=networks.HELPER_0_1[0], bias_init=networks.HELPER_0_1[1])
    trained = training.train_model(config)
    weights = trained.model.get_weights()
    kernels = np.concatenate([w.ravel() for w in weights if w.ndim == 2])
    biases = np.concatenate([w.ravel() for w in weights if w.ndim == 1])
    # Three Adam steps move a parameter by at most about 3 * learning_rate.
    assert np.all(np.abs(biases - 0.1) < 4 * config.learning_rate)
    assert 0.07 < kernels.std() < 0.1  # truncated normal, stddev 0.1, shrinks to ~0.088
    assert list(trained.history["step"]) == [1, 2, 3]

    again = training.train_model(config)
    for a, b in zip(weights, again.model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert len(list((isolated_cache / "model").glob("*.npz"))) == 1, "one shared cache entry"
