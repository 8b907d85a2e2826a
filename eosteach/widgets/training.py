"""The demos of lessons 3 and 4: measuring the sharpness, and watching networks train.

* ``rayleigh_ritz(Q, HQ)`` (lesson 3): the Ritz values and the top Ritz vector of a
  symmetric operator on the span of an orthonormal basis Q, from the products H Q;
  ``krylov_basis(matvec, v0, k)`` builds the basis Lanczos would use, with its products.
* ``solver_traces(...)`` + ``solver_demo(traces)`` (lesson 3): power iteration against
  Lanczos on the Hessian of a small network. Both solvers multiply by the same Hessian,
  from the same start vector; after each product we record the estimate each would
  return if stopped there.
  Left: the signed gap estimate - S per product, on a linear axis zoomed to the chosen
  budget (``solver_zoom``); right: relative error on a log scale. A slider picks a
  product budget and reads both errors off.
* ``training_launcher(...)`` (lessons 3-4): choose eta (by 2/eta, as the lessons write it), the
  optimiser, the momentum and the architecture, press *Train*: the run (``runs.cached_run``,
  so a finished run comes back at once) is drawn live (loss; sharpness against the method's own threshold) with a
  progress bar.
* ``top_direction_trace(run, steps)`` + ``run_scrubber(run, trace)`` (lesson 4): continue
  a finished run for a few steps from its final parameters, recording the position of
  theta along the top Hessian eigenvector v_max; then scrub the whole run with a step
  slider: loss, sharpness with thresholds, and the position along v_max, which flips
  side at every step at the edge of stability (Cohen et al., ICLR 2021, section 3.2).

Each builder returns an ``ipywidgets.VBox`` with ``.controls`` (name -> widget) and
``.view`` (the ``FigureView``), plus the methods and results named in its docstring, so
that tests drive it headless.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from types import SimpleNamespace

import ipywidgets as widgets
import numpy as np
import torch

from .. import hessian, models, optim, plotting, runs, validate
from ..plotting import COLORS
from .base import FigureView, static_fallback

#: The lesson-scale setting of lessons 3-4 (and the launcher's default): fc-tanh 3072-100-100-10
#: (``models.LESSON_ARCH``) on the first 500 CIFAR-10 training images, MSE, sharpness every
#: 20 steps. Its initial sharpness is about 82, so GD with eta <= 0.02 starts below 2/eta.
LESSON_SETTINGS = dict(data="cifar10", n_train=500, arch="fc-tanh", width=100, depth=2, loss="mse",
                       eig_every=20, seed=0)


def lesson_config(**overrides) -> runs.RunConfig:
    """``runs.RunConfig`` at lesson scale (``LESSON_SETTINGS``), with ``overrides`` applied.
    Lessons 3 and 4 build every run with it, so a run made in one is reused by the other."""
    return runs.RunConfig(**{**LESSON_SETTINGS, **overrides})


OPT_LABELS = {"gd": "GD", "heavy_ball": "heavy-ball", "nesterov": "Nesterov", "flow": "gradient flow"}
#: Losses above this are drawn at the top edge of the panel, marked as divergence.
LOSS_CLIP = 1e6


# --------------------------------------------------------------------------- 1. solvers


@dataclass
class SolverTraces:
    """Estimates of S = lambda_max(H) after each Hessian-vector product.

    products (m,): 1..m; power (m,): power iteration's Rayleigh quotient v.Hv after each
    product; lanczos (m,): Lanczos's top Ritz value after each product (held at its last
    value after Lanczos stopped, converged, at product ``lanczos_used``); reference: S from
    a dense eigendecomposition (small models) or a Lanczos run converged to 1e-10;
    n_params: the Hessian's size.
    """

    products: np.ndarray
    power: np.ndarray
    lanczos: np.ndarray
    reference: float
    n_params: int
    lanczos_used: int | None = None

    def rel_error(self, method: str) -> np.ndarray:
        """|estimate - S| / |S| after each product, for "power" or "lanczos"."""
        validate.choice("method", method, ("power", "lanczos"))
        return np.abs(getattr(self, method) - self.reference) / abs(self.reference)

    def products_to(self, method: str, tol: float) -> int | None:
        """The first product count at which the relative error is <= tol (None: never)."""
        hit = np.nonzero(self.rel_error(method) <= tol)[0]
        return int(self.products[hit[0]]) if hit.size else None


#: How far Q^T Q may be from the identity (max abs entry) before ``rayleigh_ritz`` refuses Q.
ORTHONORMAL_TOL = 1e-6


def rayleigh_ritz(Q: torch.Tensor, HQ: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One Rayleigh-Ritz step: the best approximations of H's eigenpairs within span(Q).

    Q (n, k): orthonormal columns (Q^T Q = I_k, to ``ORTHONORMAL_TOL``); HQ (n, k): the
    symmetric operator H applied to each column of Q (k Hessian-vector products). The
    projected matrix T = Q^T (H Q) (k x k) is symmetric in exact arithmetic but only up to
    rounding once the products are computed in floating point, so it is symmetrised,
    T <- (T + T^T) / 2, and diagonalised by a symmetric eigensolver, T = Y diag(theta) Y^T.

    Returns ``(theta, x)``: the k Ritz values in DESCENDING order (float64, shape (k,)) and
    the unit Ritz vector x = Q y_1 (float64, shape (n,)) of the largest, theta_1, which is
    the largest Rayleigh quotient u^T H u / u^T u over u in span(Q), so
    lambda_min(H) <= theta_k <= theta_1 <= lambda_max(H). Lanczos is this step on the
    Krylov space span{v, Hv, ..., H^(k-1) v}, whose orthonormal basis makes T tridiagonal
    (Golub & Van Loan, "Matrix Computations", ch. 10). With k = n it returns H's
    eigenvalues exactly. x's sign is arbitrary.
    """
    for name, a in (("Q", Q), ("HQ", HQ)):
        if not isinstance(a, torch.Tensor) or a.ndim != 2 or not a.dtype.is_floating_point:
            raise ValueError(f"{name} must be a 2-D floating torch.Tensor of shape (n, k), got "
                             f"{type(a).__name__} {tuple(getattr(a, 'shape', ()))}")
    if Q.shape != HQ.shape:
        raise ValueError(f"Q and HQ must have the same shape (n, k), got {tuple(Q.shape)} and {tuple(HQ.shape)}")
    n, k = Q.shape
    if not 1 <= k <= n:
        raise ValueError(f"Q must have between 1 and n={n} columns, got k={k}")
    Q, HQ = Q.double(), HQ.to(device=Q.device, dtype=torch.float64)
    off = float((Q.T @ Q - torch.eye(k, dtype=torch.float64, device=Q.device)).abs().max())
    if not off <= ORTHONORMAL_TOL:
        raise ValueError(f"Q must have orthonormal columns (max |Q^T Q - I| = {off:.2e} > {ORTHONORMAL_TOL:g}); "
                         "orthonormalise it first, for example with torch.linalg.qr")
    T = Q.T @ HQ
    theta, Y = torch.linalg.eigh(0.5 * (T + T.T))  # ascending
    x = Q @ Y[:, -1]
    return theta.flip(0), x / x.norm()


