"""``hybrid-mpc paper timings``: our computation times, measured as the paper's.

The published paper reports (its section 5, on a laptop with an i7-1165G7): 3.0 ms per QP
solve, 6.1 ms per Jacobian and 1.6 s per closed-loop iteration. This benchmark runs the
scenario's hybrid (the scenario file's gamma) for ``iterations`` tuning iterations, each
two closed-loop episodes of T steps as in the paper, and times inside them:

* ``qp_solve_ms``: each MPC solve (``MPCPolicy.solve``: acados HPIPM on the condensed
  QP, from Python);
* ``jacobian_ms``: each Jacobian of the MPC's solution, ``du/dx`` (4 x 12) and
  ``du/dtheta`` (4 x 94) at one state (``MPCPolicy.sensitivities``: implicit
  differentiation of the KKT conditions), what the model-based gradient needs per step;
* ``iteration_s``: each whole tuning iteration (both episodes, the model-based and
  zeroth-order gradients, the update), from the tuner's own history; the first
  iteration is left out, since its mixing eta_0 = 1 needs no perturbed episode.

It reports medians and 90th percentiles next to the paper's figures (the scenario's
``paper`` section), and the machine: CPU model name and core counts from ``lscpu``,
the load average when it started and ended. The paper's figures are wall times, and so
are ours (``*_ms``, ``iteration_s``); on a shared machine other jobs inflate them, so each
also has a CPU-time twin (``*_cpu``: this thread's CPU time for a solve or a Jacobian,
this process's for an iteration, measured between the tuner's progress calls), which is
what the same work takes on a core of its own. Progress goes to stderr, a JSON object is
the last line.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

from hybrid_mpc_ros.core.learning.tuning import simulated_episodes, Tuner
from hybrid_mpc_ros.core.scenario import load_scenario, resolve_scenario_path
from hybrid_mpc_ros.tools.cli import add_scenario_argument, positive_int


class TimedPolicy:
    """An MPC policy whose ``solve`` and ``sensitivities`` calls are timed (wall, seconds).

    Everything else is the wrapped policy's; the tuner and the rollout cannot tell the
    difference.
    """

    def __init__(self, policy):
        self._policy = policy
        self.solve_s: list[float] = []
        self.jacobian_s: list[float] = []
        self.solve_cpu_s: list[float] = []
        self.jacobian_cpu_s: list[float] = []

    def solve(self, x):
        """Solve the MPC at x (12,), timed (wall and this thread's CPU time)."""
        start, cpu = time.perf_counter(), time.thread_time()
        solution = self._policy.solve(x)
        self.solve_s.append(time.perf_counter() - start)
        self.solve_cpu_s.append(time.thread_time() - cpu)
        return solution

    def sensitivities(self):
        """Return ``(du/dx (4, 12), du/dtheta (4, 94))`` of the last solve, timed."""
        start, cpu = time.perf_counter(), time.thread_time()
        result = self._policy.sensitivities()
        self.jacobian_s.append(time.perf_counter() - start)
        self.jacobian_cpu_s.append(time.thread_time() - cpu)
        return result

    def __getattr__(self, name):
        return getattr(self._policy, name)


def machine() -> dict:
    """Describe this machine: CPU model, cores and threads (lscpu), OS, Python."""
    info = {'cpu_model': platform.processor() or None, 'logical_cpus': os.cpu_count(),
            'os': platform.platform(), 'python': platform.python_version()}
    try:
        text = subprocess.run(['lscpu'], capture_output=True, text=True, check=True,
                              timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return info
    fields = dict(line.split(':', 1) for line in text.splitlines() if ':' in line)
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    info['cpu_model'] = fields.get('Model name', info['cpu_model'])
    for key, name in (('Core(s) per socket', 'cores_per_socket'), ('Socket(s)', 'sockets'),
                      ('Thread(s) per core', 'threads_per_core'),
                      ('CPU max MHz', 'max_mhz'), ('Hypervisor vendor', 'hypervisor')):
        if key in fields:
            info[name] = fields[key]
    return info


def _stats(samples, scale: float) -> dict:
    values = np.asarray(samples) * scale
    return {'median': float(np.median(values)), 'p90': float(np.percentile(values, 90)),
            'count': int(values.size)}


def main(scenario: str | None = None, iterations: int = 10) -> int:
    """Run the benchmark; print a table beside the paper's and the JSON last; returns 0.

    ``iterations`` must be at least 2 (the first one is not a full iteration).
    """
    if iterations < 2:
        raise ValueError('paper timings needs at least 2 iterations')
    setup = load_scenario(resolve_scenario_path(scenario))
    described = machine()
    load_before = os.getloadavg()
    config = setup.tuning_config('hybrid', iterations=iterations)
    policy = TimedPolicy(setup.policy())
    plant, model = setup.plant(), setup.nominal_model()
    episodes = simulated_episodes(plant, policy, setup.x0, config.episode_steps)

    cpu_marks = []

    def progress(row):
        cpu_marks.append(time.process_time())
        print(f'iteration {row["iteration"]}/{iterations}: {row["wall_s"]:.2f} s',
              file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory() as folder:
        tuner = Tuner(config, episodes, model.jacobians, setup.cost(), policy.theta.copy(),
                      os.path.join(folder, 'timing.checkpoint.json'), progress)
        start = time.perf_counter()
        state = tuner.run()
        wall = time.perf_counter() - start
    result = {
        'scenario': setup.path, 'method': f'hybrid gamma {config.gamma:g}',
        'iterations': iterations, 'episode_steps': config.episode_steps,
        'qp_solve_ms': _stats(policy.solve_s, 1e3),
        'jacobian_ms': _stats(policy.jacobian_s, 1e3),
        # iterations that flew both episodes (eta_0 = 1 skips the perturbed one)
        'iteration_s': _stats([row['wall_s'] for row in state.history
                               if row['grad_zo_norm'] is not None], 1.0),
        'qp_solve_ms_cpu': _stats(policy.solve_cpu_s, 1e3),
        'jacobian_ms_cpu': _stats(policy.jacobian_cpu_s, 1e3),
        # from the end of iteration 1 on: every later iteration flew both episodes
        'iteration_s_cpu': _stats(np.diff(cpu_marks), 1.0),
        'wall_s': wall, 'machine': described,
        'load_average_1min': {'before': load_before[0], 'after': os.getloadavg()[0]},
    }
    paper = setup.paper
    if paper is not None and paper.timing_iteration_s is not None:
        result['paper'] = {'qp_solve_ms': paper.timing_qp_solve_ms,
                           'jacobian_ms': paper.timing_jacobian_ms,
                           'iteration_s': paper.timing_iteration_s,
                           'machine': paper.timing_machine}
    print(f'machine: {described["cpu_model"]}, {described["logical_cpus"]} logical CPUs; '
          f'load average {load_before[0]:.2f} -> {result["load_average_1min"]["after"]:.2f}')
    print('| per | ours, wall: median (p90) | ours, CPU: median (p90) | paper (wall) |')
    print('|---|---:|---:|---:|')
    for key, unit in (('qp_solve_ms', 'ms'), ('jacobian_ms', 'ms'), ('iteration_s', 's')):
        ours, cpu = result[key], result[key + '_cpu']
        theirs = result.get('paper', {}).get(key)
        print(f'| {key} | {ours["median"]:.3g} {unit} ({ours["p90"]:.3g}) | '
              f'{cpu["median"]:.3g} {unit} ({cpu["p90"]:.3g}) | '
              f'{"-" if theirs is None else f"{theirs:g} {unit}"} |')
    print(json.dumps(result))
    return 0


def add_arguments(parser) -> None:
    """Add the options of ``hybrid-mpc paper timings`` to ``parser``."""
    parser.description = (
        "Run the scenario's hybrid for a few tuning iterations and time each MPC solve, "
        "each Jacobian of the MPC's solution (du/dx, du/dtheta) and each whole iteration "
        '(two episodes and the update), as the published paper reports them (3.0 ms, '
        '6.1 ms, 1.6 s on an i7-1165G7), in wall time and in CPU time; describes the '
        'machine (lscpu) and its load.')
    add_scenario_argument(parser)
    parser.add_argument('--iterations', type=positive_int, default=10,
                        help='tuning iterations to run, at least 2: the first (eta_0 = 1, '
                             'no perturbed episode) is not timed as an iteration (default: '
                             '%(default)s)')


def run(args) -> int:
    """Run ``hybrid-mpc paper timings`` with the parsed ``args``; the exit status."""
    return main(scenario=args.scenario, iterations=args.iterations)
