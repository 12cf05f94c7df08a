"""The real simulator node, run in its own process and talked to over DDS.

Each test starts ``python -m hybrid_mpc_ros.ros.simulator_node`` through
:func:`hybrid_mpc_ros.tools.processes.start_node` in this session's private ROS domain (see
``conftest.py``) and checks what comes back against :class:`Quadcopter` directly.
"""

import ast
import math
import os
import re
import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from nav_msgs.msg import Odometry
import numpy as np
import pytest
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import Trigger
import yaml

from hybrid_mpc_ros.tools import processes
from hybrid_mpc_ros.core.model.quadcopter import Quadcopter, QuadParams
from hybrid_mpc_ros.ros.msgs import odometry_to_state, parse_rotor_command, rotor_command
from hybrid_mpc_ros.ros.simulator_node import DEFAULT_CLOCK_MODE
import param_sweep

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG_DIR = os.path.join(ROOT, 'config')
CLOCK_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT)
START_TIMEOUT = 15.0
X0 = np.array([1.0, -2.0, 3.0, 0.2, -0.1, 0.05, 0.05, -0.03, 0.4, 0.01, -0.02, 0.03])


def _stamp_ns(stamp):
    return stamp.sec * 1_000_000_000 + stamp.nanosec


@pytest.fixture
def simulator(rclpy_context):
    """Start simulator processes; stop them at teardown and insist on a clean exit."""
    started = []

    def start(**kwargs):
        process = processes.start_node('ros.simulator_node', **kwargs)
        started.append(process)
        return process

    yield start
    for process in started:
        was_alive = process.alive()
        code = process.stop(timeout=5.0)
        log = process.log_text()
        assert was_alive, f'simulator died during the test:\n{log}'
        assert code == 0, f'simulator exited with {code}:\n{log}'
        assert 'Traceback' not in log, log


class Driver:
    """A controller stand-in: sends one command and waits for the odometry it causes."""

    def __init__(self, probe, process):
        self.probe = probe
        self.process = process
        self.odoms = probe.collect(Odometry, 'odom')
        self.clocks = probe.collect(Clock, '/clock', CLOCK_QOS)
        self.diagnostics = probe.collect(DiagnosticArray, '/diagnostics')
        self.publisher = probe.node.create_publisher(Float64MultiArray, 'rotor_speeds_cmd', 10)

    def wait_ready(self):
        """Wait for a first odometry (startup or lockstep re-publish) and a matched command."""
        ready = self.probe.spin_until(
            lambda: (bool(self.odoms) and self.publisher.get_subscription_count() > 0)
            or not self.process.alive(), START_TIMEOUT)
        assert ready and self.process.alive(), \
            f'simulator not ready within {START_TIMEOUT} s:\n{self.process.log_text()}'
        return self.state()

    def state(self):
        return odometry_to_state(self.odoms[-1])

    def send(self, data):
        """Publish ``data`` (any list) as a command; return the next odometry message."""
        before = len(self.odoms)
        msg = Float64MultiArray()
        msg.data = [float(value) for value in data]
        self.publisher.publish(msg)
        assert self.probe.spin_until(lambda: len(self.odoms) > before, 5.0), \
            f'no odometry after a command:\n{self.process.log_text()}'
        return self.odoms[before]

    def diagnostic_values(self, predicate, timeout=4.0):
        """Wait for a diagnostics status whose values satisfy ``predicate``; return them."""
        def matching():
            for array in reversed(self.diagnostics):
                for status in array.status:
                    values = {item.key: item.value for item in status.values}
                    if status.name.startswith('quadcopter_simulator') and predicate(values):
                        return values
            return None
        assert self.probe.spin_until(lambda: matching() is not None, timeout), \
            f'no matching diagnostics; last: {self.diagnostics[-1:] or None}'
        return matching()


def test_lockstep_command_moves_state_as_the_model_predicts(simulator, ros_node):
    mismatch = os.path.join(CONFIG_DIR, 'plant_mismatch_example.yaml')
    sim = simulator(params_file=mismatch,
                    params={'clock_mode': 'lockstep', 'initial_state': X0.tolist(),
                            'period_s': 0.05, 'substeps': 3})
    driver = Driver(ros_node, sim)
    x = driver.wait_ready()
    np.testing.assert_allclose(x, X0, atol=1e-12)
    # the parameter file's heavier, draggier plant is the one integrated
    plant = Quadcopter(QuadParams.from_yaml(mismatch, 'quadcopter_simulator'), 0.05, 3)
    assert plant.params.mass != QuadParams().mass
    for command in ([600.0, 610.0, 630.0, 620.0], [625.0, 615.0, 605.0, 629.0]):
        odom = driver.send(command)
        expected = plant.step(x, np.array(command))
        x = odometry_to_state(odom)
        np.testing.assert_allclose(x, expected, rtol=0.0, atol=1e-9)
    assert odom.header.frame_id == 'odom' and odom.child_frame_id == 'base_link'


