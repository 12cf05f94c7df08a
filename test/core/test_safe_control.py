"""The controller's control step: MPC, shifted plan on a solver failure, failsafe, recovery.

Real acados solves throughout. A solver failure is forced through the state, as it can
happen on a vehicle after an odometry jump: a position error of 100 km makes the QP so
badly scaled that HPIPM stops (acados status 4), from a cold or a warm start, while the
nominal state solves. (Errors of 0.3 to 10 km fail or not depending on the warm start.)
"""

import math

import numpy as np
import pytest

from hybrid_mpc_ros.core.config import ConfigError
from hybrid_mpc_ros.core.learning import tuning
from hybrid_mpc_ros.core.learning.step_rules import ScheduleSteps
from hybrid_mpc_ros.core.mpc.safe_control import Envelope, SafeController, SafetyConfig
from landscape import constant
from scenario_setup import scenario

SAFETY = SafetyConfig(odom_timeout_s=0.3, max_plan_steps=2, failsafe_thrust_fraction=0.81)
U_MIN, U_MAX = 0.0, 630.0


@pytest.fixture(scope='module')
def policy():
    return scenario().policy()


@pytest.fixture
def controller(policy):
    ctrl = SafeController(policy, SAFETY, U_MIN, U_MAX)
    ctrl.reset()
    return ctrl


def _bad_state(policy):
    x = policy.x_ref.copy()
    x[0] += 1e5
    return x


def test_a_normal_step_is_the_policy_with_its_sensitivities(controller, policy):
    x = np.zeros(12)
    result = controller.step(x)
    assert result.mode == 'mpc' and result.status == 0 and result.sensitivities_ok
    policy.reset()
    expected = policy.solve(x).u
    du_dx, du_dtheta = policy.sensitivities()
    np.testing.assert_array_equal(result.u, expected)
    np.testing.assert_array_equal(result.du_dx, du_dx)
    np.testing.assert_array_equal(result.du_dtheta, du_dtheta)
    # the result owns its arrays: later steps do not change them
    kept = result.du_dtheta.copy()
    controller.step(x + 0.1)
    np.testing.assert_array_equal(result.du_dtheta, kept)


def test_a_solver_failure_uses_the_previous_plan_shifted_then_the_failsafe(
        controller, policy):
    x = np.zeros(12)
    good = controller.step(x)
    plan = policy.plan()
    assert good.mode == 'mpc'
    first = controller.step(_bad_state(policy))
    assert first.status != 0 and first.mode == 'shifted_plan'
    np.testing.assert_array_equal(first.u, plan[1])
    assert not first.sensitivities_ok and not first.du_dtheta.any()
    second = controller.step(_bad_state(policy))
    assert second.mode == 'shifted_plan'
    np.testing.assert_array_equal(second.u, plan[2])
    third = controller.step(_bad_state(policy))      # beyond max_plan_steps = 2
    assert third.mode == 'failsafe' and 'consecutive failures' in third.reason
    hover = np.mean(policy.u_ref)
    np.testing.assert_allclose(third.u, np.full(4, math.sqrt(0.81) * hover))
    # the cause clears: the next step is a normal MPC step again
    recovered = controller.step(x)
    assert recovered.mode == 'mpc' and recovered.status == 0
    counters = controller.counters
    assert counters.solver_failures == 3 and counters.shifted_plan_steps == 2
    assert counters.failsafe_steps == 1 and counters.consecutive_failures == 0


def test_a_failure_without_a_previous_plan_goes_to_the_failsafe(controller, policy):
    result = controller.step(_bad_state(policy))
    assert result.mode == 'failsafe' and result.status != 0


def test_stale_odometry_gives_the_failsafe_without_solving(controller):
    result = controller.step(np.zeros(12), odom_age_s=0.31)
    assert result.mode == 'failsafe' and result.status == -1 and result.solve_ms == 0.0
    assert 'old' in result.reason
    assert controller.step(np.zeros(12), odom_age_s=float('nan')).mode == 'failsafe'
    assert controller.step(np.zeros(12), odom_age_s=0.29).mode == 'mpc'
    assert controller.counters.stale_odometry_steps == 2


def test_a_non_finite_state_gives_the_failsafe(controller):
    x = np.zeros(12)
    controller.step(x)
    x[4] = np.nan
    result = controller.step(x)
    assert result.mode == 'failsafe' and 'non-finite' in result.reason


def test_every_command_is_finite_and_within_the_bounds(controller, policy):
    rng = np.random.default_rng(0)
    for _ in range(60):
        x = rng.normal(scale=[5, 5, 5, 3, 3, 3, 1, 1, 1, 2, 2, 2])
        if rng.random() < 0.2:
            x[rng.integers(12)] = rng.choice([np.nan, np.inf, 1e6])
        result = controller.step(x, odom_age_s=rng.choice([0.0, 0.0, 1.0]))
        assert np.all(np.isfinite(result.u))
        assert np.all(result.u >= U_MIN) and np.all(result.u <= U_MAX)
    modes = controller.counters.modes
    assert modes['mpc'] > 0 and modes['failsafe'] > 0


