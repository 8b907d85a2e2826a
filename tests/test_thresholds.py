"""Closed-form thresholds against the divergence boundary found on simulated runs.

The boundary is located by bisection (``quadratic.bisect_threshold``) on the measured
growth rate of the optimisers themselves, on a random 4-dimensional quadratic: an
independent computation from the formulas in ``eosteach.thresholds``.
"""

import math

import numpy as np
import pytest

from eosteach import quadratic, thresholds

MOMENTA = [0.0, 0.5, 0.9, 0.99]


@pytest.fixture(scope="module")
def quad():
    return quadratic.Quadratic.from_spectrum([3.0, 2.0, 1.0, 0.5], seed=1)


@pytest.mark.parametrize("method", ["gd", "heavy_ball", "nesterov", "adam"])
def test_bisection_on_simulated_runs_matches_closed_form(quad, method):
    precond = np.array([1.0, 2.0, 0.5, 1.5]) if method == "adam" else None
    bs = np.array([0.0]) if method == "gd" else np.array(MOMENTA)
    eta_star = quadratic.bisect_threshold(quad, method, bs, precond=precond, rtol=2e-7)
    sharp = quadratic.preconditioned_sharpness(quad, precond) if precond is not None else quad.sharpness
    closed = np.array([thresholds.threshold(method, 1.0, float(b)) for b in bs])
    rel = np.abs(eta_star * sharp / closed - 1.0)
    print(f"{method}: max relative error {rel.max():.2e} over b={bs.tolist()}")
    assert rel.max() < 1e-6


@pytest.mark.parametrize("method", ["gd", "heavy_ball", "nesterov", "adam"])
@pytest.mark.parametrize("b", MOMENTA)
def test_spectral_radius_crosses_one_at_the_threshold(method, b):
    h_star = thresholds.threshold(method, 1.0, b)
    below, above = quadratic.spectral_radius(method, [h_star * (1 - 1e-6), h_star * (1 + 1e-6)], b)
    assert below < 1.0 < above
    # Everything in (0, h*) is stable: a grid of h well inside.
    inside = quadratic.spectral_radius(method, np.linspace(1e-3, 1 - 1e-3, 400) * h_star, b)
    assert np.all(inside < 1.0)


def test_known_values():
    assert thresholds.gd(0.01) == pytest.approx(200.0)
    assert thresholds.heavy_ball(0.01, 0.9) == pytest.approx(380.0)
    assert thresholds.nesterov(0.01, 0.9) == pytest.approx(380.0 / 2.8)
    assert thresholds.adam(1.0, 0.9) == pytest.approx(38.0)
    # b = 0: every momentum method is GD.
    for method in ("heavy_ball", "nesterov", "adam"):
        assert thresholds.threshold(method, 0.1, 0.0) == pytest.approx(20.0)


@pytest.mark.parametrize("eta", [0.0, -1.0, math.nan, math.inf, "0.1", None])
def test_bad_eta(eta):
    with pytest.raises(ValueError, match="eta"):
        thresholds.threshold("heavy_ball", eta, 0.5)


@pytest.mark.parametrize("b", [-0.1, 1.0, 1.5, math.nan])
def test_bad_momentum(b):
    with pytest.raises(ValueError, match=r"b.*\[0, 1\)"):
        thresholds.heavy_ball(0.1, b)
    with pytest.raises(ValueError, match=r"b1.*\[0, 1\)"):
        thresholds.adam(0.1, b)


def test_bad_method():
    with pytest.raises(ValueError, match="method must be one of"):
        thresholds.threshold("sgd", 0.1)


@pytest.mark.parametrize("method", ["gd", "heavy_ball", "nesterov", "adam"])
def test_radius_boundary_is_the_closed_form_to_round_off(method):
    bs = np.linspace(0.0, 0.99, 40)
    edge = quadratic.radius_boundary(method, bs)
    closed = np.array([thresholds.threshold(method, 1.0, float(b)) for b in bs])
    assert edge.shape == bs.shape
    assert np.max(np.abs(edge / closed - 1)) < 1e-13
    assert np.all(quadratic.spectral_radius(method, edge * (1 - 1e-9), bs) < 1.0)


def test_radius_boundary_bad_input():
    with pytest.raises(ValueError, match=r"b must lie in \[0, 1\)"):
        quadratic.radius_boundary("heavy_ball", 1.0)
    with pytest.raises(ValueError, match="method must be one of"):
        quadratic.radius_boundary("sgd", 0.5)
    with pytest.raises(ValueError, match="h_max"):
        quadratic.radius_boundary("adam", 0.99, h_max=10.0)
