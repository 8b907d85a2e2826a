"""The README's promises: a two-command quickstart that CI runs verbatim, and an index that
lists every lesson (in the README table and in ``lessons/00_index.ipynb``)."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
CI_RUN = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
LESSONS = sorted((ROOT / "lessons").glob("[0-9][0-9]_*.ipynb"))


def section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", README, re.S | re.M)
    assert match, f"README has no '## {title}' section"
    return match.group(1)


def quickstart_commands() -> list[str]:
    blocks = re.findall(r"```(?:bash|sh|shell|console)?\n(.*?)```", section("Quickstart"), re.S)
    lines = [ln.strip() for block in blocks for ln in block.splitlines()]
    return [ln.removeprefix("$ ") for ln in lines if ln and not ln.startswith("#")]


def test_quickstart_has_exactly_two_commands():
    commands = quickstart_commands()
    assert len(commands) == 2, commands
    install, test = commands
    assert "pip install" in install and "jupyter lab" in install, install
    assert "pip install" in test and re.search(r"\bpytest\b", test), test


def test_ci_runs_the_readme_test_command_verbatim():
    test_command = quickstart_commands()[1]
    ci_lines = [ln.strip() for ln in CI_RUN.splitlines() if not ln.strip().startswith("#")]
    assert test_command in ci_lines, f"`.ci/run` does not run the README's test command {test_command!r} on its own line"
    chromium = [i for i, ln in enumerate(ci_lines) if re.search(r"apt-get install[^\n]*\bchromium\b", ln)]
    assert chromium and chromium[0] < ci_lines.index(test_command), "chromium must be installed before the tests run"


def test_ci_sets_the_fast_scale_and_forbids_skips():
    assert re.search(r"^export CI=true$", CI_RUN, re.M), "the browser test may only skip outside CI"
    assert re.search(r"^export EOSTEACH_FAST=1$", CI_RUN, re.M)


def _table_rows() -> dict[str, str]:
    table = re.search(r"<!-- lessons-table -->\n(.*?)<!-- /lessons-table -->", README, re.S)
    assert table, "README lost its lessons table markers"
    return {m.group(1): row for row in table.group(1).splitlines() if (m := re.search(r"\(lessons/([^)]+\.ipynb)\)", row))}


def test_readme_table_lists_every_lesson_with_minutes_and_hardware():
    rows = _table_rows()
    for lesson in LESSONS:
        assert lesson.name in rows, f"README lessons table misses {lesson.name}"
        cells = [c.strip() for c in rows[lesson.name].strip("|").split("|")]
        assert any(c.isdigit() for c in cells), f"no minutes for {lesson.name}"
        assert any("CPU" in c or "GPU" in c for c in cells), f"no CPU/GPU column for {lesson.name}"


def test_index_notebook_links_every_lesson():
    index = ROOT / "lessons" / "00_index.ipynb"
    assert index.is_file(), "lessons/00_index.ipynb is missing"
    text = "\n".join(c.source for c in nbformat.read(index, 4).cells if c.cell_type == "markdown")
    for lesson in LESSONS:
        if lesson.name != index.name:
            assert f"]({lesson.name})" in text, f"00_index.ipynb does not link {lesson.name}"
    for heading in ("Prerequisites", "Minutes", "CPU"):
        assert heading.lower() in text.lower(), f"00_index.ipynb says nothing about {heading}"
