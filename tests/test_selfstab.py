"""Tests of eosteach.selfstab, its widget and exercise checkers, each against an independent
computation: the cycle averages against the ODE's closed forms, sympy identities, a
step-halved integration, and a hand-written loop."""

import math

import numpy as np
import pytest
import sympy as sp

from eosteach import selfstab
from eosteach.exercises import selfstab as ex


def test_map_matches_hand_loop_and_validates():
    tr = selfstab.iterate_map(0.7, 1.3, 0.05, 0.2, -0.4, 50)
    x, y = 0.2, -0.4
    for t in range(50):
        x, y = -(1 + 0.05 * y) * x, y + 0.05 * (0.7 - 1.3 * x * x / 2)
    assert (tr.x[-1], tr.y[-1]) == pytest.approx((x, y), rel=1e-12)
    assert not tr.diverged and len(tr.x) == 51
    for name, bad in [("alpha", 0.0), ("beta", -1.0), ("eta", float("nan"))]:
        kw = dict(alpha=1.0, beta=1.0, eta=0.1)
        kw[name] = bad
        with pytest.raises(ValueError, match=name):
            selfstab.iterate_map(kw["alpha"], kw["beta"], kw["eta"], 0.1, 0.0, 10)


def test_divergence_stops_without_overflow():
    tr = selfstab.iterate_map(1.0, 10.0, 0.3, 3.0, -3.0, 10_000, limit=1e6)
    assert tr.diverged
    assert np.all(np.isfinite(tr.x)) and np.all(np.abs(tr.x) <= 1e6)


@pytest.mark.parametrize("alpha,beta,eta,x0,y0", [(1.0, 1.0, 0.01, 0.5, 0.0), (0.5, 2.0, 0.02, 0.1, -0.5),
                                                  (2.0, 0.3, 0.005, 3.0, 0.2)])
def test_mean_x2_over_whole_cycles_is_2alpha_over_beta(alpha, beta, eta, x0, y0):
    tr = selfstab.iterate_map(alpha, beta, eta, x0, y0, 30_000)
    stats = selfstab.cycle_stats(tr)
    assert stats.n_cycles >= 3
    assert stats.mean_x2 == pytest.approx(2 * alpha / beta, rel=0.02)


@pytest.mark.parametrize("alpha,eta", [(1.0, 0.01), (0.3, 0.005)])
def test_small_cycle_period(alpha, eta):
    beta = 1.0
    delta = math.sqrt(2 * alpha / beta)
    tr = selfstab.iterate_map(alpha, beta, eta, 1.02 * delta, 0.0, 20_000)
    stats = selfstab.cycle_stats(tr)
    assert stats.n_cycles >= 3
    # Independent check of the closed form: the period measured on the ODE itself.
    assert stats.period == pytest.approx(2 * math.pi / (eta * math.sqrt(2 * alpha)), rel=0.05)


def test_phase_labels_follow_the_quadrant_rule():
    alpha, beta, eta = 1.0, 1.0, 0.02
    tr = selfstab.iterate_map(alpha, beta, eta, 0.05, -1.0, 3000)
    labels = tr.phases()[:-1]
    x, y = tr.x[:-1], tr.y[:-1]
    y_up = alpha - beta * x**2 / 2 > 0
    x_up = np.abs(1 + eta * y) > 1
    expected = np.where(y_up, np.where(x_up, 1, 0), np.where(x_up, 2, 3))
    assert np.array_equal(labels, expected)
    assert set(labels) == {0, 1, 2, 3}
    # Order within a cycle: I -> II -> III -> IV -> I.
    changes = labels[np.r_[True, labels[1:] != labels[:-1]]]
    assert all((b - a) % 4 == 1 for a, b in zip(changes[:-1], changes[1:]))


def test_ode_conserved_and_error_estimate():
    sol = selfstab.integrate_ode(1.0, 2.0, 0.05, -0.5, 20.0, dt=1e-3)
    assert sol.H_drift < 1e-8
    assert sol.error_estimate < 1e-8
    # Independent: H evaluated from the formula, and mean(Y) ~ 0 over the run's whole cycles.
    H = sol.Y**2 / 2 - 1.0 * np.log(sol.X) + 2.0 * sol.X**2 / 4
    assert np.ptp(H) < 1e-8


