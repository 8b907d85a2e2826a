"""Checkers for the exercises of lesson 4 (the edge of stability).

* ``check_step_change(fn)``: ``fn(model, loss_fn, x, y, eta) -> (predicted, observed)``, the
  change of the loss over one GD step that the quadratic (second-order Taylor) model
  predicts, -eta ||g||^2 + eta^2/2 g^T H g, and the change observed, L(theta - eta g) - L(theta).
  Compared with the gradient and the DENSE Hessian of tiny float64 networks; tested mistakes
  are named (the pair swapped, the missing 1/2, a reversed sign, a step along +g, the loss
  not evaluated at theta - eta g, one number instead of the pair, the step left taken; undoing the
  step by adding eta g back passes: its rounding error is far below the 1e-12 allowed).
* ``check_adam_threshold(fn)``: ``fn(eta, beta1) -> float``, the largest preconditioned
  sharpness at which Adam with a frozen preconditioner is stable, (2 + 2 beta1)/((1 - beta1) eta)
  (Cohen et al., "Adaptive Gradient Methods at the Edge of Stability", 2022). Compared with a
  bisection on the spectral radius of its 2x2 iteration matrix, written from the update rule.
"""

from __future__ import annotations

import math

import torch

from .. import hessian
from .feedback import Feedback, checker
from .sharpness import _tiny_problem

REL = 1e-3
RESTORE = 1e-12   # the parameters must come back to 1e-12 relative (undoing a step by adding eta g back is fine)


def _close(a: float, b: float, rel: float = REL) -> bool:
    return math.isfinite(a) and abs(a - b) <= rel * abs(b)


# --------------------------------------------------------------------------- quadratic model


def _params(net):
    return [p for p in net.parameters() if p.requires_grad]


def _flat(parts) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in parts])


def _reference(net, loss_fn, x, y, H, eta: float) -> dict:
    """The quadratic model's prediction and the likely wrong answers, from the dense H."""
    loss = loss_fn(net(x), y)
    g = _flat(torch.autograd.grad(loss, _params(net))).detach()
    loss = float(loss.detach())
    gg, ghg = float(g @ g), float(g @ H @ g)
    top = float(torch.linalg.eigvalsh(H)[-1])
    theta = hessian.flat_params(net)
    hessian.set_flat_params(net, theta - eta * g)
    with torch.no_grad():
        after = float(loss_fn(net(x), y))
    hessian.set_flat_params(net, theta)
    want = -eta * gg + 0.5 * eta**2 * ghg
    return {
        "want": want, "theta": theta, "loss": loss,
        "mistakes": [
            (-eta * gg + eta**2 * ghg, "you are missing the 1/2 of the second-order term: 1/2 delta^T H delta"),
            (eta * gg + 0.5 * eta**2 * ghg, "the first-order term has the wrong sign: g . delta with delta = -eta g "
                                            "is negative"),
            (-eta * gg - 0.5 * eta**2 * ghg, "the second-order term has the wrong sign: 1/2 delta^T H delta with "
                                             "delta = -eta g is +eta^2/2 g^T H g"),
            (-eta * gg + 0.5 * eta * ghg, "the second-order term needs eta^2: delta = -eta g appears twice in "
                                          "delta^T H delta"),
            (-eta * gg, "that is the first-order term alone: add the curvature term 1/2 delta^T H delta"),
            (-eta * gg + 0.5 * eta**2 * top * gg, "you used the sharpness S = lambda_max in place of the curvature "
             "along g, g^T H g / ||g||^2: that is the descent lemma's worst case, not the model's prediction"),
            (after - loss, "that is the observed change L(theta - eta g) - L(theta): the exercise asks what "
                           "the quadratic model predicts, without taking the step"),
            (loss + want, "that is L(theta) plus the change: return the change alone"),
        ],
    }


def _pair(got):
    """(predicted, observed) as floats from a learner's answer, or None when it is not a pair of numbers."""
    try:
        a, b = got
        return tuple(float(v.detach().reshape(())) if isinstance(v, torch.Tensor) else float(v) for v in (a, b))
    except (TypeError, ValueError, RuntimeError):
        return None


