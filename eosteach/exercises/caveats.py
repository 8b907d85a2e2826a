"""Checkers for the coding exercises of lesson 7 (caveats and open directions).

* ``check_gradient_curvature(fn)``: the curvature of a mini-batch loss along its own
  gradient, g^T H g / ||g||^2, the quantity whose average over batches is the batch
  sharpness of Andreyev & Beneventano (2024). The reference is independent of
  ``eosteach.hessian``: the dense Hessian of a tiny float64 network built by
  ``torch.autograd.functional.hessian`` of a flat-parameter function.
* ``check_balanced_sharpness(fn)``: the sharpness of the minimalist model (Yoo, Song & Yun
  2025) at its balanced interpolating minimum, straight from the data,

      S* = lambda_max( (1/N) [ Q^{(D-1)/D} X X^T + (D-1) Q^{-1/D} y y^T ] ),   Q = ||X^+ y||^2.

  The reference is independent of that formula: it builds the balanced minimum
  (u = w*/a^{D-1}, v_i = a, a^D = sqrt(Q)), forms the model's full Hessian there in closed
  form and takes its largest eigenvalue with a dense solver.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.func import functional_call

from .. import losses, minimalist
from .feedback import Feedback, checker

F64 = torch.float64


# --------------------------------------------------------------------------- curvature along the gradient


def _curvature_problems():
    """Tiny float64 tanh networks, a mini-batch each, with MSE and cross-entropy."""
    problems = []
    for seed, loss_name, (d, h, c), m in ((0, "mse", (4, 5, 3), 5), (1, "ce", (5, 4, 3), 7)):
        gen = torch.Generator().manual_seed(seed)
        net = torch.nn.Sequential(torch.nn.Linear(d, h), torch.nn.Tanh(), torch.nn.Linear(h, c)).to(F64)
        with torch.no_grad():
            for p in net.parameters():
                p.copy_(torch.randn(p.shape, generator=gen, dtype=F64))
        x = torch.randn(m, d, generator=gen, dtype=F64)
        labels = torch.randint(0, c, (m,), generator=gen)
        y = losses.one_hot(labels, c, F64) if loss_name == "mse" else labels
        problems.append((net, losses.get_loss(loss_name), x, y, loss_name))
    return problems


def _dense_reference(net, loss_fn, x, y):
    """(g, H) of theta -> loss_fn(net(x), y) by autograd on a flat parameter vector."""
    named = list(net.named_parameters())
    names, shapes = [n for n, _ in named], [p.shape for _, p in named]
    sizes = [p.numel() for _, p in named]

    def loss_of(theta):
        parts = [t.view(s) for t, s in zip(torch.split(theta, sizes), shapes)]
        return loss_fn(functional_call(net, dict(zip(names, parts)), (x,)), y)

    theta = torch.cat([p.detach().reshape(-1) for _, p in named])
    g = torch.autograd.functional.jacobian(loss_of, theta)
    H = torch.autograd.functional.hessian(loss_of, theta)
    return g, 0.5 * (H + H.T)


@checker("curvature along the gradient", library="eosteach.hessian.gradient_curvature")
def check_gradient_curvature(fn) -> bool:
    """Check ``fn(model, loss_fn, x, y) -> float``: g^T H g / ||g||^2 for the loss on the
    mini-batch (x, y), against a dense float64 Hessian on two tiny networks (MSE and
    cross-entropy), to 1e-7 relative.

    Named mistakes: the Rayleigh quotient not normalised (g^T H g), normalised by ||g||
    instead of ||g||^2, the norm ||H g|| / ||g|| instead of the projection on g, the top
    eigenvalue of the batch Hessian (the batch's own sharpness) instead of the curvature
    along the gradient, the squared gradient norm, a stray factor 2 or 1/2, the curvature of
    the summed (not averaged) batch loss, and a model whose parameters were changed by the call."""
    fb = Feedback("curvature along the gradient")
    for net, loss_fn, x, y, loss_name in _curvature_problems():
        g, H = _dense_reference(net, loss_fn, x, y)
        g_sq = float(g @ g)
        hg = H @ g
        expected = float(g @ hg) / g_sq
        before = [p.detach().clone() for p in net.parameters()]
        try:
            out = fn(net, loss_fn, x.clone(), y.clone())
        except Exception as err:  # noqa: BLE001 - a learner's bug is feedback, not a crash
            if isinstance(err, NotImplementedError):
                raise
            fb.fail(f"calling it raised {type(err).__name__}: {err}")
            break
        if any(not torch.equal(p.detach(), b) for p, b in zip(net.parameters(), before)):
            fb.fail("the call changed the model's parameters: measure the curvature at the parameters you "
                    "are given, without taking a step")
            break
        try:
            got = float(torch.as_tensor(out).detach().double().reshape(()))
        except Exception:  # noqa: BLE001
            shape = tuple(torch.as_tensor(out).shape) if isinstance(out, (torch.Tensor, np.ndarray)) else type(out)
            fb.fail(f"return one number (a float), not {shape}")
            break
        if np.isclose(got, expected, rtol=1e-7):
            continue
        top = float(torch.linalg.eigvalsh(H)[-1])
        candidates = (
            (float(g @ hg), "that is g^T H g: divide by ||g||^2, so that the length of g does not count"),
            (float(g @ hg) / g_sq ** 0.5, "you divided by ||g||: divide by ||g||^2 (the gradient appears twice "
                                          "in g^T H g)"),
            (float(hg.norm()) / g_sq ** 0.5, "that is ||H g|| / ||g||, the stretch of g, not the curvature "
                                             "along it: project H g back onto g (an inner product)"),
            (top, "that is the largest eigenvalue of the batch Hessian, the batch's own sharpness; the "
                  "curvature along the gradient is the Rayleigh quotient at g, which is smaller unless g "
                  "is a top eigenvector"),
            (g_sq, "that is ||g||^2, the squared gradient norm: the Hessian is missing"),
            (2 * expected, "you are twice too large: is a factor 2 from a Taylor expansion left in?"),
            (0.5 * expected, "you are half the answer: a Taylor coefficient eps^2/2 has a 1/2 that "
                             "does not belong to the curvature"),
            (-expected, "the sign is flipped"),
            (x.shape[0] * expected, "you are batch-size times too large: that is the curvature of the SUMMED "
                                    "loss over the batch; the batch loss is the MEAN over its examples"),
        )
        hint = next((h for value, h in candidates if np.isclose(got, value, rtol=1e-6)),
                    "compare with g^T (H g) / (g^T g), g the gradient of the loss on exactly these examples "
                    "and H g one Hessian-vector product at g")
        fb.fail(f"{loss_name} network, batch of {x.shape[0]}: expected {expected:.6g}, got {got:.6g}; {hint}")
        break
    return fb.report("your curvature along the gradient equals g^T H g / ||g||^2 from the dense Hessian, "
                     "for MSE and cross-entropy.")


# --------------------------------------------------------------------------- the minimalist model


def _reference(X, y, depth) -> float:
    u, v = minimalist.balanced_minimum(X, y, depth)
    return float(np.linalg.eigvalsh(minimalist.hessian(X, y, u, v))[-1])


def _cases():
    rng = np.random.default_rng(7)
    cases = []
    # general data, labels +-1, more features than examples (like CIFAR-10 subsets)
    for depth, (n, d) in zip((2, 3, 4), ((6, 10), (8, 12), (5, 9))):
        X = rng.standard_normal((n, d)) + 0.7 * rng.standard_normal(d)  # a shared mean: a large sigma_1
        cases.append((X, rng.choice([-1.0, 1.0], n), depth, "general"))
    # y along X's top left singular vector: here the aligned formula is exact
    U, _ = np.linalg.qr(rng.standard_normal((5, 5)))
    V, _ = np.linalg.qr(rng.standard_normal((7, 5)))
    X = (U * np.array([3.0, 2.0, 1.5, 1.0, 0.5])) @ V.T
    cases.append((X, 1.7 * U[:, 0], 3, "aligned"))
    return cases


@checker("balanced_sharpness", library="eosteach.minimalist.balanced_sharpness")
def check_balanced_sharpness(fn) -> bool:
    """``fn(X (N, d), y (N,), depth) -> float``: S* at the balanced interpolating minimum,
    against the top eigenvalue of the model's full Hessian there (depths 2-4, general and
    aligned data). Named mistakes: the aligned formula D sigma_1^2 Q^((D-1)/D) / N used on
    general data, the y y^T term left out, a factor N too many or too few, an array returned
    instead of a float."""
    fb = Feedback("balanced_sharpness")
    for X, y, depth, kind in _cases():
        expected = _reference(X, y, depth)
        try:
            out = np.asarray(fn(X.copy(), y.copy(), depth), dtype=float)
        except NotImplementedError:
            raise
        except Exception as err:  # noqa: BLE001 - any error is feedback for a learner
            fb.fail(f"calling it raised {type(err).__name__}: {err}")
            break
        if out.shape != ():
            fb.fail(f"return one float, not an array of shape {out.shape} (float(...) of the eigenvalue you want)")
            break
        got = float(out)
        if np.isclose(got, expected, rtol=1e-7):
            continue
        n = X.shape[0]
        Q = minimalist.difficulty(X, y)
        s1 = minimalist.top_singular_value(X)
        aligned = float(minimalist.sharpness_formula(Q, depth, s1, n))
        lower = s1 ** 2 * Q ** ((depth - 1) / depth) / n
        if np.isclose(got, aligned, rtol=1e-7):
            hint = ("that is D sigma_1^2 Q^((D-1)/D) / N, exact only when y lies along X's top singular "
                    "vector; here it is an upper bound. Take the top eigenvalue of the N x N matrix instead.")
        elif np.isclose(got, lower, rtol=1e-7):
            hint = "that is the X X^T term alone: the (D-1) Q^(-1/D) y y^T term is missing."
        elif np.isclose(got, expected * n, rtol=1e-7):
            hint = "you are N times too large: the loss has a 1/(2N), so the Hessian has a 1/N."
        elif np.isclose(got, expected / n, rtol=1e-7):
            hint = "you are N times too small: divide the N x N matrix by N once, not twice."
        else:
            hint = ("check Q = ||X^+ y||^2 (np.linalg.lstsq or np.linalg.pinv), the exponents "
                    "(D-1)/D and -1/D, and that you return the LARGEST eigenvalue.")
        fb.fail(f"{kind} data, N={n}, d={X.shape[1]}, D={depth}: expected {expected:.6g}, got {got:.6g}; {hint}")
        break
    return fb.report("your prediction equals the top eigenvalue of the full Hessian at the balanced minimum "
                     "for depths 2-4, on general and aligned data.")
