"""Reading a Keras MLP as a chain of Dense layers, and checking data for it.

The second-derivative, saliency and pruning helpers work on the weights of a
plain MLP (chapter "Second derivatives in practice"): Dense layers with ReLU
hidden units and a linear logit output, optionally with Dropout layers, which
are the identity at inference. This module finds those layers, refuses any
other model before work starts, and validates inputs and labels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from helpers import checks


@dataclass(frozen=True)
class DenseChain:
    """The Dense layers of an MLP, in order, and facts the helpers need."""

    layers: tuple[keras.layers.Dense, ...]

    @property
    def input_width(self) -> int:
        return int(self.layers[0].kernel.shape[0])

    @property
    def n_classes(self) -> int:
        return int(self.layers[-1].kernel.shape[1])

    @property
    def layout(self) -> tuple[bool, ...]:
        """Whether each Dense layer has a bias: how ``weights()`` splits into layers."""
        return tuple(layer.use_bias for layer in self.layers)

    def weights(self) -> list[np.ndarray]:
        """Current parameter values, aligned with ``model.trainable_weights``."""
        out: list[np.ndarray] = []
        for layer in self.layers:
            out.append(np.asarray(layer.kernel.numpy()))
            if layer.use_bias:
                out.append(np.asarray(layer.bias.numpy()))
        return out


def dense_chain(model: keras.Model) -> DenseChain:
    """Return the Dense layers of ``model``, or raise if it is not a plain ReLU MLP."""
    if not isinstance(model, keras.Model):
        raise TypeError(f"model must be a keras.Model, got {type(model).__name__}")
    if not model.built:
        raise ValueError("model must be built (call it once or give it an Input) before use")
    dense: list[keras.layers.Dense] = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dense):
            dense.append(layer)
        elif not isinstance(layer, (keras.layers.Dropout, keras.layers.InputLayer)):
            raise NotImplementedError(
                f"model: only MLPs of Dense (and Dropout) layers are supported, found "
                f"{type(layer).__name__} layer {layer.name!r}")
    if not dense:
        raise NotImplementedError("model: no Dense layer found; only MLPs are supported")
    for i, layer in enumerate(dense):
        act = keras.activations.serialize(layer.activation)
        act = act if isinstance(act, str) else act.get("config", {}).get("name", str(act))
        expected = "linear" if i == len(dense) - 1 else "relu"
        if act != expected:
            raise NotImplementedError(
                f"model: layer {layer.name!r} has activation {act!r}; supported are ReLU "
                "hidden layers and a linear (logit) output layer")
    for a, b in zip(dense, dense[1:]):
        if a.kernel.shape[1] != b.kernel.shape[0]:
            raise NotImplementedError("model: Dense layers do not form a chain")
    chain = DenseChain(tuple(dense))
    expected_ids = [id(v) for layer in dense
                    for v in ((layer.kernel, layer.bias) if layer.use_bias else (layer.kernel,))]
    if [id(v) for v in model.trainable_weights] != expected_ids:
        raise NotImplementedError(
            "model: trainable_weights must be exactly the Dense kernels and biases, in order")
    return chain


def check_x(x: object, input_width: int, name: str = "x") -> np.ndarray:
    """Validate an input batch: a finite 2-D float array of the model's width."""
    if not isinstance(x, np.ndarray):
        try:
            x = np.asarray(x)
        except Exception as exc:  # pragma: no cover - exotic objects
            raise TypeError(f"{name} must be an array of floats") from exc
    if x.dtype == object or not (np.issubdtype(x.dtype, np.floating)
                                 or np.issubdtype(x.dtype, np.integer)):
        raise TypeError(f"{name} must be an array of numbers, got dtype {x.dtype}")
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D (samples, {input_width}), got shape {x.shape}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty: at least one sample is needed")
    if x.shape[1] != input_width:
        raise ValueError(f"{name} must have {input_width} columns (the model's input width), "
                         f"got {x.shape[1]}")
    x = x.astype(np.float32, copy=False)
    # A finite sum proves every entry finite and is cheaper than isfinite over all of x.
    if not (np.isfinite(np.add.reduce(x, axis=None)) or np.all(np.isfinite(x))):
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def check_xy(x: object, y: object, input_width: int, n_classes: int,
             x_name: str = "x", y_name: str = "y") -> tuple[np.ndarray, np.ndarray]:
    """Validate inputs and integer labels in ``[0, n_classes)`` of equal length."""
    x = check_x(x, input_width, x_name)
    y = np.asarray(y)
    if y.dtype == bool or not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"{y_name} must hold integer class labels, got dtype {y.dtype}")
    if y.ndim != 1:
        raise ValueError(f"{y_name} must be 1-D, got shape {y.shape}")
    if len(y) != len(x):
        raise ValueError(f"{x_name} and {y_name} must have the same length, got {len(x)} and {len(y)}")
    if y.min() < 0 or y.max() >= n_classes:
        raise ValueError(f"{y_name} must be labels in [0, {n_classes}), got values from "
                         f"{y.min()} to {y.max()}")
    return x, y.astype(np.int32)


