"""Checkers for the coding exercises of lessons 1 (descent lemma) and 2 (momentum thresholds).

Each checker calls the learner's function on a few quadratics, compares the answer with an
independent computation (an eigendecomposition, a block matrix, the eigenvalues of the
iteration matrix, a sympy derivation from the optimiser's own update code; never the
learner's approach), prints what is right or what to fix, and returns True or False. When
the answer is wrong, the checker runs the likely mistakes (a sign, a missing row, the EMA
buffer, 1/lambda instead of 2/lambda, b instead of 1 + b, GD's or heavy-ball's threshold
instead of Nesterov's, ...) and names the one that reproduces it.

* lesson 1: ``check_gd_trajectory``, ``check_max_stable_eta``;
* lesson 2: ``check_heavy_ball_trajectory``, ``check_heavy_ball_radius``,
  ``check_nesterov_threshold``.

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
    right, up, frozen = [theta0], [theta0], [theta0]
    for _ in range(steps):
        right.append(right[-1] - eta * A @ right[-1])
        up.append(up[-1] + eta * A @ up[-1])
        frozen.append(frozen[-1] - eta * A @ theta0)
    right = np.array(right)
    return [
        ("It matches theta + eta * grad: a step must go DOWNHILL, against the gradient.", np.array(up)),
        ("Every step uses the gradient at theta^(0): recompute the gradient A theta at the CURRENT iterate.",
         np.array(frozen)),
        ("Every row equals the LAST iterate: you appended the same array and then changed it in place "
         "(theta -= ... on a stored array). Store a new array at each step, or a copy.",
         np.broadcast_to(right[-1], right.shape)),
    ]


@checker("gd_trajectory", library="eosteach.quadratic.run")
def check_gd_trajectory(fn) -> bool:
    """``fn(A, theta0, eta, steps) -> (steps + 1, d)`` array of GD iterates theta^(0..steps).

    Reference: theta^(k) = Q diag((1 - eta lambda)^k) Q^T theta0 (A = Q diag(lambda) Q^T),
    on three quadratics, the last one at eta = 1.05 x 2/lambda_max (it blows up).
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
            elif got.shape == (dim,):
                hint = " That is a single iterate: return every iterate, one per row."
            else:
                hint = ""
            fb.fail(f"for d={dim}, steps={steps} expected shape {expected.shape}, got {got.shape}.{hint}")
            break
        if not np.allclose(got, expected, rtol=1e-8, atol=1e-10):
            k = int(np.argmax(np.any(~np.isclose(got, expected, rtol=1e-8, atol=1e-10), axis=1)))
            hint = _first_match(got, _gd_variants(A, theta0, eta, steps), rtol=1e-8, atol=1e-10) or \
                " Check the update theta <- theta - eta * (A @ theta), applied to the current iterate."
            fb.fail(f"for d={dim}, eta={eta:.4f} the first wrong row is k={k}.{hint}")
            break
    return fb.report("your iterates equal the closed form Q diag((1 - eta lambda)^k) Q^T theta0, "
                     "including the run at 1.05 x 2/lambda_max, which blows up.")


def _max_stable_eta_variants(A):
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
        ("That is lambda_max / 2, upside down: the step size limit is 2 over the curvature.", lam[-1] / 2),
    ]


@checker("max_stable_eta", library="eosteach.quadratic.stable_step_size")
def check_max_stable_eta(fn) -> bool:
    """``fn(A) -> float``: the largest step size for which GD converges, 2 / lambda_max(A).

    A mistake is named only when it reproduces the answers on all four test matrices."""
    fb = Feedback("max_stable_eta")
    rng = np.random.default_rng(2)
    cases = [np.diag([4.0, 1.0]), _random_spd(rng, 3), _random_spd(rng, 5, 0.1, 50.0)]
    # A matrix whose largest diagonal entry is far below its top eigenvalue.
    cases.append(np.array([[2.0, 1.9], [1.9, 2.0]]))
    values = []
    for A in cases:
        got = _call(fb, fn, A.copy())
        if got is None:
            return fb.report("")
        if got.size != 1:
            hint = (" One step size per eigenvalue: which of them limits the run?"
                    if got.size == A.shape[0] else "")
            fb.fail(f"return one number, got an array of shape {got.shape}.{hint}")
            return fb.report("")
        values.append(float(got.ravel()[0]))
    expected = np.array([2.0 / np.linalg.eigvalsh(A)[-1] for A in cases])
    wrong = ~np.isclose(values, expected, rtol=1e-6)
    if np.any(wrong):
        i = int(np.argmax(wrong))
        variants = [(message, [dict(_max_stable_eta_variants(A))[message] for A in cases])
                    for message, _ in _max_stable_eta_variants(cases[0])]
        hint = _first_match(np.array(values), variants, rtol=1e-6)
        if not hint and np.all((0.9 * expected <= values) & (values < expected)):
            hint = " That is a safe step size, but not the largest: return the supremum itself."
        fb.fail(f"for A =\n{np.array2string(cases[i], precision=3)}\nexpected {expected[i]:.6g}, "
                f"got {values[i]:.6g}.{hint}")
    return fb.report("eta_max = 2 / lambda_max(A): the sharpest direction sets the limit.")


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
    """One of the likely slips in heavy-ball, run for ``steps`` steps (rows theta^(0..steps))."""
    theta, buf = theta0.copy(), np.zeros_like(theta0)
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
        out.append(theta)
    return np.array(out)


