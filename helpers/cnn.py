"""A LeNet-style convolutional network on MNIST, trained, scored and pruned (chapter "A convolutional network").

The post ended by wishing for pruning of convolutional networks. This module
gives the book one: ``lenet`` builds a small LeNet-style network on the flat
784-pixel inputs (a ``Reshape`` to 28x28x1 comes first), ``train_cnn`` trains
it deterministically and caches the weights (``helpers.cache``, keyed by
configuration, seed and ``cache.code_version``), and ``cached_saliency`` and
``pruning_curves`` cache its scores (magnitude, or OBD with the exact or
Monte-Carlo Hessian diagonal of ``helpers.conv_hessian``) and its accuracy
against sparsity. Accuracy, saliencies and pruning are the MLPs' own functions
(``metrics``, ``saliency``, ``pruning``), which read a conv net as well, so
ties, rounding and scopes are the same.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

import keras
import numpy as np
import tensorflow as tf

from helpers import cache, checks, data, metrics, models, network, pruning, saliency, seeding, training

METHODS = saliency.CONV_METHODS
#: Second derivatives are averaged over the first N_SCORE images of the post's training split.
N_SCORE = 10_000


def lenet(filters: Sequence[int] = (6, 16), dense: Sequence[int] = (120, 84),
          kernel_size: int = 5, n_classes: int = 10) -> keras.Sequential:
    """LeNet-style: (conv k x k, ReLU, 2x2 max pool) per entry of ``filters``, then ReLU Dense layers.

    Inputs are flat (None, 784) MNIST images; ``valid`` convolutions; logits
    out. Kernels start from Keras's default Glorot-uniform draw and biases at
    zero; call ``helpers.seeding.set_seed`` first for reproducible weights.
    """
    filters = _check_widths(filters, "filters")
    dense = _check_widths(dense, "dense", allow_empty=True)
    kernel_size = checks.integer(kernel_size, "kernel_size")
    n_classes = checks.integer(n_classes, "n_classes")
    side = 28
    for _ in filters:
        side = (side - kernel_size + 1) // 2
        if side < 1:
            raise ValueError(f"kernel_size {kernel_size} with {len(filters)} conv layers shrinks "
                             "the 28x28 image to nothing")
    layers = [keras.Input(shape=(784,)), keras.layers.Reshape((28, 28, 1), name="image")]
    for i, width in enumerate(filters, start=1):
        layers.append(keras.layers.Conv2D(width, kernel_size, activation="relu", name=f"conv{i}"))
        layers.append(keras.layers.MaxPooling2D(2, name=f"pool{i}"))
    layers.append(keras.layers.Flatten(name="flatten"))
    for i, width in enumerate(dense, start=1):
        layers.append(keras.layers.Dense(width, activation="relu", name=f"dense{i}"))
    layers.append(keras.layers.Dense(n_classes, name="logits"))
    name = "lenet_" + "_".join(map(str, (*filters, *dense)))
    return keras.Sequential(layers, name=name)


@dataclass(frozen=True)
class CnnConfig:
    """Everything that determines a trained CNN.

    Defaults: LeNet-style 6 and 16 filters of 5x5, Dense 120 and 84; Adam
    whose learning rate starts at 1e-3 and decays to zero along a cosine, on
    the mean cross-entropy of batches of 64 drawn from the post's
    55,000-image split (a fresh shuffle every epoch); 5,000 steps (under six
    epochs). The decay lets training settle near a minimum, which OBD assumes.
    """

    filters: tuple[int, ...] = (6, 16)
    kernel_size: int = 5
    dense: tuple[int, ...] = (120, 84)
    learning_rate: float = 1e-3
    batch_size: int = 64
    steps: int = 5000
    seed: int = 0
    log_every: int = 500

    def __post_init__(self) -> None:
        object.__setattr__(self, "filters", _check_widths(self.filters, "filters"))
        object.__setattr__(self, "dense", _check_widths(self.dense, "dense", allow_empty=True))
        for name in ("kernel_size", "batch_size", "steps", "log_every"):
            object.__setattr__(self, name, checks.integer(getattr(self, name), name))
        object.__setattr__(self, "seed", checks.seed(self.seed))
        object.__setattr__(self, "learning_rate", checks.positive(self.learning_rate, "learning_rate"))

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self).items()}


@dataclass
class TrainedCnn:
    """A trained CNN with its configuration and training curves (step, train_loss, test_accuracy)."""

    model: keras.Sequential
    config: CnnConfig
    history: dict[str, np.ndarray] = field(default_factory=dict)


def train_cnn(config: CnnConfig | None = None, *, use_cache: bool = True) -> TrainedCnn:
    """Train the CNN that ``config`` describes, or load the shipped or cached one. Prints nothing."""
    config = CnnConfig() if config is None else config
    if not isinstance(config, CnnConfig):
        raise TypeError(f"config must be a CnnConfig, got {type(config).__name__}")
    return _unpack(config, _entry(config).fetch(lambda: _train_arrays(config), use_cache=use_cache))


def cnn_models(seeds: Sequence[int] = seeding.SEEDS,
               config: CnnConfig | None = None) -> list[TrainedCnn]:
    """One trained (or cached) CNN per seed, all else as in ``config`` (default ``CnnConfig()``).

    The CNNs the cache lacks train side by side, one process per CPU core.
    """
    seeds = checks.seeds(seeds)
    config = CnnConfig() if config is None else config
    if not isinstance(config, CnnConfig):
        raise TypeError(f"config must be a CnnConfig, got {type(config).__name__}")
    configs = [dataclasses.replace(config, seed=seed) for seed in seeds]
    cache.fill(train_cnn, [(c,) for c in configs], lambda c: [_entry(c)])
    return [train_cnn(c) for c in configs]


def _entry(config: CnnConfig) -> cache.Entry:
    """Where the CNN ``config`` describes is cached (and shipped)."""
    return cache.Entry("cnn", config.to_dict(), cache.code_version(__name__), shipped=True)


def score_data(n_score: int = N_SCORE) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n_score`` images and labels of the post's 55,000-image training split."""
    n_score = checks.integer(n_score, "n_score")
    (x, y), _ = data.load_post_split()
    if n_score > len(x):
        raise ValueError(f"n_score must be at most {len(x)}, got {n_score}")
    return x[:n_score], y[:n_score]


