"""book/verdicts.md states, for each chapter of Part III, the verdict the chapter itself states."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "book" / "verdicts.md"
CHAPTERS = (
    "09_magnitude_collapse",
    "10_global_vs_layerwise",
    "11_dropout_and_the_diagonal",
    "12_dropout_under_heavy_pruning",
)
WORDS = ("confirmed", "refuted", "partly confirmed")
VERDICT_LINE = re.compile(r"^\*\*Verdict:\*\*\s*(.+?)\s*$", re.MULTILINE)


def notebook_verdict(name: str) -> str:
    """The single ``**Verdict:** <word>`` line of a chapter's markdown cells."""
    nb = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
    found = [m.group(1) for cell in nb.cells if cell.cell_type == "markdown"
             for m in VERDICT_LINE.finditer(cell.source)]
    assert len(found) == 1, f"{name}: expected one **Verdict:** line, found {found}"
    assert found[0] in WORDS, f"{name}: verdict {found[0]!r} is not one of {WORDS}"
    return found[0]


def page_verdicts(text: str) -> dict[str, str]:
    """Chapter name -> verdict, from the rows of the page's table that link to a chapter."""
    rows = [line for line in text.splitlines() if line.strip().startswith("|")]
    header = [c.strip() for c in rows[0].strip().strip("|").split("|")]
    column = header.index("Verdict")
    out: dict[str, str] = {}
    for row in rows[2:]:  # after the header and the |---| line
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        links = re.findall(r"\]\(\.\./notebooks/([^)]+)\.ipynb\)", row)
        for name in links:
            if name in CHAPTERS:
                assert name not in out, f"{name} appears in two rows"
                out[name] = cells[column]
    return out


def test_parser_reads_a_table():
    text = ("| # | Verdict | Chapter |\n|---|---|---|\n"
            "| 1 | refuted | [x](../notebooks/09_magnitude_collapse.ipynb) |\n"
            "| 2 | partly confirmed | [y](../notebooks/10_global_vs_layerwise.ipynb) |\n")
    assert page_verdicts(text) == {"09_magnitude_collapse": "refuted",
                                   "10_global_vs_layerwise": "partly confirmed"}


def test_the_page_lists_every_chapter_once():
    assert set(page_verdicts(PAGE.read_text())) == set(CHAPTERS)


@pytest.mark.parametrize("name", CHAPTERS)
def test_page_and_chapter_agree(name):
    assert page_verdicts(PAGE.read_text())[name] == notebook_verdict(name)
