"""The two training losses of Cohen et al. (ICLR 2021), and accuracy.

Every loss is ``loss_fn(output, target) -> scalar tensor``: the MEAN over the n examples
given, so that full-batch gradient descent on it is the paper's GD.

* MSE (the paper's square loss, Appendix of Cohen et al. 2021):

      L(theta) = (1/n) sum_i  1/2 || f(x_i; theta) - e_{y_i} ||^2,

  the squared error summed over the c classes (not averaged over them) and halved,
  with e_y the one-hot vector of class y. Its Hessian with respect to the outputs is
  I_c / n, which is why the sharpness scale in the paper is what it is: averaging over
  classes too would divide every eigenvalue, and the 2/eta crossing step, by c.
* Cross-entropy: (1/n) sum_i -log softmax(f(x_i))_{y_i}, as ``torch.nn.functional.cross_entropy``.

Shapes: ``output`` is (n, c); ``target`` is (n, c) one-hot (float) or (n,) class indices
(integer). Both losses accept either form, so a dataset loaded for one loss can be
evaluated with the other.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import validate

LOSSES = ("mse", "ce")


def _check_output(output: torch.Tensor) -> None:
    if output.dim() != 2:
        raise ValueError(f"output must have shape (n, c), got {tuple(output.shape)}")


def _is_index(target: torch.Tensor) -> bool:
    return target.dim() == 1 and not torch.is_floating_point(target)


def one_hot(target: torch.Tensor, n_classes: int, dtype=torch.float32) -> torch.Tensor:
    """Class indices (n,) -> one-hot rows (n, n_classes) of ``dtype`` (e_y in the MSE formula)."""
    return F.one_hot(target.long(), n_classes).to(dtype)


def mse(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over examples of 1/2 ||output_i - e_{y_i}||^2 summed over classes (Cohen et al. 2021).

    ``output`` (n, c); ``target`` (n, c) one-hot, or (n,) class indices converted here.
    Returns a 0-dimensional tensor.
    """
    _check_output(output)
    if _is_index(target):
        target = one_hot(target, output.shape[1], output.dtype)
    if target.shape != output.shape:
        raise ValueError(
            f"target must have shape {tuple(output.shape)} (one-hot) or ({output.shape[0]},) "
            f"(class indices), got {tuple(target.shape)}"
        )
    return 0.5 * (output - target).pow(2).sum(dim=1).mean()


def cross_entropy(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over examples of -log softmax(output_i)[y_i].

    ``output`` (n, c) logits; ``target`` (n,) class indices, or (n, c) one-hot rows
    (then the cross-entropy against those probability rows, the same number).
    """
    _check_output(output)
    if not _is_index(target) and target.shape != output.shape:
        raise ValueError(
            f"target must have shape ({output.shape[0]},) (class indices) or "
            f"{tuple(output.shape)} (one-hot), got {tuple(target.shape)}"
        )
    if not _is_index(target):
        target = target.to(output.dtype)
    return F.cross_entropy(output, target)


def get_loss(name: str):
    """The loss function called ``name``, one of ``LOSSES``: "mse" or "ce"."""
    validate.choice("loss", name, LOSSES)
    return {"mse": mse, "ce": cross_entropy}[name]


@torch.no_grad()
def accuracy(output: torch.Tensor, target: torch.Tensor) -> float:
    """Fraction in [0, 1] of rows whose largest output is the true class.

    ``target`` one-hot (n, c) or class indices (n,).
    """
    _check_output(output)
    if target.shape != output.shape and target.shape != output.shape[:1]:
        raise ValueError(
            f"target must have shape {tuple(output.shape)} (one-hot) or ({output.shape[0]},) "
            f"(class indices), got {tuple(target.shape)}"
        )
    labels = target if _is_index(target) else target.argmax(dim=1)
    return (output.argmax(dim=1) == labels).double().mean().item()
