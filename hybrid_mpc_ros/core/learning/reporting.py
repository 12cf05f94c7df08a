"""What a tuning run leaves on disk: history CSV, resumable checkpoint check, learning curves.

Shared by the offline reproduction (``hybrid-mpc reproduce``) and the ROS tuner node, so
both write the same files the same way:

* :func:`write_history_csv`: one row per iteration, the columns :data:`CSV_FIELDS` (the
  :class:`~hybrid_mpc_ros.core.learning.tuning.Tuner`'s history rows);
* :func:`resumable_state`: the checkpointed state when a checkpoint holds this very
  experiment;
* :func:`plot_learning_curves`: tracking cost, total cost and constraint violation against
  the iteration, one line per run (the paper's Figure 1 layout).
"""

from __future__ import annotations

import csv
import os
import sys

import numpy as np

from hybrid_mpc_ros.core.learning.tuning import load_checkpoint, TuningConfig

CSV_FIELDS = ('iteration', 'cost', 'tracking', 'violation', 'grad_model_norm', 'grad_zo_norm',
              'step_norm', 'alpha', 'eta', 'solver_failures', 'wall_s', 'rollback',
              'rollback_reason', 'slope_measured', 'slope_model')


def write_history_csv(path: str, history: list[dict], fields=CSV_FIELDS) -> None:
    """Write the history rows (one per iteration) as CSV with the columns ``fields``.

    Floats are written with ``repr`` precision, so a CSV holds every digit of the run.
    """
    with open(path, 'w', newline='') as stream:
        writer = csv.DictWriter(stream, fieldnames=fields, extrasaction='ignore')
        writer.writeheader()
        writer.writerows(history)


def resumable_state(checkpoint: str, config: TuningConfig):
    """Return the saved state when ``checkpoint`` holds this very experiment, else None.

    None when the file does not exist, cannot be read as a checkpoint of this version
    (said on stderr) or was written with another configuration (another experiment).
    """
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


def plot_learning_curves(curves: dict, path: str, violation_weight: float) -> str:
    """Draw the learning curves of one or more runs into the PNG file ``path``; return it.

    ``curves`` maps a run's name to a dict with the lists ``tracking``, ``costs`` (tracking
    + violation) and ``violation``, one entry per iteration; ``violation_weight`` labels
    the violation axis.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, (ax_c, ax_z, ax_v) = plt.subplots(1, 3, figsize=(15, 4.2))
    finals = [res['costs'][-1] for res in curves.values()]
    start_cost = next(iter(curves.values()))['costs'][0]
    for name, res in curves.items():
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
    ax_v.set(xlabel='iteration', ylabel=f'{violation_weight:g} x constraint violation',
             title='constraint violation')
    ax_c.legend(fontsize=8)
    for ax in (ax_c, ax_z, ax_v):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