def test_the_failsafe_input_stays_within_the_bounds(policy):
    loud = SafeController(policy, SafetyConfig(0.3, 0, 1.5), U_MIN, U_MAX)
    assert np.all(loud.failsafe_input == U_MAX)
    quiet = SafeController(policy, SafetyConfig(0.3, 0, 0.0), U_MIN, U_MAX)
    assert np.all(quiet.failsafe_input == U_MIN)


@pytest.mark.parametrize('kwargs, word', [
    ({'odom_timeout_s': 0.0}, 'odom_timeout_s'),
    ({'odom_timeout_s': float('nan')}, 'odom_timeout_s'),
    ({'max_plan_steps': -1}, 'max_plan_steps'),
    ({'max_plan_steps': 1.5}, 'max_plan_steps'),
    ({'failsafe_thrust_fraction': 2.0}, 'failsafe_thrust_fraction'),
])
def test_bad_safety_settings_are_refused(kwargs, word):
    values = dict(odom_timeout_s=0.3, max_plan_steps=2, failsafe_thrust_fraction=0.9)
    values.update(kwargs)
    with pytest.raises(ConfigError, match=word):
        SafetyConfig(**values)


def test_more_plan_steps_than_the_horizon_holds_are_refused(policy):
    with pytest.raises(ConfigError, match='horizon'):
        SafeController(policy, SafetyConfig(0.3, policy.config.horizon, 0.9), U_MIN, U_MAX)


def test_predicted_states_follow_the_nominal_model_from_the_measured_state(policy):
    x = np.zeros(12)
    x[3] = 0.5
    policy.reset()
    policy.solve(x)
    states, plan = policy.predicted_states(), policy.plan()
    assert states.shape == (policy.config.horizon + 1, 12)
    np.testing.assert_array_equal(states[0], x)
    for k in range(policy.config.horizon):
        np.testing.assert_allclose(states[k + 1], policy.model.step(states[k], plan[k]),
                                   atol=1e-9)


def test_sensitivities_added_after_the_command_are_the_same(controller, policy):
    x = np.zeros(12)
    first = controller.step(x, sensitivities=False)
    assert first.mode == 'mpc' and first.sensitivities_pending and not first.sensitivities_ok
    later = controller.add_sensitivities(first)
    assert later.sensitivities_ok and not later.sensitivities_pending
    assert first.sensitivities_pending and not first.du_dtheta.any()    # left as it was
    controller.reset()
    whole = controller.step(x)
    np.testing.assert_array_equal(later.u, whole.u)
    np.testing.assert_array_equal(later.du_dx, whole.du_dx)
    np.testing.assert_array_equal(later.du_dtheta, whole.du_dtheta)
    # nothing pending on a failsafe step: the result comes back as it is
    failsafe = controller.step(x, odom_age_s=1.0, sensitivities=False)
    assert controller.add_sensitivities(failsafe) is failsafe


# ---------------------------------------------------------------- the envelope abort

def test_the_envelope_bounds_position_error_tilt_and_rates():
    """Known answers at and just beyond each limit; inf disables a limit."""
    envelope = Envelope(max_position_error_m=5.0, max_tilt_rad=0.3, max_rate_rad_s=0.2)
    x_ref = np.zeros(12)
    x_ref[0:3] = [1.0, 2.0, 3.0]
    x = x_ref.copy()
    assert envelope.enabled and envelope.check(x, x_ref) == ''
    x[0:3] = x_ref[0:3] + [3.0, 4.0, 0.0]           # 5 m away: on the boundary, inside
    assert envelope.check(x, x_ref) == ''
    x[0] += 1e-9
    assert 'position error 5.000 m' in envelope.check(x, x_ref)
    for index, limit, word in ((6, 0.3, 'tilt'), (7, 0.3, 'tilt'), (9, 0.2, 'body rate'),
                               (10, 0.2, 'body rate'), (11, 0.2, 'body rate')):
        y = x_ref.copy()
        y[index] = -limit
        assert envelope.check(y, x_ref) == '', index
        y[index] = -limit * (1 + 1e-9)
        assert word in envelope.check(y, x_ref), index
    y = x_ref.copy()
    y[8] = 3.0                                      # yaw is not bounded
    assert envelope.check(y, x_ref) == ''
    assert not Envelope().enabled and Envelope().check(np.full(12, 1e6), x_ref) == ''
    for bad in (0.0, -1.0, math.nan):
        with pytest.raises(ConfigError, match='must be > 0'):
            Envelope(max_tilt_rad=bad)


