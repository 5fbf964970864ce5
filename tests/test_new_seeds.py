"""The chapters' claims about the shared networks, retested on seeds the book never shows.

Every claim a chapter asserts about the book's shared networks (the post's recipe,
``networks.SEEDS``) should be a claim about the recipe, not about three draws of it. This
module trains the same networks on ``networks.CHECK_SEEDS`` (all three variants side by
side, through the ordinary model cache, so they are trained once) and tests each claim on
them with the computations the chapter itself uses: the verdict tables of Part III
(chapters 09 to 12, row "Three seeds of its recipe") with the asserts behind them, and the
claims chapters 05, 06 and 08 assert about the shared networks. One test per claim, named
after its chapter, with a one-line docstring saying what it checks ("(verdict)" where the
claim is a cell of an evidence table). The chapters state each claim so that it holds on both
sets of seeds, and the tests assert it as stated.

Not covered: claims about the post's own checkpoints (the same on any seed), claims about
networks trained from the stated initial scale alone other than those of chapters 05, 06 and 12,
the claims of chapter 07, and those of
chapters 13 to 16 (retraining, Optimal Brain Surgeon, the convolutional network, the
explorer), whose computations take many minutes per seed.

The networks and every result built on them use the reader's model cache (``.cache``, or
``OBD_CACHE_DIR``), like the notebooks: the first run trains fifteen networks (the nine
shared ones, and the plain and the slow dropout network from the stated scale, three seeds each) and takes
several minutes on two cores; later runs read them back.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from helpers import cache, data, metrics, pruning, stats
from helpers.post import as_ran, described, networks, observations, published

pytestmark = pytest.mark.repository_cache

SEEDS = networks.CHECK_SEEDS
VARIANTS = tuple(networks.VARIANTS)
#: The reader's model cache when the caller sets no OBD_CACHE_DIR (helpers.cache's default).
REPOSITORY_CACHE = Path(__file__).resolve().parents[1] / ".cache"
PLAIN_RUNS = ("magnitude_layerwise_prune", "magnitude_all_layers_prune", "obd_layerwise_prune",
              "obd_all_layers_prune")


def test_check_seeds_are_new():
    """CHECK_SEEDS are three or more seeds the book does not use."""
    assert len(SEEDS) >= 3 and not set(SEEDS) & set(networks.SEEDS)


# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def reader_cache(callers_cache_setting):
    """The reader's model cache for the whole module, as tests/conftest.py's ``repository_cache``
    gives each marked test: the caller's ``OBD_CACHE_DIR``, else the repository's ``.cache``."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OBD_CACHE_DIR", callers_cache_setting or str(REPOSITORY_CACHE))
        yield


@pytest.fixture(scope="module")
def nets(reader_cache):
    """The shared networks on CHECK_SEEDS, variant -> one per seed, trained side by side."""
    return networks.post_models_by_variant(seeds=SEEDS)


@pytest.fixture(scope="module")
def stated_plain(nets):
    """The plain network from the stated initial scale (0.02, 0), on CHECK_SEEDS."""
    return networks.post_models("plain", SEEDS, init=networks.POST_STATED)


@pytest.fixture(scope="module")
def mnist(reader_cache):
    """(x_pool, y_pool), (x_test, y_test): the post's 55,000 training images and the test set."""
    (x_pool, y_pool), _ = data.load_post_split()
    _, (x_test, y_test) = data.load_mnist()
    return (x_pool, y_pool), (x_test, y_test)


def test_networks_come_from_the_readers_cache(reader_cache, callers_cache_setting):
    """The module trains and reads through the reader's model cache, not the session's temporary one."""
    expected = Path(callers_cache_setting).expanduser() if callers_cache_setting else REPOSITORY_CACHE
    assert cache.cache_dir().resolve() == expected.resolve()


# --------------------------------------------------------------------------- chapter 05

@pytest.fixture(scope="module")
def ch05(nets, stated_plain, mnist):
    (x_pool, y_pool), (x_test, y_test) = mnist
    dense = {v: np.array([metrics.accuracy(t.model, x_test, y_test) for t in ts])
             for v, ts in nets.items()}
    return {"dense": dense,
            "stated": np.array([metrics.accuracy(t.model, x_test, y_test) for t in stated_plain]),
            "train": np.array([metrics.accuracy(t.model, x_pool, y_pool) for t in nets["plain"]]),
            "published": {run: float(published.curve(run)[1][0]) for run in published.RUNS}}


def test_05_plain_dense_accuracy_in_the_published_range(ch05):
    """05: every plain network is within 0.6 points of the middle of the published range."""
    plain = [ch05["published"][r] for r in PLAIN_RUNS]
    middle = (min(plain) + max(plain)) / 2
    assert np.all(np.abs(ch05["dense"]["plain"] - middle) < 0.006), ch05["dense"]["plain"]


def test_05_larger_scale_beats_the_stated_one_by_a_point(ch05):
    """05: every plain network is more than a point above the same seed from the stated scale."""
    assert np.all(ch05["dense"]["plain"] > ch05["stated"] + 0.01), (ch05["dense"]["plain"], ch05["stated"])


def test_05_slow_dropout_network_near_the_published_0_9113(ch05):
    """05: every dropout network at 1e-5 is within a point of the published 0.9113."""
    acc = ch05["dense"]["dropout_lr1e-5"]
    assert np.all(np.abs(acc - ch05["published"]["obd_all_layers_dropout"]) < 0.01), acc


def test_05_plain_network_fits_its_training_set(ch05):
    """05: every plain network is above 0.98 on its 55,000 training images."""
    assert np.all(ch05["train"] > 0.98), ch05["train"]


def test_05_fair_dropout_level_with_plain(ch05):
    """05: at 1e-4 the dropout network is level with the plain one (means within 0.2 points)."""
    d = ch05["dense"]
    assert abs(d["dropout"].mean() - d["plain"].mean()) < 0.002, (d["dropout"], d["plain"])


# --------------------------------------------------------------------------- chapter 06

F06 = np.arange(0, 71) / 100
AT06 = {p: p for p in range(71)}


@pytest.fixture(scope="module")
def ch06(nets):
    acc = {run: described.described_sweep(run, F06, SEEDS) for run in published.RUNS}
    fair = described.described_sweep("obd_all_layers_dropout", F06, SEEDS, variant="dropout")
    return acc, fair


@pytest.fixture(scope="module")
def ch06_stated(stated_plain):
    return {run: described.described_sweep(run, F06, SEEDS, init=networks.POST_STATED)
            for run in PLAIN_RUNS}


def test_06_all_layer_obd_spares_the_small_tensors(nets):
    """06: at 50 % over all layers OBD takes more of W1 than |w|, and 10 points less of b1, W2, b2, W5."""
    tensors = [f"{kind}{i}" for i in range(1, 6) for kind in ("W", "b")]
    for seed in SEEDS:
        mag, obd = (pruning.sparsity(pruning.prune_masks(described.described_scores(run, seed), 0.5))
                    for run in ("magnitude_all_layers_prune", "obd_all_layers_prune"))
        assert obd[0] > mag[0], seed
        for t in ("b1", "W2", "b2", "W5"):
            assert obd[tensors.index(t)] < mag[tensors.index(t)] - 0.1, (seed, t)


