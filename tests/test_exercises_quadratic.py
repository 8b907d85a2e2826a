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
    (ex.check_gd_step_sizes, "eosteach.quadratic.stable_step_size` and `eosteach.quadratic.fastest_step_size"),
    (ex.check_heavy_ball_trajectory, "eosteach.quadratic.run"),
    (ex.check_heavy_ball_radius, "eosteach.quadratic.spectral_radius` and `eosteach.quadratic.complex_band"),
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
    (lambda A, t, e, s: gd_right(2 * A, t, e, s), "theta - 2 eta A theta"),
    (lambda A, t, e, s: gd_right(0.5 * A, t, e, s), "theta - eta/2 A theta"),
    (lambda A, t, e, s: gd_right(A, t, e, s).T, "the transpose"),
    (lambda A, t, e, s: gd_right(A, t, e, s + 1)[1:], "theta^(1), ..., theta^(steps+1)"),
    (lambda A, t, e, s: gd_right(A, t, 1.01 * e, s), "Compare with theta <- theta - eta"),
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


# -- lesson 1: gd_step_sizes -----------------------------------------------------------------
def step_sizes(eta_max, eta_star, rate):
    """fn(A) built from three formulas in the eigenvalues (ascending) and A itself."""
    return lambda A: (eta_max(np.linalg.eigvalsh(A), A), eta_star(np.linalg.eigvalsh(A), A),
                      rate(np.linalg.eigvalsh(A), A))


RIGHT_MAX = lambda l, A: 2 / l[-1]                             # noqa: E731
RIGHT_STAR = lambda l, A: 2 / (l[-1] + l[0])                   # noqa: E731
RIGHT_RATE = lambda l, A: (l[-1] / l[0] - 1) / (l[-1] / l[0] + 1)  # noqa: E731


@pytest.mark.parametrize("fn, words", [
    (step_sizes(lambda l, A: 1 / l[-1], RIGHT_STAR, RIGHT_RATE), "1/lambda_max, where the top"),
    (step_sizes(lambda l, A: 2 / l[0], RIGHT_STAR, RIGHT_RATE), "SHARPEST"),
    (step_sizes(lambda l, A: 2 / np.max(np.diag(A)), RIGHT_STAR, RIGHT_RATE), "diagonal is not the spectrum"),
    (step_sizes(lambda l, A: 2 / np.trace(A), RIGHT_STAR, RIGHT_RATE), "trace"),
    (step_sizes(lambda l, A: 2 / np.linalg.norm(A), RIGHT_STAR, RIGHT_RATE), "Frobenius norm"),
    (step_sizes(lambda l, A: l[-1] / 2, RIGHT_STAR, RIGHT_RATE), "upside down"),
    (step_sizes(lambda l, A: 0.95 * 2 / l[-1], RIGHT_STAR, RIGHT_RATE), "not the largest"),
    (step_sizes(RIGHT_MAX, lambda l, A: 2 / l[-1], RIGHT_RATE), "the EDGE"),
    (step_sizes(RIGHT_MAX, lambda l, A: 1 / l[-1], RIGHT_RATE), "kills the sharp coordinate"),
    (step_sizes(RIGHT_MAX, lambda l, A: 1 / (l[-1] + l[0]), RIGHT_RATE), "factor 2 is missing"),
    (step_sizes(RIGHT_MAX, lambda l, A: 2 / (l[-1] - l[0]), RIGHT_RATE), "ADD up"),
    (step_sizes(RIGHT_MAX, lambda l, A: 2 / (l[-1] + l[-2]), RIGHT_RATE), "second-largest"),
    (step_sizes(RIGHT_MAX, lambda l, A: (l[-1] + l[0]) / 2, RIGHT_RATE), "upside down"),
    (step_sizes(RIGHT_MAX, lambda l, A: 2 / (np.linalg.norm(A) + l[0]), RIGHT_RATE), "Frobenius norm"),
    (step_sizes(RIGHT_MAX, RIGHT_STAR, lambda l, A: 1 / RIGHT_RATE(l, A)), "upside down"),
    (step_sizes(RIGHT_MAX, RIGHT_STAR, lambda l, A: RIGHT_RATE(l, A) ** 2), "factor of the LOSS"),
    (step_sizes(RIGHT_MAX, RIGHT_STAR, lambda l, A: 1 - l[0] / l[-1]), "1 - 1/kappa"),
    (step_sizes(RIGHT_MAX, RIGHT_STAR, lambda l, A: -RIGHT_RATE(l, A)), "MODULUS"),
    (step_sizes(RIGHT_MAX, RIGHT_STAR, lambda l, A: 0.5), "the slowest direction decides"),
    (lambda A: 2 / np.linalg.eigvalsh(A), "three numbers"),
    (lambda A: 2 / np.linalg.eigvalsh(A)[-1], "three numbers"),
])
def test_gd_step_sizes_mistakes(fn, words, capsys):
    result, out = _verdict(ex.check_gd_step_sizes, fn, capsys)
    assert result is False and words in out, out


