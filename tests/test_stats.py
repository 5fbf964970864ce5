"""What the book asks of its rank statistics: ranks of flattened tensors, invariance to monotone
maps, the overlap of bottom-k sets with pruning's own tie-breaks, and argument checks.
(The definitions themselves are SciPy's, and tested there.)"""

import numpy as np
import pytest

from helpers import pruning, stats


def test_rankdata_gives_tied_entries_their_mean_rank():
    assert stats.rankdata([2, 1, 2, 2, 0]).tolist() == [4.0, 2.0, 4.0, 4.0, 1.0]


def test_spearman_invariances():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=100), rng.normal(size=100)
    r = stats.spearman(a, b)
    assert stats.spearman(np.exp(a), b ** 3) == pytest.approx(r)  # monotone maps keep ranks
    assert stats.spearman(b, a) == pytest.approx(r)
    assert stats.spearman(a, a) == pytest.approx(1.0)
    assert stats.spearman(a, -a) == pytest.approx(-1.0)
    assert -1.0 <= r <= 1.0


def test_spearman_accepts_lists_of_tensors():
    rng = np.random.default_rng(4)
    parts_a = [rng.normal(size=(3, 4)), rng.normal(size=4)]
    parts_b = [rng.normal(size=(3, 4)), rng.normal(size=4)]
    flat_a = np.concatenate([p.ravel() for p in parts_a])
    flat_b = np.concatenate([p.ravel() for p in parts_b])
    assert stats.spearman(parts_a, parts_b) == pytest.approx(stats.spearman(flat_a, flat_b))


def test_bottom_k_overlap():
    a = np.arange(10.0)
    assert stats.bottom_k_overlap(a, a, 4) == 1.0
    assert stats.bottom_k_overlap(a, -a, 5) == 0.0
    assert stats.bottom_k_overlap(a, -a, 6) == pytest.approx(2 / 6)
    assert stats.bottom_k_overlap(a, a[::-1], 10) == 1.0


def test_bottom_k_overlap_breaks_ties_like_prune_masks():
    rng = np.random.default_rng(5)
    a = [rng.integers(0, 3, size=(4, 5)).astype(float), rng.integers(0, 3, size=7).astype(float)]
    b = [rng.normal(size=(4, 5)), rng.normal(size=7)]
    n = 27
    for k in (1, 5, 13, 26):
        ma = flat_masks(pruning.prune_masks(a, k / n))
        mb = flat_masks(pruning.prune_masks(b, k / n))
        both = np.sum((ma == 0) & (mb == 0)) / k
        assert stats.bottom_k_overlap(a, b, k) == pytest.approx(both)


def flat_masks(masks):
    return np.concatenate([m.ravel() for m in masks])


@pytest.mark.parametrize("bad, error", [
    ([], ValueError), ([1.0, np.nan], ValueError), ([1.0, np.inf], ValueError),
    (np.array([True, False]), TypeError), (["a", "b"], TypeError),
])
def test_bad_inputs_raise(bad, error):
    with pytest.raises(error, match=r"\ba\b"):  # the message names the argument
        stats.rankdata(bad)


def test_spearman_refuses_mismatched_or_constant_inputs():
    with pytest.raises(ValueError, match="same number"):
        stats.spearman([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="constant"):
        stats.spearman([1, 1, 1], [1, 2, 3])
    with pytest.raises(ValueError, match="at least 2"):
        stats.spearman([1], [2])


def test_bottom_k_overlap_refuses_bad_k():
    with pytest.raises(ValueError, match="k must be"):
        stats.bottom_k_overlap([1, 2, 3], [3, 2, 1], 0)
    with pytest.raises(ValueError, match="k must be"):
        stats.bottom_k_overlap([1, 2, 3], [3, 2, 1], 4)
    with pytest.raises(TypeError, match="k must be"):
        stats.bottom_k_overlap([1, 2, 3], [3, 2, 1], 1.5)
    with pytest.raises(ValueError, match="same number"):
        stats.bottom_k_overlap([1, 2, 3], [3, 2], 1)
