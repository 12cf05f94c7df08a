"""``hybrid-mpc paper robustness``: the default tuning on a family of mismatched vehicles.

The family is ``config/scenarios/robustness/*.yaml``: vehicles that differ from the
nominal one in mass, drag, inertia and arm length, with their own starts and targets,
each planned with the shipped nominal model (identified on the arXiv vehicle), so the
model is wrong in a different way each time. On every scenario, with the scenario's own
tuner settings (its step rule, guard and mixing rule: the package's defaults for a new
vehicle) and ``iterations`` iterations:

* ``hybrid`` (the scenario's method) and ``zeroth_order``, once per seed;
* ``model_based`` once: it draws no random direction, so every seed is the same run;
* ``optimum`` once, the reference: L-BFGS-B on the exact closed-loop gradient inside
  Theta (:mod:`~hybrid_mpc_ros.core.learning.optimum`), until the relative improvement
  over 20 iterations is below 1e-4 or ``optimum_iterations``. Deterministic too.

Per method it reports ``improved_fraction`` (runs whose final theta costs less than
theta0), ``median_gain_vs_optimum`` (the run's improvement divided by the optimum's, the
median over runs), ``worst_excursion`` (the largest episode cost divided by the initial
cost, over all runs, iterations and episodes, perturbed and refused ones included; for
the optimum, over the points its line searches tried), ``guard_rollbacks`` (total), and
the commands checked: ``non_finite_commands`` and ``out_of_bounds_commands`` (rotor
commands outside the scenario's ``[u_min, u_max]``, over every step of every episode).
The final cost is that of an extra episode at the run's final theta.

Every run is one job in a process pool (both cores). A finished job's result is a JSON
file under ``--out`` (``<scenario>/<method>_s<seed>.json``), written atomically with a
signature of what it depends on (the scenario file's values, iterations, episode length);
a rerun skips the jobs whose results match and runs the rest, so an interrupted bench
resumes, losing at most the jobs that were running. ``--quick`` (CI) runs two scenarios,
one seed, a few short iterations and a short optimum: it checks the machinery, not the
numbers. ``--compare-eta`` adds ``hybrid_agreement``: the hybrid with the agreement eta
rule (:class:`~hybrid_mpc_ros.core.learning.mixing.AgreementEta`, its defaults) instead of
the scenario's, with the same seeds. ``--stored-only`` runs nothing and reports the
stored runs (a bench in progress). Progress (and what the solver prints from the workers)
goes to stderr; the table to stdout, then the JSON object (keyed by method) as the last
line. The signature does not cover the package's code: after changing it, use a fresh
``--out``.

Why about 430 lines: the bench's jobs, their stored and signed results, the process pool
and the table and JSON summary are one command's.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np

from hybrid_mpc_ros.core import paths
from hybrid_mpc_ros.core.config import ConfigError, file_signature
from hybrid_mpc_ros.core.learning.mixing import AgreementEta
from hybrid_mpc_ros.core.learning.optimum import LINE_SEARCH, optimum_reference
from hybrid_mpc_ros.core.learning.tuning import simulated_episodes, Tuner
from hybrid_mpc_ros.core.scenario import load_scenario, SCENARIO_DIR
from hybrid_mpc_ros.tools.cli import positive_int
from hybrid_mpc_ros.tools import pool
from hybrid_mpc_ros.tools.pool import Engine, run_tasks, Task

FAMILY = 'robustness'                   # config/scenarios/robustness/*.yaml
METHODS = ('hybrid', 'zeroth_order', 'model_based', 'optimum', 'hybrid_agreement')
# the hybrid with the agreement eta rule (AgreementEta's defaults) instead of the scenario's,
# run only with --compare-eta: is adaptive mixing worth keeping?
COMPARE_ETA = 'hybrid_agreement'
DETERMINISTIC = ('model_based', 'optimum')
QUICK_SCENARIOS = ('issue_vehicle', 'low_drag')


@dataclass(frozen=True)
class Settings:
    """What every job of a bench shares (its results depend on these)."""

    iterations: int
    episode_steps: int | None         # None: each scenario's own
    optimum_iterations: int


@dataclass(frozen=True)
class Job:
    """One run: ``method`` on the scenario file ``path`` with ``seed``."""

    path: str
    name: str
    method: str
    seed: int

    @property
    def key(self) -> str:
        """``<scenario>/<method>_s<seed>``: the result file's name under --out."""
        return f'{self.name}/{self.method}_s{self.seed}'


