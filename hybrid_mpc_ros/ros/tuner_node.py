"""ROS 2 node ``hybrid_tuner``: tunes a running MPC controller's theta from live episodes.

A thin shell over :class:`~hybrid_mpc_ros.core.learning.live_session.LiveSession` (the
episode protocol, documented there) and :class:`~hybrid_mpc_ros.core.learning.tuning.Tuner`
(the hybrid update). The node only translates: messages and service answers become
session events, the session's actions become service calls, parameter sets, log lines,
progress messages and files. Relative names, so the node can be namespaced and remapped:

* subscribes ``odom`` (``nav_msgs/Odometry``, decoded as the controller decodes it) and
  ``<controller>/sensitivity`` (``std_msgs/Float64MultiArray``, layout in
  :mod:`~hybrid_mpc_ros.ros.sensitivity_msg`);
* calls ``<controller>/set_parameters_atomically`` (theta, x_ref), ``<controller>/hold``
  and ``<controller>/reset``, and ``simulator_reset_service`` (``start_mode: reset``);
* publishes ``~/progress`` (``diagnostic_msgs/DiagnosticArray``, one message per
  iteration; keys in :mod:`~hybrid_mpc_ros.ros.progress_msg`, plotted by name in
  PlotJuggler);
* writes into ``output_dir`` the run's history CSV, theta after every iteration, the
  episodes, the checkpoint (after every iteration) and at the end the learning-curve
  figure and a JSON summary (:class:`~hybrid_mpc_ros.core.learning.reporting.RunRecorder`);
  with ``resume`` true it continues from the checkpoint there if it holds the same run.

Parameters: the scenario's ``/**`` and ``hybrid_tuner`` sections (method, gamma, delta,
schedules, iterations, episode_steps, Theta box, seed, nominal model file, cost, and the
step rule, safety guard and eta rule, so a live run steps, guards and mixes as the offline
tuning of the same scenario file), declared read-only with the default scenario's values
as defaults, exactly as the controller node declares its section, with the descriptions
and ranges of :mod:`hybrid_mpc_ros.core.scenario.schema` (the optional keys the default
scenario leaves out, such as the rule keys of the kinds it does not choose and
``cost.pc``, are declared without a value: a scenario file gives them where its choices
need them); and the runtime settings of ``config/hybrid_tuner.yaml`` (:data:`RUNTIME`:
start mode, controller name, services, timeouts, retries, settling, output).

A jump of simulated time (``/clock``) is logged and changes nothing: the timeouts run on
wall time, the episodes on odometry stamps.

Nothing here blocks the executor: service calls are asynchronous with done-callbacks, and
a 20 Hz wall timer drives the session's timeouts. Missing services at start are looked
for again with a growing interval (0.1 s doubling to 2 s) for ``startup_timeout_s``. When
the run is finished the node leaves the controller flying the final theta, writes its
files and exits with status 0; when the session gives up (too many reruns, no answer) it
exits with status 1 after one error line saying why.

A call to a service that is not there is not sent (DDS would lose the request): the
session hears of it at the next tick and reruns the episode after a backoff. The
checkpoint is written after the iteration's rows (:meth:`RunRecorder.commit`), so a
process killed at any moment resumes without a lost or repeated row. A write that fails
(a full or read-only output directory) stops the node with status 1 and an error naming
the directory and the error; the checkpoint of the last complete iteration is left as
it was (written atomically).

Why about 450 lines: it translates every event and action of the ROS-free session
(core/learning/live_session/) into topics, services and parameter calls, and every
iteration into the run recorder's files and the progress message; no decision is taken
here.
"""

from __future__ import annotations

from functools import partial
import math
import os
import sys
import time

from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Odometry
from rcl_interfaces.msg import Parameter as ParameterMsg, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParametersAtomically
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import SetBool, Trigger

from hybrid_mpc_ros.core import paths, scenario
from hybrid_mpc_ros.core.config import ConfigError, load_node_params
from hybrid_mpc_ros.core.control.answers import Refused
from hybrid_mpc_ros.core.learning import live_session as ls
from hybrid_mpc_ros.core.learning.reporting import (iteration_line, refuse_rules,
                                                    resume_line, resume_state,
                                                    ResumeRefused, RunRecorder)
