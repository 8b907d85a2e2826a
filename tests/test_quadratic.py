"""Quadratic models and the optimisers on them, against independent computations."""

import math
import warnings

import numpy as np
import pytest
import torch

from eosteach import quadratic
from eosteach.quadratic import Quadratic


def test_from_spectrum_has_the_spectrum_and_is_symmetric():
    lam = [5.0, 2.0, 0.3, 0.0]
    q = Quadratic.from_spectrum(lam, seed=3)
    assert np.allclose(q.A, q.A.T)
    assert np.allclose(np.sort(np.linalg.eigvalsh(q.A))[::-1], lam)
    assert q.sharpness == pytest.approx(5.0)
    assert not np.allclose(q.A, np.diag(np.diag(q.A)))  # a genuinely rotated basis
    assert np.allclose(Quadratic.from_spectrum(lam, basis="identity").A, np.diag(lam))


def test_loss_grad_minimizer_against_finite_differences():
    rng = np.random.default_rng(0)
    q = Quadratic.from_spectrum([4.0, 1.0, 0.5], seed=1, c=rng.standard_normal(3))
    theta = rng.standard_normal(3)
    eps = 1e-6
    fd = np.array([(q.loss(theta + eps * e) - q.loss(theta - eps * e)) / (2 * eps) for e in np.eye(3)])
    assert np.allclose(q.grad(theta), fd, atol=1e-7)
    assert np.allclose(q.grad(q.minimizer()), 0.0, atol=1e-12)
    assert q.loss(np.zeros((2, 5, 3))).shape == (2, 5)


def test_gd_run_matches_closed_form_for_a_batch_of_step_sizes_and_starts():
    q = Quadratic.from_spectrum([3.0, 1.0, 0.2], seed=2)
    lam, Q = np.linalg.eigh(q.A)
    etas = np.array([0.1, 0.5, 0.66])[:, None]  # (3, 1) x starts (4, 3) -> batch (3, 4)
    starts = np.random.default_rng(1).standard_normal((4, 3))
    traj = quadratic.run(q, "gd", etas, starts, steps=20)
    assert traj.theta.shape == (21, 3, 4, 3) and traj.loss.shape == (21, 3, 4)
    for i, eta in enumerate(etas[:, 0]):
        for j, t0 in enumerate(starts):
            expected = Q @ ((1 - eta * lam) ** 20 * (Q.T @ t0))
            assert np.allclose(traj.theta[20, i, j], expected)
    assert not traj.diverged.any()


# torch rejects nesterov=True with momentum 0 (that case is GD, tested above).
@pytest.mark.parametrize("nesterov, b", [(False, 0.0), (False, 0.5), (False, 0.9), (True, 0.5), (True, 0.9)])
def test_momentum_matches_torch_sgd(nesterov, b):
    q = Quadratic.from_spectrum([3.0, 1.0, 0.2], seed=4, c=[0.3, -0.1, 0.2])
    theta0 = np.array([1.0, -2.0, 0.5])
    eta, steps = 0.4, 25
    method = "nesterov" if nesterov else "heavy_ball"
    ours = quadratic.run(q, method, eta, theta0, steps=steps, b=b).theta
    p = torch.tensor(theta0, dtype=torch.float64, requires_grad=True)
    A, c = torch.tensor(q.A), torch.tensor(q.c)
    opt = torch.optim.SGD([p], lr=eta, momentum=b, nesterov=nesterov)
    for k in range(steps):
        opt.zero_grad()
        (0.5 * p @ A @ p + c @ p).backward()
        opt.step()
        assert np.allclose(ours[k + 1], p.detach().numpy(), rtol=1e-10, atol=1e-12), k


def test_frozen_adam_is_preconditioned_ema_momentum():
    q = Quadratic.from_spectrum([3.0, 1.0], seed=5)
    P = np.array([2.0, 0.5])
    eta, b1 = 0.3, 0.8
    theta, m = np.array([1.0, 1.0]), np.zeros(2)
    traj = quadratic.run(q, "adam", eta, theta, steps=10, b=b1, precond=P)
    for k in range(10):
        m = b1 * m + (1 - b1) * (q.A @ theta)
        theta = theta - eta * m / P
        assert np.allclose(traj.theta[k + 1], theta)


