"""Checkers for the exercises of lesson 3 (measuring sharpness), and the bisection that
lesson 4's threshold checker (``eosteach.exercises.edge``) compares with.

* ``check_hvp(fn)``: a Hessian-vector product by double backpropagation, against the
  dense Hessian of a tiny network.
* ``check_power_iteration(fn)``: the eigenvalue of largest magnitude from products alone,
  against ``numpy.linalg.eigvalsh`` on matrices with a known spectrum (one whose most
  negative eigenvalue dominates) and on a tiny network's Hessian, where it is lambda_min.
* ``tiny_problem(seed)``: that tiny network and its dense Hessian.
* ``check_rayleigh_ritz(fn)``: Ritz values and the top Ritz vector from an orthonormal
  basis Q and the products H Q, against a dense eigensolve of the projected matrix.
* ``arrival_step(t, S, eta)``: the GD step at which a sharpness record S(t) first reaches
  2/eta (linear interpolation); on a gradient-flow run, the prediction of when GD at step
  size eta reaches the edge of stability. ``check_arrival_step(fn)`` checks a learner's
  version against a dense scan plus bisection of the interpolant.
* ``stability_threshold(method, eta, b)``: the sharpness at which GD, heavy-ball or
  Nesterov stop being stable, by bisection on the spectral radius of the method's 2x2
  iteration matrix on a one-dimensional quadratic (independent of the closed forms in
  ``eosteach.thresholds``).
"""

from __future__ import annotations

import contextlib
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


_DENSE_HESSIAN_APIS = (("torch.autograd.functional", "hessian"), ("torch.autograd.functional", "jacobian"),
                       ("torch.func", "hessian"), ("torch.func", "jacrev"), ("torch.func", "jacfwd"))


@contextlib.contextmanager
def _watch_dense_hessian():
    """Record (in the yielded list) every call of an API that forms a whole Hessian or
    Jacobian (``torch.autograd.functional.hessian``, ``torch.func.hessian``, ...) while the
    block runs; the APIs are restored afterwards."""
    import importlib

    used, saved = [], []
    for module_name, attr in _DENSE_HESSIAN_APIS:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        original = getattr(module, attr, None)
        if original is None:
            continue

        def watched(*args, _original=original, _name=f"{module_name}.{attr}", **kwargs):
            used.append(_name)
            return _original(*args, **kwargs)

        saved.append((module, attr, original))
        setattr(module, attr, watched)
    try:
        yield used
    finally:
        for module, attr, original in saved:
            setattr(module, attr, original)


def _flat(parts) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in parts])


