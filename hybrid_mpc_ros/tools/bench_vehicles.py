"""``hybrid-mpc bench vehicles``: the default tuning on RotorPy's multirotors.

The vehicles are ``config/scenarios/rotorpy/*.yaml`` (or ``--scenarios``): RotorPy's
presets with aerodynamics on, and one in a constant wind, each planned with the model
the package's own commands made for it (``hybrid-mpc identify``; the table says which
command and which candidate model was written, from the model file's header). On every
vehicle, with the scenario's own tuner (its step rule, guard, mixing rule and the
offset-free observer's model, as ``hybrid-mpc reproduce`` runs it) and ``iterations``
iterations of the scenario's episode (``x0`` to ``x_ref``, ``episode_steps``):

* ``hybrid`` (the default) and ``zeroth_order``, once per seed;
* ``model_based`` once: it draws no random direction, so every seed is the same run.

Per run: the final position error [m] of an episode at the start theta and of one at the
tuned (final) theta, the cost gain ``1 - final / start``, the worst excursion (the
largest episode cost over the start cost, every episode flown, perturbed and refused
ones included), the solver failures (MPC solves that failed, over every step of every
episode) and those left unhandled (a failed step whose applied command, the policy's
fallback, was non-finite or outside the rotor box ``[u_min, u_max]``; a run that raised
counts as one), and the bad commands (non-finite or outside ``[u_min, u_max]``, every
step of every episode).

Per vehicle and method (the JSON keys): ``position_error_start_m`` and
``position_error_tuned_m`` and ``cost_gain`` are medians over the seeds; ``worst_excursion``
is the worst over the seeds, ``min_cost_gain`` the worst seed's gain; ``solver_failures``,
``unhandled_solver_failures`` and ``bad_commands`` are totals over the seeds.

The jobs, their stored and signed results (resume from ``--out``), the process pool and the
command check are :mod:`hybrid_mpc_ros.paper.robustness`'s. ``--quick`` (CI) flies two
vehicles, one seed, 3 iterations of 20-step episodes: it checks the machinery, not the
numbers. ``--profile`` runs nothing but a cProfile of tuning iterations on one vehicle
(where the time goes: plant step, MPC solve, sensitivities, gradient) and the cost of a
plant step against the built-in quadcopter's. Progress goes to stderr; the table to
stdout, then the JSON object as the last line.
"""

from __future__ import annotations

import cProfile
import json
import os
import pstats
import statistics
import sys
import time

import numpy as np

from hybrid_mpc_ros.core.learning.tuning import simulated_episodes, Tuner
from hybrid_mpc_ros.core.scenario import default_scenario_path, load_scenario
from hybrid_mpc_ros.paper import robustness
from hybrid_mpc_ros.paper.robustness import fmt_or_dash, Job, Settings
from hybrid_mpc_ros.tools import pool
from hybrid_mpc_ros.tools.cli import positive_int
from hybrid_mpc_ros.tools.pool import Engine

FAMILY = 'rotorpy'                      # config/scenarios/rotorpy/*.yaml
METHODS = ('hybrid', 'zeroth_order', 'model_based')
QUICK_SCENARIOS = ('hummingbird', 'crazyflie')
QUICK_STEPS = 20


def model_provenance(scenario) -> str:
    """Say which of the package's commands made the scenario's model (its header)."""
    header = scenario.nominal_model().header
    name = scenario.name
    if header.get('command'):
        return f"{header['command']} --scenario {FAMILY}/{name}: {header.get('source')}"
    if 'chosen' in header:
        return (f'hybrid-mpc identify --scenario {FAMILY}/{name}: the {header["chosen"]} '
                f'model of its validation flights')
    return str(header.get('source', 'unknown'))


def _position_error(record, x_ref: np.ndarray) -> float:
    return float(np.linalg.norm(record.x[-1, 0:3] - x_ref[0:3]))


