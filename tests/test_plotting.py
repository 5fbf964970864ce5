"""The book's figure style: stored figures fit the text column, published curves take plain labels."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

from helpers import plotting


def width(png: bytes) -> int:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(png[16:20], "big")


@pytest.mark.parametrize("inches", [4.0, 8.5, 14.0, 30.0])
def test_a_figure_is_stored_at_most_850_pixels_wide(inches):
    fig, ax = plt.subplots(figsize=(inches, 3.0))
    ax.plot([0, 1], [0, 1], label="a long legend entry that sticks out of the axes")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    stored = width(plotting.png(fig))
    plt.close(fig)
    assert stored <= plotting.MAX_WIDTH_PX


def test_a_narrow_figure_keeps_its_resolution():
    fig, ax = plt.subplots(figsize=(4.0, 3.0))
    ax.plot([0, 1], [0, 1])
    assert width(plotting.png(fig)) <= 4.0 * fig.dpi
    plt.close(fig)


def test_png_rejects_what_is_not_a_figure_or_a_width():
    fig = plt.figure()
    with pytest.raises(TypeError, match="fig"):
        plotting.png("figure")
    with pytest.raises(ValueError, match="max_width"):
        plotting.png(fig, max_width=10)
    plt.close(fig)


def test_published_curve_draws_what_it_is_given_with_its_label():
    fig, ax = plt.subplots()
    plotting.published_curve(ax, [0.0, 0.1], [0.97, 0.5], label="published, 2016: OBD, all layers")
    line = ax.get_lines()[0]
    assert line.get_label() == "published, 2016: OBD, all layers"
    np.testing.assert_allclose(line.get_xdata(), [0.0, 10.0])
    with pytest.raises(ValueError, match="same length"):
        plotting.published_curve(ax, [0.0, 0.1], [0.97])
    plt.close(fig)


def test_every_method_has_a_colour_a_marker_and_a_name_and_colours_differ():
    methods = set(plotting.METHOD_NAMES)
    assert methods <= set(plotting.METHOD_COLOURS) and methods <= set(plotting.METHOD_MARKERS)
    colours = [plotting.METHOD_COLOURS[m] for m in methods]
    assert len(set(colours)) == len(colours)
