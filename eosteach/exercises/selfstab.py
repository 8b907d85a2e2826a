"""Checkers for the exercises of lessons 5 (self-stabilization) and 6 (stable dynamics).

* ``check_map_step(step)``: one step of the map x' = -(1 + eta y) x, y' = y + eta (alpha -
  beta x^2/2), against a hand-written update on random inputs.
* ``check_conserved_quantity(H)``: a conserved quantity of X' = XY, Y' = alpha - beta X^2/2,
  evaluated along an accurate RK4 orbit (``selfstab.integrate_ode``).
* ``check_map_coefficients(fn)``: alpha = -grad L . grad S_perp, beta = ||grad S_perp||^2,
  delta = sqrt(2 alpha/beta) and the small-cycle period 2 pi/(eta sqrt(2 alpha)) from three
  random vectors and eta.
* ``check_projection_step(fn)``: one linearised projection step onto {S = 2/eta,
  grad L . u = 0}, against the minimum-norm solution of the two linearised constraints
  (numpy's least squares, independent of ``stable_dynamics.projection_step``).

Each names the likely mistakes (a sign, the new x instead of the old, a missing 1/2, the
wrong threshold, a forgotten constraint).
"""

from __future__ import annotations

import numpy as np

from .. import selfstab
from .feedback import Feedback, checker


def _map_reference(x, y, alpha, beta, eta):
    return -(1 + eta * y) * x, y + eta * (alpha - beta * x * x / 2)


@checker("one step of the self-stabilization map", library="eosteach.selfstab.iterate_map")
def check_map_step(step) -> bool:
    """Check ``step(x, y, alpha, beta, eta) -> (x_next, y_next)`` on 20 random inputs
    against x' = -(1 + eta y) x, y' = y + eta (alpha - beta x^2/2), both from the old (x, y).

    Named mistakes: x without the sign flip ((1 + eta y) x), the sign of y in the multiplier
    (1 - eta y), a mis-scaled multiplier (1 + 2 eta y or 1 + y), the sign of the
    self-stabilization term (+beta x^2/2), y updated with the new x, x updated with the new y (y overwritten first),
    alpha with the wrong sign, beta x^2 without the 1/2, and eta left out of the y update."""
    fb = Feedback("one step of the self-stabilization map")
    rng = np.random.default_rng(0)
    for _ in range(20):
        x, y = rng.normal(), rng.normal()
        alpha, beta, eta = rng.uniform(0.2, 2.0), rng.uniform(0.2, 2.0), rng.uniform(0.005, 0.2)
        try:
            got = step(x, y, alpha, beta, eta)
            got = (float(got[0]), float(got[1]))
        except NotImplementedError:
            raise
        except Exception as e:  # noqa: BLE001 - a learner's bug is feedback, not a crash
            fb.fail(f"step(...) raised {type(e).__name__}: {e} (it must return a pair (x_next, y_next))")
            return fb.report("")
        want = _map_reference(x, y, alpha, beta, eta)
        if not np.allclose(got, want, rtol=1e-10, atol=1e-12):
            fb.fail(f"at x={x:.3f}, y={y:.3f}, alpha={alpha:.3f}, beta={beta:.3f}, eta={eta:.3f} you return "
                    f"({got[0]:.6g}, {got[1]:.6g}), expected ({want[0]:.6g}, {want[1]:.6g})")
            y_new = want[1]
            if np.isclose(got[0], (1 + eta * y) * x):
                fb.fail("x has the wrong sign: the multiplier along u is 1 - eta S = -(1 + eta y), so x flips sign")
            if np.isclose(got[0], -(1 - eta * y) * x) or np.isclose(got[0], (1 - eta * y) * x):
                fb.fail("the multiplier has 1 - eta y: S = 2/eta + y, so 1 - eta S = -(1 + eta y); "
                        "|x| must grow when y > 0 (S above 2/eta)")
            if np.isclose(got[0], -(1 + eta * y_new) * x) and not np.isclose(got[0], want[0]):
                fb.fail("x was updated with the NEW y (y overwritten first?): both updates use the old (x_t, y_t)")
            if np.isclose(got[0], -(1 + 2 * eta * y) * x) or np.isclose(got[0], -(1 + y) * x):
                fb.fail("the multiplier along u is mis-scaled: 1 - eta S with S = 2/eta + y is -(1 + eta y), "
                        "one factor eta on y, no factor 2")
            if np.isclose(got[1], y + eta * (alpha + beta * x * x / 2)):
                fb.fail("the self-stabilization term has the wrong sign: the oscillation must LOWER S, "
                        "so -beta x^2/2 in the y update")
            if np.isclose(got[1], y + eta * (-alpha - beta * x * x / 2)):
                fb.fail("alpha has the wrong sign: progressive sharpening raises S, so +eta alpha in the y update")
            if np.isclose(got[1], y + eta * (alpha - beta * got[0] ** 2 / 2)) and not np.isclose(got[1], want[1]):
                fb.fail("y was updated with the NEW x: both updates use the old (x_t, y_t)")
            if np.isclose(got[1], y + eta * (alpha - beta * x * x)):
                fb.fail("the y update lost the 1/2: it is eta (alpha - beta x^2 / 2)")
            if np.isclose(got[1], y + (alpha - beta * x * x / 2)):
                fb.fail("the y update lost its factor eta: y moves by eta (alpha - beta x^2 / 2) per step")
            break
    # No whole-cycle statistics are printed here: Lesson 5 asks the learner to predict them
    # (a Think! in its Section 5) before any printout shows them.
    return fb.report("your map reproduces the update step for step")