def test_sympy_conserved_quantity_and_period():
    r = selfstab.conserved_quantity()
    assert r["dH_dt_simplified"] == 0
    X, Y, alpha, beta = r["symbols"]
    assert sp.simplify(r["H"] - (Y**2 / 2 - alpha * sp.log(X) + beta * X**2 / 4)) == 0
    p = selfstab.small_cycle_period()
    assert sp.simplify(p["period"] - 2 * sp.pi / sp.sqrt(2 * alpha)) == 0


def test_cubic_reduction_is_exactly_the_map():
    r = selfstab.cubic_reduction()
    assert all(sp.simplify(e) == 0 for e in r["map_residual"])
    s = r["symbols"]
    # The general step keeps the t_xxx term (the sign-flipping shift that the map drops).
    assert r["step"][0].has(s["t_xxx"])


def test_sign_rule_equals_direction_rule_on_the_map_and_cycles_in_order():
    tr = selfstab.iterate_map(1.0, 1.0, 0.02, 0.05, -1.0, 3000)
    by_sign = selfstab.label_phases(tr.x, tr.y, delta=tr.delta)
    by_direction = selfstab.label_phases(tr.x, tr.y)
    assert np.array_equal(by_sign[:-1], by_direction[:-1])
    # Independent: the table of Lesson 5 written out by hand.
    small, above = tr.x**2 <= tr.delta**2, tr.y > 0
    table = np.select([~above & small, above & small, above & ~small, ~above & ~small], [0, 1, 2, 3])
    assert np.array_equal(by_sign, table)
    assert selfstab.in_cycle_order(by_sign)
    assert list(selfstab.phase_sequence([0, 0, 1, 1, 1, 2, 3, 3, 0])) == [0, 1, 2, 3, 0]
    assert not selfstab.in_cycle_order([0, 2, 1])
    # An array of deltas (one per step) gives the same labels as the scalar.
    assert np.array_equal(selfstab.label_phases(tr.x, tr.y, delta=np.full(tr.x.shape, tr.delta)), by_sign)
    with pytest.raises(ValueError, match="delta"):
        selfstab.label_phases(tr.x, tr.y, delta=-1.0)
    with pytest.raises(ValueError, match="delta"):
        selfstab.label_phases(tr.x, tr.y, delta=np.ones(3))


def _right_step(x, y, a, b, e):
    return -(1 + e * y) * x, y + e * (a - b * x * x / 2)


@pytest.mark.parametrize("wrong,message", [
    (lambda x, y, a, b, e: ((1 + e * y) * x, y + e * (a - b * x * x / 2)), "wrong sign"),
    (lambda x, y, a, b, e: (-(1 + e * y) * x, y + e * (a - b * ((1 + e * y) * x) ** 2 / 2)), "NEW x"),
    (lambda x, y, a, b, e: (-(1 + e * y) * x, y + e * (a - b * x * x)), "lost the 1/2"),
    (lambda x, y, a, b, e: (-(1 + e * y) * x, y + (a - b * x * x / 2)), "factor eta"),
    (lambda x, y, a, b, e: (-(1 + e * (y + e * (a - b * x * x / 2))) * x, y + e * (a - b * x * x / 2)), "NEW y"),
    (lambda x, y, a, b, e: (-(1 + e * y) * x, y + e * (-a - b * x * x / 2)), "alpha has the wrong sign"),
    (lambda x, y, a, b, e: (-(1 - e * y) * x, y + e * (a - b * x * x / 2)), "1 - eta y"),
    (lambda x, y, a, b, e: (-(1 + e * y) * x, y + e * (a + b * x * x / 2)), "must LOWER S"),
    (lambda x, y, a, b, e: (-(1 + 2 * e * y) * x, y + e * (a - b * x * x / 2)), "mis-scaled"),
    (lambda x, y, a, b, e: (-(1 + y) * x, y + e * (a - b * x * x / 2)), "mis-scaled"),
])
def test_map_step_checker_names_each_mistake(capsys, wrong, message):
    assert ex.check_map_step(_right_step)
    capsys.readouterr()
    assert ex.check_map_step(wrong) is False
    out = capsys.readouterr().out
    assert out.startswith("Not yet") and message in out


def _right_H(X, Y, a, b):
    return Y * Y / 2 - a * np.log(X) + b * X * X / 4


