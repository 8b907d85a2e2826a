"""The lessons' exercises as nbgrader assignments (``python -m eosteach.grading``).

Without nbgrader: the source notebook of a scratch lesson and of every real lesson (answer
cells hold the worked solution, check cells a hidden test), and ``graded``.

With nbgrader (skipped without it, except in CI), in a course folder under tmp_path:

1. ``nbgrader generate_assignment`` on every lesson gives ``python -m eosteach.student``'s
   copy, up to the stated normalisation (``release_as_student_copy``): nbgrader's cell
   metadata (``nbgrader``, and ``editable``/``deletable`` on the cells it locks) and the one
   trailing newline nbgrader leaves where a solution region was;
2. ``nbgrader autograde`` on lesson 1 and on lesson 4 (the CIFAR-10 lesson whose student copy
   runs fastest: its runs are 1,000-image fc-tanh trainings at EOSTEACH_FAST=1): an
   untouched copy scores 0 on every exercise and runs to its last cell with no error outside
   the check cells; a copy with the worked solutions pasted in gets full marks; on lesson 1
   a wrong answer (eta_max = 1/lambda_max instead of 2/lambda_max) scores 0 on that
   exercise only, with the checker's feedback in the graded notebook and in the feedback page.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from eosteach import grading, student

ROOT = Path(__file__).resolve().parents[1]
LESSONS_DIR = ROOT / "lessons"
LESSONS = sorted(LESSONS_DIR.glob(student.LESSON_GLOB))
WITH_EXERCISES = [p for p in LESSONS if grading.exercises(nbformat.read(p, 4))]
NBGRADER_KEYS = ("nbgrader", "editable", "deletable")


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


# --- without nbgrader ----------------------------------------------------------------------


def _scratch_lesson():
    cell = nbformat.v4.new_code_cell
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Scratch"),
        cell('def double(x):\n    """Return 2 x."""\n    raise NotImplementedError("multiply x by 2")',
             metadata={"tags": ["exercise"]}),
        nbformat.v4.new_markdown_cell("Worked solution (expand)"),
        cell('def double(x):\n    """Return 2 x."""\n    return x + x', metadata={"tags": ["solution"]}),
        cell("# NBVAL_CHECK_OUTPUT\nfrom checks import check_double\n\ncheck_double(double)"),
    ]
    return nb


def test_source_notebook_marks_answer_and_test_cells():
    nb = _scratch_lesson()
    before = nbformat.writes(nb)
    source = grading.source_notebook(nb, "01_scratch.ipynb", points=2)
    assert nbformat.writes(nb) == before, "the lesson is not modified"
    answer = next(c for c in source.cells if "exercise" in student.tags(c))
    check = source.cells[-1]
    assert answer.source == (nb.cells[1].source + "\n### BEGIN SOLUTION\n" + nb.cells[3].source
                             + "\n### END SOLUTION")
    assert answer.metadata["nbgrader"] == {"grade": False, "grade_id": "double", "locked": False,
                                           "schema_version": 3, "solution": True, "task": False}
    assert check.metadata["nbgrader"]["grade_id"] == "check_double"
    assert check.metadata["nbgrader"]["points"] == 2 and check.metadata["nbgrader"]["locked"]
    assert check.source.split("\n")[3:8] == [
        "### BEGIN HIDDEN TESTS", "from eosteach.grading import graded",
        "check_double = graded(check_double)", "### END HIDDEN TESTS", "check_double(double)"]
    assert not any(student.SOLUTION_TAG in student.tags(c) for c in source.cells), "laid out as the student copy"
    nbformat.validate(source)


def test_bad_input_names_the_parameter(tmp_path):
    nb = _scratch_lesson()
    with pytest.raises(ValueError, match="points"):
        grading.source_notebook(nb, "x.ipynb", points=0)
    nb.cells[4].source = "print('no check here')"
    with pytest.raises(ValueError, match="nb: the solution"):
        grading.exercises(nb)
    with pytest.raises(ValueError, match="check"):
        grading.graded("not a function")
    with pytest.raises(ValueError, match="names: no such lesson"):
        grading.write_course(tmp_path, LESSONS_DIR, ["99_nope"])


def test_cli_bad_lesson_exits_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "eosteach.grading", str(tmp_path), "--lesson", "99_nope"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "--lesson" in proc.stderr


def test_graded_raises_unless_the_check_passes(capsys):
    from eosteach.exercises.feedback import checker

    @checker("double", library="eosteach.double")
    def check_double(fn):
        return fn(2) == 4

    def untouched(x):
        raise NotImplementedError("multiply x by 2")

    test = grading.graded(check_double)
    assert test(lambda x: x + x) is True
    with pytest.raises(AssertionError, match="double: not attempted"):
        test(untouched)
    assert "Not attempted yet" in capsys.readouterr().out  # the checker's own feedback still prints
    with pytest.raises(AssertionError, match="double: not yet right"):
        test(lambda x: x)


@pytest.mark.parametrize("lesson", WITH_EXERCISES, ids=[p.stem for p in WITH_EXERCISES])
def test_every_exercise_of_every_lesson_becomes_a_graded_pair(lesson):
    nb = nbformat.read(lesson, 4)
    source = grading.source_notebook(nb, lesson.name)
    meta = [c.metadata["nbgrader"] for c in source.cells if "nbgrader" in c.metadata]
    n = sum(student.EXERCISE_TAG in student.tags(c) for c in nb.cells)
    assert [m["solution"] for m in meta] == [True, False] * n
    assert len({m["grade_id"] for m in meta}) == 2 * n, "grade ids are unique"
    for cell in source.cells:
        if cell.metadata.get("nbgrader", {}).get("grade"):
            compile(cell.source, "<check>", "exec")  # the hidden region keeps it valid Python


# --- with nbgrader ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nbgrader_cmd():
    if importlib.util.find_spec("nbgrader") is None:
        message = 'the nbgrader test needs nbgrader (pip install -e ".[grading]")'
        if _in_ci():
            pytest.fail(message + "; CI must run it")
        pytest.skip(message)
    return [sys.executable, "-m", "nbgrader"]


@pytest.fixture(scope="module")
def course(tmp_path_factory, nbgrader_cmd):
    """A course folder with every lesson's assignment generated (the release versions), by
    nbgrader's Python API with the course's nbgrader_config.py: what `nbgrader
    generate_assignment <lesson>` does, without starting nbgrader once per lesson. The
    lessons are copied first (``root/lessons``), and the tests compare with that copy."""
    from nbgrader.apps import NbGraderAPI
    from traitlets.config.loader import PyFileConfigLoader

    root = tmp_path_factory.mktemp("course")
    (root / "lessons").mkdir()
    for lesson in WITH_EXERCISES:
        shutil.copy2(lesson, root / "lessons" / lesson.name)
    assert grading.main([str(root), "--lessons", str(root / "lessons")]) == 0
    config = PyFileConfigLoader(grading.CONFIG_NAME, path=str(root)).load_config()
    config.CourseDirectory.root = str(root)
    api = NbGraderAPI(config=config)
    for lesson in WITH_EXERCISES:
        result = api.generate_assignment(lesson.stem)
        assert result["success"], f"generate_assignment {lesson.stem}: {result.get('error')}\n{result.get('log')}"
    return root


def _nbgrader(cmd, root: Path, *args: str) -> str:
    proc = subprocess.run([*cmd, *args], cwd=root, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def release_as_student_copy(release: dict) -> dict:
    """The normalisation: nbgrader's cell metadata dropped, and the trailing newline that
    ClearSolutions leaves in an answer cell (its empty code stub) removed."""
    release = json.loads(json.dumps(release))
    for cell in release["cells"]:
        answer = cell["metadata"].get("nbgrader", {}).get("solution", False)
        for key in NBGRADER_KEYS:
            cell["metadata"].pop(key, None)
        if answer:
            source = "".join(cell["source"])
            assert source.endswith("\n"), "the code stub is one empty line"
            cell["source"] = source[:-1].splitlines(keepends=True)
    return release


@pytest.mark.slow
@pytest.mark.parametrize("lesson", WITH_EXERCISES, ids=[p.stem for p in WITH_EXERCISES])
def test_release_is_the_student_copy(course, lesson):
    release = json.loads((course / "release" / lesson.stem / lesson.name).read_text(encoding="utf-8"))
    lesson = course / "lessons" / lesson.name
    expected = json.loads(student.render(student.student_notebook(nbformat.read(lesson, 4), lesson.name)))
    normalised = release_as_student_copy(release)
    for i, (got, want) in enumerate(zip(normalised["cells"], expected["cells"])):
        assert got == want, f"{lesson.name} cell {i} differs"
    assert normalised == expected


def _submit(course: Path, lesson: Path, student_id: str, answers=None) -> None:
    """Copy the release into submitted/<student_id>/; ``answers`` maps an exercise's grade id
    to the source its answer cell gets (the rest stay untouched stubs)."""
    dest = course / "submitted" / student_id / lesson.stem / lesson.name
    dest.parent.mkdir(parents=True, exist_ok=True)
    nb = nbformat.read(course / "release" / lesson.stem / lesson.name, 4)
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if answers and grade_id in answers:
            cell.source = answers[grade_id]
    nbformat.write(nb, dest)


def _scores(course: Path, lesson: Path, student_id: str) -> dict[str, tuple[float, float]]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        notebook = gb.find_submission_notebook(lesson.stem, lesson.stem, student_id)
        return {g.name: (g.score, g.max_score) for g in notebook.grades}


def _graded(course: Path, lesson: Path, student_id: str):
    return nbformat.read(course / "autograded" / student_id / lesson.stem / lesson.name, 4)


def _errors(nb) -> list[tuple[int, str, str]]:
    """(cell index, nbgrader grade id or '', error name) of every error output."""
    return [(i, c.metadata.get("nbgrader", {}).get("grade_id", ""), o.get("ename", ""))
            for i, c in enumerate(nb.cells) if c.cell_type == "code"
            for o in c.outputs if o.output_type == "error"]


def _text(cell) -> str:
    return "".join(o.get("text", "") + "".join(o.get("traceback", [])) for o in cell.outputs)


def _autograde_and_check(course, nbgrader_cmd, lesson, wrong=None):
    nb = nbformat.read(lesson, 4)
    solutions = {e.name: e.solution for e in grading.exercises(nb)}
    _submit(course, lesson, "untouched")
    _submit(course, lesson, "solved", solutions)
    if wrong:
        _submit(course, lesson, "wrong", {**solutions, **wrong})
    _nbgrader(nbgrader_cmd, course, "autograde", lesson.stem)
    _nbgrader(nbgrader_cmd, course, "generate_feedback", lesson.stem)
    checks = [f"check_{name}" for name in solutions]

    untouched = _scores(course, lesson, "untouched")
    assert sorted(untouched) == sorted(checks)
    assert all(score == 0 for score, _ in untouched.values()), untouched
    graded = _graded(course, lesson, "untouched")
    errors = _errors(graded)
    assert {grade_id for _, grade_id, _ in errors} == set(checks), f"errors outside the check cells: {errors}"
    assert {ename for *_, ename in errors} == {"AssertionError"}
    last = [c for c in graded.cells if c.cell_type == "code"][-1]
    assert last.execution_count is not None, "an untouched copy runs to its last cell"
    for cell in graded.cells:
        if cell.metadata.get("nbgrader", {}).get("grade"):
            assert "Not attempted yet" in _text(cell)

    solved = _scores(course, lesson, "solved")
    assert all(score == max_score > 0 for score, max_score in solved.values()), solved
    assert not _errors(_graded(course, lesson, "solved"))
    return solutions


@pytest.mark.slow
def test_autograde_lesson_1_untouched_solved_and_wrong(course, nbgrader_cmd):
    lesson = course / "lessons" / "01_descent_lemma.ipynb"
    solution = next(e.solution for e in grading.exercises(nbformat.read(lesson, 4)) if e.name == "gd_step_sizes")
    wrong = solution.replace("eta_max = 2.0 / lam_max", "eta_max = 1.0 / lam_max")
    assert wrong != solution
    _autograde_and_check(course, nbgrader_cmd, lesson, wrong={"gd_step_sizes": wrong})

    scores = _scores(course, lesson, "wrong")
    assert scores["check_gd_step_sizes"][0] == 0
    assert scores["check_gd_trajectory"][0] == scores["check_gd_trajectory"][1] > 0
    graded = _graded(course, lesson, "wrong")
    check = next(c for c in graded.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "check_gd_step_sizes")
    feedback = _text(check)
    assert "Not yet" in feedback and "AssertionError" in feedback, feedback
    page = (course / "feedback" / "wrong" / lesson.stem / "01_descent_lemma.html").read_text(encoding="utf-8")
    first_line = next(line for line in feedback.splitlines() if line.startswith("Not yet"))
    assert first_line.split(":")[0] in page, "the checker's feedback is in the feedback page"


@pytest.mark.slow
def test_autograde_lesson_4_untouched_and_solved(course, nbgrader_cmd, cifar_root):
    _autograde_and_check(course, nbgrader_cmd, course / "lessons" / "04_edge_of_stability.ipynb")
