"""eosteach.analysis: the quadratic model of a GD step, and GD continuations of a run."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.sparse.linalg import eigsh

from eosteach import analysis, hessian, losses, models, runs


def tiny_net_data(seed=0):
    net = models.make_model("fc-tanh", input_dim=6, n_classes=3, width=5, seed=seed, dtype=torch.float64)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(20, 6, generator=gen, dtype=torch.float64)
    y = torch.nn.functional.one_hot(torch.randint(0, 3, (20,), generator=gen), 3).double()
    return net, x, y


def dense_parts(net, x, y):
    loss = losses.mse(net(x), y)
    g = torch.cat([t.reshape(-1) for t in torch.autograd.grad(loss, list(net.parameters()))])
    H = hessian.dense_hessian(net, losses.mse, x, y)
    return float(loss.detach()), g, H


@pytest.mark.parametrize("eta", [0.01, 0.3, 2.0])
def test_prediction_matches_the_dense_hessian(eta):
    net, x, y = tiny_net_data()
    _, g, H = dense_parts(net, x, y)
    theta = hessian.flat_params(net)
    p = analysis.quadratic_model_change(net, losses.mse, x, y, eta)
    gg, ghg = float(g @ g), float(g @ H @ g)
    assert p.predicted == pytest.approx(-eta * gg + 0.5 * eta**2 * ghg, rel=1e-10)
    assert p.grad_sq == pytest.approx(gg, rel=1e-12)
    assert p.curvature == pytest.approx(ghg / gg, rel=1e-10)
    assert p.eta == eta
    assert torch.equal(hessian.flat_params(net), theta), "the parameters must be left unchanged"


def test_curvature_lies_between_the_extreme_eigenvalues():
    net, x, y = tiny_net_data(1)
    _, _, H = dense_parts(net, x, y)
    lam = torch.linalg.eigvalsh(H)
    p = analysis.quadratic_model_change(net, losses.mse, x, y, 0.1)
    assert float(lam[0]) - 1e-10 <= p.curvature <= float(lam[-1]) + 1e-10


def test_rise_predicted_exactly_when_curvature_exceeds_two_over_eta():
    net, x, y = tiny_net_data()
    R = analysis.quadratic_model_change(net, losses.mse, x, y, 1.0).curvature
    assert analysis.quadratic_model_change(net, losses.mse, x, y, 0.9 * 2 / R).predicted < 0
    assert analysis.quadratic_model_change(net, losses.mse, x, y, 1.1 * 2 / R).predicted > 0


def test_prediction_is_a_second_order_taylor_model():
    """Error of the model against the true change shrinks like eta^3."""
    net, x, y = tiny_net_data()
    loss, g, _ = dense_parts(net, x, y)
    theta = hessian.flat_params(net)
    errors = []
    for eta in (0.02, 0.01):
        hessian.set_flat_params(net, theta - eta * g)
        with torch.no_grad():
            true = float(losses.mse(net(x), y)) - loss
        hessian.set_flat_params(net, theta)
        errors.append(abs(true - analysis.quadratic_model_change(net, losses.mse, x, y, eta).predicted))
    assert 6 < errors[0] / errors[1] < 10  # about 2^3


def test_bad_input():
    net, x, y = tiny_net_data()
    with pytest.raises(ValueError, match="eta"):
        analysis.quadratic_model_change(net, losses.mse, x, y, 0.0)
    zero = torch.nn.Linear(6, 3, bias=False).double()
    torch.nn.init.zeros_(zero.weight)
    with pytest.raises(ValueError, match="gradient is zero"):
        analysis.quadratic_model_change(zero, losses.mse, x, torch.zeros(20, 3, dtype=torch.float64), 0.1)


# --------------------------------------------------------------------------- continuation


def tiny_config(**kw):
    settings = dict(data="synthetic", n_train=48, classes=3, width=12, steps=30, eig_every=5, lr=0.05,
                    device="cpu", dtype="float64")
    settings.update(kw)
    return runs.RunConfig(**settings)


def test_continuation_continues_the_run():
    """k continuation steps from a run of n steps give the losses of the run of n + k steps."""
    short = runs.train(tiny_config(steps=20), progress=False)
    longer = runs.train(tiny_config(steps=28), progress=False)
    c = analysis.gd_continuation(short, steps=8)
    assert c.step.tolist() == list(range(20, 28))
    assert c.loss.shape == (9,) and c.observed.shape == c.predicted.shape == c.curvature.shape == (8,)
    np.testing.assert_allclose(c.loss[:8], longer.metrics["loss"][20:28], rtol=1e-10)
    np.testing.assert_allclose(c.observed, np.diff(c.loss))
    assert c.eta == 0.05 and c.threshold == pytest.approx(40.0)
    # a small step on a smooth problem: the quadratic model gets the changes nearly right
    np.testing.assert_allclose(c.predicted, c.observed, rtol=0.05, atol=1e-4 * np.abs(c.observed).max())
    assert c.sign_agreement() == 1.0
    assert np.array_equal(c.rises(), c.observed > 0)


def test_continuation_uses_the_final_step_size():
    run = runs.train(tiny_config(steps=20, lr_drop_step=10, lr_drop_factor=0.5), progress=False)
    assert analysis.gd_continuation(run, steps=2).eta == pytest.approx(0.025)


def test_continuation_rejects_other_runs():
    with pytest.raises(ValueError, match="opt='gd'"):
        analysis.gd_continuation(runs.train(tiny_config(opt="heavy_ball", momentum=0.5, steps=5), progress=False))
    with pytest.raises(ValueError, match="Run"):
        analysis.gd_continuation("not a run")
    with pytest.raises(ValueError, match="steps"):
        analysis.gd_continuation(runs.train(tiny_config(steps=5), progress=False), steps=0)


def test_step_change_predicts_and_observes_and_puts_theta_back():
    net, x, y = tiny_net_data()
    loss, g, H = dense_parts(net, x, y)
    theta = hessian.flat_params(net)
    eta = 0.3
    pred, obs = analysis.step_change(net, losses.mse, x, y, eta)
    assert pred == pytest.approx(-eta * float(g @ g) + 0.5 * eta**2 * float(g @ H @ g), rel=1e-10)
    hessian.set_flat_params(net, theta - eta * g)
    with torch.no_grad():
        want = float(losses.mse(net(x), y)) - loss
    hessian.set_flat_params(net, theta)
    assert obs == pytest.approx(want, rel=1e-10)
    assert torch.equal(hessian.flat_params(net), theta)
    with pytest.raises(ValueError, match="eta"):
        analysis.step_change(net, losses.mse, x, y, -1.0)


def test_continuation_sharpness_matches_the_dense_hessian_along_the_continuation():
    short = runs.train(tiny_config(steps=20), progress=False)
    longer = runs.train(tiny_config(steps=23), progress=False)
    S = analysis.continuation_sharpness(short, at=(0, 3))
    assert S.shape == (2,)
    for value, run in ((S[0], short), (S[1], longer)):
        net = run.model("cpu")
        ds = analysis._training_data(run)
        # 37k parameters: too many for a dense Hessian, so ARPACK's Lanczos (scipy) over
        # recomputed double-backward products is the independent reference
        op = hessian.HessianOperator(net, losses.mse, ds.x_train, ds.y_train, method="reverse").to_scipy()
        top = float(eigsh(op, k=1, which="LA", tol=1e-10, return_eigenvectors=False)[0])
        assert value == pytest.approx(top, rel=1e-3)


def test_continuation_sharpness_bad_input():
    run = runs.train(tiny_config(steps=5), progress=False)
    for bad in ((), (2, 1), (-1,), "ab"):
        with pytest.raises(ValueError, match="at"):
            analysis.continuation_sharpness(run, at=bad)
    with pytest.raises(ValueError, match="opt='gd'"):
        analysis.continuation_sharpness(runs.train(tiny_config(opt="heavy_ball", momentum=0.5, steps=5),
                                                   progress=False))
