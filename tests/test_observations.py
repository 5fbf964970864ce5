"""helpers.post.observations: Part III's measurements, on small MLPs and synthetic curves."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import small_data, small_mlp
from helpers import data, hessian, metrics, models, pruning, seeding, training
from helpers.post import as_ran, networks, observations

SIZES = (6, 5, 4, 3)


# --------------------------------------------------------------------------- names and scales

def test_tensor_names():
    assert observations.tensor_names(small_mlp(SIZES)) == ["W1", "b1", "W2", "b2", "W3", "b3"]
    with pytest.raises(TypeError, match="model"):
        observations.tensor_names("not a model")


def test_normalised_magnitude_removes_scale_but_keeps_order():
    model = small_mlp(SIZES)
    weights = model.get_weights()
    weights[1] = np.full_like(weights[1], 0.3)  # a constant tensor: divided by 1
    model.set_weights(weights)
    norm = observations.normalised_magnitude(model)
    assert np.allclose(norm[0], np.abs(weights[0]) / weights[0].std())
    assert np.allclose(norm[1], 0.3)
    scaled = [w * (7.0 if i == 2 else 1.0) for i, w in enumerate(weights)]
    model.set_weights(scaled)
    again = observations.normalised_magnitude(model)
    assert all(np.allclose(a, b, rtol=1e-5) for a, b in zip(norm, again))


@pytest.mark.parametrize("with_ties", [False, True])
def test_transplant_keeps_allocation_and_ranks_inside_tensors(with_ties):
    rng = np.random.default_rng(3)
    shapes = [(6, 5), (5,), (5, 4), (4,)]
    alloc = [rng.random(s) * (i + 1) for i, s in enumerate(shapes)]
    if with_ties:
        alloc[0][:3] = 0.0
        alloc[2][:2] = 0.0
    rank = [rng.normal(size=s) for s in shapes]
    mixed = observations.transplant_allocation(alloc, rank)
    itself = observations.transplant_allocation(alloc, alloc)
    for fraction in (0.05, 0.2, 0.37, 0.5, 0.8, 1.0):
        want = pruning.prune_masks(alloc, fraction, "global")
        got = pruning.prune_masks(mixed, fraction, "global")
        assert np.array_equal(pruning.sparsity(got), pruning.sparsity(want))
        same = pruning.prune_masks(itself, fraction, "global")
        assert all(np.array_equal(a, b) for a, b in zip(same, want))
        for m, r in zip(got, rank):
            pruned, kept = r[m == 0], r[m == 1]
            if pruned.size and kept.size:
                assert pruned.max() <= kept.min()  # the lowest of the ranking go first


def test_transplant_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="same shapes"):
        observations.transplant_allocation([np.ones(3)], [np.ones(4)])
    with pytest.raises(TypeError, match="allocation_scores"):
        observations.transplant_allocation(np.ones(3), [np.ones(3)])


def test_allocation_grid_crosses_allocations_with_rankings():
    model = small_mlp(SIZES)
    x, y = small_data(SIZES)
    rng = np.random.default_rng(4)
    scores = {"magnitude": [np.abs(w) for w in model.get_weights()],
              "obd": [rng.random(w.shape) for w in model.get_weights()]}
    levels = [0.3, 0.5]
    grid = observations.allocation_grid(model, scores, levels, x, y)
    assert grid.shape == (len(observations.ALLOCATIONS), len(observations.INSIDE_RANKINGS))
    for j, rank in enumerate(observations.INSIDE_RANKINGS):
        uniform = pruning.sweep(model, scores[rank], levels, x, y, "layer").mean()
        assert grid[0, j] == pytest.approx(uniform)
    # An allocation with its own ranking inside is the global ranking itself.
    assert grid[1, 0] == pytest.approx(pruning.sweep(model, scores["magnitude"], levels, x, y).mean())
    assert grid[2, 1] == pytest.approx(pruning.sweep(model, scores["obd"], levels, x, y).mean())
    with pytest.raises(ValueError, match="scores"):
        observations.allocation_grid(model, {"magnitude": scores["magnitude"]}, levels, x, y)


def test_tensor_loss_changes_predict_and_measure_each_tensor():
    model = small_mlp(SIZES)
    x, y = small_data(SIZES)
    saliencies = [np.abs(w) for w in model.get_weights()]
    before = [w.copy() for w in model.get_weights()]
    predicted, measured = observations.tensor_loss_changes(model, saliencies, 0.5, "layer", x, y)
    masks = pruning.prune_masks(saliencies, 0.5, "layer")
    assert predicted.shape == measured.shape == (7,)
    assert predicted[:-1] == pytest.approx([float(np.sum(s * (1 - m))) for s, m in zip(saliencies, masks)])
    assert predicted[-1] == pytest.approx(predicted[:-1].sum())
    e0 = metrics.mean_loss(model, x, y)
    with pruning.pruned(model, masks):
        assert measured[-1] == pytest.approx(metrics.mean_loss(model, x, y) - e0)
    assert measured[2] == pytest.approx(observations.loss_increase(model, masks, x, y, 2))
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    with pytest.raises(ValueError, match="tensor"):
        observations.loss_increase(model, masks, x, y, 6)
    with pytest.raises(ValueError, match="saliencies"):
        observations.tensor_loss_changes(model, saliencies[:-1], 0.5, "layer", x, y)


# --------------------------------------------------------------------------- activations

def test_pre_activations_match_the_model_with_and_without_masks():
    model = small_mlp(SIZES)
    x, _ = small_data(SIZES)
    logits = observations.pre_activations(model, x)[-1]
    assert np.allclose(logits, model(x, training=False).numpy(), atol=1e-5)
    rng = np.random.default_rng(0)
    masks = [(rng.random(w.shape) > 0.4).astype(np.float32) for w in model.get_weights()]
    before = [w.copy() for w in model.get_weights()]
    masked = observations.pre_activations(model, x, masks)[-1]
    with pruning.pruned(model, masks):
        assert np.allclose(masked, model(x, training=False).numpy(), atol=1e-5)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_layer_activity_counts_dead_and_always_on_units():
    seeding.set_seed(0)
    model = models.mlp((2, 3, 2))
    # Inputs are non-negative. Unit 0: positive weights, bias 1 -> always on.
    # Unit 1: bias -100 -> dead. Unit 2: on only where x0 > x1.
    kernel = np.array([[1.0, 1.0, 1.0], [1.0, 1.0, -1.0]], np.float32)
    bias = np.array([1.0, -100.0, 0.0], np.float32)
    out_kernel = np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 5.0]], np.float32)
    model.set_weights([kernel, bias, out_kernel, np.zeros(2, np.float32)])
    x = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 0.5], [0.0, 0.0]], np.float32)
    y = np.array([0, 1, 1, 1])
    act = observations.layer_activity(model, x, y)
    assert act.dead_units.tolist() == [1]
    assert act.always_on_units.tolist() == [1]
    assert act.active_fraction[0] == pytest.approx((4 + 0 + 2) / 12)
    h = np.maximum(x @ kernel + bias, 0)
    assert act.mean_activation[0] == pytest.approx(h.mean())
    # Logits (h0, 5 h2): class 1 wins where 5 h2 > h0, i.e. images 1 and 2.
    assert act.majority_share == pytest.approx(0.5)
    assert act.accuracy == pytest.approx(0.75)
    assert np.allclose(act.mean_logits, (h @ out_kernel).mean(axis=0))
    # Pruning unit 0's bias leaves it active on three images, not four.
    masks = [np.ones_like(w) for w in model.get_weights()]
    masks[1][0] = 0.0
    assert observations.layer_activity(model, x, y, masks).always_on_units.tolist() == [0]


def test_layer_activity_rejects_bad_masks():
    model = small_mlp(SIZES)
    x, y = small_data(SIZES)
    good = [np.ones_like(w) for w in model.get_weights()]
    with pytest.raises(ValueError, match="masks"):
        observations.layer_activity(model, x, y, good[:-1])
    bad = [m.copy() for m in good]
    bad[0][0, 0] = 0.5
    with pytest.raises(ValueError, match=r"masks\[0\]"):
        observations.layer_activity(model, x, y, bad)
    with pytest.raises(ValueError, match="x"):
        observations.layer_activity(model, x[:, :3], y)


def test_ranking_scores_order_each_ranking():
    w = [np.array([[-2.0, 0.5], [1.5, -0.1]], np.float32), np.array([0.3, -0.7], np.float32)]
    flat = np.concatenate([a.ravel() for a in w])

    def order(ranking, rng=None):
        return np.argsort(np.concatenate([s.ravel() for s in observations.ranking_scores(w, ranking, rng)]),
                          kind="stable")

    assert order("smallest |w|")[0] == np.argmin(np.abs(flat))
    assert order("most negative")[0] == np.argmin(flat)
    assert order("most positive")[0] == np.argmax(flat)
    assert order("largest |w|")[0] == np.argmax(np.abs(flat))
    first = observations.ranking_scores(w, "random", np.random.default_rng(5))
    again = observations.ranking_scores(w, "random", np.random.default_rng(5))
    assert all(np.array_equal(a, b) and a.shape == v.shape for a, b, v in zip(first, again, w))
    most_negative = observations.ranking_scores(w, "most negative")
    most_negative[0][0, 0] = 9.0
    assert w[0][0, 0] == -2.0  # the scores are a copy
    assert set(observations.RANKINGS) == {"smallest |w|", "most negative", "most positive",
                                          "largest |w|", "random"}


def test_ranking_scores_rejects_bad_arguments():
    w = [np.ones((2, 2))]
    with pytest.raises(ValueError, match="ranking"):
        observations.ranking_scores(w, "largest")
    with pytest.raises(TypeError, match="rng"):
        observations.ranking_scores(w, "random")
    with pytest.raises(TypeError, match="weights"):
        observations.ranking_scores(np.ones(3), "most negative")


def test_activity_after_prunes_by_the_ranking():
    model = small_mlp(SIZES)
    x, y = small_data(SIZES)
    masks = pruning.prune_masks(observations.ranking_scores(model.get_weights(), "most negative"), 0.2)
    want = observations.layer_activity(model, x, y, masks)
    got = observations.activity_after(model, "most negative", 0.2, x, y)
    assert np.array_equal(got.mean_activation, want.mean_activation) and got.accuracy == want.accuracy
    dense = observations.activity_after(model, "smallest |w|", 0.0, x, y)
    assert dense.accuracy == observations.layer_activity(model, x, y).accuracy


def test_accuracy_with_part_applies_only_the_named_tensors():
    model = small_mlp(SIZES)
    x, y = small_data(SIZES)
    masks = pruning.prune_masks(observations.ranking_scores(model.get_weights(), "largest |w|"), 0.4)
    before = [w.copy() for w in model.get_weights()]
    everything = observations.accuracy_with_part(model, masks, range(6), x, y)
    assert everything == observations.layer_activity(model, x, y, masks).accuracy
    assert observations.accuracy_with_part(model, masks, [], x, y) == \
        observations.layer_activity(model, x, y).accuracy
    only_first = [m if i == 0 else np.ones_like(m) for i, m in enumerate(masks)]
    assert observations.accuracy_with_part(model, masks, [0], x, y) == \
        observations.layer_activity(model, x, y, only_first).accuracy
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    with pytest.raises(ValueError, match="tensors"):
        observations.accuracy_with_part(model, masks, [6], x, y)
    with pytest.raises(TypeError, match="tensors"):
        observations.accuracy_with_part(model, masks, "01", x, y)


# --------------------------------------------------------------------------- Taylor terms

def test_taylor_terms_against_the_brute_force_hessian():
    model = small_mlp(SIZES)
    x, y = small_data(SIZES, n=60)
    weights = model.get_weights()
    rng = np.random.default_rng(1)
    deletion_sets = [[(rng.random(w.shape) > p).astype(np.float32) for w in weights]
                     for p in (0.1, 0.3, 0.6)]
    single = [np.ones_like(w) for w in weights]
    single[2][1, 2] = 0.0  # one parameter alone: no cross terms at all
    deletion_sets.append(single)
    terms = observations.taylor_terms(model, x, y, deletion_sets, batch_size=17)

    H = hessian.full_hessian(model, x, y)
    g = hessian.flatten(hessian.gradient(model, x, y)).astype(np.float64)
    e0 = metrics.mean_loss(model, x, y)
    for i, masks in enumerate(deletion_sets):
        du = hessian.flatten([-w * (1 - m) for w, m in zip(weights, masks)]).astype(np.float64)
        assert terms.first_order[i] == pytest.approx(g @ du, rel=1e-4, abs=1e-7)
        # "diagonal" is the sum of the OBD saliencies h u^2 / 2 of the deleted parameters.
        assert terms.diagonal[i] == pytest.approx(0.5 * np.sum(np.diag(H) * du ** 2), rel=1e-4)
        assert terms.quadratic[i] == pytest.approx(0.5 * du @ H @ du, rel=1e-4, abs=1e-7)
        with pruning.pruned(model, masks):
            assert terms.actual[i] == pytest.approx(metrics.mean_loss(model, x, y) - e0, abs=1e-6)
    assert terms.cross[-1] == pytest.approx(0.0, abs=1e-6 * abs(terms.diagonal[-1]))
    assert abs(terms.cross[0]) > 1e-3 * abs(terms.diagonal[0])  # a real set has cross terms
    assert np.allclose(terms.quadratic, terms.diagonal + terms.cross)
    assert np.allclose(terms.second_order, terms.first_order + terms.quadratic)
    assert np.allclose(terms.remainder, terms.actual - terms.second_order)
    assert all(np.array_equal(a, b) for a, b in zip(weights, model.get_weights()))


def test_taylor_terms_rejects_bad_deletion_sets():
    model = small_mlp(SIZES)
    x, y = small_data(SIZES)
    with pytest.raises(TypeError, match="deletion_masks"):
        observations.taylor_terms(model, x, y, [])
    with pytest.raises(ValueError, match=r"deletion_masks\[0\]"):
        observations.taylor_terms(model, x, y, [[np.ones((2, 2))] * 6])
    with pytest.raises(ValueError, match="batch_size"):
        observations.taylor_terms(model, x, y, [[np.ones_like(w) for w in model.get_weights()]],
                                  batch_size=0)


def test_q_over_d_is_the_quadratic_over_the_diagonal_of_each_set():
    model = small_mlp(SIZES)
    x, y = small_data(SIZES, n=60)
    rng = np.random.default_rng(2)
    weights = model.get_weights()
    rankings = {"magnitude": [[np.abs(w) for w in weights]],
                "random": [[rng.random(w.shape) for w in weights] for _ in range(2)]}
    sets = observations.deletion_sets(rankings, (0.2, 0.5))
    assert [len(d) for d in sets.values()] == [1, 2] and all(len(m) == 2 for d in sets.values() for m in d)
    assert all(np.array_equal(a, b) for a, b in
               zip(sets["magnitude"][0][1], pruning.prune_masks(rankings["magnitude"][0], 0.5)))
    ratios = observations.q_over_d(model, x, y, sets)
    assert ratios["magnitude"].shape == (1, 2) and ratios["random"].shape == (2, 2)
    t = observations.taylor_terms(model, x, y, sets["random"][1])
    assert np.allclose(ratios["random"][1], t.quadratic / t.diagonal)
    with pytest.raises(TypeError, match="rankings"):
        observations.deletion_sets({}, (0.2,))
    with pytest.raises(TypeError, match="sets"):
        observations.q_over_d(model, x, y, [])


def test_random_scores_are_seeded_and_shaped_like_the_weights():
    weights = small_mlp(SIZES).get_weights()
    draws = observations.random_scores(weights)
    assert len(draws) == 2 and all(s.shape == w.shape for d in draws for s, w in zip(d, weights))
    rng = np.random.default_rng(0)
    assert all(np.array_equal(a, rng.random(w.shape)) for d in draws for a, w in zip(d, weights))
    with pytest.raises(TypeError, match="weights"):
        observations.random_scores([])
    with pytest.raises(ValueError, match="draws"):
        observations.random_scores(weights, draws=0)


def test_set_terms_gives_q_over_d_and_both_misses():
    model = small_mlp(SIZES)
    x, y = small_data(SIZES, n=60)
    weights = model.get_weights()
    sets = observations.deletion_sets({"magnitude": [[np.abs(w) for w in weights]],
                                       "random": observations.random_scores(weights)}, (0.2, 0.5))
    out = observations.set_terms(model, x, y, sets)
    assert set(out) == {"magnitude", "random"} and set(out["random"]) == set(observations.MECHANISM_MEASURES)
    assert out["random"]["Q/D"].shape == (2, 2)
    assert np.allclose(out["random"]["Q/D"], observations.q_over_d(model, x, y, sets)["random"])
    t = observations.taylor_terms(model, x, y, sets["random"][0])
    assert np.allclose(out["random"]["D/2"][0], t.diagonal)
    assert np.allclose(out["random"]["quadratic miss"][0], np.abs(t.actual - t.second_order) / np.abs(t.actual))
    assert np.allclose(out["random"]["diagonal miss"][0],
                       np.abs(t.actual - t.first_order - t.diagonal) / np.abs(t.actual))
    with pytest.raises(TypeError, match="sets"):
        observations.set_terms(model, x, y, {})


def test_tempered_matches_the_target_loss_and_keeps_the_model():
    model = small_mlp(SIZES)
    x, y = small_data(SIZES, n=60)
    before = [w.copy() for w in model.get_weights()]
    loss = metrics.mean_loss(model, x, y)
    copy, c = observations.tempered(model, loss * 0.5 + 0.5 * np.log(SIZES[-1]), x, y)
    assert 0.01 < c < 1
    assert np.isclose(metrics.mean_loss(copy, x, y), loss * 0.5 + 0.5 * np.log(SIZES[-1]), atol=1e-4)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    assert np.allclose(copy.get_weights()[-2], c * before[-2])
    with pytest.raises(ValueError, match="target_loss"):
        observations.tempered(model, -1.0, x, y)


# --------------------------------------------------------------------------- crossings

FRACTIONS = [0.1, 0.2, 0.3, 0.4, 0.5]


def test_crossing_of_two_mean_curves():
    a = np.array([0.1, 0.2, 0.3, 0.6, 0.7])
    b = np.full(5, 0.5)
    c = observations.crossing(FRACTIONS, a, b)
    assert c.mean_from == pytest.approx(0.4)
    assert c.band_from == pytest.approx(0.4)  # one seed: the band is the curve
    assert c.interpolated == pytest.approx(0.3 + 0.1 * 0.2 / 0.3)
    assert c.mean_changes == 1
    assert c.lead_after == pytest.approx(0.1)


def test_band_crossing_needs_separated_bands():
    b = np.array([[0.5] * 5, [0.6] * 5])  # band 0.5..0.6
    a = np.array([[0.1, 0.5, 0.58, 0.62, 0.9],
                  [0.1, 0.58, 0.70, 0.80, 0.9]])  # means 0.1 0.54 0.64 0.71 0.9
    c = observations.crossing(FRACTIONS, a, b)
    assert c.mean_from == pytest.approx(0.3)
    assert c.band_from == pytest.approx(0.4)
    assert c.interpolated == pytest.approx(0.2 + 0.1 * 0.01 / 0.10)


def test_only_the_final_overtaking_counts():
    a = np.array([0.9, 0.1, 0.1, 0.9, 0.9])
    b = np.full(5, 0.5)
    c = observations.crossing(FRACTIONS, a, b)
    assert c.mean_from == pytest.approx(0.4) and c.mean_changes == 2
    never = observations.crossing(FRACTIONS, b - 0.1, b)
    assert never.mean_from is None and never.band_from is None and never.interpolated is None
    assert np.isnan(never.lead_after) and never.mean_changes == 0
    always = observations.crossing(FRACTIONS, b + 0.1, b)
    assert always.mean_from == pytest.approx(0.1) == always.interpolated


def test_margin_ignores_noise_at_chance_level():
    chance = np.array([0.10, 0.11, 0.10, 0.11, 0.10])
    noisy = chance + np.array([0.0, 0.01, 0.015, 0.01, 0.012])
    assert observations.crossing(FRACTIONS, noisy, chance).mean_from is not None
    assert observations.crossing(FRACTIONS, noisy, chance, margin=0.02).mean_from is None


@pytest.mark.parametrize("kwargs, error", [
    (dict(fractions=[0.1]), ValueError),
    (dict(fractions=[0.1, 0.1, 0.2, 0.3, 0.4]), ValueError),
    (dict(fractions="0.1"), TypeError),
    (dict(acc_a=np.ones(4)), ValueError),
    (dict(acc_b=np.ones((2, 6))), ValueError),
    (dict(acc_a=np.array([np.nan] * 5)), ValueError),
    (dict(acc_a=np.array(["a"] * 5)), TypeError),
    (dict(margin=-0.1), ValueError),
    (dict(margin=True), TypeError),
])
def test_crossing_rejects_bad_arguments(kwargs, error):
    args = dict(fractions=FRACTIONS, acc_a=np.ones(5), acc_b=np.zeros(5)) | kwargs
    with pytest.raises(error, match=next(iter(kwargs))):
        observations.crossing(**args)


def test_crossing_rule_gives_the_heights_after_a_crossing():
    a = np.array([[0.1, 0.2, 0.3, 0.6, 0.7], [0.1, 0.2, 0.3, 0.5, 0.9]])
    b = np.full((2, 5), 0.4)
    c, heights = observations.crossing_rule(FRACTIONS, a, b, margin=0.02)
    assert observations.crosses(c) and c.mean_from == pytest.approx(0.4)
    assert heights == pytest.approx((0.8, 0.4))
    from_zero = [0.0] + FRACTIONS[1:]
    ahead = observations.crossing_rule(from_zero, b + 0.1, b, margin=0.02)
    assert ahead[0].mean_from == 0.0 and not observations.crosses(ahead[0])
    assert ahead[1] is None  # a lead from 0 % on is not a crossing
    assert observations.crossing_rule(FRACTIONS, b - 0.1, b, margin=0.0)[1] is None
    with pytest.raises(TypeError, match="Crossing"):
        observations.crosses(0.4)


# --------------------------------------------------------------------------- as-ran OBD

STAND_IN = (784, 6, 5, 10)


def _fake_setup(monkeypatch):
    """A tiny stand-in network per configuration and small random data; count trainings."""
    rng = np.random.default_rng(0)
    x = rng.random((300, 784), dtype=np.float32)
    y = rng.integers(0, 10, 300)
    calls = []

    def fake_train(config):
        calls.append(config)
        seeding.set_seed(config.seed + (100 if config.dropout else 0))
        return training.TrainedModel(models.mlp(STAND_IN, dropout=config.dropout, init_stddev=0.3),
                                     config, {})

    monkeypatch.setattr(training, "train_model", fake_train)
    monkeypatch.setattr(data, "load_post_split", lambda: ((x[:200], y[:200]), (x[200:], y[200:])))
    monkeypatch.setattr(data, "load_mnist", lambda: ((x[:200], y[:200]), (x[200:], y[200:])))
    return x, y, fake_train, calls


def test_as_ran_obd_sweep_replays_the_post_loop_and_caches(monkeypatch, isolated_cache):
    x, y, fake_train, calls = _fake_setup(monkeypatch)
    fractions = [0.1, 0.3, 0.5]
    got = observations.as_ran_obd_sweep("dropout", fractions, "global", seeds=[0, 1])
    assert got.shape == (2, 3)
    for row, seed in zip(got, [0, 1]):
        model = fake_train(networks.post_config("dropout", seed)).model
        want, _ = as_ran.obd_as_ran(model, fractions, "global", x[:200], y[:200],
                                    x[200:], y[200:], seed=seed)
        assert np.allclose(row, want)
    n_calls = len(calls)
    again = observations.as_ran_obd_sweep("dropout", fractions, "global", seeds=[0, 1])
    assert np.array_equal(got, again) and len(calls) == n_calls  # read back, no training


def test_as_ran_obd_sweep_reuses_the_published_runs(monkeypatch):
    seen = []

    def fake_sweep(run, fractions, seeds):
        seen.append(run)
        return np.zeros((len(seeds), len(fractions)))

    monkeypatch.setattr(as_ran, "as_ran_sweep", fake_sweep)
    observations.as_ran_obd_sweep("plain", [0.1], "layer", seeds=[0])
    observations.as_ran_obd_sweep("dropout_lr1e-5", [0.1], "global", seeds=[0])
    assert seen == ["obd_layerwise_prune", "obd_all_layers_dropout"]


@pytest.mark.parametrize("kwargs, error", [
    (dict(variant="huge"), ValueError),
    (dict(scope="rows"), ValueError),
    (dict(fractions=[]), ValueError),
    (dict(fractions=[2.0]), ValueError),
    (dict(seeds=[-1]), ValueError),
])
def test_as_ran_obd_sweep_checks_before_work(kwargs, error, monkeypatch):
    def no_training(config):
        raise AssertionError("validation must come before any work")

    monkeypatch.setattr(training, "train_model", no_training)
    args = dict(variant="dropout", fractions=[0.1], scope="global", seeds=[0]) | kwargs
    with pytest.raises(error, match=next(iter(kwargs))):
        observations.as_ran_obd_sweep(**args)