def run_job(job: Job, settings: Settings) -> dict:
    """Run one job in this process and return its result (see the module docstring)."""
    start, cpu_start = time.perf_counter(), time.process_time()
    scenario = load_scenario(job.path)
    steps = settings.episode_steps or scenario.tuning.episode_steps
    config = scenario.tuning_config(method=job.method, iterations=settings.iterations,
                                    episode_steps=steps, seed=job.seed)
    # Scenario.offline_tuner's tuner, its episodes watched (costs, commands, failures)
    policy, cost, box = scenario.policy(), scenario.cost(), scenario.mpc_config
    watched = robustness._Watched(
        simulated_episodes(scenario.plant(), policy, scenario.x0, steps), cost,
        box.u_min, box.u_max)
    theta0 = policy.theta.copy()
    result = {'scenario': job.name, 'method': job.method, 'seed': job.seed,
              'model': model_provenance(scenario), 'error': None}
    try:
        first = watched(theta0, False)
        initial = float(cost(first))
        tuner = Tuner(config, watched, scenario.nominal_model().jacobians, cost, theta0,
                      **scenario.tuner_rules(config, theta0))
        state = tuner.run()
        last = watched(state.theta, False)
        result.update(
            initial_cost=initial, final_cost=float(cost(last)),
            tuner_initial_cost=state.history[0]['cost'],
            position_error_start_m=_position_error(first, scenario.x_ref),
            position_error_tuned_m=_position_error(last, scenario.x_ref),
            guard_rollbacks=state.guard_rollbacks,
            costs=[row['cost'] for row in state.history])
    except Exception as exc:     # noqa: B902 - a crashed run is a result, not a dead bench
        result.update(error=f'{type(exc).__name__}: {exc}', initial_cost=None,
                      final_cost=None, position_error_start_m=None,
                      position_error_tuned_m=None, guard_rollbacks=None, costs=[])
    initial = result['initial_cost']
    result.update(
        max_cost=max(watched.costs) if watched.costs else None,
        worst_excursion=max(watched.costs) / initial if initial else None,
        cost_gain=1.0 - result['final_cost'] / initial if initial else None,
        episodes=len(watched.costs), solver_failures=watched.solver_failures,
        unhandled_solver_failures=watched.unhandled_failures + (result['error'] is not None),
        non_finite_commands=watched.non_finite, out_of_bounds_commands=watched.out_of_bounds,
        wall_s=time.perf_counter() - start, cpu_s=time.process_time() - cpu_start)
    return result


def jobs_for(paths_: list[str], seeds: int) -> list[Job]:
    """Every job: the hybrid on every vehicle first, then model-based, then zeroth-order.

    So a bench stopped early holds the judged method on whole vehicles.
    """
    names = [os.path.splitext(os.path.basename(path))[0] for path in paths_]
    jobs = []
    for method in ('hybrid', 'model_based', 'zeroth_order'):
        for path, name in zip(paths_, names):
            count = 1 if method in robustness.DETERMINISTIC else seeds
            jobs += [Job(path, name, method, seed) for seed in range(count)]
    return jobs


# ------------------------------------------------------------------ the summary

def _median(values):
    values = [value for value in values if value is not None]
    return statistics.median(values) if values else None


def summarise(results: list[dict]) -> dict:
    """Return the JSON object: per vehicle, per method, the figures over its seeds."""
    summary = {}
    for name in sorted({r['scenario'] for r in results}):
        summary[name] = {}
        for method in METHODS:
            runs = [r for r in results if r['scenario'] == name and r['method'] == method]
            if not runs:
                continue
            gains = [r['cost_gain'] for r in runs]
            excursions = [r['worst_excursion'] for r in runs]
            summary[name][method] = {
                'runs': len(runs),
                'position_error_start_m': _median(r['position_error_start_m'] for r in runs),
                'position_error_tuned_m': _median(r['position_error_tuned_m'] for r in runs),
                'cost_gain': _median(gains),
                'min_cost_gain': None if None in gains else min(gains),
                'worst_excursion': None if None in excursions else max(excursions),
                'solver_failures': sum(r['solver_failures'] for r in runs),
                'unhandled_solver_failures': sum(r['unhandled_solver_failures'] for r in runs),
                'bad_commands': sum(r['non_finite_commands'] + r['out_of_bounds_commands']
                                    for r in runs),
                'deterministic': method in robustness.DETERMINISTIC,
            }
    return summary


def tables(results: list[dict], summary: dict) -> str:
    """Markdown: the figures per vehicle and method, then where each model came from."""
    lines = ['| vehicle | method | runs | error start [m] | error tuned [m] | cost gain '
             '(median / worst) | worst excursion | solver failures (unhandled) | '
             'bad commands |', '|---|---|---:|---:|---:|---:|---:|---:|---:|']
    for name, methods in summary.items():
        for method, row in methods.items():
            label = method + (' (deterministic: 1 run)' if row['deterministic'] else '')
            lines.append(
                f'| {name} | {label} | {row["runs"]} | '
                f'{fmt_or_dash(row["position_error_start_m"], ".4f")} | '
                f'{fmt_or_dash(row["position_error_tuned_m"], ".4f")} | '
                f'{fmt_or_dash(row["cost_gain"], ".3f")} / '
                f'{fmt_or_dash(row["min_cost_gain"], ".3f")} | '
                f'{fmt_or_dash(row["worst_excursion"], ".3f")} | {row["solver_failures"]} '
                f'({row["unhandled_solver_failures"]}) | {row["bad_commands"]} |')
    lines += ['', 'Errors and the gain are medians over the seeds; the worst gain and '
              'excursion the worst seed; failures and bad commands totals over the seeds.',
              '', 'Models (from their files\' headers):']
    models = {r['scenario']: r['model'] for r in results}
    lines += [f'- {name}: {models[name]}' for name in sorted(models)]
    errors = [r for r in results if r['error']]
    lines += [f'- RUN FAILED {r["scenario"]} {r["method"]} s{r["seed"]}: {r["error"]}'
              for r in errors]
    return '\n'.join(lines)


