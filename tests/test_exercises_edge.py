"""Lesson 4's checkers: a correct answer passes, each likely mistake gets its message, an
untouched stub reads as "not attempted yet"."""

from __future__ import annotations

import pytest
import torch

from eosteach import analysis, thresholds
from eosteach.exercises import edge


def _stub(*args):
    raise NotImplementedError("the largest stable sharpness of each method")


# --------------------------------------------------------------------------- thresholds


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


def assert_named(check, fn, message, capsys):
    """The checker rejects ``fn`` and its feedback names the mistake."""
    assert check(fn) is False
    out = capsys.readouterr().out
    assert out.startswith("Not yet") and message in out, out


@pytest.mark.parametrize("fn, message", STEP_MISTAKES, ids=[m for _, m in STEP_MISTAKES])
def test_step_change_mistakes_are_named(fn, message, capsys):
    assert_named(edge.check_step_change, fn, message, capsys)


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


def test_step_change_that_undoes_the_step_by_adding_eta_g_back_passes(capsys):
    """p.sub_(eta g) then p.add_(eta g) leaves rounding error, not a moved parameter."""
    def undo_in_place(model, loss_fn, x, y, eta):
        pred = _library(model, loss_fn, x, y, eta)
        params = list(model.parameters())
        loss = loss_fn(model(x), y)
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            for p, g in zip(params, grads):
                p.sub_(eta * g)
            after = float(loss_fn(model(x), y))
            for p, g in zip(params, grads):
                p.add_(eta * g)
        return pred, after - float(loss.detach())
    assert edge.check_step_change(undo_in_place) is True, capsys.readouterr().out


def test_step_change_that_leaves_a_small_shift_is_told_to_restore_from_a_copy(capsys):
    from eosteach import hessian

    def nudges(model, loss_fn, x, y, eta):
        out = analysis.step_change(model, loss_fn, x, y, eta)
        hessian.set_flat_params(model, hessian.flat_params(model) * (1 + 1e-9))
        return out
    assert edge.check_step_change(nudges) is False
    out = capsys.readouterr().out
    assert "left the model's parameters moved" in out and "restore theta from a copy" in out


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
    (lambda e, b: 7 / e, "characteristic polynomial"),
]


@pytest.mark.parametrize("fn, message", ADAM_MISTAKES, ids=[m for _, m in ADAM_MISTAKES])
def test_adam_mistakes_are_named(fn, message, capsys):
    assert_named(edge.check_adam_threshold, fn, message, capsys)


def test_adam_fallback_message_does_not_give_the_recurrence(capsys):
    """The unnamed-mistake message points the way (eliminate m, lambda = -1) without the formula."""
    assert edge.check_adam_threshold(lambda e, b: 7 / e) is False
    out = capsys.readouterr().out
    assert "eliminate m" in out and "(1 + beta1 - eta" not in out, out
