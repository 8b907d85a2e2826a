"""Checkers for the coding exercises of lesson 7 (caveats and open directions).

* ``check_gradient_curvature(fn)``: the curvature of a mini-batch loss along its own
  gradient, g^T H g / ||g||^2, the quantity whose average over batches is the batch
  sharpness of Andreyev & Beneventano (2024). The reference is independent of
  ``eosteach.hessian``: the dense Hessian of a tiny float64 network built by
  ``torch.autograd.functional.hessian`` of a flat-parameter function.
* ``check_batch_sharpness(fn)``: that average itself, the batch sharpness
  E_B[g_B^T H_B g_B / ||g_B||^2] over ``n_batches`` batches of ``batch_size`` distinct
  examples, each the first ``batch_size`` entries of ``torch.randperm(m, generator=...)``
  (the sampling law of ``eosteach.hessian.batch_sharpness``), together with its standard
  error std(ratios, ddof=1) / sqrt(n_batches) and, along the same steps, the curvature of
  the FULL loss, the mean of g_B^T H g_B / ||g_B||^2 with H the Hessian on all m examples
  (the second-order term of L(theta - eta g_B)). The reference is again a dense float64
  Hessian per batch, and one of the full loss, on the same batches.
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

from .. import hessian as _hessian
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


class _Watch:
    """While active, records the functions of ``eosteach.hessian`` that are called (looked up
    on the module at call time, as ``hessian.gradient_curvature(...)`` and the module's own
    functions do); ``name`` is the first public one, else the first one."""

    def __init__(self):
        self.called: list[str] = []
        self._saved: dict = {}

    def __enter__(self):
        for name in dir(_hessian):
            fn = getattr(_hessian, name)
            if name.startswith("__") or not callable(fn) or isinstance(fn, type) \
                    or getattr(fn, "__module__", None) != _hessian.__name__:
                continue
            self._saved[name] = fn

            def spy(*a, _name=name, _fn=fn, **k):
                self.called.append(_name)
                return _fn(*a, **k)

            setattr(_hessian, name, spy)
        return self

    @property
    def name(self) -> str:
        public = [n for n in self.called if not n.startswith("_")]
        return (public or self.called)[0]

    def __exit__(self, *exc):
        for name, fn in self._saved.items():
            setattr(_hessian, name, fn)
        return False


def _call(fb, net, call):
    """Call the learner's function: (True, output), or (False, None) after saying what went
    wrong (it raised, it changed the model's parameters)."""
    before = [p.detach().clone() for p in net.parameters()]
    try:
        out = call()
    except Exception as err:  # noqa: BLE001 - a learner's bug is feedback, not a crash
        if isinstance(err, NotImplementedError):
            raise
        fb.fail(f"calling it raised {type(err).__name__}: {err}")
        return False, None
    if any(not torch.equal(p.detach(), b) for p, b in zip(net.parameters(), before)):
        fb.fail("the call changed the model's parameters: measure at the parameters you are given, "
                "without taking a step")
        return False, None
    return True, out


def _one_number(fb, net, call, what: str):
    """Call the learner's function; its result as a float, or None after saying what went
    wrong (it raised, it changed the model's parameters, it did not return one number)."""
    ok, out = _call(fb, net, call)
    if not ok:
        return None
    try:
        return float(torch.as_tensor(out).detach().double().reshape(()))
    except Exception:  # noqa: BLE001
        shape = tuple(torch.as_tensor(out).shape) if isinstance(out, (torch.Tensor, np.ndarray)) else type(out)
        fb.fail(f"return one number ({what}), not {shape}")
        return None


@checker("curvature along the gradient", library="eosteach.hessian.gradient_curvature")
def check_gradient_curvature(fn) -> bool:
    """Check ``fn(model, loss_fn, x, y) -> float``: g^T H g / ||g||^2 for the loss on the
    mini-batch (x, y), against a dense float64 Hessian on two tiny networks (MSE and
    cross-entropy), to 1e-7 relative.

    Named mistakes: the Rayleigh quotient not normalised (g^T H g), normalised by ||g||
    instead of ||g||^2, the norm ||H g|| / ||g|| instead of the projection on g, the top
    eigenvalue of the batch Hessian (the batch's own sharpness) instead of the curvature
    along the gradient, the squared gradient norm, a stray factor 2 or 1/2, the curvature of
    the summed (not averaged) batch loss, a model whose parameters were changed by the call,
    and a call of the library's ``eosteach.hessian`` (writing the Hessian-vector product is
    the exercise)."""
    fb = Feedback("curvature along the gradient")
    for net, loss_fn, x, y, loss_name in _curvature_problems():
        g, H = _dense_reference(net, loss_fn, x, y)
        g_sq = float(g @ g)
        hg = H @ g
        expected = float(g @ hg) / g_sq
        with _Watch() as watch:
            got = _one_number(fb, net, lambda: fn(net, loss_fn, x.clone(), y.clone()), "a float")
        if got is None:
            break
        if watch.called:
            fb.fail(f"you called eosteach.hessian.{watch.name}: here the exercise is to write the "
                    "Hessian-vector product yourself, with torch.autograd.grad twice (see the hints)")
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
            (2 * expected, "you are twice too large: did you differentiate g . g with both copies of g attached "
                           "to the graph? grad(g . g) = 2 H g; detach one copy (differentiate g . c with c = g "
                           "held constant) to get H g"),
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


# --------------------------------------------------------------------------- the batch sharpness


class _Recorder(torch.nn.Module):
    """Wraps a network and keeps the inputs of every forward call (to see which batches were used)."""

    def __init__(self, net):
        super().__init__()
        self.net = net
        self.seen: list[torch.Tensor] = []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return self.net(x)


def _batch_problem():
    """A tiny float64 tanh network with MSE on m = 12 distinct examples."""
    gen = torch.Generator().manual_seed(3)
    net = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3)).to(F64)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=F64))
    x = torch.randn(12, 4, generator=gen, dtype=F64)
    y = losses.one_hot(torch.randint(0, 3, (12,), generator=gen), 3, F64)
    return net, losses.mse, x, y