def family_paths(names: list[str] | None = None, family: str = FAMILY) -> list[str]:
    """Scenario files of a family (shipped ``config/scenarios/<family>``), sorted.

    ``names`` picks some of them (file names without ``.yaml``); ConfigError lists the
    family when one is unknown.
    """
    for folder in paths.config_dirs():
        folder = os.path.join(folder, SCENARIO_DIR, family)
        if os.path.isdir(folder):
            found = {name[:-5]: os.path.join(folder, name) for name in os.listdir(folder)
                     if name.endswith('.yaml')}
            break
    else:
        raise ConfigError(f'no config/{SCENARIO_DIR}/{family} directory in '
                          + ', '.join(paths.config_dirs()))
    if names is None:
        return [found[name] for name in sorted(found)]
    unknown = [name for name in names if name not in found]
    if unknown:
        raise ConfigError(f'unknown family scenario(s) {unknown}; the family: '
                          + ', '.join(sorted(found)))
    return [found[name] for name in names]


def _signature(job: Job, settings: Settings) -> str:
    optimum = ([settings.optimum_iterations, LINE_SEARCH] if job.method == 'optimum'
               else None)
    return file_signature(job.path, [job.method, job.seed, settings.iterations,
                                     settings.episode_steps, optimum])


def _command_check(u: np.ndarray, u_min: float, u_max: float) -> tuple[int, int]:
    """``(non-finite, out of bounds)`` counts of the rotor commands u (T, 4)."""
    finite = np.isfinite(u)
    outside = finite & ((u < u_min) | (u > u_max))
    return int(np.count_nonzero(~finite)), int(np.count_nonzero(outside))


class _Watched:
    """An episode runner that records every episode's cost and checks its commands.

    Also counts the steps whose solve failed (``solver_failures``) and, among them, those
    whose applied command (the policy's fallback) had an entry non-finite or outside
    ``[u_min, u_max]`` (``unhandled_failures``): a failure the fallback did not cover.
    """

    def __init__(self, episodes, cost, u_min: float, u_max: float):
        self.episodes, self.cost = episodes, cost
        self.u_min, self.u_max = u_min, u_max
        self.costs: list[float] = []
        self.non_finite = self.out_of_bounds = 0
        self.solver_failures = self.unhandled_failures = 0

    def __call__(self, theta: np.ndarray, sensitivities: bool):
        record = self.episodes(theta, sensitivities)
        self.costs.append(float(self.cost(record)))
        non_finite, outside = _command_check(record.u, self.u_min, self.u_max)
        self.non_finite += non_finite
        self.out_of_bounds += outside
        failed = np.asarray(record.status) != 0
        self.solver_failures += int(np.count_nonzero(failed))
        commands = record.u[failed]
        bad = ~np.isfinite(commands) | (commands < self.u_min) | (commands > self.u_max)
        self.unhandled_failures += int(np.count_nonzero(bad.any(axis=1)))
        return record


def run_job(job: Job, settings: Settings) -> dict:
    """Run one job in this process and return its result (see the module docstring)."""
    start, cpu_start = time.perf_counter(), time.process_time()
    scenario = load_scenario(job.path)
    policy, plant, cost = scenario.policy(), scenario.plant(), scenario.cost()
    steps = settings.episode_steps or scenario.tuning.episode_steps
    method = {'optimum': None, COMPARE_ETA: 'hybrid'}.get(job.method, job.method)
    config = scenario.tuning_config(
        method=method,
        iterations=settings.iterations, episode_steps=steps, seed=job.seed)
    box = scenario.mpc_config
    watched = _Watched(simulated_episodes(plant, policy, scenario.x0, steps), cost,
                       box.u_min, box.u_max)
    theta0 = policy.theta.copy()
    if job.method == 'optimum':
        result = optimum_reference(scenario, steps, settings.optimum_iterations,
                                   episodes=watched)
        initial, final, rollbacks = result.initial_cost, result.cost, 0
        detail = {'iterations': result.iterations, 'reason': result.reason,
                  'restarts': result.restarts}
        base_costs = result.costs
    else:
        jacobians = scenario.nominal_model().jacobians
        rules = scenario.rules
        if job.method == COMPARE_ETA:
            rules = replace(rules, eta_rule='agreement', beta=AgreementEta.beta,
                            prior=AgreementEta.prior)
        tuner = Tuner(config, watched, jacobians, cost, theta0, **rules.build(config, theta0))
        state = tuner.run()
        final = float(cost(watched(state.theta, False)))    # the run's final theta
        initial, rollbacks = state.history[0]['cost'], state.guard_rollbacks
        base_costs = [row['cost'] for row in state.history]
        detail = {'best_cost': state.best_cost,
                  'solver_failures': sum(row['solver_failures'] for row in state.history)}
    return {'scenario': job.name, 'method': job.method, 'seed': job.seed,
            'initial_cost': initial, 'final_cost': final, 'max_cost': max(watched.costs),
            'guard_rollbacks': rollbacks, 'episodes': len(watched.costs),
            'non_finite_commands': watched.non_finite,
            'out_of_bounds_commands': watched.out_of_bounds, 'costs': base_costs,
            'wall_s': time.perf_counter() - start, 'cpu_s': time.process_time() - cpu_start,
            **detail}


