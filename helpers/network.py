"""Reading a Keras model as the computation the helpers differentiate, and checking data for it.

The second-derivative, saliency and pruning helpers work on the weights of a
plain MLP (chapter "Second derivatives in practice"): Dense layers with ReLU
hidden units and a linear logit output, optionally with Dropout layers, which
are the identity at inference (``dense_chain``); accuracy, saliencies and
pruning also read a small LeNet-style conv net (``conv_net``, chapter "A
convolutional network"). ``describe`` reads either. This module refuses any
other model before work starts, and validates inputs and labels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

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

    @property
    def structure(self) -> tuple:
        """What ``structure_logits`` needs to compute the logits (hashable: graphs trace once)."""
        return ("dense", self.layout)

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
        act = _activation(layer)
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


@dataclass(frozen=True)
class ConvNet:
    """A Sequential conv net read as a static layer recipe (hashable, so graphs trace once)."""

    spec: tuple[tuple, ...]
    input_width: int
    n_classes: int
    layer_names: tuple[str, ...]  # the parametric layers, in order
    layout: tuple[bool, ...]  # whether each parametric layer has a bias
    variables: tuple = field(default=(), compare=False, repr=False)  # model.trainable_weights

    @property
    def structure(self) -> tuple:
        """What ``structure_logits`` needs to compute the logits (hashable: graphs trace once)."""
        return ("conv", self.spec)

    def weights(self) -> list[np.ndarray]:
        """Current parameter values, aligned with ``model.trainable_weights``."""
        return [np.asarray(v.numpy()) for v in self.variables]


def conv_net(model: keras.Model) -> ConvNet:
    """Read ``model`` as a conv net, or raise if it has a layer the book's helpers cannot read
    (chapter "A convolutional network").

    Supported, in a ``keras.Sequential`` with flat inputs ``(None, d)``:
    ``Reshape``, ``Conv2D`` (channels last, no dilation, one group, ReLU or
    linear), ``MaxPooling2D``, ``Flatten``, ``Dropout`` (the identity at
    inference) and ``Dense`` (ReLU or linear); the last parametric layer must
    be a linear ``Dense`` layer (the logits) and every other one ReLU.
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"model must be a keras.Model, got {type(model).__name__}")
    if not isinstance(model, keras.Sequential):
        raise NotImplementedError("model: only keras.Sequential networks are supported")
    if not model.built:
        raise ValueError("model must be built (give it a keras.Input) before use")
    input_shape = tuple(model.inputs[0].shape)
    if len(input_shape) != 2 or input_shape[1] is None:
        raise NotImplementedError(f"model: inputs must be flat (None, d), got {input_shape}")
    spec: list[tuple] = []
    names: list[str] = []
    layout: list[bool] = []
    variables = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            _check_conv(layer)
            spec.append(("conv", tuple(layer.strides), layer.padding.upper(),
                         _activation(layer), layer.use_bias, tuple(layer.kernel_size)))
        elif isinstance(layer, keras.layers.Dense):
            spec.append(("dense", _activation(layer), layer.use_bias))
        elif isinstance(layer, keras.layers.MaxPooling2D):
            if layer.data_format != "channels_last":
                raise NotImplementedError(f"model: layer {layer.name!r} must be channels_last")
            spec.append(("maxpool", tuple(layer.pool_size), tuple(layer.strides),
                         layer.padding.upper()))
        elif isinstance(layer, keras.layers.Reshape):
            spec.append(("reshape", tuple(int(d) for d in layer.target_shape)))
        elif isinstance(layer, keras.layers.Flatten):
            spec.append(("flatten",))
        elif isinstance(layer, (keras.layers.Dropout, keras.layers.InputLayer)):
            continue
        else:
            raise NotImplementedError(
                f"model: layer {layer.name!r} of type {type(layer).__name__} is not supported "
                "(only Reshape, Conv2D, MaxPooling2D, Flatten, Dropout and Dense)")
        if spec[-1][0] in ("conv", "dense"):
            names.append(layer.name)
            layout.append(layer.use_bias)
            variables.append(layer.kernel)
            if layer.use_bias:
                variables.append(layer.bias)
    parametric = [s for s in spec if s[0] in ("conv", "dense")]
    if not parametric or parametric[-1][0] != "dense" or parametric[-1][1] != "linear":
        raise NotImplementedError("model: the last parametric layer must be a linear Dense layer")
    for s, name in zip(parametric[:-1], names[:-1]):
        activation = s[3] if s[0] == "conv" else s[1]
        if activation != "relu":
            raise NotImplementedError(f"model: hidden layer {name!r} must use ReLU, not {activation!r}")
    if [id(v) for v in model.trainable_weights] != [id(v) for v in variables]:
        raise NotImplementedError(
            "model: trainable_weights must be exactly the Conv2D/Dense kernels and biases, in order")
    n_classes = int(variables[-2 if layout[-1] else -1].shape[-1])
    return ConvNet(tuple(spec), int(input_shape[1]), n_classes, tuple(names), tuple(layout), tuple(variables))


