"""Tests for helpers.cache.code_version: entry versions derived from the code and libraries they depend on."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import cache

ROOT = Path(__file__).resolve().parent.parent

# Builds (or reads) one entry versioned by helpers.post.described, in a copy of the package.
PROBE = """
import sys
import numpy as np
from helpers import cache

assert cache.__file__.startswith(sys.argv[1]), f"imported {cache.__file__}, not the copy"
built = []

def build():
    built.append(True)
    return {"x": np.arange(3)}

cache.fetch("probe", {"n": 3}, build, version=cache.code_version("helpers.post.described"))
print("built" if built else "read")
"""


def test_unit_tests_never_use_the_repository_cache() -> None:
    assert cache.cache_dir() != ROOT / ".cache"
    assert os.environ["OBD_CACHE_DIR"]


def test_dependencies_follow_imports_transitively() -> None:
    described = {name.removeprefix("helpers.") for name in cache.dependencies("helpers.post.described")}
    # described imports saliency, which imports hessian: both were missing from its hand-kept version
    assert {"post.described", "saliency", "hessian", "network", "training", "post.networks"} <= described
    assert not {"plotting", "chapters.explorer", "cnn", "helpers"} & described
    assert "conv_hessian" in {name.removeprefix("helpers.") for name in cache.dependencies("helpers.cnn")}
    assert cache.dependencies("helpers.data") == {"helpers.data", "helpers.cache", "helpers.checks"}


def test_imports_inside_functions_and_relative_imports_count() -> None:
    tree = ast.parse("def f():\n    from helpers import metrics\n"
                     "from . import networks\nfrom ..checks import check_int\nfrom .. import data\n"
                     "import helpers.models\nfrom helpers.post.published import RUNS\nimport numpy\n")
    found = set(cache._imported_modules(tree, "helpers.post.as_ran", is_package=False))
    assert found == {"helpers.metrics", "helpers.post.networks", "helpers.checks", "helpers.data",
                     "helpers.models", "helpers.post.published"}
    # In a package's __init__, "." is the package itself.
    assert set(cache._imported_modules(ast.parse("from . import as_ran"), "helpers.post", is_package=True)) \
        == {"helpers.post.as_ran"}


def test_code_version_names_the_libraries_and_differs_by_module() -> None:
    version = cache.code_version("helpers.post.described")
    for library in (f"tensorflow-{tf.__version__}", f"keras-{keras.__version__}", f"numpy-{np.__version__}"):
        assert library in version
    assert version == cache.code_version("helpers.post.described")
    assert version != cache.code_version("helpers.data")


@pytest.mark.parametrize(("module", "error"), [
    (42, TypeError), ("numpy", ValueError), ("helpers.no_such_module", ValueError), ("helpersx", ValueError),
])
def test_code_version_rejects_what_is_not_a_helpers_module(module, error) -> None:
    with pytest.raises(error, match="module"):
        cache.code_version(module)
    with pytest.raises(error, match="module"):
        cache.dependencies(module)


def test_code_digest_follows_code_not_documentation() -> None:
    source = 'def f(x):\n    """Double x."""\n    return 2 * x  # twice\n'
    same = [
        'def f(x):\n    """Return x times two (a reworded docstring)."""\n    return 2 * x\n',
        '"""A module docstring."""\n\n\ndef f(x):\n    # a comment, other blank lines\n\n    return 2 * x\n',
    ]
    changed = ['def f(x):\n    """Double x."""\n    return 3 * x\n',
               'def f(y):\n    """Double x."""\n    return 2 * y\n',
               'def f(x):\n    return "Double x."\n']
    digest = cache.code_digest(source)
    assert all(cache.code_digest(other) == digest for other in same)
    assert all(cache.code_digest(other) != digest for other in changed)
    assert cache.code_digest("def f():\n    \"\"\"Only a docstring.\"\"\"\n") == cache.code_digest("def f():\n    pass\n")


def test_editing_a_dependency_rebuilds_the_entry_and_editing_another_module_does_not(tmp_path: Path) -> None:
    copy = tmp_path / "project"
    shutil.copytree(ROOT / "helpers", copy / "helpers",
                    ignore=shutil.ignore_patterns("__pycache__", "trained", "shipped"))
    env = dict(os.environ, PYTHONPATH=str(copy), OBD_CACHE_DIR=str(tmp_path / "cache"))

    def probe() -> str:
        result = subprocess.run([sys.executable, "-c", PROBE, str(copy / "helpers")], cwd=copy, env=env,
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout.strip()

    def append(module: str, text: str) -> None:
        with open(copy / module, "a") as handle:
            handle.write(text)

    def reword_docstrings(module: str) -> None:
        path = copy / module
        tree = ast.parse(path.read_text())
        lines = path.read_text().splitlines(keepends=True)
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef)) and ast.get_docstring(node):
                first = node.body[0].lineno - 1
                lines[first] = lines[first].replace('"""', '"""Reworded. ', 1)
        path.write_text("".join(lines))

    assert probe() == "built"
    append("helpers/chapters/explorer.py", "_AN_EDIT = 1\n")  # described does not import it
    assert probe() == "read"
    # checks is imported by nearly every module: rewording its documentation re-keys nothing
    reword_docstrings("helpers/checks.py")
    append("helpers/checks.py", "# a comment\n")
    assert probe() == "read"
    append("helpers/hessian.py", "_AN_EDIT = 1\n")  # imported by saliency, which described imports
    assert probe() == "built"
