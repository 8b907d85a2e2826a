"""The lesson-3 exercise checkers of ``eosteach.exercises.sharpness`` and the library
function ``widgets.training.rayleigh_ritz`` behind the Rayleigh-Ritz exercise: a right
answer passes, each named mistake gets its own message, an untouched stub gives None."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from eosteach import hessian
from eosteach.exercises import sharpness as ex
from eosteach.widgets.training import rayleigh_ritz


def _flat(parts):
    return torch.cat([t.reshape(-1) for t in parts])


def good_hvp(model, loss_fn, x, y, v):
    params = list(model.parameters())
    g = _flat(torch.autograd.grad(loss_fn(model(x), y), params, create_graph=True))
    return _flat(torch.autograd.grad(g @ v, params))


def stub(*args):
    raise NotImplementedError("not done yet")


def verdict(check, fn, capsys):
    result = check(fn)
    return result, capsys.readouterr().out


# --------------------------------------------------------------------------- hvp


def test_hvp_right_answer_and_library_pass(capsys):
    assert verdict(ex.check_hvp, good_hvp, capsys)[0] is True
    assert verdict(ex.check_hvp, hessian.hvp, capsys)[0] is True


def test_hvp_stub_is_not_attempted(capsys):
    result, out = verdict(ex.check_hvp, stub, capsys)
    assert result is None and "Not attempted yet" in out and "eosteach.hessian.hvp" in out


def no_create_graph(model, loss_fn, x, y, v):
    params = list(model.parameters())
    g = _flat(torch.autograd.grad(loss_fn(model(x), y), params))
    return _flat(torch.autograd.grad(g @ v, params))


def the_gradient(model, loss_fn, x, y, v):
    return _flat(torch.autograd.grad(loss_fn(model(x), y), list(model.parameters())))


def pieces(model, loss_fn, x, y, v):
    params = list(model.parameters())
    g = _flat(torch.autograd.grad(loss_fn(model(x), y), params, create_graph=True))
    return torch.autograd.grad(g @ v, params)


def in_place(model, loss_fn, x, y, v):
    out = good_hvp(model, loss_fn, x, y, v)
    v.zero_()
    return out


@pytest.mark.parametrize("fn, message", [
    (no_create_graph, "create_graph=True"),
    (the_gradient, "returned the gradient itself"),
    (pieces, "flatten each and concatenate"),
    (lambda m, f, x, y, v: 2 * good_hvp(m, f, x, y, v), "you return 2 x Hv"),
    (lambda m, f, x, y, v: 0.5 * good_hvp(m, f, x, y, v), "you return 0.5 x Hv"),
    (in_place, "changed v in place"),
    (lambda m, f, x, y, v: good_hvp(m, f, x, y, v)[:-1], "flat vector of length n"),
    (lambda m, f, x, y, v: good_hvp(m, f, x, y, v) + 1e-3, "grad L(theta) . v"),
])
def test_hvp_named_mistakes(fn, message, capsys):
    result, out = verdict(ex.check_hvp, fn, capsys)
    assert result is False and message in out, out


# --------------------------------------------------------------------------- power iteration


def good_power(hvp, n, n_iters):
    v = torch.randn(n, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    v = v / v.norm()
    lam = 0.0
    for _ in range(n_iters):
        w = hvp(v)
        lam = float(v @ w)
        v = w / w.norm()
    return lam


def test_power_iteration_right_and_stub(capsys):
    assert verdict(ex.check_power_iteration, good_power, capsys)[0] is True
    result, out = verdict(ex.check_power_iteration, stub, capsys)
    assert result is None and "eosteach.hessian.power_iteration" in out


def twice_per_iteration(hvp, n, n_iters):
    v = torch.ones(n, dtype=torch.float64) / n ** 0.5
    for _ in range(n_iters):
        w = hvp(v)
        lam = float(v @ hvp(v))
        v = w / w.norm()
    return lam


def norm_of_product(hvp, n, n_iters):  # |lambda| with a unit vector: the sign is lost
    v = torch.ones(n, dtype=torch.float64) / n ** 0.5
    for _ in range(n_iters):
        w = hvp(v)
        lam = float(w.norm())
        v = w / w.norm()
    return lam


def never_normalised(hvp, n, n_iters):  # overflows: inf / inf = nan
    v = torch.ones(n, dtype=torch.float64)
    for _ in range(n_iters):
        w = hvp(v)
        lam = float(v @ w / (v @ v))
        v = w
    return lam


def lanczos_top(hvp, n, n_iters):  # lambda_max, not the eigenvalue of largest magnitude
    return float(hessian.lanczos(hvp, n, 1, tol=1e-10, max_products=n_iters, dtype=torch.float64).eigenvalues[0])


def test_power_iteration_library_passes_and_network_case_is_lambda_min(capsys):
    lib = lambda hvp, n, k: float(hessian.power_iteration(hvp, n, tol=1e-9, max_products=k,  # noqa: E731
                                                          dtype=torch.float64).eigenvalues[0])
    result, out = verdict(ex.check_power_iteration, lib, capsys)
    assert result is True and "-2.7722" in out and "lambda_max = 2.6892" in out, out
    w = np.linalg.eigvalsh(ex.tiny_problem(0)[4].numpy())
    assert abs(w[0]) > abs(w[-1])  # the network case is the dominant-negative one
    w = np.linalg.eigvalsh(ex._dominant_negative_matrix())
    assert np.isclose(w[0], -9.0) and np.isclose(w[-1], 6.0)


@pytest.mark.parametrize("fn, message", [
    (lambda hvp, n, k: float(hvp(torch.ones(n, dtype=torch.float64)).norm()), "not ||Hv|| of an unnormalised"),
    (norm_of_product, "you lost the sign"),
    (lambda hvp, n, k: abs(good_power(hvp, n, k)), "you lost the sign"),
    (never_normalised, "normalise v after every product, v <- Hv / ||Hv||"),
    (lanczos_top, "you return lambda_max = 6"),
    (twice_per_iteration, "one product per iteration"),
    (lambda hvp, n, k: torch.ones(n), "one number"),
    (lambda hvp, n, k: 1 / 0, "ZeroDivisionError"),
])
def test_power_iteration_named_mistakes(fn, message, capsys):
    result, out = verdict(ex.check_power_iteration, fn, capsys)
    assert result is False and message in out, out


# --------------------------------------------------------------------------- Rayleigh-Ritz


def test_rayleigh_ritz_library_matches_dense_eigensolve():
    gen = torch.Generator().manual_seed(0)
    A = torch.randn(30, 30, generator=gen, dtype=torch.float64)
    A = A + A.T
    Q, _ = torch.linalg.qr(torch.randn(30, 30, generator=gen, dtype=torch.float64))
    values, x = rayleigh_ritz(Q, A @ Q)  # full basis: the eigenvalues of A
    assert torch.allclose(values, torch.linalg.eigvalsh(A).flip(0), atol=1e-10)
    assert abs(float(x.norm()) - 1) < 1e-12
    assert torch.allclose(A @ x, values[0] * x, atol=1e-9)
    Qk = Q[:, :5].contiguous()
    vk, xk = rayleigh_ritz(Qk, A @ Qk)
    assert torch.all(vk[:-1] >= vk[1:]) and float(vk[0]) <= float(torch.linalg.eigvalsh(A)[-1]) + 1e-12
    # Galerkin condition: the residual of the top Ritz pair is orthogonal to span(Q).
    assert float((Qk.T @ (A @ xk - vk[0] * xk)).abs().max()) < 1e-10


def test_rayleigh_ritz_bad_input():
    Q, _ = torch.linalg.qr(torch.randn(6, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="same shape"):
        rayleigh_ritz(Q, torch.zeros(6, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match="orthonormal"):
        rayleigh_ritz(2 * Q, Q)
    with pytest.raises(ValueError, match="Q must be a 2-D"):
        rayleigh_ritz(Q[:, 0], Q[:, 0])
    with pytest.raises(ValueError, match="between 1 and n"):
        rayleigh_ritz(torch.zeros(3, 0, dtype=torch.float64), torch.zeros(3, 0, dtype=torch.float64))


def rr_ascending(Q, HQ):
    values, x = rayleigh_ritz(Q, HQ)
    return values.flip(0), x


def rr_by_magnitude(Q, HQ):
    values, x = rayleigh_ritz(Q, HQ)
    return values[values.abs().argsort(descending=True)], x


def rr_no_symmetrise(Q, HQ):
    w, Y = torch.linalg.eigh(Q.T @ HQ)
    return w.flip(0), Q @ Y[:, -1]


def rr_diagonal(Q, HQ):
    return torch.diagonal(Q.T @ HQ).sort(descending=True).values, Q[:, 0]


def rr_squares(Q, HQ):
    w, Y = torch.linalg.eigh(HQ.T @ HQ)
    return w.flip(0), Q @ Y[:, -1]


def rr_small_vector(Q, HQ):
    T = Q.T @ HQ
    w, Y = torch.linalg.eigh(0.5 * (T + T.T))
    return w.flip(0), Y[:, -1]


def rr_smallest_vector(Q, HQ):
    T = Q.T @ HQ
    w, Y = torch.linalg.eigh(0.5 * (T + T.T))
    return w.flip(0), Q @ Y[:, 0]


def rr_unnormalised(Q, HQ):
    values, x = rayleigh_ritz(Q, HQ)
    return values, 3 * x


def test_rayleigh_ritz_right_answer_and_stub(capsys):
    assert verdict(ex.check_rayleigh_ritz, rayleigh_ritz, capsys)[0] is True
    result, out = verdict(ex.check_rayleigh_ritz, stub, capsys)
    assert result is None and "eosteach.widgets.training.rayleigh_ritz" in out


@pytest.mark.parametrize("fn, message", [
    (rr_ascending, "ascending order"),
    (rr_by_magnitude, "not by magnitude"),
    (rr_no_symmetrise, "symmetrise it"),
    (rr_diagonal, "diagonal entries of Q^T H Q"),
    (rr_squares, "Q^T H^2 Q"),
    (rr_small_vector, "map it back with Q y"),
    (rr_smallest_vector, "smallest (most negative) Ritz value"),
    (rr_unnormalised, "unit length"),
    (lambda Q, HQ: rayleigh_ritz(Q, HQ)[0], "return a pair"),
])
def test_rayleigh_ritz_named_mistakes(fn, message, capsys):
    result, out = verdict(ex.check_rayleigh_ritz, fn, capsys)
    assert result is False and message in out, out


def test_rayleigh_ritz_cases_are_what_the_messages_say():
    cases, B = ex._rayleigh_ritz_cases()
    (_, Q, HQ), (_, Qf, BQ), (_, Qn, HQn) = cases
    # The first case's most negative Ritz value is larger in magnitude than its top one.
    w = np.linalg.eigvalsh(Q.T @ HQ)
    assert abs(w[0]) > abs(w[-1])
    assert np.allclose(Q.T @ Q, np.eye(Q.shape[1]), atol=1e-12)
    # The noisy case's projection is measurably asymmetric.
    T = Qn.T @ HQn
    assert np.abs(T - T.T).max() > 1e-4


# --------------------------------------------------------------------------- Krylov basis


def test_krylov_basis_spans_the_krylov_space_and_feeds_rayleigh_ritz():
    from eosteach.widgets.training import krylov_basis

    gen = torch.Generator().manual_seed(2)
    A = torch.randn(40, 40, generator=gen, dtype=torch.float64)
    A = A + A.T
    v0 = torch.randn(40, generator=gen, dtype=torch.float64)
    calls = []
    Q, HQ = krylov_basis(lambda q: calls.append(1) or A @ q, v0, 12)
    assert len(calls) == 12 and Q.shape == HQ.shape == (40, 12)
    assert torch.allclose(Q.T @ Q, torch.eye(12, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(HQ, A @ Q, atol=1e-12)
    # Q spans {v0, A v0, ..., A^11 v0}: each Krylov vector has no component outside span(Q).
    K = torch.stack([torch.linalg.matrix_power(A, j) @ v0 for j in range(12)], dim=1)
    K = K / K.norm(dim=0)
    assert float((K - Q @ (Q.T @ K)).norm()) < 1e-8
    # Lanczos's tridiagonal structure: Q^T A Q has no entries beyond the first off-diagonals.
    T = Q.T @ HQ
    assert float(torch.triu(T, 2).abs().max()) < 1e-8 * float(T.abs().max())
    top = float(rayleigh_ritz(Q, HQ)[0][0])
    assert top <= float(torch.linalg.eigvalsh(A)[-1]) + 1e-10


def test_krylov_basis_bad_input():
    from eosteach.widgets.training import krylov_basis

    A = torch.eye(5, dtype=torch.float64)
    with pytest.raises(ValueError, match="stopped growing"):
        krylov_basis(lambda q: A @ q, torch.ones(5, dtype=torch.float64), 3)  # v0 is an eigenvector
    with pytest.raises(ValueError, match="k must be at most"):
        krylov_basis(lambda q: A @ q, torch.ones(5, dtype=torch.float64), 6)
    with pytest.raises(ValueError, match="v0"):
        krylov_basis(lambda q: A @ q, torch.ones(2, 2, dtype=torch.float64), 1)


# --------------------------------------------------------------------------- the sweep figure


def _fake_run(eta, steps=100):
    from types import SimpleNamespace

    step = np.arange(steps)
    eig_step = step[::10]
    sharpness = np.minimum(50 + eig_step, 2 / eta)
    return SimpleNamespace(metrics={"step": step, "loss": np.exp(-step / 50), "eig_step": eig_step,
                                    "sharpness": sharpness})


def test_step_size_sweep_draws_one_colour_per_eta_with_its_threshold():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from eosteach.plotting import step_size_sweep, sweep_colors

    fig, (ax_l, ax_s) = plt.subplots(1, 2)
    sweep = {2 / 100: _fake_run(2 / 100), 2 / 60: _fake_run(2 / 60), 2 / 80: _fake_run(2 / 80)}
    colors = step_size_sweep(ax_l, ax_s, sweep, title="net")
    assert colors == sweep_colors(3) and len(set(colors)) == 3
    # largest eta first; each sharpness curve has a dashed threshold line of its own colour at 2/eta
    curves = [line for line in ax_s.get_lines() if line.get_linestyle() != "--"]
    dashed = [line for line in ax_s.get_lines() if line.get_linestyle() == "--"]
    assert [c.get_color() for c in curves] == colors == [d.get_color() for d in dashed]
    assert [d.get_ydata()[0] for d in dashed] == pytest.approx([60, 80, 100])
    assert [t.get_text() for t in ax_s.get_legend().get_texts()] == [r"$\eta$ = 2/60", r"$\eta$ = 2/80",
                                                                      r"$\eta$ = 2/100"]
    assert ax_l.get_yscale() == "log" and ax_s.get_ylim()[1] >= 100
    assert "net" in ax_s.get_title()
    plt.close(fig)


def test_step_size_sweep_bad_input():
    from eosteach.plotting import step_size_sweep, sweep_colors

    with pytest.raises(ValueError, match="sweep"):
        step_size_sweep(None, None, {})
    with pytest.raises(ValueError, match="n must be"):
        sweep_colors(0)
    assert len(sweep_colors(10)) == 10


# --------------------------------------------------------------------------- hvp: .grad and a dense Hessian


def accumulated_grad(model, loss_fn, x, y, v):
    params = list(model.parameters())
    loss_fn(model(x), y).backward(create_graph=True)
    g = _flat([p.grad for p in params])
    (g @ v).backward()                     # adds Hv to .grad, which still holds g
    out = _flat([p.grad for p in params]).detach()
    for p in params:
        p.grad = None
    return out


def _flat_loss(model, loss_fn, x, y):
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    sizes = [p.numel() for p in model.parameters()]

    def loss(theta):
        parts = {n: c.reshape(s) for n, c, s in zip(names, torch.split(theta, sizes), shapes)}
        return loss_fn(torch.func.functional_call(model, parts, (x,)), y)
    return loss, _flat([p.detach() for p in model.parameters()])


def dense_functional(model, loss_fn, x, y, v):
    loss, theta = _flat_loss(model, loss_fn, x, y)
    return torch.autograd.functional.hessian(loss, theta) @ v


def dense_func(model, loss_fn, x, y, v):
    loss, theta = _flat_loss(model, loss_fn, x, y)
    return torch.func.hessian(loss)(theta) @ v


@pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph=True")
@pytest.mark.parametrize("fn, message", [
    (accumulated_grad, "you return grad L + Hv"),
    (dense_functional, "you formed the Hessian (torch.autograd.functional.hessian)"),
    (dense_func, "you formed the Hessian (torch.func.hessian)"),
])
def test_hvp_grad_accumulation_and_dense_hessian_are_named(fn, message, capsys):
    result, out = verdict(ex.check_hvp, fn, capsys)
    assert result is False and message in out, out


def test_hvp_watch_restores_the_dense_apis():
    before = (torch.autograd.functional.hessian, torch.func.hessian, torch.func.jacrev)
    with ex._watch_dense_hessian() as used:
        torch.autograd.functional.hessian(lambda z: (z ** 3).sum(), torch.ones(2, dtype=torch.float64))
    assert used and used[0] == "torch.autograd.functional.hessian"
    assert (torch.autograd.functional.hessian, torch.func.hessian, torch.func.jacrev) == before


# --------------------------------------------------------------------------- arrival at the edge


def test_arrival_step_library_interpolates_the_first_crossing():
    t = np.array([0.0, 1.0, 3.0, 4.0])
    S = np.array([80.0, 90.0, 110.0, 120.0])
    eta = 2 / 100                                         # 2/eta = 100: crossing at t = 2
    assert ex.arrival_step(t, S, eta) == pytest.approx(2.0 / eta)
    assert ex.arrival_step(t, S, 2 / 70) == 0.0           # starts above
    assert ex.arrival_step(t, S, 2 / 130) is None         # never reaches
    dip = np.array([50.0, 40.0, 60.0, 45.0, 70.0])        # crosses 2/eta = 55 twice: the first counts
    assert ex.arrival_step(np.arange(5.0), dip, 2 / 55) == pytest.approx(1.75 / (2 / 55))
    steps = np.arange(5.0) * 20                           # on a GD run: t = step x eta gives the step
    assert ex.arrival_step(steps * eta, S[[0, 1, 1, 2, 3]], eta) == pytest.approx(50.0)


@pytest.mark.parametrize("t, S, eta, message", [
    ([0.0, 1.0], [1.0], 0.1, "same length"),
    ([0.0, 0.0], [1.0, 2.0], 0.1, "strictly increasing"),
    ([0.0, 1.0], [1.0, float("nan")], 0.1, "finite"),
    ([0.0, 1.0], [1.0, 2.0], 0.0, "eta"),
])
def test_arrival_step_bad_input(t, S, eta, message):
    with pytest.raises(ValueError, match=message):
        ex.arrival_step(t, S, eta)


def test_arrival_cases_are_what_their_names_say():
    cases = {name: (t, S, eta) for name, t, S, eta in ex._arrival_cases()}
    for name, (t, S, eta) in cases.items():
        assert np.all(np.diff(t) > 0)
        assert np.ptp(np.diff(t)) > 0.05 * np.diff(t).mean()          # non-uniform times
        want = ex._scan_arrival(t, S, 2 / eta)
        got = ex.arrival_step(t, S, eta)
        assert (got is None) == (want is None)
        if want is not None:
            assert got == pytest.approx(want / eta, rel=1e-9)
    t, S, eta = cases["a record with a dip and bumps, crossing 2/eta more than once (2/eta = 40)"]
    assert S[1] < S[0]                                               # a dip first
    assert np.count_nonzero((S[1:] >= 2 / eta) & (S[:-1] < 2 / eta)) >= 2
    assert ex.arrival_step(*cases["a record that starts above 2/eta (2/eta = 70)"]) == 0.0
    assert ex.arrival_step(*cases["a record that never reaches 2/eta (2/eta = 200)"]) is None


def test_arrival_right_answer_library_and_stub(capsys):
    assert verdict(ex.check_arrival_step, ex.arrival_step, capsys)[0] is True

    def good(t, S, eta):
        level = 2 / eta
        for i, s in enumerate(S):
            if s >= level:
                if i == 0:
                    return t[0] / eta
                return (t[i - 1] + (level - S[i - 1]) * (t[i] - t[i - 1]) / (S[i] - S[i - 1])) / eta
        return None

    assert verdict(ex.check_arrival_step, good, capsys)[0] is True
    result, out = verdict(ex.check_arrival_step, stub, capsys)
    assert result is None and "Not attempted yet" in out and "eosteach.exercises.sharpness.arrival_step" in out


def _first(S, level):
    hits = np.flatnonzero(np.asarray(S) >= level)
    return int(hits[0]) if hits.size else None


def _lin(t, S, level, i):
    return t[i - 1] + (level - S[i - 1]) * (t[i] - t[i - 1]) / (S[i] - S[i - 1])


def arrival_with(level_of, divide=True, mode="interp"):
    def fn(t, S, eta):
        level = level_of(eta)
        i = _first(S, level)
        if i is None:
            return None
        if i == 0:
            t_star = t[0]
        elif mode == "interp":
            t_star = _lin(t, S, level, i)
        elif mode == "sample":
            t_star = t[i]
        elif mode == "index":
            return float(i)
        elif mode == "uniform":
            t_star = t[0] + (i - 1 + (level - S[i - 1]) / (S[i] - S[i - 1])) * (t[1] - t[0])
        elif mode == "last":
            ups = [k for k in range(1, len(S)) if S[k] >= level > S[k - 1]]
            t_star = _lin(t, S, level, ups[-1])
        return t_star / eta if divide else t_star
    return fn


def extrapolates(t, S, eta):
    got = ex.arrival_step(t, S, eta)
    if got is None:                                   # a straight line through the last two samples
        slope = (S[-1] - S[-2]) / (t[-1] - t[-2])
        return (t[-1] + (2 / eta - S[-1]) / slope) / eta
    return got


@pytest.mark.parametrize("fn, message", [
    (arrival_with(lambda eta: 2 / eta, divide=False), "that is the crossing time t*"),
    (arrival_with(lambda eta: 1 / eta), "compare S with the edge 2/eta itself"),
    (arrival_with(lambda eta: eta), "compare S with the edge 2/eta itself"),
    (arrival_with(lambda eta: 2 / eta, mode="sample"), "the time of a tracked sample"),
    (arrival_with(lambda eta: 2 / eta, mode="index"), "a sample's index"),
    (arrival_with(lambda eta: 2 / eta, mode="uniform"), "not evenly spaced"),
    (arrival_with(lambda eta: 2 / eta, mode="last"), "a later crossing"),
    (extrapolates, "do not extrapolate"),
    (lambda t, S, eta: None, "but you return None"),
    (lambda t, S, eta: "soon", "one number"),
])
def test_arrival_named_mistakes(fn, message, capsys):
    result, out = verdict(ex.check_arrival_step, fn, capsys)
    assert result is False and message in out, out
