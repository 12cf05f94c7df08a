"""``hybrid-mpc bench faults``: a short lockstep tuning through ROS with faults from outside.

The three nodes of ``hybrid-mpc tune`` (:mod:`hybrid_mpc_ros.tools.graph`) run as
separate processes on a private domain,
the tuner's sensitivity stream passing through a
:class:`~hybrid_mpc_ros.tools.fault_injection.SensitivityRelay` in this process. Faults,
by episode (an episode is counted when its first step from x0 goes by):

* episodes 1-5: one sensitivity message dropped, duplicated, swapped with the next, given
  the previous theta revision, cut short (a corrupted layout); the tuner must discard
  each of those episodes (its log says so);
* episode 8: the tuner SIGKILLed at step 10 and started again; it must resume from its
  checkpoint ("resuming from ... at iteration");
* episode 11: the controller SIGKILLed at step 10 and started again; the tuner must see
  the restart and push theta again ("the controller restarted");
* the episode after that: odometry with NaN, Inf, a zero and a non-unit quaternion and a
  stamp going backwards published on ``odom``; the (new) controller must refuse all of
  them (its ``rejected_odometry`` diagnostic);
* from episodes 6 and 7 on, one after the other (the second only once the first is
  settled, so it never replaces a jump the controller has not taken yet): simulated
  time jumps, ``/clock`` published from here 1000 s ahead
  of the simulator's, then 10 s behind it (the simulator's next ``/clock`` jumps it
  back each time): the controller must say so in its log ("jumped forward", "jumped
  back") and go on (the run finishes, nothing lost). The controller's ``/clock``
  subscription keeps one message, so the simulator's next ``/clock`` may replace the
  injected one before it is taken (a jump the clock never made): the jump is published
  again every 50 ms until the controller's log says it (``clock_publications``: how
  many times). The graph's tuner runs on wall time (no ``use_sim_time``), so its clock
  does not jump and nothing of its run depends on ``/clock``.

Then the wall-time half (:mod:`~hybrid_mpc_ros.tools.vehicle_faults`): a realtime
simulator, the controller on wall time stepping on each odometry and a ``fly_to_start``
tuner, with a storm from the
ground, ``~/hold`` asked on wall time, the tuner interrupted (SIGINT), SIGKILLed and
exiting normally (commands must never stop for a period or more: ``command_gaps_s``, from
the controller's own step stamps), and the controller SIGKILLed and restarted under
``fly_to_start``.

The JSON last line has ``faults_injected``, ``faults_survived`` (a fault is survived
when its expected reaction was observed and the run finished), ``bad_commands_emitted``
(commands on ``rotor_speeds_cmd`` not finite or outside the rotor bounds),
``iterations_lost`` and ``iterations_duplicated`` (of the history CSV, every iteration
must be there once; ``theta.csv`` is counted into them too), the reruns by kind, the
wall time and where the logs are; faults, lost and duplicated iterations and bad
commands count both halves. It measures and prints; it asserts nothing.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import time

from hybrid_mpc_ros.core.scenario import load_scenario, resolve_scenario_path, run_name
from hybrid_mpc_ros.tools import fault_injection as fi
from hybrid_mpc_ros.tools import processes, vehicle_faults
from hybrid_mpc_ros.tools.cli import add_scenario_argument, positive_int
from hybrid_mpc_ros.tools.graph import TuningGraph

TUNER_KILL_EPISODE, CONTROLLER_KILL_EPISODE, KILL_STEP = 8, 11, 10
ODOMETRY_STEP = 5
# first episode -> (fault, /clock relative to the newest odometry stamp [s]), injected at
# CLOCK_STEP or later of that episode or a later one, once the jump before is settled
CLOCK_JUMPS = {6: ('clock_jump_forward', 1000.0), 7: ('clock_jump_backward', -10.0)}
CLOCK_STEP = 5
CLOCK_REPEAT_S, CLOCK_REPEATS = 0.05, 40
TUNER_SETTINGS = {'message_timeout_s': 2.0, 'service_timeout_s': 2.0,
                  'max_episode_retries': 8, 'resume': True}


class _Bench:
    """The graph, the injector and what was observed."""

    def __init__(self, setup, path, folder, iterations, steps):
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from nav_msgs.msg import Odometry
        from hybrid_mpc_ros.ros.context import local_context
        self.setup, self.path, self.folder = setup, path, folder
        self.log_dir = os.path.join(folder, 'logs')
        os.makedirs(self.log_dir, exist_ok=True)
        self.domain_id = processes.free_domain_id()
        self.env = processes.ros_env(self.domain_id)
        self.context = local_context(self.domain_id, 'LOCALHOST')
        self.node = rclpy.create_node('hybrid_mpc_fault_bench', context=self.context,
                                      start_parameter_services=False)
        from rclpy.executors import SingleThreadedExecutor
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.params = dict(TUNER_SETTINGS, iterations=iterations, episode_steps=steps,
                           output_dir=os.path.join(folder, 'out'))
        self.graph = TuningGraph(path, self.log_dir, self.params, env=self.env,
                                 remaps={'tuner': {fi.SOURCE_TOPIC: fi.RELAY_TOPIC}})
        self.relay = fi.SensitivityRelay(self.node, setup.x0,
                                         dict(enumerate(fi.STREAM_FAULTS, start=1)),
                                         hook=self._hook)
        config = setup.mpc_config
        self.commands = fi.CommandWatch(self.node, config.u_min, config.u_max)
        self.odom_pub = self.node.create_publisher(Odometry, 'odom', 10)
        from rosgraph_msgs.msg import Clock
        self.clock_pub = self.node.create_publisher(Clock, '/clock', 10)
        self.clock_jumps = []                # (fault, controller start, tuner start)
        self.pending_jump = None             # (fault, last published [s], times published)
        self.log_offset = 0                  # the controller's log before the pending jump
        self.jump_publications = {}          # fault -> (times published, the log says so)
        self.newest_odom_ns = 0
        self.node.create_subscription(Odometry, 'odom', self._on_odom, 10)
        self.rejected_odometry = {}          # controller start -> newest diagnostic count
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diag, 10)
        self.nodes, self.starts, self.events = self.graph.nodes, self.graph.starts, []
        self.restart = []
        self.odometry_faults = []
        self.odometry_episode = None

    def start(self, name):
        self.graph.start(name)

    def _on_odom(self, msg):
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        self.newest_odom_ns = max(self.newest_odom_ns, stamp)

    def _on_diag(self, msg):
        for status in msg.status:
            if status.name.startswith('mpc_controller'):
                values = {item.key: item.value for item in status.values}
                if 'rejected_odometry' in values:
                    self.rejected_odometry[self.starts.get('controller', 0)] = \
                        int(values['rejected_odometry'])

    def _hook(self, episode, step):
        import signal
        if step == KILL_STEP and episode in (TUNER_KILL_EPISODE, CONTROLLER_KILL_EPISODE) \
                and episode not in [e for e, _ in self.events]:
            name = 'tuner' if episode == TUNER_KILL_EPISODE else 'controller'
            os.kill(self.nodes[name].pid, signal.SIGKILL)
            self.events.append((episode, f'{name}_killed'))
            self.restart.append(name)
        elif step >= CLOCK_STEP and self.pending_jump is None and \
                self._next_jump(episode) is not None:
            from builtin_interfaces.msg import Time
            from rosgraph_msgs.msg import Clock
            fault, offset_s = self._next_jump(episode)
            sec, nanosec = divmod(max(self.newest_odom_ns + round(offset_s * 1e9), 0),
                                  1_000_000_000)
            self.clock_pub.publish(Clock(clock=Time(sec=sec, nanosec=nanosec)))
            self.clock_jumps.append((fault, self.starts.get('controller', 1),
                                     self.starts.get('tuner', 1)))
            self.pending_jump = (fault, time.monotonic(), 1)
            self.log_offset = len(self.nodes['controller'].log_text())
        elif (step == ODOMETRY_STEP and episode > CONTROLLER_KILL_EPISODE
              and self.odometry_episode is None and self.starts.get('controller') == 2):
            self.odometry_episode = episode
            for kind, msg in fi.bad_odometry(self.setup.x0, self.newest_odom_ns):
                self.odom_pub.publish(msg)
                self.odometry_faults.append(kind)

    def _next_jump(self, episode):
        """Return the next clock jump ``(fault, offset [s])`` due by ``episode``, or None.

        The jumps are injected in order, one at a time: the next only once the last one's
        repetitions are over (so a later jump never replaces one the controller has not
        taken yet), from its episode on.
        """
        injected = [fault for fault, *_ in self.clock_jumps]
        for first_episode, (fault, offset_s) in sorted(CLOCK_JUMPS.items()):
            if fault not in injected:
                return (fault, offset_s) if episode >= first_episode else None
        return None

    def _repeat_jump(self):
        """Publish the pending jump again until the controller's log says it saw it.

        The controller's /clock subscription keeps one message (rclpy's), so in lockstep
        the simulator's next /clock can replace the injected one before it is taken: a
        jump the clock never made. Published again every :data:`CLOCK_REPEAT_S`, at most
        :data:`CLOCK_REPEATS` times.
        """
        if self.pending_jump is None:
            return
        fault, last, count = self.pending_jump
        said = 'jumped forward' if fault.endswith('forward') else 'jumped back'
        controller = self.nodes['controller']
        seen = said in controller.log_text()[self.log_offset:]
        if seen or count >= CLOCK_REPEATS:
            self.pending_jump = None
            self.jump_publications[fault] = (count, seen)
            return
        if time.monotonic() - last >= CLOCK_REPEAT_S:
            from builtin_interfaces.msg import Time
            from rosgraph_msgs.msg import Clock
            offset_s = dict(CLOCK_JUMPS.values())[fault]
            sec, nanosec = divmod(max(self.newest_odom_ns + round(offset_s * 1e9), 0),
                                  1_000_000_000)
            self.clock_pub.publish(Clock(clock=Time(sec=sec, nanosec=nanosec)))
            self.pending_jump = (fault, time.monotonic(), count + 1)

    def spin(self, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.02)

    def run(self, timeout_s):
        self.graph.start_all()
        started = time.monotonic()
        while True:
            self.executor.spin_once(timeout_sec=0.02)
            self._repeat_jump()
            while self.restart:
                name = self.restart.pop(0)
                process = self.nodes[name]
                while process.alive():
                    self.executor.spin_once(timeout_sec=0.02)
                process.stop()
                self.start(name)
            tuner = self.nodes['tuner']
            if not tuner.alive() and not self.restart:
                break
            if time.monotonic() - started > timeout_s:
                raise TimeoutError(f'the faulted tuning took longer than {timeout_s:g} s '
                                   f'(logs in {self.log_dir})')
        wall = time.monotonic() - started
        self.spin(2.5)                 # the last commands and a diagnostics message
        return wall

    def close(self):
        self.graph.stop()
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        self.context.try_shutdown()

    def tuner_logs(self):
        return self.role_logs('tuner')

    def role_logs(self, role):
        texts = []
        for count in range(1, self.starts.get(role, 0) + 1):
            with open(self.graph.log_path(role, count), errors='replace') as f:
                texts.append(f.read())
        return texts


def evaluate(bench, iterations, config) -> dict:
    """Return the bench's JSON result from what the run left (see the module docstring)."""
    logs = bench.tuner_logs()
    joined = '\n'.join(logs)
    finished = bench.nodes['tuner'].returncode == 0
    name = run_name(config.method, config.gamma)
    out = bench.params['output_dir']
    counts = {suffix: fi.iteration_rows(os.path.join(out, f'{name}.{suffix}'), iterations)
              for suffix in ('csv', 'theta.csv')}
    survived = {}
    discarded = re.findall(r'discarded \((\w+)\)', logs[0] if logs else '')
    for episode, kind in bench.relay.injected:
        expected = fi.EXPECTED_REJECTION[kind]
        survived[f'stream_{kind}'] = expected in discarded
        if expected in discarded:
            discarded.remove(expected)
    for episode, event in bench.events:
        if event == 'tuner_killed':
            survived[event] = len(logs) >= 2 and 'resuming from' in logs[1]
        else:
            survived[event] = 'the controller restarted' in joined
    rejected = bench.rejected_odometry.get(2, 0)
    for index, kind in enumerate(bench.odometry_faults):
        survived[f'odometry_{kind}'] = index < rejected
    for fault, _, _ in bench.clock_jumps:
        survived[fault] = bench.jump_publications.get(fault, (0, False))[1]
    injected = len(survived)
    return {
        'faults_injected': injected,
        'faults_survived': sum(1 for ok in survived.values() if ok and finished),
        'bad_commands_emitted': len(bench.commands.bad),
        'iterations_lost': max(c['lost'] for c in counts.values()),
        'iterations_duplicated': max(c['duplicated'] for c in counts.values()),
        'finished': finished,
        'faults': {key: bool(ok and finished) for key, ok in survived.items()},
        'commands_seen': bench.commands.count,
        'reruns_logged': len(re.findall(r'discarded \(', joined)),
        'clock_publications': {fault: count for fault, (count, _)
                               in bench.jump_publications.items()},
        'rejected_odometry': rejected,
        'iterations': iterations,
    }


