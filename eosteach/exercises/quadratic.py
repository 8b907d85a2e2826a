"""Checkers for the coding exercises of lessons 1 (descent lemma) and 2 (momentum thresholds).

Each checker calls the learner's function on a few quadratics, compares the answer with an
independent computation (an eigendecomposition, a block matrix, the eigenvalues of the
iteration matrix, a sympy derivation from the optimiser's own update code; never the
learner's approach), prints what is right or what to fix, and returns True or False. When
the answer is wrong, the checker runs the likely mistakes (a sign, a missing row, the EMA
buffer, 1/lambda instead of 2/lambda, b instead of 1 + b, GD's or heavy-ball's threshold
instead of Nesterov's, ...) and names the one that reproduces it.

* lesson 1: ``check_gd_trajectory``, ``check_gd_step_sizes``;
* lesson 2: ``check_heavy_ball_trajectory`` (PyTorch's heavy-ball, asked in Polyak's buffer-free
  form), ``check_heavy_ball_radius`` (the iteration matrix,
  its spectral radius and the band of complex roots), ``check_nesterov_threshold`` (the matrix
  and the threshold, derived by hand).

An untouched stub (it still raises NotImplementedError) reads as "not attempted yet"
(``feedback.checker``) and the lesson's later cells use the library function named there.
"""

from __future__ import annotations

import numpy as np

from .feedback import Feedback, checker


def _random_spd(rng, dim, lo=0.5, hi=10.0):
    Q, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    lam = np.sort(rng.uniform(lo, hi, dim))[::-1]
    return (Q * lam) @ Q.T


def _call(fb: Feedback, fn, *args):
    """Call the learner's function and return a float array; an error becomes feedback.

    NotImplementedError passes through: ``checker`` reports an untouched stub itself."""
    try:
        out = fn(*args)
    except NotImplementedError:
        raise
    except Exception as err:  # noqa: BLE001 - any error is feedback for a learner
        fb.fail(f"calling it raised {type(err).__name__}: {err}")
        return None
    try:
        return np.asarray(out, dtype=float)
    except (TypeError, ValueError):
        fb.fail(f"it returned {type(out).__name__}, which is not an array of numbers")
        return None


def _first_match(got, variants, **close):
    """The message of the first variant (message, array) that ``got`` reproduces, or ''."""
    for message, expected in variants:
        expected = np.asarray(expected, dtype=float)
        if got.shape == expected.shape and np.allclose(got, expected, equal_nan=True, **close):
            return " " + message
    return ""


# -- lesson 1 ---------------------------------------------------------------------------
def _gd_variants(A, theta0, eta, steps):
    """The learner's likely versions of GD, each with what it tells about the mistake."""
    def run(step, n=steps):
        out = [theta0]
        for _ in range(n):
            out.append(step(out[-1]))
        return np.array(out)

    right = run(lambda t: t - eta * A @ t)
    return [
        ("It matches theta + eta * grad: a step must go DOWNHILL, against the gradient.",
         run(lambda t: t + eta * A @ t)),
        ("Every step uses the gradient at theta^(0): recompute the gradient A theta at the CURRENT iterate.",
         run(lambda t: t - eta * A @ theta0)),
        ("It matches the step theta - 2 eta A theta: the gradient of 1/2 theta^T A theta is A theta "
         "(the 1/2 cancels the 2 from differentiating the square).", run(lambda t: t - 2 * eta * A @ t)),
        ("It matches the step theta - eta/2 A theta: the gradient of 1/2 theta^T A theta is A theta, "
         "without the 1/2.", run(lambda t: t - 0.5 * eta * A @ t)),
        ("Every row equals the LAST iterate: you appended the same array and then changed it in place "
         "(theta -= ... on a stored array). Store a new array at each step, or a copy.",
         np.broadcast_to(right[-1], right.shape)),
        ("Your rows are theta^(1), ..., theta^(steps+1): row 0 must be theta^(0) itself, the start, "
         "and the last row theta^(steps).", run(lambda t: t - eta * A @ t, steps + 1)[1:]),
    ]


@checker("gd_trajectory", library="eosteach.quadratic.run")
def check_gd_trajectory(fn) -> bool:
    """``fn(A, theta0, eta, steps) -> (steps + 1, d)`` array of GD iterates theta^(0..steps).

    Reference: theta^(k) = Q diag((1 - eta lambda)^k) Q^T theta0 (A = Q diag(lambda) Q^T),
    on three quadratics, the last one at eta = 1.05 x 2/lambda_max (its top coordinate
    grows by 1.1 per step).
    """
    fb = Feedback("gd_trajectory")
    rng = np.random.default_rng(1)
    for dim, eta_factor in ((2, 0.5), (3, 0.9), (4, 1.05)):
        A = _random_spd(rng, dim)
        lam, Q = np.linalg.eigh(A)
        eta = eta_factor * 2 / lam[-1]
        theta0 = rng.standard_normal(dim)
        steps = 12
        expected = np.stack([Q @ ((1 - eta * lam) ** k * (Q.T @ theta0)) for k in range(steps + 1)])
        got = _call(fb, fn, A, theta0.copy(), eta, steps)
        if got is None:
            break
        if got.shape != expected.shape:
            if got.shape == (steps, dim):
                hint = " Row 0 must be theta^(0) itself: steps + 1 rows in all."
            elif got.shape == (steps + 2, dim):
                hint = " That is one step too many: `steps` updates give steps + 1 rows, theta^(0) included."
            elif got.shape == (dim, steps + 1):
                hint = (" That is the transpose: one ROW per iterate, one column per coordinate "
                        "(np.array of a list of iterates stacks them as rows).")
            elif got.shape == (dim,):
                hint = " That is a single iterate: return every iterate, one per row."
            else:
                hint = ""
            fb.fail(f"for d={dim}, steps={steps} expected shape {expected.shape}, got {got.shape}.{hint}")
            break
        if not np.allclose(got, expected, rtol=1e-8, atol=1e-10):
            k = int(np.argmax(np.any(~np.isclose(got, expected, rtol=1e-8, atol=1e-10), axis=1)))
            hint = _first_match(got, _gd_variants(A, theta0, eta, steps), rtol=1e-8, atol=1e-10)
            if not hint and np.allclose(got, expected, rtol=1e-5, atol=1e-6):
                hint = (" Your iterates agree to about 6 digits, the precision of float32: compute in float64 "
                        "(np.asarray(..., dtype=float), not float32 or torch's default dtype).")
            hint = hint or " Compare with theta <- theta - eta * (A @ theta), applied to the current iterate."
            fb.fail(f"for d={dim}, eta={eta:.4f} the first wrong row is k={k}.{hint}")
            break
    return fb.report("your iterates equal the closed form Q diag((1 - eta lambda)^k) Q^T theta0, "
                     "including the run at 1.05 x 2/lambda_max, whose top coordinate grows by "
                     "|1 - eta lambda_max| = 1.1 per step.")