def _progress_line(done: int, total: int, elapsed: float, result: dict, reused: bool) -> str:
    text = (f'[{done:3d}/{total}] {elapsed / 60:5.1f} min  {result["scenario"]:20s} '
            f'{result["method"]:12s} s{result["seed"]}: ')
    if result['error']:
        text += f'FAILED {result["error"]}'
    else:
        text += (f'cost {result["initial_cost"]:8.1f} -> {result["final_cost"]:8.1f} (gain '
                 f'{result["cost_gain"]:+.3f}), error {result["position_error_start_m"]:.4f}'
                 f' -> {result["position_error_tuned_m"]:.4f} m, worst '
                 f'{result["worst_excursion"]:.3f}, failures {result["solver_failures"]}')
    return text + (' (stored)' if reused else f', {result["wall_s"]:.0f} s')


# ------------------------------------------------------------------ where the time goes

def _cumulative(stats: pstats.Stats, match) -> float:
    """Return the largest cumulative time [s] among the profiled functions ``match``ed.

    The largest, not the sum: a match may call another (a subclass's method its base's).
    """
    times = [row[3] for key, row in stats.stats.items() if match(*key)]
    return max(times) if times else 0.0


def profile(path: str, iterations: int = 3, steps: int = 2000) -> dict:
    """Profile ``iterations`` hybrid tuning iterations on the scenario ``path`` (cProfile).

    Return the seconds per iteration spent in the plant's steps, the MPC solves, the
    sensitivities, the gradient and the rest, and the microseconds of one plant step of
    the scenario's plant and of the built-in quadcopter's (``steps`` steps at hover).
    """
    scenario = load_scenario(path)
    config = scenario.tuning_config(method='hybrid', iterations=iterations, seed=0)
    tuner = scenario.offline_tuner(config=config)
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.runcall(tuner.run)
    wall = (time.perf_counter() - start) / iterations
    stats = pstats.Stats(profiler)
    total = _cumulative(stats, lambda f, _, name: name == 'run' and f.endswith('tuning.py'))
    parts = {
        'plant_step': _cumulative(stats, lambda f, _, name: name == 'step' and 'model' in f),
        'mpc_solve': _cumulative(stats, lambda f, _, name: name == 'solve' and 'mpc' in f),
        'sensitivities': _cumulative(stats, lambda f, _, name: name == 'sensitivities'
                                     and 'mpc' in f)
        + _cumulative(stats, lambda f, _, name: name == 'disturbance_sensitivity'),
        'gradient': _cumulative(stats, lambda f, _, name: f.endswith('gradients.py')
                                and name.endswith('_gradient')),
    }
    parts = {key: value / iterations for key, value in parts.items()}
    parts['rest'] = total / iterations - sum(parts.values())
    builtin = load_scenario(default_scenario_path())
    per_step = {}
    for label, case in (('scenario', scenario), ('builtin_quadcopter', builtin)):
        plant, x, u = case.plant(), np.array(case.x0, float), np.array(case.u_ref, float)
        if hasattr(plant, 'reset'):
            plant.reset(x)
        tic = time.perf_counter()
        for _ in range(steps):
            x = plant.step(x, u)
        per_step[label] = (time.perf_counter() - tic) / steps * 1e6
    return {'scenario': scenario.name, 'iterations': iterations,
            'episode_steps': scenario.tuning.episode_steps,
            'wall_s_per_iteration': wall,
            'profiled_s_per_iteration': {k: round(v, 4) for k, v in parts.items()},
            'plant_step_us': {k: round(v, 1) for k, v in per_step.items()},
            'plant_step_ratio': per_step['scenario'] / per_step['builtin_quadcopter']}


def _print_profile(report: dict) -> None:
    parts = report['profiled_s_per_iteration']
    total = sum(parts.values())
    print(f'where the time goes: {report["iterations"]} hybrid iterations on '
          f'{report["scenario"]} ({report["episode_steps"]}-step episodes), '
          f'{report["wall_s_per_iteration"]:.2f} s per iteration (wall, under cProfile)')
    print('| part | s per iteration | share |\n|---|---:|---:|')
    for key, value in parts.items():
        print(f'| {key} | {value:.3f} | {value / total:.0%} |')
    steps = report['plant_step_us']
    print(f'\none plant step (one {0.1:g} s period, at hover): {report["scenario"]} '
          f'{steps["scenario"]:.0f} us, the built-in quadcopter {steps["builtin_quadcopter"]:.0f}'
          f' us ({report["plant_step_ratio"]:.1f} x)')