def krylov_basis(matvec, v0: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """An orthonormal basis Q (n, k) of the Krylov space span{v0, H v0, ..., H^(k-1) v0}
    and the products HQ = H Q (n, k), from exactly k products ``matvec(q)`` (q: (n,)).

    Each new basis vector is the last product orthogonalised against the basis so far
    (Gram-Schmidt, twice: Arnoldi's process, which for a symmetric H is Lanczos with full
    reorthogonalisation). ``rayleigh_ritz(Q, HQ)`` then gives what k steps of Lanczos give.
    float64 throughout; ``v0`` (n,) must not be zero. If the space stops growing (an
    invariant subspace), ValueError is raised."""
    if not isinstance(v0, torch.Tensor) or v0.ndim != 1 or v0.numel() == 0:
        raise ValueError(f"v0 must be a non-empty 1-D torch.Tensor, got {type(v0).__name__}")
    n = v0.numel()
    k = validate.positive_int("k", k)
    if k > n:
        raise ValueError(f"k must be at most n={n}, got {k}")
    Q = torch.zeros(n, k, dtype=torch.float64, device=v0.device)
    HQ = torch.zeros_like(Q)
    q = v0.detach().double()
    for j in range(k):
        for _ in range(2):
            q = q - Q[:, :j] @ (Q[:, :j].T @ q)
        norm = float(q.norm())
        if not norm > 1e-12 * max(float(HQ.abs().max()) if j else 1.0, 1e-300):
            raise ValueError(f"the Krylov space stopped growing at dimension {j} (v0 zero or in an invariant subspace)")
        Q[:, j] = q / norm
        HQ[:, j] = matvec(Q[:, j]).detach().double()
        q = HQ[:, j]
    return Q, HQ


def solver_traces(model, loss_fn, x, y, *, max_products: int = 60, seed: int = 0) -> SolverTraces:
    """Run ``hessian.power_iteration`` for exactly ``max_products`` products and
    ``hessian.lanczos`` from the same random start for at most as many (it stops once its
    residual is below 1e-14 of the Ritz value: converged to rounding, after which its
    estimate is held), recording after every product the estimate each would report.

    The estimates are read from the products themselves, not from the solvers' internals:
    for power iteration the Rayleigh quotient q.Hq of the vector just multiplied; for
    Lanczos the top eigenvalue of Q^T H Q over the vectors Q multiplied so far (the
    Rayleigh-Ritz value; Lanczos's orthonormal basis makes it equal the top eigenvalue
    of its tridiagonal matrix T_m; see ``rayleigh_ritz``). Use a small model: Q and HQ are
    kept in memory.
    """
    max_products = validate.positive_int("max_products", max_products, minimum=2)
    op = hessian.HessianOperator(model, loss_fn, x, y)
    n = op.n
    if max_products > n:
        raise ValueError(f"max_products must be at most n={n} (the number of parameters), got {max_products}")

    def recording(store):
        def matvec(v):
            w = op.matvec(v)
            store.append((v.detach().clone(), w.detach().clone()))
            return w
        return matvec

    pi_pairs, lz_pairs = [], []
    # tol=1e-14: power iteration records every product of the budget; Lanczos may converge to
    # rounding before the budget is spent, and its estimate is then held (see below).
    hessian.power_iteration(recording(pi_pairs), n, tol=1e-14, max_products=max_products,
                            device=op.device, dtype=op.dtype, seed=seed)
    hessian.lanczos(recording(lz_pairs), n, 1, tol=1e-14, stop="residual", max_products=max_products,
                    device=op.device, dtype=op.dtype, seed=seed)
    power = np.array([float(v @ w / (v @ v)) for v, w in pi_pairs])
    Q = torch.stack([v / v.norm() for v, _ in lz_pairs]).double()  # rows: the Lanczos vectors
    HQ = torch.stack([w / v.norm() for v, w in lz_pairs]).double()
    # ``rayleigh_ritz`` on the first m vectors, for every m at once: T is formed and
    # symmetrised once, and each prefix's top Ritz value is that of its leading m x m block.
    T = Q @ HQ.T
    T = 0.5 * (T + T.T)
    lanczos = np.array([float(torch.linalg.eigvalsh(T[:m, :m])[-1]) for m in range(1, len(lz_pairs) + 1)])
    if n <= 2500:
        reference = float(torch.linalg.eigvalsh(hessian.dense_hessian(model, loss_fn, x, y).double())[-1])
    else:
        reference = hessian.lanczos(op.matvec, n, 1, tol=1e-10, max_products=min(n, 300),
                                    device=op.device, dtype=op.dtype, seed=seed + 1).top
    used = len(lanczos)
    m = len(power)
    if used < m:  # Lanczos met its 1e-14 residual early: its estimate would not change any more
        lanczos = np.concatenate([lanczos, np.full(m - used, lanczos[-1])])
    return SolverTraces(np.arange(1, m + 1), power, lanczos[:m], reference, n, lanczos_used=min(used, m))


#: The left panel of ``solver_demo`` never zooms in closer than this fraction of |S| (about a
#: thousand times the floor of about 1e-13 that the estimates reach in float64, so that their
#: rounding noise is not blown up).
ZOOM_FLOOR = 1e-10


def solver_zoom(traces: SolverTraces, k: int) -> tuple[float, float]:
    """The y-window of ``solver_demo``'s left panel (the signed gap estimate - S) at a budget
    of k products: (-1.4 g, 0.4 g), g the larger of the two solvers' gaps |estimate - S| after
    k products (at least ``ZOOM_FLOOR`` x |S|), so that both estimates at k lie inside it and
    the larger fills most of it."""
    m = len(traces.products)
    k = validate.positive_int("k", k)
    if k > m:
        raise ValueError(f"k must be at most the {m} products recorded, got {k}")
    S = traces.reference
    g = max(abs(traces.power[k - 1] - S), abs(traces.lanczos[k - 1] - S), ZOOM_FLOOR * abs(S))
    return -1.4 * g, 0.4 * g


def solver_demo(traces: SolverTraces, *, tol: float = 1e-3):
    """Power iteration against Lanczos, side by side (see ``solver_traces``).

    Left: the signed gap estimate - S of each solver against the products, on a linear axis
    zoomed to the chosen budget (``solver_zoom``: it follows the slider), so that the gap at
    every budget is legible and its sign shows that both estimates approach S from below.
    Right: the relative error |estimate - S| / |S| on a log axis, with ``tol``. Open rings
    mark the values at the budget on both panels; one legend, above the panels, covers both.

    Controls: ``products`` (the budget, 1..m). Moving it changes the same artists in place
    (cursor, rings, the left panel's y-window), never a new figure. Returns an
    ``ipywidgets.VBox`` with ``.controls``, ``.view``, ``.update()``, ``.traces``,
    ``.message`` and ``.marks`` (name -> the ring artists).
    """
    tol = validate.positive("tol", tol)
    m = len(traces.products)
    controls = {"products": widgets.IntSlider(value=min(20, m), min=1, max=m, step=1,
                                              description="products used", continuous_update=False,
                                              style={"description_width": "initial"})}
    message = widgets.HTML()
    view = FigureView(1, 2, figsize=(11, 4.6))
    ax_gap, ax_err = view.axes
    S = traces.reference
    gap = {"power": traces.power - S, "lanczos": traces.lanczos - S}
    err = {"power": traces.rel_error("power"), "lanczos": traces.rel_error("lanczos")}
    floor = 1e-16
    style = {"power": dict(color=COLORS["gd"], label="power iteration"),
             "lanczos": dict(color=COLORS["heavy_ball"], label="Lanczos")}
    for name in ("power", "lanczos"):
        ax_gap.plot(traces.products, gap[name], "-o", ms=3, **style[name])
        ax_err.semilogy(traces.products, np.maximum(err[name], floor), "-o", ms=3, **style[name])
    ax_gap.axhline(0.0, color=COLORS["threshold"], linestyle="--", linewidth=1.2,
                   label=f"exact S = {S:.6g} (gap 0)")
    ax_gap.set_xlabel("Hessian-vector products used")
    ax_gap.set_ylabel(r"estimate $-\ S$ (linear)")
    ax_gap.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3), useMathText=True)
    ax_gap.set_xlim(0, m + 1)
    ax_err.axhline(tol, color=COLORS["threshold"], linestyle=":", linewidth=1.4, label=f"tolerance {tol:g}")
    ax_err.set_xlabel("Hessian-vector products used")
    ax_err.set_ylabel(r"relative error $|\hat S - S| / S$")
    ax_err.set_title("relative error (log scale)")
    ax_err.set_xlim(0, m + 1)
    ax_err.set_ylim(max(floor, min(err["power"].min(), err["lanczos"].min()) / 3),
                    max(1.0, err["power"].max(), err["lanczos"].max()) * 2)
    marks = {}
    for name in ("power", "lanczos"):
        for ax, ys in ((ax_gap, gap[name]), (ax_err, np.maximum(err[name], floor))):
            (ring,) = ax.plot([1], [ys[0]], "o", ms=9, mfc="none", mew=1.8, color=style[name]["color"])
            marks.setdefault(name, []).append(ring)
    cursors = [ax.axvline(1, color="0.3", linewidth=1) for ax in view.axes]
    handles, labels = ax_gap.get_legend_handles_labels()
    more = ax_err.get_legend_handles_labels()
    handles, labels = handles + more[0][2:], labels + more[1][2:]
    view.figure.legend(handles, labels, loc="outside upper center", ncol=len(labels), fontsize=9)
    box = widgets.VBox([widgets.HBox([controls["products"], message]), view.image])

    def update(*_):
        k = controls["products"].value
        i = k - 1
        for c in cursors:
            c.set_xdata([k, k])
        for name in ("power", "lanczos"):
            ring_gap, ring_err = marks[name]
            ring_gap.set_data([k], [gap[name][i]])
            ring_err.set_data([k], [max(err[name][i], floor)])
        lo, hi = solver_zoom(traces, k)
        ax_gap.set_ylim(lo, hi)
        ax_gap.set_title(f"estimate $-$ S, y zoomed to the budget of {k} products")
        need_p, need_l = traces.products_to("power", tol), traces.products_to("lanczos", tol)
        fmt = lambda need: "not within the budget" if need is None else f"{need} products"  # noqa: E731
        message.value = (f"after {k} products: power iteration error {err['power'][i]:.1e}, Lanczos error "
                         f"{err['lanczos'][i]:.1e}. To reach {tol:g}: power {fmt(need_p)}, Lanczos {fmt(need_l)}.")
        view.refresh()

    controls["products"].observe(update, names="value")
    update()
    box.controls, box.view, box.update, box.traces, box.message = controls, view, update, traces, message
    box.marks = marks
    return static_fallback(box, view)  # a saved notebook shows the figure without a widget front end


