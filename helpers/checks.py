"""Argument checks shared by every helper module.

The book's contract (see CONTRIBUTING.md): a public helper validates its arguments before any
work or change to a model, and its error names the argument. These are the checks that several
modules need; each returns the value in the type the caller works with.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np

SEED_LIMIT = 2**32
"""Seeds lie in ``[0, SEED_LIMIT)``, the range NumPy's (and so ``seeding.set_seed``'s) seeding takes."""


def choice(value: object, name: str, options: Collection[str]) -> str:
    """One of the strings ``options`` (a method, a scope, a run's name...): TypeError for a
    non-string, ValueError for another string."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, one of {tuple(options)}, got {value!r}")
    if value not in options:
        raise ValueError(f"{name} must be one of {tuple(options)}, got {value!r}")
    return value


def flag(value: object, name: str) -> bool:
    """A bool (numpy bools accepted; 0 and 1 refused)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {value!r}")
    return bool(value)


def integer(value: object, name: str, low: int = 1, high: int | None = None) -> int:
    """An int (numpy ints accepted, bools refused) in ``[low, high]`` (no upper bound if ``high`` is None)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if high is not None and not low <= value <= high:
        raise ValueError(f"{name} must be an int in [{low}, {high}], got {value!r}")
    if value < low:
        wanted = "a positive int" if low == 1 else f">= {low}"
        raise ValueError(f"{name} must be {wanted}, got {value!r}")
    return int(value)


def seed(value: object, name: str = "seed") -> int:
    """One random seed: an int in ``[0, 2**32)`` (numpy ints accepted, bools refused).

    The one seed check of the book (chapter "The Taylor expansion of the loss" seeds every
    chapter with ``seeding.set_seed``): TypeError for a non-int, ValueError out of range.
    """
    value = integer(value, name, 0)
    if value >= SEED_LIMIT:
        raise ValueError(f"{name} must be below 2**32, got {value!r}")
    return value


def seeds(value: object, name: str = "seeds") -> list[int]:
    """A non-empty sequence (or 1-D array) of seeds, each as :func:`seed`; returns Python ints.

    TypeError for a string or a non-sequence, or an element that is not an int; ValueError
    when it is empty or an element is out of range. The element's error names ``name[i]``.
    """
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)):
        raise TypeError(f"{name} must be a sequence of ints, got {value!r}")
    if len(value) == 0:
        raise ValueError(f"{name} is empty")
    return [seed(s, f"{name}[{i}]") for i, s in enumerate(value)]


def real(value: object, name: str, low: float | None = None) -> float:
    """A finite real number (ints accepted, bools refused), at least ``low`` if given."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a float, got {value!r}")
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if low is not None and value < low:
        raise ValueError(f"{name} must be >= {low}, got {value!r}")
    return float(value)


def positive(value: object, name: str) -> float:
    """A finite real number greater than zero."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a float, got {value!r}")
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be positive and finite, got {value!r}")
    return float(value)


def rate(value: object, name: str) -> float:
    """A real number in ``[0, 1)``: a dropout rate or an Adam decay."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a float, got {value!r}")
    if not 0.0 <= value < 1.0:  # also refuses NaN
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    return float(value)


def fraction(value: object, name: str = "fraction") -> float:
    """A real number in ``[0, 1]``: a pruned fraction (chapter "Saliencies")."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a float in [0, 1], got {value!r}")
    if not 0.0 <= value <= 1.0:  # also refuses NaN
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    return float(value)


ORDERS = ("any", "non-decreasing", "increasing")


def fractions(values: object, name: str = "fractions", *, order: str = "any",
              at_least: int = 1) -> list[float]:
    """A sequence of at least ``at_least`` fractions (each as :func:`fraction`) in ``order``,
    one of ``ORDERS``."""
    order = choice(order, "order", ORDERS)
    at_least = integer(at_least, "at_least", 0)
    if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray)):
        raise TypeError(f"{name} must be a sequence of floats, got {values!r}")
    if len(values) < at_least:
        raise ValueError(f"{name} needs at least {at_least} level(s), got {len(values)}")
    out = [fraction(f, f"{name}[{i}]") for i, f in enumerate(values)]
    steps = np.diff(out)
    if (order == "non-decreasing" and np.any(steps < 0)) or (order == "increasing" and np.any(steps <= 0)):
        raise ValueError(f"{name} must be {order}, got {out}")
    return out


def numbers(array: object, name: str, finite: bool = True) -> np.ndarray:
    """A non-empty array of numbers (not bools); with ``finite``, no NaN or infinity."""
    array = np.asarray(array)
    if array.dtype == bool or not (np.issubdtype(array.dtype, np.floating)
                                   or np.issubdtype(array.dtype, np.integer)):
        raise TypeError(f"{name} must hold numbers, got dtype {array.dtype}")
    if array.size == 0:
        raise ValueError(f"{name} is empty")
    if finite and not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return array