# ------------------------------------------------------------------ the command

def main(out: str | None = None, seeds: int = 3, iterations: int = 100,
         workers: int | None = None, quick: bool = False,
         scenarios: list[str] | None = None, stored_only: bool = False,
         profile_only: bool = False, engine: Engine = Engine()) -> int:
    """Run the bench (see the module docstring); print the table and the JSON last line.

    ``engine``: where the runs go (:mod:`~hybrid_mpc_ros.tools.pool`; default a local
    process pool).
    """
    if quick:
        scenarios = scenarios or list(QUICK_SCENARIOS)
        seeds, iterations = 1, 3
        settings = Settings(iterations, QUICK_STEPS, 0)
        out = out or os.path.join('results', 'bench_vehicles_quick')
    else:
        settings = Settings(iterations, None, 0)
        out = out or os.path.join('results', 'bench_vehicles')
    family = robustness.family_paths(scenarios, FAMILY)
    for path in family:
        load_scenario(path)                       # every file checked before any job
    if profile_only:
        report = profile(family[0])
        _print_profile(report)
        print(json.dumps(report))
        return 0
    if not stored_only:
        load_scenario(family[0]).policy()         # compile the shared solver once
    jobs = jobs_for(family, seeds)
    workers = workers or min(len(jobs), os.cpu_count() or 1)
    print(f'bench vehicles: {len(family)} vehicles, {len(jobs)} runs ({seeds} seeds for '
          f'hybrid and zeroth_order; model_based once: it draws no random direction), '
          f'{iterations} iterations, {engine.describe(workers)}; results in {out}',
          file=sys.stderr, flush=True)
    start = time.perf_counter()
    results, pending = [], []
    for job in jobs:
        stored = robustness._stored(job, settings, out)
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
        pending_text = f'stored only: {len(pending)} not run'
    else:
        for result in robustness.run_pool(pending, settings, out, workers, run_job,
                                          engine=engine):
            results.append(result)
            print(_progress_line(len(results), len(jobs), time.perf_counter() - start,
                                 result, False), file=sys.stderr, flush=True)
        pending_text = f'{len(pending)} run now, {len(jobs) - len(pending)} stored'
    wall = time.perf_counter() - start
    summary = summarise(results)
    print(tables(results, summary))
    cpu = sum(result.get('cpu_s', 0.0) for result in results)
    print(f'\n{len(results)} of {len(jobs)} runs ({pending_text}) in {wall / 60:.1f} min of '
          f'wall time on {workers} processes; the runs took {cpu / 60:.1f} min of CPU time')
    print(json.dumps(summary))
    return 0


def add_arguments(parser) -> None:
    """Add the options of ``hybrid-mpc bench vehicles`` to ``parser``."""
    parser.description = (
        "Tune every RotorPy vehicle of config/scenarios/rotorpy from its model (made by "
        "hybrid-mpc identify) with the scenario's own tuner: hybrid and zeroth-order once "
        'per seed, model-based once (deterministic). Prints a table and, as the last line, '
        'a JSON object keyed by vehicle, then method. Runs in a process pool; a rerun '
        'reuses the stored results in --out (resume).')
    parser.add_argument('--out', default=None,
                        help='results directory (default: results/bench_vehicles, '
                             'results/bench_vehicles_quick with --quick)')
    parser.add_argument('--seeds', type=positive_int, default=3,
                        help='seeds of the hybrid and zeroth-order runs (default: '
                             '%(default)s)')
    parser.add_argument('--iterations', type=positive_int, default=100,
                        help='tuning iterations per run (default: %(default)s)')
    pool.add_arguments(parser)
    parser.add_argument('--scenarios', nargs='+', default=None,
                        help='some of the vehicles (file names without .yaml; default: all)')
    parser.add_argument('--quick', action='store_true',
                        help='CI-sized check of the machinery: two vehicles, one seed, '
                             f'3 iterations of {QUICK_STEPS}-step episodes')
    parser.add_argument('--stored-only', action='store_true',
                        help='run nothing: the table and JSON line of the runs stored in '
                             '--out so far (e.g. while a bench is still running)')
    parser.add_argument('--profile', action='store_true',
                        help='run nothing but a cProfile of 3 hybrid iterations on the first '
                             'vehicle and the cost of a plant step against the built-in '
                             "quadcopter's")


def run(args) -> int:
    """Run ``hybrid-mpc bench vehicles`` with the parsed ``args``; the exit status."""
    return main(out=args.out, seeds=args.seeds, iterations=args.iterations,
                workers=args.workers, quick=args.quick, scenarios=args.scenarios,
                stored_only=args.stored_only, profile_only=args.profile,
                engine=pool.engine_from(args))