def _slowest_factor(eta, lam):
    """r(eta) = max_i |1 - eta lambda_i|: the per-step factor of the slowest direction."""
    return float(np.max(np.abs(1.0 - eta * lam)))


def _gd_step_sizes_reference(A):
    """(eta_max, eta_star, rate) found by searching r(eta) = max_i |1 - eta lambda_i|, not by formula.

    r is convex in eta (a maximum of convex functions), so a ternary search finds its
    minimiser eta_star; r(eta) < 1 on (0, eta_max), and a bisection on r = 1 above eta_star
    finds eta_max."""
    lam = np.linalg.eigvalsh(A)
    lo, hi = 0.0, 4.0 / np.max(np.abs(lam))
    for _ in range(300):
        m1, m2 = lo + (hi - lo) / 3, hi - (hi - lo) / 3
        if _slowest_factor(m1, lam) < _slowest_factor(m2, lam):
            hi = m2
        else:
            lo = m1
    eta_star = 0.5 * (lo + hi)
    lo, hi = eta_star, 4.0 / np.max(np.abs(lam))
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if _slowest_factor(mid, lam) < 1.0 else (lo, mid)
    return 0.5 * (lo + hi), eta_star, _slowest_factor(eta_star, lam)


def _eta_max_slips(A):
    lam = np.linalg.eigvalsh(A)
    return [
        ("That is 1/lambda_max, where the top coordinate is zeroed in one step; the edge is where "
         "|1 - eta lambda_max| = 1, i.e. eta lambda_max = 2.", 1.0 / lam[-1]),
        ("That is 2/lambda_min: the SHARPEST direction diverges first (eigvalsh sorts in ascending order).",
         2.0 / lam[0]),
        ("That is 2 / (largest diagonal entry): the diagonal is not the spectrum unless A is diagonal.",
         2.0 / np.max(np.diag(A))),
        ("That is 2 / trace(A): the trace is the SUM of the eigenvalues, only an upper bound on the largest.",
         2.0 / np.trace(A)),
        ("That is 2 / ||A||_F: np.linalg.norm(A) is the Frobenius norm sqrt(sum of lambda_i^2), not lambda_max "
         "(np.linalg.norm(A, 2) would be).", 2.0 / np.linalg.norm(A)),
        ("That is lambda_max / 2, upside down: the step size limit is 2 over the curvature.", lam[-1] / 2),
    ]


def _eta_star_slips(A):
    lam = np.linalg.eigvalsh(A)
    return [
        ("That is 2/lambda_max, the EDGE: there the sharp coordinate only flips sign and never shrinks. "
         "The fastest step size balances the sharp and the flat direction.", 2.0 / lam[-1]),
        ("That is 1/lambda_max: it kills the sharp coordinate in one step, but the flat one then shrinks by "
         "only 1 - lambda_min/lambda_max per step. Balance the two extreme factors instead.", 1.0 / lam[-1]),
        ("A factor 2 is missing: the balance |1 - eta lambda_min| = |1 - eta lambda_max| is "
         "1 - eta lambda_min = eta lambda_max - 1.", 1.0 / (lam[-1] + lam[0])),
        ("That is 2/(lambda_max - lambda_min): in the balance, 1 - eta lambda_min = eta lambda_max - 1, "
         "the two eigenvalues ADD up.", 2.0 / (lam[-1] - lam[0])),
        ("That uses the second-largest eigenvalue: the balance is between the two EXTREME factors, "
         "lambda_max and lambda_min.", 2.0 / (lam[-1] + lam[-2])),
        ("That is (lambda_max + lambda_min)/2, upside down: a step size is 2 over a curvature.",
         (lam[-1] + lam[0]) / 2),
        ("That uses the Frobenius norm np.linalg.norm(A) for lambda_max; it is sqrt(sum of lambda_i^2).",
         2.0 / (np.linalg.norm(A) + lam[0])),
    ]


def _rate_slips(A):
    lam = np.linalg.eigvalsh(A)
    kappa = lam[-1] / lam[0]
    r = (kappa - 1) / (kappa + 1)
    return [
        ("That is (kappa + 1)/(kappa - 1), upside down: a contraction factor is below 1.", 1 / r),
        ("That is r^2, the factor of the LOSS (L is quadratic in theta); the rate asked for is the factor "
         "of the error theta - theta*, max_i |1 - eta* lambda_i|.", r**2),
        ("That is 1 - 1/kappa, the flat direction's factor at eta = 1/lambda_max; at eta* the factor is "
         "max_i |1 - eta* lambda_i|.", 1 - 1 / kappa),
        ("It is negative: 1 - eta* lambda_max < 0 (the sharp coordinate flips sign); the rate is the "
         "MODULUS max_i |1 - eta* lambda_i|.", -r),
        ("That is (sqrt(kappa) - 1)/(sqrt(kappa) + 1), the rate of heavy-ball momentum with Polyak's tuning "
         "(lesson 2); plain GD cannot reach it: its best factor is max_i |1 - eta* lambda_i|.",
         (np.sqrt(kappa) - 1) / (np.sqrt(kappa) + 1)),
    ]


def _unsorted_eig_slips(A):
    """The right formulas applied to np.linalg.eig's eigenvalues taken in eig's own (unsorted) order."""
    lam = np.linalg.eig(A)[0].real
    lo, hi = lam[0], lam[-1]                      # what the learner takes for lambda_min, lambda_max
    kappa = hi / lo
    return (2.0 / hi, 2.0 / (hi + lo), (kappa - 1) / (kappa + 1))


