"""The nonlinear-model MPC (SQP-RTI): closed loop, the QP of its last iteration, sensitivities.

The sensitivities of :class:`NonlinearMPCPolicy` are those of the linearised QP. Two checks
keep the two claims apart: against finite differences of that QP, frozen and solved by
quadprog, they are exact; against finite differences of the converged nonlinear program
they are an approximation whose error is the Gauss-Newton Hessian's missing dynamics
curvature, shown by an exact-Hessian implicit differentiation (CasADi, test-side only)
that closes the gap.
"""

from dataclasses import fields, replace
import time

import casadi as ca
from mpc_checks import assert_theta_is_runtime_data, compiled_solvers
import numpy as np
import pytest
from scenario_setup import scenario

from hybrid_mpc_ros.core.mpc import acados_env
from hybrid_mpc_ros.core.mpc import theta as th
from hybrid_mpc_ros.core.config import ConfigError
from hybrid_mpc_ros.core.mpc.policy import finite_difference_sensitivities
from hybrid_mpc_ros.core.mpc.nonlinear import formulation_description, NonlinearMPCConfig
from hybrid_mpc_ros.core.model.quadcopter import NU, NX, QuadParams
from hybrid_mpc_ros.core.mpc.reference_qp import solve_reference

EPISODE = 200
CONVERGED = {'rti_iterations': 100, 'rti_tol': 1e-9}   # same compiled solver


def nonlinear_policy(**overrides):
    """The nonlinear MPC of the default scenario, nominal constants = the plant's."""
    return scenario().nonlinear_policy(**overrides)


@pytest.fixture(scope='module')
def plant():
    return scenario().plant()


@pytest.fixture(scope='module')
def policy():
    return nonlinear_policy()


@pytest.fixture(scope='module')
def episode(plant):
    """One closed-loop episode from hover at the origin, one RTI iteration per step."""
    pol = nonlinear_policy()
    x = plant.hover_state()
    states, inputs, solve_s, ok = [x], [], [], True
    for _ in range(EPISODE):
        start = time.perf_counter()
        sol = pol.solve(x)
        solve_s.append(time.perf_counter() - start)
        ok &= sol.ok
        x = plant.step(x, sol.u)
        states.append(x)
        inputs.append(sol.u)
    return {'x': np.array(states), 'u': np.array(inputs), 'solve_s': np.array(solve_s),
            'ok': ok, 'x_ref': pol.x_ref}


def _rel_err(analytic, numeric):
    return np.max(np.abs(analytic - numeric)) / max(np.max(np.abs(numeric)), 1e-12)


def test_closed_loop_from_hover_reaches_the_target(episode):
    x, x_ref = episode['x'], episode['x_ref']
    assert episode['ok']
    err = np.abs(x[:, :3] - x_ref[:3])
    p50, p99 = np.percentile(episode['solve_s'] * 1e3, [50, 99])
    print(f'horizontal error after 6 s {err[60, :2].max():.3f} m, position error after '
          f'20 s {err[-1].max():.4f} m; solve p50 {p50:.2f} ms, p99 {p99:.2f} ms')
    assert err[60, :2].max() < 0.1             # x, y within 10 cm after 6 s (measured 0.06)
    assert err[-1].max() < 0.02                # all of p within 2 cm after 20 s (measured 0.005)
    assert np.abs(x[-1, 3:6]).max() < 0.02     # and nearly at rest
    assert np.abs(x[:, 3:6]).max() < 2.05      # the soft speed limit of 2 m/s holds


