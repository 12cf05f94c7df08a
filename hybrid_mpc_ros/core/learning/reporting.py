"""What a tuning run leaves on disk: history CSV, resumable checkpoint check, learning curves.

Shared by the offline reproduction (``hybrid-mpc reproduce``) and the ROS tuner node, so
both write the same files the same way:

* :func:`write_history_csv`: one row per iteration, the columns :data:`CSV_FIELDS` (the
  :class:`~hybrid_mpc_ros.core.learning.tuning.Tuner`'s history rows);
* :func:`resume_state`: the checkpointed state when a checkpoint holds this very
  experiment, refused (:class:`ResumeRefused`) when it holds another; :func:`resume_line`
  says where a resumed run goes on, or that it is finished;
* :func:`iteration_line`: the one-line progress report of an iteration;
* :func:`plot_learning_curves`: tracking cost, total cost and constraint violation against
  the iteration, one line per run (the paper's Figure 1 layout);
* :class:`RunRecorder`: the files of a live run (the tuner node), written as it goes.
"""

from __future__ import annotations

import csv
import errno
import json
import math
import os

import numpy as np

from hybrid_mpc_ros.core.config import ConfigError
from hybrid_mpc_ros.core.learning.run import (load_checkpoint, save_checkpoint, TuningConfig,
                                              TuningState)

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


def read_history_csv(path: str) -> list[dict]:
    """Read the rows :func:`write_history_csv` (or :class:`RunRecorder`) wrote.

    Numbers and booleans come back as ``int``, ``float`` and ``bool``, empty cells as None.
    """
    with open(path, newline='') as stream:
        return [{key: None if text == '' else _number(text) for key, text in row.items()}
                for row in csv.DictReader(stream)]


class ResumeRefused(ConfigError):
    """A checkpoint a run will not continue: unreadable, or another run's."""


def resume_state(checkpoint: str, config: TuningConfig) -> TuningState | None:
    """Return the state to continue from ``checkpoint``, or None when there is none.

    The package's one resume policy, for the offline runs and the tuner node alike: no
    file, a fresh start; a file that is not a checkpoint of this version, or one written
    with another configuration (another experiment: scenario, settings, episode length),
    is refused with :class:`ResumeRefused` rather than overwritten, so no finished work is
    lost by a changed setting. Say where the run goes on with :func:`resume_line`.
    """
    if not os.path.exists(checkpoint):
        return None
    try:
        saved_config, state = load_checkpoint(checkpoint)
    except (ValueError, KeyError, TypeError) as exc:
        raise ResumeRefused(f'cannot resume from {checkpoint}: {exc}') from None
    if saved_config.to_dict() != config.to_dict():
        changed = sorted(key for key, value in config.to_dict().items()
                         if saved_config.to_dict().get(key) != value)
        raise ResumeRefused(f'{checkpoint} holds another run (its {", ".join(changed)} '
                            'differ)')
    return state


def refuse_rules(checkpoint: str, exc: ValueError) -> ResumeRefused:
    """Return the refusal of ``checkpoint`` whose tuner rules differ (``exc`` says how).

    The configuration matched, but the step rule, eta rule or guard recorded in the
    checkpoint are not this run's (the :class:`Tuner` raised ``exc``): another run too.
    """
    return ResumeRefused(f'{checkpoint} holds another run ({exc})')


def resume_line(checkpoint: str, state: TuningState, config: TuningConfig) -> str:
    """Return the line that says where a resumed run goes on, or that it is finished."""
    if state.iteration > config.iterations:
        return (f'{checkpoint} holds the finished run ({len(state.history)} of '
                f'{config.iterations} iterations): nothing left to tune')
    return f'resuming from {checkpoint} at iteration {state.iteration}'