def describe(model: keras.Model) -> DenseChain | ConvNet:
    """``conv_net(model)`` if it has a Conv2D layer, else ``dense_chain(model)``."""
    if isinstance(model, keras.Model) and any(isinstance(layer, keras.layers.Conv2D) for layer in model.layers):
        return conv_net(model)
    return dense_chain(model)


def structure_logits(x: tf.Tensor, weights: Sequence[tf.Tensor], structure: tuple) -> tf.Tensor:
    """The logits of the network whose ``structure`` (of ``describe``) is given, for ``weights``."""
    if structure[0] == "conv":
        return conv_logits(x, weights, structure[1])
    return logits(x, list(weights), structure[1])


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


@tf.autograph.experimental.do_not_convert
def conv_forward(x: tf.Tensor, weights: Sequence[tf.Tensor], spec: tuple[tuple, ...]):
    """Inputs and pre-activations of every parametric layer, and the logits.

    ``weights`` is a flat list aligned with ``model.trainable_weights`` and
    ``spec`` is ``conv_net(model).spec``; the logits equal ``model(x)``.
    """
    a, i = x, 0
    inputs, pre = [], []
    for item in spec:
        kind = item[0]
        if kind == "reshape":
            a = tf.reshape(a, (-1, *item[1]))
        elif kind == "flatten":
            a = tf.reshape(a, (tf.shape(a)[0], -1))
        elif kind == "maxpool":
            a = tf.nn.max_pool2d(a, item[1], item[2], item[3])
        else:
            inputs.append(a)
            if kind == "conv":
                z = tf.nn.conv2d(a, weights[i], strides=item[1], padding=item[2])
                activation, has_bias = item[3], item[4]
            else:
                z = tf.matmul(a, weights[i])
                activation, has_bias = item[1], item[2]
            i += 1
            if has_bias:
                z = z + weights[i]
                i += 1
            pre.append(z)
            a = tf.nn.relu(z) if activation == "relu" else z
    return inputs, pre, a


@tf.autograph.experimental.do_not_convert
def conv_logits(x: tf.Tensor, weights: Sequence[tf.Tensor], spec: tuple[tuple, ...]) -> tf.Tensor:
    """The conv net's logits for weights given as a flat list (see ``conv_forward``)."""
    return conv_forward(x, weights, spec)[2]


def _activation(layer) -> str:
    act = keras.activations.serialize(layer.activation)
    return act if isinstance(act, str) else act.get("config", {}).get("name", str(act))


def _check_conv(layer: keras.layers.Conv2D) -> None:
    if layer.data_format != "channels_last":
        raise NotImplementedError(f"model: layer {layer.name!r} must be channels_last")
    if tuple(layer.dilation_rate) != (1, 1) or layer.groups != 1:
        raise NotImplementedError(f"model: layer {layer.name!r} must have no dilation and one group")