@checker("the quadratic model's change and the observed change of one GD step",
         library="eosteach.analysis.step_change")
def check_step_change(fn) -> bool:
    """Check ``fn(model, loss_fn, x, y, eta) -> (predicted, observed)`` on tiny float64 tanh
    networks (4-3-2, MSE) at three step sizes: predicted against -eta ||g||^2 + eta^2/2 g^T H g
    from the dense Hessian (1e-8 relative), observed against L(theta - eta g) - L(theta)
    computed here (1e-8 relative); the parameters must be back where they were afterwards, to
    1e-12 relative (max |change| / (1 + max |theta|)), so that undoing the step by adding eta g
    back, which leaves rounding error, passes."""
    fb = Feedback("the quadratic model's change and the observed change of one GD step")
    for seed, eta in ((0, 0.05), (1, 0.4), (0, 1.5)):
        net, loss_fn, x, y, H = _tiny_problem(seed)
        ref = _reference(net, loss_fn, x, y, H, eta)
        want_obs = ref["mistakes"][6][0]  # L(theta - eta g) - L(theta)
        try:
            got = fn(net, loss_fn, x, y, eta)
        except NotImplementedError:
            raise
        except Exception as e:  # noqa: BLE001
            fb.fail(f"fn(model, loss_fn, x, y, eta={eta}) raised {type(e).__name__}: {e}")
            return fb.report("")
        moved = float((hessian.flat_params(net) - ref["theta"]).abs().max()) / (1 + float(ref["theta"].abs().max()))
        if moved > RESTORE:
            fb.fail("your function left the model's parameters moved: take the step to measure the observed "
                    "change, then put theta back as it was" + (
                        " (adding eta g back leaves more than rounding error here: restore theta from a copy "
                        "saved before the step)" if moved < 1e-6 else ""))
            break
        pair = _pair(got)
        if pair is None:
            fb.fail(f"the answer must be a pair (predicted, observed) of numbers, got {type(got).__name__}")
            break
        pred, obs = pair
        if _close(pred, want_obs, 1e-8) and _close(obs, ref["want"], 1e-8):
            fb.fail("the two numbers are swapped: return (predicted, observed), the model's prediction first")
            break
        if not _close(pred, ref["want"], 1e-8):
            fb.fail(f"at eta={eta} (seed {seed}) your predicted change is {pred:.8g}; the quadratic model "
                    f"predicts {ref['want']:.8g}")
            named = [why for value, why in ref["mistakes"] if _close(pred, value, 1e-6)]
            fb.fail(named[0] if named else "the model is L(theta + delta) - L(theta) ~ g . delta + 1/2 delta^T H "
                    "delta; put in delta = -eta g")
            break
        if not _close(obs, want_obs, 1e-8):
            fb.fail(f"at eta={eta} (seed {seed}) your observed change is {obs:.8g}; "
                    f"L(theta - eta g) - L(theta) is {want_obs:.8g}")
            theta, g = ref["theta"], _flat(torch.autograd.grad(loss_fn(net(x), y), _params(net))).detach()
            hessian.set_flat_params(net, theta + eta * g)
            with torch.no_grad():
                uphill = float(loss_fn(net(x), y)) - ref["loss"]
            hessian.set_flat_params(net, theta)
            if _close(obs, -want_obs, 1e-6):
                fb.fail("the sign is reversed: the change is the loss after the step minus the loss before")
            elif _close(obs, uphill, 1e-6):
                fb.fail("you stepped along +g: gradient descent moves to theta - eta g")
            else:
                fb.fail("evaluate the loss at theta - eta g (the full batch, no graph needed) and subtract L(theta)")
            break
    return fb.report("both numbers match (the model's change from the dense Hessian, the observed change by "
                     "taking the step), at three step sizes, with the parameters left unchanged")


# --------------------------------------------------------------------------- Adam's threshold


def _adam_matrix(eta: float, beta1: float, s: float):
    """The 2x2 map of the state (theta_t, m_{t-1}) for Adam with a frozen preconditioner on the
    preconditioned quadratic s theta^2 / 2: m_t = beta1 m_{t-1} + (1 - beta1) s theta_t,
    theta_{t+1} = theta_t - eta m_t (written from the update rule, not from a closed form)."""
    import numpy as np

    return np.array([[1.0 - eta * (1.0 - beta1) * s, -eta * beta1], [(1.0 - beta1) * s, beta1]])


