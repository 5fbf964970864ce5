"""Measurements behind Part III, the post's four observations retested.

One module for the four chapters of Part III:

- "Magnitude pruning collapses" (09): :func:`ranking_scores`, the five
  rankings the chapter compares (``RANKINGS``); :func:`layer_activity` and
  :func:`activity_after`, what a pruned network's hidden ReLU layers and
  logits do on a set of images; :func:`accuracy_with_part`, the accuracy with
  only some tensors' deletions applied;
- "All-layer beats layer-wise" (10): :func:`tensor_names`,
  :func:`normalised_magnitude` (|w| over the spread of its own tensor),
  :func:`transplant_allocation` (the per-tensor counts of one global ranking
  with the within-tensor order of another) and :func:`allocation_grid`, every
  allocation crossed with every ranking; :func:`loss_increase` and
  :func:`tensor_loss_changes`, the loss change a deletion set predicts and
  causes, tensor by tensor;
- "Dropout and the diagonal" (11): :func:`taylor_terms`, the terms of the
  second-order expansion of the loss for given deletion sets (``taylor.expand_many``);
  :func:`deletion_sets` and :func:`q_over_d`, the off-diagonal share of the
  quadratic form on the same sets in different networks; :func:`random_scores`,
  :func:`set_terms` and :func:`tempered`, the chapter's measures and its
  confidence-matched control, gathered by the cached :func:`mechanism_terms`
  (one training seed) and :func:`post_mechanism_terms` (the post's networks);
- "Dropout under heavy pruning" (12): :func:`crossing`, where one accuracy
  curve with a band over seeds overtakes another for good, and
  :func:`crossing_rule` with :func:`crosses`, the chapter's rule built on it;
- chapters 11 and 12: :func:`as_ran_obd_sweep`, the post's OBD loop as it
  ran (``as_ran.obd_as_ran``) on any network variant, over seeds.

Every function validates its arguments before any work and raises
``TypeError`` or ``ValueError`` naming the argument.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import keras
import numpy as np
from scipy import optimize

from helpers import cache, checks, data, hessian, metrics, network, pruning, saliency, taylor, training
from helpers.post import as_ran, checkpoints, described, networks


# --------------------------------------------------------------------------- names and scales

def tensor_names(model: keras.Model) -> list[str]:
    """Short names of ``model.trainable_weights``: ``W1, b1, W2, b2, ...`` (chapter 10)."""
    chain = network.dense_chain(model)
    names = []
    for i, has_bias in enumerate(chain.layout, start=1):
        names.append(f"W{i}")
        if has_bias:
            names.append(f"b{i}")
    return names


def normalised_magnitude(model: keras.Model) -> list[np.ndarray]:
    """``|u_k| / std(tensor of u_k)`` for every parameter (chapter 10).

    Ranking these globally removes the differences in weight scale between
    tensors while keeping each tensor's own order by magnitude. A tensor whose
    entries are all equal (standard deviation zero) is divided by 1 instead.
    """
    weights = network.dense_chain(model).weights()
    out = []
    for w in weights:
        spread = float(np.std(w))
        out.append(np.abs(w) / (spread if spread > 0 else 1.0))
    return out


def transplant_allocation(allocation_scores: Sequence[np.ndarray],
                          ranking_scores: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Scores whose global ranking prunes as many parameters from each tensor as
    ``allocation_scores`` does, choosing them inside each tensor in the order of
    ``ranking_scores`` (chapter 10).

    The global pruning order of ``allocation_scores`` (ascending, ties by
    position, as ``pruning.prune_masks`` ranks them) hands every tensor a set
    of slots 0, 1, 2, ...; inside each tensor those slots are given out again
    in the ascending order of ``ranking_scores`` (ties by position). The
    result holds the slot numbers, all distinct, so a global ranking of it
    takes from each tensor, at every fraction, exactly the count that a
    global ranking of ``allocation_scores`` takes, and inside the tensor the
    parameters ``ranking_scores`` ranks lowest.
    """
    allocation = pruning.check_scores(allocation_scores, name="allocation_scores")
    ranking = pruning.check_scores(ranking_scores, name="ranking_scores")
    if [a.shape for a in allocation] != [r.shape for r in ranking]:
        raise ValueError("allocation_scores and ranking_scores must have the same shapes, got "
                         f"{[a.shape for a in allocation]} and {[r.shape for r in ranking]}")
    flat = np.concatenate([a.ravel().astype(np.float64) for a in allocation])
    slots = np.empty(flat.size, np.float64)
    slots[np.argsort(flat, kind="stable")] = np.arange(flat.size, dtype=np.float64)
    out, start = [], 0
    for r in ranking:
        mine = np.sort(slots[start:start + r.size])
        start += r.size
        new = np.empty(r.size, np.float64)
        new[np.argsort(r.ravel(), kind="stable")] = mine
        out.append(new.reshape(r.shape))
    return out


