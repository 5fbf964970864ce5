"""Masks, scopes, tie-breaking, applying/restoring, and the vectorised sweep."""

import numpy as np
import pytest

from conftest import small_data, small_mlp
from helpers import metrics, pruning, saliency


def test_global_mask_zeroes_exactly_the_lowest_scores():
    scores = [np.array([[5.0, 1.0], [3.0, 7.0]]), np.array([2.0, 6.0, 4.0, 0.5])]
    masks = pruning.prune_masks(scores, 0.5, "global")  # 8 scores -> 4 pruned
    assert [m.tolist() for m in masks] == [[[1, 0], [0, 1]], [0, 1, 1, 0]]
    assert all(m.dtype == np.float32 for m in masks)


def test_layer_scope_prunes_each_tensor_separately():
    scores = [np.arange(10.0), np.arange(100.0, 104.0)]
    masks = pruning.prune_masks(scores, 0.3, "layer")
    assert masks[0].tolist() == [0, 0, 0] + [1] * 7
    assert masks[1].tolist() == [0, 1, 1, 1]  # round(1.2) = 1
    glob = pruning.prune_masks(scores, 0.3, "global")  # 14 * 0.3 = 4.2 -> 4, all from tensor 0
    assert glob[0].sum() == 6 and glob[1].sum() == 4


@pytest.mark.parametrize("fraction", [0.0, 0.013, 0.25, 0.5, 0.999, 1.0])
@pytest.mark.parametrize("scope", ["global", "layer"])
def test_mask_counts_are_round_half_up(fraction, scope):
    rng = np.random.default_rng(0)
    scores = [rng.normal(size=s) for s in [(30, 7), (7,), (7, 3), (3,)]]
    masks = pruning.prune_masks(scores, fraction, scope)
    if scope == "global":
        total = sum(s.size for s in scores)
        assert sum(int((m == 0).sum()) for m in masks) == int(np.floor(fraction * total + 0.5))
    else:
        for s, m in zip(scores, masks):
            assert int((m == 0).sum()) == int(np.floor(fraction * s.size + 0.5))


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_pruned_counts_are_the_zeros_of_each_mask(scope):
    rng = np.random.default_rng(1)
    scores = [rng.normal(size=s) for s in [(30, 7), (7,), (7, 3), (3,)]]
    scores[1][:4] = scores[0][0, 0]  # ties across tensors, broken by position
    fractions = [0.0, 0.013, 0.25, 0.5, 0.77, 1.0]
    counts = pruning.pruned_counts(scores, fractions, scope)
    assert counts.shape == (6, 4) and counts.dtype == np.int64
    for row, fraction in zip(counts, fractions):
        masks = pruning.prune_masks(scores, fraction, scope)
        assert row.tolist() == [int((m == 0).sum()) for m in masks]
    with pytest.raises(ValueError, match="fractions"):
        pruning.pruned_counts(scores, [0.5, 1.5], scope)


def test_half_rounds_up():
    assert pruning.n_pruned(0.5, 5) == 3 and pruning.n_pruned(0.25, 2) == 1
    assert pruning.n_pruned(0.07, 47410) == 3319
    assert pruning.n_pruned(1.0, 10) == 10 and pruning.n_pruned(0.0, 0) == 0


@pytest.mark.parametrize("fraction,n,error,name", [
    (1.5, 10, ValueError, "fraction"), (-0.1, 10, ValueError, "fraction"),
    (np.nan, 10, ValueError, "fraction"), ("0.5", 10, TypeError, "fraction"),
    (0.5, -1, ValueError, "n must"), (0.5, 2.0, TypeError, "n must"), (0.5, True, TypeError, "n must")])
def test_n_pruned_refuses(fraction, n, error, name):
    with pytest.raises(error, match=name):
        pruning.n_pruned(fraction, n)


def test_ties_are_broken_by_index_like_top_k():
    scores = [np.zeros((2, 3)), np.zeros(4)]
    masks = pruning.prune_masks(scores, 0.5, "global")  # 10 tied -> first 5 indices
    assert masks[0].ravel().tolist() == [0, 0, 0, 0, 0, 1]
    assert masks[1].tolist() == [1, 1, 1, 1]


def test_pruned_context_restores_weights_and_apply_masks_zeroes():
    model = small_mlp()
    before = [w.copy() for w in model.get_weights()]
    masks = pruning.prune_masks(saliency.saliency(model, "magnitude"), 0.4)
    with pruning.pruned(model, masks):
        inside = model.get_weights()
        assert all(np.all(w[m == 0] == 0) for w, m in zip(inside, masks))
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    pruning.apply_masks(model, masks)
    assert np.isclose(pruning.sparsity(masks).mean(), np.mean([1 - m.mean() for m in masks]))
    assert sum(int((w == 0).sum()) for w in model.get_weights()) >= sum(int((m == 0).sum()) for m in masks)


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_sweep_matches_pruning_one_level_at_a_time(scope):
    sizes = (6, 9, 8, 3)
    model = small_mlp(sizes)
    x, y = small_data(sizes, n=300)
    scores = saliency.saliency(model, "obd", x, y)
    fractions = [0.0, 0.1, 0.35, 0.6, 0.9, 1.0]
    before = [w.copy() for w in model.get_weights()]
    swept = pruning.sweep(model, scores, fractions, x, y, scope)
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    for f, acc in zip(fractions, swept):
        with pruning.pruned(model, pruning.prune_masks(scores, f, scope)):
            assert acc == pytest.approx(metrics.accuracy(model, x, y), abs=1e-6)
