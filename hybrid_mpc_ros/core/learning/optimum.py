"""The optimum reference: a line-search method on the exact closed-loop gradient, in Theta.

What a tuning run is measured against ("the controller optimised with the exact model"
in the paper). Only possible in simulation: the gradient is :func:`exact_gradient`, the
model-based recursion (:func:`~hybrid_mpc_ros.core.learning.gradients.model_based_gradient`)
with the *plant's* own Jacobians, i.e. the exact derivative of the episode's cost along
the flown trajectory (what the ``exact_model`` method uses).

:func:`optimise` runs scipy's L-BFGS-B with the box Theta as its bounds, in the scaled
variables ``phi = theta / s`` (``s`` (n,) the entries' own scales, as
:meth:`~hybrid_mpc_ros.core.learning.step_rules.ScaleFreeSteps.relative` uses them; all
ones by default): theta's entries range from 0.1 to 9, and the quasi-Newton start and
the line search behave better on a problem whose variables have comparable sizes. C is
only piecewise smooth (the MPC's active set and the constraint penalty switch along the
trajectory), so the line search can fail at a kink; the run then restarts from the best
point with a fresh curvature memory, and ends when a restart gains nothing. It stops when
the best cost improved by less than ``tolerance`` (relative) over the last ``window``
iterations, or after ``max_iterations`` iterations (L-BFGS-B's, each one or a few
episodes). The result is a local optimum near theta0, which is what a tuner started at
theta0 can reach; it is not a global one.

:func:`optimum_reference` sets this up for a scenario: its plant, policy, closed-loop
cost and x0, the Theta box the tuner uses, entry scales ``max(|theta0|, floor)`` (the
scale-free step rule's floor, 1 without one), and an episode length that a run may
shorten (``reproduce --steps``) so the reference always compares with the runs it sits
beside.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import math
from typing import Callable

import numpy as np
import scipy.optimize

from hybrid_mpc_ros.core.learning.gradients import Jacobians, model_based_gradient
from hybrid_mpc_ros.core.learning.objective import ClosedLoopCost
from hybrid_mpc_ros.core.learning.tuning import simulated_episodes
from hybrid_mpc_ros.core.mpc import theta as th
from hybrid_mpc_ros.core.mpc.theta import ThetaBox

#: the issue's stopping rule: relative improvement below 1e-4 over 20 iterations
WINDOW, TOLERANCE = 20, 1e-4
#: a safety cap only; the stopping rule ends the published scenario's reference first
MAX_ITERATIONS = 500
#: points one line search may try (scipy's ``maxls`` default); fewer weaken the reference
LINE_SEARCH = 20

Objective = Callable[[np.ndarray], tuple[float, np.ndarray]]


def exact_gradient(run_episode, cost: ClosedLoopCost, jacobians: Jacobians) -> Objective:
    """Return ``objective(theta (n,)) -> (C, dC/dtheta (n,))`` from one episode each.

    ``run_episode(theta, sensitivities) -> EpisodeRecord`` flies an episode (for example
    :func:`~hybrid_mpc_ros.core.learning.tuning.simulated_episodes`); ``jacobians`` are
    the plant's (exact) ``(G_x, G_u)``. An aborted episode raises RuntimeError: the
    reference is computed on a simulated plant without an envelope.
    """
    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        record = run_episode(theta, True)
        if record.aborted:
            raise RuntimeError(f'optimum reference: episode aborted ({record.abort_reason})')
        return cost(record), model_based_gradient(record, cost, jacobians)
    return objective


@dataclass
class OptimumResult:
    """Outcome of :func:`optimise`.

    ``theta`` (n,) the best point found and ``cost`` its cost; ``initial_cost`` the cost
    at theta0; ``costs`` the best cost after each iteration; ``evaluations`` the episodes
    flown (every cost the line searches tried is in ``evaluated``); ``restarts`` after
    line-search failures; ``reason`` why it stopped.
    """

    theta: np.ndarray
    cost: float
    initial_cost: float
    iterations: int
    evaluations: int
    restarts: int
    reason: str
    costs: list = field(default_factory=list)
    evaluated: list = field(default_factory=list)
    x: np.ndarray | None = None
    u: np.ndarray | None = None


class _Stop(Exception):
    pass


def optimise(objective: Objective, theta0: np.ndarray, box: ThetaBox,
             entry_scale: np.ndarray | None = None, window: int = WINDOW,
             tolerance: float = TOLERANCE, max_iterations: int = MAX_ITERATIONS,
             line_search: int = LINE_SEARCH,
             progress: Callable[[int, float], None] | None = None) -> OptimumResult:
    """Minimise ``objective`` over the box from theta0 (n,); see the module docstring.

    ``objective(theta) -> (C, gradient (n,))`` (:func:`exact_gradient`); ``entry_scale``
    (n,) positive scales of the variables (default ones); the run stops when ``(best
    window iterations ago - best now) / |best now| < tolerance``, or after
    ``max_iterations``. ``line_search`` caps the points one line search tries (scipy's
    ``maxls``, default 20 as scipy's). Fewer are cheaper but weaken the reference, which
    inflates every gain measured against it: with 10, on the robustness family, 7 of 8
    vehicles stopped after 15 to 82 iterations (a line search failed and the restart made
    no progress), where an earlier run with scipy's 20 went on for up to 180 and ended up
    to 4.5 % lower (low_drag 974.0 against 1019.4). ``progress(iteration, best cost)`` is
    called after each iteration.
    """
    theta0 = box.project(np.asarray(theta0, dtype=float))
    scale = np.ones_like(theta0) if entry_scale is None else np.asarray(entry_scale, float)
    if scale.shape != theta0.shape or not np.all(scale > 0.0):
        raise ValueError('entry_scale must hold one positive number per entry of theta')
    bounds = list(zip(box.lower / scale, box.upper / scale))
    best = {'cost': math.inf, 'theta': theta0.copy()}
    evaluated, costs = [], []
    last = {}

    def fun(phi):
        theta = np.clip(phi * scale, box.lower, box.upper)     # L-BFGS-B stays inside
        if 'theta' in last and np.array_equal(theta, last['theta']):
            return last['value'], last['grad'] * scale        # a restart's first point
        value, grad = objective(theta)
        last.update(theta=theta, value=value, grad=grad)
        evaluated.append(float(value))
        if not math.isfinite(value) or not np.all(np.isfinite(grad)):
            raise FloatingPointError(f'optimum reference: non-finite cost or gradient '
                                     f'({value})')
        if value < best['cost']:
            best['cost'], best['theta'] = float(value), theta.copy()
        return value, grad * scale

    def converged() -> bool:
        if len(costs) <= window:
            return False
        before, now = costs[-1 - window], costs[-1]
        return (before - now) <= tolerance * abs(now)

    def callback(intermediate_result):
        costs.append(best['cost'])
        if progress is not None:
            progress(len(costs), best['cost'])
        if converged() or len(costs) >= max_iterations:
            raise _Stop

    initial_cost = fun(theta0 / scale)[0]
    restarts, reason = 0, ''
    while True:
        start_cost = best['cost']
        try:
            result = scipy.optimize.minimize(
                fun, best['theta'] / scale, jac=True, method='L-BFGS-B', bounds=bounds,
                callback=callback,
                options={'maxiter': max_iterations - len(costs), 'ftol': 0.0, 'gtol': 0.0,
                         'maxls': line_search})
        except _Stop:
            reason = ('converged: relative improvement below '
                      f'{tolerance:g} over {window} iterations' if converged()
                      else f'iteration cap {max_iterations}')
            break
        if len(costs) >= max_iterations:
            reason = f'iteration cap {max_iterations}'
            break
        if best['cost'] >= start_cost:
            reason = f'no progress after a restart ({result.message})'
            break
        restarts += 1                      # a line search failed at a kink: fresh memory
    return OptimumResult(best['theta'], best['cost'], initial_cost, len(costs),
                         len(evaluated), restarts, reason, costs, evaluated)


def optimum_reference(scenario, steps: int | None = None,
                      max_iterations: int = MAX_ITERATIONS,
                      progress: Callable[[int, float], None] | None = None,
                      episodes=None) -> OptimumResult:
    """Run the optimum reference of ``scenario`` (a :class:`~.scenario.Scenario`).

    From the scenario's theta0 (the tuner's start) inside the tuner's Theta box, with
    episodes of ``steps`` (default the scenario's T) from its x0 on its plant, until the
    stopping rule (:data:`WINDOW`, :data:`TOLERANCE`) or ``max_iterations``.
    ``episodes(theta, sensitivities) -> EpisodeRecord`` replaces the simulated episode
    runner (a wrapper that watches them); ``progress`` as in :func:`optimise`. The result
    carries the closed loop at its theta (``x``, ``u``).
    """
    steps = steps or scenario.tuning.episode_steps
    plant, cost = scenario.plant(), scenario.cost()
    if episodes is None:
        episodes = simulated_episodes(plant, scenario.policy(), scenario.x0, steps)
    theta0 = scenario.initial_theta()                 # the policy's start, the tuner's too
    config = scenario.tuning
    floor = scenario.rules.floor if scenario.rules.floor is not None else 1.0
    result = optimise(exact_gradient(episodes, cost, plant.jacobians), theta0,
                      th.default_box(theta0, config.box_scale, config.box_abs_min),
                      np.maximum(np.abs(theta0), floor), max_iterations=max_iterations,
                      progress=progress)
    final = episodes(result.theta, False)
    result.x, result.u = final.x, final.u
    return result
