"""The lesson-7 exercise checkers of ``eosteach.exercises.caveats``: a right answer (and the
library's own function) passes, each named mistake gets its own message, an untouched stub
gives None."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from eosteach import hessian, minimalist
from eosteach.exercises import caveats as ex


def stub(*args, **kwargs):
    raise NotImplementedError("not done yet")


def verdict(check, fn, capsys):
    result = check(fn)
    return result, capsys.readouterr().out


def _parts(model, loss_fn, x, y):
    """(g, H g) by plain autograd: the checker of Exercise 1(a) rejects calls of eosteach.hessian."""
    params = [p for p in model.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss_fn(model(x), y), params, create_graph=True)
    g = torch.cat([t.reshape(-1) for t in grads])
    hg = torch.cat([t.reshape(-1) for t in torch.autograd.grad(g @ g.detach(), params)])
    return g.detach(), hg


def _top(model, loss_fn, x, y):
    """The top eigenvalue of the batch Hessian, from a dense Hessian (no eosteach.hessian)."""
    _, H = ex._dense_reference(model, loss_fn, x, y)
    return float(torch.linalg.eigvalsh(H)[-1])


def good_curvature(model, loss_fn, x, y):
    g, hg = _parts(model, loss_fn, x, y)
    return float(g @ hg / (g @ g))


# --------------------------------------------------------------------------- gradient curvature


def test_gradient_curvature_right_answers_pass(capsys):
    assert verdict(ex.check_gradient_curvature, good_curvature, capsys)[0] is True
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
    (_top, "largest eigenvalue"),
    (lambda m, f, x, y: float((lambda g, hg: g @ g)(*_parts(m, f, x, y))), "squared gradient norm"),
    (lambda *a: 2 * good_curvature(*a), "both copies of g attached"),
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


def test_gradient_curvature_rejects_the_library(capsys):
    """Writing the Hessian-vector product is the exercise: a call of eosteach.hessian is named,
    even when the value is right, and the module is left as it was."""
    hvp_before = hessian.hvp
    result, out = verdict(ex.check_gradient_curvature, hessian.gradient_curvature, capsys)
    assert result is False and "you called eosteach.hessian." in out
    g_hvp = lambda m, f, x, y: float((lambda g: g @ hessian.hvp(m, f, x, y, g) / (g @ g))(_parts(m, f, x, y)[0]))  # noqa: E731
    result, out = verdict(ex.check_gradient_curvature, g_hvp, capsys)
    assert result is False and "you called eosteach.hessian.hvp" in out
    assert hessian.hvp is hvp_before


def test_gradient_curvature_undetached_double_product_is_named(capsys):
    """The likely source of a factor 2: differentiating g . g with both copies on the graph."""
    def undetached(model, loss_fn, x, y):
        params = list(model.parameters())
        grads = torch.autograd.grad(loss_fn(model(x), y), params, create_graph=True)
        g = torch.cat([t.reshape(-1) for t in grads])
        hg = torch.cat([t.reshape(-1) for t in torch.autograd.grad(g @ g, params)])  # = 2 H g
        g = g.detach()
        return float(g @ hg / (g @ g))

    result, out = verdict(ex.check_gradient_curvature, undetached, capsys)
    assert result is False and "detach one copy" in out


# --------------------------------------------------------------------------- batch sharpness


def _values(model, loss_fn, x, y, batch_size, n_batches, generator):
    values = []
    for _ in range(n_batches):
        idx = torch.randperm(x.shape[0], generator=generator)[:batch_size]
        values.append(hessian.gradient_curvature(model, loss_fn, x[idx], y[idx]))
    return np.array(values)


def _full_values(model, loss_fn, x, y, batch_size, n_batches, generator, rule=None):
    """Per batch: g_B^T H g_B / ||g_B||^2, H the full loss's Hessian (or ``rule(g_B, H g_B)``)."""
    values = []
    for _ in range(n_batches):
        idx = torch.randperm(x.shape[0], generator=generator)[:batch_size]
        _, g_b = hessian.flat_grad(model, loss_fn, x[idx], y[idx])
        hg = hessian.hvp(model, loss_fn, x, y, g_b)
        values.append(float(g_b @ hg / (g_b @ g_b)) if rule is None else float(rule(g_b, hg)))
    return np.array(values)


