"""The tuners a user would pick instead of the hybrid, on the same budget of episodes.

What ``hybrid-mpc bench peers`` compares the hybrid with, each from its maintained
library and configured as that library's documentation recommends:

* **CMA-ES** (pycma, ``cma``): ``CMAEvolutionStrategy`` with its default population
  (``4 + 3 ln n``) and its default bound handling (``BoundTransform``) on the Theta box;
  ``sigma0`` = :data:`SIGMA0`. pycma asks for variables of comparable scale and a sigma0
  such that the optimum lies within about ``x0 +- 3 sigma0``; it runs in the scaled
  coordinates ``z_i = theta_i / s_i``, ``s_i = max(|theta0_i|, 0.1)`` (the scale-free
  step rule's entry sizes; the box is then ``|z_i| <= 10`` for the shipped scenarios), so
  sigma0 = 0.1 expects the tuned weights within about 30 % of their start, as a tuner
  started at a sensible theta0 does. Its final theta is the distribution mean
  (``result.xfavorite``, pycma's "current best estimate"). Seed ``seed + 1``: pycma
  draws a time-based seed for 0.
* **Bayesian optimisation** (bayesian-optimization, ``bayes_opt``): a scikit-learn
  Gaussian process (Matern 5/2, normalised targets: the library's defaults) with the
  library's default and recommended acquisition for an unconstrained problem (upper
  confidence bound, kappa 2.576), over the Theta box in the same scaled coordinates. Its
  own loop (``maximize``): theta0 first (``probe``), then its default 5 random points,
  then the acquisition's choices. Its final theta is the best one evaluated
  (``max``). optuna's GP sampler would be the other choice, but it needs PyTorch, which
  this package does not install; bayes_opt is maintained and needs only numpy, scipy and
  scikit-learn.

Both minimise the episode cost C(theta) as a black box: no sensitivities, one episode per
evaluation. With ``free`` = :func:`free_entries` ``(diagonal=True)`` they tune only Q's
and R's diagonals (p_Q, p_R: 16 entries; P stays at its start), where a black box has its
best chance.

Every method flies its episodes through one :class:`EpisodeCounter`, which records every
episode's cost (the safety figures count every flight, the hybrid's perturbed episodes
included) and refuses an episode past the budget, so the methods are compared on the
same number of episodes, not iterations (a hybrid iteration flies one or two).
:func:`hybrid_on_budget` runs a :class:`~hybrid_mpc_ros.core.learning.tuning.Tuner`
through ask/tell until the budget is spent. :func:`episodes_to_fraction` is the
comparison's speed figure.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from hybrid_mpc_ros.core.mpc import theta as th
from hybrid_mpc_ros.core.mpc.theta import ThetaBox

#: CMA-ES's initial step in the scaled coordinates (see the module docstring)
SIGMA0 = 0.1
#: the scaled coordinates' smallest entry size: theta_i / max(|theta0_i|, FLOOR)
FLOOR = 0.1
#: bayes_opt's random points after theta0 (``maximize``'s default init_points)
BO_INIT_POINTS = 5


class BudgetSpent(RuntimeError):
    """An episode was asked for after the budget was spent."""


class EpisodeCounter:
    """Flies episodes for one method and records them; at most ``budget`` of them.

    ``run_episode(theta (94,), sensitivities) -> record`` flies an episode (for example
    :func:`~hybrid_mpc_ros.core.learning.tuning.simulated_episodes`); ``cost(record) ->
    float`` is its closed-loop cost. ``costs`` and ``thetas`` list every episode flown, in
    order. ``progress(counter)``, if given, is called after each episode.
    """

    def __init__(self, run_episode: Callable, cost: Callable, budget: int, progress=None):
        self.run_episode, self.cost, self.budget = run_episode, cost, int(budget)
        self.progress = progress
        self.costs: list[float] = []
        self.thetas: list[np.ndarray] = []

    @property
    def remaining(self) -> int:
        """Episodes left in the budget."""
        return self.budget - len(self.costs)

    def __call__(self, theta: np.ndarray, sensitivities: bool):
        """Fly one episode at ``theta`` (94,) and return its record (an episode runner)."""
        if self.remaining <= 0:
            raise BudgetSpent(f'the budget of {self.budget} episodes is spent')
        theta = np.array(theta, dtype=float)
        record = self.run_episode(theta, sensitivities)
        self.costs.append(float(self.cost(record)))
        self.thetas.append(theta)
        if self.progress is not None:
            self.progress(self)
        return record

    def cost_of(self, theta: np.ndarray) -> float:
        """Fly one episode at ``theta`` (94,) without sensitivities; return its cost."""
        self(theta, False)
        return self.costs[-1]


def free_entries(diagonal: bool = False) -> np.ndarray:
    """Return the indices of the entries a peer tunes: all 94, or p_Q and p_R (16) if diagonal."""
    return np.arange(th.SLICE_R.stop if diagonal else th.N_THETA)


class _Scaled:
    """theta (94,) <-> the scaled free coordinates z (n,) = theta[free] / s, and the box."""

    def __init__(self, theta0: np.ndarray, box: ThetaBox, free: np.ndarray):
        self.theta0, self.box, self.free = np.array(theta0, dtype=float), box, free
        self.scale = np.maximum(np.abs(self.theta0[free]), FLOOR)
        self.z0 = self.theta0[free] / self.scale
        self.lower, self.upper = box.lower[free] / self.scale, box.upper[free] / self.scale

    def theta(self, z) -> np.ndarray:
        """Return the full parameter vector (94,) at the scaled z (n,), theta0 outside ``free``.

        The clip only undoes the rounding of ``z * s`` at a bound: both libraries keep z
        inside ``[lower, upper]``.
        """
        theta = self.theta0.copy()
        theta[self.free] = np.clip(np.asarray(z, dtype=float) * self.scale,
                                   self.box.lower[self.free], self.box.upper[self.free])
        return theta


def hybrid_on_budget(tuner, counter: EpisodeCounter) -> np.ndarray:
    """Run ``tuner`` (a :class:`~hybrid_mpc_ros.core.learning.tuning.Tuner`) to the budget.

    Episodes go through ``counter`` (ask/tell), so the last iteration may be cut after its
    base episode; it then makes no update. The tuner's ``config.iterations`` must not
    end the run first (each iteration flies at least one episode: ``iterations >=
    counter.budget`` suffices). Returns the tuner's theta (94,) at the end.
    """
    while counter.remaining > 0:
        request = tuner.ask()
        if request is None:
            break
        tuner.tell(counter(request.theta, request.sensitivities))
    return tuner.state.theta.copy()


def cma_es_on_budget(counter: EpisodeCounter, theta0: np.ndarray, box: ThetaBox,
                     seed: int, free: np.ndarray | None = None) -> np.ndarray:
    """Minimise the episode cost with pycma's CMA-ES until the budget is spent.

    ``theta0`` (94,) the start (the mean of the first population), ``box`` Theta, ``free``
    the tuned entries (default all; see :func:`free_entries`). A population cut by the
    budget is flown but not told. Returns the final theta (94,), pycma's distribution mean.
    """
    import cma
    space = _Scaled(theta0, box, free_entries() if free is None else free)
    options = {'bounds': [space.lower.tolist(), space.upper.tolist()],
               'seed': seed + 1, 'maxfevals': counter.budget, 'verbose': -9}
    strategy = cma.CMAEvolutionStrategy(space.z0.tolist(), SIGMA0, options)
    while counter.remaining > 0 and not strategy.stop():
        population = strategy.ask()
        values = []
        for z in population:
            if counter.remaining == 0:
                break
            values.append(counter.cost_of(space.theta(z)))
        if len(values) < len(population):
            break
        strategy.tell(population, values)
    return space.theta(strategy.result.xfavorite)


def bayes_opt_on_budget(counter: EpisodeCounter, theta0: np.ndarray, box: ThetaBox,
                        seed: int, free: np.ndarray | None = None) -> np.ndarray:
    """Minimise the episode cost with bayes_opt's Bayesian optimisation to the budget.

    Arguments as for :func:`cma_es_on_budget`. theta0 is the first episode, then
    :data:`BO_INIT_POINTS` random points (fewer if the budget is smaller), then the
    acquisition's. Returns the final theta (94,): the best one evaluated.
    """
    from bayes_opt import BayesianOptimization
    space = _Scaled(theta0, box, free_entries() if free is None else free)
    keys = [f'z{i:03d}' for i in range(space.z0.size)]     # names sort in entry order

    def target(**params) -> float:
        return -counter.cost_of(space.theta([params[key] for key in keys]))

    optimiser = BayesianOptimization(
        f=target, pbounds={key: (lo, hi) for key, lo, hi in zip(keys, space.lower, space.upper)},
        random_state=seed, verbose=0)
    optimiser.probe(dict(zip(keys, space.z0)), lazy=True)
    random_points = min(BO_INIT_POINTS, counter.remaining - 1)
    optimiser.maximize(init_points=random_points,
                       n_iter=counter.remaining - 1 - random_points)
    best = optimiser.max['params']
    return space.theta([best[key] for key in keys])


def episodes_to_fraction(costs, start: float, best: float,
                         fraction: float = 0.9) -> int | None:
    """Episodes a method needed to reach ``fraction`` of the best improvement ``start - best``.

    ``costs`` (n,) the method's episode costs in the order flown, ``start`` the cost at
    theta0, ``best`` the lowest cost any method found. Returns the 1-based number of the
    first episode with cost ``<= start - fraction (start - best)``, None if none reached it
    or if nothing improved on the start (``best >= start``).
    """
    if not best < start:
        return None
    target = start - fraction * (start - best)
    hits = np.flatnonzero(np.asarray(costs, dtype=float) <= target)
    return int(hits[0]) + 1 if hits.size else None