from hybrid_mpc_ros.core.learning.tuning import Tuner
from hybrid_mpc_ros.core.param_schema import boolean, floating, integer, text
from hybrid_mpc_ros.ros.msgs import odometry_to_state
from hybrid_mpc_ros.ros.node_runtime import declare_parameters, log_time_jumps, run_node
from hybrid_mpc_ros.ros.progress_msg import progress_message
from hybrid_mpc_ros.ros.replies import (decode_hold, decode_reset, decode_set_parameters,
                                        decode_trigger, ReplyError)
from hybrid_mpc_ros.ros.sensitivity_msg import parse_sensitivity_message

NODE_NAME = 'hybrid_tuner'
RUNTIME_FILE = 'hybrid_tuner.yaml'
# deep enough that no step of an episode is lost while this node falls behind a lockstep
# loop running at ~1 kHz (the x[T] odometry is needed too)
STREAM_QOS = QoSProfile(depth=2000, reliability=ReliabilityPolicy.RELIABLE)
# transient local: a subscriber that discovers the tuner late (a plotter started later,
# hybrid-mpc tune's observer racing DDS discovery) still gets the last 100 iterations;
# volatile subscribers (PlotJuggler's default) are compatible with it
PROGRESS_QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                          durability=DurabilityPolicy.TRANSIENT_LOCAL)
# how the answer of each service a session calls is read (ros/replies.py)
DECODERS = {'hold': decode_hold, 'controller_reset': decode_reset,
            'simulator_reset': decode_trigger}
TICK_S = 0.05
FIRST_LOOK_S, LONGEST_LOOK_S = 0.1, 2.0
LOG_THROTTLE_S = 1.0
# the node's runtime settings (defaults: config/hybrid_tuner.yaml)
RUNTIME = {
    'start_mode': text(description=(
        "how an episode starts: 'reset' (the simulator's reset service) or 'fly_to_start' "
        '(fly back to x0 and settle; a vehicle)')),
    'hold': text(description=(
        "reset mode: 'auto' (hold the controller during the reset when it offers ~/hold: "
        "exact lockstep episodes) or 'never'")),
    'controller': text(description=(
        'name of the controller node (its parameter, hold, reset services and sensitivity '
        'topic)')),
    'simulator_reset_service': text(description=(
        "the simulator's reset service (std_srvs/Trigger)")),
    'service_timeout_s': floating(0.001, maximum=3600.0, description=(
        'wall seconds to wait for a service answer before the episode is rerun')),
    'message_timeout_s': floating(0.001, maximum=3600.0, description=(
        'wall seconds to wait for the next expected sample or odometry before the episode '
        'is rerun')),
    'startup_timeout_s': floating(0.001, maximum=86400.0, description=(
        'wall seconds to wait at start for the services and the first sample and '
        'odometry')),
    'max_episode_retries': integer(0, 1000, description=(
        'reruns of one episode before the node stops with an error')),
    'settle_position_tol_m': floating(1e-6, maximum=100.0, description=(
        'fly_to_start: settled within this distance of x0 [m]')),
    'settle_velocity_tol_m_s': floating(1e-6, maximum=100.0, description=(
        'fly_to_start: settled below this speed [m/s]')),
    'settle_time_s': floating(0.0, maximum=3600.0, description=(
        'fly_to_start: settled for this long (odometry time) [s]')),
    'settle_timeout_s': floating(0.001, maximum=86400.0, description=(
        'fly_to_start: wall seconds to wait for settling before the episode is rerun')),
    'output_dir': text(description='where the CSVs, checkpoint, figure and summary go'),
    'resume': boolean(description=(
        'continue from the checkpoint in output_dir if it holds the same run')),
}
_SESSION = tuple(name for name in ls.SessionSettings.__dataclass_fields__)