@pytest.mark.parametrize("wrong,message", [
    (lambda X, Y, a, b: Y * Y / 2 + a * np.log(X) + b * X * X / 4, "wrong sign"),
    (lambda X, Y, a, b: Y * Y / 2 - a * np.log(X) + b * X * X / 2, "beta X^2/4"),
    (lambda X, Y, a, b: Y * Y - a * np.log(X) + b * X * X / 4, "Y^2/2"),
    (lambda X, Y, a, b: 3.0, "constant"),
    (lambda X, Y, a, b: -a * np.log(X) + b * X * X / 4, "Y term is missing"),
    (lambda X, Y, a, b: Y * Y / 2 - a * np.log10(X) + b * X * X / 4, "log10"),
])
def test_conserved_quantity_checker_names_each_mistake(capsys, wrong, message):
    assert ex.check_conserved_quantity(_right_H)
    assert ex.check_conserved_quantity(lambda X, Y, a, b: np.exp(_right_H(X, Y, a, b)))  # any function of H
    assert ex.check_conserved_quantity(lambda X, Y, a, b: 1e-8 * _right_H(X, Y, a, b))  # at any scale
    capsys.readouterr()
    assert ex.check_conserved_quantity(wrong) is False
    out = capsys.readouterr().out
    assert out.startswith("Not yet") and message in out


def _right_coef(g, s, u, eta):
    sp_ = s - (u @ s) * u
    a, b = -(g @ sp_), sp_ @ sp_
    return a, b, np.sqrt(2 * a / b), 2 * np.pi / (eta * np.sqrt(2 * a))


def _coef_with(**changes):
    names = ("alpha", "beta", "delta", "period")

    def fn(g, s, u, eta):
        right = dict(zip(names, _right_coef(g, s, u, eta)))
        right.update({k: f(g, s, u, eta, right) for k, f in changes.items()})
        return tuple(right[k] for k in names)
    return fn


@pytest.mark.parametrize("wrong,message", [
    (_coef_with(alpha=lambda g, s, u, e, r: -(g @ s), beta=lambda g, s, u, e, r: s @ s), "grad S itself"),
    (_coef_with(alpha=lambda g, s, u, e, r: -r["alpha"]), "wrong sign"),
    (_coef_with(beta=lambda g, s, u, e, r: np.sqrt(r["beta"])), "SQUARED norm"),
    (_coef_with(delta=lambda g, s, u, e, r: np.sqrt(r["alpha"] / r["beta"])), "delta = sqrt(2 alpha / beta)"),
    (_coef_with(delta=lambda g, s, u, e, r: 2 * r["alpha"] / r["beta"]), "delta = sqrt(2 alpha / beta)"),
    (_coef_with(period=lambda g, s, u, e, r: 2 * np.pi / np.sqrt(2 * r["alpha"])), "divide by eta"),
    (_coef_with(period=lambda g, s, u, e, r: 2 * np.pi / (e * np.sqrt(r["alpha"]))), "sqrt(2 alpha)"),
])
def test_map_coefficients_checker_names_each_mistake(capsys, wrong, message):
    assert ex.check_map_coefficients(_right_coef)
    capsys.readouterr()
    assert ex.check_map_coefficients(wrong) is False
    out = capsys.readouterr().out
    assert out.startswith("Not yet") and message in out, out


def _parts(S, u, gS, gL, eta, thr=None):
    thr = 2 / eta if thr is None else thr
    gS_perp = gS - (u @ gS) * u
    q = -(u @ gL) / S
    p = -(S - thr + q * (u @ gS)) / (gS_perp @ gS_perp)
    return gS_perp, q, p


def _right_projection(S, u, gS, gL, eta):
    gS_perp, q, p = _parts(S, u, gS, gL, eta)
    return p * gS_perp + q * u


