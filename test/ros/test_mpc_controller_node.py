"""The MPC controller node, run as a real process over DDS, observed from this process.

* In lockstep with the simulator (the odometry trigger), its commands and sensitivity
  messages equal the offline rollout of the same scenario and theta.
* theta set live from another process: accepted sets change the commands and bump the
  revision; invalid sets are refused with their reason and change nothing.
* Safe behaviour with the wall-clock trigger, odometry published by this test: no
  command before odometry, NaN odometry rejected, stale odometry -> failsafe -> recovery,
  a solver failure forced through the state -> shifted plan -> failsafe -> recovery; the
  envelope abort (a tilted state ends the candidate's revision, the start theta flies).
"""

import math
import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from nav_msgs.msg import Odometry
import numpy as np
import pytest
from rcl_interfaces.msg import Parameter as ParameterMsg, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters, SetParametersAtomically
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_msgs.msg import Float64MultiArray

from hybrid_mpc_ros.core.learning.samples import ENVELOPE_ABORT_STATUS
from hybrid_mpc_ros.core.mpc import theta as th
from hybrid_mpc_ros.ros.msgs import parse_rotor_command, state_to_odometry
from hybrid_mpc_ros.ros.sensitivity_msg import parse_sensitivity_message
from hybrid_mpc_ros.tools import processes
from scenario_setup import scenario, scenario_path

CONTROLLER = '/mpc_controller'
DEEP = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)


def _start(module, log_dir, name, **params):
    return processes.start_node(module, params_file=scenario_path('arxiv_v1'), params=params,
                                log_path=str(log_dir / f'{name}.log'))


def _wait(ros_node, predicate, timeout, *nodes):
    """Spin until ``predicate()``; fail at once with its log if one of ``nodes`` exits."""
    def done():
        for node in nodes:
            if not node.alive():
                pytest.fail(f'node exited with {node.returncode}:\n{node.log_text()[-3000:]}')
        return predicate()
    assert ros_node.spin_until(done, timeout), '\n'.join(
        node.log_text()[-2000:] for node in nodes)


def _alive(*nodes):
    for node in nodes:
        assert node.alive(), node.log_text()[-3000:]


def _double_array(name, values):
    return ParameterMsg(name=name, value=ParameterValue(
        type=ParameterType.PARAMETER_DOUBLE_ARRAY, double_array_value=list(values)))


def _set(ros_node, params, atomically=True):
    if atomically:
        response = ros_node.call(SetParametersAtomically,
                                 f'{CONTROLLER}/set_parameters_atomically',
                                 SetParametersAtomically.Request(parameters=params))
        return [response.result]
    response = ros_node.call(SetParameters, f'{CONTROLLER}/set_parameters',
                             SetParameters.Request(parameters=params))
    return list(response.results)


