"""``hybrid-mpc demo``: the simulator and the MPC (or hover LQR) controller as real ROS 2 nodes.

Both nodes run as separate processes (:func:`hybrid_mpc_ros.tools.processes.start_node`) on a
private ``ROS_DOMAIN_ID`` with discovery kept on loopback; this process watches ``odom``
and ``rotor_speeds_cmd`` like any other node would. :class:`ClosedLoop` is the reusable
part (the benchmark uses it too): start the pair, observe, stop both cleanly.

The simulator reads the scenario file itself (``--params-file``: its ``/**`` section for
the period and initial state, its ``quadcopter_simulator`` section for the plant), exactly
as ``ros2 launch ... params_file:=<scenario>`` would start it; the MPC controller reads the
same file (its start theta), the LQR controller gets the
scenario's period and target position. Flight time is read from the odometry stamps,
counted from the first one: in lockstep mode they are the simulation time (from 0, one
period per step) and the loop runs as fast as the two processes can exchange messages; in
realtime mode the simulator stamps with its wall (ROS) clock, like a real vehicle.

Why about 410 lines: ClosedLoop, the process pair with an observer that the benchmarks
reuse, and the demo's own progress output.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
import json
import math
import os
import shutil
import signal
import sys
import tempfile
import time

import numpy as np

from hybrid_mpc_ros.core import paths
from hybrid_mpc_ros.core.scenario import load_scenario, resolve_scenario_path, Scenario
from hybrid_mpc_ros.tools import processes
from hybrid_mpc_ros.tools.cli import add_scenario_argument, positive_float

CONTROLLERS = ('mpc', 'lqr')
STOP_TIMEOUT_S = 5.0
NODE_CHECK_PERIOD_S = 0.5


class DemoError(RuntimeError):
    """The closed loop could not run: a node died or odometry did not come."""


@dataclass
class OdomSample:
    """One odometry message as seen by the observer."""

    wall_s: float          # time.perf_counter() at reception
    sim_s: float           # header stamp minus the first odometry's stamp [s]
    msg: object            # the nav_msgs/Odometry message itself


class ClosedLoop:
    """Simulator and LQR controller processes plus an in-process observer node.

    A context manager: entering starts both nodes and the observer; leaving stops them
    (SIGINT first) whatever happened. The simulator runs the ``scenario`` (its file is the
    node's parameter file); the controller holds ``target`` (3,) [m] (default: the
    scenario's ``x_ref`` position). Node logs go to ``log_dir`` (default: a new temporary
    directory, deleted on leaving without an exception, kept for diagnosis otherwise).
    ``clock_mode`` is ``'lockstep'`` or ``'realtime'``; ``observer_qos`` is the observer's
    QoS depth (an int, reliable) or a QoS profile. ``controller_params`` (name -> value)
    override the controller's parameter files (written to a file of their own, passed last).
    Entering raises :class:`DemoError` if the simulator's odometry does not arrive within
    ``startup_timeout_s`` wall seconds.
    """

    def __init__(self, scenario: Scenario, target=None, clock_mode: str = 'lockstep',
                 observer_qos=100, watch_commands: bool = True, log_dir: str | None = None,
                 domain_id: int | None = None, startup_timeout_s: float = 30.0,
                 controller: str = 'mpc', controller_params: dict | None = None):
        if clock_mode not in ('lockstep', 'realtime'):
            raise ValueError(f"clock_mode must be 'lockstep' or 'realtime', got {clock_mode!r}")
        if controller not in CONTROLLERS:
            raise ValueError(f'controller must be one of {CONTROLLERS}, got {controller!r}')
        self.scenario = scenario
        self.controller = controller
        self._controller_params = dict(controller_params or {})
        self.diagnostics: dict = {}
        target = scenario.x_ref[0:3] if target is None else target
        self.target = tuple(float(v) for v in target)
        self.clock_mode = clock_mode
        self.period_s = scenario.period_s
        self.startup_timeout_s = float(startup_timeout_s)
        self.domain_id = processes.free_domain_id() if domain_id is None else int(domain_id)
        # a log directory made here is removed again when the run ends without an error
        self._own_log_dir = log_dir is None
        self.log_dir = log_dir or tempfile.mkdtemp(prefix='hybrid_mpc_demo_')
        self.samples: deque[OdomSample] = deque()
        self.last_command = None
        self._observer_qos = observer_qos
        self._watch_commands = watch_commands
        self._nodes: dict[str, processes.NodeProcess] = {}
        self._context = None
        self._node = None
        self._executor = None
        self._last_check = time.monotonic()
        self._first_stamp_s = None

    def __enter__(self) -> 'ClosedLoop':
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, exc_type, exc_value, traceback) -> None:
        self.close()
        if exc_type is None and self._own_log_dir:
            shutil.rmtree(self.log_dir, ignore_errors=True)

    def _start(self) -> None:
        # the children get the private, loopback-only domain through their own environment;
        # the observer joins it through its context (_start_observer), not os.environ
        env = processes.ros_env(self.domain_id)
        lockstep = self.clock_mode == 'lockstep'
        try:
            controller_file = paths.config_file(f'{self.controller}_controller.yaml')
        except FileNotFoundError as exc:
            raise DemoError(str(exc)) from exc
        self._start_observer()
        # The simulator reads the scenario file as its parameter file, as a launch file
        # would pass it; the clock options given here override it. The controller starts
        # only once the observer sees the simulator's odometry: in lockstep nothing
        # advances before the first command, so the observer (and the demo's printout)
        # sees the whole flight from t = 0.
        self._nodes['simulator'] = processes.start_node(
            'ros.simulator_node', params_file=self.scenario.path,
            params={'clock_mode': self.clock_mode, 'use_sim_time': lockstep},
            env=env, log_path=os.path.join(self.log_dir, 'simulator.log'))
        deadline = time.monotonic() + self.startup_timeout_s
        while not self.samples:
            if time.monotonic() > deadline:
                self.check_nodes()
                raise DemoError(f'no odometry from the simulator on domain {self.domain_id} '
                                f'within {self.startup_timeout_s:g} s (log {self.log_dir})')
            self.spin_once(0.1)
            self.check_nodes()
        if self.controller == 'lqr':
            params = {'period_s': self.period_s, 'target_position': list(self.target)}
            files = [controller_file]
        else:
            # the MPC reads the scenario like the simulator, then its own runtime settings
            x_ref = self.scenario.x_ref.copy()
            x_ref[0:3] = self.target
            params = {'x_ref': x_ref.tolist()}
            files = [self.scenario.path, controller_file]
        params.update(use_sim_time=lockstep)
        if self._controller_params:
            # a -p value does not override the files' node sections (processes.node_command):
            # the caller's values go in a file of their own, passed last
            files.append(processes.write_params_file(
                os.path.join(self.log_dir, 'controller_params.yaml'),
                f'{self.controller}_controller', self._controller_params))
        self._nodes['controller'] = processes.start_node(
            f'ros.{self.controller}_controller_node', params_file=files, params=params,
            env=env, log_path=os.path.join(self.log_dir, f'{self.controller}_controller.log'))

    def _start_observer(self) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.signals import SignalHandlerOptions
        from diagnostic_msgs.msg import DiagnosticArray
        from nav_msgs.msg import Odometry
        from std_msgs.msg import Float64MultiArray
        from hybrid_mpc_ros.ros.context import local_context
        # Python's own SIGINT handling (KeyboardInterrupt) drives the clean shutdown
        self._context = local_context(self.domain_id, 'LOCALHOST', SignalHandlerOptions.NO)
        self._node = rclpy.create_node('hybrid_mpc_observer', context=self._context,
                                       start_parameter_services=False)
        self._node.create_subscription(Odometry, 'odom', self._on_odom, self._observer_qos)
        if self._watch_commands:
            self._node.create_subscription(Float64MultiArray, 'rotor_speeds_cmd',
                                           self._on_command, self._observer_qos)
        self._node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics,
                                       10)
        self._executor = SingleThreadedExecutor(context=self._context)
        self._executor.add_node(self._node)

    def _on_odom(self, msg) -> None:
        stamp = msg.header.stamp
        stamp_s = stamp.sec + 1e-9 * stamp.nanosec
        if self._first_stamp_s is None:
            self._first_stamp_s = stamp_s
        self.samples.append(OdomSample(time.perf_counter(), stamp_s - self._first_stamp_s, msg))

    def _on_command(self, msg) -> None:
        self.last_command = msg

    def _on_diagnostics(self, msg) -> None:
        for status in msg.status:
            self.diagnostics[status.name] = (
                status.level, status.message, {item.key: item.value for item in status.values})

    def check_nodes(self) -> None:
        """Raise :class:`DemoError` with the node's log tail if a node process has exited."""
        for name, node in self._nodes.items():
            if not node.alive():
                tail = '\n'.join(node.log_text().splitlines()[-25:])
                raise DemoError(f'the {name} node exited with status {node.returncode} '
                                f'(log {node.log_path}):\n{tail}')

    def spin_once(self, timeout_s: float = 0.1) -> None:
        """Handle at most one pending message, waiting up to ``timeout_s``."""
        self._executor.spin_once(timeout_sec=timeout_s)

    def latest_sample(self) -> OdomSample | None:
        """Take every message already received, without waiting; the newest, or None."""
        count = -1
        while len(self.samples) != count:
            count = len(self.samples)
            self.spin_once(0.0)
        latest = self.samples[-1] if self.samples else None
        self.samples.clear()
        return latest

    def next_sample(self, timeout_s: float) -> OdomSample:
        """Next odometry sample, spinning as needed; :class:`DemoError` after ``timeout_s``.

        Also raises :class:`DemoError` when a node process has exited (checked twice a
        second, also while samples keep coming: in realtime mode the simulator runs on
        after the controller died).
        """
        deadline = time.monotonic() + timeout_s
        while not self.samples:
            now = time.monotonic()
            if now > deadline:
                self.check_nodes()
                raise DemoError(f'no odometry on domain {self.domain_id} for {timeout_s:g} s '
                                f'(node logs in {self.log_dir})')
            self._check_nodes_now_and_then(now)
            self.spin_once(min(0.1, max(0.0, deadline - now)))
        self._check_nodes_now_and_then(time.monotonic())
        return self.samples.popleft()

    def _check_nodes_now_and_then(self, now: float) -> None:
        if now - self._last_check >= NODE_CHECK_PERIOD_S:
            self._last_check = now
            self.check_nodes()

    def close(self) -> None:
        """Stop the observer and both node processes (idempotent)."""
        if self._executor is not None:
            self._executor.shutdown(timeout_sec=1.0)
            self._executor = None
        if self._node is not None:
            self._node.destroy_node()
            self._node = None
        if self._context is not None:
            self._context.try_shutdown()
            self._context = None
        # controller first, so the simulator does not republish into a missing peer
        for name in ('controller', 'simulator'):
            node = self._nodes.pop(name, None)
            if node is not None:
                node.stop(timeout=STOP_TIMEOUT_S)


