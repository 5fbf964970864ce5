"""Saliency methods: each score against its definition, read off a brute-force Hessian."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import small_data, small_mlp
from helpers import hessian, saliency


@pytest.fixture(scope="module")
def model_and_data():
    return small_mlp(), *small_data()


def test_magnitude_is_the_absolute_weight(model_and_data):
    model, _, _ = model_and_data
    for s, w in zip(saliency.saliency(model, "magnitude"), model.get_weights()):
        np.testing.assert_array_equal(s, np.abs(w))


def test_obd_saliency_is_the_second_order_term_of_deleting_each_weight(model_and_data):
    """Deleting u_k changes the loss by -g_k u_k + h_kk u_k^2 / 2 to second order: OBD's saliency
    is that quadratic term, with h_kk read off the brute-force Hessian (nested gradient tapes)."""
    model, x, y = model_and_data
    H = hessian.full_hessian(model, x, y)
    u = hessian.flatten(model.get_weights()).astype(np.float64)
    expected = 0.5 * np.diag(H) * u ** 2
    got = hessian.flatten(saliency.saliency(model, "obd", x, y))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-9)


def test_fisher_saliency_uses_the_mean_squared_per_image_gradient(model_and_data):
    model, x, y = model_and_data
    rows = []
    for i in range(len(x)):
        with tf.GradientTape() as tape:
            loss = keras.losses.sparse_categorical_crossentropy(y[i:i + 1], model(x[i:i + 1]),
                                                                from_logits=True)
        rows.append(hessian.flatten([g.numpy() for g in tape.gradient(loss, model.trainable_weights)]))
    fisher = np.mean(np.square(rows, dtype=np.float64), axis=0)
    u = hessian.flatten(model.get_weights()).astype(np.float64)
    got = hessian.flatten(saliency.saliency(model, "fisher", x, y))
    np.testing.assert_allclose(got, 0.5 * fisher * u ** 2, rtol=1e-4, atol=1e-9)


def test_curvature_methods_need_data(model_and_data):
    model, _, _ = model_and_data
    with pytest.raises(ValueError, match="x and y"):
        saliency.saliency(model, "obd")


def test_the_post_rankings_are_not_on_the_menu():
    with pytest.raises(ValueError, match="method must be one of"):
        saliency.saliency(small_mlp(), "asran_magnitude")
