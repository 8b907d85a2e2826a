"""Quadratic models and the classical optimisers on them, vectorised over many runs.

On the quadratic

    L(theta) = 1/2 theta^T A theta + c^T theta,      grad L = A theta + c,  Hessian = A,

(``c`` is the issue's b^T theta; it is called ``c`` here because ``b`` is the momentum),
every method below is a *linear* iteration, one eigen-direction of A at a time. With
h = eta * lambda (lambda an eigenvalue of A, or of P^{-1} A for Adam) each direction evolves
by a fixed 1x1 (GD) or 2x2 (momentum) matrix M(h, b); the run diverges exactly when the
spectral radius of M exceeds 1 for the top eigenvalue, which gives the closed forms of
``eosteach.thresholds`` (derived symbolically in ``eosteach.symbolic``).

Updates follow PyTorch (``torch.optim.SGD`` with ``dampening=0``, ``torch.optim.Adam``):

    gd          theta <- theta - eta g
    heavy_ball  buf <- b buf + g;        theta <- theta - eta buf
    nesterov    buf <- b buf + g;        theta <- theta - eta (g + b buf)
    adam        m <- b1 m + (1 - b1) g;  theta <- theta - eta P^{-1} m
                (Adam with its preconditioner P = diag(sqrt(v) + eps) frozen and no bias
                correction: the model of Cohen et al., "Adaptive gradient methods at the
                edge of stability", 2022)

Shapes: ``theta0`` is (..., d) and ``eta``/``b`` broadcast against its batch shape (...),
so one call runs many step sizes and many start points at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import thresholds, validate

METHODS = thresholds.METHODS  # ("gd", "heavy_ball", "nesterov", "adam")

#: Number of state variables per eigen-direction: theta alone, or (theta, momentum buffer).
STATE_SIZE = {"gd": 1, "heavy_ball": 2, "nesterov": 2, "adam": 2}


def _symmetric_matrix(name: str, matrix) -> np.ndarray:
    A = np.asarray(matrix, dtype=float)
    if A.ndim != 2 or A.shape[0] != A.shape[1] or A.shape[0] == 0:
        raise ValueError(f"{name} must be a square (d, d) matrix with d >= 1, got shape {A.shape}")
    if not np.all(np.isfinite(A)):
        raise ValueError(f"{name} must contain only finite numbers")
    scale = max(1.0, float(np.max(np.abs(A))))
    if not np.allclose(A, A.T, rtol=0.0, atol=1e-10 * scale):
        raise ValueError(f"{name} must be symmetric (A == A.T); got max |A - A.T| = {np.max(np.abs(A - A.T)):.3g}")
    return 0.5 * (A + A.T)


class Quadratic:
    """L(theta) = 1/2 theta^T A theta + c^T theta for a symmetric (d, d) matrix A.

    Parameters
    ----------
    A : (d, d) array, symmetric. Its eigenvalues are the Hessian's; S = lambda_max(A).
    c : (d,) array or None (zero). The linear term; the minimiser is -A^{-1} c.
    psd : if True (default) A must be positive semi-definite (all eigenvalues >= 0);
        pass False for saddles and other indefinite quadratics.
    """

    def __init__(self, A, c=None, *, psd: bool = True):
        self.A = _symmetric_matrix("A", A)
        self.dim = self.A.shape[0]
        self.eigenvalues, self.eigenvectors = np.linalg.eigh(self.A)
        # Descending order: index 0 is the top eigen-direction, the one that diverges first.
        self.eigenvalues = self.eigenvalues[::-1].copy()
        self.eigenvectors = self.eigenvectors[:, ::-1].copy()
        tol = 1e-12 * max(1.0, float(np.max(np.abs(self.eigenvalues))))
        if psd and self.eigenvalues[-1] < -tol:
            raise ValueError(
                f"A must be positive semi-definite (eigenvalues >= 0) when psd=True; its smallest "
                f"eigenvalue is {self.eigenvalues[-1]:.6g} (pass psd=False to allow indefinite A)"
            )
        if c is None:
            self.c = np.zeros(self.dim)
        else:
            self.c = np.asarray(c, dtype=float)
            if self.c.shape != (self.dim,) or not np.all(np.isfinite(self.c)):
                raise ValueError(f"c must be a finite vector of shape ({self.dim},), got {np.shape(c)}")

    @classmethod
    def from_spectrum(cls, eigenvalues, *, seed=0, c=None, basis: str = "random", psd: bool = True) -> "Quadratic":
        """A quadratic whose Hessian has exactly the given eigenvalues.

        ``basis="random"``: A = Q diag(eigenvalues) Q^T with Q a uniformly random orthogonal
        matrix (Haar, from the QR of a Gaussian matrix, seeded); ``basis="identity"``: A is
        diagonal in the given order.
        """
        lam = np.asarray(eigenvalues, dtype=float)
        if lam.ndim != 1 or lam.size == 0 or not np.all(np.isfinite(lam)):
            raise ValueError(f"eigenvalues must be a non-empty 1-D list of finite numbers, got {eigenvalues!r}")
        validate.choice("basis", basis, ("random", "identity"))
        if basis == "identity":
            Q = np.eye(lam.size)
        else:
            rng = np.random.default_rng(seed)
            Q, R = np.linalg.qr(rng.standard_normal((lam.size, lam.size)))
            Q = Q * np.sign(np.diag(R))  # sign fix: makes Q Haar-distributed
        return cls((Q * lam) @ Q.T, c, psd=psd)

    # -- the function -------------------------------------------------------------------
    def loss(self, theta) -> np.ndarray:
        """L(theta) for theta of shape (..., d); returns shape (...)."""
        theta = np.asarray(theta, dtype=float)
        return 0.5 * np.einsum("...i,ij,...j->...", theta, self.A, theta) + theta @ self.c

    def grad(self, theta) -> np.ndarray:
        """A theta + c, shape (..., d)."""
        return np.asarray(theta, dtype=float) @ self.A + self.c  # A is symmetric

    @property
    def sharpness(self) -> float:
        """S = lambda_max(A), the same at every theta for a quadratic."""
        return float(self.eigenvalues[0])

    @property
    def smoothness(self) -> float:
        """ell = max |lambda_i(A)|, the gradient's Lipschitz constant."""
        return float(np.max(np.abs(self.eigenvalues)))

    def minimizer(self) -> np.ndarray:
        """-A^{-1} c (the least-norm minimiser when A is singular and c lies in its range)."""
        theta = -np.linalg.lstsq(self.A, self.c, rcond=None)[0]
        if not np.allclose(self.grad(theta), 0.0, atol=1e-8 * (1.0 + np.linalg.norm(self.c))):
            raise ValueError("this quadratic has no minimiser (c is not in the range of A)")
        if self.eigenvalues[-1] < 0:
            raise ValueError("this quadratic is indefinite: it has a stationary point but no minimiser")
        return theta

    def __repr__(self) -> str:
        lam = ", ".join(f"{v:.4g}" for v in self.eigenvalues[:6])
        more = ", ..." if self.dim > 6 else ""
        return f"Quadratic(dim={self.dim}, eigenvalues=[{lam}{more}])"


