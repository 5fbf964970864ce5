"""An interactive pruning explorer for the post's MLPs (chapter "Explore it yourself").

Three parts, kept apart so that tests can drive each without a browser:

- ``view(network, method, scope, fraction, seed=0)`` is a pure callback: it
  prunes one of the book's trained networks and returns a dict with the test
  accuracy, the share of each weight tensor pruned, the masks, the whole
  accuracy-against-sparsity curve of that setting, and a matplotlib
  ``Figure`` showing the curve, the per-tensor sparsity and the first
  layer's masks as 28x28 images.
- ``build(...)`` wires ``view`` to ipywidgets controls (network, seed,
  saliency, scope, and a sparsity slider) and returns the widget box; every
  change of a control calls the box's ``refresh`` handler, which redraws the
  figure (a PNG in an ``Image`` widget) and the text summary.
- ``page_data()`` gathers, through ``levels``, what the explorer can show
  at every whole percent (accuracy and pruned parameters per tensor, for every
  network, seed, saliency and scope; the book ships these as data, computed once
  ahead of time, so every machine shows the same page), and ``page_html(data)`` embeds it with a
  self-contained script and style (``explorer.js``, ``explorer.css``) that
  build the controls and draw: the explorer of the rendered book, which needs no Python.

Nothing heavy happens at import. Networks come from the shared model cache
(``networks.post_models``), and the post's own five networks from its
checkpoints (``checkpoints.load_post_network``); saliencies are computed on first use and kept
in memory per (network, seed, method), and per scope too for the as-ran row
sums (``as_ran.METHODS``' ``"asran_obd"``), and the curves per (network, seed, method, scope).
Second derivatives are averaged over a fixed subset: the first
``N_SCORE = 10,000`` images of the post's 55,000-image training split.
"""

from __future__ import annotations

import html
import io
import json
from collections.abc import Sequence
from importlib import resources

import keras
import numpy as np
from matplotlib.figure import Figure

from helpers import cache, checks, data, models, plotting, pruning, saliency
from helpers.post import as_ran, checkpoints, networks, published

#: Network variants of chapter "Training the two networks", then the post's own, with labels.
NETWORKS: dict[str, str] = {
    "plain": "no dropout (lr 1e-4)",
    "dropout": "dropout 0.2 (lr 1e-4)",
    "dropout_lr1e-5": "dropout 0.2 (lr 1e-5, as the post ran it)",
    # The post's own trained networks, one per run (chapter "What the post's code computed"); seed 0 only.
    **{f"post_{name}": f"the post's network for {'OBD' if run.method == 'obd' else 'magnitude'}, "
                         f"{plotting.SCOPE_NAMES[run.scope]}"
                         f"{', dropout' if run.dropout else ''}"
       for name, run in published.RUNS.items()},
}
#: Saliencies offered, with their labels (as in the book's figures).
METHODS: dict[str, str] = {m: plotting.METHOD_NAMES[m] for m in saliency.METHODS + as_ran.METHODS}
SCOPES: dict[str, str] = {"layer": "layer-wise", "global": "all layers"}
#: Second derivatives use the first N_SCORE images of the post's training split.
N_SCORE = 10_000
#: The levels of the accuracy-against-sparsity curve drawn beside the current setting.
CURVE_FRACTIONS = np.round(np.linspace(0.0, 1.0, 101), 2)
#: Highest value of the sparsity slider.
MAX_FRACTION = 0.99
#: The rendered book's explorer has the first PAGE_LEVELS levels of the curve: 0 to 99 percent.
PAGE_LEVELS = 100

_networks: dict[tuple[str, int], keras.Model] = {}
_scores: dict[tuple[str, int, str, str], list[np.ndarray]] = {}
_curves: dict[tuple[str, int, str, str], np.ndarray] = {}
_data: dict[str, tuple[np.ndarray, np.ndarray]] = {}


def seeds(network: str) -> tuple[int, ...]:
    """The training seeds offered for ``network``: the book's three, or 0 alone for the post's own."""
    network = checks.choice(network, "network", NETWORKS)
    return (0,) if network.startswith("post_") else tuple(networks.SEEDS)


