"""One figure style for the whole book (colour and marker per method, line style per scope).

Introduced in chapter "Saliencies"; every chapter calls ``use_book_style()``
in its setup cell and draws curves with ``curve_with_band`` so a method, a
scope and a network look the same on every page. The colours are the
Okabe-Ito palette, which readers with any common colour-vision deficiency can
tell apart; each method also has its own marker, so curves differ in greyscale.
Figures are stored at most ``MAX_WIDTH_PX`` pixels wide.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from helpers import checks

MAX_WIDTH_PX = 850  # the book's text column is about 750 px wide
OKABE_ITO = ("#000000", "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7")
METHOD_COLOURS = {
    "magnitude": "#0072B2",  # blue
    "obd": "#D55E00",  # vermillion
    "obd_lecun": "#E69F00",  # orange
    "fisher": "#F0E442",  # yellow
    "asran_magnitude": "#56B4E9",  # sky blue
    "asran_obd": "#CC79A7",  # reddish purple
    "obs": "#009E73",  # bluish green
    "random": "#777777",  # grey, outside the palette: a baseline, not a method
    "published": "#000000",
}
METHOD_MARKERS = {
    "magnitude": "s", "obd": "o", "obd_lecun": "^", "fisher": "v", "asran_magnitude": "D",
    "asran_obd": "P", "obs": "X", "random": "x", "published": "o",
}
SCOPE_LINESTYLES = {"global": "-", "layer": "--"}
SCOPE_NAMES = {"global": "all layers", "layer": "layer-wise"}
METHOD_NAMES = {
    "magnitude": "magnitude |w|",
    "obd": "OBD (exact diagonal)",
    "obd_lecun": "OBD (LeCun diagonal)",
    "fisher": "OBD (Fisher diagonal)",
    "asran_magnitude": "as ran: most negative w",
    "asran_obd": "as ran: most negative H·1",
    "obs": "OBS",
    "random": "random",
}


def use_inline_backend() -> None:
    """Draw figures inline when running in a Jupyter kernel, whatever ``MPLBACKEND`` says.

    A kernel started with ``MPLBACKEND=Agg`` (common on servers and CI images)
    would otherwise neither show nor store figures. Outside a kernel (a plain
    script, the unit tests) this does nothing.
    """
    shell = _kernel_shell()
    if shell is not None:
        shell.run_line_magic("matplotlib", "inline")


def use_book_style() -> None:
    """Set the book's matplotlib defaults (size, fonts, grid), with inline figures in Jupyter.

    Every chapter calls it once in its setup cell (see ``use_inline_backend``).
    """
    use_inline_backend()
    _cap_stored_width()
    mpl.rcParams.update({
        "axes.prop_cycle": mpl.cycler(color=OKABE_ITO[1:] + OKABE_ITO[:1]),
        "figure.figsize": (7.0, 4.2),
        "figure.dpi": 100,
        "savefig.dpi": 150,
        "font.size": 10,
        "axes.titlesize": 11,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "legend.fontsize": 8,
        "legend.frameon": False,
        "axes.spines.top": False,
        "axes.spines.right": False,
    })


def png(fig: Figure, max_width: int = MAX_WIDTH_PX) -> bytes:
    """``fig`` as PNG bytes, cropped to its content, at most ``max_width`` pixels wide.

    A figure wider than that is drawn at a lower resolution rather than
    stored wide and shrunk by the browser (split its panels to keep text legible).
    """
    if not isinstance(fig, Figure):
        raise TypeError(f"fig must be a matplotlib Figure, got {type(fig).__name__}")
    max_width = checks.integer(max_width, "max_width", 100)
    dpi = fig.dpi
    for _ in range(8):
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
        data = buf.getvalue()
        width = int.from_bytes(data[16:20], "big")
        if width <= max_width:
            return data
        # The cropped width is not quite proportional to the resolution (text is laid out
        # again at each one), so aim a little below the limit and try again if needed.
        dpi *= min((max_width - 8) / width, 0.99)
    raise RuntimeError(f"could not draw the figure within {max_width} pixels")  # pragma: no cover


def _cap_stored_width() -> None:
    """In a Jupyter kernel, store every figure through ``png`` (at most ``MAX_WIDTH_PX`` wide)."""
    shell = _kernel_shell()
    if shell is None:
        return
    formatter = shell.display_formatter.formatters["image/png"]
    formatter.for_type(Figure, lambda fig: base64.b64encode(png(fig)).decode("ascii"))


def _kernel_shell():
    """The IPython shell when running in a Jupyter kernel, else None (a plain script, the tests)."""
    try:
        from IPython import get_ipython
    except ImportError:  # IPython is a dependency of ipykernel; plain Python may lack it
        return None
    shell = get_ipython()
    return shell if shell is not None and getattr(shell, "kernel", None) is not None else None


def label(method: str, scope: str | None = None, model: str | None = None) -> str:
    """A legend entry that names the method, the scope and the network."""
    parts = [METHOD_NAMES.get(method, method)]
    if scope is not None:
        parts.append(SCOPE_NAMES.get(scope, scope))
    if model is not None:
        parts.append(model)
    return ", ".join(parts)


def curve_with_band(ax: plt.Axes, fractions: Sequence[float], accuracies: np.ndarray,
                    method: str, scope: str = "global", model: str | None = None,
                    **kwargs) -> None:
    """Mean over seeds as a line, min to max as a shaded band; x in percent."""
    acc = np.atleast_2d(np.asarray(accuracies, float))
    x = 100 * np.asarray(fractions, float)
    colour = kwargs.pop("color", METHOD_COLOURS.get(method, None))
    linestyle = kwargs.pop("linestyle", SCOPE_LINESTYLES.get(scope, "-"))
    kwargs.setdefault("marker", METHOD_MARKERS.get(method))
    kwargs.setdefault("markersize", 4)
    kwargs.setdefault("markevery", max(1, len(x) // 10))
    line, = ax.plot(x, acc.mean(axis=0), color=colour, linestyle=linestyle,
                    label=kwargs.pop("label", label(method, scope, model)) +
                    (f" ({acc.shape[0]} seeds)" if acc.shape[0] > 1 else ""), **kwargs)
    if acc.shape[0] > 1:
        ax.fill_between(x, acc.min(axis=0), acc.max(axis=0), color=line.get_color(), alpha=0.2,
                        linewidth=0)


def published_curve(ax: plt.Axes, fractions: Sequence[float], accuracies: Sequence[float],
                    label: str = "published, 2016") -> None:
    """Published accuracies (for example ``published.curve(run)``) as a dotted black line
    with open circles; x in percent."""
    fractions, accuracies = np.asarray(fractions, float), np.asarray(accuracies, float)
    if fractions.shape != accuracies.shape or fractions.ndim != 1:
        raise ValueError("fractions and accuracies must be 1-D arrays of the same length, got shapes "
                         f"{fractions.shape} and {accuracies.shape}")
    ax.plot(100 * fractions, accuracies, linestyle=":", marker="o", markersize=4,
            markerfacecolor="white", color=METHOD_COLOURS["published"], label=label)


def accuracy_axes(ax: plt.Axes, title: str | None = None) -> None:
    """Label an accuracy-against-sparsity plot."""
    ax.set_xlabel("parameters pruned (%)")
    ax.set_ylabel("test accuracy (fraction of 10,000)")
    ax.set_ylim(0.0, 1.0)
    ax.axhline(0.1, color="grey", linewidth=0.8, linestyle=":")
    if title:
        ax.set_title(title)
    ax.legend(loc="lower left")


def first_layer_masks(ax_grid: np.ndarray, kernel_mask: np.ndarray, n_units: int = 10) -> None:
    """Draw the input mask of the first ``n_units`` hidden units as 28x28 images."""
    for i, ax in enumerate(np.ravel(ax_grid)[:n_units]):
        ax.imshow(kernel_mask[:, i].reshape(28, 28), cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"unit {i}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)


def layer_sparsity_bars(ax: plt.Axes, sparsities: dict[str, Sequence[float]],
                        names: Sequence[str]) -> None:
    """Grouped bars: the share of each weight tensor pruned, one group per tensor."""
    width = 0.8 / max(len(sparsities), 1)
    for j, (key, values) in enumerate(sparsities.items()):
        ax.bar(np.arange(len(names)) + j * width, 100 * np.asarray(values), width, label=key)
    ax.set_xticks(np.arange(len(names)) + width * (len(sparsities) - 1) / 2, names, rotation=30)
    ax.set_ylabel("pruned (%)")
    ax.legend()
