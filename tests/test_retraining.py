"""Tests for helpers.retraining: masked retraining keeps pruned weights at zero, is deterministic,
checks its arguments before touching the model, and recovers accuracy."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import metrics, models, pruning, retraining, saliency, seeding, training

SIZES = (6, 16, 12, 3)


def _model(seed=1, dropout=0.0):
    seeding.set_seed(seed)
    return models.mlp(SIZES, dropout=dropout, init_stddev=0.5)


def _teacher_data(n=600, seed=0):
    """Inputs labelled by a fixed random linear teacher: learnable by the small MLP."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, SIZES[0])).astype(np.float32)
    teacher = rng.normal(size=(SIZES[0], SIZES[-1]))
    return x, np.argmax(x @ teacher, axis=1)


def _random_masks(model, fraction=0.6, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.random(w.shape) >= fraction).astype(np.float32) for w in model.get_weights()]


def _same(a, b):
    return all(np.array_equal(u, v) for u, v in zip(a, b))


def test_pruned_weights_stay_exactly_zero():
    model = _model()
    before = model.get_weights()
    x, y = _teacher_data()
    masks = _random_masks(model)
    retraining.retrain(model, masks, x, y, steps=120, batch_size=32, learning_rate=1e-2)
    weights = model.get_weights()
    for w, m in zip(weights, masks):
        assert np.all(w[m == 0] == 0.0)
    # Most kept weights were trained (those of ReLU units dead on all inputs cannot move).
    kept = np.concatenate([(w != b)[m == 1] for w, b, m in zip(weights, before, masks)])
    assert kept.mean() > 0.5


def test_pruned_weights_stay_zero_with_dropout():
    model = _model(dropout=0.3)
    x, y = _teacher_data()
    masks = _random_masks(model, 0.5, seed=3)
    retraining.retrain(model, masks, x, y, steps=60, batch_size=16, learning_rate=1e-2)
    assert all(np.all(w[m == 0] == 0.0) for w, m in zip(model.get_weights(), masks))


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_same_seed_same_weights(dropout):
    x, y = _teacher_data()
    results = []
    for seed in (5, 5, 6):
        model = _model(dropout=dropout)
        masks = _random_masks(model)
        history = retraining.retrain(model, masks, x, y, steps=80, batch_size=16,
                                     learning_rate=1e-2, seed=seed, log_every=20)
        results.append((model.get_weights(), history["train_loss"]))
    assert _same(results[0][0], results[1][0])
    assert np.array_equal(results[0][1], results[1][1])
    assert not _same(results[0][0], results[2][0])


def test_all_ones_masks_match_keras_adam():
    """With nothing pruned, the loop is the book's training loop (Keras Adam, summed loss)."""
    x, y = _teacher_data()
    ours, theirs = _model(), _model()
    ones = [np.ones(w.shape, np.float32) for w in ours.get_weights()]
    retraining.retrain(ours, ones, x, y, steps=50, batch_size=32, learning_rate=1e-3, seed=2)
    optimizer = keras.optimizers.Adam(learning_rate=1e-3, epsilon=1e-8)
    optimizer.build(theirs.trainable_variables)
    run = training._make_chunk_runner(theirs, optimizer, tf.constant(x),
                                      tf.constant(y, tf.int32), "sum")
    run(tf.constant(training.batch_indices(len(x), 32, 50, "shuffle", 2)))
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, atol=2e-5)


def test_history_and_eval_sets():
    model = _model()
    x, y = _teacher_data()
    history = retraining.retrain(model, _random_masks(model), x, y, steps=50, batch_size=16,
                                 log_every=20, eval_sets={"train": (x, y)})
    assert list(history["step"]) == [20, 40, 50]
    assert set(history) == {"step", "train_loss", "train_accuracy"}
    assert history["train_accuracy"][-1] == pytest.approx(metrics.accuracy(model, x, y), abs=1e-6)


def test_accuracy_recovers_on_a_small_case():
    x, y = _teacher_data(n=1200)
    model = _model()
    ones = [np.ones(w.shape, np.float32) for w in model.get_weights()]
    retraining.retrain(model, ones, x, y, steps=1500, batch_size=32, learning_rate=3e-3)
    dense = metrics.accuracy(model, x, y)
    masks = pruning.prune_masks(saliency.saliency(model, "magnitude"), 0.7)
    pruning.apply_masks(model, masks)
    damaged = metrics.accuracy(model, x, y)
    retraining.retrain(model, masks, x, y, steps=800, batch_size=32, learning_rate=3e-3)
    recovered = metrics.accuracy(model, x, y)
    assert dense > 0.9
    assert damaged < dense - 0.1
    assert recovered > damaged + 0.1
    assert recovered > dense - 0.05


