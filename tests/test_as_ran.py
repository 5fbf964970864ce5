"""helpers.post.as_ran: the post's counting, packing, top_k ranking and TensorFlow 0.x row sums."""

import os

import numpy as np
import pytest

from conftest import small_data, small_mlp
from helpers import cache, data, hessian, metrics, pruning
from helpers.post import checkpoints
from helpers.post import as_ran, published

SIZES = (6, 5, 4, 3)


def test_counts_truncate_like_integer_division():
    assert as_ran.n_pruned_tf0(0.01, 50) == 0  # 1 * 50 / 100 = 0 in integers
    assert as_ran.n_pruned_tf0(0.02, 50) == 1
    assert as_ran.n_pruned_tf0(0.07, 47410) == 3318  # 3318.7 truncated
    assert as_ran.n_pruned_tf0(0.3, 47410) == 14223
    assert as_ran.n_pruned_tf0(1.0, 10) == 10
    assert pruning.n_pruned(0.07, 47410) == 3319  # the book's own rule rounds
    with pytest.raises(ValueError, match="fraction"):
        as_ran.n_pruned_tf0(1.5, 10)
    with pytest.raises(ValueError, match="n must"):
        as_ran.n_pruned_tf0(0.5, -1)


def test_packed_positions():
    shapes = [(3, 2), (2,), (2, 2), (2,)]
    first = as_ran.packed_positions(shapes, "weights_first")
    inter = as_ran.packed_positions(shapes, "interleaved")
    assert [p.tolist() for p in first] == [[[0, 1], [2, 3], [4, 5]], [10, 11], [[6, 7], [8, 9]], [12, 13]]
    assert [p.tolist() for p in inter] == [[[0, 1], [2, 3], [4, 5]], [6, 7], [[8, 9], [10, 11]], [12, 13]]
    for ps in (first, inter):
        assert sorted(np.concatenate([p.ravel() for p in ps]).tolist()) == list(range(14))
    with pytest.raises(ValueError, match="packing"):
        as_ran.packed_positions(shapes, "sideways")
    with pytest.raises(ValueError, match="pairs"):
        as_ran.packed_positions([(3, 2)], "interleaved")


def test_masks_prune_most_negative_first_ties_by_index():
    scores = [np.array([[0.0, -3.0], [2.0, 0.0]]), np.array([-1.0, 5.0])]
    masks = as_ran.tf0_masks(scores, 0.5, "global")  # floor(0.5 * 6) = 3
    assert masks[0].tolist() == [[0.0, 0.0], [1.0, 1.0]]  # -3, then the first of the zeros
    assert masks[1].tolist() == [0.0, 1.0]  # -1
    layer = as_ran.tf0_masks(scores, 0.5, "layer")  # 2 of 4 and 1 of 2
    assert layer[0].tolist() == [[0.0, 0.0], [1.0, 1.0]]
    assert layer[1].tolist() == [0.0, 1.0]


def test_nan_scores_are_pruned_in_packed_index_order():
    shapes = [(3, 2), (2,), (2, 2), (2,)]
    nan = [np.full(s, np.nan) for s in shapes]
    zero = [np.zeros(s) for s in shapes]
    for packing in as_ran.PACKINGS:
        for fraction in (0.2, 0.5, 0.8):
            a = as_ran.tf0_masks(nan, fraction, "global", packing)
            b = as_ran.tf0_masks(zero, fraction, "global", packing)
            assert all(np.array_equal(x, y) for x, y in zip(a, b))
    # 8 of 14: the whole first kernel, then the next tensor in the packing.
    first = as_ran.tf0_masks(zero, 8 / 14, "global", "weights_first")
    inter = as_ran.tf0_masks(zero, 8 / 14, "global", "interleaved")
    assert first[0].sum() == 0 and inter[0].sum() == 0
    assert first[2].ravel().tolist() == [0, 0, 1, 1] and first[1].tolist() == [1, 1]
    assert inter[1].tolist() == [0, 0] and inter[2].sum() == 4


