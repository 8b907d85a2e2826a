"""The minimalist model (Yoo, Song & Yun 2025): closed-form gradient and Hessian against
autograd, the sympy-derived sharpness of balanced minima against numeric eigenvalues at
minima that gradient descent finds, and input validation."""

import numpy as np
import pytest
import torch

from eosteach import minimalist as mm


def _autograd(X, y, u, v):
    """Gradient and dense Hessian of (1/2N)||X u prod(v) - y||^2 by torch autograd (float64)."""
    Xt, yt = torch.tensor(X), torch.tensor(y)
    d = X.shape[1]

    def loss(theta):
        return 0.5 * ((Xt @ theta[:d]) * torch.prod(theta[d:]) - yt).pow(2).mean()

    theta = torch.tensor(mm.flatten(u, v), requires_grad=True)
    grad = torch.autograd.grad(loss(theta), theta)[0].numpy()
    hess = torch.autograd.functional.hessian(loss, theta.detach()).numpy()
    return grad, hess


def _aligned_data(rng, n=6, d=9, target=2.0):
    """X with known singular values and y along its top left singular vector."""
    U, _ = np.linalg.qr(rng.standard_normal((n, n)))
    V, _ = np.linalg.qr(rng.standard_normal((d, n)))
    s = np.linspace(3.0, 0.8, n)
    return (U * s) @ V.T, target * U[:, 0]