@pytest.mark.parametrize("kwargs, error, word", [
    (dict(steps=0), ValueError, "steps"),
    (dict(steps=2.5), TypeError, "steps"),
    (dict(steps=True), TypeError, "steps"),
    (dict(batch_size=0), ValueError, "batch_size"),
    (dict(batch_size=10_000), ValueError, "batch_size"),
    (dict(learning_rate=-1.0), ValueError, "learning_rate"),
    (dict(learning_rate="fast"), TypeError, "learning_rate"),
    (dict(epsilon=0.0), ValueError, "epsilon"),
    (dict(beta_1=1.0), ValueError, "beta_1"),
    (dict(beta_2=-0.1), ValueError, "beta_2"),
    (dict(loss="max"), ValueError, "loss"),
    (dict(seed=-1), ValueError, "seed"),
    (dict(log_every=0), ValueError, "log_every"),
    (dict(eval_sets=[1, 2]), TypeError, "eval_sets"),
    (dict(eval_sets={"val": (np.zeros((3, 5), np.float32), np.zeros(3, int))}), ValueError,
     "eval_sets"),
])
def test_bad_arguments_raise_before_any_change(kwargs, error, word):
    model = _model()
    before = model.get_weights()
    x, y = _teacher_data()
    arguments = dict(steps=10)
    arguments.update(kwargs)
    with pytest.raises(error, match=word):
        retraining.retrain(model, _random_masks(model), x, y, **arguments)
    assert _same(before, model.get_weights())


@pytest.mark.parametrize("change, error, word", [
    (lambda m: m[:-1], ValueError, "masks"),
    (lambda m: [m[0][:2]] + m[1:], ValueError, "masks"),
    (lambda m: [m[0] * 0.5] + m[1:], ValueError, "masks"),
    (lambda m: [m[0].astype(str)] + m[1:], TypeError, "masks"),
    (lambda m: np.ones(3), TypeError, "masks"),
])
def test_bad_masks_raise_before_any_change(change, error, word):
    model = _model()
    before = model.get_weights()
    x, y = _teacher_data()
    with pytest.raises(error, match=word):
        retraining.retrain(model, change(_random_masks(model)), x, y, steps=10)
    assert _same(before, model.get_weights())


def test_bad_data_and_model_raise_before_any_change():
    model = _model()
    before = model.get_weights()
    x, y = _teacher_data()
    masks = _random_masks(model)
    with pytest.raises(ValueError, match="x"):
        retraining.retrain(model, masks, x[:, :4], y, steps=5)
    with pytest.raises(ValueError, match="y"):
        retraining.retrain(model, masks, x, y + 5, steps=5)
    with pytest.raises(TypeError, match="model"):
        retraining.retrain("model", masks, x, y, steps=5)
    assert _same(before, model.get_weights())


def test_freeze_pruned_nests_masks():
    rng = np.random.default_rng(0)
    scores = [rng.random((5, 4)), rng.random(4)]
    first = pruning.prune_masks(scores, 0.3)
    # New scores that would rather keep the pruned ones: nesting must still hold.
    new_scores = [np.where(m == 0, 10.0, s) for s, m in zip(scores, first)]
    second = pruning.prune_masks(retraining.freeze_pruned(new_scores, first), 0.6)
    assert all(np.all(b[a == 0] == 0) for a, b in zip(first, second))
    assert sum(int((m == 0).sum()) for m in second) == pruning.n_pruned(0.6, 24)
    with pytest.raises(ValueError, match="masks"):
        retraining.freeze_pruned(scores, first[:1] + [np.ones(3)])


@pytest.mark.parametrize("kwargs, error, word", [
    (dict(method="fisher"), ValueError, "method"),
    (dict(sparsities=()), ValueError, "sparsities"),
    (dict(sparsities=(0.5, 0.4)), ValueError, "increasing"),
    (dict(sparsities=(0.5, 1.5)), ValueError, "sparsities"),
    (dict(steps_per_round=0), ValueError, "steps_per_round"),
    (dict(scope="row"), ValueError, "scope"),
    (dict(learning_rate=0.0), ValueError, "learning_rate"),
    (dict(loss="l2"), ValueError, "loss"),
])
def test_schedule_validation(kwargs, error, word):
    arguments = dict(method="obd", sparsities=(0.5, 0.8), steps_per_round=10)
    arguments.update(kwargs)
    with pytest.raises(error, match=word):
        retraining.Schedule(**arguments)


