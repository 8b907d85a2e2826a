"""The sharpness engine: Hessian-vector products, Lanczos, power iteration, sharpness.

Everything works on *flat* vectors of length n = number of trainable parameters, on the
model's device and in the model's dtype (float32 or float64). The loss is the full-batch
training loss

    L(theta) = sum_c (n_c / n) * loss_fn(f_theta(x_c), y_c),

where the data are cut into chunks x_c of at most ``chunk_size`` examples (a "physical
batch size": memory stays bounded however many examples there are) and ``loss_fn``
returns the MEAN over the examples it is given. The sharpness is
S(theta) = lambda_max(H(theta)), H = D^2 L (Cohen et al., ICLR 2021).

How a product H v is computed (``method``, chosen by measurement with
``benchmarks/sharpness.py``; fc-tanh 3072-200-200-10 on 5,000 CIFAR-10 images, CPU, cost in
units of one gradient evaluation):

* ``"retained"`` (the default when all data fit in one chunk, ``chunk_size=None``): the
  graph of grad L is built once, with ``create_graph=True``, and each product is one
  reverse pass through that retained graph (reverse-over-reverse). The forward pass and
  the first backward pass are paid once per operator, not once per product: about 1
  gradient per product. This is the fast path for Lanczos, which asks for many products
  at the same theta. A training run goes one step further: at a tracking step its own
  gradient is computed with ``create_graph=True`` and handed over (``gradient=``), so the
  operator builds nothing at all.
* ``"reverse"`` (the default with several chunks, and for the one-off ``hvp``): each
  product recomputes every chunk, reverse-over-reverse (``torch.autograd.grad`` with
  ``create_graph=True``, then the gradient of grad L . v); memory is that of one chunk.
  About 2.2 gradients per product.
* ``"forward"``: forward-over-reverse, ``torch.func.jvp`` of ``torch.func.grad`` through
  ``torch.func.functional_call``. It measured slower here (about 3.5 gradients per
  product on CPU), so it is not the default; it is kept as an independent check.

Eigen-solvers:

* ``lanczos``: Lanczos with full reorthogonalisation, top-k LARGEST ALGEBRAIC eigenvalues,
  warm start from a block of earlier eigenvectors, under a cap on products. By default it
  stops on the eigenvalue's own error: a Kato-Temple bound, residual^2 / gap, reported in
  ``EigResult.error_bounds`` (``ritz_error_bounds``); ``stop="residual"`` stops on
  ||H x - lambda x|| <= tol |lambda| instead, which also bounds the eigenvector. Vectors
  stay on the device; only the tridiagonal scalars travel to the host. They are float32
  for float32 products when tol is at least ten times their floor sqrt(n) eps_32
  (``krylov_dtype``), float64 otherwise; the bounds account for each choice's floor.
* ``power_iteration``: the baseline (as in PyHessian), same stopping rule; it finds the
  eigenvalue of largest MAGNITUDE.
* ``dense_hessian``: the full n x n matrix, for tiny models (tests, lessons).

Adaptive methods: ``preconditioned_sharpness`` is lambda_max(P^{-1/2} H P^{-1/2}) for a
diagonal preconditioner P (Cohen et al., "Adaptive gradient methods at the edge of
stability", 2022). For Adam with bias-corrected second moment v_hat at step t,
P = (1 - beta1^t) (sqrt(v_hat) + eps); for RMSProp, P = sqrt(v) + eps. Frozen-P Adam
diverges once this exceeds (2 + 2 beta1) / ((1 - beta1) eta) (``eosteach.thresholds.adam``).

Mini-batch SGD: ``gradient_curvature`` is the curvature of a loss along its own gradient,
g^T H g / ||g||^2 (one gradient and one Hessian-vector product), and ``batch_sharpness``
is its mean over random mini-batches B of size b,

    batch sharpness = E_B [ g_B^T H_B g_B / ||g_B||^2 ],   g_B = grad L_B,  H_B = D^2 L_B,

the quantity that stabilises at 2/eta along mini-batch SGD with step size eta, while the
full-batch sharpness sits below 2/eta for small batches (A. Andreyev, P. Beneventano,
"Edge of Stochastic Stability: Revisiting the Edge of Stability for SGD", arXiv 2412.20553,
2024: the "edge of stochastic stability").

Self-stabilization: ``sharpness_gradient`` is grad S(theta) = D^3 L(theta)[u, u] for a
simple top eigenvalue with unit eigenvector u (Damian, Nichani & Lee, 2022).

A caveat on modules: the model is called as it is (train or eval mode); dropout or
batch-norm in train mode make the "Hessian" random or stateful, so evaluate those in
``model.eval()``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call, grad, jvp

from . import validate

__all__ = [
    "EigResult",
    "HessianOperator",
    "batch_curvatures",
    "batch_sharpness",
    "dense_hessian",
    "flat_grad",
    "flat_params",
    "full_curvatures_along_batches",
    "gradient_curvature",
    "hvp",
    "krylov_dtype",
    "lanczos",
    "power_iteration",
    "preconditioned_sharpness",
    "ritz_error_bounds",
    "set_flat_params",
    "sharpness",
    "sharpness_gradient",
]


# --------------------------------------------------------------------------- parameters


def _named_params(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """The trainable parameters, in ``model.named_parameters()`` order (frozen ones are
    not coordinates of theta)."""
    return [(name, p) for name, p in model.named_parameters() if p.requires_grad]


def flat_params(model: nn.Module) -> torch.Tensor:
    """theta as one detached vector of shape (n,), a copy."""
    return torch.cat([p.detach().reshape(-1) for _, p in _named_params(model)])


def set_flat_params(model: nn.Module, theta: torch.Tensor) -> None:
    """Copy the flat vector ``theta`` (n,) into the model's trainable parameters, in place."""
    params = [p for _, p in _named_params(model)]
    n = sum(p.numel() for p in params)
    if theta.ndim != 1 or theta.numel() != n:
        raise ValueError(f"theta must be a flat vector of shape ({n},), got {tuple(theta.shape)}")
    with torch.no_grad():
        offset = 0
        for p in params:
            p.copy_(theta[offset : offset + p.numel()].view_as(p))
            offset += p.numel()


