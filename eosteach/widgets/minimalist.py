"""The minimalist model between its two regimes, in a widget (lesson 7).

The model of Yoo, Song & Yun (ICML 2025), f(x) = (x^T u) v_1 ... v_{D-1} with the loss
L = (1/2N) ||X u p - y||^2 (see ``eosteach.minimalist``), is trained by GD from a small
balanced start. The step size is set relative to S*, the sharpness of the balanced
interpolating minimum that gradient flow would reach:

    eta = 2 / (ratio x S*),   ratio = (2/eta) / S*   (the "edge" slider).

Each redraw runs GD until the loss is below ``LOSS_GOAL``, until it diverges, or for
``STEP_BUDGET`` steps. On the lesson's CIFAR-10 subsets (N = 50, 100, 200) that budget is
enough for every setting of the controls (measured: the slowest, N = 200, D = 4 at the
slider's top, converges after 61,355 steps): ratio > 1, GD converges to the balanced
minimum (its sharpness rises to S* and ends there); ratio < 1, the sharpness rises to
2/eta instead and GD converges to a flatter, unbalanced minimum whose sharpness is 2/eta
(the edge of stability); at the bottom of the slider (ratio <= 0.4) the smaller subsets
either diverge or collapse onto p = v_1 ... v_{D-1} = 0, where every prediction is 0 and
the gradient vanishes. The loss panel's title names the outcome.
"""

from __future__ import annotations

import ipywidgets as widgets
import numpy as np

from .. import minimalist as mm
from .. import validate
from ..plotting import COLORS, threshold_line
from .base import FigureView, static_fallback

#: The loss panel is clipped to this range, so that a diverging run stays on a readable axis.
LOSS_FLOOR, LOSS_CEILING = 1e-12, 1e6
#: Sharpness evaluations per run (exact Hessians), spread over the steps the run takes.
N_EIGS = 75
#: A run stops once its loss is below this ("converged").
LOSS_GOAL = 1e-8
#: The most steps a redraw runs: enough for every control setting on the lesson's subsets to
#: converge when (2/eta)/S* > 1 (the slowest, N = 200, D = 4, (2/eta)/S* = 10^0.5, needs 61,355).
STEP_BUDGET = 80_000
#: A run that ends with every prediction below this fraction of max |y| has collapsed onto p = 0.
COLLAPSED = 1e-6


def _checked(datasets) -> dict:
    """``datasets`` as {N: (Z (N, m) float64, y (N,) float64)}, or a ValueError naming the entry."""
    if not isinstance(datasets, dict) or not datasets:
        shown = "an empty dict" if isinstance(datasets, dict) else f"a {type(datasets).__name__}"
        raise ValueError(f"datasets must be a non-empty dict {{N: (Z, y)}}, got {shown}")
    checked = {}
    for n, pair in datasets.items():
        n = validate.positive_int("datasets key N", n)
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError(f"datasets[{n}] must be a pair (Z, y), got {type(pair).__name__}")
        try:
            Z, y = mm._as_data(*pair)  # the model's own checks: finite, Z 2-d, y of matching length
        except ValueError as error:
            raise ValueError(f"datasets[{n}]: {error}") from None
        if Z.shape[0] != n:
            raise ValueError(f"datasets[{n}] must hold N = {n} examples (the key is the dropdown's N), "
                             f"got Z with {Z.shape[0]} rows")
        if not np.any(y) or not np.any(Z):
            raise ValueError(f"datasets[{n}]: Z and y must not be all zeros (the only balanced point is the origin)")
        checked[n] = (Z, y)
    return checked


