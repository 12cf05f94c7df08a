"""Closed-loop cost, model-based and zeroth-order gradients, schedules (no ROS)."""

from dataclasses import replace

import numpy as np
import pytest
from scenario_setup import scenario, tuning_setup

from hybrid_mpc_ros.core.mpc import theta as th
from hybrid_mpc_ros.core.learning.episode import rollout
from hybrid_mpc_ros.core.learning.gradients import (
    averaged_zeroth_order_gradient, hybrid_direction, model_based_gradient, sample_unit_sphere,
    zeroth_order_directions, zeroth_order_gradient)
from hybrid_mpc_ros.core.learning.schedules import check_conditions, eta_schedule, Schedule

STEPS = 40


@pytest.fixture(scope='module')
def setup():
    return tuning_setup()


def test_cost_parts_on_a_hand_made_trajectory():
    """The arXiv scenario's weights: Qc, Rc, Pc diagonals, penalty 300, box of the MPC."""
    cost = replace(scenario().cost(), x_ref=np.zeros(12), u_ref=np.zeros(4))
    x = np.zeros((3, 12))
    x[0, 0] = 1.0                       # stage: Qc[0] = 1
    x[2, 6] = 1.0                       # terminal roll: Pc[6] = 1000, and 1 - pi/4 outside X
    u = np.ones((2, 4))                 # Rc = 0.01 each
    tracking, violation = cost.parts(x, u)
    assert tracking == pytest.approx(1.0 + 8 * 0.01 + 1000.0)
    assert violation == pytest.approx(300.0 * (1.0 - np.pi / 4))


def test_matrix_terminal_weight_and_its_gradient():
    """The published scenario's terminal weight is the DARE solution, a full matrix."""
    published = scenario('l4dc2026')
    cost = published.cost()
    assert cost.pc.shape == (12, 12) and np.allclose(cost.pc, cost.pc.T)
    assert cost.violation_weight == 1e4
    rng = np.random.default_rng(4)
    x = cost.x_ref + 0.1 * rng.normal(size=(4, 12))
    u = cost.u_ref + rng.normal(size=(3, 4))
    dx = x[-1] - cost.x_ref
    stage = np.sum((x[:-1] - cost.x_ref) ** 2 * cost.qc) + np.sum((u - cost.u_ref) ** 2 * cost.rc)
    tracking, _ = cost.parts(x, u)
    assert tracking == pytest.approx(stage + dx @ cost.pc @ dx, rel=1e-12)
    gx, _ = cost.gradients(x, u)
    h = 1e-6
    for i in range(12):
        e = np.zeros_like(x)
        e[-1, i] = h
        numeric = (sum(cost.parts(x + e, u)) - sum(cost.parts(x - e, u))) / (2 * h)
        assert gx[-1, i] == pytest.approx(numeric, rel=1e-6, abs=1e-6)


def test_rollout_reruns_bit_for_bit(setup):
    _, policy, plant, _ = setup
    first = rollout(plant, policy, scenario().x0, STEPS)
    again = rollout(plant, policy, scenario().x0, STEPS)
    first.validate()
    assert np.array_equal(first.x, again.x) and np.array_equal(first.du_dtheta, again.du_dtheta)


@pytest.mark.slow
def test_model_based_gradient_with_the_exact_model_matches_finite_differences(setup):
    """g = f (the plant's own Jacobians): J_C is the exact gradient of C(theta)."""
    _, policy, plant, cost = setup
    theta0 = policy.theta.copy()
    x0 = scenario().x0
    record = rollout(plant, policy, x0, STEPS)
    assert record.failures == 0
    exact = model_based_gradient(record, cost, plant.jacobians)

    def closed_loop_cost(theta):
        policy.set_theta(theta)
        return cost(rollout(plant, policy, x0, STEPS, sensitivities=False))

    fd = np.empty(th.N_THETA)
    try:
        for i in range(th.N_THETA):
            h = 1e-5 * max(1.0, abs(theta0[i]))
            e = np.zeros(th.N_THETA)
            e[i] = h
            fd[i] = (closed_loop_cost(theta0 + e) - closed_loop_cost(theta0 - e)) / (2 * h)
    finally:
        policy.set_theta(theta0)
    rel = np.linalg.norm(exact - fd) / np.linalg.norm(fd)
    print(f'model-based gradient (exact model) vs central differences: rel err {rel:.2e}')
    assert rel < 1e-3


