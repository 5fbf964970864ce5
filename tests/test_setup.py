"""The Makefile's set-up: make book needs no browser and no root, and a missing venv module gives a one-line hint."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def make(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run make as a reader would from a shell, even when this test runs under ``make test``."""
    clean = {k: v for k, v in (os.environ if env is None else env).items()
             if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")}
    return subprocess.run(["make", "--no-print-directory", *args], cwd=ROOT, capture_output=True, text=True,
                          env=clean, timeout=60)


def test_only_make_test_installs_chromium_without_recommends() -> None:
    # -n prints every command (-B: as if nothing were built yet) without running any.
    book = make("-n", "-B", "book")
    assert book.returncode == 0, book.stderr
    assert "pip install -r requirements.txt" in book.stdout and "jupyter-book build" in book.stdout
    assert "chromium" not in book.stdout and "apt-get update" not in book.stdout and "id -u" not in book.stdout
    test = make("-n", "-B", "test")
    assert test.returncode == 0, test.stderr
    assert "apt-get install -y --no-install-recommends chromium chromium-driver" in test.stdout


def test_a_python_without_venv_gets_a_one_line_hint(tmp_path: Path) -> None:
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    # Debian's python3 without python3-venv: a half-made environment, a long message, exit 1.
    (fake_bin / "python3").write_text(
        '#!/bin/sh\nmkdir -p "$3/bin"\n'
        'echo "The virtual environment was not created successfully because ensurepip is not" >&2\n'
        'echo "available.  On Debian/Ubuntu systems, you need to install the python3-venv" >&2\n'
        'exit 1\n')
    (fake_bin / "python3").chmod(0o755)
    venv = tmp_path / "venv"
    result = make(f"VENV={venv}", f"{venv}/setup.stamp", env=dict(os.environ, PATH=f"{fake_bin}:{os.environ['PATH']}"))
    assert result.returncode != 0
    hint = [line for line in (result.stdout + result.stderr).splitlines() if not line.startswith("make: ***")]
    assert len(hint) == 1 and "apt-get install python3-venv" in hint[0], result.stdout + result.stderr
    assert not venv.exists(), "the half-made environment is removed, so the next make starts afresh"
