"""ROS 2 node ``quadcopter_simulator``: the true plant, standing in for a real vehicle.

A thin shell over :class:`hybrid_mpc_ros.core.model.quadcopter.Quadcopter`.

Interfaces (relative names, so the node can be namespaced and remapped):

* subscribes ``rotor_speeds_cmd`` (``std_msgs/Float64MultiArray``, 4 rotor speeds
  [rad/s]); each command is held for one period. Malformed ones (wrong length, NaN/Inf)
  are rejected, logged (throttled) and counted, and the last valid command is kept;
  speeds outside ``[plant.omega_min, plant.omega_max]`` are clamped and counted. Until
  the first command arrives the hover input is held.
* publishes ``odom`` (``nav_msgs/Odometry``, pose in ``world_frame_id`` (ENU), twist in
  ``body_frame_id`` (FLU); see :mod:`hybrid_mpc_ros.core.model.frames`) after every step, stamped
  with the simulation time, and ``/clock`` (``rosgraph_msgs/Clock``) with that same time,
  so nodes with ``use_sim_time`` follow the simulator in either clock mode (as Gazebo
  does). Simulation time starts at 0 and never goes backwards, not even on reset.
  ``/clock`` is global by ROS convention: run one simulator per ROS domain.
* publishes ``/diagnostics`` (``diagnostic_msgs/DiagnosticArray``) at 1 Hz wall time.
* serves ``~/reset`` (``std_srvs/Trigger``): back to ``initial_state``, hover command
  held, the reset state published at once.

Clock modes (parameter ``clock_mode``):

* ``realtime``: a wall-clock timer advances one period every ``period_s`` with the held
  command; a throttled warning reports when no command came for ``command_timeout_s``.
* ``lockstep``: every received command message advances exactly one period, then
  ``/clock`` and ``odom`` are published. Invalid messages advance too, with the last valid
  command, so a controller that sends one command per odometry message never waits
  forever for an answer and its step count always equals the simulator's. At startup
  the node publishes clock 0 and the initial odometry; while no command arrives for
  ``lockstep_republish_s`` (wall) it re-publishes them without advancing, so a
  controller that subscribed late still receives a first state.
"""

from __future__ import annotations

from dataclasses import fields
import math
import sys
import time

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from nav_msgs.msg import Odometry
import numpy as np
from rcl_interfaces.msg import SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock as ClockMsg
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import Trigger

from hybrid_mpc_ros.core.config import ConfigError
from hybrid_mpc_ros.core.model.quadcopter import NX, PARAM_DESCRIPTIONS, Quadcopter, QuadParams
from hybrid_mpc_ros.ros.msgs import parse_rotor_command, state_to_odometry
from hybrid_mpc_ros.ros.node_runtime import descriptor, run_node

NODE_NAME = 'quadcopter_simulator'
CLOCK_MODES = ('lockstep', 'realtime')
# the profile rclcpp::ClockQoS uses: best effort, keep last 1
CLOCK_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
STATE_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
LOG_THROTTLE_S = 1.0


def _check_initial_state(value) -> str:
    """Return why ``value`` is not a valid initial state, or '' when it is."""
    if len(value) != NX:
        return f'initial_state must hold {NX} values, got {len(value)}'
    if not all(math.isfinite(item) for item in value):
        return f'initial_state must be finite, got {list(value)}'
    return ''