def saturating_batch(n_sat=1):
    """Small data plus ``n_sat`` images scaled up until the softmax saturates."""
    x, y = small_data(SIZES, n=20)
    x = np.concatenate([x, 400 * x[:n_sat]])
    y = np.concatenate([y, y[:n_sat]])
    return x, y


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_tf0_row_sums_equal_exact_ones_on_unsaturated_data(scope):
    model = small_mlp(SIZES)
    x, y = small_data(SIZES, n=30)
    assert not as_ran.saturated(model, x).any()
    ours = hessian.flatten(as_ran.tf0_row_sums(model, x, y, scope))
    exact = hessian.flatten(hessian.hessian_row_sums(model, x, y, scope=scope)) * len(x)
    assert np.max(np.abs(ours - exact)) / np.max(np.abs(exact)) < 1e-4


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_one_saturated_image_makes_every_row_sum_nan(scope):
    model = small_mlp(SIZES)
    x, y = saturating_batch()
    sat = as_ran.saturated(model, x)
    assert sat[-1] and sat.sum() >= 1
    sums = hessian.flatten(as_ran.tf0_row_sums(model, x, y, scope))
    assert np.isnan(sums).all()
    # Today's stable arithmetic has no such problem.
    assert np.isfinite(hessian.flatten(hessian.hessian_row_sums(model, x, y, scope=scope))).all()


def test_index_order_sweep_and_packings_agree_within_first_kernel():
    model = small_mlp(SIZES)
    x, y = small_data(SIZES, n=50, seed=3)
    share = 30 / sum(w.size for w in model.get_weights())  # the first kernel is 6 x 5
    fractions = [0.0, share / 2, share, 0.9]
    a = as_ran.index_order_sweep(model, fractions, x, y, "global", "weights_first")
    b = as_ran.index_order_sweep(model, fractions, x, y, "global", "interleaved")
    assert np.array_equal(a[:3], b[:3])
    assert a[0] == pytest.approx(metrics.accuracy(model, x, y))
    masks = as_ran.tf0_masks([np.zeros_like(w) for w in model.get_weights()], share, "global")
    with pruning.pruned(model, masks):
        assert a[2] == pytest.approx(metrics.accuracy(model, x, y))


def test_magnitude_as_ran_prunes_negative_weights():
    model = small_mlp(SIZES)
    x, y = small_data(SIZES, n=50, seed=3)
    before = [w.copy() for w in model.get_weights()]
    acc = as_ran.magnitude_as_ran(model, [0.0, 0.3], x, y, "global")
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    masks = as_ran.tf0_masks(before, 0.3, "global")
    pruned_values = np.concatenate([w[m == 0] for w, m in zip(before, masks)])
    kept_values = np.concatenate([w[m == 1] for w, m in zip(before, masks)])
    assert pruned_values.max() <= kept_values.min() and pruned_values.max() < 0
    with pruning.pruned(model, masks):
        assert acc[1] == pytest.approx(metrics.accuracy(model, x, y))


def test_obd_as_ran_on_saturated_pool_is_index_order():
    model = small_mlp(SIZES)
    x_test, y_test = small_data(SIZES, n=60, seed=5)
    x_pool, y_pool = small_data(SIZES, n=100, seed=6)
    x_pool = 400 * x_pool  # every image saturates: every step ranks NaN
    fractions = [0.1, 0.3, 0.5]
    before = [w.copy() for w in model.get_weights()]
    acc, tied = as_ran.obd_as_ran(model, fractions, "global", x_pool, y_pool, x_test, y_test,
                                  batch_size=8)
    assert tied.all()
    assert np.allclose(acc, as_ran.index_order_sweep(model, fractions, x_test, y_test))
    traced = as_ran.obd_as_ran(model, fractions, "global", x_pool, y_pool, x_test, y_test,
                               batch_size=8, trace=True)
    assert np.array_equal(traced["accuracy"], acc) and traced["restore_tied"][0]
    assert traced["carried"][0] == 0  # NaN both times: the same indices come back
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_obd_as_ran_exact_without_carry_over_is_one_shot():
    model = small_mlp(SIZES)
    x_test, y_test = small_data(SIZES, n=60, seed=5)
    x_pool, y_pool = small_data(SIZES, n=64, seed=6)
    acc, tied = as_ran.obd_as_ran(model, [0.2], "layer", x_pool, y_pool, x_test, y_test,
                                  batch_size=64, carry_over=False, arithmetic="exact")
    assert not tied.any()
    traced = as_ran.obd_as_ran(model, [0.2, 0.4], "layer", x_pool, y_pool, x_test, y_test,
                               batch_size=16, trace=True)
    # Only parameters pruned at a step can stay zero into the next one; without the faulty
    # restore none do.
    at_most = [sum(as_ran.n_pruned_tf0(f, w.size) for w in model.get_weights()) for f in (0.2, 0.4)]
    assert traced["carried"].dtype.kind == "i" and np.all(traced["carried"] <= at_most)
    honest = as_ran.obd_as_ran(model, [0.2, 0.4], "layer", x_pool, y_pool, x_test, y_test,
                               batch_size=16, carry_over=False, trace=True)
    assert not honest["carried"].any()
    scores = hessian.hessian_row_sums(model, x_pool, y_pool, scope="layer")
    with pruning.pruned(model, as_ran.tf0_masks(scores, 0.2, "layer")):
        assert acc[0] == pytest.approx(metrics.accuracy(model, x_test, y_test))


