"""The demos of lessons 1 and 2: gradient descent and momentum on a two-dimensional quadratic.

* ``descent_demo()`` (lesson 1): GD on L = 1/2 theta^T A theta with eigenvalues lambda_1, lambda_2
  of your choice. Contours and path, loss per step (log scale), the descent-lemma bound
  against the real change, and the factor |1 - eta lambda_i| by which each eigen-direction
  is multiplied per step, with the 2/lambda marks.
* ``momentum_demo()`` (lesson 2): GD / heavy-ball / Nesterov / frozen-preconditioner Adam.
  The stability region in the (eta lambda, b) plane (colour: spectral radius of the
  iteration, blue below 1, red above; black line: radius 1, where lesson 2 finds the closed-form
  threshold by bisection)
  with the current (eta lambda_i, b) points, the path, and the loss.

Each builder returns an ``ipywidgets.VBox`` with ``.controls`` (name -> widget), ``.view``
(the ``FigureView``), ``.update()``, ``.set(**values)`` (several controls, one redraw) and
``.result`` (the last ``Trajectory``), so that tests can drive it without a browser.
"""

from __future__ import annotations

import ipywidgets as widgets
import numpy as np
from matplotlib import colormaps
from matplotlib.colors import ListedColormap, TwoSlopeNorm
from matplotlib.transforms import blended_transform_factory

from .. import thresholds, validate
from ..plotting import COLORS
from ..quadratic import METHODS, Quadratic, run, spectral_radius
from .base import FigureView, static_fallback

#: The eigenvectors are turned by this angle so that the path does not just run along the axes.
ANGLE = np.deg2rad(30.0)
METHOD_LABELS = {"gd": "GD", "heavy_ball": "heavy-ball", "nesterov": "Nesterov", "adam": "Adam (frozen P)"}


def rotated_quadratic(lam1: float, lam2: float, angle: float = ANGLE) -> Quadratic:
    """1/2 theta^T A theta with eigenvalues (lam1, lam2) and eigenvectors turned by ``angle``."""
    c, s = np.cos(angle), np.sin(angle)
    R = np.array([[c, -s], [s, c]])
    return Quadratic((R * np.array([lam1, lam2])) @ R.T)


def _slider(value, lo, hi, step, description, fmt=".3f"):
    return widgets.FloatSlider(value=value, min=lo, max=hi, step=step, description=description,
                               readout_format=fmt, continuous_update=False,
                               style={"description_width": "initial"})


TOP_LABEL = "top eigenvector (largest eigenvalue)"
EQUAL_LABEL = r"$\lambda_1 = \lambda_2$: every direction is an eigenvector"


def _contour_panel(ax, quadratic: Quadratic, path: np.ndarray, radius: float, color: str, title: str,
                   direction=None, direction_label: str = TOP_LABEL):
    """Level sets of L, the direction along which the run oscillates, and the path (NaN after
    divergence: a break). ``direction`` defaults to A's top eigenvector; when A's two eigenvalues
    are equal every direction is one, so no line is drawn (the legend says why).

    The legend sits below the axes, where it can never cover the path."""
    grid = np.linspace(-radius, radius, 121)
    X, Y = np.meshgrid(grid, grid)
    Z = quadratic.loss(np.stack([X, Y], axis=-1))
    levels = np.quantile(Z, np.linspace(0.0, 1.0, 14)[1:-1] ** 2)
    ax.contour(X, Y, Z, levels=np.unique(levels), colors="0.7", linewidths=0.8)
    lam = quadratic.eigenvalues
    if direction is None and np.isclose(lam[0], lam[-1], rtol=1e-9, atol=0.0):
        ax.plot([], [], " ", label=EQUAL_LABEL)
    else:
        # A's eigenvector of the LARGEST eigenvalue, whichever slider holds it (or the one given)
        v1 = quadratic.eigenvectors[:, 0] if direction is None else np.asarray(direction, float)
        v1 = v1 / np.linalg.norm(v1)
        ax.plot([-2 * radius * v1[0], 2 * radius * v1[0]], [-2 * radius * v1[1], 2 * radius * v1[1]],
                color="black", linestyle=":", linewidth=2.2, alpha=0.8, zorder=4,
                label=direction_label)  # above the path, thick enough to show through it
    ax.plot(path[:, 0], path[:, 1], "-o", color=color, markersize=3, linewidth=1.2, label="path")
    ax.plot(path[0, 0], path[0, 1], "s", color="black", markersize=7, label=r"start $\theta^{(0)}$")
    ax.plot([0], [0], "*", color="gold", markeredgecolor="black", markersize=12, label="minimum")
    ax.set_xlim(-radius, radius)
    ax.set_ylim(-radius, radius)
    ax.set_aspect("equal")
    ax.set_xlabel(r"$\theta_1$")
    ax.set_ylabel(r"$\theta_2$")
    ax.set_title(title)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, fontsize=9)


