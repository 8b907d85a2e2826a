"""Checks for user input. Each failure raises a ValueError that names the parameter
and the values it may take, so that a learner can fix the call without reading code."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable

import numpy as np


def _is_real(value) -> bool:
    # numbers.Real covers Python and numpy scalars; strings and bools are refused so that
    # a typo such as lr="0.1" or b=True is reported instead of silently converted.
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def positive(name: str, value) -> float:
    """Return ``value`` as a float if it is finite and > 0, else raise ValueError."""
    if not _is_real(value) or not math.isfinite(float(value)) or float(value) <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def nonnegative(name: str, value) -> float:
    """Return ``value`` as a float if it is finite and >= 0, else raise ValueError."""
    if not _is_real(value) or not math.isfinite(float(value)) or float(value) < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def finite(name: str, value) -> float:
    """Return ``value`` as a float if it is a finite real number, else raise ValueError."""
    if not _is_real(value) or not math.isfinite(float(value)):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def momentum(name: str, value) -> float:
    """Momentum coefficients (heavy-ball b, Adam's beta1, ...) must lie in [0, 1)."""
    if not _is_real(value) or not (0.0 <= float(value) < 1.0):
        raise ValueError(f"{name} must lie in [0, 1), got {value!r}")
    return float(value)


def positive_int(name: str, value, minimum: int = 1) -> int:
    """Return ``value`` as an int if it is an integer >= ``minimum``, else raise ValueError."""
    is_integer = isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))
    if not is_integer or int(value) < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def choice(name: str, value, allowed: Iterable):
    """Return ``value`` if it is one of ``allowed``, else raise ValueError listing them."""
    allowed = list(allowed)
    if value not in allowed:
        shown = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"{name} must be one of {shown}; got {value!r}")
    return value
