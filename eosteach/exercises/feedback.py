"""The small shared vocabulary of exercise feedback."""

from __future__ import annotations


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
