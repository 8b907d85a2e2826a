"""Checkers for the exercises of lesson 4 (the edge of stability).

* ``check_threshold(fn)``: ``fn(method, eta, b) -> float``, the largest sharpness at which
  GD, heavy-ball or Nesterov (PyTorch's momentum convention) is stable on a quadratic.
  Compared with a bisection on the spectral radius of each method's 2x2 iteration matrix
  (``eosteach.exercises.sharpness.stability_threshold``, written from the update rules,
  not from the closed forms of ``eosteach.thresholds``). A wrong answer is matched
  against the likely mistakes: GD's 2/eta for a momentum method, heavy-ball and Nesterov
  swapped, Nesterov without its (1 + 2b) or with (1 + b) in its place, b where 1 + b
  belongs, the dampened convention's (2 + 2b)/((1 - b) eta), eta in the numerator.
* ``check_predicted_change(fn)``: ``fn(model, loss_fn, x, y, eta) -> float``, the change of
  the loss that the quadratic (second-order Taylor) model predicts for one GD step,
  -eta ||g||^2 + eta^2/2 g^T H g. Compared with the gradient and the DENSE Hessian of tiny
  float64 networks. Likely mistakes named: the missing 1/2, a sign, eta instead of eta^2,
  the first-order term alone, the sharpness in place of the curvature along g, the observed
  change L(theta - eta g) - L(theta), L(theta) + change, parameters left moved.
"""

from __future__ import annotations

import math

import torch

from .. import hessian
from .feedback import Feedback, checker
from .sharpness import _tiny_problem, stability_threshold

REL = 1e-3


def _close(a: float, b: float, rel: float = REL) -> bool:
    return math.isfinite(a) and abs(a - b) <= rel * abs(b)


def _threshold_mistakes(method: str, eta: float, b: float) -> dict[str, tuple[float, str]]:
    """Values that likely mistakes give for ``method`` at (eta, b): name -> (value, what to say)."""
    gd = 2 / eta
    hb = (2 + 2 * b) / eta
    nest = (2 + 2 * b) / ((1 + 2 * b) * eta)
    units = (2 * eta, "the threshold is a sharpness, in units of 1/eta: you have eta in the numerator")
    if method == "gd":
        out = {"one step": (1 / eta, "1/eta is where GD converges in one step on a quadratic (1 - eta S = 0), "
                                     "not where it stops being stable (where 1 - eta S reaches -1)"),
               "units": units}
        if b:
            out["b for gd"] = (hb, "for gd, b must be ignored: GD has no momentum buffer (you returned "
                                   "heavy-ball's value)")
        return out
    out = {}
    if method == "nesterov":  # (2 + 2b)/((1 + b) eta) equals 2/eta: name the momentum slip first
        out["1+b for 1+2b"] = (gd, "you have (1 + b) in place of (1 + 2b) in the denominator, which cancels the "
                                   "numerator and leaves GD's 2/eta: Nesterov's look-ahead theta - eta (g + b buf) "
                                   "gives the bracket (1 + b) theta_t - b theta_{t-1}, and at lambda = -1 it is "
                                   "-(1 + 2b); (if you did return 2/eta: momentum methods need their own threshold)")
    out.update({"gd": (gd, "that is GD's 2/eta: momentum moves the threshold, so the momentum methods need "
                           "their own"),
                "units": units})
    if method == "heavy_ball":
        out.update({
            "swapped": (nest, "that is Nesterov's threshold: heavy-ball and Nesterov are swapped"),
            "dampened": ((2 + 2 * b) / ((1 - b) * eta), "that is the threshold of the dampened convention buf <- "
                         "b buf + (1 - b) g; here (PyTorch's convention) buf <- b buf + g, theta <- theta - eta buf"),
            "b for 1+b": (2 * b / eta, "you have b where 1 + b belongs: the -1 root appears when eta S = 2 (1 + b)"),
            "2+b": ((2 + b) / eta, "the momentum term counts twice: 2 + 2b, not 2 + b"),
            "over b": (2 / (b * eta), "you divide by b: at b = 0 heavy-ball is GD, so the threshold must tend "
                                      "to 2/eta"),
        })
    else:
        out.update({
            "no 1+2b": (hb, "that is heavy-ball's (2 + 2b)/eta: Nesterov's look-ahead adds b g_t to the step, "
                            "which brings in the factor (1 + 2b); you are missing it"),
            "b for 1+b": (2 * b / ((1 + 2 * b) * eta), "you have b where 1 + b belongs in the numerator"),
            "dampened": ((2 + 2 * b) / ((1 + 2 * b) * (1 - b) * eta), "that is the dampened convention's "
                         "threshold; here (PyTorch's convention) buf <- b buf + g, theta <- theta - eta (g + b buf)"),
        })
    return out


def _explains(key: str, method: str, cases) -> bool:
    """Whether the mistake ``key`` gives the learner's value in every wrong case (eta, b, got, want)."""
    for eta, b, got, _ in cases:
        mistakes = _threshold_mistakes(method, eta, b)
        if key not in mistakes or not _close(got, mistakes[key][0]):
            return False
    return True


