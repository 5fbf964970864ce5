"""Pruning with retraining (chapter "Pruning with retraining").

The full recipe of LeCun, Denker and Solla (1990) does not stop at deleting
parameters: it trains the network again with the deleted parameters held at
zero, recomputes the saliencies, deletes some more, and repeats.

``retrain`` is the masked training loop: Keras's Adam in the book's compiled
loop (``training.chunk_runner``) on the network's weights as a flat list, with
pruned parameters kept *exactly* zero in two ways: their gradients are masked,
so Adam's moment estimates for them stay zero, and the weights are multiplied
by the mask after every step. The
batch order comes from ``seed`` (``training.batch_indices``), dropout (if the
model has any) from stateless random ops seeded by ``seed`` and the step, so
the same call gives the same weights. The loop is compiled once per layout (the
weights' shapes, dropout rates, loss, batch size, Adam's betas and epsilon, the
training set's shape) and kept: a call writes its weights, masks, seed and a
zeroed Adam state into the loop's variables, and copies its training set in
only if it is not the read-only array already held.

``prune_and_retrain`` runs a whole schedule, one-shot (one round) or
iterative (several rounds), on one of the book's trained networks, and caches
everything it measured with ``helpers.cache.fetch``.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from helpers import cache, checks, data, metrics, models, network, pruning, saliency, training

#: Rankings a schedule may use, recomputed on the pruned model every round: the two
#: saliencies, and ``"random"``, a uniform random score per parameter (the baseline).
SCHEDULE_METHODS = ("magnitude", "obd", "random")
_LOSSES = ("sum", "mean")


def retrain(model: keras.Model, masks: Sequence[np.ndarray], x: np.ndarray, y: np.ndarray, *,
            steps: int, learning_rate: float = 1e-4, batch_size: int = 64, loss: str = "sum",
            beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-8, seed: int = 0,
            log_every: int | None = None,
            eval_sets: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
            ) -> dict[str, np.ndarray]:
    """Prune ``model`` with ``masks`` and train it for ``steps`` Adam steps, pruned weights frozen at 0.

    The model is changed in place (its weights become the retrained ones). A
    fresh Adam state is used, as at the start of any training. Mini-batches of
    ``batch_size`` rows of ``(x, y)`` follow a fresh permutation per epoch,
    drawn from ``seed``; ``loss="sum"`` sums the cross-entropy over a batch as
    the post did, ``"mean"`` averages it.

    Returns a history: ``step`` (steps done at each log point, every
    ``log_every`` steps and at the end), ``train_loss`` (mean per-sample loss
    over the steps since the previous log point) and, for every
    ``name -> (x_eval, y_eval)`` in ``eval_sets``, ``<name>_accuracy``. Every
    argument is checked before the model is touched.
    """
    chain = network.dense_chain(model)
    weights = chain.weights()
    masks = pruning.check_masks(masks, weights)
    x_given, y_given = x, y
    x, y = network.check_xy(x, y, chain.input_width, chain.n_classes)
    steps = checks.integer(steps, "steps", 1)
    batch_size = checks.integer(batch_size, "batch_size", 1)
    if batch_size > len(x):
        raise ValueError(f"batch_size ({batch_size}) is larger than the data set ({len(x)})")
    seed = checks.seed(seed)
    log_every = steps if log_every is None else checks.integer(log_every, "log_every", 1)
    learning_rate = checks.positive(learning_rate, "learning_rate")
    epsilon = checks.positive(epsilon, "epsilon")
    beta_1 = checks.rate(beta_1, "beta_1")
    beta_2 = checks.rate(beta_2, "beta_2")
    loss = checks.choice(loss, "loss", _LOSSES)
    evaluations = _check_eval_sets(eval_sets, chain)
    rates = _dropout_rates(model, len(chain.layers))

    # --- work starts here: nothing above changed the model -------------------------------
    indices = training.batch_indices(len(x), batch_size, steps, "shuffle", seed)
    # The betas are rounded to float32 first, so that 1 - beta is the float32 difference
    # training.py's loop uses (Keras would subtract the float64 value).
    key = _LoopKey(shapes=tuple(w.shape for w in weights), layout=chain.layout, rates=rates,
                   loss=loss, batch_size=batch_size, beta_1=float(np.float32(beta_1)),
                   beta_2=float(np.float32(beta_2)), epsilon=epsilon, data_shape=x.shape)
    loop = _loop(key, x_given, y_given, x, y)
    loop.start(weights, masks, learning_rate, seed, x_given, y_given, x, y)
    run, variables = loop.run, loop.variables
    done, log = 0, {"step": [], "train_loss": []}
    for name in evaluations:
        log[f"{name}_accuracy"] = []
    while done < steps:
        n = min(log_every, steps - done)
        loss_sum = run(tf.constant(indices[done:done + n]))
        done += n
        log["step"].append(done)
        log["train_loss"].append(float(loss_sum) / (n * batch_size))
        weights_now = tuple(tf.convert_to_tensor(v) for v in variables)
        for name, (xe, ye) in evaluations.items():
            log[f"{name}_accuracy"].append(float(_accuracy(weights_now, xe, ye, chain.layout)))
    model.set_weights([v.numpy() for v in variables])
    return {k: np.asarray(v, np.int64 if k == "step" else np.float64) for k, v in log.items()}


@dataclass(frozen=True)
class Schedule:
    """One pruning-with-retraining experiment on one trained network.

    ``sparsities`` are the fractions of all parameters pruned after each
    round (strictly increasing); one entry is one-shot pruning, several are
    iterative pruning. Each round scores the current (already pruned and
    retrained) model by ``method``, prunes the lowest-scored parameters until
    ``sparsities[r]`` of them are zero (the ones already pruned stay pruned),
    and retrains for ``steps_per_round`` steps. ``n_score`` training images
    (the first of the 55,000) feed the OBD Hessian diagonal.
    """

    method: str
    sparsities: tuple[float, ...]
    steps_per_round: int
    scope: str = "global"
    learning_rate: float = 1e-4
    batch_size: int = 64
    loss: str = "sum"
    n_score: int = 10_000
    log_every: int = 500
    seed: int = 0

    def __post_init__(self) -> None:
        checks.choice(self.method, "method", SCHEDULE_METHODS)
        values = checks.fractions(self.sparsities, "sparsities", order="increasing")
        object.__setattr__(self, "sparsities", tuple(values))
        for name, low in (("steps_per_round", 1), ("batch_size", 1), ("n_score", 1),
                          ("log_every", 1), ("seed", 0)):
            checks.integer(getattr(self, name), name, low)
        pruning.check_scope(self.scope)
        checks.positive(self.learning_rate, "learning_rate")
        checks.choice(self.loss, "loss", _LOSSES)

    @property
    def total_steps(self) -> int:
        return self.steps_per_round * len(self.sparsities)

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self).items()}


@dataclass
class ScheduleResult:
    """What ``prune_and_retrain`` measured, round by round, and the final network.

    Per round ``r``: ``sparsity[r]`` (fraction of all parameters at zero),
    ``pruned_accuracy[r]`` (test accuracy right after pruning, before
    retraining), ``accuracy[r]`` and ``val_accuracy[r]`` (after retraining),
    ``steps[r]`` (retraining steps done so far, all rounds). ``log`` holds the
    retraining curves: ``round``, ``step`` (cumulative), ``train_loss``,
    ``val_accuracy``, ``test_accuracy``. ``model`` and ``masks`` are the
    network after the last round.
    """

    schedule: Schedule
    sparsity: np.ndarray
    pruned_accuracy: np.ndarray
    accuracy: np.ndarray
    val_accuracy: np.ndarray
    steps: np.ndarray
    log: dict[str, np.ndarray]
    model: keras.Sequential
    masks: list[np.ndarray]


def prune_and_retrain(trained: training.TrainedModel, schedule: Schedule, *,
                      use_cache: bool = True) -> ScheduleResult:
    """Run ``schedule`` on a copy of ``trained.model`` (cached by both configurations).

    Retraining uses the post's 55,000-image split, validation accuracy the
    other 5,000 images, test accuracy the 10,000 test images. Round ``r``
    draws its batch order from seed ``1000 * schedule.seed + r``.
    """
    if not isinstance(trained, training.TrainedModel):
        raise TypeError(f"trained must be a training.TrainedModel, got {type(trained).__name__}")
    if not isinstance(schedule, Schedule):
        raise TypeError(f"schedule must be a retraining.Schedule, got {type(schedule).__name__}")
    network.dense_chain(trained.model)
    build = lambda: _run_schedule(trained, schedule)  # noqa: E731
    if not use_cache:
        arrays = build()
    else:
        arrays = _entry(trained.config, schedule).fetch(build)
    return _unpack(trained, schedule, arrays)


def prune_and_retrain_all(trained: Sequence[training.TrainedModel],
                          schedules: Sequence[Schedule]) -> list[list[ScheduleResult]]:
    """``prune_and_retrain`` of every schedule on every network: ``out[i][j]`` is
    ``schedules[i]`` run on ``trained[j]`` (chapter "Pruning with retraining").

    The runs the cache lacks are computed first, side by side, one process per
    CPU core (``cache.fill``); each process reloads its network from the cache by
    its configuration, so the results are the ones ``prune_and_retrain`` gives here.
    """
    for name, items, kind in (("trained", trained, training.TrainedModel),
                              ("schedules", schedules, Schedule)):
        if isinstance(items, (str, bytes)) or not isinstance(items, Sequence) or not items:
            raise TypeError(f"{name} must be a non-empty sequence of {kind.__name__}")
        for i, item in enumerate(items):
            if not isinstance(item, kind):
                raise TypeError(f"{name}[{i}] must be a {kind.__name__}, got {type(item).__name__}")
    for t in trained:
        network.dense_chain(t.model)
    cache.fill(_prune_and_retrain_config, [(t.config, s) for s in schedules for t in trained],
               lambda config, schedule: [_entry(config, schedule)])
    return [[prune_and_retrain(t, s) for t in trained] for s in schedules]


def _entry(config: training.TrainConfig, schedule: Schedule) -> cache.Entry:
    """Where a schedule's run on the network ``config`` describes is cached (and shipped)."""
    return cache.Entry("retrain", {"trained": config.to_dict(), "schedule": schedule.to_dict()},
                       cache.code_version(__name__), shipped=True)


