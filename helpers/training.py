"""Training the post's networks, deterministically and cached (chapter "Training the two networks").

``TrainConfig`` defaults to the 2016 post's recipe: cross-entropy summed over a
batch of 64, Adam with learning rate 1e-4 and epsilon 1e-8, 50,001 steps on the
55,000-image split, mini-batches drawn the way TensorFlow's old reader drew
them (first epoch in file order, a fresh shuffle at every later epoch, the
incomplete last batch of an epoch dropped). ``train_model`` returns the network
the book ships for that configuration (``cache.shipped``: the same weights on every
CPU), else a cached one trained by the same code (``cache.code_version``), else
trains it; ``use_cache=False`` always trains.
``chunk_runner`` is the one compiled training loop of the book: the tiny network,
the CNNs and the masked retraining run their steps through it too.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import keras
import numpy as np
import tensorflow as tf

from helpers import cache, checks, data, models, seeding

_LOSSES = ("sum", "mean")
_ORDERS = ("tf_reader", "shuffle")
_DATASETS = ("post", "full")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a trained model; the defaults are the post's."""

    dropout: float = 0.0
    learning_rate: float = 1e-4
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-8
    batch_size: int = 64
    steps: int = 50_001
    loss: str = "sum"
    order: str = "tf_reader"
    dataset: str = "post"
    layer_sizes: tuple[int, ...] = models.POST_LAYER_SIZES
    seed: int = 0
    log_every: int = 1000
    init_stddev: float = models.POST_INIT_STDDEV
    bias_init: float = 0.0

    def __post_init__(self) -> None:
        # Each field is stored as the plain Python type its check returns (a clean cache key).
        fields = {name: checks.positive for name in ("learning_rate", "epsilon", "init_stddev")}
        fields.update({name: checks.rate for name in ("beta_1", "beta_2", "dropout")})
        fields["bias_init"] = checks.real
        for name, check in fields.items():
            object.__setattr__(self, name, check(getattr(self, name), name))
        for name in ("batch_size", "steps", "log_every"):
            object.__setattr__(self, name, checks.integer(getattr(self, name), name))
        object.__setattr__(self, "seed", checks.seed(self.seed))
        for name, allowed in (("loss", _LOSSES), ("order", _ORDERS), ("dataset", _DATASETS)):
            checks.choice(getattr(self, name), name, allowed)
        object.__setattr__(self, "layer_sizes", models._check_layer_sizes(self.layer_sizes))
        if self.layer_sizes[0] != 784 or self.layer_sizes[-1] != 10:
            raise ValueError(f"layer_sizes must start at 784 and end at 10 for MNIST, "
                             f"got {self.layer_sizes}")

    def to_dict(self) -> dict:
        """The configuration as plain data: the key of the trained model (cached or shipped)."""
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self).items()}


@dataclass
class TrainedModel:
    """A trained model with its configuration and training curves."""

    model: keras.Sequential
    config: TrainConfig
    history: dict[str, np.ndarray] = field(default_factory=dict)


