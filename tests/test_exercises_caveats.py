"""The lesson-7 exercise checkers of ``eosteach.exercises.caveats``: a right answer (and the
library's own function) passes, each named mistake gets its own message, an untouched stub
gives None."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from eosteach import hessian, minimalist
from eosteach.exercises import caveats as ex


def stub(*args):
    raise NotImplementedError("not done yet")


def verdict(check, fn, capsys):
    result = check(fn)
    return result, capsys.readouterr().out


def _parts(model, loss_fn, x, y):
    _, g = hessian.flat_grad(model, loss_fn, x, y)
    return g, hessian.hvp(model, loss_fn, x, y, g)


def good_curvature(model, loss_fn, x, y):
    g, hg = _parts(model, loss_fn, x, y)
    return float(g @ hg / (g @ g))


# --------------------------------------------------------------------------- gradient curvature


def test_gradient_curvature_right_answers_pass(capsys):
    assert verdict(ex.check_gradient_curvature, good_curvature, capsys)[0] is True
    assert verdict(ex.check_gradient_curvature, hessian.gradient_curvature, capsys)[0] is True
    # a 0-d tensor is a number too
    tensor_answer = lambda *a: torch.tensor(good_curvature(*a))  # noqa: E731
    assert verdict(ex.check_gradient_curvature, tensor_answer, capsys)[0] is True


def test_gradient_curvature_stub_is_not_attempted(capsys):
    result, out = verdict(ex.check_gradient_curvature, stub, capsys)
    assert result is None and "Not attempted yet" in out and "eosteach.hessian.gradient_curvature" in out


@pytest.mark.parametrize("wrong, message", [
    (lambda m, f, x, y: float((lambda g, hg: g @ hg)(*_parts(m, f, x, y))), "that is g^T H g"),
    (lambda m, f, x, y: float((lambda g, hg: g @ hg / g.norm())(*_parts(m, f, x, y))), "divided by ||g||"),
    (lambda m, f, x, y: float((lambda g, hg: hg.norm() / g.norm())(*_parts(m, f, x, y))), "||H g|| / ||g||"),
    (lambda m, f, x, y: hessian.sharpness(m, f, x, y, tol=1e-12, max_products=200).top, "largest eigenvalue"),
    (lambda m, f, x, y: float((lambda g, hg: g @ g)(*_parts(m, f, x, y))), "squared gradient norm"),
    (lambda *a: 2 * good_curvature(*a), "twice too large"),
    (lambda *a: 0.5 * good_curvature(*a), "half the answer"),
    (lambda *a: -good_curvature(*a), "sign"),
    (lambda m, f, x, y: x.shape[0] * good_curvature(m, f, x, y), "SUMMED"),
    (lambda *a: 1.234, "compare with g^T (H g)"),
], ids=["unnormalised", "norm-not-squared", "stretch", "top-eigenvalue", "gradient", "times-2", "half", "sign",
        "summed", "other"])
def test_gradient_curvature_named_mistakes(wrong, message, capsys):
    result, out = verdict(ex.check_gradient_curvature, wrong, capsys)
    assert result is False and message in out


def test_gradient_curvature_catches_a_step_and_a_vector(capsys):
    def steps(model, loss_fn, x, y):
        value = good_curvature(model, loss_fn, x, y)
        with torch.no_grad():
            next(model.parameters()).add_(0.1)
        return value

    result, out = verdict(ex.check_gradient_curvature, steps, capsys)
    assert result is False and "changed the model's parameters" in out
    result, out = verdict(ex.check_gradient_curvature, lambda *a: _parts(*a)[1], capsys)
    assert result is False and "return one number" in out
    result, out = verdict(ex.check_gradient_curvature, lambda *a: 1 / 0, capsys)
    assert result is False and "ZeroDivisionError" in out


# --------------------------------------------------------------------------- balanced sharpness


def good_balanced(X, y, depth):
    X, y = np.asarray(X, float), np.asarray(y, float)
    w = np.linalg.pinv(X) @ y
    Q, n = w @ w, X.shape[0]
    G = (Q ** ((depth - 1) / depth) * X @ X.T + (depth - 1) * Q ** (-1 / depth) * np.outer(y, y)) / n
    return float(np.linalg.eigvalsh(G)[-1])


def test_balanced_sharpness_right_answers_pass(capsys):
    assert verdict(ex.check_balanced_sharpness, good_balanced, capsys)[0] is True
    assert verdict(ex.check_balanced_sharpness, minimalist.balanced_sharpness, capsys)[0] is True


def test_balanced_sharpness_stub_is_not_attempted(capsys):
    result, out = verdict(ex.check_balanced_sharpness, stub, capsys)
    assert result is None and "Not attempted yet" in out and "eosteach.minimalist.balanced_sharpness" in out


def _aligned(X, y, depth):
    Q = minimalist.difficulty(X, y)
    return float(minimalist.sharpness_formula(Q, depth, minimalist.top_singular_value(X), X.shape[0]))


def _x_term_only(X, y, depth):
    Q = minimalist.difficulty(X, y)
    return minimalist.top_singular_value(X) ** 2 * Q ** ((depth - 1) / depth) / X.shape[0]


@pytest.mark.parametrize("wrong, message", [
    (_aligned, "exact only when y lies along"),
    (_x_term_only, "y y^T term is missing"),
    (lambda X, y, D: good_balanced(X, y, D) * X.shape[0], "N times too large"),
    (lambda X, y, D: good_balanced(X, y, D) / X.shape[0], "N times too small"),
    (lambda X, y, D: 1.0, "the LARGEST eigenvalue"),
    (lambda X, y, D: [][0], "IndexError"),
    (lambda X, y, D: np.array([good_balanced(X, y, D)]), "not an array of shape (1,)"),
], ids=["aligned-formula", "x-term-only", "times-N", "over-N", "other", "error", "array"])
def test_balanced_sharpness_named_mistakes(wrong, message, capsys):
    result, out = verdict(ex.check_balanced_sharpness, wrong, capsys)
    assert result is False and message in out