def _prune_and_retrain_config(config: training.TrainConfig, schedule: Schedule) -> None:
    """Worker of ``prune_and_retrain_all``: the run, into the cache (the caller reads it)."""
    prune_and_retrain(training.train_model(config), schedule)


def freeze_pruned(scores: Sequence[np.ndarray], masks: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Scores with every already-pruned parameter (mask 0) placed below all others.

    ``pruning.prune_masks`` then prunes them first, so the masks of
    successive rounds are nested.
    """
    scores = pruning.check_scores(scores)
    masks = pruning.check_scores(masks, name="masks")
    if [s.shape for s in scores] != [m.shape for m in masks]:
        raise ValueError("masks must have the shapes of scores")
    low = min(float(np.min(s)) for s in scores) - 1.0
    return [np.where(m == 0, low, s.astype(np.float64)) for s, m in zip(scores, masks)]


# --- internals -------------------------------------------------------------------------------

def _run_schedule(trained: training.TrainedModel, schedule: Schedule) -> dict[str, np.ndarray]:
    (x_train, y_train), (x_val, y_val) = data.load_post_split()
    _, (x_test, y_test) = data.load_mnist()
    x_score, y_score = x_train[:schedule.n_score], y_train[:schedule.n_score]
    model = models.mlp(trained.config.layer_sizes, dropout=trained.config.dropout)
    model.set_weights(trained.model.get_weights())
    masks = [np.ones(w.shape, np.float32) for w in model.get_weights()]
    out = {k: [] for k in ("sparsity", "pruned_accuracy", "accuracy", "val_accuracy", "steps")}
    logs = {k: [] for k in ("round", "step", "train_loss", "val_accuracy", "test_accuracy")}
    for r, target in enumerate(schedule.sparsities):
        scores = _scores(model, schedule, r, x_score, y_score)
        masks = pruning.prune_masks(freeze_pruned(scores, masks), target, scope=schedule.scope)
        pruning.apply_masks(model, masks)
        out["sparsity"].append(1.0 - sum(m.sum() for m in masks) / sum(m.size for m in masks))
        out["pruned_accuracy"].append(metrics.accuracy(model, x_test, y_test))
        history = retrain(model, masks, x_train, y_train, steps=schedule.steps_per_round,
                          learning_rate=schedule.learning_rate, batch_size=schedule.batch_size,
                          loss=schedule.loss, seed=1000 * schedule.seed + r,
                          log_every=schedule.log_every,
                          eval_sets={"val": (x_val, y_val), "test": (x_test, y_test)})
        offset = r * schedule.steps_per_round
        logs["round"].append(np.full(len(history["step"]), r))
        logs["step"].append(history["step"] + offset)
        logs["train_loss"].append(history["train_loss"])
        logs["val_accuracy"].append(history["val_accuracy"])
        logs["test_accuracy"].append(history["test_accuracy"])
        out["accuracy"].append(history["test_accuracy"][-1])
        out["val_accuracy"].append(history["val_accuracy"][-1])
        out["steps"].append(offset + schedule.steps_per_round)
    arrays = {k: np.asarray(v, np.int64 if k == "steps" else np.float64) for k, v in out.items()}
    for k, v in logs.items():
        arrays[f"log_{k}"] = np.concatenate(v)
    for i, (w, m) in enumerate(zip(model.get_weights(), masks)):
        arrays[f"w{i}"] = w
        arrays[f"m{i}"] = m
    return arrays


def _scores(model: keras.Model, schedule: Schedule, round_: int, x: np.ndarray,
            y: np.ndarray) -> list[np.ndarray]:
    """Round ``round_``'s scores: a saliency, or uniform draws from ``(schedule.seed, round_)``."""
    if schedule.method == "random":
        rng = np.random.default_rng((schedule.seed, round_))
        return [rng.random(w.shape) for w in model.get_weights()]
    return saliency.saliency(model, schedule.method, x, y)


def _unpack(trained: training.TrainedModel, schedule: Schedule,
            arrays: dict[str, np.ndarray]) -> ScheduleResult:
    model = models.mlp(trained.config.layer_sizes, dropout=trained.config.dropout)
    n = len(model.trainable_weights)
    model.set_weights([arrays[f"w{i}"] for i in range(n)])
    return ScheduleResult(
        schedule=schedule, sparsity=arrays["sparsity"], pruned_accuracy=arrays["pruned_accuracy"],
        accuracy=arrays["accuracy"], val_accuracy=arrays["val_accuracy"], steps=arrays["steps"],
        log={k[len("log_"):]: v for k, v in arrays.items() if k.startswith("log_")},
        model=model, masks=[arrays[f"m{i}"] for i in range(n)])


def _dropout(rates: tuple[float, ...], seed, step, n_layers: int):
    """Training-mode dropout after hidden layer ``j``: stateless, so each step is reproducible."""
    def apply(a, j):
        if rates[j] == 0:
            return a
        return tf.nn.experimental.stateless_dropout(a, rates[j], seed=tf.stack([seed, step * n_layers + j]))
    return apply


#: How many compiled retraining loops (one per ``_LoopKey``) stay alive; the least recently
#: used one is dropped first.
_MAX_LOOPS = 4


@dataclass(frozen=True)
class _LoopKey:
    """What the compiled retraining loop is traced for: calls that agree on it share one loop."""

    shapes: tuple[tuple[int, ...], ...]
    layout: tuple[bool, ...]
    rates: tuple[float, ...]
    loss: str
    batch_size: int
    beta_1: float
    beta_2: float
    epsilon: float
    data_shape: tuple[int, ...]


class _HeldArray:
    """An array kept in a TensorFlow variable, copied in again only when another array comes."""

    def __init__(self, given: object, value: np.ndarray) -> None:
        self.variable = tf.Variable(value, trainable=False)
        self._owner: weakref.ref | None = None
        self._signature: tuple | None = None
        self._remember(given)

    def load(self, given: object, value: np.ndarray) -> None:
        """Hold ``value``, the checked form of the argument ``given``; skip the copy when
        ``given`` is the read-only array already held."""
        mark = _frozen_mark(given)
        if (mark is not None and self._owner is not None and self._owner() is mark[0]
                and self._signature == mark[1]):
            return
        self.variable.assign(value)
        self._remember(given)

    def _remember(self, given: object) -> None:
        mark = _frozen_mark(given)
        self._owner, self._signature = (None, None) if mark is None else (weakref.ref(mark[0]), mark[1])


class _TrainingSet:
    """Training inputs and labels of one shape, as the variables the compiled loops gather from."""

    def __init__(self, x_given: object, y_given: object, x: np.ndarray, y: np.ndarray) -> None:
        self.x = _HeldArray(x_given, x)
        self.y = _HeldArray(y_given, y)


#: One ``_TrainingSet`` per data shape, shared by the loops alive that train on that shape.
_TRAINING_SETS: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


class _Loop:
    """The compiled masked-Adam loop of one ``_LoopKey`` and the state it runs on.

    Weights, masks, the dropout seed and Adam's variables are variables the traced loop
    reads; ``start`` overwrites all of them, so each run begins from its own arguments.
    """

    def __init__(self, key: _LoopKey, x_given: object, y_given: object, x: np.ndarray,
                 y: np.ndarray) -> None:
        data = _TRAINING_SETS.get(key.data_shape)
        if data is None:  # the first training set of this shape: held from the start
            data = _TrainingSet(x_given, y_given, x, y)
            _TRAINING_SETS[key.data_shape] = data
        self.data = data
        self.variables = [keras.Variable(np.zeros(shape, np.float32)) for shape in key.shapes]
        self.masks = [tf.Variable(tf.ones(shape, tf.float32), trainable=False) for shape in key.shapes]
        self.seed = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.optimizer = keras.optimizers.Adam(beta_1=key.beta_1, beta_2=key.beta_2,
                                               epsilon=key.epsilon)
        self.optimizer.build(self.variables)
        variables, optimizer, seed, n_layers = self.variables, self.optimizer, self.seed, len(key.layout)

        def loss_fn(xb, yb):
            # Steps done before this one (Adam's counter, 0 at the start of a call): seeds the dropout.
            step = tf.convert_to_tensor(optimizer.iterations)
            logits = network.logits(xb, variables, key.layout,
                                    hidden=_dropout(key.rates, tf.convert_to_tensor(seed), step, n_layers))
            per_sample = tf.nn.sparse_softmax_cross_entropy_with_logits(yb, logits)
            summed = tf.reduce_sum(per_sample) if key.loss == "sum" else tf.reduce_mean(per_sample)
            return summed, tf.reduce_sum(per_sample)

        self.run = training.chunk_runner(loss_fn, variables, optimizer, data.x.variable,
                                         data.y.variable, masks=self.masks)

    def start(self, weights: Sequence[np.ndarray], masks: Sequence[np.ndarray], learning_rate: float,
              seed: int, x_given: object, y_given: object, x: np.ndarray, y: np.ndarray) -> None:
        """Load one run: masked weights, masks, seed, training set, and Adam at step 0 with zero moments."""
        for variable, mask, w, m in zip(self.variables, self.masks, weights, masks):
            variable.assign(w * m)
            mask.assign(m)
        self.seed.assign(seed)
        for variable in self.optimizer.variables:
            variable.assign(np.zeros(variable.shape, variable.dtype))
        self.optimizer.learning_rate = learning_rate
        self.data.x.load(x_given, x)
        self.data.y.load(y_given, y)


_LOOPS: collections.OrderedDict[_LoopKey, _Loop] = collections.OrderedDict()


def _loop(key: _LoopKey, x_given: object, y_given: object, x: np.ndarray, y: np.ndarray) -> _Loop:
    """The loop of ``key``, built on first use (on the training set ``x``, ``y`` if none of its
    shape is held yet); at most ``_MAX_LOOPS`` are kept."""
    loop = _LOOPS.pop(key, None)
    if loop is None:
        loop = _Loop(key, x_given, y_given, x, y)
        while len(_LOOPS) >= _MAX_LOOPS:
            _LOOPS.popitem(last=False)
    _LOOPS[key] = loop
    return loop


def _frozen_mark(given: object) -> tuple[np.ndarray, tuple] | None:
    """``(owner, signature)`` for a read-only array whose memory's owner is read-only too, else None.

    ``owner`` is the array that owns the memory ``given`` views; ``signature`` is where and how
    it views it, and a digest of about 64 of its rows (a cheap check against an owner made
    writeable again and changed). Other arrays give None: they are copied at every call.
    """
    if not isinstance(given, np.ndarray) or given.flags.writeable or given.size == 0:
        return None
    owner = given
    while isinstance(owner.base, np.ndarray):
        owner = owner.base
    if owner.base is not None or owner.flags.writeable:
        return None
    sample = np.ascontiguousarray(given[::max(1, len(given) // 64)])
    signature = (given.__array_interface__["data"][0], given.shape, given.strides, given.dtype.str,
                 hashlib.sha256(sample.tobytes()).hexdigest())
    return owner, signature


@tf.function(reduce_retracing=True)
def _accuracy(weights, x, y, layout):
    logits = network.logits(x, list(weights), layout)
    hits = tf.equal(tf.argmax(logits, axis=1, output_type=tf.int32), y)
    return tf.reduce_mean(tf.cast(hits, tf.float32))


def _dropout_rates(model: keras.Model, n_dense: int) -> tuple[float, ...]:
    """The dropout rate after each hidden Dense layer (0 where there is none)."""
    rates, dense_seen = [0.0] * n_dense, 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dense):
            dense_seen += 1
        elif isinstance(layer, keras.layers.Dropout):
            if dense_seen == 0 or dense_seen >= n_dense:
                raise NotImplementedError("model: dropout is supported only after hidden layers")
            rates[dense_seen - 1] = float(layer.rate)
    return tuple(rates)


def _check_eval_sets(eval_sets: object, chain: network.DenseChain) -> dict:
    if eval_sets is None:
        return {}
    if not isinstance(eval_sets, Mapping):
        raise TypeError("eval_sets must be a mapping name -> (x, y)")
    out = {}
    for name, pair in eval_sets.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"eval_sets keys must be identifiers, got {name!r}")
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise TypeError(f"eval_sets[{name!r}] must be a pair (x, y)")
        xe, ye = network.check_xy(pair[0], pair[1], chain.input_width, chain.n_classes,
                                  x_name=f"eval_sets[{name!r}][0]",
                                  y_name=f"eval_sets[{name!r}][1]")
        out[name] = (tf.constant(xe), tf.constant(ye))
    return out
