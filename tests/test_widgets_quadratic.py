"""The lesson 1-2 widgets, built headless and driven through their extremes.

pyproject turns RuntimeWarnings into errors; here every warning is one.
"""

import warnings

import numpy as np
import pytest

from eosteach.widgets.quadratic import descent_demo, momentum_demo

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def warnings_are_errors():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def test_descent_demo_extremes_and_in_place_updates():
    w = descent_demo(steps=20)
    image, figure = w.view.image, w.view.figure
    first = w.view.png
    assert first[:8] == PNG
    c = w.controls
    # Corners of the slider box, each one drawn.
    for values in [dict(eta=c["eta"].max, lam1=c["lam1"].max, lam2=c["lam2"].min, x0=c["x0"].max),
                   dict(eta=c["eta"].min, lam1=c["lam1"].min, lam2=c["lam2"].max, x0=c["x0"].min,
                        steps=c["steps"].max),
                   dict(x0=0.0, y0=0.0, steps=c["steps"].min)]:
        w.set(**values)
        assert w.view.png[:8] == PNG
    assert w.view.image is image and w.view.figure is figure  # updated in place
    assert w.view.png != first


def test_descent_demo_unstable_run_oscillates_along_top_eigenvector():
    w = descent_demo(eta=0.21, lam1=10.0, lam2=1.0, steps=30)
    from eosteach.widgets.quadratic import rotated_quadratic
    v1 = rotated_quadratic(10.0, 1.0).eigenvectors[:, 0]
    proj = w.result.theta @ v1
    assert np.all(np.sign(proj[1:]) == -np.sign(proj[:-1]))
    assert abs(proj[-1]) > abs(proj[0])
    assert "above 2/S" in w.children[3].value


def test_momentum_demo_every_method_at_extremes():
    w = momentum_demo(steps=30)
    assert w.view.png[:8] == PNG
    c = w.controls
    for method, eta, b in [("gd", c["eta"].max, 0.0), ("adam", c["eta"].max, c["b"].min),
                           ("nesterov", c["eta"].min, c["b"].max), ("heavy_ball", c["eta"].max, c["b"].max)]:
        w.set(method=method, eta=eta, b=b, steps=c["steps"].max if method == "adam" else 30)
        assert w.view.png[:8] == PNG
    assert w.result.diverged  # heavy-ball at eta * lambda_1 = 10 > 2 + 2b
    assert "diverges" in w.children[2].value
    c["eta"].value = 0.05  # one slider move alone also redraws
    assert not w.result.diverged


def test_bad_arguments():
    with pytest.raises(ValueError, match="eta"):
        descent_demo(eta=-1.0)
    with pytest.raises(ValueError, match="method"):
        momentum_demo(method="sgd")
    with pytest.raises(ValueError, match=r"b must lie in \[0, 1\)"):
        momentum_demo(b=1.0)


def test_descent_demo_names_the_edge_itself():
    w = descent_demo(eta=0.2, lam1=10.0, lam2=1.0, steps=20)  # eta = 2/S exactly
    assert "exactly 2/S" in w.children[3].value
    assert "sits on the edge" in w.view.axes[0].get_title()
    from eosteach.widgets.quadratic import rotated_quadratic
    proj = w.result.theta @ rotated_quadratic(10.0, 1.0).eigenvectors[:, 0]
    assert np.all(np.sign(proj[1:]) == -np.sign(proj[:-1]))  # flips every step ...
    assert np.allclose(np.abs(proj), abs(proj[0]))          # ... and keeps its size


def test_momentum_region_draws_one_boundary_line_and_one_point_per_direction():
    w = momentum_demo(method="nesterov", eta=0.1, b=0.5)
    ax_region = w.view.axes[0]
    assert not any(line.get_linestyle() == "--" for line in ax_region.lines)  # nothing on top of rho = 1
    points = [line for line in ax_region.lines if line.get_marker() == "o"]
    assert [len(p.get_xdata()) for p in points] == [1, 1]
    assert any("rho = 1" in t.get_text() for t in ax_region.get_legend().get_texts())


def test_descent_demo_labels_the_top_eigenvector_and_keeps_the_marks_off_the_eta_line():
    w = descent_demo(eta=0.2, lam1=1.0, lam2=10.0, steps=10)  # lambda_2 is now the larger one
    labels = [t.get_text() for t in w.view.axes[0].get_legend().get_texts()]
    assert "top eigenvector (largest eigenvalue)" in labels and not any("v_1" in t for t in labels)
    ax_factor = w.view.axes[3]
    for text in ax_factor.texts:  # each 2/lambda label lies wholly on one side of the current-eta line
        x = text.get_position()[0]
        assert (text.get_ha() == "right" and x < 0.2) or (text.get_ha() == "left" and x > 0.2) or abs(x - 0.2) > 0.02
        assert abs(x - 0.2) > 1e-3


def test_momentum_demo_three_way_verdict_and_the_slower_directions_radius():
    w = momentum_demo(method="heavy_ball", eta=0.3, b=0.5, steps=60)  # eta S = 3 = 2 + 2b: on the edge
    assert "exactly on the edge" in w.children[2].value and "diverges" not in w.children[2].value
    assert not w.result.diverged
    w.set(b=0.6)
    assert "stable: converges" in w.children[2].value
    w.set(b=0.4)
    assert "unstable: diverges" in w.children[2].value
    w.set(method="gd", eta=0.1, b=0.0)  # eta lambda = 1 and 0.1: the flat direction (0.9) is the slower one
    assert "0.900" in w.view.axes[2].get_title()
    ax_region = w.view.axes[0]
    assert all(not line.get_clip_on() for line in ax_region.lines if line.get_marker() == "o")


