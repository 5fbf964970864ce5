"""The numbers behind the 2016 post's two figures (chapter "The five experiments").

``published_results.csv`` holds the test accuracies the post's logs report for
its five runs (Shekkizhar 2016), one row per run and pruned percentage.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from importlib import resources

import numpy as np

from helpers import checks


@dataclass(frozen=True)
class Run:
    """One of the post's five runs: what it claimed to do and what its network was."""

    name: str
    method: str  # saliency as described: "magnitude" or "obd"
    scope: str  # "global" (all layers) or "layer"
    dropout: bool
    learning_rate: float


RUNS: dict[str, Run] = {
    "magnitude_layerwise_prune": Run("magnitude_layerwise_prune", "magnitude", "layer", False, 1e-4),
    "magnitude_all_layers_prune": Run("magnitude_all_layers_prune", "magnitude", "global", False, 1e-4),
    "obd_layerwise_prune": Run("obd_layerwise_prune", "obd", "layer", False, 1e-4),
    "obd_all_layers_prune": Run("obd_all_layers_prune", "obd", "global", False, 1e-4),
    "obd_all_layers_dropout": Run("obd_all_layers_dropout", "obd", "global", True, 1e-5),
}


def check_run(run: object) -> str:
    """``run`` if it names one of the post's five runs, else ValueError."""
    run = checks.choice(run, "run", RUNS)
    return run


def curve(run: str) -> tuple[np.ndarray, np.ndarray]:
    """``(fraction_pruned, test_accuracy)`` of one run, in increasing fraction order."""
    check_run(run)
    rows = [r for r in _rows() if r["run"] == run]
    rows.sort(key=lambda r: int(r["percent_pruned"]))
    fractions = np.array([int(r["percent_pruned"]) / 100 for r in rows])
    accuracies = np.array([float(r["test_accuracy"]) for r in rows])
    return fractions, accuracies


def _rows() -> list[dict[str, str]]:
    text = resources.files("helpers.post").joinpath("published_results.csv").read_text()
    return list(csv.DictReader(text.splitlines()))
