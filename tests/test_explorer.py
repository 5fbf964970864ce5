"""The explorer's pure callback and its widget wiring, driven without a browser."""

import json

import numpy as np
import pytest
from matplotlib.figure import Figure

from helpers import metrics, models, pruning, saliency, seeding
from helpers.chapters import explorer
from helpers.post import as_ran

SIZES = (784, 16, 12, 10)


@pytest.fixture
def small_networks(monkeypatch):
    """Replace the book's trained networks by small random MLPs, one per (network, seed)."""
    loaded = []

    def load(network, seed):
        loaded.append((network, seed))
        seeding.set_seed(10 * list(explorer.NETWORKS).index(network) + seed)
        return models.mlp(SIZES, init_stddev=0.1)

    monkeypatch.setattr(explorer, "_load_network", load)
    explorer.clear()
    yield loaded
    explorer.clear()


def counting_saliency(monkeypatch):
    """Record each scoring: (method, scope), the scope being None for the library's saliencies."""
    calls = []
    for module, name in ((saliency, "saliency"), (as_ran, "scores")):
        def counted(model, method, *args, _original=getattr(module, name), **kwargs):
            calls.append((method, kwargs.get("scope")))
            return _original(model, method, *args, **kwargs)

        monkeypatch.setattr(module, name, counted)
    return calls


@pytest.mark.parametrize("scope", ["global", "layer"])
@pytest.mark.parametrize("method", ["magnitude", "obd", "asran_obd"])
def test_view_matches_masks_accuracy_and_sparsity(small_networks, method, scope):
    result = explorer.view("plain", method, scope, 0.37, seed=1)
    model = explorer._network("plain", 1)
    before = [w.copy() for w in model.get_weights()]
    masks = result["masks"]
    expected_masks = pruning.prune_masks(explorer._saliency("plain", 1, method, scope), 0.37, scope)
    for m, e in zip(masks, expected_masks):
        np.testing.assert_array_equal(m, e)
    x_test, y_test = explorer._test_data()
    with pruning.pruned(model, masks):
        assert result["accuracy"] == pytest.approx(metrics.accuracy(model, x_test, y_test), abs=1e-6)
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    sizes = [w.size for w in before]
    names = list(result["sparsity"])
    assert names == ["hidden1 kernel", "hidden1 bias", "hidden2 kernel", "hidden2 bias",
                     "logits kernel", "logits bias"]
    if scope == "global":
        assert result["overall_sparsity"] == pruning.n_pruned(0.37, sum(sizes)) / sum(sizes)
    else:
        for name, n in zip(names, sizes):
            assert result["sparsity"][name] == pytest.approx(pruning.n_pruned(0.37, n) / n)
    fractions, curve = result["curve"]
    assert len(fractions) == len(curve) == 101 and fractions[0] == 0.0 and fractions[-1] == 1.0
    assert curve[0] == pytest.approx(metrics.accuracy(model, x_test, y_test), abs=1e-6)
    assert isinstance(result["figure"], Figure)
    assert len(result["figure"].axes) == 12  # curve, bars, ten first-layer masks


def test_saliencies_are_computed_once_per_setting(small_networks, monkeypatch):
    calls = counting_saliency(monkeypatch)
    explorer.view("plain", "obd", "global", 0.2)
    explorer.view("plain", "obd", "global", 0.6)
    assert len(calls) == 1 and small_networks == [("plain", 0)]
    explorer.view("plain", "obd", "layer", 0.6)  # the same scores serve both scopes
    explorer.view("plain", "fisher", "layer", 0.6)
    explorer.view("dropout", "fisher", "layer", 0.6, seed=2)
    explorer.view("dropout", "asran_obd", "layer", 0.6, seed=2)  # row sums depend on the scope
    explorer.view("dropout", "asran_obd", "global", 0.6, seed=2)
    assert calls == [("obd", None), ("fisher", None), ("fisher", None),
                     ("asran_obd", "layer"), ("asran_obd", "global")]
    assert small_networks == [("plain", 0), ("dropout", 2)]


