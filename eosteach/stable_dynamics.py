"""Self-stabilization on a real network: the quantities of Damian, Nichani & Lee (2022) at
a reference point, the stable set M and its projection, the constrained trajectory, their
predicted dynamics and its two-variable reduction, and the central flow for one unstable
eigenvalue (Cohen, Damian, Talwalkar, Kolter & Lee, 2024).

At parameters theta (flat vector (n,)), with eta the step size:

    u, S          top Hessian eigenpair (S = sharpness), by warm-started Lanczos
    grad S        = D^3 L(theta)[u, u]                       (hessian.sharpness_gradient)
    grad S_perp   = grad S - (u . grad S) u
    alpha         = -grad L . grad S_perp     progressive-sharpening strength (> 0 at EoS)
    beta          = ||grad S_perp||^2          self-stabilization strength
    delta         = sqrt(2 alpha / beta)       the predicted size of the oscillation along u

The stable set is M = {theta : S(theta) <= 2/eta and grad L(theta) . u(theta) = 0}.
``project`` maps theta onto M by iterating one linearised step on the two constraints

    S(theta + d) ~ S + grad S . d = 2/eta        (only when S > 2/eta)
    u . grad L(theta + d) ~ u . grad L + S u . d = 0

with d in span(grad S_perp, u): d = p grad S_perp + q u, q = -(u . grad L)/S (a Newton
step along u, whose curvature is S), p = -(S - 2/eta + q u . grad S)/beta
(``projection_step``). The constrained trajectory (Damian et al., Section 5) is
theta_{t+1} = proj_M(theta_t - eta grad L). GD's displacement from it, v_t = theta_t -
theta_dagger_t, has the coordinates of the map of Lesson 5 (``displacement``):
x_t = u_t . v_t and y_t = grad S_perp_t . v_t (the first-order change of S without the
x_t u . grad S term, which flips sign with x_t every step).

Damian et al.'s predicted dynamics (Section 5; ``predicted_dynamics``) evolve the whole
displacement v in R^n orthogonal to u: v_{t+1} = P_{t+1}(I - eta H_t)P_t v_t +
eta grad S_perp_t (delta_t^2 - x_t^2)/2 and x_{t+1} = -(1 + eta y_t) x_t with
y_t = grad S_perp_t . v_t (H_t, P_t = I - u_t u_t^T at theta_dagger_t). Keeping only x and
y, i.e. dropping the first-order coupling grad S_perp . H v between y and the rest of v,
gives, up to the turning of grad S_perp, Lesson 5's map with alpha_t, beta_t measured along
theta_dagger (``reduced_dynamics``; their Section 4 derives the map at a fixed reference
point).

The central flow with one unstable eigenvalue (Cohen et al. 2024, Section 3): while
S < 2/eta it is gradient flow d theta/dt = -eta grad L (t counts gradient steps); once S
reaches 2/eta it is

    d theta/dt = -eta (grad L + sigma^2/2 grad S),  sigma^2 = -2 grad S . grad L / ||grad S||^2,

i.e. -eta times grad L projected orthogonally to grad S, so that dS/dt = 0. sigma^2 is the
predicted time average of x^2. With s_u = u . grad S and l_u = u . grad L,
sigma^2 (beta + s_u^2) = 2 alpha - 2 s_u l_u: where l_u = 0 (the constrained trajectory)
sigma^2 = delta^2 beta / ||grad S||^2 < delta^2 unless s_u = 0; where the flow's velocity has
no u-component, l_u = -(sigma^2/2) s_u and sigma^2 = delta^2 exactly (Lesson 6). GD's
time-averaged loss is predicted to be L(flow) + sigma^2 / eta (the oscillation of size
sigma along a direction of curvature 2/eta adds (1/2)(2/eta) sigma^2).

All functions work on a ``Landscape`` (model, loss_fn, x, y); thetas are flat tensors in
the model's dtype. Use float64 for these computations: third derivatives and projections
to 1e-6 are beyond float32.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from . import hessian, selfstab, validate


class Landscape:
    """The full-batch loss of ``model`` on (x, y) as a function of a flat theta (n,).

    Every method first loads theta into the model (``hessian.set_flat_params``). ``tol`` and
    ``max_products`` are the Lanczos settings of ``top_eigen``, on the residual (the
    projections need the eigenvector u as much as S itself); the last eigenvector is kept
    as the warm start of the next call, so a trajectory pays ~5-20 products per step.
    """

    def __init__(self, model, loss_fn, x, y, *, tol: float = 1e-7, max_products: int = 300):
        self.model, self.loss_fn, self.x, self.y = model, loss_fn, x, y
        self.tol = validate.positive("tol", tol)
        self.max_products = validate.positive_int("max_products", max_products)
        self._v0 = None
        self.n_products = 0

    @property
    def theta(self) -> torch.Tensor:
        return hessian.flat_params(self.model).detach().clone()

    def _load(self, theta):
        hessian.set_flat_params(self.model, theta)

    def loss_grad(self, theta):
        """(L(theta) as a float, grad L(theta) (n,))."""
        self._load(theta)
        loss, g = hessian.flat_grad(self.model, self.loss_fn, self.x, self.y)
        return float(loss), g.detach()

    def loss(self, theta) -> float:
        self._load(theta)
        with torch.no_grad():
            return float(self.loss_fn(self.model(self.x), self.y))

    def top_eigen(self, theta):
        """(S, u): the top Hessian eigenvalue (float) and its unit eigenvector (n,)."""
        self._load(theta)
        r = hessian.sharpness(self.model, self.loss_fn, self.x, self.y, v0=self._v0, tol=self.tol,
                              stop="residual", max_products=self.max_products)
        self.n_products += r.n_products
        u = r.eigenvectors[:, 0].detach()
        if self._v0 is not None and float(u @ self._v0[:, 0]) < 0:
            u = -u  # keep the sign continuous along a trajectory, so x = u . (theta - theta*) is readable
        self._v0 = u[:, None]
        return float(r.eigenvalues[0]), u

    def eigenvalues(self, theta, k: int = 3) -> np.ndarray:
        """The top-k Hessian eigenvalues at theta, largest first (numpy (k,)), by a fresh
        Lanczos run that leaves the warm start of ``top_eigen`` alone."""
        k = validate.positive_int("k", k)
        self._load(theta)
        r = hessian.sharpness(self.model, self.loss_fn, self.x, self.y, k=k, tol=self.tol,
                              stop="residual", max_products=self.max_products)
        self.n_products += r.n_products
        return r.eigenvalues.detach().cpu().numpy()[:k].astype(float)

    def sharpness_gradient(self, theta, u) -> torch.Tensor:
        """grad S(theta) = D^3 L(theta)[u, u], shape (n,)."""
        self._load(theta)
        return hessian.sharpness_gradient(self.model, self.loss_fn, self.x, self.y, u).detach()

    def hvp(self, theta, v) -> torch.Tensor:
        """One Hessian-vector product H(theta) v, shape (n,)."""
        self._load(theta)
        self.n_products += 1
        return hessian.hvp(self.model, self.loss_fn, self.x, self.y, v).detach()


@dataclass
class LocalQuantities:
    """Damian et al.'s quantities at one theta (see the module docstring). Vectors are (n,)
    tensors; scalars are floats. ``threshold`` = 2/eta; ``u_dot_grad`` = u . grad L."""

    loss: float
    grad: torch.Tensor
    S: float
    u: torch.Tensor
    grad_S: torch.Tensor
    grad_S_perp: torch.Tensor
    alpha: float
    beta: float
    threshold: float
    u_dot_grad: float

    @property
    def delta(self) -> float:
        """sqrt(2 alpha / beta); NaN when alpha <= 0 (no progressive sharpening here)."""
        return math.sqrt(2 * self.alpha / self.beta) if self.alpha > 0 and self.beta > 0 else float("nan")

    @property
    def sigma2(self) -> float:
        """Central-flow sigma^2 = -2 grad S . grad L / ||grad S||^2 (clipped at 0); equal to
        delta^2 only where u . grad L = -(sigma^2/2) u . grad S (see the module docstring)."""
        return max(0.0, -2.0 * float(self.grad_S @ self.grad) / float(self.grad_S @ self.grad_S))


def local_quantities(land: Landscape, theta, eta) -> LocalQuantities:
    """u, S, grad S, grad S_perp, alpha, beta (and delta) at theta for step size eta."""
    eta = validate.positive("eta", eta)
    loss, g = land.loss_grad(theta)
    S, u = land.top_eigen(theta)
    gS = land.sharpness_gradient(theta, u)
    gS_perp = gS - (u @ gS) * u
    return LocalQuantities(loss, g, S, u, gS, gS_perp, -float(g @ gS_perp), float(gS_perp @ gS_perp),
                           2.0 / eta, float(u @ g))


def projection_step(S, u, grad_S, grad_L, eta, *, lower_only: bool = False):
    """One linearised (first-order, Gauss-Newton) step towards {S = 2/eta, grad L . u = 0}.

    S: the sharpness (float); u: its unit eigenvector, grad_S = D^3 L[u, u] and grad_L:
    vectors of shape (n,) (numpy arrays or torch tensors, all of one kind); eta > 0.
    Returns d (same kind and shape) in span(grad S_perp, u), grad S_perp = grad S -
    (u . grad S) u, that solves the two linearised constraints

        S + grad S . d = 2/eta             (S moves by grad S . d to first order)
        u . grad L + S (u . d) = 0         (grad L moves by H d, and u^T H d = S u . d):

        d = p grad S_perp + q u,   q = -(u . grad L) / S,
                                   p = -(S - 2/eta + q u . grad S) / ||grad S_perp||^2.

    It is the smallest d that solves them. With ``lower_only=True`` the first constraint is
    used only when S > 2/eta (the stable set asks S <= 2/eta): below it p = 0. The changes
    of u and of the Hessian along d are ignored: that error is first order in d but
    proportional to grad L (du . grad L), so ``project`` iterates (Newton's method with an
    approximate Jacobian).
    (Damian, Nichani & Lee 2022, Section 5, define the stable set and the projection.)
    """
    eta = validate.positive("eta", eta)
    S = validate.positive("S", float(S))
    threshold = 2.0 / eta
    u_dot_gS = float(u @ grad_S)
    grad_S_perp = grad_S - u_dot_gS * u
    beta = float(grad_S_perp @ grad_S_perp)
    q = -float(u @ grad_L) / S
    step = q * u
    gap = S - threshold
    if not lower_only or gap > 0:
        if beta <= 0:
            raise ValueError("grad_S has no component orthogonal to u: S cannot be moved without moving along u")
        p = -(gap + q * u_dot_gS) / beta
        step = step + p * grad_S_perp
    return step


@dataclass
class Projection:
    """Result of ``project``: the projected theta, its LocalQuantities, the iterations used,
    whether both tolerances were met, and ``history``: one (S / (2/eta) - 1,
    |u . grad L| / ||grad L||) pair per point visited, the start first."""

    theta: torch.Tensor
    quantities: LocalQuantities
    iterations: int
    converged: bool
    history: list = field(default_factory=list)


def project(land: Landscape, theta, eta, *, rtol_S: float = 1e-4, rtol_u: float = 1e-7,
            max_iter: int = 20) -> Projection:
    """proj_M(theta): iterate ``projection_step`` (with ``lower_only=True``) until
    S <= (1 + rtol_S) 2/eta and |u . grad L| <= rtol_u ||grad L||."""
    eta = validate.positive("eta", eta)
    theta = theta.detach().clone()
    threshold = 2.0 / eta
    q = local_quantities(land, theta, eta)
    history = []
    for it in range(max_iter + 1):
        gap = q.S - threshold
        rel_u = abs(q.u_dot_grad) / float(q.grad.norm())
        history.append((gap / threshold, rel_u))
        if gap <= rtol_S * threshold and rel_u <= rtol_u:
            return Projection(theta, q, it, True, history)
        if it == max_iter:
            break
        theta = theta + projection_step(q.S, q.u, q.grad_S, q.grad, eta, lower_only=True)
        q = local_quantities(land, theta, eta)
    return Projection(theta, q, max_iter, False, history)


@dataclass
class Trajectory:
    """A trajectory sampled at every step t = 0..T (arrays of length T+1).

    theta (T+1, n) float tensor; loss; sharpness (NaN where not measured); sigma2 and alpha,
    beta (NaN where not measured); ``time`` in gradient steps (the flow's t is continuous);
    u and grad_S_perp (T+1, n): the top eigenvector and grad S_perp at each point
    (constrained trajectory only)."""

    time: np.ndarray
    theta: torch.Tensor
    loss: np.ndarray
    sharpness: np.ndarray
    alpha: np.ndarray = field(default=None)
    beta: np.ndarray = field(default=None)
    sigma2: np.ndarray = field(default=None)
    u: torch.Tensor = field(default=None)
    grad_S_perp: torch.Tensor = field(default=None)


def _nan(n):
    return np.full(n, np.nan)


def gradient_descent(land: Landscape, theta0, eta, steps: int, *, eig_every: int = 1) -> Trajectory:
    """Plain GD theta <- theta - eta grad L for ``steps`` steps, S measured every ``eig_every``."""
    eta = validate.positive("eta", eta)
    steps = validate.positive_int("steps", steps)
    eig_every = validate.positive_int("eig_every", eig_every)
    theta = theta0.detach().clone()
    thetas, losses, sharp = [theta], _nan(steps + 1), _nan(steps + 1)
    for t in range(steps + 1):
        losses[t], g = land.loss_grad(theta)
        if t % eig_every == 0 or t == steps:
            sharp[t] = land.top_eigen(theta)[0]
        if t < steps:
            theta = theta - eta * g
            thetas.append(theta)
    return Trajectory(np.arange(steps + 1, dtype=float), torch.stack(thetas), losses, sharp)


def constrained_trajectory(land: Landscape, theta0, eta, steps: int, **project_kw) -> Trajectory:
    """theta_{t+1} = proj_M(theta_t - eta grad L(theta_t)), starting from proj_M(theta0)
    (Damian et al., 2022, Section 5). Records loss, S, alpha, beta, sigma^2, u and grad S_perp
    at every projected point."""
    eta = validate.positive("eta", eta)
    steps = validate.positive_int("steps", steps)
    project_kw.setdefault("rtol_u", 1e-4)
    out = dict(loss=_nan(steps + 1), S=_nan(steps + 1), alpha=_nan(steps + 1), beta=_nan(steps + 1),
               sigma2=_nan(steps + 1))
    thetas, us, perps = [], [], []
    theta = theta0
    for t in range(steps + 1):
        p = project(land, theta, eta, **project_kw)
        q = p.quantities
        thetas.append(p.theta)
        us.append(q.u)
        perps.append(q.grad_S_perp)
        out["loss"][t], out["S"][t], out["alpha"][t], out["beta"][t] = q.loss, q.S, q.alpha, q.beta
        out["sigma2"][t] = q.sigma2
        theta = p.theta - eta * q.grad
    return Trajectory(np.arange(steps + 1, dtype=float), torch.stack(thetas), out["loss"], out["S"],
                      out["alpha"], out["beta"], out["sigma2"], torch.stack(us), torch.stack(perps))


def central_flow(land: Landscape, theta0, eta, duration: float, *, dt: float = 0.5) -> Trajectory:
    """The central flow with (at most) one unstable eigenvalue, from theta0, for ``duration``
    gradient steps of time, Euler steps of ``dt`` steps (dt <= 1).

    Below the threshold (S < 2/eta, or S at 2/eta but the flow would lower it) it is gradient
    flow. On it, the step is -eta dt (grad L - (grad S . grad L / ||grad S||^2) grad S), plus
    the Newton correction -(S - 2/eta)/||grad S||^2 grad S, which keeps the discrete path on
    S = 2/eta (Euler alone drifts off a curved constraint at rate O(dt^2) per step).
    Recorded at every whole step: loss, S, sigma^2 (the predicted GD oscillation size^2).
    """
    eta = validate.positive("eta", eta)
    duration = validate.positive("duration", duration)
    dt = validate.positive("dt", dt)
    if dt > 1:
        raise ValueError(f"dt must be a number in (0, 1] (a fraction of a gradient step), got {dt!r}")
    per_step = max(1, round(1.0 / dt))
    dt = 1.0 / per_step
    steps = int(round(duration))
    threshold = 2.0 / eta
    theta = theta0.detach().clone()
    thetas, losses, sharp, sig = [], _nan(steps + 1), _nan(steps + 1), _nan(steps + 1)
    for k in range(steps * per_step + 1):
        loss, g = land.loss_grad(theta)
        S, u = land.top_eigen(theta)
        direction, sigma2 = g, 0.0
        if S >= threshold * (1 - 1e-3):
            gS = land.sharpness_gradient(theta, u)
            coef = float(gS @ g) / float(gS @ gS)
            if coef < 0 or S > threshold:  # plain flow would raise S (or S is already above): constrain
                sigma2 = max(0.0, -2.0 * coef)
                direction = g - coef * gS
                theta_corr = -(S - threshold) / float(gS @ gS) * gS
            else:
                theta_corr = 0.0
        else:
            theta_corr = 0.0
        if k % per_step == 0:
            t = k // per_step
            thetas.append(theta)
            losses[t], sharp[t], sig[t] = loss, S, sigma2
        theta = theta - eta * dt * direction + theta_corr
    return Trajectory(np.arange(steps + 1, dtype=float), torch.stack(thetas), losses, sharp, sigma2=sig)


def reduced_dynamics(alpha, beta, eta, x0: float, y0: float, *, limit: float = 1e150) -> selfstab.MapTrajectory:
    """The two-variable reduction: Lesson 5's map x' = -(1 + eta y) x, y' = y + eta(alpha_t -
    beta_t x^2/2) with alpha_t, beta_t measured along the constrained trajectory (arrays of
    length T+1; pass constant arrays for Lesson 5's map with the coefficients of one reference
    point). It keeps only x and y = grad S_perp . v of the displacement v: the propagation of
    v by (I - eta H), which ``predicted_dynamics`` keeps, is dropped (in Lesson 5's cubic,
    this is the step h = 0). Damian et al. (2022) derive this map in their Section 4 at a
    fixed reference point; their predicted dynamics (Section 5) is ``predicted_dynamics``.
    Returns x_t (the predicted displacement along u) and y_t (predicted S - 2/eta) for
    t = 0..T as a ``selfstab.MapTrajectory`` (alpha, beta there are the means). Like
    ``selfstab.iterate_map`` it stops early, with ``diverged=True``, once |x| or |y| exceeds
    ``limit`` (the arrays then hold the finite prefix)."""
    alpha = np.asarray(alpha, dtype=float)
    beta = np.asarray(beta, dtype=float)
    if alpha.ndim != 1 or alpha.shape != beta.shape or alpha.size < 1:
        raise ValueError(f"alpha and beta must be 1-D arrays of equal length, got shapes {alpha.shape} and {beta.shape}")
    eta = validate.positive("eta", eta)
    x, y = validate.finite("x0", x0), validate.finite("y0", y0)
    xs, ys = [x], [y]
    diverged = False
    for a, b in zip(alpha[:-1], beta[:-1]):
        x, y = -(1 + eta * y) * x, y + eta * (a - b * x * x / 2)
        if not (abs(x) <= limit and abs(y) <= limit):
            diverged = True
            break
        xs.append(x)
        ys.append(y)
    return selfstab.MapTrajectory(np.array(xs), np.array(ys), float(np.nanmean(alpha)), float(np.nanmean(beta)),
                                  eta, diverged)


@dataclass
class PredictedDynamics:
    """Result of ``predicted_dynamics``: x_t (T'+1,) along u_t, y_t = grad S_perp_t . v_t
    (T'+1,), v (T'+1, n) the predicted displacement orthogonal to u (a tensor), ``coupling``
    (T'+1,): grad S_perp_t . H_t v_t, the first-order term that the two-variable reduction
    drops (NaN at the last step), and ``diverged`` (True when |x| or |y| passed ``limit``; the
    arrays then hold the finite prefix, T' < T)."""

    x: np.ndarray
    y: np.ndarray
    v: torch.Tensor
    coupling: np.ndarray
    diverged: bool


def predicted_dynamics(land: Landscape, constrained: Trajectory, eta, x0: float, v0, *,
                       limit: float = 1e150) -> PredictedDynamics:
    """Damian, Nichani & Lee's (2022, Section 5) predicted dynamics along the constrained
    trajectory theta_dagger_t, on the whole displacement v in R^n:

        v_{t+1} = P_{t+1} (I - eta H_t) P_t v_t + eta grad S_perp_t (delta_t^2 - x_t^2) / 2,
        x_{t+1} = -(1 + eta y_t) x_t,      y_t = grad S_perp_t . v_t,

    with H_t the Hessian at theta_dagger_t, P_t = I - u_t u_t^T the projection off its top
    eigenvector, delta_t^2 = 2 alpha_t / beta_t. The forcing term is the step that the
    projection onto the stable set takes out of theta_dagger (eta alpha_t grad S_perp / beta_t)
    minus the x^2/2 grad S push of the oscillation; (I - eta H_t) carries the rest of v along,
    so y_{t+1} - y_t = eta (alpha_t - beta_t x_t^2 / 2 - grad S_perp_t . H_t v_t) up to the
    turning of grad S_perp. Dropping the last term gives ``reduced_dynamics``.

    ``constrained``: a Trajectory from ``constrained_trajectory`` (it carries u, grad S_perp,
    alpha, beta); x0: the starting amplitude along u (float); v0: a starting displacement
    (n,) tensor (projected off u_0 here). One Hessian-vector product per step (at
    theta_dagger_t). Stops early, with ``diverged=True``, once |x| or |y| exceeds ``limit``."""
    eta = validate.positive("eta", eta)
    if constrained.u is None or constrained.grad_S_perp is None or constrained.alpha is None:
        raise ValueError("constrained must be a Trajectory from constrained_trajectory "
                         "(with u, grad_S_perp, alpha, beta)")
    T = len(constrained.theta) - 1
    x = validate.finite("x0", x0)
    v0 = torch.as_tensor(v0, dtype=constrained.theta.dtype)
    if v0.shape != constrained.theta[0].shape:
        raise ValueError(f"v0 must have shape {tuple(constrained.theta[0].shape)}, got {tuple(v0.shape)}")
    us, perps = constrained.u, constrained.grad_S_perp
    v = v0 - (us[0] @ v0) * us[0]
    xs, ys, vs, coupling = [x], [float(perps[0] @ v)], [v], []
    diverged = False
    for t in range(T):
        w = v - (us[t] @ v) * us[t]                      # P_t v_t
        Hw = land.hvp(constrained.theta[t], w)
        coupling.append(float(perps[t] @ Hw))
        delta2 = 2.0 * constrained.alpha[t] / constrained.beta[t]
        step = w - eta * Hw
        v = step - (us[t + 1] @ step) * us[t + 1] + eta * perps[t] * (delta2 - x * x) / 2
        x = -(1 + eta * ys[-1]) * x
        y = float(perps[t + 1] @ v)
        if not (abs(x) <= limit and abs(y) <= limit):
            diverged = True
            break
        xs.append(x)
        ys.append(y)
        vs.append(v)
    coupling = np.array(coupling[: len(xs) - 1] + [np.nan])
    return PredictedDynamics(np.array(xs), np.array(ys), torch.stack(vs), coupling, diverged)


@dataclass
class OscillationSeed:
    """Result of ``oscillation_seed``: ``seed`` (the sign-flipping part of x back-extrapolated
    to t = 0, in the units of x), ``steps`` (the steps it was estimated from), ``estimates``
    (one estimate per step used; their spread shows whether the growth really is the linear
    one), ``alternating`` (the sign-flipping amplitude a_t at every step, NaN at both ends) and
    ``growth`` (prod_{s<t} |1 - eta S_s|, the linear growth factor along u from step 0)."""

    seed: float
    steps: np.ndarray
    estimates: np.ndarray
    alternating: np.ndarray
    growth: np.ndarray


def oscillation_seed(x, sharpness, eta, *, scale, window=(1e-3, 0.3)) -> OscillationSeed:
    """How small GD's oscillation along u was at step 0, from its displacement x_t along u.

    x_t is a slowly varying offset plus a sign-flipping oscillation. The second difference
    removes the offset: for an oscillation (-1)^t A_t that grows by r_t = |1 - eta S_t| per
    step (linear growth along u, S_t the measured sharpness), |x_{t+1} - 2 x_t + x_{t-1}| =
    A_t (r_t + 2 + 1/r_{t-1}), which gives a_t = A_t at every step. Divided by the growth
    prod_{s<t} r_s, each a_t estimates the amplitude at t = 0. The steps used are those of
    the first growth, where a_t lies between window[0] and window[1] times ``scale`` (a float,
    or an array like x such as delta_t): large enough to dominate the offset's own curvature,
    small enough to still grow linearly. The seed is the median estimate.

    x, sharpness: 1-D arrays of equal length (S at every step); eta > 0. Raises ValueError
    when no step lies in the window."""
    x = np.asarray(x, dtype=float)
    S = np.asarray(sharpness, dtype=float)
    eta = validate.positive("eta", eta)
    if x.ndim != 1 or x.shape != S.shape or x.size < 3 or not np.all(np.isfinite(S)):
        raise ValueError(f"x and sharpness must be 1-D arrays of equal length >= 3 (S finite at every step), "
                         f"got shapes {x.shape} and {S.shape}")
    scale = np.broadcast_to(np.asarray(scale, dtype=float), x.shape)
    lo, hi = (float(w) for w in window)
    if not 0 < lo < hi:
        raise ValueError(f"window must be a pair (low, high) with 0 < low < high, got {window!r}")
    r = np.abs(1 - eta * S)
    growth = np.concatenate([[1.0], np.cumprod(r[:-1])])
    a = np.full(x.size, np.nan)
    a[1:-1] = np.abs(x[2:] - 2 * x[1:-1] + x[:-2]) / (r[1:-1] + 2 + 1 / r[:-2])
    over = np.flatnonzero(a > hi * scale)
    end = over[0] if over.size else x.size
    steps = np.flatnonzero((a >= lo * scale) & (a <= hi * scale))
    steps = steps[steps < end]
    if steps.size == 0:
        raise ValueError("no step has its sign-flipping amplitude inside the window: the oscillation never grows "
                         "out of the offset there (widen window, or pass a longer run)")
    estimates = a[steps] / growth[steps]
    return OscillationSeed(float(np.median(estimates)), steps, estimates, a, growth)


def distances(a: Trajectory, b: Trajectory) -> np.ndarray:
    """||theta_a(t) - theta_b(t)|| for the common steps, shape (min(T_a, T_b)+1,)."""
    n = min(len(a.theta), len(b.theta))
    return (a.theta[:n] - b.theta[:n]).norm(dim=1).cpu().numpy()


def displacement(path: Trajectory, constrained: Trajectory):
    """GD's coordinates in the map of Lesson 5, relative to the constrained trajectory:
    with v_t = theta_t - theta_dagger_t,

        x_t = u_t . v_t            (displacement along the unstable direction)
        y_t = grad S_perp_t . v_t  (first-order S(theta_t) - 2/eta, without x_t u . grad S)

    (Damian, Nichani & Lee 2022, Section 5). ``constrained`` must come from
    ``constrained_trajectory`` (it carries u and grad_S_perp). Returns two numpy arrays of
    length min(T_path, T_constrained) + 1."""
    if constrained.u is None or constrained.grad_S_perp is None:
        raise ValueError("constrained must be a Trajectory from constrained_trajectory (with u and grad_S_perp)")
    n = min(len(path.theta), len(constrained.theta))
    v = path.theta[:n] - constrained.theta[:n]
    x = (v * constrained.u[:n]).sum(dim=1).cpu().numpy()
    y = (v * constrained.grad_S_perp[:n]).sum(dim=1).cpu().numpy()
    return x, y


def running_mean(values, window: int) -> np.ndarray:
    """Centered moving average over ``window`` steps (NaN where the window does not fit):
    GD's time-averaged loss, to compare with the central flow's loss."""
    values = np.asarray(values, dtype=float)
    window = validate.positive_int("window", window)
    out = _nan(len(values))
    if len(values) >= window:
        c = np.convolve(values, np.ones(window) / window, mode="valid")
        start = (window - 1) // 2
        out[start:start + len(c)] = c
    return out
