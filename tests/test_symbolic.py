"""The sympy derivations simplify to the closed forms, and agree with the numerical code."""

import numpy as np
import pytest
import sympy as sp

from eosteach import quadratic, symbolic
from eosteach.symbolic import b, eta, ell, h

# Typed here on purpose: the independent statement of the results the code must derive.
CLOSED_FORMS = {
    "gd": 2 / eta,
    "heavy_ball": (2 + 2 * b) / eta,
    "nesterov": (2 + 2 * b) / ((1 + 2 * b) * eta),
    "adam": (2 + 2 * b) / ((1 - b) * eta),
}


@pytest.fixture(scope="module")
def analyses():
    return {m: symbolic.stability(m) for m in symbolic.METHODS}


@pytest.mark.parametrize("method", list(CLOSED_FORMS))
def test_derived_threshold_minus_closed_form_simplifies_to_zero(analyses, method):
    assert sp.simplify(analyses[method].threshold - CLOSED_FORMS[method]) == 0


@pytest.mark.parametrize("method", ["heavy_ball", "nesterov", "adam"])
def test_characteristic_polynomial_matches_numerical_iteration(analyses, method):
    poly = analyses[method].polynomial
    for hv, bv in [(0.3, 0.1), (2.0, 0.5), (3.7, 0.95)]:
        coeffs = [float(c.subs({h: hv, b: bv})) for c in poly.all_coeffs()]
        assert np.allclose(coeffs, quadratic.characteristic_coefficients(method, hv, bv))


def test_gd_is_first_order_and_momentum_second_order(analyses):
    assert analyses["gd"].polynomial.degree() == 1
    assert all(analyses[m].polynomial.degree() == 2 for m in ("heavy_ball", "nesterov", "adam"))


@pytest.mark.parametrize("method", ["heavy_ball", "nesterov", "adam"])
def test_jury_conditions_agree_with_root_moduli(analyses, method):
    conditions = analyses[method].conditions
    rng = np.random.default_rng(0)
    for hv, bv in zip(rng.uniform(0.01, 8.0, 60), rng.uniform(0.0, 0.99, 60)):
        jury = all(float(f.subs({h: hv, b: bv})) > 0 for _, f in conditions)
        radius = quadratic.spectral_radius(method, hv, bv)
        if abs(radius - 1) > 1e-9:
            assert jury == (radius < 1)


def test_descent_lemma_derivation():
    lemma = symbolic.descent_lemma(2)
    gg, gAg = lemma.gg, lemma.gAg
    assert sp.simplify(lemma.change_vector - (-eta * gg + eta**2 / 2 * gAg)) == 0
    assert sp.simplify(lemma.bound - (-eta / 2 * (2 - eta * ell) * gg)) == 0
    assert lemma.condition == (eta < 2 / ell)
    # The expanded change equals L(theta - eta g) - L(theta) at random numbers.
    rng = np.random.default_rng(1)
    M = rng.standard_normal((2, 2))
    A = M @ M.T + np.eye(2)
    g = rng.standard_normal(2)
    values = {lemma.A[0, 0]: A[0, 0], lemma.A[0, 1]: A[0, 1], lemma.A[1, 1]: A[1, 1],
              lemma.g[0]: g[0], lemma.g[1]: g[1], eta: 0.37}
    theta = np.linalg.solve(A, g)  # c = 0 here: g = A theta
    direct = 0.5 * (theta - 0.37 * g) @ A @ (theta - 0.37 * g) - 0.5 * theta @ A @ theta
    assert float(lemma.change.subs(values)) == pytest.approx(direct)
    # Per eigen-direction: -eta/2 (2 - eta lambda_i) g_i^2.
    lam1, lam2 = sp.symbols(r"\lambda_1:3", positive=True)
    expected = -eta / 2 * ((2 - eta * lam1) * lemma.g_eigen[0] ** 2 + (2 - eta * lam2) * lemma.g_eigen[1] ** 2)
    assert not (lemma.per_direction.free_symbols & set(lemma.g))   # eigenbasis coordinates, not g_1, g_2
    assert sp.simplify(lemma.per_direction - expected) == 0
    assert r"\frac{2}{\ell}" in lemma.latex() and r"\eta > 0" in lemma.latex()


def test_latex_is_produced(analyses):
    text = analyses["nesterov"].latex()
    assert text.startswith(r"\begin{aligned}") and r"\det(zI - M)" in text and "2 b + 1" in text


def test_bad_input():
    with pytest.raises(ValueError, match="method must be one of"):
        symbolic.stability("sgd")
    with pytest.raises(ValueError, match="dim must be an integer >= 1"):
        symbolic.descent_lemma(0)
    with pytest.raises(ValueError, match="monic of degree 1 or 2"):
        symbolic.jury_conditions(sp.Poly(symbolic.z**3 + 0.5, symbolic.z))
