"""Bad input to every public helper fails early, names the argument, and leaves the model alone."""

import keras
import numpy as np
import pytest

from conftest import small_data, small_mlp
from helpers import hessian, metrics, models, pruning, saliency, seeding, training
from helpers import cnn as cnn_helpers
from helpers.post import as_ran, described, networks


@pytest.fixture
def setup():
    model = small_mlp()
    x, y = small_data()
    return model, x, y, [w.copy() for w in model.get_weights()]


def unchanged(model, before):
    return all(np.array_equal(a, b) for a, b in zip(model.get_weights(), before))


def scores_of(model):
    return saliency.saliency(model, "magnitude")


BAD_FRACTIONS = [(-0.1, ValueError), (1.5, ValueError), (float("nan"), ValueError),
                 (True, TypeError), ("0.5", TypeError), (None, TypeError)]


@pytest.mark.parametrize("fraction,error", BAD_FRACTIONS)
def test_prune_masks_rejects_bad_fractions(setup, fraction, error):
    model = setup[0]
    with pytest.raises(error, match="fraction"):
        pruning.prune_masks(scores_of(model), fraction)


@pytest.mark.parametrize("fraction,error", BAD_FRACTIONS)
def test_sweep_rejects_bad_fractions(setup, fraction, error):
    model, x, y, before = setup
    with pytest.raises(error, match="fractions"):
        pruning.sweep(model, scores_of(model), [0.1, fraction], x, y)
    assert unchanged(model, before)


@pytest.mark.parametrize("scope", ["all", "", None, 3])
def test_unknown_scope(setup, scope):
    model, x, y, before = setup
    error = ValueError if isinstance(scope, str) else TypeError  # a non-string is the wrong type
    with pytest.raises(error, match="scope.*global.*layer"):
        pruning.prune_masks(scores_of(model), 0.1, scope)
    with pytest.raises(error, match="scope"):
        pruning.sweep(model, scores_of(model), [0.1], x, y, scope)
    with pytest.raises(error, match="scope"):
        hessian.hessian_row_sums(model, x, y, scope=scope)
    assert unchanged(model, before)


@pytest.mark.parametrize("method", ["hessian", "EXACT", None])
def test_unknown_methods(setup, method):
    model, x, y, before = setup
    error = ValueError if isinstance(method, str) else TypeError
    with pytest.raises(error, match="method.*exact"):
        hessian.hessian_diagonal(model, x, y, method=method)
    with pytest.raises(error, match="method.*magnitude"):
        saliency.saliency(model, method, x, y)
    assert unchanged(model, before)


@pytest.mark.parametrize("scores,error", [
    ([], ValueError), ([np.array([1.0, np.nan])], ValueError), ([np.array([])], ValueError),
    (np.zeros(3), TypeError), ([np.array(["a", "b"])], TypeError), ([np.array([True])], TypeError),
])
def test_bad_scores(scores, error):
    with pytest.raises(error, match="scores"):
        pruning.prune_masks(scores, 0.5)


def test_scores_of_the_wrong_shape_for_the_model(setup):
    model, x, y, before = setup
    with pytest.raises(ValueError, match="scores"):
        pruning.sweep(model, scores_of(model)[:-1], [0.1], x, y)
    with pytest.raises(ValueError, match="masks"):
        pruning.apply_masks(model, [np.ones(3)] * len(before))
    with pytest.raises(ValueError, match="masks"):
        pruning.apply_masks(model, [np.full(w.shape, 0.5) for w in before])
    with pytest.raises(ValueError, match="masks"):
        with pruning.pruned(model, [np.ones(3)] * len(before)):
            pass
    assert unchanged(model, before)


def data_cases(x, y):
    return [
        ("labels out of range", x, np.where(y == 0, 3, y), ValueError, "y.*\\[0, 3\\)"),
        ("negative labels", x, y - 1, ValueError, "y"),
        ("float labels", x, y.astype(float), TypeError, "y"),
        ("length mismatch", x, y[:-1], ValueError, "x\\w* and y\\w* must have the same length"),
        ("wrong input width", x[:, :5], y, ValueError, "x.*6 columns"),
        ("NaN inputs", np.where(x > 1, np.nan, x), y, ValueError, "x.*NaN"),
        ("empty batch", x[:0], y[:0], ValueError, "x.*empty"),
        ("1-D inputs", x[0], y[:1], ValueError, "x.*2-D"),
        ("string inputs", x.astype(str), y, TypeError, "x"),
    ]


CALLS = {
    "hessian_diagonal": lambda m, x, y: hessian.hessian_diagonal(m, x, y),
    "hessian_row_sums": lambda m, x, y: hessian.hessian_row_sums(m, x, y),
    "gradient": lambda m, x, y: hessian.gradient(m, x, y),
    "saliency_obd": lambda m, x, y: saliency.saliency(m, "obd", x, y),
    "sweep": lambda m, x, y: pruning.sweep(m, saliency.saliency(m, "magnitude"), [0.1], x, y),
    "accuracy": lambda m, x, y: metrics.accuracy(m, x, y),
    "mean_loss": lambda m, x, y: metrics.mean_loss(m, x, y),
    "obd_as_ran": lambda m, x, y: as_ran.obd_as_ran(m, [0.1], "global", x, y, x, y, batch_size=8),
}


