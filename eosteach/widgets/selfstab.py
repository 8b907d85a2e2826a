"""The self-stabilization map in a widget: move alpha, beta, eta, x0, y0 and watch the
four phases (Damian, Nichani & Lee, 2022) in the phase portrait and in time."""

from __future__ import annotations

import math

import ipywidgets as widgets
import numpy as np
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogFormatter

from .. import selfstab
from ..plotting import COLORS, threshold_line
from .base import FigureView, static_fallback

MAX_STEPS = 10_000


def _steps_for(alpha: float, eta: float, cycles: float) -> int:
    # Enough steps for a few small-cycle periods 2 pi / (eta sqrt(2 alpha)), bounded so a
    # slider drag never stalls the kernel.
    period = 2.0 * math.pi / (eta * math.sqrt(2.0 * alpha))
    return int(min(MAX_STEPS, max(200, cycles * period)))


def _by_phase(ax, a, b, labels):
    # One marker-only line per phase: far faster to render than a 20,000-point scatter.
    for k, color in enumerate(selfstab.PHASE_COLORS):
        mask = labels == k
        ax.plot(a[mask], b[mask], linestyle="none", marker=".", markersize=2.5, color=color)


def selfstab_demo(alpha: float = 1.0, beta: float = 1.0, eta: float = 0.02, x0: float = 0.05,
                  y0: float = -1.0, cycles: float = 5.0):
    """Widget for the map x' = -(1 + eta y) x, y' = y + eta (alpha - beta x^2/2).

    Left: phase portrait (|x| against y = S - 2/eta), the fixed point (delta, 0) and the
    nullcline |x| = delta; middle: x_t (it flips sign every step) and right: y_t, against the step t. Every point is coloured by
    its phase (the sign table of Lesson 5, ``selfstab.label_phases`` with delta). Returns an ``ipywidgets.VBox`` with attributes
    ``controls`` (dict of sliders: alpha, beta, eta, x0, y0), ``view`` (FigureView),
    ``trajectory`` (the last MapTrajectory) and ``message`` (an HTML line with the whole-cycle
    checks, or the divergence notice).
    """
    style = {"description_width": "60px"}
    slider = dict(continuous_update=False, style=style, layout=widgets.Layout(width="320px"))
    controls = {
        "alpha": widgets.FloatLogSlider(value=alpha, base=10, min=-1.5, max=1, step=0.05, description="alpha",
                                        readout_format=".3g", **slider),
        "beta": widgets.FloatLogSlider(value=beta, base=10, min=-1.5, max=1, step=0.05, description="beta",
                                       readout_format=".3g", **slider),
        "eta": widgets.FloatLogSlider(value=eta, base=10, min=-2.5, max=-0.5, step=0.05, description="eta",
                                      readout_format=".3g", **slider),
        "x0": widgets.FloatLogSlider(value=x0, base=10, min=-4, max=0.5, step=0.1, description="x0",
                                     readout_format=".3g", **slider),
        "y0": widgets.FloatSlider(value=y0, min=-3.0, max=3.0, step=0.05, description="y0", **slider),
    }
    view = FigureView(1, 3, figsize=(13, 4.2))
    message = widgets.HTML()
    box = widgets.VBox([widgets.HBox([widgets.VBox(list(controls.values())[:3]),
                                      widgets.VBox(list(controls.values())[3:] + [message])]), view.image])

    def draw(*_):
        p = {k: c.value for k, c in controls.items()}
        steps = _steps_for(p["alpha"], p["eta"], cycles)
        traj = selfstab.iterate_map(p["alpha"], p["beta"], p["eta"], p["x0"], p["y0"], steps, limit=1e6)
        box.trajectory = traj
        delta = traj.delta
        labels = traj.phases() if len(traj.x) >= 2 else np.zeros(len(traj.x), int)
        t = np.arange(len(traj.x))
        ax_p, ax_x, ax_y = view.axes
        for ax in view.axes:
            ax.clear()
        _by_phase(ax_p, np.abs(traj.x), traj.y, labels)
        ax_p.plot([delta], [0.0], marker="*", color="k", markersize=12, linestyle="none")
        ax_p.axvline(delta, color="0.4", linestyle=":", linewidth=1.2)
        ax_p.axhline(0.0, color="0.4", linestyle="--", linewidth=1.2)
        ax_p.set_xscale("log")
        # plain numbers (0.01, 2, 5) on the log axis, also on ranges narrower than a decade
        ax_p.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax_p.xaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(1, 0.4)))
        ax_p.set_xlabel(r"$|x|$  (displacement along $u$)")
        ax_p.set_ylabel(r"$y \approx S - 2/\eta$")
        ax_p.set_title("phase portrait")
        _by_phase(ax_x, t, traj.x, labels)
        ax_x.axhline(delta, color="0.4", linestyle=":", linewidth=1.2)
        ax_x.axhline(-delta, color="0.4", linestyle=":", linewidth=1.2)
        ax_x.set_xlabel("step t")
        ax_x.set_ylabel(r"$x_t$")
        ax_x.set_title("x flips sign every step")
        _by_phase(ax_y, t, traj.y, labels)
        ax_y.axhline(0.0, color="0.4", linestyle="--", linewidth=1.2)
        ax_y.set_xlabel("step t")
        ax_y.set_ylabel(r"$y_t \approx S - 2/\eta$")
        ax_y.set_title("sharpness minus threshold")
        handles = [Line2D([], [], marker="o", linestyle="none", color=c, label=n)
                   for n, c in zip(selfstab.PHASES, selfstab.PHASE_COLORS)]
        handles.append(Line2D([], [], color="0.4", linestyle=":", label=r"$|x| = \delta = \sqrt{2\alpha/\beta}$"))
        view.figure.legend(handles=handles, loc="outside lower center", ncols=5, fontsize=10)
        if traj.diverged:
            message.value = (f"<b style='color:#d62728'>Diverged after {len(traj.x) - 1} steps</b>: "
                             "y fell below -2/eta (or x grew past 1e6), so |1 + eta y| &gt; 1 for good.")
        else:
            try:
                stats = selfstab.cycle_stats(traj)
                first = stats.periods[0] / stats.predicted_period
                message.value = (f"{stats.n_cycles} whole cycle(s): mean x<sup>2</sup> / (2 alpha/beta) = "
                                 f"{stats.mean_x2_ratio:.3f}; first cycle / (2 pi/(eta sqrt(2 alpha))) = "
                                 f"{first:.3f}, last = {stats.periods[-1] / stats.predicted_period:.3f} "
                                 "(the map's orbits spiral outward)")
            except ValueError:
                message.value = "Fewer than one whole cycle yet: no cycle averages."
        view.refresh()

    for c in controls.values():
        c.observe(draw, names="value")
    box.controls = controls
    box.view = view
    box.message = message
    draw()
    return static_fallback(box, view)  # a saved notebook shows the figure without a widget front end