@checker("Hessian-vector product", library="eosteach.hessian.hvp")
def check_hvp(fn) -> bool:
    """Check ``fn(model, loss_fn, x, y, v) -> Hv`` (v and Hv flat tensors of length n, the
    parameters in ``model.parameters()`` order) against the dense Hessian of a tiny
    network (``hessian.dense_hessian``, n = 23, two seeds), to 1e-8 relative.

    Named mistakes: a first gradient taken without ``create_graph=True`` (it cannot be
    differentiated again), the gradient itself returned, a list of per-parameter pieces
    instead of one flat vector, a constant factor (a sum instead of the mean, a stray 1/2
    or 2), ``v`` changed in place, grad L + Hv (``.backward()`` twice into ``.grad``, which
    accumulates), and the Hessian formed (``torch.autograd.functional.hessian``,
    ``torch.func.hessian``, ``jacobian``, ``jacrev``, ``jacfwd``: watched while ``fn`` runs)."""
    fb = Feedback("Hessian-vector product")
    for seed in (0, 1):
        net, loss_fn, x, y, H = _tiny_problem(seed)
        gen = torch.Generator().manual_seed(10 + seed)
        v = torch.randn(H.shape[0], generator=gen, dtype=torch.float64)
        given = v.clone()
        try:
            with _watch_dense_hessian() as formed:
                out = fn(net, loss_fn, x, y, given)
        except RuntimeError as e:
            if "does not require grad" in str(e) or "does not have a grad_fn" in str(e):
                fb.fail("the second differentiation found no graph: take the first gradient with "
                        "create_graph=True, so that grad L . v can be differentiated again")
            else:
                fb.fail(f"fn(...) raised RuntimeError: {e}")
            return fb.report("")
        except Exception as e:  # noqa: BLE001 - a learner's bug is feedback, not a crash
            fb.fail(f"fn(...) raised {type(e).__name__}: {e}")
            return fb.report("")
        if isinstance(out, (list, tuple)):
            fb.fail(f"you return {len(out)} pieces (one per parameter tensor): flatten each and "
                    "concatenate them into one vector of length n")
            break
        try:
            got = torch.as_tensor(out).detach().reshape(-1).double()
        except Exception as e:  # noqa: BLE001
            fb.fail(f"the result must be a tensor of length n, got {type(out).__name__} ({e})")
            break
        if not torch.equal(given, v):
            fb.fail("your function changed v in place; leave its argument as it was")
            break
        if formed:
            fb.fail(f"you formed the Hessian ({formed[0]}): that is n x n numbers, 400 GB for the lesson's "
                    "network; differentiate grad L . v instead, which costs one more backward pass")
            break
        want = H @ v
        if got.shape != want.shape:
            fb.fail(f"Hv must be a flat vector of length n={want.shape[0]}, got shape {tuple(got.shape)}")
            break
        err = float((got - want).norm() / want.norm())
        if not err <= 1e-8:
            fb.fail(f"relative error {err:.2e} against the dense Hessian times v (seed {seed})")
            g_flat = _flat(torch.autograd.grad(loss_fn(net(x), y), list(net.parameters())))
            factor = float(got @ want / (want @ want))
            if torch.allclose(got, g_flat, rtol=1e-6):
                fb.fail("you returned the gradient itself: differentiate (grad L . v) a second time")
            elif float((got - g_flat - want).norm() / want.norm()) <= 1e-8:
                fb.fail("you return grad L + Hv: .backward() adds to the parameters' .grad, which still held the "
                        "first gradient; zero .grad before the second backward, or use torch.autograd.grad, "
                        "which returns the derivatives without accumulating them")
            elif abs(factor) > 1e-8 and float((got - factor * want).norm() / want.norm()) <= 1e-8:
                fb.fail(f"you return {factor:.4g} x Hv: the loss is the mean over examples as loss_fn gives it; "
                        "look for a sum instead of a mean, or a stray factor 2 or 1/2")
            else:
                fb.fail("differentiate the gradient's inner product with v, grad L(theta) . v, with respect "
                        "to the parameters, in model.parameters() order")
            break
    return fb.report("matches the dense Hessian times v to 1e-8")


