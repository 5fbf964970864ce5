"""The chapter contract of CONTRIBUTING.md ("Writing for the reader", "Figures"), measured.

Each numbered chapter is measured from its notebook's JSON (sources, cell tags, cell metadata and
stored outputs): prose words, numbers per 100 words of prose, figures and words per figure,
assert lines in visible cells, dotted code names in prose outside the closing "Code used in this
chapter" section, the widest stored figure, figures without a caption, a name or alt text, figures
the prose never refers to, phrases about the book's own making, the opening (question and
answer in at most five lines) and the skeleton's sections.

A chapter that is still being rewritten may be listed in ``KNOWN_EXCEPTIONS`` for a measure, with
the issue that rewrites it; such an entry is a strict expected failure, so it has to leave the
list as soon as the chapter meets the measure.

The front page's "What the book found" and "Where to start" are tested here too: its verdicts
are the chapters', its numbers are the chapters' computed ones, and its short path is short.
"""

from __future__ import annotations

import base64
import functools
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
INTRO = ROOT / "book" / "intro.md"

FOLDED = {"hide-cell", "hide-input", "remove-input", "remove-cell"}
NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:[.,]\d+)*(?:e-?\d+)?\s?%?")
DOTTED = re.compile(r"`[A-Za-z_]\w*\.[A-Za-z_][\w.]*(?:\([^`]*\))?`")
HISTORY = re.compile(r"re-?executed|as it was first made|before the checkpoints were|earlier version|"
                     r"previous session|this chapter used to|was first written", re.IGNORECASE)
SECTIONS = ("what you will learn", "summary", "exercises", "code used in this chapter")

LIMITS = {
    "visible_asserts": 0,
    "dotted_names": 3,
    "widest_px": 850,
    "figures_without_caption": 0,
    "figures_not_referenced": 0,
    "history_phrases": 0,
    "opening_lines": 5,
    "missing_sections": 0,
    "words_per_figure": 800,
    "numbers_per_100_words": 3.5,
}

# chapter -> {measure: the issue that rewrites it}; strict expected failures (see the docstring).
KNOWN_EXCEPTIONS: dict[str, dict[str, str]] = {}


def prose(markdown: str) -> str:
    """Markdown without code blocks, display math and inline math."""
    markdown = re.sub(r"```.*?```", " ", markdown, flags=re.S)
    markdown = re.sub(r"\$\$.*?\$\$", " ", markdown, flags=re.S)
    return re.sub(r"\$[^$]*\$", " ", markdown)


def png_width(b64: str) -> int:
    raw = base64.b64decode(b64[:64])
    return int.from_bytes(raw[16:20], "big") if raw[:8] == b"\x89PNG\r\n\x1a\n" else 0


def opening_lines(first_cell: str) -> int:
    """Non-empty source lines between the title and "What you will learn"."""
    lines = first_cell.splitlines()
    body = lines[1:]
    for i, line in enumerate(body):
        if "what you will learn" in line.lower():
            body = body[:i]
            break
    else:
        return 99
    return sum(1 for line in body if line.strip())


def measure(path: Path) -> dict[str, float]:
    nb = json.loads(path.read_text())
    cells = nb["cells"]
    words = numbers = dotted = asserts = history = 0
    figures = widest = uncaptioned = 0
    names: list[str] = []
    headings: list[str] = []
    markdown_all = ""
    in_code_note = False
    for cell in cells:
        source = "".join(cell["source"])
        meta = cell.get("metadata", {})
        tags = set(meta.get("tags", []))
        if cell["cell_type"] == "markdown":
            markdown_all += source + "\n"
            for heading in re.findall(r"^#+\s+(?:\d+(?:\.\d+)*\.?\s+)?(.*)$", source, flags=re.M):
                headings.append(heading.strip().lower())
                in_code_note = heading.strip().lower().startswith("code used")
            text = prose(source)
            words += len(text.split())
            numbers += len(NUMBER.findall(re.sub(r"`[^`]*`", " ", text)))
            history += len(HISTORY.findall(text))
            if not in_code_note:
                dotted += len(DOTTED.findall(source))
        elif cell["cell_type"] == "code":
            if not tags & FOLDED:
                asserts += sum(1 for line in source.splitlines() if line.strip().startswith("assert "))
            for output in cell.get("outputs", []):
                png = output.get("data", {}).get("image/png")
                if png is None or tags & {"remove-output", "remove-cell"}:
                    continue
                figures += 1
                widest = max(widest, png_width(png))
                mystnb = meta.get("mystnb", {})
                figure, image = mystnb.get("figure", {}), mystnb.get("image", {})
                if not (figure.get("caption") and figure.get("name") and image.get("alt")):
                    uncaptioned += 1
                if figure.get("name"):
                    names.append(figure["name"])
    for heading in re.findall(r"^\*\*(What you will learn)\*\*", markdown_all, flags=re.M | re.I):
        headings.append(heading.lower())
    referenced = set(re.findall(r"\{numref\}`(?:[^`<]*<)?([\w-]+)>?`", markdown_all))
    first = "".join(cells[0]["source"]) if cells and cells[0]["cell_type"] == "markdown" else ""
    return {
        "words": words,
        "figures": figures,
        "visible_asserts": asserts,
        "dotted_names": dotted,
        "widest_px": widest,
        "figures_without_caption": uncaptioned,
        "figures_not_referenced": sum(1 for n in names if n not in referenced),
        "history_phrases": history,
        "opening_lines": opening_lines(first),
        "missing_sections": sum(1 for s in SECTIONS if not any(h.startswith(s) for h in headings)),
        "words_per_figure": words / max(figures, 1),
        "numbers_per_100_words": 100 * numbers / max(words, 1),
    }


