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
