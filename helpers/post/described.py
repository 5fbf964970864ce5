"""The post's five runs as it *describes* them (chapter "The five experiments, done as the post describes them").

The post names five pruning runs (``published.RUNS``): magnitude or OBD
saliency, pruned over all layers at once or layer by layer, on the network
without dropout, plus all-layer OBD on the dropout network. "As described"
means what the post's text says, not what its scripts computed (that is
chapter "What the post's code computed"):

- magnitude: the score is ``|w|``, smallest pruned first;
- OBD: the score is ``s_k = h_kk u_k^2 / 2`` with the exact Hessian diagonal
  averaged over the post's 55,000 training images, smallest pruned first;
- ``scope``: ``"global"`` for the "all layers" runs, ``"layer"`` for the
  "layer-wise" ones; biases are scored and pruned like weights;
- one-shot pruning from the trained weights at every level, no retraining,
  test accuracy on the 10,000 test images.

``described_sweep(run, fractions)`` gives the accuracy curves over the
training seeds of ``networks.SEEDS``; ``described_scores(run, seed)`` the
scores of one network. Both are cached on disk, so every chapter that asks
for them again reads them back in well under a second.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from helpers import cache, checks, data, pruning, saliency, training
from helpers.post import checkpoints, networks, published
from helpers.post.networks import RUN_VARIANTS  # also read as described.RUN_VARIANTS by chapters 6 and 8


def described_scores(run: str, seed: int = 0, variant: str | None = None, *,
                     init: tuple[float, float] = networks.HELPER_0_1) -> list[np.ndarray]:
    """The described saliency of every parameter of one trained network.

    ``run``: a key of ``published.RUNS`` (fixes the method; the scope does not
    change the scores). ``variant``: the network, a key of
    ``networks.VARIANTS``; by default the one the post used for ``run``
    (``RUN_VARIANTS``), e.g. pass ``"dropout"`` for the dropout network at the
    fair learning rate 1e-4. ``init`` picks the network's initial scale, a
    (stddev, bias) pair (``networks.post_config``; the default is the scripts'
    0.1 and 0.1, ``networks.HELPER_0_1``). Returns arrays aligned with
    ``model.trainable_weights``; lower means pruned earlier.
    """
    run = published.check_run(run)
    config = networks.post_config(RUN_VARIANTS[run] if variant is None else variant, seed, init=init)
    method = published.RUNS[run].method
    trained = training.train_model(config)
    if method == "magnitude":
        return saliency.saliency(trained.model, "magnitude")

    def build() -> dict[str, np.ndarray]:
        (x_score, y_score), _ = data.load_post_split()
        scores = saliency.saliency(trained.model, "obd", x_score, y_score)
        return {f"s{i}": s for i, s in enumerate(scores)}

    arrays = cache.fetch("described_scores", {"method": method, "model": config.to_dict()},
                         build, version=cache.code_version(__name__))
    return [arrays[f"s{i}"] for i in range(len(arrays))]


def described_sweep(run: str, fractions: Sequence[float],
                    seeds: Sequence[int] = networks.SEEDS,
                    variant: str | None = None, *,
                    init: tuple[float, float] = networks.HELPER_0_1) -> np.ndarray:
    """Test accuracy after one-shot pruning as the post describes ``run``.

    Returns an array of shape ``(len(seeds), len(fractions))``: row ``i`` is
    the network trained with ``seeds[i]``, column ``j`` the accuracy with the
    fraction ``fractions[j]`` of all parameters (weights and biases) pruned by
    the run's saliency and scope. ``variant`` and ``init`` pick the network
    as in :func:`described_scores`. Example::

        acc = described_sweep("obd_all_layers_prune", [0.1, 0.2, 0.3])
    """
    run = published.check_run(run)
    fractions = checks.fractions(fractions)
    variant = RUN_VARIANTS[run] if variant is None else variant
    configs = networks.post_configs(variant, seeds, init=init)
    scope = published.RUNS[run].scope
    return np.stack([_one_sweep(run, variant, config, fractions, scope) for config in configs])


def _one_sweep(run: str, variant: str, config: training.TrainConfig, fractions: list[float],
               scope: str) -> np.ndarray:
    def build() -> dict[str, np.ndarray]:
        trained = training.train_model(config)
        scores = described_scores(run, config.seed, variant,
                                  init=(config.init_stddev, config.bias_init))
        (_, _), (x_test, y_test) = data.load_mnist()
        return {"accuracy": pruning.sweep(trained.model, scores, fractions, x_test, y_test, scope)}

    key = {"run": run, "model": config.to_dict(), "fractions": fractions}
    return cache.fetch("described_sweep", key, build, version=cache.code_version(__name__))["accuracy"]


def checkpoint_scores(checkpoint: str, method: str) -> list[np.ndarray]:
    """A described saliency (``"magnitude"`` or ``"obd"``) of one of the post's own networks.

    OBD scores the 55,000 images of the post's training split, as :func:`described_scores`
    does for the book's networks; cached on disk (chapters "All layers against layer-wise",
    "Dropout and the diagonal" and "Dropout under heavy pruning" all prune the post's networks).
    """
    checkpoint, method = checkpoints.check_checkpoint(checkpoint), _check_method(method)
    if method == "magnitude":
        return saliency.saliency(checkpoints.load_post_network(checkpoint), "magnitude")

    def build() -> dict[str, np.ndarray]:  # the network is read only when the cache lacks the scores
        (x_score, y_score), _ = data.load_post_split()
        model = checkpoints.load_post_network(checkpoint)
        return {f"s{i}": s for i, s in enumerate(saliency.saliency(model, "obd", x_score, y_score))}

    arrays = cache.fetch("described_checkpoint_scores", {"checkpoint": checkpoint, "method": method},
                         build, version=cache.code_version(__name__))
    return [arrays[f"s{i}"] for i in range(len(arrays))]


def checkpoint_sweep(checkpoint: str, method: str, scope: str, fractions: Sequence[float]) -> np.ndarray:
    """Test accuracy of the post's network ``checkpoint`` pruned one-shot by a described saliency
    (:func:`checkpoint_scores`) at each of ``fractions``, in ``scope``; cached on disk."""
    checkpoint, method = checkpoints.check_checkpoint(checkpoint), _check_method(method)
    scope = pruning.check_scope(scope)
    fractions = checks.fractions(fractions)

    def build() -> dict[str, np.ndarray]:
        _, (x_test, y_test) = data.load_mnist()
        return {"accuracy": pruning.sweep(checkpoints.load_post_network(checkpoint),
                                          checkpoint_scores(checkpoint, method), fractions,
                                          x_test, y_test, scope)}

    key = {"checkpoint": checkpoint, "method": method, "scope": scope, "fractions": fractions}
    return cache.fetch("described_checkpoint_sweep", key, build, version=cache.code_version(__name__))["accuracy"]


def _check_method(method: object) -> str:
    return checks.choice(method, "method", ("magnitude", "obd"))
