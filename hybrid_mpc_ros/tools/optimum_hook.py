"""The one place where ``reproduce`` reaches the optimum reference, when it exists.

The optimum reference (issue 10) is the exact closed-loop gradient from the plant's
Jacobians with a line-search method inside Theta, run until its relative improvement over
20 iterations is below 1e-4. It is being written in
``hybrid_mpc_ros.core.learning.optimum`` (function ``optimum_reference``) on another
branch. Until that module is merged, :func:`find_optimum_reference` returns None and
``reproduce`` reports the gap against the same-steps exact-model run only, saying the
optimum is pending; nothing here computes an optimum of its own.

The contract this hook assumes of it (adapt :func:`run_optimum` here, and only here, if
the merged module differs)::

    optimum_reference(scenario: Scenario, out_dir: str) -> result

with ``result`` a mapping or an object holding ``cost`` (float, C at the optimum theta),
``iterations`` (int) and ``theta`` (94,), and optionally ``x`` (T+1, 12) and ``u`` (T, 4),
the closed loop at that theta. ``out_dir`` is where it may keep a checkpoint to resume.
"""

from __future__ import annotations

import importlib
import os
from typing import Callable

import numpy as np

from hybrid_mpc_ros.core.learning.episode import rollout
from hybrid_mpc_ros.core.scenario import load_scenario

OPTIMUM_MODULE = 'hybrid_mpc_ros.core.learning.optimum'
PENDING = (f'pending: {OPTIMUM_MODULE} has no optimum_reference(scenario, out_dir) entry '
           'point yet')


def find_optimum_reference() -> Callable | None:
    """Return ``optimum.optimum_reference`` if that module exists, else None.

    Only the module's own absence means "not there yet"; an import error inside it (a
    missing dependency, a bug) propagates.
    """
    try:
        module = importlib.import_module(OPTIMUM_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name != OPTIMUM_MODULE:
            raise
        return None
    # the merged module has the optimiser (optimise, exact_gradient: the robustness bench
    # uses them) but not yet this entry point, which must also honour a run's episode
    # length: until it exists the reference stays pending here
    return getattr(module, 'optimum_reference', None)


def _field(result, name: str):
    if isinstance(result, dict):
        return result.get(name)
    return getattr(result, name, None)


def run_optimum(function: Callable, scenario_path: str, out: str) -> dict:
    """Run ``function`` (an ``optimum_reference``) on the scenario; return its summary.

    Returns ``{'name': 'optimum', 'cost', 'iterations', 'theta'}`` and writes
    ``optimum.final.npz`` (theta, x, u) into ``out`` like every other run, flying the
    closed loop at its theta when the result carries no trajectory.
    """
    scenario = load_scenario(scenario_path)
    folder = os.path.join(out, 'optimum')
    os.makedirs(folder, exist_ok=True)
    result = function(scenario, folder)
    theta = np.asarray(_field(result, 'theta'), dtype=float)
    x, u = _field(result, 'x'), _field(result, 'u')
    if x is None or u is None:
        policy = scenario.policy(theta=theta)
        record = rollout(scenario.plant().step, policy, scenario.x0,
                         scenario.tuning.episode_steps, False)
        x, u = record.x, record.u
    np.savez(os.path.join(out, 'optimum.final.npz'), theta=theta, x=x, u=u)
    return {'name': 'optimum', 'cost': float(_field(result, 'cost')),
            'iterations': int(_field(result, 'iterations')), 'theta': theta.tolist()}
