"""The optimisers against torch.optim (independent implementations) and hand computations."""

import math

import pytest
import torch
from torch import nn

from eosteach import optim, thresholds


def tiny_problem(seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3)).double()
    x = torch.randn(16, 5, dtype=torch.float64)
    y = torch.randn(16, 3, dtype=torch.float64)
    return model, x, y


def loss_of(model, x, y):
    return 0.5 * (model(x) - y).pow(2).sum(1).mean()


def grads_of(model, x, y):
    return torch.autograd.grad(loss_of(model, x, y), list(model.parameters()))


def run_ours(opt_factory, steps=12):
    model, x, y = tiny_problem()
    opt = opt_factory(list(model.parameters()))
    for _ in range(steps):
        opt.step(grads_of(model, x, y))
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()]), opt


def run_torch(opt_factory, steps=12):
    model, x, y = tiny_problem()
    opt = opt_factory(model.parameters())
    for _ in range(steps):
        opt.zero_grad()
        loss_of(model, x, y).backward()
        opt.step()
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


CASES = [
    ("gd", lambda p: optim.GD(p, 0.3), lambda p: torch.optim.SGD(p, lr=0.3)),
    ("heavy_ball", lambda p: optim.HeavyBall(p, 0.1, 0.9), lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9)),
    ("nesterov", lambda p: optim.HeavyBall(p, 0.1, 0.7, nesterov=True),
     lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.7, nesterov=True)),
    ("rmsprop", lambda p: optim.RMSProp(p, 0.01, beta2=0.9, eps=1e-6),
     lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.9, eps=1e-6)),
    ("adam", lambda p: optim.Adam(p, 0.01, beta1=0.8, beta2=0.95, eps=1e-7),
     lambda p: torch.optim.Adam(p, lr=0.01, betas=(0.8, 0.95), eps=1e-7)),
]


@pytest.mark.parametrize("name,ours,theirs", CASES, ids=[c[0] for c in CASES])
def test_matches_torch_optim(name, ours, theirs):
    mine, _ = run_ours(ours)
    reference = run_torch(theirs)
    start, _ = run_ours(ours, steps=0)
    assert not torch.allclose(mine, start)  # the parameters did move
    torch.testing.assert_close(mine, reference, rtol=1e-12, atol=1e-13)


def test_make_optimizer_names_and_sgd_alias():
    model, _, _ = tiny_problem()
    params = list(model.parameters())
    for name in optim.OPTIMIZERS:
        momentum = 0.5 if name in ("heavy_ball", "nesterov", "adam", "sgd") else 0.0
        opt = optim.make_optimizer(name, params, 0.1, momentum=momentum)
        assert opt.name == name
    assert isinstance(optim.make_optimizer("sgd", params, 0.1), optim.GD)
    with pytest.raises(ValueError, match="opt must be one of"):
        optim.make_optimizer("lbfgs", params, 0.1)
    with pytest.raises(ValueError, match="lr"):
        optim.make_optimizer("gd", params, 0.0)
    with pytest.raises(ValueError, match="momentum"):
        optim.make_optimizer("heavy_ball", params, 0.1, momentum=1.0)


def test_thresholds_follow_the_current_lr():
    model, _, _ = tiny_problem()
    params = list(model.parameters())
    assert optim.GD(params, 0.5).threshold() == pytest.approx(4.0)
    hb = optim.HeavyBall(params, 0.1, 0.9)
    assert hb.threshold() == pytest.approx(3.8 / 0.1)
    hb.lr = 0.05
    assert hb.threshold() == pytest.approx(3.8 / 0.05)
    assert optim.HeavyBall(params, 0.1, 0.5, nesterov=True).threshold() == pytest.approx(3.0 / (2.0 * 0.1))
    assert optim.Adam(params, 0.01, beta1=0.9).threshold() == pytest.approx(38 / 0.01)
    assert optim.Adam(params, 0.01, beta1=0.9).threshold() == thresholds.adam(0.01, 0.9)
    assert optim.RMSProp(params, 0.01).threshold() == pytest.approx(200.0)
    assert math.isnan(optim.GradientFlow(params, 0.1).threshold())


