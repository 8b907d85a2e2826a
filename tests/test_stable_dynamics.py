"""Tests of eosteach.stable_dynamics on a tiny float64 network (233 parameters), each
against an independent computation: finite differences of the dense-Hessian eigenvalue,
the dense Hessian's eigenpair after projection, and the constraint along the central flow."""

import numpy as np
import pytest
import torch

from eosteach import hessian, losses, models
from eosteach import stable_dynamics as sd


@pytest.fixture(scope="module")
def setup():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 233 parameters: threading only adds overhead
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 8, generator=g, dtype=torch.float64)
    y = torch.nn.functional.one_hot(torch.randint(0, 3, (40,), generator=g), 3).double()
    model = models.make_model("fc-tanh", input_dim=8, n_classes=3, width=10, dtype=torch.float64, seed=0)
    land = sd.Landscape(model, losses.mse, x, y, tol=1e-10)
    theta0 = land.theta
    eta = 2 / (3 * land.top_eigen(theta0)[0])  # progressive sharpening takes S from 2 to 2/eta = 6
    gd = sd.gradient_descent(land, theta0, eta, 215, eig_every=5)
    t0 = int(np.argmax(gd.sharpness >= 2 / eta))
    assert 100 < t0 < 210, "GD should reach the edge of stability after progressive sharpening"
    yield dict(model=model, x=x, y=y, land=land, eta=eta, gd=gd, t0=t0)
    torch.set_num_threads(threads)


def _dense_top(model, x, y, theta):
    hessian.set_flat_params(model, theta)
    ev, vec = torch.linalg.eigh(hessian.dense_hessian(model, losses.mse, x, y))
    return float(ev[-1]), vec[:, -1]