def _true_H(X, Y, alpha, beta):
    return Y**2 / 2 - alpha * np.log(X) + beta * X**2 / 4


@checker("the conserved quantity of the self-stabilization ODE", library="eosteach.selfstab.conserved_value")
def check_conserved_quantity(H) -> bool:
    """Check ``H(X, Y, alpha, beta)`` is conserved along the ODE X' = XY, Y' = alpha - beta X^2/2
    (sampled from an accurate RK4 integration, two parameter sets) and is not trivially
    constant. Any function of the true H passes, at any scale (the tests are relative).

    Named mistakes: +alpha log X (a sign), log10 instead of the natural log, beta X^2/2
    instead of /4, Y^2 without the 1/2, the Y^2/2 term missing, and a constant."""
    fb = Feedback("the conserved quantity of the self-stabilization ODE")
    for alpha, beta, X0, Y0 in [(1.0, 1.0, 0.2, 0.0), (0.5, 2.0, 1.5, -0.3)]:
        sol = selfstab.integrate_ode(alpha, beta, X0, Y0, 12.0, dt=2e-3)
        points = list(zip(sol.X[::200], sol.Y[::200]))
        try:
            values = np.array([float(H(X, Y, alpha, beta)) for X, Y in points])
            scale = np.ptp([float(H(X0 * f, Y0 + d, alpha, beta)) for f, d in [(1, 0), (2, 0), (1, 1), (0.5, -1)]])
        except NotImplementedError:
            raise
        except Exception as e:  # noqa: BLE001
            fb.fail(f"H(...) raised {type(e).__name__}: {e} (it must return a number for X > 0 and any Y)")
            return fb.report("")
        spread = np.ptp(values)
        if not np.all(np.isfinite(values)):
            fb.fail("H returned a non-finite value along the orbit (X > 0 there: is a log or a division off?)")
        elif scale <= 1e-12 * max(float(np.max(np.abs(values))), 1e-300):
            fb.fail("H hardly changes between different points: a constant is conserved by everything")
        elif spread > 1e-6 * scale:
            fb.fail(f"H changes by {spread:.3g} along one orbit (alpha={alpha}, beta={beta}): it is not conserved")
            X, Y = np.array(points).T
            for name, wrong in [
                ("the alpha log X term has the wrong sign: integrating alpha/X gives +alpha log X on the "
                 "right-hand side, so -alpha log X in H", Y**2 / 2 + alpha * np.log(X) + beta * X**2 / 4),
                ("the beta term: integrating beta X/2 gives beta X^2/4, not beta X^2/2",
                 Y**2 / 2 - alpha * np.log(X) + beta * X**2 / 2),
                ("the Y term: integrating Y dY gives Y^2/2, not Y^2", Y**2 - alpha * np.log(X) + beta * X**2 / 4),
                ("the Y term is missing: integrating Y dY gives Y^2/2, which H must contain",
                 -alpha * np.log(X) + beta * X**2 / 4),
                ("the logarithm: integrating alpha/X gives the natural log (np.log), not log10",
                 Y**2 / 2 - alpha * np.log10(X) + beta * X**2 / 4),
            ]:
                vals = np.array([float(H(a, b, alpha, beta)) for a, b in points])
                if np.allclose(vals, wrong, rtol=1e-9, atol=1e-12):
                    fb.fail(name)
        if fb.problems:
            break
    return fb.report("H stays constant along the ODE's orbits")


@checker("the map's coefficients from grad L, grad S and u",
         library="eosteach.stable_dynamics.local_quantities")