_EIG_UNSORTED = (" On this matrix that is the right formula applied to np.linalg.eig's eigenvalues in the order "
                 "eig returns them: np.linalg.eig does NOT sort, so lam[0] and lam[-1] need not be lambda_min "
                 "and lambda_max. Use np.linalg.eigvalsh (ascending) for a symmetric matrix.")


def _factor_words(got, want) -> str:
    """'too large by a factor 2.5' / 'too small by a factor 1.3', never the expected value itself."""
    if not np.isfinite(got):
        return "not a finite number"
    if got * want <= 0:
        return "of the wrong sign (or zero)"
    ratio = got / want
    return f"too large by a factor {ratio:.3g}" if ratio > 1 else f"too small by a factor {1 / ratio:.3g}"


def _gd_step_sizes_cases():
    rng = np.random.default_rng(2)
    return [np.diag([4.0, 1.0]), _random_spd(rng, 3), _random_spd(rng, 5, 0.1, 50.0),
            np.array([[2.0, 1.9], [1.9, 2.0]])]  # its largest diagonal entry is far below lambda_max


@checker("gd_step_sizes", library="eosteach.quadratic.stable_step_size` and `eosteach.quadratic.fastest_step_size")
def check_gd_step_sizes(fn) -> bool:
    """``fn(A) -> (eta_max, eta_star, rate)`` for a symmetric positive definite A:

    (a) eta_max, the supremum of the step sizes at which GD converges from every start,
    2 / lambda_max(A); (b) eta_star, the step size that converges fastest, 2 / (lambda_max +
    lambda_min), and rate, its contraction factor per step, (kappa - 1)/(kappa + 1).
    Reference: a search on r(eta) = max_i |1 - eta lambda_i| (no formula). A mistake is
    named only when it reproduces the answers on all four test matrices."""
    fb = Feedback("gd_step_sizes")
    cases = _gd_step_sizes_cases()
    answers = []
    for A in cases:
        got = _call(fb, fn, A.copy())
        if got is None:
            return fb.report("")
        if got.shape != (3,):
            hint = (" One step size per eigenvalue is not asked: which of them limits the run?"
                    if got.size == A.shape[0] else "")
            fb.fail(f"return three numbers (eta_max, eta_star, rate), got an array of shape {got.shape}.{hint}")
            return fb.report("")
        answers.append(got)
    answers = np.array(answers)
    expected = np.array([_gd_step_sizes_reference(A) for A in cases])
    parts = (("eta_max", _eta_max_slips), ("eta_star", _eta_star_slips), ("rate", _rate_slips))
    for j, (name, slips_of) in enumerate(parts):
        wrong = ~np.isclose(answers[:, j], expected[:, j], rtol=1e-6)
        if not np.any(wrong):
            continue
        # report on a NON-diagonal matrix where possible: on a diagonal one the numbers give the formula away
        off_diagonal = [k for k in np.flatnonzero(wrong) if np.count_nonzero(cases[k] - np.diag(np.diag(cases[k])))]
        i = int(off_diagonal[0]) if off_diagonal else int(np.argmax(wrong))
        variants = [(message, [dict(slips_of(A))[message] for A in cases]) for message, _ in slips_of(cases[0])]
        hint = _first_match(answers[:, j], variants, rtol=1e-6)
        if not hint:   # a slip that reproduces the answer on the matrix shown only
            shown = [(message, value) for message, value in slips_of(cases[i])]
            if np.isclose(answers[i, j], _unsorted_eig_slips(cases[i])[j], rtol=1e-6) and \
                    not np.isclose(answers[i, j], expected[i, j], rtol=1e-6):
                hint = _EIG_UNSORTED
            else:
                hint = _first_match(answers[i:i + 1, j], [(f"On this matrix: {m}", [v]) for m, v in shown], rtol=1e-6)
        if not hint and name == "eta_max" and np.all((0.9 * expected[:, 0] <= answers[:, 0])
                                                     & (answers[:, 0] < expected[:, 0])):
            hint = " That is a safe step size, but not the largest: return the supremum itself."
        if not hint and name == "rate":
            own = [_slowest_factor(eta, np.linalg.eigvalsh(A)) for eta, A in zip(answers[:, 1], cases)]
            if not np.allclose(own, answers[:, 2], rtol=1e-6):
                hint = " The rate of a step size eta is max_i |1 - eta lambda_i|: the slowest direction decides."
        fb.fail(f"{name}: for A =\n{np.array2string(cases[i], precision=3)}\nyour value {answers[i, j]:.6g} is "
                f"{_factor_words(answers[i, j], expected[i, j])}.{hint}")
    return fb.report("eta_max = 2 / lambda_max: the sharpest direction sets the limit; eta_star = "
                     "2 / (lambda_max + lambda_min) balances the sharpest and the flattest direction, "
                     "and both then shrink by (kappa - 1)/(kappa + 1) per step.")


# -- lesson 2 ---------------------------------------------------------------------------
def _heavy_ball_reference(A, theta0, eta, b, steps):
    """Iterates from the block matrix of (theta, buf): an independent formulation of the update."""
    d = len(theta0)
    eye = np.eye(d)
    # buf' = b buf + A theta;  theta' = theta - eta buf' = (I - eta A) theta - eta b buf.
    M = np.block([[eye - eta * A, -eta * b * eye], [A, b * eye]])
    state = np.concatenate([theta0, np.zeros(d)])
    out = [theta0]
    for _ in range(steps):
        state = M @ state
        out.append(state[:d])
    return np.array(out)