def _progress_line(sim_s: float, x: np.ndarray, target: np.ndarray, command) -> str:
    distance = float(np.linalg.norm(x[0:3] - target))
    roll, pitch, yaw = np.degrees(x[6:9])
    line = (f't={sim_s:6.1f} s  pos=({x[0]:7.3f}, {x[1]:7.3f}, {x[2]:7.3f}) m  '
            f'dist={distance:7.3f} m  rpy=({roll:6.1f}, {pitch:6.1f}, {yaw:6.1f}) deg')
    if command is not None and len(command.data) == 4:
        line += '  rotors=(' + ', '.join(f'{w:5.1f}' for w in command.data) + ') rad/s'
    return line


def fly(scenario: Scenario, seconds: float, target=None, clock_mode: str = 'lockstep',
        odom_timeout_s: float = 30.0, out=sys.stdout, controller: str = 'mpc') -> dict:
    """Fly the scenario's vehicle for ``seconds`` of simulated time; return the summary.

    The target (3,) [m] is the scenario's ``x_ref`` position unless ``target`` is given;
    ``controller`` is ``'mpc'`` (the scenario's MPC at its start theta) or ``'lqr'``.

    Prints a progress line per simulated second to ``out``. Raises :class:`DemoError` when
    a node dies, no odometry arrives within ``odom_timeout_s`` wall seconds, or simulated
    time stops advancing for that long.
    """
    from hybrid_mpc_ros.ros.msgs import odometry_to_state
    target = np.asarray(scenario.x_ref[0:3] if target is None else target, dtype=float)
    print(f'demo: scenario {scenario.name}: starting the simulator ({clock_mode}) and the '
          f'{controller.upper()} controller, target {target.tolist()} m, {seconds:g} s '
          'simulated', file=out, flush=True)
    started = time.perf_counter()
    with ClosedLoop(scenario, target, clock_mode=clock_mode, startup_timeout_s=odom_timeout_s,
                    controller=controller) as loop:
        first = loop.next_sample(odom_timeout_s)
        print(f'simulator up after {first.wall_s - started:.2f} s wall on ROS_DOMAIN_ID '
              f'{loop.domain_id}; node logs in {loop.log_dir} (kept on failure)', file=out,
              flush=True)
        x = odometry_to_state(first.msg)
        print(_progress_line(first.sim_s, x, target, loop.last_command), file=out, flush=True)
        initial_error = float(np.linalg.norm(x[0:3] - target))
        max_tilt = float(np.degrees(np.abs(x[6:8]).max()))
        last = first
        moving = None   # first sample after simulated time advanced: the rate starts there
        next_report = math.floor(first.sim_s + 1e-6) + 1.0
        advanced_wall = time.monotonic()
        while last.sim_s < seconds - 1e-6:
            sample = loop.next_sample(odom_timeout_s)
            if sample.sim_s > last.sim_s:
                advanced_wall = time.monotonic()
                if moving is None:
                    moving = sample
            elif time.monotonic() - advanced_wall > odom_timeout_s:
                loop.check_nodes()
                raise DemoError(f'simulated time stuck at {last.sim_s:.2f} s for '
                                f'{odom_timeout_s:g} s: is the controller answering? '
                                f'(node logs in {loop.log_dir})')
            last = sample
            x = odometry_to_state(sample.msg)
            max_tilt = max(max_tilt, float(np.degrees(np.abs(x[6:8]).max())))
            if sample.sim_s >= next_report - 1e-6:
                print(_progress_line(sample.sim_s, x, target, loop.last_command), file=out,
                      flush=True)
                next_report = math.floor(sample.sim_s + 1e-6) + 1.0
        loop.check_nodes()
    moving = moving or last
    rate_steps = round((last.sim_s - moving.sim_s) / loop.period_s)
    wall = last.wall_s - moving.wall_s
    return {
        'command': 'demo',
        'scenario': scenario.path,
        'clock_mode': clock_mode,
        'domain_id': loop.domain_id,
        'target': target.tolist(),
        'sim_time_s': round(last.sim_s, 9),
        'final_position': [round(float(v), 6) for v in x[0:3]],
        'final_attitude_deg': [round(float(v), 3) for v in np.degrees(x[6:9])],
        'initial_error_m': round(initial_error, 6),
        'final_error_m': round(float(np.linalg.norm(x[0:3] - target)), 6),
        'max_tilt_deg': round(max_tilt, 3),
        'steps': round((last.sim_s - first.sim_s) / loop.period_s),
        'wall_time_s': round(wall, 4),
        'steps_per_wall_s': round(rate_steps / wall, 2) if wall > 0 else None,
    }


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt


def run_ros_command(command: str, function, *args, **kwargs):
    """Run ``function(*args, **kwargs)``, which starts node processes, for a CLI command.

    Returns ``(result, None)``, or ``(None, exit status)`` after printing one line: 1 when
    it raised :class:`DemoError` (a node died, nothing arrived), 130 when interrupted.
    SIGTERM takes the same clean path as Ctrl-C, so the children are always stopped (by
    :meth:`ClosedLoop.close`).
    """
    previous = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        return function(*args, **kwargs), None
    except DemoError as exc:
        print(f'hybrid-mpc {command}: error: {exc}', file=sys.stderr)
        return None, 1
    except KeyboardInterrupt:
        print(f'hybrid-mpc {command}: interrupted; nodes stopped', file=sys.stderr)
        return None, 130
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(scenario: str | None = None, seconds: float = 20.0, target=None,
         realtime: bool = False, odom_timeout_s: float = 30.0, controller: str = 'mpc') -> int:
    """Run the demo for the CLI: progress, summary, JSON last line; the exit status.

    ``scenario`` is a file or a shipped scenario's name (default: the default scenario);
    ``target`` (3,) [m] overrides its target position.
    """
    setup = load_scenario(resolve_scenario_path(scenario), load_model=False)
    summary, status = run_ros_command(
        'demo', fly, setup, seconds, target, 'realtime' if realtime else 'lockstep',
        odom_timeout_s, controller=controller)
    if status is not None:
        return status
    print(f'done: t={summary["sim_time_s"]:.1f} s, final error {summary["final_error_m"]:.4f} m '
          f'(from {summary["initial_error_m"]:.3f} m), max tilt {summary["max_tilt_deg"]:.1f} '
          f'deg; {summary["steps"]} steps, {summary["steps_per_wall_s"]} steps per wall second '
          f'({summary["clock_mode"]}, from the first step on)')
    print(json.dumps(summary), flush=True)
    return 0