def test_gd_step_sizes_never_prints_the_expected_value_and_prefers_a_non_diagonal_matrix(capsys):
    fn = step_sizes(lambda l, A: 1.37 / l[-1], RIGHT_STAR, RIGHT_RATE)   # an unnamed slip
    result, out = _verdict(ex.check_gd_step_sizes, fn, capsys)
    assert result is False and "too small by a factor 1.46" in out and "expected" not in out, out
    assert "[[4. 0.]" not in out and "[[4., 0.]" not in out, out      # not diag(4, 1)


def test_gd_step_sizes_unsorted_eig_is_named(capsys):
    def unsorted(A):
        lam = np.linalg.eig(A)[0].real        # eig's own order, taken as if ascending
        kappa = lam[-1] / lam[0]
        return 2 / lam[-1], 2 / (lam[-1] + lam[0]), (kappa - 1) / (kappa + 1)
    result, out = _verdict(ex.check_gd_step_sizes, unsorted, capsys)
    assert result is False and "does NOT sort" in out, out


def test_gd_step_sizes_heavy_ball_rate_is_named(capsys):
    rate = lambda l, A: (np.sqrt(l[-1] / l[0]) - 1) / (np.sqrt(l[-1] / l[0]) + 1)  # noqa: E731
    result, out = _verdict(ex.check_gd_step_sizes, step_sizes(RIGHT_MAX, RIGHT_STAR, rate), capsys)
    assert result is False and "Polyak's tuning" in out, out


def test_gd_trajectory_float32_gets_a_precision_note(capsys):
    fn = lambda A, t, e, s: gd_right(A.astype(np.float32), t.astype(np.float32), np.float32(e), s).astype(np.float32)  # noqa: E731
    result, out = _verdict(ex.check_gd_trajectory, fn, capsys)
    assert result is False and "float32" in out, out


def test_gd_step_sizes_correct(capsys):
    result, out = _verdict(ex.check_gd_step_sizes, step_sizes(RIGHT_MAX, RIGHT_STAR, RIGHT_RATE), capsys)
    assert result is True and "2 / (lambda_max + lambda_min)" in out, out


def test_gd_step_sizes_reference_is_a_search_that_finds_the_formulas():
    for A in ex._gd_step_sizes_cases():
        lam = np.linalg.eigvalsh(A)
        assert np.allclose(ex._gd_step_sizes_reference(A), [RIGHT_MAX(lam, A), RIGHT_STAR(lam, A), RIGHT_RATE(lam, A)],
                           rtol=1e-9)


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
    ("eff_step", "1/(1 - b) times too large"),
    ("prev_zero", "never happened"),
])
def test_heavy_ball_mistakes(kind, words, capsys):
    result, out = _verdict(ex.check_heavy_ball_trajectory, hb(kind), capsys)
    assert result is False and words in out, out