@pytest.mark.parametrize("wrong,message", [
    (lambda S, u, gS, gL, eta: -_right_projection(S, u, gS, gL, eta), "wrong sign"),
    (lambda S, u, gS, gL, eta: -(S - 2 / eta) / (_parts(S, u, gS, gL, eta)[0] @ _parts(S, u, gS, gL, eta)[0])
     * _parts(S, u, gS, gL, eta)[0], "grad L . u = 0"),
    (lambda S, u, gS, gL, eta: -(S - 2 / eta) / (gS @ gS) * gS, "grad L . u = 0"),
    (lambda S, u, gS, gL, eta: (lambda gp, q, p: p * gp + q * u)(*_parts(S, u, gS, gL, eta, thr=1 / eta)),
     "2/eta, not 1/eta"),
    (lambda S, u, gS, gL, eta: (lambda gp, q, p: q * u - (S - 2 / eta) / (gp @ gp) * gp)(*_parts(S, u, gS, gL, eta)),
     "q (u . grad S)"),
    (lambda S, u, gS, gL, eta: (lambda gp, q, p: q * u + p * gS)(*_parts(S, u, gS, gL, eta)), "grad S_perp"),
    (lambda S, u, gS, gL, eta: _right_projection(S, u, gS, gL, eta)[:-1], "shape"),
    (lambda S, u, gS, gL, eta: (lambda gp, q, p: -q * u - (S - 2 / eta - q * (u @ gS)) / (gp @ gp) * gp)(
        *_parts(S, u, gS, gL, eta)), "u-part has the wrong sign"),
    (lambda S, u, gS, gL, eta: (lambda gp, q, p: S * q * u - (S - 2 / eta + S * q * (u @ gS)) / (gp @ gp) * gp)(
        *_parts(S, u, gS, gL, eta)), "lacks its 1/S"),
    (lambda S, u, gS, gL, eta: np.asarray(__import__("eosteach.stable_dynamics").stable_dynamics.projection_step(
        S, u, gS, gL, eta, lower_only=True)), "RAISE S"),
])
def test_projection_step_checker_names_each_mistake(capsys, wrong, message):
    capsys.readouterr()
    assert ex.check_projection_step(wrong) is False
    out = capsys.readouterr().out
    assert out.startswith("Not yet") and message in out, out


def test_projection_step_checker_accepts_right_and_the_library(capsys):
    from eosteach import stable_dynamics as sd

    assert ex.check_projection_step(_right_projection)
    assert ex.check_projection_step(sd.projection_step)
    # A step that meets both linearised constraints but is not the smallest one.
    rng = np.random.default_rng(0)

    def too_big(S, u, gS, gL, eta):
        d = _right_projection(S, u, gS, gL, eta)
        w = rng.normal(size=len(u))
        A = np.stack([gS, u])  # remove from w everything the two constraints see
        w -= A.T @ np.linalg.solve(A @ A.T, A @ w)
        return d + w

    capsys.readouterr()
    assert ex.check_projection_step(too_big) is False
    assert "not the smallest" in capsys.readouterr().out


@pytest.mark.parametrize("check", [ex.check_map_step, ex.check_conserved_quantity, ex.check_map_coefficients,
                                   ex.check_projection_step])
def test_untouched_stubs_are_not_attempted(capsys, check):
    def stub(*args):
        raise NotImplementedError("not yet")

    assert check(stub) is None
    out = capsys.readouterr().out
    assert out.startswith("Not attempted yet") and "`eosteach." in out


def test_widget_extremes_render():
    from eosteach.widgets.selfstab import selfstab_demo

    w = selfstab_demo()
    assert w.view.png[:8] == b"\x89PNG\r\n\x1a\n"
    assert "whole cycle" in w.message.value
    # Slider extremes (log sliders store exponents in .min/.max); each must draw a picture.
    for name, end in [("eta", "max"), ("eta", "min"), ("alpha", "min"), ("y0", "min")]:
        c = w.controls[name]
        value = getattr(c, end)
        c.value = value if name == "y0" else 10**value
        assert w.view.png[:8] == b"\x89PNG\r\n\x1a\n"
        assert w.message.value
    w.controls["y0"].value = -1.0
    w.controls["alpha"].value = 1.0
    w.controls["eta"].value = 0.3
    assert w.trajectory.diverged and "Diverged" in w.message.value


def test_cycle_stats_first_cycles_and_ode_period():
    # The large orbit through (0.05, -1): the ODE's period is about 1.54 small-cycle periods,
    # and the map's first cycle matches it (later ones are longer: the map spirals outward).
    a, b, e = 1.0, 1.0, 0.01
    T = selfstab.ode_period(a, b, 0.05, -1.0)
    small = 2 * math.pi / math.sqrt(2 * a)
    assert T / small == pytest.approx(1.537, rel=0.01)
    tr = selfstab.iterate_map(a, b, e, 0.05, -1.0, int(5 * T / e))
    assert not tr.diverged
    st = selfstab.cycle_stats(tr, cycles=3)
    assert st.n_cycles == 3 and st.periods.shape == (3,) and st.cycle_mean_x2.shape == (3,)
    assert st.periods[0] * e == pytest.approx(T, rel=0.03)
    assert np.all(np.diff(st.periods) > 0)
    assert np.allclose(st.cycle_mean_x2, 2 * a / b, rtol=0.02)
    # Small orbits: the linearisation's period.
    assert selfstab.ode_period(a, b, 1.01 * math.sqrt(2 * a / b), 0.0) == pytest.approx(small, rel=1e-3)
    with pytest.raises(ValueError, match="cycles"):
        selfstab.cycle_stats(tr, cycles=50)
    with pytest.raises(ValueError, match="cycles"):
        selfstab.cycle_stats(tr, cycles=0)
    with pytest.raises(ValueError, match="X0"):
        selfstab.ode_period(a, b, -1.0, 0.0)


