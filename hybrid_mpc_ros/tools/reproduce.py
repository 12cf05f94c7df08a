"""``hybrid-mpc reproduce``: a scenario's tuning experiment, all its runs, with figures.

The scenario file (``--scenario``, default :func:`default_scenario_path`: the published
paper's) defines everything: plant, nominal model, MPC, closed-loop cost, tuning settings
and the runs (its ``reproduction`` section: zeroth-order (eta = 0), model-based (eta = 1),
hybrid per gamma, and the run tuned with the exact model, i.e. the exact closed-loop
gradient from the plant's own Jacobians with the same steps). Every run starts from the
paper's initialisation (Q = Qc, R = Rc, P from the DARE of the nominal model).
Independent runs go to separate processes so both cores work; every run resumes from its
checkpoint.

The optimum reference (L-BFGS-B on the exact gradient inside Theta until it stalls,
:mod:`~hybrid_mpc_ros.tools.optimum_hook`) is one more job of the same pool, on the runs'
episode length; the gap "hybrid vs exact" is reported against it and against the
same-steps exact-model run, labelled.

Writes into ``--out``: per run ``<run>.csv``, ``<run>.checkpoint.json`` and
``<run>.final.npz`` (final theta and its closed loop); ``optimum.json`` and
``optimum.final.npz`` (the reference); ``learning_curves.png`` (the
paper's Figure 2) and ``trajectories.png`` (its Figure 3, see
:mod:`~hybrid_mpc_ros.tools.reproduce_figures`); ``results.md`` (a table and the paper's
claims judged by :mod:`~hybrid_mpc_ros.tools.claims`) and ``summary.json``; and prints
the JSON summary as the last line.

The paper's study (``hybrid-mpc paper study``, :mod:`~hybrid_mpc_ros.paper.study`) and
ablations (``hybrid-mpc paper ablation``, :mod:`~hybrid_mpc_ros.paper.ablation`) run
families of these experiments through :func:`run_jobs`.

Why about 420 lines: one experiment's pool of runs, their resume, the optimum reference,
the figures and the JSON summary belong to the one command; the claims and figures
themselves are tools/claims.py and tools/reproduce_figures.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
import json
import os
import sys
import time
from typing import Callable

import numpy as np

from hybrid_mpc_ros.core.learning.episode import rollout
from hybrid_mpc_ros.core.learning.reporting import (iteration_line, refuse_rules,
                                                    resume_line, resume_state,
                                                    ResumeRefused, write_history_csv)
from hybrid_mpc_ros.core.learning.tuning import simulated_episodes, Tuner
from hybrid_mpc_ros.core.learning.run import TuningConfig
from hybrid_mpc_ros.core.scenario import load_scenario, resolve_scenario_path, Scenario
from hybrid_mpc_ros.tools import claims, reproduce_figures as figures
from hybrid_mpc_ros.tools.cli import add_scenario_argument, positive_int
from hybrid_mpc_ros.tools.optimum_hook import run_optimum
from hybrid_mpc_ros.tools import pool
from hybrid_mpc_ros.tools.pool import Engine, run_tasks, Task

iters_to_fraction = claims.iters_to_fraction


def run_config(scenario: Scenario, name: str, iterations: int | None = None,
               steps: int | None = None, seed: int | None = None, delta: float | None = None,
               alpha_scale: float | None = None) -> TuningConfig:
    """Return the :class:`TuningConfig` of run ``name``, some values overridden (None: keep).

    ``alpha_scale`` replaces the step size's constant (the paper's Appendix C uses 1e-4
    where its main experiment has 2e-4).
    """
    alpha = (replace(scenario.tuning.alpha, scale=alpha_scale) if alpha_scale is not None
             else None)
    return scenario.run_config(name, iterations=iterations, episode_steps=steps, seed=seed,
                               delta=delta, alpha=alpha)


def resumable_tuner(config: TuningConfig, episodes, jacobians, cost, theta0: np.ndarray,
                    checkpoint: str, progress, rules: dict) -> Tuner:
    """Return a :class:`Tuner` that continues ``checkpoint`` when it holds this very run.

    ``rules`` are the tuner's ``step_rule``, ``eta_rule`` and ``guard`` (the scenario's,
    :meth:`Scenario.tuner_rules`). The package's one resume policy
    (:func:`~hybrid_mpc_ros.core.learning.reporting.resume_state`): a checkpoint of
    another configuration or other rules is another experiment, refused with
    :class:`~hybrid_mpc_ros.core.learning.reporting.ResumeRefused` rather than
    overwritten; a finished run is said so on stderr and runs no iteration.
    """
    hint = '; choose another --out, or delete that checkpoint to start afresh'
    try:
        state = resume_state(checkpoint, config)
    except ResumeRefused as exc:
        raise ResumeRefused(f'{exc}{hint}') from None
    try:
        tuner = Tuner(config, episodes, jacobians, cost, theta0, checkpoint, progress, state,
                      **rules)
    except ValueError as exc:
        if state is None:
            raise
        raise ResumeRefused(f'{refuse_rules(checkpoint, exc)}{hint}') from None
    if state is not None:
        print(resume_line(checkpoint, state, config), file=sys.stderr, flush=True)
    return tuner


def run_one(scenario_path: str, name: str, out: str, iterations: int | None = None,
            steps: int | None = None, seed: int | None = None, delta: float | None = None,
            alpha_scale: float | None = None, tag: str | None = None,
            label: str | None = None) -> dict:
    """Run (or resume) the scenario's run ``name`` in this process; returns its summary.

    Overrides as in :func:`run_config`. Files are named after ``tag`` (default ``name``);
    progress lines start with ``label`` (default ``tag``).
    The summary's lists (``costs``, ``tracking``, ``violation``) hold one entry per
    iteration's base episode and, last, the final theta's episode.
    """
    tag = tag or name
    label = label or tag
    scenario = load_scenario(scenario_path)
    model, policy, plant = scenario.nominal_model(), scenario.policy(), scenario.plant()
    cost = scenario.cost()
    config = run_config(scenario, name, iterations, steps, seed, delta, alpha_scale)
    checkpoint = os.path.join(out, f'{tag}.checkpoint.json')
    jacobians = plant.jacobians if config.method == 'exact_model' else model.jacobians
    start = time.perf_counter()

    def progress(row):
        k = row['iteration']
        # a rolled-back iteration is always shown: the guard refused its episode
        if row['rollback'] or k == 1 or k % 10 == 0 or k == config.iterations:
            print(f'[{label:13s}] {iteration_line(row, config.iterations)}  '
                  f'({time.perf_counter() - start:.1f} s in all)', file=sys.stderr,
                  flush=True)

    episodes = simulated_episodes(plant, policy, scenario.x0, config.episode_steps)
    theta0 = policy.theta.copy()
    tuner = resumable_tuner(config, episodes, jacobians, cost, theta0, checkpoint, progress,
                            scenario.tuner_rules(config, theta0))
    final_state = tuner.run()
    final = episodes(final_state.theta, False)
    tracking, violation = cost.parts(final.x, final.u)
    history = final_state.history
    write_history_csv(os.path.join(out, f'{tag}.csv'), history)
    np.savez(os.path.join(out, f'{tag}.final.npz'), theta=final_state.theta, x=final.x,
             u=final.u)
    costs = [row['cost'] for row in history] + [tracking + violation]
    return {'name': tag, 'run': name, 'final_cost': tracking + violation,
            'final_tracking': tracking, 'final_violation': violation,
            'best_cost': min(costs), 'initial_cost': history[0]['cost'], 'costs': costs,
            'tracking': [row['tracking'] for row in history] + [tracking],
            'violation': [row['violation'] for row in history] + [violation],
            'episode_steps': config.episode_steps,
            'wall_s': sum(row['wall_s'] for row in history),
            'solver_failures': sum(row['solver_failures'] for row in history)}


@dataclass
class Job:
    """One unit of work for :func:`run_jobs`: ``function(*args, **kwargs)`` in a worker."""

    key: tuple
    function: Callable
    args: tuple
    kwargs: dict = field(default_factory=dict)


def run_jobs(jobs: list[Job], workers: int | None = None, engine: Engine | None = None) -> dict:
    """Run ``jobs`` on ``workers`` processes (default: the cores); results by ``key``.

    On ``engine`` (default: a local pool of spawned processes, no inherited solver state;
    see :mod:`~hybrid_mpc_ros.tools.pool`); each job prints its own progress to stderr
    and a line when it is done. An exception in a job ends the whole call.
    """
    workers = workers or min(len(jobs), os.cpu_count() or 1)
    results = {}
    tasks = [Task(job.function, job.args, job.kwargs) for job in jobs]
    for index, result in run_tasks(tasks, workers, engine):
        job = jobs[index]
        results[job.key] = result
        label = '/'.join(str(part) for part in job.key)
        if 'final_cost' in result:
            print(f'[{label}] done: final cost {result["final_cost"]:.2f} '
                  f'({result["wall_s"]:.0f} s); {len(results)}/{len(jobs)} jobs',
                  file=sys.stderr, flush=True)
        elif 'cost' in result:
            print(f'[{label}] done: cost {result["cost"]:.2f} ({result["wall_s"]:.0f} s); '
                  f'{len(results)}/{len(jobs)} jobs', file=sys.stderr, flush=True)
        else:
            print(f'[{label}] done; {len(results)}/{len(jobs)} jobs', file=sys.stderr,
                  flush=True)
    return results


def experiment_jobs(scenario_path: str, out: str, names: list[str], optimum: bool = True,
                    prefix: str = '', **overrides) -> list[Job]:
    """Jobs of one experiment: each run ``name`` into ``out``, plus the optimum reference.

    Keys are ``(out, name)`` and ``(out, 'optimum')``; ``overrides`` go to :func:`run_one`
    (``steps`` and ``iterations`` also to the reference: its episode length and its cap);
    ``prefix`` starts the progress labels (the study: the combination). The reference
    goes first: it is one long job, so the pool starts it while the runs share the rest.
    """
    jobs = [Job((out, name), run_one, (scenario_path, name, out), dict(overrides, label=label))
            for name in names
            for label in [f'{prefix}{name}' if prefix else None]]
    if optimum:
        jobs.insert(0, Job((out, 'optimum'), run_optimum, (scenario_path, out), {
            'steps': overrides.get('steps'), 'iterations': overrides.get('iterations'),
            'label': f'{prefix}optimum'}))
    return jobs


def summarise(results: dict, scenario: Scenario, out: str, optimum: dict | None,
              wall_s: float | None = None) -> dict:
    """Return the experiment's JSON summary (docs/results_l4dc2026.md lists every key)."""
    final = {name: res['final_cost'] for name, res in results.items()}
    same_steps = final.get('exact_model')
    hybrids = {name: cost for name, cost in final.items() if name.startswith('hybrid')}
    best_hybrid = min(hybrids, key=hybrids.get) if hybrids else None
    optimum_cost = optimum['cost'] if optimum else None

    def gap(reference):
        if reference is None or best_hybrid is None:
            return None
        return 100.0 * (hybrids[best_hybrid] - reference) / reference

    # L-BFGS-B can stall at a kink of C above what a run reached: then it is no optimum
    # and no claim is judged against it (said in the table and the JSON)
    lowest_run = min(res['best_cost'] for res in results.values())
    optimum_is_lowest = None if optimum_cost is None else optimum_cost <= lowest_run
    curves = {name: res['costs'] for name, res in results.items()}
    judged = (claims.judge(curves, optimum_cost if optimum_is_lowest else None)
              if {'zeroth_order', 'model_based', 'exact_model'} <= set(curves)
              and best_hybrid else None)
    any_run = next(iter(results.values()))
    k90 = {name: claims.iters_to_fraction(res['costs']) for name, res in results.items()}
    # issue 10's target: the best hybrid reaches 90 % of its improvement in at most a third
    # of the iterations the zeroth-order run needs (when that one improves at all)
    ratio = None
    if best_hybrid and k90.get(best_hybrid) and k90.get('zeroth_order'):
        ratio = k90[best_hybrid] / k90['zeroth_order']
    return {
        'scenario': scenario.path, 'out': out,
        'iterations': len(any_run['costs']) - 1, 'episode_steps': any_run['episode_steps'],
        'initial_cost': any_run['initial_cost'],
        'final_cost': final,
        'best_cost': {name: res['best_cost'] for name, res in results.items()},
        'final_violation': {name: res['final_violation'] for name, res in results.items()},
        'best_hybrid': best_hybrid,
        'optimum_cost': optimum_cost,
        'optimum_iterations': optimum['iterations'] if optimum else None,
        'optimum_evaluations': optimum['evaluations'] if optimum else None,
        'optimum_below_every_run': optimum_is_lowest,
        'optimum_status': optimum['reason'] if optimum else 'not run (--no-optimum)',
        'same_steps_reference_cost': same_steps,
        'hybrid_gap_vs_optimum_pct': gap(optimum_cost),
        'hybrid_gap_vs_same_steps_pct': gap(same_steps),
        'iters_to_90pct': k90,
        'hybrid_to_zeroth_order_90pct_ratio': ratio,
        'claims': judged,
        'run_wall_s': {name: res['wall_s'] for name, res in results.items()},
        'solver_failures': {name: res['solver_failures'] for name, res in results.items()},
        'wall_s': wall_s,
        'paper': scenario.paper.as_dict() if scenario.paper else None,
    }


