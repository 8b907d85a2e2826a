"""Lesson 4's checkers: a correct answer passes, each likely mistake gets its message, an
untouched stub reads as "not attempted yet"."""

from __future__ import annotations

import pytest
import torch

from eosteach import analysis, thresholds
from eosteach.exercises import edge
from eosteach.exercises.sharpness import stability_threshold


def _stub(*args):
    raise NotImplementedError("the largest stable sharpness of each method")


# --------------------------------------------------------------------------- thresholds


def test_reference_bisection_agrees_with_the_closed_forms():
    for method, eta, b in edge.THRESHOLD_CASES:
        b = 0.0 if method == "gd" else b
        assert stability_threshold(method, eta, b) == pytest.approx(thresholds.threshold(method, eta, b), rel=1e-9)


def test_threshold_correct_answer_passes(capsys):
    assert edge.check_threshold(thresholds.threshold) is True
    assert capsys.readouterr().out.startswith("Correct")


def test_threshold_stub_is_not_attempted(capsys):
    assert edge.check_threshold(_stub) is None
    out = capsys.readouterr().out
    assert "Not attempted yet" in out and "eosteach.thresholds.threshold" in out


def _only(method_values):
    """A threshold function that is right except for one method, where it returns method_values(eta, b)."""
    wrong_method, value = method_values

    def fn(method, eta, b):
        if method == wrong_method:
            return value(eta, b)
        return thresholds.threshold(method, eta, 0.0 if method == "gd" else b)
    return fn


MISTAKES = [
    (("heavy_ball", lambda eta, b: 2 / eta), "GD's 2/eta"),
    (("nesterov", lambda eta, b: 2 / eta), "GD's 2/eta"),
    (("nesterov", lambda eta, b: (2 + 2 * b) / ((1 + b) * eta)), "(1 + b) in place of (1 + 2b)"),
    (("nesterov", lambda eta, b: (2 + 2 * b) / eta), "missing it"),
    (("heavy_ball", lambda eta, b: (2 + 2 * b) / ((1 + 2 * b) * eta)), "swapped"),
    (("heavy_ball", lambda eta, b: (2 + 2 * b) / ((1 - b) * eta)), "dampened convention"),
    (("nesterov", lambda eta, b: (2 + 2 * b) / ((1 + 2 * b) * (1 - b) * eta)), "dampened convention"),
    (("heavy_ball", lambda eta, b: 2 * b / eta), "b where 1 + b belongs"),
    (("nesterov", lambda eta, b: 2 * b / ((1 + 2 * b) * eta)), "b where 1 + b belongs"),
    (("heavy_ball", lambda eta, b: (2 + b) / eta), "2 + 2b, not 2 + b"),
    (("heavy_ball", lambda eta, b: 2 / (b * eta)), "you divide by b"),
    (("gd", lambda eta, b: 1 / eta), "converges in one step"),
    (("gd", lambda eta, b: 2 * eta), "eta in the numerator"),
    (("gd", lambda eta, b: (2 + 2 * b) / eta), "b must be ignored"),
]


@pytest.mark.parametrize("wrong, message", MISTAKES, ids=[m for _, m in MISTAKES])
def test_threshold_mistakes_are_named(wrong, message, capsys):
    assert edge.check_threshold(_only(wrong)) is False
    out = capsys.readouterr().out
    assert out.startswith("Not yet") and message in out, out


def test_threshold_unknown_mistake_gets_the_general_hint(capsys):
    assert edge.check_threshold(_only(("heavy_ball", lambda eta, b: 7 / eta))) is False
    assert "characteristic polynomial" in capsys.readouterr().out


def test_threshold_a_crash_is_feedback(capsys):
    def crashes(method, eta, b):
        raise KeyError(method)
    assert edge.check_threshold(crashes) is False
    assert "raised KeyError" in capsys.readouterr().out


# --------------------------------------------------------------------------- quadratic model


def _library(model, loss_fn, x, y, eta):
    return analysis.quadratic_model_change(model, loss_fn, x, y, eta).predicted


