"""The widgets of lessons 3-4 built headless and driven through their extremes, and the
exercise checkers of ``eosteach.exercises.sharpness`` (accept a right answer, reject a
wrong one). Tiny synthetic runs keep every test to a few seconds."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from eosteach import hessian, losses, models, runs, thresholds
from eosteach.exercises import sharpness as ex
from eosteach.widgets import training

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture()
def runs_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("EOSTEACH_RUNS", str(tmp_path / "runs"))
    return tmp_path / "runs"


def tiny_config(**kw):
    settings = dict(data="synthetic", n_train=48, classes=3, width=12, steps=30, eig_every=5, lr=0.05,
                    device="cpu")
    settings.update(kw)
    return runs.RunConfig(**settings)


def tiny_net_data():
    net = models.make_model("fc-tanh", input_dim=6, n_classes=3, width=5, seed=0, dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(20, 6, generator=gen, dtype=torch.float64)
    y = torch.nn.functional.one_hot(torch.randint(0, 3, (20,), generator=gen), 3).double()
    return net, x, y


# --------------------------------------------------------------------------- solvers


def test_solver_traces_match_dense_hessian_and_lanczos_wins():
    net, x, y = tiny_net_data()
    tr = training.solver_traces(net, losses.mse, x, y, max_products=40)
    dense = torch.linalg.eigvalsh(hessian.dense_hessian(net, losses.mse, x, y))
    assert tr.reference == pytest.approx(float(dense[-1]), rel=1e-12)
    # Rayleigh quotients and Ritz values never exceed lambda_max (up to rounding).
    assert np.all(tr.power <= tr.reference * (1 + 1e-9))
    assert np.all(tr.lanczos <= tr.reference * (1 + 1e-9))
    # Ritz values increase with the Krylov space; Lanczos reaches 1e-6 and is ahead of power.
    assert np.all(np.diff(tr.lanczos) >= -1e-9 * tr.reference)
    need_l, need_p = tr.products_to("lanczos", 1e-6), tr.products_to("power", 1e-6)
    assert need_l is not None and (need_p is None or need_l < need_p)
    # Power iteration spends the whole budget; Lanczos's estimate is held once it has converged.
    assert len(tr.products) == len(tr.power) == len(tr.lanczos) == 40
    used = tr.lanczos_used
    assert used is not None and 1 <= used <= 40
    assert np.all(tr.lanczos[used - 1:] == tr.lanczos[used - 1])


def test_solver_demo_slider_extremes_change_png():
    net, x, y = tiny_net_data()
    w = training.solver_demo(training.solver_traces(net, losses.mse, x, y, max_products=30))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        slider = w.controls["products"]
        pictures = []
        for value in (slider.min, slider.max):
            slider.value = value
            assert w.view.png[:8] == PNG
            pictures.append(w.view.png)
            assert f"after {value} products" in w.message.value
    assert pictures[0] != pictures[1]


def test_solver_demo_left_panel_legible_at_every_budget_and_updated_in_place():
    """The left panel (estimate - S, linear) zooms to the budget: at every k both estimates
    after k products lie inside its y-window and the larger gap fills most of it, so that
    the convergence stays visible after the curves have collapsed onto S at full scale. The
    slider changes the same artists, and the one legend sits outside both panels."""
    net, x, y = tiny_net_data()
    tr = training.solver_traces(net, losses.mse, x, y, max_products=30)
    w = training.solver_demo(tr)
    ax_gap, ax_err = w.view.axes
    artists = [list(ax.get_lines()) for ax in w.view.axes]
    S = tr.reference
    slider = w.controls["products"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for k in range(slider.min, slider.max + 1):
            slider.value = k
            lo, hi = ax_gap.get_ylim()
            assert (lo, hi) == training.solver_zoom(tr, k)
            gaps = [tr.power[k - 1] - S, tr.lanczos[k - 1] - S]
            assert all(lo <= g <= hi for g in gaps)
            g = max(max(abs(v) for v in gaps), training.ZOOM_FLOOR * abs(S))
            assert hi - lo <= 2 * g  # the larger gap spans at least half of the window
            for name, gap in zip(("power", "lanczos"), gaps):
                ring_gap, ring_err = w.marks[name]
                assert list(ring_gap.get_xdata()) == [k] and ring_gap.get_ydata()[0] == pytest.approx(gap)
                assert list(ring_err.get_xdata()) == [k]
    assert [list(ax.get_lines()) for ax in w.view.axes] == artists  # in place: no new lines
    assert ax_gap.get_legend() is None and ax_err.get_legend() is None
    [legend] = w.view.figure.legends
    labels = [t.get_text() for t in legend.get_texts()]
    assert labels[:2] == ["power iteration", "Lanczos"] and any("tolerance" in t for t in labels)
    w.view.refresh()  # lays the figure out (constrained layout) as it is shown
    for ax in (ax_gap, ax_err):
        assert not legend.get_window_extent().overlaps(ax.get_window_extent())
    with pytest.raises(ValueError, match="k"):
        training.solver_zoom(tr, slider.max + 1)


# --------------------------------------------------------------------------- launcher


def test_launcher_trains_live_and_caches(runs_dir):
    base = tiny_config()
    w = training.training_launcher(base, refresh_every=5)
    before = w.view.png
    artists = [list(ax.get_lines()) for ax in w.view.axes]
    calls = []
    original = w.view.refresh

    def counting_refresh():
        calls.append(1)
        original()

    w.view.refresh = counting_refresh
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        w.controls["eta"].value = 0.05
        w.controls["steps"].value = 30
        run = w.launch()
    assert run.status == "finished" and len(calls) >= 5  # live: refreshed during the run
    assert w.progress.value == w.progress.max == 30
    assert w.view.png != before
    # drawn in place: the same figure and lines, now holding the run (loss, sharpness, threshold)
    assert [list(ax.get_lines()) for ax in w.view.axes] == artists
    loss_line, s_line, thr_line = artists[0][0], artists[1][0], artists[1][1]
    assert np.array_equal(loss_line.get_xdata(), run.metrics["step"])
    assert np.array_equal(s_line.get_ydata(), run.metrics["sharpness"])
    assert thr_line.get_linestyle() == "--" and thr_line.get_color() == s_line.get_color()
    assert thr_line.get_ydata()[0] == pytest.approx(2 / 0.05)
    assert w.config() == run.config and runs.cache_path(run.config).is_dir()
    assert "largest S / threshold" in w.message.value
    # eta is written as the lessons write it, in the title, the key and beside the slider
    assert w.view.axes[0].get_title() == r"GD, $\eta$ = 2/40"
    assert s_line.get_label().startswith(r"GD, $\eta$ = 2/40")
    assert w.eta_label.value == "η = 2/40"


def test_launcher_extremes_momentum_and_divergence(runs_dir):
    w = training.training_launcher(tiny_config(steps=20), refresh_every=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        w.controls["opt"].value = "heavy_ball"
        assert not w.controls["momentum"].disabled
        w.controls["momentum"].value = w.controls["momentum"].max
        w.controls["steps"].value = 20
        w.controls["eta"].value = w.controls["eta"].min
        run = w.launch()
        assert run.config.opt == "heavy_ball" and run.config.momentum == pytest.approx(0.99)
        assert run.metrics["threshold"][0] == pytest.approx(thresholds.heavy_ball(run.config.lr, 0.99))
        assert w.view.axes[0].get_title() == rf"heavy-ball, $\eta$ = 2/{2 / run.config.lr:.4g}, b = 0.99"
        w.controls["opt"].value = "gd"
        assert w.controls["momentum"].disabled and w.config().momentum == 0.0
        w.controls["eta"].value = 2 / 110
        assert w.eta_label.value == "η = 2/110"


def test_launcher_slider_stops_at_every_whole_two_over_eta():
    """Lesson 3 asks for eta = 2/110: the slider is over 2/eta in steps of 1, so 2/110 (and every
    step size the lessons use) is one of its stops, and dragging it sets eta = 2/k exactly."""
    w = training.training_launcher(tiny_config(lr=0.02))
    slider, eta = w.controls["two_over_eta"], w.controls["eta"]
    assert (slider.min, slider.max, slider.step) == (10, 1000, 1)  # the default eta_range (0.002, 0.2)
    assert slider.value == 100 and w.eta_label.value == "η = 2/100"
    for k in (110, 30, 45, 150, 200, 1000, 10):
        assert (k - slider.min) % slider.step == 0  # a stop of the slider
        slider.value = k
        assert eta.value == w.config().lr == 2 / k
        assert w.eta_label.value == f"η = 2/{k}"
    # the other way: a typed eta moves the slider (off its stops if 2/eta is not whole)
    eta.value = 0.0191
    assert slider.value == pytest.approx(2 / 0.0191) and w.config().lr == 0.0191
    assert w.eta_label.value == "η = 2/104.7"
    eta.value = 1.0  # outside eta_range: clamped to its top
    assert eta.value == 0.2 and slider.value == pytest.approx(10)


def test_eta_text():
    assert training.eta_text(2 / 30) == r"$\eta$ = 2/30"
    assert training.eta_text(0.02, tex=False) == "η = 2/100"
    assert training.eta_text(0.0191, tex=False) == "η = 2/104.7"
    with pytest.raises(ValueError, match="eta"):
        training.eta_text(0.0)


def test_launcher_diverged_run_is_drawn(runs_dir):
    w = training.training_launcher(tiny_config(steps=20), refresh_every=5, eta_range=(0.001, 1000.0))
    w.controls["eta"].value = w.controls["eta"].max
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run = w.launch()
    assert run.status == "diverged"
    assert "diverged" in w.message.value
    assert w.view.png[:8] == PNG


# --------------------------------------------------------------------------- scrubber


def test_trace_and_scrubber(runs_dir):
    run = runs.cached_run(tiny_config(steps=40, lr=0.5), progress=False)
    trace = training.top_direction_trace(run, steps=12)
    assert trace.step[0] == run.metrics["step"][-1] + 1 and len(trace.position) == 13
    assert trace.position[0] == 0.0
    # Independent check of the recorded sharpness (eosteach's Lanczos inside): scipy's ARPACK, float64.
    from scipy.sparse.linalg import LinearOperator, eigsh

    from eosteach import data

    net = run.model().double()
    ds = data.load_dataset("synthetic", n_train=48, classes=3, seed=0, loss="mse", dtype=torch.float64)
    op = hessian.HessianOperator(net, losses.mse, ds.x_train, ds.y_train)
    matvec = lambda v: op.matvec(torch.as_tensor(v.ravel(), dtype=torch.float64)).numpy()  # noqa: E731
    top = eigsh(LinearOperator((op.n, op.n), matvec=matvec, dtype=np.float64), k=1, which="LA", tol=1e-8,
                return_eigenvectors=False)[0]
    assert trace.sharpness == pytest.approx(top, rel=2e-3)
    w = training.run_scrubber(run, trace)
    slider = w.controls["step"]
    pictures = set()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for value in (slider.min, int(run.metrics["step"][-1]), slider.max):
            slider.value = value
            assert w.view.png[:8] == PNG
            pictures.add(w.view.png)
    assert len(pictures) == 3
    assert "position along v_max" in w.message.value


def test_flip_fraction_counts_alternation():
    tr = training.TopDirectionTrace(step=np.arange(6), loss=np.ones(6),
                                    position=np.array([0.0, 1.0, -0.5, 0.8, -0.2, 0.1]),
                                    sharpness=1.0, threshold=1.0)
    assert tr.flip_fraction() == 1.0
    tr.position = np.arange(6.0)
    assert tr.flip_fraction() == 0.0


def test_bad_input():
    with pytest.raises(ValueError, match="base"):
        training.training_launcher(base="gd")
    with pytest.raises(ValueError, match="run"):
        training.run_scrubber(None)
    net, x, y = tiny_net_data()
    with pytest.raises(ValueError, match="max_products"):
        training.solver_traces(net, losses.mse, x, y, max_products=10_000)


# --------------------------------------------------------------------------- exercises


def test_bisection_threshold_is_independent_and_right():
    # Simulate heavy-ball and Nesterov on s theta^2/2 just below and above the bisection value.
    for method in ("heavy_ball", "nesterov"):
        eta, b = 0.05, 0.7
        s_star = ex.stability_threshold(method, eta, b)
        for s, grows in ((0.98 * s_star, False), (1.02 * s_star, True)):
            theta, buf = 1.0, 0.0
            for _ in range(3000):
                g = s * theta
                buf = b * buf + g
                theta -= eta * ((g + b * buf) if method == "nesterov" else buf)
            assert (abs(theta) > 1.0) == grows