def test_06_slow_dropout_network_starts_where_the_post_did(ch06):
    """06: the dropout network at 1e-5 is within half a point of the published 0.9113."""
    dense = ch06[0]["obd_all_layers_dropout"][:, 0]
    assert np.all(np.abs(dense - published.curve("obd_all_layers_dropout")[1][0]) < 0.005), dense


def test_06_no_run_loses_a_point_up_to_19_percent(ch06):
    """06: as described, no run (nor all-layer OBD at 1e-4 with dropout) loses a point up to 19 %."""
    acc, fair = ch06
    for run, a in list(acc.items()) + [("dropout network at lr 1e-4", fair)]:
        assert np.all(a[:, :20] > a[:, [0]] - 0.01), run


def test_06_every_run_above_the_published_point_at_19_percent(ch06):
    """06: at 19 % every run as described is above the post's published accuracy."""
    for run, a in ch06[0].items():
        f, pub = published.curve(run)
        assert np.all(a[:, 19] > pub[np.isclose(100 * f, 19)][0]), run


def test_06_all_layer_obd_within_a_point_up_to_half(ch06):
    """06: all-layer OBD stays within a point of dense up to 50 %, above 0.94 at 20 and 50 %."""
    obd_g = ch06[0]["obd_all_layers_prune"]
    assert np.all(obd_g[:, :51] > obd_g[:, [0]] - 0.01)
    assert obd_g[:, 20].min() > 0.94 and obd_g[:, 50].min() > 0.94


def test_06_all_layer_obd_beats_magnitude_and_layerwise_from_40_percent(ch06):
    """06: from 40 to 70 % all-layer OBD beats all-layer magnitude and layer-wise OBD everywhere."""
    acc = ch06[0]
    obd_g = acc["obd_all_layers_prune"]
    assert np.all(obd_g[:, 40:] > acc["magnitude_all_layers_prune"][:, 40:])
    assert np.all(obd_g[:, 40:] > acc["obd_layerwise_prune"][:, 40:])


def test_06_other_plain_runs_lose_ten_points_by_70_percent(ch06):
    """06: all-layer magnitude and both layer-wise runs lose more than ten points at 70 %."""
    acc = ch06[0]
    for run in ("magnitude_all_layers_prune", "magnitude_layerwise_prune", "obd_layerwise_prune"):
        assert np.all(acc[run][:, 70] < acc[run][:, 0] - 0.1), run


def test_06_global_magnitude_beats_layerwise_on_average(ch06):
    """06: over 40-70 % global magnitude beats layer-wise by more than two points on average."""
    acc = ch06[0]
    gain = acc["magnitude_all_layers_prune"][:, 40:71] - acc["magnitude_layerwise_prune"][:, 40:71]
    assert gain.mean() > 0.02, gain.mean()


def test_06_global_magnitude_not_ahead_everywhere(ch06):
    """06: over 40-70 % global magnitude is not ahead of layer-wise on every seed at every level."""
    acc = ch06[0]
    gain = acc["magnitude_all_layers_prune"][:, 40:71] - acc["magnitude_layerwise_prune"][:, 40:71]
    assert gain.min() < 0, gain.min()


def test_06_within_layers_obd_a_few_points_ahead(ch06):
    """06: layer-wise OBD leads layer-wise magnitude by 2 to 8 points over 40-70 % on average."""
    acc = ch06[0]
    within = (acc["obd_layerwise_prune"][:, 40:71].mean()
              - acc["magnitude_layerwise_prune"][:, 40:71].mean())
    assert 0.02 < within < 0.08, within


def test_06_slow_dropout_network_flat_up_to_half(ch06):
    """06: all-layer OBD moves the dropout network at 1e-5 by less than 2 points up to 50 %."""
    slow = ch06[0]["obd_all_layers_dropout"]
    assert np.all(np.abs(slow[:, :51] - slow[:, [0]]) < 0.02)


def test_06_fair_dropout_network_within_a_point_up_to_half(ch06):
    """06: all-layer OBD costs the dropout network at 1e-4 less than a point up to 50 %."""
    fair = ch06[1]
    assert np.all(fair[:, :51] > fair[:, [0]] - 0.01)


def test_06_fair_dropout_network_ahead_at_70_percent(ch06):
    """06: at 70 % every dropout seed at 1e-4 is above every plain seed, by less than 3 points on average."""
    acc, fair = ch06
    plain = acc["obd_all_layers_prune"]
    lead = fair[:, 70] - plain[:, 70]
    assert fair[:, 70].min() > plain[:, 70].max() and lead.mean() < 0.03, (fair[:, 70], plain[:, 70])


def test_06_larger_scale_holds_up_better_late(ch06, ch06_stated):
    """06: from 50 to 70 % each plain run holds up better from the larger scale, on average."""
    for run in PLAIN_RUNS:
        assert ch06[0][run][:, 50:71].mean() > ch06_stated[run][:, 50:71].mean(), run


def test_06_stated_scale_starts_about_two_points_lower(ch06, ch06_stated):
    """06: from the stated scale the plain network starts 1.5 to 3 points lower on average."""
    gap = ch06[0]["obd_all_layers_prune"][:, 0].mean() - ch06_stated["obd_all_layers_prune"][:, 0].mean()
    assert 0.015 < gap < 0.03, gap


# --------------------------------------------------------------------------- chapter 08

GRID08 = np.array(list(range(0, 20)) + [20, 30, 40, 50, 60, 70]) / 100


def at08(percent):
    return int(np.flatnonzero(np.isclose(GRID08, percent / 100))[0])


@pytest.fixture(scope="module")
def ch08(nets):
    acc = {run: described.described_sweep(run, GRID08, SEEDS) for run in published.RUNS}
    fair = described.described_sweep("obd_all_layers_dropout", GRID08, SEEDS, variant="dropout")
    most_negative = {run: as_ran.as_ran_sweep(run, GRID08, SEEDS)
                     for run in ("magnitude_all_layers_prune", "magnitude_layerwise_prune")}
    return acc, fair, most_negative


def test_08_smallest_w_within_a_point_at_19_percent(ch08):
    """08: pruning the 19 % smallest |w| costs less than a point, in both scopes."""
    for run in ("magnitude_all_layers_prune", "magnitude_layerwise_prune"):
        a = ch08[0][run]
        assert np.all(a[:, at08(19)] > a[:, 0] - 0.01), run


def test_08_most_negative_below_0_6_at_5_percent(ch08):
    """08: as the scripts ran, magnitude pruning is below 0.6 at 5 %, in both scopes."""
    for run, a in ch08[2].items():
        assert np.all(a[:, at08(5)] < 0.6), (run, a[:, at08(5)])


def test_08_all_layer_obd_within_3_points_at_60_percent(ch08):
    """08: all-layer OBD keeps within 3 points of dense at 60 %."""
    d = ch08[0]["obd_all_layers_prune"]
    assert np.all(d[:, at08(60)] > d[:, 0] - 0.03)


def test_08_every_run_within_about_a_point_up_to_19_percent(ch08):
    """08: as described, every run stays within 1.2 points of dense from 1 to 19 %."""
    for run, a in ch08[0].items():
        assert np.all(a[:, at08(1):at08(19) + 1].min(axis=1) > a[:, 0] - 0.012), run