def table(results: dict, summary: dict, scenario: Scenario, optimum: dict | None = None) -> str:
    """Markdown: one row per run and the optimum reference, the gaps and the claims judged.

    ``optimum`` is the reference's summary (:func:`~.optimum_hook.run_optimum`), if run.
    """
    lines = ['| run | initial cost | final cost | best cost | final violation | '
             'iterations to 90 % | run time [s] |', '|---|---:|---:|---:|---:|---:|---:|']
    for name, res in results.items():
        k90 = summary['iters_to_90pct'][name]
        lines.append(f'| {name} | {res["initial_cost"]:.2f} | {res["final_cost"]:.2f} | '
                     f'{res["best_cost"]:.2f} | {res["final_violation"]:.2f} | '
                     f'{k90 if k90 else "-"} | {res["wall_s"]:.0f} |')
    if optimum is not None:
        lines.append(f'| optimum reference (L-BFGS-B, exact gradient) | '
                     f'{optimum["initial_cost"]:.2f} | {optimum["cost"]:.2f} | '
                     f'{optimum["cost"]:.2f} | {optimum["violation"]:.2f} | '
                     f'{optimum["iterations"]} L-BFGS-B iterations, {optimum["evaluations"]} '
                     f'episodes | {optimum["wall_s"]:.0f} |')
    lines.append('')
    best = summary['best_hybrid']
    if best is not None:
        paper = scenario.paper
        paper_gap = (f' (paper: {100 * (paper.hybrid_final_cost / paper.exact_model_cost - 1):+.2f}'
                     f' %, {paper.hybrid_final_cost} vs {paper.exact_model_cost})'
                     if paper is not None else '')
        if summary['hybrid_gap_vs_optimum_pct'] is not None:
            lines.append(f'* Best hybrid ({best}) vs the optimum reference: '
                         f'{summary["hybrid_gap_vs_optimum_pct"]:+.2f} %{paper_gap}; '
                         f'the reference stopped on "{summary["optimum_status"]}".')
            if not summary['optimum_below_every_run']:
                lines.append('* The optimum reference ended above the best cost a run '
                             'reached: it is no optimum here (its line search stalled), '
                             'and the claims are judged against the same-steps run only.')
        else:
            lines.append(f'* Best hybrid ({best}) vs the optimum reference: '
                         f'{summary["optimum_status"]}.')
        if summary['hybrid_gap_vs_same_steps_pct'] is not None:
            lines.append(f'* Best hybrid ({best}) vs the exact-model run with the same steps: '
                         f'{summary["hybrid_gap_vs_same_steps_pct"]:+.2f} %'
                         f'{paper_gap if summary["optimum_cost"] is None else ""}.')
    if summary['claims']:
        lines += ['', '| the paper says | holds here | measured |', '|---|---|---|']
        for claim, verdict in summary['claims'].items():
            holds = {True: 'yes', False: 'no', None: 'n/a'}[verdict['holds']]
            lines.append(f'| {claim.replace("_", " ")} | {holds} | {verdict["why"]} |')
    return '\n'.join(lines)