@functools.cache
def measured(name: str) -> dict[str, float]:
    return measure(ROOT / "notebooks" / f"{name}.ipynb")


def _cases():
    for path in NOTEBOOKS:
        name = path.stem
        for key in LIMITS:
            issue = KNOWN_EXCEPTIONS.get(name, {}).get(key)
            marks = [pytest.mark.xfail(strict=True, reason=f"rewritten under {issue}")] if issue else []
            yield pytest.param(name, key, marks=marks, id=f"{name}-{key}")


@pytest.mark.parametrize("name,key", list(_cases()))
def test_chapter_meets_the_contract(name, key):
    value = measured(name)[key]
    assert value <= LIMITS[key], f"{name}: {key} is {value:.1f}, the contract allows {LIMITS[key]}"


def test_exceptions_name_real_chapters_and_measures():
    stems = {p.stem for p in NOTEBOOKS}
    for name, measures in KNOWN_EXCEPTIONS.items():
        assert name in stems, name
        assert set(measures) <= set(LIMITS), measures


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_chapter_stores_an_error_or_a_warning(path):
    """An exception inside a display formatter (a figure that failed to draw) does not stop the
    notebook, so it is caught here; so is anything written to stderr."""
    for i, cell in enumerate(json.loads(path.read_text())["cells"]):
        for output in cell.get("outputs", []):
            assert output["output_type"] != "error", f"cell {i}: {output.get('ename')}: {output.get('evalue')}"
            assert output.get("name") != "stderr", f"cell {i} writes to stderr: {''.join(output['text'])[:200]}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_cell_has_its_own_id(path):
    """nbformat 4.5 requires a cell id (new cells written by hand tend to lack one)."""
    ids = [cell.get("id") for cell in json.loads(path.read_text())["cells"]]
    assert all(ids) and len(set(ids)) == len(ids), [i for i, x in enumerate(ids) if not x]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_numbered_sections_run_one_to_n(path):
    numbers = [int(m) for cell in json.loads(path.read_text())["cells"] if cell["cell_type"] == "markdown"
               for m in re.findall(r"^## (\d+)\.", "".join(cell["source"]), flags=re.M)]
    assert numbers == list(range(1, len(numbers) + 1)), numbers


def test_figure_names_are_unique_across_the_book():
    seen: dict[str, str] = {}
    for path in NOTEBOOKS:
        for cell in json.loads(path.read_text())["cells"]:
            name = cell.get("metadata", {}).get("mystnb", {}).get("figure", {}).get("name")
            if name:
                assert name not in seen, f"{name} in {path.stem} and {seen[name]}"
                seen[name] = path.stem


def test_measure_counts_what_it_should(tmp_path):
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0\0\0\rIHDR" + (900).to_bytes(4, "big") + b"\0" * 40).decode()
    cells = [
        {"cell_type": "markdown", "metadata": {}, "source": "# T\n\nWhy? Because.\n\n**What you will learn**\n"},
        {"cell_type": "code", "metadata": {}, "outputs": [{"data": {"image/png": png}}],
         "source": "x = 1\nassert x == 1\n"},
        {"cell_type": "code", "metadata": {"tags": ["hide-cell"]}, "outputs": [], "source": "assert True\n"},
        {"cell_type": "markdown", "metadata": {}, "source": "## 1. Step\n\nWe call `pruning.prune` in 2 ways.\n"},
        {"cell_type": "markdown", "metadata": {}, "source": "## Code used in this chapter\n\n`a.b` `c.d`\n"},
    ]
    path = tmp_path / "01_x.ipynb"
    path.write_text(json.dumps({"cells": cells}))
    m = measure(path)
    assert (m["visible_asserts"], m["dotted_names"], m["widest_px"]) == (1, 1, 900)
    assert (m["figures"], m["figures_without_caption"], m["opening_lines"]) == (1, 1, 1)
    assert m["missing_sections"] == 2  # summary and exercises