def test_08_obd_and_magnitude_level_from_1_to_19_percent(ch08):
    """08: over all layers, OBD and magnitude means differ by less than a point from 1 to 19 %."""
    acc = ch08[0]
    early = slice(at08(1), at08(19) + 1)
    diff = acc["magnitude_all_layers_prune"].mean(0)[early] - acc["obd_all_layers_prune"].mean(0)[early]
    assert np.all(np.abs(diff) < 0.01)


def test_08_obd_beats_magnitude_at_60_percent(ch08):
    """08: at 60 % all-layer OBD beats all-layer magnitude on every seed."""
    acc, c = ch08[0], at08(60)
    assert acc["obd_all_layers_prune"][:, c].min() > acc["magnitude_all_layers_prune"][:, c].max()


def test_08_all_layers_beat_layerwise_at_60_percent(ch08):
    """08: at 60 % all-layer OBD beats layer-wise OBD on every seed, and magnitude does on average."""
    acc, c = ch08[0], at08(60)
    assert acc["obd_all_layers_prune"][:, c].min() > acc["obd_layerwise_prune"][:, c].max()
    assert acc["magnitude_all_layers_prune"][:, c].mean() > acc["magnitude_layerwise_prune"][:, c].mean()


def test_08_fair_dropout_no_early_penalty(ch08):
    """08: at 20 % the dropout network at 1e-4 is within half a point of the plain one."""
    acc, fair = ch08[0], ch08[1]
    assert np.all(fair[:, at08(20)] > acc["obd_all_layers_prune"][:, at08(20)].min() - 0.005)


def test_08_fair_dropout_a_little_ahead_at_70_percent(ch08):
    """08: at 70 % the dropout network at 1e-4 is ahead of the plain one on average."""
    acc, fair = ch08[0], ch08[1]
    assert fair.mean(0)[at08(70)] > acc["obd_all_layers_prune"].mean(0)[at08(70)]


# --------------------------------------------------------------------------- chapter 09

F09 = [i / 100 for i in range(20)]
RUNS09 = {"global": "magnitude_all_layers_prune", "layer": "magnitude_layerwise_prune"}
SMALL = [0.0, 0.01, 0.02, 0.03, 0.05, 0.1]
LEVELS09 = [0.0, 0.01, 0.02, 0.03, 0.05]
SHOWN = ("smallest |w|", "most negative", "most positive")


@pytest.fixture(scope="module")
def ch09(nets, mnist):
    _, (x_test, y_test) = mnist
    plain = nets["plain"]
    described_acc = {s: described.described_sweep(run, F09, SEEDS) for s, run in RUNS09.items()}
    as_ran_acc = {s: as_ran.as_ran_sweep(run, F09, SEEDS) for s, run in RUNS09.items()}
    rng = np.random.default_rng(0)
    by_rule = {name: np.array([pruning.sweep(t.model, observations.ranking_scores(
        t.model.get_weights(), name, rng), SMALL, x_test, y_test) for t in plain])
        for name in observations.RANKINGS}
    activity = {name: [[observations.activity_after(t.model, name, f, x_test, y_test)
                        for f in LEVELS09] for t in plain] for name in SHOWN}
    ratio = {name: np.array([[a.mean_activation / per_seed[0].mean_activation for a in per_seed]
                             for per_seed in activity[name]]) for name in SHOWN}
    return {"described": described_acc, "as_ran": as_ran_acc, "dense": described_acc["global"][:, 0],
            "by_rule": by_rule, "activity": activity, "ratio": ratio}


@pytest.fixture(scope="module")
def ch09_parts(nets, mnist):
    _, (x_test, y_test) = mnist
    names = observations.tensor_names(nets["plain"][0].model)
    parts = {name: [i] for i, name in enumerate(names)}
    parts |= {"hidden layers": list(range(8)), "output layer": [8, 9], "all": list(range(10))}
    out = {part: [] for part in parts}
    for t in nets["plain"]:
        full = pruning.prune_masks(observations.ranking_scores(t.model.get_weights(), "most negative"), 0.05)
        for part, keep in parts.items():
            out[part].append(observations.accuracy_with_part(t.model, full, keep, x_test, y_test))
    return {part: np.array(acc) for part, acc in out.items()}


def test_09_smallest_w_within_a_point_up_to_19_percent(ch09):
    """09 (verdict): ranked by |w|, every network stays within a point of dense to 19 %, both scopes."""
    for scope in RUNS09:
        assert np.all(ch09["described"][scope] >= ch09["dense"][:, None] - 0.01), scope


def test_09_most_negative_collapses_by_5_and_10_percent(ch09):
    """09 (verdict): most negative first, below 0.6 at 5 % and below 0.3 from 10 %, both scopes."""
    for scope in RUNS09:
        acc = ch09["as_ran"][scope]
        assert np.all(acc[:, 5] < 0.6) and np.all(acc[:, 10:] < 0.3), (scope, acc[:, 5])


def test_09_most_negative_slower_than_published_at_3_percent(ch09):
    """09: at 3 % the mean of the most-negative ranking is above the published point, both scopes."""
    for scope, run in RUNS09.items():
        assert ch09["as_ran"][scope][:, 3].mean() > published.curve(run)[1][3], scope


def test_09_most_negative_near_chance_at_19_percent(ch09, nets, mnist):
    """09 (verdict): at 19 % every most-negative run is below 0.2 and sends more than three fifths of
    the test images to one digit, at least half of the runs all of them (the majority share, as the
    chapter computes it; here 1.0, 1.0, 0.69, 0.9998, 0.93, 1.0)."""
    _, (x_test, y_test) = mnist
    at_19 = np.concatenate([ch09["as_ran"][scope][:, -1] for scope in RUNS09])
    assert np.all(at_19 < 0.2), at_19
    share = np.array([observations.layer_activity(
        t.model, x_test, y_test, as_ran.tf0_masks(t.model.get_weights(), 0.19, scope)).majority_share
        for scope in RUNS09 for t in nets["plain"]])
    assert np.all(share > 0.6), share
    assert np.sum(share == 1.0) >= len(share) / 2, share


def test_09_smallest_w_and_random_deletion_at_10_percent(ch09):
    """09: at 10 %, deleting the smallest |w| costs under a point, random deletion under 20."""
    by_rule, dense = ch09["by_rule"], ch09["dense"]
    assert np.all(by_rule["smallest |w|"][:, -1] >= dense - 0.01)
    assert np.all(by_rule["random"][:, -1] >= dense - 0.2), dense - by_rule["random"][:, -1]


def test_09_large_weight_rankings_far_below_random_at_10_percent(ch09):
    """09: at 10 %, each large-weight ranking is more than 35 points below random deletion."""
    by_rule = ch09["by_rule"]
    for name in ("most negative", "most positive", "largest |w|"):
        assert np.all(by_rule[name][:, -1] < by_rule["random"][:, -1] - 0.35), name


