"""``hybrid-mpc reproduce``: a scenario's tuning experiment, all its runs, with plots.

The scenario file (``--scenario``, default :func:`default_scenario_path`) defines
everything: plant, nominal model, MPC, closed-loop cost, tuning settings and the runs (its
``reproduction`` section: typically zeroth-order (eta = 0), model-based (eta = 1), hybrid
per gamma, and the reference tuned with the exact model, i.e. exact closed-loop gradients
from the plant's own Jacobians). Every run starts from the paper's initialisation (Q = Qc,
R = Rc, P from the DARE of the nominal model). Independent runs go to separate processes so
both cores work.

Writes into ``--out``: per run ``<run>.csv`` and ``<run>.checkpoint.json``; ``learning_curves.png``
(tracking cost and constraint violation against iteration, like the paper's Figure 1);
``trajectories.png`` (positions and attitudes, hybrid-trained vs exact-model-tuned, like
its Figure 2); ``results.md`` (a table); and prints a JSON summary as the last line.
"""

from __future__ import annotations

import concurrent.futures as futures
import csv
import json
import multiprocessing
import os
import sys
import time

import numpy as np

from hybrid_mpc_ros.core.learning.tuning import (load_checkpoint, simulated_episodes, Tuner,
                                                 TuningConfig)
from hybrid_mpc_ros.core.scenario import load_scenario, resolve_scenario_path, Scenario

CSV_FIELDS = ('iteration', 'cost', 'tracking', 'violation', 'grad_model_norm', 'grad_zo_norm',
              'step_norm', 'alpha', 'eta', 'solver_failures', 'wall_s', 'rollback',
              'rollback_reason', 'slope_measured', 'slope_model')


def _resume_state(checkpoint: str, config: TuningConfig):
    """Return the saved state when ``checkpoint`` holds this very experiment, else None."""
    if not os.path.exists(checkpoint):
        return None
    try:
        saved_config, state = load_checkpoint(checkpoint)
    except (ValueError, KeyError, TypeError) as exc:
        print(f'{checkpoint}: not resumable ({exc}); starting afresh', file=sys.stderr,
              flush=True)
        return None
    # a different experiment (scenario, settings, episode length): start afresh
    return state if saved_config.to_dict() == config.to_dict() else None


def resumable_tuner(config: TuningConfig, episodes, jacobians, cost, theta0: np.ndarray,
                    checkpoint: str, progress, rules: dict) -> Tuner:
    """Return a :class:`Tuner` that continues ``checkpoint`` when it holds this very run.

    ``rules`` are the tuner's ``step_rule``, ``eta_rule`` and ``guard`` (the scenario's,
    :meth:`Scenario.tuner_rules`); a checkpoint of another configuration or other rules
    is another experiment, and the run starts afresh (overwriting it).
    """
    state = _resume_state(checkpoint, config)
    if state is not None:
        try:
            return Tuner(config, episodes, jacobians, cost, theta0, checkpoint, progress,
                         state, **rules)
        except ValueError as exc:
            print(f'{checkpoint}: not resumable ({exc}); starting afresh', file=sys.stderr,
                  flush=True)
    return Tuner(config, episodes, jacobians, cost, theta0, checkpoint, progress, **rules)


