"""``hybrid-mpc bench peers``: the hybrid against CMA-ES and Bayesian optimisation.

On each scenario (default: the robustness family ``config/scenarios/robustness``; or the
files given with ``--scenario``) and each seed, three methods tune theta from the
scenario's start theta0 inside its Theta box, on the same budget of episodes (``--budget``,
default 100):

* ``hybrid``: the scenario's own tuner (method hybrid, its step rule, guard and mixing
  rule, as ``hybrid-mpc tune`` and ``reproduce`` run it), its iterations run until the
  budget is spent (an iteration flies one or two episodes);
* ``cma_es`` (pycma) and ``bayes_opt`` (bayesian-optimization), configured as their
  documentation recommends (:mod:`~hybrid_mpc_ros.core.learning.peers` says how); with
  ``--diagonal`` they tune only Q's and R's diagonals (P fixed at its start) and are
  called ``cma_es_diagonal`` and ``bayes_opt_diagonal``; the hybrid tunes all of theta.

Every episode's cost is recorded. The start cost is that of an extra episode at theta0
(the simulation is deterministic, so it equals the hybrid's first episode), the final cost
that of an extra episode at the method's final theta (the hybrid's last iterate, CMA-ES's
mean, BO's best point); neither counts in the budget. Per method, over scenarios and
seeds:

* ``episodes_to_90pct_median``: per scenario and seed, the first episode whose cost is
  within 10 % of the best improvement any method found there (``start - 0.9 (start -
  best)``), then the median; a run that never gets there counts as slower than every run
  that does (null if the median is such a run);
* ``final_cost_median`` and ``best_cost_median`` (the lowest episode cost), and both
  divided by the start cost (``final_over_start_median``, ``best_over_start_median``);
* ``worst_excursion``: the largest episode cost over the start cost, every episode of every
  run; ``unsafe_episodes``: episodes above 1.2 x the start (on a vehicle, unsafe flights).

It prints a table to stdout, writes a plot of cost against episodes (``peers.png`` in
``--out``: the best cost so far and each episode's cost, both over the start cost, median
over scenarios and seeds) and ends with a JSON object keyed by method as the last line.

Jobs (one per scenario, method and seed) run in a process pool (``--workers``, default one
per core) or on a Dask cluster (``--engine dask``, :mod:`~hybrid_mpc_ros.tools.pool`); the
acados solver is built once before the pool starts, and the workers load it
from the cache. Results are stored and resumed as ``hybrid-mpc paper robustness`` does it
(one signed JSON file per job under ``--out``, ``<scenario>/<method>_s<seed>.json``), so
the hybrid's files serve both a plain and a ``--diagonal`` bench in the same ``--out``.
``--quick`` (CI) runs two scenarios, one seed, a budget of 6 episodes of 20 steps: it
checks the machinery, not the numbers. Progress goes to stderr.
"""

from __future__ import annotations

from dataclasses import dataclass
import json
import math
import os
import statistics
import sys
import time

import numpy as np

from hybrid_mpc_ros.core.config import ConfigError, file_signature
from hybrid_mpc_ros.core.learning import peers
from hybrid_mpc_ros.core.learning.tuning import simulated_episodes, Tuner
from hybrid_mpc_ros.core.mpc import theta as th
from hybrid_mpc_ros.core.scenario import load_scenario
from hybrid_mpc_ros.core.scenario.files import resolve_scenario_path
from hybrid_mpc_ros.paper import robustness
from hybrid_mpc_ros.paper.robustness import fmt_or_dash, Job
from hybrid_mpc_ros.tools.cli import positive_int
from hybrid_mpc_ros.tools import pool
from hybrid_mpc_ros.tools.pool import Engine

PEERS = {'cma_es': peers.cma_es_on_budget, 'bayes_opt': peers.bayes_opt_on_budget}
DIAGONAL = '_diagonal'                  # the suffix of a peer run on Q's and R's diagonals
UNSAFE = 1.2                            # an episode above UNSAFE x the start cost is unsafe
FRACTION = 0.9                          # of the best improvement found
QUICK_BUDGET, QUICK_STEPS = 6, 20
PROGRESS_EVERY = 25                     # episodes between a run's own progress lines