def add_vehicle(result: dict, vehicle, iterations: int) -> dict:
    """Count the wall-time half's faults into ``result`` (same keys; its details apart)."""
    out = vehicle.params['output_dir']
    counts = [fi.iteration_rows(os.path.join(out, f'model_based.{suffix}'), iterations)
              for suffix in ('csv', 'theta.csv')]
    lost = max(count['lost'] for count in counts)
    duplicated = max(count['duplicated'] for count in counts)
    faults = dict(result['faults'])
    for name in vehicle_faults.FAULTS:
        faults[name] = bool(vehicle.survived.get(name, False) and not lost and not duplicated)
    result.update({
        'faults_injected': len(faults),
        'faults_survived': sum(faults.values()),
        'bad_commands_emitted': result['bad_commands_emitted'] + len(vehicle.commands.bad),
        'iterations_lost': result['iterations_lost'] + lost,
        'iterations_duplicated': result['iterations_duplicated'] + duplicated,
        'faults': faults,
        'finished': result['finished'] and vehicle.notes.get('tuner_exit_status') == 0,
        'vehicle': {'command_gaps_s': vehicle.gaps, 'commands_seen': vehicle.commands.count,
                    'iterations_lost': lost, 'iterations_duplicated': duplicated,
                    **vehicle.notes},
    })
    return result