def test_09_most_negative_worst_at_10_percent(ch09):
    """09: at 10 %, the most-negative ranking is below the other two large-weight rankings on most seeds."""
    by_rule = ch09["by_rule"]
    lowest = [by_rule["most negative"][:, -1] < by_rule[name][:, -1] for name in ("most positive", "largest |w|")]
    assert np.sum(np.all(lowest, axis=0)) >= 2, by_rule


def test_09_most_negative_never_lowers_a_first_layer_preactivation(nets, mnist):
    """09: deleting the 2 % most negative parameters lowers no first-layer pre-activation."""
    _, (x_test, _) = mnist
    for t in nets["plain"]:
        masks = pruning.prune_masks(observations.ranking_scores(t.model.get_weights(), "most negative"), 0.02)
        z_dense = observations.pre_activations(t.model, x_test)[0]
        z_pruned = observations.pre_activations(t.model, x_test, masks)[0]
        assert (z_pruned - z_dense).min() >= -1e-6, t.config.seed


def test_09_most_negative_raises_activity_most_in_the_last_layer(ch09):
    """09: at 2 and 5 % most negative, every hidden layer is more active, the last one most."""
    for s in range(len(SEEDS)):
        for f in (0.02, 0.05):
            r = ch09["ratio"]["most negative"][s, LEVELS09.index(f)]
            assert np.all(r > 1.0) and r[-1] > r[0], (s, f, r)


def test_09_most_negative_switches_units_on_for_every_image(ch09):
    """09: at 2 and 5 % more units are always on than dense, at least 90 more at 5 %."""
    for per_seed in ch09["activity"]["most negative"]:
        base = per_seed[0].always_on_units.sum()
        for f in (0.02, 0.05):
            assert per_seed[LEVELS09.index(f)].always_on_units.sum() > base
        assert per_seed[LEVELS09.index(0.05)].always_on_units.sum() >= base + 90


def test_09_most_negative_kills_no_first_layer_unit(ch09):
    """09: at 2 and 5 % most negative, no first-layer unit dies."""
    for per_seed in ch09["activity"]["most negative"]:
        for f in (0.02, 0.05):
            assert per_seed[LEVELS09.index(f)].dead_units[0] <= per_seed[0].dead_units[0]


def test_09_most_negative_sends_two_fifths_of_the_images_to_one_class(ch09):
    """09: at 5 % most negative, at least two fifths of the test images go to one class."""
    for per_seed in ch09["activity"]["most negative"]:
        assert per_seed[LEVELS09.index(0.05)].majority_share >= 0.4


def test_09_smallest_w_leaves_activity_and_classes_alone(ch09):
    """09: at 5 % smallest |w|, activity within 2 % of dense and no class above 20 % of images."""
    for s, per_seed in enumerate(ch09["activity"]["smallest |w|"]):
        assert np.all(np.abs(ch09["ratio"]["smallest |w|"][s, -1] - 1) < 0.02)
        assert per_seed[-1].majority_share < 0.2


def test_09_most_positive_lowers_the_last_layer_activity(ch09):
    """09: at 5 % most positive, the last hidden layer is less active than dense."""
    assert np.all(ch09["ratio"]["most positive"][:, -1, -1] < 1.0)


def test_09_most_negative_5_percent_touches_no_bias(ch09, ch09_parts):
    """09: the 5 % most negative parameters are all kernel weights (bias parts leave dense accuracy)."""
    for b in ("b1", "b2", "b3", "b4", "b5"):
        assert np.allclose(ch09_parts[b], ch09["dense"], atol=1e-4), b


def test_09_damage_sits_in_the_hidden_layers(ch09, ch09_parts):
    """09: the hidden layers' share alone costs over 50 points, the output layer's under 15."""
    dense = ch09["dense"]
    assert np.all(ch09_parts["hidden layers"] < dense - 0.5), ch09_parts["hidden layers"]
    assert np.all(ch09_parts["output layer"] > dense - 0.15), ch09_parts["output layer"]


def test_09_hidden_and_output_deletions_compound(ch09_parts):
    """09: hidden and output deletions together do worse than the output part on every seed, the hidden on most."""
    p = ch09_parts
    assert np.all(p["all"] < p["output layer"])
    assert np.sum(p["all"] < p["hidden layers"]) >= 2, (p["all"], p["hidden layers"])


# --------------------------------------------------------------------------- chapter 10

F10 = [i / 100 for i in range(91)]
POST10 = [i / 100 for i in range(20)]
RUNS10 = {("magnitude", "global"): "magnitude_all_layers_prune",
          ("magnitude", "layer"): "magnitude_layerwise_prune",
          ("obd", "global"): "obd_all_layers_prune", ("obd", "layer"): "obd_layerwise_prune"}


def gap10(curves, method, mask):
    """Per seed: mean over the masked levels of all-layer minus layer-wise accuracy (chapter 10)."""
    return (curves[(method, "global")] - curves[(method, "layer")])[:, mask].mean(axis=1)


@pytest.fixture(scope="module")
def ch10(nets):
    f = np.array(F10)
    acc_described = {key: described.described_sweep(run, F10, SEEDS) for key, run in RUNS10.items()}
    acc_as_ran = {key: as_ran.as_ran_sweep(run, POST10, SEEDS) for key, run in RUNS10.items()}
    heavy = (f >= 0.4) & (f <= 0.8)
    gaps = {(m, "40-80 %"): gap10(acc_described, m, heavy) for m in ("magnitude", "obd")}
    gaps |= {(m, "as ran"): gap10(acc_as_ran, m, np.arange(20) >= 1) for m in ("magnitude", "obd")}
    tied = {scope: as_ran.as_ran_details(RUNS10[("obd", scope)], POST10, SEEDS)[1][:, 1:]
            for scope in ("global", "layer")}
    return {"described": acc_described, "gaps": gaps, "tied": tied,
            "up_to_30": (f >= 0.01) & (f <= 0.3)}


@pytest.fixture(scope="module")
def ch10_scores(nets):
    plain = nets["plain"]
    scores = {m: [described.described_scores(RUNS10[(m, "global")], t.config.seed) for t in plain]
              for m in ("magnitude", "obd")}
    share = {m: np.array([pruning.sparsity(pruning.prune_masks(s, 0.5)) for s in scores[m]])
             for m in scores}
    return scores, share


@pytest.fixture(scope="module")
def ch10_grid(nets, ch10_scores, mnist):
    _, (x_test, y_test) = mnist
    scores = ch10_scores[0]
    levels = [f for f in F10 if 0.4 <= f <= 0.8]
    return np.stack([observations.allocation_grid(t.model, {m: scores[m][s] for m in scores},
                                                  levels, x_test, y_test)
                     for s, t in enumerate(nets["plain"])], axis=-1)


@pytest.fixture(scope="module")
def ch10_loss(nets, ch10_scores, mnist):
    (x_pool, y_pool), _ = mnist
    x_sub, y_sub = x_pool[:10_000], y_pool[:10_000]
    out = {}
    for scope in ("layer", "global"):
        rows = [observations.tensor_loss_changes(t.model, ch10_scores[0]["obd"][s], 0.5, scope,
                                                 x_sub, y_sub) for s, t in enumerate(nets["plain"])]
        out[scope] = tuple(np.array([r[i] for r in rows]) for i in range(2))  # predicted, measured
    return out