def _unflatten(v: torch.Tensor, params) -> tuple[torch.Tensor, ...]:
    """Views of the flat ``v`` shaped like each parameter."""
    out, offset = [], 0
    for p in params:
        out.append(v[offset : offset + p.numel()].view_as(p))
        offset += p.numel()
    return tuple(out)


def _flatten(parts, params) -> torch.Tensor:
    """Concatenate per-parameter tensors (None = zero, for parameters the loss ignores)."""
    return torch.cat(
        [(torch.zeros_like(p) if g is None else g).reshape(-1) for g, p in zip(parts, params)]
    )


# --------------------------------------------------------------------------- checks


def _check_model(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    named = _named_params(model)
    if not named:
        raise ValueError("model must have at least one parameter with requires_grad=True")
    for name, p in named:
        if not torch.isfinite(p).all():
            raise ValueError(f"model parameters must be finite, but {name!r} holds NaN or inf")
    return named


def _check_data(x, y) -> int:
    if not isinstance(x, torch.Tensor) or x.ndim == 0 or x.shape[0] == 0:
        raise ValueError("x must be a tensor holding at least one example (shape (m, ...) with m >= 1)")
    if not isinstance(y, torch.Tensor) or y.ndim == 0 or y.shape[0] != x.shape[0]:
        got = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        raise ValueError(f"y must be a tensor with one row per example ({x.shape[0]}), got {got}")
    return int(x.shape[0])


def _chunks(m: int, chunk_size):
    """(start, stop) of each chunk; ``chunk_size=None`` means all m examples at once."""
    size = m if chunk_size is None else validate.positive_int("chunk_size", chunk_size)
    return [(i, min(i + size, m)) for i in range(0, m, size)]


def _check_vector(name: str, v, n: int, like: torch.Tensor) -> torch.Tensor:
    if not isinstance(v, torch.Tensor) or v.shape != (n,):
        got = tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
        raise ValueError(f"{name} must be a tensor of shape ({n},), got {got}")
    return v.to(device=like.device, dtype=like.dtype)


# --------------------------------------------------------------------------- gradient and products


def flat_grad(model: nn.Module, loss_fn, x, y, *, chunk_size=None):
    """The full-batch loss L(theta) (0-dim tensor) and its gradient as a flat vector (n,)."""
    named = _check_model(model)
    m = _check_data(x, y)
    params = [p for _, p in named]
    loss_total = torch.zeros((), dtype=params[0].dtype, device=params[0].device)
    g_total = torch.zeros(sum(p.numel() for p in params), dtype=params[0].dtype, device=params[0].device)
    for a, b in _chunks(m, chunk_size):
        loss = loss_fn(model(x[a:b]), y[a:b]) * ((b - a) / m)
        parts = torch.autograd.grad(loss, params, allow_unused=True)
        loss_total += loss.detach()
        g_total += _flatten(parts, params)
    return loss_total, g_total


def _chunk_hvp_forward_over_reverse(model, loss_fn, names, params, xc, yc, v_parts):
    """H_c v for one chunk: jvp of the gradient (forward-over-reverse), no graph kept."""

    def loss_of(*theta):
        return loss_fn(functional_call(model, dict(zip(names, theta)), (xc,)), yc)

    _, hv = jvp(grad(loss_of, argnums=tuple(range(len(params)))), tuple(params), tuple(v_parts))
    return hv


def _grad_graph(model, loss_fn, params, xc, yc, weight):
    """The entries of weight * grad loss_c as a differentiable graph: (index, tensor) pairs.
    Entries that do not depend on theta (a zero block of H) are left out."""
    loss = loss_fn(model(xc), yc) * weight
    grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
    return [(i, g) for i, g in enumerate(grads) if g is not None and g.requires_grad]


def _graph_hvp(graph, params, v_parts, retain_graph):
    """H v = grad(grad L . v) through a graph built by ``_grad_graph``; parts, None = 0."""
    if not graph:
        return [None] * len(params)
    return torch.autograd.grad(
        [g for _, g in graph],
        params,
        grad_outputs=[v_parts[i] for i, _ in graph],
        retain_graph=retain_graph,
        allow_unused=True,
    )


HVP_METHODS = ("auto", "retained", "reverse", "forward")


class HessianOperator:
    """The Hessian of the full-batch loss at the current parameters, as a linear operator.

    ``op.matvec(v)`` (or ``op(v)``, ``op @ v``) returns H v (n,) for a flat v of shape (n,);
    ``op.n`` is the number of parameters and ``op.shape`` is (n, n); ``op.n_products`` counts
    the products answered so far; ``op.to_scipy()`` is the same operator for scipy.

    ``method`` (see the module docstring): "auto" = "retained" when the data form one
    chunk, else "reverse"; "retained" keeps the graph of every chunk (memory of the whole
    batch); "reverse" and "forward" recompute each chunk at every product. A retained
    graph is a snapshot: if the parameters are changed in place, it is rebuilt at the
    next product.

    ``gradient`` (optional): grad L at the current parameters, as returned by
    ``torch.autograd.grad(loss_fn(model(x), y), params, create_graph=True)`` on the whole of
    (x, y), e.g. by the training step that needs this gradient anyway. The "retained" method
    then differentiates through that graph instead of building its own, which saves one
    forward and one backward pass per operator (a run's tracking point).
    """

    def __init__(self, model: nn.Module, loss_fn, x, y, *, chunk_size=None, method="auto", gradient=None):
        named = _check_model(model)
        self.m = _check_data(x, y)
        validate.choice("method", method, HVP_METHODS)
        self.model, self.loss_fn, self.x, self.y = model, loss_fn, x, y
        self.names = [name for name, _ in named]
        self.params = [p for _, p in named]
        self.n = sum(p.numel() for p in self.params)
        self.dtype, self.device = self.params[0].dtype, self.params[0].device
        self.chunks = _chunks(self.m, chunk_size)
        if method == "auto":
            method = "retained" if len(self.chunks) == 1 else "reverse"
        self.method = method
        self.n_products = 0
        self._graphs = None
        self._versions = None
        if gradient is not None:
            self._adopt(gradient)

    def _adopt(self, gradient) -> None:
        if self.method != "retained" or len(self.chunks) != 1:
            raise ValueError("gradient can only be reused with method='retained' and one chunk (chunk_size=None)")
        gradient = tuple(gradient)
        if len(gradient) != len(self.params) or any(
            g is not None and g.shape != p.shape for g, p in zip(gradient, self.params)
        ):
            raise ValueError(f"gradient must hold one tensor per trainable parameter ({len(self.params)}), "
                             "shaped like it")
        graph = [(i, g) for i, g in enumerate(gradient) if g is not None and g.requires_grad]
        if not graph and any(g is not None for g in gradient):
            raise ValueError("gradient must be computed with create_graph=True")
        self._graphs, self._versions = [graph], [p._version for p in self.params]

    def _retained_graphs(self):
        versions = [p._version for p in self.params]
        if self._graphs is None or self._versions != versions:
            self._graphs = [
                _grad_graph(self.model, self.loss_fn, self.params, self.x[a:b], self.y[a:b], (b - a) / self.m)
                for a, b in self.chunks
            ]
            self._versions = versions
        return self._graphs

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        v = _check_vector("v", v, self.n, self.params[0])
        v_parts = _unflatten(v, self.params)
        self.n_products += 1
        if self.method == "retained":
            parts = [_flatten(_graph_hvp(graph, self.params, v_parts, retain_graph=True), self.params)
                     for graph in self._retained_graphs()]
            return parts[0] if len(parts) == 1 else torch.stack(parts).sum(dim=0)
        out = torch.zeros_like(v)
        for a, b in self.chunks:
            xc, yc, weight = self.x[a:b], self.y[a:b], (b - a) / self.m
            if self.method == "forward":
                parts = _chunk_hvp_forward_over_reverse(
                    self.model, self.loss_fn, self.names, self.params, xc, yc, v_parts
                )
                out += _flatten(parts, self.params).detach() * weight
            else:
                graph = _grad_graph(self.model, self.loss_fn, self.params, xc, yc, weight)
                out += _flatten(_graph_hvp(graph, self.params, v_parts, retain_graph=False), self.params)
        return out

    __call__ = matvec

    @property
    def shape(self) -> tuple[int, int]:
        """(n, n): H as a matrix over the flat parameters."""
        return (self.n, self.n)

    def __matmul__(self, v: torch.Tensor) -> torch.Tensor:
        """``op @ v``: H v for a flat v (n,), or H V column by column for a block V (n, j)."""
        if isinstance(v, torch.Tensor) and v.ndim == 2 and v.shape[0] == self.n:
            return torch.stack([self.matvec(col) for col in v.T], dim=1)
        return self.matvec(v)

    def to_scipy(self):
        """H as a ``scipy.sparse.linalg.LinearOperator`` over float64 NumPy vectors (each
        product a host round trip, in the model's dtype), for scipy's solvers (``eigsh``) and
        for checks against them. Needs scipy."""
        import numpy as np
        from scipy.sparse.linalg import LinearOperator

        def matvec(v):
            v = torch.as_tensor(np.asarray(v, dtype=np.float64).reshape(-1), dtype=self.dtype, device=self.device)
            return self.matvec(v).detach().cpu().double().numpy()

        return LinearOperator(self.shape, matvec=matvec, rmatvec=matvec, dtype=np.float64)

    def release(self) -> None:
        """Free the retained graphs (rebuilt if another product is asked for)."""
        self._graphs = None


def hvp(model: nn.Module, loss_fn, x, y, v, *, chunk_size=None, method="reverse") -> torch.Tensor:
    """One Hessian-vector product H(theta) v of the full-batch loss, shape (n,).

    Reverse-over-reverse on each chunk, summed with weights n_c / n. For many products at
    the same theta use ``HessianOperator``, which retains the graph and is faster per product.
    """
    return HessianOperator(model, loss_fn, x, y, chunk_size=chunk_size, method=method).matvec(v)


def dense_hessian(model: nn.Module, loss_fn, x, y, *, chunk_size=None) -> torch.Tensor:
    """The full Hessian (n, n), one column per product with a basis vector. Tiny models
    only: n products and n^2 numbers."""
    op = HessianOperator(model, loss_fn, x, y, chunk_size=chunk_size)
    eye = torch.eye(op.n, dtype=op.dtype, device=op.device)
    h = torch.stack([op.matvec(eye[i]) for i in range(op.n)], dim=1)
    return 0.5 * (h + h.T)  # symmetric up to rounding; make it exactly so for eigvalsh


# --------------------------------------------------------------------------- eigen-solvers


@dataclass
class EigResult:
    """Result of an eigen-solver.

    eigenvalues (k,) descending; eigenvectors (n, k), unit columns, same device/dtype as
    the products; n_products: operator products used; converged: whether every wanted
    pair met the stopping rule before the cap; residuals (k,): the residual norms
    ||H x - lambda x|| of the returned pairs; error_bounds (k,): bounds on |lambda - theta|,
    the error of each returned eigenvalue (``lanczos``: Kato-Temple, see there; power
    iteration: the residual norm); ritz_vectors (n, j): the top j Ritz vectors (j >= k when
    the solver kept extra ones), the block to pass as ``v0`` to the next call of a run.
    """

    eigenvalues: torch.Tensor
    eigenvectors: torch.Tensor
    n_products: int
    converged: bool
    residuals: torch.Tensor
    error_bounds: torch.Tensor
    ritz_vectors: torch.Tensor

    @property
    def top(self) -> float:
        """The largest eigenvalue, as a float."""
        return float(self.eigenvalues[0])


def _solver_setup(n, v0, device, dtype):
    n = validate.positive_int("n", n)
    if v0 is not None:
        if not isinstance(v0, torch.Tensor) or v0.shape[0] != n or v0.ndim not in (1, 2):
            got = tuple(v0.shape) if isinstance(v0, torch.Tensor) else type(v0).__name__
            raise ValueError(f"v0 must be a tensor of shape ({n},) or ({n}, j), got {got}")
        if not torch.isfinite(v0).all():
            raise ValueError("v0 must be finite")
        device = v0.device if device is None else device
        dtype = v0.dtype if dtype is None else dtype
    device = torch.device("cpu") if device is None else torch.device(device)
    dtype = torch.float32 if dtype is None else dtype
    return n, device, dtype


def _random_unit(n, device, dtype, generator, against=None):
    """A random unit vector, orthogonal to the rows of ``against`` when given."""
    q = torch.randn(n, generator=generator, dtype=dtype, device="cpu").to(device)
    if against is not None and against.shape[0]:
        for _ in range(2):
            q -= against.T @ (against @ q)
    return q / q.norm()


def _start_vector(v0, n, device, dtype, generator):
    """The Krylov seed. A block of earlier eigenvectors (n, j) is seeded by the sum of its
    unit columns: after j steps the Krylov space then holds (nearly) all of them, so the
    wanted pairs converge in a few more steps. Sum, not mean of signs: eigenvector signs
    are arbitrary and any combination with no zero weight works."""
    if v0 is None:
        return _random_unit(n, device, dtype, generator)
    block = v0.to(device=device, dtype=dtype).reshape(n, -1)
    norms = block.norm(dim=0)  # a NaN or inf anywhere makes its column's norm non-finite
    if not torch.isfinite(norms).all():
        raise ValueError("v0 must be finite")
    if block.shape[1] == 1:  # the usual warm start: one earlier eigenvector
        q, tiny = block[:, 0], 0.0
    else:
        q, tiny = (block[:, norms > 0] / norms[norms > 0]).sum(dim=1), 1e-8 * math.sqrt(block.shape[1])
    size = float(q.norm())
    if size <= tiny:  # no direction to start from
        return _random_unit(n, device, dtype, generator)
    return q / size


def ritz_error_bounds(ritz: torch.Tensor, residuals: torch.Tensor) -> torch.Tensor:
    """Bounds on the error of Ritz values from their residuals (float64 host tensors, (m,)).

    ritz: theta_1 >= ... >= theta_m, the Ritz values of one orthonormal basis;
    residuals: r_i = ||A x_i - theta_i x_i||. For each i the bound is min(r_i, r_i^2 / g_i),
    where r_i alone bounds the distance to the nearest eigenvalue (Krylov-Weinstein), and
    r_i^2 / g_i is the Kato-Temple bound (Kato, 1949; Temple, 1928; Parlett, "The Symmetric
    Eigenvalue Problem", 1998, sec. 10.5): if the interval (a, b) holds theta_i and no
    eigenvalue of A but the one theta_i approximates, then that eigenvalue lies in
    [theta_i - r_i^2 / (theta_i - a), theta_i + r_i^2 / (b - theta_i)]. The interval is
    estimated from the neighbouring Ritz pairs: a = theta_{i+1} + 3 r_{i+1},
    b = theta_{i-1} - 3 r_{i-1}, with b = +inf for the top value and no lower neighbour for
    the last one (its bound is r_m). g_i is the distance from theta_i to the nearer end; when
    a neighbour's interval reaches theta_i (g_i <= 0) the quadratic bound does not apply and
    r_i is kept. The margin of three residuals (not one) is there because a neighbour that
    is itself still a mixture of eigenvectors can sit further below its eigenvalue than its
    residual: on random test spectra it cut the cases where the bound fell below the error
    by 2-3x for the price of a few % more products.

    The hypothesis is that no eigenvalue the basis has not yet resolved sits inside (a, b).
    Two eigenvalues closer than the basis can separate break it: theta_i then sits between
    them, within their distance of each one, and the bound can understate its error. No
    stopping rule of a Krylov method can see such a cluster before it resolves it (the
    residual rule cannot either); ``lanczos`` adds the check that can, after one more
    product (see there). A start (nearly) orthogonal to the top eigenvector breaks it too:
    along a GD run at the edge of stability where the top two eigenvalues (0.22% apart)
    traded places between tracking points, the warm start's squared overlap with the new
    top eigenvector was 4e-4, the solve converged on the old one, and the bound came out
    9.7e-5 against a true error of 2.2e-3 (README, "Warm starts along a run").
    """
    m = ritz.shape[0]
    bounds = residuals.clone()
    for i in range(m - 1):
        below = float(ritz[i] - ritz[i + 1] - 3 * residuals[i + 1])
        above = math.inf if i == 0 else float(ritz[i - 1] - 3 * residuals[i - 1] - ritz[i])
        gap = min(below, above)
        if gap > 0:
            bounds[i] = min(float(residuals[i]), float(residuals[i]) ** 2 / gap)
    return bounds


STOP_RULES = ("eigenvalue", "residual")

#: The Lanczos vectors are float32 when the products are (``dtype`` float32) and their
#: accuracy floor sqrt(n) eps_32 is at most this fraction of ``tol``, float64 otherwise
#: (``lanczos``, ``vector_dtype=None``). float32 vectors halve the memory the
#: reorthogonalisation reads, and on a CPU its passes ran 3-4x faster (n = 656,810, 8
#: vectors: 1.2 ms against 4.5 ms for Q @ w), but their inner products lose about sqrt(n)
#: units of float32 precision, so no bound goes below sqrt(n) eps_32 (9.7e-5 relative at
#: n = 656,810: float32 vectors from tol 9.7e-4 up there).
FLOAT32_VECTORS_FLOOR_FRACTION = 0.1


def krylov_dtype(dtype, tol, n) -> torch.dtype:
    """The dtype of ``lanczos``'s vectors for n-dimensional products in ``dtype`` at
    tolerance ``tol`` (the default choice; see ``FLOAT32_VECTORS_FLOOR_FRACTION``)."""
    floor = math.sqrt(n) * torch.finfo(torch.float32).eps
    return torch.float32 if dtype == torch.float32 and floor <= FLOAT32_VECTORS_FLOOR_FRACTION * tol else torch.float64


def lanczos(
    matvec,
    n: int,
    k: int = 1,
    *,
    v0=None,
    tol: float = 1e-3,
    stop: str = "eigenvalue",
    max_products: int = 100,
    keep=None,
    device=None,
    dtype=None,
    seed: int = 0,
    workspace=None,
    vector_dtype=None,
) -> EigResult:
    """Top-k largest algebraic eigenpairs of a symmetric operator by Lanczos with full
    reorthogonalisation (Golub & Van Loan, "Matrix Computations", ch. 10).

    matvec: v (n,) -> A v (n,). v0: None (random start, ``seed``), a vector (n,) or a block
    (n, j) of earlier Ritz vectors (warm start; see ``_start_vector``).

    Stopping (``stop``), checked after every product, for each of the top k Ritz values
    theta_i:
      * "eigenvalue" (default): the error bound of ``ritz_error_bounds`` (Kato-Temple) is
        <= tol |theta_i|, at this product and at the one before, and theta_i rose by no more
        than the earlier bound in between: ``tol`` is the relative error of the eigenvalue.
        A Ritz value only rises as the Krylov space grows (interlacing), towards its
        eigenvalue, so a rise larger than the previous bound proves that bound wrong (an
        unresolved cluster); the check costs one product more than the bound alone;
      * "residual": ||A x_i - theta_i x_i|| <= tol |theta_i| (a bound on the eigenvector
        too: its angle to the eigenspace is at most residual / gap);
    or after ``max_products`` products. The eigenvalue rule asks for less: the error of a
    Ritz value is about residual^2 / gap, so 1e-3 in the eigenvalue needs a residual of only
    ~sqrt(1e-3 gap / |theta|) |theta| when the gap is clear of the neighbours' residuals.
    Residuals cost nothing: |beta_m s_{m,i}|, read off the tridiagonal matrix. No bound goes
    below the products' own rounding, 8 units of ``dtype``'s precision of the largest |Ritz
    value| (float32 products: 1e-6 relative), nor below the vectors' own (``vector_dtype``).
    If the Krylov space becomes invariant, it continues from a random vector orthogonal to
    it, so a repeated eigenvalue is not missed by the start vector.

    ``keep``: how many top Ritz vectors to return in ``ritz_vectors`` (default k + 1), the
    block to warm-start the next call with: the next eigenvector down is the one most likely
    to swap places with the top one between two calls of a run.

    ``vector_dtype``: the dtype of the Lanczos vectors and of their arithmetic (the
    products run in ``dtype``; T and its eigenproblem are float64 on the host). None picks
    ``krylov_dtype(dtype, tol, n)``: float32 for float32 products when tol is at least ten
    times their floor (below), else float64.
    With float32 vectors the long inner products of the reorthogonalisation (n terms, summed
    in float32 by the BLAS) lose about sqrt(n) eps_32 of accuracy, so no bound then goes
    below sqrt(n) eps_32 |theta| (9.7e-5 relative at n = 656,810; on the CIFAR-10 benchmark
    the errors at tol 1e-3 were 2e-6 to 2e-4). With float64 vectors the error is that of
    the products themselves (~5e-8 for float32 products). Memory: 4 or 8 n bytes per step.

    ``workspace`` (optional): a tensor (j, n) of the vectors' dtype on the device, to hold
    the first j Lanczos vectors (more steps get a larger buffer of their own). Passing the
    same one to every call along a training run saves touching fresh memory at each call,
    which on a CPU costs about a sixth of a product per step at n ~ 10^6.
    """
    n, device, dtype = _solver_setup(n, v0, device, dtype)
    k = validate.positive_int("k", k)
    if k > n:
        raise ValueError(f"k must be an integer between 1 and n={n} (the operator size), got {k}")
    tol = validate.positive("tol", tol)
    validate.choice("stop", stop, STOP_RULES)
    max_products = validate.positive_int("max_products", max_products)
    keep = min(k + 1, n) if keep is None else validate.positive_int("keep", keep)
    generator = torch.Generator().manual_seed(int(seed))
    steps_max = min(max(max_products, k), n)
    if vector_dtype is None:
        work = krylov_dtype(dtype, tol, n)
    elif vector_dtype in (torch.float32, torch.float64):
        work = vector_dtype
    else:
        raise ValueError(f"vector_dtype must be None, torch.float32 or torch.float64, got {vector_dtype!r}")
    floor = max(8 * torch.finfo(dtype).eps, math.sqrt(n) * torch.finfo(work).eps)
    # A Krylov space counts as invariant when w is down to its own rounding.
    invariant_level = max(1e-10, 100 * torch.finfo(work).eps)
    if workspace is None:
        basis = torch.empty(min(steps_max, 32), n, dtype=work, device=device)  # rows q_0, q_1, ...
    elif (not isinstance(workspace, torch.Tensor) or workspace.ndim != 2 or workspace.shape[1] != n
          or workspace.shape[0] < 1 or workspace.dtype != work
          or workspace.device != torch.empty(0, device=device).device):
        name = str(work).split(".")[-1]
        raise ValueError(f"workspace must be a {name} tensor of shape (j, {n}) with j >= 1 on {device} "
                         f"(the Lanczos vectors' dtype: vector_dtype, or krylov_dtype(dtype, tol, n))")
    else:
        basis = workspace
    alphas, betas = [], []  # float64 on the host: the tridiagonal matrix T
    basis[0] = _start_vector(v0, n, device, work, generator)
    converged, m = False, 0
    ritz = s = bounds = None
    while m < steps_max:
        q = basis[m]
        w = matvec(q.to(dtype))
        if w.shape != (n,):
            raise ValueError(f"matvec must return a vector of shape ({n},), got {tuple(w.shape)}")
        # The vector passes below are each as dear as ~1/20 of a product at n ~ 10^6, so w
        # is updated in place (never the caller's tensor) and the two recurrence terms
        # alpha q_m + beta q_{m-1} are taken off in one pass.
        w = w.to(work, copy=True)
        alpha = float(torch.dot(q, w))
        if m > 0:
            coef = torch.tensor([betas[-1], alpha], dtype=work).to(device)
            w.addmv_(basis[m - 1 : m + 1].T, coef, alpha=-1)
        else:
            w.sub_(q, alpha=alpha)
        # Full reorthogonalisation keeps the Ritz vectors orthogonal, so no spurious copies
        # of converged eigenvalues appear. A second Gram-Schmidt pass is made only when the
        # first cancelled most of w (norm ratio < 1/sqrt(2): Daniel, Gragg, Kaufman & Stewart,
        # 1976), the one case where rounding leaves w measurably non-orthogonal; "twice is
        # enough" (Parlett). Each pass reads the whole basis, which at n ~ 10^6 costs about
        # as much as a product late in a run, so the unneeded second pass is skipped.
        q_block = basis[: m + 1]
        norm_in = float(w.norm())
        w.addmv_(q_block.T, q_block @ w, alpha=-1)
        beta = float(w.norm())
        if beta < norm_in / math.sqrt(2):
            w.addmv_(q_block.T, q_block @ w, alpha=-1)
            beta = float(w.norm())
        alphas.append(alpha)
        m += 1

        t = torch.diag(torch.tensor(alphas, dtype=torch.float64))
        if m > 1:
            off = torch.tensor(betas, dtype=torch.float64)
            t += torch.diag(off, 1) + torch.diag(off, -1)
        ritz_before, bounds_before = ritz, bounds  # the previous product's, for the rise check
        ritz, s = torch.linalg.eigh(t)  # ascending
        ritz, s = ritz.flip(0), s.flip(1)
        residuals = beta * s[-1].abs()
        bounds = ritz_error_bounds(ritz, residuals).clamp_min(floor * float(ritz.abs().max()))
        scale = max(abs(a) for a in alphas) + (max(betas) if betas else 0.0)
        invariant = beta <= invariant_level * max(scale, 1e-300) or not math.isfinite(beta)
        if m >= k:
            if stop == "residual":
                met = bool((residuals[:k] <= tol * ritz[:k].abs()).all())
            else:
                met = bool((bounds[:k] <= tol * ritz[:k].abs()).all()) and (
                    m == n or invariant  # an invariant Krylov space: its Ritz values are eigenvalues
                    or (m > k and bool((bounds_before[:k] <= tol * ritz_before[:k].abs()).all())
                        and bool((ritz[:k] - ritz_before[:k] <= bounds_before[:k] * (1 + 1e-9)).all())))
            if met and not (invariant and m < n and m < steps_max):
                converged = True
                break
        if m == steps_max:
            break
        if m == basis.shape[0]:  # grow the basis buffer geometrically
            basis = torch.cat([basis, torch.empty_like(basis[: min(m, steps_max - m)])])
        if invariant:  # an exact invariant subspace: restart orthogonally, T decouples
            betas.append(0.0)
            basis[m] = _random_unit(n, device, work, generator, basis[:m])
        else:
            betas.append(beta)
            torch.div(w, beta, out=basis[m])

    kk, jj = min(k, m), min(max(keep, k), m)
    # (s^T Q)^T, not Q^T s: the product with the basis in its stored (row) layout ran ~3x faster.
    vectors = (s[:, :jj].T.to(device=device, dtype=work) @ basis[:m]).T
    vectors = (vectors / vectors.norm(dim=0)).to(dtype)
    return EigResult(
        eigenvalues=ritz[:kk].to(device=device, dtype=dtype),
        eigenvectors=vectors[:, :kk],
        n_products=m,
        converged=converged,
        residuals=residuals[:kk].to(device=device, dtype=dtype),
        error_bounds=bounds[:kk].to(device=device, dtype=dtype),
        ritz_vectors=vectors,
    )


def power_iteration(
    matvec,
    n: int,
    *,
    v0=None,
    tol: float = 1e-3,
    max_products: int = 1000,
    device=None,
    dtype=None,
    seed: int = 0,
) -> EigResult:
    """The eigenvalue of LARGEST MAGNITUDE by power iteration: v <- A v / ||A v||, with the
    Rayleigh quotient lambda = v.A v, stopped by the same rule as ``lanczos``
    (||A v - lambda v|| <= tol |lambda|). One product per iteration. The baseline: its
    error shrinks like (lambda_2 / lambda_1)^(2 iterations), slow when the top two are close.
    """
    n, device, dtype = _solver_setup(n, v0, device, dtype)
    tol = validate.positive("tol", tol)
    max_products = validate.positive_int("max_products", max_products)
    generator = torch.Generator().manual_seed(int(seed))
    v = _start_vector(v0, n, device, dtype, generator)
    converged, lam, residual = False, torch.zeros((), dtype=dtype, device=device), torch.tensor(math.inf)
    for used in range(1, max_products + 1):
        w = matvec(v).to(dtype)
        lam = torch.dot(v, w)
        residual = (w - lam * v).norm()
        if float(residual) <= tol * abs(float(lam)):
            converged = True
            break
        w_norm = w.norm()
        if float(w_norm) == 0.0:  # v is in the null space: lambda = 0 is exact for it
            break
        v = w / w_norm
    residual = residual.reshape(1).to(device=device, dtype=dtype)
    return EigResult(
        eigenvalues=lam.reshape(1),
        eigenvectors=v.reshape(n, 1),
        n_products=used,
        converged=converged,
        residuals=residual,
        error_bounds=residual.clone(),
        ritz_vectors=v.reshape(n, 1),
    )


# --------------------------------------------------------------------------- sharpness


def sharpness(
    model: nn.Module, loss_fn, x, y, *, k=1, v0=None, tol=1e-3, stop="eigenvalue", max_products=100,
    chunk_size=None, seed=0, gradient=None, workspace=None, vector_dtype=None,
) -> EigResult:
    """The top-k Hessian eigenvalues of the full-batch loss (S(theta) = result.top) and
    their eigenvectors, by ``lanczos`` over a ``HessianOperator``: by default each to a
    relative error ``tol``, certified by ``result.error_bounds`` (Kato-Temple; see
    ``lanczos`` for the rule and its one hypothesis). Pass the previous result's
    ``ritz_vectors`` as ``v0`` along a training run: it saves most products.
    ``gradient``: a create_graph=True gradient to reuse (see ``HessianOperator``);
    ``workspace``, ``vector_dtype``: the Lanczos vectors' buffer and dtype (see ``lanczos``)."""
    op = HessianOperator(model, loss_fn, x, y, chunk_size=chunk_size, gradient=gradient)
    return _top_eigenpairs(op, op.matvec, k, v0=v0, tol=tol, stop=stop, max_products=max_products, seed=seed,
                           workspace=workspace, vector_dtype=vector_dtype)


def _top_eigenpairs(op: HessianOperator, matvec, k, **lanczos_kw) -> EigResult:
    """``lanczos`` on ``matvec`` (an operator of op's size, device and dtype), k checked
    against the number of parameters."""
    k = validate.positive_int("k", k)
    if k > op.n:
        raise ValueError(f"k must be an integer between 1 and n={op.n} (the number of parameters), got {k}")
    return lanczos(matvec, op.n, k, device=op.device, dtype=op.dtype, **lanczos_kw)


def _check_precond(precond, n, like) -> torch.Tensor:
    p = _check_vector("precond", precond, n, like)
    if not torch.isfinite(p).all() or not bool((p > 0).all()):
        raise ValueError("precond must hold the diagonal of P: finite numbers > 0")
    return p


def preconditioned_sharpness(
    model: nn.Module, loss_fn, x, y, precond, *, k=1, v0=None, tol=1e-3, stop="eigenvalue", max_products=100,
    chunk_size=None, seed=0, gradient=None, workspace=None, vector_dtype=None,
) -> EigResult:
    """lambda_max(P^{-1/2} H P^{-1/2}) for the diagonal preconditioner P = diag(precond),
    precond of shape (n,) with entries > 0 (Cohen et al., "Adaptive gradient methods at the
    edge of stability", 2022). It equals the top eigenvalue of P^{-1} H (a similar matrix),
    the curvature that preconditioned GD theta <- theta - eta P^{-1} grad L actually sees.
    Eigenvectors are those of the symmetric P^{-1/2} H P^{-1/2}. ``stop``, ``gradient``,
    ``workspace`` and ``vector_dtype``: as for ``sharpness``."""
    op = HessianOperator(model, loss_fn, x, y, chunk_size=chunk_size, gradient=gradient)
    d = _check_precond(precond, op.n, op.params[0]).rsqrt()
    return _top_eigenpairs(op, lambda v: d * op.matvec(d * v), k, v0=v0, tol=tol, stop=stop,
                           max_products=max_products, seed=seed, workspace=workspace, vector_dtype=vector_dtype)


def sharpness_gradient(model: nn.Module, loss_fn, x, y, u, *, chunk_size=None) -> torch.Tensor:
    """grad S(theta) = D^3 L(theta)[u, u], shape (n,), for a simple top eigenvalue with unit
    eigenvector u (n,): by first-order perturbation theory dS = u^T dH u, so grad S is the
    gradient of theta -> u^T H(theta) u with u held fixed. Computed by three reverse passes
    per chunk (autograd): grad L, then u.H u = grad(grad L . u) . u, then its gradient."""
    named = _check_model(model)
    m = _check_data(x, y)
    params = [p for _, p in named]
    n = sum(p.numel() for p in params)
    u = _check_vector("u", u, n, params[0])
    u_parts = _unflatten(u, params)
    out = torch.zeros_like(u)
    for a, b in _chunks(m, chunk_size):
        loss = loss_fn(model(x[a:b]), y[a:b]) * ((b - a) / m)
        g = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
        g_dot_u = sum((gi * ui).sum() for gi, ui in zip(g, u_parts) if gi is not None and gi.requires_grad)
        if not isinstance(g_dot_u, torch.Tensor) or not g_dot_u.requires_grad:
            continue  # H does not depend on this chunk through theta: zero third derivative
        hu = torch.autograd.grad(g_dot_u, params, create_graph=True, allow_unused=True)
        u_h_u = sum((hi * ui).sum() for hi, ui in zip(hu, u_parts) if hi is not None and hi.requires_grad)
        if not isinstance(u_h_u, torch.Tensor) or not u_h_u.requires_grad:
            continue  # H constant in theta (e.g. a linear model with MSE)
        out += _flatten(torch.autograd.grad(u_h_u, params, allow_unused=True), params)
    return out


# --------------------------------------------------------------------------- mini-batches


def gradient_curvature(model: nn.Module, loss_fn, x, y) -> float:
    """The curvature of the loss on (x, y) along its own gradient, g^T H g / ||g||^2.

    g = grad L (n,) and H = D^2 L of L(theta) = loss_fn(model(x), y) on exactly the
    examples given (a mini-batch, or all of them). Cost: one gradient, built with
    ``create_graph=True``, and one Hessian-vector product through it. This Rayleigh
    quotient lies between the smallest and the largest eigenvalue of H; it equals the
    largest only when g is a top eigenvector. Raises ValueError when g = 0 (no direction)."""
    return _curvature_and_gradient(model, loss_fn, x, y)[0]


def _curvature_and_gradient(model: nn.Module, loss_fn, x, y) -> tuple[float, torch.Tensor]:
    """``gradient_curvature`` and the gradient g (n,) it was taken along."""
    named = _check_model(model)
    _check_data(x, y)
    params = [p for _, p in named]
    grads = torch.autograd.grad(loss_fn(model(x), y), params, create_graph=True, allow_unused=True)
    g = _flatten(grads, params).detach()
    g_sq = float(torch.dot(g, g))
    if not g_sq > 0:
        raise ValueError("the gradient of the loss on these examples is zero: the curvature along it is undefined")
    graph = [(i, gi) for i, gi in enumerate(grads) if gi is not None and gi.requires_grad]
    hg = _flatten(_graph_hvp(graph, params, _unflatten(g, params), retain_graph=False), params)
    return float(torch.dot(g, hg)) / g_sq, g


def _check_batches(m: int, batch_size, n_batches, generator):
    batch_size = validate.positive_int("batch_size", batch_size)
    if batch_size > m:
        raise ValueError(f"batch_size must be an integer between 1 and m={m} (the number of examples), "
                         f"got {batch_size}")
    n_batches = validate.positive_int("n_batches", n_batches)
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    elif not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    return batch_size, n_batches, generator


def batch_curvatures(model: nn.Module, loss_fn, x, y, batch_size: int, n_batches: int, *,
                     generator=None) -> torch.Tensor:
    """g_B^T H_B g_B / ||g_B||^2 on each of ``n_batches`` random mini-batches, shape
    (n_batches,), float64 on the CPU.

    Each batch is ``batch_size`` distinct examples drawn uniformly from the m rows of
    (x, y): the first ``batch_size`` entries of ``torch.randperm(m, generator=generator)``,
    the same law as a batch of an SGD epoch. ``generator``: a ``torch.Generator`` (CPU);
    None means a fresh one seeded with 0 (never the global RNG). With ``batch_size = m``
    every batch is the whole data: it is computed once and repeated. One gradient and
    one Hessian-vector product per batch (``gradient_curvature``)."""
    m = _check_data(x, y)
    batch_size, n_batches, generator = _check_batches(m, batch_size, n_batches, generator)
    if batch_size == m:
        return torch.full((n_batches,), gradient_curvature(model, loss_fn, x, y), dtype=torch.float64)
    values = []
    for _ in range(n_batches):
        idx = torch.randperm(m, generator=generator)[:batch_size].to(x.device)
        values.append(gradient_curvature(model, loss_fn, x[idx], y[idx]))
    return torch.tensor(values, dtype=torch.float64)


def full_curvatures_along_batches(model: nn.Module, loss_fn, x, y, batch_size: int, n_batches: int, *,
                                  generator=None) -> torch.Tensor:
    """Per mini-batch B, its own curvature along its gradient and the full loss's along the
    same direction: shape (n_batches, 2), float64 on the CPU, columns

        [g_B^T H_B g_B / ||g_B||^2,   g_B^T H g_B / ||g_B||^2],

    g_B and H_B the gradient and Hessian of the loss on the batch, H the Hessian of the loss
    on all m rows of (x, y). The first column is ``batch_curvatures`` (the same batches for the
    same ``generator``); the second says how sharp the full loss is along the steps SGD takes,
    the quantity that decides whether an SGD step raises the full loss (Andreyev & Beneventano,
    2024, contrast the two). Cost per batch: one gradient with its graph and two
    Hessian-vector products (one through the batch, one through the full loss's kept graph)."""
    m = _check_data(x, y)
    batch_size, n_batches, generator = _check_batches(m, batch_size, n_batches, generator)
    full = HessianOperator(model, loss_fn, x, y)  # one chunk: its graph is kept for the many products
    try:
        rows = []
        for _ in range(n_batches):
            idx = torch.randperm(m, generator=generator)[:batch_size].to(x.device)
            own, g = _curvature_and_gradient(model, loss_fn, x[idx], y[idx])
            rows.append((own, float(torch.dot(g, full.matvec(g)) / torch.dot(g, g))))
    finally:
        full.release()
    return torch.tensor(rows, dtype=torch.float64)


def batch_sharpness(model: nn.Module, loss_fn, x, y, batch_size: int, n_batches: int, *,
                    generator=None) -> float:
    """The batch sharpness E_B[g_B^T H_B g_B / ||g_B||^2] (Andreyev & Beneventano, 2024),
    estimated as the mean of ``batch_curvatures`` over ``n_batches`` random mini-batches
    of ``batch_size`` examples: the mini-batch Hessian's curvature along the mini-batch
    gradient, averaged over batches. Along SGD with step size eta it stabilises at 2/eta
    (the edge of stochastic stability). Arguments as for ``batch_curvatures``."""
    return float(batch_curvatures(model, loss_fn, x, y, batch_size, n_batches, generator=generator).mean())
