"""What the quadratic model of the loss says about a gradient step (lesson 4).

The second-order Taylor model of the loss around theta, for a step delta, is

    L(theta + delta) - L(theta)  ~  g . delta + 1/2 delta^T H delta,   g = grad L, H = D^2 L.

For a gradient-descent step delta = -eta g it predicts the change

    dL_quad = -eta ||g||^2 + (eta^2 / 2) g^T H g  =  -eta ||g||^2 (1 - eta R / 2),
    R = g^T H g / ||g||^2   (the curvature along the gradient, a Rayleigh quotient of H),

so the model predicts a RISE of the loss exactly when R > 2/eta. R lies between the smallest
and the largest eigenvalue of H, so R <= S = lambda_max(H) (the descent lemma's worst case,
lesson 1); at the edge of stability S is about 2/eta (Cohen et al., ICLR 2021) and R can
cross 2/eta back and forth (lesson 4 measures it along a GD run). The model leaves out the
third and higher derivatives: the observed change may differ.

* ``quadratic_model_change(model, loss_fn, x, y, eta)``: dL_quad, ||g||^2 and R at the
  model's current parameters (one gradient and one Hessian-vector product).
* ``step_change(model, loss_fn, x, y, eta)``: (dL_quad, the observed change
  L(theta - eta g) - L(theta)), the parameters left unchanged.
* ``gd_continuation(run, steps)``: continue a finished GD run for ``steps`` steps from its
  final parameters at its final step size and record, at every step, the observed change
  of the loss, the change the quadratic model predicted, and R.
* ``continuation_sharpness(run, at)``: the sharpness S = lambda_max(H) at chosen steps of
  the same GD continuation (e.g. at its start, one step later, and at its end): whether
  the records of a run, taken every k steps, see one side of a period-two oscillation, and
  where S goes while the oscillation grows and saturates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from . import hessian, validate


@dataclass
class QuadraticPrediction:
    """The quadratic model of one GD step at theta.

    predicted: -eta ||g||^2 + eta^2/2 g^T H g (loss units); grad_sq: ||g||^2;
    curvature: R = g^T H g / ||g||^2 (the loss's curvature along its gradient); eta: the step size.
    """

    predicted: float
    grad_sq: float
    curvature: float
    eta: float


def quadratic_model_change(model: torch.nn.Module, loss_fn, x, y, eta: float) -> QuadraticPrediction:
    """The change of the full-batch loss that the second-order Taylor model predicts for
    one GD step theta -> theta - eta g (see the module docstring), without taking the step.

    model: a ``torch.nn.Module``; loss_fn(outputs, y) -> mean loss; x, y: the whole
    training set; eta > 0. g = grad L by autograd with ``create_graph=True`` and H g by a
    second reverse pass through the same graph; the parameters are left unchanged.
    Raises ValueError when g = 0 (R is then undefined)."""
    return _prediction_and_gradient(model, loss_fn, x, y, validate.positive("eta", eta))[0]


def step_change(model: torch.nn.Module, loss_fn, x, y, eta: float) -> tuple[float, float]:
    """(predicted, observed) for one GD step theta -> theta - eta g of the full-batch loss:
    the quadratic model's change -eta ||g||^2 + eta^2/2 g^T H g (``quadratic_model_change``)
    and the observed change L(theta - eta g) - L(theta), both floats in loss units. The step
    is taken to measure the observed change and undone: the parameters are left unchanged.
    model, loss_fn, x, y, eta as in ``quadratic_model_change`` (lesson 4, exercise 1)."""
    pred, loss, g = _prediction_and_gradient(model, loss_fn, x, y, validate.positive("eta", eta))
    theta = hessian.flat_params(model).detach().clone()
    hessian.set_flat_params(model, theta - eta * g)
    with torch.no_grad():
        after = float(loss_fn(model(x), y))
    hessian.set_flat_params(model, theta)
    return pred.predicted, after - loss


def _prediction_and_gradient(model, loss_fn, x, y, eta: float):
    """(QuadraticPrediction, L(theta) as a float, g as a flat detached tensor (n,)).

    One forward pass, the gradient with ``create_graph=True``, then H g as the gradient of
    g . g_fixed (reverse-over-reverse through the same graph): about three gradients' work."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no trainable parameters")
    loss = loss_fn(model(x), y)
    grads = torch.autograd.grad(loss, params, create_graph=True)
    g_graph = torch.cat([gi.reshape(-1) for gi in grads])
    g = g_graph.detach()
    grad_sq = float(torch.dot(g, g))
    if not grad_sq > 0:
        raise ValueError("the gradient is zero at these parameters: the curvature along it is undefined")
    hg = torch.autograd.grad(torch.dot(g_graph, g), params)
    g_h_g = float(torch.dot(torch.cat([h.reshape(-1) for h in hg]), g))
    pred = QuadraticPrediction(predicted=-eta * grad_sq + 0.5 * eta**2 * g_h_g, grad_sq=grad_sq,
                               curvature=g_h_g / grad_sq, eta=eta)
    return pred, float(loss.detach()), g


@dataclass
class GDContinuation:
    """A GD continuation of a finished run, step by step.

    step (m,): step numbers, continuing the run's count; loss (m + 1,): L(theta_t) at each
    step and after the last; observed (m,): L(theta_{t+1}) - L(theta_t); predicted (m,): the
    quadratic model's change for that step; curvature (m,): R_t = g_t^T H_t g_t / ||g_t||^2;
    eta: the step size (the run's final one); threshold: 2/eta.
    """

    step: np.ndarray
    loss: np.ndarray
    observed: np.ndarray
    predicted: np.ndarray
    curvature: np.ndarray
    eta: float
    threshold: float

    def sign_agreement(self) -> float:
        """Fraction of steps at which the observed and the predicted change have the same sign."""
        return float(np.mean(np.sign(self.observed) == np.sign(self.predicted)))

    def rises(self) -> np.ndarray:
        """Boolean (m,): the steps at which the loss went up."""
        return self.observed > 0


def _training_data(run):
    """The run's training set exactly as the run loaded it, on the CPU (``runs.build``)."""
    from . import runs

    return runs.build(run.config, device="cpu").dataset


def _continuation_start(run, name: str):
    """(net, loss_fn, x, y, eta) to continue the finished GD ``run`` on the CPU from its final
    parameters, at its final step size; a ValueError naming ``name`` for anything but a GD run."""
    from . import losses, runs

    if not isinstance(run, runs.Run):
        raise ValueError(f"run must be an eosteach.runs.Run, got {type(run).__name__}")
    if run.config.opt != "gd":
        raise ValueError(f"{name} needs a run with opt='gd' (its step is -eta g), got opt={run.config.opt!r}")
    ds = _training_data(run)
    lr = run.metrics.get("lr", [])
    eta = float(lr[-1]) if len(lr) else run.config.lr
    return run.model("cpu"), losses.get_loss(run.config.loss), ds.x_train, ds.y_train, eta


def gd_continuation(run, steps: int = 40) -> GDContinuation:
    """Continue the finished GD ``run`` (an ``eosteach.runs.Run`` with opt "gd") for
    ``steps`` full-batch GD steps from its final parameters, at its final step size, on the
    CPU; before each step record the quadratic model's prediction
    (``quadratic_model_change``), and after it the observed change of the loss."""
    net, loss_fn, x, y, eta = _continuation_start(run, "gd_continuation")
    steps = validate.positive_int("steps", steps)
    loss_values, predicted, curvature = [], [], []
    for _ in range(steps):
        pred, loss, g = _prediction_and_gradient(net, loss_fn, x, y, eta)
        predicted.append(pred.predicted)
        curvature.append(pred.curvature)
        loss_values.append(loss)
        hessian.set_flat_params(net, hessian.flat_params(net).detach() - eta * g)
    with torch.no_grad():
        loss_values.append(float(loss_fn(net(x), y)))
    loss_arr = np.array(loss_values)
    steps_done = run.metrics.get("step", [])
    first = int(steps_done[-1]) + 1 if len(steps_done) else 0
    return GDContinuation(step=np.arange(first, first + steps), loss=loss_arr, observed=np.diff(loss_arr),
                          predicted=np.array(predicted), curvature=np.array(curvature), eta=eta,
                          threshold=2.0 / eta)


def continuation_sharpness(run, at=(0, 1, 40), *, tol: float = 1e-4) -> np.ndarray:
    """S = lambda_max(H) at steps ``at`` of the GD continuation of the finished GD ``run``
    (``at`` = k means theta after k more full-batch GD steps from the run's final parameters,
    at its final step size, on the CPU: the same iterates as ``gd_continuation``).

    at: non-decreasing integers >= 0; returns an array of shape (len(at),), in the units
    of 1/eta (compare with 2/eta). Each S by ``hessian.sharpness`` (Lanczos, ``tol``
    relative, at most 300 Hessian-vector products), started from the previous eigenvector.
    Used to test whether records taken at even steps see one side of the period-two
    oscillation (S at k = 0 and k = 1), and where S is at the end of a continuation."""
    net, loss_fn, x, y, eta = _continuation_start(run, "continuation_sharpness")
    try:
        at = [int(k) for k in at]
    except (TypeError, ValueError):
        raise ValueError(f"at must be a sequence of integers >= 0, got {at!r}") from None
    if not at or min(at) < 0 or any(b < a for a, b in zip(at, at[1:])):
        raise ValueError(f"at must be a non-empty, non-decreasing sequence of integers >= 0, got {at!r}")
    tol = validate.positive("tol", tol)
    params = [p for p in net.parameters() if p.requires_grad]
    out, v0, done = [], None, 0
    for k in at:
        for _ in range(k - done):
            g = torch.cat([t.reshape(-1) for t in torch.autograd.grad(loss_fn(net(x), y), params)])
            hessian.set_flat_params(net, hessian.flat_params(net).detach() - eta * g)
        done = k
        res = hessian.sharpness(net, loss_fn, x, y, tol=tol, max_products=300, v0=v0)
        v0 = res.eigenvectors[:, :1]
        out.append(res.top)
    return np.array(out, dtype=np.float64)