def test_10_scopes_agree_within_a_point_to_19_and_two_to_30_percent(ch10):
    """10 (verdict): as described, the scopes agree within a point from 1 to 19 %, within two to 30 %."""
    for m in ("magnitude", "obd"):
        diff = np.abs(ch10["described"][(m, "global")] - ch10["described"][(m, "layer")])
        assert np.all(diff[:, 1:20] < 0.01) and np.all(diff[:, ch10["up_to_30"]] < 0.02), m


def test_10_all_layers_ahead_over_40_to_80_percent(ch10):
    """10 (verdict): over 40-80 % the all-layer ranking leads on every seed, for both saliencies."""
    for m in ("magnitude", "obd"):
        assert np.all(ch10["gaps"][(m, "40-80 %")] > 0), (m, ch10["gaps"][(m, "40-80 %")])


def test_10_obd_gap_above_10_points_and_above_magnitude(ch10):
    """10 (verdict): over 40-80 % the OBD gap is above 10 points and above the magnitude gap."""
    g = ch10["gaps"]
    assert np.all(g[("obd", "40-80 %")] > 0.10), g[("obd", "40-80 %")]
    assert np.all(g[("obd", "40-80 %")] > g[("magnitude", "40-80 %")])


def test_10_as_ran_obd_ranks_in_index_order(ch10):
    """10: as ran, all-layer OBD ranks over 90 % of its steps in index order on a seed and over a fifth on
    every seed; every layer-wise run ranks at least one step so."""
    share = {s: t.mean(1) for s, t in ch10["tied"].items()}
    assert share["global"].max() > 0.9 and share["global"].min() > 0.2, share
    assert share["layer"].min() > 0, share


def test_10_as_ran_all_layer_obd_ahead_by_30_points(ch10):
    """10 (verdict): as ran, all-layer OBD leads layer-wise over 1-19 % on most seeds, by more than 30 points on one."""
    gaps = ch10["gaps"][("obd", "as ran")]
    assert np.sum(gaps > 0) >= 2 and gaps.max() > 0.3, gaps


def test_10_as_ran_magnitude_layerwise_ahead(ch10):
    """10 (verdict): as ran, layer-wise magnitude leads all-layer magnitude over 1-19 % on every seed."""
    assert np.all(ch10["gaps"][("magnitude", "as ran")] < 0), ch10["gaps"][("magnitude", "as ran")]


def test_10_global_magnitude_prunes_tensors_of_small_weights(nets, ch10_scores):
    """10: at 50 %, global |w| pruning's share of a tensor falls with its median |w| (rank correlation < -0.8)."""
    share = ch10_scores[1]["magnitude"]
    for s, t in enumerate(nets["plain"]):
        median = [np.median(np.abs(w)) for w in t.model.get_weights()]
        assert stats.spearman(median, share[s]) < -0.8, s


def test_10_global_obd_takes_half_of_w1_and_spares_w2(ch10_scores):
    """10: at 50 %, global OBD takes more than half of W1 and less than a fifth of W2."""
    share = ch10_scores[1]["obd"]
    assert np.all(share[:, 0] > 0.5) and np.all(share[:, 2] < 0.2), share[:, [0, 2]]


def test_10_scale_free_ranking_is_nearly_uniform(nets):
    """10: the scale-free ranking takes 45-55 % of every kernel at 50 %, under half of each bias."""
    share = np.array([pruning.sparsity(pruning.prune_masks(observations.normalised_magnitude(t.model), 0.5))
                      for t in nets["plain"]])
    assert np.all(np.abs(share[:, 0::2] - 0.5) < 0.05) and np.all(share[:, 1::2] < 0.5), share


def test_10_weight_scale_allocation_beats_uniform(ch10_grid):
    """10: with the ranking inside tensors fixed, the |w| allocation beats uniform by 5 points, OBD's beats uniform."""
    U, MAG, OBD = range(3)
    for j in range(2):
        assert np.all(ch10_grid[MAG, j] > ch10_grid[U, j] + 0.05), j
        assert np.all(ch10_grid[OBD, j] > ch10_grid[U, j]), j


def test_10_sensitivity_allocation_beats_weight_scale(ch10_grid):
    """10: the OBD allocation beats the |w| one by 4 points with OBD inside, on average with |w| inside."""
    MAG, OBD = 1, 2
    assert np.all(ch10_grid[OBD, 1] > ch10_grid[MAG, 1] + 0.04), ch10_grid[:, 1]
    assert np.sum(ch10_grid[OBD, 0] > ch10_grid[MAG, 0]) >= 2, ch10_grid[:, 0]
    assert ch10_grid[OBD, 0].mean() > ch10_grid[MAG, 0].mean()


@pytest.fixture(scope="module")
def ch10_curvature(nets, ch10_scores, mnist):
    """Chapter 10's allocation by curvature alone (h_kk = 2 s_k / u_k^2), mean accuracy over 40-80 %: (ranking, seed)."""
    _, (x_test, y_test) = mnist
    scores = ch10_scores[0]
    levels = [f for f in F10 if 0.4 <= f <= 0.8]
    rows = []
    for s, t in enumerate(nets["plain"]):
        curvature = [np.where(u != 0, 2 * s_ / np.where(u != 0, u, 1) ** 2, 0.0)
                     for s_, u in zip(scores["obd"][s], t.model.get_weights())]
        rows.append([pruning.sweep(t.model, observations.transplant_allocation(curvature, scores[r][s]),
                                   levels, x_test, y_test, "global").mean()
                     for r in observations.INSIDE_RANKINGS])
    return np.array(rows).T


def test_10_curvature_alone_beats_weight_scale(ch10_grid, ch10_curvature):
    """10 (verdict, C2): allocating by curvature alone beats the |w| allocation with OBD inside by 5 points on average and 3 on every seed; with |w| inside by 3 on average, on most seeds."""
    MAG = 1
    by_curvature = ch10_curvature
    assert np.all(by_curvature[1] > ch10_grid[MAG, 1] + 0.03), (by_curvature[1], ch10_grid[MAG, 1])
    assert by_curvature[1].mean() > ch10_grid[MAG, 1].mean() + 0.05, (by_curvature[1], ch10_grid[MAG, 1])
    assert by_curvature[0].mean() > ch10_grid[MAG, 0].mean() + 0.03, (by_curvature[0], ch10_grid[MAG, 0])
    assert np.sum(by_curvature[0] > ch10_grid[MAG, 0]) >= 2, (by_curvature[0], ch10_grid[MAG, 0])


def test_10_curvature_alone_as_good_as_obd_allocation(ch10_grid, ch10_curvature):
    """10 (C2): the curvature-alone allocation is within a point of OBD's own allocation on average, for both rankings."""
    OBD = 2
    assert np.all(np.abs(ch10_curvature.mean(1) - ch10_grid[OBD].mean(1)) < 0.01), (ch10_curvature, ch10_grid[OBD])


def test_10_mean_gap_under_a_point_over_1_to_19_percent(ch10):
    """10 (verdict, C1): as described, the mean all-layer minus layer-wise gap over 1-19 % is under a point on every seed, both saliencies."""
    light = (np.array(F10) >= 0.01) & (np.array(F10) <= 0.19)
    for m in ("magnitude", "obd"):
        g = gap10(ch10["described"], m, light)
        assert np.all(np.abs(g) < 0.01), (m, g)


