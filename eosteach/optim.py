"""Exact full-batch optimisers and learning-rate schedules.

Each optimiser updates a list of parameter tensors in place from the gradients of the
loss at those parameters (``step(grads)``). The update rules follow PyTorch's
``torch.optim`` conventions exactly (the tests compare them step by step), written with
``torch._foreach_*`` kernels like ``torch.optim``'s fast path, so a step costs what a
``torch.optim`` step costs:

    gd          theta <- theta - eta g
    heavy_ball  buf <- b buf + g;  theta <- theta - eta buf               (buf_1 = g_1)
    nesterov    buf <- b buf + g;  theta <- theta - eta (g + b buf)
    rmsprop     v <- a v + (1 - a) g^2;  theta <- theta - eta g / (sqrt(v) + eps)
    adam        m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2;
                theta <- theta - eta m / P,  P = (1 - b1^t) (sqrt(v / (1 - b2^t)) + eps)
    sgd         gd or heavy_ball on a mini-batch gradient (the runner draws the batches)
    flow        gradient flow d theta/dt = -g, one classical Runge-Kutta (RK4) step of
                length h = alpha / S per call, S the latest sharpness (``lr`` is alpha)

Adaptive methods expose their diagonal preconditioner P as a flat vector
(``preconditioner()``), the P of ``eosteach.hessian.preconditioned_sharpness``: the
preconditioned sharpness lambda_max(P^{-1/2} H P^{-1/2}) is what their threshold bounds
(Cohen et al., "Adaptive gradient methods at the edge of stability", 2022). ``threshold()``
gives each method's own stability threshold at its current step size
(``eosteach.thresholds``): 2/eta, (2+2b)/eta, (2+2b)/((1+2b) eta), (2+2 b1)/((1-b1) eta).
"""

from __future__ import annotations

import math

import torch

from . import thresholds, validate

OPTIMIZERS = ("gd", "heavy_ball", "nesterov", "rmsprop", "adam", "sgd", "flow")
ADAPTIVE = ("rmsprop", "adam")


class Optimizer:
    """A full-batch update rule on a list of parameter tensors (updated in place).

    ``lr`` may be changed between steps (schedules). ``t`` counts the steps taken.
    """

    name = "base"
    #: Names of the per-parameter state lists (momentum buffers, second moments) that
    #: ``state_dict`` saves and ``load_state_dict`` restores, so resume is exact.
    buffers: tuple[str, ...] = ()

    def __init__(self, params, lr: float):
        self.params = list(params)
        self.lr = validate.positive("lr", lr)
        self.t = 0

    def step(self, grads, grad_fn=None) -> None:
        """Update the parameters from ``grads``, the gradient at the current parameters.
        ``grad_fn()`` (gradient flow only) returns the gradient at the current parameters."""
        raise NotImplementedError

    def threshold(self) -> float:
        """The method's stability threshold on the (preconditioned) sharpness at ``lr``."""
        return thresholds.gd(self.lr)

    def preconditioner(self):
        """The diagonal preconditioner P as a flat vector (n,), or None (not adaptive,
        or no step taken yet)."""
        return None

    def state_dict(self) -> dict:
        return {"t": self.t, "lr": self.lr, **{b: self._copy(getattr(self, b)) for b in self.buffers}}

    def load_state_dict(self, state: dict) -> None:
        self.t = int(state["t"])
        self.lr = float(state["lr"])
        for b in self.buffers:
            setattr(self, b, self._copy(state[b]))

    @staticmethod
    def _copy(tensors):
        return None if tensors is None else [x.detach().clone() for x in tensors]


class GD(Optimizer):
    """Gradient descent: theta <- theta - eta g."""

    name = "gd"

    @torch.no_grad()
    def step(self, grads, grad_fn=None) -> None:
        torch._foreach_add_(self.params, list(grads), alpha=-self.lr)
        self.t += 1