def good_batch_sharpness(model, loss_fn, x, y, batch_size, n_batches, generator):
    state = generator.get_state()
    v = _values(model, loss_fn, x, y, batch_size, n_batches, generator)
    full = _full_values(model, loss_fn, x, y, batch_size, n_batches, torch.Generator().set_state(state))
    return float(v.mean()), float(v.std(ddof=1) / np.sqrt(n_batches)), float(full.mean())


def _mean_only(fn):
    """A wrong mean, paired with a standard error and a full curvature (the checker judges the mean first)."""
    return lambda *a, **kw: (fn(*a, **kw), 0.0, 0.0)


def _se(rule):
    """The right mean with the standard error computed by ``rule(values, k)``."""
    def answer(model, loss_fn, x, y, b, k, generator):
        state = generator.get_state()
        v = _values(model, loss_fn, x, y, b, k, generator)
        full = _full_values(model, loss_fn, x, y, b, k, torch.Generator().set_state(state))
        return float(v.mean()), float(rule(v, k)), float(full.mean())
    return answer


def _full(rule):
    """The right mean and standard error with the full-loss curvature computed by
    ``rule(model, loss_fn, x, y, b, k, generator)``."""
    def answer(model, loss_fn, x, y, b, k, generator):
        state = generator.get_state()
        mean, se, _ = good_batch_sharpness(model, loss_fn, x, y, b, k, generator)
        return mean, se, float(rule(model, loss_fn, x, y, b, k, torch.Generator().set_state(state)))
    return answer


def _full_with_batch_hessian(model, loss_fn, x, y, b, k, generator):
    return _values(model, loss_fn, x, y, b, k, generator).mean()


def _full_along_g(model, loss_fn, x, y, b, k, generator):
    _, g = hessian.flat_grad(model, loss_fn, x, y)
    return float(g @ hessian.hvp(model, loss_fn, x, y, g) / (g @ g))


def _full_top(model, loss_fn, x, y, b, k, generator):
    return hessian.sharpness(model, loss_fn, x, y, tol=1e-12, max_products=200).top


def _full_ratio_of_means(model, loss_fn, x, y, b, k, generator):
    state = generator.get_state()
    num = _full_values(model, loss_fn, x, y, b, k, generator, rule=lambda g, hg: g @ hg)
    den = _full_values(model, loss_fn, x, y, b, k, torch.Generator().set_state(state), rule=lambda g, hg: g @ g)
    return num.sum() / den.sum()


def _full_unnormalised(model, loss_fn, x, y, b, k, generator):
    return _full_values(model, loss_fn, x, y, b, k, generator, rule=lambda g, hg: g @ hg).mean()


def _full_summed(model, loss_fn, x, y, b, k, generator):
    return x.shape[0] * _full_values(model, loss_fn, x, y, b, k, generator).mean()


def _batch_parts(model, loss_fn, x, y, batch_size, n_batches, generator, replace=False):
    out = []
    for _ in range(n_batches):
        if replace:
            idx = torch.randint(0, x.shape[0], (batch_size,), generator=generator)
        else:
            idx = torch.randperm(x.shape[0], generator=generator)[:batch_size]
        out.append((idx, *_parts(model, loss_fn, x[idx], y[idx])))
    return out


def _ratio_of_means(model, loss_fn, x, y, b, k, generator):
    parts = _batch_parts(model, loss_fn, x, y, b, k, generator)
    return float(sum(g @ hg for _, g, hg in parts) / sum(g @ g for _, g, _ in parts))


def _full_gradient(model, loss_fn, x, y, b, k, generator):
    _, g_full = hessian.flat_grad(model, loss_fn, x, y)
    vals = [float(g_full @ hessian.hvp(model, loss_fn, x[idx], y[idx], g_full) / (g_full @ g_full))
            for idx, _, _ in _batch_parts(model, loss_fn, x, y, b, k, generator)]
    return float(np.mean(vals))