def check_like(weights: Sequence, arrays: object, name: str, dtype: type = np.float32,
               bools: bool = False) -> list[np.ndarray]:
    """Validate one finite numeric array per weight tensor, of matching shape; cast to ``dtype``.

    Boolean arrays are refused unless ``bools`` (masks).
    """
    if isinstance(arrays, (str, bytes, np.ndarray)) or not isinstance(arrays, Sequence):
        raise TypeError(f"{name} must be a list of arrays shaped like model.trainable_weights")
    if len(arrays) != len(weights):
        raise ValueError(f"{name} must have {len(weights)} arrays (one per weight tensor), "
                         f"got {len(arrays)}")
    out = []
    for i, (a, w) in enumerate(zip(arrays, weights)):
        a = np.asarray(a)
        if bools and a.dtype == bool:
            a = a.astype(dtype)
        if tuple(a.shape) != tuple(w.shape):
            raise ValueError(f"{name}[{i}] must have shape {tuple(w.shape)}, got {a.shape}")
        out.append(checks.numbers(a, f"{name}[{i}]").astype(dtype))
    return out


def check_batch_size(batch_size: object) -> int:
    return checks.integer(batch_size, "batch_size")


def kernels_and_biases(weights: Sequence, layout: tuple[bool, ...]) -> tuple[list, list]:
    """Split a flat weight list (``trainable_weights`` order) into per-layer kernels and
    biases, ``None`` for a layer without bias (see ``DenseChain.layout``)."""
    expected = len(layout) + sum(layout)
    if len(weights) != expected:
        raise ValueError(f"weights must hold {expected} tensors for layout {layout}, "
                         f"got {len(weights)}")
    kernels, biases, i = [], [], 0
    for has_bias in layout:
        kernels.append(weights[i])
        biases.append(weights[i + 1] if has_bias else None)
        i += 1 + int(has_bias)
    return kernels, biases


def logits(x: tf.Tensor, weights: list, layout: tuple[bool, ...],
           hidden: Callable[[tf.Tensor, int], tf.Tensor] | None = None) -> tf.Tensor:
    """The MLP's logits for weights given as a flat list (see ``DenseChain.layout``).

    ``hidden(a, j)``, if given, transforms hidden layer ``j``'s activations (dropout while
    training, Chapter 13).
    """
    return _forward(x, *kernels_and_biases(weights, layout), hidden, trace=False)[2]


def forward_trace(x: tf.Tensor, kernels: Sequence, biases: Sequence
                  ) -> tuple[list[tf.Tensor], list[tf.Tensor], tf.Tensor]:
    """The forward pass with what backpropagation needs (chapter "Second derivatives in practice").

    Returns the input of every Dense layer (``x`` first), the 0/1 ReLU mask
    ``z > 0`` of every hidden layer in the pre-activations' dtype, and the
    logits, all tensors. ``biases[j]`` may be ``None`` for a layer without bias.
    Works on float32 or float64 tensors (or numpy arrays), eagerly or inside
    ``tf.function``.
    """
    for name, seq in (("kernels", kernels), ("biases", biases)):
        if isinstance(seq, (str, bytes)) or not isinstance(seq, Sequence):
            raise TypeError(f"{name} must be a list with one tensor per Dense layer")
    if len(kernels) == 0 or len(kernels) != len(biases):
        raise ValueError(f"kernels and biases must be non-empty and of equal length, got "
                         f"{len(kernels)} and {len(biases)}")
    return _forward(tf.convert_to_tensor(x), kernels, biases, None, trace=True)


def _forward(x, kernels, biases, hidden, trace: bool):
    """The one MLP forward pass: ReLU hidden layers, linear logits; inputs and masks if ``trace``."""
    inputs, masks, a = [], [], x
    last = len(kernels) - 1
    for j, (kernel, bias) in enumerate(zip(kernels, biases)):
        if trace:
            inputs.append(a)
        z = tf.matmul(a, kernel)
        if bias is not None:
            z += bias
        if j == last:
            return inputs, masks, z
        if trace:
            masks.append(tf.cast(z > 0, z.dtype))
        a = tf.nn.relu(z)
        if hidden is not None:
            a = hidden(a, j)
