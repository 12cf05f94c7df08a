"""A live session's settings and phases (:class:`SessionSettings`, :class:`Phase`)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

START_MODES = ('reset', 'fly_to_start')
HOLD_MODES = ('auto', 'never')


class Phase(Enum):
    """Where a :class:`LiveSession` is (:attr:`LiveSession.phase`); the value names it in logs."""

    IDLE = 'idle'                           # not started
    STARTUP = 'startup'                     # waiting for the first sample and odometry
    SET_THETA = 'set_theta'                 # reset mode, step 1: theta is being set
    HOLD = 'hold'                           # step 2: holding the controller
    TOKEN = 'token'                         # step 2: waiting for the token
    SIMULATOR_RESET = 'simulator_reset'     # step 3: the simulator is being reset
    CONTROLLER_RESET = 'controller_reset'   # step 3: the controller is being reset
    GO_TO_START = 'go_to_start'             # fly_to_start: x_ref is being set to x0
    SETTLE = 'settle'                       # fly_to_start: waiting for the vehicle to settle
    COLLECT = 'collect'                     # step 4: taking the episode's samples
    FINAL = 'final'                         # waiting for x[T] (and the final hold)
    BACKOFF = 'backoff'                     # waiting before a rerun
    FINISH_SET = 'finish_set'               # the end: the final theta is being set
    FINISH_RELEASE = 'finish_release'       # the end: the controller is being released
    FINISHED = 'finished'
    FAILED = 'failed'

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class SessionSettings:
    """How a :class:`LiveSession` runs episodes (the node's runtime parameters).

    ``start_mode``: ``'reset'`` or ``'fly_to_start'``. ``hold``: ``'auto'`` (use the
    controller's ``~/hold`` in reset mode if it accepts it) or ``'never'``. Timeouts [s]
    (wall): ``service_timeout_s`` for an answer to a call, ``message_timeout_s`` for the
    next expected sample or odometry, ``startup_timeout_s`` for the first ones,
    ``settle_timeout_s`` for the vehicle to settle at x0. ``max_episode_retries``: reruns
    of one episode before the session fails. Settling: position within
    ``settle_position_tol_m`` [m] of x0's, speed at most ``settle_velocity_tol_m_s``
    [m/s], for ``settle_time_s`` [s] of odometry time.
    """

    start_mode: str
    hold: str
    service_timeout_s: float
    message_timeout_s: float
    startup_timeout_s: float
    max_episode_retries: int
    settle_position_tol_m: float
    settle_velocity_tol_m_s: float
    settle_time_s: float
    settle_timeout_s: float

    def __post_init__(self):
        if self.start_mode not in START_MODES:
            raise ValueError(f'start_mode must be one of {START_MODES}, got {self.start_mode!r}')
        if self.hold not in HOLD_MODES:
            raise ValueError(f'hold must be one of {HOLD_MODES}, got {self.hold!r}')
        for name in ('service_timeout_s', 'message_timeout_s', 'startup_timeout_s',
                     'settle_timeout_s', 'settle_position_tol_m', 'settle_velocity_tol_m_s'):
            if not getattr(self, name) > 0.0:
                raise ValueError(f'{name} must be > 0, got {getattr(self, name)}')
        if not self.settle_time_s >= 0.0:
            raise ValueError(f'settle_time_s must be >= 0, got {self.settle_time_s}')
        if int(self.max_episode_retries) < 0:
            raise ValueError(f'max_episode_retries must be >= 0, got {self.max_episode_retries}')