def adam_stability_threshold(eta: float, beta1: float) -> float:
    """The largest s at which the map ``_adam_matrix`` has spectral radius <= 1, by bisection."""
    import numpy as np

    radius = lambda s: max(abs(np.linalg.eigvals(_adam_matrix(eta, beta1, s))))  # noqa: E731
    lo, hi = 0.0, 1.0 / eta
    while radius(hi) <= 1.0 + 1e-12:
        hi *= 2
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if radius(mid) <= 1.0 + 1e-12 else (lo, mid)
    return lo


ADAM_CASES = ((0.001, 0.9), (0.01, 0.5), (0.05, 0.99), (0.1, 0.0))


def _adam_mistakes(eta: float, b1: float) -> list[tuple[float, str]]:
    return [
        ((2 + 2 * b1) / eta, "that is heavy-ball's (2 + 2b)/eta in PyTorch's convention (buf <- b buf + g); Adam's "
                             "first moment is an average, m <- beta1 m + (1 - beta1) g: the (1 - beta1) on the "
                             "gradient is missing"),
        (2 / eta, "that is GD's 2/eta: the first moment changes the recurrence (it has two terms, theta_t and "
                  "theta_{t-1})"),
        (2 / ((1 - b1) * eta), "that is GD's threshold at the effective step eta/(1 - beta1): it leaves out that the "
                               "momentum term beta1 (theta_t - theta_{t-1}) also flips sign at lambda = -1, which "
                               "gives the factor (1 + beta1)"),
        ((1 + b1) / ((1 - b1) * eta), "a factor 2 is missing: at lambda = -1 both 1 + ... and ... + beta1 count, "
                                      "2 + 2 beta1"),
        ((2 + 2 * b1) * (1 - b1) / eta, "you multiply by (1 - beta1) where you should divide: the average shrinks "
                                        "each step, so Adam tolerates a LARGER preconditioned sharpness"),
        (2 * eta * (1 + b1) / (1 - b1), "the threshold is a sharpness, in units of 1/eta: you have eta in the "
                                        "numerator"),
    ]


@checker("Adam's threshold on the preconditioned sharpness", library="eosteach.thresholds.adam")
def check_adam_threshold(fn) -> bool:
    """Check ``fn(eta, beta1) -> float`` against a bisection on the spectral radius of Adam's
    2x2 iteration matrix with a frozen preconditioner (``_adam_matrix``), to 1e-3 relative,
    at four (eta, beta1); name the likely mistake when one explains every wrong case."""
    fb = Feedback("Adam's threshold on the preconditioned sharpness")
    wrong = []
    for eta, b1 in ADAM_CASES:
        want = adam_stability_threshold(eta, b1)
        try:
            got = float(fn(eta, b1))
        except NotImplementedError:
            raise
        except Exception as e:  # noqa: BLE001
            fb.fail(f"fn({eta}, {b1}) raised {type(e).__name__}: {e}")
            return fb.report("")
        if not _close(got, want):
            wrong.append((eta, b1, got, want))
    if wrong:
        eta, b1, got, want = wrong[0]
        fb.fail(f"fn(eta={eta}, beta1={b1}) = {got:.5g}; the iteration matrix's spectral radius reaches 1 at "
                f"s = {want:.5g}" + (f" (and {len(wrong) - 1} more case(s) are off)" if len(wrong) > 1 else ""))
        named = [why for i, (_, why) in enumerate(_adam_mistakes(eta, b1))
                 if all(_close(g, _adam_mistakes(e, b)[i][0]) for e, b, g, _ in wrong)]
        fb.fail(named[0] if named else "eliminate m with theta_t - theta_{t-1} = -eta m_{t-1}, write theta_{t+1} "
                "in terms of theta_t and theta_{t-1}, and ask at which s lambda = -1 is a root of its characteristic "
                "polynomial")
    return fb.report("matches the bisection on Adam's iteration matrix at four (eta, beta1), beta1 from 0 to 0.99")