# --------------------------------------------------------------------------- 2. launcher


def _masked(values) -> np.ndarray:
    """Losses as floats with non-finite or huge values clipped to LOSS_CLIP (drawn, never warned)."""
    with np.errstate(over="ignore", invalid="ignore"):
        a = np.asarray(values, dtype=np.float64)
        return np.where(np.isfinite(a) & (a < LOSS_CLIP), a, LOSS_CLIP)


def eta_text(eta: float, *, tex: bool = True) -> str:
    """A step size written as the lessons write it, "eta = 2/100": 2/eta to 4 significant
    digits (2/110 reads "eta = 2/110", 0.0191 "eta = 2/104.7"). ``tex``: eta in mathtext,
    for figures; else the Unicode letter, for widgets."""
    eta = validate.positive("eta", eta)
    name = r"$\eta$" if tex else "η"
    return f"{name} = 2/{2 / eta:.4g}"


def training_launcher(base: runs.RunConfig | None = None, *, refresh_every: int = 25,
                      eta_range=(0.002, 0.2), archs=("fc-tanh", "fc-relu", "fc-elu", "cnn-relu")):
    """Choose eta, the optimiser, b and the architecture, then train with a live plot.

    base: the other settings (data, n_train, width, steps, eig_every, ...); default
    ``lesson_config(lr=0.02, steps=500)``. The run is
    ``runs.cached_run(config, callback=...)``: the figure (loss; sharpness and the method's
    own threshold) and the progress bar update every ``refresh_every`` steps and at every
    sharpness measurement. Returns an ``ipywidgets.VBox`` with ``.controls`` (eta, two_over_eta,
    opt, momentum, arch, steps, train), ``.view``, ``.progress``, ``.config()`` (the RunConfig
    the controls describe), ``.launch()`` (train now; also what the button does),
    ``.eta_label`` (eta written as the lessons write it, "η = 2/100"; the figure's title and
    key write it so too, see ``eta_text``) and ``.run`` (the last finished ``Run``).

    The step size is set as the lessons name it, by 2/eta: ``controls["two_over_eta"]`` is a
    slider over 2/eta in steps of 1 (from 2/eta_range[1]; by default 10 to 1000, so that every
    whole 2/eta, such as 2/110, is a stop), and ``controls["eta"]`` holds eta itself (a number
    box: type any eta in ``eta_range``). The two follow each other; ``config()`` reads eta.
    """
    if base is None:
        base = lesson_config(lr=0.02, steps=500)
    if not isinstance(base, runs.RunConfig):
        raise ValueError(f"base must be a RunConfig, got {type(base).__name__}")
    refresh_every = validate.positive_int("refresh_every", refresh_every)
    lo, hi = (validate.positive("eta_range", v) for v in eta_range)
    style = {"description_width": "initial"}
    controls = {
        # eta itself (typed), and the slider the lessons' "eta = 2/k" is set with: 2/eta in steps of 1
        "eta": widgets.BoundedFloatText(value=min(max(base.lr, lo), hi), min=lo, max=hi, description="η =",
                                        style=style, layout=widgets.Layout(width="190px")),
        "two_over_eta": widgets.FloatSlider(value=2 / min(max(base.lr, lo), hi), min=2 / hi, max=2 / lo, step=1,
                                            description="step size: 2/η", readout_format=".4g",
                                            continuous_update=False, style=style,
                                            layout=widgets.Layout(width="420px")),
        "opt": widgets.Dropdown(options=[(OPT_LABELS[k], k) for k in ("gd", "heavy_ball", "nesterov")],
                                value=base.opt if base.opt in ("gd", "heavy_ball", "nesterov") else "gd",
                                description="optimiser", style=style),
        "momentum": widgets.FloatSlider(value=base.momentum or 0.9, min=0.0, max=0.99, step=0.01,
                                        description="momentum b", continuous_update=False, style=style),
        "arch": widgets.Dropdown(options=list(archs), value=base.arch if base.arch in archs else archs[0],
                                 description="architecture", style=style),
        "steps": widgets.IntSlider(value=base.steps, min=10, max=max(3000, base.steps), step=10,
                                   description="steps", continuous_update=False, style=style),
        "train": widgets.Button(description="Train", button_style="primary", icon="play"),
    }
    progress = widgets.IntProgress(value=0, min=0, max=base.steps, description="progress")
    message = widgets.HTML("Choose the settings and press <b>Train</b>.")
    eta_label = widgets.HTML()  # the slider's value as the lessons write it: "η = 2/100"
    view = FigureView(1, 2, figsize=(11, 4.2))
    ax_loss, ax_s = view.axes
    empty = {"step": [], "loss": [], "eig_step": [], "sharpness": [], "threshold": []}
    lines = plotting.loss_and_sharpness(ax_loss, ax_s, [empty])
    box = widgets.VBox([
        widgets.HBox([widgets.VBox([controls["two_over_eta"], widgets.HBox([controls["eta"], eta_label]),
                                    controls["opt"], controls["momentum"]]),
                      widgets.VBox([controls["arch"], controls["steps"], controls["train"]])]),
        widgets.HBox([progress, message]), view.image])
    box.run = None

    def config() -> runs.RunConfig:
        opt = controls["opt"].value
        settings = base.to_dict()
        settings.update(lr=float(controls["eta"].value), opt=opt, arch=controls["arch"].value,
                        momentum=float(controls["momentum"].value) if opt != "gd" else 0.0,
                        steps=int(controls["steps"].value), batch_size=None)
        family = settings["arch"].split("-")[0]
        if family != base.arch.split("-")[0]:  # a CNN's width counts channels, an MLP's units
            settings["width"] = models.DEFAULT_WIDTH[family]
        return runs.RunConfig.from_dict(settings)

    def draw(records, total, title):
        # The same artists every time: the picture changes in place, no new figure.
        shown = SimpleNamespace(metrics={**records, "loss": _masked(records["loss"])},
                                info={"synthetic": base.data == "synthetic"})
        plotting.update_loss_and_sharpness(lines, [shown], labels=[title],
                                           colors=[COLORS.get(controls["opt"].value, COLORS["gd"])])
        ax_loss.set_xlim(0, max(total, 1))
        ax_s.set_xlim(0, max(total, 1))
        ax_loss.set_title(title)
        ax_s.set_title("sharpness and the method's threshold (dashed)")
        view.refresh()

    def launch():
        cfg = config()
        progress.max, progress.value = cfg.steps, 0
        rec = {name: [] for name in empty}
        title = f"{OPT_LABELS[cfg.opt]}, {eta_text(cfg.lr)}" + (f", b = {cfg.momentum:g}" if cfg.opt != "gd" else "")
        message.value = f"training {cfg.label()} ..."

        def callback(info):
            rec["step"].append(info["step"])
            rec["loss"].append(info["loss"])
            if "sharpness" in info:
                rec["eig_step"].append(info["step"])
                rec["sharpness"].append(info["sharpness"])
                rec["threshold"].append(info["threshold"])
            progress.value = min(info["step"] + 1, cfg.steps)
            if info["step"] % refresh_every == 0 or "sharpness" in info:
                draw(rec, cfg.steps, title)

        run = runs.cached_run(cfg, progress=False, callback=callback)
        m = run.metrics
        draw(m, cfg.steps, title)
        progress.value = cfg.steps
        if run.status == "diverged":
            message.value = (f"<b>diverged</b> at step {run.info.get('stop_step')}: the loss stopped being "
                             "finite (drawn at the top edge). Try a smaller eta.")
        else:
            s, thr = m["sharpness"], m["threshold"]
            ratio = float(np.nanmax(s / thr)) if len(s) else float("nan")
            message.value = (f"{run.status}: final loss {m['loss'][-1]:.4g}; "
                             f"largest S / threshold = {ratio:.2f}")
        box.run = run
        return run

    controls["train"].on_click(lambda _: launch())

    def toggle(*_):
        controls["momentum"].disabled = controls["opt"].value == "gd"

    syncing = []  # set while one of the two eta controls writes the other: no echo back

    def show_eta(*_):
        eta = controls["eta"].value
        eta_label.value = eta_text(eta, tex=False)
        if not syncing:
            syncing.append(True)
            try:
                controls["two_over_eta"].value = 2 / eta
            finally:
                syncing.clear()

    def set_from_slider(change):
        if not syncing:
            syncing.append(True)
            try:
                controls["eta"].value = 2 / change["new"]
            finally:
                syncing.clear()
            eta_label.value = eta_text(controls["eta"].value, tex=False)

    controls["opt"].observe(toggle, names="value")
    controls["eta"].observe(show_eta, names="value")
    controls["two_over_eta"].observe(set_from_slider, names="value")
    toggle()
    show_eta()
    draw(empty, base.steps, "press Train")
    box.controls, box.view, box.progress, box.message = controls, view, progress, message
    box.config, box.launch, box.eta_label = config, launch, eta_label
    return static_fallback(box, view)  # a saved notebook shows the figure without a widget front end


