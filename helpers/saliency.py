"""Saliencies: how much each parameter matters (chapter "Saliencies").

Every method returns arrays aligned with ``model.trainable_weights``; pruning
removes the parameters with the *lowest* scores first.

- ``"magnitude"``: |u_k|.
- ``"obd"``: s_k = h_kk u_k^2 / 2 with the exact Hessian diagonal (LeCun et al. 1990).
- ``"obd_lecun"``: the same with the paper's backpropagated diagonal.
- ``"fisher"``: the same with the empirical Fisher diagonal.
- ``"asran_magnitude"``: u_k itself, so the most negative weights go first,
  as the post's "magnitude" scripts ran (chapter "What the post's code computed").
- ``"asran_obd"``: the Hessian row sums themselves, without u_k^2 / 2, so
  the most negative row sums go first, as the post's "OBD" scripts ran.
  ``scope`` picks the full Hessian (``"global"``, the all-layer scripts) or the
  variable's own block (``"layer"``, the layer-wise scripts).
"""

from __future__ import annotations

import keras
import numpy as np

from helpers import hessian, network

METHODS = ("magnitude", "obd", "obd_lecun", "fisher", "asran_magnitude", "asran_obd")
#: The methods whose scores depend on ``scope``; the others give the same scores in both.
SCOPED_METHODS = ("asran_obd",)
_DIAGONAL = {"obd": "exact", "obd_lecun": "lecun", "fisher": "fisher"}


def saliency(model: keras.Model, method: str, x: np.ndarray | None = None,
             y: np.ndarray | None = None, *, scope: str = "global",
             batch_size: int = 2048) -> list[np.ndarray]:
    """Per-parameter scores of ``model`` by ``method`` (see the module docstring).

    ``x`` and ``y`` (inputs and integer labels) are needed by every method but
    the two magnitude ones, which ignore them. ``scope`` matters only for
    ``"asran_obd"``.
    """
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if not isinstance(scope, str) or scope not in hessian.ROW_SUM_SCOPES:
        raise ValueError(f"scope must be one of {hessian.ROW_SUM_SCOPES}, got {scope!r}")
    chain = network.dense_chain(model)
    weights = chain.weights()
    if method == "magnitude":
        return [np.abs(w) for w in weights]
    if method == "asran_magnitude":
        return [w.copy() for w in weights]
    if x is None or y is None:
        raise ValueError(f"x and y are required for method {method!r} (it needs second derivatives)")
    if method == "asran_obd":
        return hessian.hessian_row_sums(model, x, y, scope=scope, batch_size=batch_size)
    diagonal = hessian.hessian_diagonal(model, x, y, method=_DIAGONAL[method], batch_size=batch_size)
    return [0.5 * h * np.square(w) for h, w in zip(diagonal, weights)]
