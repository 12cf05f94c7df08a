"""ROS 2 node ``mpc_controller``: the acados MPC at a fixed rate, with its sensitivities.

A thin shell over :class:`~hybrid_mpc_ros.core.mpc.safe_control.SafeController` (the
policy, its shifted-plan fallback and the failsafe). Relative names, so the node can be
namespaced and remapped onto a vehicle's topics:

* subscribes ``odom`` (``nav_msgs/Odometry``, pose in the world frame, twist in the body
  frame, REP-103/105). Odometry with NaN/Inf, a zero or non-unit quaternion, or a stamp
  older than the last accepted one is rejected and counted.
* publishes ``rotor_speeds_cmd`` (``std_msgs/Float64MultiArray``, 4 rotor speeds
  [rad/s]), ``~/sensitivity`` (``std_msgs/Float64MultiArray``, one per control step,
  layout in :mod:`hybrid_mpc_ros.ros.sensitivity_msg`), ``~/predicted_path``
  (``nav_msgs/Path``, the MPC's predicted positions, only built while someone
  subscribes) and ``/diagnostics`` (1 Hz wall).
* serves ``~/reset`` (``std_srvs/Trigger``): forget the solver's warm start and the last
  plan, so the next episode depends only on theta and the states, exactly as an offline
  rollout does; and ``~/hold`` (``std_srvs/SetBool``, ``odometry`` trigger on simulated
  time only; refused on wall time, where a held node would send no commands): while
  held, odometry is kept but not answered. The lockstep simulator then waits, so the
  tuner can reset it and this node between two steps without a command in flight; on
  release the node answers the newest odometry at once. The answer's text ends with the
  stamp of the last odometry the node answered (:mod:`hybrid_mpc_ros.ros.replies`), so a
  tuner knows which odometry brings the token back.

The protocol itself (when to step, the revision, hold and reset) is
:class:`~hybrid_mpc_ros.core.control.controller_loop.ControllerLoop`; this node translates
messages, parameters and services into its calls.

When a control step runs (parameter ``trigger``):

* ``timer``: a wall-clock timer at ``1 / period_s`` computes a command from the latest
  odometry. This is the mode for a vehicle whose odometry comes faster than the control
  rate: the rate does not depend on the odometry rate, and stale odometry is noticed
  (failsafe).
* ``odometry``: one step per odometry message with a *new* stamp, computed at once. This
  is the mode for the lockstep simulator: its ``/clock`` only advances when a command
  arrives, so a timer on simulated time would never fire, and it re-publishes the same
  odometry while it waits for a first command; re-published stamps are ignored, so every
  simulator period gets exactly one command, computed from that period's odometry. It is
  also the mode for odometry that comes *at* the control rate on wall time (the realtime
  simulator): a timer's phase against the odometry could make every command a period
  late, and the offset-free MPC diverges with that delay. On wall time a watchdog steps
  on the newest odometry after 1.5 periods without a step (odometry late or lost), so
  commands never stop; its steps check the odometry's age like the timer's.
* ``auto`` (default): ``odometry`` when ``use_sim_time`` is true, else ``timer``.

theta are the parameters ``theta.p_Q`` (12), ``theta.p_R`` (4) and ``theta.p_P`` (78),
double arrays that may be set live (``ros2 param set``, ``set_parameters`` or
``set_parameters_atomically``). A set is checked whole (sizes, finiteness, magnitude) in
the on-set callback and refused with a reason, or applied between two control steps; each
accepted set increments the theta revision carried by every later sensitivity message;
the answer to ``~/reset`` names the current revision
(:mod:`hybrid_mpc_ros.ros.replies`), so a tuner knows which
samples are its episode's and notices a restarted controller (revisions start at 0).
``x_ref`` (12) may change live too and also increments the revision (the revision names
the policy: theta and reference; a tuner flying a vehicle back to its start uses it to
know where an episode begins). Structural parameters (horizon, model file, bounds,
period, trigger) are read-only.

A jump of simulated time (``/clock`` going back, or forward by more than a second) changes
nothing here and is logged: the steps, the failsafe and the odometry checks run on wall
time and odometry stamps (an odometry stamp going back is refused, as always); only the
stamps of ``~/sensitivity`` and ``/diagnostics`` follow ``/clock``.

The envelope abort (parameters ``envelope.max_position_error_m``, ``envelope.max_tilt_rad``,
``envelope.max_rate_rad_s``; inf, the default, disables a limit; they may change live):
the first control step whose state lies outside puts back the safe theta before solving,
so that step and every later one fly it
(:class:`~hybrid_mpc_ros.core.mpc.safe_control.SafeController`). The safe theta is the
parameters ``safe_theta.p_Q``, ``safe_theta.p_R``, ``safe_theta.p_P`` (the sizes and checks
of theta's); they start as the theta the node started with, and a tuner keeps its best
theta there (it sends it with every candidate theta, in the same atomic set), so an abort
flies the best theta found so far, not the start theta. Setting them makes no revision
(they fly only after an abort, which makes its own). That step's sensitivity message
carries the status
:data:`~hybrid_mpc_ros.core.learning.samples.ENVELOPE_ABORT_STATUS` and the revision of
the theta it stopped; later messages carry the next revision, so a tuner ends that
episode there and counts it as failed (it rolls back). The abort is logged, counted in
the diagnostics (``envelope_aborts``; ``safe_theta`` says whether a tuner set it) and
re-armed by the next theta set or ``~/reset``.
The ``theta.*`` parameters keep the candidate's values meanwhile (setting them from inside
would re-arm the abort): the revision says which theta flies.

Input excitation for identification flights (parameters ``excitation.amplitude_rad_s``,
``excitation.kind``, ``excitation.seed``; amplitude 0, the default, turns it off; they may
change live): a bounded, seeded perturbation added to every command but the failsafe's,
then clipped to the rotor bounds (:mod:`hybrid_mpc_ros.core.control.excitation`). The
diagnostics say when it is on (key ``excitation`` and the status message).
"""

