"""The small shared vocabulary of exercise feedback.

* ``Feedback``: collects what a check found and prints one verdict.
* ``checker(title, library=...)``: the decorator every ``check_*`` function wears. When the
  learner's function still raises ``NotImplementedError`` (an untouched stub), the check
  prints "Not attempted yet", names the library function that the lesson's later cells use
  instead, and returns None, so that "Run All" on a student copy reaches the end.
"""

from __future__ import annotations

import contextlib
import functools
import io


class Feedback:
    """Collect the outcome of an exercise check and print it in one consistent form."""

    def __init__(self, title: str):
        self.title = title
        self.problems: list[str] = []

    def fail(self, message: str) -> None:
        self.problems.append(message)

    def report(self, success_message: str) -> bool:
        """Print the verdict; return True when no check failed."""
        if self.problems:
            print(f"Not yet — {self.title}:")
            for p in self.problems:
                print(f"  * {p}")
            return False
        print(f"Correct — {self.title}: {success_message}")
        return True


def not_attempted_message(title: str, library: str | None) -> str:
    after = (f" The cells below use the library's own `{library}` instead, so the rest of the lesson runs."
             if library else "")
    return (f"Not attempted yet — {title}: your function still raises NotImplementedError. "
            f"Replace the `raise` with your code and run this cell again.{after}")


def checker(title: str, library: str | None = None):
    """Decorate ``check(fn, ...)`` so that an untouched stub reads as "not attempted yet".

    ``title`` names the exercise; ``library`` names the function later cells use in its
    place (for example ``"eosteach.hessian.hvp"``). The wrapped check returns True
    (correct), False (not yet, with feedback) or None (not attempted)."""

    def decorate(check):
        @functools.wraps(check)
        def run(fn, *args, **kwargs):
            if not callable(fn):
                return check(fn, *args, **kwargs)
            raised = []

            @functools.wraps(fn)
            def watched(*a, **k):
                try:
                    return fn(*a, **k)
                except NotImplementedError:
                    raised.append(True)
                    raise

            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                try:
                    result = check(watched, *args, **kwargs)
                except NotImplementedError:
                    raised.append(True)
            if raised:
                print(not_attempted_message(title, library))
                return None
            print(out.getvalue(), end="")
            return result

        run.exercise_title = title
        run.library_fallback = library
        return run

    return decorate
