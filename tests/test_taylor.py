"""helpers.taylor: every term of the expansion against brute force on small MLPs."""

import keras
import numpy as np
import pytest

from conftest import small_data, small_mlp
from helpers import data, hessian, metrics, models, pruning, seeding, taylor, training
from helpers.post import observations

SHAPES = [(6, 5, 4, 3), (4, 7, 2), (5, 3, 3, 3, 4)]


def biased_mlp(sizes, seed=1):
    """``small_mlp`` with non-zero biases, so that no sample sits exactly on a ReLU kink
    (with zero biases, a unit whose inputs are all off has pre-activation exactly 0)."""
    model = small_mlp(sizes, seed=seed)
    rng = np.random.default_rng(seed)
    model.set_weights([w if w.ndim == 2 else rng.normal(scale=0.3, size=w.shape).astype(np.float32)
                       for w in model.get_weights()])
    return model


def unflatten(vector, model):
    parts, start = [], 0
    for w in model.get_weights():
        parts.append(vector[start:start + w.size].reshape(w.shape))
        start += w.size
    return parts


def random_delta(model, scale, seed=0):
    rng = np.random.default_rng(seed)
    return [scale * rng.normal(size=w.shape) for w in model.get_weights()]


def brute_change(model, x, y, delta):
    """E(u + delta) - E(u) by setting the weights, in float64 numpy."""
    def loss(weights):
        a = x.astype(np.float64)
        for i in range(0, len(weights), 2):
            z = a @ weights[i] + weights[i + 1]
            a = np.maximum(z, 0) if i < len(weights) - 2 else z
        z = a - a.max(axis=1, keepdims=True)
        return np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(y)), y])
    w = [v.astype(np.float64) for v in model.get_weights()]
    return loss([a + d for a, d in zip(w, delta)]) - loss(w)


@pytest.mark.parametrize("sizes", SHAPES)
def test_terms_equal_gradient_and_full_hessian(sizes):
    model = small_mlp(sizes)
    x, y = small_data(sizes)
    H = hessian.full_hessian(model, x, y)
    g = hessian.flatten(hessian.gradient(model, x, y)).astype(np.float64)
    delta = random_delta(model, 0.05)
    d = hessian.flatten(delta)
    e = taylor.expand(model, x, y, delta, batch_size=7)
    assert e.first_order == pytest.approx(g @ d, rel=1e-5, abs=1e-9)
    assert e.quadratic == pytest.approx(0.5 * d @ H @ d, rel=1e-5)
    assert e.diagonal == pytest.approx(0.5 * np.sum(np.diag(H) * d * d), rel=1e-5)
    assert e.cross == pytest.approx(0.5 * (d @ H @ d - np.sum(np.diag(H) * d * d)), rel=1e-4, abs=1e-9)
    assert e.actual == pytest.approx(brute_change(model, x, y, delta), rel=1e-9, abs=1e-14)
    assert e.second_order + e.remainder == pytest.approx(e.actual, rel=1e-12, abs=1e-15)
    other = taylor.expand_with_hessian(H, g, d, e.actual)
    for name in ("first_order", "diagonal", "cross", "remainder"):
        assert getattr(other, name) == pytest.approx(getattr(e, name), rel=1e-4, abs=1e-9)


def test_quadratic_form_equals_a_hessian_vector_product():
    sizes = (6, 5, 4, 3)
    model = small_mlp(sizes)
    x, y = small_data(sizes, n=64)
    delta = random_delta(model, 0.1, seed=3)
    hv = hessian.flatten(hessian.hessian_vector_product(model, x, y, delta))
    e = taylor.expand(model, x, y, delta)
    assert 2 * e.quadratic == pytest.approx(float(hessian.flatten(delta) @ hv), rel=1e-5)


def test_actual_change_matches_the_float32_metric_for_a_large_deletion():
    sizes = (6, 5, 4, 3)
    model = small_mlp(sizes)
    x, y = small_data(sizes)
    scores = [np.abs(w) for w in model.get_weights()]
    masks = pruning.prune_masks(scores, 0.5)
    before = metrics.mean_loss(model, x, y)
    with pruning.pruned(model, masks):
        after = metrics.mean_loss(model, x, y)
    change = taylor.loss_change(model, x, y, taylor.deletion(model, masks))
    assert change == pytest.approx(after - before, rel=1e-4, abs=1e-6)
    assert taylor.loss_change(model, x, y, [np.zeros_like(w) for w in model.get_weights()]) == 0.0


