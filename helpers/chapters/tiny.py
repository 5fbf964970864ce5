"""A network small enough for its full Hessian (chapter "The Taylor expansion of the loss").

The post's network has 47,410 parameters, so its Hessian would have over two
billion entries. Chapter 1 looks at every term of the Taylor expansion on a
much smaller relative: MNIST images averaged down to ``image_size`` x
``image_size`` pixels, a few thousand training images from the post's
55,000-image split, and an MLP with two narrow ReLU hidden layers, so that the
whole Hessian fits in memory and can be computed by brute force.

``train_tiny`` and ``tiny_hessian`` are cached on disk (``helpers.cache``),
keyed by the ``TinyConfig``; they print nothing.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from helpers import cache, checks, data, hessian, models, seeding, training

_SIDE = 28


def downsample(x: np.ndarray, size: int = 7) -> np.ndarray:
    """Average-pool flattened 28x28 images to ``size`` x ``size``: (N, 784) -> (N, size**2).

    Each output pixel is the mean of a (28/size) x (28/size) block, so values
    stay in [0, 1]. ``size`` must divide 28 (1, 2, 4, 7, 14 or 28).
    """
    size = checks.integer(size, "size")
    if _SIDE % size != 0:
        raise ValueError(f"size must divide 28 (1, 2, 4, 7, 14 or 28), got {size!r}")
    if not isinstance(x, np.ndarray):
        raise TypeError(f"x must be a numpy array of flattened 28x28 images, got {type(x).__name__}")
    if x.ndim != 2 or x.shape[1] != _SIDE * _SIDE:
        raise ValueError(f"x must have shape (N, 784), got {x.shape}")
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)) \
            or x.dtype == bool:
        raise TypeError(f"x must hold numbers, got dtype {x.dtype}")
    block = _SIDE // int(size)
    pooled = np.asarray(x, np.float64).reshape(len(x), size, block, size, block).mean(axis=(2, 4))
    return pooled.reshape(len(x), size * size).astype(np.float32)


@dataclass(frozen=True)
class TinyConfig:
    """Everything that determines the tiny network of chapter 1.

    The training images are the first ``n_train`` of the post's 55,000-image
    split, downsampled; training is Adam on the mean cross-entropy with
    mini-batches drawn from a fresh permutation every epoch.
    """

    image_size: int = 7
    hidden: tuple[int, ...] = (16, 16)
    n_train: int = 2000
    steps: int = 6000
    batch_size: int = 100
    learning_rate: float = 3e-3
    init_stddev: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("image_size", "n_train", "steps", "batch_size", "seed"):
            value = checks.integer(getattr(self, name), name, 0 if name == "seed" else 1)
            object.__setattr__(self, name, value)
        if _SIDE % self.image_size != 0:
            raise ValueError(f"image_size must divide 28, got {self.image_size!r}")
        if self.n_train > 55_000:
            raise ValueError(f"n_train must be at most 55000 (the post's split), got {self.n_train}")
        if self.batch_size > self.n_train:
            raise ValueError(f"batch_size ({self.batch_size}) must not exceed n_train ({self.n_train})")
        for name in ("learning_rate", "init_stddev"):
            object.__setattr__(self, name, checks.positive(getattr(self, name), name))
        hidden = self.hidden
        if isinstance(hidden, (str, bytes)) or not isinstance(hidden, (tuple, list)):
            raise TypeError(f"hidden must be a tuple of ints, got {hidden!r}")
        object.__setattr__(self, "hidden", tuple(hidden))
        models._check_layer_sizes(self.layer_sizes)

    @property
    def layer_sizes(self) -> tuple[int, ...]:
        """Input width, hidden widths and the 10 classes."""
        return (self.image_size ** 2, *self.hidden, 10)

    @property
    def n_params(self) -> int:
        """Weights and biases of the network."""
        sizes = self.layer_sizes
        return sum(a * b + b for a, b in zip(sizes, sizes[1:]))

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self).items()}


def tiny_data(config: TinyConfig | None = None):
    """``((x_train, y_train), (x_test, y_test))`` for ``config``, downsampled.

    Training: the first ``n_train`` images of the post's 55,000 split (the
    data set of the loss E in chapter 1). Test: all 10,000 MNIST test images.
    """
    config = _check_config(config)
    (x55k, y55k), _ = data.load_post_split()
    _, (x_test, y_test) = data.load_mnist()
    n = config.n_train
    return ((downsample(x55k[:n], config.image_size), np.asarray(y55k[:n])),
            (downsample(x_test, config.image_size), np.asarray(y_test)))


def train_tiny(config: TinyConfig | None = None) -> keras.Sequential:
    """The trained tiny network for ``config`` (cached)."""
    config = _check_config(config)
    arrays = cache.fetch("tiny_model", config.to_dict(), lambda: _train(config),
                         version=cache.code_version(__name__), shipped=True)
    model = models.mlp(config.layer_sizes, init_stddev=config.init_stddev)
    model.set_weights([arrays[f"w{i}"] for i in range(len(model.trainable_weights))])
    return model


def tiny_hessian(config: TinyConfig | None = None, chunk: int = 500) -> np.ndarray:
    """The full Hessian of the mean training loss of ``train_tiny(config)`` (cached).

    Computed with ``hessian.full_hessian`` over chunks of ``chunk`` training
    images (its memory grows with the chunk), weighted by chunk size; float64,
    parameters in ``trainable_weights`` order.
    """
    config = _check_config(config)
    chunk = checks.integer(chunk, "chunk")

    def build() -> dict[str, np.ndarray]:
        model = train_tiny(config)
        (x, y), _ = tiny_data(config)
        total = np.zeros((config.n_params, config.n_params))
        for start in range(0, len(x), chunk):
            xb, yb = x[start:start + chunk], y[start:start + chunk]
            total += hessian.full_hessian(model, xb, yb) * len(xb)
        return {"hessian": total / len(x)}

    return cache.fetch("tiny_hessian", config.to_dict(), build, version=cache.code_version(__name__))["hessian"]


def _check_config(config: TinyConfig | None) -> TinyConfig:
    config = TinyConfig() if config is None else config
    if not isinstance(config, TinyConfig):
        raise TypeError(f"config must be a TinyConfig, got {type(config).__name__}")
    return config


def _train(config: TinyConfig) -> dict[str, np.ndarray]:
    (x, y), _ = tiny_data(config)
    seeding.set_seed(config.seed)
    model = models.mlp(config.layer_sizes, init_stddev=config.init_stddev)
    optimizer = keras.optimizers.Adam(learning_rate=config.learning_rate)
    optimizer.build(model.trainable_variables)
    order = training.batch_indices(config.n_train, config.batch_size, config.steps, "shuffle",
                                   config.seed)
    run = training.chunk_runner(training.mean_cross_entropy(model), model.trainable_variables,
                                optimizer, tf.constant(x), tf.constant(y.astype(np.int32)))
    run(tf.constant(order))
    return {f"w{i}": w for i, w in enumerate(model.get_weights())}
