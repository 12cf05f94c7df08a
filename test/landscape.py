"""A deterministic episode source with a known answer, for the tuner's tests.

:class:`Landscape` is a real function of theta returning :class:`EpisodeRecord` s: the
"policy" is ``u_t = M_t theta + c_t``, so with the real :class:`ClosedLoopCost` (input term
only) the closed-loop cost is ``C = |D (theta - optimum)|^2`` with ``D`` diagonal, and the
real model-based gradient through the records' ``du_dtheta = M_t`` is exact.
"""

import numpy as np

from hybrid_mpc_ros.core.learning import tuning
from hybrid_mpc_ros.core.learning.schedules import Schedule
from hybrid_mpc_ros.core.learning.episode import EpisodeRecord
from hybrid_mpc_ros.core.learning.objective import ClosedLoopCost
from hybrid_mpc_ros.core.model.quadcopter import NU, NX
from hybrid_mpc_ros.core.mpc import theta as th
from scenario_setup import scenario

N = th.N_THETA


class Landscape:
    """Episodes whose cost is ``|D (theta - optimum)|^2``: a known minimum (0 at optimum).

    ``T = 24`` steps of 4 inputs give 96 rows; the first 94 are ``D`` (diagonal, entries
    in [1, 3]), the last two are zero. ``abort(theta) -> reason`` marks episodes aborted.
    """

    steps = 24

    def __init__(self, seed=0, abort=None):
        rng = np.random.default_rng(seed)
        self.weights = rng.uniform(1.0, 3.0, N)
        self.optimum = rng.uniform(-1.0, 1.0, N)
        rows = np.zeros((4 * self.steps, N))
        rows[np.arange(N), np.arange(N)] = self.weights
        self.m = rows.reshape(self.steps, NU, N)
        self.u_ref = np.zeros(NU)
        self.offset = -(self.m @ self.optimum)             # c_t, shape (T, 4)
        self.cost = ClosedLoopCost(np.zeros(NX), self.u_ref, qc=np.zeros(NX), rc=np.ones(NU),
                                   pc=np.zeros(NX), x_lb=np.full(NX, -np.inf),
                                   x_ub=np.full(NX, np.inf), violation_weight=0.0)
        self.abort = abort
        self.calls = 0

    def value(self, theta):
        """The known cost of theta (94,)."""
        return float(np.sum((self.weights * (theta - self.optimum)) ** 2))

    def jacobians(self, x, u):
        """The model: the state never moves (all cost is on the inputs)."""
        return np.zeros((NX, NX)), np.zeros((NX, NU))

    def __call__(self, theta, sensitivities=True):
        """An :class:`EpisodeRecord` of theta (94,)."""
        self.calls += 1
        u = self.m @ theta + self.offset
        reason = self.abort(theta) if self.abort else ''
        steps = 3 if reason else self.steps               # an abort ends the episode early
        return EpisodeRecord(np.zeros((steps + 1, NX)), u[:steps],
                             np.zeros((steps, NU, NX)),
                             self.m[:steps] if sensitivities else np.zeros((steps, NU, N)),
                             np.zeros(steps, dtype=int), np.array(theta, dtype=float),
                             aborted=bool(reason), abort_reason=reason)


def landscape_tuner(land, method='model_based', iterations=10, theta0=None, **kwargs):
    """A :class:`tuning.Tuner` on ``land`` from theta0 (default 0.5 everywhere; box +-5)."""
    config = scenario().tuning_config(method=method, iterations=iterations, seed=5, delta=1e-6)
    theta0 = np.full(N, 0.5) if theta0 is None else theta0
    checkpoint = kwargs.pop('checkpoint', None)
    state = kwargs.pop('state', None)
    return tuning.Tuner(config, land, land.jacobians, land.cost, theta0, checkpoint,
                        state=state, **kwargs)


def history_rows(history):
    """History rows without the wall time (the only column that differs between runs)."""
    return [{k: v for k, v in row.items() if k != 'wall_s'} for row in history]


def constant(value):
    """The schedule ``value`` at every iteration."""
    return Schedule('constant', value, 0.0, 0.0, 1)


def paper_alpha():
    """The default scenario's step-size schedule (a decaying one with known constants)."""
    return scenario().tuning.alpha
