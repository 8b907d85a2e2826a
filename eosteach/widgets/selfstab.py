"""The self-stabilization map in a widget: move alpha, beta, eta, x0, y0 and watch the
four phases (Damian, Nichani & Lee, 2022) in the phase portrait and in time."""

from __future__ import annotations

import math

import ipywidgets as widgets
import numpy as np
from matplotlib.lines import Line2D

from .. import selfstab
from .base import FigureView

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
    nullcline |x| = delta; right: x_t and y_t against the step t. Every point is coloured by
    its phase (``selfstab.label_phases``). Returns an ``ipywidgets.VBox`` with attributes
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
        labels = selfstab.label_phases(traj.x, traj.y) if len(traj.x) >= 2 else np.zeros(len(traj.x), int)
        t = np.arange(len(traj.x))
        ax_p, ax_x, ax_y = view.axes
        for ax in view.axes:
            ax.clear()
        _by_phase(ax_p, np.abs(traj.x), traj.y, labels)
        ax_p.plot([delta], [0.0], marker="*", color="k", markersize=12, linestyle="none")
        ax_p.axvline(delta, color="0.4", linestyle=":", linewidth=1.2)
        ax_p.axhline(0.0, color="0.4", linestyle="--", linewidth=1.2)
        ax_p.set_xscale("log")
        ax_p.set_xlabel("|x|  (displacement along u)")
        ax_p.set_ylabel("y = S - 2/eta")
        ax_p.set_title("phase portrait")
        _by_phase(ax_x, t, traj.x, labels)
        ax_x.axhline(delta, color="0.4", linestyle=":", linewidth=1.2)
        ax_x.axhline(-delta, color="0.4", linestyle=":", linewidth=1.2)
        ax_x.set_xlabel("step t")
        ax_x.set_ylabel("x_t")
        ax_x.set_title("x flips sign every step")
        _by_phase(ax_y, t, traj.y, labels)
        ax_y.axhline(0.0, color="0.4", linestyle="--", linewidth=1.2)
        ax_y.set_xlabel("step t")
        ax_y.set_ylabel("y_t = S - 2/eta")
        ax_y.set_title("sharpness minus threshold")
        handles = [Line2D([], [], marker="o", linestyle="none", color=c, label=n)
                   for n, c in zip(selfstab.PHASES, selfstab.PHASE_COLORS)]
        handles.append(Line2D([], [], color="0.4", linestyle=":", label="|x| = delta = sqrt(2 alpha/beta)"))
        view.figure.legend(handles=handles, loc="outside lower center", ncols=5, fontsize=10)
        if traj.diverged:
            message.value = (f"<b style='color:#d62728'>Diverged after {len(traj.x) - 1} steps</b>: "
                             "y fell below -2/eta (or x grew past 1e6), so |1 + eta y| &gt; 1 for good.")
        else:
            try:
                stats = selfstab.cycle_stats(traj)
                message.value = (f"{stats.n_cycles} whole cycle(s): mean x<sup>2</sup> / (2 alpha/beta) = "
                                 f"{stats.mean_x2_ratio:.3f}; period / (2 pi/(eta sqrt(2 alpha))) = "
                                 f"{stats.period_ratio:.3f}")
            except ValueError:
                message.value = "Fewer than one whole cycle yet: no cycle averages."
        view.refresh()

    for c in controls.values():
        c.observe(draw, names="value")
    box.controls = controls
    box.view = view
    box.message = message
    draw()
    return box
