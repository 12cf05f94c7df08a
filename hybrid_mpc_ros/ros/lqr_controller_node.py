"""ROS 2 node ``lqr_controller``: the hover LQR of :mod:`hybrid_mpc_ros.core.model.lqr` as a node.

Event-driven: every ``odom`` message (nav_msgs/Odometry) is answered with exactly one
``rotor_speeds_cmd`` (std_msgs/Float64MultiArray, 4 rotor speeds in rad/s). That is what
the simulator's lockstep mode expects (one command advances it one period), and in
realtime mode the controller simply runs at the simulator's odometry rate. The callback
only decodes, calls the core controller and encodes, so this node is also the "trivial
controller" of ``hybrid-mpc bench sim``.

ROS parameters of the node:

* ``target_position`` (3 doubles, m): hover target in the odom frame, each coordinate
  within +-1e6 m; may change live. Default: the position of the default scenario's
  ``x_ref``.
* ``max_position_error`` (double, m): saturation of the position error; may change live.
  Default: ``config/lqr_controller.yaml``.
* ``period_s`` (double, s, read-only): control period the gain is designed for; it must
  equal the simulator's ``period_s``. Default: the default scenario's sampling time.

Odometry with non-finite content or a zero quaternion gets no reply (a throttled warning
is logged and the rejection counted): commanding anything from a broken estimate would be
a guess. For the same reason a command that is not finite is never sent.
"""

from __future__ import annotations

import math
import sys

from nav_msgs.msg import Odometry
import numpy as np
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from std_msgs.msg import Float64MultiArray

from hybrid_mpc_ros.core import paths, scenario
from hybrid_mpc_ros.core.config import ConfigError, load_node_params
from hybrid_mpc_ros.core.model.lqr import LQRController
from hybrid_mpc_ros.core.param_schema import floating, floats
from hybrid_mpc_ros.ros.msgs import odometry_to_state, rotor_command
from hybrid_mpc_ros.ros.node_runtime import declare_parameters, run_node

NODE_NAME = 'lqr_controller'
RUNTIME_FILE = 'lqr_controller.yaml'
QOS_DEPTH = 10
LOG_THROTTLE_S = 1.0
# farther is a typo, not a hover target; the bound also keeps target - state from overflowing
MAX_TARGET_ABS_M = 1e6
PARAMETERS = {
    'period_s': floating(1e-3, maximum=1.0, description=(
        "control period the LQR gain is designed for [s]; must equal the simulator's "
        'period_s')),
    'target_position': floats(3, description=(
        'hover target position [x, y, z] in the odom frame [m]')).within(
            constraints=f'3 finite doubles, each within +-{MAX_TARGET_ABS_M:g} m'),
    'max_position_error': floating(0.01, maximum=1000.0, description=(
        'saturation of the position error fed to the LQR, keeps large steps gentle [m]')),
}


class LQRControllerNode(Node):
    """Answers each odometry message with the LQR's rotor-speed command."""

    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        # defaults from the shipped files only: period and target from the default
        # scenario, the node's own setting from its runtime file
        shipped = scenario.load_scenario(scenario.default_scenario_path(), load_model=False)
        runtime = load_node_params(paths.config_file(RUNTIME_FILE), NODE_NAME)
        declare_parameters(self, PARAMETERS, {
            'period_s': shipped.period_s,
            'target_position': [float(value) for value in shipped.x_ref[:3]],
            'max_position_error': runtime['max_position_error']},
            writable=('target_position', 'max_position_error'))
        target = self.get_parameter('target_position').value
        reason = _target_problem(target)
        if reason:
            raise ConfigError(f'parameter target_position: {reason}')
        self._controller = LQRController(
            dt=self.get_parameter('period_s').value, target_position=target,
            max_position_error=self.get_parameter('max_position_error').value)
        self._rejected_odometry = 0
        self._bad_commands = 0
        self.add_on_set_parameters_callback(self._validate_parameters)
        self.add_post_set_parameters_callback(self._apply_parameters)
        self._publisher = self.create_publisher(Float64MultiArray, 'rotor_speeds_cmd', QOS_DEPTH)
        self._subscription = self.create_subscription(Odometry, 'odom', self._on_odom,
                                                      QOS_DEPTH)
        self.get_logger().info(
            f'LQR ready: period {self._controller.dt} s, target {list(target)} m, '
            f'closed-loop spectral radius {self._controller.spectral_radius:.4f}')

    def _on_odom(self, msg: Odometry) -> None:
        x = self._state_or_none(msg)
        if x is None:
            return
        u = self._controller.command(x)
        if np.isfinite(u).all():
            self._publisher.publish(rotor_command(u))
        else:
            self._count_bad_command(x)

    def _state_or_none(self, msg: Odometry):
        """Return the state (12) in ``msg``, or None (logged, counted) when it is broken."""
        try:
            return odometry_to_state(msg)
        except ValueError as exc:
            self._rejected_odometry += 1
            self.get_logger().warning(
                f'ignoring odometry ({self._rejected_odometry} so far): {exc}',
                throttle_duration_sec=LOG_THROTTLE_S)
            return None

    def _count_bad_command(self, x) -> None:
        # only reachable with absurd (finite) states; never command a guess
        self._bad_commands += 1
        self.get_logger().error(
            f'LQR command not finite for state {x.tolist()}; not sent '
            f'({self._bad_commands} so far)', throttle_duration_sec=LOG_THROTTLE_S)

    def _validate_parameters(self, parameters) -> SetParametersResult:
        for parameter in parameters:
            if parameter.name == 'target_position':
                reason = _target_problem(parameter.value)
                if reason:
                    return SetParametersResult(successful=False,
                                               reason=f'target_position: {reason}')
        return SetParametersResult(successful=True)

    def _apply_parameters(self, parameters) -> None:
        for parameter in parameters:
            if parameter.name == 'target_position':
                self._controller.set_target(parameter.value)
                self.get_logger().info(f'new target {list(parameter.value)} m')
            elif parameter.name == 'max_position_error':
                self._controller.max_position_error = float(parameter.value)


def _target_problem(value) -> str:
    """Why ``value`` is not a valid target position, or '' when it is."""
    try:
        array = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        return f'must be 3 doubles, got {value!r}'
    if array.shape != (3,):
        return f'must be 3 doubles [x, y, z], got {len(array.reshape(-1))} values'
    if not all(math.isfinite(item) for item in array):
        return f'must be finite, got {array.tolist()}'
    if np.abs(array).max() > MAX_TARGET_ABS_M:
        return (f'each coordinate must be within +-{MAX_TARGET_ABS_M:g} m (the odom frame '
                f'of one vehicle), got {array.tolist()}')
    return ''


def main(args=None) -> int:
    """Run the node until SIGINT/SIGTERM (console script ``lqr_controller_node``)."""
    return run_node(LQRControllerNode, NODE_NAME, args)


if __name__ == '__main__':
    sys.exit(main())