def initial_trajectory(scenario: Scenario, steps: int | None = None) -> np.ndarray:
    """Return the closed loop (T+1, 12) from the start theta0: Figure 3's context line.

    ``steps`` is T (default the scenario's episode length).
    """
    record = rollout(scenario.plant(), scenario.policy(), scenario.x0,
                     steps or scenario.tuning.episode_steps, False)
    return record.x


def finish(scenario: Scenario, out: str, results: dict, optimum: dict | None,
           wall_s: float | None = None, title: str | None = None) -> tuple[dict, str]:
    """Draw the figures and write ``results.md`` and ``summary.json``; (summary, table)."""
    summary = summarise(results, scenario, out, optimum, wall_s)
    title = title or f'scenario {scenario.name}'
    paths = [figures.learning_curves(results, os.path.join(out, 'learning_curves.png'),
                                     scenario.violation_weight, title,
                                     summary['optimum_cost'])]
    start = initial_trajectory(scenario, summary['episode_steps'])
    lines = figures.figure3_runs(out, results, start, optimum)
    if len(lines) > 1:
        paths.append(figures.trajectories(lines, os.path.join(out, 'trajectories.png'),
                                          scenario.period_s, scenario.x_ref,
                                          f'{title}: closed loop, first '
                                          f'{figures.FIGURE3_SECONDS:g} s'))
    summary['figures'] = paths
    text = table(results, summary, scenario, optimum)
    with open(os.path.join(out, 'results.md'), 'w') as stream:
        stream.write(text + '\n')
    with open(os.path.join(out, 'summary.json'), 'w') as stream:
        json.dump(summary, stream, indent=1)
        stream.write('\n')
    return summary, text