def test_published_scenario_makes_the_node_integrate_with_forward_euler(simulator, ros_node):
    """The scenario's ``integrator: euler`` is read: a lockstep step is one Euler step."""
    path = os.path.join(CONFIG_DIR, 'scenarios', 'l4dc2026.yaml')
    with open(path, encoding='utf-8') as stream:
        section = yaml.safe_load(stream)['quadcopter_simulator']['ros__parameters']
    assert (section['integrator'], section['substeps']) == ('euler', 1)
    sim = simulator(params_file=path,
                    params={'clock_mode': 'lockstep', 'initial_state': X0.tolist()})
    driver = Driver(ros_node, sim)
    x = driver.wait_ready()
    euler = Quadcopter(QuadParams.from_mapping(section['plant']), 0.1, 1, integrator='euler')
    rk4 = Quadcopter(QuadParams.from_mapping(section['plant']), 0.1, 4)
    for command in ([600.0, 610.0, 630.0, 620.0], [625.0, 615.0, 605.0, 629.0]):
        odom = driver.send(command)
        expected = euler.step(x, np.array(command))
        # the two integrators differ by far more than the tolerance: the check can tell
        assert np.max(np.abs(rk4.step(x, np.array(command)) - expected)) > 1e-5
        x = odometry_to_state(odom)
        np.testing.assert_allclose(x, expected, rtol=0.0, atol=1e-9)
    assert 'euler, 1 substeps' in sim.log_text()


def test_an_unknown_integrator_is_a_configuration_error(rclpy_context):
    with processes.start_node('ros.simulator_node', params={'integrator': 'midpoint'}) as sim:
        deadline = time.monotonic() + START_TIMEOUT
        while sim.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sim.returncode == 1
    log = sim.log_text()
    assert 'invalid configuration' in log and 'integrator' in log
    assert 'Traceback' not in log


def test_lockstep_advances_one_period_per_command_and_clock_agrees(simulator, ros_node):
    period_ns = 20_000_000
    sim = simulator(params={'clock_mode': 'lockstep', 'period_s': period_ns * 1e-9})
    driver = Driver(ros_node, sim)
    driver.wait_ready()
    assert _stamp_ns(driver.odoms[-1].header.stamp) == 0
    # re-publishing while idle never advances
    ros_node.spin_for(0.7)
    assert all(_stamp_ns(msg.header.stamp) == 0 for msg in driver.odoms)
    steps = 25
    hover = QuadParams().hover_speed
    stamps = [_stamp_ns(driver.send([hover] * 4).header.stamp) for _ in range(steps)]
    assert stamps == [k * period_ns for k in range(1, steps + 1)]
    assert ros_node.spin_until(
        lambda: driver.clocks and _stamp_ns(driver.clocks[-1].clock) == steps * period_ns, 2.0)
    clock_ns = [_stamp_ns(msg.clock) for msg in driver.clocks]
    assert clock_ns == sorted(clock_ns), 'simulation time went backwards'
    assert set(clock_ns) <= {k * period_ns for k in range(steps + 1)}


def test_malformed_commands_are_rejected_counted_and_last_valid_kept(simulator, ros_node):
    sim = simulator(params={'clock_mode': 'lockstep', 'initial_state': X0.tolist()})
    driver = Driver(ros_node, sim)
    x = driver.wait_ready()
    plant = Quadcopter()
    valid = np.array([621.0, 619.0, 622.0, 618.0])
    x = odometry_to_state(driver.send(valid))
    for bad in ([600.0, 600.0, 600.0], [600.0, math.nan, 600.0, 600.0],
                [600.0, 600.0, math.inf, 600.0, 1.0]):
        odom = driver.send(bad)
        expected = plant.step(x, valid)
        x = odometry_to_state(odom)
        np.testing.assert_allclose(x, expected, rtol=0.0, atol=1e-9)
    values = driver.diagnostic_values(lambda v: v['rejected_commands'] == '3')
    assert values['clamped_commands'] == '0'
    assert values['steps'] == '4' and values['clock_mode'] == 'lockstep'
    log = sim.log_text()
    assert 'rejected rotor command' in log and 'must hold 4 rotor speeds, got 3' in log