def _batches(m, batch_size, n_batches, seed):
    """The batches eosteach.hessian.batch_sharpness draws: the first batch_size entries of a
    fresh torch.randperm(m) per batch, from a generator seeded with ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    return [torch.randperm(m, generator=gen)[:batch_size] for _ in range(n_batches)]


def _row_ids(seen, x):
    """For each recorded forward call, the indices of its rows in x (-1 for a row not in x)."""
    ids = []
    for batch in seen:
        if batch.ndim != 2 or batch.shape[1] != x.shape[1]:
            continue
        match = (batch[:, None, :] == x[None, :, :]).all(-1)
        ids.append([int(r.nonzero()[0]) if r.any() else -1 for r in match])
    return ids


@checker("batch sharpness", library="eosteach.hessian.batch_curvatures and eosteach.hessian.hvp")
def check_batch_sharpness(fn) -> bool:
    """Check ``fn(model, loss_fn, x, y, batch_size, n_batches, generator)
    -> (mean, standard_error, full_curvature)``: the mean over ``n_batches`` mini-batches of
    g_B^T H_B g_B / ||g_B||^2, each batch the first ``batch_size`` entries of
    ``torch.randperm(m, generator=generator)``, against dense float64 Hessians on the same
    batches (so the mean equals ``eosteach.hessian.batch_sharpness`` with an identically
    seeded generator); the standard error of that mean, std(ratios, ddof=1) / sqrt(n_batches);
    and the mean over the same batches of g_B^T H g_B / ||g_B||^2, H the Hessian of the loss
    on all m examples: the curvature that the full loss meets along each batch's step. For
    b = 4 and 7 of m = 12 examples, and for b = m.

    Named mistakes (the batches are seen through a wrapper that records every forward
    call): fewer than three numbers returned, the ratio of means E[g^T H g] / E[||g||^2]
    instead of the mean of ratios, the full-batch gradient used with the batch Hessian, the
    top eigenvalue of each batch Hessian (the "MiniBS" of the paper's first version), batches
    drawn with replacement (a repeated example), batches of the wrong size, the generator not
    used (other batches), a single batch instead of the average, a factor 2 from
    differentiating g . g with both copies attached, a model whose parameters were changed by
    the call; for the standard error: the spread of one batch (the standard deviation, not
    divided by sqrt(k)), the population standard deviation (ddof = 0), a division by k
    instead of sqrt(k), and the variance; for the full-loss curvature: the batch Hessian H_B
    again (the batch sharpness), the full gradient g instead of g_B (g^T H g / ||g||^2), the
    top eigenvalue of H (the full-batch sharpness), a ratio of means, g_B^T H g_B not divided
    by ||g_B||^2, a factor 2, and the summed instead of the mean full loss (m times too large)."""
    fb = Feedback("batch sharpness")
    net, loss_fn, x, y = _batch_problem()
    m = x.shape[0]
    g_full, H_full = _dense_reference(net, loss_fn, x, y)
    top_full = float(torch.linalg.eigvalsh(H_full)[-1])
    for batch_size, n_batches, seed in ((4, 6, 11), (7, 5, 12), (m, 3, 13)):
        batches = _batches(m, batch_size, n_batches, seed)
        parts = [_dense_reference(net, loss_fn, x[idx], y[idx]) for idx in batches]
        ratios = np.array([float(g @ H @ g) / float(g @ g) for g, H in parts])
        expected = float(np.mean(ratios))
        expected_se = float(np.std(ratios, ddof=1) / np.sqrt(n_batches))
        full_ratios = np.array([float(g @ H_full @ g) / float(g @ g) for g, _ in parts])
        expected_full = float(np.mean(full_ratios))
        recorder = _Recorder(net)
        ok, out = _call(fb, net, lambda: fn(recorder, loss_fn, x.clone(), y.clone(), batch_size, n_batches,
                                            generator=torch.Generator().manual_seed(seed)))
        if not ok:
            break
        try:
            got, got_se, got_full = (float(torch.as_tensor(v).detach().double().reshape(())) for v in out)
        except Exception:  # noqa: BLE001
            fb.fail(f"return three numbers, (mean, standard error, full-loss curvature), not {type(out).__name__}"
                    + (f" of shape {tuple(torch.as_tensor(out).shape)}" if isinstance(out, (torch.Tensor, np.ndarray))
                       else f" of length {len(out)}" if isinstance(out, (tuple, list)) else ""))
            break
        where = f"b = {batch_size} of m = {m}, {n_batches} batches: "
        if not np.isclose(got, expected, rtol=1e-7):
            where += f"expected the mean {expected:.6g}, got {got:.6g}; "
            seen = [ids for ids in _row_ids(recorder.seen, x) if len(ids) < m or batch_size == m]
            small = [ids for ids in seen if len(ids) < m]
            if any(len(set(ids)) < len(ids) for ids in small):
                fb.fail(where + "a batch contains the same example twice: draw each batch WITHOUT replacement "
                        "(b distinct examples, like one batch of an SGD epoch)")
                break
            if batch_size < m and small and any(len(ids) != batch_size for ids in small):
                sizes = sorted({len(ids) for ids in small})
                fb.fail(where + f"your batches have {sizes} examples: each batch has batch_size = {batch_size}")
                break
            g_sq = [float(g @ g) for g, _ in parts]
            gHg = [float(g @ H @ g) for g, H in parts]
            candidates = (
                (sum(gHg) / sum(g_sq), "that is a ratio of means, E[g^T H g] / E[||g||^2]: the batch sharpness "
                                       "is the mean of the ratios, one Rayleigh quotient per batch, then averaged"),
                (float(np.mean([float(g_full @ H @ g_full) for _, H in parts])) / float(g_full @ g_full),
                 "that is the full-batch gradient with each batch's Hessian: each batch's curvature is along its "
                 "OWN gradient g_B, the direction SGD actually steps in"),
                (float(np.mean([float(torch.linalg.eigvalsh(H)[-1]) for _, H in parts])),
                 "that is the mean top eigenvalue of the batch Hessians (the quantity of the paper's first "
                 "version): the batch sharpness is the curvature along each batch's gradient, g_B^T H_B g_B / "
                 "||g_B||^2, not the batch's sharpest direction"),
                (2 * expected, "you are twice too large: did you differentiate g . g with both copies of g attached? "
                               "grad(g . g) = 2 H g; detach one copy"),
                (ratios[0], "that is the first batch alone: average over all n_batches batches"),
            )
            hint = next((h for value, h in candidates if np.isclose(got, value, rtol=1e-6)), None)
            if hint is None and batch_size < m and small and not any(
                    sorted(ids) == sorted(int(i) for i in idx) for ids in small for idx in batches[:1]):
                hint = ("your batches are not the ones the generator gives: draw batch k as the first batch_size "
                        "entries of a fresh random permutation of the m examples, from the generator you are "
                        "given (not the global random state), one permutation per batch")
            fb.fail(where + (hint or "compare with the mean over the batches of g_B^T H_B g_B / ||g_B||^2, g_B and "
                                     "H_B the gradient and Hessian of the loss on that batch alone"))
            break
        tol = dict(rtol=1e-6, atol=1e-9 * abs(expected))
        if not np.isclose(got_se, expected_se, **tol):
            k = n_batches
            se_candidates = (
                (float(np.std(ratios, ddof=1)), "that is the standard deviation of one batch's value, the spread; "
                                                "the standard error of a mean of k values is that divided by sqrt(k)"),
                (float(np.std(ratios, ddof=0) / np.sqrt(k)), "you used the population standard deviation (ddof = 0): "
                                                            "from k samples estimate it with k - 1 (ddof = 1)"),
                (float(np.std(ratios, ddof=1) / k), "you divided by k: the standard error falls like 1/sqrt(k), "
                                                    "not 1/k"),
                (float(np.var(ratios, ddof=1) / np.sqrt(k)), "that uses the variance: take its square root, the "
                                                             "standard deviation"),
                (float(np.var(ratios, ddof=1) / k), "that is the squared standard error (the variance of the mean): "
                                                    "take its square root"),
            )
            hint = next((h for value, h in se_candidates if np.isclose(got_se, value, **tol)),
                        "the standard error of the mean of k values is their sample standard deviation (ddof = 1) "
                        "divided by sqrt(k)")
            fb.fail(where + f"the mean is right; expected the standard error {expected_se:.6g}, got {got_se:.6g}; "
                    + hint)
            break
        if np.isclose(got_full, expected_full, rtol=1e-7):
            continue
        gHg_full = [float(g @ H_full @ g) for g, _ in parts]
        full_candidates = (
            (expected, "that is your batch sharpness again, each batch's own Hessian H_B: here the Hessian is the "
                       "FULL loss's, on all m examples, taken along the batch's gradient g_B"),
            (float(g_full @ H_full @ g_full) / float(g_full @ g_full),
             "that is the curvature along the full gradient g, g^T H g / ||g||^2: take it along each batch's own "
             "gradient g_B, the step SGD actually takes"),
            (top_full, "that is the top eigenvalue of H, the full-batch sharpness S: along g_B the curvature is the "
                       "Rayleigh quotient at g_B, at most S"),
            (sum(gHg_full) / sum(float(g @ g) for g, _ in parts),
             "that is a ratio of means: divide each batch's g_B^T H g_B by its own ||g_B||^2, then average"),
            (float(np.mean(gHg_full)), "that is g_B^T H g_B without the division by ||g_B||^2: the curvature "
                                       "must not depend on how long g_B is"),
            (2 * expected_full, "you are twice too large: a stray factor 2 (both copies of g attached, or the "
                                "eta^2/2 of the expansion counted twice?)"),
            (m * expected_full, "you are m times too large: that is the Hessian of the SUMMED loss over the m "
                                "examples; the full loss is their MEAN"),
        )
        hint = next((h for value, h in full_candidates if np.isclose(got_full, value, rtol=1e-6)),
                    "compare with the mean over the batches of g_B^T H g_B / ||g_B||^2, g_B the gradient of the batch "
                    "loss and H the Hessian of the loss on all m examples (one Hessian-vector product H g_B per batch)")
        fb.fail(where + f"the mean and its standard error are right; expected the full-loss curvature "
                f"{expected_full:.6g}, got {got_full:.6g}; {hint}")
        break
    return fb.report("your batch sharpness equals the mean of g_B^T H_B g_B / ||g_B||^2 over the generator's "
                     "batches, computed with dense Hessians (the same as eosteach.hessian.batch_sharpness), "
                     "your standard error is std(ddof=1) / sqrt(k), and your full-loss curvature along the same "
                     "steps, the mean of g_B^T H g_B / ||g_B||^2, matches too.")


# --------------------------------------------------------------------------- the minimalist model


def _reference(X, y, depth) -> float:
    u, v = minimalist.balanced_minimum(X, y, depth)
    return float(np.linalg.eigvalsh(minimalist.hessian(X, y, u, v))[-1])


def _no_root(X, y, depth) -> float:
    """The top eigenvalue with the layers balanced at a = Q^(1/D) (a^D = Q: a missing square root)."""
    a = minimalist.difficulty(X, y) ** (1 / depth)
    G = (a ** (2 * (depth - 1)) * X @ X.T + (depth - 1) / a ** 2 * np.outer(y, y)) / X.shape[0]
    return float(np.linalg.eigvalsh(G)[-1])


def _unbalanced(X, y, depth) -> float:
    """The top eigenvalue at u = w*, v_i = 1 (an interpolating minimum, but not the balanced one)."""
    G = (X @ X.T + (depth - 1) * np.outer(y, y)) / X.shape[0]
    return float(np.linalg.eigvalsh(G)[-1])


def _one_column(X, y, depth) -> float:
    """The top eigenvalue with a single y/a column in J instead of D - 1 of them."""
    a = minimalist.difficulty(X, y) ** (1 / (2 * depth))
    G = (a ** (2 * (depth - 1)) * X @ X.T + np.outer(y, y) / a ** 2) / X.shape[0]
    return float(np.linalg.eigvalsh(G)[-1])


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
    general data, the y y^T term left out, the layers balanced at a^D = Q instead of sqrt(Q),
    an unbalanced interpolating minimum (u = w*, v_i = 1), a single y/a column in J instead of
    D - 1, a factor N too many or too few, an array returned instead of a float."""
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
        elif np.isclose(got, _no_root(X, y, depth), rtol=1e-7):
            hint = ("you balanced with a^D = Q = ||w*||^2: balance makes ||u|| v_1 ... v_{D-1} = a^D equal "
                    "||w*|| = sqrt(Q) (a missing square root).")
        elif np.isclose(got, _unbalanced(X, y, depth), rtol=1e-7):
            hint = ("that is the sharpness at u = w*, v_i = 1: an interpolating minimum, but not the balanced one "
                    "GD finds from a small balanced start. Balance the layers: ||u|| = v_i = a with a^D = ||w*||.")
        elif depth > 2 and np.isclose(got, _one_column(X, y, depth), rtol=1e-7):
            hint = ("J has one column y/a for EACH of the D - 1 scalars v_1 ... v_{D-1}: you kept only one "
                    "(the y y^T term needs the factor D - 1).")
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