def test_diverged_note_does_not_cross_the_dashed_line():
    w = momentum_demo(method="heavy_ball", eta=0.3, b=0.0, steps=60)  # diverges early
    ax_loss = w.view.axes[2]
    [note] = [t for t in ax_loss.texts if "diverged" in t.get_text()]
    at = int(w.result.diverged_at)
    assert at < 30 and note.get_ha() == "left" and note.get_position()[0] > at


def _legends_below_the_axes(ax):
    """The legend's bounding box lies wholly below the axes: it can cover nothing that is drawn."""
    fig = ax.figure
    fig.canvas.draw()
    box = ax.get_legend().get_window_extent()
    return box.y1 <= ax.get_window_extent().y0 + 1e-6


def test_descent_demo_legends_cover_nothing_and_name_what_is_plotted():
    w = descent_demo(eta=0.25, lam1=10.0, lam2=1.0, start=(2.0, -2.5), steps=30)  # a diverging run
    ax_path, _, ax_lemma, ax_factor = w.view.axes
    assert all(_legends_below_the_axes(ax) for ax in (ax_path, ax_lemma, ax_factor))
    lemma_labels = [t.get_text() for t in ax_lemma.get_legend().get_texts()]
    assert any(r"\|\nabla L" in t for t in lemma_labels)  # the plotted quantity is Delta L / |grad L|^2
    factor_labels = [t.get_text() for t in ax_factor.get_legend().get_texts()]
    assert any("factor 1" in t for t in factor_labels)  # the red line has its own entry


def test_descent_demo_equal_eigenvalues_draw_no_arbitrary_eigenvector_and_one_mark():
    from eosteach.widgets.quadratic import EQUAL_LABEL
    w = descent_demo(eta=0.15, lam1=5.0, lam2=5.0, steps=10)
    ax_path, ax_factor = w.view.axes[0], w.view.axes[3]
    labels = [t.get_text() for t in ax_path.get_legend().get_texts()]
    assert EQUAL_LABEL in labels and "top eigenvector (largest eigenvalue)" not in labels
    assert not any(line.get_linestyle() == ":" for line in ax_path.lines)
    assert [t.get_text() for t in ax_factor.texts] == [r"2/$\lambda_1$ = 2/$\lambda_2$"]
    w.set(lam2=5.5)  # close but different marks: two labels at different heights
    heights = [t.get_position()[1] for t in w.view.axes[3].texts]
    assert len(heights) == 2 and heights[0] != heights[1]


def test_momentum_demo_region_legend_below_and_adam_marks_the_preconditioned_direction():
    w = momentum_demo(method="adam", eta=1.0, b=0.9)
    ax_region, ax_path = w.view.axes[:2]
    assert _legends_below_the_axes(ax_region) and _legends_below_the_axes(ax_path)
    labels = [t.get_text() for t in ax_path.get_legend().get_texts()]
    assert r"top eigenvector of $P^{-1}A$" in labels
    from eosteach.widgets.quadratic import rotated_quadratic
    A = rotated_quadratic(10.0, 1.0).A
    lam, vecs = np.linalg.eig(A / np.diag(A)[:, None])
    top = vecs[:, np.argmax(lam.real)].real
    [line] = [ln for ln in ax_path.lines if ln.get_linestyle() == ":"]
    direction = np.array([line.get_xdata()[1], line.get_ydata()[1]])
    assert abs(abs(direction @ top) / (np.linalg.norm(direction) * np.linalg.norm(top)) - 1) < 1e-12


def test_momentum_demo_can_hold_methods_back():
    w = momentum_demo(method="heavy_ball", methods=("gd", "heavy_ball", "nesterov"))
    assert [value for _, value in w.controls["method"].options] == ["gd", "heavy_ball", "nesterov"]
    with pytest.raises(ValueError, match="method"):
        momentum_demo(method="adam", methods=("gd", "heavy_ball"))
    with pytest.raises(ValueError, match="methods"):
        momentum_demo(methods=("gd", "sgd"))
    with pytest.raises(ValueError, match="methods"):
        momentum_demo(methods=())


def test_descent_demo_eta_slider_always_crosses_the_edge():
    """For every eigenvalue the sliders allow, eta can go past 2/lambda_max (and reach 1/lambda, 2/lambda
    when the two are equal, Think! 2), and the factor panel draws the top eigenvalue's 2/lambda mark."""
    w = descent_demo(steps=10)
    c = w.controls
    assert c["eta"].max == 0.5  # the lesson's default sliders: unchanged
    for l1, l2 in [(c["lam1"].min, c["lam2"].min), (c["lam1"].min, c["lam1"].min), (1.0, 1.0),
                   (c["lam1"].max, c["lam2"].min), (3.0, 0.1), (c["lam1"].min, c["lam2"].max)]:
        w.set(lam1=l1, lam2=l2)
        edge = 2 / max(l1, l2)
        assert c["eta"].max > edge, (l1, l2)
        w.set(eta=c["eta"].max)
        assert w.result.diverged or c["eta"].value > edge
        marks = [ln.get_xdata()[0] for ln in w.view.axes[3].get_lines() if ln.get_linestyle() in ("-", "--")
                 and len(ln.get_xdata()) == 2 and ln.get_xdata()[0] == ln.get_xdata()[1]]
        assert any(np.isclose(m, edge) for m in marks), (l1, l2, marks)
    w.set(lam1=10.0, lam2=1.0, eta=0.15)  # back to the defaults: eta's range shrinks again, the value kept
    assert c["eta"].max == 0.5 and c["eta"].value == 0.15
