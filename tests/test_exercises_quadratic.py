"""The lesson 1-2 exercise checkers: a correct answer passes, each named mistake gets its
message, an untouched stub is "not attempted" and names the library fallback."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from eosteach import symbolic
from eosteach.exercises import quadratic as ex
from eosteach.symbolic import jury_conditions


def _verdict(check, fn, capsys):
    result = check(fn)
    return result, capsys.readouterr().out


def _stub(*args):
    raise NotImplementedError("what is asked")


@pytest.mark.parametrize("check, library", [
    (ex.check_gd_trajectory, "eosteach.quadratic.run"),
    (ex.check_max_stable_eta, "eosteach.quadratic.stable_step_size"),
    (ex.check_heavy_ball_trajectory, "eosteach.quadratic.run"),
    (ex.check_heavy_ball_radius, "eosteach.quadratic.spectral_radius"),
    (ex.check_nesterov_threshold, "eosteach.symbolic.stability"),
])
def test_untouched_stub_is_not_attempted(check, library, capsys):
    result, out = _verdict(check, _stub, capsys)
    assert result is None
    assert out.startswith("Not attempted yet") and f"`{library}`" in out and "Not yet —" not in out


# -- lesson 1: gd_trajectory ---------------------------------------------------------------
def gd_right(A, theta0, eta, steps):
    out = [np.asarray(theta0, float)]
    for _ in range(steps):
        out.append(out[-1] - eta * A @ out[-1])
    return np.array(out)


def gd_ascent(A, theta0, eta, steps):
    out = [np.asarray(theta0, float)]
    for _ in range(steps):
        out.append(out[-1] + eta * A @ out[-1])
    return np.array(out)


def gd_frozen(A, theta0, eta, steps):
    return np.array([theta0 - k * eta * A @ theta0 for k in range(steps + 1)])


def gd_aliased(A, theta0, eta, steps):
    theta = np.array(theta0, float)
    out = [theta]
    for _ in range(steps):
        theta -= eta * A @ theta
        out.append(theta)
    return np.array(out)


@pytest.mark.parametrize("fn, words", [
    (gd_ascent, "DOWNHILL"),
    (gd_frozen, "CURRENT iterate"),
    (gd_aliased, "in place"),
    (lambda A, t, e, s: gd_right(A, t, e, s)[1:], "Row 0 must be theta^(0)"),
    (lambda A, t, e, s: gd_right(A, t, e, s + 1), "one step too many"),
    (lambda A, t, e, s: gd_right(A, t, e, s)[-1], "a single iterate"),
    (lambda A, t, e, s: 1 / 0, "raised ZeroDivisionError"),
])
def test_gd_trajectory_mistakes(fn, words, capsys):
    result, out = _verdict(ex.check_gd_trajectory, fn, capsys)
    assert result is False and words in out, out


def test_gd_trajectory_correct(capsys):
    result, out = _verdict(ex.check_gd_trajectory, gd_right, capsys)
    assert result is True and out.startswith("Correct — gd_trajectory")


# -- lesson 1: max_stable_eta ----------------------------------------------------------------
@pytest.mark.parametrize("fn, words", [
    (lambda A: 1 / np.linalg.eigvalsh(A)[-1], "1/lambda_max"),
    (lambda A: 2 / np.linalg.eigvalsh(A)[0], "SHARPEST"),
    (lambda A: 2 / np.max(np.diag(A)), "diagonal is not the spectrum"),
    (lambda A: 2 / np.trace(A), "trace"),
    (lambda A: np.linalg.eigvalsh(A)[-1] / 2, "upside down"),
    (lambda A: 2 / np.linalg.eigvalsh(A), "One step size per eigenvalue"),
    (lambda A: 0.95 * 2 / np.linalg.eigvalsh(A)[-1], "not the largest"),
])
def test_max_stable_eta_mistakes(fn, words, capsys):
    result, out = _verdict(ex.check_max_stable_eta, fn, capsys)
    assert result is False and words in out, out


def test_max_stable_eta_correct(capsys):
    result, out = _verdict(ex.check_max_stable_eta, lambda A: 2 / np.linalg.eigvalsh(A)[-1], capsys)
    assert result is True and "2 / lambda_max" in out


# -- lesson 2: heavy_ball_trajectory ----------------------------------------------------------
def hb(kind):
    def fn(A, theta0, eta, b, steps):
        return ex._momentum_variant(A, np.asarray(theta0, float), eta, b, steps, kind)
    return fn


def hb_right(A, theta0, eta, b, steps):
    theta, buf = np.asarray(theta0, float), np.zeros(len(theta0))
    out = [theta]
    for _ in range(steps):
        buf = b * buf + A @ theta
        theta = theta - eta * buf
        out.append(theta)
    return np.array(out)


def hb_polyak(A, theta0, eta, b, steps):
    """theta - eta g + b (theta - theta_prev): the same method, written without a buffer."""
    out = [np.asarray(theta0, float)]
    prev = out[0]
    for _ in range(steps):
        theta = out[-1]
        out.append(theta - eta * A @ theta + b * (theta - prev))
        prev = theta
    return np.array(out)


@pytest.mark.parametrize("kind, words", [
    ("ema", "Adam's first moment"),
    ("late", "OLD buffer"),
    ("ascent", "uphill"),
    ("minus_b", "sign slip"),
    ("nesterov", "look-ahead"),
    ("gd", "plain gradient descent"),
    ("buf_g0", "1 + b instead of 1"),
])
def test_heavy_ball_mistakes(kind, words, capsys):
    result, out = _verdict(ex.check_heavy_ball_trajectory, hb(kind), capsys)
    assert result is False and words in out, out


@pytest.mark.parametrize("fn", [hb_right, hb_polyak])
def test_heavy_ball_correct(fn, capsys):
    result, out = _verdict(ex.check_heavy_ball_trajectory, fn, capsys)
    assert result is True and "torch.optim.SGD" in out


# -- lesson 2: heavy_ball_radius --------------------------------------------------------------
def radius_of(coeffs_fn, reduce=lambda r: np.max(np.abs(r))):
    return lambda h, b: float(reduce(np.roots(coeffs_fn(h, b))))


@pytest.mark.parametrize("fn, words", [
    (radius_of(lambda h, b: [1, h - 1 - b, b], lambda r: np.max(r.real)), "REAL PART"),
    (radius_of(lambda h, b: [1, h - 1 - b, b], lambda r: np.min(np.abs(r))), "SMALLEST"),
    (lambda h, b: abs(1 - h), "GD's factor"),
    (radius_of(lambda h, b: [1, h - 1, b]), "lacks the b"),
    (radius_of(lambda h, b: [1, h - 1 + b, b]), "wrong sign"),
    (radius_of(lambda h, b: [1, h - 1 - b, 1 + b]), "not 1 + b"),
    (radius_of(lambda h, b: [1, (1 + b) * (h - 1), -b * (h - 1)]), "Nesterov's polynomial"),
    (radius_of(lambda h, b: [1, (1 - b) * h - 1 - b, b]), "EMA buffer"),
    (lambda h, b: np.abs(np.roots([1, h - 1 - b, b])), "One number"),
])
def test_heavy_ball_radius_mistakes(fn, words, capsys):
    result, out = _verdict(ex.check_heavy_ball_radius, fn, capsys)
    assert result is False and words in out, out


def test_heavy_ball_radius_correct(capsys):
    result, out = _verdict(ex.check_heavy_ball_radius, radius_of(lambda h, b: [1, h - 1 - b, b]), capsys)
    assert result is True and "crosses 1 exactly at h = 2 + 2b" in out


# -- lesson 2: nesterov_threshold -------------------------------------------------------------
def nesterov_by_hand(eta, b):
    S, z = sp.symbols("S z")
    M = sp.Matrix([[1 - eta * S * (1 + b), -eta * b**2], [S, b]])
    p = sp.expand((z * sp.eye(2) - M).det())
    (root,) = sp.solve(p.subs(z, -1), S)
    return root


def test_nesterov_correct(capsys):
    result, out = _verdict(ex.check_nesterov_threshold, nesterov_by_hand, capsys)
    assert result is True and out.startswith("Correct — nesterov_threshold")


def test_nesterov_with_own_symbols_of_the_same_names_is_correct(capsys):
    eta, b = sp.symbols("eta b")  # no assumptions: other sympy symbols, same names
    result, out = _verdict(ex.check_nesterov_threshold, lambda _e, _b: (2 + 2 * b) / ((1 + 2 * b) * eta), capsys)
    assert result is True, out


@pytest.mark.parametrize("message, expr", ex._nesterov_slips(), ids=lambda v: str(v)[:30])
def test_nesterov_each_slip_gets_its_message(message, expr, capsys):
    result, out = _verdict(ex.check_nesterov_threshold, lambda eta, b: expr, capsys)
    assert result is False and message in out, out


@pytest.mark.parametrize("fn, words", [
    (lambda eta, b: [nesterov_by_hand(eta, b)], "LIST of roots"),
    (lambda eta, b: sp.Symbol("S") < nesterov_by_hand(eta, b), "inequality"),
    (lambda eta, b: 1.3571, "does not depend on eta"),
    (lambda eta, b: (2 + 2 * b) / (1 + 2 * b), "threshold on h = eta * S"),
    (lambda eta, b: (2 + 2 * b) / ((1 + 2 * b) * sp.Symbol("h")), "still contains h"),
    (lambda eta, b: "2/eta", "GD's threshold"),
    (lambda eta, b: 3 * (2 + 2 * b) / ((1 + 2 * b) * eta), "3 times the threshold"),
    (lambda eta, b: (2 + 2 * b**2) / ((1 + 2 * b) * eta), "right at b = 0"),
    (lambda eta, b: object(), "sympy expression"),
])
def test_nesterov_other_mistakes(fn, words, capsys):
    result, out = _verdict(ex.check_nesterov_threshold, fn, capsys)
    assert result is False and words in out, out


def _threshold_of(M):
    """Largest stable S from Jury's conditions for the 2x2 matrix M(S, eta, b) (sympy)."""
    S = sp.Symbol("S", positive=True)
    z = sp.Symbol("z")
    M = M(S)
    poly = sp.Poly(sp.expand((z * sp.eye(2) - M).det()), z)
    roots = [r for _, f in jury_conditions(poly) for r in sp.solve(f, S)]
    positive = [r for r in roots if r.subs({symbolic.eta: 1, symbolic.b: sp.Rational(1, 2)}) > 0]
    return min(positive, key=lambda r: r.subs({symbolic.eta: 1, symbolic.b: sp.Rational(1, 2)}))