def test_prune_and_retrain_small_mnist_network(isolated_cache):
    config = training.TrainConfig(layer_sizes=(784, 12, 10), steps=300, log_every=300)
    trained = training.train_model(config)
    before = trained.model.get_weights()
    schedule = retraining.Schedule("obd", (0.5, 0.8), steps_per_round=150, n_score=500,
                                   log_every=50)
    result = retraining.prune_and_retrain(trained, schedule)
    assert _same(before, trained.model.get_weights())  # the trained network is not changed
    n = sum(w.size for w in before)
    assert np.allclose(result.sparsity, [pruning.n_pruned(f, n) / n for f in (0.5, 0.8)])
    assert list(result.steps) == [150, 300]
    assert list(result.log["step"]) == [50, 100, 150, 200, 250, 300]
    assert list(result.log["round"]) == [0, 0, 0, 1, 1, 1]
    assert np.all(result.accuracy >= result.pruned_accuracy - 0.02)
    weights = result.model.get_weights()
    assert all(np.all(w[m == 0] == 0) for w, m in zip(weights, result.masks))
    assert 1 - sum(m.sum() for m in result.masks) / n == pytest.approx(result.sparsity[-1])
    again = retraining.prune_and_retrain(trained, schedule)  # from the cache
    assert _same(weights, again.model.get_weights())
    assert np.array_equal(result.log["test_accuracy"], again.log["test_accuracy"])
    with pytest.raises(TypeError, match="schedule"):
        retraining.prune_and_retrain(trained, {"method": "obd"})
    with pytest.raises(TypeError, match="trained"):
        retraining.prune_and_retrain(trained.model, schedule)


def test_prune_and_retrain_all_side_by_side_equals_one_at_a_time(isolated_cache):
    """Two networks, two schedules: four runs in worker processes, as the same runs done here."""
    trained = [training.train_model(training.TrainConfig(layer_sizes=(784, 12, 10), steps=200,
                                                         log_every=200, seed=s)) for s in (0, 1)]
    schedules = [retraining.Schedule(m, (0.5, 0.8), steps_per_round=60, n_score=300, log_every=60)
                 for m in ("obd", "magnitude")]
    out = retraining.prune_and_retrain_all(trained, schedules)
    assert len(out) == 2 and all(len(row) == 2 for row in out)
    for schedule, row in zip(schedules, out):
        for t, result in zip(trained, row):
            here = retraining.prune_and_retrain(t, schedule, use_cache=False)
            # A fresh process and pytest's may round the last float32 bit apart (seen: 1e-8).
            assert all(np.allclose(a, b, rtol=0, atol=1e-6)
                       for a, b in zip(result.model.get_weights(), here.model.get_weights()))
            assert np.array_equal(result.log["test_accuracy"], here.log["test_accuracy"])
            assert np.array_equal(result.pruned_accuracy, here.pruned_accuracy)
    with pytest.raises(TypeError, match="schedules"):
        retraining.prune_and_retrain_all(trained, [])
    with pytest.raises(TypeError, match=r"trained\[1\]"):
        retraining.prune_and_retrain_all([trained[0], trained[1].model], schedules)


def test_random_schedule_is_a_seeded_nested_baseline(isolated_cache):
    """The random ranking prunes the stated share, differs between seeds, repeats under one seed, and
    a schedule at sparsity 0 retrains the dense network with nothing pruned."""
    trained = training.train_model(training.TrainConfig(layer_sizes=(784, 12, 10), steps=200,
                                                        log_every=200))
    runs = [retraining.prune_and_retrain(trained, retraining.Schedule(
        "random", (0.5, 0.8), steps_per_round=40, log_every=40, seed=s), use_cache=False)
        for s in (0, 0, 1)]
    n = sum(w.size for w in trained.model.get_weights())
    assert np.allclose(runs[0].sparsity, [pruning.n_pruned(f, n) / n for f in (0.5, 0.8)])
    assert all(np.array_equal(a, b) for a, b in zip(runs[0].masks, runs[1].masks))
    assert not all(np.array_equal(a, b) for a, b in zip(runs[0].masks, runs[2].masks))
    # Not a ranking by size: the pruned and the kept weights have about the same sizes.
    w = np.concatenate([a.ravel() for a in trained.model.get_weights()])
    m = np.concatenate([a.ravel() for a in runs[0].masks])
    assert abs(np.median(np.abs(w[m == 0])) / np.median(np.abs(w[m == 1])) - 1) < 0.2
    dense = retraining.prune_and_retrain(trained, retraining.Schedule(
        "magnitude", (0.0,), steps_per_round=40, log_every=20), use_cache=False)
    assert dense.sparsity[0] == 0 and all(np.all(k == 1) for k in dense.masks)
    assert list(dense.log["step"]) == [20, 40]