def test_10_w2_costs_most_under_uniform_allocation(ch10_loss):
    """10: under the uniform allocation at 50 %, W2 alone raises the loss most."""
    per_tensor = ch10_loss["layer"][1][:, :-1]
    assert np.all(per_tensor.argmax(1) == 2), per_tensor


def test_10_middle_kernels_carry_the_cost(ch10_loss):
    """10: W2-W5 carry over 80 % of the summed uniform-allocation cost, half of W1 under 5 %."""
    per_tensor = ch10_loss["layer"][1][:, :-1]
    mid = [2, 4, 6, 8]
    assert np.all(per_tensor[:, mid].sum(1) > 0.8 * per_tensor.sum(1))
    assert np.all(per_tensor[:, 0] < 0.05 * per_tensor.sum(1))


def test_10_obd_allocation_costs_under_a_tenth(ch10_loss):
    """10: at 50 % the OBD allocation's measured loss increase is under a tenth of the uniform one's."""
    assert np.all(ch10_loss["global"][1][:, -1] < 0.1 * ch10_loss["layer"][1][:, -1])


def test_10_saliencies_underpredict_the_loss_increase(ch10_loss):
    """10: the summed saliencies under-predict the measured loss increase by a factor 1.5 to 6."""
    for scope, (predicted, measured) in ch10_loss.items():
        ratio = measured[:, -1] / predicted[:, -1]
        assert np.all((ratio > 1.5) & (ratio < 6)), (scope, ratio)


# --------------------------------------------------------------------------- chapters 11 and 12

F91 = [i / 100 for i in range(91)]
EXT_F = published.curve("obd_all_layers_prune")[0].tolist() + [0.8, 0.9]  # chapter 11's AS_RAN_F too
AT_EXT = {p: EXT_F.index(p / 100) for p in (0, 1, 6, 19, 40, 50, 60, 70, 90)}
MARGIN = 0.02


@pytest.fixture(scope="module")
def dropout_curves(nets):
    """All-layer OBD on every variant: correct (every percent to 90) and as ran (the post's levels, 80, 90 %)."""
    correct = {v: described.described_sweep("obd_all_layers_prune", F91, SEEDS, variant=v) for v in VARIANTS}
    scripts = {v: observations.as_ran_obd_sweep(v, EXT_F, "global", SEEDS) for v in VARIANTS}
    loss = {v: acc[:, :1] - acc for v, acc in correct.items()}
    scripts_loss = {v: acc[:, :1] - acc for v, acc in scripts.items()}
    return correct, scripts, loss, scripts_loss


@pytest.fixture(scope="module")
def ch11_saturation(nets, mnist):
    (x_pool, _), _ = mnist
    sat = {v: np.array([as_ran.saturated(t.model, x_pool).mean() for t in ts]) for v, ts in nets.items()}
    return sat, {v: (1 - s) ** 64 for v, s in sat.items()}


@pytest.fixture(scope="module")
def ch11_mechanism(nets):
    """Chapter 11's section 5 on CHECK_SEEDS, as the chapter computes it
    (``observations.mechanism_terms``): network -> kind -> measure -> (seeds x draws, levels)."""
    per_seed = [observations.mechanism_terms(seed)[0] for seed in SEEDS]
    return {v: {k: {m: np.concatenate([p[v][k][m] for p in per_seed]) for m in observations.MECHANISM_MEASURES}
                for k in observations.MECHANISM_KINDS} for v in observations.MECHANISM_NETWORKS}


def per_level(stat, r):
    """stat of each column of r over its defined values, NaN if none (chapter 11's per_level)."""
    return np.array([stat(c[np.isfinite(c)]) if np.isfinite(c).any() else np.nan for c in r.T])


MECH_SMALL, MECH_BIG = slice(0, 3), slice(3, None)  # chapter 11's 1-5 % and 20-60 %


def test_11_as_ran_dropout_below_0_8_from_6_percent(dropout_curves):
    """11 (verdict): as ran, every dropout seed is below 0.85 from 6 to 19 % at both rates, and to 90 % at 1e-4."""
    scripts = dropout_curves[1]
    for v in ("dropout", "dropout_lr1e-5"):
        assert scripts[v][:, AT_EXT[6]:AT_EXT[19] + 1].max() < 0.85, v
    assert scripts["dropout"][:, AT_EXT[6]:].max() < 0.85


def test_11_as_ran_plain_within_2_5_points_to_19_percent(dropout_curves):
    """11 (verdict): as ran, at least one plain seed loses less than 2.5 points from 1 to 19 %."""
    worst = dropout_curves[3]["plain"][:, 1:AT_EXT[19] + 1].max(axis=1)
    assert np.sum(worst < 0.025) >= 1, worst


def test_11_as_ran_slow_dropout_falls_faster(dropout_curves):
    """11: as ran, at 1 % every dropout seed at 1e-5 is below every dropout seed at 1e-4."""
    scripts = dropout_curves[1]
    assert scripts["dropout_lr1e-5"][:, 1].max() < scripts["dropout"][:, 1].min()


def test_11_correct_obd_loses_under_a_point_to_60_percent(dropout_curves):
    """11: with exact-diagonal OBD no network loses a point up to 60 %."""
    for v, loss in dropout_curves[2].items():
        assert loss[:, :61].max() < 0.01, (v, loss[:, :61].max())


def test_11_dropout_loses_less_than_plain_from_62_to_76_percent(dropout_curves):
    """11 (verdict): at 1e-4 the dropout network loses less than the plain one from 62 to 76 % on average."""
    loss = dropout_curves[2]
    assert np.all(loss["dropout"].mean(0)[62:77] < loss["plain"].mean(0)[62:77])


def test_11_dropout_ahead_at_70_percent(dropout_curves):
    """11: at 70 % the dropout network at 1e-4 is more than half a point ahead on average."""
    correct = dropout_curves[0]
    assert correct["dropout"][:, 70].mean() > correct["plain"][:, 70].mean() + 0.005


def test_11_dropout_loses_more_from_about_80_percent(dropout_curves):
    """11 (verdict): at 1e-4 dropout loses more on average from about 80 % (76-82 %), on every seed by 86 %."""
    loss = dropout_curves[2]
    worse = observations.crossing(F91, loss["dropout"], loss["plain"])
    assert 0.76 < worse.mean_from <= 0.82 and 0.8 <= worse.band_from <= 0.86, worse


def test_11_plain_scores_mostly_nan(ch11_saturation):
    """11 (verdict): the plain networks saturate on over 4 % of images; under 8 % of batches score."""
    sat, clean = ch11_saturation
    assert sat["plain"].min() > 0.04 and clean["plain"].max() < 0.08, (sat["plain"], clean["plain"])


def test_11_dropout_networks_saturate_less(ch11_saturation):
    """11: dropout at 1e-4 saturates under 2 % of images (over a quarter of batches score), at 1e-5 none."""
    sat, clean = ch11_saturation
    assert sat["dropout"].max() < 0.02 and clean["dropout"].min() > 0.25, (sat["dropout"], clean["dropout"])
    assert sat["dropout_lr1e-5"].max() == 0


