"""Closed-form divergence thresholds on a quadratic: the largest Hessian eigenvalue (the
sharpness S) that each full-batch method tolerates at step size eta before it diverges.

    GD                          S < 2 / eta
    heavy-ball (momentum b)     S < (2 + 2b) / eta
    Nesterov (momentum b)       S < (2 + 2b) / ((1 + 2b) eta)
    Adam, frozen precond. (b1)  S_P < (2 + 2 b1) / ((1 - b1) eta)   (= 38/eta at b1 = 0.9)

Momentum follows PyTorch's SGD convention (buf <- b buf + g; theta <- theta - eta buf),
which is why heavy-ball's threshold is (2+2b)/eta rather than the (2+2b)/((1-b) eta) of the
damped buffer buf <- b buf + (1-b) g (PyTorch's dampening=b, Adam's first moment). Polyak's
form theta <- theta - eta g + b (theta - theta_prev) gives the same iterates as PyTorch's at
the same eta, hence the same threshold. Per unit of effective step eta_eff = eta/(1-b),
heavy-ball's threshold is 2(1+b)/((1-b) eta_eff): 38/eta_eff at b = 0.9, against GD's
2/eta_eff. For Adam, S_P is the
preconditioned sharpness lambda_max(P^{-1/2} H P^{-1/2}) (Cohen et al., "Adaptive gradient
methods at the edge of stability", 2022). ``eosteach.symbolic`` derives each of these from
the update rule; the tests check them against bisection on simulated iterations.
"""

from __future__ import annotations

from . import validate

METHODS = ("gd", "heavy_ball", "nesterov", "adam")


def gd(eta: float) -> float:
    """2 / eta."""
    return 2.0 / validate.positive("eta", eta)


def heavy_ball(eta: float, b: float) -> float:
    """(2 + 2b) / eta."""
    eta = validate.positive("eta", eta)
    b = validate.momentum("b", b)
    return (2.0 + 2.0 * b) / eta


def nesterov(eta: float, b: float) -> float:
    """(2 + 2b) / ((1 + 2b) eta)."""
    eta = validate.positive("eta", eta)
    b = validate.momentum("b", b)
    return (2.0 + 2.0 * b) / ((1.0 + 2.0 * b) * eta)


def adam(eta: float, b1: float) -> float:
    """(2 + 2 b1) / ((1 - b1) eta), the threshold on the preconditioned sharpness."""
    eta = validate.positive("eta", eta)
    b1 = validate.momentum("b1", b1)
    return (2.0 + 2.0 * b1) / ((1.0 - b1) * eta)


def threshold(method: str, eta: float, b: float = 0.0) -> float:
    """The threshold of ``method`` (one of METHODS) at step size ``eta`` and momentum ``b``."""
    validate.choice("method", method, METHODS)
    if method == "gd":
        return gd(eta)
    return {"heavy_ball": heavy_ball, "nesterov": nesterov, "adam": adam}[method](eta, b)
