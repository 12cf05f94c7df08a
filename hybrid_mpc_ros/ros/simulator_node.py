"""ROS 2 node ``quadcopter_simulator``: the true plant, standing in for a real vehicle.

A thin shell over a :class:`hybrid_mpc_ros.core.model.plant.Plant`: the package's
:class:`~hybrid_mpc_ros.core.model.quadcopter.Quadcopter` (``kind`` ``quadcopter``, the
default) or RotorPy's multirotor
(:class:`~hybrid_mpc_ros.core.model.rotorpy_plant.RotorPyPlant`, ``kind`` ``rotorpy``),
built from the parameters exactly as the offline commands build it from a scenario
(:func:`hybrid_mpc_ros.core.scenario.load.simulator_section`); only the chosen kind's
parameters are read.

Interfaces (relative names, so the node can be namespaced and remapped):

* subscribes ``rotor_speeds_cmd`` (``std_msgs/Float64MultiArray``, 4 rotor speeds
  [rad/s]); each command is held for one period. Malformed ones (wrong length, NaN/Inf)
  are rejected, logged (throttled) and counted, and the last valid command is kept;
  speeds outside the vehicle's rotor limits (``plant.omega_min``, ``plant.omega_max``,
  or the RotorPy vehicle's) are clamped and counted. Until the first command arrives the
  hover input is held.
* publishes ``odom`` (``nav_msgs/Odometry``) after every step: pose in
  ``frame_prefix + world_frame_id`` (ENU), twist in ``frame_prefix + body_frame_id``
  (FLU); see :mod:`hybrid_mpc_ros.core.model.frames`. ``frame_prefix`` defaults to the
  node's namespace (``/quad1`` gives ``quad1/odom`` and ``quad1/base_link``, the
  ``frame_prefix`` convention of robot_state_publisher), so vehicles in different
  namespaces have distinct frames.
* publishes ``/clock`` (``rosgraph_msgs/Clock``) with the simulation time when
  ``publish_clock`` is true (the default in lockstep mode only). ``/clock`` is global by
  ROS convention: run one clock-publishing simulator per ROS domain.
* publishes ``/diagnostics`` (``diagnostic_msgs/DiagnosticArray``) at 1 Hz wall time, with
  levels that follow the counters: ERROR while the plant state has diverged (until
  ``~/reset``); WARN when commands were rejected or clamped in the last
  ``DIAGNOSTIC_WINDOW_S`` seconds, or, in realtime mode, when no command came for
  ``command_timeout_s``; OK otherwise. The message says which.
* serves ``~/reset`` (``std_srvs/Trigger``): back to ``initial_state``, hover command
  held, the plant's hidden states put back (:meth:`Plant.reset`: a RotorPy vehicle's
  rotor speeds at hover speed, its wind at the configured constant), the reset state
  published at once.

Time stamps follow the clock the other nodes use:

* when this node publishes ``/clock``, ``odom`` is stamped with the simulation time
  (starts at 0, advances exactly one period per step, never goes backwards, not even on
  reset) and the other nodes run with ``use_sim_time`` (as with Gazebo);
* otherwise ``odom`` is stamped with this node's clock when the step is taken: wall
  (ROS) time, like a real vehicle's driver; if someone sets ``use_sim_time`` on this
  node, whatever time ``/clock`` gives.

Clock modes (parameter ``clock_mode``; ``realtime`` is the default everywhere: the node,
``config/simulator.yaml`` and every launch file that starts a simulator):

* ``realtime``: a wall-clock timer advances one period every ``period_s`` with the held
  command. A missing controller is reported after ``command_timeout_s`` of silence: a
  WARN diagnostic while it lasts, and a warning log at 1x, 2x, 4x, ... that silence
  (exponential backoff, at least every 600 s), then an INFO when commands resume.
* ``lockstep``: every received command message advances exactly one period, then
  ``/clock`` and ``odom`` are published. Invalid messages advance too, with the last valid
  command, so a controller that sends one command per odometry message never waits
  forever for an answer and its step count always equals the simulator's. At startup
  the node publishes clock 0 and the initial odometry; while no command arrives for
  ``lockstep_republish_s`` (wall) it re-publishes them without advancing, so a
  controller that subscribed late still receives a first state. Waiting for commands is
  normal here (a tuner between episodes), so silence is not a warning.

What a vehicle does when the controller falls silent in realtime mode is
``command_loss_action``: ``hold_command`` (the default) integrates the last command, as a
bare airframe would; ``hover_in_place`` stands in for a vehicle's own autopilot taking
over (PX4 does when offboard setpoints stop), idealised: from ``command_timeout_s`` of
silence on, the vehicle hovers level and still where it was until commands resume. A
controller that is restarted takes seconds to command again; holding its last command
that long, a hovering vehicle may tip over, depending on that command.

Parameters that may change at runtime: ``initial_state`` (used by the next ``~/reset``),
``command_timeout_s`` and rclpy's ``use_sim_time``; every other one is read-only.

Why about 430 lines: the node's parameters and their checks, its two clock modes, its
diagnostics and the command checks; the plants are core/model/quadcopter.py and
core/model/rotorpy_plant.py, and the health reporting ros/simulator_health.py.
"""

