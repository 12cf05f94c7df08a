"""Fault injection on the MPC controller node: a real process, faults from this test (``faults``).

The controller runs on its wall-clock timer (a vehicle's mode) or on the odometry
trigger, with odometry published by this test, which plays a broken state estimator:

* NaN and Inf fields, a zero and a non-unit quaternion, a stamp going backwards: each is
  refused and counted in the diagnostics (exactly), and the controller flies on with the
  last valid odometry;
* a burst of odometry at 1 kHz for 5 s: the control rate stays at 1/period (stamps of
  the controller's own steps);
* silence: the failsafe command goes out within two control periods of the first
  odometry that did not come, and the MPC is back with the next odometry;
* parameter sets with wrong lengths, NaN, a wrong type, one bad value among good ones,
  values whose squares overflow: each refused with a reason, theta and the revision
  unchanged;
* every writable parameter swept across its range in both trigger modes: applied or
  refused with a reason, the node alive and commanding throughout;
* a storm from the ground (:mod:`hybrid_mpc_ros.tools.storm`: subscribers joining and
  leaving, parameter gets and sets, service calls, each from a new participant): the
  controller steps every period and answers every call, and a step fails safe only on
  stale odometry (odometry that DDS delivered late under that traffic; ``hybrid-mpc bench
  controller --storm`` measures how often).

Every command the controller sent during a test is finite and within the rotor bounds.
"""

import math
import time

from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Odometry
import numpy as np
import pytest
from rcl_interfaces.msg import Parameter as ParameterMsg, ParameterType, ParameterValue
from rcl_interfaces.srv import GetParameters, SetParameters, SetParametersAtomically
from std_msgs.msg import Float64MultiArray

from hybrid_mpc_ros.core.mpc import theta as th
from hybrid_mpc_ros.ros.msgs import state_to_odometry
from hybrid_mpc_ros.ros.sensitivity_msg import parse_sensitivity_message
from hybrid_mpc_ros.tools import fault_injection as fi
from hybrid_mpc_ros.tools import processes
from hybrid_mpc_ros.tools import storm
import param_sweep
from scenario_setup import scenario, scenario_path

pytestmark = pytest.mark.faults
CONTROLLER = '/mpc_controller'
PERIOD_S = scenario().period_s


class Rig:
    """The controller process and this test's odometry, commands, samples, diagnostics."""

    def __init__(self, ros_node, tmp_path, trigger):
        self.ros_node = ros_node
        node = ros_node.node
        self.pub = node.create_publisher(Odometry, 'odom', 10)
        config = scenario().mpc_config
        self.commands = fi.CommandWatch(node, config.u_min, config.u_max)
        self.command_times = []
        node.create_subscription(Float64MultiArray, 'rotor_speeds_cmd',
                                 lambda msg: self.command_times.append(time.monotonic()), 10)
        self.samples = []
        node.create_subscription(
            Float64MultiArray, f'{CONTROLLER}/sensitivity',
            lambda msg: self.samples.append(parse_sensitivity_message(msg)), fi.stream_qos())
        self.diagnostics = []
        node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics, 10)
        self.x0 = scenario().x0.copy()
        self.streaming = False
        self.last_stamp_ns = None
        self.log_dir = str(tmp_path)
        node.create_timer(PERIOD_S, self._stream)
        self.controller = processes.start_node(
            'ros.mpc_controller_node', params_file=scenario_path('arxiv_v1'),
            params={'use_sim_time': False, 'trigger': trigger},
            log_path=str(tmp_path / 'controller.log'))
        self.wait(lambda: self.diagnostics, 30.0)

    def _on_diagnostics(self, msg):
        for status in msg.status:
            if status.name.startswith(CONTROLLER.strip('/')):
                self.diagnostics.append({item.key: item.value for item in status.values})

    def now_ns(self):
        return self.ros_node.node.get_clock().now().nanoseconds

    def odometry(self):
        stamp = self.ros_node.node.get_clock().now().to_msg()
        return state_to_odometry(self.x0, stamp, 'odom', 'base_link')

    def _stream(self):
        if self.streaming:
            msg = self.odometry()
            self.pub.publish(msg)
            self.last_stamp_ns = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec

    def wait(self, predicate, timeout):
        def done():
            assert self.controller.alive(), self.controller.log_text()[-3000:]
            return predicate()
        assert self.ros_node.spin_until(done, timeout), self.controller.log_text()[-3000:]

    def fresh_diagnostics(self):
        """The first diagnostics published after now."""
        count = len(self.diagnostics)
        self.wait(lambda: len(self.diagnostics) > count, 5.0)
        return self.diagnostics[-1]

    def check_safe(self):
        assert self.commands.count > 0 and self.commands.bad == []
        assert self.controller.alive(), self.controller.log_text()[-3000:]

    def stop(self):
        self.controller.stop()