def test_nominal_model_gradient_is_close_but_not_exact(setup):
    model, policy, plant, cost = setup
    record = rollout(plant, policy, scenario().x0, STEPS)
    exact = model_based_gradient(record, cost, plant.jacobians)
    nominal = model_based_gradient(record, cost, model.jacobians)
    rel = np.linalg.norm(nominal - exact) / np.linalg.norm(exact)
    assert 1e-4 < rel < 0.5        # model error shows, but the direction is informative
    assert nominal @ exact > 0


def _random_quadratic(rng, n):
    """A convex quadratic C on R^n drawn from ``rng``, a point theta and grad C(theta)."""
    root = rng.normal(size=(n, n)) / np.sqrt(n)
    hess = root @ root.T + np.eye(n)
    lin = rng.normal(size=n)

    def quadratic(theta):
        return 0.5 * theta @ hess @ theta + lin @ theta

    theta = rng.normal(size=n)
    return quadratic, theta, hess @ theta + lin


def test_zeroth_order_estimate_is_unbiased_on_a_quadratic():
    """E[G_zo] = grad C for quadratic C (sphere smoothing leaves its gradient unchanged).

    Each component of the estimator has standard deviation ~|grad| (n = 94), so over M
    draws the mean's error is ~|grad|/sqrt(M); we allow 5 sample standard errors per
    component (a false failure has probability ~6e-5 over all 94 components).
    """
    rng = np.random.default_rng(5)
    n = th.N_THETA
    quadratic, theta, grad = _random_quadratic(rng, n)
    delta, draws = 1e-2, 20000
    base = quadratic(theta)
    samples = np.empty((draws, n))
    for i in range(draws):
        v = sample_unit_sphere(rng, n)
        samples[i] = zeroth_order_gradient(quadratic(theta + delta * v), base, v, delta)
    mean = samples.mean(axis=0)
    stderr = samples.std(axis=0, ddof=1) / np.sqrt(draws)
    assert np.all(np.abs(mean - grad) < 5 * stderr)
    assert np.linalg.norm(mean - grad) / np.linalg.norm(grad) < 0.1
    # a biased estimator (here: scaled by 1.1) is caught by the same tolerance
    assert not np.all(np.abs(1.1 * mean - grad) < 5 * stderr)


def test_one_direction_draws_and_estimates_what_the_single_direction_estimate_does():
    first, second = np.random.default_rng(3), np.random.default_rng(3)
    directions = zeroth_order_directions(first, 94, 1)
    v = sample_unit_sphere(second, 94)
    assert np.array_equal(directions, v[None, :])
    assert first.bit_generator.state == second.bit_generator.state
    assert np.array_equal(averaged_zeroth_order_gradient([3.7], 1.2, directions, 1e-3),
                          zeroth_order_gradient(3.7, 1.2, v, 1e-3))


def test_antithetic_directions_come_in_pairs_and_make_central_differences():
    rng = np.random.default_rng(4)
    directions = zeroth_order_directions(rng, 6, 4, antithetic=True)
    assert np.array_equal(directions[1], -directions[0])
    assert np.array_equal(directions[3], -directions[2])
    assert not np.allclose(directions[0], directions[2])

    def cubic(theta):
        return float(np.sum(theta ** 3) + theta[0] * theta[1])

    theta, delta, n = np.linspace(-1.0, 1.0, 6), 1e-3, 6
    costs = [cubic(theta + delta * v) for v in directions]
    estimate = averaged_zeroth_order_gradient(costs, cubic(theta), directions, delta)
    central = sum((n / (2 * delta)) * (cubic(theta + delta * v) - cubic(theta - delta * v)) * v
                  for v in directions[::2]) / 2
    np.testing.assert_allclose(estimate, central, rtol=1e-9, atol=1e-9)
    # the base cost cancels: any base value gives the same estimate
    np.testing.assert_allclose(averaged_zeroth_order_gradient(costs, 1e6, directions, delta),
                               estimate, rtol=1e-6, atol=1e-3)
    with pytest.raises(ValueError, match='even'):
        zeroth_order_directions(rng, 6, 3, antithetic=True)
    with pytest.raises(ValueError, match='perturbed costs'):
        averaged_zeroth_order_gradient(costs[:3], 0.0, directions, delta)