def view(network: str, method: str, scope: str, fraction: float, seed: int = 0) -> dict:
    """Prune ``network`` (trained with ``seed``) by ``method`` in ``scope`` and describe the result.

    Returns a dict with ``accuracy`` (on the 10,000 test images), ``sparsity``
    (tensor name -> fraction of it pruned), ``overall_sparsity``, ``masks``
    (aligned with ``model.trainable_weights``), ``curve`` (fractions,
    accuracies of this network, method and scope) and ``figure`` (a
    matplotlib ``Figure``, not attached to pyplot). The model is left as it was.
    """
    network, method, scope, fraction, seed = _check(network, method, scope, fraction, seed)
    model = _network(network, seed)
    scores = _saliency(network, seed, method, scope)
    x_test, y_test = _test_data()
    masks = pruning.prune_masks(scores, fraction, scope)
    accuracy = float(pruning.sweep(model, scores, [fraction], x_test, y_test, scope)[0])
    names = models.tensor_names(model)
    per_tensor = pruning.sparsity(masks)
    overall = 1.0 - sum(float(m.sum()) for m in masks) / sum(m.size for m in masks)
    curve = _curve(network, seed, method, scope)
    result = {
        "network": network, "seed": seed, "method": method, "scope": scope, "fraction": fraction,
        "accuracy": accuracy,
        "sparsity": dict(zip(names, (float(s) for s in per_tensor))),
        "overall_sparsity": overall,
        "masks": masks,
        "curve": (CURVE_FRACTIONS.copy(), curve.copy()),
    }
    result["figure"] = _figure(result, names)
    return result


def build(network: str = "plain", method: str = "obd", scope: str = "global",
          fraction: float = 0.5, seed: int = 0):
    """The explorer as an ipywidgets ``VBox``: controls, a text summary and the figure.

    The box carries ``controls`` (dict of the five control widgets: network,
    seed, method, scope, fraction), ``summary`` (HTML widget), ``image``
    (Image widget, PNG of ``view(...)["figure"]``), ``last`` (the latest
    ``view`` result) and ``refresh`` (the handler every control observes).
    """
    import ipywidgets as widgets

    network, method, scope, fraction, seed = _check(network, method, scope, fraction, seed)
    controls = {
        "network": widgets.Dropdown(options=[(label, key) for key, label in NETWORKS.items()],
                                    value=network, description="network"),
        "seed": widgets.Dropdown(options=seeds(network), value=seed, description="seed"),
        "method": widgets.Dropdown(options=[(label, key) for key, label in METHODS.items()],
                                   value=method, description="saliency"),
        "scope": widgets.ToggleButtons(options=[(label, key) for key, label in SCOPES.items()],
                                       value=scope, description="scope"),
        "fraction": widgets.FloatSlider(value=fraction, min=0.0, max=MAX_FRACTION, step=0.01,
                                        description="pruned", readout_format=".0%",
                                        continuous_update=False),
    }
    summary = widgets.HTML()
    image = widgets.Image(format="png")
    box = widgets.VBox([
        widgets.HBox([controls["network"], controls["seed"]]),
        widgets.HBox([controls["method"], controls["scope"]]),
        controls["fraction"], summary, image,
    ])

    def refresh(change=None) -> None:
        if box.syncing:  # the seed list is being replaced below; its change events are ours
            return
        allowed = seeds(controls["network"].value)
        if tuple(controls["seed"].options) != allowed:
            box.syncing = True
            try:
                controls["seed"].options = allowed
                if controls["seed"].value not in allowed:
                    controls["seed"].value = allowed[0]
            finally:
                box.syncing = False
        try:
            result = view(controls["network"].value, controls["method"].value,
                          controls["scope"].value, controls["fraction"].value,
                          controls["seed"].value)
        except Exception as error:  # show it in the widget instead of losing it in a log
            summary.value = f"<b>error:</b> {html.escape(str(error))}"
            return
        image.value = figure_png(result["figure"])
        summary.value = summary_html(result)
        box.last = result

    for control in controls.values():
        control.observe(refresh, names="value")
    box.controls, box.summary, box.image, box.refresh, box.last = (controls, summary, image,
                                                                   refresh, None)
    box.syncing = False
    refresh()
    return box