def test_argument_checks():
    model = small_mlp(SIZES)
    x, y = small_data(SIZES)
    with pytest.raises(ValueError, match="run"):
        as_ran.as_ran_sweep("obd_everything", [0.1])
    with pytest.raises(ValueError, match="fractions"):
        as_ran.as_ran_sweep("obd_all_layers_prune", [])
    with pytest.raises(ValueError, match="seeds"):
        as_ran.as_ran_sweep("obd_all_layers_prune", [0.1], seeds=[-1])
    with pytest.raises(ValueError, match="init_stddev"):
        as_ran.as_ran_sweep("obd_all_layers_prune", [0.1], init=(-0.1, 0.1))
    with pytest.raises(TypeError, match="init"):
        as_ran.as_ran_details("obd_all_layers_prune", [0.1], init=[0.1, 0.1])
    with pytest.raises(ValueError, match="arithmetic"):
        as_ran.obd_as_ran(model, [0.1], "global", x, y, x, y, arithmetic="float16")
    with pytest.raises(TypeError, match="carry_over"):
        as_ran.obd_as_ran(model, [0.1], "global", x, y, x, y, carry_over=1)
    with pytest.raises(ValueError, match="scope"):
        as_ran.tf0_masks([np.zeros(3)], 0.1, "everywhere")
    with pytest.raises(TypeError, match="scores"):
        as_ran.tf0_masks(np.zeros(3), 0.1)
    with pytest.raises(ValueError, match="equal length"):
        as_ran.mean_abs_gap(np.zeros(3), np.zeros(4))
    assert as_ran.mean_abs_gap(np.array([0.9, 0.5]), np.array([0.8, 0.5])) == pytest.approx(5.0)


def test_gauss_newton_row_sums_against_brute_force():
    import tensorflow as tf
    model = small_mlp(SIZES)
    x, y = small_data(SIZES, n=12)
    weights = model.trainable_weights
    with tf.GradientTape(persistent=True) as tape:
        logits = model(tf.constant(x), training=False)
    jac = np.concatenate([tape.jacobian(logits, w).numpy().reshape(len(x), 3, -1) for w in weights],
                         axis=2)
    del tape
    p = tf.nn.softmax(logits).numpy().astype(np.float64)
    g_one = np.zeros(jac.shape[2])
    for n in range(len(x)):
        a = np.diag(p[n]) - np.outer(p[n], p[n])
        g_one += jac[n].T @ (a @ jac[n].sum(axis=1))
    ours = hessian.flatten(as_ran.gauss_newton_row_sums(model, x, y))
    assert np.max(np.abs(ours - g_one / len(x))) / np.max(np.abs(g_one / len(x))) < 1e-4
    # Without hidden layers the logits are linear in the weights, H = G, and
    # both row sums vanish (J @ 1 is the same for every logit and A @ 1 = 0).
    linear = small_mlp((6, 3))
    full = hessian.flatten(hessian.hessian_row_sums(linear, x, y))
    gn = hessian.flatten(as_ran.gauss_newton_row_sums(linear, x, y))
    assert np.max(np.abs(full)) < 1e-5 and np.max(np.abs(gn)) < 1e-5
    # With hidden layers they differ.
    deep = hessian.flatten(hessian.hessian_row_sums(model, x, y))
    assert np.max(np.abs(deep - ours)) > 1e-3 * np.max(np.abs(deep))


