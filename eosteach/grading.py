"""The lessons' exercises as nbgrader assignments, derived from the tags the lessons carry.

    python -m eosteach.grading COURSE_DIR [--lesson 01_descent_lemma ...] [--points N]

writes an nbgrader course folder: ``COURSE_DIR/nbgrader_config.py`` and, for each lesson
with exercises, the assignment ``COURSE_DIR/source/<lesson>/<lesson>.ipynb``. From there
nbgrader's own commands run the course (``nbgrader generate_assignment <lesson>``, then
``collect``/``autograde``/``generate_feedback``; the instructor notes go step by step).

A lesson marks each exercise with three cells (see ``eosteach.student``): the stub (tag
``exercise``), the worked solution (tag ``solution``) and, the next code cell, the check,
which calls a checker from ``eosteach.exercises``. The nbgrader source notebook is the
student copy (``eosteach.student.student_notebook``) with two cells changed:

* the stub becomes an nbgrader *answer* cell (``solution: true``): its source is the stub
  followed by the worked solution inside ``### BEGIN SOLUTION`` / ``### END SOLUTION``. With
  ``ClearSolutions.code_stub`` empty (in the course's config) ``generate_assignment`` leaves
  the stub, which already raises ``NotImplementedError`` with the lesson's guidance;
* the check becomes an *autograded test* cell (``grade: true``, locked, ``points`` each):
  before the checker is called, a ``### BEGIN HIDDEN TESTS`` region rebinds the checker to
  ``graded(checker)``, which raises ``AssertionError`` unless the check passed. The student
  version does not show the region; at ``autograde`` nbgrader restores it, so a check that
  is not passed, or not attempted, scores 0 and the checker's feedback stays in the graded
  notebook above the error.

So the release nbgrader makes is the student copy that ``python -m eosteach.student``
writes, up to nbgrader's own metadata (the ``nbgrader`` cell metadata and the
``editable``/``deletable`` flags of the locked check cells) and one trailing newline in each
answer cell (nbgrader puts its code stub, here an empty line, where the solution region
was); ``tests/test_nbgrader.py`` compares the two.
"""

from __future__ import annotations

import ast
import functools
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from . import student
from .cli import EXIT_USAGE, _Parser
from .files import atomic_write_text

BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
NBGRADER_SCHEMA = 3
CONFIG_NAME = "nbgrader_config.py"
CONFIG = '''\
"""nbgrader settings of an eosteach course (written by `python -m eosteach.grading`)."""

c = get_config()  # noqa: F821 (nbgrader defines it)

# The lessons' stubs already raise NotImplementedError with the lesson's guidance, so the
# solution region is replaced by nothing (one empty line) instead of nbgrader's own stub.
c.ClearSolutions.code_stub = {{"python": ""}}

# The CIFAR-10 lessons train small networks: a cell may take minutes, not nbgrader's 30 s.
c.Execute.timeout = {timeout}
'''
CELL_TIMEOUT_S = 1800
_CHECK_CALL = re.compile(r"\b(check_\w+)\s*\(")


@dataclass(frozen=True)
class Exercise:
    """One exercise of a lesson: the ids of its stub and check cells, and its worked solution."""

    name: str  # the first function the stub defines: the nbgrader grade id of its answer cell
    stub_id: str
    check_id: str
    solution: str  # the worked solution's source


def exercises(nb) -> list[Exercise]:
    """The exercises of the lesson ``nb`` (an nbformat NotebookNode), in order.

    Raises ValueError when a solution cell has no exercise stub before it, no check cell
    after it, or a cell has no id (nbformat 4.5 cell ids name the cells to change)."""
    cells = nb.cells
    found = []
    for i, cell in enumerate(cells):
        if student.SOLUTION_TAG not in student.tags(cell):
            continue
        stubs = [j for j in range(i) if student.EXERCISE_TAG in student.tags(cells[j])]
        checks = [j for j in range(i + 1, len(cells)) if cells[j].cell_type == "code"]
        if not stubs or not checks or not _CHECK_CALL.search(cells[checks[0]].source):
            raise ValueError(f"nb: the solution in cell {i} needs an exercise stub before it and a check cell after it")
        stub, check = cells[stubs[-1]], cells[checks[0]]
        if "id" not in stub or "id" not in check:
            raise ValueError(f"nb: cells {stubs[-1]} and {checks[0]} need cell ids (nbformat >= 4.5)")
        functions = [n.name for n in ast.parse(stub.source).body if isinstance(n, ast.FunctionDef)]
        if not functions:
            raise ValueError(f"nb: the exercise stub in cell {stubs[-1]} defines no function")
        found.append(Exercise(functions[0], stub["id"], check["id"], cell.source))
    return found


def graded(check):
    """The checker ``check`` (an ``eosteach.exercises`` check function) as an autograded test:
    it runs and prints its feedback as usual, returns True when the check passes, and raises
    AssertionError otherwise (not attempted, or not yet right), so nbgrader scores it 0."""
    if not callable(check):
        raise ValueError(f"check must be a check function, got {type(check).__name__}")
    title = getattr(check, "exercise_title", getattr(check, "__name__", "this exercise"))

    @functools.wraps(check)
    def test(*args, **kwargs):
        verdict = check(*args, **kwargs)
        if verdict is None:
            raise AssertionError(f"{title}: not attempted (the function still raises NotImplementedError)")
        if not verdict:
            raise AssertionError(f"{title}: not yet right; the check's feedback is printed above")
        return verdict

    return test