def main(scenario: str | None = None, out: str = 'results/reproduce',
         iterations: int | None = None, steps: int | None = None, seed: int | None = None,
         runs: list[str] | None = None, workers: int | None = None,
         optimum: bool = True, engine: Engine = Engine()) -> int:
    """Run the scenario's experiment; print progress, a table and the JSON summary last.

    ``scenario`` is a file or a shipped scenario's name (default: the default scenario);
    ``iterations``, ``steps`` and ``seed`` override its values; ``runs`` picks some of its
    runs (default: all). ``optimum`` False skips the optimum reference. ``engine``: where
    the runs go (:mod:`~hybrid_mpc_ros.tools.pool`; default a local process pool).
    """
    path = resolve_scenario_path(scenario)
    setup = load_scenario(path)
    names = runs or [run.name for run in setup.runs]
    for name in names:
        setup.run(name)               # ConfigError naming the runs there are
    os.makedirs(out, exist_ok=True)
    setup.policy()  # generate/compile the solver once before the workers start
    config = setup.tuning_config(iterations=iterations, episode_steps=steps, seed=seed)
    jobs = experiment_jobs(path, out, names, optimum, iterations=iterations, steps=steps,
                           seed=seed)
    workers = workers or min(len(jobs), os.cpu_count() or 1)
    print(f'scenario {path}: {len(names)} tuning runs x {config.iterations} iterations '
          f'on {engine.describe(workers)}; output in {out}; optimum reference: '
          f'{"one more job" if optimum else "skipped"}', file=sys.stderr, flush=True)
    start = time.perf_counter()
    done = run_jobs(jobs, workers, engine)
    results = {name: done[(out, name)] for name in names}
    summary, text = finish(setup, out, results, done.get((out, 'optimum')),
                           time.perf_counter() - start)
    print(text)
    for figure in summary['figures']:
        print(f'wrote {figure}')
    print(json.dumps(summary))
    return 0