def test_file_order_reads_consecutive_batches_only():
    """Step i scores images i*b..(i+1)*b-1: images past the last batch never matter."""
    model = small_mlp(SIZES)
    x_test, y_test = small_data(SIZES, n=60, seed=5)
    x_pool, y_pool = small_data(SIZES, n=24, seed=6)
    extra_x, extra_y = small_data(SIZES, n=40, seed=7)
    fractions = [0.1, 0.2, 0.3]
    short = as_ran.obd_as_ran(model, fractions, "global", x_pool, y_pool, x_test, y_test,
                              batch_size=8, batch_order="file", trace=True)
    longer = as_ran.obd_as_ran(model, fractions, "global", np.r_[x_pool, 400 * extra_x],
                               np.r_[y_pool, extra_y], x_test, y_test, batch_size=8,
                               batch_order="file", trace=True)
    for key in ("accuracy", "tied", "carried"):
        assert np.array_equal(short[key], longer[key])
    reversed_pool = as_ran.obd_as_ran(model, fractions, "global", x_pool[::-1], y_pool[::-1], x_test,
                                      y_test, batch_size=8, batch_order="file", trace=True)
    assert not np.array_equal(reversed_pool["carried"], short["carried"])  # the order does matter
    with pytest.raises(ValueError, match="fewer than 4 file-order batches"):
        as_ran.obd_as_ran(model, fractions + [0.4], "global", x_pool, y_pool, x_test, y_test,
                          batch_size=8, batch_order="file")


def test_shuffled_batches_are_disjoint_slices_of_one_permutation():
    """Shuffled order on a pool of exactly n_steps batches sees every image once: it equals file
    order on the pool permuted by the same generator."""
    model = small_mlp(SIZES)
    x_test, y_test = small_data(SIZES, n=60, seed=5)
    x_pool, y_pool = small_data(SIZES, n=24, seed=6)
    fractions = [0.1, 0.2, 0.3]
    shuffled = as_ran.obd_as_ran(model, fractions, "global", x_pool, y_pool, x_test, y_test,
                                 batch_size=8, batch_order="shuffled", seed=3, trace=True)
    order = np.random.default_rng(3).permutation(24)
    file = as_ran.obd_as_ran(model, fractions, "global", x_pool[order], y_pool[order], x_test, y_test,
                             batch_size=8, batch_order="file", trace=True)
    for key in ("accuracy", "tied", "carried"):
        assert np.array_equal(shuffled[key], file[key])


def test_logit_shift_changes_no_exact_score():
    model = small_mlp(SIZES)
    x_test, y_test = small_data(SIZES, n=60, seed=5)
    x_pool, y_pool = small_data(SIZES, n=32, seed=6)
    runs = [as_ran.obd_as_ran(model, [0.2, 0.4], "global", x_pool, y_pool, x_test, y_test,
                              batch_size=16, batch_order="file", arithmetic="exact", logit_shift=shift,
                              trace=True) for shift in (0.0, 2.5)]
    assert np.array_equal(runs[0]["accuracy"], runs[1]["accuracy"])
    with pytest.raises(ValueError, match="logit_shift"):
        as_ran.obd_as_ran(model, [0.2], "global", x_pool, y_pool, x_test, y_test, logit_shift=np.inf)
    with pytest.raises(TypeError, match="logit_shift"):
        as_ran.obd_as_ran(model, [0.2], "global", x_pool, y_pool, x_test, y_test, logit_shift="1")
    with pytest.raises(ValueError, match="batch_order"):
        as_ran.obd_as_ran(model, [0.2], "global", x_pool, y_pool, x_test, y_test, batch_order="sorted")