def cached_saliency(trained: TrainedCnn, method: str, n_score: int = N_SCORE,
                    samples: int = 1, seed: int = 0) -> list[np.ndarray]:
    """``saliency`` of a trained CNN on ``score_data(n_score)``, cached on disk.

    The cache key is the network's configuration (seed included), the method,
    ``n_score`` and, for ``"obd_mc"``, ``samples`` and ``seed``.
    """
    if not isinstance(trained, TrainedCnn):
        raise TypeError(f"trained must be a TrainedCnn, got {type(trained).__name__}")
    method = checks.choice(method, "method", METHODS)
    n_score = checks.integer(n_score, "n_score")
    if method == "magnitude":
        return saliency.saliency(trained.model, method)
    key = {"network": trained.config.to_dict(), "method": method, "n_score": n_score,
           "samples": int(samples) if method == "obd_mc" else None,
           "seed": int(seed) if method == "obd_mc" else None}

    def build() -> dict[str, np.ndarray]:
        x, y = score_data(n_score)
        scores = saliency.saliency(trained.model, method, x, y, samples=samples, seed=seed)
        return {f"s{i}": s for i, s in enumerate(scores)}

    arrays = cache.fetch("cnn_saliency", key, build, version=cache.code_version(__name__))
    return [arrays[f"s{i}"] for i in range(len(trained.model.trainable_weights))]


