"""The exercise-check protocol: correct, not yet (with feedback), or not attempted."""

from __future__ import annotations

from eosteach.exercises.feedback import Feedback, checker


@checker("doubling", library="eosteach.fake.double")
def check_double(fn):
    fb = Feedback("doubling")
    try:
        got = fn(3)
    except Exception as e:  # noqa: BLE001 - the checkers turn a learner's bug into feedback
        fb.fail(f"raised {type(e).__name__}")
        return fb.report("")
    if got != 6:
        fb.fail(f"double(3) gave {got}, want 6; did you add instead of multiply?")
    return fb.report("double(3) = 6")


def test_correct_answer(capsys):
    assert check_double(lambda x: 2 * x) is True
    assert capsys.readouterr().out == "Correct — doubling: double(3) = 6\n"


def test_wrong_answer_names_the_mistake(capsys):
    assert check_double(lambda x: x + 2) is False
    out = capsys.readouterr().out
    assert out.startswith("Not yet — doubling:") and "add instead of multiply" in out


def test_untouched_stub_is_not_attempted_and_names_the_fallback(capsys):
    def stub(x):
        raise NotImplementedError("return twice x")

    assert check_double(stub) is None
    out = capsys.readouterr().out
    assert out.startswith("Not attempted yet — doubling")
    assert "`eosteach.fake.double`" in out and "Not yet" not in out


def test_other_errors_are_feedback_not_not_attempted(capsys):
    def buggy(x):
        raise ZeroDivisionError

    assert check_double(buggy) is False
    assert "raised ZeroDivisionError" in capsys.readouterr().out
