"""Checkers for the coding exercises of lessons 1 (descent lemma) and 2 (momentum thresholds).

Each checker calls the learner's function on a few quadratics, compares the answer with an
independent computation (eigendecomposition, matrix powers; never the learner's own
approach), prints what is right or what to fix, and returns True or False.
"""

from __future__ import annotations

import numpy as np

from .feedback import Feedback, checker


def _random_spd(rng, dim, lo=0.5, hi=10.0):
    Q, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    lam = np.sort(rng.uniform(lo, hi, dim))[::-1]
    return (Q * lam) @ Q.T


def _call(fb: Feedback, fn, *args):
    """Call the learner's function; turn an exception into feedback instead of a traceback."""
    try:
        return np.asarray(fn(*args), dtype=float)
    except NotImplementedError:
        fb.fail("the function still raises NotImplementedError: replace the `raise` with your code")
    except Exception as err:  # noqa: BLE001 - any error is feedback for a learner
        fb.fail(f"calling it raised {type(err).__name__}: {err}")
    return None


# -- lesson 1 ---------------------------------------------------------------------------
@checker('gd_trajectory')
def check_gd_trajectory(fn) -> bool:
    """``fn(A, theta0, eta, steps) -> (steps + 1, d)`` array of GD iterates theta^(0..steps).

    Reference: theta^(k) = Q diag((1 - eta lambda)^k) Q^T theta0 (A = Q diag(lambda) Q^T).
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
        got = _call(fb, fn, A, theta0, eta, steps)
        if got is None:
            break
        if got.shape != expected.shape:
            hint = " (did you forget theta^(0) as the first row?)" if got.shape == (steps, dim) else ""
            fb.fail(f"for d={dim}, steps={steps} expected shape {expected.shape}, got {got.shape}{hint}")
            break
        if not np.allclose(got, expected, rtol=1e-8, atol=1e-10):
            k = int(np.argmax(np.any(~np.isclose(got, expected, rtol=1e-8, atol=1e-10), axis=1)))
            plus = np.stack([Q @ ((1 + eta * lam) ** j * (Q.T @ theta0)) for j in range(steps + 1)])
            hint = " It matches theta + eta * grad: the step must go DOWNHILL." if np.allclose(got, plus) else \
                " Check the update theta <- theta - eta * (A @ theta)."
            fb.fail(f"for d={dim}, eta={eta:.4f} the first wrong row is k={k}.{hint}")
            break
    return fb.report("your iterates equal the closed form Q diag((1 - eta lambda)^k) Q^T theta0, "
                     "including the run above 2/lambda_max that blows up.")


@checker('max_stable_eta')
def check_max_stable_eta(fn) -> bool:
    """``fn(A) -> float``: the largest step size for which GD converges, 2 / lambda_max(A)."""
    fb = Feedback("max_stable_eta")
    rng = np.random.default_rng(2)
    cases = [np.diag([4.0, 1.0]), _random_spd(rng, 3), _random_spd(rng, 5, 0.1, 50.0)]
    # A matrix whose largest diagonal entry is far below its top eigenvalue.
    cases.append(np.array([[2.0, 1.9], [1.9, 2.0]]))
    for A in cases:
        expected = 2.0 / np.linalg.eigvalsh(A)[-1]
        got = _call(fb, fn, A)
        if got is None:
            break
        if got.size != 1 or not np.isclose(float(got), expected, rtol=1e-6):
            value = float(got.ravel()[0]) if got.size else float("nan")
            if np.isclose(value, 2.0 / np.max(np.diag(A)), rtol=1e-6):
                hint = " That is 2 / max diagonal entry: the diagonal is not the spectrum unless A is diagonal."
            elif np.isclose(value, 1.0 / np.linalg.eigvalsh(A)[-1], rtol=1e-6):
                hint = " That is 1/lambda_max: the edge is where |1 - eta lambda_max| = 1, i.e. eta lambda_max = 2."
            elif np.isclose(value, 2.0 / np.linalg.eigvalsh(A)[0], rtol=1e-6):
                hint = " That is 2/lambda_min: the SHARPEST direction diverges first."
            else:
                hint = ""
            fb.fail(f"for A =\n{np.array2string(A, precision=3)}\nexpected {expected:.6g}, got {value:.6g}.{hint}")
            break
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


@checker('heavy_ball_trajectory')
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
        got = _call(fb, fn, A, theta0, eta, b, steps)
        if got is None:
            break
        if got.shape != expected.shape:
            fb.fail(f"expected shape {expected.shape} (theta^(0) first), got {got.shape}")
            break
        if not np.allclose(got, expected, rtol=1e-8, atol=1e-10):
            # Two common slips: the EMA buffer of Adam, and stepping with the old buffer.
            ema, late = [theta0], [theta0]
            buf_ema, buf_late = np.zeros(dim), np.zeros(dim)
            for _ in range(steps):
                buf_ema = b * buf_ema + (1 - b) * A @ ema[-1]
                ema.append(ema[-1] - eta * buf_ema)
                theta_new = late[-1] - eta * buf_late
                buf_late = b * buf_late + A @ late[-1]
                late.append(theta_new)
            if b > 0 and np.allclose(got, np.array(ema)):
                hint = (" You averaged buf <- b buf + (1 - b) g (Adam's first moment). PyTorch SGD "
                        "does not damp: buf <- b buf + g, which is why its threshold is (2 + 2b)/eta.")
            elif np.allclose(got, np.array(late)):
                hint = " You stepped with the OLD buffer: update buf first, then theta <- theta - eta * buf."
            else:
                hint = (" Remember the order: first buf <- b * buf + g, then theta <- theta - eta * buf "
                        "(buf starts at 0).")
            fb.fail(f"for d={dim}, b={b} the iterates differ from the reference.{hint}")
            break
    return fb.report("you reproduce torch.optim.SGD(momentum=b) on a quadratic.")


@checker('heavy_ball_radius')
def check_heavy_ball_radius(fn) -> bool:
    """``fn(h, b) -> float``: spectral radius of heavy-ball's iteration at eta*lambda = h."""
    fb = Feedback("heavy_ball_radius")
    for h, b in ((0.5, 0.0), (1.0, 0.5), (3.9, 0.9), (4.0, 0.9), (0.01, 0.99), (2.5, 0.2)):
        M = np.array([[1 - h, -b], [h, b]])  # on (theta, eta * buf)
        expected = float(np.max(np.abs(np.linalg.eigvals(M))))
        got = _call(fb, fn, h, b)
        if got is None:
            break
        if got.size != 1 or not np.isclose(float(got), expected, rtol=1e-8, atol=1e-12):
            value = float(got.ravel()[0]) if got.size else float("nan")
            hint = ""
            if np.isclose(value, np.max(np.linalg.eigvals(M).real), rtol=1e-8):
                hint = " You took the largest real part; the radius is the largest MODULUS |z|."
            fb.fail(f"at h={h}, b={b} expected {expected:.6g}, got {value:.6g}.{hint}")
            break
    return fb.report("the radius crosses 1 exactly at h = 2 + 2b.")