def run_one(scenario_path: str, name: str, out: str, iterations: int | None = None,
            steps: int | None = None, seed: int | None = None) -> dict:
    """Run (or resume) the scenario's run ``name`` in this process; returns its summary.

    ``iterations``, ``steps`` (episode length T) and ``seed`` override the scenario's.
    """
    scenario = load_scenario(scenario_path)
    model, policy, plant = scenario.nominal_model(), scenario.policy(), scenario.plant()
    cost = scenario.cost()
    config = scenario.run_config(name, iterations=iterations, episode_steps=steps, seed=seed)
    checkpoint = os.path.join(out, f'{name}.checkpoint.json')
    jacobians = plant.jacobians if config.method == 'exact_model' else model.jacobians
    start = time.perf_counter()

    def progress(row):
        k = row['iteration']
        if row['rollback']:             # always shown: the guard refused this episode
            print(f'[{name:13s}] iteration {k:4d}/{config.iterations}  cost '
                  f'{row["cost"]:10.2f}  ROLLBACK to the best theta, shorter steps: '
                  f'{row["rollback_reason"]}', file=sys.stderr, flush=True)
        elif k == 1 or k % 10 == 0 or k == config.iterations:
            print(f'[{name:13s}] iteration {k:4d}/{config.iterations}  cost '
                  f'{row["cost"]:10.2f}  violation {row["violation"]:8.2f}  '
                  f'{time.perf_counter() - start:6.1f} s', file=sys.stderr, flush=True)

    episodes = simulated_episodes(plant.step, policy, scenario.x0, config.episode_steps)
    theta0 = policy.theta.copy()
    tuner = resumable_tuner(config, episodes, jacobians, cost, theta0, checkpoint, progress,
                            scenario.tuner_rules(config, theta0))
    final_state = tuner.run()
    final = episodes(final_state.theta, False)
    tracking, violation = cost.parts(final.x, final.u)
    history = final_state.history
    with open(os.path.join(out, f'{name}.csv'), 'w', newline='') as stream:
        writer = csv.DictWriter(stream, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows(history)
    np.savez(os.path.join(out, f'{name}.final.npz'), theta=final_state.theta, x=final.x,
             u=final.u)
    return {'name': name, 'final_cost': tracking + violation, 'final_tracking': tracking,
            'final_violation': violation, 'initial_cost': history[0]['cost'],
            'costs': [row['cost'] for row in history] + [tracking + violation],
            'tracking': [row['tracking'] for row in history] + [tracking],
            'violation': [row['violation'] for row in history] + [violation],
            'wall_s': sum(row['wall_s'] for row in history),
            'solver_failures': sum(row['solver_failures'] for row in history)}


def iters_to_fraction(costs: list[float], fraction: float = 0.9) -> int | None:
    """First iteration (1-based) at which ``fraction`` of the total improvement is reached."""
    total = costs[0] - costs[-1]
    if not total > 0:
        return None
    for k, value in enumerate(costs, start=1):
        if costs[0] - value >= fraction * total:
            return k
    return None


def _plots(results: dict, out: str, scenario: Scenario) -> list[str]:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    written = []
    fig, (ax_c, ax_z, ax_v) = plt.subplots(1, 3, figsize=(15, 4.2))
    finals = [res['costs'][-1] for res in results.values()]
    start_cost = next(iter(results.values()))['costs'][0]
    for name, res in results.items():
        its = np.arange(1, len(res['costs']) + 1)
        ax_c.semilogy(its, res['tracking'], label=name)
        ax_z.plot(its, res['costs'], label=name)
        ax_v.plot(its, res['violation'], label=name)
    ax_c.set(xlabel='iteration', ylabel='tracking cost (log scale)',
             title='closed-loop tracking cost')
    span = max(start_cost - min(finals), 1.0)
    ax_z.set_ylim(min(finals) - 0.1 * span, start_cost + 0.3 * span)
    ax_z.set(xlabel='iteration', ylabel='C = tracking + violation',
             title='closed-loop cost C, zoomed on start-to-best')
    ax_v.set(xlabel='iteration',
             ylabel=f'{scenario.violation_weight:g} x constraint violation',
             title='constraint violation')
    ax_c.legend(fontsize=8)
    for ax in (ax_c, ax_z, ax_v):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path = os.path.join(out, 'learning_curves.png')
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)
    hybrids = [n for n in results if n.startswith('hybrid')]
    compare = ([min(hybrids, key=lambda n: results[n]['final_cost'])] if hybrids else [])
    compare += [n for n in ('exact_model',) if n in results]
    if compare:
        fig, axes = plt.subplots(2, 3, figsize=(12, 6), sharex=True)
        labels = ['p_x [m]', 'p_y [m]', 'p_z [m]', 'roll [rad]', 'pitch [rad]', 'yaw [rad]']
        for name in compare:
            data = np.load(os.path.join(out, f'{name}.final.npz'))
            t = np.arange(data['x'].shape[0]) * scenario.period_s
            for i, ax in enumerate(axes.flat):
                ax.plot(t, data['x'][:, i if i < 3 else i + 3], label=name)
                ax.set_ylabel(labels[i])
        for ax in axes[1]:
            ax.set_xlabel('time [s]')
        for ax in axes.flat:
            ax.grid(alpha=0.3)
        axes[0, 0].legend(fontsize=8)
        fig.suptitle('closed loop with the final parameters')
        fig.tight_layout()
        path = os.path.join(out, 'trajectories.png')
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def main(scenario: str | None = None, out: str = 'results/reproduce',
         iterations: int | None = None, steps: int | None = None, seed: int | None = None,
         runs: list[str] | None = None, workers: int | None = None) -> int:
    """Run the scenario's experiment; print progress, a table and the JSON summary last.

    ``scenario`` is a file or a shipped scenario's name (default: the default scenario);
    ``iterations``, ``steps`` and ``seed`` override its values; ``runs`` picks some of its
    runs (default: all).
    """
    path = resolve_scenario_path(scenario)
    setup = load_scenario(path)
    names = runs or [run.name for run in setup.runs]
    for name in names:
        setup.run(name)               # ConfigError naming the runs there are
    os.makedirs(out, exist_ok=True)
    setup.policy()  # generate/compile the solver once before the workers start
    workers = workers or min(len(names), os.cpu_count() or 1)
    config = setup.tuning_config(iterations=iterations, episode_steps=steps, seed=seed)
    print(f'scenario {path}: {len(names)} tuning runs x {config.iterations} iterations '
          f'on {workers} processes; output in {out}', file=sys.stderr, flush=True)
    start = time.perf_counter()
    results = {}
    context = multiprocessing.get_context('spawn')
    with futures.ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        jobs = {pool.submit(run_one, path, name, out, iterations, steps, seed): name
                for name in names}
        for job in futures.as_completed(jobs):
            res = job.result()
            results[res['name']] = res
            print(f'[{res["name"]:13s}] done: final cost {res["final_cost"]:.2f} '
                  f'({res["wall_s"]:.0f} s)', file=sys.stderr, flush=True)
    results = {name: results[name] for name in names}
    figures = _plots(results, out, setup)
    summary = _summary(results, setup, config, time.perf_counter() - start)
    table = _table(results, summary, setup)
    with open(os.path.join(out, 'results.md'), 'w') as stream:
        stream.write(table + '\n')
    print(table)
    for path in figures:
        print(f'wrote {path}')
    print(json.dumps(summary))
    return 0


