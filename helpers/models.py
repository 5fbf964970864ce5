"""The networks of the book (chapter "Training the two networks").

The 2016 post trained one multilayer perceptron, 784-50-50-50-50-10 with ReLU
hidden units and logits out, with and without dropout. ``mlp`` builds any such
chain of Dense layers (chapter 1 uses a tiny one); ``seed_mlp`` is the post's.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from helpers import checks

POST_LAYER_SIZES: tuple[int, ...] = (784, 50, 50, 50, 50, 10)
POST_INIT_STDDEV = 0.02


def mlp(layer_sizes: Sequence[int], dropout: float = 0.0,
        init_stddev: float = POST_INIT_STDDEV, bias_init: float = 0.0) -> keras.Sequential:
    """A ReLU MLP with a linear (logit) output layer.

    ``layer_sizes`` lists input width, hidden widths and output width. Kernels
    are drawn from a truncated normal with ``init_stddev``; biases start at
    ``bias_init`` (zero in the post's stated recipe). ``dropout`` > 0 adds a Dropout layer after every hidden layer (the
    post's keep probability 0.8 is ``dropout=0.2``). Call
    ``helpers.seeding.set_seed`` first for reproducible weights.
    """
    sizes = _check_layer_sizes(layer_sizes)
    dropout = checks.rate(dropout, "dropout")
    init_stddev = checks.positive(init_stddev, "init_stddev")
    bias_init = checks.real(bias_init, "bias_init")

    model = keras.Sequential(name="mlp_" + "_".join(map(str, sizes)))
    model.add(keras.Input(shape=(sizes[0],)))
    for i, width in enumerate(sizes[1:], start=1):
        last = i == len(sizes) - 1
        model.add(keras.layers.Dense(
            width,
            activation=None if last else "relu",
            kernel_initializer=keras.initializers.TruncatedNormal(stddev=float(init_stddev)),
            bias_initializer=keras.initializers.Constant(float(bias_init)),
            name="logits" if last else f"hidden{i}",
        ))
        if not last and dropout > 0:
            model.add(keras.layers.Dropout(float(dropout), name=f"dropout{i}"))
    return model


def seed_mlp(dropout: float = 0.0) -> keras.Sequential:
    """The post's network: 784-50-50-50-50-10, ReLU, truncated-normal(0.02) kernels."""
    return mlp(POST_LAYER_SIZES, dropout=dropout)


def _check_layer_sizes(layer_sizes: Sequence[int]) -> tuple[int, ...]:
    if isinstance(layer_sizes, (str, bytes)) or not isinstance(layer_sizes, Sequence):
        raise TypeError(f"layer_sizes must be a sequence of ints, got {layer_sizes!r}")
    if len(layer_sizes) < 2:
        raise ValueError(f"layer_sizes needs at least input and output widths, got {layer_sizes!r}")
    return tuple(checks.integer(width, f"layer_sizes[{i}]") for i, width in enumerate(layer_sizes))


def tensor_names(model: keras.Model) -> list[str]:
    """``"<layer> <weight>"`` for every entry of ``model.trainable_weights``, e.g. ``"hidden1 kernel"``.

    The one naming of weight tensors in tables and figures (chapters "Explore it yourself"
    and "A convolutional network"); the book's symbols ``W1, b1, ...`` are
    ``observations.tensor_names``.
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"model must be a keras.Model, got {type(model).__name__}")
    names = [f"{layer.name} {weight.name}" for layer in model.layers
             for weight in layer.trainable_weights]
    if len(names) != len(model.trainable_weights):
        raise ValueError("model: its layers' trainable weights are not model.trainable_weights")
    return names