def test_lockstep_commands_and_sensitivities_equal_the_offline_rollout(tmp_path, ros_node):
    samples = []
    subscription = ros_node.node.create_subscription(
        Float64MultiArray, f'{CONTROLLER}/sensitivity',
        lambda msg: samples.append(parse_sensitivity_message(msg)), DEEP)
    # the controller first: it steps from the simulator's first odometry on, and samples
    # published before its publisher has matched this subscription are lost (on a loaded
    # machine discovery took longer than the first steps, and sample 0 was not step 0)
    controller = _start('ros.mpc_controller_node', tmp_path, 'controller', use_sim_time=True)
    sim = None
    try:
        _wait(ros_node, lambda: subscription.get_publisher_count() > 0, 30.0, controller)
        sim = _start('ros.simulator_node', tmp_path, 'simulator', clock_mode='lockstep',
                     use_sim_time=True)
        steps = 60
        _wait(ros_node, lambda: len(samples) >= steps, 60.0, sim, controller)
        _alive(sim, controller)
        chosen = scenario()
        plant, policy = chosen.plant(), chosen.policy()
        x = chosen.x0.copy()
        for t, sample in enumerate(samples[:steps]):
            sol = policy.solve(x)
            du_dx, du_dtheta = policy.sensitivities()
            assert sample.revision == 0 and sample.status == 0, t
            np.testing.assert_allclose(sample.x, x, rtol=0, atol=1e-9, err_msg=f'step {t}')
            np.testing.assert_allclose(sample.u, sol.u, rtol=0, atol=1e-9, err_msg=f'step {t}')
            np.testing.assert_allclose(sample.du_dx, du_dx, rtol=0, atol=1e-9)
            np.testing.assert_allclose(sample.du_dtheta, du_dtheta, rtol=0, atol=1e-9)
            x = plant.step(x, sol.u)
        # one command per simulator period: consecutive odometry stamps, no repeats
        stamps = [sample.odom_stamp.nanoseconds for sample in samples[:steps]]
        period_ns = round(chosen.period_s * 1e9)
        assert np.all(np.diff(stamps) == period_ns)

        # live theta from this process: accepted atomically, applied, revision bumped
        theta = policy.theta.copy()
        theta[th.SLICE_R] *= 3.0
        results = _set(ros_node, [_double_array('theta.p_R', theta[th.SLICE_R])])
        assert results[0].successful, results[0].reason
        seen = len(samples)
        _wait(ros_node, lambda: any(s.revision == 1 for s in samples[seen:]), 20.0, sim,
              controller)
        new = next(s for s in samples[seen:] if s.revision == 1)
        policy.set_theta(theta)
        policy.reset()
        # the command at that state is the policy's at the new theta (up to the warm start)
        np.testing.assert_allclose(new.u, policy.solve(np.array(new.x)).u, atol=1e-6)
        # and not the old theta's: the feedback gain differs (the commands alone may not,
        # when the loop ran on to hover at the target while the set was answered)
        old = chosen.policy()
        old.solve(np.array(new.x))
        assert np.max(np.abs(new.du_dx - old.sensitivities()[0])) > 1e-2

        # invalid sets are refused with a reason and change nothing
        bad_sets = [
            ([_double_array('theta.p_R', [1.0, 2.0, 3.0])], 'must hold 4 values'),
            ([_double_array('theta.p_Q', [math.nan] * 12)], 'non-finite'),
            ([_double_array('theta.p_R', [1.0] * 4), _double_array('theta.p_P', [1e6] * 78)],
             'magnitude limit'),
            ([_double_array('x_ref', [0.0] * 11)], 'must hold 12 values'),
            ([ParameterMsg(name='theta.p_R', value=ParameterValue(
                type=ParameterType.PARAMETER_STRING, string_value='heavy'))], 'type'),
            ([_double_array('horizon', [1.0])], ''),      # read-only (and of another type)
        ]
        for params, reason in bad_sets:
            result = _set(ros_node, params)[0]
            assert not result.successful, params
            assert reason in result.reason, result.reason
        # non-atomic set_parameters works too: one good, one bad, each judged alone
        results = _set(ros_node, [_double_array('theta.p_R', theta[th.SLICE_R] * 2),
                                  _double_array('theta.p_Q', [1.0] * 5)], atomically=False)
        assert results[0].successful and not results[1].successful
        # samples already in flight when the set returned still say revision 1 (the lockstep
        # loop runs on while this process waits for the service): once one says 2, all do
        seen = len(samples)
        _wait(ros_node, lambda: any(s.revision == 2 for s in samples[seen:]), 20.0, sim,
              controller)
        first = next(i for i in range(seen, len(samples)) if samples[i].revision == 2)
        _wait(ros_node, lambda: len(samples) > first + 5, 20.0, sim, controller)
        assert {s.revision for s in samples[first:]} == {2}
        assert {s.revision for s in samples[seen:first]} <= {1}
        _alive(sim, controller)
    finally:
        controller.stop()
        if sim is not None:
            sim.stop()


# -- safe behaviour, wall-clock trigger, odometry from this test ---------------------------