# --------------------------------------------------------------------------- 3. scrubber


@dataclass
class TopDirectionTrace:
    """A continuation of a finished run along which theta's position on v_max is recorded.

    step (m+1,): step numbers (continuing the run's count); loss (m+1,): the train loss at
    each step; position (m+1,): <theta_t - theta_start, v> with v the unit top eigenvector
    of the Hessian at theta_start (its sign is arbitrary); sharpness: S(theta_start);
    threshold: the method's own threshold at the continuation's step size.
    """

    step: np.ndarray
    loss: np.ndarray
    position: np.ndarray
    sharpness: float
    threshold: float

    def displacement(self) -> np.ndarray:
        """<theta_{t+1} - theta_t, v>, shape (m,)."""
        return np.diff(self.position)

    def flip_fraction(self) -> float:
        """Fraction of consecutive steps whose displacements along v have opposite signs."""
        d = np.sign(self.displacement())
        return float(np.mean(d[1:] * d[:-1] < 0)) if d.size > 1 else float("nan")


def top_direction_trace(run: runs.Run, steps: int = 40, *, device="cpu") -> TopDirectionTrace:
    """Continue ``run`` for ``steps`` steps from its final parameters, with its optimiser
    at its final step size, recording the position of theta along the Hessian's top
    eigenvector at the start (``hessian.sharpness``, tol 1e-4). Momentum methods start
    with an empty buffer (the run keeps only its parameters), so their first steps are a
    transient."""
    steps = validate.positive_int("steps", steps)
    if not isinstance(run, runs.Run):
        raise ValueError(f"run must be an eosteach.runs.Run, got {type(run).__name__}")

    cfg = run.config
    if cfg.opt not in ("gd", "heavy_ball", "nesterov"):
        raise ValueError(f"top_direction_trace needs a gd, heavy_ball or nesterov run, got opt={cfg.opt!r}")
    net = run.model(device)
    setup = runs.build(cfg, device=next(net.parameters()).device)  # the data and loss exactly as the run had them
    loss_fn = setup.loss_fn
    x, y = setup.dataset.x_train, setup.dataset.y_train
    res = hessian.sharpness(net, loss_fn, x, y, tol=1e-4, max_products=200)
    v = res.eigenvectors[:, 0]
    params = [p for p in net.parameters() if p.requires_grad]
    lr = float(run.metrics["lr"][-1]) if len(run.metrics.get("lr", [])) else cfg.lr
    opt = optim.make_optimizer(cfg.opt, params, lr, momentum=cfg.momentum)
    start = hessian.flat_params(net).detach().clone()
    position, loss_values = [], []
    for _ in range(steps + 1):
        with torch.no_grad():
            position.append(float((hessian.flat_params(net) - start) @ v))
        loss = loss_fn(net(x), y)
        loss_values.append(float(loss.detach()))
        grads = torch.autograd.grad(loss, params)
        opt.step(grads)
    first = int(run.metrics["step"][-1]) + 1 if len(run.metrics.get("step", [])) else 0
    return TopDirectionTrace(step=np.arange(first, first + steps + 1), loss=np.array(loss_values),
                             position=np.array(position), sharpness=res.top, threshold=float(opt.threshold()))


