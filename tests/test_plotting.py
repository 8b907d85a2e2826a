"""The loss-and-sharpness panel (Cohen et al., ICLR 2021, Figure 1) that the CLI, the
training launcher and the lessons share: one colour per run, each run's threshold dashed in
its colour, the loss on a log axis, updates in place."""

from __future__ import annotations

from types import SimpleNamespace

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402

from eosteach import plotting  # noqa: E402


def records(lr=0.05, steps=40, every=10, threshold=True):
    step = np.arange(steps)
    eig = step[::every]
    m = {"step": step, "loss": np.exp(-step / 20), "eig_step": eig, "sharpness": np.minimum(10 + eig, 2 / lr)}
    if threshold:
        m["threshold"] = np.where(eig < 20, 2 / lr, 1 / lr)  # eta doubles at step 20
    return m


def axes():
    return Figure(layout="constrained").subplots(1, 2)


def dashed(ax):
    return [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"]


def solid(ax):
    return [ln for ln in ax.get_lines() if ln.get_linestyle() == "-"]


def test_one_colour_per_run_with_its_threshold_dashed_and_log_loss():
    ax_loss, ax_sharp = axes()
    runs = [SimpleNamespace(metrics=records(0.05), info={}), SimpleNamespace(metrics=records(0.1), info={})]
    lines = plotting.loss_and_sharpness(ax_loss, ax_sharp, runs, labels=["a", "b"], title="net")
    assert len(lines) == 2 and ax_loss.get_yscale() == "log"
    assert len(ax_loss.get_lines()) == 2 and len(solid(ax_sharp)) == 2 and len(dashed(ax_sharp)) == 2
    colors = [ln.get_color() for ln in ax_loss.get_lines()]
    assert colors == plotting.sweep_colors(2)
    assert [ln.get_color() for ln in solid(ax_sharp)] == colors == [ln.get_color() for ln in dashed(ax_sharp)]
    # the threshold is a step function held to the last step: 40 until step 20, then 20 (eta = 0.05)
    thr = lines[0].threshold
    assert thr.get_drawstyle() == "steps-post"
    assert list(thr.get_xdata()) == [0, 10, 20, 30, 39] and list(thr.get_ydata()) == [40, 40, 20, 20, 20]
    assert ax_sharp.get_ylim()[0] == 0 and ax_sharp.get_ylim()[1] >= 40
    # the legend names every run and sits outside the panel, over no data
    legend = ax_sharp.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["a", "b"]
    assert legend.get_bbox_to_anchor().x0 > ax_sharp.get_window_extent().x1 - 1
    assert "net" in ax_loss.get_title() and "net" in ax_sharp.get_title()


def test_flow_run_has_no_threshold_and_synthetic_data_is_flagged():
    ax_loss, ax_sharp = axes()
    flow = records()
    flow["threshold"] = np.full(len(flow["eig_step"]), np.nan)
    run = SimpleNamespace(metrics=flow, info={"synthetic": True},
                          config=SimpleNamespace(label=lambda: "flow lr=0.5", seed=0))
    (lines,) = plotting.loss_and_sharpness(ax_loss, ax_sharp, [run])
    assert len(lines.threshold.get_xdata()) == 0 and len(lines.sharpness.get_xdata()) == 4
    assert [t.get_text() for t in ax_sharp.get_legend().get_texts()] == ["flow lr=0.5 (SYNTHETIC data)"]
    # a dict of records without a threshold at all
    (plain,) = plotting.loss_and_sharpness(*axes(), [records(threshold=False)])
    assert len(plain.threshold.get_xdata()) == 0


def test_equal_labels_are_told_apart_by_the_seed():
    runs = [SimpleNamespace(metrics=records(), info={}, config=SimpleNamespace(label=lambda: "gd lr=0.05", seed=s))
            for s in (0, 1)]
    plotting.loss_and_sharpness(*(ax := axes()), runs)
    assert [t.get_text() for t in ax[1].get_legend().get_texts()] == ["gd lr=0.05 seed=0", "gd lr=0.05 seed=1"]


def test_update_redraws_the_same_artists_in_place():
    ax_loss, ax_sharp = axes()
    lines = plotting.loss_and_sharpness(ax_loss, ax_sharp, [{"step": [], "loss": [], "eig_step": [],
                                                             "sharpness": [], "threshold": []}])
    before = list(ax_loss.get_lines()) + list(ax_sharp.get_lines())
    plotting.update_loss_and_sharpness(lines, [records(steps=20)], labels=["live"], colors=["#d62728"])
    assert list(ax_loss.get_lines()) + list(ax_sharp.get_lines()) == before
    assert len(lines[0].loss.get_xdata()) == 20 and lines[0].threshold.get_color() == "#d62728"
    assert ax_loss.get_ylim()[1] >= 1.0 and [t.get_text() for t in ax_sharp.get_legend().get_texts()] == ["live"]


def test_bad_input_names_the_parameter():
    ax_loss, ax_sharp = axes()
    with pytest.raises(ValueError, match="ax_loss"):
        plotting.loss_and_sharpness(None, ax_sharp, [records()])
    with pytest.raises(ValueError, match="runs must be"):
        plotting.loss_and_sharpness(ax_loss, ax_sharp, [])
    with pytest.raises(ValueError, match="runs must be"):
        plotting.loss_and_sharpness(ax_loss, ax_sharp, records())  # one dict, not a list
    with pytest.raises(ValueError, match=r"runs\[1\].*sharpness"):
        plotting.loss_and_sharpness(ax_loss, ax_sharp, [records(), {"step": [], "loss": [], "eig_step": []}])
    with pytest.raises(ValueError, match="labels"):
        plotting.loss_and_sharpness(ax_loss, ax_sharp, [records()], labels=["a", "b"])
    with pytest.raises(ValueError, match="colors"):
        plotting.loss_and_sharpness(ax_loss, ax_sharp, [records()], colors=[])
    lines = plotting.loss_and_sharpness(ax_loss, ax_sharp, [records()])
    with pytest.raises(ValueError, match="lines"):
        plotting.update_loss_and_sharpness(lines, [records(), records()])