def _momentum_variant(A, theta0, eta, b, steps, kind):
    """One of the likely slips in heavy-ball, run for ``steps`` steps (rows theta^(0..steps)).

    The exercise asks for PyTorch's heavy-ball in Polyak's buffer-free form,
    theta' = theta - alpha g + beta (theta - theta_prev); each slip is the same trajectory
    whichever form the learner wrote it in (the EMA buffer is alpha = eta (1 - b), the wrong
    sign of b is beta (theta_prev - theta), a buffer starting at g0 is theta^(-1) = theta0 + eta g0).
    """
    theta, buf = theta0.copy(), np.zeros_like(theta0)
    prev = theta0.copy()               # Polyak's form: theta^(-1)
    if kind == "prev_zero":            # theta^(-1) = 0: a 'last step' from the origin that never happened
        prev = np.zeros_like(theta0)
    out = [theta]
    for k in range(steps):
        g = A @ theta
        if kind == "ema":          # Adam's first moment instead of PyTorch's sum
            buf = b * buf + (1 - b) * g
            theta = theta - eta * buf
        elif kind == "late":       # step with the old buffer, then update it
            theta, buf = theta - eta * buf, b * buf + g
        elif kind == "ascent":     # theta + eta buf
            buf = b * buf + g
            theta = theta + eta * buf
        elif kind == "minus_b":    # buf <- g - b buf: the old buffer enters with the wrong sign
            buf = g - b * buf
            theta = theta - eta * buf
        elif kind == "nesterov":   # the look-ahead step of nesterov=True
            buf = b * buf + g
            theta = theta - eta * (g + b * buf)
        elif kind == "gd":         # the buffer never used
            theta = theta - eta * g
        elif kind == "buf_g0":     # buf starts at g0 and is then updated: (1 + b) g0 at step 1
            buf = b * (g if k == 0 else buf) + g
            theta = theta - eta * buf
        elif kind == "eff_step":   # Polyak's form with alpha = eta / (1 - b): the effective step counted twice
            theta, prev = theta - eta / (1 - b) * g + b * (theta - prev), theta
        elif kind == "prev_zero":  # Polyak's form started from theta^(-1) = 0
            theta, prev = theta - eta * g + b * (theta - prev), theta
        out.append(theta)
    if kind == "in_place":         # theta -= eta * buf on the stored array: every row is the last iterate
        right = _heavy_ball_reference(A, theta0, eta, b, steps)
        return np.broadcast_to(right[-1], right.shape)
    return np.array(out)


# Each message names the slip in both forms (buffer, or Polyak's theta - alpha g + beta (theta - theta_prev)),
# and none states alpha, beta or the start.
_MOMENTUM_SLIPS = [
    ("ema", "You averaged, as Adam's first moment does: buf <- b buf + (1 - b) g, which in Polyak's form is a "
            "gradient term (1 - b) times too small. PyTorch's SGD does not damp: its buffer is a running SUM of "
            "gradients, not an average."),
    ("late", "You stepped with the OLD buffer (in Polyak's form: with the previous iterate's gradient). The "
             "buffer takes in the new gradient first, and the step uses that new buffer."),
    ("ascent", "The step goes uphill: theta moves AGAINST the buffer (minus eta times it)."),
    ("minus_b", "A sign slip in the momentum: the momentum term must carry on in the direction of the last step, "
                "not undo it (in buffer form: the old buffer is KEPT with a plus sign, b times itself, before the "
                "gradient is added)."),
    ("nesterov", "That is Nesterov's look-ahead step (g + b buf); plain heavy-ball steps with the buffer alone."),
    ("gd", "That is plain gradient descent: the momentum (the buffer, or the last step) never enters the step."),
    ("buf_g0", "The first step counts g^(0) twice (b g^(0) + g^(0), a factor 1 + b instead of 1): before the first "
               "step the buffer is ZERO, so nothing carries over into it, neither an earlier gradient nor an "
               "earlier step."),
    ("eff_step", "Your gradient term is 1/(1 - b) times too large. eta/(1 - b) is what a CONSTANT gradient adds up "
                 "to over many steps, and the momentum term builds that up by itself: putting it into the "
                 "gradient term as well counts it twice."),
    ("prev_zero", "Your first step also moved by b theta^(0): the momentum term acted on a 'last step' from the "
                  "origin (theta^(-1) = 0) that never happened. PyTorch's buffer starts at zero, so the first "
                  "step carries no momentum."),
    ("in_place", "Every row equals the LAST iterate: you appended the same array and then changed it in place "
                 "(theta -= ... on a stored array). Store a new array at each step, or a copy."),
]


@checker("heavy_ball_trajectory", library="eosteach.quadratic.run")
def check_heavy_ball_trajectory(fn) -> bool:
    """``fn(A, theta0, eta, b, steps) -> (steps + 1, d)``: heavy-ball in PyTorch's convention.

    The lesson asks for it in Polyak's buffer-free form; the checker sees only the iterates, so a
    buffer implementation passes too. Reference: the block matrix of (theta, buf).
    """
    fb = Feedback("heavy_ball_trajectory")
    rng = np.random.default_rng(3)
    for dim, b in ((2, 0.0), (3, 0.5), (4, 0.9)):
        A = _random_spd(rng, dim)
        eta = 1.5 / np.linalg.eigvalsh(A)[-1]
        theta0 = rng.standard_normal(dim)
        steps = 15
        expected = _heavy_ball_reference(A, theta0, eta, b, steps)
        got = _call(fb, fn, A, theta0.copy(), eta, b, steps)
        if got is None:
            break
        if got.shape != expected.shape:
            hint = " Row 0 must be theta^(0) itself." if got.shape == (steps, dim) else ""
            fb.fail(f"expected shape {expected.shape} (theta^(0) first), got {got.shape}.{hint}")
            break
        if not np.allclose(got, expected, rtol=1e-8, atol=1e-10):
            k = int(np.argmax(np.any(~np.isclose(got, expected, rtol=1e-8, atol=1e-10), axis=1)))
            variants = [(message, _momentum_variant(A, theta0, eta, b, steps, kind))
                        for kind, message in _MOMENTUM_SLIPS]
            hint = _first_match(got, variants, rtol=1e-8, atol=1e-10) or \
                (" Compare your step with buf <- b buf + g; theta <- theta - eta buf (g = A theta at the "
                 "current theta, buf starting at 0).")
            fb.fail(f"for d={dim}, b={b} the iterates differ from torch.optim.SGD(momentum=b); the first wrong "
                    f"row is k={k}.{hint}")
            break
    return fb.report("you reproduce torch.optim.SGD(momentum=b) on a quadratic, for b = 0, 0.5 and 0.9. "
                     "In Polyak's form theta - alpha g + beta (theta - theta_prev) that is alpha = eta, beta = b, "
                     "started from theta^(-1) = theta^(0).")


