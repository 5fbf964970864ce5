"""Saliencies: how much each parameter matters (chapter "Saliencies").

Every method returns arrays aligned with ``model.trainable_weights``; pruning
removes the parameters with the *lowest* scores first.

- ``"magnitude"``: |u_k|.
- ``"obd"``: s_k = h_kk u_k^2 / 2 with the exact Hessian diagonal (LeCun et al. 1990).
- ``"obd_lecun"``: the same with the paper's backpropagated diagonal.
- ``"fisher"``: the same with the empirical Fisher diagonal.

For a conv net (chapter "A convolutional network") the methods are ``CONV_METHODS``:
``"obd_lecun"`` gives way to ``"obd_mc"``, OBD with the Monte-Carlo estimate of the
diagonal (``helpers.conv_hessian``). None depends on the pruning scope. The rankings the post's scripts ran instead
(the signed weights, the Hessian row sums) are ``helpers.post.as_ran.scores``.
"""

from __future__ import annotations

import keras
import numpy as np

from helpers import checks, conv_hessian, hessian, network

METHODS = ("magnitude", "obd", "obd_lecun", "fisher")
CONV_METHODS = ("magnitude", "obd", "obd_mc", "fisher")
_DIAGONAL = {"obd": "exact", "obd_lecun": "lecun", "obd_mc": "mc", "fisher": "fisher"}


def saliency(model: keras.Model, method: str, x: np.ndarray | None = None,
             y: np.ndarray | None = None, *, batch_size: int | None = None, samples: int = 1,
             seed: int = 0) -> list[np.ndarray]:
    """Per-parameter scores of an MLP or a conv net ``model`` by ``method`` (see the module docstring).

    ``x`` and ``y`` (inputs and integer labels) are needed by every method but
    ``"magnitude"``, which ignores them. Second derivatives are summed over batches of
    ``batch_size`` images (default 2048 for an MLP, 1000 for a conv net); ``samples`` and
    ``seed`` set the Monte-Carlo draws of ``"obd_mc"``.
    """
    net = network.describe(model)
    conv = isinstance(net, network.ConvNet)
    method = checks.choice(method, "method", CONV_METHODS if conv else METHODS)
    weights = net.weights()
    if method == "magnitude":
        return [np.abs(w) for w in weights]
    if x is None or y is None:
        raise ValueError(f"x and y are required for method {method!r} (it needs second derivatives)")
    if conv:
        diagonal = conv_hessian.hessian_diagonal(model, x, y, method=_DIAGONAL[method], samples=samples,
                                                 seed=seed, batch_size=1000 if batch_size is None else batch_size)
    else:
        diagonal = hessian.hessian_diagonal(model, x, y, method=_DIAGONAL[method],
                                            batch_size=2048 if batch_size is None else batch_size)
    return [0.5 * h * np.square(w) for h, w in zip(diagonal, weights)]