def run_scrubber(run: runs.Run, trace: TopDirectionTrace | None = None):
    """Scrub a finished run with a step slider.

    Panels: the train loss (log scale), the sharpness with the method's threshold (and 0.9x
    of it), each with a cursor at the chosen step; and, when ``trace`` is given (see
    ``top_direction_trace``), the position along v_max over the continuation, with the
    steps after the run's end reachable by the slider. Returns an ``ipywidgets.VBox`` with
    ``.controls`` (step), ``.view``, ``.update()`` and ``.message``.
    """
    if not isinstance(run, runs.Run):
        raise ValueError(f"run must be an eosteach.runs.Run, got {type(run).__name__}")
    m = run.metrics
    steps, losses = np.asarray(m["step"]), _masked(m["loss"])
    if steps.size == 0:
        raise ValueError("run has no recorded steps")
    eig_steps, sharp, thr = np.asarray(m["eig_step"]), np.asarray(m["sharpness"]), np.asarray(m["threshold"])
    last = int(steps[-1]) if trace is None else int(trace.step[-1])
    color = COLORS.get(run.config.opt, COLORS["gd"])
    controls = {"step": widgets.IntSlider(value=int(steps[-1]), min=0, max=last, step=1, description="step",
                                          continuous_update=False, layout=widgets.Layout(width="60%"))}
    message = widgets.HTML()
    n_panels = 3 if trace is not None else 2
    view = FigureView(1, n_panels, figsize=(4.3 * n_panels, 4.0))
    ax_loss, ax_s = view.axes[:2]
    ax_loss.semilogy(steps, losses, color=color, linewidth=1.0, label="run")
    if trace is not None:
        ax_loss.semilogy(trace.step, _masked(trace.loss), color="0.45", linewidth=1.0, label="continuation")
        ax_loss.legend(loc="upper right")
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("train loss")
    ax_loss.set_title("loss")
    ax_s.plot(eig_steps, sharp, "-o", ms=3, color=color, label=r"sharpness $S$")
    # GD's threshold is 2/eta, as every other figure names it; momentum's has its own formula.
    name = r"$2/\eta$" if run.config.opt == "gd" else "threshold"
    ax_s.plot(eig_steps, thr, "--", color=COLORS["threshold"], label=name)
    ax_s.plot(eig_steps, 0.9 * thr, ":", color=COLORS["threshold"], label=rf"$0.9\,\times$ {name}")
    finite = np.concatenate([sharp[np.isfinite(sharp)], thr[np.isfinite(thr)]])
    ax_s.set_ylim(0, (finite.max() if finite.size else 1.0) * 1.15)
    ax_s.set_xlabel("step")
    ax_s.set_ylabel(r"$\lambda_{\max}(H)$")
    ax_s.set_title("sharpness")
    ax_s.legend(loc="lower right")
    cursors = [ax.axvline(int(steps[-1]), color="0.2", linewidth=1) for ax in (ax_loss, ax_s)]
    dot = None
    if trace is not None:
        ax_p = view.axes[2]
        ax_p.plot(trace.step, trace.position, "-o", ms=3, color=color)
        ax_p.axhline(0.0, color="0.6", linewidth=0.8)
        ax_p.set_xlabel("step")
        ax_p.set_ylabel(r"$\langle\theta_t-\theta_{\rm start}, v_{\max}\rangle$")
        ax_p.set_title(r"position along $v_{\max}$")
        (dot,) = ax_p.plot([trace.step[0]], [trace.position[0]], "o", ms=10, color="black", mfc="none", mew=2)
    box = widgets.VBox([widgets.HBox([controls["step"], message]), view.image])

    def update(*_):
        t = controls["step"].value
        for c in cursors:
            c.set_xdata([t, t])
        parts = [f"step {t}"]
        if t <= steps[-1]:
            i = int(np.searchsorted(steps, t))
            parts.append(f"loss {m['loss'][min(i, len(steps) - 1)]:.4g}")
        else:
            parts.append(f"loss {trace.loss[t - trace.step[0]]:.4g} (continuation)")
        if eig_steps.size:
            j = max(int(np.searchsorted(eig_steps, t, side="right")) - 1, 0)
            parts.append(f"S {sharp[j]:.4g} at step {eig_steps[j]} = {sharp[j] / thr[j]:.2f} x threshold")
        if dot is not None:
            k = int(np.clip(t - trace.step[0], 0, len(trace.step) - 1))
            dot.set_data([trace.step[k]], [trace.position[k]])
            if t >= trace.step[0]:
                parts.append(f"position along v_max {trace.position[k]:+.3g}")
        message.value = "; ".join(parts)
        view.refresh()

    controls["step"].observe(update, names="value")
    update()
    box.controls, box.view, box.update, box.message = controls, view, update, message
    return static_fallback(box, view)