def _hb_matrix(eta, lam, b):
    """Heavy-ball's M for the state (theta, buf) along eigenvalue lam: one step applied to the unit states."""
    columns = []
    for theta, buf in ((1.0, 0.0), (0.0, 1.0)):
        buf_new = b * buf + lam * theta
        columns.append((theta - eta * buf_new, buf_new))
    return np.array(columns).T


def _matrix_slips(eta, lam, b):
    """(message, M) for the likely wrong heavy-ball matrices (state (theta, buf))."""
    M = _hb_matrix(eta, lam, b)
    swap = np.array([[0.0, 1.0], [1.0, 0.0]])
    return [
        ("The rows and columns are swapped (M transposed): row 1 holds the coefficients of theta_new, "
         "row 2 those of buf_new, in terms of (theta, buf).", M.T),
        ("The state order is (buf, theta); the contract is (theta, buf): theta first.", swap @ M @ swap),
        ("That is M for the scaled state (theta, eta * buf); the contract is (theta, buf) itself.",
         np.array([[1 - eta * lam, -b], [eta * lam, b]])),
        ("Your theta_new has no lambda theta term: it steps with the whole NEW buffer, b buf + lambda theta, "
         "the lambda theta part included.", np.array([[1.0, -eta * b], [lam, b]])),
        ("That steps with the OLD buffer: PyTorch updates the buffer first, then steps with the new one.",
         np.array([[1.0, -eta], [lam, b]])),
        ("That is the EMA buffer b buf + (1 - b) g (Adam's first moment); PyTorch's SGD sums the gradients.",
         np.array([[1 - eta * lam * (1 - b), -eta * b], [(1 - b) * lam, b]])),
        ("The step goes uphill: theta moves AGAINST the buffer (minus eta times it).",
         np.array([[1 + eta * lam, eta * b], [lam, b]])),
        ("That is Nesterov's look-ahead step (g + b buf_new); heavy-ball steps with the buffer alone.",
         np.array([[1 - eta * lam * (1 + b), -eta * b**2], [lam, b]])),
    ]


def _radius_slips(M):
    """(message, value) for the likely wrong radii computed from the right matrix M."""
    z = np.linalg.eigvals(M)
    return [
        ("You took the largest REAL PART; the radius is the largest MODULUS |z| (the roots may be complex).",
         float(np.max(z.real))),
        ("You took the SMALLEST modulus; the radius is the largest one: the slowest mode decides.",
         float(np.min(np.abs(z)))),
        ("That is |det M| = b, the PRODUCT of the two moduli; the radius is the larger modulus.",
         float(abs(np.linalg.det(M)))),
        ("That is a matrix norm of M (np.linalg.norm); a norm bounds the spectral radius from above but is "
         "not it: use the eigenvalues.", float(np.linalg.norm(M))),
        ("That is the 2-norm (largest singular value) of M, not its largest eigenvalue modulus: M is not "
         "symmetric.", float(np.linalg.norm(M, 2))),
        ("That is GD's factor |1 - eta lambda|: momentum makes the iteration 2x2, with two roots.",
         float(abs(M[0, 0]))),
        ("That is the largest |entry| of M, not the largest modulus of its EIGENVALUES.",
         float(np.max(np.abs(M)))),
    ]


def _band_slips(b):
    r = np.sqrt(b)
    return [
        ("That is ((1 - b)^2, (1 + b)^2): the ends are where the discriminant a_1^2 - 4 a_0 vanishes; solve that "
         "for h again (the roots involve sqrt(b), not b).", ((1 - b) ** 2, (1 + b) ** 2)),
        ("That is (1 - sqrt b, 1 + sqrt b): close, but these are not where a_1^2 - 4 a_0 vanishes; put your ends "
         "back into the discriminant.", (1 - r, 1 + r)),
        ("That is 1 + b -+ sqrt(b): the discriminant of z^2 + a_1 z + a_0 is a_1^2 - 4 a_0, and the factor 4 "
         "is missing.", (1 + b - r, 1 + b + r)),
        ("Low and high are swapped: return (h_low, h_high) with h_low < h_high.", ((1 + r) ** 2, (1 - r) ** 2)),
    ]


def _reference_band(b):
    """The h-interval where heavy-ball's eigenvalues are complex, by bisection on the matrix's eigenvalues."""
    def is_complex(h):
        return bool(np.abs(np.linalg.eigvals(_hb_matrix(1.0, h, b)).imag).max() > 0)

    centre = 1.0 + b  # the discriminant's minimum, -4b < 0: complex there
    edges = []
    for lo, hi in ((0.0, centre), (10.0, centre)):  # (real, complex) brackets below and above the centre
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            lo, hi = (lo, mid) if is_complex(mid) else (mid, hi)
        edges.append(0.5 * (lo + hi))
    return tuple(edges)