@pytest.fixture
def rig(ros_node, tmp_path, request):
    made = Rig(ros_node, tmp_path, getattr(request, 'param', 'timer'))
    yield made
    made.stop()


def test_invalid_odometry_is_refused_and_counted_and_the_controller_flies_on(rig):
    rig.streaming = True
    rig.wait(lambda: len(rig.samples) >= 5, 10.0)
    assert int(rig.fresh_diagnostics()['rejected_odometry']) == 0
    bad = fi.bad_odometry(rig.x0, rig.now_ns())
    for _, msg in bad:
        rig.pub.publish(msg)
        rig.ros_node.spin_for(0.05)
    rig.wait(lambda: int(rig.diagnostics[-1]['rejected_odometry']) >= len(bad), 5.0)
    rig.ros_node.spin_for(0.5)
    values = rig.fresh_diagnostics()
    assert int(values['rejected_odometry']) == len(bad) == len(fi.ODOMETRY_FAULTS), values
    assert 'older than the last accepted one' in values['last_rejection'], values
    # the MPC kept flying on valid odometry: no fallback, no failsafe
    assert int(values['failsafe_steps']) == 0 and int(values['solver_failures']) == 0
    assert all(s.status == 0 for s in rig.samples[-5:])
    rig.check_safe()


def test_an_odometry_burst_at_1khz_keeps_the_control_rate(rig):
    rig.streaming = True
    rig.wait(lambda: len(rig.samples) >= 5, 10.0)
    rig.streaming = False
    msg = rig.odometry()
    published, start, burst_start_ns = 0, time.monotonic(), rig.now_ns()
    end = start + 5.0
    next_at = start
    while time.monotonic() < end:
        msg.header.stamp = rig.ros_node.node.get_clock().now().to_msg()
        rig.pub.publish(msg)
        published += 1
        if published % 20 == 0:
            rig.ros_node.executor.spin_once(timeout_sec=0.0)
        next_at += 1e-3
        while time.monotonic() < next_at:
            pass
    burst_s, burst_end_ns = time.monotonic() - start, rig.now_ns()
    rig.streaming = True
    rig.ros_node.spin_for(0.5)
    assert published / burst_s >= 800.0, f'the test published at {published / burst_s:.0f} Hz'
    # the controller's own step stamps during the burst (after its first 0.5 s): one per
    # period
    start_ns, end_ns = burst_start_ns + 500_000_000, burst_end_ns - 100_000_000
    steps = [s.stamp.nanoseconds for s in rig.samples if start_ns <= s.stamp.nanoseconds
             <= end_ns]
    expected = (end_ns - start_ns) / 1e9 / PERIOD_S
    assert 0.9 * expected <= len(steps) <= 1.1 * expected + 1, (len(steps), expected)
    assert max(np.diff(steps)) < 2 * PERIOD_S * 1e9, np.diff(steps)
    assert all(s.status == 0 for s in rig.samples if start_ns <= s.stamp.nanoseconds <= end_ns)
    rig.check_safe()