_MOMENTUM_SLIPS = [
    ("ema", "You averaged buf <- b buf + (1 - b) g (Adam's first moment). PyTorch's SGD does not damp: "
            "buf <- b buf + g, a running SUM, which is why its threshold is (2 + 2b)/eta."),
    ("late", "You stepped with the OLD buffer: update the buffer first, then step with the new one."),
    ("ascent", "The step goes uphill: theta moves AGAINST the buffer (minus eta times it)."),
    ("minus_b", "A sign slip in the momentum update: the old buffer is KEPT with a plus sign, b times "
                "itself, before the gradient is added."),
    ("nesterov", "That is Nesterov's look-ahead step (g + b buf); plain heavy-ball steps with the buffer alone."),
    ("gd", "That is plain gradient descent: the buffer is never used in the step."),
    ("buf_g0", "The first step counts g^(0) twice (b g^(0) + g^(0), a factor 1 + b instead of 1): the buffer "
               "starts at ZERO, so after the first update it equals g^(0)."),
]


@checker("heavy_ball_trajectory", library="eosteach.quadratic.run")
def check_heavy_ball_trajectory(fn) -> bool:
    """``fn(A, theta0, eta, b, steps) -> (steps + 1, d)``: heavy-ball in PyTorch's convention."""
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
            variants = [(message, _momentum_variant(A, theta0, eta, b, steps, kind))
                        for kind, message in _MOMENTUM_SLIPS]
            hint = _first_match(got, variants, rtol=1e-8, atol=1e-10) or \
                " Remember the order: first the buffer (b times itself plus g), then theta (minus eta times it)."
            fb.fail(f"for d={dim}, b={b} the iterates differ from torch.optim.SGD(momentum=b).{hint}")
            break
    return fb.report("you reproduce torch.optim.SGD(momentum=b) on a quadratic, for b = 0, 0.5 and 0.9.")


def _radius(coeffs) -> float:
    return float(np.max(np.abs(np.roots(coeffs))))


def _radius_slips(h, b):
    """(message, value) for the likely wrong radii at eta*lambda = h and momentum b."""
    roots = np.roots([1.0, h - 1.0 - b, b])
    return [
        ("You took the largest REAL PART; the radius is the largest MODULUS |z| (the roots may be complex).",
         float(np.max(roots.real))),
        ("You took the SMALLEST modulus; the radius is the largest one: the slowest mode decides.",
         float(np.min(np.abs(roots)))),
        ("That is GD's factor |1 - h|: momentum makes the iteration 2x2, with two roots.", abs(1.0 - h)),
        ("The z coefficient lacks the b: the trace of M is 1 - h + b, so a_1 = h - 1 - b.",
         _radius([1.0, h - 1.0, b])),
        ("The b in the z coefficient has the wrong sign: a_1 = -(trace) = h - 1 - b.",
         _radius([1.0, h - 1.0 + b, b])),
        ("The constant term is det M = b, not 1 + b.", _radius([1.0, h - 1.0 - b, 1.0 + b])),
        ("That is Nesterov's polynomial; heavy-ball's is z^2 + (h - 1 - b) z + b.",
         _radius([1.0, (1 + b) * (h - 1.0), -b * (h - 1.0)])),
        ("That is the polynomial of the EMA buffer (Adam's, factor 1 - b); PyTorch's SGD sums the gradients.",
         _radius([1.0, (1 - b) * h - 1.0 - b, b])),
    ]


