"""Figures of ``hybrid-mpc reproduce``, drawn like the published paper's Figures 2 and 3.

* :func:`learning_curves` (``learning_curves.png``, the paper's Figure 2): the tracking cost
  (the closed-loop cost without the constraint penalty) and the constraint violation
  ``dist_1(x, X^(T+1))`` (unweighted, as the paper plots it) against the iteration, one
  line per run.
* :func:`trajectories` (``trajectories.png``, its Figure 3): positions and attitudes over
  the first 10 s of the closed loop with the best hybrid's final theta against the best
  reference available (the optimum reference, else the exact-model run), with the
  untuned start for context and the target as a dotted line.

Matplotlib is imported here only, with the Agg backend, so nothing else needs a display.
"""

from __future__ import annotations

import os

import numpy as np

FIGURE3_SECONDS = 10.0
_STYLE = {'zeroth_order': ('tab:blue', '-'), 'model_based': ('tab:orange', '-'),
          'hybrid_g0.25': ('tab:green', '-'), 'hybrid_g0.5': ('tab:red', '-'),
          'hybrid_g0.75': ('tab:purple', '-'), 'exact_model': ('black', '--'),
          'optimum': ('tab:gray', ':')}


def _pyplot():
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def _style(name: str) -> dict:
    colour, line = _STYLE.get(name, (None, '-'))
    return {'color': colour, 'linestyle': line, 'linewidth': 1.4}


def learning_curves(results: dict, path: str, violation_weight: float, title: str,
                    optimum_cost: float | None = None) -> str:
    """Draw the Figure 2 panels for ``results`` (run name -> ``tracking``/``violation`` lists).

    ``violation`` entries are the weighted penalty; the plot divides by
    ``violation_weight`` to show ``dist_1`` itself. The tracking axis is clipped to 1.6 x
    the initial cost so one diverging run does not flatten the others (what leaves the
    axis is said in the legend). Returns ``path``.
    """
    plt = _pyplot()
    fig, (ax_t, ax_v) = plt.subplots(1, 2, figsize=(12, 4.4))
    start = next(iter(results.values()))['tracking'][0]
    lowest = min(min(res['tracking']) for res in results.values())
    if optimum_cost is not None:
        lowest = min(lowest, optimum_cost)          # its line must stay on the axis
    top = 1.6 * max(res['tracking'][0] for res in results.values())
    for name, res in results.items():
        its = np.arange(1, len(res['tracking']) + 1)
        label = name
        if max(res['tracking']) > top:
            label += f' (peak {max(res["tracking"]):.3g} off axis)'
        ax_t.plot(its, res['tracking'], label=label, **_style(name))
        dist = np.asarray(res['violation']) / violation_weight if violation_weight else \
            np.asarray(res['violation'])
        ax_v.plot(its, dist, label=name, **_style(name))
    if optimum_cost is not None:
        ax_t.axhline(optimum_cost, color='tab:gray', linestyle=':', linewidth=1.2,
                     label=f'optimum reference C = {optimum_cost:.1f}')
    ax_t.set_ylim(max(0.0, lowest - 0.05 * (start - lowest)), top)
    ax_t.set(xlabel='iteration', ylabel='tracking cost (C without the penalty)',
             title='closed-loop tracking cost')
    ax_v.set_yscale('symlog', linthresh=1e-3)
    ax_v.set(xlabel='iteration', ylabel='dist_1(x, X^(T+1)) (unweighted)',
             title=f'constraint violation (penalised x {violation_weight:g} in C)')
    ax_t.legend(fontsize=8)
    from matplotlib.ticker import MaxNLocator
    for ax in (ax_t, ax_v):
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def trajectories(runs: dict, path: str, period_s: float, x_ref: np.ndarray,
                 title: str) -> str:
    """Draw the Figure 3 panels: positions and attitudes over the first 10 s.

    ``runs`` maps a label to a state array ``x`` (T+1, 12), drawn in that order (the first
    thin and grey: the untuned start). Attitudes in degrees. Returns ``path``.
    """
    plt = _pyplot()
    fig, axes = plt.subplots(2, 3, figsize=(12, 6), sharex=True)
    labels = ['p_x [m]', 'p_y [m]', 'p_z [m]', 'roll [deg]', 'pitch [deg]', 'yaw [deg]']
    steps = int(round(FIGURE3_SECONDS / period_s)) + 1
    for n, (label, x) in enumerate(runs.items()):
        x = np.asarray(x)[:steps]
        t = np.arange(x.shape[0]) * period_s
        style = ({'color': 'lightgray', 'linewidth': 2.5} if n == 0 else
                 {'linewidth': 1.6, 'linestyle': '--' if n == 2 else '-'})
        for i, ax in enumerate(axes.flat):
            values = x[:, i] if i < 3 else np.degrees(x[:, i + 3])
            ax.plot(t, values, label=label, **style)
    for i, ax in enumerate(axes.flat):
        target = x_ref[i] if i < 3 else np.degrees(x_ref[i + 3])
        ax.axhline(target, color='black', linestyle=':', linewidth=0.8)
        ax.set_ylabel(labels[i])
        ax.grid(alpha=0.3)
    for ax in axes[1]:
        ax.set_xlabel('time [s]')
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def figure3_runs(out: str, results: dict, initial_x: np.ndarray,
                 optimum: dict | None) -> dict:
    """Pick Figure 3's lines: the start, the best hybrid and the best reference there is.

    Reads the final trajectories ``<run>.final.npz`` in ``out``. Returns label -> x.
    """
    runs = {'start (theta0)': initial_x}
    hybrids = [name for name in results if name.startswith('hybrid')]
    if hybrids:
        best = min(hybrids, key=lambda name: results[name]['final_cost'])
        runs[f'{best} trained ({results[best]["final_cost"]:.1f})'] = \
            np.load(os.path.join(out, f'{best}.final.npz'))['x']
    if optimum is not None:
        runs[f'optimum reference ({optimum["cost"]:.1f})'] = \
            np.load(os.path.join(out, 'optimum.final.npz'))['x']
    elif 'exact_model' in results:
        runs[f'exact_model, same steps ({results["exact_model"]["final_cost"]:.1f})'] = \
            np.load(os.path.join(out, 'exact_model.final.npz'))['x']
    return runs