class OdometrySource:
    """Publishes odometry of a state from the test process and watches the controller."""

    def __init__(self, ros_node):
        self.ros_node = ros_node
        self.pub = ros_node.node.create_publisher(Odometry, 'odom', 10)
        self.commands = []
        ros_node.node.create_subscription(
            Float64MultiArray, 'rotor_speeds_cmd',
            lambda msg: self.commands.append(parse_rotor_command(msg)), 100)
        self.samples = []
        ros_node.node.create_subscription(
            Float64MultiArray, f'{CONTROLLER}/sensitivity',
            lambda msg: self.samples.append(parse_sensitivity_message(msg)), DEEP)
        self.diagnostics = []
        ros_node.node.create_subscription(DiagnosticArray, '/diagnostics',
                                          self._on_diagnostics, 10)
        self.stamp_ns = 0

    def _on_diagnostics(self, msg):
        for status in msg.status:
            if status.name.startswith(CONTROLLER.strip('/')) or \
                    status.name.startswith(CONTROLLER):
                self.diagnostics.append(status)

    def publish(self, x, seconds, rate_hz=20.0, raw=None):
        """Publish x (or ``raw(msg)``-edited odometry) at ``rate_hz`` for ``seconds``."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.stamp_ns += int(1e9 / rate_hz)
            stamp = self.ros_node.node.get_clock().now().to_msg()
            msg = state_to_odometry(x, stamp, 'odom', 'base_link')
            if raw is not None:
                raw(msg)
            self.pub.publish(msg)
            self.ros_node.spin_for(1.0 / rate_hz)

    def values(self):
        """Key-values of the newest diagnostics status of the controller."""
        status = self.diagnostics[-1]
        return status.level, {item.key: item.value for item in status.values}


@pytest.fixture
def wall_clock_controller(ros_node, tmp_path):
    source = OdometrySource(ros_node)
    controller = _start('ros.mpc_controller_node', tmp_path, 'controller', use_sim_time=False,
                        odom_timeout_s=0.3, max_plan_steps=2)
    yield source, controller
    controller.stop()


@pytest.mark.faults       # also part of the fault-injection suite
def test_safe_behaviour_on_bad_stale_and_unsolvable_odometry(wall_clock_controller, ros_node):
    source, controller = wall_clock_controller
    chosen = scenario()
    # no command before the first valid odometry (the node is up once it reports)
    _wait(ros_node, lambda: source.diagnostics, 20.0, controller)
    ros_node.spin_for(1.0)
    assert source.commands == []
    assert source.values()[0] == DiagnosticStatus.WARN
    assert 'waiting for odometry' in source.diagnostics[-1].message

    x0 = chosen.x0.copy()
    source.publish(x0, 1.0)
    assert source.samples and source.samples[-1].status == 0
    hover = np.mean(chosen.u_ref)

    # NaN in the pose and a zero quaternion: rejected and counted, the node flies on
    def nan(msg):
        msg.pose.pose.position.x = math.nan

    def zero_quaternion(msg):
        q = msg.pose.pose.orientation
        q.x = q.y = q.z = q.w = 0.0

    source.publish(x0, 0.2, raw=nan)
    source.publish(x0, 0.2, raw=zero_quaternion)
    source.publish(x0, 1.2)
    level, values = source.values()
    assert int(values['rejected_odometry']) >= 4, values

    # silence: the timer keeps commanding, the failsafe input, with an ERROR diagnostic
    count = len(source.commands)
    ros_node.spin_for(1.5)
    assert len(source.commands) > count + 5
    failsafe = np.full(4, math.sqrt(0.9) * hover)
    np.testing.assert_allclose(source.commands[-1], failsafe)
    assert source.samples[-1].status == -1
    assert any(status.level == DiagnosticStatus.ERROR for status in source.diagnostics[-2:])
    # fresh odometry: back to the MPC
    source.publish(x0, 1.0)
    assert source.samples[-1].status == 0

    # a solver failure forced through the state: shifted plan, then failsafe, then recovery
    far = x0.copy()
    far[0] += 1e5
    before = len(source.samples)
    source.publish(far, 1.0)
    failed = source.samples[before:]
    assert any(s.status != 0 for s in failed)
    assert all(np.all(np.isfinite(s.u)) and s.u.min() >= 0 and s.u.max() <= 630
               for s in failed)
    np.testing.assert_allclose(source.commands[-1], failsafe)
    source.publish(x0, 1.2)
    assert source.samples[-1].status == 0
    level, values = source.values()
    assert int(values['shifted_plan_steps']) == 2 and int(values['solver_failures']) >= 3
    assert int(values['failsafe_steps']) >= 1
    # every command the node ever sent was finite and within the rotor bounds
    commands = np.array(source.commands)
    assert np.all(np.isfinite(commands)) and commands.min() >= 0 and commands.max() <= 630
    _alive(controller)


@pytest.mark.faults       # also part of the fault-injection suite
def test_the_odometry_trigger_on_wall_time_keeps_commanding_when_odometry_stops(ros_node,
                                                                                tmp_path):
    # odometry at the control rate, answered at once; then none: the watchdog steps on
    # the last odometry every 1.5 periods, the MPC while it is young, then the failsafe
    source = OdometrySource(ros_node)
    controller = _start('ros.mpc_controller_node', tmp_path, 'controller', use_sim_time=False,
                        trigger='odometry', odom_timeout_s=0.3)
    try:
        _wait(ros_node, lambda: source.diagnostics, 20.0, controller)
        x0 = scenario().x0.copy()
        deadline = time.monotonic() + 20.0
        while not source.samples:          # until the controller heard the odometry
            assert time.monotonic() < deadline, controller.log_text()[-2000:]
            source.publish(x0, 0.1, rate_hz=10.0)
        source.publish(x0, 1.0, rate_hz=10.0)
        assert source.samples[-1].status == 0
        count = len(source.commands)
        _wait(ros_node, lambda: int(source.values()[1]['watchdog_steps']) >= 3, 5.0,
              controller)
        ros_node.spin_for(0.5)
        assert len(source.commands) >= count + 5
        failsafe = np.full(4, math.sqrt(0.9) * np.mean(scenario().u_ref))
        np.testing.assert_allclose(source.commands[-1], failsafe)
        assert source.samples[-1].status == -1
        # odometry again: answered at once by the MPC
        source.publish(x0, 0.5, rate_hz=10.0)
        assert source.samples[-1].status == 0
        commands = np.array(source.commands)
        assert np.all(np.isfinite(commands)) and commands.min() >= 0 and commands.max() <= 630
        _alive(controller)
    finally:
        controller.stop()


def test_leaving_the_envelope_aborts_the_revision_and_flies_the_safe_theta(ros_node, tmp_path):
    """The envelope abort in the node: status, revisions, safe theta, diagnostics, re-arming.

    A wall-clock controller with a tilt limit of 0.3 rad; odometry from this test. A
    candidate theta set live flies level odometry normally; a state tilted by 0.5 rad aborts
    it: that step's sample has the abort status and the candidate's revision, later ones the
    next revision and the start theta's commands (an offline MPC with the start theta at
    the same state is the answer). A new theta set re-arms the abort. A safe theta set
    (``safe_theta.*``, as a tuner sends its best theta) makes no revision, and the next abort
    flies it instead of the start theta; a bad one is refused with its name.
    """
    source = OdometrySource(ros_node)
    controller = _start('ros.mpc_controller_node', tmp_path, 'controller', use_sim_time=False,
                        **{'envelope.max_tilt_rad': 0.3})
    try:
        chosen = scenario()
        level, tilted = chosen.x0.copy(), chosen.x0.copy()
        tilted[6] = 0.5
        _wait(ros_node, lambda: source.diagnostics, 20.0, controller)
        source.publish(level, 0.5)
        assert source.samples and {s.status for s in source.samples} == {0}
        start = chosen.initial_theta()
        candidate = start.copy()
        candidate[0:3] *= 4.0
        params = th.to_parameters(candidate)
        assert _set(ros_node, [_double_array(name, params[name])
                               for name in th.PARAMETER_NAMES])[0].successful
        source.publish(level, 0.5)
        assert source.samples[-1].revision == 1 and source.samples[-1].status == 0
        seen = len(source.samples)
        source.publish(tilted, 1.0)
        after = source.samples[seen:]
        aborts = [i for i, s in enumerate(after) if s.status == ENVELOPE_ABORT_STATUS]
        assert len(aborts) == 1, [s.status for s in after]
        assert after[aborts[0]].revision == 1 and after[aborts[0]].x[6] == pytest.approx(0.5)
        assert {s.revision for s in after[aborts[0] + 1:]} == {2}
        assert {s.status for s in after[aborts[0] + 1:]} == {0}
        expected = chosen.policy(theta=start).solve(after[-1].x).u
        np.testing.assert_allclose(after[-1].u, expected, rtol=1e-6, atol=1e-3)
        source.publish(tilted, 1.2)                  # a diagnostics period; no new abort
        level_, values = source.values()
        assert values['envelope_aborts'] == '1' and 'tilt 0.500 rad' in \
            values['last_fallback_reason'], values
        # a new candidate re-arms it
        source.publish(level, 0.3)
        assert _set(ros_node, [_double_array(name, params[name])
                               for name in th.PARAMETER_NAMES])[0].successful
        seen = len(source.samples)
        source.publish(tilted, 0.5)
        assert [s.revision for s in source.samples[seen:]
                if s.status == ENVELOPE_ABORT_STATUS] == [3]
        # a safe theta set (a tuner's best): no revision; the next abort flies it
        best = start.copy()
        best[th.SLICE_R] *= 4.0
        safe = th.to_safe_parameters(best)
        bad = _set(ros_node, [_double_array('safe_theta.p_R', [1.0, math.nan, 1.0, 1.0])])[0]
        assert not bad.successful and 'safe_theta.p_R' in bad.reason, bad.reason
        assert _set(ros_node, [_double_array(name, safe[name])
                               for name in th.SAFE_PARAMETER_NAMES])[0].successful
        source.publish(level, 0.3)
        assert source.samples[-1].revision == 4 and source.samples[-1].status == 0
        assert _set(ros_node, [_double_array(name, params[name])
                               for name in th.PARAMETER_NAMES])[0].successful   # re-arm: 5
        seen = len(source.samples)
        source.publish(tilted, 1.2)
        after = source.samples[seen:]
        assert [s.revision for s in after if s.status == ENVELOPE_ABORT_STATUS] == [5]
        assert after[-1].revision == 6 and after[-1].status == 0
        u_best = chosen.policy(theta=best).solve(after[-1].x).u
        u_start = chosen.policy(theta=start).solve(after[-1].x).u
        assert np.max(np.abs(u_best - u_start)) > 1.0       # the two are told apart
        np.testing.assert_allclose(after[-1].u, u_best, rtol=1e-6, atol=1e-3)
        level_, values = source.values()
        assert values['safe_theta'].startswith('set '), values
        # limits are checked: 0 is no envelope
        result = _set(ros_node, [ParameterMsg(name='envelope.max_tilt_rad', value=ParameterValue(
            type=ParameterType.PARAMETER_DOUBLE, double_value=0.0))])[0]
        assert not result.successful and 'must be > 0' in result.reason
        _alive(controller)
    finally:
        controller.stop()


@pytest.mark.parametrize('trigger, use_sim_time, held', [
    ('odometry', True, True), ('odometry', False, False), ('timer', False, False)])
def test_only_a_lockstep_controller_may_be_held(rclpy_context, trigger, use_sim_time, held):
    """A held controller sends no commands: ~/hold is refused on wall time, whatever trigger."""
    from rclpy.parameter import Parameter
    from std_srvs.srv import SetBool
    from hybrid_mpc_ros.ros.mpc_controller_node import MPCControllerNode
    node = MPCControllerNode(parameter_overrides=[
        Parameter('trigger', value=trigger), Parameter('use_sim_time', value=use_sim_time)])
    try:
        answer = node._on_hold(SetBool.Request(data=True), SetBool.Response())
    finally:
        node.destroy_node()
    assert answer.success == held, answer.message
    if not held:
        assert 'wall time' in answer.message and 'never go without' in answer.message


def test_an_offset_free_controller_reports_its_estimate_as_the_rollout(tmp_path, ros_node):
    """disturbance_observer_gain on: version 2 messages whose d and du/dd are the rollout's."""
    from hybrid_mpc_ros.core.learning.episode import rollout
    from hybrid_mpc_ros.core.mpc.offset_free import OffsetFreePolicy
    samples = []
    subscription = ros_node.node.create_subscription(
        Float64MultiArray, f'{CONTROLLER}/sensitivity',
        lambda msg: samples.append(parse_sensitivity_message(msg)), DEEP)
    controller = _start('ros.mpc_controller_node', tmp_path, 'controller', use_sim_time=True,
                        disturbance_observer_gain=0.5)
    sim = None
    try:
        _wait(ros_node, lambda: subscription.get_publisher_count() > 0, 30.0, controller)
        sim = _start('ros.simulator_node', tmp_path, 'simulator', clock_mode='lockstep',
                     use_sim_time=True)
        steps = 30
        _wait(ros_node, lambda: len(samples) >= steps, 60.0, sim, controller)
        _alive(sim, controller)
        chosen = scenario()
        policy = OffsetFreePolicy(chosen.nominal_model(), chosen.mpc_config,
                                  chosen.initial_theta(), chosen.x_ref, chosen.u_ref, 0.5)
        record = rollout(chosen.plant().step, policy, chosen.x0, steps)
        assert np.max(np.abs(record.d[-1])) > 1e-4         # the arXiv model is not the plant
        for t, sample in enumerate(samples[:steps]):
            assert sample.offset_free and sample.status == 0, t
            np.testing.assert_allclose(sample.x, record.x[t], rtol=0, atol=1e-9)
            np.testing.assert_allclose(sample.u, record.u[t], rtol=0, atol=1e-8)
            np.testing.assert_allclose(sample.d, record.d[t], rtol=0, atol=1e-9)
            np.testing.assert_allclose(sample.du_dd, record.du_dd[t], rtol=0, atol=1e-8)
    finally:
        for node in (sim, controller):
            if node is not None:
                node.stop()


