"""Every second-derivative method against brute force on small MLPs."""

import numpy as np
import pytest
import tensorflow as tf

from conftest import small_data, small_mlp
from helpers import hessian

SHAPES = [(6, 5, 4, 3), (4, 7, 2), (5, 3, 3, 3, 4), (3, 4)]


def rel_err(a, b):
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def per_sample_gradients(model, x, y):
    rows = []
    for i in range(len(x)):
        with tf.GradientTape() as tape:
            loss = hessian._mean_loss(model, tf.constant(x[i:i + 1]), tf.constant(y[i:i + 1]))
        rows.append(hessian.flatten([g.numpy() for g in tape.gradient(loss, model.trainable_weights)]))
    return np.array(rows, np.float64)


@pytest.mark.parametrize("sizes", SHAPES)
@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_exact_diagonal_equals_brute_force(sizes, dropout):
    model = small_mlp(sizes, dropout=dropout)
    x, y = small_data(sizes)
    H = hessian.full_hessian(model, x, y)
    assert np.abs(H - H.T).max() < 1e-6
    exact = hessian.flatten(hessian.hessian_diagonal(model, x, y, "exact", batch_size=7))
    assert rel_err(exact, np.diag(H)) < 1e-5
    assert np.all(exact >= 0)  # a Gauss-Newton diagonal is never negative


@pytest.mark.parametrize("sizes", SHAPES)
def test_row_sums_equal_brute_force(sizes):
    model = small_mlp(sizes)
    x, y = small_data(sizes)
    H = hessian.full_hessian(model, x, y)
    # Row sums can cancel to ~0 (exactly 0 for a one-layer net), so measure the
    # error against the size of the terms being summed.
    scale = np.abs(H).sum(axis=1).max()
    row_sum = hessian.flatten(hessian.hessian_row_sums(model, x, y, batch_size=9))
    assert np.max(np.abs(row_sum - H.sum(axis=1))) / scale < 1e-5
    sizes_ = [w.size for w in model.get_weights()]
    edges = np.cumsum([0] + sizes_)
    block = np.concatenate([H[a:b, a:b].sum(axis=1) for a, b in zip(edges, edges[1:])])
    layer = hessian.flatten(hessian.hessian_row_sums(model, x, y, scope="layer", batch_size=9))
    assert np.max(np.abs(layer - block)) / scale < 1e-5


@pytest.mark.parametrize("sizes", SHAPES)
def test_lecun_is_exact_on_the_output_layer(sizes):
    model = small_mlp(sizes)
    x, y = small_data(sizes)
    exact = hessian.hessian_diagonal(model, x, y, "exact")
    lecun = hessian.hessian_diagonal(model, x, y, "lecun")
    for e, l in zip(exact[-2:], lecun[-2:]):
        np.testing.assert_allclose(l, e, rtol=1e-5, atol=1e-7)
    if len(sizes) > 2:  # deeper layers are an approximation, and differ
        assert not np.allclose(hessian.flatten(exact[:-2]), hessian.flatten(lecun[:-2]), rtol=1e-3)


@pytest.mark.parametrize("sizes", SHAPES[:2])
def test_fisher_is_mean_squared_per_sample_gradient(sizes):
    model = small_mlp(sizes)
    x, y = small_data(sizes, n=25)
    expected = np.mean(per_sample_gradients(model, x, y) ** 2, axis=0)
    fisher = hessian.flatten(hessian.hessian_diagonal(model, x, y, "fisher", batch_size=4))
    assert rel_err(fisher, expected) < 1e-5


def test_hessian_vector_product_matches_full_hessian(tiny):
    model, x, y = tiny
    H = hessian.full_hessian(model, x, y)
    rng = np.random.default_rng(3)
    v = [rng.normal(size=w.shape).astype(np.float32) for w in model.get_weights()]
    hv = hessian.flatten(hessian.hessian_vector_product(model, x, y, v, batch_size=11))
    assert rel_err(hv, H @ hessian.flatten(v)) < 1e-5


def test_batch_size_does_not_change_the_result(tiny):
    model, x, y = tiny
    a = hessian.hessian_diagonal(model, x, y, "exact", batch_size=1)
    b = hessian.hessian_diagonal(model, x, y, "exact", batch_size=1000)
    for u, v in zip(a, b):
        np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-8)


def test_post_network_shapes_align_with_trainable_weights():
    from helpers import models
    model = models.seed_mlp(dropout=0.2)
    x, y = small_data((784, 10), n=16)
    diag = hessian.hessian_diagonal(model, np.abs(x), y)
    assert [d.shape for d in diag] == [tuple(w.shape) for w in model.trainable_weights]


def test_gradient_matches_mean_per_sample_gradient(tiny):
    model, x, y = tiny
    expected = per_sample_gradients(model, x, y).mean(axis=0)
    got = hessian.flatten(hessian.gradient(model, x, y, batch_size=6))
    assert rel_err(got, expected) < 1e-5
