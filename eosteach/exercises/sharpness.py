"""Checkers for the exercises of lessons 3 (measuring sharpness) and 4 (edge of stability).

* ``check_hvp(fn)``: a Hessian-vector product by double backpropagation, against the
  dense Hessian of a tiny network.
* ``check_power_iteration(fn)``: the top eigenvalue from products alone, against
  ``numpy.linalg.eigvalsh`` on matrices with a known spectrum and on a network's Hessian.
* ``check_threshold(fn)`` / ``check_threshold_value(value, method, eta, b)``: the
  sharpness at which GD, heavy-ball or Nesterov stop being stable, against a bisection on
  the spectral radius of the method's 2x2 iteration matrix on a one-dimensional quadratic
  (independent of the closed forms in ``eosteach.thresholds``).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .. import validate
from .feedback import Feedback, checker

METHODS = ("gd", "heavy_ball", "nesterov")


def _tiny_problem(seed: int = 0):
    """A 4-3-2 tanh network in float64 with MSE on 6 random examples, and its dense Hessian."""
    from .. import hessian, losses

    gen = torch.Generator().manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh(), torch.nn.Linear(3, 2)).double()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64))
    x = torch.randn(6, 4, generator=gen, dtype=torch.float64)
    y = torch.nn.functional.one_hot(torch.randint(0, 2, (6,), generator=gen), 2).double()
    H = hessian.dense_hessian(net, losses.mse, x, y)
    return net, losses.mse, x, y, H


@checker('Hessian-vector product')
def check_hvp(fn) -> bool:
    """Check ``fn(model, loss_fn, x, y, v) -> Hv`` (v and Hv flat tensors of length n, the
    parameters in ``model.parameters()`` order) against the dense Hessian of a tiny network."""
    fb = Feedback("Hessian-vector product")
    for seed in (0, 1):
        net, loss_fn, x, y, H = _tiny_problem(seed)
        gen = torch.Generator().manual_seed(10 + seed)
        v = torch.randn(H.shape[0], generator=gen, dtype=torch.float64)
        try:
            got = torch.as_tensor(fn(net, loss_fn, x, y, v.clone())).detach().reshape(-1).double()
        except Exception as e:  # noqa: BLE001 - a learner's bug is feedback, not a crash
            fb.fail(f"fn(...) raised {type(e).__name__}: {e}")
            return fb.report("")
        want = H @ v
        if got.shape != want.shape:
            fb.fail(f"Hv must be a flat vector of length n={want.shape[0]}, got shape {tuple(got.shape)}")
            break
        err = float((got - want).norm() / want.norm())
        if not err <= 1e-8:
            fb.fail(f"relative error {err:.2e} against the dense Hessian (seed {seed})")
            g_only = torch.autograd.grad(loss_fn(net(x), y), list(net.parameters()))
            g_flat = torch.cat([t.reshape(-1) for t in g_only])
            if torch.allclose(got, g_flat, rtol=1e-6):
                fb.fail("you returned the gradient itself: differentiate (grad . v) a second time")
            else:
                fb.fail("hint: g = autograd.grad(loss, params, create_graph=True); then "
                        "autograd.grad(sum of (g_i * v_i), params) and flatten")
            break
    return fb.report("matches the dense Hessian times v to 1e-8")


def _spiked_matrix(n: int, top: float, gap: float, seed: int) -> np.ndarray:
    """A symmetric n x n matrix with eigenvalues top, top*gap, then spread in [-0.3, 0.6] top."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    rest = rng.uniform(-0.3, 0.6, size=n - 2) * top
    lam = np.concatenate([[top, top * gap], rest])
    return (Q * lam) @ Q.T


@checker('power iteration')
def check_power_iteration(fn) -> bool:
    """Check ``fn(hvp, n, n_iters) -> float`` that estimates lambda_max from the operator
    ``hvp: torch.Tensor (n,) -> torch.Tensor (n,)`` by power iteration (Rayleigh quotient
    after ``n_iters`` products). Checked on matrices with a known spectrum and on the
    Hessian of a tiny network, to 1e-4 relative; also counts the products used."""
    fb = Feedback("power iteration")
    cases = [(_spiked_matrix(40, 7.5, 0.5, 0), 200), (_spiked_matrix(60, 120.0, 0.8, 1), 400)]
    cases.append((_tiny_problem(0)[4].numpy(), 2000))
    for A, n_iters in cases:
        top = float(np.linalg.eigvalsh(A)[-1])
        if abs(np.linalg.eigvalsh(A)[0]) > abs(top):
            continue  # power iteration targets the largest magnitude; keep cases where they agree
        At = torch.as_tensor(A)
        calls = [0]

        def hvp(v):
            calls[0] += 1
            return At @ torch.as_tensor(v, dtype=torch.float64)

        try:
            got = float(fn(hvp, A.shape[0], n_iters))
        except Exception as e:  # noqa: BLE001
            fb.fail(f"fn(...) raised {type(e).__name__}: {e}")
            return fb.report("")
        if calls[0] > n_iters + 1:
            fb.fail(f"used {calls[0]} products for n_iters={n_iters}: one product per iteration is enough")
        if not math.isfinite(got) or abs(got - top) > 1e-4 * abs(top):
            fb.fail(f"on a {A.shape[0]}x{A.shape[0]} matrix with lambda_max = {top:.6g} you return {got:.6g}")
            if math.isfinite(got) and got > 0 and abs(got - top) > 0.5 * abs(top):
                fb.fail("hint: normalise v after every product and return the Rayleigh quotient v . Hv "
                        "(with ||v|| = 1), not ||Hv|| of an unnormalised vector")
            break
    return fb.report("the Rayleigh quotient converges to lambda_max on every test matrix")


