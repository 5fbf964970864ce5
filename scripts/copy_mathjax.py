"""Copy MathJax 3 (its es5/ build) into book/_mathjax/ for an offline book.

The PyPI package django-static-mathjax (a pinned requirement) ships MathJax's
es5/ build inside its Python package `mathjax`, under static/mathjax/es5/.
_config.yml lists book/_mathjax in Sphinx's html_static_path, so the build
copies it to _build/html/_static/mathjax/es5/, and `mathjax_path` points at
mathjax/es5/tex-chtml.js there. The copy is gitignored, and it is redone only when
the installed MathJax changes.

Usage: .venv/bin/python scripts/copy_mathjax.py
"""

import importlib.util
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEST = ROOT / "book" / "_mathjax" / "mathjax" / "es5"
# Outside the copied folder, so that Sphinx does not publish it (*.stamp is gitignored).
STAMP = ROOT / "book" / "_mathjax.stamp"


def installed_mathjax() -> tuple[Path, str]:
    """Return the es5/ folder and the version of the installed MathJax."""
    spec = importlib.util.find_spec("mathjax")
    if spec is None or spec.origin is None:
        sys.exit("MathJax not found: install django-static-mathjax (run `make setup`).")
    package = Path(spec.origin).parent / "static" / "mathjax"
    es5 = package / "es5"
    version = json.loads((package / "package.json").read_text())["version"]
    if not (es5 / "tex-chtml.js").is_file() or not version.startswith("3."):
        sys.exit(f"Expected MathJax 3 with es5/tex-chtml.js in {package}, found version {version}.")
    return es5, version


def main() -> None:
    es5, version = installed_mathjax()
    origin = f"{es5} {version}"
    if STAMP.is_file() and STAMP.read_text() == origin:
        print(f"MathJax {version} already in {DEST.relative_to(ROOT)}")
        return
    if DEST.exists():
        shutil.rmtree(DEST)
    shutil.copytree(es5, DEST)
    STAMP.write_text(origin)
    print(f"Copied MathJax {version} to {DEST.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