from __future__ import annotations

from collections import deque
from dataclasses import replace
import sys
import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseStamped
from nav_msgs.msg import Odometry, Path
import numpy as np
from rcl_interfaces.msg import SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import SetBool, Trigger

from hybrid_mpc_ros.core import paths, scenario
from hybrid_mpc_ros.core.config import ConfigError, flatten, load_node_params
from hybrid_mpc_ros.core.control.controller_loop import ControllerLoop
from hybrid_mpc_ros.core.control.excitation import (Excitation, ExcitationConfig, KINDS,
                                                    MAX_AMPLITUDE_RAD_S)
from hybrid_mpc_ros.core.learning.samples import Stamp
from hybrid_mpc_ros.core.model.frames import euler_to_quaternion
from hybrid_mpc_ros.core.model.quadcopter import NX
from hybrid_mpc_ros.core.mpc import theta as th
from hybrid_mpc_ros.core.mpc.safe_control import Envelope, SafeController, SafetyConfig
from hybrid_mpc_ros.core.param_schema import floating, floats, integer, text
from hybrid_mpc_ros.ros.msgs import odometry_to_state, rotor_command
from hybrid_mpc_ros.ros.node_runtime import declare_parameters, log_time_jumps, run_node
from hybrid_mpc_ros.ros.replies import hold_response, reset_response
from hybrid_mpc_ros.ros.sensitivity_msg import SensitivityEncoder