@dataclass(frozen=True)
class Settings:
    """What every job of a bench shares (its results depend on these)."""

    budget: int                         # episodes per run
    episode_steps: int | None           # None: each scenario's own


def methods(diagonal: bool = False) -> tuple[str, ...]:
    """Return the bench's methods: the hybrid, then the peers (on the diagonals if ``diagonal``)."""
    return ('hybrid',) + tuple(name + (DIAGONAL if diagonal else '') for name in PEERS)


def jobs_for(paths: list[str], seeds: int, diagonal: bool = False,
             only: list[str] | None = None) -> list[Job]:
    """Every job: scenario by scenario, seed by seed, the methods in :func:`methods` order.

    ``only`` keeps some of the methods (ConfigError names the bench's methods when one is
    not among them).
    """
    chosen = methods(diagonal)
    unknown = sorted(set(only or ()) - set(chosen))
    if unknown:
        raise ConfigError(f'unknown method(s) {unknown}; this bench runs '
                          + ', '.join(chosen))
    chosen = [method for method in chosen if not only or method in only]
    names = [os.path.splitext(os.path.basename(path))[0] for path in paths]
    return [Job(path, name, method, seed) for path, name in zip(paths, names)
            for seed in range(seeds) for method in chosen]


def _signature(job: Job, settings: Settings) -> str:
    peer = (None if job.method == 'hybrid'
            else [peers.SIGMA0, peers.FLOOR, peers.BO_INIT_POINTS])
    return file_signature(job.path, ['peers', job.method, job.seed, settings.budget,
                                     settings.episode_steps, peer])


def run_job(job: Job, settings: Settings) -> dict:
    """Run one job in this process and return its result (see the module docstring)."""
    start_time, cpu_start = time.perf_counter(), time.process_time()
    scenario = load_scenario(job.path)
    policy, plant, cost = scenario.policy(), scenario.plant(), scenario.cost()
    steps = settings.episode_steps or scenario.tuning.episode_steps
    episodes = simulated_episodes(plant.step, policy, scenario.x0, steps)
    theta0 = policy.theta.copy()
    # iterations: an upper bound only, the budget ends the run (every iteration flies >= 1)
    config = scenario.tuning_config(method='hybrid', iterations=settings.budget,
                                    episode_steps=steps, seed=job.seed)
    box = th.default_box(theta0, config.box_scale, config.box_abs_min)
    start = float(cost(episodes(theta0, False)))

    def progress(counter: peers.EpisodeCounter) -> None:
        done = len(counter.costs)
        if done % PROGRESS_EVERY == 0 and counter.remaining:
            print(f'    {job.key}: {done}/{counter.budget} episodes, best '
                  f'{min(counter.costs):.1f} (start {start:.1f}), '
                  f'{time.perf_counter() - start_time:.0f} s', file=sys.stderr, flush=True)
    counter = peers.EpisodeCounter(episodes, cost, settings.budget, progress)
    detail = {}
    if job.method == 'hybrid':
        tuner = Tuner(config, None, scenario.nominal_model().jacobians, cost, theta0,
                      **scenario.rules.build(config, theta0))
        final_theta = peers.hybrid_on_budget(tuner, counter)
        detail = {'iterations': len(tuner.state.history),
                  'guard_rollbacks': tuner.state.guard_rollbacks}
    else:
        name = job.method.removesuffix(DIAGONAL)
        free = peers.free_entries(diagonal=job.method.endswith(DIAGONAL))
        final_theta = PEERS[name](counter, theta0, box, job.seed, free)
    final = float(cost(episodes(final_theta, False)))
    return {'scenario': job.name, 'method': job.method, 'seed': job.seed,
            'start_cost': start, 'final_cost': final, 'best_cost': min(counter.costs),
            'max_cost': max(counter.costs), 'episodes': len(counter.costs),
            'outside_box': sum(not box.contains(theta) for theta in counter.thetas),
            'costs': counter.costs, 'wall_s': time.perf_counter() - start_time,
            'cpu_s': time.process_time() - cpu_start, **detail}