def test_silence_brings_the_failsafe_within_two_periods_and_odometry_brings_the_mpc_back(rig):
    rig.streaming = True
    rig.wait(lambda: len(rig.samples) >= 10, 10.0)
    rig.streaming = False
    last_ns = rig.last_stamp_ns              # no odometry after this one
    rig.ros_node.spin_for(1.0)
    later = [s for s in rig.samples if s.stamp.nanoseconds > last_ns]
    failsafe = [s for s in later if s.status == -1]
    assert failsafe, [s.status for s in later]
    first = failsafe[0]
    hover = np.mean(scenario().u_ref)
    np.testing.assert_allclose(first.u, np.full(4, math.sqrt(0.9) * hover))
    # the newest odometry was due again one period after the last one
    silent_s = (first.stamp.nanoseconds - last_ns) / 1e9 - PERIOD_S
    assert silent_s <= 2 * PERIOD_S + 0.03, silent_s
    assert all(s.status == 0 for s in later if s.stamp.nanoseconds < first.stamp.nanoseconds)
    values = rig.fresh_diagnostics()
    assert int(values['stale_odometry_steps']) >= 1
    count = len(rig.samples)
    rig.streaming = True
    rig.wait(lambda: any(s.status == 0 for s in rig.samples[count:]), 5.0)
    rig.check_safe()


def test_a_storm_from_the_ground_keeps_the_steps_on_time_and_every_call_answered(rig):
    """Ground traffic neither stops the steps nor goes unanswered.

    Asserted on the controller's own step stamps (its sensitivity samples), counters and
    answers: a step every period, every parameter set applied (one revision each), every
    call answered, every command safe, and no failsafe step but for stale odometry. Not
    asserted: zero failsafe steps. On a loaded 2-core machine the storm delays the
    odometry in DDS by up to a few hundred milliseconds for every subscriber (a third
    process sees the same delays), which the controller rightly flies as stale.
    """
    rig.streaming = True
    rig.wait(lambda: len(rig.samples) >= 10, 10.0)
    revision = rig.samples[-1].revision
    before = rig.fresh_diagnostics()
    domain_id = rig.ros_node.node.context.get_domain_id()
    ground = storm.start(domain_id, rig.log_dir, CONTROLLER)
    try:
        start_ns = rig.now_ns()
        rig.ros_node.spin_for(8.0)
        end_ns = rig.now_ns()
    finally:
        counts = storm.stop(ground)
    rig.ros_node.spin_for(0.5)
    after = rig.fresh_diagnostics()
    # the storm did what it says: every call answered, every set applied (how many it
    # managed in 8 s depends on the machine: each action starts a participant of its own;
    # beside two CPU hogs it did 2 sets)
    assert counts['param set'][0] >= 1 and counts['echo sensitivity'][0] >= 1, counts
    for label, (begun, completed) in counts.items():
        assert completed == begun, (label, counts)
    assert rig.samples[-1].revision == revision + counts['param set'][1]
    steps = [s for s in rig.samples if start_ns <= s.stamp.nanoseconds <= end_ns]
    stamps = [s.stamp.nanoseconds for s in steps]
    expected = (end_ns - start_ns) / 1e9 / PERIOD_S
    assert 0.9 * expected <= len(steps) <= 1.1 * expected + 1, (len(steps), expected)
    assert max(np.diff(stamps)) < 2 * PERIOD_S * 1e9, np.diff(stamps)
    failsafe, stale = (int(after[key]) - int(before[key])
                       for key in ('failsafe_steps', 'stale_odometry_steps'))
    assert failsafe == stale, (before, after)
    assert int(after['solver_failures']) == int(before['solver_failures'])
    # the diagnostics say a tuner (here the storm) set theta lately
    assert before['last_theta_set_s_ago'] == 'never'
    assert float(after['last_theta_set_s_ago']) < 10.0, after
    rig.check_safe()