def _top_eigenvalue(model, loss_fn, x, y, b, k, generator):
    vals = [hessian.sharpness(model, loss_fn, x[idx], y[idx], tol=1e-12, max_products=200).top
            for idx, _, _ in _batch_parts(model, loss_fn, x, y, b, k, generator)]
    return float(np.mean(vals))


def _with_replacement(model, loss_fn, x, y, b, k, generator):
    parts = _batch_parts(model, loss_fn, x, y, b, k, generator, replace=True)
    return float(np.mean([float(g @ hg / (g @ g)) for _, g, hg in parts]))


def _global_rng(model, loss_fn, x, y, b, k, generator):
    torch.manual_seed(1234)
    return float(_values(model, loss_fn, x, y, b, k, None).mean())


def _wrong_size(model, loss_fn, x, y, b, k, generator):
    return float(_values(model, loss_fn, x, y, max(1, b - 1), k, generator).mean())


def test_batch_sharpness_right_answers_pass(capsys):
    assert verdict(ex.check_batch_sharpness, good_batch_sharpness, capsys)[0] is True
    # the library's mean, with the standard error of the same batches, passes too
    def library(model, loss_fn, x, y, b, k, generator):
        state = generator.get_state()
        mean = hessian.batch_sharpness(model, loss_fn, x, y, b, k, generator=generator)
        v = _values(model, loss_fn, x, y, b, k, torch.Generator().set_state(state))
        full = _full_values(model, loss_fn, x, y, b, k, torch.Generator().set_state(state))
        return mean, float(v.std(ddof=1) / np.sqrt(k)), float(full.mean())
    assert verdict(ex.check_batch_sharpness, library, capsys)[0] is True


def test_batch_sharpness_reference_is_the_library_with_the_same_generator():
    net, loss_fn, x, y = ex._batch_problem()
    for b, k, seed in ((4, 6, 11), (7, 5, 12), (12, 3, 13)):
        parts = [ex._dense_reference(net, loss_fn, x[i], y[i]) for i in ex._batches(12, b, k, seed)]
        dense = float(np.mean([float(g @ H @ g) / float(g @ g) for g, H in parts]))
        library = hessian.batch_sharpness(net, loss_fn, x, y, b, k, generator=torch.Generator().manual_seed(seed))
        assert np.isclose(dense, library, rtol=1e-9)


def test_batch_sharpness_stub_is_not_attempted(capsys):
    result, out = verdict(ex.check_batch_sharpness, stub, capsys)
    assert result is None and "Not attempted yet" in out and "eosteach.hessian.batch_curvatures" in out


@pytest.mark.parametrize("wrong, message", [
    (_mean_only(_ratio_of_means), "ratio of means"),
    (_mean_only(_full_gradient), "full-batch gradient"),
    (_mean_only(_top_eigenvalue), "top eigenvalue of the batch Hessians"),
    (_mean_only(_with_replacement), "WITHOUT replacement"),
    (lambda *a, **kw: (2 * good_batch_sharpness(*a, **kw)[0], 0.0, 0.0), "both copies of g attached"),
    (lambda m, f, x, y, b, k, generator: (float(_values(m, f, x, y, b, 1, generator)[0]), 0.0, 0.0),
     "first batch alone"),
    (_mean_only(_global_rng), "the generator you are given"),
    (_mean_only(_wrong_size), "each batch has batch_size"),
    (lambda *a, **kw: good_batch_sharpness(*a, **kw)[0], "return three numbers"),
    (lambda *a, **kw: good_batch_sharpness(*a, **kw)[:2], "return three numbers"),
    (lambda *a, **kw: [1.0, 2.0, 3.0, 4.0], "return three numbers"),
    (lambda *a, **kw: 1 / 0, "ZeroDivisionError"),
    (_se(lambda v, k: v.std(ddof=1)), "the spread"),
    (_se(lambda v, k: v.std(ddof=0) / np.sqrt(k)), "ddof = 0"),
    (_se(lambda v, k: v.std(ddof=1) / k), "you divided by k"),
    (_se(lambda v, k: v.var(ddof=1) / np.sqrt(k)), "uses the variance"),
    (_se(lambda v, k: v.var(ddof=1) / k), "squared standard error"),
    (_se(lambda v, k: 1.0), "divided by sqrt(k)"),
    (_full(_full_with_batch_hessian), "your batch sharpness again"),
    (_full(_full_along_g), "along the full gradient g"),
    (_full(_full_top), "full-batch sharpness S"),
    (_full(_full_ratio_of_means), "ratio of means: divide each batch"),
    (_full(_full_unnormalised), "without the division by ||g_B||^2"),
    (_full(lambda *a: 2 * _full_values(*a).mean()), "twice too large"),
    (_full(_full_summed), "m times too large"),
    (_full(lambda *a: 1.0), "one Hessian-vector product H g_B per batch"),
], ids=["ratio-of-means", "full-gradient", "top-eigenvalue", "with-replacement", "times-2", "one-batch",
        "global-rng", "wrong-size", "mean-only", "two-numbers", "four-numbers", "error", "se-spread", "se-ddof0",
        "se-over-k", "se-variance", "se-squared", "se-other", "full-batch-hessian", "full-along-g", "full-top",
        "full-ratio-of-means", "full-unnormalised", "full-times-2", "full-summed", "full-other"])