#: The case names, read from ``data_cases`` itself so that adding a case adds a test.
CASES = [case[0] for case in data_cases(np.ones((2, 6), np.float32), np.ones(2, np.int64))]


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize("case", CASES)
def test_bad_data_is_refused_before_any_work(setup, call, case):
    model, x, y, before = setup
    name, bx, by, error, pattern = {c[0]: c for c in data_cases(x, y)}[case]
    with pytest.raises(error, match=pattern):
        CALLS[call](model, bx, by)
    assert unchanged(model, before), name


@pytest.mark.parametrize("batch_size,error", [(0, ValueError), (-5, ValueError), (2.5, TypeError),
                                              (True, TypeError)])
def test_bad_batch_size(setup, batch_size, error):
    model, x, y, _ = setup
    with pytest.raises(error, match="batch_size"):
        hessian.hessian_diagonal(model, x, y, batch_size=batch_size)


def cnn():
    seeding.set_seed(0)
    return keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(2, 3),
                             keras.layers.Flatten(), keras.layers.Dense(3)])


@pytest.mark.parametrize("call", CALLS)
def test_unsupported_models_are_refused(call):
    """A conv net none of the helpers reads (image-shaped inputs, a linear convolution): the MLP
    helpers refuse it as not an MLP, those that read conv nets too as not one they read."""
    model = cnn()
    before = [w.copy() for w in model.get_weights()]
    x, y = small_data((64, 3))
    with pytest.raises(NotImplementedError, match=r"model: (.*MLP|inputs must be flat)"):
        CALLS[call](model, x, y)
    assert unchanged(model, before)


def test_softmax_output_and_non_model_are_refused():
    seeding.set_seed(0)
    softmax = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    x, y = small_data((4, 3))
    with pytest.raises(NotImplementedError, match="linear"):
        hessian.hessian_diagonal(softmax, x, y)
    with pytest.raises(TypeError, match="model"):
        hessian.hessian_diagonal("not a model", x, y)


@pytest.mark.parametrize("kwargs,error,pattern", [
    (dict(layer_sizes=(784,)), ValueError, "layer_sizes"),
    (dict(layer_sizes="784"), TypeError, "layer_sizes"),
    (dict(layer_sizes=(784, 0, 10)), ValueError, "layer_sizes"),
    (dict(layer_sizes=(784, 10), dropout=1.0), ValueError, "dropout"),
    (dict(layer_sizes=(784, 10), dropout="0.2"), TypeError, "dropout"),
    (dict(layer_sizes=(784, 10), init_stddev=0.0), ValueError, "init_stddev"),
])
def test_model_builders_validate(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        models.mlp(**kwargs)


@pytest.mark.parametrize("seed,error", [
    (-1, ValueError), (2**32, ValueError), (1.5, TypeError), (True, TypeError), ("0", TypeError)])
def test_every_seed_argument_follows_one_policy(seed, error, monkeypatch):
    # checks.seed / checks.seeds: the same bad seed gives the same error, naming the argument, everywhere.
    def no_training(*args, **kwargs):
        raise AssertionError("validation must come before any work")
    monkeypatch.setattr(training, "train_model", no_training)
    monkeypatch.setattr(training, "train_models", no_training)
    one = [lambda: seeding.set_seed(seed), lambda: training.TrainConfig(seed=seed),
           lambda: cnn_helpers.CnnConfig(seed=seed), lambda: networks.post_config("plain", seed),
           lambda: described.described_scores("obd_all_layers_prune", seed)]
    for call in one:
        with pytest.raises(error, match="^seed "):
            call()
    many = [lambda: networks.post_models("plain", [0, seed]), lambda: cnn_helpers.cnn_models([0, seed]),
            lambda: described.described_sweep("obd_all_layers_prune", [0.1], [0, seed]),
            lambda: as_ran.as_ran_sweep("obd_all_layers_prune", [0.1], [0, seed])]
    for call in many:
        with pytest.raises(error, match=r"^seeds\[1\] "):
            call()


def test_vectors_for_hvp_must_match_the_weights(setup):
    model, x, y, _ = setup
    with pytest.raises(ValueError, match="vectors"):
        hessian.hessian_vector_product(model, x, y, [np.ones(2)])
    with pytest.raises(ValueError, match="vectors\\[0\\].*NaN"):
        hessian.hessian_vector_product(model, x, y, [np.full(w.shape, np.nan) for w in model.get_weights()])


def test_a_scorer_checks_once_and_scores_other_weights_like_accuracy(setup):
    model, x, y, before = setup
    score = metrics.scorer(model, x, y)
    halved = [w * np.float32(0.5) for w in before]
    assert score(before) == metrics.accuracy(model, x, y)
    model.set_weights(halved)
    expected = metrics.accuracy(model, x, y)
    model.set_weights(before)
    assert score(halved) == expected and unchanged(model, before)
    with pytest.raises(ValueError, match="weights must have the shapes"):
        score(halved[:-1])
    with pytest.raises(ValueError, match="x must"):
        metrics.scorer(model, x[:, :2], y)