def polyak(alpha, beta, start="theta0"):
    """theta - alpha(eta, b) g + beta(b) (theta - theta_prev), the way the exercise asks for it, with a
    choice of theta^(-1): the learner's slips in Polyak's form."""
    def fn(A, theta0, eta, b, steps):
        theta = np.asarray(theta0, float)
        prev = {"theta0": theta, "zero": np.zeros_like(theta), "gd_back": theta + eta * A @ theta}[start]
        out = [theta]
        for _ in range(steps):
            theta, prev = theta - alpha(eta, b) * (A @ theta) + beta(b) * (theta - prev), theta
            out.append(theta)
        return np.array(out)
    return fn


@pytest.mark.parametrize("fn, words", [
    (polyak(lambda e, b: e * (1 - b), lambda b: b), "running SUM"),
    (polyak(lambda e, b: e / (1 - b), lambda b: b), "1/(1 - b) times too large"),
    (polyak(lambda e, b: e, lambda b: -b), "sign slip"),
    (polyak(lambda e, b: e, lambda b: 0.0), "plain gradient descent"),
    (polyak(lambda e, b: e, lambda b: b, start="zero"), "never happened"),
    (polyak(lambda e, b: e, lambda b: b, start="gd_back"), "1 + b instead of 1"),
])
def test_heavy_ball_slips_written_in_polyaks_form_are_named(fn, words, capsys):
    result, out = _verdict(ex.check_heavy_ball_trajectory, fn, capsys)
    assert result is False and words in out, out


def test_heavy_ball_slip_messages_do_not_state_alpha_beta_or_the_start():
    for _, message in ex._MOMENTUM_SLIPS:
        for answer in ("alpha = eta", "beta = b", "theta^(-1) = theta^(0)", "theta_prev = theta0"):
            assert answer not in message, message


def hb_aliased(A, theta0, eta, b, steps):
    theta, buf = np.array(theta0, float), np.zeros(len(theta0))
    out = [theta]
    for _ in range(steps):
        buf = b * buf + A @ theta
        theta -= eta * buf
        out.append(theta)
    return np.array(out)


def test_heavy_ball_in_place_slip_is_named(capsys):
    result, out = _verdict(ex.check_heavy_ball_trajectory, hb_aliased, capsys)
    assert result is False and "in place" in out, out


def test_heavy_ball_unnamed_slip_gets_the_neutral_fallback(capsys):
    def off(A, theta0, eta, b, steps):
        return hb_right(A, theta0, eta, b, steps) * np.r_[1.0, np.full(steps, 1.001)][:, None]
    result, out = _verdict(ex.check_heavy_ball_trajectory, off, capsys)
    assert result is False and "first wrong row is k=1" in out and "buf <- b buf + g; theta <- theta - eta buf" in out
    assert "Remember the order" not in out


@pytest.mark.parametrize("fn", [hb_right, hb_polyak])
def test_heavy_ball_correct(fn, capsys):
    result, out = _verdict(ex.check_heavy_ball_trajectory, fn, capsys)
    assert result is True and "torch.optim.SGD" in out and "alpha = eta, beta = b" in out


# -- lesson 2: heavy_ball_radius and complex_band ---------------------------------------------
def hb_matrix(eta, lam, b):
    return np.array([[1 - eta * lam, -eta * b], [lam, b]])


def radius_fn(matrix=hb_matrix, reduce=lambda M: np.max(np.abs(np.linalg.eigvals(M)))):
    return lambda eta, lam, b: (matrix(eta, lam, b), float(reduce(matrix(eta, lam, b))))


def band_right(b):
    return (1 - np.sqrt(b)) ** 2, (1 + np.sqrt(b)) ** 2


