"""Student copies (``python -m eosteach.student``): up to date, no solution leaks, stubs raise.

The builder is first checked on a scratch lesson in tmp_path (every rule, including the
staleness check), then the committed ``lessons/student/`` copies are checked against the
real lessons.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from eosteach import student

ROOT = Path(__file__).resolve().parents[1]
LESSONS = sorted((ROOT / "lessons").glob(student.LESSON_GLOB))
WITH_EXERCISES = [p for p in LESSONS if any(student.EXERCISE_TAG in student.tags(c) for c in nbformat.read(p, 4).cells)]

STUB = '''def double(x):
    """Return 2 x."""
    raise NotImplementedError("multiply x by 2 and return it")
'''
SOLUTION = '''def double(x):
    """Return 2 x."""
    doubled_value_secret = x + x
    return doubled_value_secret
'''


def _cell(kind, source, tags=(), slide="-", **meta):
    make = nbformat.v4.new_code_cell if kind == "code" else nbformat.v4.new_markdown_cell
    cell = make(source)
    cell.metadata.update(meta)
    cell.metadata["slideshow"] = {"slide_type": slide}
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


def scratch_lesson() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        _cell("markdown", "# Scratch lesson", slide="slide"),
        _cell("code", "print('hello')"),
        _cell("code", STUB, tags=["exercise"]),
        _cell("markdown", "Worked solution (expand)"),
        _cell("code", SOLUTION, tags=["solution"], slide="skip", jupyter={"source_hidden": True}),
        _cell("code", "assert double(2) == 4"),
    ]
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", text="hello\n")]
    nb.cells[1].execution_count = 1
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    return nb


@pytest.fixture
def scratch(tmp_path):
    nbformat.write(scratch_lesson(), tmp_path / "01_scratch.ipynb")
    return tmp_path


def test_builder_removes_solutions_and_outputs(scratch):
    assert student.main(["--lessons", str(scratch)]) == 0
    copy = nbformat.read(scratch / "student" / "01_scratch.ipynb", 4)
    text = "".join(c.source for c in copy.cells)
    assert "doubled_value_secret" not in text
    assert "Worked solution (expand)" not in text
    assert "[01_scratch.ipynb](../01_scratch.ipynb)" in text  # the pointer to the full lesson
    assert [student.tags(c) for c in copy.cells if student.tags(c)] == [["exercise"], ["solution-removed"]]
    assert all(c.outputs == [] and c.execution_count is None for c in copy.cells if c.cell_type == "code")
    assert "widgets" not in copy.metadata
    nbformat.validate(copy)


def test_check_fails_when_a_copy_is_stale(scratch, capsys):
    assert student.main(["--lessons", str(scratch), "--check"]) == 1  # missing
    assert student.main(["--lessons", str(scratch)]) == 0
    assert student.main(["--lessons", str(scratch), "--check"]) == 0
    first = (scratch / "student" / "01_scratch.ipynb").read_bytes()
    student.main(["--lessons", str(scratch)])
    assert (scratch / "student" / "01_scratch.ipynb").read_bytes() == first, "the build must be deterministic"

    nb = nbformat.read(scratch / "01_scratch.ipynb", 4)
    nb.cells[1].source = "print('changed')"
    nbformat.write(nb, scratch / "01_scratch.ipynb")
    capsys.readouterr()
    assert student.main(["--lessons", str(scratch), "--check"]) == 1
    assert "out of date: 01_scratch.ipynb" in capsys.readouterr().err

    student.main(["--lessons", str(scratch)])
    (scratch / "01_scratch.ipynb").rename(scratch / "01_renamed.ipynb")
    assert "no such lesson: 01_scratch.ipynb" in student.stale_copies(scratch)
    student.main(["--lessons", str(scratch)])
    assert sorted(p.name for p in (scratch / "student").iterdir()) == ["01_renamed.ipynb"]


def test_cli_bad_folder_exits_2(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "eosteach.student", "--lessons", str(tmp_path / "nope")],
        capture_output=True, text=True, cwd=ROOT,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "--lessons" in proc.stderr


# --- the committed copies --------------------------------------------------------------


def test_student_copies_are_up_to_date():
    problems = student.stale_copies(ROOT / "lessons")
    assert not problems, "run `python -m eosteach.student`: " + "; ".join(problems)


def _distinctive_lines(solution: str, elsewhere: str) -> list[str]:
    """Lines of the solution that the rest of the lesson does not show (the actual answer);
    a stub's guidance may quote an update rule, so text found elsewhere does not count."""
    keep = []
    for line in solution.splitlines():
        s = line.strip()
        if len(s) >= 12 and s not in elsewhere and not s.startswith(("#", '"""', "def ")):
            keep.append(s)
    return keep