@pytest.mark.parametrize("matrix, slip", [
    # the right matrix
    (lambda S, e, b: [[1 - e * S * (1 + b), -e * b**2], [S, b]], (2 + 2 * symbolic.b) / ((1 + 2 * symbolic.b) * symbolic.eta)),
    # look-ahead with the old buffer -> heavy-ball's threshold
    (lambda S, e, b: [[1 - e * S, -e * b], [S, b]], (2 + 2 * symbolic.b) / symbolic.eta),
    # the look-ahead's sign flipped -> heavy-ball's threshold
    (lambda S, e, b: [[1 - e * S * (1 - b), e * b**2], [S, b]], (2 + 2 * symbolic.b) / symbolic.eta),
    # the direct gradient dropped
    (lambda S, e, b: [[1 - e * S * b, -e * b**2], [S, b]], (2 + 2 * symbolic.b) / (symbolic.b * symbolic.eta)),
    # -eta b instead of -eta b^2
    (lambda S, e, b: [[1 - e * S * (1 + b), -e * b], [S, b]],
     2 * (1 + symbolic.b) / ((1 + symbolic.b + symbolic.b**2) * symbolic.eta)),
    # b S theta missing from the look-ahead
    (lambda S, e, b: [[1 - e * S, -e * b**2], [S, b]],
     2 * (1 + symbolic.b) / ((1 + symbolic.b - symbolic.b**2) * symbolic.eta)),
])
def test_the_slip_thresholds_are_what_those_matrices_give(matrix, slip):
    derived = _threshold_of(lambda S: sp.Matrix(matrix(S, symbolic.eta, symbolic.b)))
    assert sp.simplify(derived - slip) == 0
    assert any(sp.simplify(slip - expr) == 0 for _, expr in ex._nesterov_slips()) or \
        sp.simplify(slip - symbolic.stability("nesterov").threshold) == 0