@checker("heavy_ball_radius", library="eosteach.quadratic.spectral_radius` and `eosteach.quadratic.complex_band")
def check_heavy_ball_radius(fn, band_fn=None) -> bool | None:
    """``fn(eta, lam, b) -> (M, rho)`` and ``band_fn(b) -> (h_low, h_high)``.

    (a) M: heavy-ball's 2x2 matrix, (theta, buf)_(k+1) = M (theta, buf)_k along an eigenvalue
    lam; rho: its spectral radius. References: one step of the update applied to the two unit
    states, and the eigenvalues of that matrix. Mistakes are named only when they reproduce
    the answer at all seven test points. On success it also checks, with the learner's own
    function, that rho crosses 1 at eta lam = 2 + 2b (b = 0, 0.5, 0.9).
    (b) the band of h = eta lam where the two eigenvalues are complex, compared with a
    bisection on the imaginary part of the eigenvalues of M. When ``band_fn`` is missing or
    still raises NotImplementedError, part (b) is reported as not attempted (None)."""
    fb = Feedback("heavy_ball_radius")
    points = ((0.1, 5.0, 0.0), (0.2, 5.0, 0.5), (0.39, 10.0, 0.9), (0.4, 10.0, 0.9), (1.0, 0.01, 0.99),
              (0.5, 5.0, 0.2), (0.3, 1.0, 0.6))
    matrices, radii = [], []
    for eta, lam, b in points:
        try:
            out = fn(eta, lam, b)
        except NotImplementedError:
            raise
        except Exception as err:  # noqa: BLE001 - any error is feedback for a learner
            fb.fail(f"calling it raised {type(err).__name__}: {err}")
            return fb.report("")
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            fb.fail("return the PAIR (M, rho): the 2x2 matrix and its spectral radius.")
            return fb.report("")
        try:
            M, rho = np.asarray(out[0], dtype=float), np.asarray(out[1], dtype=float)
        except (TypeError, ValueError):
            fb.fail("M must be a 2x2 array of numbers and rho a number.")
            return fb.report("")
        if M.shape != (2, 2):
            fb.fail(f"M must have shape (2, 2) (state (theta, buf)), got {M.shape}.")
            return fb.report("")
        if rho.size != 1:
            hint = " One number: the LARGEST modulus of the eigenvalues." if rho.size == 2 else ""
            fb.fail(f"rho must be one number, got shape {rho.shape}.{hint}")
            return fb.report("")
        matrices.append(M)
        radii.append(float(rho.ravel()[0]))
    expected_M = [_hb_matrix(*p) for p in points]
    wrong = [not np.allclose(M, E, rtol=1e-10, atol=1e-12) for M, E in zip(matrices, expected_M)]
    if any(wrong):
        i = wrong.index(True)
        slips = [(message, [dict(_matrix_slips(*p))[message] for p in points])
                 for message, _ in _matrix_slips(*points[0])]
        hint = _first_match(np.array(matrices), slips, rtol=1e-10, atol=1e-12)
        if not hint:
            bad = [f"({r + 1},{c + 1})" for r in range(2) for c in range(2)
                   if not np.isclose(matrices[i][r, c], expected_M[i][r, c], rtol=1e-10, atol=1e-12)]
            hint = (f" Entries {', '.join(bad)} are off (row 1: theta_new, row 2: buf_new; columns: theta, buf). "
                    "Write buf_new first, then put it into theta_new.")
        eta, lam, b = points[i]
        fb.fail(f"M at eta={eta}, lambda={lam}, b={b} is not heavy-ball's matrix.{hint}")
        return fb.report("")
    expected_rho = np.array([np.max(np.abs(np.linalg.eigvals(E))) for E in expected_M])
    wrong = ~np.isclose(radii, expected_rho, rtol=1e-8, atol=1e-12)
    if np.any(wrong):
        i = int(np.argmax(wrong))
        slips = [(message, [dict(_radius_slips(E))[message] for E in expected_M])
                 for message, _ in _radius_slips(expected_M[0])]
        hint = _first_match(np.array(radii), slips, rtol=1e-8, atol=1e-12)
        eta, lam, b = points[i]
        fb.fail(f"M is right; rho at eta={eta}, lambda={lam}, b={b}: your {radii[i]:.6g} is "
                f"{_factor_words(radii[i], expected_rho[i])}.{hint}")
        return fb.report("")
    for b in (0.0, 0.5, 0.9):  # the learner's own radius, just below and just above h = 2 + 2b
        edge = 2 + 2 * b
        below, above = (float(np.ravel(fn(1.0, edge * f, b)[1])[0]) for f in (1 - 1e-6, 1 + 1e-6))
        if not below < 1.0 < above:  # pragma: no cover - a radius right at the test points crosses here
            fb.fail(f"at b={b} your radius should cross 1 at eta lambda = {edge:g}: got {below:.8f} just below "
                    f"and {above:.8f} just above")
    done_a = fb.report("your M is heavy-ball's matrix, rho its largest eigenvalue modulus, and rho crosses 1 "
                       "exactly at eta lambda = 2 + 2b (checked just below and above, for b = 0, 0.5, 0.9).")
    if not done_a:
        return False
    return _check_band(band_fn)


def _check_band(band_fn) -> bool | None:
    name = getattr(band_fn, "__name__", "complex_band")
    if band_fn is None:
        return True
    fb = Feedback(name)
    answers, expected = [], []
    for b in (0.1, 0.5, 0.9, 0.99):
        try:
            out = band_fn(b)
        except NotImplementedError:
            print(f"Not attempted yet — {name}: part (b) still raises NotImplementedError. Replace the `raise` "
                  "with your code and run this cell again.")
            return None
        except Exception as err:  # noqa: BLE001
            fb.fail(f"calling it raised {type(err).__name__}: {err}")
            return fb.report("")
        try:
            pair = np.asarray(out, dtype=float).ravel()
        except (TypeError, ValueError):
            pair = np.array([])
        if pair.shape != (2,):
            fb.fail(f"return the pair (h_low, h_high), got {out!r}.")
            return fb.report("")
        answers.append(pair)
        expected.append(_reference_band(b))
    answers, expected = np.array(answers), np.array(expected)
    if not np.allclose(answers, expected, rtol=1e-7):
        i = int(np.argmax(~np.all(np.isclose(answers, expected, rtol=1e-7), axis=1)))
        bs = (0.1, 0.5, 0.9, 0.99)
        slips = [(message, [dict(_band_slips(b))[message] for b in bs]) for message, _ in _band_slips(bs[0])]
        hint = _first_match(answers, slips, rtol=1e-7)
        ends = []
        for k, end in enumerate(("low", "high")):
            if not np.isclose(answers[i, k], expected[i, k], rtol=1e-7):
                ends.append(f"your {end} end {answers[i, k]:.6g} is {'too large' if answers[i, k] > expected[i, k] else 'too small'}")
        fb.fail(f"at b={bs[i]}: {' and '.join(ends)} (compared with a bisection on the imaginary part of "
                f"M's eigenvalues).{hint}")
    return fb.report("the roots are complex exactly for (1 - sqrt b)^2 < eta lambda < (1 + sqrt b)^2, "
                     "where both have modulus sqrt(b) (their product is det M = b).")


