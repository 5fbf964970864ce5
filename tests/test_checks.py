"""The shared argument checks (helpers.checks) and pruning's mask check."""

import json

import numpy as np
import pytest

from helpers import checks, pruning


@pytest.mark.parametrize("value,low,error", [
    (True, 1, TypeError), (1.0, 1, TypeError), ("3", 1, TypeError),
    (0, 1, ValueError), (-1, 0, ValueError)])
def test_integer_refuses(value, low, error):
    with pytest.raises(error, match="width"):
        checks.integer(value, "width", low)


def test_integer_accepts_numpy_ints_and_returns_values_a_cache_key_can_hold():
    value = checks.integer(np.int64(3), "width")
    assert value == 3 and json.dumps({"width": value}) == '{"width": 3}'  # np.int64 is not JSON
    assert checks.integer(0, "seed", 0) == 0


@pytest.mark.parametrize("value,error", [
    (True, TypeError), (1.0, TypeError), ("0", TypeError), (None, TypeError),
    (-1, ValueError), (2**32, ValueError)])
def test_seed_refuses(value, error):
    with pytest.raises(error, match="start"):
        checks.seed(value, "start")


def test_seed_accepts_numpy_ints_up_to_numpys_limit():
    value = checks.seed(np.uint32(2**32 - 1))
    assert value == 2**32 - 1 and type(value) is int
    assert checks.seed(0) == 0
    with pytest.raises(ValueError, match="^seed "):  # the default name
        checks.seed(-1)


@pytest.mark.parametrize("value,error,pattern", [
    ("012", TypeError, "^seeds must be a sequence"), (3, TypeError, "^seeds must be a sequence"),
    ({0, 1}, TypeError, "^seeds must be a sequence"), ((), ValueError, "^seeds is empty"),
    ([0, True], TypeError, r"^seeds\[1\]"), ([0, 1.0], TypeError, r"^seeds\[1\]"),
    ([2, -1], ValueError, r"^seeds\[1\]")])
def test_seeds_refuses_naming_the_bad_entry(value, error, pattern):
    with pytest.raises(error, match=pattern):
        checks.seeds(value)


def test_seeds_returns_a_list_of_python_ints():
    out = checks.seeds(np.arange(3))
    assert out == [0, 1, 2] and json.dumps(out) == "[0, 1, 2]"
    assert checks.seeds((5,), "runs") == [5]
    with pytest.raises(ValueError, match="runs is empty"):
        checks.seeds([], "runs")


@pytest.mark.parametrize("check,value,error", [
    (checks.positive, 0.0, ValueError), (checks.positive, float("inf"), ValueError),
    (checks.positive, True, TypeError), (checks.real, float("nan"), ValueError),
    (checks.rate, 1.0, ValueError), (checks.rate, float("nan"), ValueError),
    (checks.rate, "0.5", TypeError)])
def test_float_checks_refuse(check, value, error):
    with pytest.raises(error, match="lr"):
        check(value, "lr")


def test_float_checks_return_values_a_cache_key_can_hold():
    for check, value, text in ((checks.positive, np.float32(0.5), "0.5"), (checks.real, -2, "-2.0"),
                               (checks.rate, np.float64(0.0), "0.0")):
        assert json.dumps(check(value, "x")) == text  # np.float32 is not JSON


@pytest.mark.parametrize("array,error", [
    (np.array([True]), TypeError), (np.array(["a"]), TypeError),
    (np.zeros(0), ValueError), (np.array([1.0, np.nan]), ValueError)])
def test_numbers_refuses(array, error):
    with pytest.raises(error, match="scores"):
        checks.numbers(array, "scores")


def test_numbers_may_allow_nan():
    out = checks.numbers([1.0, np.nan], "scores", finite=False)
    assert out.shape == (2,)


@pytest.mark.parametrize("fractions,order,error", [
    ((0.5, 0.4), "non-decreasing", ValueError), ((0.5, 0.5), "increasing", ValueError),
    ((), "any", ValueError), ("0.5", "any", TypeError), ((0.5, 1.5), "any", ValueError),
    ((0.5, True), "any", TypeError)])
def test_fractions_refuses(fractions, order, error):
    with pytest.raises(error, match="levels"):
        checks.fractions(fractions, "levels", order=order)


def test_fractions_orders():
    assert checks.fractions((0.5, 0.5), order="non-decreasing") == [0.5, 0.5]
    assert checks.fractions((0.9, 0.1)) == [0.9, 0.1]
    with pytest.raises(ValueError, match="at least 2"):
        checks.fractions((0.5,), order="increasing", at_least=2)


@pytest.mark.parametrize("order", ["decreasing", "Increasing", "any "])
def test_fractions_refuses_an_order_it_does_not_know(order):
    """A misspelled order is an error, not an unchecked sequence."""
    with pytest.raises(ValueError, match="order must be one of"):
        checks.fractions((0.9, 0.1), order=order)


def test_choice_and_flag():
    assert checks.choice("layer", "scope", ("global", "layer")) == "layer"
    with pytest.raises(ValueError, match="scope must be one of"):
        checks.choice("Layer", "scope", ("global", "layer"))
    for bad in (1, None, b"layer"):
        with pytest.raises(TypeError, match="scope must be a str, one of"):
            checks.choice(bad, "scope", ("global", "layer"))
    assert checks.flag(np.bool_(True), "trace") is True
    for bad in (1, 0, "yes", None):
        with pytest.raises(TypeError, match="trace must be a bool"):
            checks.flag(bad, "trace")


def test_check_masks_accepts_bools_and_names_the_bad_array():
    weights = [np.zeros((2, 2)), np.zeros(2)]
    out = pruning.check_masks([np.ones((2, 2), bool), np.array([0, 1])], weights)
    assert [m.dtype for m in out] == [np.float32, np.float32]
    with pytest.raises(ValueError, match=r"keep\[1\]"):
        pruning.check_masks([np.ones((2, 2)), np.array([0.5, 1])], weights, name="keep")
    with pytest.raises(ValueError, match=r"keep\[0\]"):
        pruning.check_masks([np.ones(4), np.ones(2)], weights, name="keep")
    with pytest.raises(TypeError, match="keep"):
        pruning.check_masks(np.ones(4), weights, name="keep")