# --- the front page -------------------------------------------------------------------------

def intro_section(title: str) -> str:
    text = INTRO.read_text()
    start = text.index(f"## {title}")
    end = text.find("\n## ", start + 3)
    return text[start:end if end > 0 else None]


def chapter_evidence(name: str) -> str:
    """What a chapter computed and states: its stored outputs and its evidence-table rows."""
    nb = json.loads((ROOT / "notebooks" / f"{name}.ipynb").read_text())
    parts = []
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            for output in cell.get("outputs", []):
                parts.append("".join(output.get("text", "")))
                parts.append("".join(output.get("data", {}).get("text/plain", "")))
        else:
            parts += [line for line in "".join(cell["source"]).splitlines() if line.startswith("|")]
    return "\n".join(parts)


def found_lines() -> list[str]:
    return [line for line in intro_section("What the book found").splitlines() if line.startswith("- ")]


def test_what_the_book_found_fits_a_dozen_lines():
    lines = [line for line in intro_section("What the book found").splitlines()[1:] if line.strip()]
    assert len(lines) <= 12


def test_what_the_book_found_gives_the_chapters_verdicts():
    from test_verdicts import CHAPTERS, notebook_verdict  # tests/ is on sys.path (rootdir conftest)

    for name in CHAPTERS:
        line = next(line for line in found_lines() if f"{name}.ipynb" in line)
        assert re.search(rf":\s*{notebook_verdict(name)}\.\*\*", line), (name, line)


def test_what_the_book_found_counts_the_replay_as_chapter_7_does():
    evidence = chapter_evidence("07_as_the_code_ran")
    exact = re.search(r"under every kernel setting tested: (\d+) of (\d+)", evidence)
    assert exact, "chapter 7 no longer prints its count of exact numbers"
    line = next(line for line in found_lines() if "07_as_the_code_ran" in line)
    assert f"{exact.group(1)} of its {exact.group(2)} published" in line


@pytest.mark.parametrize("line", found_lines(), ids=lambda line: line[:40])
def test_every_number_on_the_front_page_is_one_its_chapter_states(line):
    names = re.findall(r"\(\.\./notebooks/([\w]+)\.ipynb\)", line)
    assert names, f"no chapter linked: {line}"
    text = re.sub(r"\[[^\]]*\]\([^)]*\)", " ", prose(line))  # drop the links ("chapter 9")
    evidence = "\n".join(chapter_evidence(n) for n in names)
    for number in re.findall(r"(?<![\w.])\d+(?:[.,]\d+)*", text):
        assert re.search(rf"(?<![\w.]){re.escape(number)}(?![\d])", evidence), (number, names)


def section_words(name: str, wanted: set[str]) -> int:
    """Prose words (plus 150 per figure) of a chapter's opening, numbered sections and summary."""
    nb = json.loads((ROOT / "notebooks" / f"{name}.ipynb").read_text())
    words, current = 0, "opening"
    for cell in nb["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown":
            for line in prose(source).splitlines():
                heading = re.match(r"^##\s+(\d+)?\.?\s*(.*)$", line)
                if heading:
                    current = heading.group(1) or heading.group(2).strip().lower()
                elif current in wanted:
                    words += len(line.split())
        elif current in wanted:
            words += 150 * sum("image/png" in o.get("data", {}) for o in cell.get("outputs", []))
    return words


def test_the_one_hour_path_is_short_and_says_how_long_it_is():
    section = intro_section("Where to start")
    total = len(prose(INTRO.read_text()).split())  # this page, read first
    for line in section.splitlines():
        link = re.search(r"\(\.\./notebooks/(\w+)\.ipynb\): (.*)$", line)
        if link:
            wanted = {"opening"} | set(re.findall(r"\d+", link.group(2)))
            wanted |= {"summary"} if "summary" in link.group(2) else set()
            if "to" in link.group(2).split():  # "sections 1 to 3"
                a, b = map(int, re.search(r"(\d+) to (\d+)", link.group(2)).groups())
                wanted |= {str(i) for i in range(a, b + 1)}
            words = section_words(link.group(1), wanted)
            assert words > 0, line
            total += words
        elif "(verdicts.md)" in line:
            total += len(prose((ROOT / "book" / "verdicts.md").read_text()).split())
    stated = int(re.search(r"about ([\d,]+) words", section).group(1).replace(",", ""))
    assert total <= 12_000
    assert abs(total - stated) <= 0.15 * stated, f"the path has {total} words, the page says {stated}"
