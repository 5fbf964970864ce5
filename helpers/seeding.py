"""One seeding helper, called in the setup cell of every chapter."""

from __future__ import annotations

import keras
import tensorflow as tf

from helpers import checks

#: The training seeds behind every curve with a band (chapter "Training the two networks").
SEEDS: tuple[int, ...] = (0, 1, 2)


def set_seed(seed: int = 0) -> None:
    """Seed Python, NumPy and TensorFlow and make TensorFlow's ops deterministic.

    Introduced in chapter "The Taylor expansion of the loss"; every chapter
    calls it once so the same run gives the same weights, masks and accuracies.
    """
    seed = checks.seed(seed)
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