def summary_text(result: dict) -> str:
    """A plain-text summary of a ``view`` result in lines of at most 80 characters.

    The setting, then the overall sparsity and the accuracy, then the share of
    each tensor pruned, two layers a line.
    """
    layers: dict[str, list[str]] = {}
    for name, share in result["sparsity"].items():
        layer, weight = name.split(" ", 1)
        layers.setdefault(layer, []).append(f"{weight} {100 * share:.0f}%")
    chunks = [f"{layer} " + ", ".join(parts) for layer, parts in layers.items()]
    lines = [f"{NETWORKS[result['network']]}, seed {result['seed']}",
             f"{METHODS[result['method']]}, {SCOPES[result['scope']]}",
             f"{100 * result['overall_sparsity']:.1f}% of parameters pruned: "
             f"test accuracy {result['accuracy']:.4f}",
             "pruned per tensor:"]
    lines += ["  " + "; ".join(chunks[i:i + 2]) for i in range(0, len(chunks), 2)]
    return "\n".join(lines)


def summary_html(result: dict) -> str:
    """``summary_text`` as HTML, with the network and the accuracy in bold (the widget's text)."""
    lines = [html.escape(line) for line in summary_text(result).split("\n")]
    pruned, accuracy = lines[2].rsplit(": ", 1)
    lines[0], lines[2] = f"<b>{lines[0]}</b>", f"{pruned}: <b>{accuracy}</b>"
    return "<br>".join(lines)


def levels(network: str, method: str, scope: str, seed: int = 0) -> dict[str, np.ndarray]:
    """What ``view`` shows at each of the first ``PAGE_LEVELS`` levels of its curve (0 to 99 %).

    ``accuracy``: ``view(...)["curve"]`` at those levels (the same array, cut);
    ``pruned``: int array (levels, tensors), the pruned parameters of each tensor,
    i.e. ``view(...)["sparsity"]`` times the tensor sizes. The book ships these
    for every setting (``make networks``), so the static explorer of chapter
    "Explore it yourself" shows the same numbers on every machine; a setting it
    does not ship is computed and cached on disk, keyed by the network's weights.
    """
    network, method, scope, _, seed = _check(network, method, scope, 0.0, seed)
    return _entry(network, method, scope, seed).fetch(lambda: _levels_arrays(network, method, scope, seed))


def levels_arrays(network: str, method: str, scope: str, seed: int = 0) -> dict[str, np.ndarray]:
    """``levels`` computed here and now, with neither the shipped results nor the disk cache."""
    network, method, scope, _, seed = _check(network, method, scope, 0.0, seed)
    return _levels_arrays(network, method, scope, seed)


def _levels_arrays(network: str, method: str, scope: str, seed: int) -> dict[str, np.ndarray]:
    fractions = list(CURVE_FRACTIONS[:PAGE_LEVELS])
    return {"accuracy": _curve(network, seed, method, scope)[:PAGE_LEVELS],
            "pruned": pruning.pruned_counts(_saliency(network, seed, method, scope), fractions, scope)}


def settings() -> list[tuple[str, int, str, str]]:
    """Every (network, seed, method, scope) the page's explorer offers: 168 settings."""
    return [(network, seed, method, scope) for network in NETWORKS for seed in seeds(network)
            for method in METHODS for scope in SCOPES]


def levels_key(network: str, method: str, scope: str, seed: int = 0) -> dict:
    """The configuration ``levels`` is shipped and cached under: the setting and the network's weights."""
    network, method, scope, _, seed = _check(network, method, scope, 0.0, seed)
    return _levels_key(network, method, scope, seed)


def _entry(network: str, method: str, scope: str, seed: int) -> cache.Entry:
    """Where ``levels`` of a setting is cached (and shipped)."""
    return cache.Entry("explorer_levels", _levels_key(network, method, scope, seed),
                       cache.code_version(__name__), shipped=True)


def _levels_key(network: str, method: str, scope: str, seed: int) -> dict:
    """The cache key of ``levels``: the setting and the network's weights."""
    return {"network": network, "seed": seed, "method": method, "scope": scope,
            "weights_sha256": cache.checksum(_network(network, seed).get_weights()),
            "n_score": N_SCORE, "levels": PAGE_LEVELS}


def _levels_of_network(network: str, seed: int, method_keys: tuple[str, ...]) -> None:
    """``levels`` of every method and scope of one network (a worker of ``page_data``)."""
    for method in method_keys:
        for scope in SCOPES:
            levels(network, method, scope, seed)