@pytest.mark.parametrize("lesson", LESSONS, ids=[p.stem for p in LESSONS])
def test_no_solution_leaks(lesson):
    nb = nbformat.read(lesson, 4)
    copy = nbformat.read(lesson.parent / "student" / lesson.name, 4)
    copy_text = "\n".join(c.source for c in copy.cells)
    # Lines that the lesson also shows outside its solutions (imports, the stub's docstring) may stay.
    elsewhere = "\n".join(c.source for c in nb.cells if student.SOLUTION_TAG not in student.tags(c))
    for cell in nb.cells:
        if student.SOLUTION_TAG not in student.tags(cell):
            continue
        for line in _distinctive_lines(cell.source, elsewhere):
            assert line not in copy_text, f"{lesson.name}: solution line leaks into the student copy: {line!r}"
    assert not any(student.SOLUTION_TAG in student.tags(c) for c in copy.cells)
    assert all(not c.get("outputs") for c in copy.cells if c.cell_type == "code")


@pytest.mark.parametrize("lesson", LESSONS, ids=[p.stem for p in LESSONS])
def test_exercise_and_solution_cells_follow_the_convention(lesson):
    """Stub tagged "exercise", then two or more "hint" Markdown cells (hint 1: the idea;
    hint 2: the formula or API), each collapsed in a <details> block, then the "Worked
    solution" Markdown, then the hidden "solution" cell, then a check cell."""
    cells = nbformat.read(lesson, 4).cells
    for i, cell in enumerate(cells):
        if student.SOLUTION_TAG in student.tags(cell):
            assert cell.cell_type == "code", f"{lesson.name} cell {i}: solution must be a code cell"
            assert cell.metadata.get("jupyter", {}).get("source_hidden") is True, f"{lesson.name} cell {i}: collapse it"
            before = [c for c in cells[:i] if c.cell_type == "code"]
            assert before and student.EXERCISE_TAG in student.tags(before[-1]), (
                f"{lesson.name} cell {i}: the code cell before a solution must be its exercise stub"
            )
            assert student._is_solution_heading(cells[i - 1]), f"{lesson.name} cell {i}: no 'Worked solution' heading"
            stub_at = max(j for j in range(i) if student.EXERCISE_TAG in student.tags(cells[j]))
            hints = cells[stub_at + 1:i - 1]
            assert len(hints) >= 2, f"{lesson.name} cell {i}: an exercise needs at least two tiered hints"
            for k, hint in enumerate(hints, start=1):
                assert hint.cell_type == "markdown" and "hint" in student.tags(hint), (
                    f"{lesson.name} cell {stub_at + k}: between a stub and its solution only hint cells"
                )
                assert hint.source.lstrip().startswith(f"<details><summary>Hint {k}"), (
                    f"{lesson.name} cell {stub_at + k}: hint {k} must be a collapsed <details> block"
                )
            check = next((c for c in cells[i + 1:] if c.cell_type == "code"), None)
            assert check is not None and "check_" in check.source, f"{lesson.name} cell {i}: no check cell after it"
            assert "assert check_" not in check.source, (
                f"{lesson.name} cell {i}: a check returns None when not attempted; do not assert on it"
            )


@pytest.mark.parametrize("lesson", [p for p in LESSONS if p.name[:2] != "00"],
                         ids=[p.stem for p in LESSONS if p.name[:2] != "00"])
