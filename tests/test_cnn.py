"""The conv-net Hessian diagonal, its estimators, and the CNN pruning helpers, on tiny networks."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import cnn, conv_hessian, hessian, metrics, models, network, pruning, saliency, seeding

L = keras.layers


def tiny_cnn(padding="valid", strides=1, conv_bias=True, dropout=False, seed=1):
    """A conv net small enough for a brute-force Hessian (8x8 inputs, 3 classes)."""
    seeding.set_seed(seed)
    layers = [keras.Input((64,)), L.Reshape((8, 8, 1)),
              L.Conv2D(2, 3, activation="relu", padding=padding, use_bias=conv_bias),
              L.MaxPooling2D(2),
              L.Conv2D(3, 2, strides=strides, activation="relu"),
              L.Flatten()]
    if dropout:
        layers.append(L.Dropout(0.3))
    layers += [L.Dense(4, activation="relu"), L.Dense(3)]
    return keras.Sequential(layers)


def tiny_data(n=30, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 64)).astype(np.float32), rng.integers(0, 3, n)


def rel_err(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def flat(arrays):
    return hessian.flatten(arrays).astype(np.float64)


def per_sample_gradients(model, x, labels):
    rows = []
    for i in range(len(x)):
        with tf.GradientTape() as tape:
            out = model(x[i:i + 1], training=False)
            loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels[i:i + 1], out)
        rows.append(flat([g.numpy() for g in tape.gradient(loss, model.trainable_weights)]))
    return np.array(rows)


@pytest.mark.parametrize("kwargs", [{}, {"padding": "same"}, {"strides": 2},
                                    {"conv_bias": False, "dropout": True}])
def test_exact_diagonal_equals_brute_force(kwargs):
    model = tiny_cnn(**kwargs)
    x, y = tiny_data()
    H = conv_hessian.full_hessian(model, x, y)
    assert np.abs(H - H.T).max() < 1e-8
    exact = flat(conv_hessian.hessian_diagonal(model, x, y, "exact", batch_size=7))
    assert exact.size == H.shape[0]
    assert np.max(np.abs(exact - np.diag(H))) / np.max(np.abs(np.diag(H))) < 1e-5
    assert np.all(exact >= 0)


def test_forward_equals_keras_model():
    for model, x in ((tiny_cnn(), tiny_data()[0]),
                     (cnn.lenet(), np.random.default_rng(0).random((20, 784), np.float32))):
        net = network.conv_net(model)
        out = network.conv_logits(tf.constant(x), [tf.constant(w) for w in model.get_weights()],
                                  net.spec)
        np.testing.assert_allclose(out.numpy(), model(x).numpy(), rtol=1e-5, atol=1e-5)


def test_fisher_is_mean_squared_per_sample_gradient():
    model = tiny_cnn()
    x, y = tiny_data(n=20)
    expected = np.mean(per_sample_gradients(model, x, y) ** 2, axis=0)
    fisher = flat(conv_hessian.hessian_diagonal(model, x, y, "fisher", batch_size=6))
    assert rel_err(fisher, expected) < 1e-5


def test_monte_carlo_estimate_converges_to_the_exact_diagonal():
    model = tiny_cnn()
    x, y = tiny_data(n=40)
    exact = flat(conv_hessian.hessian_diagonal(model, x, y, "exact"))
    errors = {s: rel_err(flat(conv_hessian.hessian_diagonal(model, x, y, "mc", samples=s, seed=3)),
                         exact) for s in (2, 200)}
    assert errors[200] < 0.1
    assert errors[200] < errors[2] / 4  # about 1/sqrt(samples): 10x fewer in expectation
    again = flat(conv_hessian.hessian_diagonal(model, x, y, "mc", samples=2, seed=3))
    assert rel_err(again, exact) == errors[2]  # the seed fixes the draws
    other = flat(conv_hessian.hessian_diagonal(model, x, y, "mc", samples=2, seed=4))
    assert rel_err(other, exact) != errors[2]


def test_monte_carlo_draws_labels_from_the_softmax():
    """With one class certain, every draw is that class and MC equals Fisher at that label."""
    model = tiny_cnn()
    weights = model.get_weights()
    weights[-1] = np.array([0.0, 60.0, 0.0], np.float32)  # logit 1 dominates everywhere
    weights[-2] = weights[-2] * 0.0
    model.set_weights(weights)
    x, _ = tiny_data()
    ones = np.ones(len(x), np.int64)
    mc = flat(conv_hessian.hessian_diagonal(model, x, ones, "mc", samples=3))
    fisher = flat(conv_hessian.hessian_diagonal(model, x, ones, "fisher"))
    np.testing.assert_allclose(mc, fisher, rtol=1e-6, atol=1e-30)


def test_lenet_shape_and_names():
    model = cnn.lenet()
    assert model.count_params() == 44_426
    names = cnn.tensor_names(model)
    assert names[:2] == ["conv1 kernel", "conv1 bias"]
    assert names[-1] == "logits bias" and len(names) == len(model.trainable_weights)
    with pytest.raises(ValueError, match="full_hessian"):
        conv_hessian.full_hessian(model, np.zeros((2, 784), np.float32), np.zeros(2, int))


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_sweep_matches_the_pruned_keras_model_and_restores_weights(scope):
    model = tiny_cnn()
    x, y = tiny_data(n=200, seed=5)
    before = [w.copy() for w in model.get_weights()]
    scores = saliency.saliency(model, "obd", x, y)
    fractions = [0.0, 0.3, 0.6, 0.9]
    acc = pruning.sweep(model, scores, fractions, x, y, scope=scope)
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    for f, a in zip(fractions, acc):
        masks = pruning.prune_masks(scores, f, scope)
        with pruning.pruned(model, masks):
            expected = np.mean(np.argmax(model(x).numpy(), axis=1) == y)
            assert all(np.all(w[m == 0] == 0) for w, m in zip(model.get_weights(), masks))
        assert a == pytest.approx(expected, abs=1e-6)
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    assert acc[0] == pytest.approx(metrics.accuracy(model, x, y))


def test_pruned_restores_after_an_error():
    model = tiny_cnn()
    before = [w.copy() for w in model.get_weights()]
    masks = [np.zeros_like(w) for w in before]
    with pytest.raises(RuntimeError):
        with pruning.pruned(model, masks):
            assert all(np.all(w == 0) for w in model.get_weights())
            raise RuntimeError("boom")
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)


def test_obd_saliency_of_a_conv_net_is_the_second_order_term_of_the_brute_force_hessian():
    model = tiny_cnn()
    x, y = tiny_data()
    u = hessian.flatten(model.get_weights()).astype(np.float64)
    expected = 0.5 * np.diag(conv_hessian.full_hessian(model, x, y)) * u ** 2
    got = hessian.flatten(saliency.saliency(model, "obd", x, y))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-9)
    for s, w in zip(saliency.saliency(model, "magnitude"), model.get_weights()):
        np.testing.assert_array_equal(s, np.abs(w))


def test_each_kind_of_network_has_its_own_menu_of_saliencies():
    x, y = tiny_data()
    with pytest.raises(ValueError, match="method must be one of.*obd_mc"):
        saliency.saliency(tiny_cnn(), "obd_lecun", x, y)
    with pytest.raises(ValueError, match="method must be one of.*obd_lecun"):
        saliency.saliency(models.mlp((64, 5, 3)), "obd_mc", x, y)


def test_bad_inputs_raise_naming_the_argument():
    model = tiny_cnn()
    x, y = tiny_data()
    scores = saliency.saliency(model, "magnitude")
    with pytest.raises(ValueError, match="method"):
        conv_hessian.hessian_diagonal(model, x, y, method="diag")
    with pytest.raises(ValueError, match="samples"):
        conv_hessian.hessian_diagonal(model, x, y, method="mc", samples=0)
    with pytest.raises(TypeError, match="samples"):
        conv_hessian.hessian_diagonal(model, x, y, method="mc", samples=1.5)
    with pytest.raises(TypeError, match="seed"):
        conv_hessian.hessian_diagonal(model, x, y, method="mc", seed="0")
    with pytest.raises(ValueError, match="x must have 64 columns"):
        conv_hessian.hessian_diagonal(model, x[:, :10], y)
    with pytest.raises(TypeError, match="y must hold integer"):
        conv_hessian.hessian_diagonal(model, x, y.astype(float))
    with pytest.raises(ValueError, match="batch_size"):
        conv_hessian.hessian_diagonal(model, x, y, batch_size=0)
    with pytest.raises(ValueError, match="method"):
        saliency.saliency(model, "obs")
    with pytest.raises(ValueError, match="x and y"):
        saliency.saliency(model, "obd")
    with pytest.raises(ValueError, match="fractions"):
        pruning.sweep(model, scores, [0.5, 1.5], x, y)
    with pytest.raises(ValueError, match="fractions"):
        pruning.sweep(model, scores, [], x, y)
    with pytest.raises(TypeError, match="fractions"):
        pruning.sweep(model, scores, "0.5", x, y)
    with pytest.raises(ValueError, match="scores"):
        pruning.sweep(model, scores[:-1], [0.5], x, y)
    with pytest.raises(ValueError, match="scope"):
        pruning.sweep(model, scores, [0.5], x, y, scope="net")
    with pytest.raises(ValueError, match="masks"):
        with pruning.pruned(model, [s * 2 + 1 for s in scores]):
            pass
    with pytest.raises(TypeError, match="model"):
        pruning.sweep("model", scores, [0.5], x, y)
    with pytest.raises(ValueError, match="filters"):
        cnn.lenet(filters=[])
    with pytest.raises(TypeError, match="kernel_size"):
        cnn.lenet(kernel_size=5.0)
    with pytest.raises(ValueError, match="kernel_size"):
        cnn.lenet(filters=(6, 16, 32), kernel_size=5)
    with pytest.raises(ValueError, match="steps"):
        cnn.CnnConfig(steps=0)
    with pytest.raises(ValueError, match="learning_rate"):
        cnn.CnnConfig(learning_rate=-1e-3)
    with pytest.raises(TypeError, match="config"):
        cnn.train_cnn("lenet")
    with pytest.raises(ValueError, match="seeds"):
        cnn.cnn_models(seeds=[])
    for a, b in zip(model.get_weights(), tiny_cnn().get_weights()):
        np.testing.assert_array_equal(a, b)  # nothing above touched the weights


def test_unsupported_layers_are_refused():
    seeding.set_seed(0)
    avg = keras.Sequential([keras.Input((64,)), L.Reshape((8, 8, 1)), L.Conv2D(2, 3, activation="relu"),
                            L.AveragePooling2D(2), L.Flatten(), L.Dense(3)])
    with pytest.raises(NotImplementedError, match="AveragePooling2D"):
        network.conv_net(avg)
    tanh = keras.Sequential([keras.Input((64,)), L.Reshape((8, 8, 1)), L.Conv2D(2, 3, activation="tanh"),
                             L.Flatten(), L.Dense(3)])
    with pytest.raises(NotImplementedError, match="ReLU"):
        network.conv_net(tanh)
    softmax_out = keras.Sequential([keras.Input((64,)), L.Dense(3, activation="softmax")])
    with pytest.raises(NotImplementedError, match="linear"):
        network.conv_net(softmax_out)
    # an MLP is a (degenerate) conv net: the module agrees with helpers.hessian on it
    mlp = models.mlp((64, 5, 3), init_stddev=0.5)
    x, y = tiny_data()
    np.testing.assert_allclose(flat(conv_hessian.hessian_diagonal(mlp, x, y)),
                               flat(hessian.hessian_diagonal(mlp, x, y)), rtol=1e-4, atol=1e-9)


def test_training_is_cached_and_deterministic(isolated_cache):
    config = cnn.CnnConfig(filters=(2,), dense=(), steps=40, log_every=20, batch_size=16, seed=7)
    first = cnn.train_cnn(config)
    assert list(first.history["step"]) == [20, 40]
    assert len(list(isolated_cache.glob("cnn/*.npz"))) == 1
    again = cnn.train_cnn(config)
    fresh = cnn.train_cnn(config, use_cache=False)
    for a, b, c in zip(first.model.get_weights(), again.model.get_weights(),
                       fresh.model.get_weights()):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    other = cnn.train_cnn(cnn.CnnConfig(filters=(2,), dense=(), steps=40, log_every=20,
                                        batch_size=16, seed=8))
    assert not np.array_equal(other.model.get_weights()[0], first.model.get_weights()[0])


def test_cnn_models_trains_the_missing_ones_side_by_side(isolated_cache):
    """Two small CNNs trained in worker processes: the weights a training here gives."""
    config = cnn.CnnConfig(filters=(2,), dense=(8,), steps=30, log_every=30)
    trained = cnn.cnn_models([0, 1], config)
    for seed, t in zip((0, 1), trained):
        here = cnn.train_cnn(dataclasses.replace(config, seed=seed), use_cache=False)
        assert all(np.allclose(a, b, rtol=0, atol=1e-6)
                   for a, b in zip(t.model.get_weights(), here.model.get_weights()))