def _loss_panel(ax, loss: np.ndarray, diverged_at: int, color: str, label: str):
    """Loss per step on a log scale; a diverged run ends with a red note instead of overflow."""
    steps = np.arange(loss.size)
    finite = np.isfinite(loss)
    if loss[0] <= 0:
        ax.text(0.5, 0.5, "the start point is the minimum:\nL = 0 and nothing moves",
                ha="center", va="center", transform=ax.transAxes, fontsize=12)
        ax.set_yscale("log")
        ax.set_ylim(1e-3, 1.0)
    else:
        floor = loss[0] * 1e-16  # below double precision's reach: shown as "converged"
        shown = np.where(finite, np.maximum(loss, floor), np.nan)
        ax.plot(steps, shown, "-", color=color, linewidth=2, label=label)
        ax.set_yscale("log")
        top = np.nanmax(shown)
        ax.set_ylim(max(floor, np.nanmin(shown) / 3), top * 10)
    if diverged_at >= 0:
        ax.axvline(diverged_at, color="red", linestyle="--", linewidth=1)
        # The note sits beside the dashed line, on the side with more room, never across it.
        right = diverged_at < 0.5 * (loss.size - 1)
        ax.text(diverged_at + (1 if right else -1) * 0.02 * (loss.size - 1), 0.92,
                f"diverged: |theta| blew up\nat step {diverged_at}", color="red", ha="left" if right else "right",
                va="top", transform=blended_transform_factory(ax.transData, ax.transAxes), fontsize=11)
    ax.set_xlim(0, loss.size - 1)
    ax.set_xlabel("step k")
    ax.set_ylabel(r"loss $L(\theta^{(k)})$")


def _layout(controls, rows, view):
    """Rows of controls, then a status line (HTML), then the figure; returns (box, status)."""
    status = widgets.HTML()
    rows = [widgets.HBox([controls[name] for name in row]) for row in rows]
    return widgets.VBox(rows + [status, view.image]), status


def _finish(box, controls, view, update, held):
    """Wire the controls and expose what tests and lessons drive: controls, view, update, set."""

    def set_values(**values):
        """Move several controls at once with a single redraw."""
        held.append(True)
        try:
            for name, value in values.items():
                controls[name].value = value
        finally:
            held.pop()
        update()

    for w in controls.values():
        w.observe(update, names="value")
    box.controls, box.view, box.update, box.set = controls, view, update, set_values
    update()
    static_fallback(box, view)  # a saved notebook shows the figure where no widget front end runs


# -- lesson 1 ---------------------------------------------------------------------------
def eta_max(lam1: float, lam2: float) -> float:
    """The eta slider's maximum: 2.5/lambda_max (at least 0.5), a multiple of the slider's step 0.005.

    So the student can always cross the edge 2/lambda_max, and 1/lambda and 2/lambda when the two
    eigenvalues are equal (Think! 2), for every eigenvalue the sliders allow.
    """
    return max(0.5, float(np.ceil(2.5 / max(lam1, lam2) / 0.005)) * 0.005)