def store_result(out: str, key: str, result: dict) -> None:
    """Write ``result`` atomically to ``<out>/<key>.json`` (a bench's result file)."""
    path = os.path.join(out, key + '.json')
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix='.tmp')
    with os.fdopen(fd, 'w') as stream:
        json.dump(result, stream)
    os.replace(tmp, path)


def stored_result(out: str, key: str, signature: str) -> dict | None:
    """Return the result stored in ``<out>/<key>.json`` if its signature is ``signature``."""
    path = os.path.join(out, key + '.json')
    try:
        with open(path) as stream:
            result = json.load(stream)
    except (OSError, ValueError):
        return None
    return result if result.get('signature') == signature else None


def _worker(job: Job, settings: Settings, out: str, run=None) -> dict:
    """Run ``job`` and store its result atomically under ``out``; return it.

    ``run(job, settings)`` runs it (default :func:`run_job`).
    """
    result = (run or run_job)(job, settings)
    result['signature'] = _signature(job, settings)
    store_result(out, job.key, result)
    return result


def _stored(job: Job, settings: Settings, out: str) -> dict | None:
    """Return the stored result of ``job`` if made with these very inputs, else None."""
    return stored_result(out, job.key, _signature(job, settings))


def run_pool(pending: list[Job], settings: Settings, out: str, workers: int, run=None,
             engine: Engine | None = None, worker=None):
    """Run the ``pending`` jobs on ``workers`` processes of ``engine``; yield each result.

    In the order they finish, each stored under ``out`` first by ``worker(job, settings,
    out)`` (default :func:`_worker`, which runs ``run(job, settings)``: a module-level
    function, the workers import it; default :func:`run_job`). ``engine``: see
    :mod:`~hybrid_mpc_ros.tools.pool` (default: a local process pool).
    """
    if worker is None:
        tasks = [Task(_worker, (job, settings, out, run)) for job in pending]
    else:
        tasks = [Task(worker, (job, settings, out)) for job in pending]
    for _, result in run_tasks(tasks, workers, engine):
        yield result


def jobs_for(paths_: list[str], seeds: int, compare_eta: bool = False) -> list[Job]:
    """Every job of the bench: scenario by scenario, the optimum and the hybrid first.

    So a bench stopped early (or read with ``--stored-only`` while it runs) holds whole
    scenarios of the judged method with their reference, not every method of a few; the
    zeroth-order and model-based baselines come last, then (``compare_eta``) the hybrid
    with the agreement eta rule.
    """
    jobs = []
    names = [os.path.splitext(os.path.basename(path))[0] for path in paths_]
    for path, name in zip(paths_, names):
        jobs.append(Job(path, name, 'optimum', 0))
        jobs += [Job(path, name, 'hybrid', seed) for seed in range(seeds)]
    for method in ('zeroth_order', 'model_based') + ((COMPARE_ETA,) if compare_eta else ()):
        for seed in (range(1) if method in DETERMINISTIC else range(seeds)):
            jobs += [Job(path, name, method, seed) for path, name in zip(paths_, names)]
    return jobs


# ------------------------------------------------------------------ the summary

