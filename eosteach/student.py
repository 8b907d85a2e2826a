"""Student copies of the lessons: the same notebooks without the worked solutions.

    python -m eosteach.student            # (re)build lessons/student/*.ipynb
    python -m eosteach.student --check    # exit 1 when a student copy is out of date

The lessons mark their exercises with cell tags (see the lesson structure in the README):

* ``exercise``: the stub the learner completes; its function body raises
  ``NotImplementedError("...guidance...")``. Kept as it is.
* ``solution``: the worked solution, the code cell right after the stub, preceded by a
  Markdown cell "Worked solution (expand)". Both are removed; one Markdown cell points to
  the full lesson instead, so that a learner who is stuck knows where to look.

Every output, execution count and saved widget state is cleared, so a student copy shows
nothing that a run would compute. The build is deterministic: the same lessons give the
same copies, which is what ``--check`` (and ``tests/test_student.py``) compares.

Needs no nbgrader. ``eosteach.grading`` turns the same tags into nbgrader assignments, whose
student version (``nbgrader generate_assignment``) is this copy up to nbgrader's own
metadata (``tests/test_nbgrader.py`` compares the two).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

from .files import atomic_write_text

SOLUTION_TAG = "solution"
EXERCISE_TAG = "exercise"
LESSON_GLOB = "[0-9][0-9]_*.ipynb"
STUDENT_DIR = "student"
POINTER = (
    "**Worked solution: not in the student copy.** Try the exercise above first; the check "
    "cell below tells you what is right and what is not. The worked solution is in the full "
    "lesson, [{name}](../{name})."
)


def tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _is_solution_heading(cell) -> bool:
    return cell["cell_type"] == "markdown" and "worked solution" in _text(cell).lower()[:80]


def _text(cell) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def _pointer_cell(solution_cell, lesson_name: str):
    import nbformat

    cell = nbformat.v4.new_markdown_cell(POINTER.format(name=lesson_name))
    cell.metadata["slideshow"] = {"slide_type": "-"}
    cell.metadata["tags"] = ["solution-removed"]
    if "id" in solution_cell:  # a stable id keeps rebuilds identical
        cell["id"] = ("removed-" + solution_cell["id"])[:64]
    else:  # nbformat < 4.5 has no cell ids; a random one would make every build differ
        cell.pop("id", None)
    return cell


def student_notebook(nb, lesson_name: str):
    """Return the student copy of the lesson ``nb`` (an nbformat NotebookNode; not modified)."""
    nb = copy.deepcopy(nb)
    cells = []
    for cell in nb.cells:
        if SOLUTION_TAG in tags(cell):
            # Drop the "Worked solution (expand)" heading that introduced the solution.
            if cells and _is_solution_heading(cells[-1]):
                cells.pop()
            cells.append(_pointer_cell(cell, lesson_name))
            continue
        if cell["cell_type"] == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
            cell["metadata"].pop("execution", None)
        cells.append(cell)
    nb.cells = cells
    nb.metadata.pop("widgets", None)  # saved widget state is output too
    return nb


def render(nb) -> str:
    import nbformat

    return nbformat.writes(nb) + "\n"


def expected_copies(lessons_dir) -> dict[Path, str]:
    """Map each student-copy path to the text it must have, for every lesson in ``lessons_dir``."""
    import nbformat

    lessons_dir = Path(lessons_dir)
    out = {}
    for lesson in sorted(lessons_dir.glob(LESSON_GLOB)):
        nb = nbformat.read(lesson, as_version=4)
        out[lessons_dir / STUDENT_DIR / lesson.name] = render(student_notebook(nb, lesson.name))
    return out


def _same(path: Path, text: str) -> bool:
    """Whether ``path`` holds the notebook ``text`` (compared as JSON, so that another
    nbformat version's whitespace or key order does not count as a change)."""
    try:
        return json.loads(path.read_text(encoding="utf-8")) == json.loads(text)
    except (OSError, ValueError):
        return False


def stale_copies(lessons_dir) -> list[str]:
    """Student copies that are missing, out of date, or left over from a removed lesson."""
    expected = expected_copies(lessons_dir)
    problems = []
    for path, text in expected.items():
        if not path.is_file():
            problems.append(f"missing: {path.name}")
        elif not _same(path, text):
            problems.append(f"out of date: {path.name}")
    for path in sorted((Path(lessons_dir) / STUDENT_DIR).glob(LESSON_GLOB)):
        if path not in expected:
            problems.append(f"no such lesson: {path.name}")
    return problems


def build(lessons_dir) -> list[Path]:
    """Write every student copy that differs and remove copies of lessons that are gone."""
    expected = expected_copies(lessons_dir)
    written = []
    for path, text in expected.items():
        if not _same(path, text):
            atomic_write_text(path, text)
            written.append(path)
    for path in (Path(lessons_dir) / STUDENT_DIR).glob(LESSON_GLOB):
        if path not in expected:
            path.unlink()
    return written


def _default_lessons_dir() -> Path:
    return Path(__file__).resolve().parents[1] / "lessons"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m eosteach.student",
        description="Build the student copies of the lessons (solutions removed, outputs cleared).",
    )
    parser.add_argument("--lessons", type=Path, default=None, help="lessons folder (default: the repository's lessons/)")
    parser.add_argument("--check", action="store_true", help="build nothing; exit 1 if a copy is out of date")
    args = parser.parse_args(argv)
    lessons_dir = args.lessons or _default_lessons_dir()
    if not lessons_dir.is_dir():
        print(f"error: --lessons {lessons_dir} is not a folder", file=sys.stderr)
        return 2
    if args.check:
        problems = stale_copies(lessons_dir)
        for p in problems:
            print(p, file=sys.stderr)
        if problems:
            print("run `python -m eosteach.student` to rebuild the student copies", file=sys.stderr)
            return 1
        print(f"student copies up to date in {lessons_dir / STUDENT_DIR}")
        return 0
    written = build(lessons_dir)
    print(f"{len(written)} student cop{'y' if len(written) == 1 else 'ies'} written to {lessons_dir / STUDENT_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