from __future__ import annotations

import math
import sys
import time

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

from hybrid_mpc_ros.core import paths
from hybrid_mpc_ros.core.config import ConfigError, flatten, load_node_params
from hybrid_mpc_ros.core.model.frames import state_to_odometry_arrays
from hybrid_mpc_ros.core.model.quadcopter import hover_reference, INTEGRATORS, NX
from hybrid_mpc_ros.core.param_schema import boolean, flat_specs, floating, ParameterFile, text
from hybrid_mpc_ros.core.scenario.load import nested_values, simulator_section
from hybrid_mpc_ros.core.scenario.schema import SHARED, SIMULATOR
from hybrid_mpc_ros.ros.msgs import parse_rotor_command, state_to_odometry
from hybrid_mpc_ros.ros.node_runtime import declare_parameters, run_node
from hybrid_mpc_ros.ros.simulator_health import CommandHealth

NODE_NAME = 'quadcopter_simulator'
CLOCK_MODES = ('lockstep', 'realtime')
COMMAND_LOSS_ACTIONS = ('hold_command', 'hover_in_place')
DEFAULT_CLOCK_MODE = 'realtime'
# the profile rclcpp::ClockQoS uses: best effort, keep last 1
CLOCK_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
STATE_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
# rclpy refuses a throttle period that changes between calls of one log statement (it
# raises ValueError), so every throttled log here uses this constant
LOG_THROTTLE_S = 1.0
DIAGNOSTIC_PERIOD_S = 1.0
PITCH_INDEX = 7


def default_frame_prefix(namespace: str) -> str:
    """``frame_prefix`` for a node namespace: ``'/'`` gives ``''``, ``'/a/b'`` ``'a/b/'``."""
    stripped = namespace.strip('/')
    return f'{stripped}/' if stripped else ''


def initial_state_problem(value) -> str:
    """Why ``value`` is not a valid initial state, or '' when it is.

    Valid: 12 finite values, pitch strictly within (-pi/2, pi/2) (Z-Y-X Euler angles and
    the model's kinematics are singular at +-90 deg), and an odometry message that holds
    only finite numbers (a huge velocity can overflow when rotated into the body frame).
    """
    values = [float(item) for item in value]
    if len(values) != NX:
        return f'initial_state must hold {NX} values, got {len(values)}'
    if not all(math.isfinite(item) for item in values):
        return f'initial_state must be finite, got {values}'
    if not abs(values[PITCH_INDEX]) < 0.5 * math.pi:
        return (f'initial_state pitch (index {PITCH_INDEX}) must be within (-pi/2, pi/2) '
                f'rad, where Z-Y-X Euler angles are defined, got {values[PITCH_INDEX]}')
    with np.errstate(all='ignore'):
        arrays = state_to_odometry_arrays(np.array(values))
    if not all(np.isfinite(array).all() for array in arrays):
        return f'initial_state {values} overflows in the odometry message (too large)'
    return ''