def add_arguments(parser) -> None:
    """Add the options of ``hybrid-mpc demo`` to ``parser``."""
    parser.description = (
        "Start the quadcopter simulator node (with the scenario's plant, period and initial "
        'state) and the MPC (or LQR) controller node as separate processes on a private ROS '
        'domain, follow the odometry and print progress every simulated second, a summary '
        'and, as the last line, a JSON object.')
    add_scenario_argument(parser)
    parser.add_argument('--seconds', type=positive_float, default=20.0,
                        help='simulated seconds to fly (default: %(default)s)')
    parser.add_argument('--target', type=float, nargs=3, metavar=('X', 'Y', 'Z'),
                        default=None,
                        help="hover target in the odom frame [m] (default: the scenario's "
                             'x_ref position)')
    parser.add_argument('--realtime', action='store_true',
                        help='run the simulator in real time instead of lockstep')
    parser.add_argument('--controller', choices=CONTROLLERS, default='mpc',
                        help="the scenario's MPC at its start theta, or the hover LQR "
                             '(default: %(default)s)')
    parser.add_argument('--odom-timeout', type=positive_float, default=30.0,
                        help='wall seconds to wait for the first odometry and, after it, '
                             'for simulated time to advance (default: %(default)s)')


def run(args) -> int:
    """Run ``hybrid-mpc demo`` with the parsed ``args``; the exit status."""
    return main(scenario=args.scenario, seconds=args.seconds,
                target=tuple(args.target) if args.target else None, realtime=args.realtime,
                odom_timeout_s=args.odom_timeout, controller=args.controller)
