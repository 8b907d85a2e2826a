"""Checkers for the exercises of lessons 5 (self-stabilization) and 6 (stable dynamics)."""

from __future__ import annotations

import numpy as np

from .. import selfstab
from .feedback import Feedback, checker


@checker('one step of the self-stabilization map')
def check_map_step(step) -> bool:
    """Check ``step(x, y, alpha, beta, eta) -> (x_next, y_next)``, one step of the map
    x' = -(1 + eta y) x, y' = y + eta (alpha - beta x^2/2), against ``selfstab.iterate_map``
    on random inputs, and check the whole-cycle average of x^2 it produces."""
    fb = Feedback("one step of the self-stabilization map")
    rng = np.random.default_rng(0)
    for _ in range(20):
        x, y = rng.normal(), rng.normal()
        alpha, beta, eta = rng.uniform(0.2, 2.0), rng.uniform(0.2, 2.0), rng.uniform(0.005, 0.2)
        try:
            got = step(x, y, alpha, beta, eta)
            got = (float(got[0]), float(got[1]))
        except Exception as e:  # noqa: BLE001 - a learner's bug is feedback, not a crash
            fb.fail(f"step(...) raised {type(e).__name__}: {e}")
            return fb.report("")
        ref = selfstab.iterate_map(alpha, beta, eta, x, y, 1)
        want = (ref.x[1], ref.y[1])
        if not np.allclose(got, want, rtol=1e-10, atol=1e-12):
            fb.fail(f"at x={x:.3f}, y={y:.3f}, alpha={alpha:.3f}, beta={beta:.3f}, eta={eta:.3f} you return "
                    f"({got[0]:.6g}, {got[1]:.6g}), expected ({want[0]:.6g}, {want[1]:.6g})")
            if np.isclose(got[0], (1 + eta * y) * x):
                fb.fail("x has the wrong sign: the multiplier along u is 1 - eta S = -(1 + eta y)")
            if np.isclose(got[1], y + eta * (alpha - beta * got[0] ** 2 / 2)):
                fb.fail("y must be updated with the OLD x (both updates use x_t, y_t)")
            break
    if not fb.problems:
        x, y, xs, ys = 0.1, -0.5, [], []
        for _ in range(6000):
            xs.append(x)
            ys.append(y)
            x, y = step(x, y, 1.0, 1.0, 0.02)
        stats = selfstab.cycle_stats(selfstab.MapTrajectory(np.array(xs), np.array(ys), 1.0, 1.0, 0.02, False))
        print(f"with your map: mean x^2 over {stats.n_cycles} whole cycles / (2 alpha/beta) = {stats.mean_x2_ratio:.3f}")
    return fb.report("your map reproduces the library's trajectory step for step")


@checker('the conserved quantity of the self-stabilization ODE')
def check_conserved_quantity(H) -> bool:
    """Check ``H(X, Y, alpha, beta)`` is conserved along the ODE X' = XY, Y' = alpha - beta X^2/2
    (compared with an accurate RK4 integration) and is not trivially constant."""
    fb = Feedback("the conserved quantity of the self-stabilization ODE")
    for alpha, beta, X0, Y0 in [(1.0, 1.0, 0.2, 0.0), (0.5, 2.0, 1.5, -0.3)]:
        sol = selfstab.integrate_ode(alpha, beta, X0, Y0, 12.0, dt=2e-3)
        try:
            values = np.array([float(H(X, Y, alpha, beta)) for X, Y in zip(sol.X[::200], sol.Y[::200])])
        except Exception as e:  # noqa: BLE001
            fb.fail(f"H(...) raised {type(e).__name__}: {e}")
            return fb.report("")
        spread = np.ptp(values)
        scale = np.ptp([float(H(X0 * f, Y0 + d, alpha, beta)) for f, d in [(1, 0), (2, 0), (1, 1), (0.5, -1)]])
        if not np.all(np.isfinite(values)):
            fb.fail("H returned a non-finite value along the trajectory")
        elif scale < 1e-6:
            fb.fail("H hardly changes between different points: a constant is conserved by everything")
        elif spread > 1e-6 * max(1.0, scale):
            fb.fail(f"H changes by {spread:.3g} along one trajectory (alpha={alpha}, beta={beta}); "
                    "hint: separate variables in dY/dX = (alpha - beta X^2/2)/(X Y)")
        if fb.problems:
            break
    return fb.report("H stays constant along the ODE's orbits")


@checker('alpha and beta from grad L, grad S and u')
def check_alpha_beta(fn) -> bool:
    """Check ``fn(grad_L, grad_S, u) -> (alpha, beta)`` with grad_S_perp = grad_S - (u . grad_S) u,
    alpha = -grad_L . grad_S_perp, beta = ||grad_S_perp||^2 (Damian et al., 2022), on random
    vectors (numpy arrays of shape (n,); u has unit norm)."""
    fb = Feedback("alpha and beta from grad L, grad S and u")
    rng = np.random.default_rng(1)
    for n in (3, 50):
        g, s, u = rng.normal(size=n), rng.normal(size=n), rng.normal(size=n)
        u /= np.linalg.norm(u)
        s_perp = s - (u @ s) * u
        want = (-(g @ s_perp), s_perp @ s_perp)
        try:
            got = tuple(float(v) for v in fn(g.copy(), s.copy(), u.copy()))
        except Exception as e:  # noqa: BLE001
            fb.fail(f"fn(...) raised {type(e).__name__}: {e}")
            return fb.report("")
        if not np.allclose(got, want, rtol=1e-9):
            fb.fail(f"n={n}: got (alpha, beta) = ({got[0]:.6g}, {got[1]:.6g}), expected ({want[0]:.6g}, {want[1]:.6g})")
            if np.isclose(got[1], s @ s):
                fb.fail("beta uses grad S itself: remove its component along u first")
            if np.isclose(got[0], g @ s_perp):
                fb.fail("alpha has the wrong sign: progressive sharpening means -grad L . grad S_perp > 0")
            break
    return fb.report("alpha = -grad L . grad S_perp and beta = ||grad S_perp||^2")