# --------------------------------------------------------------------------- paper scale


def estimate_seconds(config: runs.RunConfig, *, measure_steps: int = 3) -> dict:
    """Time ``measure_steps`` full-batch GD steps and one cold sharpness estimate (20
    products) of ``config``'s network and data on ``config.device``, and extrapolate to the
    whole run: steps x (seconds per step) + (steps / eig_every) x (seconds per estimate).
    Returns per_step, per_eig and total (seconds). Momentum and RK4 flow steps cost about
    the same as a GD step (flow: 4 gradients)."""
    measure_steps = validate.positive_int("measure_steps", measure_steps)
    setup = runs.build(config)
    net, ds, loss_fn = setup.net, setup.dataset, setup.loss_fn
    params = list(net.parameters())
    start = time.perf_counter()
    for _ in range(measure_steps):
        grads = torch.autograd.grad(loss_fn(net(ds.x_train), ds.y_train), params)
        with torch.no_grad():
            torch._foreach_add_(params, grads, alpha=-config.lr)
    per_step = (time.perf_counter() - start) / measure_steps * (4 if config.opt == "flow" else 1)
    start = time.perf_counter()
    hessian.sharpness(net, loss_fn, ds.x_train, ds.y_train, max_products=20)
    per_eig = time.perf_counter() - start
    n_eig = config.steps / config.eig_every if config.eig_every else 0
    return {"per_step": per_step, "per_eig": per_eig, "total": config.steps * per_step + n_eig * per_eig}


def paper_scale(config: runs.RunConfig, *, progress: bool = True):
    """With CUDA: ``runs.cached_run(config)`` on the GPU, returned. Without: print how long
    ``config`` would take on this CPU (``estimate_seconds``) and return None, so that a
    lesson falls back on the shipped runs (or the student re-trains with ``runs.cached_run``)."""
    if not isinstance(config, runs.RunConfig):
        raise ValueError(f"config must be a RunConfig, got {type(config).__name__}")
    if torch.cuda.is_available():
        return runs.cached_run(runs.RunConfig.from_dict({**config.to_dict(), "device": "cuda"}), progress=progress)
    est = estimate_seconds(runs.RunConfig.from_dict({**config.to_dict(), "device": "cpu"}))
    print(f"No CUDA here. On this CPU, {config.label()} for {config.steps} steps would take about "
          f"{est['total'] / 3600:.1f} hours ({est['per_step'] * 1e3:.0f} ms per step, {est['per_eig']:.1f} s per "
          "cold sharpness estimate). The shipped runs of Figure 1 (eosteach.reference) are such runs, made on a "
          "CPU; runs.cached_run(config) re-trains this one here.")
    return None