def _summary(results: dict, scenario: Scenario, config: TuningConfig, wall_s: float) -> dict:
    final = {name: res['final_cost'] for name, res in results.items()}
    reference = final.get('exact_model')
    hybrids = {n: c for n, c in final.items() if n.startswith('hybrid')}
    gap = None
    if reference and hybrids:
        gap = 100.0 * (min(hybrids.values()) - reference) / reference
    return {'final_cost': final, 'reference_cost': reference, 'hybrid_gap_pct': gap,
            'initial_cost': next(iter(results.values()))['initial_cost'],
            'iters_to_90pct': {n: iters_to_fraction(r['costs']) for n, r in results.items()},
            'run_wall_s': {n: r['wall_s'] for n, r in results.items()},
            'solver_failures': {n: r['solver_failures'] for n, r in results.items()},
            'iterations': config.iterations, 'episode_steps': config.episode_steps,
            'wall_s': wall_s, 'scenario': scenario.path,
            'paper': scenario.paper.as_dict() if scenario.paper else None}


def _table(results: dict, summary: dict, scenario: Scenario) -> str:
    lines = ['| run | initial cost | final cost | final violation | iterations to 90 % '
             '| run time [s] |', '|---|---:|---:|---:|---:|---:|']
    for name, res in results.items():
        k90 = summary['iters_to_90pct'][name]
        lines.append(f'| {name} | {res["initial_cost"]:.2f} | {res["final_cost"]:.2f} | '
                     f'{res["final_violation"]:.2f} | {k90 if k90 else "-"} | '
                     f'{res["wall_s"]:.0f} |')
    if summary['hybrid_gap_pct'] is not None:
        lines.append('')
        line = (f'Best hybrid vs exact-model reference: {summary["hybrid_gap_pct"]:+.2f} %')
        paper = scenario.paper
        if paper is not None:
            line += (f' (paper: '
                     f'{100 * (paper.hybrid_final_cost / paper.exact_model_cost - 1):+.2f} '
                     f'%, {paper.hybrid_final_cost} vs {paper.exact_model_cost})')
        lines.append(line + '.')
    return '\n'.join(lines)