def pruning_curves(trained: Sequence[TrainedCnn], method: str, scope: str,
                   fractions: Sequence[float], n_score: int = N_SCORE, samples: int = 1
                   ) -> np.ndarray:
    """Test accuracy after one-shot pruning, ``(len(trained), len(fractions))``, cached on disk.

    Scores from ``cached_saliency`` (second derivatives on ``score_data(n_score)``),
    accuracy on the 10,000 MNIST test images by ``pruning.sweep``.
    """
    if isinstance(trained, (str, bytes)) or not isinstance(trained, Sequence) or len(trained) == 0:
        raise ValueError("trained must be a non-empty sequence of TrainedCnn")
    scope = pruning.check_scope(scope)
    fractions = checks.fractions(fractions)
    rows = []
    for t in trained:
        scores = cached_saliency(t, method, n_score, samples)

        def build(t=t, scores=scores) -> dict[str, np.ndarray]:
            _, (x_test, y_test) = data.load_mnist()
            return {"accuracy": pruning.sweep(t.model, scores, fractions, x_test, y_test, scope)}

        key = {"network": t.config.to_dict(), "method": method, "scope": scope,
               "fractions": fractions, "n_score": n_score,
               "samples": int(samples) if method == "obd_mc" else None}
        rows.append(cache.fetch("cnn_sweep", key, build, version=cache.code_version(__name__))["accuracy"])
    return np.array(rows)


def tensor_names(model: keras.Model) -> list[str]:
    """Names of the weight tensors, e.g. ``["conv1 kernel", "conv1 bias", ...]``.

    ``models.tensor_names``, for a model that ``network.conv_net`` reads.
    """
    network.conv_net(model)
    return models.tensor_names(model)


# --- internals -------------------------------------------------------------------------------

def _check_widths(widths: object, name: str, allow_empty: bool = False) -> tuple[int, ...]:
    if isinstance(widths, (str, bytes)) or not isinstance(widths, Sequence):
        raise TypeError(f"{name} must be a sequence of positive ints, got {widths!r}")
    if not widths and not allow_empty:
        raise ValueError(f"{name} must not be empty")
    return tuple(checks.integer(w, name) for w in widths)


def _unpack(config: CnnConfig, arrays: dict[str, np.ndarray]) -> TrainedCnn:
    model = lenet(config.filters, config.dense, config.kernel_size)
    model.set_weights([arrays[f"w{i}"] for i in range(len(model.trainable_weights))])
    history = {k[len("history_"):]: v for k, v in arrays.items() if k.startswith("history_")}
    return TrainedCnn(model, config, history)


def _train_arrays(config: CnnConfig) -> dict[str, np.ndarray]:
    (x_train, y_train), _ = data.load_post_split()
    _, (x_test, y_test) = data.load_mnist()
    seeding.set_seed(config.seed)
    model = lenet(config.filters, config.dense, config.kernel_size)
    schedule = keras.optimizers.schedules.CosineDecay(config.learning_rate, config.steps)
    optimizer = keras.optimizers.Adam(learning_rate=schedule)
    optimizer.build(model.trainable_variables)
    indices = training.batch_indices(len(x_train), config.batch_size, config.steps, "shuffle",
                                     config.seed)
    run = training.chunk_runner(training.mean_cross_entropy(model), model.trainable_variables,
                                optimizer, tf.constant(x_train), tf.constant(y_train, tf.int32))
    done, steps, losses, accs = 0, [], [], []
    while done < config.steps:
        n = min(config.log_every, config.steps - done)
        losses.append(float(run(tf.constant(indices[done:done + n]))) / n)
        done += n
        steps.append(done)
        accs.append(metrics.accuracy(model, x_test, y_test))
    arrays = {f"w{i}": w for i, w in enumerate(model.get_weights())}
    arrays["history_step"] = np.asarray(steps, np.int64)
    arrays["history_train_loss"] = np.asarray(losses, np.float64)
    arrays["history_test_accuracy"] = np.asarray(accs, np.float64)
    return arrays