class HeavyBall(Optimizer):
    """Heavy-ball momentum, PyTorch convention: buf <- b buf + g; theta <- theta - eta buf
    (the first buffer is g itself). ``nesterov=True``: theta <- theta - eta (g + b buf)."""

    name = "heavy_ball"
    buffers = ("buf",)

    def __init__(self, params, lr: float, momentum: float, *, nesterov: bool = False):
        super().__init__(params, lr)
        self.momentum = validate.momentum("momentum", momentum)
        self.nesterov = nesterov
        self.name = "nesterov" if nesterov else "heavy_ball"
        self.buf = None

    @torch.no_grad()
    def step(self, grads, grad_fn=None) -> None:
        grads = list(grads)
        if self.buf is None:
            self.buf = [g.detach().clone() for g in grads]
        else:
            torch._foreach_mul_(self.buf, self.momentum)
            torch._foreach_add_(self.buf, grads)
        if self.nesterov:
            direction = torch._foreach_add(grads, self.buf, alpha=self.momentum)
        else:
            direction = self.buf
        torch._foreach_add_(self.params, direction, alpha=-self.lr)
        self.t += 1

    def threshold(self) -> float:
        if self.nesterov:
            return thresholds.nesterov(self.lr, self.momentum)
        return thresholds.heavy_ball(self.lr, self.momentum)


class RMSProp(Optimizer):
    """RMSProp as ``torch.optim.RMSprop(alpha=beta2, eps)``: v <- a v + (1-a) g^2;
    theta <- theta - eta g / P with P = sqrt(v) + eps. Threshold: 2/eta on the
    preconditioned sharpness."""

    name = "rmsprop"
    buffers = ("v",)

    def __init__(self, params, lr: float, beta2: float = 0.99, eps: float = 1e-8):
        super().__init__(params, lr)
        self.beta2 = validate.momentum("beta2", beta2)
        self.eps = validate.positive("eps", eps)
        self.v = None

    @torch.no_grad()
    def step(self, grads, grad_fn=None) -> None:
        grads = list(grads)
        if self.v is None:
            self.v = [torch.zeros_like(p) for p in self.params]
        torch._foreach_mul_(self.v, self.beta2)
        torch._foreach_addcmul_(self.v, grads, grads, value=1 - self.beta2)
        denom = torch._foreach_sqrt(self.v)
        torch._foreach_add_(denom, self.eps)
        torch._foreach_addcdiv_(self.params, grads, denom, value=-self.lr)
        self.t += 1

    def preconditioner(self):
        if self.v is None:
            return None
        return torch.cat([v.reshape(-1) for v in self.v]).sqrt_().add_(self.eps)