def test_qp_of_last_iteration_is_the_nominal_linearisation(plant):
    """acados' QP data equal the model's Jacobians at the iterate; quadprog solves it alike."""
    pol = nonlinear_policy()
    model, horizon = pol.model, pol.config.horizon
    check_at = {0, 1, 2, 3, 5, 8, 10, 15, 20, 40}
    x = plant.hover_state()
    worst_lin = worst_iterate = worst_ref = 0.0
    with_constraints = 0
    for t in range(max(check_at) + 1):
        sol = pol.solve(x)
        assert sol.ok
        if t in check_at:
            xs, us = pol.linearisation_point()
            np.testing.assert_array_equal(xs[0], x)      # stage 0 linearised at the state
            a_list, b_list, c_list = pol.linearisation()
            for k in range(horizon):
                a_k, b_k = model.jacobians(xs[k], us[k])
                c_k = model.step(xs[k], us[k]) - a_k @ xs[k] - b_k @ us[k]
                worst_lin = max(worst_lin, _rel_err(a_list[k], a_k), _rel_err(b_list[k], b_k),
                                _rel_err(c_list[k], c_k))
            # the full SQP-RTI step: the new iterate is the QP solution in absolute variables
            pred = x
            for k in range(horizon):
                pred = a_list[k] @ pred + b_list[k] @ pol.plan()[k] + c_list[k]
                worst_iterate = max(worst_iterate,
                                    np.max(np.abs(pred - pol.solver.get(k + 1, 'x'))))
            reference = solve_reference(pol.qp, x, pol.x_ref, pol.u_ref)
            worst_ref = max(worst_ref, np.max(np.abs(reference - pol.plan().reshape(-1))))
            pol.sensitivities()
            with_constraints += any(pol.active_summary().values())
        x = plant.step(x, sol.u)
    print(f'linearisation rel err {worst_lin:.1e}, |iterate - QP rollout| {worst_iterate:.1e}, '
          f'|u_acados - u_quadprog| {worst_ref:.1e} rad/s, {with_constraints} points with '
          'active constraints')
    assert worst_lin < 1e-9          # measured 0: the same CasADi expressions
    assert worst_iterate < 1e-8
    assert worst_ref < 1e-6          # as for the affine model's QP
    assert with_constraints >= 5


@pytest.mark.slow
def test_sensitivities_are_exact_for_the_linearised_qp(episode):
    """Against central differences of the frozen QP (quadprog), states and theta directions."""
    pol = nonlinear_policy()
    rng = np.random.default_rng(7)
    h = 1e-5
    worst = 0.0
    active_points = 0
    for t in (3, 30):                  # inputs at bounds and soft violations; then none
        x = episode['x'][t]
        assert pol.solve(x).ok
        du_dx, du_dtheta = pol.sensitivities()
        qp = pol.qp                    # frozen linearisation of this solve
        active_points += any(pol.active_summary().values())
        key = pol.active_set()

        def u0(state, qp=qp, key=key):
            plan = solve_reference(qp, state, pol.x_ref, pol.u_ref)
            act = qp.active_set(state, plan, pol.config.active_tol_u, pol.config.active_tol_x)
            assert np.array_equal(act.fixed_inputs, key.fixed_inputs)
            assert np.array_equal(act.kinks, key.kinks)
            return plan[:NU]

        fd_x = np.column_stack([(u0(x + h * e) - u0(x - h * e)) / (2 * h) for e in np.eye(NX)])
        worst = max(worst, _rel_err(du_dx, fd_x))
        theta = pol.theta.copy()
        for _ in range(3):
            v = rng.normal(size=th.N_THETA)
            outs = []
            for sign in (1.0, -1.0):
                qp.set_theta(theta + sign * h * v)
                outs.append(u0(x))
            qp.set_theta(theta)
            worst = max(worst, _rel_err(du_dtheta @ v, (outs[0] - outs[1]) / (2 * h)))
    print(f'QP sensitivities vs differences of the frozen QP: max rel err {worst:.1e}')
    assert active_points == 1
    assert worst < 1e-5