NODE_NAME = 'mpc_controller'
RUNTIME_FILE = 'mpc_controller.yaml'
TRIGGERS = ('auto', 'timer', 'odometry')
SAFETY_PARAMETERS = ('odom_timeout_s', 'max_plan_steps', 'failsafe_thrust_fraction')
# the node's runtime settings (defaults: config/mpc_controller.yaml)
RUNTIME = {
    'trigger': text(TRIGGERS, description=(
        "when a control step runs: 'timer' (wall timer at 1/period_s: vehicles with "
        "odometry faster than that), 'odometry' (one step per new odometry stamp: lockstep "
        "simulator, or odometry at the control rate such as the realtime simulator's; on "
        "wall time with a watchdog) or 'auto' (odometry if use_sim_time, else timer)")),
    'rate_hz': floating(0.0, maximum=1000.0, description=(
        'rate of the timer trigger [Hz]; 0: 1/period_s, the rate the MPC model is made '
        'for (another rate is for benchmarking only)')),
    'odom_timeout_s': floating(0.001, maximum=60.0, description=(
        'odometry older than this (wall time since it arrived) switches to the failsafe '
        'input [s]')),
    'max_plan_steps': integer(0, 1000, description=(
        'consecutive solver failures bridged with the previous plan shifted by one step '
        'each; more switch to the failsafe (at most horizon - 1)')),
    'failsafe_thrust_fraction': floating(0.0, maximum=1.5, description=(
        'failsafe input: equal rotor speeds giving this fraction of the hover thrust of '
        'u_ref (no torque; below 1 the vehicle sinks slowly)')),
}
# the envelope abort's limits (Envelope's fields), as envelope.<field>
ENVELOPE_PARAMETERS = (
    ('max_position_error_m', 'largest distance of the position from the target position '
                             '[m]'),
    ('max_tilt_rad', 'largest |roll| and |pitch| [rad]'),
    ('max_rate_rad_s', 'largest |p|, |q|, |r| [rad/s]'),
)
RUNTIME.update({f'envelope.{name}': floating(0.0, description=(
    f'envelope abort: {what}; the first step beyond it ends the tuner\'s episode and flies '
    'the safe theta (safe_theta.*) until the next theta; inf: no limit; may change live'))
    for name, what in ENVELOPE_PARAMETERS})
# the input excitation of identification flights (ExcitationConfig's fields), as excitation.*
EXCITATION = {
    'excitation.amplitude_rad_s': floating(0.0, maximum=MAX_AMPLITUDE_RAD_S, description=(
        'identification flights: largest perturbation added to each rotor command after '
        'the MPC, then clipped to the rotor bounds [rad/s]; 0: off (the default); may '
        'change live')),
    'excitation.kind': text(KINDS, description=(
        "identification flights: 'prbs' (+-amplitude with a random sign per rotor and step) "
        "or 'gaussian' (standard deviation amplitude/3, cut at +-amplitude); may change "
        'live')),
    'excitation.seed': integer(0, 2 ** 31 - 1, description=(
        'identification flights: seed of the excitation\'s draws (a new seed restarts '
        'them); may change live')),
}
RUNTIME.update(EXCITATION)
# theta, as the tuner sets it; default: the paper's start for the node's nominal model
THETA = {name: floats(part.stop - part.start, description=(
    f'MPC cost parameters {group}: {what}; may change live (sizes, finiteness and '
    f'|entry| <= {th.MAX_ABS_ENTRY:g} are checked)'))
    for (group, part, what), name in zip(th.GROUPS, th.PARAMETER_NAMES)}
# the safe theta an envelope abort flies; default: the theta the node starts with
SAFE_THETA = {name: floats(part.stop - part.start, description=(
    f'safe theta {group} (as theta.{group}): what the controller flies after an envelope '
    'abort; default: the start theta; a tuner keeps its best theta here; may change live'))
    for (group, part, _), name in zip(th.GROUPS, th.SAFE_PARAMETER_NAMES)}
# scenario values that may change while the node runs; the rest define the compiled MPC
LIVE_SCENARIO_PARAMETERS = ('x_ref',)
QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
# a tuner must see every step of an episode even when it falls behind a lockstep loop
# running at ~1 kHz: keep a few seconds of messages (3.6 kB each) for late acknowledgments
SENSITIVITY_QOS = QoSProfile(depth=2000, reliability=ReliabilityPolicy.RELIABLE)
LOG_THROTTLE_S = 1.0
TIMING_WINDOW = 1000                 # control steps kept for the latency statistics