def test_averaging_m_directions_keeps_the_mean_and_divides_the_variance_by_m():
    """A quadratic (known gradient), base cost exact or noisy: M = 1, 4, and 4 antithetic.

    4000 estimates each, checked unbiased as the single-direction test does. With an exact
    base cost, M independent directions divide the total variance by M (within 15 %); an
    antithetic pair repeats its linear term, so M = 4 antithetic (two pairs) only halves
    it. With a noisy base cost (noise of standard deviation 0.05, 5 x delta |grad|) the
    forward differences carry that noise times n / delta and the pairs cancel it: the
    antithetic estimate is then the better one.
    """
    rng = np.random.default_rng(6)
    n = 20
    quadratic, theta, grad = _random_quadratic(rng, n)
    delta, draws = 1e-2, 4000
    variances = {}
    for noise in (0.0, 0.05):
        for count, antithetic in ((1, False), (4, False), (4, True)):
            samples = np.empty((draws, n))
            for i in range(draws):
                base = quadratic(theta) + noise * rng.standard_normal()
                directions = zeroth_order_directions(rng, n, count, antithetic)
                costs = [quadratic(theta + delta * v) for v in directions]
                samples[i] = averaged_zeroth_order_gradient(costs, base, directions, delta)
            stderr = samples.std(axis=0, ddof=1) / np.sqrt(draws)
            assert np.all(np.abs(samples.mean(axis=0) - grad) < 5 * stderr), \
                (noise, count, antithetic)
            variances[noise, count, antithetic] = samples.var(axis=0, ddof=1).sum()
    one = variances[0.0, 1, False]
    assert 0.85 / 4 < variances[0.0, 4, False] / one < 1.15 / 4
    assert 0.85 / 2 < variances[0.0, 4, True] / one < 1.15 / 2
    assert variances[0.05, 4, True] < 0.5 * variances[0.05, 4, False]
    assert variances[0.05, 4, True] / variances[0.0, 4, True] < 1.15


def test_unit_sphere_samples_are_unit_and_isotropic():
    rng = np.random.default_rng(0)
    vs = np.array([sample_unit_sphere(rng, 10) for _ in range(20000)])
    np.testing.assert_allclose(np.linalg.norm(vs, axis=1), 1.0)
    np.testing.assert_allclose(vs.T @ vs / len(vs), np.eye(10) / 10, atol=0.01)


def test_hybrid_direction_mixes_and_skips():
    g, j = np.ones(3), np.full(3, 3.0)
    np.testing.assert_allclose(hybrid_direction(g, j, 0.25), 0.75 * g + 0.25 * j)
    np.testing.assert_allclose(hybrid_direction(None, j, 1.0), j)
    np.testing.assert_allclose(hybrid_direction(g, None, 0.0), g)
    with pytest.raises(ValueError):
        hybrid_direction(g, j, 1.5)


def test_schedules_meet_the_convergence_conditions_where_they_should():
    alpha = scenario().tuning.alpha          # arXiv v1, read as 5e-5 (log k + 2)/(k+1)^0.75
    assert alpha(1) == pytest.approx(5e-5 * 2 / 2 ** 0.75)
    for gamma in (0.5, 0.75):
        assert all(check_conditions(alpha, eta_schedule(1, gamma)).values())
    # gamma = 0.25: alpha eta ~ log(k)/k, whose sum diverges (the boundary case)
    assert not check_conditions(alpha, eta_schedule(1, 0.25))['sum_alpha_eta_converges']
    # eta = 1 (pure model-based) never discards the model; eta = 0 trivially does
    assert not check_conditions(alpha, eta_schedule(1, constant=1.0))['sum_alpha_eta_converges']
    assert all(check_conditions(alpha, eta_schedule(1, constant=0.0)).values())
    # the spec's formula read literally does not let alpha decay
    literal = check_conditions(replace(alpha, kind='literal'), eta_schedule(1, 0.5))
    assert not literal['sum_alpha_sq_converges']
    constant = Schedule('constant', scale=1e-3, offset=0.0, power=0.0, first_k=1)
    assert not check_conditions(constant, eta_schedule(1, 0.5))['sum_alpha_sq_converges']


def test_published_schedules_count_k_from_zero():
    """alpha_k = 2e-4 log(k+2)/(k+1)^0.8, eta_k = 1/(k+1)^gamma; iteration 1 is k = 0."""
    config = scenario('l4dc2026').tuning_config(gamma=0.5)
    alpha, eta = config.alpha, config.eta()
    assert alpha(1) == pytest.approx(2e-4 * np.log(2.0))
    assert alpha(5) == pytest.approx(2e-4 * np.log(6.0) / 5.0 ** 0.8)
    assert eta(1) == 1.0 and eta(4) == pytest.approx(1.0 / 2.0)
    # the arXiv scenario keeps k = 1, 2, ...: iteration 1 has eta = 1/sqrt(2)
    assert scenario().tuning_config(gamma=0.5).eta()(1) == pytest.approx(2 ** -0.5)
    for gamma in (0.5, 0.75):
        assert all(check_conditions(alpha, eta_schedule(0, gamma)).values())