@checker("heavy_ball_radius", library="eosteach.quadratic.spectral_radius")
def check_heavy_ball_radius(fn) -> bool:
    """``fn(h, b) -> float``: spectral radius of heavy-ball's iteration at eta*lambda = h.

    Reference: the eigenvalues of the 2x2 matrix of (theta, eta buf), not the polynomial.
    A mistake is named only when it reproduces the answers at all seven test points. On
    success it also checks, with the learner's own function, that the radius crosses 1 at
    h = 2 + 2b (for b = 0, 0.5, 0.9)."""
    fb = Feedback("heavy_ball_radius")
    points = ((0.5, 0.0), (1.0, 0.5), (3.9, 0.9), (4.0, 0.9), (0.01, 0.99), (2.5, 0.2), (0.3, 0.6))
    values = []
    for h, b in points:
        got = _call(fb, fn, h, b)
        if got is None:
            return fb.report("")
        if got.size != 1:
            hint = " One number: the LARGEST modulus of the roots." if got.size == 2 else ""
            fb.fail(f"at h={h}, b={b} return one number, got shape {got.shape}.{hint}")
            return fb.report("")
        values.append(float(got.ravel()[0]))
    expected = np.array([np.max(np.abs(np.linalg.eigvals(np.array([[1 - h, -b], [h, b]])))) for h, b in points])
    wrong = ~np.isclose(values, expected, rtol=1e-8, atol=1e-12)
    if np.any(wrong):
        i = int(np.argmax(wrong))
        slips = [(message, [dict(_radius_slips(h, b))[message] for h, b in points])
                 for message, _ in _radius_slips(*points[0])]
        hint = _first_match(np.array(values), slips, rtol=1e-8, atol=1e-12)
        h, b = points[i]
        fb.fail(f"at h={h}, b={b} expected {expected[i]:.6g}, got {values[i]:.6g}.{hint}")
    if fb.problems:
        return fb.report("")
    for b in (0.0, 0.5, 0.9):  # the learner's own radius, just below and just above h = 2 + 2b
        edge = 2 + 2 * b
        values = [_call(fb, fn, edge * f, b) for f in (1 - 1e-6, 1 + 1e-6)]
        if any(v is None or v.size != 1 for v in values):
            break
        below, above = (float(v.ravel()[0]) for v in values)
        if not below < 1.0 < above:  # pragma: no cover - a radius right at the test points crosses here
            fb.fail(f"at b={b} your radius should cross 1 at h = {edge:g}: got {below:.8f} just below "
                    f"and {above:.8f} just above")
    return fb.report("the largest root modulus, and it crosses 1 exactly at h = 2 + 2b "
                     "(checked just below and above h = 2, 3, 3.8 for b = 0, 0.5, 0.9).")


def _nesterov_slips():
    """(message, sympy expression) for the likely wrong Nesterov thresholds.

    Each expression is what the Jury analysis gives for one slip in M or in the conditions
    (worked out with sympy once; tests/test_exercises_quadratic.py re-derives them)."""
    from ..symbolic import b, eta

    return [
        ("That is GD's threshold 2/eta: the momentum buffer has dropped out. Keep (theta, buf) as the state, "
         "a 2x2 matrix M.", 2 / eta),
        ("That is heavy-ball's threshold (2 + 2b)/eta. It comes out when the look-ahead uses the OLD buffer, "
         "is left out, or has the wrong sign: PyTorch's Nesterov steps with g + b * buf_new, the buffer AFTER "
         "its update.", (2 + 2 * b) / eta),
        ("That is the threshold of the EMA buffer (Adam's, (2 + 2b)/((1 - b) eta)); PyTorch's buffer is a sum.",
         (2 + 2 * b) / ((1 - b) * eta)),
        ("That is where 1 + a_0 = 0 (the constant term of p): a real condition, but not the one that binds; "
         "compare it with p(-1) > 0 at b = 0.9.", (1 + b) / (b * eta)),
        ("A factor 2 is missing: the boundary is where p(-1) = 1 - a_1 + a_0 vanishes.",
         (1 + b) / ((1 + 2 * b) * eta)),
        ("A factor (1 + b) is missing from the numerator (b vs 1 + b): recompute p(-1).",
         2 / ((1 + 2 * b) * eta)),
        ("Upside down in b: (1 + 2b) belongs in the denominator, (2 + 2b) in the numerator.",
         2 * (1 + 2 * b) / ((1 + b) * eta)),
        ("The step lost its direct gradient: theta <- theta - eta (g + b buf_new) has the g term as well "
         "as b * buf_new, so the theta entry of M is 1 - eta S (1 + b), not 1 - eta S b.",
         (2 + 2 * b) / (b * eta)),
        ("The buffer entry of M should be -eta b^2 (b from the look-ahead times b from the buffer's decay), "
         "not -eta b.", 2 * (1 + b) / ((1 + b + b**2) * eta)),
        ("b * buf_new contains b * S * theta too: the theta entry of M is 1 - eta S (1 + b), not 1 - eta S.",
         2 * (1 + b) / ((1 + b - b**2) * eta)),
    ]


