"""The seeds of Appendix C with zeroth-order estimates averaged over M directions.

For each variant (M = 2, M = 2 antithetic, M = 4 by default), write a copy of the
``l4dc2026`` scenario with ``hybrid_tuner.zeroth_order`` set, run ``hybrid-mpc paper
ablation seeds`` on it for ``--iterations`` iterations (10 seeds, one process pool,
resuming from the checkpoints in ``--out``), and print one table: per seed the best
base-episode cost of the run and, in brackets, its longest step in the first 10
iterations; then the spread (max - min) / mean, the median and the episodes flown. The
M = 1 column is the committed Appendix C runs (``paper/ablation_l4dc2026``, the same runs
to the last digit), read at the same iteration and at the same number of episodes.

Run: ``python scripts/zeroth_order_directions.py --iterations 30 --out results/zo``.
"""

import argparse
import csv
import os
import statistics

import yaml

from hybrid_mpc_ros.core import paths
from hybrid_mpc_ros.core.scenario import resolve_scenario_path
from hybrid_mpc_ros.paper import ablation

COMMITTED = os.path.join(os.path.dirname(paths.source_config_dir()), 'paper',
                         'ablation_l4dc2026')
VARIANTS = {'M=2': (2, False), 'M=2 antithetic': (2, True), 'M=4': (4, False)}
SEEDS = range(10)


def variant_scenario(folder: str, name: str, directions: int, antithetic: bool) -> str:
    """Write the l4dc2026 scenario with ``zeroth_order`` set into ``folder``; its path."""
    with open(resolve_scenario_path('l4dc2026')) as stream:
        scenario = yaml.safe_load(stream)
    scenario['hybrid_tuner']['ros__parameters']['zeroth_order'] = {
        'directions': directions, 'antithetic': antithetic}
    path = os.path.join(folder, name.replace('=', '').replace(' ', '_') + '.yaml')
    with open(path, 'w') as stream:
        yaml.safe_dump(scenario, stream, sort_keys=False)
    return path


def history(folder: str, seed: int) -> list[dict]:
    """The history rows of the seed's run in ``folder``."""
    with open(os.path.join(folder, f'delta1e-05_seed{seed}.csv'), newline='') as stream:
        return list(csv.DictReader(stream))


def episodes(iterations: int, directions: int) -> int:
    """Episodes flown in ``iterations`` (the first, eta = 1, has no perturbed one)."""
    return 1 + (iterations - 1) * (1 + directions)


def column(folder: str, iterations: int) -> tuple[list[float], list[float]]:
    """Per seed: the best cost of the first ``iterations`` and the longest early step."""
    best, steps = [], []
    for seed in SEEDS:
        rows = history(folder, seed)[:iterations]
        if len(rows) < iterations:
            raise SystemExit(f'{folder}: seed {seed} has {len(rows)} of {iterations} '
                             'iterations')
        best.append(min(float(row['cost']) for row in rows))
        steps.append(max(float(row['step_norm']) for row in rows[:10]))
    return best, steps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--iterations', type=int, default=30)
    parser.add_argument('--out', default='results/zeroth_order_directions')
    parser.add_argument('--variants', nargs='+', default=list(VARIANTS),
                        choices=list(VARIANTS))
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    columns = {'M=1': (COMMITTED, 1, args.iterations)}
    for name in args.variants:
        directions, antithetic = VARIANTS[name]
        path = variant_scenario(args.out, name, directions, antithetic)
        folder = os.path.join(args.out, os.path.basename(path)[:-5])
        ablation.main(['seeds'], scenario=path, out=folder, iterations=args.iterations)
        columns[name] = (folder, directions, args.iterations)
        # M = 1 over as many episodes as this variant flew
        same = 1 + (episodes(args.iterations, directions) - 1) // 2
        columns.setdefault(f'M=1, {same} it.', (COMMITTED, 1, same))
    table = {name: column(folder, iterations)
             for name, (folder, _, iterations) in columns.items()}
    print('| seed | ' + ' | '.join(table) + ' |')
    print('|---:|' + '---:|' * len(table))
    for seed in SEEDS:
        print(f'| {seed} | ' + ' | '.join(f'{best[seed]:.2f} ({steps[seed]:.2f})'
                                          for best, steps in table.values()) + ' |')
    print('| spread | ' + ' | '.join(
        f'{100 * (max(best) - min(best)) / statistics.mean(best):.2f} %'
        for best, _ in table.values()) + ' |')
    print('| median | ' + ' | '.join(f'{statistics.median(best):.2f}'
                                     for best, _ in table.values()) + ' |')
    print('| episodes | ' + ' | '.join(str(episodes(iterations, directions))
                                       for _, directions, iterations in columns.values())
          + ' |')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
