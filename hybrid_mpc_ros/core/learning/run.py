"""A tuning run's configuration, its state between iterations, and its checkpoint file.

:class:`TuningConfig` is what a run is (method, schedules, delta, seed, episode length,
Theta box); :class:`TuningState` where it stands after an iteration (theta, the best theta
and cost, the random state, the history, the rules' records); :func:`save_checkpoint`
writes both atomically as JSON after every iteration and :func:`load_checkpoint` reads
them back, so a run killed at any moment resumes exactly (:mod:`tuning` runs the
iterations, :mod:`reporting` decides whether a checkpoint may be resumed).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, is_dataclass
import json
import os
import tempfile

import numpy as np

from hybrid_mpc_ros.core.learning.schedules import eta_schedule, Schedule

METHODS = ('hybrid', 'model_based', 'zeroth_order', 'exact_model')
# 3: the config holds episode_steps and schedules carry first_k (scenario files); the state
# holds the step rule's, eta rule's and guard's records and the rollback count. Older files
# describe runs whose configuration this version cannot express: a run restarts from scratch.
CHECKPOINT_VERSION = 3
READABLE_VERSIONS = (3,)


@dataclass
class TuningConfig:
    """What a tuning run does (everything that changes its numbers).

    No defaults: the values are a scenario's (``config/scenarios``, built by
    :meth:`hybrid_mpc_ros.core.scenario.Scenario.tuning_config`). ``gamma`` is the
    exponent of the hybrid's mixing ``eta_k = 1/(k+1)^gamma`` with ``k`` counted from
    ``eta_first_k``; ``delta`` the zeroth-order smoothing radius; ``alpha`` the step-size
    schedule; ``episode_steps`` the episode length T; ``box_scale`` and ``box_abs_min`` the
    Theta box around the start (:func:`theta.default_box`). ``zo_directions`` (M, default
    1: the paper's) perturbed episodes make each zeroth-order estimate, their mean; with
    ``zo_antithetic`` they come in pairs ``v, -v`` (M even):
    :func:`~hybrid_mpc_ros.core.learning.gradients.averaged_zeroth_order_gradient`.
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
    zo_directions: int = 1
    zo_antithetic: bool = False

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f'method must be one of {METHODS}, got {self.method!r}')
        if self.iterations < 1 or self.episode_steps < 1 or not self.delta > 0:
            raise ValueError('iterations and episode_steps must be >= 1 and delta > 0')
        if self.zo_directions < 1 or (self.zo_antithetic and self.zo_directions % 2):
            raise ValueError(f'zo_directions must be >= 1, and even with zo_antithetic; got '
                             f'{self.zo_directions} (antithetic {self.zo_antithetic})')

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
    """Everything needed to continue a run exactly where it stopped.

    ``step_rule`` and ``eta_rule`` are :func:`rule_record` s (kind, settings, state) and
    ``guard`` the guard's (None: no guard), as of the last completed iteration; None in a
    fresh state (the :class:`Tuner` fills them in).
    """

    iteration: int                       # next iteration to run (1-based)
    theta: np.ndarray
    best_theta: np.ndarray
    best_cost: float
    rng_state: dict
    history: list = field(default_factory=list)
    guard_rollbacks: int = 0
    step_rule: dict | None = None
    eta_rule: dict | None = None
    guard: dict | None = None


def _json_clean(data):
    # what a checkpoint gives back, so a saved record compares equal to a fresh one
    return json.loads(json.dumps(data))


def rule_record(rule) -> dict | None:
    """``{'kind', 'settings', 'state'}`` of a step rule, eta rule or guard (None: None).

    ``settings`` are a dataclass rule's fields other than its ``state()`` keys (a rule
    that is not a dataclass has none); a guard has no state.
    """
    if rule is None:
        return None
    state = rule.state() if hasattr(rule, 'state') else {}
    settings = ({key: value for key, value in asdict(rule).items() if key not in state}
                if is_dataclass(rule) else {})
    return _json_clean({'kind': type(rule).__name__, 'settings': settings, 'state': state})


def save_checkpoint(path: str, config: TuningConfig, state: TuningState) -> None:
    """Write the run's state atomically (temp file + rename) as JSON."""
    payload = {'version': CHECKPOINT_VERSION, 'config': config.to_dict(),
               'iteration': state.iteration, 'theta': state.theta.tolist(),
               'best_theta': state.best_theta.tolist(), 'best_cost': state.best_cost,
               'rng_state': state.rng_state, 'history': state.history,
               'guard_rollbacks': state.guard_rollbacks, 'step_rule': state.step_rule,
               'eta_rule': state.eta_rule, 'guard': state.guard}
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
    """Read a checkpoint written by :func:`save_checkpoint` (this version only)."""
    with open(path) as stream:
        data = json.load(stream)
    version = data.get('version')
    if version not in READABLE_VERSIONS:
        raise ValueError(f'checkpoint {path} has version {version}; this version of '
                         f'hybrid_mpc_ros reads versions {READABLE_VERSIONS}')
    config = TuningConfig.from_dict(data['config'])
    records = {name: data[name] for name in ('step_rule', 'eta_rule', 'guard')}
    state = TuningState(data['iteration'], np.array(data['theta']),
                        np.array(data['best_theta']), data['best_cost'], data['rng_state'],
                        data['history'], data.get('guard_rollbacks', 0), **records)
    return config, state