def _iteration_matrix(method: str, eta: float, b: float, s: float) -> np.ndarray:
    """The 2x2 linear map of the state (theta_t, buf_{t-1}) for L = s theta^2 / 2 (gradient
    s theta), written from the update rules (PyTorch momentum convention: buf_t = b buf_{t-1}
    + g_t; heavy-ball theta_{t+1} = theta_t - eta buf_t, Nesterov theta_{t+1} = theta_t -
    eta (g_t + b buf_t)), not from the closed-form thresholds."""
    if method == "gd":
        return np.array([[1.0 - eta * s, 0.0], [0.0, 0.0]])
    if method == "heavy_ball":
        return np.array([[1.0 - eta * s, -eta * b], [s, b]])
    return np.array([[1.0 - eta * s * (1.0 + b), -eta * b * b], [s, b]])


def stability_threshold(method: str, eta: float, b: float = 0.0) -> float:
    """The largest sharpness s for which the method is stable on s theta^2 / 2, by bisection
    on the spectral radius of ``_iteration_matrix`` (an independent check of the closed forms)."""
    validate.choice("method", method, METHODS)
    eta = validate.positive("eta", eta)
    b = validate.momentum("b", b)
    radius = lambda s: max(abs(np.linalg.eigvals(_iteration_matrix(method, eta, b, s))))  # noqa: E731
    lo, hi = 0.0, 1.0 / eta
    while radius(hi) <= 1.0 + 1e-12:
        hi *= 2
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if radius(mid) <= 1.0 + 1e-12:
            lo = mid
        else:
            hi = mid
    return lo


def check_threshold_value(value, method: str, eta: float, b: float = 0.0) -> bool:
    """Check a predicted threshold (a number) for ``method`` at step size eta and momentum b."""
    validate.choice("method", method, METHODS)
    fb = Feedback(f"the {method} threshold at eta={eta:g}, b={b:g}")
    want = stability_threshold(method, eta, b)
    try:
        got = float(value)
    except (TypeError, ValueError):
        fb.fail(f"the answer must be a number, got {value!r}")
        return fb.report("")
    if not abs(got - want) <= 1e-3 * want:
        fb.fail(f"you predict {got:.5g}")
        if method != "gd" and abs(got - 2 / eta) <= 1e-3 * want:
            fb.fail("that is GD's 2/eta: momentum moves the threshold")
        elif method == "heavy_ball" and abs(got - (2 + 2 * b) / (eta * (1 - b))) <= 1e-3 * got:
            fb.fail("that is the threshold of the other momentum convention; here buf <- b buf + g, "
                    "theta <- theta - eta buf")
        else:
            fb.fail("hint: write theta_{t+1} in terms of theta_t and theta_{t-1} and ask when the root "
                    "of the characteristic polynomial at -1 appears")
    return fb.report(f"{want:.5g}, where the iteration matrix's spectral radius reaches 1")


@checker('stability thresholds of GD, heavy-ball and Nesterov')
def check_threshold(fn) -> bool:
    """Check ``fn(method, eta, b) -> float`` (method in "gd", "heavy_ball", "nesterov")
    against ``stability_threshold`` on a grid of eta and b."""
    fb = Feedback("stability thresholds of GD, heavy-ball and Nesterov")
    for method in METHODS:
        for eta, b in [(0.01, 0.0), (0.02, 0.5), (0.1, 0.9), (1.0, 0.99)]:
            if method == "gd" and b:
                continue
            want = stability_threshold(method, eta, b)
            try:
                got = float(fn(method, eta, b))
            except Exception as e:  # noqa: BLE001
                fb.fail(f"fn({method!r}, {eta}, {b}) raised {type(e).__name__}: {e}")
                return fb.report("")
            if not abs(got - want) <= 1e-3 * want:
                fb.fail(f"fn({method!r}, eta={eta}, b={b}) = {got:.5g}, expected {want:.5g}")
                break
    return fb.report("every threshold matches the bisection on the iteration matrix")