def summarise(results: list[dict]) -> dict:
    """Return the JSON object: per method, the judged figures over its runs."""
    optimum = {r['scenario']: r for r in results if r['method'] == 'optimum'}
    summary = {}
    for method in METHODS:
        runs = [r for r in results if r['method'] == method]
        if not runs:
            continue
        gains = []
        for run in runs:
            reference = optimum.get(run['scenario'])
            best_gain = (reference['initial_cost'] - reference['final_cost']
                         if reference is not None else 0.0)
            if best_gain > 0.0:              # no reference improvement: no ratio to take
                gains.append((run['initial_cost'] - run['final_cost']) / best_gain)
        summary[method] = {
            'runs': len(runs),
            'improved_fraction': sum(r['final_cost'] < r['initial_cost'] for r in runs)
            / len(runs),
            'median_gain_vs_optimum': statistics.median(gains) if gains else None,
            'worst_excursion': max(r['max_cost'] / r['initial_cost'] for r in runs),
            'guard_rollbacks': sum(r['guard_rollbacks'] for r in runs),
            'non_finite_commands': sum(r['non_finite_commands'] for r in runs),
            'out_of_bounds_commands': sum(r['out_of_bounds_commands'] for r in runs),
            'deterministic': method in DETERMINISTIC,
        }
    return summary


def fmt_or_dash(value, spec: str) -> str:
    """Format ``value`` with ``spec`` for a table cell; ``-`` for a figure not there (None)."""
    return '-' if value is None else format(value, spec)


def tables(results: list[dict], summary: dict) -> str:
    """Markdown tables: per method (the judged figures) and per scenario (median finals)."""
    lines = ['| method | runs | improved | median gain vs optimum | worst excursion | '
             'guard rollbacks | non-finite / out-of-bounds commands |',
             '|---|---:|---:|---:|---:|---:|---:|']
    for method, row in summary.items():
        label = method + (' (deterministic: 1 run)' if row['deterministic'] else '')
        lines.append(f'| {label} | {row["runs"]} | {row["improved_fraction"]:.2f} | '
                     f'{fmt_or_dash(row["median_gain_vs_optimum"], ".2f")} | '
                     f'{row["worst_excursion"]:.3f} | {row["guard_rollbacks"]} | '
                     f'{row["non_finite_commands"]} / {row["out_of_bounds_commands"]} |')
    methods = list(summary)
    lines += ['', '| scenario | initial cost | ' + ' | '.join(
        f'{method} final' for method in methods) + ' |',
        '|---|---:|' + '---:|' * len(methods)]
    for name in sorted({r['scenario'] for r in results}):
        runs = [r for r in results if r['scenario'] == name]
        cells = []
        for method in methods:
            finals = [r['final_cost'] for r in runs if r['method'] == method]
            cells.append(fmt_or_dash(statistics.median(finals) if finals else None, '.1f'))
        lines.append(f'| {name} | {runs[0]["initial_cost"]:.1f} | ' + ' | '.join(cells)
                     + ' |')
    lines.append('')
    lines.append('Finals of methods with several seeds are medians over the seeds.')
    return '\n'.join(lines)


def _progress_line(done: int, total: int, elapsed: float, result: dict, reused: bool) -> str:
    gain = result['initial_cost'] - result['final_cost']
    text = (f'[{done:3d}/{total}] {elapsed / 60:5.1f} min  {result["scenario"]:22s} '
            f'{result["method"]:12s} s{result["seed"]}: {result["initial_cost"]:8.1f} -> '
            f'{result["final_cost"]:8.1f} ({gain:+8.1f}), worst '
            f'{result["max_cost"] / result["initial_cost"]:.3f}, rollbacks '
            f'{result["guard_rollbacks"]}')
    return text + (' (stored)' if reused else f', {result["wall_s"]:.0f} s')