def _run(Z, y, D, eta, steps):
    """GD from ``minimalist.init(Z, D, scale=0.05, seed=0)`` until ``LOSS_GOAL``, divergence or
    ``steps``, with about ``N_EIGS`` sharpness evaluations over the steps it actually takes: a
    run that stops early is rerun (GD is deterministic: the same trajectory) with its
    evaluations spread over its own length."""
    u0, v0 = mm.init(Z, D, scale=0.05, seed=0)
    r = mm.gd(Z, y, u0, v0, eta=eta, steps=steps, eig_every=max(1, steps // N_EIGS), loss_goal=LOSS_GOAL)
    taken = len(r.loss) - 1
    if taken < steps and r.eig_step.size < N_EIGS // 3:
        r = mm.gd(Z, y, u0, v0, eta=eta, steps=taken, eig_every=max(1, taken // N_EIGS), loss_goal=LOSS_GOAL)
    return r


def outcome(r, Z, y, steps: int) -> str:
    """How a run ended, in words: "converged at step k", "diverged at step k", "collapsed onto
    p = 0 (every prediction 0)" or "still training after <steps> steps"."""
    taken = len(r.loss) - 1
    if r.status == "diverged":
        return f"diverged at step {taken}"
    if r.status == "goal_reached":
        return f"converged at step {taken}"
    if np.max(np.abs(mm.predict(Z, r.u, r.v))) <= COLLAPSED * np.max(np.abs(y)):
        return "collapsed onto p = 0 (every prediction 0)"
    return f"still training after {steps} steps"


def minimalist_demo(datasets, *, steps: int = STEP_BUDGET) -> widgets.VBox:
    """GD on the minimalist model with a choice of data set, depth and step size.

    ``datasets`` maps N to (Z, y): Z (N, m) the data (row-space coordinates of X (N, d),
    as ``eosteach.minimalist.row_space`` returns them: the same GD trajectory and Hessian
    spectrum at m <= N instead of d coordinates), y (N,) scalar targets (for example +-1).
    Each redraw runs full-batch GD (float64, ``minimalist.gd``) from
    ``minimalist.init(Z, D, scale=0.05, seed=0)`` until the loss is below ``LOSS_GOAL`` (1e-8),
    until it diverges, or for ``steps`` steps (default ``STEP_BUDGET``, 80,000: enough on the
    lesson's subsets for every setting above the edge to converge), with the exact sharpness
    measured at about 75 of the steps it takes.

    Controls: "n" (Dropdown over the keys of ``datasets``), "depth" (D from 2 to 4), "edge"
    ((2/eta)/S* from 10^-0.5 to 10^0.5, log scale). Left panel: the training loss (log
    scale, clipped to [1e-12, 1e6]; a divergence is marked), titled with ``outcome``. Right
    panel: the sharpness S(theta) against the step, with 2/eta (dashed) and S* (dotted).

    Returns an ``ipywidgets.VBox`` with ``.controls`` (name -> widget), ``.view`` (the
    ``FigureView``), ``.redraw()`` and ``.result`` (the last ``minimalist.MinimalistRun``).

    Source: Yoo, Song & Yun, "Understanding sharpness dynamics in NN training with a
    minimalist example: the effects of dataset difficulty, depth, stochasticity, and more",
    ICML 2025.
    """
    data_of = _checked(datasets)
    steps = validate.positive_int("steps", steps)
    sizes = list(data_of)
    controls = {
        "n": widgets.Dropdown(options=sizes, value=sizes[0], description="N"),
        "depth": widgets.IntSlider(value=2, min=2, max=4, description="depth D", continuous_update=False),
        "edge": widgets.FloatLogSlider(value=2.0, base=10, min=-0.5, max=0.5, step=0.05,
                                       description="(2/η) / S*", continuous_update=False, readout_format=".2f",
                                       style={"description_width": "initial"}),
    }
    view = FigureView(1, 2, figsize=(11, 3.6))
    box = widgets.VBox([widgets.HBox(list(controls.values())), view.image])

    def redraw(*_):
        n, D = controls["n"].value, controls["depth"].value
        Z, y = data_of[n]
        S_star = mm.balanced_sharpness(Z, y, D)
        eta = 2 / (controls["edge"].value * S_star)
        r = _run(Z, y, D, eta, steps)
        box.result = r
        ax_l, ax_s = view.axes
        ax_l.clear()
        ax_s.clear()

        # A diverging run ends on a loss above 1e12 or not finite: show it at the ceiling.
        loss = np.clip(np.nan_to_num(r.loss, nan=LOSS_CEILING, posinf=LOSS_CEILING), LOSS_FLOOR, LOSS_CEILING)
        ax_l.semilogy(r.step, loss, color=COLORS["gd"], lw=0.8)
        if r.status == "diverged":
            ax_l.plot(r.step[-1], loss[-1], "x", ms=10, mew=2, color=COLORS["heavy_ball"], label="diverged")
            ax_l.legend(fontsize=10, loc="lower right")
        # The axis follows the curve (a converged run would fill a third of a fixed 1e-12..1e6
        # axis); a diverged one keeps the ceiling in view.
        top = LOSS_CEILING * 10 if r.status == "diverged" else 3 * float(loss.max())
        ax_l.set(xlabel="step", ylabel="training loss", ylim=(max(LOSS_FLOOR / 10, 0.3 * float(loss.min())), top))
        ax_l.set_title(f"N = {n}, D = {D}: {outcome(r, Z, y, steps)}")

        ax_s.plot(r.eig_step, r.sharpness, color=COLORS["gd"], label="sharpness")
        threshold_line(ax_s, 2 / eta, r"$2/\eta$")
        ax_s.axhline(S_star, color=COLORS["heavy_ball"], ls=":", label=r"$S^*$")
        ax_s.set(xlabel="step", ylabel="sharpness", ylim=(0, 1.3 * max(S_star, 2 / eta)))
        ax_s.legend(fontsize=10, loc="best")
        ax_s.set_title(f"S* = {S_star:.4g}, 2/η = {2 / eta:.4g}")
        view.refresh()

    for control in controls.values():
        control.observe(redraw, names="value")
    box.controls, box.view, box.redraw = controls, view, redraw
    redraw()
    return static_fallback(box, view)  # a saved notebook shows the figure without a widget front end