def _worker(job: Job, settings: Settings, out: str) -> dict:
    """Run ``job`` and store its result under ``out``; return it."""
    result = run_job(job, settings)
    result['signature'] = _signature(job, settings)
    robustness.store_result(out, job.key, result)
    return result


# ------------------------------------------------------------------ the summary

def _median(values: list[float]) -> float | None:
    """Median, with inf for runs that never got there; None for none or an inf median."""
    if not values:
        return None
    value = statistics.median(sorted(values))
    return None if math.isinf(value) or math.isnan(value) else value


def episodes_to_90pct(results: list[dict]) -> dict[tuple[str, str, int], int | None]:
    """Per run ``(scenario, method, seed)``: episodes to 90 % of the best improvement found.

    The best is over the methods in ``results`` on the same scenario and seed.
    """
    best = {}
    for r in results:
        key = (r['scenario'], r['seed'])
        best[key] = min(best.get(key, math.inf), r['best_cost'])
    return {(r['scenario'], r['method'], r['seed']): peers.episodes_to_fraction(
        r['costs'], r['start_cost'], best[(r['scenario'], r['seed'])], FRACTION)
        for r in results}


def summarise(results: list[dict]) -> dict:
    """Return the JSON object: per method (in the order met), its figures over its runs."""
    to_90 = episodes_to_90pct(results)
    summary = {}
    for method in dict.fromkeys(r['method'] for r in results):
        runs = [r for r in results if r['method'] == method]
        reached = [to_90[(r['scenario'], method, r['seed'])] for r in runs]
        summary[method] = {
            'runs': len(runs),
            'episodes': sum(r['episodes'] for r in runs),
            'episodes_to_90pct_median': _median(
                [math.inf if n is None else n for n in reached]),
            'reached_90pct': sum(n is not None for n in reached),
            'final_cost_median': _median([r['final_cost'] for r in runs]),
            'best_cost_median': _median([r['best_cost'] for r in runs]),
            'final_over_start_median': _median([r['final_cost'] / r['start_cost']
                                                for r in runs]),
            'best_over_start_median': _median([r['best_cost'] / r['start_cost']
                                               for r in runs]),
            'worst_excursion': max(r['max_cost'] / r['start_cost'] for r in runs),
            'unsafe_episodes': sum(sum(c > UNSAFE * r['start_cost'] for c in r['costs'])
                                   for r in runs),
            'outside_box': sum(r['outside_box'] for r in runs),
        }
    return summary


def tables(results: list[dict], summary: dict) -> str:
    """Markdown tables: per method (the judged figures), per scenario (medians over seeds)."""
    lines = ['| method | runs | episodes to 90 % (median) | reached 90 % | final / start '
             '(median) | best / start (median) | worst episode / start | episodes > '
             f'{UNSAFE} x start |', '|---|---:|---:|---:|---:|---:|---:|---:|']
    for method, row in summary.items():
        lines.append(f'| {method} | {row["runs"]} | '
                     f'{fmt_or_dash(row["episodes_to_90pct_median"], "g")} | '
                     f'{row["reached_90pct"]} of {row["runs"]} | '
                     f'{fmt_or_dash(row["final_over_start_median"], ".4f")} | '
                     f'{fmt_or_dash(row["best_over_start_median"], ".4f")} | '
                     f'{row["worst_excursion"]:.3f} | {row["unsafe_episodes"]} |')
    to_90 = episodes_to_90pct(results)
    lines += ['', '| scenario (start cost) | ' + ' | '.join(
        f'{method}: best, final, episodes to 90 %' for method in summary) + ' |',
        '|---|' + '---:|' * len(summary)]
    for name in dict.fromkeys(r['scenario'] for r in results):
        runs = [r for r in results if r['scenario'] == name]
        cells = []
        for method in summary:
            mine = [r for r in runs if r['method'] == method]
            reached = [to_90[(name, method, r['seed'])] for r in mine]
            cells.append(
                f'{fmt_or_dash(_median([r["best_cost"] for r in mine]), ".2f")}, '
                f'{fmt_or_dash(_median([r["final_cost"] for r in mine]), ".2f")}, '
                + fmt_or_dash(_median([math.inf if n is None else n for n in reached]), 'g'))
        lines.append(f'| {name} ({runs[0]["start_cost"]:.2f}) | ' + ' | '.join(cells) + ' |')
    lines += ['', 'Per scenario: medians over the seeds; "-" for episodes to 90 %: not '
              'reached (in the median run).']
    return '\n'.join(lines)