def descent_demo(eta: float = 0.15, lam1: float = 10.0, lam2: float = 1.0, start=(2.0, 2.5),
                 steps: int = 30) -> widgets.VBox:
    """GD on a 2-D quadratic with sliders for eta, the two eigenvalues, the start and the steps."""
    validate.positive("eta", eta)
    validate.positive("lam1", lam1)
    validate.positive("lam2", lam2)
    steps = validate.positive_int("steps", steps)
    x0, y0 = (validate.finite("start", v) for v in start)
    controls = {
        "eta": _slider(eta, 0.005, max(eta, eta_max(lam1, lam2)), 0.005, r"step size \(\eta\)"),
        "lam1": _slider(lam1, 0.5, 20.0, 0.5, r"\(\lambda_1\)", ".1f"),
        "lam2": _slider(lam2, 0.1, 20.0, 0.1, r"\(\lambda_2\)", ".1f"),
        "x0": _slider(x0, -3.0, 3.0, 0.1, r"start \(\theta_1\)", ".1f"),
        "y0": _slider(y0, -3.0, 3.0, 0.1, r"start \(\theta_2\)", ".1f"),
        "steps": widgets.IntSlider(value=steps, min=2, max=100, description="steps", continuous_update=False),
    }
    view = FigureView(2, 2, figsize=(11, 9.5))
    box, status = _layout(controls, [("eta", "steps"), ("lam1", "lam2"), ("x0", "y0")], view)

    held = []

    def update(*_):
        if held:
            return
        l1, l2 = controls["lam1"].value, controls["lam2"].value
        # The eta slider always reaches past the edge 2/lambda_max (to 2.5/lambda_max, at least 0.5),
        # whatever the eigenvalue sliders say; moving its maximum must not trigger a second redraw.
        held.append(True)
        try:
            controls["eta"].max = max(eta, eta_max(l1, l2))  # never below the eta asked for
        finally:
            held.pop()
        eta_v = controls["eta"].value
        quad = rotated_quadratic(l1, l2)
        S = quad.sharpness
        start_v = np.array([controls["x0"].value, controls["y0"].value])
        traj = run(quad, "gd", eta_v, start_v, steps=controls["steps"].value)
        box.result = traj
        for ax in view.axes:
            ax.clear()
        ax_path, ax_loss, ax_lemma, ax_factor = view.axes
        radius = 1.3 * max(1.0, float(np.max(np.abs(start_v))))
        stable = eta_v < 2.0 / S
        verdict = "converges" if stable else ("diverges" if eta_v > 2.0 / S else "sits on the edge")
        _contour_panel(ax_path, quad, traj.theta, radius, COLORS["gd"], f"GD path: {verdict}")
        _loss_panel(ax_loss, traj.loss, int(traj.diverged_at), COLORS["gd"], "GD")
        ax_loss.set_title(rf"loss per step ($\eta$ = {eta_v:.3f}, 2/S = {2 / S:.3f})")

        # Descent lemma per unit squared gradient: the real change lies below -eta/2 (2 - eta ell), with
        # ell = lambda_max(A), the upper bound on the Hessian's eigenvalues that lesson 1 calls ell.
        theta = traj.theta[:-1]
        g = quad.grad(theta)
        gg = np.sum(g * g, axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            change = np.diff(traj.loss) / gg
        bound = -eta_v / 2 * (2 - eta_v * S)
        k = np.arange(change.size)
        ax_lemma.axhline(0.0, color="0.5", linewidth=0.8)
        ax_lemma.plot(k, change, "o-", color=COLORS["gd"], markersize=3,
                      label=r"real change $\Delta L_k \,/\, \|\nabla L(\theta^{(k)})\|^2$")
        ax_lemma.axhline(bound, color=COLORS["threshold"], linestyle="--", linewidth=1.5,
                         label=r"descent-lemma bound $-\frac{\eta}{2}(2-\eta\ell)$")
        ax_lemma.set_xlim(0, max(1, change.size - 1))
        finite = change[np.isfinite(change)]
        lo = min(bound, 0.0, *(finite.min(),) if finite.size else ())
        hi = max(bound, 0.0, *(finite.max(),) if finite.size else ())
        pad = 0.15 * max(hi - lo, 1e-3)
        ax_lemma.set_ylim(lo - pad, hi + pad)
        ax_lemma.set_xlabel("step k")
        ax_lemma.set_ylabel(r"$\Delta L_k \,/\, \|\nabla L(\theta^{(k)})\|^2$")
        ax_lemma.set_title("change of L per step vs the bound" + ("" if bound < 0 else ": no promise"))
        ax_lemma.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, fontsize=9)

        # Each eigen-direction is multiplied by (1 - eta lambda_i) per step.
        etas = np.linspace(0.0, max(controls["eta"].max, 1.2 * eta_v), 300)
        equal = np.isclose(l1, l2, rtol=1e-9, atol=0.0)
        marks = ((l1, r"$\lambda_1$", "-", 0.12), (l2, r"$\lambda_2$", "--", 0.42))
        for lam_i, name, style, y_text in marks[:1] if equal else marks:
            label = r"$|1-\eta\lambda_1| = |1-\eta\lambda_2|$" if equal else rf"$|1-\eta${name}$|$"
            ax_factor.plot(etas, np.abs(1 - etas * lam_i), style, color=COLORS["gd"], label=label)
            if 2 / lam_i <= etas[-1]:
                ax_factor.axvline(2 / lam_i, color="0.4", linestyle=style, linewidth=1)
                # The label goes on the side of the mark away from the current-eta line; the two
                # labels sit at different heights, so close marks never print one on the other.
                left = eta_v >= 2 / lam_i
                words = r"2/$\lambda_1$ = 2/$\lambda_2$" if equal else f"2/{name}"
                ax_factor.text(2 / lam_i + (-1 if left else 1) * 0.01 * etas[-1], y_text, words,
                               ha="right" if left else "left", fontsize=11)
        ax_factor.axhline(1.0, color="red", linewidth=1, label="factor 1: above it, a direction grows")
        ax_factor.axvline(eta_v, color="black", linewidth=2, label=r"current $\eta$")
        ax_factor.set_ylim(0, 3)
        ax_factor.set_xlim(0, etas[-1])
        ax_factor.set_xlabel(r"step size $\eta$")
        ax_factor.set_ylabel("factor per step")
        ax_factor.set_title("growth factor of each eigen-direction")
        ax_factor.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, fontsize=9)

        if stable:
            verdict_html = "<span style='color:green'>below 2/S: the loss falls at every step.</span>"
        elif eta_v > 2.0 / S:
            verdict_html = ("<span style='color:red'>above 2/S: the component along the top eigenvector grows by "
                            f"|1 - eta S| = {abs(1 - eta_v * S):.2f} per step, flipping sign each step.</span>")
        else:
            verdict_html = ("<span style='color:orange'>exactly 2/S: the component along the top eigenvector flips sign "
                            "every step and keeps its size.</span>")
        status.value = f"<b>S = lambda_max = {S:.2f}, 2/S = {2 / S:.4f}.</b> eta = {eta_v:.3f} is " + verdict_html
        view.refresh()

    _finish(box, controls, view, update, held)
    return box


