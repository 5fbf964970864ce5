"""How long the whole book takes to check: ``make test``'s ``pytest --nbval`` pass, cold, then warm.

Usage:
    python benchmarks/book.py [--write book/book_timings.md] [notebook ...]

The cold run starts from an empty model cache (a fresh temporary ``OBD_CACHE_DIR``),
as on a fresh clone, so every network, Hessian and sweep the chapters need is
computed; the warm run repeats the check with that cache filled. Both runs use
this interpreter and its environment. Prints the wall-clock time of each run
against the targets (cold <= 20 min, warm <= 3 min) and the time per chapter,
summed from pytest's own per-cell timings. Exits non-zero if a run fails.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGETS_MIN = {"cold": 20.0, "warm": 3.0}


def run_nbval(notebooks: list[str], cache_dir: Path, report: Path) -> tuple[float, dict[str, float]]:
    """Run nbval once; return its wall-clock seconds and the seconds per notebook."""
    env = dict(os.environ, OBD_CACHE_DIR=str(cache_dir))
    # What make test runs: two chapters at a time, each notebook in one kernel.
    command = [sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadscope", "--nbval",
               "--nbval-current-env", "-q",
               "-p", "no:cacheprovider", f"--junitxml={report}", *notebooks]
    start = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        print(result.stdout[-5000:])
        raise SystemExit(f"pytest --nbval failed (exit {result.returncode})")
    per_notebook: dict[str, float] = defaultdict(float)
    for case in ET.parse(report).getroot().iter("testcase"):
        # nbval names a cell's test after its notebook: classname "notebooks.05_training.ipynb".
        name = case.get("classname", "").split(".", 1)[-1] or case.get("file", "?")
        per_notebook[name] += float(case.get("time", 0.0))
    return seconds, dict(per_notebook)


def minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {seconds % 60:04.1f} s"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", default=["notebooks"],
                        help="notebooks to check (default: all of notebooks/)")
    parser.add_argument("--write", type=Path, default=None, help="also write the table (Markdown) here")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="obd-book-timing-"))
    try:
        totals, chapters = {}, {}
        for kind in ("cold", "warm"):
            totals[kind], chapters[kind] = run_nbval(args.notebooks, work / "cache", work / f"{kind}.xml")
            verdict = "meets" if totals[kind] <= 60 * TARGETS_MIN[kind] else "MISSES"
            print(f"{kind}: {minutes(totals[kind])} ({verdict} the {TARGETS_MIN[kind]:.0f}-minute target)",
                  flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    lines = [f"Measured on {platform.machine()} with {os.cpu_count()} cores, Python "
             f"{platform.python_version()}: `pytest -n 2 --dist loadscope --nbval notebooks` "
             "(two chapters at a time), cold (empty model cache) then warm.",
             "", "| chapter | cold (s) | warm (s) |", "|---|---:|---:|"]
    for name in sorted(chapters["cold"]):
        lines.append(f"| {name} | {chapters['cold'][name]:.0f} | {chapters['warm'].get(name, 0.0):.0f} |")
    lines.append(f"| **whole run, wall clock** | **{minutes(totals['cold'])}** | **{minutes(totals['warm'])}** |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        args.write.write_text(text)
        print(f"wrote {args.write}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