def batch_indices(n: int, batch_size: int, steps: int, order: str, seed: int) -> np.ndarray:
    """The (steps, batch_size) sample indices of every training step.

    ``"tf_reader"`` mimics TensorFlow 0.x's ``DataSet.next_batch``: the first
    epoch in file order, then a new permutation per epoch; a batch never spans
    two epochs, so each epoch's last ``n % batch_size`` samples are skipped.
    ``"shuffle"`` draws a fresh permutation from the first epoch on.
    """
    rng = np.random.default_rng(seed)
    per_epoch = n // batch_size
    if per_epoch == 0:
        raise ValueError(f"batch_size ({batch_size}) is larger than the data set ({n})")
    epochs = -(-steps // per_epoch)
    chunks = []
    for epoch in range(epochs):
        perm = np.arange(n) if (epoch == 0 and order == "tf_reader") else rng.permutation(n)
        chunks.append(perm[: per_epoch * batch_size])
    return np.concatenate(chunks)[: steps * batch_size].reshape(steps, batch_size).astype(np.int32)


def train_model(config: TrainConfig | None = None, *, use_cache: bool = True) -> TrainedModel:
    """Train (or load from the cache) the model that ``config`` describes."""
    config = TrainConfig() if config is None else config
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    return _unpack(config, _entry(config).fetch(lambda: _train_arrays(config), use_cache=use_cache))


def train_models(configs: Sequence[TrainConfig], *,
                 processes: int | None = None) -> list[TrainedModel]:
    """``[train_model(c) for c in configs]``, training the ones the cache lacks side by side.

    Chapter "Training the two networks". One training run keeps about one core busy, so
    each missing network trains in a process of its own, at most ``processes`` at a time
    (default: one per CPU core). The weights are the ones ``train_model`` gives in this
    process: every run seeds itself from its configuration. Nothing is printed.
    """
    if isinstance(configs, (str, bytes)) or not isinstance(configs, Sequence):
        raise TypeError(f"configs must be a sequence of TrainConfig, got {configs!r}")
    for i, config in enumerate(configs):
        if not isinstance(config, TrainConfig):
            raise TypeError(f"configs[{i}] must be a TrainConfig, got {type(config).__name__}")
    cache.fill(train_model, [(c,) for c in configs], lambda c: [_entry(c)], processes=processes)
    return [train_model(c) for c in configs]


def _entry(config: TrainConfig) -> cache.Entry:
    """Where the network ``config`` describes is cached (and shipped)."""
    return cache.Entry("model", config.to_dict(), cache.code_version(__name__), shipped=True)


def _build(config: TrainConfig) -> keras.Sequential:
    return models.mlp(config.layer_sizes, dropout=config.dropout, init_stddev=config.init_stddev,
                      bias_init=config.bias_init)


def _unpack(config: TrainConfig, arrays: dict[str, np.ndarray]) -> TrainedModel:
    model = _build(config)
    n_weights = len(model.trainable_weights)
    model.set_weights([arrays[f"w{i}"] for i in range(n_weights)])
    history = {k[len("history_"):]: v for k, v in arrays.items() if k.startswith("history_")}
    return TrainedModel(model, config, history)


def _train_arrays(config: TrainConfig) -> dict[str, np.ndarray]:
    (x_train, y_train), (x_test, y_test) = _training_data(config.dataset)
    seeding.set_seed(config.seed)
    model = _build(config)
    optimizer = keras.optimizers.Adam(
        learning_rate=config.learning_rate, beta_1=config.beta_1, beta_2=config.beta_2,
        epsilon=config.epsilon)
    optimizer.build(model.trainable_variables)
    indices = batch_indices(len(x_train), config.batch_size, config.steps, config.order,
                            config.seed)
    run_chunk = _make_chunk_runner(model, optimizer, tf.constant(x_train),
                                   tf.constant(y_train, tf.int32), config.loss)
    evaluate = _make_evaluator(model)
    x_test_t, y_test_t = tf.constant(x_test), tf.constant(y_test, tf.int32)

    steps_done, log_steps, log_loss, log_acc = 0, [], [], []
    progress = _progress(config.steps)
    while steps_done < config.steps:
        n = min(config.log_every, config.steps - steps_done)
        loss_sum = run_chunk(tf.constant(indices[steps_done:steps_done + n]))
        steps_done += n
        log_steps.append(steps_done)
        log_loss.append(float(loss_sum) / (n * config.batch_size))
        log_acc.append(float(evaluate(x_test_t, y_test_t)))
        if progress is not None:
            progress.update(n)
            progress.set_postfix(loss=f"{log_loss[-1]:.4f}", test_acc=f"{log_acc[-1]:.4f}")
    if progress is not None:
        progress.close()
    arrays = {f"w{i}": w for i, w in enumerate(model.get_weights())}
    arrays["history_step"] = np.asarray(log_steps, np.int64)
    arrays["history_train_loss"] = np.asarray(log_loss, np.float64)
    arrays["history_test_accuracy"] = np.asarray(log_acc, np.float64)
    return arrays


def _training_data(dataset: str):
    if dataset == "post":
        (x_train, y_train), _ = data.load_post_split()
    else:
        (x_train, y_train), _ = data.load_mnist()
    _, (x_test, y_test) = data.load_mnist()
    return (x_train, y_train), (x_test, y_test)


def chunk_runner(loss_fn: Callable[[tf.Tensor, tf.Tensor], tuple[tf.Tensor, tf.Tensor]],
                 variables: Sequence, optimizer: keras.optimizers.Optimizer,
                 x_all: tf.Tensor, y_all: tf.Tensor, masks: Sequence[tf.Tensor] | None = None
                 ) -> Callable[[tf.Tensor], tf.Tensor]:
    """A compiled loop running a chunk of optimizer steps (chapter "Training the two networks").

    ``run(idx)`` takes one step per row of the int32 matrix ``idx`` (batch indices into
    ``x_all`` and ``y_all``): ``loss_fn(xb, yb)`` returns ``(loss, logged)``, ``optimizer``
    applies the gradient of ``loss`` with respect to ``variables``, and ``run`` returns the
    sum of ``logged`` over the chunk. With ``masks`` (one per variable, chapter "Pruning
    with retraining") each gradient is multiplied by its mask before the step and each
    variable after it, so masked parameters stay exactly zero.
    """
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable, got {loss_fn!r}")
    variables = list(variables)
    if masks is not None and len(masks) != len(variables):
        raise ValueError(f"masks must hold one mask per variable ({len(variables)}), got {len(masks)}")

    @tf.function(jit_compile=False, reduce_retracing=True)
    def run(idx):
        total = tf.constant(0.0, tf.float32)
        for i in tf.range(tf.shape(idx)[0]):
            xb = tf.gather(x_all, idx[i])
            yb = tf.gather(y_all, idx[i])
            with tf.GradientTape() as tape:
                loss, logged = loss_fn(xb, yb)
            grads = tape.gradient(loss, variables)
            if masks is None:
                optimizer.apply(grads, variables)
            else:
                optimizer.apply([g * m for g, m in zip(grads, masks)], variables)
                for v, m in zip(variables, masks):
                    v.assign(v * m)
            total += logged
        return total

    return run


def mean_cross_entropy(model: keras.Model) -> Callable[[tf.Tensor, tf.Tensor], tuple[tf.Tensor, tf.Tensor]]:
    """A ``chunk_runner`` loss: ``model``'s cross-entropy averaged over the batch, logged as is.

    The loss of chapter 1's tiny network and of chapter "A convolutional network".
    """
    def loss_fn(xb, yb):
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(yb, model(xb, training=True)))
        return loss, loss

    return loss_fn