@pytest.mark.parametrize("fn, words", [
    (radius_fn(lambda e, l, b: hb_matrix(e, l, b).T), "transposed"),
    (radius_fn(lambda e, l, b: hb_matrix(e, l, b)[::-1, ::-1]), "(buf, theta)"),
    (radius_fn(lambda e, l, b: np.array([[1 - e * l, -b], [e * l, b]])), "scaled state"),
    (radius_fn(lambda e, l, b: np.array([[1.0, -e * b], [l, b]])), "no lambda theta term"),
    (radius_fn(lambda e, l, b: np.array([[1.0, -e], [l, b]])), "OLD buffer"),
    (radius_fn(lambda e, l, b: np.array([[1 - e * l * (1 - b), -e * b], [(1 - b) * l, b]])), "EMA buffer"),
    (radius_fn(lambda e, l, b: np.array([[1 + e * l, e * b], [l, b]])), "uphill"),
    (radius_fn(lambda e, l, b: np.array([[1 - e * l * (1 + b), -e * b**2], [l, b]])), "Nesterov's look-ahead"),
    (radius_fn(lambda e, l, b: np.array([[1 - e * l, -e * b], [l, 1.0]])), "Entries (2,2) are off"),
    (radius_fn(reduce=lambda M: np.max(np.linalg.eigvals(M).real)), "REAL PART"),
    (radius_fn(reduce=lambda M: np.min(np.abs(np.linalg.eigvals(M)))), "SMALLEST"),
    (radius_fn(reduce=lambda M: abs(np.linalg.det(M))), "PRODUCT"),
    (radius_fn(reduce=np.linalg.norm), "matrix norm"),
    (radius_fn(reduce=lambda M: np.linalg.norm(M, 2)), "2-norm"),
    (radius_fn(reduce=lambda M: abs(M[0, 0])), "GD's factor"),
    (radius_fn(reduce=lambda M: np.max(np.abs(M))), "largest |entry|"),
    (lambda e, l, b: (hb_matrix(e, l, b), np.abs(np.linalg.eigvals(hb_matrix(e, l, b)))), "One number"),
    (lambda e, l, b: float(np.max(np.abs(np.linalg.eigvals(hb_matrix(e, l, b))))), "PAIR (M, rho)"),
    (lambda e, l, b: (np.eye(3), 1.0), "shape (2, 2)"),
    (lambda e, l, b: 1 / 0, "raised ZeroDivisionError"),
])
def test_heavy_ball_radius_mistakes(fn, words, capsys):
    result, out = _verdict(ex.check_heavy_ball_radius, fn, capsys)
    assert result is False and words in out, out


def test_heavy_ball_radius_and_band_correct(capsys):
    result, out = _verdict(lambda f: ex.check_heavy_ball_radius(f, band_right), radius_fn(), capsys)
    assert result is True and "crosses 1 exactly at eta lambda = 2 + 2b" in out and "(1 - sqrt b)^2" in out, out


def test_heavy_ball_radius_right_band_untouched(capsys):
    result, out = _verdict(lambda f: ex.check_heavy_ball_radius(f, _stub), radius_fn(), capsys)
    assert result is None and out.startswith("Correct — heavy_ball_radius") and "part (b) still raises" in out, out


@pytest.mark.parametrize("band, words", [
    (lambda b: ((1 - b) ** 2, (1 + b) ** 2), "not b"),
    (lambda b: (1 - np.sqrt(b), 1 + np.sqrt(b)), "back into the discriminant"),
    (lambda b: (1 + b - np.sqrt(b), 1 + b + np.sqrt(b)), "the factor 4 is missing"),
    (lambda b: band_right(b)[::-1], "swapped"),
    (lambda b: 1.0, "the pair (h_low, h_high)"),
])
def test_complex_band_mistakes(band, words, capsys):
    result, out = _verdict(lambda f: ex.check_heavy_ball_radius(f, band), radius_fn(), capsys)
    assert result is False and words in out, out


def test_band_and_radius_feedback_never_print_the_true_values(capsys):
    result, out = _verdict(lambda f: ex.check_heavy_ball_radius(f, lambda b: (1 - np.sqrt(b), 1 + np.sqrt(b))),
                           radius_fn(), capsys)
    assert result is False and "your low end" in out and "too large" in out and "0.467544" not in out, out
    result, out = _verdict(ex.check_heavy_ball_radius, radius_fn(reduce=lambda M: 0.5), capsys)
    assert result is False and "too" in out and "expected" not in out, out