def test_accuracy_memo_measures_each_pruned_network_once(monkeypatch):
    model = small_mlp(SIZES)
    before = [w.copy() for w in model.get_weights()]
    x_test, y_test = small_data(SIZES, n=60, seed=5)
    x_pool, y_pool = small_data(SIZES, n=64, seed=6)
    args = (model, [0.2, 0.4], "layer", x_pool, y_pool)
    plain = [as_ran.obd_as_ran(*args, x_test, y_test, batch_size=16, batch_order="file")]
    plain.append(as_ran.obd_as_ran(*args, x_test[:30], y_test[:30], batch_size=16, batch_order="file"))
    calls = []
    make_scorer = as_ran.metrics.scorer

    def counting_scorer(*args):
        score = make_scorer(*args)
        return lambda weights: calls.append(1) or score(weights)

    monkeypatch.setattr(as_ran.metrics, "scorer", counting_scorer)
    memo = {}
    first = as_ran.obd_as_ran(*args, x_test, y_test, batch_size=16, batch_order="file", accuracy_memo=memo)
    assert len(memo) == len(calls) == 2
    again = as_ran.obd_as_ran(*args, x_test, y_test, batch_size=16, batch_order="file", accuracy_memo=memo)
    assert len(calls) == 2  # the same pruned networks: read from the memo
    other = as_ran.obd_as_ran(*args, x_test[:30], y_test[:30], batch_size=16, batch_order="file",
                              accuracy_memo=memo)
    assert len(calls) == 4  # another test set is measured again
    for got, want in ((first, plain[0]), (again, plain[0]), (other, plain[1])):
        assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), before))
    with pytest.raises(TypeError, match="accuracy_memo"):
        as_ran.obd_as_ran(*args, x_test, y_test, accuracy_memo=[])


def test_script_runs_and_replay_arguments():
    assert as_ran.script_runs("obd_all_layers_prune") == [as_ran.FIGURE1_FRACTIONS, as_ran.FIGURE2_FRACTIONS]
    assert as_ran.script_runs("obd_layerwise_prune") == [as_ran.FIGURE1_FRACTIONS]
    assert as_ran.script_runs("magnitude_all_layers_prune") == [as_ran.FIGURE1_FRACTIONS]
    with pytest.raises(ValueError, match="run must be one of"):
        as_ran.replay_post_run("obd_everything")
    for kwargs, error, name in [(dict(model="net"), TypeError, "model"),
                                (dict(extra_fractions=0.8), TypeError, "extra_fractions"),
                                (dict(extra_fractions=(0.9, 0.8)), ValueError, "extra_fractions"),
                                (dict(extra_fractions=(0.7, 0.8)), ValueError, "extra_fractions"),
                                (dict(extra_fractions=(1.5,)), ValueError, "extra_fractions"),
                                (dict(seed=-1), ValueError, "seed")]:
        with pytest.raises(error, match=name):
            as_ran.replay_post_run("obd_all_layers_prune", **kwargs)
    with pytest.raises(ValueError, match="variation must be one of"):
        as_ran.replay_band("obd_layerwise_prune", "weather")
    with pytest.raises(ValueError, match="n_replays"):
        as_ran.replay_band("obd_layerwise_prune", "batches", n_replays=0)


@pytest.mark.parametrize("run", list(published.RUNS))
def test_replay_on_the_posts_network_reproduces_the_published_numbers(run):
    """Exact wherever every CPU tested is; within the stated tolerance where the summation order
    decides (``as_ran.SUMMATION_ORDER``); no claim where the post's batches were shuffled."""
    replay = as_ran.replay_post_run(run)
    fractions, accuracies = published.curve(run)
    expected = as_ran.replay_expectation(run)
    assert np.array_equal(replay["fraction"], fractions)
    exact = expected["exact"]
    assert np.array_equal(np.round(replay["accuracy"][exact], 4), accuracies[exact])
    near = expected["tolerance"] > 0
    gap = np.abs(replay["accuracy"] - accuracies)
    assert np.all(gap[near] <= expected["tolerance"][near]), gap[near]
    if run == "obd_all_layers_prune":  # figure 2 was its own run; results.txt kept run 1's 10 %
        assert replay["segment"].tolist() == [0] * 20 + [1] * 6
        assert replay["tied"][1:20].all() and replay["dropped"].size == 1


