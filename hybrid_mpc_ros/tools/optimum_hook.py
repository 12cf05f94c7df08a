"""The one place where ``reproduce`` (and ``--study``) runs the optimum reference.

The reference itself is :func:`hybrid_mpc_ros.core.learning.optimum.optimum_reference`:
the exact closed-loop gradient from the plant's Jacobians, L-BFGS-B inside Theta, until
its relative improvement over 20 iterations is below 1e-4. Here it becomes one job of
the experiment's process pool: it honours the run's episode length (``--steps``) and,
when ``--iterations`` is given, caps its own iterations at that number too (short checks
stay short; the full experiment uses the reference's own cap,
:data:`~hybrid_mpc_ros.core.learning.optimum.MAX_ITERATIONS`).

L-BFGS-B cannot continue from the middle of a run, so the reference resumes only as a
whole: it writes ``optimum.json`` (its summary and a signature: the scenario file's
values, the episode length, the cap and the stopping rule) and ``optimum.final.npz``
(theta, x, u) into the experiment's folder, and a later call with the same signature
reads them instead of running again.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time

import numpy as np

from hybrid_mpc_ros.core.config import file_signature
from hybrid_mpc_ros.core.learning import optimum
from hybrid_mpc_ros.core.scenario import load_scenario

SUMMARY_FILE, FINAL_FILE = 'optimum.json', 'optimum.final.npz'


def signature(scenario_path: str, steps: int, max_iterations: int) -> str:
    """SHA-256 of what the reference's result depends on (see the module docstring)."""
    return file_signature(scenario_path, [steps, max_iterations, optimum.WINDOW,
                                          optimum.TOLERANCE])


def _stored(out: str, expected: str) -> dict | None:
    path = os.path.join(out, SUMMARY_FILE)
    if not (os.path.exists(path) and os.path.exists(os.path.join(out, FINAL_FILE))):
        return None
    try:
        with open(path) as stream:
            saved = json.load(stream)
    except (OSError, ValueError) as exc:
        print(f'{path}: not readable ({exc}); running the optimum reference again',
              file=sys.stderr, flush=True)
        return None
    if saved.get('signature') != expected:
        print(f'{path}: another experiment (scenario, episode length or cap differ); '
              'running the optimum reference again', file=sys.stderr, flush=True)
        return None
    return saved


def run_optimum(scenario_path: str, out: str, steps: int | None = None,
                iterations: int | None = None, label: str = 'optimum') -> dict:
    """Run (or reuse) the scenario's optimum reference into ``out``; return its summary.

    ``steps`` overrides the episode length, ``iterations`` caps L-BFGS-B's iterations
    (default :data:`~hybrid_mpc_ros.core.learning.optimum.MAX_ITERATIONS`). The summary:
    ``name`` ('optimum'), ``cost`` (its ``tracking`` part and its ``violation``, the
    weighted penalty), ``initial_cost``, ``iterations``, ``evaluations``
    (episodes flown), ``restarts``, ``reason`` (why it stopped), ``costs`` (best after
    each iteration), ``episode_steps``, ``wall_s``, ``theta`` and ``signature``.
    """
    scenario = load_scenario(scenario_path)
    steps = steps or scenario.tuning.episode_steps
    cap = iterations or optimum.MAX_ITERATIONS
    os.makedirs(out, exist_ok=True)
    expected = signature(scenario_path, steps, cap)
    saved = _stored(out, expected)
    if saved is not None:
        return saved
    start = time.perf_counter()

    def progress(k: int, best: float) -> None:
        if k == 1 or k % 10 == 0:
            print(f'[{label:13s}] iteration {k:4d} (cap {cap})  best cost {best:10.2f}  '
                  f'{time.perf_counter() - start:6.1f} s', file=sys.stderr, flush=True)

    result = optimum.optimum_reference(scenario, steps, cap, progress)
    wall_s = time.perf_counter() - start
    np.savez(os.path.join(out, FINAL_FILE), theta=result.theta, x=result.x, u=result.u)
    tracking, violation = scenario.cost().parts(result.x, result.u)
    summary = {'name': 'optimum', 'cost': result.cost, 'initial_cost': result.initial_cost,
               'tracking': float(tracking), 'violation': float(violation),
               'iterations': result.iterations, 'evaluations': result.evaluations,
               'restarts': result.restarts, 'reason': result.reason, 'costs': result.costs,
               'episode_steps': steps, 'max_iterations': cap, 'wall_s': wall_s,
               'theta': result.theta.tolist(), 'signature': expected}
    # written last and atomically: its presence means the npz beside it is complete
    fd, tmp = tempfile.mkstemp(dir=out, suffix='.tmp')
    with os.fdopen(fd, 'w') as stream:
        json.dump(summary, stream)
    os.replace(tmp, os.path.join(out, SUMMARY_FILE))
    print(f'[{label:13s}] {result.reason}: cost {result.cost:.2f} after {result.iterations} '
          f'iterations ({result.evaluations} episodes, {wall_s:.0f} s)', file=sys.stderr,
          flush=True)
    return summary