def test_slip_messages_never_state_the_right_answer():
    """A slip message names the slip; it does not print the right matrix entries, band ends or threshold."""
    for message, _ in ex._matrix_slips(0.1, 2.0, 0.5):
        assert "1 - eta lambda" not in message and "-eta b" not in message, message
    for message, _ in ex._band_slips(0.5):
        assert "sqrt b)^2" not in message and "sqrt(b))^2" not in message and "square" not in message, message
    for message, _ in ex._nesterov_slips():
        assert "(1 + 2b) belongs" not in message and "(2 + 2b) in the numerator" not in message, message


def test_reference_band_is_the_closed_form():
    for b in (0.1, 0.5, 0.9, 0.99):
        assert np.allclose(ex._reference_band(b), band_right(b), rtol=1e-10)


# -- lesson 2: nesterov_threshold -------------------------------------------------------------
def nesterov_matrix(eta, b, S):
    return sp.Matrix([[1 - eta * S * (1 + b), -eta * b**2], [S, b]])


def nesterov_by_hand(eta, b, S):
    z = sp.Symbol("z")
    M = nesterov_matrix(eta, b, S)
    p = sp.expand((z * sp.eye(2) - M).det())
    (root,) = sp.solve(p.subs(z, -1), S)
    return M, root


def with_threshold(expr_fn):
    """The right M and the threshold expr_fn(eta, b)."""
    return lambda eta, b, S: (nesterov_matrix(eta, b, S), expr_fn(eta, b))


def test_nesterov_wrong_threshold_says_too_large_or_small_not_the_value(capsys):
    result, out = _verdict(ex.check_nesterov_threshold, with_threshold(lambda eta, b: 3 / eta), capsys)
    assert result is False and "too large" in out and "13.57" not in out, out
    result, out = _verdict(ex.check_nesterov_threshold, with_threshold(lambda eta, b: 1 / eta), capsys)
    assert result is False and "too small" in out and "13.57" not in out, out


def test_nesterov_correct(capsys):
    result, out = _verdict(ex.check_nesterov_threshold, nesterov_by_hand, capsys)
    assert result is True and out.startswith("Correct — nesterov_threshold"), out


def test_nesterov_with_own_symbols_of_the_same_names_is_correct(capsys):
    eta, b, S = sp.symbols("eta b S")  # no assumptions: other sympy symbols, same names
    result, out = _verdict(ex.check_nesterov_threshold,
                           lambda _e, _b, _S: (nesterov_matrix(eta, b, S), (2 + 2 * b) / ((1 + 2 * b) * eta)), capsys)
    assert result is True, out


def test_nesterov_careful_min_over_conditions_is_accepted_without_crashing(capsys):
    """Min(p(-1) root, 1 + a_0 root) is right for 0 < b < 1 and is zoo at b = 0: no crash."""
    result, out = _verdict(ex.check_nesterov_threshold, with_threshold(
        lambda eta, b: sp.Min((2 + 2 * b) / ((1 + 2 * b) * eta), (1 + b) / (b * eta))), capsys)
    assert result is True and "could not simplify" in out, out


def test_nesterov_typed_threshold_without_the_matrix_fails(capsys):
    truth = lambda eta, b: (2 + 2 * b) / ((1 + 2 * b) * eta)  # noqa: E731
    result, out = _verdict(ex.check_nesterov_threshold, lambda eta, b, S: truth(eta, b), capsys)  # no M
    assert result is False and "PAIR (M, threshold)" in out
    result, out = _verdict(ex.check_nesterov_threshold,
                           lambda eta, b, S: (sp.zeros(2, 2), truth(eta, b)), capsys)
    assert result is False and "M is not Nesterov's iteration matrix" in out


@pytest.mark.parametrize("message, slip", ex._nesterov_matrix_slips(symbolic.eta, symbolic.b, sp.Symbol("S", positive=True)),
                         ids=lambda v: str(v)[:30])
def test_nesterov_each_matrix_slip_gets_its_message(message, slip, capsys):
    result, out = _verdict(ex.check_nesterov_threshold, lambda eta, b, S: (slip.subs(sp.Symbol("S", positive=True), S),
                                                                            2 / eta), capsys)
    assert result is False and message in out, out