def test_replay_expectation_states_the_measurements():
    """The data behind the claims: every measured replay lies within its tolerance, and the
    counts the book states follow from it."""
    n_settings = len(as_ran.KERNEL_SETTINGS)
    everywhere, per_setting, largest = 0, np.zeros(n_settings, int), {}
    for run in published.RUNS:
        fractions, accuracies = published.curve(run)
        percents = np.round(100 * fractions).astype(int).tolist()
        expected = as_ran.replay_expectation(run)
        assert np.array_equal(expected["fraction"], fractions)
        assert expected["measured"].shape == (n_settings, len(fractions))
        for percent, values in as_ran.SUMMATION_ORDER.get(run, {}).items():
            j = percents.index(percent)
            assert len(values) == n_settings
            assert not expected["exact"][j]  # not exact under every setting, or it would not be listed
            gap = np.abs(np.array(values) - accuracies[j])
            assert gap.max() <= as_ran.ORDER_TOLERANCE[run] == expected["tolerance"][j]
            largest[run] = max(largest.get(run, 0.0), gap.max())
            assert np.array_equal(expected["measured"][:, j], gap < 5e-5)
        for percent in as_ran.BATCH_DEPENDENT.get(run, ()):
            j = percents.index(percent)
            assert np.isnan(expected["tolerance"][j]) and not expected["measured"][:, j].any()
        assert np.array_equal(expected["exact"], expected["tolerance"] == 0)
        everywhere += int(expected["exact"].sum())
        per_setting += expected["measured"].sum(axis=1)
    # Each tolerance is the largest measured gap rounded up to the next hundredth: not looser.
    assert set(largest) == set(as_ran.ORDER_TOLERANCE) == set(as_ran.SUMMATION_ORDER)
    for run, tolerance in as_ran.ORDER_TOLERANCE.items():
        assert tolerance - 0.01 < largest[run] <= tolerance
    assert everywhere == 81  # the count chapter "As the code ran" states
    assert dict(zip(as_ran.KERNEL_SETTINGS, per_setting.tolist())) == {
        "oneDNN": 86, "oneDNN, AVX2": 85, "oneDNN, SSE4.1": 86,
        "plain": 82, "plain, AVX2": 82, "plain, SSE4.1": 83}
    with pytest.raises(ValueError, match="run must be one of"):
        as_ran.replay_expectation("nope")


def test_kernel_setting_follows_the_environment(monkeypatch):
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    native = as_ran.kernel_setting()
    assert native["max_cpu_isa"] is None and isinstance(native["onednn"], bool)
    assert as_ran.kernel_setting(True)["onednn"] and not as_ran.kernel_setting(False)["onednn"]
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", " avx2 ")
    assert as_ran.kernel_setting(False) == {**native, "onednn": False, "max_cpu_isa": "AVX2"}
    with pytest.raises(TypeError, match="onednn"):
        as_ran.kernel_setting("yes")


def test_back_end_jobs_ask_for_their_own_onednn_switch(monkeypatch, isolated_cache):
    """Each job's process starts with its own oneDNN switch (the rest of the caller's
    environment, such as ONEDNN_MAX_CPU_ISA, carries over: tests/test_cache.py)."""
    asked = []

    def fake_fill(worker, jobs, entries, *, environment):
        asked.extend(environment(*job) for job in jobs)
        raise RuntimeError("stopped by the test")

    monkeypatch.setattr(cache, "fill", fake_fill)
    with pytest.raises(RuntimeError, match="stopped by the test"):
        as_ran.replays_with_kernels(["obd_all_layers_prune"])
    assert asked == [{"TF_ENABLE_ONEDNN_OPTS": "1"}, {"TF_ENABLE_ONEDNN_OPTS": "0"}]


def test_a_back_end_result_is_not_computed_with_the_other_kernels(monkeypatch, isolated_cache):
    monkeypatch.setattr(as_ran, "_onednn_enabled", lambda: True)
    with pytest.raises(RuntimeError, match="must be computed with oneDNN off"):
        as_ran.in_back_end("post_replay_kernels", as_ran.__name__, "replay_post_run",
                           (("run", "obd_all_layers_prune"),), False)