class Adam(Optimizer):
    """Adam as ``torch.optim.Adam(betas=(beta1, beta2), eps)`` (same operation order):
    theta <- theta - eta m / P with P = (1 - b1^t)(sqrt(v / (1 - b2^t)) + eps), the P of
    Cohen et al. (2022). Threshold: (2 + 2 b1) / ((1 - b1) eta) on lambda_max(P^-1/2 H P^-1/2)."""

    name = "adam"
    buffers = ("m", "v")

    def __init__(self, params, lr: float, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
        super().__init__(params, lr)
        self.beta1 = validate.momentum("beta1", beta1)
        self.beta2 = validate.momentum("beta2", beta2)
        self.eps = validate.positive("eps", eps)
        self.m = self.v = None

    @torch.no_grad()
    def step(self, grads, grad_fn=None) -> None:
        grads = list(grads)
        if self.m is None:
            self.m = [torch.zeros_like(p) for p in self.params]
            self.v = [torch.zeros_like(p) for p in self.params]
        self.t += 1
        torch._foreach_lerp_(self.m, grads, 1 - self.beta1)
        torch._foreach_mul_(self.v, self.beta2)
        torch._foreach_addcmul_(self.v, grads, grads, 1 - self.beta2)
        bias1 = 1 - self.beta1**self.t
        bias2_sqrt = math.sqrt(1 - self.beta2**self.t)
        denom = torch._foreach_sqrt(self.v)
        torch._foreach_div_(denom, bias2_sqrt)
        torch._foreach_add_(denom, self.eps)
        torch._foreach_addcdiv_(self.params, self.m, denom, -self.lr / bias1)

    def threshold(self) -> float:
        return thresholds.adam(self.lr, self.beta1)

    def preconditioner(self):
        if self.v is None:
            return None
        bias1 = 1 - self.beta1**self.t
        bias2_sqrt = math.sqrt(1 - self.beta2**self.t)
        v = torch.cat([v.reshape(-1) for v in self.v])
        return v.sqrt_().div_(bias2_sqrt).add_(self.eps).mul_(bias1)


class GradientFlow(Optimizer):
    """Gradient flow d theta / dt = -grad L, by classical RK4 steps of length h = alpha / S.

    ``lr`` is alpha (dimensionless: how far below the GD stability limit 2/S each step
    stays); ``sharpness`` must be set (by the runner, every few steps) before ``step``.
    Cohen et al. (2021, appendix) integrate the flow the same way to compare it with GD.
    ``last_h`` is the time step just taken. There is no threshold (NaN): the flow is stable.
    """

    name = "flow"

    def __init__(self, params, lr: float):
        super().__init__(params, lr)
        self.sharpness = None
        self.last_h = 0.0

    def step(self, grads, grad_fn=None) -> None:
        if grad_fn is None:
            raise ValueError("gradient flow needs grad_fn to evaluate the gradient at the RK4 stages")
        if self.sharpness is None:
            raise ValueError("gradient flow needs the current sharpness (set optimizer.sharpness)")
        h = self.lr / self.sharpness if self.sharpness > 0 else self.lr
        theta = [p.detach().clone() for p in self.params]
        k1 = [g.detach() for g in grads]
        slopes = [k1]
        for fraction in (0.5, 0.5, 1.0):  # stages 2, 3, 4 evaluate at theta - c h k_prev
            self._set(theta, slopes[-1], -fraction * h)
            slopes.append([g.detach() for g in grad_fn()])
        total = torch._foreach_add(slopes[0], slopes[3])
        torch._foreach_add_(total, slopes[1], alpha=2.0)
        torch._foreach_add_(total, slopes[2], alpha=2.0)
        self._set(theta, total, -h / 6.0)
        self.last_h = h
        self.t += 1

    def _set(self, theta, direction, scale: float) -> None:
        with torch.no_grad():
            torch._foreach_copy_(self.params, theta)
            torch._foreach_add_(self.params, direction, alpha=scale)

    def threshold(self) -> float:
        return math.nan

    def state_dict(self) -> dict:
        return {**super().state_dict(), "sharpness": self.sharpness, "last_h": self.last_h}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.sharpness, self.last_h = state["sharpness"], float(state["last_h"])


def make_optimizer(name: str, params, lr: float, *, momentum: float = 0.0, beta2: float = 0.999, eps: float = 1e-8):
    """The optimiser ``name`` (one of OPTIMIZERS) on ``params``. ``momentum`` is b for
    heavy_ball / nesterov / sgd and beta1 for adam; ``beta2`` is RMSProp's alpha or
    Adam's beta2."""
    validate.choice("opt", name, OPTIMIZERS)
    if name == "gd" or (name == "sgd" and momentum == 0):
        opt = GD(params, lr)
    elif name in ("heavy_ball", "nesterov", "sgd"):
        opt = HeavyBall(params, lr, momentum, nesterov=name == "nesterov")
    elif name == "rmsprop":
        opt = RMSProp(params, lr, beta2, eps)
    elif name == "adam":
        opt = Adam(params, lr, momentum, beta2, eps)
    else:
        opt = GradientFlow(params, lr)
    opt.name = name
    return opt


def lr_schedule(lr: float, *, drop_step: int | None = None, drop_factor: float = 1.0, warmup_steps: int = 0):
    """A step-size schedule step -> eta_step.

    eta_step = lr * min(1, (step + 1) / warmup_steps) (linear warm-up when warmup_steps > 0),
    multiplied by drop_factor from step ``drop_step`` on (the learning-rate-drop
    experiment of Cohen et al. 2021: after the drop, 2/eta jumps up and the sharpness is
    free to rise again).
    """
    lr = validate.positive("lr", lr)
    drop_factor = validate.positive("drop_factor", drop_factor)
    if drop_step is not None:
        drop_step = validate.positive_int("drop_step", drop_step, minimum=0)
    warmup_steps = validate.positive_int("warmup_steps", warmup_steps, minimum=0)

    def eta(step: int) -> float:
        value = lr
        if warmup_steps:
            value *= min(1.0, (step + 1) / warmup_steps)
        if drop_step is not None and step >= drop_step:
            value *= drop_factor
        return value

    return eta
