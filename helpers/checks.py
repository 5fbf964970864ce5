"""Argument checks shared by every helper module.

The book's contract (see CONTRIBUTING.md): a public helper validates its arguments before any
work or change to a model, and its error names the argument. These are the checks that several
modules need; each returns the value in the type the caller works with.
"""

from __future__ import annotations

import numpy as np


def integer(value: object, name: str, low: int = 1) -> int:
    """An int (numpy ints accepted, bools refused) that is at least ``low``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < low:
        wanted = "a positive int" if low == 1 else f">= {low}"
        raise ValueError(f"{name} must be {wanted}, got {value!r}")
    return int(value)


def real(value: object, name: str) -> float:
    """A finite real number (ints accepted, bools refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a float, got {value!r}")
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
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