def _nbgrader_meta(grade_id: str, *, solution: bool, grade: bool, points: float = 0) -> dict:
    meta = {"grade": grade, "grade_id": grade_id, "locked": grade and not solution,
            "schema_version": NBGRADER_SCHEMA, "solution": solution, "task": False}
    if grade:
        meta["points"] = points
    return meta


def _with_hidden_test(source: str) -> str:
    """The check cell's source with the hidden region that makes its checkers graded, placed
    before the first top-level line that calls a checker."""
    lines = source.split("\n")
    for i, line in enumerate(lines):
        names = _CHECK_CALL.findall(line)
        if names and not line[:1].isspace() and not line.lstrip().startswith(("from ", "import ", "#")):
            break
    else:
        raise ValueError(f"source: no top-level line calls a check_* function:\n{source}")
    called = sorted(set(_CHECK_CALL.findall(source)))
    region = [BEGIN_HIDDEN, "from eosteach.grading import graded", *(f"{n} = graded({n})" for n in called), END_HIDDEN]
    return "\n".join(lines[:i] + region + lines[i:])


def source_notebook(nb, lesson_name: str, points: float = 1):
    """The nbgrader source notebook of the lesson ``nb`` (not modified): its student copy with
    each stub an answer cell holding the worked solution, and each check an autograded test
    worth ``points`` (module docstring)."""
    if not points > 0:
        raise ValueError(f"points must be > 0, got {points!r}")
    found = exercises(nb)
    copy = student.student_notebook(nb, lesson_name)
    by_id = {cell.get("id"): cell for cell in copy.cells}
    for exercise in found:
        stub, check = by_id[exercise.stub_id], by_id[exercise.check_id]
        stub.source = "\n".join([stub.source, BEGIN_SOLUTION, exercise.solution, END_SOLUTION])
        stub.metadata["nbgrader"] = _nbgrader_meta(exercise.name, solution=True, grade=False)
        check.source = _with_hidden_test(check.source)
        check.metadata["nbgrader"] = _nbgrader_meta(f"check_{exercise.name}", solution=False, grade=True,
                                                    points=points)
    return copy


def write_course(course_dir, lessons_dir, names=None, points: float = 1) -> list[Path]:
    """Write the course's ``nbgrader_config.py`` and one source assignment per lesson with
    exercises (``names``: lesson stems or file names to limit it to); return the notebooks written."""
    import nbformat

    course_dir, lessons_dir = Path(course_dir), Path(lessons_dir)
    lessons = sorted(lessons_dir.glob(student.LESSON_GLOB))
    if names:
        wanted = {Path(n).stem for n in names}
        unknown = wanted - {p.stem for p in lessons}
        if unknown:
            raise ValueError(f"names: no such lesson in {lessons_dir}: {', '.join(sorted(unknown))}")
        lessons = [p for p in lessons if p.stem in wanted]
    written = []
    for lesson in lessons:
        nb = nbformat.read(lesson, as_version=4)
        if not exercises(nb):
            continue
        path = course_dir / "source" / lesson.stem / lesson.name
        atomic_write_text(path, student.render(source_notebook(nb, lesson.name, points)))
        written.append(path)
    atomic_write_text(course_dir / CONFIG_NAME, CONFIG.format(timeout=CELL_TIMEOUT_S))
    return written


def main(argv=None) -> int:
    parser = _Parser(
        prog="python -m eosteach.grading",
        description="Write an nbgrader course folder whose assignments are the lessons' exercises.",
    )
    parser.add_argument("course_dir", type=Path, help="the nbgrader course folder (created if missing)")
    parser.add_argument("--lessons", type=Path, default=None, help="lessons folder (default: the repository's lessons/)")
    parser.add_argument("--lesson", action="append", default=None, metavar="NAME",
                        help="only this lesson (e.g. 01_descent_lemma); repeat for more")
    parser.add_argument("--points", type=float, default=1.0, help="points per exercise (default: 1)")
    args = parser.parse_args(argv)
    lessons_dir = args.lessons or Path(__file__).resolve().parents[1] / "lessons"
    if not lessons_dir.is_dir():
        print(f"error: --lessons {lessons_dir} is not a folder", file=sys.stderr)
        return EXIT_USAGE
    if not args.points > 0:
        print(f"error: --points must be > 0, got {args.points:g}", file=sys.stderr)
        return EXIT_USAGE
    try:
        written = write_course(args.course_dir, lessons_dir, args.lesson, args.points)
    except ValueError as exc:
        print(f"error: {str(exc).replace('names: ', '--lesson: ', 1).splitlines()[0]}", file=sys.stderr)
        return EXIT_USAGE
    for path in written:
        print(f"assignment {path.parent.name}: {path}")
    print(f"{len(written)} assignments in {args.course_dir / 'source'}; next, in {args.course_dir}: "
          f"nbgrader generate_assignment {written[0].parent.name if written else '<lesson>'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
