"""Training: the post's batch order, determinism in one process and across two, and the cache."""

import dataclasses
import hashlib
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import small_data, small_mlp

from helpers import cache, models, training
from helpers.post import networks

SHORT = dict(steps=120, log_every=40)


def digest(weights):
    h = hashlib.sha256()
    for w in weights:
        h.update(np.ascontiguousarray(w).tobytes())
    return h.hexdigest()


def test_post_defaults():
    c = training.TrainConfig()
    assert (c.learning_rate, c.epsilon, c.batch_size, c.steps, c.loss) == (1e-4, 1e-8, 64, 50_001, "sum")
    assert c.layer_sizes == (784, 50, 50, 50, 50, 10) and c.dataset == "post"


def test_seed_mlp_matches_the_post():
    model = models.seed_mlp(dropout=0.2)
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == 47_410
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights[0::2]) == 47_200
    assert len([l for l in model.layers if "dropout" in l.name]) == 4
    kernel = model.get_weights()[0]
    assert abs(kernel.std() - 0.02 * 0.88) < 0.002 and np.abs(kernel).max() <= 0.04 + 1e-6
    assert all(np.all(b == 0) for b in model.get_weights()[1::2])


def test_batch_order_like_tensorflow_reader():
    idx = training.batch_indices(n=10, batch_size=3, steps=8, order="tf_reader", seed=0)
    assert idx.shape == (8, 3)
    np.testing.assert_array_equal(idx[:3].ravel(), np.arange(9))  # first epoch in order, 10th dropped
    for epoch in (idx[3:6].ravel(), idx[6:8].ravel()):
        assert len(set(epoch.tolist())) == len(epoch)  # no repeats within an epoch
    assert not np.array_equal(idx[3:6].ravel(), np.arange(9))
    shuffled = training.batch_indices(n=10, batch_size=3, steps=3, order="shuffle", seed=0)
    assert not np.array_equal(shuffled.ravel(), np.arange(9))


@pytest.mark.parametrize("dropout", [0.0, 0.2])
def test_same_seed_same_weights_in_one_process(dropout):
    config = training.TrainConfig(seed=3, dropout=dropout, **SHORT)
    a = training.train_model(config, use_cache=False)
    b = training.train_model(config, use_cache=False)
    assert digest(a.model.get_weights()) == digest(b.model.get_weights())
    np.testing.assert_array_equal(a.history["test_accuracy"], b.history["test_accuracy"])
    other = training.train_model(training.TrainConfig(seed=4, dropout=dropout, **SHORT), use_cache=False)
    assert digest(other.model.get_weights()) != digest(a.model.get_weights())


def test_same_seed_same_weights_across_processes():
    code = textwrap.dedent(f"""
        import hashlib, numpy as np
        from helpers import training
        t = training.train_model(training.TrainConfig(seed=3, **{SHORT!r}), use_cache=False)
        h = hashlib.sha256()
        for w in t.model.get_weights():
            h.update(np.ascontiguousarray(w).tobytes())
        print(h.hexdigest())
    """)
    here = training.train_model(training.TrainConfig(seed=3, **SHORT), use_cache=False)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == digest(here.model.get_weights())


def test_training_learns():
    config = training.TrainConfig(steps=600, log_every=300, learning_rate=2e-3)
    t = training.train_model(config, use_cache=False)
    assert t.history["test_accuracy"][-1] > 0.8
    assert t.history["step"].tolist() == [300, 600]


