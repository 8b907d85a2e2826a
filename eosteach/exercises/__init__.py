"""Checkers for the lessons' coding exercises.

Each ``check_*`` function takes the learner's answer (a number or a function), compares it
with an independent computation and prints feedback that says what is right, or what is
wrong and a hint; it returns True or False so that notebooks can also assert on it.
"""

from .feedback import Feedback, checker  # noqa: F401