def iteration_line(row: dict, iterations: int) -> str:
    """Return the one-line progress report of a tuning iteration, as every tool prints it.

    ``row`` is a history row (:data:`CSV_FIELDS`; a live run's :data:`LIVE_FIELDS` too,
    shown when present); a value that is None or NaN shows as ``-``. A rolled-back
    iteration ends with ``ROLLBACK: <reason>``.
    """
    def number(key, spec):
        value = row.get(key)
        return '-' if value is None or (isinstance(value, float) and math.isnan(value)) \
            else format(value, spec)
    line = (f'iteration {row["iteration"]:4d}/{iterations}  cost {row["cost"]:10.2f}  '
            f'violation {row["violation"]:8.2f}  |J_C| {number("grad_model_norm", ".3g")}  '
            f'|G_zo| {number("grad_zo_norm", ".3g")}  alpha {number("alpha", ".3g")}  '
            f'eta {number("eta", ".3f")}')
    if 'theta_revision' in row:
        line += (f'  revision {row["theta_revision"]}  reruns {row["retries"]}  rollbacks '
                 f'{row["rollbacks"]}')
    line += f'  {row["wall_s"]:.2f} s'
    if row.get('rollback'):
        line += f'  ROLLBACK: {row["rollback_reason"]}'
    return line


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

    The checkpoint ``<name>.checkpoint.json`` (:attr:`checkpoint` is its path) is written
    by :meth:`commit`, after an iteration's rows are on disk: a process killed at any
    moment leaves rows of at most the iteration after the checkpoint's, which a resume
    removes and reruns, so the files never lose or repeat an iteration. ``history`` is a
    resumed run's history so far (the checkpoint's): its rows start the CSV (with the
    live columns the CSV on disk had for them), the rows of the other files from its
    iterations are kept, later ones dropped, and the files are appended to.

    Nothing is written before the first episode is recorded: a tuner that never got to fly
    (no controller found, a refused start) leaves the folder as it was.
    """

    def __init__(self, folder: str, name: str, violation_weight: float,
                 episode_fields: tuple, history: list | None = None):
        from hybrid_mpc_ros.core.mpc import theta as th
        self.folder, self.name = folder, name
        self.violation_weight = violation_weight
        self.rows = list(history or [])
        self.checkpoint = self.path('checkpoint.json')
        self._fields = CSV_FIELDS + LIVE_FIELDS
        self._theta_fields = ('iteration',) + tuple(th.names())
        self._episode_fields = tuple(episode_fields)
        self._resumed = bool(history)
        self._files = None              # opened by the first record: see _start

    def check_writable(self) -> None:
        """Raise OSError now if the run's folder could not be written; write nothing.

        The folder, or its nearest existing parent, must be on a writable filesystem and
        writable by this process.
        """
        folder = os.path.abspath(self.folder)
        while not os.path.isdir(folder) and os.path.dirname(folder) != folder:
            folder = os.path.dirname(folder)
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), folder)
        if not os.access(folder, os.W_OK | os.X_OK):
            raise OSError(errno.EACCES, os.strerror(errno.EACCES), folder)

    def _start(self) -> tuple:
        """Open the run's files at its first record (see the class docstring); return them."""
        if self._files is None:
            os.makedirs(self.folder, exist_ok=True)
            mode = 'a' if self._resumed else 'w'
            if self._resumed:
                done = len(self.rows)         # iterations are numbered from 1
                self._merge_live_columns()
                for suffix in ('theta.csv', 'episodes.csv'):
                    self._keep_rows(suffix, lambda row: int(row['iteration']) <= done)
            self._files = (self._open('csv', 'w', self._fields, self.rows),
                           self._open('theta.csv', mode, self._theta_fields),
                           self._open('episodes.csv', mode, self._episode_fields))
        return self._files

    def _read_rows(self, suffix: str) -> tuple[list, list]:
        """Return the header and rows of ``<name>.<suffix>`` ([] and [] when it is missing)."""
        path = self.path(suffix)
        if not os.path.exists(path):
            return [], []
        with open(path, newline='') as stream:
            reader = csv.DictReader(stream)
            return list(reader.fieldnames or []), list(reader)

    def _keep_rows(self, suffix: str, keep) -> None:
        """Rewrite ``<name>.<suffix>`` atomically with only the rows ``keep(row)`` accepts."""
        fields, rows = self._read_rows(suffix)
        if not fields:
            return
        path = self.path(suffix)
        tmp = path + '.tmp'
        with open(tmp, 'w', newline='') as stream:
            writer = csv.DictWriter(stream, fieldnames=fields)
            writer.writeheader()
            writer.writerows(row for row in rows if row.get('iteration', '').isdigit()
                             and keep(row))
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, path)

    def _merge_live_columns(self) -> None:
        """Give the resumed rows the live columns the CSV on disk holds for them.

        The checkpoint's history has the tuner's columns only; the live ones (revision,
        reruns, ...) were written to the CSV with each row.
        """
        _, rows = self._read_rows('csv')
        written = {row.get('iteration'): row for row in rows}
        merged = []
        for row in self.rows:
            old = written.get(str(row['iteration']), {})
            extra = {field: _number(old[field]) for field in LIVE_FIELDS
                     if field not in row and old.get(field) not in (None, '')}
            merged.append(dict(row, **extra))
        self.rows = merged

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
        self._write(self._start()[2], info)

    def commit(self, config: TuningConfig, state: TuningState) -> None:
        """Put the rows written so far on disk, then write the checkpoint (atomically).

        Call it after :meth:`iteration`, with the tuner's configuration and state after
        that iteration. OSError (a read-only or full disk) leaves the previous checkpoint
        as it was.
        """
        for stream, _ in self._start():
            stream.flush()
            os.fsync(stream.fileno())
        save_checkpoint(self.checkpoint, config, state)

    def iteration(self, row: dict, theta: np.ndarray) -> None:
        """Record one iteration: its history row and theta (94,) after it."""
        history, thetas, _ = self._start()
        self.rows.append(row)
        self._write(history, row)
        self._write(thetas, dict(zip(self._theta_fields,
                                     [row['iteration']] + [float(v) for v in theta])))

    def finish(self, summary: dict) -> list[str]:
        """Close the files, draw the learning curve, write the summary; return new paths.

        A run that recorded nothing writes nothing (its summary is the caller's to
        report), unless it is a resumed run found finished: its files are then redrawn
        and its summary says so.
        """
        self.close()
        if self._files is None and not (self._resumed and summary.get('status') == 'finished'):
            return []
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
        errors = []
        for stream, _ in self._files or ():
            if not stream.closed:
                try:
                    stream.close()
                except OSError as exc:     # a full disk fails the last flush; still closed
                    errors.append(exc)
        if errors:
            raise errors[0]


def _number(text: str):
    """Return a CSV cell as the int, float or bool it was written from (else the text)."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {'True': True, 'False': False}.get(text, text)