def test_cubic_reduction_names_the_dropped_terms():
    import sympy as sp

    r = selfstab.cubic_reduction()
    s = r["symbols"]
    dx, dz = r["dropped"]
    # h enters z' at first order: -eta h z.
    assert sp.simplify(sp.diff(dz, s["h"]) + s["eta"] * s["z"]) == 0
    assert sp.simplify(dx + s["eta"] * (s["t_xxx"] * s["x"] ** 2 + s["t_xzz"] * s["z"] ** 2) / 2) == 0


def test_iterate_cubic_is_the_map_without_extra_terms_and_gradient_descent_with_them():
    plain = selfstab.iterate_cubic(1.0, 1.0, 0.02, 0.05, -1.0, 500)
    ref = selfstab.iterate_map(1.0, 1.0, 0.02, 0.05, -1.0, 500)
    assert np.allclose(plain.x, ref.x, rtol=1e-9, atol=1e-12) and np.allclose(plain.y, ref.y, rtol=1e-9, atol=1e-12)
    # Independent: one step of gradient descent on the cubic, written out by hand in (x, z).
    alpha, beta, eta, h, txxx, txzz, tzzz = 0.7, 1.8, 0.05, 0.3, 0.4, -0.6, 0.2
    sb = math.sqrt(beta)
    g = -alpha / sb
    x, z = 0.3, -0.2 / sb
    dx = 2 / eta * x + txxx * x**2 / 2 + sb * x * z + txzz * z**2 / 2
    dz = g + h * z + sb * x**2 / 2 + txzz * x * z + tzzz * z**2 / 2
    tr = selfstab.iterate_cubic(alpha, beta, eta, 0.3, -0.2, 1, h=h, t_xxx=txxx, t_xzz=txzz, t_zzz=tzzz)
    assert (tr.x[1], tr.y[1]) == pytest.approx((x - eta * dx, sb * (z - eta * dz)), rel=1e-12)
    with pytest.raises(ValueError, match="h"):
        selfstab.iterate_cubic(1.0, 1.0, 0.02, 0.05, -1.0, 5, h=float("nan"))


def test_curvature_h_damps_and_the_xzz_remainder_grows_with_eta():
    # dH/dtau = -h Y^2: with h > 0 H falls from cycle to cycle (the map alone makes it grow).
    tr = selfstab.iterate_cubic(1.0, 1.0, 0.02, 0.05, -1.0, 2500, h=0.2)
    at = np.ceil(selfstab.cycle_starts(tr.y)).astype(int)
    H = selfstab.conserved_value(tr.x[at], tr.y[at], 1.0, 1.0)
    assert len(H) >= 4 and np.all(np.diff(H) < 0)
    small = selfstab.cycle_stats(selfstab.iterate_cubic(1.0, 1.0, 0.005, 0.05, -1.0, 12_000, t_xzz=1.0), cycles=3)
    assert np.allclose(small.cycle_mean_x2 / small.predicted_mean_x2, 1, atol=0.01)
    assert selfstab.iterate_cubic(1.0, 1.0, 0.02, 0.05, -1.0, 3000, t_xzz=1.0).diverged
    assert not selfstab.iterate_map(1.0, 1.0, 0.02, 0.05, -1.0, 3000).diverged


