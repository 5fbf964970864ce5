"""Tests for helpers.surgeon: Optimal Brain Surgeon on quadratics, the Gauss-Newton matrix,
layer-wise OBS of an MLP."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import tensorflow as tf

from helpers import hessian, metrics, models, network, pruning, seeding, surgeon


def _quadratic(d=7, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(d, d))
    h = a @ a.T + 0.3 * np.eye(d)
    return h, rng.normal(size=d)


def _constrained_minimum(h, u, removed):
    """Brute force: min over du of 1/2 du^T H du with (u + du)_q = 0 for q in removed."""
    d = len(u)
    keep = [i for i in range(d) if i not in removed]
    du = np.zeros(d)
    du[list(removed)] = -u[list(removed)]
    if keep:
        du[keep] = -np.linalg.solve(h[np.ix_(keep, keep)], h[np.ix_(keep, list(removed))] @ du[list(removed)])
    return 0.5 * du @ h @ du, u + du


def test_saliency_is_the_true_increase_on_a_quadratic():
    h, u = _quadratic()
    h_inv = np.linalg.inv(h)
    saliencies = surgeon.obs_saliencies(u, h_inv)
    for q in range(len(u)):
        du = surgeon.obs_update(u, h_inv, q)
        assert abs(u[q] + du[q]) < 1e-12  # the update deletes u_q
        true_increase = 0.5 * du @ h @ du
        assert true_increase == pytest.approx(saliencies[q], rel=1e-10)
        best, _ = _constrained_minimum(h, u, [q])
        assert best == pytest.approx(saliencies[q], rel=1e-10)


def test_obs_never_predicts_more_than_obd():
    h, u = _quadratic(seed=3)
    obd = 0.5 * np.diag(h) * u ** 2
    assert np.all(surgeon.obs_saliencies(u, np.linalg.inv(h)) <= obd + 1e-12)


def test_diagonal_hessian_reduces_to_obd():
    rng = np.random.default_rng(1)
    diag = rng.uniform(0.1, 3.0, size=9)
    u = rng.normal(size=9)
    h_inv = np.diag(1.0 / diag)
    np.testing.assert_allclose(surgeon.obs_saliencies(u, h_inv), 0.5 * diag * u ** 2, rtol=1e-12)
    for q in range(9):
        du = surgeon.obs_update(u, h_inv, q)
        assert np.count_nonzero(du) == 1 and du[q] == pytest.approx(-u[q])
    path = surgeon.prune_path(u, h_inv, list(range(10)))
    assert list(path.order) == list(np.argsort(0.5 * diag * u ** 2, kind="stable"))
    for i, c in enumerate(path.counts):  # nothing is compensated: survivors keep their values
        kept = path.masks[i] == 1
        np.testing.assert_array_equal(path.weights[i][kept], u[kept])


def test_remove_from_inverse_is_the_inverse_of_the_rest():
    h, _ = _quadratic()
    out = surgeon.remove_from_inverse(np.linalg.inv(h), 2)
    rest = [i for i in range(len(h)) if i != 2]
    np.testing.assert_allclose(out[np.ix_(rest, rest)], np.linalg.inv(h[np.ix_(rest, rest)]),
                               atol=1e-10)
    assert np.all(out[2] == 0) and np.all(out[:, 2] == 0)


def test_sequential_path_is_the_brute_force_greedy():
    h, u = _quadratic(d=6, seed=4)
    path = surgeon.prune_path(u, np.linalg.inv(h), list(range(7)))
    removed = []
    for step in range(6):
        # Brute force: which extra deletion raises the constrained minimum least?
        options = [(_constrained_minimum(h, u, removed + [q])[0], q)
                   for q in range(6) if q not in removed]
        best, q = min(options)
        removed.append(q)
        predicted_here = path.predicted[step + 1]
        assert predicted_here == pytest.approx(best, rel=1e-9)
        np.testing.assert_allclose(path.weights[step + 1], _constrained_minimum(h, u, removed)[1],
                                   atol=1e-10)
        assert np.all(path.weights[step + 1][removed] == 0.0)
    assert list(path.order) == removed


def test_block_update_is_exact_for_its_set():
    h, u = _quadratic(d=8, seed=5)
    path = surgeon.prune_path(u, np.linalg.inv(h), [3, 6], block_size=3)
    for i in range(2):
        removed = list(np.flatnonzero(path.masks[i] == 0))
        best, weights = _constrained_minimum(h, u, removed)
        assert path.predicted[i] == pytest.approx(best, rel=1e-9)
        np.testing.assert_allclose(path.weights[i], weights, atol=1e-10)


def test_rows_share_the_inverse_and_compete_for_deletions():
    h, _ = _quadratic(d=5, seed=6)
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(3, 5))
    path = surgeon.prune_path(rows, np.linalg.inv(h), [4, 9])
    assert path.weights.shape == (2, 3, 5)
    total = 0.0
    for r in range(3):  # each row is its own OBS problem with its own deletions
        removed = list(np.flatnonzero(path.masks[1][r] == 0))
        best, weights = _constrained_minimum(h, rows[r], removed)
        total += best
        np.testing.assert_allclose(path.weights[1][r], weights, atol=1e-10)
    assert path.predicted[1] == pytest.approx(total, rel=1e-9)
    assert int((path.masks[1] == 0).sum()) == 9


def test_damped_inverse_and_its_checks():
    h, _ = _quadratic()
    np.testing.assert_allclose(surgeon.damped_inverse(h, 0.5), np.linalg.inv(h + 0.5 * np.eye(len(h))),
                               atol=1e-10)
    indefinite = np.diag([1.0, -0.2, 2.0])
    with pytest.raises(ValueError, match="damping"):
        surgeon.damped_inverse(indefinite, 0.1)
    assert np.all(np.diag(surgeon.damped_inverse(indefinite, 0.3)) > 0)
    with pytest.raises(ValueError, match="damping"):
        surgeon.damped_inverse(h, -1.0)
    with pytest.raises(TypeError, match="damping"):
        surgeon.damped_inverse(h, "a lot")


@pytest.mark.parametrize("call, error, word", [
    (lambda u, p: surgeon.obs_saliencies(list(u), p), TypeError, "u"),
    (lambda u, p: surgeon.obs_saliencies(u, p[:3]), ValueError, "h_inv"),
    (lambda u, p: surgeon.obs_saliencies(u, -p), ValueError, "h_inv"),
    (lambda u, p: surgeon.obs_update(u, p, 99), ValueError, "q"),
    (lambda u, p: surgeon.obs_update(u, p, 1.0), TypeError, "q"),
    (lambda u, p: surgeon.prune_path(u, p, [3, 2]), ValueError, "counts"),
    (lambda u, p: surgeon.prune_path(u, p, [99]), ValueError, "counts"),
    (lambda u, p: surgeon.prune_path(u, p, []), TypeError, "counts"),
    (lambda u, p: surgeon.prune_path(u, p, [2], block_size=0), ValueError, "block_size"),
    (lambda u, p: surgeon.prune_path(u * np.nan, p, [2]), ValueError, "u"),
    (lambda u, p: surgeon.prune_path(u[:3], p, [2]), ValueError, "h_inv"),
])
def test_bad_arguments(call, error, word):
    h, u = _quadratic()
    with pytest.raises(error, match=word):
        call(u, np.linalg.inv(h))


def _small_model(sizes=(6, 5, 4, 3), seed=1):
    seeding.set_seed(seed)
    return models.mlp(sizes, init_stddev=0.6)


def _data(n=50, width=6, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, width)).astype(np.float32), rng.integers(0, classes, n)


def test_gauss_newton_matrix_matches_brute_force():
    model = _small_model()
    x, y = _data()
    g = surgeon.gauss_newton_matrix(model, x, y, batch_size=17)
    variables = model.trainable_weights
    with tf.GradientTape() as tape:
        logits = model(tf.constant(x))
    jac = tape.jacobian(logits, variables)  # per tensor: (n, classes, *shape)
    j = np.concatenate([np.reshape(t.numpy(), (len(x), 3, -1)) for t in jac], axis=2)
    p = tf.nn.softmax(logits).numpy().astype(np.float64)
    expected = sum(j[i].T @ (np.diag(p[i]) - np.outer(p[i], p[i])) @ j[i] for i in range(len(x)))
    np.testing.assert_allclose(g, expected / len(x), atol=1e-6)
    np.testing.assert_allclose(np.diag(g), hessian.flatten(hessian.hessian_diagonal(model, x, y)),
                               atol=1e-6)
    assert np.linalg.eigvalsh(g).min() > -1e-9


def test_layer_masks_pool_kernel_and_bias_per_layer():
    scores = [np.arange(12.0).reshape(4, 3)[::-1], np.array([0.5, 100.0, -1.0]),
              np.arange(6.0).reshape(3, 2), np.array([2.5, 0.1])]
    masks = surgeon.layer_masks(scores, 0.4, (True, True))
    assert sum(int((m == 0).sum()) for m in masks[:2]) == pruning.n_pruned(0.4, 15)
    assert sum(int((m == 0).sum()) for m in masks[2:]) == pruning.n_pruned(0.4, 8)
    assert masks[1][2] == 0 and masks[1][0] == 0 and masks[1][1] == 1
    with pytest.raises(ValueError, match="layout"):
        surgeon.layer_masks(scores, 0.4, (True,))
    with pytest.raises(TypeError, match="layout"):
        surgeon.layer_masks(scores, 0.4, "yes")


def test_layer_inputs_and_moments():
    model = _small_model()
    x, _ = _data()
    inputs = surgeon.layer_inputs(model, x)
    assert [a.shape for a in inputs] == [(50, 7), (50, 6), (50, 5)]
    assert np.all(inputs[1][:, -1] == 1.0) and np.all(inputs[1][:, :-1] >= 0)
    weights = model.get_weights()
    np.testing.assert_allclose(inputs[2][:, :-1] @ weights[4] + weights[5],
                               model(x).numpy(), atol=1e-5)
    moments = surgeon.layer_second_moments(model, x)
    np.testing.assert_allclose(moments[0], inputs[0].T @ inputs[0] / 50)


def test_layerwise_obs_is_exact_per_layer_and_keeps_zeros():
    model = _small_model()
    x, y = _data(n=200)
    result = surgeon.layerwise_obs(model, x, [0.3, 0.6], damping=0.01, block_fraction=0.05)
    weights = model.get_weights()
    moments = surgeon.layer_second_moments(model, x)
    chain = network.dense_chain(model)
    for level, f in enumerate((0.3, 0.6)):
        pruned, masks = result.weights[level], result.masks[level]
        for layer in range(3):
            k, b = 2 * layer, 2 * layer + 1
            assert int((masks[k] == 0).sum() + (masks[b] == 0).sum()) == \
                pruning.n_pruned(f, weights[k].size + weights[b].size)
            assert np.all(pruned[k][masks[k] == 0] == 0) and np.all(pruned[b][masks[b] == 0] == 0)
            # Each unit's new row is the damped least-squares optimum for its mask.
            lam = 0.01 * np.mean(np.diag(moments[layer]))
            h = moments[layer] + lam * np.eye(len(moments[layer]))
            rows = np.vstack([weights[k], weights[b][None]]).T.astype(np.float64)
            new = np.vstack([pruned[k], pruned[b][None]]).T
            keep = np.vstack([masks[k], masks[b][None]]).T
            for r in range(rows.shape[0]):
                removed = list(np.flatnonzero(keep[r] == 0))
                if removed:
                    _, expected = _constrained_minimum(h, rows[r], removed)
                    np.testing.assert_allclose(new[r], expected, atol=1e-5)
    # The compensation helps: the layer-wise OBS network beats its own mask without the update.
    m = models.mlp((6, 5, 4, 3))
    m.set_weights(result.weights[0])
    with_update = metrics.mean_loss(m, x, y)
    m.set_weights([w * mk for w, mk in zip(weights, result.masks[0])])
    assert with_update < metrics.mean_loss(m, x, y)
    assert chain.layout == (True, True, True)


def test_layerwise_obs_checks_arguments():
    model = _small_model()
    x, _ = _data()
    with pytest.raises(ValueError, match="fractions"):
        surgeon.layerwise_obs(model, x, [0.5, 0.2])
    with pytest.raises(ValueError, match="damping"):
        surgeon.layerwise_obs(model, x, [0.5], damping=0.0)
    with pytest.raises(ValueError, match="block_fraction"):
        surgeon.layerwise_obs(model, x, [0.5], block_fraction=2.0)
    with pytest.raises(ValueError, match="x"):
        surgeon.layerwise_obs(model, x[:, :3], [0.5])


def test_unflatten_round_trip():
    model = _small_model()
    weights = model.get_weights()
    back = surgeon.unflatten(hessian.flatten(weights), weights)
    assert all(np.array_equal(a, b) for a, b in zip(weights, back))
    with pytest.raises(ValueError, match="vector"):
        surgeon.unflatten(np.zeros(3), weights)


def test_greedy_is_optimal_for_single_deletions_among_all_sets():
    """For one deletion the greedy choice is the best of all: brute force over every index."""
    h, u = _quadratic(d=5, seed=8)
    path = surgeon.prune_path(u, np.linalg.inv(h), [1])
    best = min(_constrained_minimum(h, u, [q])[0] for q in range(5))
    assert path.predicted[0] == pytest.approx(best, rel=1e-10)
    pairs = min(_constrained_minimum(h, u, list(s))[0] for s in itertools.combinations(range(5), 2))
    path2 = surgeon.prune_path(u, np.linalg.inv(h), [2])
    assert path2.predicted[0] >= pairs - 1e-12  # greedy can only match or exceed the best pair
