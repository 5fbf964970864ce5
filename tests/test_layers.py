"""The package's layers hold: the library never reaches into the post's code or a chapter's.

``helpers/*.py`` is the reusable OBD library; ``helpers.post`` replicates the 2016 post and
``helpers.chapters`` holds what one chapter needs. Both may import the library, never the
reverse. Every import statement is read from the syntax tree, those inside functions included.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

HELPERS = Path(__file__).resolve().parents[1] / "helpers"
LIBRARY = sorted(HELPERS.glob("*.py"))
UPPER = ("helpers.post", "helpers.chapters")


def imported_modules(source: str, package: str = "helpers") -> set[str]:
    """Every module an import statement of ``source`` names, ``from a import b`` giving ``a.b`` too;
    relative imports are resolved against ``package`` (the package holding the file)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            found.add(module)
            found |= {f"{module}.{alias.name}" for alias in node.names}
    return found


def test_the_reader_of_imports_sees_every_form():
    source = ("import helpers.post.as_ran\nfrom helpers import post\n"
              "def f():\n    from helpers.chapters import tiny\nfrom .post import networks\n")
    assert {"helpers.post.as_ran", "helpers.post", "helpers.chapters.tiny",
            "helpers.post.networks"} <= imported_modules(source)


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: p.name)
def test_the_library_imports_neither_the_post_nor_the_chapters(path):
    upward = sorted(m for m in imported_modules(path.read_text())
                    if any(m == u or m.startswith(u + ".") for u in UPPER))
    assert not upward, f"{path.name} imports {upward}"


def test_the_post_never_imports_the_chapters():
    for path in sorted((HELPERS / "post").glob("*.py")):
        upward = [m for m in imported_modules(path.read_text(), "helpers.post")
                  if m.startswith("helpers.chapters")]
        assert not upward, f"post/{path.name} imports {upward}"
