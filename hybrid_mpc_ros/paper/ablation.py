"""``hybrid-mpc paper ablation delta|seeds``: the published paper's Appendix C.

The scenario's ``ablation`` section says what is varied (see
:class:`~hybrid_mpc_ros.core.scenario.AblationSettings`): one run (a hybrid) for each
smoothing radius delta (Table 1, with the scenario's seed) or each seed (Table 2, with its
delta), ``iterations`` long with the step size's constant replaced by ``alpha_scale``.
Each entry is the best base-episode cost in the last ``best_of_last`` iterations, beside
the paper's. The spread is (max - min) / mean of a column, in %.

Runs are named ``delta<delta>_seed<seed>`` so the one run both tables share (the
scenario's delta with its seed) is flown once. All runs of both tables go to one process
pool (both cores), print their progress, and resume from their checkpoints in ``--out``.
Writes ``ablation_<kind>.md`` and ``ablation_<kind>.json`` there and prints the JSON last.
"""

from __future__ import annotations

import json
import os
import sys
import time

from hybrid_mpc_ros.core.config import ConfigError
from hybrid_mpc_ros.core.scenario import load_scenario, resolve_scenario_path, Scenario
from hybrid_mpc_ros.tools import pool
from hybrid_mpc_ros.tools.reproduce import add_experiment_arguments, Job, run_jobs, run_one

KINDS = ('delta', 'seeds')


def run_tag(delta: float, seed: int) -> str:
    """File name stem of the ablation run with this delta and seed."""
    return f'delta{delta:g}_seed{seed}'


def points(scenario: Scenario, kind: str) -> list[tuple[float, int]]:
    """Return the (delta, seed) pairs of one ablation table, in the table's order."""
    settings = scenario.ablation
    if kind == 'delta':
        return [(delta, scenario.tuning.seed) for delta in settings.deltas]
    return [(scenario.tuning.delta, seed) for seed in settings.seeds]


def best_of_last(costs: list[float], last: int) -> float:
    """Lowest base-episode cost among the last ``last`` iterations.

    ``costs`` is a run's learning curve (one entry per iteration, then the final theta's
    episode, which is left out: the paper's entries are iterations).
    """
    return min(costs[:-1][-last:])


def spread_pct(values: list[float]) -> float:
    """(max - min) / mean of ``values``, in %."""
    return 100.0 * (max(values) - min(values)) / (sum(values) / len(values))


def _percent(value: float) -> str:
    """Format a spread in %: two decimals, or two significant digits below 0.1 % (not 0.00)."""
    return f'{value:.2f}' if value >= 0.1 else f'{value:.2g}'


def table(kind: str, rows: list[dict], scenario: Scenario, iterations: int) -> str:
    """Markdown of one ablation: value, ours, the paper's, and both spreads."""
    settings = scenario.ablation
    head = 'delta' if kind == 'delta' else 'seed'
    lines = [f'| {head} | ours: best cost in the last {settings.best_of_last} iterations | '
             f'paper | ours - paper |', '|---:|---:|---:|---:|']
    for row in rows:
        paper, ours = row['paper'], row['best_of_last']
        paper_text = '-' if paper is None else f'{paper:.1f}'
        difference = '-' if paper is None else f'{ours - paper:+.1f}'
        lines.append(f'| {row["value"]:g} | {ours:.2f} | {paper_text} | {difference} |')
    ours = [row['best_of_last'] for row in rows]
    line = f'\nSpread (max - min) / mean: ours {_percent(spread_pct(ours))} %'
    papers = [row['paper'] for row in rows if row['paper'] is not None]
    if len(papers) == len(rows):
        line += f', paper {_percent(spread_pct(papers))} %'
    line += (f'. Run {settings.run}, {iterations} iterations, step-size constant '
             f'{settings.alpha_scale:g}, ' + (f'seed {scenario.tuning.seed}.' if kind == 'delta'
                                              else f'delta {scenario.tuning.delta:g}.'))
    return '\n'.join(lines) + line


