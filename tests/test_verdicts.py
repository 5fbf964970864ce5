"""book/verdicts.md states, for each chapter of Part III, the verdict the chapter itself states.

Both the one-word verdict and its evidence table (the post's own networks and three seeds of its
recipe, as the code ran and with the correct method, each cell with its condition) must read the
same on the page as in the chapter, word for word; and every cell of a chapter's table is backed by
a folded check cell that names it in an ``# Evidence: <row> / <column>`` line.
"""

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
EVIDENCE_HEADER = ("Evidence", "As the code ran", "With the correct method")
EVIDENCE_ROWS = ("The post's own networks", "Three seeds of its recipe")
CELL_WORDS = ("holds", "fails", "partly", "n/a")


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


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def evidence_tables(text: str) -> list[dict[str, tuple[str, ...]]]:
    """Every evidence table in ``text``: row label -> (as ran, correct method)."""
    lines = text.splitlines()
    tables = []
    for i, line in enumerate(lines):
        if line.strip().startswith("|") and tuple(_cells(line)) == EVIDENCE_HEADER:
            rows = {}
            for row in lines[i + 2:]:
                if not row.strip().startswith("|"):
                    break
                cells = _cells(row)
                rows[cells[0]] = tuple(cells[1:])
            tables.append(rows)
    return tables


def notebook_evidence(name: str) -> dict[str, tuple[str, ...]]:
    nb = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    tables = evidence_tables(text)
    assert len(tables) == 1, f"{name}: expected one evidence table, found {len(tables)}"
    return tables[0]


def page_evidence(text: str) -> dict[str, dict[str, tuple[str, ...]]]:
    """Chapter name -> the evidence table of the page's section that links to it."""
    out = {}
    for section in re.split(r"^### ", text, flags=re.MULTILINE)[1:]:
        links = set(re.findall(r"\]\(\.\./notebooks/([^)]+)\.ipynb\)", section)) & set(CHAPTERS)
        tables = evidence_tables(section)
        if len(links) == 1 and len(tables) == 1:
            out[links.pop()] = tables[0]
    return out


def test_evidence_parser_reads_a_table():
    text = ("### 1. x\n\n| Evidence | As the code ran | With the correct method |\n|---|---|---|\n"
            "| The post's own networks | holds: a | fails: b |\n\nSee [c](../notebooks/09_magnitude_collapse.ipynb).\n")
    assert page_evidence(text) == {"09_magnitude_collapse": {"The post's own networks": ("holds: a", "fails: b")}}


@pytest.mark.parametrize("name", CHAPTERS)
def test_chapter_evidence_covers_both_kinds_and_both_methods(name):
    table = notebook_evidence(name)
    assert tuple(table) == EVIDENCE_ROWS
    for label, cells in table.items():
        assert len(cells) == 2, f"{name}: row {label!r} needs two cells"
        for cell in cells:
            word = cell.split(":")[0].strip()
            assert word in CELL_WORDS and ":" in cell and cell.split(":", 1)[1].strip(), \
                f"{name}: cell {cell!r} must read '<{'|'.join(CELL_WORDS)}>: <condition>'"


@pytest.mark.parametrize("name", CHAPTERS)
def test_page_states_the_chapter_evidence_word_for_word(name):
    assert page_evidence(PAGE.read_text()).get(name) == notebook_evidence(name)


EVIDENCE_COLUMNS = EVIDENCE_HEADER[1:]
EVIDENCE_TAG = re.compile(r"^# Evidence: (.+?) / (.+?)(?: \(.*\))?\s*$", re.MULTILINE)


def backed_cells(name: str) -> set[tuple[str, str]]:
    """(row, column) pairs named by an ``# Evidence: <row> / <column>`` line in a folded check
    cell (tagged ``hide-cell``, holding an assert) of a chapter."""
    nb = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
    out = set()
    for cell in nb.cells:
        if (cell.cell_type == "code" and "hide-cell" in cell.metadata.get("tags", [])
                and re.search(r"^\s*assert ", cell.source, flags=re.MULTILINE)):
            out |= {(m.group(1), m.group(2)) for m in EVIDENCE_TAG.finditer(cell.source)}
    return out


def test_evidence_tag_parser():
    assert EVIDENCE_TAG.findall("# Evidence: The post's own networks / As the code ran\n"
                                "# Evidence: Three seeds of its recipe / With the correct method (C2)\n") == [
        ("The post's own networks", "As the code ran"),
        ("Three seeds of its recipe", "With the correct method")]


@pytest.mark.parametrize("name", CHAPTERS)
def test_every_evidence_cell_is_backed_by_a_named_check(name):
    """The page says every cell of a chapter's evidence table is backed by an assert: each
    (row, column) has a folded check cell naming it."""
    missing = {(row, col) for row in EVIDENCE_ROWS for col in EVIDENCE_COLUMNS} - backed_cells(name)
    assert not missing, f"{name}: no check cell names {sorted(missing)}"
