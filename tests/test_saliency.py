"""Saliency methods: their definitions, and the post's two rankings as they ran."""

import numpy as np
import pytest

from conftest import small_data, small_mlp
from helpers import hessian, pruning, saliency


@pytest.fixture(scope="module")
def model_and_data():
    return small_mlp(), *small_data()


def test_magnitude_and_published_magnitude(model_and_data):
    model, _, _ = model_and_data
    weights = model.get_weights()
    for s, w in zip(saliency.saliency(model, "magnitude"), weights):
        np.testing.assert_array_equal(s, np.abs(w))
    published = saliency.saliency(model, "asran_magnitude")
    masks = pruning.prune_masks(published, 0.1)
    flat_w, flat_m = hessian.flatten(weights), hessian.flatten(masks)
    # the pruned ones are the most negative parameters
    assert flat_w[flat_m == 0].max() <= flat_w[flat_m == 1].min()
    assert flat_w[flat_m == 0].max() < 0


@pytest.mark.parametrize("method,diag", [("obd", "exact"), ("obd_lecun", "lecun"), ("fisher", "fisher")])
def test_curvature_saliencies_are_half_h_w_squared(model_and_data, method, diag):
    model, x, y = model_and_data
    h = hessian.hessian_diagonal(model, x, y, diag)
    for s, hk, w in zip(saliency.saliency(model, method, x, y), h, model.get_weights()):
        np.testing.assert_allclose(s, 0.5 * hk * w ** 2, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_published_obd_is_the_row_sum(model_and_data, scope):
    model, x, y = model_and_data
    expected = hessian.hessian_row_sums(model, x, y, scope=scope)
    for s, e in zip(saliency.saliency(model, "asran_obd", x, y, scope=scope), expected):
        np.testing.assert_allclose(s, e, rtol=1e-6, atol=1e-12)


def test_curvature_methods_need_data(model_and_data):
    model, _, _ = model_and_data
    with pytest.raises(ValueError, match="x and y"):
        saliency.saliency(model, "obd")


@pytest.mark.parametrize("method", saliency.METHODS)
def test_only_the_scoped_methods_depend_on_the_scope(model_and_data, method):
    model, x, y = model_and_data
    by_scope = [saliency.saliency(model, method, x, y, scope=s) for s in ("global", "layer")]
    same = all(np.array_equal(a, b) for a, b in zip(*by_scope))
    assert same == (method not in saliency.SCOPED_METHODS)