def test_cached_replays_are_kept_apart_by_kernel_setting(monkeypatch, isolated_cache):
    """A replay cached under one instruction-set limit is not served under another."""
    calls = []

    def fake_replay(run, **kwargs):
        calls.append((run, os.environ.get("ONEDNN_MAX_CPU_ISA")))
        return {"accuracy": np.full(3, float(len(calls)))}

    def fake_band(run, variation, n_replays):
        calls.append((run, os.environ.get("ONEDNN_MAX_CPU_ISA")))
        return {"accuracy": np.full((n_replays, 3), float(len(calls)))}

    monkeypatch.setattr(cache, "fill", lambda *args, **kwargs: None)  # compute here, not in processes
    monkeypatch.setattr(as_ran, "_onednn_enabled", lambda: True)
    monkeypatch.setattr(as_ran, "replay_post_run", fake_replay)
    monkeypatch.setattr(as_ran, "band_replays", fake_band)
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    first = as_ran.replay_with_kernels("obd_all_layers_prune", onednn=True)["accuracy"]
    band = as_ran.replay_band("obd_all_layers_dropout", "rounding", n_replays=2)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    capped = as_ran.replay_with_kernels("obd_all_layers_prune", onednn=True)["accuracy"]
    capped_band = as_ran.replay_band("obd_all_layers_dropout", "rounding", n_replays=2)
    assert len(calls) == 4 and not np.array_equal(first, capped) and not np.array_equal(band, capped_band)
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    assert np.array_equal(as_ran.replay_with_kernels("obd_all_layers_prune", onednn=True)["accuracy"],
                          first)
    assert np.array_equal(as_ran.replay_band("obd_all_layers_dropout", "rounding", n_replays=2), band)
    assert len(calls) == 4  # read back from the cache
    assert [c[1] for c in calls] == [None, None, "AVX2", "AVX2"]


def test_replay_of_another_network_and_further_levels():
    """``model=`` the run's own checkpoint is the default; extra levels continue the last run."""
    run = "obd_all_layers_prune"
    default = as_ran.replay_post_run(run)
    model = checkpoints.load_post_network(run)
    given = as_ran.replay_post_run(run, model=model)
    for name in default:
        assert np.array_equal(given[name], default[name]), name
    other = as_ran.replay_post_run(run, model=checkpoints.load_post_network("obd_all_layers_dropout"))
    assert not np.array_equal(other["accuracy"], default["accuracy"])
    longer = as_ran.replay_post_run(run, model=model, extra_fractions=(0.8, 0.9))
    assert np.array_equal(longer["fraction"], np.append(default["fraction"], [0.8, 0.9]))
    for name in ("accuracy", "tied", "segment"):  # continuing a run does not change its earlier steps
        assert np.array_equal(longer[name][:-2], default[name]), name
    assert longer["segment"][-2:].tolist() == [1, 1]
    (x_pool, y_pool), _ = data.load_post_split()
    _, (x_test, y_test) = data.load_mnist()
    by_hand, _ = as_ran.obd_as_ran(model, as_ran.FIGURE2_FRACTIONS + (0.8, 0.9), "global",
                                   x_pool, y_pool, x_test, y_test, batch_order="file")
    assert np.array_equal(longer["accuracy"][-2:], by_hand[-2:])


def test_replay_on_a_checkpoint_is_the_replay_of_that_network_cached(isolated_cache):
    with pytest.raises(ValueError, match="checkpoint"):
        as_ran.replay_on_checkpoint("magnitude_layerwise_prune", "no_such_network")
    with pytest.raises(ValueError, match="run"):
        as_ran.replay_on_checkpoint("no_such_run", "magnitude_layerwise_prune")
    run, network = "magnitude_all_layers_prune", "obd_layerwise_prune"
    expected = as_ran.replay_post_run(run, model=checkpoints.load_post_network(network))
    for _ in range(2):  # built, then read back
        cached = as_ran.replay_on_checkpoint(run, network)
        for name in expected:
            assert np.array_equal(cached[name], expected[name]), name
    assert cache.has("post_replay_on_checkpoint", {"run": run, "checkpoint": network,
                                                   "kernels": as_ran.kernel_setting()},
                     version=cache.code_version("helpers.post.as_ran"))


