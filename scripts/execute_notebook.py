"""Execute notebooks top to bottom in place, so they are committed with fresh outputs.

Usage: python scripts/execute_notebook.py notebooks/05_training.ipynb [...]
Runs each notebook in its own folder with this interpreter's kernel and
progress bars off (as under nbval), and fails loudly on the first error.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def execute(path: Path) -> float:
    nb = nbformat.read(path, as_version=4)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    start = time.perf_counter()
    # No saved widget state: the book loads no widget JavaScript, so it would be dead weight.
    NotebookClient(nb, timeout=3600, kernel_name="python3", store_widget_state=False,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    nb.metadata.pop("widgets", None)
    nbformat.write(nb, path)
    return time.perf_counter() - start


def main(paths: list[str]) -> None:
    os.environ["OBD_PROGRESS"] = "0"
    for name in paths:
        seconds = execute(Path(name))
        print(f"{name}: executed in {seconds:.0f} s")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