# -- one step of each method ------------------------------------------------------------
def update(method: str, theta, buf, grad, eta, b=0.0, precond_inv=1.0):
    """One step of ``method`` in the PyTorch convention; returns (theta_new, buf_new).

    Plain arithmetic only, so the same function runs on numpy arrays (``run``), builds the
    numerical iteration matrix (``iteration_matrix``) and, on sympy symbols, derives the
    characteristic polynomials in ``eosteach.symbolic``. ``buf`` starts at 0, which
    reproduces PyTorch's first step (buf = g). ``b`` is unused by "gd"; ``precond_inv``
    (P^{-1}) is used by "adam" only.
    """
    if method == "gd":
        return theta - eta * grad, buf
    if method == "heavy_ball":
        buf = b * buf + grad
        return theta - eta * buf, buf
    if method == "nesterov":
        buf = b * buf + grad
        return theta - eta * (grad + b * buf), buf
    if method == "adam":
        buf = b * buf + (1 - b) * grad
        return theta - eta * precond_inv * buf, buf
    validate.choice("method", method, METHODS)


def _check_method_b(method, b):
    validate.choice("method", method, METHODS)
    b = np.asarray(b, dtype=float)
    if not np.all((b >= 0.0) & (b < 1.0)):
        raise ValueError(f"b must lie in [0, 1), got {b.tolist() if b.ndim else float(b)!r}")
    return b


def _check_eta(eta):
    eta = np.asarray(eta, dtype=float)
    if eta.size == 0 or not np.all(np.isfinite(eta) & (eta > 0.0)):
        raise ValueError(f"eta must be finite numbers > 0, got {eta.tolist() if eta.ndim else float(eta)!r}")
    return eta