def test_out_of_range_speeds_are_clamped_and_counted(simulator, ros_node):
    sim = simulator(params={'clock_mode': 'lockstep'})
    driver = Driver(ros_node, sim)
    x = driver.wait_ready()
    plant = Quadcopter()
    command = np.array([700.0, -5.0, 620.0, 630.0])
    odom = driver.send(command)
    expected = plant.step(x, np.clip(command, 0.0, 630.0))
    np.testing.assert_allclose(odometry_to_state(odom), expected, rtol=0.0, atol=1e-9)
    values = driver.diagnostic_values(lambda v: v['clamped_commands'] == '1')
    assert values['rejected_commands'] == '0'
    assert 'clamped' in sim.log_text()


def test_reset_returns_to_initial_state_and_keeps_the_clock(simulator, ros_node):
    sim = simulator(params={'clock_mode': 'lockstep', 'initial_state': X0.tolist()})
    driver = Driver(ros_node, sim)
    driver.wait_ready()
    for _ in range(5):
        driver.send([630.0, 600.0, 630.0, 600.0])
    moved = driver.state()
    assert np.linalg.norm(moved - X0) > 0.1
    before = len(driver.odoms)
    response = ros_node.call(Trigger, '/quadcopter_simulator/reset', Trigger.Request())
    assert response.success, response.message
    assert 'reset' in response.message
    assert ros_node.spin_until(lambda: len(driver.odoms) > before, 2.0)
    np.testing.assert_allclose(odometry_to_state(driver.odoms[before]), X0, atol=1e-12)
    assert _stamp_ns(driver.odoms[before].header.stamp) == 5 * 100_000_000
    # after a reset the hover command is held again; a new initial state is a parameter
    new_x0 = np.zeros(12)
    new_x0[0:3] = (-1.0, 0.5, 2.0)
    request = SetParameters.Request(parameters=[Parameter(
        name='initial_state', value=ParameterValue(type=ParameterType.PARAMETER_DOUBLE_ARRAY,
                                                   double_array_value=new_x0.tolist()))])
    result = ros_node.call(SetParameters, '/quadcopter_simulator/set_parameters', request)
    assert result.results[0].successful, result.results[0].reason
    request.parameters[0].value.double_array_value = [0.0] * 5
    result = ros_node.call(SetParameters, '/quadcopter_simulator/set_parameters', request)
    assert not result.results[0].successful
    assert 'must hold 12 values' in result.results[0].reason
    assert ros_node.call(Trigger, '/quadcopter_simulator/reset', Trigger.Request()).success
    assert ros_node.spin_until(lambda: np.allclose(driver.state(), new_x0, atol=1e-12), 2.0)
    odom = driver.send([QuadParams().hover_speed] * 4)
    np.testing.assert_allclose(odometry_to_state(odom), new_x0, atol=1e-9)


def test_realtime_publishes_at_the_configured_rate(simulator, ros_node):
    period = 0.05
    sim = simulator(params={'clock_mode': 'realtime', 'period_s': period,
                            'command_timeout_s': 0.2})
    driver = Driver(ros_node, sim)
    driver.wait_ready()
    start_count = len(driver.odoms)
    ros_node.spin_for(2.0)
    # the node's own timer, not this process's scheduling: odom is stamped with the node's
    # clock at each step, so the stamps' median spacing is its period (a wrong unit or
    # period would be off by far more than the factor allowed here)
    stamps = [_stamp_ns(msg.header.stamp) for msg in driver.odoms[start_count:]]
    assert len(stamps) >= 5 and all(b > a for a, b in zip(stamps, stamps[1:]))
    spacing_s = float(np.median(np.diff(stamps))) * 1e-9
    assert 0.5 * period < spacing_s < 2.0 * period, spacing_s
    # without commands the hover input is integrated: the vehicle stays put
    np.testing.assert_allclose(driver.state(), np.zeros(12), atol=1e-9)
    assert 'no rotor command' in sim.log_text()


@pytest.mark.parametrize('clock_mode, publish_clock, sim_time', [
    ('realtime', None, False), ('realtime', True, True),
    ('lockstep', None, True), ('lockstep', False, False)])
