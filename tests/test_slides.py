"""Seminar slides: every lesson carries slide metadata and builds into a sensible reveal.js deck.

Rules (from the lesson structure): every cell has ``metadata.slideshow.slide_type``;
Markdown cells that start with "# " or "## " open a slide, "### " a sub-slide; worked
solutions are skipped. The decks are built with ``jupyter nbconvert --to slides`` (all
lessons in one call) and must have several sections, the lesson's title, and no solution.
"""

from __future__ import annotations

import html
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from eosteach import student

ROOT = Path(__file__).resolve().parents[1]
LESSONS = sorted((ROOT / "lessons").glob(student.LESSON_GLOB))
IDS = [p.stem for p in LESSONS]
SLIDE_TYPES = {"slide", "subslide", "fragment", "-", "skip", "notes"}


def expected_slide_type(cell) -> str | None:
    """The slide type the rules impose on ``cell``, or None where the author may choose."""
    if student.SOLUTION_TAG in student.tags(cell):
        return "skip"
    if cell.cell_type == "markdown":
        first = cell.source.lstrip().split("\n", 1)[0]
        if first.startswith(("# ", "## ")):
            return "slide"
        if first.startswith("### "):
            return "subslide"
    return None


@pytest.mark.parametrize("lesson", LESSONS, ids=IDS)
def test_every_cell_has_slide_metadata(lesson):
    nb = nbformat.read(lesson, 4)
    wrong = []
    for i, cell in enumerate(nb.cells):
        kind = cell.metadata.get("slideshow", {}).get("slide_type")
        want = expected_slide_type(cell)
        if kind not in SLIDE_TYPES or (want is not None and kind != want):
            wrong.append(f"cell {i} ({cell.source[:40]!r}): slide_type={kind!r}, expected {want or 'one of ' + str(sorted(SLIDE_TYPES))}")
    assert not wrong, f"{lesson.name}:\n" + "\n".join(wrong)
    assert nb.cells and expected_slide_type(nb.cells[0]) == "slide", f"{lesson.name} must open with a title slide"


@pytest.fixture(scope="module")
def decks(tmp_path_factory):
    if not LESSONS:
        pytest.skip("no lessons yet")
    out = tmp_path_factory.mktemp("slides")
    proc = subprocess.run(
        [sys.executable, "-m", "jupyter", "nbconvert", "--to", "slides", "--output-dir", str(out), *map(str, LESSONS)],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def _visible_text(page: str) -> str:
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", "", page))


@pytest.mark.parametrize("lesson", LESSONS, ids=IDS)
def test_deck_is_sensible(decks, lesson):
    deck = decks / f"{lesson.stem}.slides.html"
    assert deck.is_file(), f"nbconvert wrote no deck for {lesson.name}"
    page = deck.read_text(encoding="utf-8")
    nb = nbformat.read(lesson, 4)
    n_slides = sum(1 for c in nb.cells if c.metadata.get("slideshow", {}).get("slide_type") == "slide")
    # reveal.js: one <section> per slide, nested <section>s for its sub-slides.
    assert page.count("<section") >= max(3, n_slides), f"{lesson.name}: only {page.count('<section')} sections"
    assert "reveal" in page.lower()
    title = nb.cells[0].source.lstrip("# ").split("\n", 1)[0].strip()
    text = _visible_text(page)
    assert title in text, f"{lesson.name}: the deck lacks the title {title!r}"
    elsewhere = "\n".join(c.source for c in nb.cells if student.SOLUTION_TAG not in student.tags(c))
    for cell in nb.cells:
        if student.SOLUTION_TAG in student.tags(cell):
            for line in cell.source.splitlines():
                s = line.strip()
                if len(s) >= 20 and not s.startswith(("def ", "#", '"""')) and s not in elsewhere:
                    assert s not in text, f"{lesson.name}: a solution line is in the deck: {s!r}"