def check_map_coefficients(fn) -> bool:
    """Check ``fn(grad_L, grad_S, u, eta) -> (alpha, beta, delta, period)`` on random vectors
    (numpy arrays of shape (n,); u has unit norm; eta a float), against grad_S_perp =
    grad_S - (u . grad_S) u, alpha = -grad_L . grad_S_perp, beta = ||grad_S_perp||^2,
    delta = sqrt(2 alpha / beta) and period = 2 pi / (eta sqrt(2 alpha)) in steps of gradient
    descent (Damian et al., 2022; Lesson 5). The random cases have alpha > 0.

    Named mistakes: grad S used without removing its u-component, alpha's sign, beta =
    ||grad S_perp|| without the square, delta = sqrt(alpha / beta) or 2 alpha / beta (a
    missing 2 or square root), and the period in ODE time (no 1/eta) or without the 2."""
    fb = Feedback("the map's coefficients from grad L, grad S and u")
    rng = np.random.default_rng(1)
    for n, eta in ((3, 0.1), (50, 0.02)):
        while True:
            g, s, u = rng.normal(size=n), rng.normal(size=n), rng.normal(size=n)
            u /= np.linalg.norm(u)
            s_perp = s - (u @ s) * u
            if -(g @ s_perp) > 0.1 and abs(g @ s) > 0.1:
                break
        alpha, beta = -(g @ s_perp), s_perp @ s_perp
        want = (alpha, beta, np.sqrt(2 * alpha / beta), 2 * np.pi / (eta * np.sqrt(2 * alpha)))
        try:
            got = tuple(float(v) for v in fn(g.copy(), s.copy(), u.copy(), float(eta)))
        except NotImplementedError:
            raise
        except Exception as e:  # noqa: BLE001
            fb.fail(f"fn(...) raised {type(e).__name__}: {e} (it must return four numbers "
                    "(alpha, beta, delta, period))")
            return fb.report("")
        if len(got) != 4:
            fb.fail(f"return four numbers (alpha, beta, delta, period), got {len(got)}")
            return fb.report("")
        if np.allclose(got, want, rtol=1e-9):
            continue
        names = ("alpha", "beta", "delta", "period")
        fb.fail(f"n={n}, eta={eta}: got " + ", ".join(f"{k} = {v:.6g}" for k, v in zip(names, got))
                + "; expected " + ", ".join(f"{k} = {v:.6g}" for k, v in zip(names, want)))
        if np.isclose(got[1], s @ s) or np.isclose(got[0], -(g @ s)):
            fb.fail("grad S itself was used: remove its component along u first (grad S_perp)")
        if np.isclose(got[0], -alpha):
            fb.fail("alpha has the wrong sign: progressive sharpening means -grad L . grad S_perp > 0")
        if np.isclose(got[1], np.sqrt(beta)):
            fb.fail("beta is the SQUARED norm ||grad S_perp||^2 (the t_xxz^2 of Lesson 5), not ||grad S_perp||")
        if np.isclose(got[0], alpha) and np.isclose(got[1], beta):
            if np.isclose(got[2], np.sqrt(alpha / beta)) or np.isclose(got[2], 2 * alpha / beta):
                fb.fail("delta = sqrt(2 alpha / beta): the |x| at which beta x^2 / 2 balances alpha")
            if np.isclose(got[3], 2 * np.pi / np.sqrt(2 * alpha)):
                fb.fail("that is the period in ODE time tau = eta t; in steps of gradient descent divide by eta")
            if np.isclose(got[3], 2 * np.pi / (eta * np.sqrt(alpha))):
                fb.fail("the small-cycle frequency is sqrt(2 alpha) (the Jacobian's eigenvalues +-i sqrt(2 alpha))")
        break
    return fb.report("alpha, beta, delta and the small-cycle period in steps")


def _projection_case(rng, n, S_factor):
    eta = rng.uniform(0.05, 0.5)
    u = rng.normal(size=n)
    u /= np.linalg.norm(u)
    grad_S = rng.normal(size=n) * 5
    grad_L = rng.normal(size=n) * 0.1
    S = S_factor * 2 / eta
    return S, u, grad_S, grad_L, eta


def _min_norm_step(S, u, grad_S, grad_L, eta, threshold=None):
    """The smallest d with S + grad_S . d = threshold and u . grad_L + S u . d = 0 (lstsq)."""
    threshold = 2 / eta if threshold is None else threshold
    A = np.stack([grad_S, S * u])
    b = np.array([threshold - S, -(u @ grad_L)])
    return np.linalg.lstsq(A, b, rcond=None)[0]


@checker("one projection step onto {S = 2/eta, grad L . u = 0}",
         library="eosteach.stable_dynamics.projection_step")