def test_stamps_follow_the_clock_the_nodes_use(simulator, ros_node, clock_mode,
                                               publish_clock, sim_time):
    """Simulation time and /clock together, or the node's (wall) clock and no /clock."""
    period_ns = 50_000_000
    params = {'clock_mode': clock_mode, 'period_s': period_ns * 1e-9}
    if publish_clock is not None:
        params['publish_clock'] = publish_clock
    wall_before = time.time_ns()
    sim = simulator(params=params)
    driver = Driver(ros_node, sim)
    driver.wait_ready()
    if clock_mode == 'lockstep':
        for _ in range(10):
            driver.send([QuadParams().hover_speed] * 4)
    else:
        ros_node.spin_for(0.6)
    ros_node.spin_for(0.2)
    wall_after = time.time_ns()
    stamps = [_stamp_ns(msg.header.stamp) for msg in driver.odoms]
    assert len(stamps) >= 10 and stamps == sorted(stamps)
    clocks = [_stamp_ns(msg.clock) for msg in driver.clocks]
    if sim_time:
        # every step exactly one period later; in lockstep the first is the start, t = 0
        steps = sorted(set(stamps))
        assert all(stamp % period_ns == 0 for stamp in steps)
        assert all(later - earlier == period_ns for earlier, later in zip(steps, steps[1:]))
        assert clock_mode == 'realtime' or steps[0] == 0
        # /clock carries the same times (realtime keeps running: one period of skew at most)
        assert clocks and all(clock % period_ns == 0 for clock in clocks)
        skew = abs(clocks[-1] - stamps[-1])
        assert skew == 0 if clock_mode == 'lockstep' else skew <= period_ns, (clocks, stamps)
        assert ros_node.node.count_publishers('/clock') == 1
    else:
        assert all(wall_before <= stamp <= wall_after for stamp in stamps[1:]), \
            f'stamps {stamps[1:3]}... not wall time in [{wall_before}, {wall_after}]'
        assert not clocks and ros_node.node.count_publishers('/clock') == 0
        if clock_mode == 'realtime':
            gaps = np.diff(stamps)
            assert np.mean(gaps) == pytest.approx(period_ns, rel=0.2)


def test_frame_ids_follow_the_namespace_or_frame_prefix(simulator, ros_node):
    cases = {
        '/quad1': ({}, ('quad1/odom', 'quad1/base_link')),
        '/fleet/quad2': ({}, ('fleet/quad2/odom', 'fleet/quad2/base_link')),
        '/quad3': ({'frame_prefix': 'uav3_', 'world_frame_id': 'map'},
                   ('uav3_map', 'uav3_base_link')),
        '/quad4': ({'frame_prefix': ''}, ('odom', 'base_link')),
    }
    received = {}
    for namespace, (params, _) in cases.items():
        simulator(params={'clock_mode': 'realtime', **params}, remaps={'__ns': namespace})
        received[namespace] = ros_node.collect(Odometry, f'{namespace}/odom')
    assert ros_node.spin_until(lambda: all(received.values()), START_TIMEOUT), \
        {namespace: len(msgs) for namespace, msgs in received.items()}
    for namespace, (_, frames) in cases.items():
        odom = received[namespace][-1]
        assert (odom.header.frame_id, odom.child_frame_id) == frames, namespace


def _status(driver, predicate, since=None, timeout=4.0):
    """Wait for a simulator diagnostics status satisfying ``predicate``; return it.

    Only messages from index ``since`` of ``driver.diagnostics`` on count (default: those
    arriving after this call), so an old status never answers for the current state.
    """
    since = len(driver.diagnostics) if since is None else since

    def matching():
        for array in driver.diagnostics[since:]:
            for status in array.status:
                if status.name.startswith('quadcopter_simulator') and predicate(status):
                    return status
        return None
    assert driver.probe.spin_until(lambda: matching() is not None, timeout), \
        f'no matching diagnostics; last: {driver.diagnostics[-1:] or None}'
    return matching()


