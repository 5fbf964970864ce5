"""Rank statistics for comparing saliencies (chapters "Second derivatives in practice" and "Saliencies").

- ``rankdata``: ranks 1..n with tied values given the average of their ranks
  (``scipy.stats.rankdata``);
- ``spearman``: Spearman's rank correlation, the Pearson correlation of those ranks
  (``scipy.stats.spearmanr``);
- ``bottom_k_overlap``: the share of the ``k`` lowest-scored entries two scorings
  have in common, ties broken by position as ``helpers.pruning.prune_masks`` does.

Each accepts an array or a list of per-tensor arrays (as the saliency helpers
return), flattened, and checks its arguments before calling SciPy.
"""

from __future__ import annotations

import numpy as np
import scipy.stats

from helpers import checks


def rankdata(a: object) -> np.ndarray:
    """Ranks ``1..n`` of the entries of ``a`` (flattened), tied values sharing their mean rank."""
    return scipy.stats.rankdata(_check_vector(a, "a"), method="average")


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
    r = float(scipy.stats.spearmanr(a, b).statistic)
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
    k = checks.integer(k, "k")
    if k > a.size:
        raise ValueError(f"k must be in [1, {a.size}], got {k}")
    low_a = np.argsort(a, kind="stable")[:k]
    low_b = np.argsort(b, kind="stable")[:k]
    return float(np.intersect1d(low_a, low_b, assume_unique=True).size / k)


def _check_vector(a: object, name: str) -> np.ndarray:
    """A finite, non-empty numeric array (or list of per-tensor arrays), flattened to float64."""
    if isinstance(a, (list, tuple)) and any(isinstance(v, np.ndarray) and v.ndim > 0 for v in a):
        a = np.concatenate([np.asarray(v).ravel() for v in a])
    return checks.numbers(a, name).astype(np.float64).ravel()