def _parts(model, loss_fn, x, y):
    """||g||^2, g^T H g, lambda_max and L from the dense Hessian (float64)."""
    from eosteach import hessian

    params = [p for p in model.parameters()]
    loss = loss_fn(model(x), y)
    g = torch.cat([t.reshape(-1) for t in torch.autograd.grad(loss, params)])
    H = hessian.dense_hessian(model, loss_fn, x, y)
    return float(g @ g), float(g @ H @ g), float(torch.linalg.eigvalsh(H)[-1]), float(loss.detach()), g


def test_predicted_change_correct_answer_passes(capsys):
    assert edge.check_predicted_change(_library) is True
    assert capsys.readouterr().out.startswith("Correct")


def test_predicted_change_accepts_a_0d_tensor(capsys):
    def as_tensor(model, loss_fn, x, y, eta):
        return torch.tensor(_library(model, loss_fn, x, y, eta), dtype=torch.float64)
    assert edge.check_predicted_change(as_tensor) is True


def test_predicted_change_stub_is_not_attempted(capsys):
    assert edge.check_predicted_change(_stub) is None
    out = capsys.readouterr().out
    assert "Not attempted yet" in out and "eosteach.analysis.quadratic_model_change" in out


def _observed(model, loss_fn, x, y, eta):
    from eosteach import hessian

    *_, loss, g = _parts(model, loss_fn, x, y)
    theta = hessian.flat_params(model)
    hessian.set_flat_params(model, theta - eta * g)
    with torch.no_grad():
        after = float(loss_fn(model(x), y))
    hessian.set_flat_params(model, theta)
    return after - loss


def _formula(f):
    def fn(model, loss_fn, x, y, eta):
        gg, ghg, top, loss, _ = _parts(model, loss_fn, x, y)
        return f(eta, gg, ghg, top, loss)
    return fn


PREDICTION_MISTAKES = [
    (_formula(lambda e, gg, ghg, top, L: -e * gg + e**2 * ghg), "missing the 1/2"),
    (_formula(lambda e, gg, ghg, top, L: e * gg + 0.5 * e**2 * ghg), "first-order term has the wrong sign"),
    (_formula(lambda e, gg, ghg, top, L: -e * gg - 0.5 * e**2 * ghg), "second-order term has the wrong sign"),
    (_formula(lambda e, gg, ghg, top, L: -e * gg + 0.5 * e * ghg), "needs eta^2"),
    (_formula(lambda e, gg, ghg, top, L: -e * gg), "first-order term alone"),
    (_formula(lambda e, gg, ghg, top, L: -e * gg + 0.5 * e**2 * top * gg), "sharpness S = lambda_max"),
    (_formula(lambda e, gg, ghg, top, L: L - e * gg + 0.5 * e**2 * ghg), "L(theta) plus the change"),
    (_observed, "observed change"),
]


@pytest.mark.parametrize("fn, message", PREDICTION_MISTAKES, ids=[m for _, m in PREDICTION_MISTAKES])
def test_predicted_change_mistakes_are_named(fn, message, capsys):
    assert edge.check_predicted_change(fn) is False
    out = capsys.readouterr().out
    assert out.startswith("Not yet") and message in out, out


def test_predicted_change_that_moves_the_parameters_is_caught(capsys):
    from eosteach import hessian

    def takes_the_step(model, loss_fn, x, y, eta):
        value = _library(model, loss_fn, x, y, eta)
        *_, g = _parts(model, loss_fn, x, y)
        hessian.set_flat_params(model, hessian.flat_params(model) - eta * g)
        return value
    assert edge.check_predicted_change(takes_the_step) is False
    assert "changed the model's parameters" in capsys.readouterr().out


def test_predicted_change_wrong_type_is_feedback(capsys):
    assert edge.check_predicted_change(lambda *a: [1.0, 2.0]) is False
    assert "one number" in capsys.readouterr().out


# --------------------------------------------------------------------------- exercise 1: both changes


def _pair_library(model, loss_fn, x, y, eta):
    return analysis.step_change(model, loss_fn, x, y, eta)


def test_step_change_correct_answer_passes(capsys):
    assert edge.check_step_change(_pair_library) is True
    assert capsys.readouterr().out.startswith("Correct")