@pytest.fixture(scope='module')
def exact_hessian(policy):
    """``(U, x0, theta, mask, sign, bound) -> (H, dgrad/dx0, dgrad/dtheta)`` of the NLP.

    The condensed nonlinear program (states eliminated by the nominal RK4 rollout) with
    the exact Hessian; ``mask``/``sign``/``bound`` (N*12 each) switch on the smooth slack
    penalty of strictly violated soft bounds. Fixed inputs are removed by the caller; soft
    bounds held at their kink are not modelled (points with kinks are not compared).
    """
    cfg, horizon = policy.config, policy.config.horizon
    x_sym, u_sym, _, x_next = policy.model.symbolic
    step = ca.Function('step', [x_sym, u_sym], [x_next])
    u_all = ca.SX.sym('U', horizon * NU)
    x0 = ca.SX.sym('x0', NX)
    theta = ca.SX.sym('theta', th.N_THETA)
    mask, sign, bound = (ca.SX.sym(name, horizon * NX) for name in ('mask', 'sign', 'bound'))
    low = ca.SX.zeros(NX, NX)
    for i, (row, col) in enumerate(zip(*th.TRIL)):
        low[row, col] = theta[th.SLICE_P][i]
    q_mat = ca.diag(theta[th.SLICE_Q] ** 2) + th.EPS * ca.SX.eye(NX)
    r_mat = ca.diag(theta[th.SLICE_R] ** 2) + th.EPS * ca.SX.eye(NU)
    p_mat = low @ low.T + th.EPS * ca.SX.eye(NX)
    x_ref, u_ref = ca.DM(policy.x_ref), ca.DM(policy.u_ref)
    x, cost, states = x0, 0, []
    for k in range(horizon):
        u = u_all[k * NU:(k + 1) * NU]
        cost += ca.bilin(r_mat, u - u_ref, u - u_ref)
        x = step(x, u)
        states.append(x)
        cost += ca.bilin(p_mat if k == horizon - 1 else q_mat, x - x_ref, x - x_ref)
    dist = sign * (ca.vertcat(*states) - bound)
    cost += ca.dot(mask, cfg.slack_quadratic * dist ** 2 + cfg.slack_linear * dist)
    hess, grad = ca.hessian(cost, u_all)
    return ca.Function('exact', [u_all, x0, theta, mask, sign, bound],
                       [hess, ca.jacobian(grad, x0), ca.jacobian(grad, theta)])


def _exact_sensitivities(exact_hessian, pol, x):
    act = pol.active_set()
    n_states = pol.config.horizon * NX
    mask, sign, bound = np.zeros(n_states), np.ones(n_states), np.zeros(n_states)
    mask[act.violated] = 1.0
    sign[act.violated] = act.violation_sign
    bound[act.violated] = act.violation_bound
    values = exact_hessian(pol.plan().reshape(-1), x, pol.theta, mask, sign, bound)
    hess, g_x, g_t = (np.asarray(m) for m in values)
    free = np.flatnonzero(~act.fixed_inputs)
    sens = np.zeros((hess.shape[0], NX + th.N_THETA))
    sens[free] = -np.linalg.solve(hess[np.ix_(free, free)], np.hstack([g_x[free], g_t[free]]))
    return sens[:NU, :NX], sens[:NU, NX:]


@pytest.mark.slow
def test_converged_sensitivities_against_finite_differences(episode, exact_hessian):
    """Converged SQP: QP sensitivities within the Gauss-Newton gap of central differences.

    Measured at these points: QP vs differences 1e-1 to 2e-1 (du/dx) and 5e-3 to 5e-2
    (du/dtheta); exact-Hessian vs differences ~1e-8. So the differences are accurate (the
    solves converge to ~1e-9 rad/s), and the QP's error is the curvature of the dynamics
    weighted by the multipliers, which the linearised QP does not see; it shrinks as the
    vehicle settles (the multipliers go to zero). The tolerance is that measured gap with
    some room, not a numerical tolerance.
    """
    pol = nonlinear_policy(**CONVERGED)
    rows = []
    for t in (6, 20, 30, 45):
        x = episode['x'][t]
        sol = pol.solve(x)
        assert sol.ok and pol.rti_last_step <= CONVERGED['rti_tol']
        du_dx, du_dtheta = pol.sensitivities()
        assert du_dx.shape == (NU, NX) and du_dtheta.shape == (NU, th.N_THETA)
        kinks = pol.active_set().kinks.size
        active = pol.active_summary()
        fd_x, fd_t, same = finite_difference_sensitivities(pol, x)
        assert same
        pol.solve(x)
        row = [t, _rel_err(du_dx, fd_x), _rel_err(du_dtheta, fd_t)]
        if kinks == 0:
            ex_x, ex_t = _exact_sensitivities(exact_hessian, pol, x)
            row += [_rel_err(ex_x, fd_x), _rel_err(ex_t, fd_t)]
        rows.append(row)
        print(f'step {t} {active}: QP vs FD du/dx {row[1]:.1e} du/dtheta {row[2]:.1e}'
              + (f'; exact Hessian vs FD {row[3]:.1e} {row[4]:.1e}' if kinks == 0 else ''))
    assert max(r[1] for r in rows) < 0.3 and max(r[2] for r in rows) < 0.1
    exact = [r for r in rows if len(r) == 5]
    assert len(exact) >= 3
    assert max(max(r[3], r[4]) for r in exact) < 1e-5


