"""The acados MPC policy and its sensitivities, against finite differences and quadprog."""

import dataclasses
from dataclasses import replace

from mpc_checks import assert_theta_is_runtime_data, compiled_solvers
import numpy as np
import pytest
from scenario_setup import scenario

from hybrid_mpc_ros.core.mpc import theta as th
from hybrid_mpc_ros.core.mpc.condensed_qp import CondensedQP, condense
from hybrid_mpc_ros.core.mpc.policy import finite_difference_sensitivities, SOFT_IDX
from hybrid_mpc_ros.core.model.nominal_model import linearised_model
from hybrid_mpc_ros.core.model.quadcopter import NU, NX
from hybrid_mpc_ros.core.mpc.reference_qp import solve_reference

N_POINTS = 50


@pytest.fixture(scope='module')
def policy():
    # the default scenario's MPC on the plant linearised at hover
    return scenario().policy(model=linearised_model(scenario().plant()))


def _random_point(rng, policy, theta0):
    spread = np.concatenate([np.full(3, 1.0), np.full(3, 0.6), np.full(3, 0.2), np.full(3, 0.15)])
    x = policy.x_ref + spread * rng.normal(size=NX)
    theta = theta0 * (1.0 + 0.3 * rng.normal(size=th.N_THETA))
    return x, theta


def _rel_err(analytic, numeric):
    return np.max(np.abs(analytic - numeric)) / max(np.max(np.abs(numeric)), 1e-12)


@pytest.mark.slow
def test_sensitivities_match_finite_differences_at_50_points(policy):
    rng = np.random.default_rng(2026)
    theta0 = policy.theta.copy()
    worst_x = worst_t = 0.0
    checked = with_constraints = 0
    for _ in range(4 * N_POINTS):
        x, theta = _random_point(rng, policy, theta0)
        policy.set_theta(theta)
        fd = finite_difference_sensitivities(policy, x)
        if not fd[2]:
            continue                 # too close to an active-set change for central differences
        assert policy.last.ok
        du_dx, du_dtheta = policy.sensitivities()
        worst_x = max(worst_x, _rel_err(du_dx, fd[0]))
        worst_t = max(worst_t, _rel_err(du_dtheta, fd[1]))
        with_constraints += any(policy.active_summary().values())
        checked += 1
        if checked == N_POINTS:
            break
    policy.set_theta(theta0)
    print(f'checked {checked} points ({with_constraints} with active constraints): '
          f'max rel err du/dx {worst_x:.2e}, du/dtheta {worst_t:.2e}')
    assert checked == N_POINTS
    assert with_constraints >= 5       # the active-set handling is really exercised
    assert worst_x < 1e-4 and worst_t < 1e-4


@pytest.mark.slow
def test_acados_agrees_with_an_independent_qp_solver(policy):
    rng = np.random.default_rng(11)
    theta0 = policy.theta.copy()
    worst = 0.0
    for _ in range(N_POINTS):
        x, theta = _random_point(rng, policy, theta0)
        policy.set_theta(theta)
        assert policy.solve(x).ok
        reference = solve_reference(policy.qp, x, policy.x_ref, policy.u_ref)
        worst = max(worst, np.max(np.abs(reference - policy.plan().reshape(-1))))
    policy.set_theta(theta0)
    print(f'max |u_acados - u_quadprog| = {worst:.2e} rad/s')
    assert worst < 1e-6