#: The allocations of chapter 10's transplant grid (rows of :func:`allocation_grid`):
#: uniform (layer-wise), by weight scale (global ``|w|``), by sensitivity (global OBD).
ALLOCATIONS: tuple[str, ...] = ("uniform", "|w|", "OBD")
#: The rankings inside each tensor (columns of :func:`allocation_grid`), keys of its ``scores``.
INSIDE_RANKINGS: tuple[str, ...] = ("magnitude", "obd")


def allocation_grid(model: keras.Model, scores: dict[str, Sequence[np.ndarray]],
                    fractions: Sequence[float], x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Mean accuracy over ``fractions`` of every allocation with every ranking, chapter 10.

    ``scores``: ``{"magnitude": |w| scores, "obd": OBD saliencies}`` of ``model``.
    Returns shape ``(len(ALLOCATIONS), len(INSIDE_RANKINGS))``: entry ``(i, j)`` prunes
    with the per-tensor counts of allocation ``ALLOCATIONS[i]`` ("uniform": the same
    share of every tensor, a layer-wise ranking; "|w|" and "OBD": the counts of a
    global ranking by that score, :func:`transplant_allocation`), choosing inside each
    tensor by ``INSIDE_RANKINGS[j]``, and averages the accuracy on ``(x, y)`` over the
    levels of ``fractions``.
    """
    chain = network.dense_chain(model)
    x, y = network.check_xy(x, y, chain.input_width, chain.n_classes)
    fractions = checks.fractions(fractions)
    if not isinstance(scores, dict) or set(scores) != set(INSIDE_RANKINGS):
        raise ValueError(f"scores must be a dict with the keys {INSIDE_RANKINGS}")
    weights = chain.weights()
    checked = {m: _like_weights(weights, scores[m], f"scores[{m!r}]") for m in INSIDE_RANKINGS}
    allocation = {"|w|": checked["magnitude"], "OBD": checked["obd"]}
    grid = np.zeros((len(ALLOCATIONS), len(INSIDE_RANKINGS)))
    for j, rank in enumerate(INSIDE_RANKINGS):
        r = checked[rank]
        for i, a in enumerate(ALLOCATIONS):
            if a == "uniform":
                mixed, scope = r, "layer"
            else:
                mixed, scope = transplant_allocation(allocation[a], r), "global"
            grid[i, j] = pruning.sweep(model, mixed, fractions, x, y, scope).mean()
    return grid


def loss_increase(model: keras.Model, masks: Sequence[np.ndarray], x: np.ndarray, y: np.ndarray,
                  tensor: int | None = None) -> float:
    """Increase of the mean loss on ``(x, y)`` from the deletions of ``masks`` (chapter 10).

    ``tensor``: apply only the deletions of that tensor (an index into
    ``model.trainable_weights``). The model's weights are restored afterwards.
    """
    chain = network.dense_chain(model)
    x, y = network.check_xy(x, y, chain.input_width, chain.n_classes)
    masks = pruning.check_masks(masks, chain.weights(), "masks")
    if tensor is not None:
        tensor = checks.integer(tensor, "tensor", low=0)
        if not 0 <= tensor < len(masks):
            raise ValueError(f"tensor must be in [0, {len(masks)}), got {tensor}")
        masks = [m if k == tensor else np.ones_like(m) for k, m in enumerate(masks)]
    e0 = metrics.mean_loss(model, x, y)
    with pruning.pruned(model, masks):
        return metrics.mean_loss(model, x, y) - e0


def tensor_loss_changes(model: keras.Model, saliencies: Sequence[np.ndarray], fraction: float,
                        scope: str, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Predicted and measured loss increase of one OBD deletion set, tensor by tensor (chapter 10).

    The set prunes ``fraction`` of ``model``'s parameters by ``saliencies`` in
    ``scope``. Returns ``(predicted, measured)``, each of length ``n_tensors + 1``:
    entry ``k`` for the deletions of tensor ``k`` alone, the last for all of them.
    Predicted is the sum of the saliencies of the deleted parameters (the last
    entry: the sum over tensors); measured is :func:`loss_increase` on ``(x, y)``.
    """
    chain = network.dense_chain(model)
    x, y = network.check_xy(x, y, chain.input_width, chain.n_classes)
    saliencies = _like_weights(chain.weights(), saliencies, "saliencies")
    masks = pruning.prune_masks(saliencies, fraction, scope)
    predicted = [float(np.sum(s * (1 - m))) for s, m in zip(saliencies, masks)]
    measured = [loss_increase(model, masks, x, y, k) for k in range(len(masks))]
    return (np.array(predicted + [sum(predicted)]),
            np.array(measured + [loss_increase(model, masks, x, y)]))


# --------------------------------------------------------------------------- rankings

#: The five rankings of chapter 09 (:func:`ranking_scores`), each pruning its lowest scores first.
RANKINGS: tuple[str, ...] = ("smallest |w|", "most negative", "most positive", "largest |w|", "random")


def ranking_scores(weights: Sequence[np.ndarray], ranking: str,
                   rng: np.random.Generator | None = None) -> list[np.ndarray]:
    """Scores of ``weights`` under one of chapter 09's rankings, lowest pruned first.

    ``ranking``, one of ``RANKINGS``: "smallest |w|" scores ``|u_k|`` (magnitude
    pruning as the post describes it), "most negative" ``u_k`` (as its scripts
    ran), "most positive" ``-u_k``, "largest |w|" ``-|u_k|``, and "random"
    uniform noise drawn from ``rng``, which it needs (and advances); the other
    rankings ignore ``rng``.
    """
    weights = pruning.check_scores(weights, name="weights")
    ranking = checks.choice(ranking, "ranking", RANKINGS)
    if ranking == "random":
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy Generator for the random ranking, got {rng!r}")
        return [rng.random(w.shape) for w in weights]
    rules = {"smallest |w|": np.abs, "most negative": lambda w: w.copy(),
             "most positive": np.negative, "largest |w|": lambda w: -np.abs(w)}
    return [rules[ranking](w) for w in weights]


# --------------------------------------------------------------------------- activations

@dataclass(frozen=True)
class LayerActivity:
    """What a (pruned) network does on a set of images (chapter 09).

    Per hidden layer (arrays of length ``n_hidden``): the mean ReLU output over
    images and units, the share of (image, unit) pairs whose pre-activation is
    positive, the number of units never active on any image ("dead") and the
    number active on every image ("always on"). Then the logits: the mean
    logit of each class over the images, the class the network predicts most
    often and the share of images it goes to, and the accuracy.
    """

    mean_activation: np.ndarray
    active_fraction: np.ndarray
    dead_units: np.ndarray
    always_on_units: np.ndarray
    mean_logits: np.ndarray
    majority_class: int
    majority_share: float
    accuracy: float


def pre_activations(model: keras.Model, x: np.ndarray,
                    masks: Sequence[np.ndarray] | None = None) -> list[np.ndarray]:
    """The pre-activations ``z`` of every Dense layer (the last are the logits), chapter 09.

    ``masks`` (0/1, aligned with ``model.trainable_weights``) prune the
    network first; the model itself is not modified. Computed in float64.
    """
    chain = network.dense_chain(model)
    x = network.check_x(x, chain.input_width)
    kernels, biases = _masked_layers(chain, masks)
    inputs, _, logits = network.forward_trace(x.astype(np.float64), kernels, biases)
    # A hidden layer's pre-activation is the logits of that layer alone, applied to its input.
    hidden = [network.forward_trace(a, [k], [b])[2]
              for a, k, b in zip(inputs[:-1], kernels[:-1], biases[:-1])]
    return [z.numpy() for z in hidden + [logits]]


def layer_activity(model: keras.Model, x: np.ndarray, y: np.ndarray,
                   masks: Sequence[np.ndarray] | None = None) -> LayerActivity:
    """Activation statistics of every hidden layer and the logits on ``x`` (chapter 09)."""
    chain = network.dense_chain(model)
    x, y = network.check_xy(x, y, chain.input_width, chain.n_classes)
    inputs, masks, logits = network.forward_trace(x.astype(np.float64),
                                                  *_masked_layers(chain, masks))
    on = [m.numpy() > 0 for m in masks]
    logits = logits.numpy()
    predicted = np.argmax(logits, axis=1)
    counts = np.bincount(predicted, minlength=chain.n_classes)
    return LayerActivity(
        mean_activation=np.array([a.numpy().mean() for a in inputs[1:]]),
        active_fraction=np.array([o.mean() for o in on]),
        dead_units=np.array([int(np.sum(~o.any(axis=0))) for o in on]),
        always_on_units=np.array([int(np.sum(o.all(axis=0))) for o in on]),
        mean_logits=logits.mean(axis=0),
        majority_class=int(np.argmax(counts)),
        majority_share=float(counts.max() / len(x)),
        accuracy=float(np.mean(predicted == y)),
    )


def activity_after(model: keras.Model, ranking: str, fraction: float, x: np.ndarray,
                   y: np.ndarray, rng: np.random.Generator | None = None) -> LayerActivity:
    """:func:`layer_activity` on ``(x, y)`` after pruning ``fraction`` of ``model``'s
    parameters over all layers by ``ranking`` (:func:`ranking_scores`), chapter 09.

    The model itself is not modified.
    """
    weights = network.dense_chain(model).weights()
    masks = pruning.prune_masks(ranking_scores(weights, ranking, rng), fraction)
    return layer_activity(model, x, y, masks)


def accuracy_with_part(model: keras.Model, masks: Sequence[np.ndarray], tensors: Sequence[int],
                       x: np.ndarray, y: np.ndarray) -> float:
    """Accuracy on ``(x, y)`` with only the deletions of ``masks`` that lie in ``tensors``
    (indices into ``model.trainable_weights``) applied, chapter 09.

    Shows which part of a deletion set does the damage. The model is not modified.
    """
    weights = network.dense_chain(model).weights()
    masks = pruning.check_masks(masks, weights, "masks")
    if isinstance(tensors, (str, bytes)) or not isinstance(tensors, Sequence):
        raise TypeError(f"tensors must be a sequence of tensor indices, got {tensors!r}")
    keep = {checks.integer(i, "tensors", low=0) for i in tensors}
    if not keep <= set(range(len(masks))):
        raise ValueError(f"tensors must be indices in [0, {len(masks)}), got {list(tensors)}")
    part = [m if i in keep else np.ones_like(m) for i, m in enumerate(masks)]
    return layer_activity(model, x, y, part).accuracy


# --------------------------------------------------------------------------- Taylor terms

@dataclass(frozen=True)
class TaylorTerms:
    """The terms of ``taylor.Expansion`` for several deletion sets, as arrays (chapter 11).

    One entry per deletion set, with ``du = -u`` on the deleted parameters and
    0 elsewhere, and ``E`` the mean cross-entropy on the given images. The
    names and meanings are those of ``taylor.Expansion``: ``first_order`` is
    ``g.du``; ``diagonal`` is ``1/2 sum_k h_kk du_k^2``, the sum of the OBD
    saliencies ``s_k = h_kk u_k^2 / 2`` of the deleted parameters (chapter 11's
    ``D / 2``); ``cross`` is ``1/2 sum_{j != k} h_jk du_j du_k``; ``quadratic``
    is ``1/2 du^T H du`` (chapter 11's ``Q / 2``, so ``quadratic / diagonal``
    is its ``Q / D``); ``second_order``, ``remainder`` and ``actual`` as there.
    """

    first_order: np.ndarray
    diagonal: np.ndarray
    cross: np.ndarray
    remainder: np.ndarray
    quadratic: np.ndarray
    second_order: np.ndarray
    actual: np.ndarray


def taylor_terms(model: keras.Model, x: np.ndarray, y: np.ndarray,
                 deletion_masks: Sequence[Sequence[np.ndarray]],
                 batch_size: int = 2048) -> TaylorTerms:
    """The Taylor terms of deleting each set, ``taylor.expand_many`` (chapter 11).

    ``deletion_masks``: one list of 0/1 masks per deletion set (0 = deleted),
    aligned with ``model.trainable_weights``, e.g. from
    ``pruning.prune_masks``. The exact Hessian diagonal is computed once on
    ``(x, y)``; every other term exactly, in float64. The model's weights are
    unchanged.
    """
    chain = network.dense_chain(model)
    x, y = network.check_xy(x, y, chain.input_width, chain.n_classes)
    batch_size = network.check_batch_size(batch_size)
    weights = chain.weights()
    if isinstance(deletion_masks, (str, bytes, np.ndarray)) or \
            not isinstance(deletion_masks, Sequence) or len(deletion_masks) == 0:
        raise TypeError("deletion_masks must be a non-empty list of mask lists (one per deletion set)")
    checked = [pruning.check_masks(m, weights, f"deletion_masks[{i}]") for i, m in enumerate(deletion_masks)]
    diagonal = hessian.hessian_diagonal(model, x, y, "exact", batch_size)
    expansions = taylor.expand_many(model, x, y, [taylor.deletion(model, m) for m in checked],
                                    diagonal=diagonal, batch_size=batch_size)
    rows = [e.as_dict() for e in expansions]
    return TaylorTerms(**{f.name: np.array([r[f.name] for r in rows])
                          for f in fields(TaylorTerms)})


def deletion_sets(rankings: dict[str, Sequence[Sequence[np.ndarray]]], fractions: Sequence[float]
                  ) -> dict[str, list[list[list[np.ndarray]]]]:
    """The global deletion sets of several rankings at several fractions (chapter 11).

    ``rankings``: kind -> list of score lists (one per draw, e.g. two random
    draws). Returns kind -> per draw, the ``pruning.prune_masks`` masks at each
    of ``fractions``: the sets to apply unchanged to every network compared.
    """
    if not isinstance(rankings, dict) or not rankings:
        raise TypeError("rankings must be a non-empty dict: kind -> list of score lists")
    fractions = checks.fractions(fractions)
    out = {}
    for kind, draws in rankings.items():
        if isinstance(draws, (str, bytes, np.ndarray)) or not isinstance(draws, Sequence) or not draws:
            raise TypeError(f"rankings[{kind!r}] must be a non-empty list of score lists")
        out[kind] = [[pruning.prune_masks(scores, f) for f in fractions] for scores in draws]
    return out


def q_over_d(model: keras.Model, x: np.ndarray, y: np.ndarray,
             sets: dict[str, Sequence[Sequence[Sequence[np.ndarray]]]]) -> dict[str, np.ndarray]:
    """``Q / D`` of ``model`` on every deletion set of ``sets`` (chapter 11).

    ``sets`` as :func:`deletion_sets` returns it. ``Q / D`` is
    ``quadratic / diagonal`` of :func:`taylor_terms` on ``(x, y)``: the whole
    quadratic form of the deletion over its diagonal part (1: the cross terms
    cancel). Returns kind -> array of shape ``(draws, fractions)``.
    """
    t = _terms_of_sets(model, x, y, sets)
    return _by_kind(sets, t.quadratic / t.diagonal)


# --------------------------------------------------------------------------- chapter 11's mechanism

#: Chapter 11's deletion levels: three where the post's dropout network collapsed as its
#: scripts ran (1-5 %), three heavier ones (20-60 %).
MECHANISM_FRACTIONS: tuple[float, ...] = (0.01, 0.02, 0.05, 0.2, 0.4, 0.6)
#: The kinds of deletion sets, each applied unchanged to every network compared.
MECHANISM_KINDS: tuple[str, ...] = ("plain ranking", "dropout ranking", "random")
#: The networks of one seed: the three variants, and the plain one tempered to the dropout one's loss.
MECHANISM_NETWORKS: tuple[str, ...] = ("plain", "dropout", "dropout_lr1e-5", "tempered plain")
#: What :func:`set_terms` measures on each set (chapter 11's names).
MECHANISM_MEASURES: tuple[str, ...] = ("Q/D", "D/2", "diagonal miss", "quadratic miss")
#: The training images the mechanism is measured on (the first of the post's split).
MECHANISM_IMAGES = 10_000
_RANDOM_DRAWS, _RANDOM_SEED = 2, 0


def random_scores(weights: Sequence[np.ndarray], draws: int = _RANDOM_DRAWS,
                  seed: int = _RANDOM_SEED) -> list[list[np.ndarray]]:
    """``draws`` lists of uniform random scores shaped like ``weights``, from
    ``np.random.default_rng(seed)`` (chapter 11's random deletion sets)."""
    if isinstance(weights, (str, bytes, np.ndarray)) or not isinstance(weights, Sequence) or not weights:
        raise TypeError("weights must be a non-empty list of arrays")
    draws = checks.integer(draws, "draws", 1)
    seed = checks.seed(seed)
    rng = np.random.default_rng(seed)
    shapes = [np.shape(w) for w in weights]
    return [[rng.random(s) for s in shapes] for _ in range(draws)]


def set_terms(model: keras.Model, x: np.ndarray, y: np.ndarray,
              sets: dict[str, Sequence[Sequence[Sequence[np.ndarray]]]]
              ) -> dict[str, dict[str, np.ndarray]]:
    """Chapter 11's measures of ``model`` on every deletion set of ``sets``.

    ``sets`` as :func:`deletion_sets` returns it. Returns kind -> measure ->
    array ``(draws, fractions)`` for the measures of ``MECHANISM_MEASURES``:
    ``Q/D`` (NaN where ``D = 0``), ``D/2`` (the summed OBD saliencies), and the
    misses ``|actual - (g.du + D/2)| / |actual|`` and
    ``|actual - (g.du + Q/2)| / |actual|`` of the diagonal and of the full
    quadratic prediction (:func:`taylor_terms`).
    """
    t = _terms_of_sets(model, x, y, sets)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = {"Q/D": np.where(t.diagonal > 0, t.quadratic / t.diagonal, np.nan), "D/2": t.diagonal,
               "diagonal miss": np.abs(t.actual - t.first_order - t.diagonal) / np.abs(t.actual),
               "quadratic miss": np.abs(t.actual - t.second_order) / np.abs(t.actual)}
    split = {k: _by_kind(sets, a) for k, a in out.items()}
    return {kind: {k: split[k][kind] for k in out} for kind in sets}


def tempered(model: keras.Model, target_loss: float, x: np.ndarray, y: np.ndarray
             ) -> tuple[keras.Model, float]:
    """A copy of ``model`` whose last layer is scaled by ``c`` so that its mean loss on
    ``(x, y)`` is ``target_loss``, and ``c`` (chapter 11's confidence-matched control).

    ``c`` is found in ``[0.01, 1]`` by Brent's method (``xtol`` 1e-6); the
    model's own weights are unchanged.
    """
    chain = network.dense_chain(model)
    x, y = network.check_xy(x, y, chain.input_width, chain.n_classes)
    target_loss = checks.positive(target_loss, "target_loss")
    w = model.get_weights()

    def scaled(c):
        return w[:-2] + [c * w[-2], c * w[-1]]

    def loss_with(weights):
        saved = model.get_weights()
        model.set_weights(weights)
        try:
            return metrics.mean_loss(model, x, y)
        finally:
            model.set_weights(saved)

    c = optimize.brentq(lambda c: loss_with(scaled(c)) - target_loss, 0.01, 1.0, xtol=1e-6)
    copy = keras.models.clone_model(model)
    copy.set_weights(scaled(c))
    return copy, float(c)


def _pack(terms: dict[str, dict[str, dict[str, np.ndarray]]]) -> dict[str, np.ndarray]:
    return {f"{net}|{kind}|{m}": a for net, d in terms.items() for kind, r in d.items()
            for m, a in r.items()}


def _unpack(arrays: dict[str, np.ndarray]) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    out: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    for name, a in arrays.items():
        if name.count("|") == 2:
            net, kind, m = name.split("|")
            out.setdefault(net, {}).setdefault(kind, {})[m] = a
    return out


def mechanism_terms(seed: int) -> tuple[dict[str, dict[str, dict[str, np.ndarray]]], float]:
    """Chapter 11's mechanism on one training seed: (network -> kind -> measure -> array, scale).

    The deletion sets (``MECHANISM_KINDS`` at ``MECHANISM_FRACTIONS``) are those
    of the seed's plain and dropout (lr 1e-4) networks' exact-diagonal OBD
    rankings over all layers, and two random draws (:func:`random_scores`);
    each is applied to the seed's three variants and to its plain network
    tempered (:func:`tempered`) to the dropout network's mean loss, and
    measured by :func:`set_terms` on the first ``MECHANISM_IMAGES`` images of
    the post's split. ``scale`` is the tempered network's last-layer factor.
    Cached on disk.
    """
    seed = checks.seed(seed)
    configs = {v: networks.post_config(v, seed) for v in networks.VARIANTS}

    def build():
        (x_pool, y_pool), _ = data.load_post_split()
        x_sub, y_sub = x_pool[:MECHANISM_IMAGES], y_pool[:MECHANISM_IMAGES]
        models = {v: training.train_model(c).model for v, c in configs.items()}
        sets = deletion_sets({"plain ranking": [described.described_scores("obd_all_layers_prune", seed,
                                                                           variant="plain")],
                              "dropout ranking": [described.described_scores("obd_all_layers_prune", seed,
                                                                             variant="dropout")],
                              "random": random_scores(models["plain"].get_weights())},
                             MECHANISM_FRACTIONS)
        models["tempered plain"], c = tempered(models["plain"],
                                               metrics.mean_loss(models["dropout"], x_sub, y_sub),
                                               x_sub, y_sub)
        out = _pack({name: set_terms(m, x_sub, y_sub, sets) for name, m in models.items()})
        out["scale"] = np.array([c])
        return out

    key = {"seed": seed, "models": {v: c.to_dict() for v, c in configs.items()},
           "fractions": list(MECHANISM_FRACTIONS), "images": MECHANISM_IMAGES,
           "random": [_RANDOM_DRAWS, _RANDOM_SEED]}
    arrays = cache.fetch("observations_mechanism", key, build, version=cache.code_version(__name__))
    return _unpack(arrays), float(arrays["scale"][0])


def post_mechanism_terms() -> dict[str, dict[str, dict[str, np.ndarray]]]:
    """Chapter 11's mechanism on the post's five networks: run -> kind -> measure -> array.

    The same measures as :func:`mechanism_terms`, on the deletion sets of the
    post's own plain and dropout all-layer OBD networks' exact-diagonal OBD
    rankings (over the post's 55,000 training images) and the same two random
    draws, applied to each of the five checkpoints. Cached on disk.
    """
    def build():
        (x_pool, y_pool), _ = data.load_post_split()
        x_sub, y_sub = x_pool[:MECHANISM_IMAGES], y_pool[:MECHANISM_IMAGES]
        nets = {run: checkpoints.load_post_network(run) for run in checkpoints.CHECKPOINTS}
        plain, dropout = (saliency.saliency(nets[run], "obd", x_pool, y_pool)
                          for run in ("obd_all_layers_prune", "obd_all_layers_dropout"))
        sets = deletion_sets({"plain ranking": [plain], "dropout ranking": [dropout],
                              "random": random_scores(nets["obd_all_layers_prune"].get_weights())},
                             MECHANISM_FRACTIONS)
        return _pack({run: set_terms(m, x_sub, y_sub, sets) for run, m in nets.items()})

    key = {"networks": list(checkpoints.CHECKPOINTS), "fractions": list(MECHANISM_FRACTIONS),
           "images": MECHANISM_IMAGES, "random": [_RANDOM_DRAWS, _RANDOM_SEED]}
    return _unpack(cache.fetch("observations_post_mechanism", key, build,
                               version=cache.code_version(__name__)))


# --------------------------------------------------------------------------- crossings

@dataclass(frozen=True)
class Crossing:
    """Where curve ``a`` overtakes curve ``b`` for good (chapter 12).

    ``mean_from``: the smallest fraction from which the mean of ``a`` over
    seeds is above the mean of ``b`` by more than ``margin`` at that and every
    larger fraction of the grid (``None`` if not even at the last one).
    ``band_from``: the same with the whole band of ``a`` above the whole band
    of ``b`` (min over seeds of ``a`` above max over seeds of ``b``, plus
    ``margin``). ``interpolated``: the fraction where the
    straight line through the mean lead of ``a`` at the grid point before
    ``mean_from`` and at ``mean_from`` reaches ``margin`` (``mean_from`` itself
    if ``a`` leads everywhere). ``mean_changes``: how many times the sign of the mean
    difference changes along the grid. ``lead_after``: the smallest mean lead
    of ``a`` at or beyond ``mean_from`` (``nan`` without a crossing).
    """

    mean_from: float | None
    band_from: float | None
    interpolated: float | None
    mean_changes: int
    lead_after: float


def crossing(fractions: Sequence[float], acc_a: np.ndarray, acc_b: np.ndarray,
             margin: float = 0.0) -> Crossing:
    """Locate where ``acc_a`` overtakes ``acc_b`` for good (chapter 12).

    ``acc_a`` and ``acc_b``: accuracies of shape ``(seeds, len(fractions))``
    (a 1-D array counts as one seed); ``fractions`` strictly increasing.
    ``margin`` (>= 0): how far above counts as above, e.g. 0.02 so that two
    curves both at chance level, differing by noise, do not cross.
    """
    f = np.array(checks.fractions(fractions, order="increasing", at_least=2))
    a = _check_curves(acc_a, len(f), "acc_a")
    b = _check_curves(acc_b, len(f), "acc_b")
    margin = checks.rate(margin, "margin")
    diff = a.mean(axis=0) - b.mean(axis=0)
    above_mean = diff > margin
    above_band = a.min(axis=0) > b.max(axis=0) + margin

    def start_of_final_run(flags: np.ndarray) -> int | None:
        if not flags[-1]:
            return None
        i = len(flags) - 1
        while i > 0 and flags[i - 1]:
            i -= 1
        return i

    i_mean = start_of_final_run(above_mean)
    i_band = start_of_final_run(above_band)
    signs = np.sign(diff)
    signs = signs[signs != 0]
    changes = int(np.sum(signs[1:] != signs[:-1])) if len(signs) > 1 else 0
    if i_mean is None:
        return Crossing(None, None if i_band is None else float(f[i_band]), None, changes,
                        float("nan"))
    if i_mean == 0:
        interpolated = float(f[0])
    else:
        d0, d1 = diff[i_mean - 1] - margin, diff[i_mean] - margin  # d0 <= 0 < d1
        interpolated = float(f[i_mean - 1] + (f[i_mean] - f[i_mean - 1]) * (-d0) / (d1 - d0))
    return Crossing(float(f[i_mean]), None if i_band is None else float(f[i_band]),
                    interpolated, changes, float(diff[i_mean:].min()))


def crosses(c: Crossing) -> bool:
    """Chapter 12's rule: ``a`` crosses ``b`` if it leads by more than the margin to the grid's
    end from some level above 0 (``mean_from > 0``); a curve ahead from 0 on leads, it
    does not cross."""
    if not isinstance(c, Crossing):
        raise TypeError(f"c must be a Crossing, got {type(c).__name__}")
    return c.mean_from is not None and c.mean_from > 0


def crossing_rule(fractions: Sequence[float], acc_a: np.ndarray, acc_b: np.ndarray,
                  margin: float) -> tuple[Crossing, tuple[float, float] | None]:
    """:func:`crossing` of ``acc_a`` over ``acc_b``, and how high both are once it has happened
    (chapter 12).

    Returns ``(crossing, heights)``; ``heights`` is ``None`` unless
    :func:`crosses` holds, else the highest mean over seeds of ``a`` and of ``b``
    at ``mean_from`` and every later level: a lead between two curves near
    chance says little.
    """
    c = crossing(fractions, acc_a, acc_b, margin=margin)
    if not crosses(c):
        return c, None
    f = np.asarray(fractions, dtype=np.float64)
    after = f >= c.mean_from - 1e-9
    a, b = np.atleast_2d(acc_a), np.atleast_2d(acc_b)
    return c, (float(a[:, after].mean(0).max()), float(b[:, after].mean(0).max()))


# --------------------------------------------------------------------------- as-ran OBD

#: The published OBD run that used each (variant, scope), whose cached curve
#: ``as_ran.as_ran_sweep`` already computes.
_PUBLISHED_OBD_RUNS = {
    ("plain", "global"): "obd_all_layers_prune",
    ("plain", "layer"): "obd_layerwise_prune",
    ("dropout_lr1e-5", "global"): "obd_all_layers_dropout",
}


def as_ran_obd_sweep(variant: str, fractions: Sequence[float], scope: str = "global",
                     seeds: Sequence[int] = networks.SEEDS) -> np.ndarray:
    """The post's OBD loop as its scripts ran it, on any network variant (chapters 11 and 12).

    Shape ``(len(seeds), len(fractions))``. Exactly the computation of
    ``as_ran.as_ran_sweep`` (TensorFlow 0.x row sums on a fresh 64-image
    batch of the 55,000-image split per step, drawn with the training seed,
    ``top_k`` ranking, the faulty restore), for networks the post never
    pruned this way too, e.g. ``variant="dropout"`` (dropout at the fair
    learning rate 1e-4). Where the post did run it (``_PUBLISHED_OBD_RUNS``)
    this simply returns ``as_ran_sweep`` of that run. Cached on disk.
    """
    variant = checks.choice(variant, "variant", networks.VARIANTS)
    scope = pruning.check_scope(scope)
    fractions = checks.fractions(fractions)
    seeds = checks.seeds(seeds)
    run = _PUBLISHED_OBD_RUNS.get((variant, scope))
    if run is not None:
        return as_ran.as_ran_sweep(run, fractions, seeds)
    rows = []
    for seed in seeds:
        config = networks.post_config(variant, seed)

        def build(config=config, seed=seed):
            model = training.train_model(config).model
            (x_pool, y_pool), _ = data.load_post_split()
            _, (x_test, y_test) = data.load_mnist()
            acc, tied = as_ran.obd_as_ran(model, fractions, scope, x_pool, y_pool,
                                          x_test, y_test, seed=seed)
            return {"accuracy": acc, "tied": tied}

        key = {"variant": variant, "scope": scope, "model": config.to_dict(),
               "fractions": fractions, "kernels": as_ran.kernel_setting()}
        rows.append(cache.fetch("observations_asran_obd", key, build,
                                version=cache.code_version(__name__))["accuracy"])
    return np.stack(rows)


# --------------------------------------------------------------------------- internals

def _terms_of_sets(model: keras.Model, x: np.ndarray, y: np.ndarray,
                   sets: object) -> TaylorTerms:
    """:func:`taylor_terms` of every set of ``sets`` (as :func:`deletion_sets` returns it), in order."""
    if not isinstance(sets, dict) or not sets:
        raise TypeError("sets must be a non-empty dict as deletion_sets returns it")
    width = {len(masks) for draws in sets.values() for masks in draws}
    if len(width) != 1:
        raise ValueError("every draw of sets must hold the same number of fractions")
    flat = [m for draws in sets.values() for masks in draws for m in masks]
    return taylor_terms(model, x, y, flat)


def _by_kind(sets: dict, values: np.ndarray) -> dict[str, np.ndarray]:
    """``values`` (one per set of ``sets``, in order) as kind -> array ``(draws, fractions)``."""
    n = len(next(iter(sets.values()))[0])
    rows = iter(np.asarray(values).reshape(-1, n))
    return {kind: np.array([next(rows) for _ in draws]) for kind, draws in sets.items()}


def _masked_layers(chain: network.DenseChain, masks: Sequence[np.ndarray] | None
                   ) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
    """Kernels and biases (``None`` where a layer has none) times ``masks``, in float64."""
    weights = chain.weights()
    if masks is not None:
        masks = pruning.check_masks(masks, weights, "masks")
        weights = [w * m for w, m in zip(weights, masks)]
    return network.kernels_and_biases([w.astype(np.float64) for w in weights], chain.layout)


def _like_weights(weights: Sequence[np.ndarray], arrays: object, name: str) -> list[np.ndarray]:
    """``arrays`` checked to be finite numbers shaped like ``weights``, in their own dtype."""
    network.check_like(weights, arrays, name, np.float64)
    return [np.asarray(a) for a in arrays]


def _check_curves(acc: object, n: int, name: str) -> np.ndarray:
    a = np.asarray(acc)
    if a.dtype == object or not (np.issubdtype(a.dtype, np.floating)
                                 or np.issubdtype(a.dtype, np.integer)) or a.dtype == bool:
        raise TypeError(f"{name} must be an array of accuracies")
    a = np.atleast_2d(a.astype(np.float64))
    if a.ndim != 2 or a.shape[1] != n or a.shape[0] == 0:
        raise ValueError(f"{name} must have shape (seeds, {n}), got {np.shape(acc)}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return a