def test_mean_y_per_cycle_is_order_eta_and_sympy_damping():
    means = {}
    for eta in (0.02, 0.01):
        st = selfstab.cycle_stats(selfstab.iterate_map(1.0, 1.0, eta, 0.05, -1.0, int(50 / eta)), cycles=3)
        assert np.all(np.abs(st.cycle_mean_y) <= 0.1 * st.cycle_std_y)
        means[eta] = st.cycle_mean_y[0]
    assert means[0.01] / means[0.02] == pytest.approx(0.5, rel=0.1)
    # The ODE: the time average of Y over a closed orbit is 0 (integral of d log X).
    sol = selfstab.integrate_ode(1.0, 1.0, 0.05, -1.0, selfstab.ode_period(1.0, 1.0, 0.05, -1.0), dt=1e-3)
    assert abs(np.trapezoid(sol.Y, sol.tau)) < 1e-3 * np.trapezoid(np.abs(sol.Y), sol.tau)
    c = selfstab.conserved_quantity()
    X, Y, _, _ = c["symbols"]
    assert sp.simplify(c["dH_dt_with_h"] + c["h"] * Y**2) == 0


def test_orbit_peak_is_the_top_of_the_integrated_orbit():
    for alpha, beta, X0, Y0 in [(1.0, 1.0, 0.05, -1.0), (0.5, 2.0, 1e-6, 0.3)]:
        peak = selfstab.orbit_peak(alpha, beta, X0, Y0)
        sol = selfstab.integrate_ode(alpha, beta, X0, Y0, 2 * selfstab.ode_period(alpha, beta, X0, Y0), dt=1e-3)
        assert sol.Y.max() == pytest.approx(peak, rel=1e-4)
    with pytest.raises(ValueError, match="X0"):
        selfstab.orbit_peak(1.0, 1.0, 0.0, 0.0)


def _log_space_escape(alpha, beta, eta, x0, y0, steps):
    # Independent: the map iterated on (log|x|, y), which cannot underflow; returns the first
    # step with y < -2/eta and the log|x| at every step before it.
    ell, y, logs = math.log(abs(x0)), y0, [math.log(abs(x0))]
    for t in range(steps):
        x2 = math.exp(min(2 * ell, 700.0))
        ell, y = ell + math.log(abs(1 + eta * y)), y + eta * (alpha - beta * x2 / 2)
        if y < -2 / eta:
            return t + 1, np.array(logs)
        logs.append(ell)
    return None, np.array(logs)


def test_long_runs_do_not_underflow_and_diverge_honestly():
    # At eta = 0.01 the orbit from (0.05, -1) takes |x| below 1e-308 in Phase I; a plain float
    # loop then sticks at x = 0 (a fixed line) and lets y climb for ever with diverged=False.
    eta = 0.01
    tr = selfstab.iterate_map(1.0, 1.0, eta, 0.05, -1.0, 100_000)
    assert tr.log_abs_x is not None and tr.log_abs_x.shape == tr.x.shape
    assert tr.log_abs_x.min() < -745 and np.any(tr.x == 0)      # it did go below the float range ...
    assert tr.diverged and tr.y.max() < 2 / eta                  # ... came back, and left honestly
    escape, logs = _log_space_escape(1.0, 1.0, eta, 0.05, -1.0, 100_000)
    assert escape is not None and int(np.argmax(tr.y < -2 / eta)) == pytest.approx(escape, abs=2)
    assert np.allclose(tr.log_abs_x[:len(logs)][: escape - 10], logs[: escape - 10], rtol=1e-6, atol=1e-6)
    # H at the cycle starts stays finite (log_abs_x) and grows every cycle until the map leaves.
    H = selfstab.conserved_at_cycle_starts(tr)
    assert np.all(np.isfinite(H)) and np.all(np.diff(H) > 0) and len(H) >= 20


def test_rescaling_is_bit_exact_above_the_float_floor_and_handles_tiny_starts():
    # A run that stays above 2^-500 is the plain float loop bit for bit.
    tr = selfstab.iterate_map(1.0, 1.0, 0.02, 0.05, -1.0, 3000)
    x, y, xs, ys = 0.05, -1.0, [0.05], [-1.0]
    for _ in range(3000):
        x, y = -(1.0 + 0.02 * y) * x, y + 0.02 * (1.0 - 0.5 * 1.0 * x * x)
        xs.append(x)
        ys.append(y)
    assert np.array_equal(tr.x, xs) and np.array_equal(tr.y, ys)
    assert np.allclose(tr.log_abs_x, np.log(np.abs(tr.x)), rtol=0, atol=1e-12)
    # A start far below the float range (1e-200 stored as itself; the orbit climbs back out).
    tiny = selfstab.iterate_map(1.0, 1.0, 0.02, 1e-200, 0.0, 3000)
    assert tiny.log_abs_x[0] == pytest.approx(math.log(1e-200))
    assert np.abs(tiny.x).max() > 1.0 and not tiny.diverged
    # x0 = 0 is the fixed line of the map: y climbs at eta alpha per step, honestly.
    zero = selfstab.iterate_map(1.0, 1.0, 0.02, 0.0, 0.0, 10)
    assert np.all(zero.x == 0) and zero.y[-1] == pytest.approx(0.2) and np.all(np.isneginf(zero.log_abs_x))


