"""helpers.chapters.tiny: downsampling, the tiny network's training and its cached full Hessian."""

import numpy as np
import pytest

from helpers import hessian, metrics, models
from helpers.chapters import tiny

SMALL = dict(image_size=4, hidden=(5,), n_train=120, steps=300, batch_size=20, learning_rate=0.01,
             seed=3)


def test_downsample_averages_blocks():
    rng = np.random.default_rng(0)
    x = rng.random((3, 784)).astype(np.float32)
    out = tiny.downsample(x, 7)
    assert out.shape == (3, 49) and out.dtype == np.float32
    images = x.reshape(3, 28, 28)
    # Pixel (row 2, column 5) of the 7x7 image is the mean of rows 8-11, columns 20-23.
    np.testing.assert_allclose(out[:, 2 * 7 + 5], images[:, 8:12, 20:24].mean(axis=(1, 2)), rtol=1e-6)
    np.testing.assert_allclose(tiny.downsample(x, 28), x)
    np.testing.assert_allclose(tiny.downsample(x, 1)[:, 0], x.mean(axis=1), rtol=1e-6)
    assert tiny.downsample(np.ones((2, 784), np.uint8), 14).max() == 1.0


@pytest.mark.parametrize("size, error", [(5, ValueError), (0, ValueError), (7.0, TypeError),
                                         (True, TypeError)])
def test_downsample_rejects_bad_sizes(size, error):
    with pytest.raises(error, match="size"):
        tiny.downsample(np.zeros((2, 784), np.float32), size)


def test_downsample_rejects_bad_images():
    with pytest.raises(ValueError, match="x"):
        tiny.downsample(np.zeros((2, 783), np.float32))
    with pytest.raises(TypeError, match="x"):
        tiny.downsample([[0.0] * 784])


def test_config_validation_and_sizes():
    config = tiny.TinyConfig(**SMALL)
    assert config.layer_sizes == (16, 5, 10)
    assert config.n_params == models.mlp(config.layer_sizes).count_params() == 16 * 5 + 5 + 5 * 10 + 10
    assert tiny.TinyConfig(hidden=[3, 4]).hidden == (3, 4)
    with pytest.raises(ValueError, match="image_size"):
        tiny.TinyConfig(image_size=5)
    with pytest.raises(ValueError, match="n_train"):
        tiny.TinyConfig(n_train=60_000)
    with pytest.raises(ValueError, match="batch_size"):
        tiny.TinyConfig(n_train=10, batch_size=20)
    with pytest.raises(TypeError, match="learning_rate"):
        tiny.TinyConfig(learning_rate="fast")
    with pytest.raises(ValueError, match="steps"):
        tiny.TinyConfig(steps=0)
    with pytest.raises(TypeError, match="hidden"):
        tiny.TinyConfig(hidden="16")
    with pytest.raises(TypeError, match="config"):
        tiny.train_tiny({"image_size": 7})


def test_data_is_the_start_of_the_post_split_downsampled():
    from helpers import data
    config = tiny.TinyConfig(**SMALL)
    (x, y), (x_test, y_test) = tiny.tiny_data(config)
    (x55k, y55k), _ = data.load_post_split()
    assert x.shape == (120, 16) and x_test.shape == (10_000, 16)
    np.testing.assert_array_equal(y, y55k[:120])
    np.testing.assert_allclose(x, tiny.downsample(x55k[:120], 4))


def test_training_learns_is_deterministic_and_cached(monkeypatch, isolated_cache):
    config = tiny.TinyConfig(**SMALL)
    (x, y), _ = tiny.tiny_data(config)
    trained = tiny.train_tiny(config)
    fresh = models.mlp(config.layer_sizes, init_stddev=config.init_stddev)
    assert metrics.mean_loss(trained, x, y) < 0.8 * metrics.mean_loss(fresh, x, y)
    again = tiny._train(config)
    for i, w in enumerate(trained.get_weights()):
        np.testing.assert_array_equal(w, again[f"w{i}"])

    def no_training(config):
        raise AssertionError("a cached tiny model must not be retrained")
    monkeypatch.setattr(tiny, "_train", no_training)
    for a, b in zip(trained.get_weights(), tiny.train_tiny(config).get_weights()):
        np.testing.assert_array_equal(a, b)


def test_hessian_is_the_full_hessian_of_the_training_loss(isolated_cache):
    config = tiny.TinyConfig(**SMALL)
    model = tiny.train_tiny(config)
    (x, y), _ = tiny.tiny_data(config)
    h = tiny.tiny_hessian(config, chunk=50)  # 50 + 50 + 20: unequal chunks, weighted
    assert h.shape == (config.n_params, config.n_params)
    direct = hessian.full_hessian(model, x, y)
    np.testing.assert_allclose(h, direct, atol=1e-5 * np.abs(direct).max())
    np.testing.assert_allclose(tiny.tiny_hessian(config, chunk=50), h)  # from the cache
    with pytest.raises(ValueError, match="chunk"):
        tiny.tiny_hessian(config, chunk=0)