def test_rti_iterations_converge_from_the_shifted_guess(episode):
    pol = nonlinear_policy(**CONVERGED)
    one = nonlinear_policy()
    steps_run = []
    for t in range(15):
        x = episode['x'][t]
        sol, sol_one = pol.solve(x), one.solve(x)
        assert sol.ok and sol_one.ok
        assert pol.rti_last_step <= CONVERGED['rti_tol']
        assert one.rti_iterations_done == 1
        steps_run.append(pol.rti_iterations_done)
    print(f'RTI iterations to a 1e-9 rad/s plan change: {steps_run}; '
          f'last step of the single iteration {one.rti_last_step:.1e} rad/s')
    assert 1 < max(steps_run) < CONVERGED['rti_iterations']
    assert np.max(np.abs(pol.plan() - one.plan())) > 1e-3     # one iteration is not converged


def test_nominal_constants_are_part_of_the_cache_key(policy):
    cfg, params = policy.config, policy.params
    base = acados_env.formulation_key(formulation_description(params, cfg))
    assert policy.formulation_key() == base
    keys = {base}
    for item in fields(QuadParams):
        value = getattr(params, item.name)
        changed = replace(params, **{item.name: value * 1.01 + 1e-3})
        keys.add(acados_env.formulation_key(formulation_description(changed, cfg)))
    assert len(keys) == 1 + len(fields(QuadParams))
    for runtime in (replace(cfg, rti_iterations=7), replace(cfg, rti_tol=1e-6)):
        assert acados_env.formulation_key(formulation_description(params, runtime)) == base
    for compiled in (replace(cfg, substeps=2), replace(cfg, horizon=10)):
        assert acados_env.formulation_key(formulation_description(params, compiled)) != base


def test_cached_build_compiles_nothing_and_theta_is_runtime_data(policy):
    before = compiled_solvers()
    assert before                                   # the fixture's solver is compiled
    start = time.perf_counter()
    again = nonlinear_policy(rti_iterations=3)      # a runtime option: the same formulation
    print(f'cached build {(time.perf_counter() - start) * 1e3:.0f} ms')
    assert compiled_solvers() == before            # no library built or rebuilt
    assert_theta_is_runtime_data(again)


def test_bad_state_is_reported_and_the_next_solve_starts_cold(policy, plant):
    sol = policy.solve(np.full(NX, np.nan))
    assert not sol.ok and 'non-finite' in sol.message
    assert np.all(np.isfinite(sol.u)) and np.all((sol.u >= 0) & (sol.u <= 630))
    with pytest.raises(RuntimeError):
        policy.sensitivities()
    x = plant.hover_state()
    assert policy.solve(x).ok
    xs, us = policy.linearisation_point()
    np.testing.assert_array_equal(xs, np.tile(x, (policy.config.horizon + 1, 1)))
    np.testing.assert_allclose(us, np.broadcast_to(policy.config.u_offset, us.shape))


def test_configuration_errors():
    base = scenario().mpc_config
    with pytest.raises(ConfigError, match='rti_iterations'):
        NonlinearMPCConfig.from_config(base, rti_iterations=0)
    with pytest.raises(ConfigError, match='substeps'):
        NonlinearMPCConfig.from_config(base, substeps=0)
    params = scenario().plant_params
    with pytest.raises(ConfigError, match='hover'):   # 10 % heavier: hover above 630 rad/s
        scenario().nonlinear_policy(replace(params, mass=params.mass * 1.1))