def _make_chunk_runner(model, optimizer, x_all, y_all, loss_kind: str):
    """The book's loop: ``model``'s cross-entropy summed or averaged over a batch, per-sample sum logged."""
    def loss_fn(xb, yb):
        per_sample = tf.nn.sparse_softmax_cross_entropy_with_logits(yb, model(xb, training=True))
        loss = tf.reduce_sum(per_sample) if loss_kind == "sum" else tf.reduce_mean(per_sample)
        return loss, tf.reduce_sum(per_sample)

    return chunk_runner(loss_fn, model.trainable_variables, optimizer, x_all, y_all)


def _make_evaluator(model):
    @tf.function
    def accuracy(x, y):
        pred = tf.argmax(model(x, training=False), axis=1, output_type=tf.int32)
        return tf.reduce_mean(tf.cast(tf.equal(pred, y), tf.float32))

    return accuracy


def _progress(total: int):
    """A tqdm bar when someone is watching; none under tests (OBD_PROGRESS=0)."""
    setting = os.environ.get("OBD_PROGRESS", "")
    if setting == "0" or (setting != "1" and not _interactive()):
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, desc="training", unit="step", leave=False)


def _interactive() -> bool:
    if "ipykernel" in sys.modules:
        return True
    return sys.stderr.isatty()
