"""Symbolic derivations (sympy) of the descent lemma and of the divergence thresholds.

Nothing here types a result in: each expression is computed from a definition.

* ``descent_lemma(dim)``: expands L(theta - eta grad L) - L(theta) for a general quadratic
  in ``dim`` dimensions, rewrites it in terms of the gradient g, and bounds g^T A g by
  ell ||g||^2 to get the descent lemma  L(theta - eta g) - L(theta) <= -eta/2 (2 - eta ell) ||g||^2,
  with the condition eta < 2/ell solved from it (Nesterov, *Introductory Lectures on Convex
  Optimization*, 2004, Lemma 1.2.3).
* ``stability(method)``: builds the linear iteration matrix M of one eigen-direction by
  applying ``eosteach.quadratic.update`` (the very code that runs the optimisers) to sympy
  symbols, takes the characteristic polynomial det(z I - M), writes the Schur-Cohn (Jury)
  conditions for all its roots to lie inside the unit disc (E. I. Jury, *Theory and
  Application of the z-Transform Method*, 1964), and solves the binding one for the
  largest stable h = eta * lambda. The threshold on the sharpness is h*/eta.

The results simplify to ``eosteach.thresholds``: 2/eta, (2+2b)/eta, (2+2b)/((1+2b) eta) and
(2+2b)/((1-b) eta); the tests check it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from . import validate
from .quadratic import METHODS, STATE_SIZE, update

eta, ell = sp.symbols("eta ell", positive=True)
lam, h = sp.symbols("lambda h", positive=True)
b = sp.Symbol("b", nonnegative=True)
z = sp.Symbol("z")


# -- (a) the descent lemma --------------------------------------------------------------
@dataclass
class DescentLemma:
    """The derivation for a general quadratic in ``dim`` dimensions (all fields sympy).

    change : L(theta - eta g) - L(theta), expanded in the entries of A, c and g.
    change_vector : the same written as  -eta ||g||^2 + eta^2/2 g^T A g  (scalar symbols
        ``gg`` = ||g||^2 and ``gAg`` = g^T A g; the identification with ``change`` is checked).
    bound : change_vector with g^T A g <= ell ||g||^2, factored: -eta/2 (2 - eta ell) ||g||^2.
    per_direction : the change in A's eigenbasis, sum_i -eta/2 (2 - eta lambda_i) g~_i^2, with
        g~_i = v_i^T g the gradient's coordinates in that basis (symbols ``g_eigen``).
    condition : the set of eta > 0 on which the bound guarantees a decrease (eta < 2/ell).
    """

    dim: int
    A: sp.Matrix
    g: sp.Matrix
    change: sp.Expr
    change_vector: sp.Expr
    bound: sp.Expr
    per_direction: sp.Expr
    condition: sp.Basic
    gg: sp.Symbol = field(default=sp.Symbol(r"\|g\|^2", nonnegative=True))
    gAg: sp.Symbol = field(default=sp.Symbol(r"g^{T} A g"))
    g_eigen: sp.Matrix | None = None

    def latex(self) -> str:
        """The derivation as one LaTeX ``aligned`` block, for ``IPython.display.Math``."""
        rows = [
            r"L(\theta - \eta g) - L(\theta) &= " + sp.latex(self.change_vector),
            r"&\le " + sp.latex(self.change_vector.subs(self.gAg, ell * self.gg))
            + r" \quad (g^T A g \le \ell \|g\|^2)",
            r"&= " + sp.latex(self.bound),
            r"\text{guaranteed decrease (}\eta > 0,\ g \ne 0\text{)} &\iff " + sp.latex(self.condition),
        ]
        return r"\begin{aligned}" + r" \\ ".join(rows) + r"\end{aligned}"


def descent_lemma(dim: int = 2) -> DescentLemma:
    """Derive the one-step change of L under GD on L = 1/2 theta^T A theta + c^T theta.

    A is a general symmetric ``dim`` x ``dim`` matrix of symbols. The change is rewritten in
    terms of the gradient by substituting theta = A^{-1} (g - c) (A generic, hence
    invertible), which leaves a polynomial in eta whose coefficients are -||g||^2 and
    1/2 g^T A g. Cost grows fast with ``dim``; 2 or 3 is plenty.
    """
    dim = validate.positive_int("dim", dim)
    A = sp.Matrix(dim, dim, lambda i, j: sp.Symbol(f"a_{{{min(i, j) + 1}{max(i, j) + 1}}}"))
    c = sp.Matrix(sp.symbols(f"c_1:{dim + 1}"))
    theta = sp.Matrix(sp.symbols(rf"\theta_1:{dim + 1}"))
    g_sym = sp.Matrix(sp.symbols(f"g_1:{dim + 1}"))

    def L(x):
        return (x.T * A * x / 2 + c.T * x)[0, 0]

    grad = A * theta + c
    change_theta = sp.expand(L(theta - eta * grad) - L(theta))
    # Express in g: theta = A^{-1}(g - c).
    theta_of_g = A.LUsolve(g_sym - c)
    change = sp.expand(sp.simplify(change_theta.subs(dict(zip(theta, theta_of_g)), simultaneous=True)))
    poly = sp.Poly(change, eta)
    coeff = {m[0]: v for m, v in zip(poly.monoms(), poly.coeffs())}
    gg_value = (g_sym.T * g_sym)[0, 0]
    gAg_value = (g_sym.T * A * g_sym)[0, 0]
    lemma = DescentLemma(dim, A, g_sym, change, sp.S(0), sp.S(0), sp.S(0), sp.S(0))
    # The coefficients are recognised, then the recognition is verified exactly.
    if set(coeff) - {1, 2} or sp.expand(coeff.get(1, 0) + gg_value) != 0 \
            or sp.expand(coeff.get(2, 0) - gAg_value / 2) != 0:
        raise ArithmeticError("the change of L is not -eta ||g||^2 + eta^2/2 g^T A g")  # pragma: no cover
    lemma.change_vector = -eta * lemma.gg + eta**2 / 2 * lemma.gAg
    # eta^2/2 >= 0, so replacing g^T A g by its upper bound ell ||g||^2 bounds the change.
    lemma.bound = sp.factor(lemma.change_vector.subs(lemma.gAg, ell * lemma.gg))
    decrease_factor = sp.simplify(-2 * lemma.bound / (eta * lemma.gg))  # = 2 - eta ell
    lemma.condition = sp.solve_univariate_inequality(decrease_factor > 0, eta, relational=True)
    # In A's eigenbasis (A diagonal) every direction contributes on its own.
    lams = sp.symbols(rf"\lambda_1:{dim + 1}", positive=True)
    diagonal = {A[i, j]: (lams[i] if i == j else 0) for i in range(dim) for j in range(dim)}
    per_dir = sp.expand(change.subs(diagonal))
    # the gradient's coordinates in the eigenbasis get their own names, g~_i = v_i^T g
    lemma.g_eigen = sp.Matrix(sp.symbols(rf"\tilde{{g}}_1:{dim + 1}"))
    lemma.per_direction = sp.Add(*[
        sp.factor(per_dir.coeff(g_sym[i], 2) * lemma.g_eigen[i] ** 2) for i in range(dim)
    ])
    return lemma


# -- (b) characteristic polynomials -----------------------------------------------------
def iteration_matrix(method: str) -> sp.Matrix:
    """M such that (theta, buf)_(k+1) = M (theta, buf)_k along an eigen-direction lambda.

    Derived by running ``eosteach.quadratic.update`` on symbols with grad = lambda theta.
    GD has the state theta alone (1 x 1); the momentum methods (theta, buf) (2 x 2).
    """
    validate.choice("method", method, METHODS)
    theta_s, buf_s = sp.symbols(r"\theta buf")
    state = [theta_s, buf_s][: STATE_SIZE[method]]
    new_theta, new_buf = update(method, theta_s, buf_s, lam * theta_s, eta, b, 1)
    new_state = [new_theta, new_buf][: STATE_SIZE[method]]
    return sp.Matrix([[sp.expand(e).coeff(s) for s in state] for e in new_state])


def characteristic_polynomial(method: str) -> sp.Poly:
    """det(z I - M) as a polynomial in z; it depends on eta and lambda only through h = eta lambda."""
    M = iteration_matrix(method)
    p = (z * sp.eye(M.shape[0]) - M).det()
    p = sp.expand(p.subs(lam, h / eta))
    if p.has(eta):
        raise ArithmeticError("characteristic polynomial depends on eta other than via h")  # pragma: no cover
    return sp.Poly(p, z)


# -- (c) Schur-Cohn / Jury --------------------------------------------------------------
def jury_conditions(poly: sp.Poly) -> list[tuple[str, sp.Expr]]:
    """Jury's conditions for a monic real polynomial of degree 1 or 2, as (name, f) with f > 0.

    All roots lie strictly inside the unit disc iff every f > 0:
    degree 1 (z + a0):         p(1) > 0, -p(-1) > 0;
    degree 2 (z^2 + a1 z + a0): p(1) > 0, p(-1) > 0, 1 - |a0| > 0, where 1 + a0 > 0 follows
    from the first two (their sum is 2 + 2 a0), so 1 - a0 > 0 is the one to state.
    """
    n = poly.degree()
    coeffs = poly.all_coeffs()
    if coeffs[0] != 1 or n not in (1, 2):
        raise ValueError(f"poly must be monic of degree 1 or 2, got degree {n} with leading coefficient {coeffs[0]}")
    p_plus, p_minus = sp.expand(poly.eval(1)), sp.expand(poly.eval(-1))
    if n == 1:
        return [("p(1)", p_plus), ("-p(-1)", -p_minus)]
    return [("p(1)", p_plus), ("p(-1)", p_minus), ("1 - a_0", sp.expand(1 - coeffs[-1]))]


def _sign_on_momentum_range(expr) -> int | None:
    """+1 or -1 if ``expr`` keeps one sign for b in [0, 1) (no zero there), else None."""
    expr = sp.simplify(expr)
    if not expr.has(b):
        return 1 if expr > 0 else -1 if expr < 0 else None
    zeros = sp.solveset(sp.numer(sp.together(expr)), b, sp.Interval.Ropen(0, 1))
    if zeros != sp.S.EmptySet:
        return None
    value = expr.subs(b, sp.Rational(1, 2))
    return 1 if value > 0 else -1


@dataclass
class Stability:
    """The stability analysis of one method (all sympy).

    matrix : M(eta, lambda, b); polynomial : det(z I - M) in z, h, b;
    conditions : Jury's (name, f > 0) list; boundaries : {name: roots in h of f = 0};
    h_threshold : largest stable eta*lambda; threshold : h_threshold / eta (on the sharpness,
    preconditioned for "adam").
    """

    method: str
    matrix: sp.Matrix
    polynomial: sp.Poly
    conditions: list
    boundaries: dict
    h_threshold: sp.Expr
    threshold: sp.Expr

    def latex(self) -> str:
        """Matrix, polynomial, conditions and threshold as one LaTeX ``aligned`` block."""
        sharp = r"S_P" if self.method == "adam" else r"S"
        rows = [
            r"M &= " + sp.latex(self.matrix),
            r"p(z) = \det(zI - M) &= " + _poly_latex(self.polynomial),
        ]
        for name, f in self.conditions:
            rows.append(r"\text{Jury: } " + name + r" &= " + _fraction_latex(f) + r" > 0")
        rows.append(r"\eta\lambda &< " + _fraction_latex(self.h_threshold)
                    + r" \quad\Longleftrightarrow\quad " + sharp + " < " + _fraction_latex(self.threshold))
        return r"\begin{aligned}" + r" \\ ".join(rows) + r"\end{aligned}"


def _fraction_latex(expr) -> str:
    """LaTeX of a factored expression with a positive-looking denominator (1 - b, not b - 1)."""
    num, den = (sp.factor(part) for part in sp.fraction(sp.factor(expr)))
    if sp.factor(den).subs(b, 0).could_extract_minus_sign():
        num, den = sp.factor(-num), sp.factor(-den)
    # Momentum appears as (1 - b) > 0 in the papers; sympy's canonical form is -(b - 1).
    one_minus_b = sp.Symbol(r"\left(1 - b\right)", positive=True)
    num, den = (part.subs(b - 1, -one_minus_b) if (b - 1) in sp.Mul.make_args(part) else part
                for part in (num, den))
    if den == 1:
        return sp.latex(num)
    return r"\frac{" + sp.latex(num) + "}{" + sp.latex(den) + "}"


def _poly_latex(poly: sp.Poly) -> str:
    """z^2 + (coefficient) z + (coefficient), highest power first, coefficients factored."""
    terms = []
    for (k,), coef in zip(poly.monoms(), poly.coeffs()):
        coef = sp.factor(coef)
        power = "" if k == 0 else ("z" if k == 1 else f"z^{{{k}}}")
        if coef == 1 and k:
            terms.append(power)
        elif k == 0:
            terms.append(sp.latex(coef))
        else:
            text = sp.latex(coef)
            terms.append((f"\\left({text}\\right)" if isinstance(coef, sp.Add) else text) + " " + power)
    return " + ".join(terms).replace("+ -", "-").replace("  ", " ")


def stability(method: str) -> Stability:
    """Derive the divergence threshold of ``method`` from its update rule.

    The stable set in h > 0 is (0, h*): every Jury condition holds just above h = 0, and h*
    is the smallest positive root, over all conditions, of f(h, b) = 0 for every b in
    [0, 1). "Smallest for every b" is proved, not sampled: the difference of two candidate
    roots has no zero in [0, 1) (sympy ``solveset``), so its sign at b = 1/2 is its sign.
    """
    M = iteration_matrix(method)
    poly = characteristic_polynomial(method)
    conditions = jury_conditions(poly)
    boundaries = {name: sp.solve(f, h) for name, f in conditions}
    candidates = [r for roots in boundaries.values() for r in roots if _sign_on_momentum_range(r) == 1]
    if not candidates:
        raise ArithmeticError(f"{method}: no positive stability boundary found")  # pragma: no cover
    h_star = candidates[0]
    for r in candidates[1:]:
        sign = _sign_on_momentum_range(r - h_star)
        if sign is None:
            raise ArithmeticError(f"{method}: the binding condition changes with b")  # pragma: no cover
        if sign < 0:
            h_star = r
    h_star = sp.factor(sp.simplify(h_star))
    # Stable just below h*: every condition holds at h = h*/2 (b = 1/2, any b would do).
    if not all(f.subs(h, h_star / 2).subs(b, sp.Rational(1, 2)) > 0 for _, f in conditions):
        raise ArithmeticError(f"{method}: (0, h*) is not the stable set")  # pragma: no cover
    return Stability(method, M, poly, conditions, boundaries, h_star, sp.factor(h_star / eta))


def thresholds_table() -> dict:
    """{method: threshold on the sharpness, derived} for every method."""
    return {m: stability(m).threshold for m in METHODS}