def _precond_inv(quadratic: Quadratic, method: str, precond):
    if precond is None:
        return 1.0
    if method != "adam":
        raise ValueError(f"precond is only used by method='adam', got method={method!r}")
    p = np.asarray(precond, dtype=float)
    if p.shape != (quadratic.dim,) or not np.all(np.isfinite(p) & (p > 0)):
        raise ValueError(f"precond must be a vector of shape ({quadratic.dim},) of finite numbers > 0")
    return 1.0 / p


def preconditioned_sharpness(quadratic: Quadratic, precond) -> float:
    """lambda_max(P^{-1/2} A P^{-1/2}) for P = diag(precond): what Adam's threshold bounds."""
    s = np.sqrt(_precond_inv(quadratic, "adam", precond)) * np.ones(quadratic.dim)
    return float(np.linalg.eigvalsh(quadratic.A * np.outer(s, s))[-1])


# -- vectorised runs --------------------------------------------------------------------
@dataclass
class Trajectory:
    """The result of ``run``. Batch shape (...) = broadcast of eta, b and theta0's leading axes.

    theta : (steps + 1, ..., d) iterates theta^(0..steps); NaN after divergence.
    loss : (steps + 1, ...) L(theta^(k)); NaN after divergence.
    diverged : (...) bool, True where ||theta|| passed the blow-up bound.
    diverged_at : (...) int, the first step past the bound, -1 where the run stayed bounded.
    """

    theta: np.ndarray
    loss: np.ndarray
    diverged: np.ndarray
    diverged_at: np.ndarray

    @property
    def steps(self) -> int:
        return self.theta.shape[0] - 1


def run(quadratic: Quadratic, method: str, eta, theta0, *, steps: int, b=0.0, precond=None,
        blowup: float = 1e6) -> Trajectory:
    """Run ``method`` for ``steps`` steps from ``theta0`` at step size(s) ``eta``.

    ``theta0`` has shape (d,) or (..., d); ``eta`` and ``b`` broadcast against the batch
    shape (...). Example: eta of shape (E, 1) and theta0 of shape (S, d) give E x S runs.
    ``precond`` ((d,), positive) is Adam's frozen diagonal P; default P = I.

    A run counts as diverged once ||theta|| > blowup * (1 + ||theta0|| + ||theta*||); from
    then on its entries are NaN, so plots show a break instead of overflowing numbers and
    numpy never warns.
    """
    eta = _check_eta(eta)
    b = _check_method_b(method, b)
    steps = validate.positive_int("steps", steps, minimum=0)
    validate.positive("blowup", blowup)
    precond_inv = _precond_inv(quadratic, method, precond)
    theta = np.asarray(theta0, dtype=float)
    if theta.shape[-1:] != (quadratic.dim,) or not np.all(np.isfinite(theta)):
        raise ValueError(f"theta0 must be finite with last axis of size {quadratic.dim}, got shape {theta.shape}")
    batch = np.broadcast_shapes(theta.shape[:-1], eta.shape, b.shape)
    theta = np.broadcast_to(theta, batch + (quadratic.dim,)).copy()
    eta_, b_ = np.broadcast_to(eta, batch)[..., None], np.broadcast_to(b, batch)[..., None]
    try:
        ref = np.linalg.norm(quadratic.minimizer())
    except ValueError:
        ref = 0.0
    bound = blowup * (1.0 + np.linalg.norm(theta, axis=-1) + ref)

    thetas = np.full((steps + 1,) + theta.shape, np.nan)
    thetas[0] = theta
    buf = np.zeros_like(theta)
    alive = np.ones(batch, dtype=bool)
    diverged_at = np.full(batch, -1, dtype=int)
    with np.errstate(over="ignore", invalid="ignore"):
        for k in range(1, steps + 1):
            theta, buf = update(method, theta, buf, quadratic.grad(theta), eta_, b_, precond_inv)
            blew = alive & ~(np.linalg.norm(theta, axis=-1) <= bound)
            diverged_at[blew] = k
            alive &= ~blew
            # Frozen at NaN: NaN arithmetic raises no floating-point warnings.
            theta[~alive] = np.nan
            buf[~alive] = np.nan
            thetas[k] = theta
        loss = quadratic.loss(thetas)
    return Trajectory(theta=thetas, loss=loss, diverged=~alive, diverged_at=diverged_at)


