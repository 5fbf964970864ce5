"""helpers.network: the one MLP forward pass, its trace, and splitting weights by layer."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import small_data, small_mlp
from helpers import network, seeding


def no_bias_mlp():
    """Biases only in the middle layer, so that kernels and biases do not alternate."""
    seeding.set_seed(3)
    model = keras.Sequential([keras.Input((6,)),
                              keras.layers.Dense(5, activation="relu", use_bias=False),
                              keras.layers.Dense(4, activation="relu"),
                              keras.layers.Dense(3, use_bias=False)])
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(scale=0.6, size=w.shape).astype(np.float32)
                       for w in model.get_weights()])
    return model


def numpy_trace(x, weights, layout):
    """Inputs, ReLU masks and logits written out in float64 numpy, independently."""
    inputs, masks, a, i = [], [], x.astype(np.float64), 0
    for j, has_bias in enumerate(layout):
        inputs.append(a)
        z = a @ weights[i].astype(np.float64)
        i += 1
        if has_bias:
            z = z + weights[i]
            i += 1
        if j == len(layout) - 1:
            return inputs, masks, z
        masks.append((z > 0).astype(np.float64))
        a = np.maximum(z, 0.0)


@pytest.mark.parametrize("make", [lambda: small_mlp((6, 5, 4, 3)), no_bias_mlp])
@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
@pytest.mark.parametrize("graph", [False, True])
def test_forward_trace_matches_numpy_and_the_model(make, dtype, graph):
    model = make()
    x, _ = small_data((6, 5, 4, 3), n=30)
    chain = network.dense_chain(model)
    weights = [tf.constant(w, dtype) for w in chain.weights()]
    kernels, biases = network.kernels_and_biases(weights, chain.layout)
    trace = tf.function(network.forward_trace) if graph else network.forward_trace
    inputs, masks, logits = trace(tf.constant(x, dtype), kernels, biases)
    want_inputs, want_masks, want_logits = numpy_trace(x, chain.weights(), chain.layout)
    rtol = 1e-12 if dtype == tf.float64 else 1e-5
    assert len(inputs) == 3 and len(masks) == 2
    for got, want in zip(inputs + masks + [logits], want_inputs + want_masks + [want_logits]):
        assert got.dtype == dtype
        assert np.allclose(got.numpy(), want, rtol=rtol, atol=rtol)
    assert 0 < np.mean(want_masks[0]) < 1  # the ReLUs really switch
    assert np.allclose(logits.numpy(), model(x, training=False).numpy(), rtol=1e-5, atol=1e-5)
    assert np.allclose(network.logits(tf.constant(x, dtype), weights, chain.layout).numpy(),
                       logits.numpy(), rtol=rtol, atol=rtol)


def test_kernels_and_biases_follow_the_layout():
    weights = [np.zeros((6, 5)), np.zeros((5, 4)), np.ones(4), np.zeros((4, 3))]
    kernels, biases = network.kernels_and_biases(weights, (False, True, False))
    assert [k.shape for k in kernels] == [(6, 5), (5, 4), (4, 3)]
    assert biases[0] is None and biases[2] is None and biases[1] is weights[2]
    with pytest.raises(ValueError, match="weights must hold 4 tensors"):
        network.kernels_and_biases(weights[:3], (False, True, False))


def test_forward_trace_rejects_bad_layers():
    x = np.zeros((2, 3))
    with pytest.raises(TypeError, match="kernels"):
        network.forward_trace(x, np.zeros((3, 2)), [None])
    with pytest.raises(TypeError, match="biases"):
        network.forward_trace(x, [np.zeros((3, 2))], "b")
    with pytest.raises(ValueError, match="kernels and biases"):
        network.forward_trace(x, [np.zeros((3, 2))], [])
    with pytest.raises(ValueError, match="kernels and biases"):
        network.forward_trace(x, [], [])


def test_tensor_names_follow_trainable_weights():
    from helpers import cnn, models
    mlp = models.mlp((6, 4, 3), dropout=0.5)
    assert models.tensor_names(mlp) == ["hidden1 kernel", "hidden1 bias", "logits kernel", "logits bias"]
    lenet = cnn.lenet((2,), (5,), 3)
    assert cnn.tensor_names(lenet) == models.tensor_names(lenet)
    assert len(models.tensor_names(lenet)) == len(lenet.trainable_weights)
    with pytest.raises(TypeError, match="model"):
        models.tensor_names("not a model")