def test_curve_point_equals_the_accuracy_on_the_grid(small_networks):
    result = explorer.view("dropout_lr1e-5", "magnitude", "global", 0.45)
    fractions, curve = result["curve"]
    assert curve[np.flatnonzero(fractions == 0.45)[0]] == pytest.approx(result["accuracy"], abs=1e-6)


def test_bad_arguments_raise_naming_the_argument(small_networks):
    with pytest.raises(ValueError, match="network"):
        explorer.view("cnn", "obd", "global", 0.5)
    with pytest.raises(ValueError, match="method"):
        explorer.view("plain", "obs", "global", 0.5)
    with pytest.raises(ValueError, match="scope"):
        explorer.view("plain", "obd", "all", 0.5)
    with pytest.raises(ValueError, match="fraction"):
        explorer.view("plain", "obd", "global", 1.5)
    with pytest.raises(TypeError, match="fraction"):
        explorer.view("plain", "obd", "global", "0.5")
    with pytest.raises(ValueError, match="seed"):
        explorer.view("plain", "obd", "global", 0.5, seed=7)
    with pytest.raises(TypeError, match="seed"):
        explorer.view("plain", "obd", "global", 0.5, seed=0.0)
    with pytest.raises(ValueError, match="fraction"):
        explorer.build(fraction=-0.1)
    assert small_networks == []  # validation happens before any work


def test_widget_updates_when_controls_change(small_networks):
    box = explorer.build("plain", "magnitude", "global", 0.1)
    first_image, first_summary = box.image.value, box.summary.value
    assert first_image[:8] == b"\x89PNG\r\n\x1a\n"
    assert "test accuracy" in first_summary and "magnitude" in first_summary
    assert box.last["fraction"] == 0.1

    box.controls["fraction"].value = 0.9
    assert box.last["fraction"] == 0.9
    assert box.last["accuracy"] == explorer.view("plain", "magnitude", "global", 0.9)["accuracy"]
    assert box.image.value != first_image and box.summary.value != first_summary
    assert "90.0% of parameters pruned" in box.summary.value
    assert box.summary.value == explorer.summary_html(box.last)
    text = explorer.summary_text(box.last)
    assert f"test accuracy {box.last['accuracy']:.4f}" in text and "<" not in text

    box.controls["method"].value = "obd"
    assert box.last["method"] == "obd" and "OBD (exact diagonal)" in box.summary.value
    box.controls["scope"].value = "layer"
    assert box.last["scope"] == "layer" and "layer-wise" in box.summary.value
    box.controls["network"].value = "dropout"
    box.controls["seed"].value = 2
    assert (box.last["network"], box.last["seed"]) == ("dropout", 2)
    assert small_networks[-1] == ("dropout", 2)
    assert box.last["accuracy"] == explorer.view("dropout", "obd", "layer", 0.9, seed=2)["accuracy"]


def test_widget_shows_errors_instead_of_raising(small_networks, monkeypatch):
    box = explorer.build()
    image = box.image.value

    def broken(network, seed):
        raise RuntimeError("no such network in the cache")

    monkeypatch.setattr(explorer, "_load_network", broken)
    box.controls["network"].value = "dropout_lr1e-5"
    assert "error" in box.summary.value and "no such network" in box.summary.value
    assert box.image.value == image  # the last good figure stays


def test_post_networks_have_seed_zero_only(small_networks):
    assert explorer.seeds("plain") == (0, 1, 2)
    assert explorer.seeds("post_obd_all_layers_dropout") == (0,)
    assert explorer.view("post_obd_layerwise_prune", "obd", "layer", 0.3)["seed"] == 0
    with pytest.raises(ValueError, match="seed"):
        explorer.view("post_obd_layerwise_prune", "obd", "layer", 0.3, seed=1)
    with pytest.raises(ValueError, match="network"):
        explorer.seeds("post_nothing")