def test_diagnostics_levels_follow_what_went_wrong(simulator, ros_node):
    sim = simulator(params={'clock_mode': 'lockstep'})
    driver = Driver(ros_node, sim)
    driver.wait_ready()
    status = _status(driver, lambda s: True, since=0)
    assert (status.level, status.message) == (DiagnosticStatus.OK,
                                              'waiting for the first rotor command')
    driver.send([600.0, 600.0])
    status = _status(driver, lambda s: s.level == DiagnosticStatus.WARN)
    assert 'rejected' in status.message and 'must hold 4 rotor speeds, got 2' in status.message
    driver.send([700.0, 600.0, 600.0, 600.0])
    status = _status(driver, lambda s: 'clamped' in s.message)
    assert status.level == DiagnosticStatus.WARN and 'rejected' in status.message
    # rotor rates this large overflow the dynamics in one step: the plant diverges
    x_diverging = np.zeros(12)
    x_diverging[9:12] = 1e200
    request = SetParameters.Request(parameters=[Parameter(
        name='initial_state', value=ParameterValue(type=ParameterType.PARAMETER_DOUBLE_ARRAY,
                                                   double_array_value=x_diverging.tolist()))])
    result = ros_node.call(SetParameters, '/quadcopter_simulator/set_parameters', request)
    assert result.results[0].successful, result.results[0].reason
    assert ros_node.call(Trigger, '/quadcopter_simulator/reset', Trigger.Request()).success
    odom = driver.send([QuadParams().hover_speed] * 4)
    assert np.isfinite(odometry_to_state(odom)).all()
    status = _status(driver, lambda s: s.level == DiagnosticStatus.ERROR)
    assert 'diverged at step 3' in status.message and 'clamped' in status.message
    # a reset clears the divergence; the warnings fade once the window has passed
    assert ros_node.call(Trigger, '/quadcopter_simulator/reset', Trigger.Request()).success
    status = _status(driver, lambda s: s.level != DiagnosticStatus.ERROR)
    assert status.level == DiagnosticStatus.WARN
    status = _status(driver, lambda s: s.level == DiagnosticStatus.OK, timeout=10.0)
    assert status.message == 'running'
    values = {item.key: item.value for item in status.values}
    assert values['rejected_commands'] == '1' and values['clamped_commands'] == '1'
    assert values['diverged_at_step'] == 'no' and values['frames'] == 'odom -> base_link'


def test_missing_controller_is_reported_with_backoff_not_flooded(simulator, ros_node):
    timeout = 0.2
    sim = simulator(params={'clock_mode': 'realtime', 'period_s': 0.02,
                            'command_timeout_s': timeout})
    driver = Driver(ros_node, sim)
    driver.wait_ready()
    status = _status(driver, lambda s: s.level == DiagnosticStatus.WARN)
    assert 'no rotor command for' in status.message
    ros_node.spin_for(3.5)
    silences = [float(value) for value in re.findall(r'no rotor command on \S+ for ([0-9.]+) s',
                                                     sim.log_text())]
    # warnings after 0.2, 0.4, 0.8, 1.6, 3.2 s of silence: each about twice the previous
    assert 3 <= len(silences) <= 6, silences
    assert timeout <= silences[0] < 1.0   # the first one soon after the start
    assert all(later >= 1.8 * earlier for earlier, later in zip(silences, silences[1:]))
    since = len(driver.diagnostics)
    for _ in range(60):
        driver.publisher.publish(rotor_command([QuadParams().hover_speed] * 4))
        ros_node.spin_for(0.025)
    assert 'rotor commands resumed on /rotor_speeds_cmd after' in sim.log_text()
    # a status published while the commands came (the silence warning returns after)
    status = _status(driver, lambda s: s.level == DiagnosticStatus.OK, since=since)
    assert status.message == 'running'


def test_a_lost_controller_leaves_the_vehicle_hovering_in_place_when_asked(simulator,
                                                                           ros_node):
    """command_loss_action hover_in_place: level and still where it was, until commands."""
    moving = X0.copy()                      # flying 0.2 m/s, tilted, turning
    sim = simulator(params={'clock_mode': 'realtime', 'period_s': 0.02,
                            'command_timeout_s': 0.2, 'initial_state': moving.tolist(),
                            'command_loss_action': 'hover_in_place'})
    driver = Driver(ros_node, sim)
    driver.wait_ready()
    assert ros_node.spin_until(lambda: 'controller lost: hovering in place' in sim.log_text(),
                               5.0), sim.log_text()
    count = len(driver.odoms)
    assert ros_node.spin_until(lambda: len(driver.odoms) > count + 10, 3.0)
    held = [odometry_to_state(msg) for msg in driver.odoms[count:]]
    for x in held:
        np.testing.assert_allclose(x, held[0], atol=1e-12)      # not integrated
    # level, still, its yaw kept; where the silence found it (it flew 0.2 s at most)
    np.testing.assert_allclose(held[0][3:8], 0.0, atol=1e-12)
    np.testing.assert_allclose(held[0][9:12], 0.0, atol=1e-12)
    assert abs(held[0][8] - moving[8]) < 0.05 and np.linalg.norm(held[0][0:3] - X0[0:3]) < 0.1
    # a command ends it: the vehicle flies the command again (all rotors slow: it sinks)
    for _ in range(10):
        after = odometry_to_state(driver.send([300.0] * 4))
    assert after[5] < -0.1, after
    assert 'rotor commands resumed' in sim.log_text()