def growth_rate(quadratic: Quadratic, method: str, eta, *, b=0.0, precond=None, steps: int | None = None,
                window: int | None = None, seed: int = 0) -> np.ndarray:
    """Per-step growth factor of the error, measured by simulating ``method`` (shape of eta/b).

    Runs the update from a random start on the homogeneous quadratic 1/2 theta^T A theta
    (the linear part of the iteration), rescaling the state now and then so that nothing
    overflows or underflows (the iteration is linear, so rescaling changes nothing else).
    After ``steps`` burn-in steps the slower modes have died out and the geometric mean of
    ||s_(k+1)|| / ||s_k|| over ``window`` steps is the spectral radius of the iteration:
    > 1 means the method diverges. This is the power method, run with the optimiser itself.
    Defaults: a burn-in long enough for a mode of modulus sqrt(max b) to fall by e^-25, and
    a window as long as the burn-in. A long window matters: a pair of complex roots makes
    ||s_k|| oscillate (by up to the squared condition number of M's eigenvectors), and only
    a long average keeps that wobble far below the gap 1 - radius.
    """
    eta = _check_eta(eta)
    b = _check_method_b(method, b)
    precond_inv = _precond_inv(quadratic, method, precond)
    if steps is None:
        rate = 1.0 - np.sqrt(float(np.max(b)))
        steps = int(min(60_000, max(300, 25.0 / rate)))
    steps = validate.positive_int("steps", steps)
    window = validate.positive_int("window", steps if window is None else window)
    A = quadratic.A  # the homogeneous part: the linear term only moves the fixed point
    batch = np.broadcast_shapes(eta.shape, b.shape)
    eta_, b_ = np.broadcast_to(eta, batch)[..., None], np.broadcast_to(b, batch)[..., None]
    rng = np.random.default_rng(seed)
    theta = rng.standard_normal(batch + (quadratic.dim,))
    buf = np.zeros_like(theta)
    log_growth = np.zeros(batch)

    def rescale(theta, buf):
        norm = np.sqrt(np.sum(theta * theta, axis=-1) + np.sum(buf * buf, axis=-1))[..., None]
        return theta / norm, buf / norm, np.log(norm[..., 0])

    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        for k in range(steps + window):
            # Rescale every 8 steps (and at the window's ends): the norm accumulated in
            # log_growth during the window is ||s_(steps+window)|| / ||s_steps||.
            if k % 8 == 0 or k == steps:
                theta, buf, log_norm = rescale(theta, buf)
                if k > steps:
                    log_growth += log_norm
            theta, buf = update(method, theta, buf, theta @ A, eta_, b_, precond_inv)
        theta, buf, log_norm = rescale(theta, buf)
        log_growth += log_norm
    return np.exp(log_growth / window)


def bisect_threshold(quadratic: Quadratic, method: str, b=0.0, *, precond=None, rtol: float = 1e-8,
                     points: int = 128, steps: int | None = None) -> np.ndarray:
    """The step size eta* at which ``method`` starts to diverge, found on simulated runs.

    Multi-section search: ``points`` trial step sizes per round, all simulated at once by
    ``growth_rate``. The first round spreads them geometrically over [1e-2, 1e4] / sharpness;
    each later round spreads them evenly over the bracket left by the previous one, until
    it is narrower than ``rtol`` relative. ``b`` may be an array: one eta* per entry.
    Compare eta* * sharpness (preconditioned sharpness for "adam") with
    ``thresholds.threshold(method, 1.0, b)``.
    """
    b = _check_method_b(method, b)
    validate.positive("rtol", rtol)
    points = validate.positive_int("points", points, minimum=2)
    use_precond = method == "adam" and precond is not None
    s = preconditioned_sharpness(quadratic, precond) if use_precond else quadratic.sharpness
    if s <= 0:
        raise ValueError("the quadratic has no positive curvature: every step size is stable")
    if b.ndim:  # one search per momentum: each gets the burn-in its own b needs
        return np.array([bisect_threshold(quadratic, method, float(v), precond=precond, rtol=rtol,
                                          points=points, steps=steps) for v in b.ravel()]).reshape(b.shape)
    trial = np.geomspace(1e-2, 1e4, points) / s
    while True:
        grows = growth_rate(quadratic, method, trial, b=b, precond=precond, steps=steps) > 1.0
        if not np.all(grows[..., -1]) or np.any(grows[..., 0]):
            raise ArithmeticError("no divergence boundary inside the searched range")  # pragma: no cover
        # Stable below eta*, unstable above: the first unstable trial and the one before it.
        first = np.argmax(grows, axis=-1)[..., None]
        hi = np.take_along_axis(trial, first, -1)[..., 0]
        lo = np.take_along_axis(trial, first - 1, -1)[..., 0]
        if hi - lo <= rtol * lo:
            return float(0.5 * (lo + hi))
        trial = lo[..., None] + (hi - lo)[..., None] * np.linspace(0.0, 1.0, points)