def test_remainder_is_third_order_for_small_steps():
    sizes = (6, 5, 4, 3)
    model = biased_mlp(sizes)
    x, y = small_data(sizes)
    delta = random_delta(model, 1.0, seed=5)
    r = [taylor.expand(model, x, y, [t * d for d in delta]).remainder for t in (1e-4, 1e-3)]
    # Without a ReLU switching between the two steps, R(t) ~ c t^3: ten times the step, 1000x.
    assert r[1] / r[0] == pytest.approx(1000, rel=0.1)
    e = taylor.expand(model, x, y, [1e-3 * d for d in delta])
    assert abs(e.remainder) < 1e-3 * abs(e.second_order)


def test_expand_many_equals_expand_one_by_one():
    sizes = (5, 3, 3, 3, 4)
    model = small_mlp(sizes)
    x, y = small_data(sizes, n=50)
    deltas = [random_delta(model, s, seed=i) for i, s in enumerate((0.01, 0.1, 1.0))]
    diag = hessian.hessian_diagonal(model, x, y)
    many = taylor.expand_many(model, x, y, deltas, diagonal=diag, batch_size=16)
    for d, e in zip(deltas, many):
        one = taylor.expand(model, x, y, d, diagonal=diag)
        for name, value in one.as_dict().items():
            assert e.as_dict()[name] == pytest.approx(value, rel=1e-9, abs=1e-15)


def test_part_three_terms_are_these_expansions():
    """observations.taylor_terms is expand_many on the deletions, term by term, as columns."""
    sizes = (6, 5, 4, 3)
    model = small_mlp(sizes)
    x, y = small_data(sizes, n=64)
    scores = [np.abs(w) for w in model.get_weights()]
    masks = [pruning.prune_masks(scores, f) for f in (0.2, 0.6)]
    columns = observations.taylor_terms(model, x, y, masks)
    ours = taylor.expand_many(model, x, y, [taylor.deletion(model, m) for m in masks])
    for i, e in enumerate(ours):
        for name, value in e.as_dict().items():
            assert getattr(columns, name)[i] == pytest.approx(value, rel=1e-12, abs=1e-15), name


def test_deletion_negates_exactly_the_masked_parameters():
    model = small_mlp()
    weights = model.get_weights()
    masks = pruning.prune_masks([np.abs(w) for w in weights], 0.3)
    delta = taylor.deletion(model, masks)
    for w, m, d in zip(weights, masks, delta):
        np.testing.assert_array_equal(d, np.where(m == 0, -w.astype(np.float64), 0.0))
    bad = [m.copy() for m in masks]
    bad[0][0, 0] = 0.5
    with pytest.raises(ValueError, match="masks\\[0\\]"):
        taylor.deletion(model, bad)
    with pytest.raises(ValueError, match="masks"):
        taylor.deletion(model, masks[:-1])


@pytest.mark.parametrize("sizes", SHAPES)
def test_single_deletions_match_deleting_one_at_a_time(sizes):
    model = small_mlp(sizes)
    x, y = small_data(sizes)
    x[:, 1] = 0.0  # an always-black input pixel: its weights change nothing
    x[::3, 0] = 0.0  # a pixel that is off for some samples only
    u = hessian.flatten(model.get_weights()).astype(np.float64)
    index = np.arange(u.size)
    single = taylor.single_deletions(model, x, y, index, batch_size=13)
    for k in index:
        d = np.zeros_like(u)
        d[k] = -u[k]
        assert single.actual[k] == pytest.approx(brute_change(model, x, y, unflatten(d, model)),
                                                 rel=1e-9, abs=1e-15)
    g = hessian.flatten(hessian.gradient(model, x, y))
    h = hessian.flatten(hessian.hessian_diagonal(model, x, y))
    np.testing.assert_allclose(single.first_order, -g * u, rtol=1e-6)
    np.testing.assert_allclose(single.saliency, 0.5 * h * u ** 2, rtol=1e-6)
    edges = np.cumsum([0] + [w.size for w in model.get_weights()])
    np.testing.assert_array_equal(single.tensor, np.searchsorted(edges, index, side="right") - 1)
    width = sizes[1]
    assert np.all(single.actual[[width + j for j in range(width)]] == 0.0)  # row 1 of W1
    np.testing.assert_allclose(single.remainder, single.actual - single.first_order - single.saliency)


def test_single_deletions_of_a_layer_without_bias_and_with_dropout():
    keras.utils.set_random_seed(4)
    model = keras.Sequential([
        keras.Input(shape=(5,)),
        keras.layers.Dense(4, activation="relu", use_bias=False,
                           kernel_initializer=keras.initializers.RandomNormal(stddev=0.7)),
        keras.layers.Dropout(0.3),
        keras.layers.Dense(3, kernel_initializer=keras.initializers.RandomNormal(stddev=0.7),
                           bias_initializer=keras.initializers.RandomNormal(stddev=0.3)),
    ])
    x, y = small_data((5, 4, 3))
    u = hessian.flatten(model.get_weights()).astype(np.float64)
    single = taylor.single_deletions(model, x, y, np.arange(u.size))
    for k in range(u.size):
        d = np.zeros_like(u)
        d[k] = -u[k]
        assert single.actual[k] == pytest.approx(taylor.loss_change(model, x, y, unflatten(d, model)),
                                                 rel=1e-9, abs=1e-15)
    assert np.any(single.actual != 0)


