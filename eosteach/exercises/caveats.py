"""Checker for the coding exercise of lesson 7 (caveats and open directions).

The exercise: predict the sharpness of the minimalist model (Yoo, Song & Yun 2025) at its
balanced interpolating minimum straight from the data,

    S* = lambda_max( (1/N) [ Q^{(D-1)/D} X X^T + (D-1) Q^{-1/D} y y^T ] ),   Q = ||X^+ y||^2.

The reference is independent of that formula: it builds the balanced minimum
(u = w*/a^{D-1}, v_i = a, a^D = sqrt(Q)), forms the model's full Hessian there in closed
form and takes its largest eigenvalue with a dense solver.
"""

from __future__ import annotations

import numpy as np

from .. import minimalist
from .feedback import Feedback, checker


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


@checker('balanced_sharpness')
def check_balanced_sharpness(fn) -> bool:
    """``fn(X (N, d), y (N,), depth) -> float``: S* at the balanced interpolating minimum."""
    fb = Feedback("balanced_sharpness")
    for X, y, depth, kind in _cases():
        expected = _reference(X, y, depth)
        try:
            got = float(np.asarray(fn(X.copy(), y.copy(), depth), dtype=float))
        except NotImplementedError:
            fb.fail("the function still raises NotImplementedError: replace the `raise` with your code")
            break
        except Exception as err:  # noqa: BLE001 - any error is feedback for a learner
            fb.fail(f"calling it raised {type(err).__name__}: {err}")
            break
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