@pytest.mark.parametrize("depth", [2, 3, 4, 5])
def test_gradient_and_hessian_match_autograd_away_from_minima(depth):
    rng = np.random.default_rng(depth)
    X, y = rng.standard_normal((7, 5)), rng.standard_normal(7)
    u, v = rng.standard_normal(5), rng.standard_normal(depth - 1)
    grad, hess = _autograd(X, y, u, v)
    gu, gv = mm.gradient(X, y, u, v)
    np.testing.assert_allclose(np.concatenate((gu, gv)), grad, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(mm.hessian(X, y, u, v), hess, rtol=1e-11, atol=1e-11)
    assert mm.loss(X, y, u, v) == pytest.approx(0.5 * np.mean((X @ u * np.prod(v) - y) ** 2))


def test_hessian_handles_a_zero_weight_without_dividing():
    rng = np.random.default_rng(1)
    X, y, u = rng.standard_normal((4, 3)), rng.standard_normal(4), rng.standard_normal(3)
    v = np.array([0.0, 1.3, -0.7])
    _, hess = _autograd(X, y, u, v)
    np.testing.assert_allclose(mm.hessian(X, y, u, v), hess, atol=1e-12)


def test_row_space_reduction_keeps_the_spectrum_when_d_exceeds_n():
    rng = np.random.default_rng(2)
    X, y = rng.standard_normal((6, 20)), rng.standard_normal(6)
    u, v = rng.standard_normal(20), rng.standard_normal(2)
    dense = np.sort(np.linalg.eigvalsh(mm.hessian(X, y, u, v)))[::-1]
    np.testing.assert_allclose(mm.sharpness(X, y, u, v, k=3), dense[:3], rtol=1e-10)
    assert mm.sharpness(X, y, u, v, reduce=False) == pytest.approx(dense[0], rel=1e-12)


def test_difficulty_is_the_squared_norm_of_the_pseudo_inverse_solution():
    rng = np.random.default_rng(3)
    X, y = rng.standard_normal((5, 12)), rng.choice([-1.0, 1.0], 5)
    w = np.linalg.pinv(X) @ y
    assert mm.difficulty(X, y) == pytest.approx(w @ w, rel=1e-10)
    assert mm.can_interpolate(X, y)


def test_balanced_predictions_from_the_gram_matrix_match_the_direct_functions():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((7, 12)) + 0.6 * rng.standard_normal(12)
    y = rng.choice([-1.0, 1.0], 7)
    got = mm.balanced_predictions(X, y, (2, 3, 4))
    assert got["Q"] == pytest.approx(mm.difficulty(X, y), rel=1e-10)
    assert got["s1sq_N"] == pytest.approx(mm.top_singular_value(X) ** 2 / 7, rel=1e-10)
    for D in (2, 3, 4):
        assert got["S_star"][D] == pytest.approx(mm.balanced_sharpness(X, y, D), rel=1e-10)
        u, v = mm.balanced_minimum(X, y, D)  # independent: the dense Hessian at the minimum
        assert got["S_star"][D] == pytest.approx(np.linalg.eigvalsh(mm.hessian(X, y, u, v))[-1], rel=1e-8)
    with pytest.raises(ValueError, match="positive definite"):
        mm.balanced_predictions(np.ones((3, 5)), np.ones(3))
    with pytest.raises(ValueError, match="depth"):
        mm.balanced_predictions(X, y, (1,))
    with pytest.raises(ValueError, match="depths"):
        mm.balanced_predictions(X, y, ())


def test_sympy_derivation_identities_all_simplify_to_zero():
    result = mm.derive_balanced_sharpness()
    assert result["checks"] and all(value == 0 for value in result["checks"].values())
    sym = result["symbols"]
    Q, D = 2.7, 3
    # the balance scale solves a^D = sqrt(Q)
    assert float(result["a"].subs({sym["Q"]: Q, sym["D"]: D})) ** D == pytest.approx(np.sqrt(Q))


@pytest.mark.parametrize("depth", [2, 3, 4])
def test_formula_equals_dense_eigenvalue_at_the_constructed_balanced_minimum(depth):
    rng = np.random.default_rng(10 + depth)
    X, y = _aligned_data(rng)
    u, v = mm.balanced_minimum(X, y, depth)
    assert mm.loss(X, y, u, v) < 1e-25
    assert np.allclose(u @ u, v ** 2)  # balanced
    top = np.linalg.eigvalsh(mm.hessian(X, y, u, v))[-1]
    predicted = mm.sharpness_formula(mm.difficulty(X, y), depth, mm.top_singular_value(X), X.shape[0])
    assert top == pytest.approx(predicted, rel=1e-10)


@pytest.mark.parametrize("depth", [2, 3, 4])
def test_symbolic_sharpness_matches_minima_found_by_gd(depth):
    """GD from a small balanced start converges to the balanced minimum, whose sharpness is
    the sympy formula (aligned data) or the exact Gram eigenvalue within the bounds (general).
    A small step keeps GD close to gradient flow, which conserves the balance exactly; the
    residual mismatch is O(eta) (GD drifts towards slightly flatter minima)."""
    rng = np.random.default_rng(20 + depth)
    X, y = _aligned_data(rng)
    predicted = float(mm.sharpness_formula(mm.difficulty(X, y), depth, mm.top_singular_value(X), X.shape[0]))
    u0, v0 = mm.init(X, depth, scale=0.2, seed=depth)
    run = mm.gd(X, y, u0, v0, eta=0.05 / predicted, steps=100_000, loss_goal=1e-14)
    assert run.status == "goal_reached"
    numeric = np.linalg.eigvalsh(mm.hessian(X, y, run.u, run.v))[-1]
    assert numeric == pytest.approx(predicted, rel=1e-3)
    assert run.final_sharpness == pytest.approx(numeric, rel=1e-9)

    # general data: y not aligned with any singular vector (labels +-1, d > N)
    X = rng.standard_normal((8, 15)) + 0.8 * rng.standard_normal(15)
    y = rng.choice([-1.0, 1.0], 8)
    exact = mm.balanced_sharpness(X, y, depth)
    lower, upper = mm.sharpness_bounds(mm.difficulty(X, y), depth, mm.top_singular_value(X), 8)
    assert lower <= exact * (1 + 1e-12) and exact <= upper * (1 + 1e-12)
    assert upper < mm.sharpness_formula(mm.difficulty(X, y), depth, mm.top_singular_value(X), 8)
    u0, v0 = mm.init(X, depth, scale=0.2, seed=depth)
    run = mm.gd(X, y, u0, v0, eta=0.05 / exact, steps=100_000, loss_goal=1e-14)
    assert run.status == "goal_reached"
    numeric = np.linalg.eigvalsh(mm.hessian(X, y, run.u, run.v))[-1]
    assert numeric == pytest.approx(exact, rel=1e-3)
    assert np.max(np.abs(run.balance)) < 2e-3 * run.v[0] ** 2  # GD stays nearly balanced


@pytest.mark.parametrize("depth", [2, 3, 4])
def test_interpolating_minimum_with_gds_own_imbalance_is_where_gd_ends(depth):
    """Zero imbalance gives the balanced minimum; GD's own final imbalance gives the minimum GD
    converges to, which is flatter than S* (a large step unbalances it more)."""
    rng = np.random.default_rng(30 + depth)
    X = rng.standard_normal((8, 15)) + 0.8 * rng.standard_normal(15)
    y = rng.choice([-1.0, 1.0], 8)
    u_b, v_b = mm.balanced_minimum(X, y, depth)
    u0, v0 = mm.interpolating_minimum(X, y, np.zeros(depth - 1))
    np.testing.assert_allclose(u0, u_b, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(v0, v_b, rtol=1e-12)

    S_star = mm.balanced_sharpness(X, y, depth)
    run = mm.gd(X, y, *mm.init(X, depth, scale=0.05, seed=1), eta=1.0 / S_star, steps=200_000, loss_goal=1e-20)
    assert run.status == "goal_reached"
    u, v = mm.interpolating_minimum(X, y, run.balance)
    assert mm.loss(X, y, u, v) < 1e-25 and np.all(v > 0)
    np.testing.assert_allclose(u @ u - v ** 2, run.balance, rtol=1e-9, atol=1e-12)
    assert mm.sharpness(X, y, u, v) == pytest.approx(run.final_sharpness, rel=1e-6)
    assert run.final_sharpness < S_star  # the finite-step drift of the balance flattens the minimum

    # a mixed-sign imbalance: some v_i larger than ||u||, some smaller
    c = np.linspace(-0.2, 0.1, depth - 1)
    u, v = mm.interpolating_minimum(X, y, c)
    assert mm.loss(X, y, u, v) < 1e-25
    np.testing.assert_allclose(u @ u - v ** 2, c, atol=1e-12)


def test_gd_in_row_space_coordinates_is_plain_gd():
    rng = np.random.default_rng(4)
    X, y = rng.standard_normal((5, 11)), rng.standard_normal(5)
    u, v = rng.standard_normal(11) * 0.3, np.array([0.4, -0.5])
    run = mm.gd(X, y, u, v, eta=0.05, steps=30)
    for _ in range(30):  # the same iteration, written independently, in the full space
        gu, gv = mm.gradient(X, y, u, v)
        u, v = u - 0.05 * gu, v - 0.05 * gv
    np.testing.assert_allclose(run.u, u, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(run.v, v, rtol=1e-9, atol=1e-12)
    assert run.status == "finished" and len(run.loss) == 31


def test_large_step_diverges_cleanly_and_keeps_the_record():
    rng = np.random.default_rng(5)
    X, y = _aligned_data(rng)
    u0, v0 = mm.init(X, 2, scale=1.0, seed=0)
    run = mm.gd(X, y, u0, v0, eta=50.0, steps=1000, eig_every=10)
    assert run.status == "diverged"
    assert np.all(np.isfinite(run.sharpness)) and len(run.loss) < 1000


def test_edge_of_stability_in_the_minimalist_model():
    """When S* > 2/eta, GD cannot settle at the balanced minimum: its sharpness ends near 2/eta."""
    rng = np.random.default_rng(6)
    X, y = _aligned_data(rng, target=4.0)
    S_star = mm.balanced_sharpness(X, y, 2)
    eta = 1.6 / S_star  # 2/eta = 1.25 S*
    u0, v0 = mm.init(X, 2, scale=0.1, seed=0)
    run = mm.gd(X, y, u0, v0, eta=eta, steps=20_000, eig_every=100, loss_goal=1e-12)
    assert run.final_loss < 1e-6
    assert run.final_sharpness < 2 / eta < S_star * 1.3
    eta = 2.4 / S_star  # 2/eta = 0.83 S*: the balanced minimum is unstable
    run = mm.gd(X, y, u0, v0, eta=eta, steps=20_000, eig_every=100, loss_goal=1e-12)
    assert run.status != "diverged"
    assert run.final_sharpness < 2 / eta * 1.05 < S_star


def test_cifar10_subset_minimum_matches_the_exact_prediction(cifar_root):
    from eosteach import data

    X, y = mm.binary_cifar10(50, root=cifar_root, download=False)
    ds = data.load_cifar10(50, classes=2, balanced=True, loss="ce", root=cifar_root, download=False)
    assert X.shape == (50, 3072) and np.array_equal(y, np.where(ds.y_train.numpy() == 0, 1.0, -1.0))
    assert np.sum(y == 1) == 25 and np.allclose(X, ds.x_train.double().numpy())
    Z, _ = mm.row_space(X)
    exact = mm.balanced_sharpness(Z, y, 2)
    assert exact == pytest.approx(mm.balanced_sharpness(X, y, 2), rel=1e-9)
    u0, v0 = mm.init(Z, 2, scale=0.05, seed=0)
    run = mm.gd(Z, y, u0, v0, eta=1.0 / exact, steps=5000, loss_goal=1e-8)
    assert run.status == "goal_reached"
    assert run.final_sharpness == pytest.approx(exact, rel=5e-3)
    lower, upper = mm.sharpness_bounds(mm.difficulty(X, y), 2, mm.top_singular_value(X), 50)
    assert lower <= exact <= upper


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: mm.loss(np.ones((3, 2)), np.ones(4), np.ones(2), [1.0]), r"y must have shape \(3,\)"),
        (lambda: mm.loss(np.ones(3), np.ones(3), np.ones(2), [1.0]), "X must be a 2-d array"),
        (lambda: mm.loss(np.full((2, 2), np.nan), np.ones(2), np.ones(2), [1.0]), "X must contain only finite"),
        (lambda: mm.hessian(np.ones((3, 2)), np.ones(3), np.ones(3), [1.0]), r"u must have shape \(2,\)"),
        (lambda: mm.gradient(np.ones((3, 2)), np.ones(3), np.ones(2), []), "v must be a 1-d array"),
        (lambda: mm.balanced_minimum(np.eye(3), np.ones(3), 1), "depth must be an integer >= 2"),
        (lambda: mm.balanced_minimum(np.eye(3), np.zeros(3), 2), "y must not be all zeros"),
        (lambda: mm.balanced_minimum(np.ones((3, 1)), np.arange(3.0), 2), "has no solution"),
        (lambda: mm.interpolating_minimum(np.eye(3), np.ones(3), [np.nan]), "balance must hold D - 1 >= 1 finite"),
        (lambda: mm.interpolating_minimum(np.eye(3), np.ones(3), []), "balance must hold D - 1 >= 1 finite"),
        (lambda: mm.interpolating_minimum(np.eye(3), np.zeros(3), [0.0]), "y must not be all zeros"),
        (lambda: mm.gd(np.eye(2), np.ones(2), np.ones(2), [1.0], eta=0.0, steps=5), "eta must be a finite number > 0"),
        (lambda: mm.gd(np.eye(2), np.ones(2), np.ones(2), [1.0], eta=0.1, steps=-1), "steps must be an integer >= 0"),
        (lambda: mm.init(np.eye(2), 3, scale=-1.0), "scale must be a finite number > 0"),
        (lambda: mm.sharpness_bounds(1.0, 2, 1.0, 4, mean_y2=0.0), "mean_y2 must be a finite number > 0"),
        (lambda: mm.binary_cifar10(10, classes=("cat",)), "classes must name exactly two"),
    ],
)
def test_bad_input_raises_value_error_naming_the_parameter(call, match):
    with pytest.raises(ValueError, match=match):
        call()
