"""The hybrid policy-optimisation loop, with atomic checkpoints and exact resume.

One iteration k (SPEC section 1)::

    episode at theta_k             -> C(theta_k), J_C (model-based gradient)
    episode at theta_k + delta v   -> G_zo            (skipped when eta_k = 1)
    theta_{k+1} = Proj_Theta(theta_k - alpha_k ((1 - eta_k) G_zo + eta_k J_C))

Methods: ``hybrid`` (eta_k = 1/(k+1)^gamma), ``model_based`` (eta = 1), ``zeroth_order``
(eta = 0) and ``exact_model`` (eta = 1 with the plant's own Jacobians: the exact gradient,
only available in simulation; the paper's "tuned with the exact model" reference).

The loop is independent of where episodes come from. Its core is an ask/tell interface
that never blocks: :meth:`Tuner.ask` says which episode to run next (an
:class:`EpisodeRequest`: theta, whether sensitivities are needed, the role ``base`` or
``perturbed``), :meth:`Tuner.tell` takes the resulting :class:`EpisodeRecord` and, once an
iteration's episodes are all in, makes the update, writes the checkpoint and returns the
iteration's history row. The ROS tuner node calls them from its callbacks; offline,
:meth:`Tuner.step` and :meth:`Tuner.run` loop over ask/tell with ``run_episode(theta,
sensitivities) -> EpisodeRecord`` (:func:`simulated_episodes`), so both are one
implementation.

The random direction v of iteration k is drawn when the base episode is told, as the
only draw of that iteration, so the sequence of draws (and every number of a run) does not
depend on how long episodes take or where they come from. Checkpoints are written only
after complete iterations; a run stopped between the base and the perturbed episode
resumes by rerunning that iteration's episodes from the start: the checkpointed generator
state draws the same v again, so the resumed run equals an uninterrupted one.
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


@dataclass(frozen=True)
class EpisodeRequest:
    """An episode :meth:`Tuner.ask` wants run: ``role`` episode of iteration ``iteration``.

    ``theta`` (94,, read-only) is what the controller must run; ``sensitivities`` whether
    the record must carry the MPC's sensitivities (the model-based gradient needs them);
    ``role`` is ``'base'`` (at theta_k) or ``'perturbed'`` (at theta_k + delta v, which may
    lie outside the Theta box by up to delta).
    """

    iteration: int
    role: str
    theta: np.ndarray
    sensitivities: bool


class RecordRejected(ValueError):
    """:meth:`Tuner.tell` refused a record (malformed, non-finite or run at another theta)."""


@dataclass
class _Iteration:
    """The iteration in progress (never checkpointed: it reruns after a resume)."""

    k: int
    alpha: float
    eta: float
    theta: np.ndarray
    start: float
    request: EpisodeRequest
    base: dict | None = None        # cost parts, gradient and failures of the base episode
    direction: np.ndarray | None = None


def _read_only(array: np.ndarray) -> np.ndarray:
    array = np.array(array, dtype=float)
    array.flags.writeable = False
    return array


class Tuner:
    """Runs :class:`TuningConfig` iterations: ask/tell, or on episodes from ``run_episode``.

    ``run_episode`` may be None when episodes come through :meth:`ask`/:meth:`tell` (the
    ROS tuner node). ``jacobians`` are the model's ``(G_x, G_u)`` for the model-based
    gradient (the nominal model, or the plant's for ``exact_model``). ``box`` is Theta.
    ``checkpoint`` (a path) is written after every completed iteration; ``progress(row)``
    is called with each history row.
    """

    def __init__(self, config: TuningConfig, run_episode: EpisodeRunner | None,
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
        self._pending: _Iteration | None = None

    @property
    def finished(self) -> bool:
        """Whether every configured iteration has been run."""
        return self.state.iteration > self.config.iterations

    def ask(self) -> EpisodeRequest | None:
        """Return the episode to run next, or None when the run is finished.

        Asking again before telling returns the same request (run it again, for example
        after a refused record).
        """
        if self._pending is None:
            if self.finished:
                return None
            k = self.state.iteration
            eta = self.eta(k)
            theta = _read_only(self.state.theta)
            self._pending = _Iteration(k, self.config.alpha(k), eta, theta,
                                       time.perf_counter(),
                                       EpisodeRequest(k, 'base', theta, eta > 0.0))
        return self._pending.request

    def _check_record(self, record: EpisodeRecord, request: EpisodeRequest) -> None:
        """Raise :class:`RecordRejected` unless ``record`` answers ``request``."""
        what = f'{request.role} episode of iteration {request.iteration}'
        try:
            record.validate()
        except (ValueError, AttributeError) as exc:
            raise RecordRejected(f'{what}: {exc}') from None
        if not np.array_equal(record.theta, request.theta):
            diff = np.max(np.abs(record.theta - request.theta))
            raise RecordRejected(f'{what} ran at another theta (max |difference| {diff:.3g})')
        base = self._pending.base
        if base is not None and record.steps != base['steps']:
            raise RecordRejected(f'{what} has {record.steps} steps, the base episode '
                                 f'{base["steps"]}')

    def tell(self, record: EpisodeRecord) -> dict | None:
        """Take the record of the episode :meth:`ask` returned.

        Returns the iteration's history row when this record completed it (after the update
        and the checkpoint), else None. Raises :class:`RecordRejected` for a malformed or
        non-finite record or one run at another theta, leaving the tuner unchanged.
        """
        pending = self._pending
        if pending is None:
            raise RuntimeError('tell() needs an episode from ask() first')
        request = pending.request
        self._check_record(record, request)
        cfg = self.config
        if request.role == 'base':
            tracking, violation = self.cost.parts(record.x, record.u)
            cost = tracking + violation
            j_c = (model_based_gradient(record, self.cost, self.jacobians)
                   if pending.eta > 0.0 else None)
            pending.base = {'cost': cost, 'tracking': tracking, 'violation': violation,
                            'j_c': j_c, 'failures': record.failures, 'steps': record.steps}
            if pending.eta < 1.0:
                pending.direction = sample_unit_sphere(self.rng, th.N_THETA)
                pending.request = EpisodeRequest(
                    pending.k, 'perturbed',
                    _read_only(pending.theta + cfg.delta * pending.direction), False)
                return None
            return self._update(pending, None)
        g_zo = zeroth_order_gradient(self.cost(record), pending.base['cost'],
                                     pending.direction, cfg.delta)
        return self._update(pending, g_zo)

    def _update(self, pending: _Iteration, g_zo: np.ndarray | None) -> dict:
        """Finish iteration ``pending.k``: update, history row, checkpoint, progress."""
        cfg, state, base = self.config, self.state, pending.base
        theta, alpha, eta, j_c = pending.theta, pending.alpha, pending.eta, base['j_c']
        direction = hybrid_direction(g_zo, j_c, eta)
        if not np.all(np.isfinite(direction)):
            # finite records can still overflow a gradient; never let it into theta
            raise FloatingPointError(f'iteration {pending.k}: the update direction is not '
                                     'finite; theta left unchanged')
        new_theta = self.box.project(theta - alpha * direction)
        cost = base['cost']
        if cost < state.best_cost:
            state.best_cost, state.best_theta = cost, theta.copy()
        row = {'iteration': pending.k, 'cost': cost, 'tracking': base['tracking'],
               'violation': base['violation'],
               'grad_model_norm': float(np.linalg.norm(j_c)) if j_c is not None else None,
               'grad_zo_norm': float(np.linalg.norm(g_zo)) if g_zo is not None else None,
               'step_norm': float(np.linalg.norm(new_theta - theta)), 'alpha': alpha,
               'eta': eta, 'solver_failures': base['failures'],
               'wall_s': time.perf_counter() - pending.start}
        state.history.append(row)
        state.theta = new_theta
        state.iteration = pending.k + 1
        state.rng_state = self.rng.bit_generator.state
        self._pending = None
        if self.checkpoint:
            save_checkpoint(self.checkpoint, cfg, state)
        if self.progress:
            self.progress(row)
        return row

    def step(self) -> dict:
        """Run iteration ``state.iteration`` with ``run_episode`` (ask/tell); return its row."""
        if self.run_episode is None:
            raise RuntimeError('step() needs run_episode; feed episodes with ask()/tell()')
        while True:
            request = self.ask()
            if request is None:
                raise RuntimeError(f'all {self.config.iterations} iterations are done')
            row = self.tell(self.run_episode(request.theta, request.sensitivities))
            if row is not None:
                return row

    def run(self) -> TuningState:
        """Run the remaining iterations (all of them, or the rest after a resume)."""
        while not self.finished:
            self.step()
        return self.state


def simulated_episodes(plant_step, policy, x0: np.ndarray, steps: int) -> EpisodeRunner:
    """Build an episode runner on the simulated plant: set theta, reset, roll out."""
    def run(theta: np.ndarray, sensitivities: bool) -> EpisodeRecord:
        policy.set_theta(theta)
        return rollout(plant_step, policy, x0, steps, sensitivities)
    return run
