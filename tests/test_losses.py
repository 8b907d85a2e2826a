"""Losses against explicit formulas: MSE = mean_i 1/2 ||f(x_i) - e_{y_i}||^2 (Cohen et al.),
cross-entropy against torch's and against -log softmax written out; accuracy by hand."""

from __future__ import annotations

import math

import pytest
import torch

from eosteach import losses


@pytest.fixture
def batch():
    generator = torch.Generator().manual_seed(0)
    output = torch.randn(7, 4, generator=generator, dtype=torch.float64)
    labels = torch.tensor([0, 3, 1, 1, 2, 0, 3])
    return output, labels


def test_mse_is_half_the_squared_error_summed_over_classes_averaged_over_examples(batch):
    output, labels = batch
    explicit = 0.0
    for i in range(output.shape[0]):
        explicit += 0.5 * sum(
            (output[i, j].item() - (1.0 if j == labels[i] else 0.0)) ** 2 for j in range(output.shape[1])
        )
    explicit /= output.shape[0]
    one_hot = torch.nn.functional.one_hot(labels, 4).double()
    assert losses.mse(output, one_hot).item() == pytest.approx(explicit, rel=1e-12)
    assert losses.mse(output, labels).item() == pytest.approx(explicit, rel=1e-12)  # indices accepted
    assert losses.mse(output, one_hot).dim() == 0


def test_mse_gradient_and_output_hessian(batch):
    output, labels = batch
    target = losses.one_hot(labels, 4, torch.float64)
    f = output.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(losses.mse(f, target), f)
    torch.testing.assert_close(grad, (output - target) / 7)
    # Hessian with respect to the outputs is I / n (what fixes the sharpness scale).
    hessian = torch.autograd.functional.hessian(lambda z: losses.mse(z.view(7, 4), target), output.reshape(-1))
    torch.testing.assert_close(hessian, torch.eye(28, dtype=torch.float64) / 7)


def test_cross_entropy_matches_torch_and_the_written_out_formula(batch):
    output, labels = batch
    explicit = 0.0
    for i in range(output.shape[0]):
        row = output[i].tolist()
        explicit += math.log(sum(math.exp(v) for v in row)) - row[labels[i]]
    explicit /= output.shape[0]
    ce = losses.cross_entropy(output, labels)
    assert ce.item() == pytest.approx(explicit, rel=1e-12)
    torch.testing.assert_close(ce, torch.nn.functional.cross_entropy(output, labels))
    torch.testing.assert_close(losses.cross_entropy(output, losses.one_hot(labels, 4, torch.float64)), ce)


def test_get_loss_and_names():
    assert losses.LOSSES == ("mse", "ce")
    assert losses.get_loss("mse") is losses.mse
    assert losses.get_loss("ce") is losses.cross_entropy
    with pytest.raises(ValueError, match="loss must be one of 'mse', 'ce'"):
        losses.get_loss("l2")


def test_accuracy_by_hand():
    output = torch.tensor([[2.0, 1.0, 0.0], [0.0, 1.0, 3.0], [0.5, 0.4, 0.1], [0.0, 5.0, 1.0]])
    labels = torch.tensor([0, 1, 0, 1])  # right, wrong, right, right
    assert losses.accuracy(output, labels) == 0.75
    assert losses.accuracy(output, losses.one_hot(labels, 3)) == 0.75
    assert isinstance(losses.accuracy(output, labels), float)


@pytest.mark.parametrize("fn", [losses.mse, losses.cross_entropy, losses.accuracy])
def test_shape_mismatch_is_a_value_error(fn):
    with pytest.raises(ValueError, match="target"):
        fn(torch.zeros(5, 3), torch.zeros(5, 4))
    with pytest.raises(ValueError, match="output"):
        fn(torch.zeros(5), torch.zeros(5, dtype=torch.long))