@checker("nesterov_threshold", library="eosteach.symbolic.stability")
def check_nesterov_threshold(fn) -> bool:
    """``fn(eta, b) -> sympy expression``: the largest sharpness S at which Nesterov momentum
    (PyTorch's ``nesterov=True``) converges, in the sympy symbols ``eta`` and ``b`` passed in.

    References: ``symbolic.stability("nesterov")`` (derived from ``quadratic.update``, the
    code that runs the optimiser), compared with ``sympy.simplify(answer - truth) == 0``;
    then, numerically, the spectral radius of the 2x2 iteration just below and above the
    answer, at three momenta."""
    import sympy as sp

    from .. import quadratic, symbolic

    fb = Feedback("nesterov_threshold")
    eta, b = symbolic.eta, symbolic.b
    try:
        answer = fn(eta, b)
    except NotImplementedError:
        raise
    except Exception as err:  # noqa: BLE001 - a learner's bug is feedback
        fb.fail(f"calling it raised {type(err).__name__}: {err}")
        return fb.report("")
    if isinstance(answer, (list, tuple, set, sp.FiniteSet)):
        items = list(answer)
        fb.fail(f"it returned a {type(answer).__name__} of {len(items)} item(s): sympy's solve returns a LIST of "
                "roots; return the root itself (the expression).")
        return fb.report("")
    if isinstance(answer, sp.core.relational.Relational):
        fb.fail("it returned an inequality or equation; return the threshold itself, the right-hand side "
                "of S < ...")
        return fb.report("")
    try:
        answer = sp.sympify(answer)
    except (sp.SympifyError, TypeError):
        fb.fail(f"it returned {type(answer).__name__}; return a sympy expression in eta and b")
        return fb.report("")
    if not isinstance(answer, sp.Expr):
        fb.fail(f"it returned {type(answer).__name__}; return a sympy expression in eta and b")
        return fb.report("")
    # Symbols the learner made with the same names (other assumptions) count as eta and b.
    rename = {s: {"eta": eta, "b": b}[s.name] for s in answer.free_symbols
              if s.name in ("eta", "b") and s not in (eta, b)}
    answer = answer.subs(rename)
    extra = sorted(str(s) for s in answer.free_symbols - {eta, b})
    if extra:
        fb.fail(f"your expression still contains {', '.join(extra)}: the threshold on S must be written "
                "in eta and b alone (solve the boundary FOR S, or divide the h-threshold by eta).")
        return fb.report("")
    if not answer.has(eta):
        slip = (2 + 2 * b) / (1 + 2 * b)
        if sp.simplify(answer - slip) == 0:
            fb.fail("That is the threshold on h = eta * S, not on S: divide by eta.")
        else:
            fb.fail("your answer does not depend on eta; the threshold on S scales as 1/eta.")
        return fb.report("")
    truth = symbolic.stability("nesterov").threshold
    if sp.simplify(answer - truth) != 0:
        hint = ""
        for message, slip in _nesterov_slips():
            if sp.simplify(answer - slip) == 0:
                hint = " " + message
                break
        if not hint:
            ratio = sp.simplify(answer / truth)
            if ratio.is_number:
                hint = f" Your answer is {ratio} times the threshold: a constant factor is off."
            elif sp.simplify(answer.subs(b, 0) - truth.subs(b, 0)) == 0:
                hint = " It is right at b = 0 (where Nesterov is GD), but its dependence on b is not."
        value = float(answer.subs({eta: sp.Rational(1, 10), b: sp.Rational(9, 10)}))
        fb.fail(f"at eta = 0.1, b = 0.9 the threshold is S = {float(truth.subs({eta: 0.1, b: 0.9})):.5g}, "
                f"your expression gives {value:.5g}.{hint}")
        return fb.report("")
    # The spectral radius of the iteration crosses 1 exactly there (an independent, numerical check).
    for bv in (0.0, 0.5, 0.9):
        edge = float(answer.subs({eta: 1, b: bv}))
        below, above = quadratic.spectral_radius("nesterov", [edge * (1 - 1e-7), edge * (1 + 1e-7)], bv)
        if not below < 1.0 < above:  # pragma: no cover - the truth passes this
            fb.fail(f"at b = {bv} the radius does not cross 1 at eta S = {edge:.6g}")
    return fb.report("S < (2 + 2b)/((1 + 2b) eta): sympy simplifies your answer minus the derivation from "
                     "the optimiser's code to 0, and the spectral radius crosses 1 there at b = 0, 0.5, 0.9.")