def _nesterov_matrix_slips(eta, b, S):
    """(message, sympy Matrix) for the likely wrong Nesterov matrices, state (theta, buf).

    The messages name the slip without showing the right matrix."""
    import sympy as sp

    swap = sp.Matrix([[0, 1], [1, 0]])
    right = sp.Matrix([[1 - eta * S * (1 + b), -eta * b**2], [S, b]])
    return [
        ("That is heavy-ball's matrix: the look-ahead is missing, or uses the OLD buffer. PyTorch's Nesterov "
         "steps with g + b * buf_new, the buffer AFTER its update.", sp.Matrix([[1 - eta * S, -eta * b], [S, b]])),
        ("The look-ahead has the wrong sign: theta moves by MINUS eta (g + b buf_new).",
         sp.Matrix([[1 - eta * S * (1 - b), eta * b**2], [S, b]])),
        ("The step lost its direct gradient: theta <- theta - eta (g + b buf_new) has the g term as well as "
         "b * buf_new.", sp.Matrix([[1 - eta * S * b, -eta * b**2], [S, b]])),
        ("The buf entry of theta's row has one factor b too few: b * buf_new contains b * (b * buf).",
         sp.Matrix([[1 - eta * S * (1 + b), -eta * b], [S, b]])),
        ("b * buf_new contains b * S * theta too: the theta entry of theta's row misses it.",
         sp.Matrix([[1 - eta * S, -eta * b**2], [S, b]])),
        ("That is the EMA buffer b buf + (1 - b) g (Adam's first moment); PyTorch's buffer is a sum.",
         sp.Matrix([[1 - eta * S * (1 + b * (1 - b)), -eta * b**2], [(1 - b) * S, b]])),
        ("The rows and columns are swapped (M transposed): row 1 holds the coefficients of theta_new, row 2 "
         "those of buf_new, in terms of (theta, buf).", right.T),
        ("The state order is (buf, theta); the contract is (theta, buf): theta first.", swap * right * swap),
        ("That is M for the scaled state (theta, eta * buf); the contract is (theta, buf) itself.",
         sp.Matrix([[1 - eta * S * (1 + b), -b**2], [eta * S, b]])),
    ]


def _nesterov_slips():
    """(message, sympy expression) for the likely wrong Nesterov thresholds, once M is right.

    Each expression is what the Jury analysis gives for one slip in M or in the conditions
    (worked out with sympy once; tests/test_exercises_quadratic.py re-derives them)."""
    from ..symbolic import b, eta

    return [
        ("That is GD's threshold 2/eta: the momentum buffer has dropped out.", 2 / eta),
        ("That is heavy-ball's threshold (2 + 2b)/eta, not the one of your (right) M: solve YOUR p(-1) = 0.",
         (2 + 2 * b) / eta),
        ("That is the threshold of the EMA buffer b buf + (1 - b) g (Adam's first moment), not of PyTorch's "
         "buffer, which is a sum.", (2 + 2 * b) / ((1 - b) * eta)),
        ("That is where 1 + a_0 = 0 (the constant term of p): a real condition, but not the one that binds; "
         "compare it with p(-1) > 0 at b = 0.9.", (1 + b) / (b * eta)),
        ("A factor 2 is missing: the boundary is where p(-1) = 1 - a_1 + a_0 vanishes.",
         (1 + b) / ((1 + 2 * b) * eta)),
        ("A factor (1 + b) is missing from the numerator (b vs 1 + b): recompute p(-1).",
         2 / ((1 + 2 * b) * eta)),
        ("Upside down in b: your numerator and denominator are swapped; solve p(-1) = 0 for S again.",
         2 * (1 + 2 * b) / ((1 + b) * eta)),
        ("That is the threshold of a matrix whose theta entry lacks the direct gradient (1 - eta S b).",
         (2 + 2 * b) / (b * eta)),
        ("That is the threshold of a matrix with -eta b instead of -eta b^2.", 2 * (1 + b) / ((1 + b + b**2) * eta)),
        ("That is the threshold of a matrix whose theta entry is 1 - eta S (b S theta missing from the "
         "look-ahead).", 2 * (1 + b) / ((1 + b - b**2) * eta)),
    ]


def _as_expr(sp, value):
    """sympify, or None."""
    try:
        value = sp.sympify(value)
    except (sp.SympifyError, TypeError, ValueError):
        return None
    return value


def _same(sp, a, b) -> bool | None:
    """True/False when sympy decides simplify(a - b) == 0, None when it cannot (Min, Piecewise, zoo ...)."""
    try:
        diff = sp.simplify(a - b)
    except Exception:  # noqa: BLE001 - sympy raises many types on undecidable input
        return None
    if diff == 0:
        return True
    if diff.has(sp.Min, sp.Max, sp.Piecewise, sp.zoo, sp.nan, sp.oo):
        return None
    return False


def _numeric_values(expr, eta, b, points):
    """Float values of expr at the (eta, b) points, or None when any is not a finite real number."""
    values = []
    for e, bv in points:
        try:
            v = complex(expr.subs({eta: e, b: bv}).evalf())
        except (TypeError, ValueError, ZeroDivisionError, AttributeError):
            return None
        if abs(v.imag) > 1e-12 * max(1.0, abs(v.real)) or not np.isfinite(v.real):
            return None
        values.append(v.real)
    return np.array(values)