# -- the linear iteration of one eigen-direction ----------------------------------------
def iteration_matrix(method: str, eta_lambda, b=0.0) -> np.ndarray:
    """M(h, b), shape (..., n, n) with n = STATE_SIZE[method]: (theta, eta*buf)_(k+1) = M (theta, eta*buf)_k.

    Obtained by applying ``update`` to the unit states on the 1-D quadratic lambda theta^2 / 2
    with eta*lambda = h (the buffer is measured in units of eta*buf so that M depends on h
    alone). For "adam", h = eta * (eigenvalue of P^{-1} A).
    """
    b = _check_method_b(method, b)
    h = np.asarray(eta_lambda, dtype=float)
    if not np.all(np.isfinite(h)):
        raise ValueError("eta_lambda must be finite")
    h, b = np.broadcast_arrays(h, b)
    n = STATE_SIZE[method]
    M = np.zeros(h.shape + (n, n))
    for j in range(n):
        theta = np.full(h.shape, 1.0 if j == 0 else 0.0)
        scaled_buf = np.full(h.shape, 1.0 if j == 1 else 0.0)
        # With eta = 1 and lambda = h the buffer already is eta*buf.
        theta_new, buf_new = update(method, theta, scaled_buf, h * theta, 1.0, b)
        M[..., 0, j] = theta_new
        if n == 2:
            M[..., 1, j] = buf_new
    return M


def characteristic_coefficients(method: str, eta_lambda, b=0.0) -> np.ndarray:
    """Coefficients [1, a_(n-1), ..., a_0] of det(z I - M(h, b)), shape (..., n + 1)."""
    M = iteration_matrix(method, eta_lambda, b)
    if M.shape[-1] == 1:
        return np.stack([np.ones(M.shape[:-2]), -M[..., 0, 0]], axis=-1)
    trace = M[..., 0, 0] + M[..., 1, 1]
    det = M[..., 0, 0] * M[..., 1, 1] - M[..., 0, 1] * M[..., 1, 0]
    return np.stack([np.ones_like(trace), -trace, det], axis=-1)


def spectral_radius(method: str, eta_lambda, b=0.0) -> np.ndarray:
    """max |z| over the roots of det(z I - M(h, b)): < 1 converges, > 1 diverges. Shape of h, b.

    The roots are the eigenvalues of the characteristic polynomial's companion matrix
    (as in ``numpy.roots``), computed for all (h, b) at once.
    """
    coeffs = characteristic_coefficients(method, eta_lambda, b)
    n = coeffs.shape[-1] - 1
    companion = np.zeros(coeffs.shape[:-1] + (n, n))
    companion[..., 0, :] = -coeffs[..., 1:]
    if n == 2:
        companion[..., 1, 0] = 1.0
    return np.max(np.abs(np.linalg.eigvals(companion)), axis=-1)


def radius_boundary(method: str, b=0.0, *, h_max: float = 1e4) -> np.ndarray:
    """The h = eta * lambda at which ``spectral_radius(method, h, b)`` first reaches 1 (shape of b).

    Found by bisection on the radius itself, not from a formula: the stable set in h > 0
    is the interval (0, h*), so h* is bracketed by doubling from h = 1 and then halved
    until the bracket stops shrinking (double precision). Compare with
    ``thresholds.threshold(method, 1.0, b)``: the boundary of the blue region in lesson 2's
    stability plots. ``h_max`` bounds the doubling (ValueError if still stable there).
    """
    b = _check_method_b(method, b)
    h_max = validate.positive("h_max", h_max)
    lo = np.zeros(b.shape)
    hi = np.ones(b.shape)
    while True:
        unstable = spectral_radius(method, hi, b) >= 1.0
        if np.all(unstable):
            break
        if np.any(hi[~unstable] >= h_max):
            raise ValueError(f"h_max = {h_max:g} is still stable for some b: raise h_max")
        lo = np.where(unstable, lo, hi)
        hi = np.where(unstable, hi, 2.0 * hi)
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if np.all((mid <= lo) | (mid >= hi)):
            break
        unstable = spectral_radius(method, mid, b) >= 1.0
        hi = np.where(unstable, mid, hi)
        lo = np.where(unstable, lo, mid)
    return 0.5 * (lo + hi)