def add_experiment_arguments(parser, out: str, iterations_default: str = "the scenario's",
                             optimum: bool = True) -> None:
    """Add the options every experiment built on :func:`run_jobs` shares to ``parser``.

    ``--scenario``, ``--out`` (default ``out``), ``--iterations`` (its default described
    by ``iterations_default``), ``--steps``, ``--workers`` and, with ``optimum``,
    ``--no-optimum``, and where the jobs run (``--engine``, ``--scheduler``).
    """
    add_scenario_argument(parser)
    parser.add_argument('--out', default=out, help='output directory (default: %(default)s)')
    parser.add_argument('--iterations', type=positive_int, default=None,
                        help=f'iterations per run (default: {iterations_default})')
    parser.add_argument('--steps', type=positive_int, default=None,
                        help="closed-loop steps per episode, T (default: the scenario's)")
    pool.add_arguments(parser)
    if optimum:
        parser.add_argument('--no-optimum', action='store_true',
                            help='skip the optimum reference (L-BFGS-B on the exact gradient)')


def add_arguments(parser) -> None:
    """Add the options of ``hybrid-mpc reproduce`` to ``parser``."""
    parser.description = (
        "Tune the MPC from the paper's initialisation with every run the scenario lists "
        '(normally zeroth-order, model-based, hybrid per gamma and the exact-model run), in '
        "parallel processes; write CSVs, figures like the paper's Figures 2 and 3, a "
        "markdown table with the paper's claims judged, and a JSON summary (last line). "
        'Reruns resume from the checkpoints in --out.')
    add_experiment_arguments(parser, 'results/reproduce')
    parser.add_argument('--seed', type=int, default=None,
                        help="random seed (default: the scenario's)")
    parser.add_argument('--runs', nargs='+', default=None,
                        help="which of the scenario's runs (default: all)")


def run(args) -> int:
    """Run ``hybrid-mpc reproduce`` with the parsed ``args``; the exit status."""
    return main(scenario=args.scenario, out=args.out, iterations=args.iterations,
                steps=args.steps, seed=args.seed, runs=args.runs, workers=args.workers,
                optimum=not args.no_optimum, engine=pool.engine_from(args))
