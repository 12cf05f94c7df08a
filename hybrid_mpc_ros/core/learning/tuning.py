"""The hybrid policy-optimisation loop, with atomic checkpoints and exact resume.

One iteration k (SPEC section 1)::

    episode at theta_k             -> C(theta_k), J_C (model-based gradient)
    episode at theta_k + delta v   -> G_zo            (skipped when eta_k = 1)
    theta_{k+1} = Proj_Theta(theta_k - alpha_k ((1 - eta_k) G_zo + eta_k J_C))

Methods: ``hybrid`` (eta_k = 1/(k+1)^gamma), ``model_based`` (eta = 1), ``zeroth_order``
(eta = 0) and ``exact_model`` (eta = 1 with the plant's own Jacobians: the exact gradient,
only available in simulation; the paper's "tuned with the exact model" reference).

The loop is independent of where episodes come from: it calls ``run_episode(theta,
sensitivities) -> EpisodeRecord``, which the simulated setup (:func:`simulated_episodes`)
or the ROS tuner node provides.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
import json
import os
import tempfile
import time
from typing import Callable

import numpy as np

from hybrid_mpc_ros.core.mpc import theta as th
from hybrid_mpc_ros.core.learning.episode import EpisodeRecord, rollout
from hybrid_mpc_ros.core.learning.gradients import (
    hybrid_direction, Jacobians, model_based_gradient, sample_unit_sphere,
    zeroth_order_gradient)
from hybrid_mpc_ros.core.learning.objective import ClosedLoopCost
from hybrid_mpc_ros.core.learning.schedules import eta_schedule, Schedule

METHODS = ('hybrid', 'model_based', 'zeroth_order', 'exact_model')
CHECKPOINT_VERSION = 2       # 2: schedules carry first_k; the config holds episode_steps


@dataclass
class TuningConfig:
    """What a tuning run does (everything that changes its numbers).

    No defaults: the values are a scenario's (``config/scenarios``, built by
    :meth:`hybrid_mpc_ros.core.scenario.Scenario.tuning_config`). ``gamma`` is the
    exponent of the hybrid's mixing ``eta_k = 1/(k+1)^gamma`` with ``k`` counted from
    ``eta_first_k``; ``delta`` the zeroth-order smoothing radius; ``alpha`` the step-size
    schedule; ``episode_steps`` the episode length T; ``box_scale`` and ``box_abs_min`` the
    Theta box around the start (:func:`theta.default_box`).
    """

    method: str
    iterations: int
    gamma: float
    delta: float
    alpha: Schedule
    eta_first_k: int
    episode_steps: int
    seed: int
    box_scale: float
    box_abs_min: float

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f'method must be one of {METHODS}, got {self.method!r}')
        if self.iterations < 1 or self.episode_steps < 1 or not self.delta > 0:
            raise ValueError('iterations and episode_steps must be >= 1 and delta > 0')

    def eta(self) -> Schedule:
        """Return the mixing schedule of this method."""
        if self.method == 'hybrid':
            return eta_schedule(self.eta_first_k, self.gamma)
        return eta_schedule(self.eta_first_k,
                            constant=0.0 if self.method == 'zeroth_order' else 1.0)

    def to_dict(self) -> dict:
        """JSON-friendly form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> 'TuningConfig':
        """Inverse of :meth:`to_dict`."""
        data = dict(data)
        data['alpha'] = Schedule(**data['alpha'])
        return cls(**data)


@dataclass
class TuningState:
    """Everything needed to continue a run exactly where it stopped."""

    iteration: int                       # next iteration to run (1-based)
    theta: np.ndarray
    best_theta: np.ndarray
    best_cost: float
    rng_state: dict
    history: list = field(default_factory=list)