def main(scenario: str | None = None, iterations: int = 4, steps: int = 25,
         out: str | None = None, timeout_s: float = 600.0) -> int:
    """Run ``hybrid-mpc bench faults``: progress on stderr, a JSON object as the last line."""
    path = resolve_scenario_path(scenario)
    setup = load_scenario(path)
    config = setup.tuning_config(iterations=iterations, episode_steps=steps)
    folder = os.path.abspath(out or tempfile.mkdtemp(prefix='hybrid_mpc_bench_faults_'))
    print(f'bench faults: {config.method}, {iterations} iterations of {steps}-step episodes '
          f'in lockstep, faults from outside; logs in {folder}/logs', file=sys.stderr,
          flush=True)
    bench = _Bench(setup, path, folder, iterations, steps)
    started = time.monotonic()
    try:
        bench.run(timeout_s)
        result = evaluate(bench, iterations, config)
    finally:
        bench.close()
    print('bench faults: the wall-time half (realtime simulator, controller on wall time '
          'stepping on each odometry, fly_to_start tuner)', file=sys.stderr, flush=True)
    vehicle = vehicle_faults.VehicleBench(folder, iterations)
    try:
        vehicle.run()
    finally:
        vehicle.close()
    result = add_vehicle(result, vehicle, iterations)
    result.update({'wall_s': round(time.monotonic() - started, 2),
                   'domain_id': bench.domain_id, 'logs': bench.log_dir,
                   'vehicle_logs': vehicle.log_dir})
    for key, ok in result['faults'].items():
        print(f'bench faults: {key}: {"survived" if ok else "NOT survived"}', file=sys.stderr)
    print(json.dumps(result))
    return 0