def _theta(ros_node):
    response = ros_node.call(GetParameters, f'{CONTROLLER}/get_parameters',
                             GetParameters.Request(names=list(th.PARAMETER_NAMES)))
    return {name: list(value.double_array_value)
            for name, value in zip(th.PARAMETER_NAMES, response.values)}


def _double_array(name, values):
    return ParameterMsg(name=name, value=ParameterValue(
        type=ParameterType.PARAMETER_DOUBLE_ARRAY, double_array_value=list(values)))


def test_bad_parameter_sets_are_refused_with_a_reason_and_change_nothing(rig, ros_node):
    rig.streaming = True
    rig.wait(lambda: len(rig.samples) >= 5, 10.0)
    before = _theta(ros_node)
    revision = rig.samples[-1].revision
    p_q = before['theta.p_Q']
    wrong_type = ParameterMsg(name='theta.p_R', value=ParameterValue(
        type=ParameterType.PARAMETER_STRING, string_value='1, 2, 3, 4'))
    bad_sets = {
        'wrong length': [_double_array('theta.p_Q', p_q[:-1])],
        'NaN': [_double_array('theta.p_Q', p_q[:-1] + [math.nan])],
        'Inf': [_double_array('theta.p_P', [math.inf] * len(before['theta.p_P']))],
        'wrong type': [wrong_type],
        'squares overflow (an indefinite, infinite cost)':
            [_double_array('theta.p_Q', [1e200] * len(p_q))],
        'one bad among good ones': [_double_array('theta.p_Q', [1.5] * len(p_q)),
                                    _double_array('theta.p_R', [math.nan] * 4)],
    }
    for what, params in bad_sets.items():
        response = ros_node.call(SetParametersAtomically,
                                 f'{CONTROLLER}/set_parameters_atomically',
                                 SetParametersAtomically.Request(parameters=params))
        assert not response.result.successful, what
        assert response.result.reason.strip(), what
        # one by one too: each bad value refused on its own
        results = ros_node.call(SetParameters, f'{CONTROLLER}/set_parameters',
                                SetParameters.Request(parameters=params[-1:])).results
        assert not results[0].successful and results[0].reason.strip(), what
    assert _theta(ros_node) == before
    count = len(rig.samples)
    rig.wait(lambda: len(rig.samples) > count + 3, 5.0)
    assert {s.revision for s in rig.samples[count:]} == {revision}
    assert rig.fresh_diagnostics()['theta_revision'] == str(revision)
    rig.check_safe()


@pytest.mark.parametrize('rig', ['timer', 'odometry'], indirect=True)
def test_no_runtime_parameter_value_kills_the_controller_or_stops_its_commands(rig, ros_node):
    rig.streaming = True
    rig.wait(lambda: len(rig.command_times) >= 3, 10.0)

    def check_alive(context):
        rig.ros_node.executor.spin_once(timeout_sec=0.0)
        assert rig.controller.alive(), f'{context}\n{rig.controller.log_text()[-3000:]}'
        assert time.monotonic() - rig.command_times[-1] < 1.5, \
            f'no command for 1.5 s after {context}'

    size = len(scenario().x_ref)
    outcomes = param_sweep.sweep(
        param_sweep.ParameterClient(ros_node, CONTROLLER), rig.controller, check_alive,
        extra={'x_ref': [[0.0] * size, [float(v) for v in scenario().x0]]}, max_positions=16)
    print(param_sweep.report(outcomes))
    swept = {outcome.name for outcome in outcomes}
    assert set(th.PARAMETER_NAMES) | {'x_ref', 'odom_timeout_s', 'max_plan_steps',
                                      'failsafe_thrust_fraction'} <= swept, swept
    assert any(o.applied for o in outcomes) and any(not o.applied for o in outcomes)
    rig.check_safe()