def test_batch_sharpness_named_mistakes(wrong, message, capsys):
    result, out = verdict(ex.check_batch_sharpness, wrong, capsys)
    assert result is False and message in out, out


def test_batch_sharpness_catches_a_step(capsys):
    def steps(model, loss_fn, x, y, b, k, generator):
        value = good_batch_sharpness(model, loss_fn, x, y, b, k, generator)
        with torch.no_grad():
            next(model.parameters()).add_(0.1)
        return value

    result, out = verdict(ex.check_batch_sharpness, steps, capsys)
    assert result is False and "changed the model's parameters" in out


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


def _no_square_root(X, y, depth):
    X, y = np.asarray(X, float), np.asarray(y, float)
    w = np.linalg.pinv(X) @ y
    a = (w @ w) ** (1 / depth)                     # a^D = Q instead of sqrt(Q)
    p = a ** (depth - 1)
    J = np.column_stack([p * X] + [y / a] * (depth - 1))
    return float(np.linalg.eigvalsh(J @ J.T / X.shape[0])[-1])


def _unbalanced(X, y, depth):
    X, y = np.asarray(X, float), np.asarray(y, float)
    J = np.column_stack([X] + [y] * (depth - 1))       # u = w*, v_i = 1: interpolating, not balanced
    return float(np.linalg.eigvalsh(J @ J.T / X.shape[0])[-1])


def _one_column(X, y, depth):
    X, y = np.asarray(X, float), np.asarray(y, float)
    w = np.linalg.pinv(X) @ y
    a = np.linalg.norm(w) ** (1 / depth)
    J = np.column_stack([a ** (depth - 1) * X, y / a])  # one y/a column instead of D - 1
    return float(np.linalg.eigvalsh(J @ J.T / X.shape[0])[-1])


@pytest.mark.parametrize("wrong, message", [
    (_aligned, "exact only when y lies along"),
    (_unbalanced, "not the balanced one"),
    (_one_column, "you kept only one"),
    (_x_term_only, "y y^T term is missing"),
    (_no_square_root, "missing square root"),
    (lambda X, y, D: good_balanced(X, y, D) * X.shape[0], "N times too large"),
    (lambda X, y, D: good_balanced(X, y, D) / X.shape[0], "N times too small"),
    (lambda X, y, D: 1.0, "the LARGEST eigenvalue"),
    (lambda X, y, D: [][0], "IndexError"),
    (lambda X, y, D: np.array([good_balanced(X, y, D)]), "not an array of shape (1,)"),
], ids=["aligned-formula", "unbalanced", "one-column", "x-term-only", "no-square-root", "times-N", "over-N", "other", "error", "array"])
def test_balanced_sharpness_named_mistakes(wrong, message, capsys):
    result, out = verdict(ex.check_balanced_sharpness, wrong, capsys)
    assert result is False and message in out