def save_checkpoint(path: str, config: TuningConfig, state: TuningState) -> None:
    """Write the run's state atomically (temp file + rename) as JSON."""
    payload = {'version': CHECKPOINT_VERSION, 'config': config.to_dict(),
               'iteration': state.iteration, 'theta': state.theta.tolist(),
               'best_theta': state.best_theta.tolist(), 'best_cost': state.best_cost,
               'rng_state': state.rng_state, 'history': state.history}
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, suffix='.tmp')
    try:
        with os.fdopen(fd, 'w') as stream:
            json.dump(payload, stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_checkpoint(path: str) -> tuple[TuningConfig, TuningState]:
    """Read a checkpoint written by :func:`save_checkpoint`."""
    with open(path) as stream:
        data = json.load(stream)
    if data.get('version') != CHECKPOINT_VERSION:
        raise ValueError(f'checkpoint {path} has version {data.get("version")}, '
                         f'expected {CHECKPOINT_VERSION}')
    state = TuningState(data['iteration'], np.array(data['theta']),
                        np.array(data['best_theta']), data['best_cost'], data['rng_state'],
                        data['history'])
    return TuningConfig.from_dict(data['config']), state


EpisodeRunner = Callable[[np.ndarray, bool], EpisodeRecord]


class Tuner:
    """Runs :class:`TuningConfig` iterations on episodes from ``run_episode``.

    ``jacobians`` are the model's ``(G_x, G_u)`` for the model-based gradient (the nominal
    model, or the plant's for ``exact_model``). ``box`` is Theta. ``checkpoint`` (a path)
    is written after every iteration; ``progress(row)`` is called with each history row.
    """

    def __init__(self, config: TuningConfig, run_episode: EpisodeRunner,
                 jacobians: Jacobians, cost: ClosedLoopCost, theta0: np.ndarray,
                 checkpoint: str | None = None, progress=None, state: TuningState | None = None):
        self.config = config
        self.run_episode = run_episode
        self.jacobians = jacobians
        self.cost = cost
        self.box = th.default_box(theta0, config.box_scale, config.box_abs_min)
        self.checkpoint = checkpoint
        self.progress = progress
        self.eta = config.eta()
        if state is None:
            theta0 = self.box.project(np.asarray(theta0, dtype=float))
            rng = np.random.default_rng(config.seed)
            state = TuningState(1, theta0, theta0.copy(), float('inf'),
                                rng.bit_generator.state)
        self.state = state
        self.rng = np.random.default_rng()
        self.rng.bit_generator.state = state.rng_state

    def step(self) -> dict:
        """Run iteration ``state.iteration``; returns its history row."""
        cfg, state = self.config, self.state
        k = state.iteration
        start = time.perf_counter()
        alpha, eta = cfg.alpha(k), self.eta(k)
        theta = state.theta
        record = self.run_episode(theta, eta > 0.0)
        tracking, violation = self.cost.parts(record.x, record.u)
        cost = tracking + violation
        j_c = model_based_gradient(record, self.cost, self.jacobians) if eta > 0.0 else None
        g_zo = None
        if eta < 1.0:
            v = sample_unit_sphere(self.rng, th.N_THETA)
            perturbed = self.run_episode(theta + cfg.delta * v, False)
            g_zo = zeroth_order_gradient(self.cost(perturbed), cost, v, cfg.delta)
        direction = hybrid_direction(g_zo, j_c, eta)
        new_theta = self.box.project(theta - alpha * direction)
        if cost < state.best_cost:
            state.best_cost, state.best_theta = cost, theta.copy()
        row = {'iteration': k, 'cost': cost, 'tracking': tracking, 'violation': violation,
               'grad_model_norm': float(np.linalg.norm(j_c)) if j_c is not None else None,
               'grad_zo_norm': float(np.linalg.norm(g_zo)) if g_zo is not None else None,
               'step_norm': float(np.linalg.norm(new_theta - theta)), 'alpha': alpha,
               'eta': eta, 'solver_failures': record.failures,
               'wall_s': time.perf_counter() - start}
        state.history.append(row)
        state.theta = new_theta
        state.iteration = k + 1
        state.rng_state = self.rng.bit_generator.state
        if self.checkpoint:
            save_checkpoint(self.checkpoint, cfg, state)
        if self.progress:
            self.progress(row)
        return row

    def run(self) -> TuningState:
        """Run the remaining iterations (all of them, or the rest after a resume)."""
        while self.state.iteration <= self.config.iterations:
            self.step()
        return self.state


def simulated_episodes(plant_step, policy, x0: np.ndarray, steps: int) -> EpisodeRunner:
    """Build an episode runner on the simulated plant: set theta, reset, roll out."""
    def run(theta: np.ndarray, sensitivities: bool) -> EpisodeRecord:
        policy.set_theta(theta)
        return rollout(plant_step, policy, x0, steps, sensitivities)
    return run
