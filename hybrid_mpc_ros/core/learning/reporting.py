"""What a tuning run leaves on disk: history CSV, resumable checkpoint check, learning curves.

Shared by the offline reproduction (``hybrid-mpc reproduce``) and the ROS tuner node, so
both write the same files the same way:

* :func:`write_history_csv`: one row per iteration, the columns :data:`CSV_FIELDS` (the
  :class:`~hybrid_mpc_ros.core.learning.tuning.Tuner`'s history rows);
* :func:`resumable_state`: the checkpointed state when a checkpoint holds this very
  experiment;
* :func:`plot_learning_curves`: tracking cost, total cost and constraint violation against
  the iteration, one line per run (the paper's Figure 1 layout);
* :class:`RunRecorder`: the files of a live run (the tuner node), written as it goes.
"""

from __future__ import annotations

import csv
import json
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


LIVE_FIELDS = ('theta_revision', 'retries', 'rollbacks', 'episodes')


class RunRecorder:
    """Writes a live tuning run's files as its episodes and iterations complete.

    In ``folder``, for the run ``name`` (e.g. ``hybrid_g0.5``):

    * ``<name>.csv``: the history, :data:`CSV_FIELDS` plus :data:`LIVE_FIELDS` (the
      theta revision of the base episode, episode reruns, rollbacks and episodes so far),
      one row per iteration, flushed after each;
    * ``<name>.theta.csv``: ``iteration`` and theta after it (94 columns named as
      :func:`theta.names`);
    * ``<name>.episodes.csv``: one row per episode the tuner took (``episode_fields``);
    * ``<name>.learning_curve.png`` and ``<name>.summary.json`` at :meth:`finish`.

    The checkpoint ``<name>.checkpoint.json`` is the :class:`Tuner`'s (:attr:`checkpoint`
    is its path). ``history`` is a resumed run's history so far: its rows start the CSV,
    and the other files are appended to instead of started afresh.
    """

    def __init__(self, folder: str, name: str, violation_weight: float,
                 episode_fields: tuple, history: list | None = None):
        from hybrid_mpc_ros.core.mpc import theta as th
        os.makedirs(folder, exist_ok=True)
        self.folder, self.name = folder, name
        self.violation_weight = violation_weight
        self.rows = list(history or [])
        self.checkpoint = self.path('checkpoint.json')
        self._fields = CSV_FIELDS + LIVE_FIELDS
        mode = 'a' if history else 'w'
        self._history = self._open('csv', 'w', self._fields, self.rows)
        self._thetas = self._open('theta.csv', mode, ('iteration',) + tuple(th.names()))
        self._episodes = self._open('episodes.csv', mode, tuple(episode_fields))

    def path(self, suffix: str) -> str:
        """Path of the run's file ``<name>.<suffix>``."""
        return os.path.join(self.folder, f'{self.name}.{suffix}')

    def _open(self, suffix: str, mode: str, fields: tuple, rows=()):
        path = self.path(suffix)
        fresh = mode == 'w' or not os.path.exists(path)
        stream = open(path, mode, newline='')
        writer = csv.DictWriter(stream, fieldnames=fields, extrasaction='ignore')
        if fresh:
            writer.writeheader()
        writer.writerows(rows)
        stream.flush()
        return stream, writer

    @staticmethod
    def _write(target, row: dict) -> None:
        stream, writer = target
        writer.writerow(row)
        stream.flush()

    def episode(self, info: dict) -> None:
        """Record one episode: ``info`` holds the episode fields."""
        self._write(self._episodes, info)

    def iteration(self, row: dict, theta: np.ndarray) -> None:
        """Record one iteration: its history row and theta (94,) after it."""
        from hybrid_mpc_ros.core.mpc import theta as th
        self.rows.append(row)
        self._write(self._history, row)
        self._write(self._thetas, dict(zip(('iteration',) + tuple(th.names()),
                                           [row['iteration']] + [float(v) for v in theta])))

    def finish(self, summary: dict) -> list[str]:
        """Close the files, draw the learning curve, write the summary; return new paths."""
        self.close()
        written = []
        if self.rows:
            curves = {self.name: {key: [row[field] for row in self.rows] for key, field in
                                  (('costs', 'cost'), ('tracking', 'tracking'),
                                   ('violation', 'violation'))}}
            written.append(plot_learning_curves(curves, self.path('learning_curve.png'),
                                                self.violation_weight))
        path = self.path('summary.json')
        with open(path, 'w') as stream:
            json.dump(summary, stream, indent=1)
        written.append(path)
        return written

    def close(self) -> None:
        """Close the CSV files (idempotent)."""
        for stream, _ in (self._history, self._thetas, self._episodes):
            if not stream.closed:
                stream.close()
