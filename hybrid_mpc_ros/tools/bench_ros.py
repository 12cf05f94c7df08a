"""``hybrid-mpc bench ros``: the same short tuning through ROS (lockstep) and offline.

Both runs tune from the scenario's start with its method and seed, for ``iterations``
iterations of ``steps``-step episodes:

* **offline**: :class:`~hybrid_mpc_ros.core.learning.tuning.Tuner` with
  :func:`~hybrid_mpc_ros.core.learning.tuning.simulated_episodes` in this process (the
  solver is built and warmed up first, as the nodes build theirs before they start),
  observing the state as the nodes do, after the odometry round trip
  (:func:`~hybrid_mpc_ros.core.learning.live_session.measured_state`);
* **through ROS**: :func:`hybrid_mpc_ros.tools.tune.run_tuning`, the three node
  processes of ``hybrid-mpc tune`` in lockstep.

``ros_wall_s`` is the tuner node's tuning time (from the session's start, the services
found, to its last iteration; the processes' startup is ``ros_startup_s``), and
``offline_wall_s`` the offline ``Tuner.run``. ``overhead_ratio`` is their quotient,
``ros_iteration_s`` the ROS time of one iteration (a hybrid iteration flies two
episodes), ``control_steps_per_s`` the episodes' steps per ROS wall second. The costs of
both runs are compared too (``max_cost_rel_diff``: the ROS run reproduces the offline
one; 0 when it does bit for bit). Without the round trip offline, the last bits it
changes grow through the zeroth-order quotient to 7.6e-6 relative after 10 iterations
of the default scenario, which would hide any real difference of that size. Progress
goes to stderr; the result is one JSON object on the last line of stdout.
It measures and prints; it asserts nothing.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time

from hybrid_mpc_ros.core.learning.live_session import measured_state
from hybrid_mpc_ros.core.learning.tuning import simulated_episodes, Tuner
from hybrid_mpc_ros.core.scenario import load_scenario, resolve_scenario_path
from hybrid_mpc_ros.tools.cli import add_scenario_argument, positive_int
from hybrid_mpc_ros.tools.tune import run_tuning, TuneError


def offline(scenario, config) -> tuple[float, list]:
    """Run the tuning offline, seeing the state as the nodes do; return wall time [s], history."""
    policy, plant = scenario.policy(), scenario.plant()
    runner = simulated_episodes(plant, policy, scenario.x0, config.episode_steps,
                                observe=measured_state)
    runner(policy.theta.copy(), True)                 # warm up: solver, caches, imports
    tuner = Tuner(config, runner, scenario.nominal_model().jacobians, scenario.cost(),
                  scenario.initial_theta())
    start = time.perf_counter()
    state = tuner.run()
    return time.perf_counter() - start, state.history


def main(scenario: str | None = None, iterations: int = 10, steps: int = 200,
         out: str | None = None) -> int:
    """Run ``hybrid-mpc bench ros``: progress on stderr, a JSON object as the last line."""
    path = resolve_scenario_path(scenario)
    setup = load_scenario(path)
    config = setup.tuning_config(iterations=iterations, episode_steps=steps)
    print(f'bench ros: {config.method}, {iterations} iterations of {steps}-step episodes, '
          f'offline first', file=sys.stderr, flush=True)
    offline_wall, history = offline(setup, config)
    print(f'bench ros: offline {offline_wall:.2f} s; now through ROS (lockstep)',
          file=sys.stderr, flush=True)
    folder = out or tempfile.mkdtemp(prefix='hybrid_mpc_bench_ros_')
    overrides = {'iterations': iterations, 'episode_steps': steps, 'resume': False}
    try:
        run = run_tuning(path, folder, overrides, log=sys.stderr, timeout_s=3600.0)
    except TuneError as exc:
        print(f'hybrid-mpc bench ros: error: {exc}', file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print('hybrid-mpc bench ros: interrupted; nodes stopped', file=sys.stderr)
        return 130
    summary = run.summary
    ros_wall = summary['tuning_wall_s']
    ros_costs = [progress['cost'] for progress in run.progress]
    diffs = [abs(a - row['cost']) / abs(row['cost']) for a, row in zip(ros_costs, history)]
    episode_steps = summary['episodes'] * steps
    result = {
        'command': 'bench ros',
        'method': config.method,
        'iterations': iterations,
        'episode_steps': steps,
        'ros_wall_s': round(ros_wall, 3),
        'offline_wall_s': round(offline_wall, 3),
        'overhead_ratio': round(ros_wall / offline_wall, 3),
        'ros_iteration_s': round(ros_wall / iterations, 4),
        'offline_iteration_s': round(offline_wall / iterations, 4),
        'control_steps_per_s': round(episode_steps / ros_wall, 1),
        'ros_startup_s': round(run.wall_s - ros_wall, 3),
        'ros_reruns': summary['reruns'],
        'max_cost_rel_diff': max(diffs) if len(diffs) == len(history) else None,
        'output_dir': os.path.abspath(folder),
        'scenario': setup.path,
        'executor': os.environ.get('HYBRID_MPC_EXECUTOR', 'events'),
        'load_average': [round(value, 2) for value in os.getloadavg()],
    }
    print(f'bench ros: through ROS {ros_wall:.2f} s ({result["ros_iteration_s"]:.3f} s per '
          f'iteration, {result["control_steps_per_s"]:.0f} control steps/s), offline '
          f'{offline_wall:.2f} s: overhead x{result["overhead_ratio"]:.2f}', file=sys.stderr,
          flush=True)
    print(json.dumps(result), flush=True)
    return 0


def add_arguments(parser) -> None:
    """Add the options of ``hybrid-mpc bench ros`` to ``parser``."""
    parser.description = (
        'Tune offline in this process, then through the three ROS 2 node processes in '
        'lockstep (as hybrid-mpc tune), with the same settings; report ros_wall_s, '
        'offline_wall_s, overhead_ratio, ros_iteration_s (one iteration: two episodes for '
        'the hybrid) and control_steps_per_s.')
    add_scenario_argument(parser)
    parser.add_argument('--iterations', type=positive_int, default=10,
                        help='iterations (default: %(default)s)')
    parser.add_argument('--steps', type=positive_int, default=200,
                        help='closed-loop steps per episode, T (default: %(default)s, the '
                             "paper's)")
    parser.add_argument('--out', default=None,
                        help="the ROS run's output directory (default: a new temporary one)")


def run(args) -> int:
    """Run ``hybrid-mpc bench ros`` with the parsed ``args``; the exit status."""
    return main(scenario=args.scenario, iterations=args.iterations, steps=args.steps,
                out=args.out)