class SimulatorNode(Node):
    """Integrates the quadcopter with the commanded rotor speeds and publishes its state."""

    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        self.add_on_set_parameters_callback(self._validate_parameters)
        self._declare_parameters()
        period = self.get_parameter('period_s').value
        if not period > 0.0:
            raise ConfigError(f'period_s must be > 0, got {period}')
        plant = QuadParams.from_mapping({
            item.name: self.get_parameter(f'plant.{item.name}').value
            for item in fields(QuadParams)})
        self._plant = Quadcopter(plant, dt=period, substeps=self.get_parameter('substeps').value)
        self._omega_min, self._omega_max = plant.omega_min, plant.omega_max
        self._clock_mode = self.get_parameter('clock_mode').value
        self._initial_state = np.array(self.get_parameter('initial_state').value, dtype=float)
        self._command_timeout_s = self.get_parameter('command_timeout_s').value
        world_frame = self.get_parameter('world_frame_id').value
        body_frame = self.get_parameter('body_frame_id').value
        self.add_post_set_parameters_callback(self._apply_parameters)

        self._period_ns = round(period * 1e9)
        self._state = self._initial_state.copy()
        self._command = plant.hover_input
        self._steps = 0
        self._sim_time_ns = 0
        self._rejected = 0
        self._clamped = 0
        self._diverged = False
        self._started = time.monotonic()
        self._last_command_wall = None
        self._last_activity_wall = self._started
        self._counts_at_last_diagnostics = (0, 0)

        # messages refilled in place each step: the lockstep round trip is the hot path
        self._odom_msg = Odometry()
        self._odom_msg.header.frame_id = world_frame
        self._odom_msg.child_frame_id = body_frame
        self._clock_msg = ClockMsg()

        self._odom_pub = self.create_publisher(Odometry, 'odom', STATE_QOS)
        self._clock_pub = self.create_publisher(ClockMsg, '/clock', CLOCK_QOS)
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', STATE_QOS)
        self._command_sub = self.create_subscription(
            Float64MultiArray, 'rotor_speeds_cmd', self._on_command, STATE_QOS)
        self.create_service(Trigger, '~/reset', self._on_reset)
        # wall timers on the steady clock: this node is the clock source, it must never
        # wait on /clock itself, even if someone sets use_sim_time on it
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.create_timer(1.0, self._publish_diagnostics, clock=steady)
        if self._clock_mode == 'realtime':
            self.create_timer(period, self._on_realtime_tick, clock=steady)
        else:
            republish = self.get_parameter('lockstep_republish_s').value
            if republish > 0.0:
                self._republish_s = republish
                self.create_timer(republish, self._on_republish_tick, clock=steady)
        self._publish_state()
        self.get_logger().info(
            f'simulating {plant.mass} kg quadcopter, {self._clock_mode} mode, period '
            f'{period} s, hover {plant.hover_speed:.1f} rad/s')

    # -- parameters ---------------------------------------------------------------------

    def _declare_parameters(self) -> None:
        declare = self.declare_parameter
        declare('period_s', 0.1, descriptor(
            'integration period [s]: one command is held for one period', read_only=True,
            float_range=(0.0, 1.0), constraints='0 < period_s <= 1'))
        declare('substeps', 4, descriptor(
            'RK4 sub-steps per period', read_only=True, int_range=(1, 100)))
        declare('clock_mode', 'realtime', descriptor(
            "'realtime': advance on a wall timer; 'lockstep': advance one period per "
            'received command and publish /clock', read_only=True,
            constraints="one of 'lockstep', 'realtime'"))
        declare('initial_state', [0.0] * NX, descriptor(
            'state after start and ~/reset: p (3) [m], v world (3) [m/s], roll pitch yaw '
            '[rad], body rates p q r [rad/s]; zeros = hover at the origin',
            constraints=f'{NX} finite values'))
        declare('world_frame_id', 'odom', descriptor(
            'frame of the pose (ENU), header.frame_id of odom', read_only=True))
        declare('body_frame_id', 'base_link', descriptor(
            'body frame (FLU) of the twist, child_frame_id of odom', read_only=True))
        declare('command_timeout_s', 0.5, descriptor(
            'realtime mode: warn when no command came for this long [s] (wall); the last '
            'command stays held. 0 disables the warning', float_range=(0.0, 60.0)))
        declare('lockstep_republish_s', 0.5, descriptor(
            'lockstep mode: re-publish the current odom and clock, without advancing, when '
            'no command came for this long [s] (wall). 0 disables', read_only=True,
            float_range=(0.0, 60.0)))
        defaults = QuadParams()
        for item in fields(QuadParams):
            declare(f'plant.{item.name}', float(getattr(defaults, item.name)), descriptor(
                f'true plant: {PARAM_DESCRIPTIONS[item.name]}', read_only=True))

    def _validate_parameters(self, params) -> SetParametersResult:
        for param in params:
            if param.name == 'clock_mode' and param.value not in CLOCK_MODES:
                return SetParametersResult(
                    successful=False,
                    reason=f'clock_mode must be one of {CLOCK_MODES}, got {param.value!r}')
            if param.name == 'initial_state':
                reason = _check_initial_state(param.value)
                if reason:
                    return SetParametersResult(successful=False, reason=reason)
        return SetParametersResult(successful=True)

    def _apply_parameters(self, params) -> None:
        for param in params:
            if param.name == 'initial_state':
                self._initial_state = np.array(param.value, dtype=float)
            elif param.name == 'command_timeout_s':
                self._command_timeout_s = param.value

    # -- simulation ---------------------------------------------------------------------

    def _on_command(self, msg: Float64MultiArray) -> None:
        try:
            command = parse_rotor_command(msg)
        except ValueError as exc:
            self._rejected += 1
            self.get_logger().error(f'rejected rotor command ({self._rejected} so far): {exc}; '
                                    'holding the last valid one',
                                    throttle_duration_sec=LOG_THROTTLE_S)
        else:
            if command.min() < self._omega_min or command.max() > self._omega_max:
                self._clamped += 1
                self.get_logger().warning(
                    f'rotor command {command.tolist()} outside [{self._omega_min}, '
                    f'{self._omega_max}] rad/s, clamped ({self._clamped} so far)',
                    throttle_duration_sec=LOG_THROTTLE_S)
                command = np.clip(command, self._omega_min, self._omega_max)
            self._command = command
        now = time.monotonic()
        self._last_command_wall = now
        if self._clock_mode == 'lockstep':
            self._last_activity_wall = now
            self._advance()

    def _on_realtime_tick(self) -> None:
        last = self._last_command_wall
        silence = time.monotonic() - (self._started if last is None else last)
        if 0.0 < self._command_timeout_s < silence:
            held = 'the hover input' if last is None else 'the last command'
            self.get_logger().warning(
                f'no rotor command for {silence:.1f} s on '
                f'{self._command_sub.topic_name}; integrating {held}',
                throttle_duration_sec=max(LOG_THROTTLE_S, self._command_timeout_s))
        self._advance()

    def _on_republish_tick(self) -> None:
        now = time.monotonic()
        if now - self._last_activity_wall >= self._republish_s:
            self._last_activity_wall = now
            self._publish_state()

    def _advance(self) -> None:
        state = self._plant.step(self._state, self._command)
        self._steps += 1
        self._sim_time_ns += self._period_ns
        if np.isfinite(state).all():
            self._state = state
        else:
            # RK4 blew up (e.g. tumbling through pitch +-90 deg): keep the last finite
            # state so consumers never receive NaN; diagnostics report ERROR until reset
            self._diverged = True
            self.get_logger().error(
                f'plant state became non-finite at step {self._steps}; holding the last '
                'finite state until ~/reset', throttle_duration_sec=LOG_THROTTLE_S)
        self._publish_state()

    def _publish_state(self) -> None:
        stamp = Time(sec=self._sim_time_ns // 1_000_000_000,
                     nanosec=self._sim_time_ns % 1_000_000_000)
        self._clock_msg.clock = stamp
        self._clock_pub.publish(self._clock_msg)
        odom = self._odom_msg
        self._odom_pub.publish(state_to_odometry(self._state, stamp, odom.header.frame_id,
                                                 odom.child_frame_id, out=odom))

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response):
        self._state = self._initial_state.copy()
        self._command = self._plant.params.hover_input
        self._diverged = False
        self._last_activity_wall = time.monotonic()
        self._publish_state()
        response.success = True
        response.message = (f'reset to initial_state at sim time '
                            f'{self._sim_time_ns * 1e-9:.3f} s (step {self._steps})')
        self.get_logger().info(response.message)
        return response

    # -- diagnostics --------------------------------------------------------------------

    def _publish_diagnostics(self) -> None:
        counts = (self._rejected, self._clamped)
        recent = [name for name, now, before in zip(
            ('rejected', 'clamped'), counts, self._counts_at_last_diagnostics) if now > before]
        self._counts_at_last_diagnostics = counts
        status = DiagnosticStatus(name=f'{self.get_name()}: simulation',
                                  hardware_id='simulated quadcopter')
        if self._diverged:
            status.level, status.message = DiagnosticStatus.ERROR, 'plant state diverged'
        elif recent:
            status.level = DiagnosticStatus.WARN
            status.message = 'commands ' + ' and '.join(recent) + ' in the last second'
        else:
            status.level, status.message = DiagnosticStatus.OK, 'running'
        last = self._last_command_wall
        values = {
            'clock_mode': self._clock_mode,
            'steps': str(self._steps),
            'sim_time_s': f'{self._sim_time_ns * 1e-9:.9f}',
            'rejected_commands': str(self._rejected),
            'clamped_commands': str(self._clamped),
            'last_command_age_s': 'never' if last is None else f'{time.monotonic() - last:.3f}',
        }
        status.values = [KeyValue(key=key, value=value) for key, value in values.items()]
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(array)


def main(args=None) -> int:
    """Run the simulator node until SIGINT/SIGTERM; exit status 1 on a configuration error."""
    return run_node(SimulatorNode, NODE_NAME, args)


if __name__ == '__main__':
    sys.exit(main())