def test_changing_command_timeout_after_a_warning_keeps_the_node_alive(simulator, ros_node):
    """Regression: rclpy raised in the timer when the warning's throttle period changed."""
    sim = simulator(params={'clock_mode': 'realtime', 'period_s': 0.02,
                            'command_timeout_s': 0.1})
    driver = Driver(ros_node, sim)
    driver.wait_ready()
    assert ros_node.spin_until(lambda: 'no rotor command on' in sim.log_text(), 3.0)
    for value in (2.0, 0.3, 5.0):
        request = SetParameters.Request(parameters=[Parameter(
            name='command_timeout_s',
            value=ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value))])
        result = ros_node.call(SetParameters, '/quadcopter_simulator/set_parameters', request)
        assert result.results[0].successful, result.results[0].reason
        ros_node.spin_for(1.2)
        assert sim.alive(), sim.log_text()
    count = len(driver.odoms)
    assert ros_node.spin_until(lambda: len(driver.odoms) > count + 5, 2.0)


@pytest.mark.faults       # also part of the fault-injection suite
@pytest.mark.parametrize('clock_mode', ['realtime', 'lockstep'])
def test_no_runtime_parameter_value_kills_the_node(simulator, ros_node, clock_mode):
    """Every writable parameter, across its range and beyond, through the real service."""
    sim = simulator(params={'clock_mode': clock_mode, 'period_s': 0.02,
                            'command_timeout_s': 0.05})
    driver = Driver(ros_node, sim)
    driver.wait_ready()
    hover = [QuadParams().hover_speed] * 4

    def check_alive(after):
        assert sim.alive(), f'node died after {after}:\n{sim.log_text()[-4000:]}'
        count = len(driver.odoms)
        if clock_mode == 'lockstep':
            driver.publisher.publish(rotor_command(hover))
        assert ros_node.spin_until(lambda: len(driver.odoms) > count, 3.0), \
            f'no odometry after {after}:\n{sim.log_text()[-4000:]}'

    def exercise(name, value):
        if name == 'initial_state':   # a new initial state only matters after a reset
            assert ros_node.call(Trigger, '/quadcopter_simulator/reset',
                                 Trigger.Request()).success

    quarter = 0.5 * math.pi
    states = []
    for index, value in ((7, quarter - 1e-9), (7, -quarter + 1e-9), (7, quarter),
                         (7, -quarter), (7, 4.0), (6, 100.0), (8, -100.0), (9, 1e200)):
        state = [0.0] * 12
        state[index] = value
        states.append(state)
    # finite, but the body-frame velocity overflows: R^T v with v near the largest double
    states.append([0.0, 0.0, 0.0, 1.7e308, 1.7e308, 0.0, 0.0, 0.0, quarter / 2, 0.0, 0.0, 0.0])
    outcomes = param_sweep.sweep(
        param_sweep.ParameterClient(ros_node, '/quadcopter_simulator'), sim, check_alive,
        extra={'initial_state': states}, after_applied=exercise)
    print(param_sweep.report(outcomes))
    swept = {outcome.name for outcome in outcomes}
    assert swept == {'initial_state', 'command_timeout_s', 'use_sim_time'}, swept
    refused = {(o.name, str(o.value)) for o in outcomes if not o.applied}
    assert ('command_timeout_s', 'nan') in refused
    assert ('initial_state', str(states[2])) in refused   # pitch exactly 90 deg
    assert any('overflows' in o.reason for o in outcomes if o.value == states[-1])
    applied = {(o.name, str(o.value)) for o in outcomes if o.applied}
    assert ('command_timeout_s', '60.0') in applied and ('command_timeout_s', '2.0') not in refused
    log = sim.log_text()
    assert 'internal error' not in log and 'Traceback' not in log, log[-4000:]