def _frame_id_problem(name: str, value: str, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        return f'{name} must be a string, got {value!r}'
    if not value and not allow_empty:
        return f'{name} must not be empty'
    if value.startswith('/') or any(char.isspace() for char in value):
        return f'{name} must not start with "/" or contain spaces (tf2 frame ids), got {value!r}'
    return ''


_VALIDATORS = {
    'clock_mode': lambda value: '' if value in CLOCK_MODES else
    f'clock_mode must be one of {CLOCK_MODES}, got {value!r}',
    'integrator': lambda value: '' if value in INTEGRATORS else
    f'integrator must be one of {INTEGRATORS}, got {value!r}',
    'initial_state': initial_state_problem,
    'frame_prefix': lambda value: _frame_id_problem('frame_prefix', value, allow_empty=True),
    'world_frame_id': lambda value: _frame_id_problem('world_frame_id', value),
    'body_frame_id': lambda value: _frame_id_problem('body_frame_id', value),
}


# the scenario's keys this node reads (/** and quadcopter_simulator), with the schema's
# descriptions and ranges; this node keeps its own stricter ranges and defaults
SCENARIO = {
    'period_s': SHARED['period_s'].within(high=1.0, constraints='0 < period_s <= 1'),
    'initial_state': SHARED['initial_state'].within(
        constraints=f'{NX} finite values, |pitch| < pi/2'),
}
# every key of the simulator section; the optional ones (both kinds' but the defaults of
# config/simulator.yaml) are declared only when given
SCENARIO.update({name: spec for name, (spec, _) in flat_specs(SIMULATOR).items()})
SCENARIO['substeps'] = SCENARIO['substeps'].within(high=100)
# the node's runtime settings
RUNTIME = {
    'clock_mode': text(CLOCK_MODES, description=(
        "'realtime': advance on a wall timer; 'lockstep': advance one period per received "
        'command')),
    'publish_clock': boolean(description=(
        'publish the simulation time on /clock and stamp odom with it, for nodes with '
        "use_sim_time (default: true in lockstep mode, false in realtime mode, where odom "
        "is stamped with this node's clock)")),
    'frame_prefix': text(description=(
        'prefix of both frame ids (as robot_state_publisher), e.g. "quad1/"; default: the '
        'node namespace followed by "/", empty in the root namespace')).within(
            constraints='no leading "/"'),
    'world_frame_id': text(description=(
        'frame of the pose (ENU), header.frame_id of odom after frame_prefix')),
    'body_frame_id': text(description=(
        'body frame (FLU) of the twist, child_frame_id of odom after frame_prefix')),
    'command_timeout_s': floating(0.0, maximum=60.0, description=(
        'realtime mode: report a missing controller after this long without a rotor '
        'command [s] (wall): WARN diagnostics, and a warning log after 1x, 2x, 4x... this '
        'silence. The last command stays held. 0 disables both')),
    'command_loss_action': text(COMMAND_LOSS_ACTIONS, description=(
        "realtime mode, after command_timeout_s without a rotor command: 'hold_command' "
        "integrates the last command (what a bare airframe does); 'hover_in_place' stands "
        "in for a vehicle's autopilot taking over (as PX4 does when offboard setpoints "
        'stop): the vehicle hovers, level and still, where it was until commands resume')),
    'lockstep_republish_s': floating(0.0, maximum=60.0, description=(
        'lockstep mode: re-publish the current odom and clock, without advancing, when no '
        'command came for this long [s] (wall). 0 disables')),
}
# the defaults of both groups: the shipped config/simulator.yaml (the paper's plant, RK4
# with 4 substeps, realtime), read when a node starts
RUNTIME_FILE = 'simulator.yaml'
SIMULATOR_NAMES = frozenset(flat_specs(SIMULATOR))


class SimulatorNode(Node):
    """Integrates the quadcopter with the commanded rotor speeds and publishes its state."""

    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        self.add_on_set_parameters_callback(self._validate_parameters)
        self._declare_parameters()
        param = self.get_parameter
        period = param('period_s').value
        if not period > 0.0:
            raise ConfigError(f'period_s must be > 0, got {period}')
        self._simulator = self._plant_settings()
        self._plant = plant = self._simulator.build(period)
        self._omega_min, self._omega_max = plant.u_min, plant.u_max
        self._clock_mode = param('clock_mode').value
        self._publish_clock = param('publish_clock').value
        self._initial_state = np.array(param('initial_state').value, dtype=float)
        prefix = param('frame_prefix').value
        world_frame = prefix + param('world_frame_id').value
        body_frame = prefix + param('body_frame_id').value
        self.add_post_set_parameters_callback(self._apply_parameters)

        self._period_ns = round(period * 1e9)
        self._state = self._initial_state.copy()
        plant.reset(self._state)
        self._command = plant.hover_input
        self._steps = 0
        self._sim_time_ns = 0
        self._diverged_at_step = None
        self._hover_on_loss = param('command_loss_action').value == 'hover_in_place'
        self._hovering = False      # hovering in place for a lost controller
        self._last_activity_wall = time.monotonic()
        self._health = CommandHealth(
            self._last_activity_wall, param('command_timeout_s').value,
            realtime=self._clock_mode == 'realtime',
            rotor_limits=(plant.u_min, plant.u_max))

        # messages refilled in place each step: the lockstep round trip is the hot path
        self._odom_msg = Odometry()
        self._odom_msg.header.frame_id = world_frame
        self._odom_msg.child_frame_id = body_frame
        self._clock_msg = ClockMsg()

        self._odom_pub = self.create_publisher(Odometry, 'odom', STATE_QOS)
        self._clock_pub = (self.create_publisher(ClockMsg, '/clock', CLOCK_QOS)
                           if self._publish_clock else None)
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', STATE_QOS)
        self._command_sub = self.create_subscription(
            Float64MultiArray, 'rotor_speeds_cmd', self._on_command, STATE_QOS)
        self.create_service(Trigger, '~/reset', self._on_reset)
        # wall timers on the steady clock: this node may be the clock source, it must never
        # wait on /clock itself, even if someone sets use_sim_time on it
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.create_timer(DIAGNOSTIC_PERIOD_S, self._publish_diagnostics, clock=steady)
        if self._clock_mode == 'realtime':
            self.create_timer(period, self._on_realtime_tick, clock=steady)
        else:
            republish = param('lockstep_republish_s').value
            if republish > 0.0:
                self._republish_s = republish
                self.create_timer(republish, self._on_republish_tick, clock=steady)
        self._update_stamp()
        self._publish_state()
        stamps = ('simulation time, published on /clock' if self._publish_clock
                  else "this node's clock (no /clock published)")
        self.get_logger().info(
            f'simulating {self._describe_plant()}, {self._clock_mode} mode, period {period} '
            f's, hover {plant.hover_input[0]:.1f} rad/s; odom {world_frame} -> {body_frame} '
            f'stamped with {stamps}')
        if self._clock_mode == 'lockstep':
            self.get_logger().info(
                f'lockstep: waiting for rotor commands on {self._command_sub.topic_name}, '
                'each advances the simulation one period')

    # -- parameters ---------------------------------------------------------------------

    def _plant_settings(self):
        """Check the plant parameters of the chosen kind as a scenario file's; build them."""
        kind = self._values.get('kind') or 'quadcopter'
        wanted = ('kind', 'layout', 'command_rotors') + (
            ('rotorpy.',) if kind == 'rotorpy' else ('integrator', 'substeps', 'plant.'))
        nested = nested_values({name: value for name, value in self._values.items()
                                if value is not None and name.startswith(wanted)
                                and name in SIMULATOR_NAMES})
        file = ParameterFile(self.get_fully_qualified_name(), 'node')
        return simulator_section(file, file.read(NODE_NAME, nested, SIMULATOR))

    def _describe_plant(self) -> str:
        simulator = self._simulator
        if simulator.kind == 'rotorpy':
            settings = simulator.rotorpy
            wind = ('no wind' if settings.wind is None
                    else f'wind {list(settings.wind)} m/s')
            return (f'RotorPy {settings.vehicle} (aerodynamics '
                    f'{"on" if settings.aero else "off"}, {wind}, {settings.integration} '
                    f'integration, inner step {self._plant.inner_step_s} s, layout '
                    f'{simulator.layout!r})')
        return (f'{simulator.plant.mass} kg quadcopter ({simulator.integrator}, '
                f'{simulator.substeps} substeps, layout {simulator.layout!r})')

    def _declare_parameters(self) -> None:
        declare_parameters(self, {'clock_mode': RUNTIME['clock_mode']},
                           {'clock_mode': DEFAULT_CLOCK_MODE})
        lockstep = self.get_parameter('clock_mode').value == 'lockstep'
        shipped = flatten(load_node_params(paths.config_file(RUNTIME_FILE), NODE_NAME))
        defaults = dict(shipped, publish_clock=lockstep,
                        frame_prefix=default_frame_prefix(self.get_namespace()))
        self._values = declare_parameters(self, SCENARIO, defaults,
                                          writable=('initial_state',))
        declare_parameters(self, {name: spec for name, spec in RUNTIME.items()
                                  if name != 'clock_mode'},
                           defaults, writable=('command_timeout_s',))

    def _validate_parameters(self, params) -> SetParametersResult:
        for param in params:
            validator = _VALIDATORS.get(param.name)
            if validator is None:
                continue
            try:
                reason = validator(param.value)
            except (TypeError, ValueError) as exc:
                reason = f'{param.name}: invalid value {param.value!r}: {exc}'
            if reason:
                return SetParametersResult(successful=False, reason=reason)
        return SetParametersResult(successful=True)

    def _apply_parameters(self, params) -> None:
        for param in params:
            if param.name == 'initial_state':
                self._initial_state = np.array(param.value, dtype=float)
            elif param.name == 'command_timeout_s':
                self._health.set_command_timeout(param.value)

    # -- simulation ---------------------------------------------------------------------

    def _on_command(self, msg: Float64MultiArray) -> None:
        now = time.monotonic()
        health = self._health
        try:
            command = parse_rotor_command(msg)
        except ValueError as exc:
            count = health.count_rejected(str(exc))
            self.get_logger().error(f'rejected rotor command ({count} so far): {exc}; '
                                    'holding the last valid one',
                                    throttle_duration_sec=LOG_THROTTLE_S)
        else:
            if command.min() < self._omega_min or command.max() > self._omega_max:
                count = health.count_clamped()
                self.get_logger().warning(
                    f'rotor command {command.tolist()} outside [{self._omega_min}, '
                    f'{self._omega_max}] rad/s, clamped ({count} so far)',
                    throttle_duration_sec=LOG_THROTTLE_S)
                command = np.clip(command, self._omega_min, self._omega_max)
            self._command = command
        ended = health.command_received(now)
        self._hovering = False
        if ended is not None:
            self.get_logger().info(f'rotor commands resumed on {self._command_sub.topic_name} '
                                   f'after {ended:.1f} s without')
        if self._clock_mode == 'lockstep':
            self._last_activity_wall = now
            self._advance()

    def _on_realtime_tick(self) -> None:
        now = time.monotonic()
        silence = self._health.silence_to_report(now)
        if silence is not None:
            held = ('the hover input' if self._health.last_command is None
                    else 'the last command')
            doing = ('hovering in place (command_loss_action hover_in_place)'
                     if self._hover_on_loss else f'integrating {held}')
            self.get_logger().warning(
                f'no rotor command on {self._command_sub.topic_name} for {silence:.1f} s: '
                f'is a controller running? {doing.capitalize()}; next reminder after '
                f'{self._health.next_report_s:.0f} s of silence')
        if self._hover_on_loss and self._health.lost(now):
            self._hover_in_place()
        else:
            self._advance()

    def _hover_in_place(self) -> None:
        """One period of a lost controller with command_loss_action hover_in_place.

        The vehicle's autopilot, idealised: from the first such period on, the vehicle
        hovers level and still where it was (position and yaw kept), the plant's hidden
        states at hover (:meth:`Plant.reset`), the hover input held; time goes on.
        """
        if not self._hovering:
            self._hovering = True
            self._state = hover_reference(self._state)
            self._plant.reset(self._state)
            self._command = self._plant.hover_input
            x, y, z = self._state[0:3]
            self.get_logger().warning(
                f'controller lost: hovering in place at ({x:.2f}, {y:.2f}, {z:.2f}) m until '
                'rotor commands resume')
        self._steps += 1
        self._sim_time_ns += self._period_ns
        self._update_stamp()
        self._publish_state()

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
            # the integration blew up (e.g. tumbling through pitch +-90 deg): keep the last finite
            # state so consumers never receive NaN; diagnostics report ERROR until reset
            if self._diverged_at_step is None:
                self._diverged_at_step = self._steps
            self.get_logger().error(
                f'plant state became non-finite at step {self._steps}; holding the last '
                'finite state until ~/reset', throttle_duration_sec=LOG_THROTTLE_S)
        self._update_stamp()
        self._publish_state()

    def _update_stamp(self) -> None:
        """Stamp the odometry (and the clock message) for the state just reached."""
        stamp = self._odom_msg.header.stamp
        if self._publish_clock:
            stamp.sec, stamp.nanosec = divmod(self._sim_time_ns, 1_000_000_000)
            clock = self._clock_msg.clock
            clock.sec, clock.nanosec = stamp.sec, stamp.nanosec
        else:
            stamp.sec, stamp.nanosec = divmod(self.get_clock().now().nanoseconds,
                                              1_000_000_000)

    def _publish_state(self) -> None:
        if self._clock_pub is not None:
            self._clock_pub.publish(self._clock_msg)
        odom = self._odom_msg
        self._odom_pub.publish(state_to_odometry(self._state, odom.header.stamp,
                                                 odom.header.frame_id, odom.child_frame_id,
                                                 out=odom))

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response):
        self._state = self._initial_state.copy()
        self._plant.reset(self._state)
        self._command = self._plant.hover_input
        self._diverged_at_step = None
        self._hovering = False      # still lost: the next period hovers at the reset state
        self._last_activity_wall = time.monotonic()
        self._update_stamp()
        self._publish_state()
        response.success = True
        response.message = (f'reset to initial_state at sim time '
                            f'{self._sim_time_ns * 1e-9:.3f} s (step {self._steps})')
        self.get_logger().info(response.message)
        return response

    # -- diagnostics --------------------------------------------------------------------

    def _publish_diagnostics(self) -> None:
        now = time.monotonic()
        health = self._health
        status = DiagnosticStatus(name=f'{self.get_name()}: simulation',
                                  hardware_id=f'simulated quadcopter '
                                              f'{self.get_fully_qualified_name()}')
        problems = health.problems(now, self._diverged_at_step)
        if problems:
            status.level = bytes([max(level for level, _ in problems)])
            status.message = '; '.join(text for _, text in problems)
        else:
            status.level = DiagnosticStatus.OK
            status.message = ('waiting for the first rotor command'
                              if health.last_command is None else 'running')
        values = {
            'clock_mode': self._clock_mode,
            'odom_stamps': 'simulation time (/clock)' if self._publish_clock else 'node clock',
            'frames': f'{self._odom_msg.header.frame_id} -> {self._odom_msg.child_frame_id}',
            'steps': str(self._steps),
            'sim_time_s': f'{self._sim_time_ns * 1e-9:.9f}',
            'rejected_commands': str(health.rejected),
            'clamped_commands': str(health.clamped),
            'last_rejection': health.last_rejection or 'none',
            'last_command_age_s': ('never' if health.last_command is None
                                   else f'{now - health.last_command:.3f}'),
            'diverged_at_step': ('no' if self._diverged_at_step is None
                                 else str(self._diverged_at_step)),
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
