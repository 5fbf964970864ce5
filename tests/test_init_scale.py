"""helpers.init_scale: training the post's network from another initial scale."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import init_scale, models, seeding, training

SIZES = (784, 8, 6, 10)


def test_check_init_rejects_bad_values():
    with pytest.raises(ValueError, match="init_stddev"):
        init_scale.check_init(0.0, 0.0)
    with pytest.raises(ValueError, match="init_stddev"):
        init_scale.check_init(-0.1, 0.0)
    with pytest.raises(ValueError, match="bias_init"):
        init_scale.check_init(0.1, float("nan"))
    with pytest.raises(TypeError, match="init_stddev"):
        init_scale.check_init("0.1", 0.0)
    with pytest.raises(TypeError, match="bias_init"):
        init_scale.check_init(0.1, True)
    assert init_scale.check_init(1, 0) == (1.0, 0.0)


def test_train_model_and_post_models_validate_before_work(monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("validation must come before any work")
    monkeypatch.setattr(training, "train_model", no_training)
    with pytest.raises(TypeError, match="config"):
        init_scale.train_model({"seed": 0}, 0.1, 0.1)
    with pytest.raises(ValueError, match="init_stddev"):
        init_scale.train_model(training.TrainConfig(), 0.0, 0.1)
    with pytest.raises(ValueError, match="seeds"):
        init_scale.post_models("plain", seeds=[], init_stddev=0.1, bias_init=0.1)
    with pytest.raises(ValueError, match="variant"):
        init_scale.post_models("huge", seeds=[0], init_stddev=0.1, bias_init=0.1)


def test_initial_scale_scales_the_same_draw_and_restores_the_builder():
    original = models.mlp
    seeding.set_seed(3)
    stated = models.mlp(SIZES).get_weights()
    seeding.set_seed(3)
    with init_scale.initial_scale(0.1, 0.25):
        assert models.mlp is not original
        scaled = models.mlp(SIZES).get_weights()
    assert models.mlp is original
    for a, b in zip(stated, scaled):
        if a.ndim == 2:
            np.testing.assert_allclose(b, 5.0 * a, rtol=1e-5, atol=1e-8)
        else:
            np.testing.assert_array_equal(b, np.full_like(a, 0.25))
    with pytest.raises(RuntimeError):
        with init_scale.initial_scale(0.1, 0.0):
            raise RuntimeError("boom")
    assert models.mlp is original


def test_default_scale_is_the_shared_training(monkeypatch):
    sentinel = object()
    monkeypatch.setattr(training, "train_model", lambda config: sentinel)
    assert init_scale.train_model(training.TrainConfig()) is sentinel
    assert init_scale.is_post_stated(*init_scale.POST_STATED)
    assert not init_scale.is_post_stated(*init_scale.HELPER_0_1)


def test_trains_from_the_requested_scale_and_caches(monkeypatch, isolated_cache):
    config = training.TrainConfig(layer_sizes=SIZES, steps=3, log_every=1, seed=0)
    trained = init_scale.train_model(config, 0.1, 0.1)
    weights = trained.model.get_weights()
    kernels = np.concatenate([w.ravel() for w in weights if w.ndim == 2])
    biases = np.concatenate([w.ravel() for w in weights if w.ndim == 1])
    # Three Adam steps move a parameter by at most about 3 * learning_rate.
    assert np.all(np.abs(biases - 0.1) < 4 * config.learning_rate)
    assert 0.07 < kernels.std() < 0.1  # truncated normal, stddev 0.1, shrinks to ~0.088
    assert list(trained.history["step"]) == [1, 2, 3]
    assert models.mlp.__name__ == "mlp"

    def no_training(*args, **kwargs):
        raise AssertionError("a cached model must not be retrained")
    monkeypatch.setattr(training, "train_model", no_training)
    again = init_scale.train_model(config, 0.1, 0.1)
    for a, b in zip(weights, again.model.get_weights()):
        np.testing.assert_array_equal(a, b)