def _spiked_matrix(n: int, top: float, gap: float, seed: int) -> np.ndarray:
    """A symmetric n x n matrix with eigenvalues top, top*gap, then spread in [-0.3, 0.6] top."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    rest = rng.uniform(-0.3, 0.6, size=n - 2) * top
    lam = np.concatenate([[top, top * gap], rest])
    return (Q * lam) @ Q.T


def _spectrum_matrix(eigenvalues, seed: int) -> np.ndarray:
    """A symmetric matrix with the given eigenvalues and a random orthonormal eigenbasis."""
    lam = np.asarray(eigenvalues, dtype=np.float64)
    Q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(lam.size, lam.size)))
    return (Q * lam) @ Q.T


def _krylov_basis(A: np.ndarray, k: int, seed: int) -> np.ndarray:
    """An orthonormal basis (n, k) of span{v, Av, ..., A^(k-1) v} (Gram-Schmidt twice)."""
    n = A.shape[0]
    Q = np.zeros((n, k))
    q = np.random.default_rng(seed).normal(size=n)
    for j in range(k):
        for _ in range(2):
            q = q - Q[:, :j] @ (Q[:, :j].T @ q)
        Q[:, j] = q / np.linalg.norm(q)
        q = A @ Q[:, j]
    return Q


def _dominant_negative_matrix() -> np.ndarray:
    """A symmetric 50 x 50 matrix whose most negative eigenvalue, -9, is larger in magnitude
    than its top one, 6 (the rest in [-4, 4.5]): power iteration must return -9."""
    rest = np.random.default_rng(2).uniform(-4.0, 4.0, size=47)
    return _spectrum_matrix(np.concatenate([[-9.0, 6.0, 4.5], rest]), seed=2)


def tiny_problem(seed: int = 0):
    """The tiny network of the lesson-3 checkers: a 4-3-2 tanh network in float64 with MSE on
    6 random examples. Returns (net, loss_fn, x, y, H), H its dense 23 x 23 Hessian. For
    seed 0 its most negative eigenvalue, -2.772, is larger in magnitude than its top one,
    lambda_max = 2.689: the case where power iteration does not find the sharpness."""
    return _tiny_problem(seed)


def _power_iteration_cases():
    """(name, matrix, n_iters) cases; power iteration must reach each matrix's eigenvalue of
    largest magnitude to 1e-4 relative within n_iters products."""
    return [("a 40x40 matrix with a dominant positive eigenvalue", _spiked_matrix(40, 7.5, 0.5, 0), 200),
            ("a 60x60 matrix with lambda_2/lambda_1 = 0.8", _spiked_matrix(60, 120.0, 0.8, 1), 400),
            ("a 50x50 matrix whose most negative eigenvalue (-9) dominates", _dominant_negative_matrix(), 300),
            ("the Hessian of a tiny tanh network (n=23)", _tiny_problem(0)[4].numpy(), 2000)]


@checker("power iteration", library="eosteach.hessian.power_iteration")
def check_power_iteration(fn) -> bool:
    """Check ``fn(hvp, n, n_iters) -> float``: power iteration on the symmetric operator
    ``hvp: torch.Tensor (n,) -> torch.Tensor (n,)``, returning the Rayleigh quotient v . Hv
    of the unit vector after ``n_iters`` products, i.e. the estimate of the eigenvalue of
    LARGEST MAGNITUDE (which is lambda_max only when no negative eigenvalue is larger in
    size). Compared, to 1e-4 relative, with ``numpy.linalg.eigvalsh`` on four matrices: two
    with a dominant positive eigenvalue, one whose most negative eigenvalue dominates, and
    the Hessian of a tiny tanh network (``tiny_problem(0)``), where power iteration converges
    to lambda_min = -2.772 and not to the sharpness 2.689. Also counts the products.

    Named mistakes: a vector never normalised (it overflows: inf or nan), the sign lost
    (||Hv|| or |v . Hv| instead of v . Hv), lambda_max instead of the largest-magnitude
    eigenvalue, ||Hv|| of an unnormalised vector, more than one product per iteration, a
    result that is not a number."""
    fb = Feedback("power iteration")
    network = None
    for name, A, n_iters in _power_iteration_cases():
        lam = np.linalg.eigvalsh(A)
        want = float(lam[np.argmax(np.abs(lam))])
        At = torch.as_tensor(A)
        calls = [0]

        def hvp(v):
            calls[0] += 1
            return At @ torch.as_tensor(v, dtype=torch.float64)

        try:
            out = fn(hvp, A.shape[0], n_iters)
        except Exception as e:  # noqa: BLE001 - a learner's bug is feedback, not a crash
            fb.fail(f"fn(...) raised {type(e).__name__} on {name}: {e}")
            return fb.report("")
        try:
            got = float(out)
        except (TypeError, ValueError, RuntimeError):
            fb.fail(f"return the estimate as one number (a float), got {type(out).__name__}")
            break
        if calls[0] > n_iters + 1:
            fb.fail(f"used {calls[0]} products for n_iters={n_iters}: one product per iteration is enough")
            break
        if math.isfinite(got) and abs(got - want) <= 1e-4 * abs(want):
            if name.startswith("the Hessian"):
                network = (got, float(lam[-1]))
            continue
        fb.fail(f"on {name} (eigenvalue of largest magnitude {want:.6g}) you return {got:.6g}")
        if not math.isfinite(got):
            fb.fail("your vector overflowed (inf) or became inf/inf (nan): normalise v after every product, "
                    "v <- Hv / ||Hv||, so that it stays a unit vector")
        elif want < 0 and abs(got + want) <= 1e-3 * abs(want):
            fb.fail("you lost the sign: return the Rayleigh quotient v . Hv of the unit vector, not ||Hv|| "
                    "or |v . Hv|; here the dominant eigenvalue is negative")
        elif want < 0 and abs(got - float(lam[-1])) <= 1e-3 * abs(float(lam[-1])):
            fb.fail(f"you return lambda_max = {lam[-1]:.4g}; power iteration converges to the eigenvalue of "
                    f"largest magnitude, here {want:.4g}, and that is what this exercise asks for")
        elif got > 0 and abs(got - want) > 0.5 * abs(want):
            fb.fail("normalise v after every product and return the Rayleigh quotient v . Hv "
                    "(with ||v|| = 1), not ||Hv|| of an unnormalised vector")
        break
    if network is None:
        return fb.report("")
    return fb.report("the Rayleigh quotient converges to the eigenvalue of largest magnitude on every test "
                     f"matrix. Look at the tiny network: there you get {network[0]:.4f}, its most negative "
                     f"eigenvalue, while its sharpness is lambda_max = {network[1]:.4f}. Power iteration "
                     "finds the sharpness only when no negative eigenvalue is larger in size.")


def _rayleigh_ritz_cases():
    """(name, Q, HQ, n_eigenvalues) cases: a Krylov basis of a matrix whose most negative
    eigenvalue is larger in magnitude than its top one; a full basis (k = n), where the Ritz
    values are the eigenvalues; products with a little asymmetric noise, as floating-point
    Hessian-vector products have, where T = Q^T H Q must be symmetrised."""
    A = _spectrum_matrix(np.concatenate([[6.0, 5.0], np.linspace(-9.0, 3.0, 38)]), seed=3)
    Q = _krylov_basis(A, 8, seed=4)
    cases = [("a Krylov basis (n=40, k=8)", Q, A @ Q)]
    B = _spectrum_matrix([7.0, 4.0, 2.5, 1.0, 0.5, -0.2, -1.5, -3.0, -4.0, -6.5], seed=5)
    Qf, _ = np.linalg.qr(np.random.default_rng(6).normal(size=(10, 10)))
    cases.append(("a full basis (n=k=10)", Qf, B @ Qf))
    Qn = _krylov_basis(A, 6, seed=7)
    noise = 1e-3 * np.random.default_rng(8).normal(size=Qn.shape)
    cases.append(("noisy products (n=40, k=6)", Qn, A @ Qn + noise))
    return cases, B


def _as_float64(a):
    return torch.as_tensor(np.asarray(a.detach().cpu() if isinstance(a, torch.Tensor) else a, dtype=np.float64))


@checker("one Rayleigh-Ritz step", library="eosteach.widgets.training.rayleigh_ritz")
def check_rayleigh_ritz(fn) -> bool:
    """Check ``fn(Q, HQ) -> (values, vector)``: Q (n, k) float64 with orthonormal columns,
    HQ = H Q (n, k); values: the k Ritz values in descending order (k,); vector: the unit
    Ritz vector (n,) of the largest. Compared, to 1e-8, with a dense eigensolve
    (``numpy.linalg.eigh``) of the symmetrised projection (T + T^T)/2, T = Q^T HQ; with a
    full basis (k = n), the values must be the matrix's own eigenvalues (``eigvalsh``).

    Named mistakes: the smallest Ritz value (``eigh`` sorts ascending), the largest in
    magnitude instead of the largest, T not symmetrised, the diagonal of T (Rayleigh
    quotients of the basis vectors) instead of its eigenvalues, the eigenvalues of H^2
    (HQ^T HQ), the small vector y of T instead of Q y, a vector that is not of unit length."""
    fb = Feedback("one Rayleigh-Ritz step")
    cases, B = _rayleigh_ritz_cases()
    for name, Q, HQ in cases:
        n, k = Q.shape
        T = Q.T @ HQ
        Ts = 0.5 * (T + T.T)
        w, Y = np.linalg.eigh(Ts)
        want, want_x = w[::-1], Q @ Y[:, -1]
        try:
            out = fn(torch.tensor(Q), torch.tensor(HQ))
        except Exception as e:  # noqa: BLE001
            fb.fail(f"fn(Q, HQ) raised {type(e).__name__} on {name}: {e}")
            return fb.report("")
        if not (isinstance(out, (tuple, list)) and len(out) == 2):
            fb.fail("return a pair (values, vector): the k Ritz values and the top Ritz vector")
            break
        try:
            values = _as_float64(out[0]).reshape(-1)
            x = _as_float64(out[1])
        except Exception as e:  # noqa: BLE001
            fb.fail(f"values and vector must be tensors (or arrays) of numbers ({type(e).__name__}: {e})")
            break
        scale = np.abs(want).max()

        def close(a, b):
            a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
            return a.shape == b.shape and bool(np.all(np.abs(a - b) <= 1e-8 * scale))

        vals = values.numpy()
        if vals.shape != (k,):
            fb.fail(f"on {name}: values must hold the k={k} Ritz values, got shape {tuple(vals.shape)}")
            break
        if not close(vals, want):
            if close(vals, want[::-1]):
                fb.fail(f"on {name}: your values are in ascending order (as eigh returns them); "
                        "sort them from the largest down")
            elif close(np.sort(vals), np.sort(want)):
                fb.fail(f"on {name}: the right values in the wrong order: sort by value, largest first, "
                        "not by magnitude (a Hessian has negative eigenvalues too; the sharpness is the largest)")
            elif close(np.sort(vals)[::-1], np.sort(np.diag(T))[::-1]) or close(vals, np.diag(T)):
                fb.fail(f"on {name}: these are the diagonal entries of Q^T H Q, the Rayleigh quotients of the "
                        "basis vectors; the Ritz values are the eigenvalues of the whole k x k matrix")
            elif close(np.sort(vals)[::-1], np.sort(np.linalg.eigvalsh(HQ.T @ HQ))[::-1]):
                fb.fail(f"on {name}: these are the eigenvalues of (HQ)^T (HQ) = Q^T H^2 Q; project once: "
                        "Q^T (H Q)")
            elif name.startswith("noisy") and (
                    close(np.sort(vals), np.sort(np.linalg.eigvalsh(np.tril(T) + np.tril(T, -1).T)))
                    or close(np.sort(vals), np.sort(np.linalg.eigvalsh(np.triu(T) + np.triu(T, 1).T)))
                    or close(np.sort(vals), np.sort(np.linalg.eigvals(T).real))):
                fb.fail(f"on {name}: Q^T (H Q) is symmetric only up to the products' rounding; symmetrise "
                        "it, (T + T^T)/2, before the symmetric eigensolve (otherwise one triangle is ignored)")
            else:
                fb.fail(f"on {name}: Ritz values {np.round(vals[:3], 6)}..., expected {np.round(want[:3], 6)}...")
            break
        if name.startswith("a full") and not close(vals, np.linalg.eigvalsh(B)[::-1]):
            fb.fail("with a full basis (k = n) the Ritz values must be the matrix's eigenvalues")
            break
        xs = x.numpy().reshape(-1)
        if xs.shape == (k,) and k != n:
            fb.fail(f"on {name}: your vector has k={k} entries: that is y, the eigenvector of the small matrix; "
                    "the Ritz vector lives in R^n: map it back with Q y")
            break
        if xs.shape != (n,):
            fb.fail(f"on {name}: the vector must have shape (n,) = ({n},), got {tuple(xs.shape)}")
            break
        if abs(np.linalg.norm(xs) - 1) > 1e-8:
            fb.fail(f"on {name}: the Ritz vector must have unit length, got norm {np.linalg.norm(xs):.6g}")
            break
        if abs(abs(float(xs @ want_x)) - 1) > 1e-8:
            smallest = Q @ Y[:, 0]
            if abs(abs(float(xs @ smallest)) - 1) <= 1e-8:
                fb.fail(f"on {name}: your vector belongs to the smallest (most negative) Ritz value: eigh sorts "
                        "ascending, and the sharpness is the largest value, not the largest magnitude")
            else:
                fb.fail(f"on {name}: your vector is not the Ritz vector of the top Ritz value "
                        f"(|<x, x_top>| = {abs(float(xs @ want_x)):.4f}, expected 1)")
            break
    return fb.report("Ritz values and the top Ritz vector match a dense eigensolve on every test basis")


def _arrival_inputs(t, S, eta):
    t = np.asarray(t, dtype=np.float64).reshape(-1)
    S = np.asarray(S, dtype=np.float64).reshape(-1)
    if t.size < 1 or t.shape != S.shape:
        raise ValueError(f"t and S must be 1-d arrays of the same length >= 1, got {t.shape} and {S.shape}")
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(S))):
        raise ValueError("t and S must be finite (did the run diverge?)")
    if np.any(np.diff(t) <= 0):
        raise ValueError("t must be strictly increasing")
    return t, S, validate.positive("eta", eta)


def arrival_step(t, S, eta):
    """When a sharpness record first reaches 2/eta, in GD steps of size eta.

    t: (m,) increasing times t = sum of the step sizes so far (``run.metrics["time"]`` at the
    steps where S was measured); S: (m,) the sharpness measured there; eta > 0. Let i be the
    first index with S[i] >= 2/eta; the crossing time is the linear interpolation
    t* = t[i-1] + (2/eta - S[i-1]) (t[i] - t[i-1]) / (S[i] - S[i-1]) (t* = t[0] when
    i = 0). Returns t* / eta (a float: GD at step size eta has covered time k eta after k
    steps), or None when S never reaches 2/eta.

    On a gradient-flow run this predicts when GD at step size eta reaches the edge of
    stability, since GD follows the flow until then (Cohen et al., ICLR 2021, appendix on
    gradient flow); on a GD run it measures it, between the tracked steps."""
    t, S, eta = _arrival_inputs(t, S, eta)
    level = 2.0 / eta
    hits = np.flatnonzero(S >= level)
    if not hits.size:
        return None
    i = int(hits[0])
    if i == 0:
        return float(t[0] / eta)
    t_star = t[i - 1] + (level - S[i - 1]) * (t[i] - t[i - 1]) / (S[i] - S[i - 1])
    return float(t_star / eta)


def _scan_arrival(t, S, level, n_grid: int = 200_001):
    """The first time the piecewise-linear interpolant of (t, S) reaches ``level``: a dense
    scan for the first grid cell that crosses, then bisection inside it (independent of the
    closed form in ``arrival_step``). None when it never does."""
    if S[0] >= level:
        return float(t[0])
    grid = np.linspace(t[0], t[-1], n_grid)
    above = np.flatnonzero(np.interp(grid, t, S) >= level)
    if not above.size:
        return None
    lo, hi = grid[above[0] - 1], grid[above[0]]
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        if np.interp(mid, t, S) >= level:
            hi = mid
        else:
            lo = mid
    return float(hi)


def _arrival_cases():
    """(name, t, S, eta) cases. Times are non-uniform, as the flow's steps h = alpha / S are."""
    rng = np.random.default_rng(11)
    t1 = np.cumsum(np.concatenate([[0.0], rng.uniform(0.1, 0.4, size=40)]))
    concave = 80.0 + 60.0 * (1.0 - np.exp(-t1 / 4.0))
    dip_t = np.cumsum(np.concatenate([[0.0], rng.uniform(0.5, 1.5, size=19)]))
    dip = np.array([18.0, 14.5, 16.8, 19.7, 22.0, 25.0, 28.0, 31.0, 34.0, 36.5, 38.8, 41.2, 39.5, 42.5, 40.8,
                    43.0, 44.5, 43.2, 45.8, 46.5])        # like fc-relu: a dip, a rise, bumps at the edge
    return [("a concave rise, non-uniform times (2/eta = 120)", t1, concave, 2 / 120),
            ("a second step size on the same record (2/eta = 100)", t1, concave, 2 / 100),
            ("a record with a dip and bumps, crossing 2/eta more than once (2/eta = 40)", dip_t, dip, 2 / 40),
            ("a record that starts above 2/eta (2/eta = 70)", t1, concave, 2 / 70),
            ("a record that never reaches 2/eta (2/eta = 200)", t1, concave, 2 / 200)]


