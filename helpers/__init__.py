"""Helpers shared by every chapter of *Optimal Brain Damage, rerun*.

Import the modules you need, e.g. ``from helpers import hessian, pruning`` or
``from helpers.post import as_ran, networks``. What lives where, with the
chapter that introduces it:

``helpers``: the OBD library, reusable on any Keras MLP (and a small CNN).
  ``data`` (offline MNIST, the post's split), ``models``, ``training``,
  ``metrics``, ``cache`` (on-disk results; Appendix): "Training the two networks".
  ``network`` (an MLP as a chain of Dense layers, or a small conv net, as the
  helpers read them), ``hessian``: "Second derivatives in practice". ``taylor``: "The Taylor expansion of the loss".
  ``saliency``, ``pruning``, ``stats``: "Saliencies". ``retraining``: "Pruning
  with retraining". ``surgeon`` (Optimal Brain Surgeon): "Optimal Brain Surgeon".
  ``cnn``, ``conv_hessian``: "A convolutional network". ``checks`` (argument
  checks), ``seeding`` and ``plotting`` serve every chapter.
``helpers.post``: replicating the 2016 post.
  ``networks`` (its networks, seeds and initial scale): "Training the two
  networks". ``published`` (its published numbers), ``described`` (its runs as
  described): "The five experiments, done as the post describes them". ``as_ran``
  (its runs as its code ran them) and ``checkpoints`` (the post's own trained
  networks, ``checkpoints.load_post_network``): "What the post's code computed". ``observations``: Part III, "Does magnitude pruning
  collapse?" to "Does dropout pay off under heavy pruning?".
``helpers.chapters``: code one chapter needs.
  ``tiny`` (a network small enough for its full Hessian): "The Taylor expansion
  of the loss" (reused by "Optimal Brain Surgeon"); ``tiny_obs`` (Optimal Brain
  Surgeon on it): "Optimal Brain Surgeon". ``explorer``: "Explore it yourself".

The library (``helpers/*.py``) never imports ``helpers.post`` or
``helpers.chapters`` (``tests/test_layers.py``).

Importing the package loads TensorFlow once with its C++ start-up log (oneDNN
and CPU-feature notices that no environment variable silences in TF 2.21)
sent to /dev/null, so that notebook outputs hold only what the chapter prints.
Import ``helpers`` before ``tensorflow`` or ``keras`` to benefit.
"""

import contextlib as _contextlib
import os as _os
import sys as _sys

_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@_contextlib.contextmanager
def _c_stderr_to_devnull():
    """Send file descriptor 2 (where C++ logs go) to /dev/null for the block."""
    _sys.stderr.flush()
    saved = _os.dup(2)
    devnull = _os.open(_os.devnull, _os.O_WRONLY)
    try:
        _os.dup2(devnull, 2)
        yield
    finally:
        _sys.stderr.flush()
        _os.dup2(saved, 2)
        _os.close(devnull)
        _os.close(saved)


if "tensorflow" not in _sys.modules:
    with _c_stderr_to_devnull():
        import tensorflow as _tf

        _tf.constant(1.0) + 1.0  # the first op loads the kernels, which log again

# TensorFlow's Python-side warnings are performance hints (e.g. "retracing") that
# would land in chapter outputs; errors still show.
import tensorflow as _tensorflow  # noqa: E402

_tensorflow.get_logger().setLevel("ERROR")