@checker("nesterov_threshold", library="eosteach.symbolic.stability")
def check_nesterov_threshold(fn) -> bool:
    """``fn(eta, b, S) -> (M, threshold)``, sympy: Nesterov's 2x2 matrix M for the state
    (theta, buf) on L = S theta^2 / 2, and the largest sharpness S at which PyTorch's
    ``nesterov=True`` converges, in the symbols ``eta`` and ``b``.

    References: ``symbolic.iteration_matrix("nesterov")`` and ``symbolic.stability("nesterov")``,
    both derived from ``quadratic.update`` (the code that runs the optimiser); M is compared
    entry by entry, the threshold with ``sympy.simplify(answer - truth) == 0`` (when sympy
    cannot decide, e.g. for a Min, at 15 points (eta, b) with 0 < b < 1); then, numerically,
    the spectral radius of the iteration just below and above the answer, at three momenta.
    M is checked first, so a threshold typed in without M does not pass."""
    import sympy as sp

    from .. import quadratic, symbolic

    fb = Feedback("nesterov_threshold")
    eta, b = symbolic.eta, symbolic.b
    S = sp.Symbol("S", positive=True)
    try:
        out = fn(eta, b, S)
    except NotImplementedError:
        raise
    except Exception as err:  # noqa: BLE001 - a learner's bug is feedback
        fb.fail(f"calling it raised {type(err).__name__}: {err}")
        return fb.report("")
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        fb.fail("return the PAIR (M, threshold): your 2x2 matrix first, then the threshold on S. "
                "The checker verifies M too.")
        return fb.report("")
    M, answer = out
    try:
        M = sp.Matrix(M)
    except Exception:  # noqa: BLE001
        M = None
    if M is None or M.shape != (2, 2):
        fb.fail(f"M must be a 2x2 sympy Matrix (state (theta, buf)), got {type(out[0]).__name__}"
                + (f" of shape {M.shape}" if M is not None else "") + ".")
        return fb.report("")

    def rename(expr):
        names = {"eta": eta, "b": b, "S": S}
        return expr.subs({s: names[s.name] for s in expr.free_symbols if s.name in names and s not in names.values()})

    M = M.applyfunc(lambda e: rename(sp.sympify(e)))
    extra = sorted({str(s) for s in M.free_symbols} - {"eta", "b", "S"})
    if extra:
        fb.fail(f"M contains {', '.join(extra)}: write it in eta, S and b alone (g = S theta).")
        return fb.report("")
    truth_M = symbolic.iteration_matrix("nesterov").subs(symbolic.lam, S)
    if not all(_same(sp, M[i, j], truth_M[i, j]) for i in range(2) for j in range(2)):
        hint = ""
        for message, slip in _nesterov_matrix_slips(eta, b, S):
            if all(_same(sp, M[i, j], slip[i, j]) for i in range(2) for j in range(2)):
                hint = " " + message
                break
        if not hint:
            bad = [f"({i + 1},{j + 1})" for i in range(2) for j in range(2) if not _same(sp, M[i, j], truth_M[i, j])]
            hint = (f" Entries {', '.join(bad)} are off (row 1: theta_new, row 2: buf_new; columns: theta, buf). "
                    "Write buf_new first, then substitute it into theta_new.")
        fb.fail(f"M is not Nesterov's iteration matrix.{hint}")
        return fb.report("")

    if isinstance(answer, (list, tuple, set, sp.FiniteSet)):
        items = list(answer)
        fb.fail(f"the threshold is a {type(answer).__name__} of {len(items)} item(s): sympy's solve returns a LIST "
                "of roots; return the root itself (the expression).")
        return fb.report("")
    if isinstance(answer, sp.core.relational.Relational):
        fb.fail("the threshold is an inequality or equation; return the threshold itself, the right-hand side "
                "of S < ...")
        return fb.report("")
    answer = _as_expr(sp, answer)
    if not isinstance(answer, sp.Expr):
        fb.fail(f"the threshold is {type(out[1]).__name__}; return a sympy expression in eta and b")
        return fb.report("")
    answer = rename(answer)
    extra = sorted(str(s) for s in answer.free_symbols - {eta, b})
    if extra:
        fb.fail(f"your threshold still contains {', '.join(extra)}: the threshold on S must be written "
                "in eta and b alone (solve the boundary FOR S, or divide the h-threshold by eta).")
        return fb.report("")
    if not answer.has(eta):
        slip = (2 + 2 * b) / (1 + 2 * b)
        if _same(sp, answer, slip):
            fb.fail("That is the threshold on h = eta * S, not on S: divide by eta.")
        else:
            fb.fail("your threshold does not depend on eta; the threshold on S scales as 1/eta.")
        return fb.report("")
    truth = symbolic.stability("nesterov").threshold
    verdict = _same(sp, answer, truth)
    note = ""
    grid = [(e, bv) for e in (sp.Rational(1, 10), sp.Integer(1), sp.Integer(3))
            for bv in (sp.Rational(1, 20), sp.Rational(3, 10), sp.Rational(3, 5), sp.Rational(9, 10),
                       sp.Rational(99, 100))]
    if verdict is None:  # sympy cannot decide (a Min, a Piecewise, a 1/b): compare numbers for 0 < b < 1
        got = _numeric_values(answer, eta, b, grid)
        want = _numeric_values(truth, eta, b, grid)
        verdict = got is not None and bool(np.allclose(got, want, rtol=1e-10))
        if verdict:
            note = (" (sympy could not simplify your expression, so it was compared at 15 points (eta, b) with "
                    "0 < b < 1, where it equals the threshold; can you show which condition binds for every b, "
                    "and drop the others?)")
    if not verdict:
        hint = ""
        for message, slip in _nesterov_slips():
            if _same(sp, answer, slip):
                hint = " " + message
                break
        if not hint:
            try:
                ratio = sp.simplify(answer / truth)
                if ratio.is_number:
                    hint = " Your answer is a constant multiple of the threshold: a constant factor is off."
                elif _same(sp, answer.subs(b, 0), truth.subs(b, 0)):
                    hint = " It is right at b = 0 (where Nesterov is GD), but its dependence on b is not."
            except Exception:  # noqa: BLE001
                pass
        value = _numeric_values(answer, eta, b, [(sp.Rational(1, 10), sp.Rational(9, 10))])
        if value is None:
            verdict_words = "no finite real number"
        else:
            true_value = float(truth.subs({eta: 0.1, b: 0.9}))
            if np.isclose(value[0], true_value, rtol=1e-9):
                verdict_words = f"{value[0]:.5g}, right at this point but not for every b"
            else:
                verdict_words = f"{value[0]:.5g}, " + ("too large: the run diverges there" if value[0] > true_value
                                                      else "too small: the run still converges above it")
        fb.fail(f"your M is right, but at eta = 0.1, b = 0.9 your expression gives {verdict_words}.{hint} "
                "Jury: which of p(1), p(-1), 1 - a_0 changes sign first as S grows?")
        return fb.report("")
    # The spectral radius of the iteration crosses 1 exactly there (an independent, numerical check).
    for bv in (0.05, 0.5, 0.9):
        edge = float(_numeric_values(answer, eta, b, [(1, sp.nsimplify(bv))])[0])
        below, above = quadratic.spectral_radius("nesterov", [edge * (1 - 1e-7), edge * (1 + 1e-7)], bv)
        if not below < 1.0 < above:  # pragma: no cover - the truth passes this
            fb.fail(f"at b = {bv} the radius does not cross 1 at eta S = {edge:.6g}")
    return fb.report("your M is the matrix of PyTorch's nesterov=True, and your threshold is the one the library "
                     "derives from the optimiser's code; the spectral radius crosses 1 there at b = 0.05, 0.5, "
                     "0.9." + note)