def main(out: str | None = None, seeds: int = 3, iterations: int = 100,
         workers: int | None = None, quick: bool = False,
         scenarios: list[str] | None = None, optimum_iterations: int = 200,
         stored_only: bool = False, compare_eta: bool = False,
         engine: Engine = Engine()) -> int:
    """Run the bench (see the module docstring); print the tables and the JSON last line.

    With ``stored_only`` nothing runs: the figures of the runs stored under ``out`` so far
    (partial while a bench is still running: read them as such). ``compare_eta`` adds the
    ``hybrid_agreement`` runs (see :data:`COMPARE_ETA`). ``engine``: where the runs go
    (:mod:`~hybrid_mpc_ros.tools.pool`; default a local process pool).
    """
    if quick:
        scenarios = scenarios or list(QUICK_SCENARIOS)
        seeds, iterations, optimum_iterations = 1, 3, 3
        settings = Settings(iterations, 20, optimum_iterations)
        out = out or os.path.join('results', 'bench_robustness_quick')
    else:
        settings = Settings(iterations, None, optimum_iterations)
        out = out or os.path.join('results', 'bench_robustness')
    family = family_paths(scenarios)
    for path in family:
        load_scenario(path)                       # every file checked before any job
    if not stored_only:
        load_scenario(family[0]).policy()         # compile the shared solver once
    jobs = jobs_for(family, seeds, compare_eta)
    workers = workers or min(len(jobs), os.cpu_count() or 1)
    print(f'paper robustness: {len(family)} scenarios, {len(jobs)} runs ({seeds} seeds for '
          f'hybrid and zeroth_order; model_based and optimum once), {iterations} iterations, '
          f'{engine.describe(workers)}; results in {out}', file=sys.stderr,
          flush=True)
    start = time.perf_counter()
    results, pending = [], []
    for job in jobs:
        stored = _stored(job, settings, out)
        if stored is None:
            pending.append(job)
        else:
            results.append(stored)
            print(_progress_line(len(results), len(jobs), 0.0, stored, True),
                  file=sys.stderr, flush=True)
    if stored_only:
        if not results:
            print(f'no stored results in {out}', file=sys.stderr)
            return 1
        summary = summarise(results)
        print(tables(results, summary))
        cpu = sum(result.get('cpu_s', 0.0) for result in results)
        wall = sum(result['wall_s'] for result in results)
        print(f'\n{len(results)} of {len(jobs)} runs stored in {out} (stored only: '
              f'{len(pending)} not run; the figures cover the stored runs); the stored runs '
              f'took {cpu / 60:.1f} min of CPU time and {wall / 60:.1f} min of wall time '
              'summed over runs')
        print(json.dumps(summary))
        return 0
    for result in run_pool(pending, settings, out, workers, engine=engine):
        results.append(result)
        print(_progress_line(len(results), len(jobs), time.perf_counter() - start,
                             result, False), file=sys.stderr, flush=True)
    wall = time.perf_counter() - start
    summary = summarise(results)
    print(tables(results, summary))
    cpu = sum(result.get('cpu_s', 0.0) for result in results)
    print(f'\n{len(jobs)} runs ({len(pending)} run now, {len(jobs) - len(pending)} stored) '
          f'in {wall / 60:.1f} min of wall time on {workers} processes; the runs took '
          f'{cpu / 60:.1f} min of CPU time ({cpu / 60 / workers:.1f} min per process)')
    print(json.dumps(summary))
    return 0


def add_arguments(parser) -> None:
    """Add the options of ``hybrid-mpc paper robustness`` to ``parser``."""
    parser.description = (
        'Tune every scenario of config/scenarios/robustness (vehicles that differ from the '
        'nominal model in mass, drag, inertia and arm length) with its own default '
        'settings: hybrid and zeroth-order once per seed, model-based once (deterministic), '
        'and the optimum reference (L-BFGS-B on the exact closed-loop gradient inside '
        'Theta). Prints a table and, as the last line, a JSON object keyed by method. Runs '
        'in a process pool; a rerun reuses the stored results in --out (resume).')
    parser.add_argument('--out', default=None,
                        help='results directory (default: results/bench_robustness, '
                             'results/bench_robustness_quick with --quick)')
    parser.add_argument('--seeds', type=positive_int, default=3,
                        help='seeds of the hybrid and zeroth-order runs (default: '
                             '%(default)s)')
    parser.add_argument('--iterations', type=positive_int, default=100,
                        help='tuning iterations per run (default: %(default)s)')
    parser.add_argument('--optimum-iterations', type=positive_int, default=200,
                        help="cap on the optimum reference's iterations (default: "
                             '%(default)s)')
    pool.add_arguments(parser)
    parser.add_argument('--scenarios', nargs='+', default=None,
                        help='some of the family (file names without .yaml; default: all)')
    parser.add_argument('--quick', action='store_true',
                        help='CI-sized check of the machinery: two scenarios, one seed, '
                             '3 iterations of 20-step episodes')
    parser.add_argument('--compare-eta', action='store_true',
                        help='also run the hybrid with the agreement eta rule '
                             "(hybrid_agreement) beside the scenario's")
    parser.add_argument('--stored-only', action='store_true',
                        help='run nothing: the table and JSON line of the runs stored in '
                             '--out so far (e.g. while a bench is still running)')


def run(args) -> int:
    """Run ``hybrid-mpc paper robustness`` with the parsed ``args``; the exit status."""
    return main(out=args.out, seeds=args.seeds, iterations=args.iterations,
                workers=args.workers, quick=args.quick, scenarios=args.scenarios,
                optimum_iterations=args.optimum_iterations, stored_only=args.stored_only,
                compare_eta=args.compare_eta, engine=pool.engine_from(args))