def _flight(policy, plant, x0, theta, steps):
    """States (steps+1, 12) of the plain closed loop with theta: the known answer."""
    policy.set_theta(theta)
    policy.reset()
    xs = [np.array(x0, dtype=float)]
    for _ in range(steps):
        xs.append(plant.step(xs[-1], policy.solve(xs[-1]).u))
    return np.array(xs)


def test_leaving_the_envelope_restores_the_safe_theta_at_that_step(policy):
    """In simulation: the candidate theta tilts the vehicle beyond the limit, the safe one not.

    The abort comes at the first step whose state is outside (from the plain flight with
    the candidate), the safe theta flies every later step (its commands are the MPC's with
    the safe theta), it happens once per episode, and reset() re-arms it.
    """
    chosen = scenario()
    plant, steps = chosen.plant(), 40
    safe = chosen.initial_theta()
    candidate = safe.copy()
    candidate[0:3] *= 4.0                      # 16 x the position weights: a harder pull
    safe_tilt = np.max(np.abs(_flight(policy, plant, chosen.x0, safe, steps)[:, 6:8]))
    flight = _flight(policy, plant, chosen.x0, candidate, steps)
    candidate_tilt = np.max(np.abs(flight[:, 6:8]))
    assert candidate_tilt > 1.2 * safe_tilt, (candidate_tilt, safe_tilt)
    limit = 0.5 * (safe_tilt + candidate_tilt)
    first_out = int(np.argmax(np.max(np.abs(flight[:, 6:8]), axis=1) > limit))
    assert first_out > 0

    policy.set_theta(safe)
    ctrl = SafeController(policy, SAFETY, U_MIN, U_MAX, Envelope(max_tilt_rad=limit))
    policy.set_theta(candidate)
    ctrl.reset()
    x = chosen.x0.copy()
    for t in range(steps):
        result = ctrl.step(x)
        if t < first_out:
            assert result.abort_reason == '' and np.array_equal(policy.theta, candidate)
            np.testing.assert_allclose(x, flight[t], rtol=1e-9, atol=1e-9)
        elif t == first_out:
            assert result.abort_reason.startswith('tilt ') and ctrl.abort_reason
            assert result.mode == 'mpc' and result.sensitivities_ok
        else:
            assert result.abort_reason == ''      # latched: one abort per episode
        if t >= first_out:
            assert np.array_equal(policy.theta, safe)
            assert np.all(np.isfinite(result.u))
        x = plant.step(x, result.u)
    assert ctrl.counters.envelope_aborts == 1
    safe_tilt_after = np.max(np.abs(x[6:8]))
    assert safe_tilt_after < limit                # the safe theta levelled the vehicle
    ctrl.reset()
    assert ctrl.abort_reason == ''
    policy.set_theta(candidate)
    assert ctrl.step(flight[first_out]).abort_reason          # re-armed
    with pytest.raises(ValueError, match='94 finite entries'):
        ctrl.set_safe_theta(np.full(94, math.nan))


def test_an_envelope_abort_is_a_failed_episode_for_the_tuner(policy):
    """The controller's check ends a simulated episode; the tuner rolls back to its best.

    A model-based step of length 1 on the paper's setup (known from the guard tests to
    tilt the vehicle far beyond the start's flight) leaves an envelope the start theta
    stays in; the safe theta the controller restores is the tuner's best theta.
    """
    chosen = scenario()
    plant, steps = chosen.plant(), 30
    theta0 = chosen.initial_theta()
    start_tilt = np.max(np.abs(_flight(policy, plant, chosen.x0, theta0, steps)[:, 6:8]))
    ctrl = SafeController(policy, SAFETY, U_MIN, U_MAX,
                          Envelope(max_tilt_rad=1.05 * start_tilt))
    base = tuning.simulated_episodes(plant, policy, chosen.x0, steps,
                                     abort_if=ctrl.envelope_abort)
    restored = []

    def episodes(theta, sensitivities):
        ctrl.set_safe_theta(tuner.state.best_theta if math.isfinite(tuner.state.best_cost)
                            else theta0)
        ctrl.reset()                           # an episode starts: the abort is re-armed
        record = base(theta, sensitivities)
        if record.aborted:
            restored.append(policy.theta.copy())
        return record

    config = chosen.tuning_config(method='model_based', iterations=3, episode_steps=steps)
    tuner = tuning.Tuner(config, episodes, chosen.nominal_model().jacobians, chosen.cost(),
                         theta0, step_rule=ScheduleSteps(constant(1.0)))
    rows = tuner.run().history
    assert not rows[0]['rollback'] and rows[1]['rollback'], [r['rollback'] for r in rows]
    assert rows[1]['rollback_reason'].startswith('base episode aborted: step ')
    assert 'tilt' in rows[1]['rollback_reason'] and ctrl.counters.envelope_aborts >= 1
    assert tuner.state.guard_rollbacks >= 1
    np.testing.assert_array_equal(restored[0], theta0)     # the best theta then: the start
    assert rows[2]['cost'] == rows[0]['cost']              # iteration 3 flew the best again