def test_weakly_active_bound_follows_the_documented_rule(policy):
    """An input exactly at its bound with a zero multiplier counts as active (held there)."""
    model = policy.model
    cfg = policy.config
    horizon = cfg.horizon

    def make_qp(u_ub0):
        qp = CondensedQP(*condense([model.A] * horizon, [model.B] * horizon,
                                   [model.c] * horizon),
                         NX, NU, np.array(SOFT_IDX), np.array(cfg.x_lb), np.array(cfg.x_ub),
                         np.full(NU, -1e4), np.full(NU, 1e4),
                         cfg.slack_quadratic, cfg.slack_linear)
        qp.u_ub[0] = u_ub0
        qp.set_theta(policy.theta)
        return qp

    x0 = policy.x_ref.copy()
    x0[0] += 0.5                           # displaced along x: rotor speeds differ
    free = solve_reference(make_qp(1e4), x0, policy.x_ref, policy.u_ref)
    qp = make_qp(free[0])                  # bound placed exactly at the unconstrained optimum
    u_stack = solve_reference(qp, x0, policy.x_ref, policy.u_ref)
    np.testing.assert_allclose(u_stack, free, atol=1e-8)
    active = qp.active_set(x0, u_stack, 1e-6, 1e-7)
    assert active.fixed_inputs[0]          # at the bound => held, whatever its multiplier
    du_dx, _ = qp.sensitivities(x0, u_stack, policy.x_ref, policy.u_ref, active)
    assert np.all(du_dx[0] == 0.0)
    # find a state direction that pushes u_0[0] up, into the bound, and one that pulls it off
    free_qp = make_qp(1e4)
    du_free, _ = free_qp.sensitivities(x0, free, policy.x_ref, policy.u_ref,
                                       free_qp.active_set(x0, free, 1e-6, 1e-7))
    direction = du_free[0] / np.linalg.norm(du_free[0])
    h = 1e-4

    def u0(x):
        return solve_reference(qp, x, policy.x_ref, policy.u_ref)[:NU]

    into = (u0(x0 + h * direction) - u0(x0)) / h        # stays on the bound
    off = (u0(x0) - u0(x0 - h * direction)) / h         # leaves the bound
    np.testing.assert_allclose(du_dx @ direction, into, atol=1e-5)
    assert np.max(np.abs(du_dx @ direction - off)) > 1e-3


def test_cached_solver_compiles_nothing_and_theta_is_runtime_data(policy):
    before = compiled_solvers()
    assert before                                   # the fixture's solver is compiled
    again = scenario().policy(model=policy.model)
    assert compiled_solvers() == before             # no library built or rebuilt
    assert_theta_is_runtime_data(again)


def test_bad_state_and_bad_theta_are_reported_not_used(policy):
    sol = policy.solve(np.full(NX, np.nan))
    assert not sol.ok and 'non-finite' in sol.message
    cfg = policy.config
    assert np.all(np.isfinite(sol.u)) and np.all((sol.u >= cfg.u_min) & (sol.u <= cfg.u_max))
    with pytest.raises(RuntimeError):
        policy.sensitivities()
    before = policy.theta.copy()
    bad = before.copy()
    bad[3] = np.inf
    with pytest.raises(ValueError, match=r'p_Q\[3\]'):
        policy.set_theta(bad)
    np.testing.assert_array_equal(policy.theta, before)


def test_solver_failure_is_a_status_not_a_garbage_input(policy):
    starved = scenario().policy(model=policy.model,
                                config=replace(policy.config, qp_iter_max=2))
    sol = starved.solve(policy.x_ref + np.concatenate([np.full(6, 1.0), np.zeros(6)]))
    assert not sol.ok and sol.status == 4 and 'HPIPM' in sol.message
    bounds = (starved.config.u_min, starved.config.u_max)
    np.testing.assert_array_equal(sol.u, np.clip(starved.u_ref, *bounds))
    with pytest.raises(RuntimeError):
        starved.sensitivities()


def test_sensitivities_leave_the_returned_solution_alone(policy):
    """A solution, once returned, never changes: it is frozen and sensitivities() keep off it."""
    # a fast climb with tilt and spin: inputs at bounds and violated soft state bounds
    x = policy.x_ref + np.concatenate([np.zeros(3), np.full(3, -1.9), np.full(3, 0.5),
                                       np.zeros(3)])
    sol = policy.solve(x)
    before = dict(vars(sol), u=sol.u.copy())
    du_dx, du_dtheta = policy.sensitivities()
    assert vars(sol).keys() == before.keys()
    assert all(np.array_equal(vars(sol)[key], value) for key, value in before.items())
    with pytest.raises(dataclasses.FrozenInstanceError):
        sol.ok = False
    summary = policy.active_summary()
    assert summary['inputs_at_bounds'] > 0 and summary['states_violating'] > 0
    # the cached arrays are shared by later calls, so they refuse edits
    assert policy.sensitivities()[0] is du_dx
    with pytest.raises(ValueError):
        du_dtheta[0, 0] = 1.0