def test_cache_hit_skips_training_and_rebuilds_a_damaged_entry(isolated_cache, monkeypatch):
    config = training.TrainConfig(seed=5, **SHORT)
    first = training.train_model(config)
    entry = next((isolated_cache / "model").glob("*.npz"))

    def refuse():
        raise AssertionError("should have loaded from the cache")

    with monkeypatch.context() as patch:
        patch.setattr(training, "_train_arrays", lambda c: refuse())
        again = training.train_model(config)
    assert digest(again.model.get_weights()) == digest(first.model.get_weights())

    entry.write_bytes(entry.read_bytes()[: entry.stat().st_size // 2])  # truncate
    with pytest.warns(cache.CacheWarning):
        rebuilt = training.train_model(config)
    assert digest(rebuilt.model.get_weights()) == digest(first.model.get_weights())


def test_train_models_in_worker_processes_gives_the_same_weights(isolated_cache):
    configs = [training.TrainConfig(seed=s, **SHORT) for s in (3, 4)]
    here = [digest(training.train_model(c, use_cache=False).model.get_weights()) for c in configs]
    assert not any(cache.has("model", c.to_dict(), version=cache.code_version("helpers.training"))
                   for c in configs)
    parallel = training.train_models(configs + configs[:1], processes=2)  # a repeat trains once
    assert len(list((isolated_cache / "model").glob("*.npz"))) == 2
    assert [digest(t.model.get_weights()) for t in parallel] == here + here[:1]


def test_train_models_checks_arguments(isolated_cache):
    with pytest.raises(TypeError, match="configs"):
        training.train_models(training.TrainConfig())
    with pytest.raises(TypeError, match=r"configs\[1\]"):
        training.train_models([training.TrainConfig(), "plain"])
    with pytest.raises(ValueError, match="processes"):
        training.train_models([training.TrainConfig()], processes=0)
    assert not isolated_cache.exists() or not list(isolated_cache.rglob("*.npz"))


def test_config_validation():
    with pytest.raises(ValueError, match="learning_rate"):
        training.TrainConfig(learning_rate=-1.0)
    with pytest.raises(ValueError, match="dropout"):
        training.TrainConfig(dropout=1.0)
    with pytest.raises(TypeError, match="steps"):
        training.TrainConfig(steps=10.5)
    with pytest.raises(ValueError, match="loss"):
        training.TrainConfig(loss="max")
    with pytest.raises(ValueError, match="layer_sizes"):
        training.TrainConfig(layer_sizes=(10, 10))
    with pytest.raises(TypeError, match="config"):
        training.train_model({"seed": 0})
    with pytest.raises(ValueError, match="variant"):
        networks.post_config("big")


def test_initial_scale_fields():
    post = training.TrainConfig()
    assert post.to_dict()["init_stddev"] == 0.02 and post.to_dict()["bias_init"] == 0.0  # every field is key
    assert set(post.to_dict()) == {f.name for f in dataclasses.fields(training.TrainConfig)}
    wide = training.TrainConfig(init_stddev=0.1, bias_init=0.1)
    assert wide.to_dict()["init_stddev"] == 0.1 and wide.to_dict()["bias_init"] == 0.1
    model = training._build(wide)
    kernel, bias = model.get_weights()[:2]
    assert abs(kernel.std() - 0.1 * 0.88) < 0.01 and np.all(bias == np.float32(0.1))
    with pytest.raises(ValueError, match="init_stddev"):
        training.TrainConfig(init_stddev=0.0)
    with pytest.raises(TypeError, match="bias_init"):
        training.TrainConfig(bias_init="0.1")


def _runner_setup(masks=None):
    """A small MLP, Adam and a chunk runner on the summed cross-entropy of random data."""
    model = small_mlp()
    x, y = small_data(n=60)
    optimizer = keras.optimizers.Adam(learning_rate=1e-2)
    optimizer.build(model.trainable_variables)

    def loss_fn(xb, yb):
        per_sample = tf.nn.sparse_softmax_cross_entropy_with_logits(yb, model(xb, training=True))
        return tf.reduce_sum(per_sample), tf.reduce_mean(per_sample)

    masks = None if masks is None else [tf.constant(m) for m in masks]
    run = training.chunk_runner(loss_fn, model.trainable_variables, optimizer, tf.constant(x),
                                tf.constant(y, tf.int32), masks=masks)
    return model, run, training.batch_indices(len(x), 10, 30, "shuffle", 0)


def test_chunk_runner_steps_do_not_depend_on_the_chunking():
    model_a, run_a, idx = _runner_setup()
    start = model_a.get_weights()
    total = float(run_a(tf.constant(idx)))
    model_b, run_b, _ = _runner_setup()
    parts = [float(run_b(tf.constant(idx[a:b]))) for a, b in ((0, 7), (7, 30))]
    assert all(np.array_equal(a, b) for a, b in zip(model_a.get_weights(), model_b.get_weights()))
    assert not any(np.array_equal(a, b) for a, b in zip(model_a.get_weights(), start))
    assert total == pytest.approx(sum(parts), rel=1e-6)
    assert 0 < total / len(idx) < 5  # the logged value (a mean loss) summed over the steps


def test_chunk_runner_masks_keep_masked_parameters_at_zero():
    model, _, _ = _runner_setup()
    masks = [(np.arange(w.size).reshape(w.shape) % 2).astype(np.float32) for w in model.get_weights()]
    model, run, idx = _runner_setup(masks)
    start = model.get_weights()
    run(tf.constant(idx))
    for w, w0, m in zip(model.get_weights(), start, masks):
        assert np.all(w[m == 0] == 0)
        assert not np.array_equal(w[m == 1], w0[m == 1])


def test_chunk_runner_checks_arguments():
    model, _, _ = _runner_setup()
    with pytest.raises(TypeError, match="loss_fn"):
        training.chunk_runner("loss", model.trainable_variables, None, None, None)
    with pytest.raises(ValueError, match="masks"):
        training.chunk_runner(lambda xb, yb: (0.0, 0.0), model.trainable_variables, None, None,
                              None, masks=[np.ones(1)])
