"""A LeNet-style convolutional network on MNIST, trained, scored and pruned (chapter "A convolutional network").

The post ended by wishing for pruning of convolutional networks. This module
gives the book one: ``lenet`` builds a small LeNet-style network on the flat
784-pixel inputs (a ``Reshape`` to 28x28x1 comes first), ``train_cnn`` trains
it deterministically and caches the weights (``helpers.cache``, keyed by
configuration, seed and ``cache.code_version``), ``saliency`` scores its parameters
(magnitude, or OBD with the exact or Monte-Carlo Hessian diagonal of
``helpers.conv_hessian``), and ``sweep`` measures accuracy against sparsity
for many pruning levels in one compiled loop. Masks come from
``helpers.pruning.prune_masks``, so ties, rounding and scopes are the same as
for the MLPs.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import keras
import numpy as np
import tensorflow as tf

from helpers import cache, checks, conv_hessian, data, models, network, pruning, seeding, training

METHODS = ("magnitude", "obd", "obd_mc", "fisher")
_DIAGONAL = {"obd": "exact", "obd_mc": "mc", "fisher": "fisher"}
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
    arrays = cache.fetch("cnn", config.to_dict(), lambda: _train_arrays(config),
                         version=cache.code_version(__name__), use_cache=use_cache, shipped=True)
    return _unpack(config, arrays)


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
    version = cache.code_version(__name__)
    cache.build_side_by_side(train_cnn, [(c,) for c in dict.fromkeys(configs)
                                         if not cache.has("cnn", c.to_dict(), version=version, shipped=True)])
    return [train_cnn(c) for c in configs]


def accuracy(model: keras.Model, x: np.ndarray, y: np.ndarray) -> float:
    """The fraction of samples whose largest logit is the label."""
    net = conv_hessian.conv_net(model)
    x, y = network.check_xy(x, y, net.input_width, net.n_classes)
    weights = tuple(tf.constant(w) for w in model.get_weights())
    masks = tuple(tf.ones((1, *w.shape)) for w in weights)
    return float(_sweep_graph(weights, masks, tf.constant(x), tf.constant(y), net.spec)[0])


def saliency(model: keras.Model, method: str, x: np.ndarray | None = None,
             y: np.ndarray | None = None, *, samples: int = 1, seed: int = 0,
             batch_size: int = 1000) -> list[np.ndarray]:
    """Per-parameter scores of a conv net, aligned with ``model.trainable_weights``.

    ``"magnitude"``: |u|. ``"obd"``: h_kk u^2 / 2 with the exact Hessian
    diagonal; ``"obd_mc"``: the same with the Monte-Carlo Gauss-Newton
    estimate (``samples`` draws per image, ``seed``); ``"fisher"``: with the
    empirical Fisher diagonal. All but magnitude need ``x`` and ``y``.
    """
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    conv_hessian.conv_net(model)
    weights = model.get_weights()
    if method == "magnitude":
        return [np.abs(w) for w in weights]
    if x is None or y is None:
        raise ValueError(f"x and y are required for method {method!r} (it needs second derivatives)")
    diagonal = conv_hessian.hessian_diagonal(model, x, y, method=_DIAGONAL[method],
                                             samples=samples, seed=seed, batch_size=batch_size)
    return [0.5 * h * np.square(w) for h, w in zip(diagonal, weights)]


@contextlib.contextmanager
def pruned(model: keras.Model, masks: Sequence[np.ndarray]) -> Iterator[keras.Model]:
    """Inside the ``with`` block the conv net is pruned by ``masks``; afterwards it is restored."""
    conv_hessian.conv_net(model)
    original = model.get_weights()
    masks = pruning.check_masks(masks, original)
    model.set_weights([w * m for w, m in zip(original, masks)])
    try:
        yield model
    finally:
        model.set_weights(original)


def sweep(model: keras.Model, scores: Sequence[np.ndarray], fractions: Sequence[float],
          x: np.ndarray, y: np.ndarray, scope: str = "global") -> np.ndarray:
    """Accuracy on ``(x, y)`` after pruning each fraction of the parameters (no retraining).

    Every level restarts from the model's weights: the masks of all levels
    (``pruning.prune_masks``, ``scope`` "global" or "layer") are stacked and
    evaluated in one compiled loop on copies of the weights, and the model's
    own weights are left as they were (checked on the way out).
    """
    net = conv_hessian.conv_net(model)
    original = model.get_weights()
    scores, fractions, scope = pruning.check_sweep(scores, original, fractions, scope)
    x, y = network.check_xy(x, y, net.input_width, net.n_classes)
    levels = [pruning.prune_masks(scores, f, scope) for f in fractions]
    stacked = tuple(tf.constant(np.stack([lv[i] for lv in levels])) for i in range(len(original)))
    try:
        acc = _sweep_graph(tuple(tf.constant(w) for w in original), stacked, tf.constant(x),
                           tf.constant(y), net.spec)
    finally:
        if any(not np.array_equal(a, b) for a, b in zip(model.get_weights(), original)):
            model.set_weights(original)  # pragma: no cover - the graph never writes to the model
    return acc.numpy().astype(np.float64)


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
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    n_score = checks.integer(n_score, "n_score")
    if method == "magnitude":
        return saliency(trained.model, method)
    key = {"network": trained.config.to_dict(), "method": method, "n_score": n_score,
           "samples": int(samples) if method == "obd_mc" else None,
           "seed": int(seed) if method == "obd_mc" else None}

    def build() -> dict[str, np.ndarray]:
        x, y = score_data(n_score)
        scores = saliency(trained.model, method, x, y, samples=samples, seed=seed)
        return {f"s{i}": s for i, s in enumerate(scores)}

    arrays = cache.fetch("cnn_saliency", key, build, version=cache.code_version(__name__))
    return [arrays[f"s{i}"] for i in range(len(trained.model.trainable_weights))]


def pruning_curves(trained: Sequence[TrainedCnn], method: str, scope: str,
                   fractions: Sequence[float], n_score: int = N_SCORE, samples: int = 1
                   ) -> np.ndarray:
    """Test accuracy after one-shot pruning, ``(len(trained), len(fractions))``, cached on disk.

    Scores from ``cached_saliency`` (second derivatives on ``score_data(n_score)``),
    accuracy on the 10,000 MNIST test images by ``sweep``.
    """
    if isinstance(trained, (str, bytes)) or not isinstance(trained, Sequence) or len(trained) == 0:
        raise ValueError("trained must be a non-empty sequence of TrainedCnn")
    scope = pruning.check_scope(scope)
    if isinstance(fractions, (str, bytes)) or not isinstance(fractions, (Sequence, np.ndarray)) \
            or len(fractions) == 0:
        raise ValueError(f"fractions must be a non-empty sequence of floats, got {fractions!r}")
    fractions = [pruning.check_fraction(f, "fractions") for f in fractions]
    rows = []
    for t in trained:
        scores = cached_saliency(t, method, n_score, samples)

        def build(t=t, scores=scores) -> dict[str, np.ndarray]:
            _, (x_test, y_test) = data.load_mnist()
            return {"accuracy": sweep(t.model, scores, fractions, x_test, y_test, scope)}

        key = {"network": t.config.to_dict(), "method": method, "scope": scope,
               "fractions": fractions, "n_score": n_score,
               "samples": int(samples) if method == "obd_mc" else None}
        rows.append(cache.fetch("cnn_sweep", key, build, version=cache.code_version(__name__))["accuracy"])
    return np.array(rows)


def tensor_names(model: keras.Model) -> list[str]:
    """Names of the weight tensors, e.g. ``["conv1 kernel", "conv1 bias", ...]``.

    ``models.tensor_names``, for a model that ``conv_hessian`` can differentiate.
    """
    conv_hessian.conv_net(model)
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
    net = conv_hessian.conv_net(model)
    x_test_t, y_test_t = tf.constant(x_test), tf.constant(y_test.astype(np.int32))
    done, steps, losses, accs = 0, [], [], []
    while done < config.steps:
        n = min(config.log_every, config.steps - done)
        losses.append(float(run(tf.constant(indices[done:done + n]))) / n)
        done += n
        steps.append(done)
        weights = tuple(tf.constant(w) for w in model.get_weights())
        ones = tuple(tf.ones((1, *w.shape)) for w in weights)
        accs.append(float(_sweep_graph(weights, ones, x_test_t, y_test_t, net.spec)[0]))
    arrays = {f"w{i}": w for i, w in enumerate(model.get_weights())}
    arrays["history_step"] = np.asarray(steps, np.int64)
    arrays["history_train_loss"] = np.asarray(losses, np.float64)
    arrays["history_test_accuracy"] = np.asarray(accs, np.float64)
    return arrays


@tf.function(reduce_retracing=True)
def _sweep_graph(weights, masks, x, y, spec):
    """Accuracy for each level of stacked masks (level = first axis of every mask)."""
    n_levels = tf.shape(masks[0])[0]
    accuracies = tf.TensorArray(tf.float32, size=n_levels)
    for level in tf.range(n_levels):
        masked = [w * m[level] for w, m in zip(weights, masks)]
        logits = conv_hessian.logits(x, masked, spec)
        hits = tf.equal(tf.argmax(logits, axis=1, output_type=tf.int32), y)
        accuracies = accuracies.write(level, tf.reduce_mean(tf.cast(hits, tf.float32)))
    return accuracies.stack()