class TunerNode(Node):
    """Runs the tuning session: episodes through the controller, theta updates, reports."""

    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        self.exit_status = None
        values = self._declare_parameters()
        settings = scenario.node_scenario(
            NODE_NAME, {name: values[name] for name in self._scenario_names},
            self.get_fully_qualified_name())
        if settings.tuning.method == 'exact_model':
            raise ConfigError('method exact_model needs the true plant\'s Jacobians, which a '
                              'live run does not have; run it offline (hybrid-mpc reproduce)')
        session_settings = ls.SessionSettings(**{name: values[name] for name in _SESSION})
        self._recorder, tuner = self._open_run(settings, values['output_dir'],
                                               values['resume'])
        self._session = ls.LiveSession(tuner, session_settings, settings.period_s,
                                       settings.x0, settings.x_ref)
        self._settings = settings
        self._started = None
        self._bad_samples = 0
        self._bad_odometry = 0
        self._retries_seen = 0
        self._unavailable = []          # (call, service) not made: the service is missing

        controller = values['controller'].rstrip('/')
        self._set_client = self.create_client(SetParametersAtomically,
                                              f'{controller}/set_parameters_atomically')
        clients = {'hold': self.create_client(SetBool, f'{controller}/hold'),
                   'controller_reset': self.create_client(Trigger, f'{controller}/reset')}
        needed = [self._set_client]
        if session_settings.start_mode == 'reset':
            clients['simulator_reset'] = self.create_client(
                Trigger, values['simulator_reset_service'])
            needed += [clients['controller_reset'], clients['simulator_reset']]
            if session_settings.hold == 'auto':
                needed.append(clients['hold'])
        self._service_clients = clients
        self._needed = needed
        self._progress_pub = self.create_publisher(DiagnosticArray, '~/progress', PROGRESS_QOS)
        self.create_subscription(Odometry, 'odom', self._on_odom, STREAM_QOS)
        self.create_subscription(Float64MultiArray, f'{controller}/sensitivity',
                                 self._on_sensitivity, STREAM_QOS)
        # a wall timer: with use_sim_time a ROS timer would wait on /clock, which a held
        # lockstep loop does not advance
        self._startup_deadline = time.monotonic() + session_settings.startup_timeout_s
        self._look_interval = FIRST_LOOK_S
        self._next_look = time.monotonic()
        self.create_timer(TICK_S, self._on_tick, clock=Clock(clock_type=ClockType.STEADY_TIME))
        self._time_jumps = log_time_jumps(self, (
            'nothing changes: timeouts run on wall time and episodes on odometry stamps; '
            'only the stamp of ~/progress follows /clock'))
        config, rules = settings.tuning, settings.rules
        guard = (f'guard margin {rules.guard.cost_margin:g}' if rules.guard is not None
                 else 'no guard')
        steps = (f'scale_free radius {rules.radius:g}' if rules.step_rule == 'scale_free'
                 else rules.step_rule)
        self.get_logger().info(
            f'tuner ready: {settings.run_name}, {config.iterations} iterations of '
            f'{config.episode_steps} steps (from iteration {tuner.state.iteration}), steps '
            f'{steps}, {guard}, eta {rules.eta_rule}, start mode '
            f'{session_settings.start_mode}, controller {controller}, output '
            f'{os.path.abspath(self._recorder.folder)} (written from the first episode on)')

    # -- parameters and files --------------------------------------------------------------

    def _declare_parameters(self) -> dict:
        """Declare the scenario's and the runtime parameters; return their values by name."""
        declared = scenario.node_parameters(NODE_NAME)
        self._scenario_names = tuple(declared)
        values = declare_parameters(
            self, {name: spec for name, (_, spec) in declared.items()},
            {name: value for name, (value, _) in declared.items()})
        runtime = load_node_params(paths.config_file(RUNTIME_FILE), NODE_NAME)
        values.update(declare_parameters(self, RUNTIME, runtime))
        try:
            ls.SessionSettings(**{name: values[name] for name in _SESSION})
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        return values

    def _open_run(self, settings, output_dir: str, resume: bool):
        """Return the run's recorder and tuner, which continue the checkpoint when resuming.

        A checkpoint of another run is refused (:func:`resume_state`) before any file is
        touched.
        """
        name = settings.run_name
        checkpoint = os.path.join(output_dir, f'{name}.checkpoint.json')
        hint = ('; choose another output_dir, or set resume to false to start afresh '
                '(overwriting it)')
        state = None
        if resume:
            try:
                state = resume_state(checkpoint, settings.tuning)
            except ResumeRefused as exc:
                raise ConfigError(f'{exc}{hint}') from None
        theta0 = settings.initial_theta()
        # no checkpoint path: the node commits it after the iteration's rows are written
        # (RunRecorder.commit), so a kill at any moment loses or repeats no row
        try:
            tuner = Tuner(settings.tuning, None, settings.model.jacobians, settings.cost(),
                          theta0, None, state=state, **settings.tuner_rules(theta0=theta0))
        except ValueError as exc:
            if state is None:
                raise
            raise ConfigError(f'{refuse_rules(checkpoint, exc)}{hint}') from None
        if state is not None:
            self.get_logger().info(resume_line(checkpoint, state, settings.tuning))
        try:
            recorder = RunRecorder(output_dir, name, settings.violation_weight,
                                   ls.EPISODE_FIELDS, state.history if state else None)
            recorder.check_writable()        # at once; the files come with the first episode
        except OSError as exc:
            raise ConfigError(f'cannot write the run\'s files into output_dir '
                              f'{output_dir!r}: {exc}') from None
        return recorder, tuner

    # -- events --------------------------------------------------------------------------

    def _on_odom(self, msg: Odometry) -> None:
        try:
            x = odometry_to_state(msg)
        except ValueError as exc:
            self._bad_odometry += 1
            self.get_logger().warning(f'odometry ignored ({self._bad_odometry} so far): {exc}',
                                      throttle_duration_sec=LOG_THROTTLE_S)
            return
        self._perform(self._session.odometry(msg.header.stamp, x))

    def _on_sensitivity(self, msg: Float64MultiArray) -> None:
        try:
            sample = parse_sensitivity_message(msg)
        except ValueError as exc:
            # a step the controller could not report: the episode it belongs to will miss
            # a step and be rerun
            self._bad_samples += 1
            self.get_logger().warning(f'sensitivity message ignored ({self._bad_samples} so '
                                      f'far): {exc}', throttle_duration_sec=LOG_THROTTLE_S)
            return
        self._perform(self._session.sample(sample))

    def _on_tick(self) -> None:
        if self._session.phase == ls.Phase.IDLE:
            self._look_for_services()
            return
        unavailable, self._unavailable = self._unavailable, []
        for call, service in unavailable:
            self._perform(self._session.unavailable(call, service))
        self._perform(self._session.tick())

    def _look_for_services(self) -> None:
        now = time.monotonic()
        if now < self._next_look:
            return
        missing = [client.srv_name for client in self._needed if not client.service_is_ready()]
        if not missing:
            self._started = time.monotonic()
            self._perform(self._session.start())
            return
        if now > self._startup_deadline:
            timeout = self._session.settings.startup_timeout_s
            self._fail(f'services not available after {timeout:g} s: {", ".join(missing)} '
                       '(are the controller and simulator running, with the names this node '
                       'expects?)')
            return
        self.get_logger().info(f'waiting for {", ".join(missing)}; looking again in '
                               f'{self._look_interval:.1f} s')
        self._next_look = now + self._look_interval
        self._look_interval = min(2 * self._look_interval, LONGEST_LOOK_S)

    def _on_answer(self, call: int, decode, future) -> None:
        try:
            response = future.result()
        except Exception as exc:   # the call itself failed (e.g. shutdown): the session
            answer = Refused(f'call failed: {exc}')        # reruns the episode
        else:
            try:
                answer = Refused('no response') if response is None else decode(response)
            except ReplyError as exc:      # a refused call for the session: it reruns
                self.get_logger().error(str(exc))
                answer = Refused(f'unreadable answer: {exc}')
        self._perform(self._session.result(call, answer))

    # -- actions -------------------------------------------------------------------------

    def _perform(self, actions: list) -> None:
        for action in actions:
            if isinstance(action, ls.SetParameters):
                request = SetParametersAtomically.Request(parameters=[
                    ParameterMsg(name=name, value=ParameterValue(
                        type=ParameterType.PARAMETER_DOUBLE_ARRAY, double_array_value=value))
                    for name, value in action.values.items()])
                self._call(self._set_client, request, action.call,
                           lambda response: decode_set_parameters(response.result))
            elif isinstance(action, ls.CallService):
                client = self._service_clients[action.service]
                request = (SetBool.Request(data=bool(action.data)) if action.service == 'hold'
                           else Trigger.Request())
                self._call(client, request, action.call, DECODERS[action.service])
            elif isinstance(action, ls.Log):
                # one call site per severity: rclpy refuses to change it at one site
                if action.level == 'error':
                    self.get_logger().error(action.text)
                elif action.level == 'warn':
                    self.get_logger().warning(action.text)
                else:
                    self.get_logger().info(action.text)
            elif isinstance(action, ls.EpisodeDone):
                if not self._write(self._recorder.episode, action.info):
                    return
            elif isinstance(action, ls.IterationDone):
                if not self._write(self._iteration_files, action.row, action.theta):
                    return
                self._iteration_done(action.row)
            elif isinstance(action, ls.Finished):
                self._finish(0, action.message)
            elif isinstance(action, ls.Failed):
                self._fail(action.reason, logged=True)

    def _call(self, client, request, call: int, decode) -> None:
        """Call ``client``; the session gets the answer as ``decode(response)``."""
        if not client.service_is_ready():
            # a request to a missing service is lost; tell the session at the next tick
            # (not from inside this action list), which reruns the episode after a backoff
            self._unavailable.append((call, client.srv_name))
            return
        future = client.call_async(request)
        future.add_done_callback(partial(self._on_answer, call, decode))

    def _write(self, write, *args) -> bool:
        """Write the run's files; on OSError (read-only, full) stop with a clear error."""
        try:
            write(*args)
        except OSError as exc:
            saved = len(self._recorder.rows) - (1 if write == self._iteration_files else 0)
            self._fail(f'cannot write the run\'s files in {self._recorder.folder}: {exc}; the '
                       f'checkpoint {self._recorder.checkpoint} is left as it was (after '
                       f'iteration {saved}, where a resume continues); the controller keeps '
                       'flying its current theta')
            return False
        return True

    def _iteration_files(self, row: dict, theta) -> None:
        self._recorder.iteration(row, theta)
        self._recorder.commit(self._session.tuner.config, self._session.tuner.state)

    def _iteration_done(self, row: dict) -> None:
        line = iteration_line(row, self._settings.tuning.iterations)
        self.get_logger().info(line)
        warn = bool(row['rollback']) or row['retries'] > self._retries_seen
        self._progress_pub.publish(progress_message(
            row, self.get_clock().now().to_msg(), line, warn))
        self._retries_seen = row['retries']

    def _summary(self, status: int, message: str) -> dict:
        rows = self._recorder.rows
        session = self._session
        costs = [row['cost'] for row in rows]
        wall = time.monotonic() - self._started if self._started is not None else 0.0
        live = [row for row in rows if 'episodes' in row]
        return {
            'status': 'finished' if status == 0 else 'failed', 'message': message,
            'run': self._recorder.name, 'iterations': len(rows),
            'initial_cost': costs[0] if costs else None,
            'final_cost': costs[-1] if costs else None,
            'best_cost': min(costs) if costs else None,
            'final_violation': rows[-1]['violation'] if rows else None,
            'episodes': session.episodes, 'episode_steps': self._settings.tuning.episode_steps,
            'reruns': session.retries, 'rejections': dict(session.rejections),
            'stale_odometry': session.stale_odometry, 'bad_odometry': self._bad_odometry,
            'bad_samples': self._bad_samples,
            'rollbacks': session.tuner.state.guard_rollbacks,
            'tuning_wall_s': wall,
            'iteration_wall_s': (sum(row['wall_s'] for row in live) / len(live)
                                 if live else None),
            'theta': [float(v) for v in session.tuner.state.theta],
            'files': {kind: self._recorder.path(kind) for kind in
                      ('csv', 'theta.csv', 'episodes.csv', 'checkpoint.json',
                       'learning_curve.png', 'summary.json')},
        }

    def _finish(self, status: int, message: str) -> None:
        summary = self._summary(status, message)
        try:
            for path in self._recorder.finish(summary):
                self.get_logger().info(f'wrote {path}')
        except OSError as exc:
            status = 1
            self.get_logger().error(f'could not write the summary and figure: {exc}')
        final = summary['final_cost']
        if status == 0 and final is not None and math.isfinite(final):
            self.get_logger().info(
                f'{summary["iterations"]} iterations: cost {summary["initial_cost"]:.2f} -> '
                f'{final:.2f} (best {summary["best_cost"]:.2f}) in '
                f'{summary["tuning_wall_s"]:.1f} s')
        self.exit_status = status

    def _fail(self, reason: str, logged: bool = False) -> None:
        if not logged:
            self.get_logger().error(reason)
        print(f'{NODE_NAME}: tuning stopped: {reason}', file=sys.stderr, flush=True)
        self._finish(1, reason)

    def destroy_node(self):
        """Close the run's files, then destroy the node."""
        recorder = getattr(self, '_recorder', None)
        if recorder is not None:
            try:
                recorder.close()
            except OSError as exc:      # already reported when a write failed
                print(f'{NODE_NAME}: closing the run\'s files: {exc}', file=sys.stderr)
        return super().destroy_node()


def main(args=None) -> int:
    """Run the tuner until its run ends or SIGINT/SIGTERM (console script ``tuner_node``)."""
    return run_node(TunerNode, NODE_NAME, args)


if __name__ == '__main__':
    sys.exit(main())