def test_lockstep_round_trip_steps_once_per_command(simulator, ros_node):
    """A trivial controller in this process drives the simulator as fast as DDS allows.

    Its rate is printed, not asserted (a loaded CI machine is no place for a timed test;
    ``hybrid-mpc bench sim`` measures it): each command gives exactly one period.
    """
    sim = simulator(params={'clock_mode': 'lockstep'})
    command = rotor_command([QuadParams().hover_speed] * 4)
    publisher = ros_node.node.create_publisher(Float64MultiArray, 'rotor_speeds_cmd', 10)
    received = []
    running = []

    def answer(msg):
        # one lean subscription: this measures the simulator, not the test's bookkeeping;
        # exactly one command is in flight once running
        received.append(msg.header.stamp)
        if running:
            publisher.publish(command)

    ros_node.node.create_subscription(Odometry, 'odom', answer, 10)
    assert ros_node.spin_until(lambda: received and publisher.get_subscription_count() > 0,
                               START_TIMEOUT), sim.log_text()
    start_count, start = len(received), time.monotonic()
    running.append(True)
    publisher.publish(command)
    ros_node.spin_for(1.5)
    steps_per_s = (len(received) - start_count) / (time.monotonic() - start)
    print(f'lockstep round trip: {steps_per_s:.0f} steps/s')
    assert len(received) - start_count >= 10
    stamps = [_stamp_ns(stamp) for stamp in received[start_count:]]
    assert all(b - a == 100_000_000 for a, b in zip(stamps, stamps[1:]))


def test_invalid_configuration_exits_with_a_clear_message(rclpy_context):
    with processes.start_node('ros.simulator_node', params={'clock_mode': 'warp'}) as sim:
        deadline = time.monotonic() + START_TIMEOUT
        while sim.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sim.returncode == 1
    log = sim.log_text()
    assert 'invalid configuration' in log and 'clock_mode' in log
    assert 'Traceback' not in log


def test_rotorpy_plant_that_does_not_fit_its_layout_exits_with_a_clear_message(rclpy_context):
    params = {'kind': 'rotorpy', 'layout': '+', 'command_rotors': [1, 2, 3, 4],
              'rotorpy': {'vehicle': 'hummingbird', 'aero': False}}
    with processes.start_node('ros.simulator_node', params=params) as sim:
        deadline = time.monotonic() + START_TIMEOUT
        while sim.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sim.returncode == 1
    log = sim.log_text()
    assert 'invalid configuration' in log and "fits layout 'x'" in log, log
    assert 'Traceback' not in log


# -- the pieces the node tests stand on, checked without a running graph -----------------

def test_parameter_values_are_formatted_as_ros_yaml():
    fmt = processes.format_param_value
    assert fmt(True) == 'true' and fmt(False) == 'false'
    assert fmt(3) == '3' and fmt(1.0) == '1.0' and fmt(1e-6) == '1.0e-06'
    assert fmt([1, 2.5]) == '[1.0, 2.5]' and fmt(np.zeros(2)) == '[0.0, 0.0]'
    assert fmt(['a', 'b']) == '[a, b]' and fmt([True, False]) == '[true, false]'
    assert fmt('lockstep') == 'lockstep'
    assert fmt('true') == "'true'" and fmt('1.5') == "'1.5'" and fmt('') == "''"
    assert fmt("it's: x") == "'it''s: x'"
    assert fmt(math.nan) == '.nan' and fmt(-math.inf) == '-.inf'


def test_node_command_and_environment():
    command = processes.node_command(
        'ros.simulator_node', params={'period_s': 0.05, 'plant': {'mass': 0.5}},
        params_file='/tmp/p.yaml', remaps={'odom': '/quad/odom'}, node_name='sim')
    assert command[1:4] == ['-m', 'hybrid_mpc_ros.ros.simulator_node', '--ros-args']
    assert command[4:] == ['-r', '__node:=sim', '--params-file', '/tmp/p.yaml',
                           '-p', 'period_s:=0.05', '-p', 'plant.mass:=0.5',
                           '-r', 'odom:=/quad/odom']
    env = processes.ros_env(42, base={'PATH': '/bin'})
    assert env == {'PATH': '/bin', 'ROS_DOMAIN_ID': '42', 'PYTHONUNBUFFERED': '1',
                   'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST',
                   'FASTDDS_BUILTIN_TRANSPORTS': 'UDPv4'}
    # a transport the caller chose is kept
    chosen = processes.ros_env(base={'FASTDDS_BUILTIN_TRANSPORTS': 'DEFAULT'})
    assert chosen['FASTDDS_BUILTIN_TRANSPORTS'] == 'DEFAULT'
    assert all(1 <= processes.free_domain_id() <= 100 for _ in range(50))


def test_free_domain_id_avoids_a_domain_in_use(ros_node):
    # this test session's participant holds its domain: a new run must not pick it
    ours = int(os.environ['ROS_DOMAIN_ID'])
    assert processes.domain_in_use(ours)
    assert ours not in {processes.free_domain_id() for _ in range(300)}