def plot(results: list[dict], path: str) -> None:
    """Write the cost-against-episodes figure (PNG) to ``path``."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FormatStrFormatter
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4), sharex=True)
    for method in dict.fromkeys(r['method'] for r in results):
        runs = [r for r in results if r['method'] == method]
        length = min(len(r['costs']) for r in runs)
        ratios = np.array([np.asarray(r['costs'][:length]) / r['start_cost'] for r in runs])
        episodes = np.arange(1, length + 1)
        best = np.minimum.accumulate(ratios, axis=1)
        line, = left.plot(episodes, np.median(best, axis=0), label=method)
        left.fill_between(episodes, *np.percentile(best, [25, 75], axis=0),
                          color=line.get_color(), alpha=0.2)
        right.plot(episodes, np.median(ratios, axis=0), color=line.get_color(), label=method)
        right.plot(episodes, np.max(ratios, axis=0), color=line.get_color(), linestyle=':')
    right.axhline(UNSAFE, color='k', linewidth=0.8, linestyle='--')
    runs = len(results) // len(set(r['method'] for r in results))
    left.set(xlabel='episodes', ylabel='best cost so far / start cost',
             title=f'best so far: median, 25-75 % over {runs} runs per method')
    right.set(xlabel='episodes', ylabel='episode cost / start cost (log scale)', yscale='log',
              title=f'each episode: median (solid), max (dotted), {UNSAFE} x start (dashed)')
    for axis in (right.yaxis.set_major_formatter, right.yaxis.set_minor_formatter):
        axis(FormatStrFormatter('%.3g'))
    left.title.set_fontsize(10)
    right.title.set_fontsize(10)
    left.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _progress_line(done: int, total: int, elapsed: float, result: dict, reused: bool) -> str:
    start = result['start_cost']
    text = (f'[{done:3d}/{total}] {elapsed / 60:5.1f} min  {result["scenario"]:22s} '
            f'{result["method"]:18s} s{result["seed"]}: {start:8.1f} -> best '
            f'{result["best_cost"]:8.1f}, final {result["final_cost"]:8.1f} in '
            f'{result["episodes"]} episodes, worst {result["max_cost"] / start:.3f}')
    return text + (' (stored)' if reused else f', {result["wall_s"]:.0f} s')


def scenario_paths(files: list[str] | None, names: list[str] | None) -> list[str]:
    """Return the bench's scenario files: ``files`` (paths or names) and/or family ``names``.

    Neither: the whole robustness family.
    """
    if not files and not names:
        return robustness.family_paths()
    return ((robustness.family_paths(names) if names else [])
            + [resolve_scenario_path(file) for file in files or []])


def main(out: str | None = None, seeds: int = 3, budget: int = 100,
         workers: int | None = None, quick: bool = False, files: list[str] | None = None,
         names: list[str] | None = None, diagonal: bool = False,
         only: list[str] | None = None, engine: Engine = Engine()) -> int:
    """Run the bench (see the module docstring); print the tables and the JSON last line.

    ``engine``: where the runs go (:mod:`~hybrid_mpc_ros.tools.pool`; default a local
    process pool).
    """
    if quick:
        names = names or (None if files else list(robustness.QUICK_SCENARIOS))
        seeds, settings = 1, Settings(min(budget, QUICK_BUDGET), QUICK_STEPS)
        out = out or os.path.join('results', 'bench_peers_quick')
    else:
        settings = Settings(budget, None)
        out = out or os.path.join('results', 'bench_peers')
    paths = scenario_paths(files, names)
    for path in paths:
        load_scenario(path)                       # every file checked before any job
    jobs = jobs_for(paths, seeds, diagonal, only)
    workers = workers or min(len(jobs), os.cpu_count() or 1)
    chosen = ', '.join(dict.fromkeys(job.method for job in jobs))
    print(f'bench peers: {len(paths)} scenarios x {seeds} seeds x {chosen}'
          f' ({len(jobs)} runs), {settings.budget} episodes each, '
          f'{engine.describe(workers)}; '
          f'results in {out}', file=sys.stderr, flush=True)
    start = time.perf_counter()
    results, pending = [], []
    for job in jobs:
        stored = robustness.stored_result(out, job.key, _signature(job, settings))
        if stored is None:
            pending.append(job)
        else:
            results.append(stored)
            print(_progress_line(len(results), len(jobs), 0.0, stored, True),
                  file=sys.stderr, flush=True)
    if pending:
        load_scenario(paths[0]).policy()          # build the shared solver once
        for result in robustness.run_pool(pending, settings, out, workers, engine=engine,
                                          worker=_worker):
            results.append(result)
            print(_progress_line(len(results), len(jobs), time.perf_counter() - start,
                                 result, False), file=sys.stderr, flush=True)
    order = {job.key: i for i, job in enumerate(jobs)}
    results.sort(key=lambda r: order[f'{r["scenario"]}/{r["method"]}_s{r["seed"]}'])
    summary = summarise(results)
    figure = os.path.join(out, 'peers_diagonal.png' if diagonal else 'peers.png')
    plot(results, figure)
    print(tables(results, summary))
    cpu = sum(r['cpu_s'] for r in results)
    print(f'\n{len(jobs)} runs ({len(pending)} run now) in '
          f'{(time.perf_counter() - start) / 60:.1f} min of wall time on {workers} processes; '
          f'the runs took {cpu / 60:.1f} min of CPU time; figure {figure}')
    print(json.dumps(summary))
    return 0


def add_arguments(parser) -> None:
    """Add the options of ``hybrid-mpc bench peers`` to ``parser``."""
    parser.description = (
        "The scenario's hybrid tuner against CMA-ES (pycma) and Bayesian optimisation "
        '(bayes_opt) from the same theta0, in the same Theta box, on the same budget of '
        'episodes, on the robustness family (default) or given scenarios. Prints a table '
        'and, as the last line, a JSON object keyed by method; writes a plot of cost '
        'against episodes. Runs in a process pool; a rerun reuses the stored results in '
        '--out (resume).')
    parser.add_argument('--out', default=None,
                        help='results directory (default: results/bench_peers, '
                             'results/bench_peers_quick with --quick)')
    parser.add_argument('--seeds', type=positive_int, default=3,
                        help='seeds per scenario and method (default: %(default)s)')
    parser.add_argument('--budget', type=positive_int, default=100,
                        help='episodes per run (default: %(default)s)')
    pool.add_arguments(parser)
    parser.add_argument('--scenario', dest='files', action='append', default=None,
                        help='a scenario file or the name of one in config/scenarios '
                             '(repeatable; default: the robustness family)')
    parser.add_argument('--scenarios', nargs='+', default=None,
                        help='some of the robustness family (file names without .yaml)')
    parser.add_argument('--diagonal', action='store_true',
                        help="the peers tune only Q's and R's diagonals (P fixed at its "
                             'start); the hybrid tunes all of theta')
    parser.add_argument('--methods', nargs='+', default=None,
                        help='run only some of the methods (hybrid, cma_es, bayes_opt; with '
                             '--diagonal cma_es_diagonal, bayes_opt_diagonal); default: all')
    parser.add_argument('--quick', action='store_true',
                        help=f'CI-sized check of the machinery: two scenarios, one seed, '
                             f'{QUICK_BUDGET} episodes of {QUICK_STEPS} steps')


def run(args) -> int:
    """Run ``hybrid-mpc bench peers`` with the parsed ``args``; the exit status."""
    return main(out=args.out, seeds=args.seeds, budget=args.budget, workers=args.workers,
                quick=args.quick, files=args.files, names=args.scenarios,
                diagonal=args.diagonal, only=args.methods, engine=pool.engine_from(args))