def test_arguments_are_checked_before_work():
    model = small_mlp()
    x, y = small_data()
    delta = random_delta(model, 0.1)
    with pytest.raises(TypeError, match="delta"):
        taylor.expand(model, x, y, np.zeros(3))
    with pytest.raises(ValueError, match="delta\\[0\\]"):
        taylor.expand(model, x, y, [np.zeros((2, 2))] + delta[1:])
    bad = [d.copy() for d in delta]
    bad[2][0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        taylor.loss_change(model, x, y, bad)
    with pytest.raises(TypeError, match="deltas"):
        taylor.expand_many(model, x, y, [])
    with pytest.raises(ValueError, match="diagonal"):
        taylor.expand(model, x, y, delta, diagonal=delta[:2])
    with pytest.raises(ValueError, match="index"):
        taylor.single_deletions(model, x, y, [0, 10_000])
    with pytest.raises(ValueError, match="index"):
        taylor.single_deletions(model, x, y, [])
    with pytest.raises(ValueError, match="batch_size"):
        taylor.expand(model, x, y, delta, batch_size=0)
    with pytest.raises(ValueError, match="square"):
        taylor.expand_with_hessian(np.zeros((3, 4)), np.zeros(3), np.zeros(3), 0.0)
    with pytest.raises(ValueError, match="delta"):
        taylor.expand_with_hessian(np.eye(3), np.zeros(3), np.zeros(4), 0.0)
    with pytest.raises(TypeError, match="actual"):
        taylor.expand_with_hessian(np.eye(3), np.zeros(3), np.zeros(3), "0")
    with pytest.raises(ValueError, match="actual"):
        taylor.expand_with_hessian(np.eye(3), np.zeros(3), np.zeros(3), float("nan"))
    with pytest.raises(ValueError, match="gradient"):
        taylor.expand_with_hessian(np.eye(3), np.array([0.0, np.inf, 0.0]), np.zeros(3), 0.0)
    with pytest.raises(ValueError, match="hessian_matrix"):
        taylor.expand_with_hessian(np.full((3, 3), np.nan), np.zeros(3), np.zeros(3), 0.0)
    with pytest.raises(TypeError, match="delta"):
        taylor.expand_with_hessian(np.eye(3), np.zeros(3), np.array(["a", "b", "c"]), 0.0)


def test_format_terms_lists_every_term():
    e = taylor.Expansion(first_order=1e-3, diagonal=2e-4, cross=-5e-5, actual=1.5e-3)
    text = taylor.format_terms(["set A"], [e])
    header, row = text.splitlines()
    assert header.split() == ["g.du", "diagonal", "cross", "remainder", "actual", "dE"]
    assert row.split() == ["set", "A", "1.000e-03", "2.000e-04", "-5.000e-05", "3.500e-04", "1.500e-03"]
    with pytest.raises(ValueError, match="same length"):
        taylor.format_terms(["a", "b"], [e])
    with pytest.raises(TypeError, match="expansions"):
        taylor.format_terms(["a"], [1.0])


def test_dormant_parameters_have_no_gradient_no_curvature_and_no_effect():
    sizes = (6, 5, 4, 3)
    model = biased_mlp(sizes, seed=2)
    weights = model.get_weights()
    weights[1][2] = -50.0  # hidden unit 2 of layer 1 is off on every sample
    model.set_weights(weights)
    weights[0][0, 1] = 0.0  # unit 1 of layer 1 does not depend on pixel 0 ...
    model.set_weights(weights)
    x, y = small_data(sizes)
    x[:, 4] = 0.0  # an always-black pixel
    z1 = x @ weights[0] + weights[1]
    x[z1[:, 1] > 0, 0] = 0.0  # ... and pixel 0 is only ever on when unit 1 is off
    assert np.any(x[:, 0] != 0) and np.any(z1[:, 1] > 0)
    mask = taylor.dormant(model, x)
    assert mask[0][0, 1] and not mask[0][0, 0]
    assert [m.shape for m in mask] == [w.shape for w in weights]
    assert np.all(mask[0][4, :]) and np.all(mask[0][:, 2]) and mask[1][2]
    assert np.all(mask[2][2, :])  # the weights leaving the dead unit
    assert not mask[4].any() and not mask[5].any()  # the logit layer's units are never "off"
    flat = hessian.flatten(mask)
    H = hessian.full_hessian(model, x, y)
    g = hessian.flatten(hessian.gradient(model, x, y))
    assert np.all(H[flat] == 0) and np.all(g[flat] == 0)
    single = taylor.single_deletions(model, x, y, np.flatnonzero(flat))
    assert np.all(single.saliency == 0) and np.all(single.first_order == 0)
    with pytest.raises(ValueError, match="x"):
        taylor.dormant(model, x[:, :3])


# --------------------------------------------------------------------------- cached on disk

STAND_IN = (784, 6, 5, 10)


def stand_in(monkeypatch):
    """A small network of the book's input and output widths, and 300 random images in place
    of the post's training split."""
    rng = np.random.default_rng(0)
    x = rng.random((300, 784), dtype=np.float32)
    y = rng.integers(0, 10, 300)
    monkeypatch.setattr(data, "load_post_split", lambda: ((x, y), (x[:10], y[:10])))
    seeding.set_seed(3)
    model = models.mlp(STAND_IN, init_stddev=0.3, bias_init=0.05)
    return training.TrainedModel(model, training.TrainConfig(layer_sizes=STAND_IN, seed=3), {}), x, y


def refuse(*args, **kwargs):
    raise AssertionError("computed although the result is cached")


def test_obd_deletion_terms_are_expand_many_on_obd_sets_and_cached(monkeypatch, isolated_cache):
    trained, x, y = stand_in(monkeypatch)
    model = trained.model
    fractions = [0.05, 0.2, 0.5]
    got = taylor.obd_deletion_terms(trained, fractions)
    diagonal = hessian.hessian_diagonal(model, x, y)
    scores = [0.5 * h * w.astype(np.float64) ** 2 for h, w in zip(diagonal, model.get_weights())]
    deltas = [taylor.deletion(model, pruning.prune_masks(scores, f)) for f in fractions]
    want = taylor.expand_many(model, x, y, deltas, diagonal=diagonal)
    assert [e.as_dict() for e in got] == [e.as_dict() for e in want]  # bit for bit
    assert got[-1].actual > 0

    monkeypatch.setattr(taylor, "expand_many", refuse)
    assert taylor.obd_deletion_terms(trained, fractions) == got  # read back from the cache
    with pytest.raises(AssertionError, match="cached"):
        taylor.obd_deletion_terms(trained, [0.05, 0.2])  # other fractions: another entry
    weights = model.get_weights()
    weights[0][0, 0] += 1.0
    model.set_weights(weights)
    with pytest.raises(AssertionError, match="cached"):
        taylor.obd_deletion_terms(trained, fractions)  # other weights: another entry


def test_single_deletion_terms_are_single_deletions_and_cached(monkeypatch, isolated_cache):
    trained, x, y = stand_in(monkeypatch)
    model = trained.model
    index = np.array([3, 700, 784 * 6 + 2, 784 * 6 + 6 + 7, 4800])
    got = taylor.single_deletion_terms(trained, index)
    want = taylor.single_deletions(model, x, y, index, gradient=hessian.gradient(model, x, y),
                                   diagonal=hessian.hessian_diagonal(model, x, y))
    for name in ("index", "tensor", "first_order", "saliency", "actual", "remainder"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name))

    monkeypatch.setattr(taylor, "single_deletions", refuse)
    again = taylor.single_deletion_terms(trained, list(index))
    np.testing.assert_array_equal(again.actual, got.actual)
    with pytest.raises(AssertionError, match="cached"):
        taylor.single_deletion_terms(trained, index[:3])


def test_cached_terms_check_their_arguments_before_work(monkeypatch, isolated_cache):
    trained, _, _ = stand_in(monkeypatch)
    monkeypatch.setattr(data, "load_post_split", refuse)
    with pytest.raises(TypeError, match="trained"):
        taylor.obd_deletion_terms(trained.model, [0.1])
    with pytest.raises(ValueError, match="fractions"):
        taylor.obd_deletion_terms(trained, [0.1, 1.5])
    with pytest.raises(ValueError, match="fractions"):
        taylor.obd_deletion_terms(trained, [])
    with pytest.raises(TypeError, match="fractions"):
        taylor.obd_deletion_terms(trained, 0.1)
    with pytest.raises(TypeError, match="trained"):
        taylor.single_deletion_terms("network", [0])
    with pytest.raises(ValueError, match="index"):
        taylor.single_deletion_terms(trained, [0, 784 * 6 + 6 + 30 + 5 + 50 + 10])
    with pytest.raises(ValueError, match="index"):
        taylor.single_deletion_terms(trained, [0.5])
