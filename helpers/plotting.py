"""One figure style for the whole book (colours per method, line style per scope).

Introduced in chapter "Saliencies"; every chapter calls ``use_book_style()``
in its setup cell and draws curves with ``curve_with_band`` so a method, a
scope and a network look the same on every page.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np

from helpers.post import published

METHOD_COLOURS = {
    "magnitude": "#1f77b4",
    "obd": "#d62728",
    "obd_lecun": "#ff7f0e",
    "fisher": "#9467bd",
    "asran_magnitude": "#17becf",
    "asran_obd": "#8c564b",
    "obs": "#2ca02c",
    "published": "#000000",
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
}


def use_inline_backend() -> None:
    """Draw figures inline when running in a Jupyter kernel, whatever ``MPLBACKEND`` says.

    A kernel started with ``MPLBACKEND=Agg`` (common on servers and CI images)
    would otherwise neither show nor store figures. Outside a kernel (a plain
    script, the unit tests) this does nothing.
    """
    try:
        from IPython import get_ipython
    except ImportError:  # IPython is a dependency of ipykernel; plain Python may lack it
        return
    shell = get_ipython()
    if shell is not None and getattr(shell, "kernel", None) is not None:
        shell.run_line_magic("matplotlib", "inline")


def use_book_style() -> None:
    """Set the book's matplotlib defaults (size, fonts, grid), with inline figures in Jupyter.

    Every chapter calls it once in its setup cell (see ``use_inline_backend``).
    """
    use_inline_backend()
    mpl.rcParams.update({
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
    line, = ax.plot(x, acc.mean(axis=0), color=colour, linestyle=linestyle,
                    label=kwargs.pop("label", label(method, scope, model)) +
                    (f" ({acc.shape[0]} seeds)" if acc.shape[0] > 1 else ""), **kwargs)
    if acc.shape[0] > 1:
        ax.fill_between(x, acc.min(axis=0), acc.max(axis=0), color=line.get_color(), alpha=0.2,
                        linewidth=0)


def published_curve(ax: plt.Axes, run: str) -> None:
    """The post's published accuracies for ``run``, as black markers."""
    fractions, accuracies = published.curve(run)
    ax.plot(100 * fractions, accuracies, linestyle=":", marker="o", markersize=3.5,
            color=METHOD_COLOURS["published"], label=f"published: {run}")


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
