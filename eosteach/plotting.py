"""The shared figure style: large enough fonts to read on a projector, one colour per
method, and the threshold lines drawn the same way in every lesson."""

from __future__ import annotations

import matplotlib as mpl

#: One colour per method, used by every lesson so that a reader learns them once.
COLORS = {
    "gd": "#1f77b4",
    "heavy_ball": "#d62728",
    "nesterov": "#2ca02c",
    "adam": "#9467bd",
    "rmsprop": "#8c564b",
    "flow": "#7f7f7f",
    "threshold": "#444444",
}

STYLE = {
    "figure.dpi": 90,
    "savefig.dpi": 90,
    "font.size": 12,
    "axes.titlesize": 13,
    "axes.labelsize": 12,
    "legend.fontsize": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


def use_style() -> None:
    """Apply the eosteach figure style to matplotlib's global settings."""
    mpl.rcParams.update(STYLE)


def threshold_line(ax, value: float, label: str | None = None, *, color=None, **kwargs):
    """Draw a horizontal dashed threshold line (for example 2/eta) on ``ax``."""
    return ax.axhline(
        value,
        color=color or COLORS["threshold"],
        linestyle="--",
        linewidth=1.5,
        label=label,
        **kwargs,
    )


#: Colours for a sweep of step sizes (largest eta first), distinct from one another and
#: readable on a projector; a sweep longer than this list cycles through it.
SWEEP_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")


def sweep_colors(n: int) -> list[str]:
    """``n`` colours for a step-size sweep, one per step size (``SWEEP_COLORS``, cycled)."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    return [SWEEP_COLORS[i % len(SWEEP_COLORS)] for i in range(n)]


def step_size_sweep(ax_loss, ax_sharp, sweep, *, title: str | None = None):
    """Cohen et al. (ICLR 2021), Figure 1, for one network: the train loss (``ax_loss``, log
    scale) and the sharpness (``ax_sharp``) against the step, one colour per step size,
    with 2/eta as a dashed line of the same colour.

    sweep: a dict {eta: run}, where each run has ``metrics`` with ``step``, ``loss``,
    ``eig_step`` and ``sharpness`` (an ``eosteach.runs.Run``). Runs are drawn largest eta
    first. Returns the list of colours used, in that order.
    """
    if not isinstance(sweep, dict) or not sweep:
        raise ValueError("sweep must be a non-empty dict {eta: run}")
    etas = sorted(sweep, reverse=True)
    colors = sweep_colors(len(etas))
    for color, eta in zip(colors, etas):
        if not eta > 0:
            raise ValueError(f"every eta must be positive, got {eta!r}")
        m = sweep[eta].metrics
        label = rf"$\eta$ = 2/{2 / eta:.4g}"
        ax_loss.plot(m["step"], m["loss"], color=color, linewidth=1.2, label=label)
        ax_sharp.plot(m["eig_step"], m["sharpness"], "-o", ms=2.5, linewidth=1.2, color=color, label=label)
        threshold_line(ax_sharp, 2 / eta, color=color, alpha=0.8)
    ax_loss.set_yscale("log")
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("train loss (MSE)")
    ax_sharp.set_xlabel("step")
    ax_sharp.set_ylabel(r"sharpness $\lambda_{\max}(H)$")
    top = max(max(float(max(sweep[e].metrics["sharpness"])) for e in etas), 2 / min(etas))
    ax_sharp.set_ylim(0, 1.12 * top)
    if title:
        ax_loss.set_title(f"{title}: train loss")
        ax_sharp.set_title(rf"{title}: sharpness (dashed: $2/\eta$, same colour)")
    ax_loss.legend(loc="upper right")
    ax_sharp.legend(loc="lower right")
    return colors