def stable_step_size(quadratic: Quadratic, method: str = "gd", b: float = 0.0, precond=None) -> float:
    """The largest stable eta for this quadratic: threshold(method, 1, b) / sharpness."""
    s = preconditioned_sharpness(quadratic, precond) if precond is not None else quadratic.sharpness
    if s <= 0:
        raise ValueError("the quadratic has no positive curvature: every step size is stable")
    return thresholds.threshold(method, 1.0, b) / s


def fastest_step_size(quadratic: Quadratic) -> tuple[float, float]:
    """The GD step size that converges fastest, and its contraction factor per step.

    GD multiplies the coordinate along eigenvector i by (1 - eta lambda_i); the slowest
    direction decides, so the rate is r(eta) = max_i |1 - eta lambda_i|, which is smallest
    where the two extreme factors balance, 1 - eta lambda_min = eta lambda_max - 1:

        eta* = 2 / (lambda_max + lambda_min),    r(eta*) = (kappa - 1) / (kappa + 1),

    kappa = lambda_max / lambda_min (Polyak, *Introduction to Optimization*, 1987, sec. 1.4).
    The error ||theta - theta*|| shrinks by r per step; the loss L - L* by about r^2.
    Needs a positive definite A (lambda_min > 0): ValueError otherwise.
    """
    lam_max, lam_min = float(quadratic.eigenvalues[0]), float(quadratic.eigenvalues[-1])
    if not lam_min > 0:
        raise ValueError(f"the quadratic must be positive definite (lambda_min > 0), got lambda_min = {lam_min:.6g}")
    kappa = lam_max / lam_min
    return 2.0 / (lam_max + lam_min), (kappa - 1.0) / (kappa + 1.0)


def fastest_heavy_ball(quadratic: Quadratic) -> tuple[float, float, float]:
    """Polyak's tuning of heavy-ball: the (eta, b) with the smallest worst-case rate, and that rate.

    In PyTorch's convention (buf <- b buf + g, theta <- theta - eta buf, the same iterates as
    theta - eta g + b (theta - theta_prev)), with lambda_max = L and lambda_min = mu:

        eta = 4 / (sqrt(L) + sqrt(mu))^2,   b = ((sqrt(L) - sqrt(mu)) / (sqrt(L) + sqrt(mu)))^2,
        rate = sqrt(b) = (sqrt(kappa) - 1) / (sqrt(kappa) + 1),

    (Polyak 1964; *Introduction to Optimization*, 1987, sec. 3.2.1). The rate is the spectral
    radius of the iteration along every eigen-direction (the extreme ones sit on the edges of
    the complex band, ``complex_band(b)``), against GD's best (kappa - 1)/(kappa + 1).
    Returns three floats (eta, b, rate). Needs a positive definite A: ValueError otherwise.
    """
    lam_max, lam_min = float(quadratic.eigenvalues[0]), float(quadratic.eigenvalues[-1])
    if not lam_min > 0:
        raise ValueError(f"the quadratic must be positive definite (lambda_min > 0), got lambda_min = {lam_min:.6g}")
    root_l, root_m = np.sqrt(lam_max), np.sqrt(lam_min)
    rate = (root_l - root_m) / (root_l + root_m)
    return 4.0 / (root_l + root_m) ** 2, rate**2, rate


def complex_band(b) -> tuple[np.ndarray, np.ndarray]:
    """The band of h = eta * lambda where heavy-ball's two roots are complex: ((1 - sqrt b)^2, (1 + sqrt b)^2).

    Heavy-ball's characteristic polynomial is z^2 + (h - 1 - b) z + b; its discriminant
    (h - 1 - b)^2 - 4b is negative exactly when |h - 1 - b| < 2 sqrt(b). Inside the band the
    roots are a conjugate pair of modulus sqrt(b) (their product is b), so the spectral
    radius is exactly sqrt(b) there. Returns (h_low, h_high), each of the shape of ``b``.
    """
    b = _check_method_b("heavy_ball", b)
    root = np.sqrt(b)
    return (1.0 - root) ** 2, (1.0 + root) ** 2