def test_message_codecs_reject_bad_content():
    odom = Odometry()
    odom.pose.pose.orientation.w = 1.0
    np.testing.assert_array_equal(odometry_to_state(odom), np.zeros(12))
    odom.twist.twist.linear.y = math.nan
    with pytest.raises(ValueError, match='non-finite'):
        odometry_to_state(odom)
    np.testing.assert_array_equal(parse_rotor_command(rotor_command([1, 2, 3, 4])),
                                  [1.0, 2.0, 3.0, 4.0])
    with pytest.raises(ValueError, match='must hold 4 rotor speeds, got 5'):
        parse_rotor_command(Float64MultiArray(data=[1.0] * 5))
    with pytest.raises(ValueError, match='non-finite'):
        parse_rotor_command(Float64MultiArray(data=[1.0, math.inf, 1.0, 1.0]))


def test_one_default_clock_mode_in_node_config_and_launch_files():
    with open(os.path.join(CONFIG_DIR, 'simulator.yaml'), encoding='utf-8') as stream:
        config = yaml.safe_load(stream)['quadcopter_simulator']['ros__parameters']
    defaults = {'node': DEFAULT_CLOCK_MODE, 'simulator.yaml': config['clock_mode']}
    launch_dir = os.path.join(os.path.dirname(CONFIG_DIR), 'launch')
    for name in sorted(os.listdir(launch_dir)):
        with open(os.path.join(launch_dir, name), encoding='utf-8') as stream:
            tree = ast.parse(stream.read())
        for call in ast.walk(tree):
            if (isinstance(call, ast.Call) and getattr(call.func, 'id', '') ==
                    'DeclareLaunchArgument' and call.args
                    and getattr(call.args[0], 'value', None) == 'clock_mode'):
                default = [kw.value.value for kw in call.keywords if kw.arg == 'default_value']
                defaults[name] = default[0]
    assert {'demo.launch.py', 'simulator.launch.py'} <= set(defaults), defaults
    assert set(defaults.values()) == {'realtime'}, defaults


@pytest.mark.parametrize('integration', ['rotorpy', 'rk4'])
def test_rotorpy_backend_through_the_node_equals_the_offline_plant(
        simulator, ros_node, tmp_path, integration):
    """Lockstep commands through the node: RotorPyPlant's states step for step, also after
    ~/reset (which puts the rotor speeds and the wind back)."""
    from hybrid_mpc_ros.core.model.rotorpy_plant import RotorPyPlant
    section = {'kind': 'rotorpy', 'layout': 'x', 'command_rotors': [2, 3, 4, 1],
               'rotorpy': {'vehicle': 'hummingbird', 'aero': True, 'wind': [1.0, -0.5, 0.0],
                           'integration': integration}}
    params_file = tmp_path / 'rotorpy_simulator.yaml'
    params_file.write_text(yaml.safe_dump({'quadcopter_simulator': {
        'ros__parameters': section}}))
    x0 = np.array([0.5, -0.3, 2.0, 0.1, 0.0, -0.1, 0.05, -0.04, 0.3, 0.02, -0.01, 0.05])
    sim = simulator(params_file=str(params_file),
                    params={'clock_mode': 'lockstep', 'initial_state': x0.tolist()})
    driver = Driver(ros_node, sim)
    np.testing.assert_allclose(driver.wait_ready(), x0, atol=1e-12)
    offline = RotorPyPlant('hummingbird', aero=True, wind=(1.0, -0.5, 0.0), layout='x',
                           command_rotors=(2, 3, 4, 1), integration=integration)
    commands = 469.2 + 25.0 * np.random.default_rng(4).normal(size=(12, 4))
    offline.reset(x0)
    expected = [x0]
    for command in commands:
        expected.append(offline.step(expected[-1], command))
    for attempt in range(2):
        for t, command in enumerate(commands):
            state = odometry_to_state(driver.send(command.tolist()))
            np.testing.assert_allclose(state, expected[t + 1], rtol=0.0, atol=1e-9,
                                       err_msg=f'episode {attempt}, step {t + 1}')
        before = len(driver.odoms)
        assert ros_node.call(Trigger, '/quadcopter_simulator/reset', Trigger.Request()).success
        assert ros_node.spin_until(lambda: len(driver.odoms) > before, 2.0)
    assert 'RotorPy hummingbird' in sim.log_text()