def test_step_change_stub_is_not_attempted(capsys):
    assert edge.check_step_change(_stub) is None
    out = capsys.readouterr().out
    assert "Not attempted yet" in out and "eosteach.analysis.step_change" in out


def _with_observed(observed):
    def fn(model, loss_fn, x, y, eta):
        return _library(model, loss_fn, x, y, eta), observed(model, loss_fn, x, y, eta)
    return fn


def _uphill(model, loss_fn, x, y, eta):
    return _observed(model, loss_fn, x, y, -eta)


STEP_MISTAKES = [
    (lambda *a: (_observed(*a), _library(*a)), "swapped"),
    (lambda *a: (_formula(lambda e, gg, ghg, top, L: -e * gg + e**2 * ghg)(*a), _observed(*a)), "missing the 1/2"),
    (_with_observed(lambda *a: -_observed(*a)), "sign is reversed"),
    (_with_observed(_uphill), "along +g"),
    (_with_observed(lambda *a: 0.0), "evaluate the loss at theta - eta g"),
    (lambda *a: 1.0, "pair (predicted, observed)"),
]


@pytest.mark.parametrize("fn, message", STEP_MISTAKES, ids=[m for _, m in STEP_MISTAKES])
def test_step_change_mistakes_are_named(fn, message, capsys):
    assert edge.check_step_change(fn) is False
    out = capsys.readouterr().out
    assert out.startswith("Not yet") and message in out, out


def test_step_change_that_leaves_the_step_taken_is_caught(capsys):
    from eosteach import hessian

    def keeps_the_step(model, loss_fn, x, y, eta):
        pred = _library(model, loss_fn, x, y, eta)
        *_, loss, g = _parts(model, loss_fn, x, y)
        hessian.set_flat_params(model, hessian.flat_params(model) - eta * g)
        with torch.no_grad():
            return pred, float(loss_fn(model(x), y)) - loss
    assert edge.check_step_change(keeps_the_step) is False
    assert "left the model's parameters moved" in capsys.readouterr().out


# --------------------------------------------------------------------------- exercise 2: Adam


def test_adam_bisection_agrees_with_the_closed_form():
    for eta, b1 in edge.ADAM_CASES:
        assert edge.adam_stability_threshold(eta, b1) == pytest.approx(thresholds.adam(eta, b1), rel=1e-9)


def test_adam_correct_answer_passes(capsys):
    assert edge.check_adam_threshold(thresholds.adam) is True
    assert capsys.readouterr().out.startswith("Correct")


def test_adam_stub_is_not_attempted(capsys):
    assert edge.check_adam_threshold(_stub) is None
    out = capsys.readouterr().out
    assert "Not attempted yet" in out and "eosteach.thresholds.adam" in out


ADAM_MISTAKES = [
    (lambda e, b: (2 + 2 * b) / e, "heavy-ball's (2 + 2b)/eta"),
    (lambda e, b: 2 / e, "GD's 2/eta"),
    (lambda e, b: 2 / ((1 - b) * e), "effective step"),
    (lambda e, b: (1 + b) / ((1 - b) * e), "factor 2 is missing"),
    (lambda e, b: (2 + 2 * b) * (1 - b) / e, "multiply by (1 - beta1)"),
    (lambda e, b: 2 * e * (1 + b) / (1 - b), "eta in the numerator"),
    (lambda e, b: 7 / e, "eliminate m"),
]


@pytest.mark.parametrize("fn, message", ADAM_MISTAKES, ids=[m for _, m in ADAM_MISTAKES])
def test_adam_mistakes_are_named(fn, message, capsys):
    assert edge.check_adam_threshold(fn) is False
    out = capsys.readouterr().out
    assert out.startswith("Not yet") and message in out, out


def test_nesterov_one_plus_b_gets_its_own_message(capsys):
    assert edge.check_threshold(_only(("nesterov", lambda eta, b: (2 + 2 * b) / ((1 + b) * eta)))) is False
    out = capsys.readouterr().out
    assert out.index("(1 + b) in place of (1 + 2b)") < out.index("GD's 2/eta")