class MPCControllerNode(Node):
    """Runs the MPC on the latest odometry and publishes commands and sensitivities."""

    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        values = self._declare_parameters()
        theta = th.from_parameters({name: values[name] for name in th.PARAMETER_NAMES})
        safety = SafetyConfig(*(values[name] for name in SAFETY_PARAMETERS))
        config = self._settings.mpc_config
        self._excitation = Excitation(self._excitation_config(values), config.u_min,
                                      config.u_max)
        self._controller = SafeController(self._settings.policy(theta=theta), safety, config.u_min,
                                          config.u_max, self._envelope(values), self._excitation)
        # the safe theta an envelope abort flies: safe_theta.*, by default the start theta
        self._controller.set_safe_theta(th.from_parameters(th.unprefix_safe(values)))
        self._period_s = config.dt
        self._timer_period_s = 1.0 / values['rate_hz'] if values['rate_hz'] > 0.0 else \
            config.dt
        self._trigger = values['trigger']
        if self._trigger == 'auto':
            self._trigger = 'odometry' if values['use_sim_time'] else 'timer'
        # the protocol: when to step, the revision, hold and reset (times: time.monotonic())
        self._loop = ControllerLoop(self._controller, self._trigger,
                                    sim_time=bool(values['use_sim_time']))
        # an offset-free controller sends version 2, with its disturbance estimate
        self._encoder = SensitivityEncoder(
            offset_free=self._settings.controller.disturbance_observer_gain is not None)
        self.add_on_set_parameters_callback(self._validate_parameters)
        self.add_post_set_parameters_callback(self._apply_parameters)

        self._latency_s = deque(maxlen=TIMING_WINDOW)       # odometry -> command published
        self._step_s = deque(maxlen=TIMING_WINDOW)          # odometry -> sensitivities out
        self._solve_ms = deque(maxlen=TIMING_WINDOW)
        # how old the odometry a step used was: since its callback ran (what the failsafe
        # judges) and, on wall time, since its stamp (also counts the time it waited to be
        # served: a callback served late looks fresh to the failsafe)
        self._odom_age_s = deque(maxlen=TIMING_WINDOW)
        self._odom_stamp_age_s = deque(maxlen=TIMING_WINDOW)
        # on wall time: from the odometry's stamp to its callback (delivery and the wait
        # to be served; independent of the timer's phase)
        self._odom_delay_s = deque(maxlen=TIMING_WINDOW)
        self._wall_time = not values['use_sim_time']
        self._last_theta_set = None        # time.monotonic() of the last accepted theta set
        self._last_safe_theta_set = None   # and of the last safe theta set
        self._world_frame = 'odom'
        self._diagnostics_snapshot = (0, 0, 0, 0, 0)

        self._command_pub = self.create_publisher(Float64MultiArray, 'rotor_speeds_cmd', QOS)
        self._sensitivity_pub = self.create_publisher(Float64MultiArray, '~/sensitivity',
                                                      SENSITIVITY_QOS)
        self._path_pub = self.create_publisher(Path, '~/predicted_path', QOS)
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', QOS)
        self.create_subscription(Odometry, 'odom', self._on_odom, QOS)
        self.create_service(Trigger, '~/reset', self._on_reset)
        self.create_service(SetBool, '~/hold', self._on_hold)
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        # wall timers on the steady clock: with use_sim_time a ROS timer would wait on /clock,
        # which the lockstep simulator only advances when this node answers
        self.create_timer(1.0, self._publish_diagnostics, clock=steady)
        self._last_tick = None
        self._tick_periods = deque(maxlen=TIMING_WINDOW)
        self._watchdog_steps = 0
        if self._trigger == 'odometry' and self._wall_time:
            # odometry late or lost on wall time: step anyway (ControllerLoop.watchdog)
            self.create_timer(self._period_s / 10, self._on_watchdog, clock=steady)
        if self._trigger == 'timer':
            self.create_timer(self._timer_period_s, self._on_timer, clock=steady)
            if abs(self._timer_period_s - self._period_s) > 1e-9:
                self.get_logger().warning(
                    f'control rate {values["rate_hz"]:g} Hz differs from the model\'s '
                    f'1/period_s = {1.0 / self._period_s:g} Hz: the MPC predicts with the '
                    'wrong step (benchmarking only)')
        self._time_jumps = log_time_jumps(self, (
            'nothing changes: steps, the failsafe and the odometry checks run on wall time '
            'and odometry stamps; only the stamps of ~/sensitivity and /diagnostics follow '
            '/clock'))
        self.get_logger().info(
            f'MPC controller ready: horizon {values["horizon"]}, period {self._period_s} s, '
            f'trigger {self._trigger}, nominal model {self._settings.nominal_model_path}')

    # -- parameters ----------------------------------------------------------------------

    def _declare_parameters(self) -> dict:
        """Declare every parameter; return their values by name.

        Defaults come from the shipped files only: the scenario values from the default
        scenario (:func:`scenario.node_parameters`), the runtime settings from
        ``config/mpc_controller.yaml``, theta from the paper's start for the scenario's
        nominal model (so a scenario file or ``-p`` overrides any of them).
        """
        declared = scenario.node_parameters(NODE_NAME)
        specs = {name: spec for name, (_, spec) in declared.items()}
        for name in LIVE_SCENARIO_PARAMETERS:
            specs[name] = specs[name].describe(specs[name].description + '; may change live')
        self._scenario_names = tuple(specs)
        values = declare_parameters(
            self, specs, {name: value for name, (value, _) in declared.items()},
            writable=LIVE_SCENARIO_PARAMETERS)
        runtime = flatten(load_node_params(paths.config_file(RUNTIME_FILE), NODE_NAME))
        runtime = {name: float(value) if name.startswith('envelope.') else value
                   for name, value in runtime.items()}
        values.update(declare_parameters(self, RUNTIME, runtime, writable=(
            SAFETY_PARAMETERS + self._envelope_names() + tuple(EXCITATION))))
        values['use_sim_time'] = self.get_parameter('use_sim_time').value
        if values['trigger'] not in TRIGGERS:
            raise ConfigError(f'trigger must be one of {TRIGGERS}, got {values["trigger"]!r}')
        # theta's default is the paper's start for this node's model (Q = Qc, R = Rc, P from
        # the DARE), unless a parameter file gives theta
        self._settings = scenario.node_scenario(
            NODE_NAME, {name: values[name] for name in self._scenario_names},
            self.get_fully_qualified_name())
        start = th.to_parameters(self._settings.initial_theta())
        values.update(declare_parameters(self, THETA, start, writable=THETA))
        # the safe theta starts as the start theta, unless a parameter file gives it
        safe = th.to_safe_parameters(th.from_parameters(
            {name: values[name] for name in th.PARAMETER_NAMES}))
        values.update(declare_parameters(self, SAFE_THETA, safe, writable=SAFE_THETA))
        return values

    @staticmethod
    def _envelope_names() -> tuple:
        return tuple(f'envelope.{name}' for name, _ in ENVELOPE_PARAMETERS)

    @staticmethod
    def _envelope(values: dict) -> Envelope:
        """Build the :class:`Envelope` of the ``envelope.*`` values (ConfigError when not > 0)."""
        return Envelope(**{name: values[f'envelope.{name}'] for name, _ in ENVELOPE_PARAMETERS})

    @staticmethod
    def _excitation_config(values: dict) -> ExcitationConfig:
        """Build the :class:`ExcitationConfig` of the ``excitation.*`` values (ConfigError)."""
        return ExcitationConfig(**{name.partition('.')[2]: values[name] for name in EXCITATION})

    def _excitation_values(self) -> dict:
        config = self._excitation.config
        return {name: getattr(config, name.partition('.')[2]) for name in EXCITATION}

    def _validate_parameters(self, params) -> SetParametersResult:
        """Accept or refuse a whole set of parameters, with a reason; applies nothing."""
        updates = {param.name: param.value for param in params}
        theta_updates = {name: value for name, value in updates.items()
                         if name in th.PARAMETER_NAMES}
        reason = th.validate_parameters(theta_updates)
        if not reason:
            reason = th.validate_parameters(th.unprefix_safe(updates)).replace(
                th.PARAMETER_PREFIX, th.SAFE_PARAMETER_PREFIX)
        if not reason and 'x_ref' in updates:
            reason = _state_problem('x_ref', updates['x_ref'])
        if not reason and 'max_plan_steps' in updates:
            limit = self._controller.policy.config.horizon - 1
            if updates['max_plan_steps'] > limit:
                reason = f'max_plan_steps must not exceed horizon - 1 = {limit}'
        envelope = {name: updates[name] for name in self._envelope_names() if name in updates}
        if not reason and envelope:
            try:
                self._envelope(dict(self._envelope_values(), **envelope))
            except ConfigError as exc:
                reason = str(exc)
        excitation = {name: updates[name] for name in EXCITATION if name in updates}
        if not reason and excitation:
            try:
                self._excitation_config(dict(self._excitation_values(), **excitation))
            except ConfigError as exc:
                reason = str(exc)
        return SetParametersResult(successful=not reason, reason=reason)

    def _envelope_values(self) -> dict:
        envelope = self._controller.envelope
        return {f'envelope.{name}': getattr(envelope, name) for name, _ in ENVELOPE_PARAMETERS}

    def _apply_parameters(self, params) -> None:
        """Apply an accepted set between two control steps (one executor, one thread)."""
        updates = {param.name: param.value for param in params}
        theta_updates = {name: value for name, value in updates.items()
                         if name in th.PARAMETER_NAMES}
        changed = self._loop.set_policy(theta_updates, updates.get('x_ref'))
        if theta_updates:
            self._last_theta_set = time.monotonic()
        if self._loop.set_safe_theta(updates):
            self._last_safe_theta_set = time.monotonic()
        if changed:
            self.get_logger().info(f'revision {self._loop.revision}: {", ".join(changed)} '
                                   'applied')
        safety = {name: updates[name] for name in SAFETY_PARAMETERS if name in updates}
        if safety:
            self._controller.safety = replace(self._controller.safety, **safety)
        envelope = {name: updates[name] for name in self._envelope_names() if name in updates}
        if envelope:
            self._controller.envelope = self._envelope(dict(self._envelope_values(),
                                                            **envelope))
        excitation = {name: updates[name] for name in EXCITATION if name in updates}
        if excitation:
            self._excitation.configure(self._excitation_config(
                dict(self._excitation_values(), **excitation)))
            self.get_logger().info(f'excitation: {self._excitation.config.describe()}')

    # -- odometry and the control step ---------------------------------------------------

    def _on_odom(self, msg: Odometry) -> None:
        received = time.monotonic()
        stamp_ns = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        try:
            x = odometry_to_state(msg)    # ValueError: NaN/Inf, not a unit quaternion
            step = self._loop.odometry(stamp_ns, x, received)   # ValueError: an older stamp
        except ValueError as exc:
            count = self._loop.reject(str(exc))
            self.get_logger().error(f'rejected odometry ({count} so far): {exc}',
                                    throttle_duration_sec=LOG_THROTTLE_S)
            return
        self._world_frame = msg.header.frame_id or self._world_frame
        if self._wall_time:
            self._odom_delay_s.append((time.time_ns() - stamp_ns) * 1e-9)
        if step:
            self._control_step(received)

    def _on_timer(self) -> None:
        now = time.monotonic()
        if self._last_tick is not None:
            self._tick_periods.append(now - self._last_tick)
        self._last_tick = now
        if self._loop.timer():
            self._control_step(now)

    def _on_watchdog(self) -> None:
        now = time.monotonic()
        if self._loop.watchdog(now):
            self._watchdog_steps += 1
            self.get_logger().warning(
                f'no new odometry for {now - self._loop.odom_received:.3f} s (odometry '
                f'trigger on wall time): stepping on the last one ({self._watchdog_steps} '
                'such steps so far)', throttle_duration_sec=LOG_THROTTLE_S)
            self._control_step(now)

    def _control_step(self, started: float) -> None:
        result = self._loop.command(started)
        # the command first: the vehicle (in lockstep, the simulator and the next odometry)
        # goes on while the sensitivities, which only the tuner needs, are computed
        self._command_pub.publish(rotor_command(result.u))
        self._latency_s.append(time.monotonic() - started)
        if self._trigger == 'timer':
            self._odom_age_s.append(started - self._loop.odom_received)
            if self._wall_time:
                self._odom_stamp_age_s.append(
                    (time.time_ns() - self._loop.odom_stamp_ns) * 1e-9)
        result, sample = self._loop.report(
            result, lambda: Stamp.from_nanoseconds(self.get_clock().now().nanoseconds))
        self._sensitivity_pub.publish(self._encoder.encode_sample(sample))
        if result.abort_reason:
            self.get_logger().warning(
                f'envelope abort at revision {sample.revision}: {result.abort_reason}; '
                f'flying the safe theta as revision {self._loop.revision} ('
                f'{self._safe_theta_source(time.monotonic())})')
        done = time.monotonic()
        self._loop.step_done(done)
        self._step_s.append(done - started)
        self._solve_ms.append(result.solve_ms)
        # one call site per severity: rclpy raises when one site changes its severity
        # (a shifted-plan warning, then a failsafe error, stopped the node in the
        # fault-injection suite's parameter sweep)
        if result.reason and result.mode == 'failsafe':
            self.get_logger().error(f'{result.mode}: {result.reason}',
                                    throttle_duration_sec=LOG_THROTTLE_S)
        elif result.reason:
            self.get_logger().warning(f'{result.mode}: {result.reason}',
                                      throttle_duration_sec=LOG_THROTTLE_S)
        if result.mode == 'mpc' and self._path_pub.get_subscription_count() > 0:
            self._publish_path()

    def _publish_path(self) -> None:
        path = Path()
        path.header.stamp = self.get_clock().now().to_msg()
        path.header.frame_id = self._world_frame
        for state in self._controller.policy.predicted_states():
            pose = PoseStamped()
            pose.header = path.header
            position = pose.pose.position
            position.x, position.y, position.z = (float(v) for v in state[0:3])
            quat = euler_to_quaternion(*state[6:9])
            orientation = pose.pose.orientation
            orientation.x, orientation.y, orientation.z, orientation.w = (float(v)
                                                                          for v in quat)
            path.poses.append(pose)
        self._path_pub.publish(path)

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response):
        return reset_response(self._loop.reset(), response)

    def _on_hold(self, request: SetBool.Request, response: SetBool.Response):
        answer, step = self._loop.hold(bool(request.data))
        if step:                    # a release answers the newest odometry before replying
            self._control_step(time.monotonic())
        return hold_response(answer, response)

    # -- diagnostics ---------------------------------------------------------------------

    def _publish_diagnostics(self) -> None:
        counters = self._controller.counters
        now = time.monotonic()
        status = DiagnosticStatus(name=f'{self.get_name()}: mpc', hardware_id='mpc controller')
        loop = self._loop
        snapshot = (loop.rejected_odometry, counters.shifted_plan_steps,
                    counters.sensitivity_failures, counters.failsafe_steps,
                    counters.envelope_aborts)
        recent = [name for name, new, old in zip(
            ('odometry rejected', 'shifted plan used', 'sensitivities missing', 'failsafe',
             'envelope abort'), snapshot, self._diagnostics_snapshot) if new > old]
        self._diagnostics_snapshot = snapshot
        age = None if loop.odom_received is None else now - loop.odom_received
        stale = age is not None and age > self._controller.safety.odom_timeout_s
        if loop.x is None:
            status.level, status.message = DiagnosticStatus.WARN, 'waiting for odometry'
        elif 'failsafe' in recent or (stale and (self._trigger == 'timer' or self._wall_time)):
            status.level = DiagnosticStatus.ERROR
            status.message = f'failsafe: {counters.last_reason}'
        elif recent:
            status.level = DiagnosticStatus.WARN
            status.message = ', '.join(recent) + ' in the last second'
        else:
            # says whether a tuner is still setting theta, or the node flies on without one
            since = ('no theta set since start' if self._last_theta_set is None else
                     f'last theta set {now - self._last_theta_set:.0f} s ago')
            status.level = DiagnosticStatus.OK
            status.message = f'running: flying revision {loop.revision}, {since}'
        excitation = self._excitation.config.describe()
        if self._excitation.enabled:
            # commands are not the MPC's own: whoever reads the diagnostics must know
            status.message += f'; input excitation on: {excitation}'
        values = {
            'trigger': self._trigger,
            'excitation': excitation,
            'excited_steps': str(self._excitation.steps),
            'theta_revision': str(loop.revision),
            'steps': str(counters.steps),
            'mpc_steps': str(counters.modes['mpc']),
            'shifted_plan_steps': str(counters.shifted_plan_steps),
            'failsafe_steps': str(counters.failsafe_steps),
            'solver_failures': str(counters.solver_failures),
            'consecutive_failures': str(counters.consecutive_failures),
            'sensitivity_failures': str(counters.sensitivity_failures),
            'stale_odometry_steps': str(counters.stale_odometry_steps),
            'watchdog_steps': str(self._watchdog_steps),
            # odometry not one period after the last step's: an offset-free controller
            # skipped its estimate's update there (many: odometry at the control rate
            # under the timer trigger, or stamps that do not advance)
            'irregular_steps': str(loop.irregular_steps),
            'envelope_aborts': str(counters.envelope_aborts),
            'rejected_odometry': str(loop.rejected_odometry),
            'last_rejection': loop.last_rejection,
            'last_fallback_reason': counters.last_reason,
            'odometry_age_s': 'never' if age is None else f'{age:.3f}',
            'last_theta_set_s_ago': ('never' if self._last_theta_set is None else
                                     f'{now - self._last_theta_set:.1f}'),
            'safe_theta': self._safe_theta_source(now),
        }
        jitter = np.abs(np.asarray(self._tick_periods) - self._timer_period_s)
        for name, samples, scale in (('solve_ms', self._solve_ms, 1.0),
                                     ('latency_ms', self._latency_s, 1e3),
                                     ('step_ms', self._step_s, 1e3),
                                     ('odometry_age_ms', self._odom_age_s, 1e3),
                                     ('odometry_stamp_age_ms', self._odom_stamp_age_s, 1e3),
                                     ('odometry_delay_ms', self._odom_delay_s, 1e3),
                                     ('timer_jitter_ms', jitter, 1e3)):
            if len(samples):
                p50, p99 = np.percentile(np.asarray(samples) * scale, (50, 99))
                values[f'{name}_p50'], values[f'{name}_p99'] = f'{p50:.3f}', f'{p99:.3f}'
        status.values = [KeyValue(key=key, value=value) for key, value in values.items()]
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(array)

    def _safe_theta_source(self, now: float) -> str:
        """Where the safe theta comes from: the start, or a set (a tuner's best) and when."""
        if self._last_safe_theta_set is None:
            return 'the start theta'
        return f'set {now - self._last_safe_theta_set:.1f} s ago'


def _state_problem(name: str, value) -> str:
    """Why ``value`` is not a state (12 finite doubles), or '' when it is."""
    try:
        array = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        return f'{name} must be {NX} doubles, got {value!r}'
    if array.shape != (NX,):
        return f'{name} must hold {NX} values, got {array.size}'
    if not np.all(np.isfinite(array)):
        return f'{name} must be finite, got {array.tolist()}'
    return ''


def main(args=None) -> int:
    """Run the node until SIGINT/SIGTERM (console script ``mpc_controller_node``)."""
    return run_node(MPCControllerNode, NODE_NAME, args)


if __name__ == '__main__':
    sys.exit(main())
