"""``hybrid-mpc tune``: the simulated tuning through ROS 2, the package's main job.

The three nodes of :mod:`hybrid_mpc_ros.tools.graph` (the graph
``launch/tuning_sim.launch.py`` starts too: the simulator in lockstep, the MPC controller
on simulation time, the tuner), in three processes on a private ``ROS_DOMAIN_ID`` with
discovery on loopback. The tuner's overrides from this command (method, iterations,
output directory, ...) are written into ``<out>/logs`` with the nodes' logs. This process
joins the domain with an observer node that prints one line per ``~/progress`` message.

The tuner writes its files into ``--out`` (history CSV, theta after each iteration,
episodes, checkpoint, learning-curve figure, summary; see
:class:`~hybrid_mpc_ros.core.learning.reporting.RunRecorder`), leaves the controller flying
the final theta and exits; this command then stops the simulator and the controller and
prints a JSON summary as its last line. A rerun with ``--resume`` continues from the
checkpoint in ``--out``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import json
import os
import signal
import sys
import time

from hybrid_mpc_ros.core.learning.reporting import iteration_line, read_history_csv
from hybrid_mpc_ros.core.learning.run import load_checkpoint
from hybrid_mpc_ros.core.scenario import load_scenario, resolve_scenario_path, run_name
from hybrid_mpc_ros.tools import processes
from hybrid_mpc_ros.tools.cli import add_scenario_argument, positive_float, positive_int
from hybrid_mpc_ros.tools.graph import NODES, TuningGraph

STOP_TIMEOUT_S = 5.0
TUNER = NODES['tuner'].name


class TuneError(RuntimeError):
    """The tuning could not run (a node died, the tuner gave up, nothing came)."""


@dataclass
class TuningRun:
    """What :func:`run_tuning` returns: the tuner's summary and this process's timings."""

    summary: dict
    progress: list = field(default_factory=list)    # parsed ~/progress messages
    wall_s: float = 0.0                              # start of the nodes to the tuner's exit
    first_progress_s: float | None = None            # start to the first iteration's end
    domain_id: int = 0
    log_dir: str = ''


def run_tuning(scenario_path: str, out: str, overrides: dict, *, domain_id: int | None = None,
               timeout_s: float | None = None, log=sys.stdout) -> TuningRun:
    """Run the three nodes until the tuner exits; return its summary and the timings.

    ``overrides`` are tuner parameters (e.g. ``iterations``, ``method``,
    ``episode_steps``, ``start_mode``) over the scenario's; ``output_dir`` is ``out``.
    Prints the tuner's line of each iteration (its ``~/progress`` message, written by
    :func:`~hybrid_mpc_ros.core.learning.reporting.iteration_line`) to ``log`` (None:
    silent). Raises :class:`TuneError` when
    a node exits early, the tuner fails, or ``timeout_s`` (wall) passes.
    """
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from rclpy.signals import SignalHandlerOptions
    from rclpy.executors import SingleThreadedExecutor
    from hybrid_mpc_ros.ros.context import local_context
    from hybrid_mpc_ros.ros.progress_msg import parse_progress

    out = os.path.abspath(out)
    log_dir = os.path.join(out, 'logs')
    domain_id = processes.free_domain_id() if domain_id is None else int(domain_id)
    graph = TuningGraph(scenario_path, log_dir, dict(overrides, output_dir=out),
                        env=processes.ros_env(domain_id))
    context = local_context(domain_id, 'LOCALHOST', SignalHandlerOptions.NO)
    observer = rclpy.create_node('hybrid_mpc_tune_observer', context=context,
                                 start_parameter_services=False)
    received: list[dict] = []
    observer.create_subscription(DiagnosticArray, f'/{TUNER}/progress',
                                 lambda msg: received.append(parse_progress(msg)),
                                 QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE,
                                            durability=DurabilityPolicy.TRANSIENT_LOCAL))
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(observer)
    nodes = graph.nodes
    result = TuningRun({}, domain_id=domain_id, log_dir=log_dir)
    config = load_scenario(scenario_path, load_model=False).tuning_config(
        method=overrides.get('method'), gamma=overrides.get('gamma'),
        iterations=overrides.get('iterations'))
    files = os.path.join(out, run_name(config.method, config.gamma))     # + '.<suffix>'
    done_before = _iterations_done(files + '.checkpoint.json') if overrides.get('resume') \
        else 0
    started = time.perf_counter()
    try:
        graph.start_all()
        shown = 0
        while nodes['tuner'].alive():
            executor.spin_once(timeout_sec=0.1)
            while shown < len(received):
                if result.first_progress_s is None:
                    result.first_progress_s = time.perf_counter() - started
                if log is not None:
                    print(received[shown]['message'], file=log, flush=True)
                shown += 1
            for name in ('simulator', 'controller'):
                if not nodes[name].alive():
                    raise TuneError(_died(name, nodes[name]))
            if timeout_s is not None and time.perf_counter() - started > timeout_s:
                raise TuneError(f'the tuning took longer than {timeout_s:g} s (logs in '
                                f'{log_dir})')
        result.wall_s = time.perf_counter() - started
        deadline = time.monotonic() + 0.5          # the last progress messages in flight
        while time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        for item in received[shown:]:
            if log is not None:
                print(item['message'], file=log, flush=True)
        result.progress = received
        tuner = nodes['tuner']
        if tuner.returncode != 0:
            raise TuneError(_died('tuner', tuner))
        _print_missed(files + '.csv', done_before, config.iterations,
                      {item['iteration'] for item in received}, log)
        with open(files + '.summary.json') as stream:
            result.summary = json.load(stream)
        return result
    finally:
        executor.shutdown(timeout_sec=1.0)
        observer.destroy_node()
        context.try_shutdown()
        graph.stop(timeout=STOP_TIMEOUT_S)


def _iterations_done(checkpoint: str) -> int:
    """Return the iterations a resumed run had done before this command (0: none)."""
    try:
        return load_checkpoint(checkpoint)[1].iteration - 1
    except (OSError, ValueError, KeyError):
        return 0


def _print_missed(history_csv: str, done_before: int, iterations: int, seen: set,
                  log) -> None:
    """Print, from the run's CSV, the lines of this run's iterations no message brought.

    A short run can finish before this process's subscription to ``~/progress`` is
    matched, and the tuner exits with it, so its progress messages are gone; the CSV holds
    the same values, so every iteration gets its line whatever discovery did.
    """
    if log is None or not os.path.exists(history_csv):
        return
    missed = [row for row in read_history_csv(history_csv)
              if row['iteration'] > done_before and row['iteration'] not in seen]
    if missed:
        print(f'(the progress messages of {len(missed)} iterations came before this command '
              'saw the tuner; their lines from the history CSV:)', file=log, flush=True)
    for row in missed:
        print(iteration_line(row, iterations), file=log, flush=True)


def _died(name: str, node) -> str:
    tail = '\n'.join(node.log_text().splitlines()[-25:])
    return f'the {name} node exited with status {node.returncode} (log {node.log_path}):\n{tail}'


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt


def main(scenario: str | None = None, out: str = 'results/tuning', method: str | None = None,
         gamma: float | None = None, iterations: int | None = None, steps: int | None = None,
         seed: int | None = None, start_mode: str = 'reset', resume: bool = False) -> int:
    """Run ``hybrid-mpc tune``: a line per iteration, the results, the JSON summary last.

    ``scenario`` is a file or a shipped scenario's name (default: the default scenario);
    the other arguments override its tuning values (None keeps them).
    """
    path = resolve_scenario_path(scenario)
    setup = load_scenario(path)                 # ConfigError before any process starts
    overrides = {'method': method, 'gamma': gamma, 'iterations': iterations,
                 'episode_steps': steps, 'seed': seed, 'start_mode': start_mode,
                 'resume': resume}
    overrides = {key: value for key, value in overrides.items() if value is not None}
    config = setup.tuning_config(method=method, gamma=gamma, iterations=iterations,
                                 episode_steps=steps, seed=seed)
    overrides['iterations'] = config.iterations
    print(f'tune: scenario {setup.name}: {run_name(config.method, config.gamma)}, '
          f'{config.iterations} iterations of {config.episode_steps}-step episodes through '
          f'ROS 2 (simulator in lockstep, MPC controller, tuner; start mode {start_mode}); '
          f'output in {out}', flush=True)
    previous = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        run = run_tuning(path, out, overrides)
    except TuneError as exc:
        print(f'hybrid-mpc tune: error: {exc}', file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print('hybrid-mpc tune: interrupted; nodes stopped (rerun with --resume to continue)',
              file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    summary = run.summary
    initial, final, best = summary['initial_cost'], summary['final_cost'], summary['best_cost']
    per_iteration = summary['iteration_wall_s']
    print(f'done: {summary["iterations"]} iterations, cost {initial:.2f} -> {final:.2f} '
          f'(best {best:.2f}, {100 * (final - initial) / initial:+.1f} %), '
          f'{summary["episodes"]} episodes flown now, {summary["reruns"]} reruns, '
          f'{summary["rollbacks"]} rollbacks; {summary["tuning_wall_s"]:.1f} s of tuning'
          + (f' ({per_iteration:.2f} s per iteration)' if per_iteration is not None else '')
          + f', {run.wall_s:.1f} s in all')
    for kind, file in summary['files'].items():
        if os.path.exists(file):
            print(f'wrote {file}')
    result = {key: value for key, value in summary.items() if key not in ('theta', 'files')}
    result.update({'command': 'tune', 'scenario': path, 'output_dir': os.path.abspath(out),
                   'wall_s': round(run.wall_s, 3), 'domain_id': run.domain_id,
                   'first_iteration_done_s': run.first_progress_s,
                   'cost_change_pct': 100 * (final - initial) / initial})
    print(json.dumps(result), flush=True)
    return 0


def add_arguments(parser) -> None:
    """Add the options of ``hybrid-mpc tune`` to ``parser``."""
    parser.description = (
        'Start the simulator (lockstep), the MPC controller and the tuner as three ROS 2 '
        "processes on a private domain, tune theta from the scenario's start with its "
        'method, print a line per iteration, write the CSVs, checkpoint, learning-curve '
        'figure and summary into --out, and print a JSON summary as the last line.')
    add_scenario_argument(parser)
    parser.add_argument('--out', default='results/tuning',
                        help='output directory (default: %(default)s)')
    parser.add_argument('--method', default=None,
                        choices=('hybrid', 'model_based', 'zeroth_order'),
                        help="tuning method (default: the scenario's)")
    parser.add_argument('--gamma', type=positive_float, default=None,
                        help="hybrid mixing exponent (default: the scenario's)")
    parser.add_argument('--iterations', type=positive_int, default=None,
                        help="iterations (default: the scenario's)")
    parser.add_argument('--steps', type=positive_int, default=None,
                        help="closed-loop steps per episode, T (default: the scenario's)")
    parser.add_argument('--seed', type=int, default=None,
                        help="random seed (default: the scenario's)")
    parser.add_argument('--start-mode', default='reset', choices=('reset', 'fly_to_start'),
                        help='how episodes start: a simulator reset (exact, the default) or '
                             'flying back to x0 as a vehicle would')
    parser.add_argument('--resume', action='store_true',
                        help='continue from the checkpoint in --out if it holds this run')


def run(args) -> int:
    """Run ``hybrid-mpc tune`` with the parsed ``args``; the exit status."""
    return main(scenario=args.scenario, out=args.out, method=args.method, gamma=args.gamma,
                iterations=args.iterations, steps=args.steps, seed=args.seed,
                start_mode=args.start_mode, resume=args.resume)