# -- lesson 2 ---------------------------------------------------------------------------
#: Colours of the spectral radius: blue below 1 (stable: dark = fast, light blue just below 1), red above
#: (diverges: light just above 1, dark = fast). The two ramps meet at rho = 1 with a jump in hue, so a
#: slowly converging region (rho = sqrt(b) near 1 for heavy-ball at large b) still reads as blue.
RADIUS_NORM = TwoSlopeNorm(vmin=0.0, vcenter=1.0, vmax=1.5)
RADIUS_CMAP = ListedColormap(np.vstack([colormaps["Blues_r"](np.linspace(0.0, 0.72, 256)),
                                        colormaps["Reds"](np.linspace(0.3, 1.0, 256))]), name="radius")
REGION_WIDTH = {"gd": 3.0, "heavy_ball": 4.5, "nesterov": 4.5, "adam": 45.0}


def momentum_demo(method: str = "heavy_ball", eta: float = 0.3, b: float = 0.5, lam1: float = 10.0,
                  lam2: float = 1.0, start=(2.0, 2.5), steps: int = 60, methods=METHODS) -> widgets.VBox:
    """One method on a 2-D quadratic: stability region, path and loss, with eta and b sliders.

    ``methods``: the choices the dropdown offers (a lesson that leaves a method to a later
    exercise can hold it back); ``method`` must be one of them.
    For "adam" the frozen preconditioner is P = diag(A) and the points in the region are
    eta times the eigenvalues of P^{-1} A (the preconditioned sharpness, Cohen et al. 2022);
    the path panel then marks P^{-1} A's top eigenvector, the direction along which frozen
    Adam oscillates.
    """
    methods = tuple(methods)
    if not methods:
        raise ValueError("methods must name at least one method")
    for m in methods:
        validate.choice("methods", m, METHODS)
    validate.choice("method", method, methods)
    validate.positive("eta", eta)
    validate.momentum("b", b)
    steps = validate.positive_int("steps", steps)
    quad = rotated_quadratic(validate.positive("lam1", lam1), validate.positive("lam2", lam2))
    start = np.array([validate.finite("start", v) for v in start])
    precond = np.diag(quad.A).copy()
    precond_eigs, precond_vecs = np.linalg.eig(quad.A / precond[:, None])   # P^{-1} A: real spectrum
    order = np.argsort(precond_eigs.real)[::-1]
    precond_eigs, precond_top = precond_eigs.real[order], precond_vecs.real[:, order[0]]
    controls = {
        "method": widgets.Dropdown(options=[(METHOD_LABELS[m], m) for m in methods], value=method,
                                   description="method"),
        "eta": _slider(eta, 0.005, 1.0, 0.005, r"step size \(\eta\)"),
        "b": _slider(b, 0.0, 0.99, 0.01, r"momentum \(b\) (Adam: \(\beta_1\))", ".2f"),
        "steps": widgets.IntSlider(value=steps, min=10, max=300, description="steps", continuous_update=False),
    }
    view = FigureView(1, 3, figsize=(15, 5))
    box, status = _layout(controls, [("method", "steps"), ("eta", "b")], view)
    cache = {}

    def region(method_v, width):
        key = (method_v, round(width, 6))
        if key not in cache:
            cache.clear()
            # From just above h = 0: at h = 0 the radius is exactly 1 (nothing moves), and the contour
            # would draw a spurious line along the left edge.
            hs = np.linspace(1e-6 * width, width, 241)
            bs = np.linspace(0.0, 0.99, 300)   # fine enough that Adam's boundary near b = 1 is smooth
            H, B = np.meshgrid(hs, bs)
            cache[key] = (hs, bs, spectral_radius(method_v, H, B))
        return cache[key]

    held = []

    def update(*_):
        if held:
            return
        method_v, eta_v, b_v = controls["method"].value, controls["eta"].value, controls["b"].value
        lams = precond_eigs if method_v == "adam" else quad.eigenvalues
        h1 = eta_v * lams[0]
        width = max(REGION_WIDTH[method_v], 1.15 * h1)
        hs, bs, rho = region(method_v, width)
        traj = run(quad, method_v, eta_v, start, steps=controls["steps"].value, b=b_v,
                   precond=precond if method_v == "adam" else None)
        box.result = traj
        for ax in view.axes:
            ax.clear()
        ax_region, ax_path, ax_loss = view.axes
        color = COLORS[method_v]

        ax_region.imshow(np.minimum(rho, 1.5), origin="lower", aspect="auto", extent=(0, width, 0, 0.99),
                         cmap=RADIUS_CMAP, norm=RADIUS_NORM)
        # The radius-1 contour IS the closed-form threshold (lesson 2 checks it to round-off), so
        # only one line is drawn; the legend names it through a proxy.
        ax_region.contour(hs, bs, rho, levels=[1.0], colors="black", linewidths=2)
        ax_region.plot([], [], color="black", linewidth=2, label=r"$\rho = 1$: the threshold")
        # clip_on=False: at b = 0 (the bottom edge) the points are drawn whole, not cut in half.
        ax_region.plot([eta_v * lams[1]], [b_v], "o", color="white", markeredgecolor="black", markersize=9,
                       label=r"$(\eta\lambda_2, b)$", clip_on=False, zorder=5)
        ax_region.plot([h1], [b_v], "o", color=color, markeredgecolor="black", markersize=9,
                       label=r"$(\eta\lambda_1, b)$", clip_on=False, zorder=5)
        ax_region.set_xlim(0, width)
        ax_region.set_ylim(0, 0.99)
        ax_region.set_xlabel(r"$\eta\lambda$" + (r" ($\lambda$ of $P^{-1}A$)" if method_v == "adam" else ""))
        ax_region.set_ylabel(r"momentum $b$" if method_v != "adam" else r"$\beta_1$")
        ax_region.set_title("spectral radius: blue < 1 (stable) < red")
        # Below the axes: inside, the legend would cover the boundary where the lesson points.
        ax_region.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=3, fontsize=9)

        # The run's rate is set by the slower of the two eigen-directions: the larger radius.
        radius_now = float(np.max(spectral_radius(method_v, eta_v * np.asarray(lams), b_v)))
        limit = thresholds.threshold(method_v, eta_v, b_v)
        adam = method_v == "adam"
        _contour_panel(ax_path, quad, traj.theta, 1.3 * max(1.0, float(np.max(np.abs(start)))), color,
                       f"{METHOD_LABELS[method_v]} path", direction=precond_top if adam else None,
                       direction_label=r"top eigenvector of $P^{-1}A$" if adam else TOP_LABEL)
        _loss_panel(ax_loss, traj.loss, int(traj.diverged_at), color, METHOD_LABELS[method_v])
        # the larger of the two directions' radii sets the rate: the slower one when both are
        # below 1, the one that blows up when the run diverges
        ax_loss.set_title(f"loss (larger spectral radius: {radius_now:.3f})")
        sharp_name = "preconditioned sharpness S_P" if method_v == "adam" else "sharpness S"
        if np.isclose(lams[0], limit, rtol=1e-9, atol=0.0):
            verdict = ("<span style='color:orange'>exactly on the edge: a root sits at z = -1, so the sharp "
                       "component flips sign every step and keeps its size (bounded, but it never converges)</span>")
        elif lams[0] < limit:
            verdict = "<span style='color:green'>stable: converges</span>"
        else:
            verdict = "<span style='color:red'>unstable: diverges</span>"
        status.value = (f"<b>{METHOD_LABELS[method_v]}</b>, eta = {eta_v:.3f}, b = {b_v:.2f}: "
                        f"{sharp_name} = {lams[0]:.2f}, threshold = {limit:.2f} &rarr; {verdict}")
        view.refresh()

    _finish(box, controls, view, update, held)
    return box
