"""The post's trained networks, shared by every chapter (chapter "Training the two networks").

The post trains one network without dropout and one with dropout (keep
probability 0.8), the latter at the post's learning rate 1e-5 and at the fair
1e-4 (``VARIANTS``). Each is trained for every seed in ``SEEDS`` and cached,
so any chapter can ask for them in any order.

The initial scale. The post's scripts do not set the initial weights
themselves: they call a ``weight_variable`` / ``bias_variable`` pair from a
utilities file shared by the whole repository, without a standard deviation.
``training.TrainConfig`` follows the stated recipe (kernels truncated normal
with standard deviation 0.02, biases 0; ``POST_STATED``). An older stored copy
of that utilities file ignores its ``stddev`` argument and draws kernels with
standard deviation 0.1 and biases 0.1 (``HELPER_0_1``). Chapter "Training the
two networks" shows that this one change brings the rerun's dense accuracies to
the published ones. ``train_model(config, init_stddev, bias_init)`` is
``training.train_model`` with the configuration's ``init_stddev`` and
``bias_init`` fields set (same batches, optimiser and seed, hence the same
random draw scaled by ``init_stddev / 0.02``); ``post_models`` takes the same
two arguments. Both share the trained-model cache with every other chapter.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from helpers import checks, models, pruning, saliency, training

#: Training seeds behind every curve with a band.
SEEDS: tuple[int, ...] = (0, 1, 2)
#: The post's dropout rate (keep probability 0.8).
POST_DROPOUT = 0.2

VARIANTS = {
    "plain": dict(dropout=0.0, learning_rate=1e-4),
    "dropout": dict(dropout=POST_DROPOUT, learning_rate=1e-4),
    "dropout_lr1e-5": dict(dropout=POST_DROPOUT, learning_rate=1e-5),
}

#: (kernel standard deviation, bias value) as the post states its recipe.
POST_STATED: tuple[float, float] = (models.POST_INIT_STDDEV, 0.0)
#: (kernel standard deviation, bias value) of the older stored utilities file.
HELPER_0_1: tuple[float, float] = (0.1, 0.1)


def post_config(variant: str = "plain", seed: int = 0) -> training.TrainConfig:
    """The post's training recipe for one network variant and seed."""
    if not isinstance(variant, str) or variant not in VARIANTS:
        raise ValueError(f"variant must be one of {tuple(VARIANTS)}, got {variant!r}")
    return training.TrainConfig(seed=seed, **VARIANTS[variant])


def check_init(init_stddev: object, bias_init: object) -> tuple[float, float]:
    """Validate an initial scale: ``init_stddev`` > 0 and a finite ``bias_init``."""
    return checks.positive(init_stddev, "init_stddev"), checks.real(bias_init, "bias_init")


def is_post_stated(init_stddev: float, bias_init: float) -> bool:
    """True for the recipe's own scale, which ``training.train_model`` already uses."""
    return (float(init_stddev), float(bias_init)) == POST_STATED


def train_model(config: training.TrainConfig, init_stddev: float = POST_STATED[0],
                bias_init: float = POST_STATED[1]) -> training.TrainedModel:
    """Train (or load) ``config`` with kernels drawn at ``init_stddev`` and biases set to ``bias_init``.

    Everything else, the batches and the seed included, is ``config``'s; the
    returned ``TrainedModel.config`` carries the scale. Cached on disk like
    every trained network.
    """
    if not isinstance(config, training.TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    init_stddev, bias_init = check_init(init_stddev, bias_init)
    return training.train_model(dataclasses.replace(config, init_stddev=init_stddev,
                                                    bias_init=bias_init))


def post_models(variant: str = "plain", seeds: Sequence[int] = SEEDS,
                init_stddev: float = POST_STATED[0],
                bias_init: float = POST_STATED[1]) -> list[training.TrainedModel]:
    """One trained (or cached) network of ``variant`` per seed, from the given initial scale."""
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Sequence) or len(seeds) == 0:
        raise ValueError(f"seeds must be a non-empty sequence of ints, got {seeds!r}")
    init_stddev, bias_init = check_init(init_stddev, bias_init)
    return training.train_models([
        dataclasses.replace(post_config(variant, seed), init_stddev=init_stddev,
                            bias_init=bias_init) for seed in seeds])


def sweep_over_seeds(trained: Sequence[training.TrainedModel], method: str, scope: str,
                     fractions: Sequence[float], x_score: np.ndarray | None,
                     y_score: np.ndarray | None, x_test: np.ndarray,
                     y_test: np.ndarray) -> np.ndarray:
    """Accuracy after one-shot pruning, shape ``(len(trained), len(fractions))``.

    Scores come from ``saliency.saliency(model, method, x_score, y_score)``;
    for ``"asran_obd"`` the row-sum block follows ``scope``.
    """
    rows = []
    for t in trained:
        scores = saliency.saliency(t.model, method, x_score, y_score, scope=scope)
        rows.append(pruning.sweep(t.model, scores, fractions, x_test, y_test, scope=scope))
    return np.array(rows)
