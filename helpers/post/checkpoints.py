"""The 2016 post's own five trained networks (chapter "What the post's code computed").

The post's author committed the final TensorFlow 0.x checkpoint of each
published run (MIT licence, ``trained/LICENSE``). They ship inside this
package, so nothing is downloaded. ``load_post_network(run)`` verifies the
file's sha256, reads it with ``tf.train.load_checkpoint`` and returns the
book's Keras MLP (784-50-50-50-50-10) holding those weights;
``read_post_checkpoint(run)`` also gives the Adam moments, which chapter
"Training the two networks" uses to prove the initial scale.

Two layouts exist in the files. The layer-wise scripts kept one flat variable
per tensor (``inference/W_1`` ... ``W_final``, ``b_1`` ... ``b_final``); the
all-layer scripts packed all 47,410 parameters into one vector
``inference/variables`` = ``[W1, W2, W3, W4, W_final, b1, b2, b3, b4, b_final]``.
Kernels are stored row-major as ``[inputs, outputs]`` either way.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from helpers import checks, models
from helpers.post import networks, published

__all__ = ["CHECKPOINTS", "PostCheckpoint", "checkpoint_path", "load_post_network",
           "read_post_checkpoint"]


@dataclass(frozen=True)
class _File:
    step: int
    sha256: str
    packed: bool


#: Each run's checkpoint: training step, sha256 of the file, and whether its parameters are packed.
CHECKPOINTS: dict[str, _File] = {
    "magnitude_layerwise_prune": _File(
        50_000, "30a801356d00041bc0fcccbe9f5bfd44cd8568465116713c0cc049e97b25cb19", False),
    "magnitude_all_layers_prune": _File(
        50_000, "1c4e007afcba9338e37ec39dfa5fd39ef09f2df36b108da3b7023c91d2529f02", True),
    "obd_layerwise_prune": _File(
        50_000, "ef4905b9affb45142620f96d35a66cd3ec5960bd78f7347fb021aa72cfcb910f", False),
    "obd_all_layers_prune": _File(
        45_000, "4f282ea99c4a0d9dda1b1b3c38fd9ad0261b446f796843457e224acd7b6d29c4", True),
    "obd_all_layers_dropout": _File(
        50_000, "027c13400143dbc8cf215f28205bdf8a871f8f9845c58455519b8db03ce911b2", True),
}
_KERNEL_NAMES = ("W_1", "W_2", "W_3", "W_4", "W_final")
_BIAS_NAMES = ("b_1", "b_2", "b_3", "b_4", "b_final")
_SLOTS = {"weights": "", "adam_m": "/Adam", "adam_v": "/Adam_1"}


@dataclass(frozen=True)
class PostCheckpoint:
    """One run's checkpoint in the book's layout ``[W1, b1, W2, b2, ..., W5, b5]``.

    ``adam_m`` and ``adam_v`` are Adam's first and second moment estimates of
    every parameter at the checkpoint's ``step``.
    """

    run: str
    step: int
    weights: list[np.ndarray]
    adam_m: list[np.ndarray]
    adam_v: list[np.ndarray]


def checkpoint_path(run: str) -> Path:
    """The checkpoint file of ``run`` inside the package (not checked; see ``read_post_checkpoint``)."""
    entry = _check_run(run)
    folder = resources.files("helpers.post").joinpath("trained", run)
    return Path(str(folder)) / f"model.ckpt-{entry.step}"


def read_post_checkpoint(run: str) -> PostCheckpoint:
    """Verify and read the checkpoint of ``run`` (a run name of ``published.RUNS``).

    Raises ``ValueError`` for an unknown run or a file whose sha256 differs
    from the one recorded here, ``FileNotFoundError`` for a missing file;
    both messages name the run and the file.
    """
    entry = _check_run(run)
    path = checkpoint_path(run)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint of run {run!r} is missing: {path}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != entry.sha256:
        raise ValueError(f"checkpoint of run {run!r} was altered: {path} has sha256 {digest}, "
                         f"expected {entry.sha256}")
    reader = tf.train.load_checkpoint(str(path))
    slots = {name: _tensors(reader, entry.packed, suffix) for name, suffix in _SLOTS.items()}
    return PostCheckpoint(run=run, step=entry.step, **slots)


def load_post_network(run: str) -> keras.Sequential:
    """The book's MLP holding the trained weights of the post's ``run`` (chapter "What the post's code computed").

    The dropout run comes back with its Dropout layers (rate 0.2, the post's
    keep probability 0.8), which are inactive at inference.
    """
    checkpoint = read_post_checkpoint(run)
    dropout = networks.POST_DROPOUT if published.RUNS[run].dropout else 0.0
    model = models.mlp(models.POST_LAYER_SIZES, dropout=dropout)
    model.set_weights(checkpoint.weights)
    return model


def check_checkpoint(checkpoint: object, name: str = "checkpoint") -> str:
    """``checkpoint`` if it names one of the post's five networks (``CHECKPOINTS``), else ValueError."""
    return checks.choice(checkpoint, name, CHECKPOINTS)


def _check_run(run: object) -> _File:
    return CHECKPOINTS[check_checkpoint(run, "run")]


def _shapes() -> list[tuple[tuple[int, int], tuple[int]]]:
    sizes = models.POST_LAYER_SIZES
    return [((n_in, n_out), (n_out,)) for n_in, n_out in zip(sizes[:-1], sizes[1:])]


def _tensors(reader: tf.train.CheckpointReader, packed: bool, suffix: str) -> list[np.ndarray]:
    """Read one slot (weights or an Adam moment) and return it as ``[W1, b1, ..., W5, b5]``."""
    shapes = _shapes()
    if packed:
        flat = np.asarray(reader.get_tensor("inference/variables" + suffix), np.float32)
        sizes = [int(np.prod(k)) for k, _ in shapes] + [b[0] for _, b in shapes]
        if flat.size != sum(sizes):
            raise ValueError(f"packed vector has {flat.size} entries, expected {sum(sizes)}")
        pieces = np.split(flat, np.cumsum(sizes)[:-1])
        kernels, biases = pieces[:len(shapes)], pieces[len(shapes):]
    else:
        kernels = [np.asarray(reader.get_tensor(f"inference/{n}{suffix}"), np.float32) for n in _KERNEL_NAMES]
        biases = [np.asarray(reader.get_tensor(f"inference/{n}{suffix}"), np.float32) for n in _BIAS_NAMES]
    out: list[np.ndarray] = []
    for (kernel_shape, bias_shape), kernel, bias in zip(shapes, kernels, biases):
        out.append(kernel.reshape(kernel_shape))
        out.append(bias.reshape(bias_shape))
    return out