def test_mean_y_split_and_top_eigenvalue_bias():
    eta = 0.02
    tr = selfstab.iterate_map(1.0, 1.0, eta, 0.05, -1.0, 2500)
    st = selfstab.cycle_stats(tr, cycles=3)
    assert st.cuts.shape == (4,)
    terms = selfstab.mean_y_terms(tr, st)
    # Independent: ln|x| by hand at the cuts, and the O(eta^2) remainder of the split.
    a, b = st.cuts[:-1], st.cuts[1:]
    spiral = np.log(np.abs(tr.x[b] / tr.x[a])) / ((b - a) * eta)
    assert np.allclose(terms["spiral"], spiral) and np.all(spiral < 0)
    assert np.allclose(terms["spiral"] + terms["curvature"], st.cycle_mean_y, rtol=0.01)
    # The top eigenvalue against numpy's eigvalsh of the 2x2 Hessian, and its cycle average.
    lam = selfstab.top_eigenvalue(tr)
    for t in (0, 100, 777):
        Hm = np.array([[2 / eta + tr.y[t], tr.x[t]], [tr.x[t], 0.0]])
        assert lam[t] == pytest.approx(np.linalg.eigvalsh(Hm)[-1], rel=1e-12)
    bias = np.array([lam[i:j].mean() for i, j in zip(a, b)]) - 2 / eta - st.cycle_mean_y
    assert np.allclose(bias, eta * 1.0, rtol=0.05)


def test_iterate_map_floor_default_is_the_exact_map_and_floor_keeps_the_map_bounded():
    exact = selfstab.iterate_map(1.0, 1.0, 0.02, 0.05, -1.0, 2000)
    same = selfstab.iterate_map(1.0, 1.0, 0.02, 0.05, -1.0, 2000, x_floor=0.0)
    assert np.array_equal(exact.x, same.x) and np.array_equal(exact.y, same.y)
    floored = selfstab.iterate_map(1.0, 1.0, 0.02, 0.05, -1.0, 30_000, x_floor=1e-16)
    assert not floored.diverged
    assert np.all(np.abs(floored.x) >= 1e-16)
    # the sign flip survives the floor: x still alternates
    assert np.all(np.sign(floored.x[1:]) == -np.sign(floored.x[:-1]))
    # the exact map leaves by then (Lesson 5: step 12,652)
    assert selfstab.iterate_map(1.0, 1.0, 0.02, 0.05, -1.0, 30_000).diverged
    with pytest.raises(ValueError):
        selfstab.iterate_map(1.0, 1.0, 0.02, 0.05, -1.0, 10, x_floor=-1.0)


def test_iterate_cubic_xzz_parts_split_the_two_terms():
    args = (1.0, 1.0, 0.02, 0.05, -1.0, 400)
    both = selfstab.iterate_cubic(*args, t_xzz=1.0)
    assert np.array_equal(both.x, selfstab.iterate_cubic(*args, t_xzz=1.0, xzz_parts="both").x)
    push = selfstab.iterate_cubic(*args, t_xzz=1.0, xzz_parts="push")
    coupling = selfstab.iterate_cubic(*args, t_xzz=1.0, xzz_parts="coupling")
    plain = selfstab.iterate_map(*args)
    # one step by hand, from (x0, z0) = (0.05, -1): the push only moves x, the coupling only moves z
    x0, z0, eta = 0.05, -1.0, 0.02
    assert np.isclose(push.x[1] - plain.x[1], -eta * 0.5 * z0 * z0) and np.isclose(push.y[1], plain.y[1])
    assert np.isclose(coupling.y[1] - plain.y[1], -eta * x0 * z0) and np.isclose(coupling.x[1], plain.x[1])
    with pytest.raises(ValueError):
        selfstab.iterate_cubic(*args, t_xzz=1.0, xzz_parts="neither")