def test_a_jump_of_simulated_time_is_logged(ros_node, tmp_path):
    """/clock going back, or forward by more than a second, is said in the log; not time's start.

    The first /clock message (from 0, here to 100 s) is no jump; +0.1 s is none either.
    """
    from rosgraph_msgs.msg import Clock as ClockMsg
    from builtin_interfaces.msg import Time
    controller = _start('ros.mpc_controller_node', tmp_path, 'controller', use_sim_time=True)
    publisher = ros_node.node.create_publisher(ClockMsg, '/clock', 10)
    try:
        _wait(ros_node, lambda: publisher.get_subscription_count() > 0, 20.0, controller)

        def clock(seconds):
            sec, nanosec = divmod(round(seconds * 1e9), 1_000_000_000)
            publisher.publish(ClockMsg(clock=Time(sec=sec, nanosec=nanosec)))
            ros_node.spin_for(0.3)
        for seconds in (100.0, 100.1, 500.1, 50.0):
            clock(seconds)
        _wait(ros_node, lambda: 'jumped back' in controller.log_text(), 10.0, controller)
        lines = [line for line in controller.log_text().splitlines() if 'jumped' in line]
        assert len(lines) == 2, lines
        assert 'jumped forward by 400.000 s to 500.100 s: nothing changes' in lines[0]
        assert 'jumped back by 450.100 s to 50.000 s' in lines[1]
        _alive(controller)
    finally:
        controller.stop()