def test_adam_preconditioner_reproduces_the_update():
    """theta_{t+1} - theta_t = -eta m_t / P_t with P_t = (1 - b1^t)(sqrt(v_t/(1-b2^t)) + eps)."""
    model, x, y = tiny_problem()
    params = list(model.parameters())
    opt = optim.Adam(params, 0.01, beta1=0.9, beta2=0.99, eps=1e-8)
    assert opt.preconditioner() is None
    for _ in range(3):
        opt.step(grads_of(model, x, y))
    before = torch.cat([p.detach().reshape(-1) for p in params])
    opt.step(grads_of(model, x, y))
    after = torch.cat([p.detach().reshape(-1) for p in params])
    m = torch.cat([t.reshape(-1) for t in opt.m])
    torch.testing.assert_close(after - before, -0.01 * m / opt.preconditioner(), rtol=1e-9, atol=1e-14)
    # RMSProp: the first step from v = 0 has P = sqrt((1 - a) g^2) + eps.
    model, x, y = tiny_problem()
    rms = optim.RMSProp(list(model.parameters()), 0.01, beta2=0.9, eps=1e-8)
    g = torch.cat([t.reshape(-1) for t in grads_of(model, x, y)])
    rms.step(grads_of(model, x, y))
    torch.testing.assert_close(rms.preconditioner(), (0.1 * g * g).sqrt() + 1e-8)


def test_gradient_flow_is_rk4_on_a_quadratic():
    """On L = 1/2 theta.A theta, one RK4 step of length h multiplies each coordinate by
    R(-h a) = 1 - ha + (ha)^2/2 - (ha)^3/6 + (ha)^4/24 (the RK4 stability polynomial), and
    the result approaches the exact flow exp(-A t) theta(0) at fourth order in h."""
    a = torch.tensor([3.0, 1.0, 0.2], dtype=torch.float64)
    start = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)

    def integrate(alpha, steps):
        theta = torch.nn.Parameter(start.clone())

        def grad_fn():
            return (a * theta.detach(),)

        flow = optim.GradientFlow([theta], alpha)
        flow.sharpness = 3.0
        for _ in range(steps):
            flow.step(grad_fn(), grad_fn)
        return theta.detach(), flow.last_h

    theta, h = integrate(0.1, 30)
    assert h == pytest.approx(0.1 / 3.0)
    z = -h * a
    amplification = 1 + z + z**2 / 2 + z**3 / 6 + z**4 / 24
    torch.testing.assert_close(theta, amplification**30 * start, rtol=1e-13, atol=1e-15)
    exact = torch.exp(-a * 1.0) * start  # t = 30 h = 1
    error_coarse = (theta - exact).norm()
    error_fine = (integrate(0.05, 60)[0] - exact).norm()
    assert 12 < error_coarse / error_fine < 20  # 2^4 = 16: fourth order
    with pytest.raises(ValueError, match="sharpness"):
        optim.GradientFlow([torch.nn.Parameter(start.clone())], 0.1).step((a,), lambda: (a,))


def test_state_dict_round_trip_continues_identically():
    for factory in (lambda p: optim.HeavyBall(p, 0.1, 0.9), lambda p: optim.Adam(p, 0.01, 0.9),
                    lambda p: optim.RMSProp(p, 0.01, 0.9)):
        model, x, y = tiny_problem()
        opt = factory(list(model.parameters()))
        for _ in range(3):
            opt.step(grads_of(model, x, y))
        state = opt.state_dict()
        saved = [p.detach().clone() for p in model.parameters()]
        for _ in range(3):
            opt.step(grads_of(model, x, y))
        straight = [p.detach().clone() for p in model.parameters()]
        with torch.no_grad():
            for p, s in zip(model.parameters(), saved):
                p.copy_(s)
        fresh = factory(list(model.parameters()))
        fresh.load_state_dict(state)
        for _ in range(3):
            fresh.step(grads_of(model, x, y))
        for p, s in zip(model.parameters(), straight):
            assert torch.equal(p.detach(), s)


def test_lr_schedule_drop_and_warmup():
    eta = optim.lr_schedule(0.1, drop_step=5, drop_factor=0.5)
    assert [eta(t) for t in (0, 4, 5, 100)] == [0.1, 0.1, 0.05, 0.05]
    warm = optim.lr_schedule(1.0, warmup_steps=4)
    assert [warm(t) for t in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert optim.lr_schedule(0.3)(10**6) == 0.3
    with pytest.raises(ValueError, match="drop_factor"):
        optim.lr_schedule(0.1, drop_step=3, drop_factor=0.0)
