"""Helpers shared by every chapter of *Optimal Brain Damage, rerun*.

Import the modules you need, e.g. ``from helpers import hessian, pruning``.
Importing the package only quiets TensorFlow's C++ start-up log; it loads no
module eagerly.
"""

import os as _os

_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
