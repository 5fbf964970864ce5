"""The post's networks trained from another initial scale (chapter "Training the two networks").

The post's scripts do not set the initial weights themselves: they call a
``weight_variable`` / ``bias_variable`` pair from a utilities file shared by the
whole repository, without a standard deviation. ``training.TrainConfig``
follows the stated recipe (kernels truncated normal with standard deviation
0.02, biases 0). An older stored copy of that utilities file ignores its
``stddev`` argument and draws kernels with standard deviation 0.1 and biases
0.1 (``HELPER_0_1``). Chapter "Training the two networks" shows that this one
change brings the rerun's dense accuracies to the published ones.

``train_model(config, init_stddev, bias_init)`` trains exactly as
``training.train_model`` does (same batches, same optimiser, same seed, hence
the same random draw scaled by ``init_stddev / 0.02``) and caches the result
under its own kind; at the default scale it simply returns
``training.train_model(config)``. ``post_models`` mirrors
``experiments.post_models``.

``TrainConfig`` has no field for the initial scale, so the model builder that
``helpers.training`` calls is swapped for the duration of one training (and
always restored). If ``TrainConfig`` gains ``init_stddev`` / ``bias_init``
fields, this module should become a thin wrapper around them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import numpy as np

from helpers import cache, experiments, models, training

#: Bump when a change here would change the weights this module produces.
INIT_SCALE_CODE_VERSION = "1"

#: (kernel standard deviation, bias value) as the post states its recipe.
POST_STATED: tuple[float, float] = (models.POST_INIT_STDDEV, 0.0)
#: (kernel standard deviation, bias value) of the older stored utilities file.
HELPER_0_1: tuple[float, float] = (0.1, 0.1)


def check_init(init_stddev: object, bias_init: object) -> tuple[float, float]:
    """Validate an initial scale: ``init_stddev`` > 0 and a finite ``bias_init``."""
    for name, value in (("init_stddev", init_stddev), ("bias_init", bias_init)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
            raise TypeError(f"{name} must be a float, got {value!r}")
        if not np.isfinite(float(value)):
            raise ValueError(f"{name} must be finite, got {value!r}")
    if not float(init_stddev) > 0.0:
        raise ValueError(f"init_stddev must be positive, got {init_stddev!r}")
    return float(init_stddev), float(bias_init)


def is_post_stated(init_stddev: float, bias_init: float) -> bool:
    """True for the recipe's own scale, which ``training.train_model`` already uses."""
    return (float(init_stddev), float(bias_init)) == POST_STATED


def train_model(config: training.TrainConfig, init_stddev: float = POST_STATED[0],
                bias_init: float = POST_STATED[1]) -> training.TrainedModel:
    """Train (or load) ``config`` with kernels drawn at ``init_stddev`` and biases set to ``bias_init``.

    Everything else, the batches and the seed included, is ``config``'s. The
    returned ``TrainedModel.config`` is ``config`` itself (it has no field for
    the scale). Cached on disk like ``training.train_model``.
    """
    if not isinstance(config, training.TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    init_stddev, bias_init = check_init(init_stddev, bias_init)
    if is_post_stated(init_stddev, bias_init):
        return training.train_model(config)

    def build() -> dict[str, np.ndarray]:
        with initial_scale(init_stddev, bias_init):
            trained = training.train_model(config, use_cache=False)
        arrays = {f"w{i}": w for i, w in enumerate(trained.model.get_weights())}
        arrays.update({f"history_{k}": np.asarray(v) for k, v in trained.history.items()})
        return arrays

    key = {"train": config.to_dict(), "init_stddev": init_stddev, "bias_init": bias_init}
    arrays = cache.fetch("model_init", key, build, version=_version())
    model = models.mlp(config.layer_sizes, dropout=config.dropout)
    model.set_weights([arrays[f"w{i}"] for i in range(len(model.trainable_weights))])
    history = {k[len("history_"):]: v for k, v in arrays.items() if k.startswith("history_")}
    return training.TrainedModel(model, config, history)


def post_models(variant: str = "plain", seeds: Sequence[int] = experiments.SEEDS,
                init_stddev: float = POST_STATED[0],
                bias_init: float = POST_STATED[1]) -> list[training.TrainedModel]:
    """``experiments.post_models(variant, seeds)`` trained from another initial scale."""
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Sequence) or len(seeds) == 0:
        raise ValueError(f"seeds must be a non-empty sequence of ints, got {seeds!r}")
    init_stddev, bias_init = check_init(init_stddev, bias_init)
    configs = [experiments.post_config(variant, seed) for seed in seeds]
    return [train_model(c, init_stddev, bias_init) for c in configs]


@contextlib.contextmanager
def initial_scale(init_stddev: float, bias_init: float) -> Iterator[None]:
    """Inside the block, ``models.mlp`` draws kernels at ``init_stddev`` and sets biases to ``bias_init``."""
    init_stddev, bias_init = check_init(init_stddev, bias_init)
    original = models.mlp

    def scaled_mlp(layer_sizes, dropout=0.0, **_ignored):
        model = original(layer_sizes, dropout=dropout, init_stddev=init_stddev)
        if bias_init != 0.0:
            model.set_weights([w if w.ndim > 1 else np.full_like(w, bias_init)
                               for w in model.get_weights()])
        return model

    models.mlp = scaled_mlp
    try:
        yield
    finally:
        models.mlp = original


def _version() -> str:
    return f"init{INIT_SCALE_CODE_VERSION}-training{training.TRAINING_CODE_VERSION}"
