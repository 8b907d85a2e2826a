"""The minimalist model of Yoo, Song & Yun (ICML 2025): a deep linear network with one
neuron per layer, small enough to analyse and rich enough to sharpen progressively.

Model and loss, for data X (N, d) with rows x_i and scalar targets y (N,):

    f(x; u, v) = (x^T u) v_1 v_2 ... v_{D-1},      u in R^d,  v in R^{D-1},
    L(u, v)    = (1/2N) || X u p - y ||^2,          p = prod_i v_i,

so D is the depth (D = 1 would be linear regression). Parameters are flattened as
theta = (u, v) of length d + D - 1 in every function below.

Closed forms (r = X u p - y is the residual, z = X u, p_{-i} = prod_{j != i} v_j):

    grad_u L        = (p/N) X^T r
    grad_{v_i} L    = (p_{-i}/N) z^T r
    H_uu            = (p^2/N) X^T X
    H_{u v_i}       = (p_{-i}/N) X^T (r + p z)
    H_{v_i v_i}     = (p_{-i}^2/N) ||z||^2
    H_{v_i v_j}     = (1/N) (p_{-ij} z^T r + p_{-i} p_{-j} ||z||^2)        (i != j)

Dataset difficulty (Yoo et al.): Q = ||X^+ y||^2, the squared norm of the minimum-norm
interpolator w* = X^+ y. Gradient flow conserves ||u||^2 - v_i^2, so from a balanced start
(||u|| = |v_i|) with u in the row space of X it ends at the *balanced interpolating
minimum* u = w* / a^{D-1}, |v_i| = a with a^D = sqrt(Q), i.e. a = Q^{1/(2D)}. There the
Hessian is J^T J / N with J = [p X, y/v_1, ..., y/v_{D-1}], so

    S* = lambda_max( (1/N) [ Q^{(D-1)/D} X X^T + (D-1) Q^{-1/D} y y^T ] ),

and with sigma_1 the top singular value of X (``derive_balanced_sharpness`` derives this
in sympy):

    sigma_1^2 Q^{(D-1)/D} / N  <=  S*  <=  D sigma_1^2 Q^{(D-1)/D} / N,

with equality on the right exactly when y lies along X's top left singular vector. The
sharpness at the end of training grows with the difficulty Q and, for Q > 1, with depth:
harder data and deeper models sharpen more — the paper's explanation of progressive
sharpening in this model. When S* > 2/eta, GD cannot settle there and instead runs at
the edge of stability.

Everything is numpy float64: the model is tiny once reduced to the row space of X
(``row_space``), which makes exact Hessians cheap even on CIFAR-10 subsets.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from . import validate

STATUSES = ("finished", "goal_reached", "diverged")


# --- inputs ----------------------------------------------------------------------------

def _as_data(X, y=None):
    """X as a finite float64 (N, d) array and y as a finite (N,) array."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(f"X must be a 2-d array of shape (N, d) with N, d >= 1, got shape {X.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError("X must contain only finite numbers")
    if y is None:
        return X
    y = np.asarray(y, dtype=np.float64)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.shape != (X.shape[0],):
        raise ValueError(f"y must have shape ({X.shape[0]},) to match X of shape {X.shape}, got {y.shape}")
    if not np.all(np.isfinite(y)):
        raise ValueError("y must contain only finite numbers")
    return X, y


def _as_params(u, v, d):
    u = np.asarray(u, dtype=np.float64)
    v = np.atleast_1d(np.asarray(v, dtype=np.float64))
    if u.shape != (d,):
        raise ValueError(f"u must have shape ({d},) to match X, got {u.shape}")
    if v.ndim != 1 or v.size < 1:
        raise ValueError(f"v must be a 1-d array of the D-1 >= 1 scalar weights, got shape {v.shape}")
    return u, v


def _depth(depth) -> int:
    return validate.positive_int("depth", depth, minimum=2)


def _products_without(v):
    """p_{-i} = prod_{j != i} v_j for each i, without dividing (v_i may be 0)."""
    k = v.size
    before = np.concatenate(([1.0], np.cumprod(v)[:-1]))
    after = np.concatenate((np.cumprod(v[::-1])[:-1][::-1], [1.0])) if k > 1 else np.ones(1)
    return before * after


# --- the model ---------------------------------------------------------------------------

def flatten(u, v) -> np.ndarray:
    """theta = (u, v) as one vector of length d + D - 1."""
    return np.concatenate((np.asarray(u, dtype=np.float64), np.atleast_1d(np.asarray(v, dtype=np.float64))))


def unflatten(theta, d: int):
    """Inverse of ``flatten``: (u (d,), v (D-1,))."""
    theta = np.asarray(theta, dtype=np.float64)
    return theta[:d].copy(), theta[d:].copy()


def predict(X, u, v) -> np.ndarray:
    """f(x_i) = (x_i^T u) prod(v) for every row of X: shape (N,)."""
    X = _as_data(X)
    u, v = _as_params(u, v, X.shape[1])
    return (X @ u) * np.prod(v)


def loss(X, y, u, v) -> float:
    """L(u, v) = (1/2N) ||X u prod(v) - y||^2."""
    X, y = _as_data(X, y)
    r = predict(X, u, v) - y
    return float(0.5 * np.mean(r * r))


def gradient(X, y, u, v):
    """(grad_u L (d,), grad_v L (D-1,)) in closed form (see the module docstring)."""
    X, y = _as_data(X, y)
    u, v = _as_params(u, v, X.shape[1])
    n = X.shape[0]
    z = X @ u
    p = np.prod(v)
    r = z * p - y
    return p * (X.T @ r) / n, _products_without(v) * (z @ r) / n


def hessian(X, y, u, v) -> np.ndarray:
    """The exact Hessian of L at (u, v): shape (d + D - 1, d + D - 1), closed form.

    Includes the residual terms, so it is exact away from minima too; at an interpolating
    minimum (r = 0) it reduces to the Gauss-Newton matrix J^T J / N.
    """
    X, y = _as_data(X, y)
    u, v = _as_params(u, v, X.shape[1])
    n, d = X.shape
    k = v.size
    z = X @ u
    p = np.prod(v)
    r = z * p - y
    p_i = _products_without(v)
    H = np.empty((d + k, d + k))
    H[:d, :d] = (p * p / n) * (X.T @ X)
    cross = X.T @ (r + p * z) / n
    H[:d, d:] = np.outer(cross, p_i)
    H[d:, :d] = H[:d, d:].T
    zz, zr = z @ z, z @ r
    for i in range(k):
        for j in range(k):
            if i == j:
                H[d + i, d + j] = p_i[i] ** 2 * zz / n
            else:
                p_ij = np.prod(np.delete(v, [i, j]))
                H[d + i, d + j] = (p_ij * zr + p_i[i] * p_i[j] * zz) / n
    return H


def row_space(X):
    """(Z (N, m), V (d, m)) with X = Z V^T, V orthonormal, m = rank X (thin SVD: Z = U S).

    Gradient descent never moves u out of the row space of X, and the Hessian's range lies
    in (row space) x R^{D-1}, so the model on (Z, V^T u) has the same losses, the same GD
    trajectory and the same nonzero Hessian eigenvalues as on (X, u) — at m + D - 1
    parameters instead of d + D - 1 (m = N = 1000 instead of d = 3072 on CIFAR-10).
    """
    X = _as_data(X)
    U, s, Vt = np.linalg.svd(X, full_matrices=False)
    m = int(np.sum(s > s[0] * max(X.shape) * np.finfo(np.float64).eps)) if s.size else 0
    return U[:, :m] * s[:m], Vt[:m].T


def sharpness(X, y, u, v, *, k: int = 1, reduce: bool | None = None) -> np.ndarray | float:
    """S = lambda_max of the Hessian at (u, v) (the top ``k`` eigenvalues when k > 1, descending).

    Exact (dense ``eigh``). When d is larger than N, the Hessian is first compressed onto the
    row space of X (``row_space``), which leaves its nonzero eigenvalues unchanged and
    turns a 3075 x 3075 eigenproblem on CIFAR-10 into an (N + D - 1)-sized one.
    """
    X, y = _as_data(X, y)
    u, v = _as_params(u, v, X.shape[1])
    k = validate.positive_int("k", k)
    n, d = X.shape
    if reduce is None:
        reduce = d > n
    if reduce:
        Z, V = row_space(X)
        H = hessian(Z, y, V.T @ u, v)
        padding = d - Z.shape[1]  # directions orthogonal to the row space: eigenvalue 0
    else:
        H = hessian(X, y, u, v)
        padding = 0
    eig = np.linalg.eigvalsh(H)
    if padding:
        eig = np.concatenate((eig, np.zeros(padding)))
    top = np.sort(eig)[::-1][:k]
    return float(top[0]) if k == 1 else top


# --- data difficulty and the balanced minimum ---------------------------------------------

def min_norm_solution(X, y) -> np.ndarray:
    """w* = X^+ y, the minimum-norm least-squares solution (an interpolator when rank X = N)."""
    X, y = _as_data(X, y)
    return np.linalg.lstsq(X, y, rcond=None)[0]


def difficulty(X, y) -> float:
    """Dataset difficulty Q = ||X^+ y||^2 (Yoo, Song & Yun 2025)."""
    w = min_norm_solution(X, y)
    return float(w @ w)


def top_singular_value(X) -> float:
    """sigma_1(X), the largest singular value."""
    return float(np.linalg.norm(_as_data(X), ord=2))


def can_interpolate(X, y, *, rtol: float = 1e-8) -> bool:
    """True when some w has X w = y (always so when rank X = N)."""
    X, y = _as_data(X, y)
    w = min_norm_solution(X, y)
    return bool(np.linalg.norm(X @ w - y) <= rtol * max(np.linalg.norm(y), 1e-300))


def balanced_minimum(X, y, depth: int):
    """The balanced interpolating minimum in the row space: u = w*/a^{D-1}, v_i = a, a = Q^{1/(2D)}.

    Raises ValueError when the data cannot be interpolated (rank X < N with y outside the
    column space) or when y = 0 (then the minimum is the origin, a saddle of every depth).
    """
    X, y = _as_data(X, y)
    depth = _depth(depth)
    if not can_interpolate(X, y):
        raise ValueError("X u p = y has no solution for these X, y: the balanced interpolating minimum needs rank X = N or y in the column space of X")
    w = min_norm_solution(X, y)
    Q = float(w @ w)
    if Q == 0.0:
        raise ValueError("y must not be all zeros: the only interpolating balanced point is the origin")
    a = _balance_scale()(Q, depth)
    return w / a ** (depth - 1), np.full(depth - 1, a)


def interpolating_minimum(X, y, balance):
    """The interpolating minimum with the given imbalances ``balance`` = ||u||^2 - v_i^2 (one
    per v_i, D - 1 values), u along w* = X^+ y and every v_i > 0.

    Gradient flow conserves ||u||^2 - v_i^2 and keeps u in the row space, so from a start with
    these imbalances it ends here; ``balance = 0`` gives the balanced minimum (``balanced_minimum``).
    GD with a finite step conserves them only approximately: the minimum with a GD run's own
    final ``MinimalistRun.balance`` is the minimum that run converges to, whose sharpness can lie
    slightly below S* (and below the lower bound on S*, which bounds the balanced minimum only).
    Solves s prod_i sqrt(s^2 - c_i) = ||w*|| for s = ||u|| by bisection (the left side grows with s).
    Returns (u, v). Raises ValueError as ``balanced_minimum`` does, or when ``balance`` is not finite.
    """
    X, y = _as_data(X, y)
    c = np.asarray(balance, dtype=np.float64).reshape(-1)
    if c.size < 1 or not np.all(np.isfinite(c)):
        raise ValueError(f"balance must hold D - 1 >= 1 finite values ||u||^2 - v_i^2, got {np.asarray(balance)!r}")
    if not can_interpolate(X, y):
        raise ValueError("X u p = y has no solution for these X, y: an interpolating minimum needs rank X = N or y in the column space of X")
    w = min_norm_solution(X, y)
    target = float(np.linalg.norm(w))
    if target == 0.0:
        raise ValueError("y must not be all zeros: the only interpolating balanced point is the origin")

    def excess(s):  # log(s prod_i v_i) - log ||w*||, increasing in s
        return np.log(s) + 0.5 * float(np.sum(np.log(s * s - c))) - np.log(target)

    floor = np.sqrt(max(float(c.max()), 0.0))  # s must exceed it: s^2 > c_i for every i
    hi = max(2.0 * floor, 1.0)
    while excess(hi) < 0:
        hi *= 2.0
    if floor > 0:
        lo = np.nextafter(floor, np.inf)
    else:  # every c_i <= 0: s -> 0 sends the left side to 0; halve until below the target
        lo = hi
        while excess(lo) >= 0:
            lo *= 0.5
    for _ in range(200):  # bisection to float precision
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        lo, hi = (mid, hi) if excess(mid) < 0 else (lo, mid)
    s = 0.5 * (lo + hi)
    v = np.sqrt(s * s - c)
    return w / np.prod(v), v


def balanced_sharpness(X, y, depth: int) -> float:
    """Exact S* at the balanced interpolating minimum, for any data (no alignment assumed):

        lambda_max( (1/N) [ Q^{(D-1)/D} X X^T + (D-1) Q^{-1/D} y y^T ] )

    an N x N eigenproblem whose two coefficients come from ``derive_balanced_sharpness``.
    """
    X, y = _as_data(X, y)
    depth = _depth(depth)
    Q = difficulty(X, y)
    c_x, c_y = _gram_coefficients()
    G = c_x(Q, depth) * (X @ X.T) + c_y(Q, depth) * np.outer(y, y)
    return float(np.linalg.eigvalsh(G / X.shape[0])[-1])


def balanced_predictions(X, y, depths=(2, 3)) -> dict:
    """Q, sigma_1^2 / N and S* for several depths from one N x N Gram matrix, without an SVD
    of X (N, d): the cheap way for N up to a few thousand.

    With G = X X^T of full rank N (so the data can be interpolated), w* = X^T G^{-1} y and
    Q = ||w*||^2 = y^T G^{-1} y (a Cholesky solve); sigma_1^2 = lambda_max(G); and
    S*(D) = lambda_max((Q^{(D-1)/D} G + (D-1) Q^{-1/D} y y^T) / N), as ``balanced_sharpness``.
    Returns {"Q": float, "s1sq_N": float, "S_star": {D: float}}. Raises ValueError when G is
    singular (rank X < N): use ``difficulty`` and ``balanced_sharpness`` then."""
    X, y = _as_data(X, y)
    depths = tuple(_depth(D) for D in depths)
    if not depths:
        raise ValueError("depths must name at least one depth D >= 2")
    n = X.shape[0]
    G = X @ X.T
    try:
        np.linalg.cholesky(G)
    except np.linalg.LinAlgError:
        raise ValueError(f"X X^T must be positive definite (rank X = N = {n}); "
                         "use difficulty and balanced_sharpness for rank-deficient data") from None
    Q = float(y @ np.linalg.solve(G, y))
    if Q == 0.0:
        raise ValueError("y must not be all zeros: the only interpolating balanced point is the origin")
    c_x, c_y = _gram_coefficients()
    S_star = {D: float(np.linalg.eigvalsh((c_x(Q, D) * G + c_y(Q, D) * np.outer(y, y)) / n)[-1]) for D in depths}
    return {"Q": Q, "s1sq_N": float(np.linalg.eigvalsh(G)[-1]) / n, "S_star": S_star}


def _floats(*values):
    return [np.asarray(v, dtype=float) for v in values]


def sharpness_formula(Q, depth, sigma_1, n):
    """D sigma_1^2 Q^{(D-1)/D} / N: S* of the balanced minimum when y lies along X's top
    singular direction, and an upper bound on S* for every dataset (sympy-derived,
    broadcasts over numpy arrays)."""
    return _lambdified("aligned")(*_floats(Q, depth, sigma_1, n, 1.0))


def sharpness_bounds(Q, depth, sigma_1, n, mean_y2=1.0):
    """(lower, upper) on S* at the balanced minimum (sympy-derived, see ``derive_balanced_sharpness``):

        lower = max( sigma_1^2 Q^{(D-1)/D} / N,  D m_2 Q^{-1/D} )
        upper = sigma_1^2 Q^{(D-1)/D} / N + (D-1) m_2 Q^{-1/D}

    with m_2 = mean(y_i^2) (``mean_y2``; 1 for labels +-1, so that both bounds are functions
    of Q, D, sigma_1 and N alone). On CIFAR-10 the two are within a few percent.
    """
    args = _floats(Q, depth, sigma_1, n, validate.positive("mean_y2", mean_y2))
    lower = np.maximum(_lambdified("lower")(*args), _lambdified("radial")(*args))
    return lower, _lambdified("upper")(*args)


# --- the derivation, in sympy ----------------------------------------------------------

@functools.lru_cache(maxsize=None)
def derive_balanced_sharpness() -> dict:
    """Derive the sharpness of the balanced interpolating minimum with sympy.

    Symbols: Q (difficulty), D (depth), sigma_1, N (examples), m_2 = ||y||^2/N, all positive.
    Steps:

    1. balance + interpolation: ||u|| = v_i = a and ||u|| a^{D-1} = ||w*|| = sqrt(Q)
       give a^D = sqrt(Q), solved for a;
    2. at r = 0 the Hessian is J^T J / N, whose nonzero spectrum is that of J J^T / N
       = (1/N) [p^2 X X^T + (sum_i 1/v_i^2) y y^T]; substituting the balanced values gives
       the two Gram coefficients;
    3. aligned data (y = sigma_1 sqrt(Q) e_1, e_1 the top left singular vector of X): the
       top eigenvector lies in the plane spanned by u's own direction and (1, ..., 1) in v.
       The loss restricted to u = (a + s) e, v_i = a + t is a function of (s, t) only; its
       Hessian, in the metric diag(1, D-1) that makes (s, t) orthonormal coordinates,
       has the top eigenvalue S* (the other eigenvalues are p^2 sigma_k^2 / N and 0);
    4. general data: Weyl's inequality gives the upper bound
       sigma_1^2 Q^{(D-1)/D}/N + (D-1) m_2 Q^{-1/D}; dropping the PSD rank-one term gives the
       lower bound sigma_1^2 Q^{(D-1)/D}/N, and the rescaling direction theta -> (1+eps) theta
       the second lower bound ("radial") D m_2 Q^{-1/D}. Since ||y||^2 = ||X w*||^2 <= sigma_1^2 Q,
       the aligned value D sigma_1^2 Q^{(D-1)/D}/N bounds S* for every dataset.

    Returns a dict of sympy objects: symbols (Q, D, sigma_1, N, m_2), a (the balance scale),
    gram_x, gram_y (coefficients of X X^T/N and y y^T/N), plane_hessian (2x2, orthonormal
    coordinates), aligned, lower, radial, upper (sharpness expressions), and checks
    (identities that sympy simplifies to 0).
    """
    import sympy as sp

    Q, D, s1, N = sp.symbols("Q D sigma_1 N", positive=True)
    a_sym = sp.Symbol("a", positive=True)
    s, t = sp.symbols("s t", real=True)

    # 1. balance and interpolation
    (a,) = sp.solve(sp.Eq(a_sym ** D, sp.sqrt(Q)), a_sym)

    # 2. Gram coefficients at the balanced minimum: p^2 = a^{2(D-1)}, sum 1/v_i^2 = (D-1)/a^2
    gram_x = sp.powsimp(sp.expand_power_base((a ** (D - 1)) ** 2, force=True), force=True)
    gram_y = sp.powsimp((D - 1) / a ** 2, force=True)

    # 3. aligned data: restrict the loss to the invariant plane and take its Hessian
    output = s1 * (a_sym + s) * (a_sym + t) ** (D - 1)  # x^T u p along the top direction
    plane_loss = (output - s1 * sp.sqrt(Q)) ** 2 / (2 * N)
    M = sp.hessian(plane_loss, (s, t)).subs({s: 0, t: 0})
    metric_inv_sqrt = sp.diag(1, 1 / sp.sqrt(D - 1))  # ||(0, t 1_{D-1})|| = sqrt(D-1) |t|
    plane_hessian = sp.simplify((metric_inv_sqrt * M * metric_inv_sqrt).subs(a_sym ** D, sp.sqrt(Q)))
    plane_hessian = sp.simplify(plane_hessian.subs(a_sym, a))
    eigs = [sp.simplify(sp.powsimp(e, force=True)) for e in plane_hessian.eigenvals()]
    (aligned,) = [e for e in eigs if e != 0]  # rank one (J^T J on a 1-d output): one eigenvalue is 0

    # 4. general data, with m_2 = ||y||^2 / N the mean squared target (1 for labels +-1):
    #    Weyl: S* <= lambda_max(gram_x X X^T / N) + gram_y ||y||^2 / N;
    #    lower: the first term alone (both terms are PSD), and the Rayleigh quotient of the
    #    rescaling direction theta -> (1 + eps) theta, along which f grows like (1 + eps)^D
    #    (J theta = D y by Euler's theorem), so ||J theta||^2 / (N ||theta||^2) = D^2 ||y||^2 / (N D a^2).
    m2 = sp.Symbol("m_2", positive=True)
    eps = sp.Symbol("epsilon", real=True)
    lower = sp.powsimp(gram_x * s1 ** 2 / N, force=True)
    upper = sp.simplify(sp.powsimp(lower + gram_y * m2, force=True))
    J_theta_over_y = sp.diff((1 + eps) ** D, eps).subs(eps, 0)  # f((1+eps) theta) = (1+eps)^D f(theta)
    radial = sp.simplify(sp.powsimp(J_theta_over_y ** 2 * m2 / (D * a ** 2), force=True))
    aligned_m2 = s1 ** 2 * Q / N  # y = X w* along the top singular vector: ||y||^2 = sigma_1^2 Q
    checks = {
        "y along the top left singular vector: the plane Hessian has rank one": sp.simplify(plane_hessian.det()),
        "... its eigenvalue, S* for that y, = D sigma_1^2 Q^((D-1)/D) / N": sp.simplify(sp.powsimp(aligned - D * s1 ** 2 * Q ** ((D - 1) / D) / N, force=True)),
        "... = the tight (Weyl) upper bound at ||y||^2 = sigma_1^2 Q (attained)": sp.simplify(sp.powsimp(upper.subs(m2, aligned_m2) - aligned, force=True)),
        "... = D x the lower bound (the loose upper bound)": sp.simplify(sp.powsimp(aligned - D * lower, force=True)),
        "... = the radial lower bound for that y": sp.simplify(sp.powsimp(radial.subs(m2, aligned_m2) - aligned, force=True)),
    }
    return {
        "symbols": {"Q": Q, "D": D, "sigma_1": s1, "N": N, "m_2": m2},
        "a": a,
        "gram_x": gram_x,
        "gram_y": gram_y,
        "plane_hessian": plane_hessian,
        "aligned": aligned,
        "lower": lower,
        "radial": radial,
        "upper": upper,
        "checks": checks,
    }


@functools.lru_cache(maxsize=None)
def _lambdified(name: str):
    import sympy as sp

    r = derive_balanced_sharpness()
    sym = r["symbols"]
    return sp.lambdify((sym["Q"], sym["D"], sym["sigma_1"], sym["N"], sym["m_2"]), r[name], "numpy")


@functools.lru_cache(maxsize=None)
def _balance_scale():
    import sympy as sp

    r = derive_balanced_sharpness()
    sym = r["symbols"]
    f = sp.lambdify((sym["Q"], sym["D"]), r["a"], "math")
    return lambda Q, depth: float(f(float(Q), float(depth)))


@functools.lru_cache(maxsize=None)
def _gram_coefficients():
    import sympy as sp

    r = derive_balanced_sharpness()
    sym = r["symbols"]
    cx = sp.lambdify((sym["Q"], sym["D"]), r["gram_x"], "math")
    cy = sp.lambdify((sym["Q"], sym["D"]), r["gram_y"], "math")
    return (lambda Q, D: float(cx(float(Q), float(D)))), (lambda Q, D: float(cy(float(Q), float(D))))


# --- data -----------------------------------------------------------------------------

def binary_cifar10(n: int, *, classes=("airplane", "automobile"), root=None, download: bool = True):
    """(X (n, 3072) float64, y (n,) in {+1, -1}): a two-class CIFAR-10 subset for this model.

    The model has one output, so it needs scalar targets; we use a two-class task with
    y = +1 for the first class and -1 for the second (our choice: the closest analogue of
    Cohen et al.'s one-hot MSE setting; the theory holds for any scalar y). The images are
    the first n/2 of each class in the training set, with Cohen et al.'s preprocessing
    (``eosteach.data.load_cifar10(n, classes=..., balanced=True)``), so subsets of
    increasing n are nested. Krizhevsky (2009).
    """
    from . import data

    n = validate.positive_int("n", n, minimum=2)
    if len(tuple(classes)) != 2:
        raise ValueError(f"classes must name exactly two CIFAR-10 classes, got {classes!r}")
    ds = data.load_cifar10(n, classes=tuple(classes), balanced=True, loss="ce", root=root, download=download)
    labels = ds.y_train.cpu().numpy()
    return ds.x_train.cpu().double().numpy(), np.where(labels == 0, 1.0, -1.0)


# --- gradient descent -------------------------------------------------------------------

def init(X, depth: int, *, scale: float = 0.1, seed: int = 0):
    """A balanced start: u = scale x (a random unit vector in the row space of X), v_i = scale.

    Starting in the row space keeps ||u||^2 - v_i^2 = 0 meaningful: a component of u
    orthogonal to the rows would never move and would unbalance the minimum GD finds.
    """
    X = _as_data(X)
    depth = _depth(depth)
    scale = validate.positive("scale", scale)
    rng = np.random.default_rng(validate.positive_int("seed", seed, minimum=0))
    direction = X.T @ rng.standard_normal(X.shape[0])
    norm = np.linalg.norm(direction)
    if norm == 0.0:
        raise ValueError("X must not be all zeros")
    return scale * direction / norm, np.full(depth - 1, scale)


@dataclass
class MinimalistRun:
    """A GD run on the minimalist model.

    step, loss: (n,) the loss before each step (step 0 = the start); eig_step, sharpness:
    (m,) S at those steps (exact); u, v: final parameters; status in STATUSES.
    """

    eta: float
    depth: int
    step: np.ndarray
    loss: np.ndarray
    eig_step: np.ndarray
    sharpness: np.ndarray
    u: np.ndarray
    v: np.ndarray
    status: str
    balance: np.ndarray = field(default_factory=lambda: np.zeros(0))  # ||u||^2 - v_i^2 at the end

    @property
    def final_loss(self) -> float:
        return float(self.loss[-1])

    @property
    def final_sharpness(self) -> float:
        return float(self.sharpness[-1]) if self.sharpness.size else float("nan")


def gd(X, y, u0, v0, *, eta: float, steps: int, eig_every: int = 0, loss_goal: float | None = None) -> MinimalistRun:
    """Full-batch GD theta <- theta - eta grad L(theta) from (u0, v0), float64.

    Records the loss at every step and the exact sharpness every ``eig_every`` steps
    (0: only at the end). Stops at ``steps``, when the loss falls below ``loss_goal``
    ("goal_reached"), or when it becomes non-finite or exceeds 1e12 ("diverged"; what was
    recorded is kept). When d > N the run happens on the row-space coordinates
    (``row_space``), which is the same trajectory, and u is mapped back at the end.
    """
    X, y = _as_data(X, y)
    u0, v0 = _as_params(u0, v0, X.shape[1])
    eta = validate.positive("eta", eta)
    steps = validate.positive_int("steps", steps, minimum=0)
    eig_every = validate.positive_int("eig_every", eig_every, minimum=0)
    if loss_goal is not None:
        loss_goal = validate.positive("loss_goal", loss_goal)
    n, d = X.shape
    if d > n:
        Z, V = row_space(X)
        u_perp = u0 - V @ (V.T @ u0)  # never moves under GD
        u, to_full = V.T @ u0, (lambda c: V @ c + u_perp)
    else:
        Z, u, to_full = X, u0.copy(), (lambda c: c)
    v = v0.copy()

    losses, eig_steps, sharp = [], [], []
    status = "finished"
    with np.errstate(over="ignore", invalid="ignore"):
        for k in range(steps + 1):
            z = Z @ u
            p = np.prod(v)
            r = z * p - y
            current = 0.5 * float(r @ r) / n
            losses.append(current)
            if not np.isfinite(current) or current > 1e12:
                status = "diverged"
                break
            if eig_every and k % eig_every == 0:
                eig_steps.append(k)
                sharp.append(sharpness(Z, y, u, v, reduce=False))
            if loss_goal is not None and current < loss_goal:
                status = "goal_reached"
                break
            if k == steps:
                break
            grad_u = p * (Z.T @ r) / n
            grad_v = _products_without(v) * (z @ r) / n
            u = u - eta * grad_u
            v = v - eta * grad_v
    if status != "diverged" and (not eig_steps or eig_steps[-1] != len(losses) - 1):
        eig_steps.append(len(losses) - 1)
        sharp.append(sharpness(Z, y, u, v, reduce=False))
    u_full = to_full(u)
    return MinimalistRun(
        eta=eta, depth=v.size + 1,
        step=np.arange(len(losses)), loss=np.asarray(losses),
        eig_step=np.asarray(eig_steps, dtype=int), sharpness=np.asarray(sharp),
        u=u_full, v=v, status=status,
        balance=float(u_full @ u_full) - v ** 2,
    )