def page_data(network_keys: Sequence[str] = tuple(NETWORKS),
              method_keys: Sequence[str] = tuple(METHODS)) -> dict:
    """The static explorer's data: ``levels`` of every setting, compact (chapter "Explore it yourself").

    JSON-ready: ``accuracy`` maps ``"network/seed/method/scope"`` to the
    accuracy at 0..99 % in units of 1e-4 (ints: quantised to four decimals);
    ``pruned`` maps the same keys to an index into ``tables``, each table being
    per tensor the increments of its pruned count from one percent to the next
    (identical tables are stored once). ``decode_pruned`` undoes this.
    """
    for name, keys, allowed in (("network_keys", network_keys, NETWORKS),
                                ("method_keys", method_keys, METHODS)):
        if isinstance(keys, str) or not keys or any(k not in allowed for k in keys):
            raise ValueError(f"{name} must be a non-empty sequence of {tuple(allowed)}, got {keys!r}")
    # One network per process, side by side: its saliencies serve every method and scope.
    cache.fill(_levels_of_network, [(network, seed, tuple(method_keys)) for network in network_keys
                                    for seed in seeds(network)],
               lambda network, seed, methods: [_entry(network, m, s, seed) for m in methods for s in SCOPES])
    names = sizes = None
    accuracy, pruned, tables, table_index = {}, {}, [], {}
    for network in network_keys:
        for seed in seeds(network):
            model = _network(network, seed)
            if names is None:
                names = models.tensor_names(model)
                sizes = [int(np.prod(w.shape)) for w in model.trainable_weights]
            elif models.tensor_names(model) != names:
                raise ValueError(f"network {network!r} has tensors {models.tensor_names(model)}, not {names}")
            for method in method_keys:
                for scope in SCOPES:
                    key = f"{network}/{seed}/{method}/{scope}"
                    arrays = levels(network, method, scope, seed)
                    accuracy[key] = [int(a) for a in np.round(arrays["accuracy"] * 10_000)]
                    steps = np.diff(arrays["pruned"], axis=0, prepend=0).T
                    table = tuple(tuple(int(v) for v in row) for row in steps)
                    pruned[key] = table_index.setdefault(table, len(tables))
                    if pruned[key] == len(tables):
                        tables.append([list(row) for row in table])
    return {
        "levels": PAGE_LEVELS, "tensors": names, "sizes": sizes,
        "networks": [[k, NETWORKS[k], list(seeds(k))] for k in network_keys],
        "methods": [[k, METHODS[k]] for k in method_keys],
        "scopes": [[k, v] for k, v in SCOPES.items()],
        "accuracy": accuracy, "pruned": pruned, "tables": tables,
    }


def decode_pruned(data: dict, key: str) -> np.ndarray:
    """Pruned counts (levels, tensors) of setting ``key`` in ``page_data`` output, as the page decodes them."""
    if not isinstance(key, str) or key not in data["pruned"]:
        raise ValueError(f"key must be one of the settings of data, got {key!r}")
    return np.cumsum(np.asarray(data["tables"][data["pruned"][key]]), axis=1).T


def page_json(data: dict) -> str:
    """``page_data`` output as the compact JSON the page embeds."""
    return json.dumps(data, separators=(",", ":"))


def page_html(data: dict, element_id: str = "obd-explorer") -> str:
    """The static explorer: ``page_data`` output, ``explorer.css`` and ``explorer.js``, in one HTML block.

    Nothing is fetched: the data sits in a ``<script type="application/json">``
    and the drawing script follows it inline. Needs no Python to run.
    """
    if not isinstance(element_id, str) or not element_id.replace("-", "").isalnum():
        raise ValueError(f"element_id must be letters, digits and hyphens, got {element_id!r}")
    files = resources.files("helpers.chapters")
    style, script = (files.joinpath(name).read_text() for name in ("explorer.css", "explorer.js"))
    payload = page_json(data).replace("</", "<\\/")
    return (f'<div id="{element_id}" class="obd-explorer"><style>{style}</style>'
            f'<script type="application/json" class="obd-explorer-data">{payload}</script>'
            f"<script>{script}</script></div>")