def test_nesterov_matrix_entry_named_when_no_slip_matches(capsys):
    result, out = _verdict(ex.check_nesterov_threshold,
                           lambda eta, b, S: (nesterov_matrix(eta, b, S) + sp.Matrix([[0, 0], [0, 1]]), 2 / eta), capsys)
    assert result is False and "Entries (2,2) are off" in out, out


@pytest.mark.parametrize("message, expr", ex._nesterov_slips(), ids=lambda v: str(v)[:30])
def test_nesterov_each_threshold_slip_gets_its_message(message, expr, capsys):
    result, out = _verdict(ex.check_nesterov_threshold, with_threshold(lambda eta, b: expr), capsys)
    assert result is False and message in out, out


@pytest.mark.parametrize("fn, words", [
    (with_threshold(lambda eta, b: [(2 + 2 * b) / ((1 + 2 * b) * eta)]), "LIST of roots"),
    (with_threshold(lambda eta, b: sp.Symbol("S") < (2 + 2 * b) / ((1 + 2 * b) * eta)), "inequality"),
    (with_threshold(lambda eta, b: 1.3571), "does not depend on eta"),
    (with_threshold(lambda eta, b: (2 + 2 * b) / (1 + 2 * b)), "threshold on h = eta * S"),
    (with_threshold(lambda eta, b: (2 + 2 * b) / ((1 + 2 * b) * sp.Symbol("h"))), "still contains h"),
    (with_threshold(lambda eta, b: "2/eta"), "GD's threshold"),
    (with_threshold(lambda eta, b: 3 * (2 + 2 * b) / ((1 + 2 * b) * eta)), "constant multiple of the threshold"),
    (with_threshold(lambda eta, b: (2 + 2 * b**2) / ((1 + 2 * b) * eta)), "right at b = 0"),
    (with_threshold(lambda eta, b: sp.Min(2 / eta, (1 + b) / (b * eta))), "your expression gives 20"),
    (with_threshold(lambda eta, b: sp.sqrt(b - 2) / eta), "no finite real number"),
    (with_threshold(lambda eta, b: object()), "sympy expression"),
    (lambda eta, b, S: (sp.Matrix([[1, 0, 0]]), 2 / eta), "2x2 sympy Matrix"),
    (lambda eta, b, S: (nesterov_matrix(eta, b, sp.Symbol("lambda")), 2 / eta), "M contains lambda"),
    (lambda eta, b, S: 1 / 0, "raised ZeroDivisionError"),
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


def test_the_matrix_slips_give_the_threshold_slips():
    """Each named threshold of a wrong M (heavy-ball's, the dropped gradient, -eta b, b S theta
    missing) is what Jury's conditions give for that matrix slip."""
    S = sp.Symbol("S", positive=True)
    thresholds = [expr for _, expr in ex._nesterov_slips()]
    truth = symbolic.stability("nesterov").threshold
    assert sp.simplify(_threshold_of(lambda s: nesterov_matrix(symbolic.eta, symbolic.b, s)) - truth) == 0
    named = 0
    for _, M in ex._nesterov_matrix_slips(symbolic.eta, symbolic.b, S)[:5]:
        derived = _threshold_of(lambda s: M.subs(S, s))
        named += any(sp.simplify(derived - expr) == 0 for expr in thresholds)
    assert named == 5


def test_slip_messages_do_not_give_away_a_later_answer(capsys):
    """The EMA slip of Exercise 1 comes before Think! 1 (heavy-ball's threshold), and lesson 4's
    Exercise 2 derives Adam's threshold: neither is printed by a lesson-2 checker."""
    result, out = _verdict(ex.check_heavy_ball_trajectory, hb("ema"), capsys)
    assert result is False and "running SUM" in out and "threshold" not in out and "2 + 2b" not in out, out
    for message, _ in ex._nesterov_slips():
        assert "(1 - b) eta" not in message and "38" not in message, message
