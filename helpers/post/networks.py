"""The post's trained networks, shared by every chapter (chapter "Training the two networks").

The post trains one network without dropout and one with dropout (keep
probability 0.8), the latter at the post's learning rate 1e-5 and at the fair
1e-4 (``VARIANTS``). Each is trained for every seed in ``SEEDS`` and cached,
so any chapter can ask for them in any order; the tests retrain them on
``CHECK_SEEDS`` to check the chapters' claims on networks the book never shows.

The initial scale. The post's scripts do not set the initial weights
themselves: they call a ``weight_variable`` / ``bias_variable`` pair from a
utilities file shared by the whole repository. As a reader of the repository
finds that file today, it draws kernels from a truncated normal with standard
deviation 0.02 and starts biases at 0 (``POST_STATED``, "the stated scale",
``training.TrainConfig``'s defaults); the post itself gives no scale. When the
runs were made, the file drew kernels with standard deviation 0.1 and biases
0.1 (``HELPER_0_1``); it changed to 0.02 and 0 a few days later. Chapter "Training the two networks" proves the latter from
the post's own checkpoints and shows that it brings the dense accuracies to
the published ones, so the shared networks (``post_config``,
``post_models``) are trained from ``HELPER_0_1``; ``POST_STATED`` stays for
that chapter's comparison. Every helper that trains or reads these networks
takes the scale as one argument ``init``, a (stddev, bias) pair checked by
``check_init``. Only the initial scale differs
between the two: same batches, optimiser and seed, hence the same random
draw scaled by ``init_stddev / 0.02``. Every network shares the
trained-model cache with every other chapter.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from helpers import checks, models, pruning, saliency, seeding, training
from helpers.post import published

#: Training seeds behind every curve with a band (the library's ``seeding.SEEDS``).
SEEDS: tuple[int, ...] = seeding.SEEDS
#: Seeds the book never shows: ``tests/test_new_seeds.py`` trains the shared networks on
#: them (``post_models_by_variant(seeds=CHECK_SEEDS)``) and retests every claim the
#: chapters assert about the networks of ``SEEDS``, so that no claim rests on three draws
#: alone. Disjoint from ``SEEDS``.
CHECK_SEEDS: tuple[int, ...] = (3, 4, 5)
#: The post's dropout rate (keep probability 0.8).
POST_DROPOUT = 0.2

VARIANTS = {
    "plain": dict(dropout=0.0, learning_rate=1e-4),
    "dropout": dict(dropout=POST_DROPOUT, learning_rate=1e-4),
    "dropout_lr1e-5": dict(dropout=POST_DROPOUT, learning_rate=1e-5),
}
#: The network each published run pruned, as a key of ``VARIANTS``: the dropout run's
#: network was trained at the post's learning rate 1e-5, the others are plain.
RUN_VARIANTS: dict[str, str] = {
    name: ("dropout_lr1e-5" if run.dropout else "plain") for name, run in published.RUNS.items()
}

#: (kernel standard deviation, bias value) as the post states its recipe.
POST_STATED: tuple[float, float] = (models.POST_INIT_STDDEV, 0.0)
#: (kernel standard deviation, bias value) of the older stored utilities file.
HELPER_0_1: tuple[float, float] = (0.1, 0.1)


def post_config(variant: str = "plain", seed: int = 0, *,
                init: tuple[float, float] = HELPER_0_1) -> training.TrainConfig:
    """The post's training recipe for one network variant and seed, from the initial scale ``init``.

    ``init``: (kernel standard deviation, bias value), e.g. ``POST_STATED``.
    """
    variant = check_variant(variant)
    seed = checks.seed(seed)
    return _config(variant, seed, check_init(init))


def post_configs(variant: str = "plain", seeds: Sequence[int] = SEEDS, *,
                 init: tuple[float, float] = HELPER_0_1) -> list[training.TrainConfig]:
    """``post_config(variant, seed, init=init)`` for every seed, the arguments checked once."""
    variant = check_variant(variant)
    seeds = checks.seeds(seeds)
    init = check_init(init)
    return [_config(variant, seed, init) for seed in seeds]


def _config(variant: str, seed: int, init: tuple[float, float]) -> training.TrainConfig:
    return training.TrainConfig(seed=seed, init_stddev=init[0], bias_init=init[1], **VARIANTS[variant])


def check_variant(variant: object) -> str:
    """``variant`` if it is a key of ``VARIANTS``, else ValueError."""
    variant = checks.choice(variant, "variant", VARIANTS)
    return variant


def check_init(init: object) -> tuple[float, float]:
    """Validate an initial scale ``(init_stddev, bias_init)``: a stddev > 0 and a finite bias."""
    if not isinstance(init, tuple) or len(init) != 2:
        raise TypeError(f"init must be a (kernel stddev, bias value) tuple, got {init!r}")
    return (checks.positive(init[0], "init[0] (init_stddev)"),
            checks.real(init[1], "init[1] (bias_init)"))


def post_models(variant: str = "plain", seeds: Sequence[int] = SEEDS, *,
                init: tuple[float, float] = HELPER_0_1) -> list[training.TrainedModel]:
    """One trained (or cached) network of ``variant`` per seed, from the initial scale ``init``."""
    return training.train_models(post_configs(variant, seeds, init=init))


def post_models_by_variant(variants: Sequence[str] = tuple(VARIANTS), seeds: Sequence[int] = SEEDS,
                           *, init: tuple[float, float] = HELPER_0_1
                           ) -> dict[str, list[training.TrainedModel]]:
    """``{variant: post_models(variant, seeds, init=init)}``, every missing network trained side
    by side in one batch (chapter "Training the two networks" trains all nine at once)."""
    if isinstance(variants, (str, bytes)) or not isinstance(variants, Sequence) or not variants:
        raise TypeError(f"variants must be a non-empty sequence of variant names, got {variants!r}")
    configs = {check_variant(v): post_configs(v, seeds, init=init) for v in variants}
    trained = iter(training.train_models([c for cs in configs.values() for c in cs]))
    return {v: [next(trained) for _ in cs] for v, cs in configs.items()}


def sweep_over_seeds(trained: Sequence[training.TrainedModel], method: str, scope: str,
                     fractions: Sequence[float], x_score: np.ndarray | None,
                     y_score: np.ndarray | None, x_test: np.ndarray,
                     y_test: np.ndarray) -> np.ndarray:
    """Accuracy after one-shot pruning, shape ``(len(trained), len(fractions))``.

    Scores come from ``saliency.saliency(model, method, x_score, y_score)``; ``scope`` is the
    pruning's.
    """
    rows = []
    for t in trained:
        scores = saliency.saliency(t.model, method, x_score, y_score)
        rows.append(pruning.sweep(t.model, scores, fractions, x_test, y_test, scope=scope))
    return np.array(rows)