def figure_png(figure: Figure, dpi: int = 80) -> bytes:
    """The figure as PNG bytes (what the widget shows)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def clear() -> None:
    """Forget the networks, saliencies and curves kept in memory."""
    for store in (_networks, _scores, _curves, _data):
        store.clear()


# --- internals -------------------------------------------------------------------------------

def _check(network, method, scope, fraction, seed):
    network = checks.choice(network, "network", NETWORKS)
    method = checks.choice(method, "method", METHODS)
    scope = checks.choice(scope, "scope", SCOPES)
    fraction = checks.fraction(fraction)
    seed = checks.seed(seed)
    if seed not in seeds(network):
        raise ValueError(f"seed must be one of {seeds(network)} for {network}, got {seed!r}")
    return network, method, scope, fraction, seed


def _load_network(network: str, seed: int) -> keras.Model:
    """The trained network (from the shared cache; trains it if the cache is cold), or the post's own."""
    if network.startswith("post_"):
        return checkpoints.load_post_network(network.removeprefix("post_"))
    return networks.post_models(network, seeds=[seed])[0].model


def _network(network: str, seed: int) -> keras.Model:
    if (network, seed) not in _networks:
        _networks[(network, seed)] = _load_network(network, seed)
    return _networks[(network, seed)]


def _score_data() -> tuple[np.ndarray, np.ndarray]:
    if "score" not in _data:
        (x, y), _ = data.load_post_split()
        _data["score"] = (x[:N_SCORE], y[:N_SCORE])
    return _data["score"]


def _test_data() -> tuple[np.ndarray, np.ndarray]:
    if "test" not in _data:
        _data["test"] = data.load_mnist()[1]
    return _data["test"]


def _saliency(network: str, seed: int, method: str, scope: str) -> list[np.ndarray]:
    # Scores that do not depend on the scope are computed once for both.
    key = (network, seed, method, scope if method == "asran_obd" else "global")
    if key not in _scores:
        x, y = _score_data()
        # One batch of all N_SCORE images: each diagonal method then traces its graph once.
        if method in as_ran.METHODS:
            _scores[key] = as_ran.scores(_network(network, seed), method, x, y, scope=key[3],
                                         batch_size=N_SCORE)
        else:
            _scores[key] = saliency.saliency(_network(network, seed), method, x, y,
                                             batch_size=N_SCORE)
    return _scores[key]


def _curve(network: str, seed: int, method: str, scope: str) -> np.ndarray:
    key = (network, seed, method, scope)
    if key not in _curves:
        x_test, y_test = _test_data()
        _curves[key] = pruning.sweep(_network(network, seed), _saliency(*key), CURVE_FRACTIONS,
                                     x_test, y_test, scope)
    return _curves[key]


def _figure(result: dict, names: Sequence[str]) -> Figure:
    figure = Figure(figsize=(8.5, 6.4), layout="constrained")
    top, bottom = figure.subfigures(2, 1, height_ratios=[2.3, 1.0])
    ax_curve, ax_bars = top.subplots(1, 2)
    mask_axes = bottom.subplots(1, 10)
    bottom.suptitle("input masks of the first ten hidden1 units (white: weight kept, black: pruned)",
                    fontsize=9)
    fractions, accuracies = result["curve"]
    network, method, scope = result["network"], result["method"], result["scope"]
    plotting.curve_with_band(ax_curve, fractions, accuracies, method, scope,
                             f"seed {result['seed']}")
    ax_curve.plot([100 * result["fraction"]], [result["accuracy"]], "o", color="black",
                  label=f"this setting: {result['accuracy']:.4f}")
    plotting.accuracy_axes(ax_curve, "accuracy against sparsity")
    plotting.layer_sparsity_bars(ax_bars, {plotting.SCOPE_NAMES[scope]: list(result["sparsity"].values())},
                                 list(names))
    ax_bars.set_ylim(0, 100)
    ax_bars.set_title("share of each tensor pruned")
    for tick in ax_bars.get_xticklabels():
        tick.set(rotation=55, ha="right", rotation_mode="anchor")
    plotting.first_layer_masks(mask_axes, result["masks"][0])
    top.suptitle(f"{NETWORKS[network]}, seed {result['seed']}: {METHODS[method]}, "
                 f"{SCOPES[scope]}, {100 * result['fraction']:.0f}% pruned", fontsize=10)
    return figure
