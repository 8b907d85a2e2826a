"""Self-stabilization: the reduced two-dimensional map of Damian, Nichani & Lee (2022),
its four phases, its small-eta limit (an ODE with a conserved quantity) and the cubic
Taylor expansion it comes from.

Near a reference point theta* at the edge of stability, with u the top Hessian eigenvector,
S the sharpness and grad S = D^3 L[u, u] (Damian et al., ICLR 2023, Section 4):

    x = u . (theta - theta*)                 displacement along the unstable direction
    y = grad S_perp . (theta - theta*)       ~ S(theta) - 2/eta to first order (without the
                                             x u . grad S term, which flips sign with x)
    alpha = -grad L . grad S_perp   (> 0)    strength of progressive sharpening
    beta  = ||grad S_perp||^2                strength of self-stabilization

and gradient descent reduces, to leading order, to the map

    x_{t+1} = -(1 + eta y_t) x_t,
    y_{t+1} = y_t + eta (alpha - beta x_t^2 / 2).                                (MAP)

(`cubic_reduction` shows that (MAP) is *exactly* gradient descent on the cubic
L(x, z) = -(alpha/sqrt(beta)) z + (2/eta + sqrt(beta) z) x^2 / 2 with y = sqrt(beta) z.)
Its fixed "orbit" is x^2 = delta^2 = 2 alpha / beta, y = 0. With time tau = eta t and
X = |x|, the map is an Euler-like discretisation of

    X' = X Y,   Y' = alpha - beta X^2 / 2,                                      (ODE)

whose conserved quantity is H(X, Y) = Y^2/2 - alpha log X + beta X^2 / 4
(`conserved_quantity` derives it with sympy; with the dropped curvature h along grad S_perp
kept, Y' = alpha - beta X^2/2 - h Y and dH/dtau = -h Y^2: a damping). Consequences checked
in the lessons and tests: H bounds y (closed orbits); over a closed orbit the x-equation gives
the integral of Y d tau = the integral of d log X = 0, so S averages to 2/eta (on the map,
sum log|1 + eta y_t| = log|x_end / x_start| makes mean y O(eta)); over a whole cycle
mean(x^2) = 2 alpha / beta (average Y' = 0); and small cycles have period 2 pi / sqrt(2 alpha)
in tau, i.e. 2 pi / (eta sqrt(2 alpha)) steps of gradient descent. ``iterate_cubic`` runs exact
gradient descent on the full cubic, with the dropped terms switched back on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import validate

#: Names of the four phases, in the order a cycle visits them (index = label).
PHASES = ("progressive sharpening", "blow-up", "self-stabilization", "return to stability")
#: One colour per phase (matplotlib tab10), shared by the lesson and the widget.
PHASE_COLORS = ("#2ca02c", "#d62728", "#9467bd", "#1f77b4")


# --------------------------------------------------------------------------- the map
@dataclass
class MapTrajectory:
    """A trajectory of (MAP): ``x``, ``y`` of shape (steps + 1,), and its parameters.

    ``diverged`` is True when |x| or |y| left the float range (the run stops there; the
    arrays then hold the finite prefix only). ``log_abs_x`` (from ``iterate_map`` only, else
    None) holds log|x_t| exactly even where |x_t| is below the float range and ``x`` reads 0:
    deep in Phase I of a large orbit |x| falls below 1e-308 and comes back.
    """

    x: np.ndarray
    y: np.ndarray
    alpha: float
    beta: float
    eta: float
    diverged: bool
    log_abs_x: np.ndarray | None = None

    @property
    def delta(self) -> float:
        """sqrt(2 alpha / beta): the |x| at which self-stabilization balances sharpening."""
        return fixed_point_amplitude(self.alpha, self.beta)

    def phases(self) -> np.ndarray:
        """Phase label (index into PHASES) of every step, by the sign table (``label_phases``
        with delta = sqrt(2 alpha / beta))."""
        return label_phases(self.x, self.y, delta=self.delta)

    def conserved_values(self) -> np.ndarray:
        """H(|x_t|, y_t) = y^2/2 - alpha log|x| + beta x^2/4 at every step (the ODE's conserved
        quantity, which the map does not conserve), from ``log_abs_x`` where it is known, so
        that it stays finite where |x_t| is below the float range."""
        log_abs = self.log_abs_x if self.log_abs_x is not None else np.log(np.abs(self.x))
        return 0.5 * self.y**2 - self.alpha * log_abs + 0.25 * self.beta * self.x**2


def fixed_point_amplitude(alpha: float, beta: float) -> float:
    """delta = sqrt(2 alpha / beta), the amplitude of x at which y stops moving."""
    return math.sqrt(2.0 * validate.positive("alpha", alpha) / validate.positive("beta", beta))


_TINY = 2.0 ** -500  # below this |x| is carried as a mantissa and a power of two


def iterate_map(alpha, beta, eta, x0, y0, steps: int, *, limit: float = 1e150,
                x_floor: float = 0.0) -> MapTrajectory:
    """Iterate (MAP) ``steps`` times from (x0, y0).

    alpha > 0, beta > 0, eta > 0 (step size), x0, y0 finite floats. Iteration stops early
    (``diverged=True``) once |x| or |y| exceeds ``limit``, so no overflow ever happens.

    |x| never underflows: below 2^-500 it is carried as a mantissa times a power of two
    (scaling by powers of two is exact, so runs that stay above that size are bit for bit
    the plain float iteration). Without this, x would round to exactly 0 deep in Phase I of
    a large orbit, x = 0 is a fixed line of the map, and y would climb for ever with
    ``diverged=False``. Instead the orbit comes back, keeps spiralling outward (Lesson 5,
    Section 4) and, once y falls below -2/eta, leaves with ``diverged=True``. The stored
    ``x`` then reads 0 (or a subnormal) where |x_t| < 1e-308; ``log_abs_x`` holds log|x_t|.

    ``x_floor`` > 0 (default 0: the exact map) raises |x| to ``x_floor`` after every step,
    keeping its sign: the floor that rounding and every other direction give a real run's
    x = u . (theta - theta*) (Lesson 5, Section 4 tests what it does to the long run).
    """
    alpha = validate.positive("alpha", alpha)
    beta = validate.positive("beta", beta)
    eta = validate.positive("eta", eta)
    x = validate.finite("x0", x0)
    y = validate.finite("y0", y0)
    steps = validate.positive_int("steps", steps, minimum=0)
    x_floor = float(x_floor)
    if not (math.isfinite(x_floor) and x_floor >= 0.0):
        raise ValueError(f"x_floor must be a finite number >= 0, got {x_floor!r}")
    xs = np.empty(steps + 1)
    ys = np.empty(steps + 1)
    ms = np.empty(steps + 1)            # x_t = ms[t] * 2**ks[t]; ks[t] < 0 only while |x_t| < _TINY
    ks = np.zeros(steps + 1, dtype=np.int64)
    m, k = x, 0
    if 0.0 < abs(m) < _TINY:
        m, k = math.frexp(m)
    xs[0], ys[0], ms[0], ks[0] = x, y, m, k
    n = steps
    diverged = False
    for t in range(steps):
        # Both updates use the old (x_t, y_t): this is gradient descent, not a symplectic scheme.
        if k == 0:
            m, y = -(1.0 + eta * y) * m, y + eta * (alpha - 0.5 * beta * m * m)
        else:
            m, y = -(1.0 + eta * y) * m, y + eta * (alpha - 0.5 * beta * math.ldexp(m * m, 2 * k))
        if k == 0:
            if 0.0 < abs(m) < _TINY:
                m, k = math.frexp(m)
        else:
            v = math.ldexp(m, k)
            if abs(v) >= _TINY:
                m, k = v, 0
            else:
                m, e = math.frexp(m)
                k += e
        if x_floor > 0.0 and (abs(m) < x_floor if k == 0 else math.ldexp(abs(m), k) < x_floor):
            m, k = math.copysign(x_floor, m if m != 0.0 else 1.0), 0
            if m and abs(m) < _TINY:
                m, k = math.frexp(m)
        if not ((k < 0 or abs(m) <= limit) and abs(y) <= limit):
            n, diverged = t, True
            break
        xs[t + 1] = m if k == 0 else math.ldexp(m, k)
        ys[t + 1], ms[t + 1], ks[t + 1] = y, m, k
    with np.errstate(divide="ignore"):
        log_abs_x = np.log(np.abs(ms[: n + 1])) + ks[: n + 1] * math.log(2.0)
    return MapTrajectory(xs[: n + 1], ys[: n + 1], alpha, beta, eta, diverged, log_abs_x)


def iterate_cubic(alpha, beta, eta, x0, y0, steps: int, *, h: float = 0.0, t_xxx: float = 0.0,
                  t_xzz: float = 0.0, t_zzz: float = 0.0, limit: float = 1e150,
                  xzz_parts: str = "both") -> MapTrajectory:
    """Exact gradient descent on the full cubic of ``cubic_reduction``, in the map's coordinates.

    L(x, z) = g z + (2/eta) x^2/2 + h z^2/2 + (t_xxx x^3 + 3 t_xxz x^2 z + 3 t_xzz x z^2 + t_zzz z^3)/6
    with t_xxz = sqrt(beta) and g = -alpha/sqrt(beta); the trajectory is returned as x and
    y = sqrt(beta) z. With h = t_xxx = t_xzz = t_zzz = 0 it is (MAP) exactly (``iterate_map``);
    a nonzero value switches that dropped term back on (h: the curvature along grad S_perp,
    which adds -eta h y to the y update). Stops early (``diverged=True``) once |x| or |y|
    exceeds ``limit``.

    ``xzz_parts`` separates the two terms that t_xzz switches on: "both" (default: gradient
    descent on the cubic), "push" (only -eta t_xzz z^2/2 in x') or "coupling" (only
    -eta t_xzz x z in z'). The last two are not gradient descent on any loss; they only show
    which of the two terms does what (Lesson 5, Section 4).
    """
    if xzz_parts not in ("both", "push", "coupling"):
        raise ValueError(f"xzz_parts must be 'both', 'push' or 'coupling', got {xzz_parts!r}")
    alpha = validate.positive("alpha", alpha)
    beta = validate.positive("beta", beta)
    eta = validate.positive("eta", eta)
    h, t_xxx, t_xzz, t_zzz = (validate.finite(n, v) for n, v in
                              (("h", h), ("t_xxx", t_xxx), ("t_xzz", t_xzz), ("t_zzz", t_zzz)))
    steps = validate.positive_int("steps", steps, minimum=0)
    sb = math.sqrt(beta)
    g, curv = -alpha / sb, 2.0 / eta
    x, z = validate.finite("x0", x0), validate.finite("y0", y0) / sb
    xs, ys = np.empty(steps + 1), np.empty(steps + 1)
    xs[0], ys[0] = x, z * sb
    push = t_xzz if xzz_parts in ("both", "push") else 0.0
    coupling = t_xzz if xzz_parts in ("both", "coupling") else 0.0
    for t in range(steps):
        dx = curv * x + 0.5 * t_xxx * x * x + sb * x * z + 0.5 * push * z * z
        dz = g + h * z + 0.5 * sb * x * x + coupling * x * z + 0.5 * t_zzz * z * z
        x, z = x - eta * dx, z - eta * dz
        if not (abs(x) <= limit and abs(z * sb) <= limit):
            return MapTrajectory(xs[: t + 1], ys[: t + 1], alpha, beta, eta, True)
        xs[t + 1], ys[t + 1] = x, z * sb
    return MapTrajectory(xs, ys, alpha, beta, eta, False)


def label_phases(x, y, delta=None) -> np.ndarray:
    """Label each step of a trajectory with one of the four phases (index into PHASES).

    Two rules, which agree on (MAP) while y > -2/eta, except at a step with x_t^2 = delta^2
    exactly (y does not move there: the direction rule says 3 or 2, the sign rule 0 or 1):

    * ``delta`` given (a float, or an array like x): **the signs**, Damian et al.'s
      definition of the phases (the table of Lesson 5):

        y <= 0, x^2 <= delta^2  ->  0  progressive sharpening   (S below 2/eta, oscillation small)
        y >  0, x^2 <= delta^2  ->  1  blow-up                  (S above 2/eta, oscillation small)
        y >  0, x^2 >  delta^2  ->  2  self-stabilization       (S above 2/eta, oscillation large)
        y <= 0, x^2 >  delta^2  ->  3  return to stability      (S below 2/eta, oscillation large)

      On a real network pass x = u . (theta - theta_dagger), y = grad S_perp . (theta -
      theta_dagger) (``stable_dynamics.displacement``) and delta = sqrt(2 alpha_t / beta_t)
      measured along the constrained trajectory.
    * ``delta=None``: **the directions of motion**, y rising or falling (sign of
      y_{t+1} - y_t) and |x| rising or falling (sign of |x_{t+1}| - |x_t|): 0 = y up, |x|
      down; 1 = both up; 2 = y down, |x| up; 3 = both down. The last step repeats the label
      before it. On (MAP) y rises exactly when x_t^2 < 2 alpha/beta and |x| grows exactly
      when |1 + eta y_t| > 1, so this rule gives the sign rule's labels; on a network,
      where S jitters from step to step, the two can disagree, and only the sign rule is
      the definition.

    x, y: 1-D array-likes of equal length >= 2. Returns an int array of the same length.
    """
    x = np.abs(np.asarray(x, dtype=float))
    y = np.asarray(y, dtype=float)
    if x.ndim != 1 or x.shape != y.shape or x.size < 2:
        raise ValueError(f"x and y must be 1-D of equal length >= 2, got shapes {x.shape} and {y.shape}")
    if delta is not None:
        d = np.broadcast_to(np.asarray(delta, dtype=float), x.shape) if np.ndim(delta) == 0 else np.asarray(delta, float)
        if d.shape != x.shape or not np.all(np.isfinite(d)) or np.any(d <= 0):
            raise ValueError(f"delta must be a positive finite number or an array of shape {x.shape} of them")
        above, large = y > 0, x > d
        return np.where(above, np.where(large, 2, 1), np.where(large, 3, 0)).astype(int)
    y_rising = np.diff(y) > 0
    x_rising = np.diff(x) > 0
    labels = np.where(y_rising, np.where(x_rising, 1, 0), np.where(x_rising, 2, 3))
    return np.append(labels, labels[-1]).astype(int)


def phase_sequence(labels) -> np.ndarray:
    """The phases in the order they are visited: runs of equal labels merged into one entry.

    labels: 1-D int array (from ``label_phases``). A trajectory that cycles through the
    phases in the order of PHASES has ``np.diff(seq) % 4 == 1`` everywhere."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.size == 0:
        raise ValueError(f"labels must be a non-empty 1-D array, got shape {labels.shape}")
    return labels[np.r_[True, labels[1:] != labels[:-1]]]


def in_cycle_order(labels) -> bool:
    """True when consecutive phases follow I -> II -> III -> IV -> I (see ``phase_sequence``)."""
    seq = phase_sequence(labels)
    return bool(np.all(np.diff(seq) % 4 == 1))


# --------------------------------------------------------------------------- cycles
def cycle_starts(y, *, level: float = 0.0) -> np.ndarray:
    """Fractional step indices where y crosses ``level`` upwards (start of a blow-up).

    Linear interpolation between the two steps around each crossing gives sub-step
    resolution for the period. y: 1-D array. Returns a float array (possibly empty).
    """
    y = np.asarray(y, dtype=float) - level
    i = np.nonzero((y[:-1] < 0) & (y[1:] >= 0))[0]
    return i + (-y[i]) / (y[i + 1] - y[i])


@dataclass
class CycleStats:
    """Whole-cycle averages of a trajectory of (MAP).

    n_cycles: number of whole cycles used; periods: the length of each of them in steps
    (shape (n_cycles,)); period: their mean; mean_x2: mean of x_t^2 over the steps of the
    whole cycles (partial cycles at both ends are dropped); cycle_mean_x2: the same, cycle
    by cycle (shape (n_cycles,)); cycle_mean_y and cycle_std_y: the mean and the standard
    deviation of y_t over each whole cycle (shape (n_cycles,); the mean is O(eta), small next to
    the spread: S centres on 2/eta); predicted_mean_x2 = 2 alpha / beta; predicted_period =
    2 pi / (eta sqrt(2 alpha)) (exact only for small cycles and small eta).

    The map's orbits spiral outward (Lesson 5, Section 4), so on a large orbit later cycles
    are longer than the first: compare ``periods[0]`` with ``ode_period``, not the mean.
    cuts: the integer step indices that bound the whole cycles (shape (n_cycles + 1,)): cycle
    k is the steps cuts[k] .. cuts[k + 1] - 1.
    """

    n_cycles: int
    period: float
    mean_x2: float
    predicted_mean_x2: float
    predicted_period: float
    periods: np.ndarray = None
    cycle_mean_x2: np.ndarray = None
    cycle_mean_y: np.ndarray = None
    cycle_std_y: np.ndarray = None
    cuts: np.ndarray = None

    @property
    def mean_x2_ratio(self) -> float:
        return self.mean_x2 / self.predicted_mean_x2

    @property
    def period_ratio(self) -> float:
        return self.period / self.predicted_period


def cycle_stats(traj: MapTrajectory, cycles: int | None = None) -> CycleStats:
    """Detect cycles (upward zero crossings of y) and average over the whole ones.

    cycles: use only the first ``cycles`` whole cycles (an int >= 1; None: all of them).
    Raises ValueError when the trajectory has fewer than one whole cycle, or fewer than
    ``cycles``. A diverged trajectory is averaged over the whole cycles before it left the
    float range; check ``traj.diverged`` yourself.
    """
    starts = cycle_starts(traj.y)
    if len(starts) < 2:
        raise ValueError("the trajectory holds fewer than one whole cycle; iterate more steps")
    if cycles is not None:
        cycles = validate.positive_int("cycles", cycles, minimum=1)
        if len(starts) < cycles + 1:
            raise ValueError(f"the trajectory holds {len(starts) - 1} whole cycles, fewer than cycles={cycles}; "
                             "iterate more steps")
        starts = starts[: cycles + 1]
    cut = np.ceil(starts).astype(int)
    first, last = int(cut[0]), int(cut[-1])
    mean_x2 = float(np.mean(traj.x[first:last] ** 2))
    per_cycle = np.array([np.mean(traj.x[a:b] ** 2) for a, b in zip(cut[:-1], cut[1:])])
    mean_y = np.array([np.mean(traj.y[a:b]) for a, b in zip(cut[:-1], cut[1:])])
    std_y = np.array([np.std(traj.y[a:b]) for a, b in zip(cut[:-1], cut[1:])])
    return CycleStats(
        n_cycles=len(starts) - 1,
        period=float(np.mean(np.diff(starts))),
        mean_x2=mean_x2,
        predicted_mean_x2=2.0 * traj.alpha / traj.beta,
        predicted_period=2.0 * math.pi / (traj.eta * math.sqrt(2.0 * traj.alpha)),
        periods=np.diff(starts),
        cycle_mean_x2=per_cycle,
        cycle_mean_y=mean_y,
        cycle_std_y=std_y,
        cuts=cut,
    )


def conserved_at_cycle_starts(traj: MapTrajectory) -> np.ndarray:
    """H (``MapTrajectory.conserved_values``) at the first step of every cycle: the step just
    after each upward crossing of y = 0 (``cycle_starts``). On (MAP) it grows from each cycle
    to the next (the outward spiral); with a curvature h > 0 (``iterate_cubic``) it falls."""
    at = np.ceil(cycle_starts(traj.y)).astype(int)
    return traj.conserved_values()[at]


def mean_y_terms(traj: MapTrajectory, stats: CycleStats) -> dict:
    """Why the map's mean of y over a cycle is not 0: the x-equation term by term.

    Over a cycle of N steps |x_end| = |x_start| prod |1 + eta y_t|, and ln(1 + eta y) =
    eta y - (eta y)^2/2 + O(eta^3 y^3), so

        mean y = ln|x_end / x_start| / (N eta) + eta mean(y^2) / 2 + O(eta^2).

    Returns a dict of arrays, one value per whole cycle of ``stats`` (from ``cycle_stats`` on
    ``traj``): ``spiral`` (the first term: negative when the orbit spirals outward, since the
    cycle starts are where |x| is smallest), ``curvature`` (the second, positive) and
    ``mean_y`` (stats.cycle_mean_y, for comparison with their sum).
    """
    log_abs = traj.log_abs_x if traj.log_abs_x is not None else np.log(np.abs(traj.x))
    a, b = stats.cuts[:-1], stats.cuts[1:]
    n = (b - a).astype(float)
    spiral = (log_abs[b] - log_abs[a]) / (n * traj.eta)
    curvature = np.array([traj.eta * np.mean(traj.y[i:j] ** 2) / 2 for i, j in zip(a, b)])
    return {"spiral": spiral, "curvature": curvature, "mean_y": np.asarray(stats.cycle_mean_y)}


def top_eigenvalue(traj: MapTrajectory) -> np.ndarray:
    """The top eigenvalue of the Hessian of the map's cubic at every step of ``traj``.

    In the coordinates (x along u, z along grad S_perp, both unit) the cubic L = g z +
    (2/eta + sqrt(beta) z) x^2/2 has Hessian [[2/eta + y, sqrt(beta) x], [sqrt(beta) x, 0]],
    so lambda_max = (2/eta + y)/2 + sqrt((2/eta + y)^2/4 + beta x^2), which exceeds the
    curvature along u, 2/eta + y, by about eta beta x^2/2 >= 0 (it does not alternate with
    x). Over a whole cycle, where mean x^2 = 2 alpha/beta, that averages to eta alpha: the
    measured top eigenvalue sits eta alpha above 2/eta + mean y.
    """
    a = 2.0 / traj.eta + np.asarray(traj.y)
    b2 = traj.beta * np.asarray(traj.x) ** 2
    return 0.5 * a + np.sqrt(0.25 * a * a + b2)


# --------------------------------------------------------------------------- the ODE
def ode_rhs(X, Y, alpha, beta):
    """(X', Y') = (X Y, alpha - beta X^2 / 2), the self-stabilization ODE."""
    return X * Y, alpha - 0.5 * beta * X * X


def conserved_value(X, Y, alpha, beta):
    """H(X, Y) = Y^2/2 - alpha log|X| + beta X^2/4 (constant along the ODE; X != 0)."""
    X = np.asarray(X, dtype=float)
    return 0.5 * np.asarray(Y) ** 2 - alpha * np.log(np.abs(X)) + 0.25 * beta * X**2


def orbit_peak(alpha, beta, X0, Y0) -> float:
    """The largest Y on the ODE's closed orbit through (X0 > 0, Y0), from the conserved H:
    the top of the orbit is at X = delta, so Y_max^2 / 2 = H(X0, Y0) - H(delta, 0). For a
    start deep inside delta (X0 << delta) this is the peak of y after a long blow-up."""
    alpha = validate.positive("alpha", alpha)
    beta = validate.positive("beta", beta)
    X0 = validate.positive("X0", X0)
    Y0 = validate.finite("Y0", Y0)
    d = fixed_point_amplitude(alpha, beta)
    return math.sqrt(2.0 * float(conserved_value(X0, Y0, alpha, beta) - conserved_value(d, 0.0, alpha, beta)))


@dataclass
class ODESolution:
    """tau (n,), X (n,), Y (n,): the ODE sampled every ``dt``; ``H_drift`` = max |H - H(0)|
    (an a-posteriori error measure); ``error_estimate``: max difference from the same
    integration at dt/2 (Richardson; RK4's global error scales as dt^4, so the dt-run's true
    error is about 16/15 of this)."""

    tau: np.ndarray
    X: np.ndarray
    Y: np.ndarray
    H_drift: float
    error_estimate: float


def _rk4_log(ell, Y, alpha, beta, dt, n):
    # In ell = log X the system is ell' = Y, Y' = alpha - beta e^{2 ell}/2: X never
    # underflows deep in Phase I, where X ~ exp(-large) and a direct scheme loses all digits.
    out = np.empty((n + 1, 2))
    out[0] = ell, Y

    def f(e, y):
        return y, alpha - 0.5 * beta * math.exp(min(2.0 * e, 700.0))

    for i in range(n):
        k1 = f(ell, Y)
        k2 = f(ell + 0.5 * dt * k1[0], Y + 0.5 * dt * k1[1])
        k3 = f(ell + 0.5 * dt * k2[0], Y + 0.5 * dt * k2[1])
        k4 = f(ell + dt * k3[0], Y + dt * k3[1])
        ell += dt / 6.0 * (k1[0] + 2 * k2[0] + 2 * k3[0] + k4[0])
        Y += dt / 6.0 * (k1[1] + 2 * k2[1] + 2 * k3[1] + k4[1])
        out[i + 1] = ell, Y
    return out


def integrate_ode(alpha, beta, X0, Y0, t_end, *, dt: float = 1e-3) -> ODESolution:
    """Integrate X' = XY, Y' = alpha - beta X^2/2 from (X0 > 0, Y0) up to tau = t_end.

    Classical RK4 with fixed step ``dt`` on (log X, Y). The error is reported two ways:
    the drift of the conserved quantity H, and the difference from a second run at dt/2.
    With the defaults and O(1) parameters both are ~1e-10 or below.
    """
    alpha = validate.positive("alpha", alpha)
    beta = validate.positive("beta", beta)
    X0 = validate.positive("X0", X0)
    Y0 = validate.finite("Y0", Y0)
    t_end = validate.positive("t_end", t_end)
    dt = validate.positive("dt", dt)
    n = int(math.ceil(t_end / dt))
    dt = t_end / n
    coarse = _rk4_log(math.log(X0), Y0, alpha, beta, dt, n)
    fine = _rk4_log(math.log(X0), Y0, alpha, beta, dt / 2, 2 * n)[::2]
    X, Y = np.exp(coarse[:, 0]), coarse[:, 1]
    H = conserved_value(X, Y, alpha, beta)
    err = float(np.max(np.abs(np.exp(fine[:, 0]) - X) + np.abs(fine[:, 1] - Y)))
    return ODESolution(np.linspace(0.0, t_end, n + 1), X, Y, float(np.max(np.abs(H - H[0]))), err)


def ode_period(alpha, beta, X0, Y0, *, dt: float = 1e-3) -> float:
    """The period, in ODE time tau = eta t, of the closed orbit of X' = XY, Y' = alpha - beta X^2/2
    through (X0 > 0, Y0): the time between two successive upward crossings of Y = 0 (RK4 with
    step ``dt`` on (log X, Y), crossings interpolated linearly). Divide by eta for steps of
    gradient descent. Small orbits give 2 pi / sqrt(2 alpha); larger ones take longer, because
    X lingers near 0 while Y climbs at rate alpha.
    """
    alpha = validate.positive("alpha", alpha)
    beta = validate.positive("beta", beta)
    X0 = validate.positive("X0", X0)
    Y0 = validate.finite("Y0", Y0)
    dt = validate.positive("dt", dt)
    t_end = 4.0 * 2.0 * math.pi / math.sqrt(2.0 * alpha)
    for _ in range(8):
        n = int(math.ceil(t_end / dt))
        path = _rk4_log(math.log(X0), Y0, alpha, beta, t_end / n, n)
        up = cycle_starts(path[:, 1])
        if len(up) >= 2:
            return float((up[1] - up[0]) * t_end / n)
        t_end *= 2.0
    raise ValueError("no whole cycle found: the orbit is too large for this dt; pass a smaller (X0, Y0) offset")


# --------------------------------------------------------------------------- sympy
def conserved_quantity():
    """Derive the ODE's conserved quantity with sympy.

    Separating dY/dX = (alpha - beta X^2/2) / (X Y) gives Y dY = (alpha/X - beta X/2) dX,
    so H = Y^2/2 - integral(alpha/X - beta X/2) dX. Returns a dict of sympy objects:
    symbols (X, Y, alpha, beta), H, dH_dt (the chain-rule derivative along the ODE,
    unsimplified), dH_dt_simplified (which sympy reduces to 0), and, with the dropped
    curvature h along grad S_perp kept (Y' = alpha - beta X^2/2 - h Y), h (the symbol) and
    dH_dt_with_h (which simplifies to -h Y^2: h > 0 damps the cycles, h < 0 makes them grow).
    """
    import sympy as sp

    X, alpha, beta = sp.symbols("X alpha beta", positive=True)
    Y = sp.symbols("Y", real=True)
    Xdot, Ydot = X * Y, alpha - beta * X**2 / 2
    H = Y**2 / 2 - sp.integrate(sp.expand(Ydot / X), X)
    dH_dt = sp.diff(H, X) * Xdot + sp.diff(H, Y) * Ydot
    h = sp.symbols("h", real=True)
    dH_dt_h = sp.simplify(sp.diff(H, X) * Xdot + sp.diff(H, Y) * (Ydot - h * Y))
    return {
        "symbols": (X, Y, alpha, beta),
        "h": h,
        "dH_dt_with_h": dH_dt_h,
        "Xdot": Xdot,
        "Ydot": Ydot,
        "H": H,
        "dH_dt": dH_dt,
        "dH_dt_simplified": sp.simplify(dH_dt),
    }


def small_cycle_period():
    """Linearise the ODE at its fixed point (delta, 0) with sympy.

    Returns a dict: fixed_point (X*, Y*), jacobian (2x2), eigenvalues (+-i sqrt(2 alpha))
    and period = 2 pi / sqrt(2 alpha) in ODE time tau = eta t.
    """
    import sympy as sp

    X, alpha, beta = sp.symbols("X alpha beta", positive=True)
    Y = sp.symbols("Y", real=True)
    F = sp.Matrix([X * Y, alpha - beta * X**2 / 2])
    fixed = {X: sp.sqrt(2 * alpha / beta), Y: 0}
    J = F.jacobian([X, Y]).subs(fixed)
    eig = list(J.eigenvals())
    omega = sp.simplify(sp.Abs(sp.im(eig[0])))
    return {"fixed_point": (fixed[X], fixed[Y]), "jacobian": J, "eigenvalues": eig, "period": 2 * sp.pi / omega}


def cubic_reduction():
    """The cubic Taylor expansion behind Phases I-IV, with sympy.

    Coordinates around theta*: x along the top eigenvector u, z along grad S_perp (unit).
    The general cubic loss in (x, z) with grad L . u = 0 and u an eigenvector of the
    Hessian with eigenvalue 2/eta (so no xz term) is

        L = g z + (2/eta) x^2/2 + h z^2/2 + (t_xxx x^3 + 3 t_xxz x^2 z + 3 t_xzz x z^2 + t_zzz z^3)/6.

    One gradient-descent step is expanded exactly. Keeping only the third derivative that
    couples the two directions (t_xxz = ||grad S_perp|| = sqrt(beta)) and setting h = 0,
    y = S - 2/eta = t_xxz z and alpha = -g t_xxz, the step becomes exactly (MAP). Of the
    dropped terms, t_xxx adds -eta t_xxx x^2/2 to x' (a shift of the oscillation's centre),
    t_xzz and t_zzz add terms of second order in z (and x z); h adds -eta h z to z', i.e.
    -eta h y to y', which is *first* order: dropping it is an assumption (the curvature along
    grad S_perp is negligible, Damian et al. Section 4), not an order argument.

    Returns a dict of sympy objects: symbols, L (general cubic), grad (dL/dx, dL/dz),
    sharpness_u (d^2L/dx^2 = the curvature along u), step (x', z' general), reduced_step
    (x', y' after the reduction), dropped (x', z' general minus x', z' reduced: the terms the
    map leaves out) and map_residual (reduced step minus (MAP); simplifies to 0).
    """
    import sympy as sp

    x, z, g, h, eta = sp.symbols("x z g h eta", real=True)
    txxx, txxz, txzz, tzzz = sp.symbols("t_xxx t_xxz t_xzz t_zzz", real=True)
    alpha, beta = sp.symbols("alpha beta", positive=True)
    y = sp.symbols("y", real=True)
    L = (
        g * z
        + (2 / eta) * x**2 / 2
        + h * z**2 / 2
        + (txxx * x**3 + 3 * txxz * x**2 * z + 3 * txzz * x * z**2 + tzzz * z**3) / 6
    )
    grad = (sp.diff(L, x), sp.diff(L, z))
    S_u = sp.diff(L, x, 2)
    step = (sp.expand(x - eta * grad[0]), sp.expand(z - eta * grad[1]))
    reduce_ = {txxx: 0, txzz: 0, tzzz: 0, h: 0}
    x_new = step[0].subs(reduce_)
    z_new = step[1].subs(reduce_)
    # Express in y = t_xxz z, alpha = -g t_xxz, beta = t_xxz^2.
    sb = sp.sqrt(beta)
    to_map = {txxz: sb, g: -alpha / sb}
    x_new = sp.expand(x_new.subs(to_map).subs(z, y / sb))
    y_new = sp.expand((sb * z_new).subs(to_map).subs(z, y / sb))
    residual = (sp.simplify(x_new - (-(1 + eta * y) * x)), sp.simplify(y_new - (y + eta * (alpha - beta * x**2 / 2))))
    return {
        "symbols": dict(x=x, z=z, y=y, g=g, h=h, eta=eta, t_xxx=txxx, t_xxz=txxz, t_xzz=txzz, t_zzz=tzzz,
                        alpha=alpha, beta=beta),
        "L": L,
        "grad": grad,
        "sharpness_u": S_u,
        "step": step,
        "reduced_step": (x_new, y_new),
        "dropped": (sp.expand(step[0] - step[0].subs(reduce_)), sp.expand(step[1] - step[1].subs(reduce_))),
        "map_residual": residual,
    }
