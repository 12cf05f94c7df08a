"""The optimum reference (core/learning/optimum.py) on cases with a known answer."""

import numpy as np
import pytest

from hybrid_mpc_ros.core.learning.optimum import exact_gradient, optimise
from hybrid_mpc_ros.core.mpc import theta as th
from landscape import Landscape

N = th.N_THETA


def test_it_finds_the_known_minimum_of_the_landscape_from_episodes():
    land = Landscape()
    objective = exact_gradient(land, land.cost, land.jacobians)
    theta0 = np.full(N, 0.5)
    value, grad = objective(theta0)
    assert value == pytest.approx(land.value(theta0), rel=1e-12)
    np.testing.assert_allclose(grad, 2 * land.weights ** 2 * (theta0 - land.optimum),
                               rtol=1e-12)
    result = optimise(objective, theta0, th.default_box(theta0, 10.0, 1.0))
    np.testing.assert_allclose(result.theta, land.optimum, atol=1e-6)
    assert result.initial_cost == pytest.approx(land.value(theta0))
    assert result.cost == pytest.approx(land.value(result.theta)) and result.cost < 1e-10
    assert result.evaluations == len(result.evaluated) <= land.calls
    assert result.costs == sorted(result.costs, reverse=True)     # best so far


def test_a_box_that_excludes_the_minimum_gives_the_minimum_on_its_face():
    """Separable quadratic: the constrained minimum is the clipped unconstrained one."""
    land = Landscape(seed=3)
    theta0 = np.zeros(N)
    box = th.ThetaBox(np.full(N, -0.3), np.full(N, 0.3))
    scale = np.linspace(0.5, 2.0, N)                  # scaled variables: same answer
    result = optimise(exact_gradient(land, land.cost, land.jacobians), theta0, box, scale,
                      tolerance=1e-12)
    np.testing.assert_allclose(result.theta, np.clip(land.optimum, -0.3, 0.3), atol=1e-6)
    assert box.contains(result.theta)


def test_it_stops_when_the_relative_improvement_over_the_window_is_small():
    """C = 1000 + |theta - 1|^2 / k-ish slow tail: stops on the window rule, not the cap."""
    calls = []

    def objective(theta):
        calls.append(theta.copy())
        x = theta - 1.0
        return 1000.0 + float(np.sum(np.abs(x) ** 1.5)), 1.5 * np.sign(x) * np.abs(x) ** 0.5

    theta0 = np.zeros(4)
    box = th.ThetaBox(np.full(4, -5.0), np.full(4, 5.0))
    result = optimise(objective, theta0, box, window=5, tolerance=1e-4, max_iterations=500)
    assert result.cost < 1000.1 and result.iterations < 500
    before, now = result.costs[-6], result.costs[-1]
    assert 'converged' in result.reason or 'no progress' in result.reason
    if 'converged' in result.reason:
        assert before - now <= 1e-4 * now
    capped = optimise(objective, theta0, box, window=5, tolerance=0.0, max_iterations=3)
    assert capped.iterations == 3 and 'cap 3' in capped.reason


def test_bad_scales_are_refused():
    with pytest.raises(ValueError):
        optimise(lambda t: (0.0, t), np.zeros(3), th.ThetaBox(-np.ones(3), np.ones(3)),
                 np.array([1.0, 0.0, 1.0]))