# --- one compiled loop per layout, reused across calls --------------------------------------

@pytest.fixture
def no_loops():
    """Start without compiled retraining loops, as a fresh process does."""
    retraining._LOOPS.clear()
    yield
    retraining._LOOPS.clear()


def _bitwise(a, b):
    return len(a) == len(b) and all(u.dtype == v.dtype and u.tobytes() == v.tobytes()
                                    for u, v in zip(a, b))


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_calls_in_a_row_equal_fresh_calls(dropout, no_loops):
    """A loop reused by another call starts that call from its own weights, masks, seed and a fresh
    Adam: each call gives bit for bit what it gives in a process that runs nothing else."""
    x, y = _teacher_data()
    x.flags.writeable = False  # held across calls, as the book's data are
    settings = [dict(seed=1, learning_rate=1e-2), dict(seed=2, learning_rate=3e-3)]

    def run(i):
        model = _model(seed=i + 1, dropout=dropout)
        # 70 steps logged every 30: two chunk lengths, so the loop holds two traces.
        history = retraining.retrain(model, _random_masks(model, seed=i), x, y, steps=70,
                                     batch_size=16, log_every=30, **settings[i])
        return model.get_weights(), [history[k] for k in sorted(history)]

    fresh = []
    for i in range(2):
        retraining._LOOPS.clear()
        fresh.append(run(i))
    in_a_row = [run(0), run(1), run(0), run(0)]
    assert len(retraining._LOOPS) == 1
    for (weights, history), i in zip(in_a_row, (0, 1, 0, 0)):
        assert _bitwise(weights, fresh[i][0])
        assert _bitwise(history, fresh[i][1])
    assert not _bitwise(fresh[0][0], fresh[1][0])


def test_one_layout_is_traced_once(no_loops):
    x, y = _teacher_data()
    for i in range(3):
        model = _model(seed=i + 1)
        retraining.retrain(model, _random_masks(model, seed=i), x, y, steps=40, batch_size=16,
                           log_every=20, learning_rate=10.0 ** -(i + 2), seed=i,
                           eval_sets={"train": (x, y)})
    (loop,) = retraining._LOOPS.values()
    assert loop.run.experimental_get_tracing_count() == 1
    # Another batch size is another layout; only the most recent _MAX_LOOPS loops are kept.
    for batch_size in (8, 10, 12, 14, 18):
        model = _model()
        retraining.retrain(model, _random_masks(model), x, y, steps=5, batch_size=batch_size)
    assert len(retraining._LOOPS) == retraining._MAX_LOOPS
    assert [k.batch_size for k in retraining._LOOPS] == [10, 12, 14, 18]


def test_a_changed_training_set_is_loaded_again(no_loops):
    """Writeable data are copied in at every call; read-only data once, unless their owner was
    made writeable, changed and frozen again (the key samples the values)."""
    def run(x, y):
        model = _model()
        retraining.retrain(model, _random_masks(model), x, y, steps=40, batch_size=16)
        return model.get_weights()

    def fresh(x, y):
        retraining._LOOPS.clear()
        return run(x.copy(), y.copy())

    x, y = _teacher_data()
    run(x, y)
    x *= -1.0
    y[:] = y[::-1]
    assert _bitwise(run(x, y), fresh(x, y))
    frozen = x.copy()
    frozen.flags.writeable = False
    run(frozen, y)
    frozen.flags.writeable = True
    frozen *= 0.5
    frozen.flags.writeable = False
    assert _bitwise(run(frozen, y), fresh(frozen, y))


def test_frozen_mark_names_read_only_memory_only():
    owner = np.arange(12.0).reshape(6, 2).copy()  # owns its memory
    assert retraining._frozen_mark(owner) is None  # writeable
    owner.flags.writeable = False
    a, b = retraining._frozen_mark(owner[2:]), retraining._frozen_mark(owner[2:])
    assert a[0] is b[0] is owner and a[1] == b[1]  # two views of the same memory
    assert retraining._frozen_mark(owner[1:])[1] != a[1]
    view = np.arange(6)[1:]
    view.flags.writeable = False
    assert retraining._frozen_mark(view) is None  # its owner can still be written
    assert retraining._frozen_mark([1, 2]) is None