def test_replay_with_kernels_runs_in_its_own_process_and_matches():
    """Plain kernels, another process: the magnitude replay is exact there too, and cached."""
    replay = as_ran.replay_with_kernels("magnitude_all_layers_prune", onednn=False)
    fractions, accuracies = published.curve("magnitude_all_layers_prune")
    assert np.array_equal(np.round(replay["accuracy"], 4), accuracies)
    assert np.array_equal(replay["fraction"], fractions)
    with pytest.raises(TypeError, match="onednn"):
        as_ran.replay_with_kernels("magnitude_all_layers_prune", onednn="no")
    with pytest.raises(ValueError, match="run must be one of"):
        as_ran.replay_with_kernels("nope")


def test_replays_side_by_side_equal_the_one_at_a_time_replays():
    """Both back ends of one run, computed in two processes at once, then read back from the cache."""
    out = as_ran.replays_with_kernels({"magnitude_all_layers_prune": None})  # any iterable of names
    assert set(out) == {True, False} and set(out[True]) == {"magnitude_all_layers_prune"}
    for onednn in (True, False):
        again = as_ran.replay_with_kernels("magnitude_all_layers_prune", onednn=onednn)
        assert np.array_equal(out[onednn]["magnitude_all_layers_prune"]["accuracy"], again["accuracy"])
    fractions, accuracies = published.curve("magnitude_all_layers_prune")
    assert np.array_equal(np.round(out[True]["magnitude_all_layers_prune"]["accuracy"], 4), accuracies)


def test_side_by_side_argument_checks():
    with pytest.raises(TypeError, match="runs"):
        as_ran.replays_with_kernels("magnitude_all_layers_prune")
    with pytest.raises(ValueError, match="runs is empty"):
        as_ran.replays_with_kernels({})
    with pytest.raises(ValueError, match="run must be one of"):
        as_ran.replays_with_kernels(["nope"])
    with pytest.raises(TypeError, match="variations"):
        as_ran.replay_bands({})
    with pytest.raises(ValueError, match="variations"):
        as_ran.replay_bands({"obd_layerwise_prune": "weather"})
    with pytest.raises(ValueError, match="n_replays"):
        as_ran.replay_bands({"obd_layerwise_prune": "batches"}, n_replays=0)


def test_the_magnitude_scripts_score_the_signed_weight():
    model = small_mlp(SIZES)
    scores = as_ran.scores(model, "asran_magnitude")
    flat_w = hessian.flatten(model.get_weights())
    flat_m = hessian.flatten(pruning.prune_masks(scores, 0.1))
    assert flat_w[flat_m == 0].max() <= flat_w[flat_m == 1].min() and flat_w[flat_m == 0].max() < 0


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_the_obd_scripts_score_the_hessian_row_sums(scope):
    """Read off the brute-force Hessian: whole rows (all layers) or the variable's own block."""
    model = small_mlp(SIZES)
    x, y = small_data(SIZES)
    H = hessian.full_hessian(model, x, y)
    if scope == "global":
        expected = H.sum(axis=1)
    else:
        edges = np.cumsum([0] + [w.size for w in model.get_weights()])
        expected = np.concatenate([H[a:b, a:b].sum(axis=1) for a, b in zip(edges, edges[1:])])
    got = hessian.flatten(as_ran.scores(model, "asran_obd", x, y, scope=scope))
    assert np.max(np.abs(got - expected)) / np.abs(H).sum(axis=1).max() < 1e-5


def test_the_scripts_scores_check_their_arguments():
    model = small_mlp(SIZES)
    with pytest.raises(ValueError, match="method must be one of"):
        as_ran.scores(model, "obd")
    with pytest.raises(ValueError, match="scope"):
        as_ran.scores(model, "asran_magnitude", scope="net")
    with pytest.raises(ValueError, match="x and y"):
        as_ran.scores(model, "asran_obd")

