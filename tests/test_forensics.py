"""helpers.post.forensics: the 2016 pixel scaling, float64 row sums and the appendix's argument checks."""

import numpy as np
import pytest

from conftest import small_data, small_mlp
from helpers import data, hessian, network
from helpers.post import as_ran, forensics


def test_2016_scaling_differs_in_the_last_bit_for_126_levels():
    levels = np.arange(256, dtype=np.uint8)
    book = levels.astype(np.float32) / 255
    old = forensics.pixels_2016(levels)
    differ = forensics.levels_that_differ()
    assert differ.size == 126 and 0 not in differ and 255 not in differ
    gap = np.abs(old.view(np.int32) - book.view(np.int32))  # distance in float32 steps
    assert gap.max() == 1 and np.array_equal(np.flatnonzero(gap), differ)
    with pytest.raises(TypeError, match="uint8"):
        forensics.pixels_2016(book)


def test_uint8_round_trip():
    u = np.arange(256, dtype=np.uint8).reshape(4, 64)
    assert np.array_equal(forensics.uint8_from_scaled(u.astype(np.float32) / 255), u)
    with pytest.raises(ValueError, match="uint8 / 255"):
        forensics.uint8_from_scaled(forensics.pixels_2016(u))  # 2016 pixels are not the book's
    with pytest.raises(ValueError, match="outside"):
        forensics.uint8_from_scaled(np.array([1.5], np.float32))
    with pytest.raises(TypeError, match="float32"):
        forensics.uint8_from_scaled(np.array([0.5]))


def test_book_pixels_are_uint8_over_255():
    _, (x_test, _) = data.load_mnist()
    u = forensics.uint8_from_scaled(x_test[:500])
    assert u.dtype == np.uint8 and u.max() == 255


def test_float64_row_sums_agree_with_the_library():
    model, (x, y) = small_mlp(), small_data()
    chain = network.dense_chain(model)
    ours = forensics._row_sums_float64(chain.weights(), x, y, chain.layout, chain.n_classes)
    theirs = hessian.hessian_row_sums(model, x, y)  # mean loss, float32
    for a, b in zip(ours, theirs):
        assert a.dtype == np.float64
        np.testing.assert_allclose(a / len(x), b, rtol=1e-3, atol=1e-5)
    tf0 = as_ran.tf0_row_sums(model, x, y)  # summed loss, like ours
    for a, b in zip(ours, tf0):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)


def test_in_band():
    band = np.array([[0.0, 1.0], [1.0, 2.0], [2.0, 3.0]])
    assert forensics.in_band(np.array([1.0, 5.0]), band).tolist() == [True, False]
    assert forensics.in_band(np.array([[0.0, 2.0]]), band, (0, 100)).tolist() == [[True, True]]
    with pytest.raises(ValueError, match="band"):
        forensics.in_band(np.array([1.0, 2.0, 3.0]), band)


def test_scan_offsets_stay_in_the_first_epoch():
    assert forensics.N_BATCHES == 859
    assert forensics.SCAN_OFFSETS[0] == 0 and forensics.SCAN_OFFSETS[-1] == 855
    last = forensics.SCAN_OFFSETS[-1] + len(forensics.SCAN_FRACTIONS)
    assert 64 * last <= 55_000 < 64 * (last + 1)


def test_child_arguments_are_checked():
    with pytest.raises(TypeError, match="onednn"):
        as_ran.in_back_ends("forensics_offset_scan_here", forensics.__name__, "offset_scan_here", [((), "yes")])
    with pytest.raises(ValueError, match="function"):
        forensics._both_back_ends("os.system")