def test_widget_offers_the_seeds_of_the_chosen_network(small_networks):
    box = explorer.build("dropout", "magnitude", "global", 0.2, seed=2)
    box.controls["network"].value = "post_magnitude_all_layers_prune"
    assert box.controls["seed"].options == (0,)
    assert (box.last["network"], box.last["seed"]) == ("post_magnitude_all_layers_prune", 0)
    box.controls["network"].value = "plain"
    assert box.controls["seed"].options == (0, 1, 2) and box.last["network"] == "plain"


def test_summary_lines_fit_the_page(small_networks):
    text = explorer.summary_text(explorer.view("dropout_lr1e-5", "asran_obd", "global", 0.5))
    assert max(len(line) for line in text.split("\n")) <= 80
    assert "50.0% of parameters pruned: test accuracy" in text


SETTINGS = [("plain", 1, "obd", "global", 37), ("plain", 0, "magnitude", "layer", 99),
            ("post_obd_all_layers_prune", 0, "obd", "layer", 0),
            ("post_obd_all_layers_prune", 0, "magnitude", "global", 64)]


def test_page_data_is_what_view_computes(small_networks, isolated_cache, monkeypatch):
    data = explorer.page_data(["plain", "post_obd_all_layers_prune"], ["magnitude", "obd"])
    assert len(data["accuracy"]) == len(data["pruned"]) == (3 + 1) * 2 * 2
    assert data["tensors"] == ["hidden1 kernel", "hidden1 bias", "hidden2 kernel", "hidden2 bias",
                               "logits kernel", "logits bias"]
    assert len(data["tables"]) < len(data["pruned"])  # layer-wise counts are shared
    for network, seed, method, scope, percent in SETTINGS:
        key = f"{network}/{seed}/{method}/{scope}"
        result = explorer.view(network, method, scope, percent / 100, seed=seed)
        assert data["accuracy"][key][percent] == round(result["accuracy"] * 10_000)
        fractions, curve = result["curve"]
        assert data["accuracy"][key] == [round(a * 10_000) for a in curve[:100]]
        counts = explorer.decode_pruned(data, key)
        assert counts.shape == (100, 6)
        shares = np.array(list(result["sparsity"].values()))  # a float32 mean per mask
        np.testing.assert_array_equal(counts[percent], np.round(shares * data["sizes"]))
        assert counts[percent].sum() / sum(data["sizes"]) == pytest.approx(result["overall_sparsity"])
    # A second build reads every setting back from the disk cache: no saliency is computed.
    explorer.clear()
    calls = counting_saliency(monkeypatch)
    assert explorer.page_data(["plain", "post_obd_all_layers_prune"], ["magnitude", "obd"]) == data
    assert calls == []
    assert json.loads(explorer.page_json(data)) == data
    with pytest.raises(ValueError, match="method_keys"):
        explorer.page_data(["plain"], ["obs"])
    with pytest.raises(ValueError, match="key"):
        explorer.decode_pruned(data, "plain/0/obd/all")


def test_page_html_embeds_data_and_script_and_fetches_nothing(small_networks, isolated_cache):
    data = explorer.page_data(["dropout"], ["asran_magnitude"])
    data["tensors"][0] = "</script><b>"  # must not end the embedded data early
    page = explorer.page_html(data, "test-explorer")
    assert page.startswith('<div id="test-explorer" class="obd-explorer">') and page.endswith("</div>")
    assert page.count("</script>") == 2 and "src=" not in page
    assert not any(word in page for word in ("fetch(", "XMLHttpRequest", "import("))
    assert "http" not in page.replace('"http://www.w3.org/2000/svg"', "")  # SVG's namespace only
    start = page.index('class="obd-explorer-data">') + len('class="obd-explorer-data">')
    assert json.loads(page[start:page.index("</script>", start)]) == data
    with pytest.raises(ValueError, match="element_id"):
        explorer.page_html(data, 'x" onload="')


def test_import_does_no_work():
    import importlib
    import sys

    old = sys.modules.pop("helpers.chapters.explorer")
    try:
        fresh = importlib.import_module("helpers.chapters.explorer")
        assert fresh._networks == {} and fresh._scores == {} and fresh._curves == {}
        assert fresh._data == {}
    finally:
        sys.modules["helpers.chapters.explorer"] = old