def paths_scrubber(steps, paths: dict, threshold: float, colors=None):
    """Scrub GD, the constrained trajectory and the central flow step by step.

    ``steps``: (T,) step numbers; ``paths``: name -> dict with arrays ``loss`` (T,) and
    ``sharpness`` (T,), one entry per path (for instance "GD", "constrained trajectory",
    "central flow"); ``threshold``: 2/eta. A step slider draws every path up to the chosen
    step, with a marker at that step, on the loss (left) and on the sharpness against the
    threshold (right); the text line reports each path's loss and S/(2/eta) there.
    Returns an ``ipywidgets.VBox`` with ``controls`` ({"step": IntSlider}), ``view`` and
    ``message`` (cf. Damian, Nichani & Lee 2022; Cohen, Damian et al. 2024). ``colors``: one
    matplotlib colour per path, in order (default: GD's and the flow's course-wide colours,
    the second path in orange).
    """
    steps = np.asarray(steps)
    if steps.ndim != 1 or len(steps) < 2:
        raise ValueError(f"steps must be a 1-D array of at least 2 step numbers, got shape {steps.shape}")
    if not isinstance(paths, dict) or not paths:
        raise ValueError("paths must be a non-empty dict: name -> {'loss': (T,), 'sharpness': (T,)}")
    for name, path in paths.items():
        for key in ("loss", "sharpness"):
            if key not in path or np.shape(path[key]) != steps.shape:
                raise ValueError(f"paths[{name!r}][{key!r}] must be an array of shape {steps.shape}")
    threshold = float(threshold)
    # GD and the flow in their course-wide colours; the constrained trajectory in orange.
    if colors is None:
        colors = [COLORS["gd"], "#ff7f0e", COLORS["flow"], COLORS["nesterov"], COLORS["adam"]]
    elif len(colors) < len(paths):
        raise ValueError(f"colors must hold one colour per path ({len(paths)}), got {len(colors)}")

    view = FigureView(1, 2, figsize=(11, 3.6))
    ax_loss, ax_s = view.axes
    lines, dots = {}, {}
    for (name, path), color in zip(paths.items(), colors):
        lines[name, "loss"], = ax_loss.plot([], [], color=color, lw=1.5, label=name)
        lines[name, "sharpness"], = ax_s.plot([], [], color=color, lw=1.5, label=name)
        dots[name, "loss"], = ax_loss.plot([], [], "o", color=color, ms=6)
        dots[name, "sharpness"], = ax_s.plot([], [], "o", color=color, ms=6)
    all_loss = np.concatenate([np.asarray(p["loss"], float) for p in paths.values()])
    all_s = np.concatenate([np.asarray(p["sharpness"], float) for p in paths.values()] + [[threshold]])
    ax_loss.set(xlim=(steps[0], steps[-1]), ylim=(np.nanmin(all_loss) * 0.98, np.nanmax(all_loss) * 1.02),
                xlabel="step", ylabel="training loss", title="loss")
    threshold_line(ax_s, threshold, r"$2/\eta$", zorder=5)  # above the paths: the flow sits on it
    ax_s.set(xlim=(steps[0], steps[-1]), ylim=(np.nanmin(all_s) * 0.97, np.nanmax(all_s) * 1.03),
             xlabel="step", ylabel="sharpness S", title="sharpness")
    # one legend for both panels, under them: inside the axes it would cover a path somewhere
    handles, labels = ax_s.get_legend_handles_labels()
    view.figure.legend(handles, labels, loc="outside lower center", ncols=len(labels), fontsize=10)

    slider = widgets.IntSlider(value=len(steps) - 1, min=0, max=len(steps) - 1, description="step index",
                               continuous_update=False, layout=widgets.Layout(width="60%"))
    message = widgets.HTML()

    def update(*_):
        i = slider.value
        parts = [f"step {int(steps[i])}"]
        for name, path in paths.items():
            for key in ("loss", "sharpness"):
                values = np.asarray(path[key], float)
                lines[name, key].set_data(steps[: i + 1], values[: i + 1])
                dots[name, key].set_data([steps[i]], [values[i]])
            parts.append(f"{name}: loss {path['loss'][i]:.4f}, S/(2/η) {path['sharpness'][i] / threshold:.3f}")
        message.value = " &nbsp;|&nbsp; ".join(parts)
        view.refresh()

    slider.observe(update, names="value")
    update()
    box = widgets.VBox([slider, message, view.image])
    box.controls, box.view, box.message = {"step": slider}, view, message
    return static_fallback(box, view)  # a saved notebook shows the figure without a widget front end
