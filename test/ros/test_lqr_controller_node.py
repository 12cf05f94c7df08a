"""The real LQR controller node in its own process, talked to over DDS."""

import math

from nav_msgs.msg import Odometry
import numpy as np
import pytest
from std_msgs.msg import Float64MultiArray

from hybrid_mpc_ros.core.model.lqr import LQRController
from hybrid_mpc_ros.ros.msgs import parse_rotor_command, state_to_odometry
from hybrid_mpc_ros.tools import processes
import param_sweep

START_TIMEOUT = 15.0
TARGET = (1.0, -2.0, 0.5)


@pytest.fixture
def controller(ros_node):
    """The node, a publisher of odometry and the list of commands it sent."""
    node = processes.start_node('ros.lqr_controller_node',
                                params={'target_position': list(TARGET)})
    commands = ros_node.collect(Float64MultiArray, 'rotor_speeds_cmd')
    odom_pub = ros_node.node.create_publisher(Odometry, 'odom', 10)
    ready = ros_node.spin_until(
        lambda: odom_pub.get_subscription_count() > 0 or not node.alive(), START_TIMEOUT)
    assert ready and node.alive(), node.log_text()
    yield node, odom_pub, commands
    was_alive = node.alive()
    code = node.stop()
    log = node.log_text()
    assert was_alive and code == 0, f'controller died or exited with {code}:\n{log}'
    assert 'Traceback' not in log and 'internal error' not in log, log


def _odometry(x):
    from builtin_interfaces.msg import Time
    return state_to_odometry(np.asarray(x, dtype=float), Time(), 'odom', 'base_link')


def _answer(ros_node, odom_pub, commands, msg, timeout=3.0):
    count = len(commands)
    odom_pub.publish(msg)
    if not ros_node.spin_until(lambda: len(commands) > count, timeout):
        return None
    return parse_rotor_command(commands[count])


def test_each_odometry_gets_the_core_lqr_command(controller, ros_node):
    node, odom_pub, commands = controller
    reference = LQRController(dt=0.1, target_position=TARGET)
    rng = np.random.default_rng(0)
    for _ in range(5):
        x = rng.normal(scale=0.2, size=12)
        u = _answer(ros_node, odom_pub, commands, _odometry(x))
        assert u is not None, node.log_text()
        np.testing.assert_allclose(u, reference.command(x), rtol=0.0, atol=1e-9)


def test_broken_odometry_gets_no_reply_and_is_counted(controller, ros_node):
    node, odom_pub, commands = controller
    broken = _odometry(np.zeros(12))
    broken.twist.twist.linear.x = math.nan
    assert _answer(ros_node, odom_pub, commands, broken, timeout=1.0) is None
    broken = _odometry(np.zeros(12))
    broken.pose.pose.orientation.w = 0.0
    assert _answer(ros_node, odom_pub, commands, broken, timeout=1.0) is None
    assert 'ignoring odometry (1 so far)' in node.log_text()
    assert _answer(ros_node, odom_pub, commands, _odometry(np.zeros(12))) is not None


def test_a_command_that_is_not_finite_is_never_sent(controller, ros_node):
    node, odom_pub, commands = controller
    x = np.zeros(12)
    x[3:5] = (1.7e308, -1.7e308)   # finite odometry; the LQR's arithmetic overflows
    assert _answer(ros_node, odom_pub, commands, _odometry(x), timeout=1.0) is None
    assert 'LQR command not finite' in node.log_text()
    assert _answer(ros_node, odom_pub, commands, _odometry(np.zeros(12))) is not None


@pytest.mark.faults       # also part of the fault-injection suite
def test_no_runtime_parameter_value_kills_the_node(controller, ros_node):
    node, odom_pub, commands = controller

    def check_alive(after):
        assert node.alive(), f'node died after {after}:\n{node.log_text()[-4000:]}'
        u = _answer(ros_node, odom_pub, commands, _odometry(np.zeros(12)))
        assert u is not None, f'no command after {after}:\n{node.log_text()[-4000:]}'
        assert np.isfinite(u).all() and u.min() >= 0.0 and u.max() <= 630.0, after

    limit = 1e6
    targets = [[limit, -limit, limit], [-limit, limit, -limit], [limit * 1.000001, 0.0, 0.0],
               [0.0, 0.0, 1e300], [0.0, 0.0, -1.7976931348623157e308]]
    outcomes = param_sweep.sweep(param_sweep.ParameterClient(ros_node, '/lqr_controller'),
                                 node, check_alive, extra={'target_position': targets})
    print(param_sweep.report(outcomes))
    swept = {outcome.name for outcome in outcomes}
    assert swept == {'target_position', 'max_position_error', 'use_sim_time'}, swept
    verdicts = {str(o.value): o for o in outcomes if o.name == 'target_position'}
    assert verdicts[str(targets[0])].applied and verdicts[str(targets[1])].applied
    for target in targets[2:]:
        assert 'within +-1e+06 m' in verdicts[str(target)].reason


def test_defaults_come_from_the_default_scenario_and_the_runtime_file(rclpy_context):
    """No value restated in code: period and target are the default scenario's."""
    from hybrid_mpc_ros.core import paths, scenario
    from hybrid_mpc_ros.core.config import load_node_params
    from hybrid_mpc_ros.ros.lqr_controller_node import LQRControllerNode
    shipped = scenario.load_scenario(scenario.default_scenario_path(), load_model=False)
    runtime = load_node_params(paths.config_file('lqr_controller.yaml'), 'lqr_controller')
    node = LQRControllerNode()
    try:
        assert node.get_parameter('period_s').value == shipped.period_s
        assert list(node.get_parameter('target_position').value) == list(shipped.x_ref[:3])
        assert (node.get_parameter('max_position_error').value
                == runtime['max_position_error'])
    finally:
        node.destroy_node()