def test_every_lesson_has_two_exercises(lesson):
    stubs = [c for c in nbformat.read(lesson, 4).cells if student.EXERCISE_TAG in student.tags(c)]
    assert len(stubs) >= 2, f"{lesson.name}: at least two coding exercises, found {len(stubs)}"


# What a stub's message must not contain: code that is the answer (an assignment, a loop, a
# call into torch or numpy). The message says what is asked; the how lives in the hints.
_CODE_IN_MESSAGE = re.compile(r"(\b\w+\s*=[^=]|\bfor \w+ in\b|\btorch\.\w|\bnp\.\w|\bautograd\b|return \w)")


@pytest.mark.parametrize("lesson", WITH_EXERCISES, ids=[p.stem for p in WITH_EXERCISES])
def test_stub_messages_ask_not_tell(lesson):
    for cell in nbformat.read(lesson, 4).cells:
        if student.EXERCISE_TAG not in student.tags(cell):
            continue
        for name, fn, node in _stub_functions(cell.source):
            n_args = len(node.args.args) - len(node.args.defaults)
            with pytest.raises(NotImplementedError) as info:
                fn(*([None] * n_args))
            found = _CODE_IN_MESSAGE.search(str(info.value))
            assert not found, f"{lesson.name}: {name}'s message gives the how ({found.group(0)!r}): {info.value}"


def _stub_functions(source: str):
    """Compile only the function definitions of a stub cell (imports are not needed to call them)."""
    tree = ast.parse(source)
    funcs = [node for node in tree.body if isinstance(node, ast.FunctionDef)]
    module = ast.Module(body=funcs, type_ignores=[])
    namespace: dict = {}
    exec(compile(module, "<stub>", "exec"), namespace)
    return [(f.name, namespace[f.name], f) for f in funcs]


@pytest.mark.parametrize("lesson", WITH_EXERCISES, ids=[p.stem for p in WITH_EXERCISES])
def test_stubs_raise_not_implemented_with_guidance(lesson):
    copy = nbformat.read(lesson.parent / "student" / lesson.name, 4)
    stubs = [c for c in copy.cells if student.EXERCISE_TAG in student.tags(c)]
    assert stubs, f"{lesson.name}: the student copy lost its exercise stubs"
    for cell in stubs:
        functions = _stub_functions(cell.source)
        assert functions, f"{lesson.name}: an exercise stub must define a function:\n{cell.source}"
        for name, fn, node in functions:
            assert ast.get_docstring(node), f"{lesson.name}: stub {name} needs a docstring"
            n_args = len(node.args.args) - len(node.args.defaults)
            with pytest.raises(NotImplementedError) as info:
                fn(*([None] * n_args))
            assert len(str(info.value)) >= 20, f"{lesson.name}: {name}'s NotImplementedError must guide: {info.value!r}"


def test_scratch_stub_raises(scratch):
    student.build(scratch)
    copy = nbformat.read(scratch / "student" / "01_scratch.ipynb", 4)
    [(name, fn, _)] = _stub_functions(next(c for c in copy.cells if "exercise" in student.tags(c)).source)
    with pytest.raises(NotImplementedError, match="multiply x by 2"):
        fn(3)


# --- Run All on an untouched student copy ------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("lesson", LESSONS, ids=[p.stem for p in LESSONS])
def test_run_all_on_an_untouched_student_copy_reaches_the_end(lesson, tmp_path):
    """Every cell of the student copy runs without an error: a check of an exercise not yet
    done prints "Not attempted yet" and the cells after it use the library's function."""
    from nbclient import NotebookClient

    copy = nbformat.read(lesson.parent / "student" / lesson.name, 4)
    client = NotebookClient(copy, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(lesson.parent / "student")}})
    client.execute()  # raises CellExecutionError, with the cell and traceback, on any error
    printed = "\n".join(o.get("text", "") for c in copy.cells if c.cell_type == "code" for o in c.outputs)
    n_stubs = sum(student.EXERCISE_TAG in student.tags(c) for c in copy.cells)
    assert printed.count("Not attempted yet") >= n_stubs, f"{lesson.name}: every untouched exercise says so"
