"""Settings for ``pytest --nbval notebooks``: kernels inherit this environment."""

import os

os.environ["OBD_PROGRESS"] = "0"  # no progress bars in stored or compared outputs
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