def _summary(kind: str, setup: Scenario, done: dict, out: str, iterations: int) -> dict:
    settings, paper = setup.ablation, setup.paper
    paper_costs = None
    if paper is not None:
        paper_costs = (paper.ablation_delta_costs if kind == 'delta'
                       else paper.ablation_seed_costs)
    rows = []
    for index, (delta, seed) in enumerate(points(setup, kind)):
        result = done[(out, run_tag(delta, seed))]
        rows.append({'value': delta if kind == 'delta' else seed, 'delta': delta,
                     'seed': seed, 'run': run_tag(delta, seed),
                     'best_of_last': best_of_last(result['costs'], settings.best_of_last),
                     'final_cost': result['final_cost'], 'wall_s': result['wall_s'],
                     'paper': paper_costs[index] if paper_costs else None})
    return {'ablation': kind, 'scenario': setup.path, 'run': settings.run,
            'iterations': iterations, 'alpha_scale': settings.alpha_scale,
            'best_of_last': settings.best_of_last, 'rows': rows,
            'spread_pct': spread_pct([row['best_of_last'] for row in rows]),
            'paper_spread_pct': spread_pct(list(paper_costs)) if paper_costs else None}


def main(kinds: list[str], scenario: str | None = None, out: str = 'results/ablation',
         iterations: int | None = None, workers: int | None = None,
         steps: int | None = None, engine=None) -> int:
    """Run the ablations ``kinds`` ('delta', 'seeds' or both, in one pool); tables, JSON last.

    ``iterations`` and ``steps`` (episode length) override the scenario's ablation and
    episode settings, for short checks; with fewer iterations than ``best_of_last`` an
    entry is the best over all of them. The last line is one JSON object with a summary
    per ablation. ``engine`` as in :func:`~hybrid_mpc_ros.tools.reproduce.run_jobs`.
    """
    unknown = [kind for kind in kinds if kind not in KINDS]
    if unknown or not kinds:
        raise ValueError(f'ablations must be among {KINDS}, got {kinds!r}')
    path = resolve_scenario_path(scenario)
    setup = load_scenario(path)
    if setup.ablation is None:
        raise ConfigError(f'scenario {path} has no ablation section (the published '
                          'scenario l4dc2026 has one)')
    settings = setup.ablation
    iterations = iterations or settings.iterations
    os.makedirs(out, exist_ok=True)
    setup.policy()  # generate/compile the solver once before the workers start
    pairs = list(dict.fromkeys(pair for kind in kinds for pair in points(setup, kind)))
    jobs = [Job((out, run_tag(delta, seed)), run_one, (path, settings.run, out),
                {'iterations': iterations, 'steps': steps, 'seed': seed, 'delta': delta,
                 'alpha_scale': settings.alpha_scale, 'tag': run_tag(delta, seed)})
            for delta, seed in pairs]
    print(f'ablation {" and ".join(kinds)} of scenario {path}: {len(jobs)} runs of '
          f'{settings.run} x {iterations} iterations, step-size constant '
          f'{settings.alpha_scale:g}; output in {out} (resumes from its checkpoints)',
          file=sys.stderr, flush=True)
    start = time.perf_counter()
    done = run_jobs(jobs, workers, engine)
    summaries = {}
    for kind in kinds:
        summary = _summary(kind, setup, done, out, iterations)
        text = table(kind, summary['rows'], setup, iterations)
        with open(os.path.join(out, f'ablation_{kind}.md'), 'w') as stream:
            stream.write(text + '\n')
        with open(os.path.join(out, f'ablation_{kind}.json'), 'w') as stream:
            json.dump(summary, stream, indent=1)
            stream.write('\n')
        print(text + '\n')
        summaries[kind] = summary
    print(json.dumps({'ablations': summaries, 'wall_s': time.perf_counter() - start}))
    return 0


def add_arguments(parser) -> None:
    """Add the options of ``hybrid-mpc paper ablation`` to ``parser``."""
    parser.description = (
        "The paper's Appendix C: one run (a hybrid) per smoothing radius delta (its Table "
        "1) and/or per seed (Table 2), as the scenario's ablation section says; a table of "
        "each beside the paper's and a JSON summary (last line). Both in one process pool "
        'when both are given; reruns resume from the checkpoints in --out.')
    parser.add_argument('kinds', nargs='+', choices=KINDS, metavar='KIND',
                        help='delta and/or seeds')
    add_experiment_arguments(parser, 'results/ablation', "the scenario's "
                             'ablation.iterations', optimum=False)


def run(args) -> int:
    """Run ``hybrid-mpc paper ablation`` with the parsed ``args``; the exit status."""
    return main(args.kinds, scenario=args.scenario, out=args.out, iterations=args.iterations,
                workers=args.workers, steps=args.steps, engine=pool.engine_from(args))
