"""Rank statistics for comparing saliencies (chapters "Second derivatives in practice" and "Saliencies").

SciPy is not a dependency of the book, so the few rank statistics the
chapters need are written here with NumPy alone:

- ``rankdata``: ranks 1..n with tied values given the average of their ranks;
- ``spearman``: Spearman's rank correlation, the Pearson correlation of those ranks;
- ``bottom_k_overlap``: the share of the ``k`` lowest-scored entries two scorings
  have in common, ties broken by position as ``helpers.pruning.prune_masks`` does.
"""

from __future__ import annotations

import numpy as np


def rankdata(a: object) -> np.ndarray:
    """Ranks ``1..n`` of the entries of ``a`` (flattened), tied values sharing their mean rank."""
    a = _check_vector(a, "a")
    order = np.argsort(a, kind="stable")
    sorted_a = a[order]
    # Start of each run of equal values in sorted order, and the run lengths.
    starts = np.flatnonzero(np.r_[True, sorted_a[1:] != sorted_a[:-1]])
    lengths = np.diff(np.r_[starts, a.size])
    # Ranks starts+1 .. starts+length share their mean.
    mean_rank = starts + (lengths + 1) / 2.0
    ranks = np.empty(a.size, np.float64)
    ranks[order] = np.repeat(mean_rank, lengths)
    return ranks


def spearman(a: object, b: object) -> float:
    """Spearman's rank correlation of ``a`` and ``b`` (flattened, equal size), ties averaged.

    Returns a value in [-1, 1]. Raises ``ValueError`` if either input is constant,
    where the correlation is undefined.
    """
    a = _check_vector(a, "a")
    b = _check_vector(b, "b")
    if a.size != b.size:
        raise ValueError(f"a and b must have the same number of entries, got {a.size} and {b.size}")
    if a.size < 2:
        raise ValueError(f"a and b need at least 2 entries, got {a.size}")
    for name, v in (("a", a), ("b", b)):
        if np.all(v == v[0]):
            raise ValueError(f"{name} is constant: its rank correlation is undefined")
    ra = rankdata(a) - (a.size + 1) / 2.0
    rb = rankdata(b) - (b.size + 1) / 2.0
    r = float(np.dot(ra, rb) / np.sqrt(np.dot(ra, ra) * np.dot(rb, rb)))
    return min(1.0, max(-1.0, r))


def bottom_k_overlap(a: object, b: object, k: int) -> float:
    """The fraction of the ``k`` lowest entries of ``a`` that are also among the ``k`` lowest of ``b``.

    Entries are matched by position (both inputs flattened, equal size); ties are
    broken by position, the earlier entry counting as lower, exactly as
    ``helpers.pruning.prune_masks`` chooses what to prune. 1 means the two
    scorings would prune the same ``k`` parameters; for independent random
    scores the expected value is ``k / n``.
    """
    a = _check_vector(a, "a")
    b = _check_vector(b, "b")
    if a.size != b.size:
        raise ValueError(f"a and b must have the same number of entries, got {a.size} and {b.size}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"k must be an int, got {k!r}")
    if not 1 <= k <= a.size:
        raise ValueError(f"k must be in [1, {a.size}], got {k}")
    low_a = np.argsort(a, kind="stable")[:k]
    low_b = np.argsort(b, kind="stable")[:k]
    return float(np.intersect1d(low_a, low_b, assume_unique=True).size / k)


def _check_vector(a: object, name: str) -> np.ndarray:
    """A finite, non-empty numeric array, flattened to float64."""
    if isinstance(a, (list, tuple)) and any(isinstance(v, np.ndarray) and v.ndim > 0 for v in a):
        # A list of per-tensor arrays (as the saliency helpers return): concatenate.
        a = np.concatenate([np.asarray(v).ravel() for v in a])
    try:
        arr = np.asarray(a)
    except Exception as exc:  # pragma: no cover - exotic objects
        raise TypeError(f"{name} must be an array of numbers") from exc
    if arr.dtype == bool or arr.dtype == object or not (
            np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"{name} must hold numbers, got dtype {arr.dtype}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    arr = arr.astype(np.float64).ravel()
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr
