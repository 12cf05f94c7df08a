"""The tuner node's episode protocol (LiveSession), without ROS, against an in-process world.

The world (``live_world.py``) is built from the real core: the scenario's plant, the
controller node's own protocol (ControllerLoop: the theta revision, ``~/hold`` and
``~/reset``) around the SafeController of the MPC policy, and a message bus. Faults are
injected by tampering with its events; every run must still equal the offline run of the
same configuration (reruns of a discarded episode are exact), or fail with a clear
reason.
"""

from dataclasses import replace
import math

import numpy as np
import pytest

from hybrid_mpc_ros.core import paths
from hybrid_mpc_ros.core.config import load_node_params
from hybrid_mpc_ros.core.control.answers import Refused
from hybrid_mpc_ros.core.learning import live_session as ls
from hybrid_mpc_ros.core.learning.samples import Stamp
from hybrid_mpc_ros.core.learning.step_rules import ScheduleSteps
from hybrid_mpc_ros.core.learning.tuning import simulated_episodes, Tuner
from hybrid_mpc_ros.core.mpc import theta as th
from hybrid_mpc_ros.core.mpc.safe_control import Envelope, SafeController, SafetyConfig
from landscape import constant
from live_world import World
from scenario_setup import offline_tuning, scenario

STEPS = 15
ITERATIONS = 2


def settings(**overrides):
    """The node's default runtime settings (config/hybrid_tuner.yaml), some replaced."""
    values = load_node_params(paths.config_file('hybrid_tuner.yaml'), 'hybrid_tuner')
    values.update(overrides)
    names = ls.SessionSettings.__dataclass_fields__
    return ls.SessionSettings(**{name: values[name] for name in names})


def config(**overrides):
    values = dict(iterations=ITERATIONS, episode_steps=STEPS, seed=3)
    values.update(overrides)
    return scenario().tuning_config(**values)


_OFFLINE = {}


def offline_cached(tuning_config):
    key = repr(tuning_config.to_dict())
    if key not in _OFFLINE:
        # seeing the state after the odometry round trip, as the session does through its
        # odometry: the live session must equal it to the last bits
        _OFFLINE[key] = offline_tuning(tuning_config, observe=ls.measured_state)
    return _OFFLINE[key]


def live(world, tuning_config, session_settings):
    chosen = scenario()
    tuner = Tuner(tuning_config, None, chosen.nominal_model().jacobians, chosen.cost(),
                  chosen.initial_theta())
    session = ls.LiveSession(tuner, session_settings, chosen.period_s, chosen.x0,
                             chosen.x_ref, clock=world.clock)
    world.run(session)
    return session


def assert_equals_offline(world, session, tuning_config):
    history, thetas = offline_cached(tuning_config)
    assert world.of_type(ls.Finished), world.of_type(ls.Failed)
    done = world.of_type(ls.IterationDone)
    assert len(done) == len(history)
    for live_row, row, theta in zip(done, history, thetas):
        assert abs(live_row.row['cost'] - row['cost']) <= 1e-12 * row['cost'], (
            live_row.row['cost'], row['cost'])
        np.testing.assert_allclose(live_row.theta, theta, rtol=1e-12, atol=1e-15)
        if row['slope_measured'] is not None:
            # (C(theta + delta v) - C(theta)) / delta: the perturbed episode too
            assert math.isclose(live_row.row['slope_measured'], row['slope_measured'],
                                rel_tol=1e-5, abs_tol=1e-4)


def episode_steps_by_revision(world):
    """{revision: samples} of the episodes the session took (EpisodeDone infos)."""
    infos = [action.info for action in world.of_type(ls.EpisodeDone)]
    return infos, {info['revision']: [s for s in world.samples
                                      if s.revision == info['revision']] for info in infos}


def test_lockstep_reset_episodes_equal_the_offline_run():
    world = World(scenario())
    session = live(world, config(), settings())
    assert_equals_offline(world, session, config())
    assert session.retries == 0 and session.hold_available
    infos, by_revision = episode_steps_by_revision(world)
    assert len(infos) == 2 * ITERATIONS
    x0 = ls.measured_state(scenario().x0)
    for info in infos:
        assert info['steps'] == STEPS and info['attempts'] == 1
        start_ns = round(info['start_stamp_s'] * 1e9)
        samples = [s for s in by_revision[info['revision']]
                   if s.odom_stamp.nanoseconds >= start_ns]
        # from x0, T consecutive steps of the revision; the loop stops within a few steps
        # after them (the hold lands while the next commands are in flight)
        assert STEPS <= len(samples) <= STEPS + 3, [s.odom_stamp for s in samples]
        assert np.array_equal(samples[0].x, x0)
        stamps = np.array([s.odom_stamp.nanoseconds for s in samples])
        assert np.all(np.diff(stamps) == world.period_ns)
    # one atomic set per episode (x_ref in the first), one final set of the result
    sets = world.parameter_sets
    assert len(sets) == 2 * ITERATIONS + 1
    assert 'x_ref' in sets[0] and all('x_ref' not in s for s in sets[1:-1])
    assert set(sets[1]) == set(th.PARAMETER_NAMES + th.SAFE_PARAMETER_NAMES)
    # every set carries the tuner's best theta as the safe theta: the start theta until an
    # iteration improves on it, then the best
    safe = [th.from_parameters(th.unprefix_safe(values)) for values in sets]
    np.testing.assert_array_equal(safe[0], scenario().initial_theta())
    best = session.tuner.state.best_theta
    assert not np.array_equal(best, scenario().initial_theta())
    np.testing.assert_array_equal(safe[-1], best)
    np.testing.assert_array_equal(world.controller.safe_theta, best)
    # the controller is left running the final theta, released
    np.testing.assert_array_equal(world.controller.policy.theta, session.tuner.state.theta)
    assert not world.held


def _nth_while_collecting(kind, n, change):
    """A tamper hook: ``change(event)`` the n-th ``kind`` event scheduled during an episode."""
    seen = []

    def tamper(world, event):
        if (event.kind == kind and event.target == 'tuner' and world.session is not None
                and world.session.collecting):
            seen.append(event)
            if len(seen) == n:
                return change(event)
        return [event]
    return tamper


def _later(event, seconds):
    return type(event)(event.time + seconds, event.seq, event.target, event.kind,
                       event.payload)


def _stale(event):
    sample = event.payload[0]
    return type(event)(event.time, event.seq, event.target, event.kind,
                       (replace(sample, revision=sample.revision - 1),))


def _drop_call(kind, n):
    """Drop the n-th request of ``kind`` ('hold', 'set') to the controller: no answer."""
    seen = []

    def tamper(world, event):
        if event.kind == kind and event.target == 'controller':
            seen.append(event)
            if len(seen) == n:
                return []
        return [event]
    return tamper


def _drop_final_odometry(world, event):
    """Lose the first episode's x[T] (the odometry after its last step), once."""
    session = world.session
    if (event.kind == 'odom' and event.target == 'tuner' and session is not None
            and session.collecting and session.retries == 0
            and event.payload[0] == session.attempt.reset_ns + STEPS * world.period_ns):
        return []
    return [event]


def _refuse_sets(count):
    refused = []

    def tamper(world, event):
        if event.kind == 'result' and event.target == 'tuner' and len(refused) < count:
            call = event.payload[0]
            if any(isinstance(a, ls.SetParameters) and a.call == call for a in world.actions):
                refused.append(call)
                return [type(event)(event.time, event.seq, event.target, event.kind,
                                    (call, Refused('refused by the test')))]
        return [event]
    return tamper


@pytest.mark.parametrize('name, tamper, kind', [
    ('a lost sample', _nth_while_collecting('sample', 8, lambda e: []), 'missing_step'),
    ('a duplicated sample', _nth_while_collecting('sample', 9, lambda e: [e, _later(e, 1e-5)]),
     'repeated_step'),
    ('two samples swapped', _nth_while_collecting('sample', 10, lambda e: [_later(e, 2e-4)]),
     'missing_step'),
    ('an old sample again, late',
     _nth_while_collecting('sample', 5, lambda e: [e, _later(e, 4e-4)]), 'reordered'),
    ('a lost answer to hold', _drop_call('hold', 2), 'timeout'),
    ('a lost answer to a set', _drop_call('set', 2), 'timeout'),
    ('a lost final odometry', _drop_final_odometry, 'missing_step'),
    ('a refused set', _refuse_sets(1), 'refused'),
    ('a sample of the previous revision',
     _nth_while_collecting('sample', 8, lambda e: [_stale(e)]), 'wrong_revision'),
])
@pytest.mark.slow
def test_faults_rerun_the_episode_and_the_run_still_equals_offline(name, tamper, kind):
    world = World(scenario(), tamper=tamper)
    # short timeouts: the world's time only passes with its events (a free-running loop
    # costs a control step per 0.15 ms)
    session = live(world, config(), settings(message_timeout_s=0.05, service_timeout_s=0.05))
    assert session.retries >= 1 and session.rejections[kind] >= 1, (name, session.rejections)
    assert_equals_offline(world, session, config())
    logs = [a.text for a in world.of_type(ls.Log) if a.level == 'warn']
    assert any('discarded' in text and kind in text for text in logs), logs


@pytest.mark.slow
def test_late_answers_and_late_reset_odometry_are_handled():
    # the reset odometry reaches the tuner after the reset's answer, and one answer to a
    # hold comes after its timeout (the episode was rerun meanwhile; the answer is ignored)
    holds, resets = [], []

    def tamper(world, event):
        if event.kind == 'hold' and event.target == 'controller':
            holds.append(event)
            if len(holds) == 2:              # the first episode's hold (1: at start)
                return [_later(event, 0.2)]
        if event.kind == 'odom' and event.target == 'tuner' and world.session is not None \
                and world.session.phase == ls.Phase.SIMULATOR_RESET:
            resets.append(event)
            return [_later(event, 0.01)]
        return [event]
    world = World(scenario(), tamper=tamper)
    session = live(world, config(iterations=1), settings(service_timeout_s=0.1))
    assert session.rejections['timeout'] == 1 and session.retries == 1
    assert len(resets) >= 2
    assert_equals_offline(world, session, config(iterations=1))


@pytest.mark.slow
def test_a_persistent_failure_ends_with_a_clear_error():
    world = World(scenario(), tamper=_refuse_sets(100))
    session = live(world, config(), settings(max_episode_retries=2))
    failed = world.of_type(ls.Failed)
    assert failed and session.phase == ls.Phase.FAILED and session.retries == 3
    assert 'base episode of iteration 1 failed 3 times in a row' in failed[0].reason
    assert 'refused by the test' in failed[0].reason


def test_no_controller_ends_with_a_clear_error():
    world = World(scenario(), tamper=lambda world, event: [] if event.target == 'controller'
                  else [event])
    session = live(world, config(), settings(startup_timeout_s=2.0))
    assert 'is the controller running' in world.of_type(ls.Failed)[0].reason
    assert session.phase == ls.Phase.FAILED


def test_wall_clock_trigger_starts_after_the_reset_odometry():
    # the controller refuses ~/hold (timer trigger): episodes start at the first sample at
    # or after the reset odometry's stamp, without exactness
    # wall timers with 2 ms of jitter: odometry stamps are not whole periods apart
    world = World(scenario(), mode='realtime', jitter_s=2e-3)
    session = live(world, config(iterations=1), settings())
    assert not session.hold_available
    assert world.of_type(ls.Finished), world.of_type(ls.Failed)
    infos, by_revision = episode_steps_by_revision(world)
    resets = [a for a in world.actions if isinstance(a, ls.CallService)
              and a.service == 'simulator_reset']
    assert len(resets) == len(infos) == 2
    for info in infos:
        assert info['steps'] == STEPS
        assert info['start_position_error_m'] < 0.01      # within a period of x0
    assert not world.hold_calls


def test_a_vehicle_that_never_settles_is_reported_with_where_it_was():
    # a tolerance no flight meets: the wait ends in vain and says how far the vehicle was
    world = World(scenario())
    chosen = scenario()
    tuner = Tuner(config(iterations=1, episode_steps=40), None,
                  chosen.nominal_model().jacobians, chosen.cost(), chosen.initial_theta())
    session = ls.LiveSession(tuner, settings(start_mode='fly_to_start',
                                             settle_position_tol_m=1e-9,
                                             settle_velocity_tol_m_s=1e-9,
                                             settle_timeout_s=1.0, max_episode_retries=0),
                             chosen.period_s, chosen.x0, chosen.x_ref, clock=world.clock)
    world.run(session)
    failed = world.of_type(ls.Failed)
    assert failed and not world.of_type(ls.Finished)
    reason = failed[0].reason
    assert 'waited in vain for the vehicle to settle at x0: last seen ' in reason, reason
    assert 'm from x0 at ' in reason and '(tolerance 1e-09 m, 1e-09 m/s)' in reason, reason


def test_fly_to_start_waits_for_the_vehicle_to_settle():
    tolerance = 0.05
    world = World(scenario())
    odometry = []
    real_odometry = ls.LiveSession.odometry

    class Recording(ls.LiveSession):
        def odometry(self, stamp, x):
            odometry.append((Stamp.of(stamp).nanoseconds, np.array(x)))
            return real_odometry(self, stamp, x)
    chosen = scenario()
    tuner = Tuner(config(iterations=1, episode_steps=40), None,
                  chosen.nominal_model().jacobians, chosen.cost(), chosen.initial_theta())
    session = Recording(tuner, settings(start_mode='fly_to_start',
                                        settle_position_tol_m=tolerance,
                                        settle_velocity_tol_m_s=tolerance,
                                        settle_time_s=1.0),
                        chosen.period_s, chosen.x0, chosen.x_ref, clock=world.clock)
    world.run(session)
    assert world.of_type(ls.Finished), world.of_type(ls.Failed)
    assert not [a for a in world.actions if isinstance(a, ls.CallService)]
    infos = [a.info for a in world.of_type(ls.EpisodeDone)]
    assert len(infos) == 2
    settle_ns = round(1.0 * 1e9)
    for info in infos:
        assert info['start_position_error_m'] <= tolerance
        assert info['start_speed_m_s'] <= tolerance
        start_ns = round(info['start_stamp_s'] * 1e9)
        window = [x for stamp, x in odometry if start_ns - settle_ns <= stamp <= start_ns]
        assert len(window) >= 10
        for x in window:
            assert np.linalg.norm(x[0:3] - chosen.x0[0:3]) <= tolerance
            assert np.linalg.norm(x[3:6]) <= tolerance
    # the second episode had to fly back first: the vehicle left x0 during the first
    first_end = round(infos[0]['start_stamp_s'] * 1e9) + 40 * world.period_ns
    far = [np.linalg.norm(x[0:3] - chosen.x0[0:3]) for stamp, x in odometry
           if stamp == first_end]
    assert far and far[0] > 5 * tolerance
    # x_ref: hover at x0 to fly back, then theta, the target and the safe theta together
    sets = world.parameter_sets
    assert set(sets[0]) == {'x_ref'}
    assert set(sets[1]) == {'x_ref', *th.PARAMETER_NAMES, *th.SAFE_PARAMETER_NAMES}


def test_fly_to_start_survives_a_controller_restart_mid_episode():
    """A new controller (revision 0, start theta and x_ref) at the 10th step of episode 2.

    The episode waits in vain for its next sample and is rerun after a backoff; the answer
    to the next go_to_start names a revision below the last one named (the restart, in the
    log); the vehicle settles at x0 again before theta, the target and the safe theta go to
    the new controller together, which then flies the final and the best theta. No
    episode is lost or taken twice.
    """
    tolerance, steps, iterations = 0.1, 30, 3
    chosen = scenario()

    def restart(world, event):
        session = world.session
        attempt = session.attempt if session is not None else None
        if (event.kind == 'sample' and event.target == 'tuner' and not world.restarts
                and session.episodes == 1 and attempt is not None
                and attempt.builder is not None and attempt.builder.count == 10):
            world.restart_controller()
        return [event]
    world = World(chosen, mode='realtime', tamper=restart)
    # model-based (one episode per iteration), as the fly_to_start warning advises; the
    # realtime world, as on a vehicle; a tolerance above the hover's steady offset (~0.05 m)
    tuner = Tuner(config(method='model_based', iterations=iterations, episode_steps=steps),
                  None,
                  chosen.nominal_model().jacobians, chosen.cost(), chosen.initial_theta())
    session = ls.LiveSession(tuner, settings(start_mode='fly_to_start',
                                             settle_position_tol_m=tolerance,
                                             settle_velocity_tol_m_s=tolerance,
                                             settle_time_s=1.0, message_timeout_s=0.35),
                             chosen.period_s, chosen.x0, chosen.x_ref, clock=world.clock)
    world.run(session)
    assert world.of_type(ls.Finished), world.of_type(ls.Failed)
    assert world.restarts == 1 and session.retries == 1
    assert dict(session.rejections) == {'timeout': 1}
    logs = [action.text for action in world.of_type(ls.Log)]
    assert any('the controller restarted (its theta revision is 1, after 4)' in text
               for text in logs)
    infos = [action.info for action in world.of_type(ls.EpisodeDone)]
    assert [(info['iteration'], info['role']) for info in infos] == [
        (k, 'base') for k in range(1, iterations + 1)]
    assert [info['attempts'] for info in infos] == [1, 2, 1]
    for info in infos:
        assert info['steps'] == steps
        assert info['start_position_error_m'] <= tolerance
        assert info['start_speed_m_s'] <= tolerance
    rows = [action.row for action in world.of_type(ls.IterationDone)]
    assert [row['iteration'] for row in rows] == list(range(1, iterations + 1))
    # the new controller flies the final theta, with the best as its safe theta
    np.testing.assert_array_equal(world.controller.policy.theta, tuner.state.theta)
    np.testing.assert_array_equal(world.controller.safe_theta, tuner.state.best_theta)


def test_a_sample_arriving_after_the_hold_answer_does_not_fool_the_token_rule():
    # the controller publishes a step's sample, then answers the hold; the sample reaches
    # the tuner only after the answer (two channels, no order between them). The answer
    # names the last answered odometry, so the session waits for the simulator's answer to
    # that step and the episode still starts exactly at x0.
    def tamper(world, event):
        if (event.kind == 'sample' and world.session is not None
                and world.session.phase == ls.Phase.HOLD):
            return [_later(event, 1e-3)]
        return [event]
    world = World(scenario(), tamper=tamper)
    session = live(world, config(iterations=1), settings())
    assert session.retries == 0, session.rejections
    assert_equals_offline(world, session, config(iterations=1))


def test_an_envelope_abort_ends_the_episode_as_a_failed_one_and_the_run_goes_on():
    """The controller's envelope abort through the protocol; the offline run is the answer.

    A model-based step of length 1 (as in the safe-control tests) tilts the vehicle beyond
    an envelope the start theta stays in. The aborted episode ends at the step that left
    it, the tuner rolls back to its best theta, the next episodes run normally, and every
    cost equals the offline run whose rollout stops at the same state.
    """
    chosen = scenario()
    steps, iterations = 30, 3
    plant, policy = chosen.plant(), chosen.policy()
    policy.reset()
    x, tilt = chosen.x0.copy(), 0.0
    for _ in range(steps):                   # the start theta's flight: its largest tilt
        x = plant.step(x, policy.solve(x).u)
        tilt = max(tilt, float(np.max(np.abs(x[6:8]))))
    envelope = Envelope(max_tilt_rad=1.05 * tilt)
    tuning_config = config(method='model_based', iterations=iterations, episode_steps=steps)

    def tuner(episodes):
        return Tuner(tuning_config, episodes, chosen.nominal_model().jacobians, chosen.cost(),
                     chosen.initial_theta(), step_rule=ScheduleSteps(constant(1.0)))

    world = World(chosen, envelope=envelope)
    session = ls.LiveSession(tuner(None), settings(), chosen.period_s, chosen.x0,
                             chosen.x_ref, clock=world.clock)
    world.run(session)
    assert world.of_type(ls.Finished), world.of_type(ls.Failed)
    assert session.retries == 0
    rows = [action.row for action in world.of_type(ls.IterationDone)]
    assert [row['rollback'] for row in rows] == [False, True, False]
    assert rows[1]['rollback_reason'].startswith('base episode aborted: the controller '
                                                 'left its envelope at step ')
    assert world.controller.counters.envelope_aborts == 1
    infos = [action.info for action in world.of_type(ls.EpisodeDone)]
    aborted = infos[1]
    assert 0 < aborted['steps'] < steps and all(info['steps'] == steps
                                                for i, info in enumerate(infos) if i != 1)

    # offline: the same controller check ends the rollout at the same state
    offline_policy = chosen.policy()
    check = SafeController(offline_policy, SafetyConfig(1e9, 3, 0.9), 0.0, 630.0, envelope)
    rollout = simulated_episodes(plant, offline_policy, chosen.x0, steps,
                                 abort_if=check.envelope_abort)

    def episodes(theta, sensitivities):
        check.reset()
        return rollout(theta, sensitivities)
    expected = tuner(episodes).run().history
    assert [row['rollback'] for row in expected] == [False, True, False]
    for row, offline_row in zip(rows, expected):
        assert abs(row['cost'] - offline_row['cost']) <= 1e-9 * offline_row['cost']
