"""The shared figure style: large enough fonts to read on a projector, one colour per
method, and the threshold lines drawn the same way in every lesson.

``loss_and_sharpness`` draws the panel of Cohen et al. (ICLR 2021), Figure 1 (train loss
and sharpness against the step, each run's threshold dashed in its colour) for ``eosteach
plot``, the training launcher and the lessons (``step_size_sweep``);
``update_loss_and_sharpness`` redraws it in place.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import matplotlib as mpl
import numpy as np
from matplotlib.axes import Axes

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


class RunLines(NamedTuple):
    """The artists ``loss_and_sharpness`` draws for one run: the loss curve (on ax_loss), the
    sharpness curve and the threshold step function (dashed; on ax_sharp)."""

    loss: object
    sharpness: object
    threshold: object


#: Every run's records must hold these (``eosteach.runs.SERIES``); ``threshold`` is optional.
NEEDED = ("step", "loss", "eig_step", "sharpness")


def _metrics_of(runs) -> list[dict]:
    if isinstance(runs, Mapping) or not isinstance(runs, Sequence) or not runs:
        raise ValueError(f"runs must be a non-empty list of runs (eosteach.runs.Run or metrics dicts), got "
                         f"{type(runs).__name__}")
    found = []
    for i, run in enumerate(runs):
        m = run if isinstance(run, Mapping) else getattr(run, "metrics", None)
        missing = [k for k in NEEDED if not isinstance(m, Mapping) or k not in m]
        if missing:
            raise ValueError(f"runs[{i}] must be a Run or a dict of records with {', '.join(NEEDED)}; "
                             f"missing {', '.join(missing)}")
        found.append(m)
    return found


def _per_run(name: str, values, n: int) -> list:
    if values is None:
        return [None] * n
    values = list(values)
    if len(values) != n:
        raise ValueError(f"{name} must give one entry per run ({n}), got {len(values)}")
    return values


def _threshold_steps(m) -> tuple[np.ndarray, np.ndarray]:
    """The threshold as a step function of the step: its value at each tracking step, held
    to the last recorded step. Empty where it is not finite anywhere (gradient flow)."""
    thr = np.asarray(m.get("threshold", ()), dtype=float)
    eig = np.asarray(m["eig_step"], dtype=float)
    if not thr.size or not np.isfinite(thr).any():
        return np.zeros(0), np.zeros(0)
    last = max(float(m["step"][-1]) if len(m["step"]) else 0.0, eig[-1])
    return np.append(eig, last), np.append(np.where(np.isfinite(thr), thr, np.nan), thr[-1])


def _labels(runs, labels) -> list[str]:
    """One label per run: the given one, else the run's ``config.label()`` (with its seed
    where two would read the same), flagged when the data is SYNTHETIC."""
    configs = [getattr(run, "config", None) for run in runs]
    default = [c.label() if c is not None else f"run {i}" for i, c in enumerate(configs)]
    out = []
    for i, (run, label) in enumerate(zip(runs, labels)):
        if label is None:
            label = default[i]
            if configs[i] is not None and default.count(label) > 1:
                label += f" seed={configs[i].seed}"
        if getattr(run, "info", {}).get("synthetic"):
            label += " (SYNTHETIC data)"
        out.append(label)
    return out


def loss_and_sharpness(ax_loss, ax_sharp, runs, *, labels=None, colors=None, title: str | None = None
                       ) -> list[RunLines]:
    """Cohen et al. (ICLR 2021), Figure 1: the train loss (``ax_loss``, log scale) and the
    sharpness S = lambda_max(H) (``ax_sharp``) against the step, one colour per run, with
    each run's threshold (``metrics["threshold"]``: 2/eta for GD, the method's own
    otherwise; a step function, as eta may drop) dashed in the run's colour. A run with no
    finite threshold (gradient flow) gets none.

    runs: a list of ``eosteach.runs.Run`` (or anything with ``.metrics``) or of metric dicts
    with step, loss, eig_step, sharpness (and threshold). labels: one per run (default: the
    run's ``config.label()``); a run on SYNTHETIC data (``run.info["synthetic"]``) says so in
    its label. colors: one per run (default ``sweep_colors``). The legend (one entry per run)
    sits outside ``ax_sharp``, to the right, so that it hides no data.

    Returns one ``RunLines`` per run; ``update_loss_and_sharpness(lines, new_runs)`` redraws
    them in place (live plots, sliders).
    """
    for name, ax in (("ax_loss", ax_loss), ("ax_sharp", ax_sharp)):
        if not isinstance(ax, Axes):
            raise ValueError(f"{name} must be a matplotlib Axes, got {type(ax).__name__}")
    n = len(_metrics_of(runs))
    colors = [c or d for c, d in zip(_per_run("colors", colors, n), sweep_colors(n))]
    lines = [RunLines(ax_loss.plot([], [], color=c, linewidth=1.2)[0],
                      ax_sharp.plot([], [], "-o", ms=2.5, linewidth=1.2, color=c)[0],
                      ax_sharp.plot([], [], linestyle="--", drawstyle="steps-post", linewidth=1.3, color=c,
                                    alpha=0.8)[0])
             for c in colors]
    ax_loss.set_yscale("log")
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("train loss (log scale)")
    ax_sharp.set_xlabel("step")
    ax_sharp.set_ylabel(r"sharpness $\lambda_{\max}(H)$")
    prefix = f"{title}: " if title else ""
    ax_loss.set_title(f"{prefix}train loss")
    ax_sharp.set_title(f"{prefix}sharpness (dashed: threshold, same colour)")
    update_loss_and_sharpness(lines, runs, labels=labels)
    return lines


def update_loss_and_sharpness(lines: list[RunLines], runs, *, labels=None, colors=None) -> None:
    """Put ``runs``' records (as for ``loss_and_sharpness``, one per entry of ``lines``) on the
    artists ``loss_and_sharpness`` returned, and rescale both panels: the same figure,
    updated in place. colors: new colours, one per run (None: keep them)."""
    metrics = _metrics_of(runs)
    if not isinstance(lines, list) or len(lines) != len(metrics):
        raise ValueError(f"lines must be the list loss_and_sharpness returned, one per run ({len(metrics)})")
    labels = _labels(runs, _per_run("labels", labels, len(lines)))
    colors = _per_run("colors", colors, len(lines))
    losses, tops = [], []
    for i, (line, m) in enumerate(zip(lines, metrics)):
        if colors[i] is not None:
            for artist in line:
                artist.set_color(colors[i])
        line.loss.set_data(np.asarray(m["step"]), np.asarray(m["loss"], dtype=float))
        line.sharpness.set_data(np.asarray(m["eig_step"]), np.asarray(m["sharpness"], dtype=float))
        line.threshold.set_data(*_threshold_steps(m))
        line.sharpness.set_label(labels[i])
        losses.append(np.asarray(m["loss"], dtype=float))
        tops.extend([np.asarray(m["sharpness"], dtype=float), line.threshold.get_ydata()])
    ax_loss, ax_sharp = lines[0].loss.axes, lines[0].sharpness.axes
    for ax in (ax_loss, ax_sharp):
        ax.relim()
        ax.autoscale_view()
    loss = np.concatenate(losses)
    loss = loss[np.isfinite(loss) & (loss > 0)]
    if loss.size:
        ax_loss.set_ylim(loss.min() / 1.5, loss.max() * 1.5)
    top = np.concatenate(tops)
    top = top[np.isfinite(top)]
    if top.size:
        ax_sharp.set_ylim(min(0.0, 1.12 * top.min()), 1.12 * max(top.max(), 0.0) or 1.0)
    ax_sharp.legend(handles=[line.sharpness for line in lines], loc="upper left", bbox_to_anchor=(1.02, 1.0),
                    borderaxespad=0.0)


def step_size_sweep(ax_loss, ax_sharp, sweep, *, title: str | None = None):
    """Cohen et al. (ICLR 2021), Figure 1, for one network (``loss_and_sharpness``): the
    train loss (``ax_loss``, log scale) and the sharpness (``ax_sharp``) against the step,
    one colour per step size, with 2/eta as a dashed line of the same colour.

    sweep: a dict {eta: run}, where each run has ``metrics`` with ``step``, ``loss``,
    ``eig_step`` and ``sharpness`` (an ``eosteach.runs.Run``); its ``threshold`` record is
    drawn when it has one, else 2/eta. Runs are drawn largest eta first, labelled
    "eta = 2/(2/eta)". Returns the list of colours used, in that order.
    """
    if not isinstance(sweep, dict) or not sweep:
        raise ValueError("sweep must be a non-empty dict {eta: run}")
    etas = sorted(sweep, reverse=True)
    for eta in etas:
        if not eta > 0:
            raise ValueError(f"every eta must be positive, got {eta!r}")
    colors = sweep_colors(len(etas))
    runs = []
    for eta in etas:
        m = dict(sweep[eta].metrics)
        m.setdefault("threshold", np.full(len(m["eig_step"]), 2 / eta))
        runs.append(_WithMetrics(m, getattr(sweep[eta], "info", {})))
    loss_and_sharpness(ax_loss, ax_sharp, runs, labels=[rf"$\eta$ = 2/{2 / eta:.4g}" for eta in etas],
                       colors=colors, title=title)
    return colors


class _WithMetrics(NamedTuple):
    metrics: dict
    info: dict