def test_divergence_is_flagged_without_floating_point_warnings():
    q = Quadratic.from_spectrum([100.0, 1.0], seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        traj = quadratic.run(q, "heavy_ball", [0.001, 1e3], [1.0, 1.0], steps=2000, b=0.9)
    assert traj.diverged.tolist() == [False, True]
    k = traj.diverged_at[1]
    assert k > 0 and np.all(np.isnan(traj.loss[k:, 1])) and np.all(np.isfinite(traj.loss[:k, 1]))
    assert traj.diverged_at[0] == -1


def test_descent_lemma_on_random_quadratics():
    rng = np.random.default_rng(7)
    for trial in range(50):
        dim = int(rng.integers(2, 8))
        q = Quadratic.from_spectrum(rng.uniform(0.0, 10.0, dim), seed=trial, c=rng.standard_normal(dim))
        ell = q.smoothness
        thetas = rng.standard_normal((200, dim)) * 3
        g = q.grad(thetas)
        gg = np.sum(g * g, axis=-1)
        for eta in rng.uniform(0.0, 2.0 / ell, 5):
            change = q.loss(thetas - eta * g) - q.loss(thetas)
            bound = -eta / 2 * (2 - eta * ell) * gg
            assert np.all(change <= bound + 1e-9 * (1 + np.abs(bound)))
            assert np.all(change <= 1e-12)  # a decrease, as the lemma promises
        # Above 2/ell some start point makes the loss go up: the top eigen-direction.
        eta = 2.0 / ell * rng.uniform(1.01, 3.0)
        theta = q.minimizer() + q.eigenvectors[:, 0]
        assert q.loss(theta - eta * q.grad(theta)) > q.loss(theta)


def test_unstable_gd_oscillates_along_the_top_eigenvector():
    q = Quadratic.from_spectrum([10.0, 1.0], seed=0)
    traj = quadratic.run(q, "gd", 0.21, [1.0, 2.0], steps=40)
    proj = traj.theta @ q.eigenvectors[:, 0]
    assert np.all(np.sign(proj[1:]) == -np.sign(proj[:-1]))  # flips every step
    assert abs(proj[-1]) > 10 * abs(proj[0])


@pytest.mark.parametrize("method", ["gd", "heavy_ball", "nesterov", "adam"])
def test_spectral_radius_matches_simulated_growth(method):
    rng = np.random.default_rng(11)
    h = rng.uniform(0.05, 6.0, 12)
    b = 0.0 if method == "gd" else rng.uniform(0.0, 0.9, 12)
    q = Quadratic([[1.0]])
    measured = quadratic.growth_rate(q, method, h, b=b, steps=3000)
    assert np.allclose(measured, quadratic.spectral_radius(method, h, b), rtol=2e-3)


def test_iteration_matrix_roots_equal_characteristic_roots():
    h, b = np.array([0.3, 2.5, 3.9]), np.array([0.2, 0.5, 0.95])
    for method in ("heavy_ball", "nesterov", "adam"):
        M = quadratic.iteration_matrix(method, h, b)
        coeffs = quadratic.characteristic_coefficients(method, h, b)
        for i in range(3):
            assert np.allclose(np.sort_complex(np.linalg.eigvals(M[i])), np.sort_complex(np.roots(coeffs[i])))


@pytest.mark.parametrize("method", ["heavy_ball", "nesterov"])
def test_stable_step_size(method):
    q = Quadratic.from_spectrum([8.0, 1.0])
    eta = quadratic.stable_step_size(q, method, 0.9)
    assert quadratic.spectral_radius(method, eta * 8.0 * (1 - 1e-9), 0.9) < 1 < quadratic.spectral_radius(
        method, eta * 8.0 * (1 + 1e-9), 0.9)


# -- bad input --------------------------------------------------------------------------
def test_non_symmetric_matrix():
    with pytest.raises(ValueError, match="A must be symmetric"):
        Quadratic([[1.0, 2.0], [0.0, 1.0]])


def test_negative_eigenvalues_only_when_allowed():
    with pytest.raises(ValueError, match="positive semi-definite"):
        Quadratic.from_spectrum([1.0, -0.5])
    assert Quadratic.from_spectrum([1.0, -0.5], psd=False).eigenvalues[-1] == pytest.approx(-0.5)


@pytest.mark.parametrize("A", [[1.0, 2.0], [[1.0, math.nan], [math.nan, 1.0]], np.ones((2, 3))])
def test_bad_matrices(A):
    with pytest.raises(ValueError, match="A must"):
        Quadratic(A)


@pytest.mark.parametrize("eta", [0.0, -0.1, math.nan, math.inf, [0.1, -0.1]])
def test_bad_eta(eta):
    q = Quadratic.from_spectrum([1.0, 0.5])
    with pytest.raises(ValueError, match="eta must be"):
        quadratic.run(q, "gd", eta, [1.0, 1.0], steps=3)


@pytest.mark.parametrize("b", [-0.1, 1.0, 2.0, math.nan])
def test_bad_momentum(b):
    q = Quadratic.from_spectrum([1.0, 0.5])
    with pytest.raises(ValueError, match=r"b must lie in \[0, 1\)"):
        quadratic.run(q, "heavy_ball", 0.1, [1.0, 1.0], steps=3, b=b)
    with pytest.raises(ValueError, match=r"b must lie in \[0, 1\)"):
        quadratic.spectral_radius("nesterov", 1.0, b)


def test_other_bad_input():
    q = Quadratic.from_spectrum([1.0, 0.5])
    with pytest.raises(ValueError, match="method must be one of"):
        quadratic.run(q, "sgd", 0.1, [1.0, 1.0], steps=3)
    with pytest.raises(ValueError, match="theta0"):
        quadratic.run(q, "gd", 0.1, [1.0, 1.0, 1.0], steps=3)
    with pytest.raises(ValueError, match="precond is only used by method='adam'"):
        quadratic.run(q, "gd", 0.1, [1.0, 1.0], steps=3, precond=[1.0, 1.0])
    with pytest.raises(ValueError, match="precond must be"):
        quadratic.run(q, "adam", 0.1, [1.0, 1.0], steps=3, precond=[1.0, -1.0])
    with pytest.raises(ValueError, match="eigenvalues must be"):
        Quadratic.from_spectrum([])


def test_fastest_step_size_minimises_the_slowest_factor():
    q = Quadratic.from_spectrum([10.0, 3.0, 1.0], seed=3)
    eta_star, rate = quadratic.fastest_step_size(q)
    assert eta_star == pytest.approx(2 / 11) and rate == pytest.approx(9 / 11)
    etas = np.linspace(1e-4, 0.2, 20001)                        # brute force over every stable eta
    slowest = np.max(np.abs(1 - np.outer(etas, q.eigenvalues)), axis=1)
    assert etas[np.argmin(slowest)] == pytest.approx(eta_star, abs=2e-5)
    assert slowest.min() == pytest.approx(rate, abs=1e-4)
    run = quadratic.run(q, "gd", eta_star, [1.0, -2.0, 0.5], steps=200)   # the error shrinks by rate per step
    err = np.linalg.norm(run.theta, axis=-1)
    assert err[-1] / err[-2] == pytest.approx(rate, rel=1e-6)
    with pytest.raises(ValueError, match="positive definite"):
        quadratic.fastest_step_size(Quadratic.from_spectrum([1.0, 0.0]))


def test_fastest_heavy_ball_is_polyaks_tuning_and_beats_a_grid_search():
    q = Quadratic.from_spectrum([10.0, 3.0, 1.0], seed=3)
    eta, b, rate = quadratic.fastest_heavy_ball(q)
    root = np.sqrt(10.0)
    assert rate == pytest.approx((root - 1) / (root + 1)) and b == pytest.approx(rate**2)
    assert eta == pytest.approx(4 / (root + 1) ** 2)
    # every eigen-direction contracts by exactly the rate there (up to the double roots' round-off)
    radii = quadratic.spectral_radius("heavy_ball", eta * q.eigenvalues, b)
    assert np.allclose(radii, rate, rtol=1e-6)
    # no (eta, b) on a grid does better: the worst direction's radius is never below the rate
    E, B = np.meshgrid(np.linspace(0.01, 0.4, 157), np.linspace(0.0, 0.95, 191))
    worst = np.max([quadratic.spectral_radius("heavy_ball", E * lam, B) for lam in q.eigenvalues], axis=0)
    assert worst.min() >= rate * (1 - 1e-6) and worst.min() == pytest.approx(rate, rel=0.02)
    assert rate < quadratic.fastest_step_size(q)[1]                       # faster than GD at its best
    run = quadratic.run(q, "heavy_ball", eta, [1.0, -2.0, 0.5], steps=400, b=b)
    err = np.linalg.norm(run.theta, axis=-1)
    assert (err[-1] / err[-101]) ** (1 / 100) == pytest.approx(rate, rel=0.01)   # double roots: k rate^k
    with pytest.raises(ValueError, match="positive definite"):
        quadratic.fastest_heavy_ball(Quadratic.from_spectrum([1.0, 0.0]))


def test_complex_band_is_where_heavy_balls_roots_are_complex():
    for b in (0.1, 0.5, 0.9):
        lo, hi = quadratic.complex_band(b)
        for h, complex_expected in ((lo * 0.999, False), (lo * 1.001, True), (hi * 0.999, True), (hi * 1.001, False)):
            roots = np.roots(quadratic.characteristic_coefficients("heavy_ball", h, b))
            assert (abs(roots[0].imag) > 1e-12) == complex_expected
        inside = np.linspace(lo, hi, 7)[1:-1]
        assert np.allclose(quadratic.spectral_radius("heavy_ball", inside, b), np.sqrt(b))
    lo, hi = quadratic.complex_band(np.array([0.0, 0.25]))
    assert np.allclose(lo, [1.0, 0.25]) and np.allclose(hi, [1.0, 2.25])
    with pytest.raises(ValueError, match=r"b must lie in \[0, 1\)"):
        quadratic.complex_band(1.0)