def test_11_random_sets_q_over_d(ch11_mechanism):
    """11: on random sets plain Q/D is 0.4-2.2 (under 1.5 from 20 %), dropout at 1e-4 1.9-5 from 20 %, above every plain value."""
    rnd = {v: ch11_mechanism[v]["random"]["Q/D"] for v in observations.MECHANISM_NETWORKS}
    assert 0.4 < rnd["plain"].min() and rnd["plain"].max() < 2.2 and rnd["plain"][:, MECH_BIG].max() < 1.5, rnd["plain"]
    assert 1.9 < rnd["dropout"][:, MECH_BIG].min() and rnd["dropout"][:, MECH_BIG].max() < 5, rnd["dropout"]
    assert np.all(rnd["dropout"][:, MECH_BIG].min(0) > rnd["plain"][:, MECH_BIG].max(0))


def test_11_random_sets_q_over_d_rises_with_sparsity(ch11_mechanism):
    """11: on random sets the dropout networks' median Q/D rises with sparsity (at 1e-4 from 5 %), higher at 1e-5 from 20 %."""
    med = {v: per_level(np.median, ch11_mechanism[v]["random"]["Q/D"]) for v in ("dropout", "dropout_lr1e-5")}
    assert np.all(np.diff(med["dropout"][2:]) > 0) and np.all(np.diff(med["dropout_lr1e-5"]) > 0), med
    assert np.all(med["dropout_lr1e-5"][MECH_BIG] > med["dropout"][MECH_BIG]), med


def test_11_q_over_d_small_at_1_to_5_percent(ch11_mechanism):
    """11: at 1-5 % every network's Q/D on random sets is below 3; OBD's sets there hold only zero-saliency parameters at 1 %."""
    assert max(ch11_mechanism[v]["random"]["Q/D"][:, MECH_SMALL].max()
               for v in observations.MECHANISM_NETWORKS) < 3
    for v in observations.MECHANISM_NETWORKS:
        for kind in ("plain ranking", "dropout ranking"):
            assert ch11_mechanism[v][kind]["D/2"][:, 0].max() < 1e-6, (v, kind)


def test_11_dropout_q_over_d_about_four_at_60_percent(ch11_mechanism):
    """11: on random sets at 60 % the dropout network at 1e-4 has a median Q/D of about four (3.5 to 5)."""
    med = np.median(ch11_mechanism["dropout"]["random"]["Q/D"][:, 5])
    assert 3.5 < med < 5, med


def test_11_and_12_every_fair_dropout_seed_ahead_at_70_percent(dropout_curves):
    """11, 12: with correct OBD at 70 % every dropout seed at 1e-4 is above every plain seed."""
    correct = dropout_curves[0]
    assert correct["dropout"][:, 70].min() > correct["plain"][:, 70].max(), (correct["dropout"][:, 70], correct["plain"][:, 70])


def test_11_dropout_above_the_tempered_control(ch11_mechanism):
    """11: the tempered plain control's Q/D rises to 1.5-3 (median) at 60 % on random sets; every dropout value from 20 % is above every tempered one."""
    temp, drop = (ch11_mechanism[v]["random"]["Q/D"] for v in ("tempered plain", "dropout"))
    assert temp[:, 5].max() < 3 and np.median(temp[:, 5]) > 1.5, temp[:, 5]
    assert np.all(drop[:, MECH_BIG].min(0) > temp[:, MECH_BIG].max(0)), (drop[:, MECH_BIG], temp[:, MECH_BIG])


def test_11_obd_sets_dropout_larger_q_over_d_at_40_and_60_percent(ch11_mechanism):
    """11: on either OBD ranking's sets at 40 and 60 %, dropout's median Q/D exceeds plain's."""
    for kind in ("plain ranking", "dropout ranking"):
        med = {v: per_level(np.median, ch11_mechanism[v][kind]["Q/D"]) for v in ("plain", "dropout")}
        assert np.all(med["dropout"][4:] > med["plain"][4:]), kind


def test_11_obd_sets_at_20_percent_follow_the_ranking(ch11_mechanism):
    """11: at 20 %, each network's median Q/D is the larger on its own ranking's set."""
    med = {v: {k: per_level(np.median, r["Q/D"]) for k, r in ch11_mechanism[v].items()} for v in ("plain", "dropout")}
    assert med["plain"]["plain ranking"][3] > med["dropout"]["plain ranking"][3]
    assert med["dropout"]["dropout ranking"][3] > med["plain"]["dropout ranking"][3]


def test_11_cross_terms_close_the_diagonals_miss(ch11_mechanism):
    """11 (verdict, mechanism): on random sets from 20 %, the full quadratic closes over 35 points of the diagonal's miss at 1e-5 (missing under 45 %), 5 points or more at 1e-4, under 5 for plain."""
    miss = {v: {m: ch11_mechanism[v]["random"][m][:, MECH_BIG] for m in ("diagonal miss", "quadratic miss")}
            for v in observations.MECHANISM_NETWORKS}
    gain = {v: np.median(d["diagonal miss"] - d["quadratic miss"], 0) for v, d in miss.items()}
    assert np.all(gain["dropout_lr1e-5"] > 0.35), gain
    assert np.all(np.median(miss["dropout_lr1e-5"]["quadratic miss"], 0) < 0.45)
    assert np.all(gain["dropout"] > 0.05) and np.all(gain["dropout"] < gain["dropout_lr1e-5"]), gain
    assert np.all(gain["plain"] < 0.05), gain["plain"]


def test_11_tempered_control_gains_as_much_as_dropout(ch11_mechanism):
    """11: the tempered plain control gains from the cross terms as much as dropout at 1e-4 at 40 and 60 % (within 5 points), more at 60 %."""
    gain = {v: np.median(ch11_mechanism[v]["random"]["diagonal miss"][:, MECH_BIG]
                         - ch11_mechanism[v]["random"]["quadratic miss"][:, MECH_BIG], 0)
            for v in ("dropout", "tempered plain")}
    assert np.all(gain["tempered plain"][1:] > gain["dropout"][1:] - 0.05), gain
    assert gain["tempered plain"][2] > gain["dropout"][2], gain


def test_11_slow_dropout_loses_fewer_points_at_80_and_90_percent(dropout_curves):
    """11 (verdict): with correct OBD the dropout networks at 1e-5 lose fewer points than plain at 80 and 90 % on average."""
    loss = dropout_curves[2]
    assert np.all(loss["dropout_lr1e-5"].mean(0)[[80, 90]] < loss["plain"].mean(0)[[80, 90]])


def test_11_dropout_loses_no_more_than_plain_to_70_percent(dropout_curves):
    """11 (verdict): at 1e-4 the dropout network loses no more than the plain one to 70 % on average (within a tenth of a point)."""
    loss = dropout_curves[2]
    assert np.all(loss["dropout"].mean(0)[:71] <= loss["plain"].mean(0)[:71] + 0.001)


def test_11_plain_steps_mostly_ranked_nan(nets):
    """11 (verdict): as the replay recorded, more than half of the steps at 1-19 % ranked NaN scores on most plain seeds."""
    nan_steps = as_ran.as_ran_details("obd_all_layers_prune", [i / 100 for i in range(20)], SEEDS)[1][:, 1:]
    assert np.sum(nan_steps.mean(1) > 0.5) >= 2, nan_steps.mean(1)