def check_projection_step(fn) -> bool:
    """Check ``fn(S, u, grad_S, grad_L, eta) -> d`` (numpy arrays of shape (n,), u of unit
    norm, S > 0 a float) against the minimum-norm solution of the two linearised
    constraints S + grad_S . d = 2/eta and u . grad_L + S u . d = 0, computed with
    ``numpy.linalg.lstsq`` (independent of the library's closed form), for S above and
    below 2/eta and n = 4, 30.

    Named mistakes: the correction with the wrong sign, the grad L . u constraint
    forgotten, 1/eta instead of 2/eta, the u-step's own change of S (q u . grad S)
    forgotten, grad S used instead of grad S_perp, the u-part q with the wrong sign or
    without its 1/S, p = 0 below 2/eta (the library's ``lower_only`` behaviour, which the
    exercise does not ask for), and a step that satisfies both constraints but is not the
    smallest one."""
    fb = Feedback("one projection step onto {S = 2/eta, grad L . u = 0}")
    rng = np.random.default_rng(6)
    for n, S_factor in ((4, 1.08), (30, 1.2), (30, 0.9)):
        S, u, gS, gL, eta = _projection_case(rng, n, S_factor)
        want = _min_norm_step(S, u, gS, gL, eta)
        try:
            got = np.asarray(fn(float(S), u.copy(), gS.copy(), gL.copy(), float(eta)), dtype=float)
        except NotImplementedError:
            raise
        except Exception as e:  # noqa: BLE001
            fb.fail(f"fn(...) raised {type(e).__name__}: {e} (it must return the step d, an array of shape (n,))")
            return fb.report("")
        if got.shape != want.shape:
            fb.fail(f"n={n}: the step must have shape {want.shape} (one entry per parameter), got {got.shape}")
            break
        if np.allclose(got, want, rtol=1e-8, atol=1e-12):
            continue
        where = f"n={n}, S = {S_factor:g} x 2/eta"
        res_S = (S + gS @ got - 2 / eta) / (2 / eta)
        res_u = (u @ gL + S * (u @ got)) / max(abs(u @ gL), 1e-300)
        fb.fail(f"{where}: your step is not the first-order projection step "
                f"(relative residuals: S-constraint {res_S:.2g}, u-constraint {res_u:.2g})")
        gS_perp = gS - (u @ gS) * u
        beta = gS_perp @ gS_perp
        q = -(u @ gL) / S
        p = -(S - 2 / eta + q * (u @ gS)) / beta
        named = [
            (-want, "the correction has the wrong sign: it must lower S when S > 2/eta (and raise it below), "
                    "and cancel u . grad L, not double it"),
            (-(S - 2 / eta) / beta * gS_perp, "you only correct S: the step must also make grad L . u = 0 "
                                              "(the second constraint; move along u as well)"),
            (-(S - 2 / eta) / (gS @ gS) * gS, "you only correct S: the step must also make grad L . u = 0 "
                                              "(the second constraint; move along u as well)"),
            (_min_norm_step(S, u, gS, gL, eta, threshold=1 / eta), "the threshold is 2/eta, not 1/eta"),
            (-q * u - (S - 2 / eta - q * (u @ gS)) / beta * gS_perp,
             "the u-part has the wrong sign: q = -(u . grad L) / S, a Newton step along u that cancels u . grad L"),
            (S * q * u - (S - 2 / eta + S * q * (u @ gS)) / beta * gS_perp,
             "the u-part lacks its 1/S: u . grad L changes by S (u . d), so q = -(u . grad L) / S"),
            (q * u - (S - 2 / eta) / beta * gS_perp, "the u-part of the step changes S too, by q (u . grad S): "
                                                     "subtract it when you choose how far to move along grad S_perp"),
            (q * u + p * gS, "use grad S_perp, the part of grad S orthogonal to u: moving along grad S also moves "
                             "along u and spoils the second constraint"),
        ]
        if S < 2 / eta:
            named.append((q * u, "below 2/eta this step must RAISE S to 2/eta (both constraints are equalities "
                                 "here); only the library's sd.project, which asks S <= 2/eta, leaves S alone "
                                 "below the threshold"))
        for wrong, message in named:
            if np.allclose(got, wrong, rtol=1e-8, atol=1e-12):
                fb.fail(message)
                break
        else:
            if abs(res_S) < 1e-8 and abs(res_u) < 1e-8:
                fb.fail("your step satisfies both linearised constraints but is not the smallest one: "
                        "keep it in the plane of grad S_perp and u")
        break
    return fb.report("your step solves both linearised constraints with the smallest move, "
                     "above and below 2/eta")