THRESHOLD_CASES = (("gd", 0.01, 0.0), ("gd", 0.05, 0.5), ("heavy_ball", 0.02, 0.5), ("heavy_ball", 0.1, 0.9),
                   ("heavy_ball", 1.0, 0.99), ("nesterov", 0.02, 0.5), ("nesterov", 0.1, 0.9),
                   ("nesterov", 1.0, 0.99))


@checker("stability thresholds of GD, heavy-ball and Nesterov", library="eosteach.thresholds.threshold")
def check_threshold(fn) -> bool:
    """Check ``fn(method, eta, b) -> float`` (method in "gd", "heavy_ball", "nesterov"; b is
    ignored for "gd") against the bisection on each method's iteration matrix, to 1e-3
    relative, on a grid of eta and b; name the likely mistake when one matches."""
    fb = Feedback("stability thresholds of GD, heavy-ball and Nesterov")
    wrong = {}  # method -> [(eta, b, got, want)]
    for method, eta, b in THRESHOLD_CASES:
        want = stability_threshold(method, eta, 0.0 if method == "gd" else b)
        try:
            got = float(fn(method, eta, b))
        except NotImplementedError:
            raise
        except Exception as e:  # noqa: BLE001 - a learner's bug is feedback, not a crash
            fb.fail(f"threshold({method!r}, {eta}, {b}) raised {type(e).__name__}: {e}")
            return fb.report("")
        if not _close(got, want):
            wrong.setdefault(method, []).append((eta, b, got, want))
    for method, cases in wrong.items():
        eta, b, got, want = cases[0]
        fb.fail(f"threshold({method!r}, eta={eta}, b={b}) = {got:.5g}; the iteration matrix's spectral radius "
                f"reaches 1 at S = {want:.5g}" + (f" (and {len(cases) - 1} more case(s) of {method!r} are off)"
                                                   if len(cases) > 1 else ""))
        named = [why for key, (_, why) in _threshold_mistakes(method, eta, b).items()
                 if _explains(key, method, cases)]
        fb.fail(named[0] if named else "write theta_{t+1} in terms of theta_t and theta_{t-1} on L = S theta^2 / 2 "
                "and ask when the characteristic polynomial has the root -1")
    return fb.report("every threshold matches the bisection on the iteration matrix "
                     "(gd, heavy_ball and nesterov, b from 0.5 to 0.99)")


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


@checker("the loss change predicted by the quadratic model",
         library="eosteach.analysis.quadratic_model_change")
def check_predicted_change(fn) -> bool:
    """Check ``fn(model, loss_fn, x, y, eta) -> float`` against -eta ||g||^2 + eta^2/2 g^T H g
    computed with the dense Hessian of tiny float64 tanh networks (4-3-2, MSE), to 1e-8
    relative, at several step sizes; also check that the parameters are left unchanged."""
    fb = Feedback("the loss change predicted by the quadratic model")
    for seed, eta in ((0, 0.05), (1, 0.4), (0, 1.5)):
        net, loss_fn, x, y, H = _tiny_problem(seed)
        ref = _reference(net, loss_fn, x, y, H, eta)
        try:
            got = fn(net, loss_fn, x, y, eta)
        except NotImplementedError:
            raise
        except Exception as e:  # noqa: BLE001
            fb.fail(f"fn(model, loss_fn, x, y, eta={eta}) raised {type(e).__name__}: {e}")
            return fb.report("")
        moved = float((hessian.flat_params(net) - ref["theta"]).abs().max())
        try:
            got = float(got.detach().reshape(())) if isinstance(got, torch.Tensor) else float(got)
        except (TypeError, ValueError, RuntimeError):
            fb.fail(f"the answer must be one number (a float or a 0-d tensor), got {type(got).__name__}")
            return fb.report("")
        if moved > 0:
            fb.fail("your function changed the model's parameters (it took the step?): predict the change "
                    "without moving theta, or put the parameters back")
            break
        if _close(got, ref["want"], 1e-8):
            continue
        fb.fail(f"at eta={eta} (seed {seed}) you return {got:.8g}; the quadratic model predicts {ref['want']:.8g}")
        named = [why for value, why in ref["mistakes"] if _close(got, value, 1e-6)]
        fb.fail(named[0] if named else "the model is L(theta + delta) - L(theta) ~ g . delta + 1/2 delta^T H delta "
                "with delta = -eta g; H g is one Hessian-vector product")
        break
    return fb.report("matches -eta ||g||^2 + eta^2/2 g^T H g from the dense Hessian, at three step sizes")


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
    computed here (1e-8 relative); the parameters must be unchanged afterwards."""
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
        if float((hessian.flat_params(net) - ref["theta"]).abs().max()) > 0:
            fb.fail("your function left the model's parameters moved: take the step to measure the observed "
                    "change, then put theta back exactly as it was")
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
        fb.fail(named[0] if named else "eliminate m: theta_{t+1} = (1 + beta1 - eta (1 - beta1) s) theta_t - beta1 "
                "theta_{t-1}; ask when lambda = -1 is a root")
    return fb.report("matches the bisection on Adam's iteration matrix at four (eta, beta1), beta1 from 0 to 0.99")