GRIDS12 = {"0-70 %": 26, "0-90 %": 28}  # the rule's grids, as columns of EXT_F


@pytest.fixture(scope="module")
def ch12(dropout_curves):
    correct, scripts = dropout_curves[0], dropout_curves[1]
    at = [int(round(100 * f)) for f in EXT_F]
    rules = {}
    for v in ("dropout", "dropout_lr1e-5"):
        for how, curves in (("as ran", scripts), ("correct", {k: c[:, at] for k, c in correct.items()})):
            rules[v, how] = {grid: observations.crossing_rule(EXT_F[:n], curves[v][:, :n],
                                                             curves["plain"][:, :n], MARGIN)
                             for grid, n in GRIDS12.items()}
    return rules


def test_12_as_ran_slow_dropout_crosses_from_50_percent(ch12):
    """12 (verdict): as ran, dropout at 1e-5 crosses plain from 50 % to 70 %, the bands apart before 70 %."""
    c, _ = ch12["dropout_lr1e-5", "as ran"]["0-70 %"]
    assert observations.crosses(c) and c.mean_from == 0.5 and c.band_from is not None, c


def test_12_as_ran_fair_dropout_ahead_from_40_to_60_percent(dropout_curves):
    """12 (verdict): as ran, dropout at 1e-4 is ahead of the plain mean from 50 to 60 %."""
    scripts = dropout_curves[1]
    lead = scripts["dropout"].mean(0) - scripts["plain"].mean(0)
    assert np.all(lead[AT_EXT[50]:AT_EXT[60] + 1] > 0), lead[AT_EXT[50]:AT_EXT[60] + 1]


def test_12_as_ran_means_below_0_35_from_50_percent(dropout_curves):
    """12 (verdict): as ran, every mean curve is below 0.35 from 50 % on and below 0.2 at 90 %."""
    means = np.stack([a.mean(0) for a in dropout_curves[1].values()])
    assert means[:, AT_EXT[50]:].max() < 0.35 and means[:, -1].max() < 0.2, means[:, AT_EXT[50]:]


def test_12_correct_no_crossing_to_70_percent(ch12):
    """12 (verdict): with correct OBD neither dropout variant crosses plain up to 70 %."""
    for v in ("dropout", "dropout_lr1e-5"):
        assert not observations.crosses(ch12[v, "correct"]["0-70 %"][0]), v


def test_12_correct_slow_dropout_crosses_at_80_percent(ch12):
    """12 (verdict): with correct OBD dropout at 1e-5 crosses plain at 80 % (interpolated 70-80 %)."""
    slow = ch12["dropout_lr1e-5", "correct"]["0-90 %"][0]
    assert observations.crosses(slow) and slow.mean_from == 0.8 and 0.7 < slow.interpolated < 0.8, slow


def test_12_correct_fair_dropout_never_crosses(ch12):
    """12 (verdict): with correct OBD dropout at 1e-4 does not cross plain, even to 90 %."""
    assert not observations.crosses(ch12["dropout", "correct"]["0-90 %"][0])


def test_12_slow_dropout_starts_4_to_7_points_lower(dropout_curves):
    """12: the dropout network at 1e-5 starts 4 to 7 points below the plain one on average."""
    correct = dropout_curves[0]
    gap = correct["plain"][:, 0].mean() - correct["dropout_lr1e-5"][:, 0].mean()
    assert 0.04 < gap < 0.07, gap


def test_12_fair_dropout_level_to_60_and_ahead_at_70_percent(dropout_curves):
    """12: dropout at 1e-4 is level with plain to 60 % and ahead at 70 % by less than the margin."""
    correct = dropout_curves[0]
    lead = correct["dropout"].mean(0) - correct["plain"].mean(0)
    assert 0 < lead[70] < MARGIN and np.abs(lead[:61]).max() < 0.01, lead[[60, 70]]


def test_12_fair_dropout_lead_largest_near_75_percent(dropout_curves):
    """12: dropout at 1e-4 leads most between 70 and 80 %, by 1.5 to 3.5 points."""
    correct = dropout_curves[0]
    lead = correct["dropout"].mean(0) - correct["plain"].mean(0)
    assert 0.7 < F91[lead.argmax()] < 0.8 and 0.015 < lead.max() < 0.035, (F91[lead.argmax()], lead.max())


def test_12_fair_dropout_behind_at_80_and_90_percent(dropout_curves):
    """12 (verdict): dropout at 1e-4 is 2 points behind at 80 %, near chance at 90 % where plain keeps 0.2."""
    correct = dropout_curves[0]
    lead = correct["dropout"].mean(0) - correct["plain"].mean(0)
    assert lead[80] < -0.02, lead[80]
    assert correct["dropout"][:, 90].max() < 0.15 and correct["plain"][:, 90].min() > 0.2, correct["plain"][:, 90]


def test_12_as_ran_leads_rank_two_failures(dropout_curves):
    """12: as ran, plain is below 0.25 at 40 %; correct OBD keeps every network above 0.89 from 40 to 70 %."""
    correct, scripts = dropout_curves[0], dropout_curves[1]
    assert scripts["plain"][:, AT_EXT[40]].mean() < 0.25
    assert min(correct[v][:, 40:71].min() for v in VARIANTS) > 0.89


def test_12_slow_dropout_crosses_just_below_80_percent_on_the_1_percent_grid(dropout_curves):
    """12: on the 1 % grid with correct OBD, dropout at 1e-5 crosses plain at 76-80 %; at 1e-4 it never crosses."""
    correct = dropout_curves[0]
    slow = observations.crossing_rule(F91, correct["dropout_lr1e-5"], correct["plain"], MARGIN)[0]
    fair = observations.crossing_rule(F91, correct["dropout"], correct["plain"], MARGIN)[0]
    assert observations.crosses(slow) and 0.76 <= slow.mean_from <= 0.8, slow
    assert not observations.crosses(fair), fair


@pytest.fixture(scope="module")
def ch12_stated(reader_cache):
    """Correct all-layer OBD at every percent to 90 on plain and dropout-at-1e-5 networks from the
    stated initial scale (0.02, 0), on CHECK_SEEDS (the networks trained side by side first)."""
    variants = ("plain", "dropout_lr1e-5")
    networks.post_models_by_variant(variants, SEEDS, init=networks.POST_STATED)
    return {v: described.described_sweep("obd_all_layers_prune", F91, SEEDS, variant=v, init=networks.POST_STATED)
            for v in variants}


def test_12_stated_scale_slow_dropout_never_crosses(ch12_stated):
    """12 (verdict): from the stated initial scale dropout at 1e-5 never crosses plain to 90 % and trails it at every level."""
    at = [int(round(100 * f)) for f in EXT_F]
    slow, plain = ch12_stated["dropout_lr1e-5"], ch12_stated["plain"]
    c = observations.crossing_rule(EXT_F, slow[:, at], plain[:, at], MARGIN)[0]
    lead = slow.mean(0) - plain.mean(0)
    assert not observations.crosses(c) and lead.max() < 0, (c, lead.max())