def test_sharpness_gradient_matches_finite_differences(setup):
    s = setup
    theta = s["gd"].theta[s["t0"]]
    q = sd.local_quantities(s["land"], theta, s["eta"])
    d = torch.randn(theta.numel(), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    d /= d.norm()
    h = 1e-5
    fd = (_dense_top(s["model"], s["x"], s["y"], theta + h * d)[0]
          - _dense_top(s["model"], s["x"], s["y"], theta - h * d)[0]) / (2 * h)
    assert float(q.grad_S @ d) == pytest.approx(fd, rel=1e-5)
    assert abs(float(q.grad_S_perp @ q.u)) < 1e-10
    assert q.alpha > 0 and q.beta == pytest.approx(float(q.grad_S_perp.norm() ** 2))
    assert q.delta == pytest.approx(np.sqrt(2 * q.alpha / q.beta))


def test_projection_onto_stable_set(setup):
    s = setup
    theta = s["gd"].theta[s["t0"] + 15]
    threshold = 2 / s["eta"]
    assert s["gd"].sharpness[s["t0"] + 15] > 1.05 * threshold  # a real projection, not a no-op
    p = sd.project(s["land"], theta, s["eta"], rtol_u=1e-8)
    assert p.converged
    S, u = _dense_top(s["model"], s["x"], s["y"], p.theta)  # independent: dense eigh
    _, grad = hessian.flat_grad(s["model"], losses.mse, s["x"], s["y"])
    assert abs(S - threshold) <= 1e-3 * threshold
    assert abs(float(u @ grad)) <= 1e-6 * float(grad.norm())


def test_central_flow_stays_on_threshold_with_falling_loss(setup):
    s = setup
    cf = sd.central_flow(s["land"], s["gd"].theta[s["t0"]], s["eta"], 30, dt=0.5)
    threshold = 2 / s["eta"]
    # Step 0 is GD's point (S may overshoot 2/eta by a few %); the first flow step corrects it.
    assert np.all(np.abs(cf.sharpness[1:] - threshold) <= 0.01 * threshold)
    assert np.all(np.diff(cf.loss) < 0)
    assert np.all(cf.sigma2[1:] > 0)  # the constraint is active: the flow is not plain gradient flow
    # Independent: the dense-Hessian sharpness at the flow's end point.
    assert _dense_top(s["model"], s["x"], s["y"], cf.theta[-1])[0] == pytest.approx(threshold, rel=0.01)


def test_constrained_trajectory_and_prediction(setup):
    s = setup
    ct = sd.constrained_trajectory(s["land"], s["gd"].theta[s["t0"]], s["eta"], 10)
    threshold = 2 / s["eta"]
    assert np.all(ct.sharpness <= threshold * (1 + 1e-4))
    assert np.all(np.diff(ct.loss) < 0)
    pred = sd.reduced_dynamics(ct.alpha, ct.beta, s["eta"], 1e-3, 0.0)
    assert len(pred.x) == 11 and np.all(np.isfinite(pred.y))
    assert pred.x[1] == pytest.approx(-1e-3)


def test_helpers_and_validation(setup):
    assert np.allclose(sd.running_mean([1, 2, 3, 4, 5], 3)[1:4], [2, 3, 4])
    assert np.isnan(sd.running_mean([1, 2, 3, 4, 5], 3)[0])
    with pytest.raises(ValueError, match="eta"):
        sd.local_quantities(setup["land"], setup["gd"].theta[0], 0.0)
    with pytest.raises(ValueError, match="dt"):
        sd.central_flow(setup["land"], setup["gd"].theta[0], 0.3, 5, dt=2.0)


def test_projection_step_is_the_min_norm_solution_of_the_linearised_constraints():
    rng = np.random.default_rng(3)
    n, eta = 12, 0.2
    u = rng.normal(size=n)
    u /= np.linalg.norm(u)
    gS, gL = rng.normal(size=n), rng.normal(size=n)
    for S in (11.0, 9.0):
        d = sd.projection_step(S, u, gS, gL, eta)
        # Independent: numpy's least-squares (minimum-norm) solution of the two equations.
        A = np.stack([gS, S * u])
        want = np.linalg.lstsq(A, np.array([2 / eta - S, -(u @ gL)]), rcond=None)[0]
        assert np.allclose(d, want, rtol=1e-10, atol=1e-14)
        # torch tensors give the same step.
        dt = sd.projection_step(S, *(torch.tensor(v) for v in (u, gS, gL)), eta)
        assert np.allclose(dt.numpy(), d)
    # lower_only: below the threshold only the u-constraint is corrected.
    d = sd.projection_step(9.0, u, gS, gL, eta, lower_only=True)
    assert np.allclose(d, -(u @ gL) / 9.0 * u)
    with pytest.raises(ValueError, match="eta"):
        sd.projection_step(9.0, u, gS, gL, 0.0)


def test_projection_history_converges_and_displacement_coordinates(setup):
    s = setup
    theta = s["gd"].theta[s["t0"] + 15]
    p = sd.project(s["land"], theta, s["eta"], rtol_u=1e-8)
    assert len(p.history) == p.iterations + 1
    assert p.history[0][0] > 0.05 and abs(p.history[-1][0]) <= 1e-4 and p.history[-1][1] <= 1e-8
    ct = sd.constrained_trajectory(s["land"], s["gd"].theta[s["t0"]], s["eta"], 3)
    q = sd.local_quantities(s["land"], ct.theta[2], s["eta"])
    assert torch.allclose(ct.grad_S_perp[2], q.grad_S_perp, rtol=1e-5, atol=1e-8)
    # x and y of a point displaced by a u + b grad_S_perp are (a, b beta) to rounding.
    fake = sd.Trajectory(ct.time, ct.theta + 1e-3 * ct.u + 2e-4 * ct.grad_S_perp, ct.loss, ct.sharpness)
    x, y = sd.displacement(fake, ct)
    beta = (ct.grad_S_perp**2).sum(dim=1).numpy()
    assert np.allclose(x, 1e-3, rtol=1e-6) and np.allclose(y, 2e-4 * beta, rtol=1e-6)
    with pytest.raises(ValueError, match="constrained"):
        sd.displacement(ct, fake)


def test_landscape_eigenvalues_match_the_dense_hessian(setup):
    s = setup
    theta = s["gd"].theta[s["t0"]]
    hessian.set_flat_params(s["model"], theta)
    dense = torch.linalg.eigvalsh(hessian.dense_hessian(s["model"], losses.mse, s["x"], s["y"])).numpy()[::-1]
    assert np.allclose(s["land"].eigenvalues(theta, 3), dense[:3], rtol=1e-6)


def test_sigma2_against_delta2_on_and_off_the_stable_set(setup):
    # The identity sigma^2 (beta + s_u^2) = 2 alpha - 2 s_u l_u (s_u = u . grad S, l_u = u . grad L)
    # that Lesson 6 uses: on the projected point (l_u = 0) sigma^2 = delta^2 beta / ||grad S||^2.
    s = setup
    proj = sd.project(s["land"], s["gd"].theta[s["t0"] + 3], s["eta"], rtol_u=1e-9)
    q = proj.quantities
    s_u, l_u = float(q.u @ q.grad_S), q.u_dot_grad
    assert q.sigma2 * (q.beta + s_u**2) == pytest.approx(2 * q.alpha - 2 * s_u * l_u, rel=1e-9)
    assert abs(l_u) <= 1e-9 * float(q.grad.norm())
    assert q.sigma2 == pytest.approx(q.delta**2 * q.beta / float(q.grad_S @ q.grad_S), rel=1e-6)


def test_oscillation_seed_recovers_a_planted_seed_under_an_offset():
    # Independent construction: an oscillation that grows by |1 - eta S_t| per step from a known
    # seed, on top of a smooth offset many orders of magnitude larger at first.
    eta, T = 0.1, 90
    S = np.linspace(20.5, 31.0, T + 1)
    seed = 3e-15
    osc = seed * np.concatenate([[1.0], np.cumprod(1 - eta * S[:-1])])   # 1 - eta S < 0: flips sign each step
    offset = 1e-6 + 2e-3 * (np.arange(T + 1) / T) ** 2
    r = sd.oscillation_seed(offset + osc, S, eta, scale=0.02)
    assert r.seed == pytest.approx(seed, rel=1e-3)
    assert r.steps.size >= 3 and np.ptp(r.estimates) < 1e-2 * seed
    with pytest.raises(ValueError, match="window"):
        sd.oscillation_seed(offset, S, eta, scale=0.02)           # no oscillation at all
    with pytest.raises(ValueError, match="equal length"):
        sd.oscillation_seed(offset[:-1], S, eta, scale=0.02)


def test_reduced_dynamics_stops_when_the_map_leaves_the_float_range():
    alpha, beta = np.full(200, 1.0), np.full(200, 1.0)
    out = sd.reduced_dynamics(alpha, beta, 0.9, 5.0, -5.0)      # y < -2/eta: |1 + eta y| > 1, x explodes
    assert out.diverged and len(out.x) < 200 and np.all(np.isfinite(out.x))
    fine = sd.reduced_dynamics(alpha, beta, 0.02, 0.05, -1.0)
    ref = __import__("eosteach.selfstab", fromlist=["x"]).iterate_map(1.0, 1.0, 0.02, 0.05, -1.0, 199)
    assert not fine.diverged and np.allclose(fine.x, ref.x) and np.allclose(fine.y, ref.y)


def test_landscape_hvp_matches_the_dense_hessian(setup):
    s = setup
    theta = s["gd"].theta[s["t0"]]
    v = torch.randn(theta.numel(), generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    hessian.set_flat_params(s["model"], theta)
    dense = hessian.dense_hessian(s["model"], losses.mse, s["x"], s["y"])
    assert torch.allclose(s["land"].hvp(theta, v), dense @ v, rtol=1e-8, atol=1e-10)


def test_predicted_dynamics_match_a_dense_recursion(setup):
    # Damian et al.'s predicted dynamics on all of v, against the same recursion written with
    # the dense Hessian at every theta_dagger_t and explicit projection matrices (numpy).
    s = setup
    eta, steps = s["eta"], 6
    ct = sd.constrained_trajectory(s["land"], s["gd"].theta[s["t0"]], eta, steps)
    v0 = 1e-3 * torch.randn(ct.theta.shape[1], generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    x0 = 2e-3
    out = sd.predicted_dynamics(s["land"], ct, eta, x0, v0)
    assert not out.diverged and len(out.x) == steps + 1 and out.v.shape == ct.theta.shape
    n = ct.theta.shape[1]
    U, G = ct.u.numpy(), ct.grad_S_perp.numpy()
    P = [np.eye(n) - np.outer(U[t], U[t]) for t in range(steps + 1)]
    v, x = P[0] @ v0.numpy(), x0
    xs, ys, cs = [x], [G[0] @ v], []
    for t in range(steps):
        hessian.set_flat_params(s["model"], ct.theta[t])
        H = hessian.dense_hessian(s["model"], losses.mse, s["x"], s["y"]).numpy()
        cs.append(G[t] @ H @ (P[t] @ v))
        delta2 = 2 * ct.alpha[t] / ct.beta[t]
        v = P[t + 1] @ (np.eye(n) - eta * H) @ P[t] @ v + eta * G[t] * (delta2 - x * x) / 2
        x = -(1 + eta * ys[-1]) * x
        xs.append(x)
        ys.append(G[t + 1] @ v)
    assert np.allclose(out.x, xs, rtol=1e-10, atol=0)
    assert np.allclose(out.y, ys, rtol=1e-8, atol=1e-12)
    assert np.allclose(out.v[-1].numpy(), v, rtol=1e-8, atol=1e-12)
    assert np.allclose(out.coupling[:-1], cs, rtol=1e-8, atol=1e-12) and np.isnan(out.coupling[-1])
    # y moves by eta (alpha_t - beta_t x^2/2 - coupling_t) up to the turning of grad S_perp (here
    # 0.3%); the two-variable reduction, the same step without the coupling, misses it (here by 16%).
    rise = np.diff(out.y)
    reduced = eta * (ct.alpha[:-1] - ct.beta[:-1] * out.x[:-1] ** 2 / 2)
    assert np.allclose(rise, reduced - eta * out.coupling[:-1], rtol=0.01, atol=0)
    assert np.max(np.abs(rise / reduced - 1)) > 0.05
    with pytest.raises(ValueError, match="constrained"):
        sd.predicted_dynamics(s["land"], s["gd"], eta, x0, v0)
    with pytest.raises(ValueError, match="v0"):
        sd.predicted_dynamics(s["land"], ct, eta, x0, v0[:-1])