def add_arguments(parser) -> None:
    """Add the options of ``hybrid-mpc bench faults`` to ``parser``."""
    parser.description = (
        'Run the three node processes of hybrid-mpc tune in lockstep and inject faults '
        'from outside: broken sensitivity messages (dropped, duplicated, swapped, stale '
        'revision, corrupted), the tuner and the controller SIGKILLed mid-episode and '
        'restarted, invalid odometry, simulated time jumping; then on wall time (realtime '
        'simulator, fly_to_start tuner): a storm from the ground, ~/hold, the tuner '
        'interrupted, killed and exiting, the controller killed and restarted. Report '
        'faults_injected, faults_survived, bad_commands_emitted, iterations_lost and '
        'iterations_duplicated.')
    add_scenario_argument(parser)
    parser.add_argument('--iterations', type=positive_int, default=4,
                        help='iterations (default: %(default)s; the faults need at least 4)')
    parser.add_argument('--steps', type=positive_int, default=25,
                        help='closed-loop steps per episode (default: %(default)s; the '
                             'faults act at step 10)')
    parser.add_argument('--out', default=None,
                        help='output directory (default: a new temporary one)')


def run(args) -> int:
    """Run ``hybrid-mpc bench faults`` with the parsed ``args``; the exit status."""
    return main(scenario=args.scenario, iterations=args.iterations, steps=args.steps,
                out=args.out)
