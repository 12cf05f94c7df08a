"""Sweeps of independent jobs: a local process pool, or a Dask cluster.

The package's sweeps (``paper robustness``, ``paper ablation``, ``paper study``,
``reproduce``, ``bench peers``, ``bench vehicles``) are lists of independent jobs, each a
module-level function and its arguments that runs a whole tuning and returns a small
dict. :func:`run_tasks` runs them and yields each result as it finishes:

* ``process`` (the default): a pool of ``workers`` spawned processes on this machine (no
  inherited solver state).
* ``dask``: a `Dask <https://distributed.dask.org>`_ cluster, for sweeps that outgrow one
  machine. With ``scheduler`` (``tcp://host:8786``) the jobs go to an existing cluster,
  however it was started (``dask scheduler`` and ``dask worker`` on the lab's machines,
  dask-jobqueue on a SLURM cluster, ...); each worker machine needs this package
  installed with the same version, and the scenario files and the output folder at the
  same paths (a job writes its results where it runs: a shared filesystem). Without it, a
  local cluster of ``workers`` single-threaded worker processes. Dask rather than Ray: it
  is pure Python from PyPI, starts in a second, and its cluster managers cover the
  workstation, SSH and batch-queue setups labs run sweeps on; the jobs are plain
  functions, so nothing here depends on either beyond this module.

Either way each job's result is exactly what it returns: the engines change where a job
runs, not what it computes (tested on a sweep run both ways). Workers send their stdout
to stderr (the commands' stdout is for tables and the JSON last line).
"""

from __future__ import annotations

import concurrent.futures as futures
from dataclasses import dataclass
import multiprocessing
import os
import sys
from typing import Callable, Iterator

ENGINES = ('process', 'dask')


@dataclass(frozen=True)
class Engine:
    """Where jobs run: ``kind`` in :data:`ENGINES`; ``scheduler``: a Dask scheduler's address."""

    kind: str = 'process'
    scheduler: str | None = None

    def __post_init__(self):
        if self.kind not in ENGINES:
            raise ValueError(f'engine must be one of {ENGINES}, got {self.kind!r}')
        if self.scheduler is not None and self.kind != 'dask':
            raise ValueError('a scheduler address needs the dask engine (--engine dask)')

    def describe(self, workers: int) -> str:
        """Say where the jobs run, for a progress line."""
        if self.kind == 'process':
            return f'{workers} processes'
        return (f'the Dask cluster at {self.scheduler}' if self.scheduler
                else f'a local Dask cluster of {workers} workers')


@dataclass(frozen=True)
class Task:
    """One job: ``function(*args, **kwargs)`` (a module-level function: workers import it)."""

    function: Callable
    args: tuple = ()
    kwargs: dict | None = None

    def __call__(self):
        """Run the job; return what it returns."""
        return self.function(*self.args, **(self.kwargs or {}))


def stdout_to_stderr() -> None:
    """Send a worker's stdout (fd 1) to stderr, where the solver's C code prints.

    The commands' stdout is for their tables and the JSON line only.
    """
    sys.stdout.flush()
    os.dup2(2, 1)


def _in_worker(task: Task):
    stdout_to_stderr()
    return task()


def run_tasks(tasks: list[Task], workers: int, engine: Engine | None = None
              ) -> Iterator[tuple[int, object]]:
    """Run ``tasks`` on ``engine`` (default: a local process pool); yield (index, result).

    In the order they finish. ``workers``: the pool's processes, or the local Dask
    cluster's workers (ignored for an existing cluster). An exception in a job ends the
    sweep with it.
    """
    engine = engine or Engine()
    if not tasks:
        return
    if engine.kind == 'dask':
        yield from _run_dask(tasks, workers, engine.scheduler)
        return
    context = multiprocessing.get_context('spawn')
    with futures.ProcessPoolExecutor(max_workers=workers, mp_context=context,
                                     initializer=stdout_to_stderr) as pool:
        running = {pool.submit(task): index for index, task in enumerate(tasks)}
        for done in futures.as_completed(running):
            yield running[done], done.result()


def _run_dask(tasks: list[Task], workers: int, scheduler: str | None):
    from dask.distributed import as_completed, Client, LocalCluster
    cluster = None
    if scheduler is None:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None)
    client = Client(scheduler or cluster)
    try:
        running = {client.submit(_in_worker, task, pure=False): index
                   for index, task in enumerate(tasks)}
        for done in as_completed(running):
            yield running[done], done.result()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def add_arguments(parser) -> None:
    """Add ``--workers``, ``--engine`` and ``--scheduler`` to a sweep command's ``parser``."""
    from hybrid_mpc_ros.tools.cli import positive_int
    parser.add_argument('--workers', type=positive_int, default=None,
                        help='parallel jobs: processes, or local Dask workers (default: one '
                             'per core, at most one per job)')
    parser.add_argument('--engine', choices=ENGINES, default='process',
                        help='where the jobs run: a local process pool (default) or a Dask '
                             'cluster (local unless --scheduler)')
    parser.add_argument('--scheduler', default=None, metavar='ADDRESS',
                        help="an existing Dask cluster's scheduler (tcp://host:8786), with "
                             '--engine dask')


def engine_from(args) -> Engine:
    """Return the :class:`Engine` the parsed ``args`` ask for (SystemExit if inconsistent)."""
    try:
        return Engine(args.engine, args.scheduler)
    except ValueError as exc:
        raise SystemExit(f'error: {exc}') from exc
