"""The lesson 7 minimalist-model widget, built headless on a small synthetic data set and
driven through the extremes of every control, with every warning an error."""

import warnings

import numpy as np
import pytest

from eosteach import minimalist as mm
from eosteach.widgets.minimalist import LOSS_CEILING, LOSS_GOAL, STEP_BUDGET, minimalist_demo

PNG = b"\x89PNG\r\n\x1a\n"
STEPS = 150  # enough for N = 8, D = 2 to converge at the largest (2/eta)/S*


@pytest.fixture(autouse=True)
def warnings_are_errors():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


@pytest.fixture(scope="module")
def datasets():
    # Random X (12, 20) with labels +-1; nested subsets of N = 8 and 12 rows in row-space coordinates.
    rng = np.random.default_rng(0)
    X = rng.standard_normal((12, 20))
    y = np.where(np.arange(12) % 2 == 0, 1.0, -1.0)
    return {n: (mm.row_space(X[:n])[0], y[:n]) for n in (8, 12)}


def dense_balanced_sharpness(Z, y, depth):
    # Independent of the closed form the widget uses: top eigenvalue of the full Hessian at the minimum.
    u, v = mm.balanced_minimum(Z, y, depth)
    return float(np.linalg.eigvalsh(mm.hessian(Z, y, u, v))[-1])


def test_every_control_through_its_extremes(datasets):
    w = minimalist_demo(datasets, steps=STEPS)
    image, figure = w.view.image, w.view.figure
    c = w.controls
    assert list(c["n"].options) == [8, 12]
    ax_loss, ax_sharp = w.view.axes
    shown = w.view.png
    assert shown[:8] == PNG

    def move(name, value):
        nonlocal shown
        c[name].value = value
        assert w.view.png[:8] == PNG
        assert w.view.png != shown, f"moving {name} to {value} did not redraw"
        shown = w.view.png
        return ax_loss.get_title()

    assert move("n", 12).startswith("N = 12, D = 2")
    assert move("depth", c["depth"].max).startswith("N = 12, D = 4")
    assert move("depth", c["depth"].min).startswith("N = 12, D = 2")
    assert move("n", 8).startswith("N = 8, D = 2")

    # Far above the edge: GD settles at the balanced minimum, whose sharpness is S*.
    edge = c["edge"]  # a log slider: min and max are exponents of its base
    title = move("edge", edge.base ** edge.max)
    S_star = dense_balanced_sharpness(*datasets[8], 2)
    assert title == f"N = 8, D = 2: converged at step {len(w.result.loss) - 1}"
    assert w.result.status == "goal_reached" and w.result.final_loss < LOSS_GOAL
    assert w.result.eig_step.size >= 25  # evaluations spread over the steps the run took
    assert w.result.eta == pytest.approx(2 / (edge.value * S_star), rel=1e-9)
    assert w.result.final_sharpness == pytest.approx(S_star, rel=0.02)

    # Far below: 2/eta = 0.32 S*, GD diverges; the title says so and the loss stays on the axis.
    title = move("edge", edge.base ** edge.min)
    assert w.result.status == "diverged"
    assert title == f"N = 8, D = 2: diverged at step {len(w.result.loss) - 1}"
    loss_line = ax_loss.get_lines()[0].get_ydata()
    assert np.all(np.isfinite(loss_line)) and loss_line[-1] == LOSS_CEILING
    assert "diverged" in [t.get_text() for t in ax_loss.get_legend().get_texts()]
    assert ax_sharp.get_title().startswith(f"S* = {S_star:.4g},")

    assert w.view.image is image and w.view.figure is figure  # updated in place


def test_bad_arguments(datasets):
    Z, y = datasets[8]
    with pytest.raises(ValueError, match="datasets must be a non-empty dict"):
        minimalist_demo({})
    with pytest.raises(ValueError, match="datasets must be a non-empty dict"):
        minimalist_demo([(Z, y)])
    with pytest.raises(ValueError, match=r"datasets\[9\] must hold N = 9 examples"):
        minimalist_demo({9: (Z, y)})
    with pytest.raises(ValueError, match=r"datasets\[8\] must be a pair"):
        minimalist_demo({8: Z})
    with pytest.raises(ValueError, match=r"datasets\[8\]: y must have shape"):
        minimalist_demo({8: (Z, y[:5])})
    with pytest.raises(ValueError, match=r"datasets\[8\]: Z and y must not be all zeros"):
        minimalist_demo({8: (Z, np.zeros(8))})
    with pytest.raises(ValueError, match="datasets key N must be an integer"):
        minimalist_demo({"8": (Z, y)})
    with pytest.raises(ValueError, match="steps must be an integer >= 1"):
        minimalist_demo(datasets, steps=0)


@pytest.fixture(scope="module")
def lesson_subsets(cifar_root):
    # The lesson's subsets: the first N/2 airplanes and automobiles, in row-space coordinates.
    X, y = mm.binary_cifar10(200, root=cifar_root, download=False)
    out = {}
    for n in (50, 200):
        idx = np.sort(np.concatenate([np.flatnonzero(y == c)[: n // 2] for c in (1.0, -1.0)]))
        out[n] = (mm.row_space(X[idx])[0], y[idx])
    return out


def test_the_budget_lets_the_slowest_setting_converge_on_the_lessons_data(lesson_subsets):
    # The lesson's text: above the edge, GD converges to the balanced minimum within the widget's
    # budget at every setting. The slowest is the largest subset at the largest depth and the
    # smallest step (the slider's top); just below the edge it converges at 2/eta instead.
    w = minimalist_demo(lesson_subsets)
    c = w.controls
    c["n"].value = 200
    c["depth"].value = c["depth"].max
    c["edge"].value = c["edge"].base ** c["edge"].max
    Z, y = lesson_subsets[200]
    S_star = mm.balanced_sharpness(Z, y, 4)
    taken = len(w.result.loss) - 1
    assert w.view.axes[0].get_title() == f"N = 200, D = 4: converged at step {taken}"
    assert taken < STEP_BUDGET
    assert w.result.final_sharpness == pytest.approx(S_star, rel=5e-3)

    c["edge"].value = c["edge"].base ** -0.05  # (2/eta)/S* = 0.89: the edge of stability
    assert w.view.axes[0].get_title().startswith("N = 200, D = 4: converged at step")
    assert w.result.final_sharpness == pytest.approx(2 / w.result.eta, rel=0.01)
    assert w.result.final_sharpness < 0.9 * S_star


def test_far_below_the_edge_a_small_subset_collapses_onto_p_zero_and_the_title_says_so(lesson_subsets):
    w = minimalist_demo(lesson_subsets)
    c = w.controls
    c["depth"].value = 3
    c["edge"].value = c["edge"].base ** c["edge"].min  # N = 50, D = 3, (2/eta)/S* = 0.32
    assert w.view.axes[0].get_title() == "N = 50, D = 3: collapsed onto p = 0 (every prediction 0)"
    assert w.result.status == "finished" and len(w.result.loss) - 1 == STEP_BUDGET
    assert abs(np.prod(w.result.v)) < 1e-6