@checker("GD's arrival at the edge, predicted from the flow",
         library="eosteach.exercises.sharpness.arrival_step")
def check_arrival_step(fn) -> bool:
    """Check ``fn(t, S, eta) -> float | None``: the GD step at which the record S(t) (times
    t, increasing) first reaches 2/eta, by linear interpolation between the two samples
    around the first crossing, i.e. t* / eta; None when S never reaches 2/eta. Compared, to
    1e-6 relative, with a dense scan plus bisection of the piecewise-linear interpolant, on
    records with non-uniform times, one with a dip and several crossings, one that starts
    above 2/eta and one that never reaches it.

    Named mistakes: the time t* returned instead of the step t* / eta, the level eta or 1/eta
    instead of 2/eta, no interpolation (the time of the first sample above, or of the one
    before it), an index instead of a time, a later crossing instead of the first, a number
    where S never reaches 2/eta (extrapolation), a uniform time step assumed."""
    fb = Feedback("GD's arrival at the edge, predicted from the flow")
    for name, t, S, eta in _arrival_cases():
        level = 2.0 / eta
        t_star = _scan_arrival(t, S, level)
        want = None if t_star is None else t_star / eta
        try:
            out = fn(t.copy(), S.copy(), eta)
        except Exception as e:  # noqa: BLE001 - a learner's bug is feedback, not a crash
            fb.fail(f"fn(t, S, eta) raised {type(e).__name__} on {name}: {e}")
            return fb.report("")
        if want is None:
            if out is not None:
                fb.fail(f"on {name}: S never reaches 2/eta = {level:.4g} (its largest value is {S.max():.4g}), "
                        f"so return None; you return {out!r}: do not extrapolate beyond the record")
                break
            continue
        if out is None:
            fb.fail(f"on {name}: S reaches 2/eta = {level:.4g} (at t = {t_star:.4g}), but you return None")
            break
        try:
            got = float(out)
        except (TypeError, ValueError):
            fb.fail(f"return one number (a float) or None, got {type(out).__name__}")
            break

        def near(a, b):
            return b is not None and math.isfinite(a) and abs(a - b) <= 1e-6 * max(abs(b), 1.0)

        if near(got, want):
            continue
        fb.fail(f"on {name}: expected step {want:.6g}, you return {got:.6g}")
        i = int(np.flatnonzero(S >= level)[0])
        later = [k for k in range(i + 1, S.size) if S[k] >= level > S[k - 1]]
        if near(got, t_star):
            fb.fail("that is the crossing time t*; GD at step size eta has covered time k eta after k steps: "
                    "return t* / eta")
        elif any(near(got, x) for x in (_cross_value(t, S, eta) / eta, _cross_value(t, S, eta),
                                          _cross_value(t, S, 1.0 / eta) / eta)):
            fb.fail("compare S with the edge 2/eta itself (not eta or 1/eta): lesson 1's stability limit")
        elif near(got, t[i] / eta) or near(got, t[max(i - 1, 0)] / eta):
            fb.fail("you return the time of a tracked sample; interpolate linearly between the last sample "
                    "below 2/eta and the first one at or above it")
        elif near(got, float(i)) or near(got, float(i) / eta) or near(got, i - 1.0):
            fb.fail("you return a sample's index; the answer is a time t (divided by eta), read from t")
        elif any(near(got, _interp_at(t, S, level, k) / eta) for k in later) or near(
                got, float(np.interp(level, S, t)) / eta):
            fb.fail("you found a later crossing: the edge is reached the FIRST time S gets to 2/eta "
                    "(S may dip and cross again later; np.interp(level, S, t) needs an increasing S)")
        elif near(got, _uniform_value(t, S, level) / eta):
            fb.fail("the times are not evenly spaced (the flow's step h = alpha / S varies): interpolate "
                    "with the two samples' own times")
        break
    return fb.report("matches a dense scan and bisection of the interpolated record on every test case, "
                     "including the first of several crossings and a record that never gets there")


def _interp_at(t, S, level, i):
    """The linear crossing time in the segment ending at index i (i >= 1)."""
    return t[i - 1] + (level - S[i - 1]) * (t[i] - t[i - 1]) / (S[i] - S[i - 1])


def _cross_value(t, S, level):
    """The first linear crossing time of a given level (for naming a wrong level); nan if none."""
    hits = np.flatnonzero(S >= level)
    if not hits.size:
        return float("nan")
    return float(t[0]) if hits[0] == 0 else float(_interp_at(t, S, level, int(hits[0])))


def _uniform_value(t, S, level):
    """The crossing time with a uniform step t[1] - t[0] assumed (for naming that mistake)."""
    hits = np.flatnonzero(S >= level)
    i = int(hits[0])
    if i == 0:
        return float(t[0])
    frac = (level - S[i - 1]) / (S[i] - S[i - 1])
    return float(t[0] + (i - 1 + frac) * (t[1] - t[0]))


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
