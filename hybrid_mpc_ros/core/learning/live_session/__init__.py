"""Live tuning through a running controller: the tuner node's episode protocol (ROS-free).

:class:`LiveSession` is a state machine between a :class:`~hybrid_mpc_ros.core.learning.
tuning.Tuner` (ask/tell) and a running controller and vehicle (or simulator). It is fed
events and returns actions; it never waits, sleeps or touches ROS, so the node that runs it
stays a thin translator and the protocol is tested deterministically without ROS.

Events (methods; each returns a list of actions):

* :meth:`~LiveSession.start`: services are there, begin;
* :meth:`~LiveSession.sample`: one :class:`SensitivitySample` from the controller's
  ``~/sensitivity``;
* :meth:`~LiveSession.odometry`: one odometry message as ``(stamp, x)``, ``x`` (12,) the
  state as the controller decodes it;
* :meth:`~LiveSession.result`: the outcome of an action's call (``call`` id and a typed
  answer of :mod:`~hybrid_mpc_ros.core.control.answers`), for :class:`SetParameters` and
  :class:`CallService`;
* :meth:`~LiveSession.tick`: time passes (checks the timeouts; call it a few times a
  second).

Actions: :class:`SetParameters` (one ``set_parameters_atomically`` call on the
controller), :class:`CallService` (the controller's ``~/hold`` and ``~/reset``, the
simulator's ``~/reset``), :class:`Log`, :class:`EpisodeDone`, :class:`IterationDone`, and
at the end :class:`Finished` or :class:`Failed`.

**Episodes started by a reset** (``start_mode: reset``, simulation). In lockstep (the
controller's odometry trigger, which has ``~/hold``) the ROS run reproduces the offline
rollout exactly: the solver's warm start changes commands at the 1e-9 level and the
zeroth-order difference ``(C(theta + delta v) - C(theta)) / delta`` amplifies that, so
the controller's solver is reset right before the episode's first solve, as
:func:`~hybrid_mpc_ros.core.learning.episode.rollout` does::

    1. set theta (and x_ref, first episode) in one atomic set; wait for its success. The
       episode's revision r is the first one above the last revision seen in samples.
    2. hold the controller (~/hold true); wait until the token is back at the controller:
       the odometry answering the last command it sent (stamp = the last answered
       odometry stamp, which its answer names, + one period) has arrived.
    3. reset the simulator (it publishes x0 at once, the controller stores it; the
       session waits until it sees that odometry too), reset the controller's solver,
       release the hold: the controller answers x0 at once.
    4. collect exactly T samples of revision r (the first one must be x0, exactly as the
       odometry carries it, at the reset odometry's stamp), hold again (the loop stops;
       the next episode starts from there), take x[T] from the odometry one period after
       the last sample, hand the record to the tuner.

The hold at the end of an episode keeps the loop from running while the tuner computes,
so an episode's steps are the only ones flown. With the wall-clock trigger (a realtime
simulator) the controller refuses ``~/hold``; the session finds that out at start (by
releasing any hold a previous run left) and then starts an episode at the first sample of
revision r whose odometry stamp is at or after the reset odometry's stamp.

**Episodes started by flying back** (``start_mode: fly_to_start``, a vehicle that cannot
be teleported; works in simulation too): set the controller's x_ref to hover at x0's
position (theta unchanged), wait until the vehicle has stayed within
``settle_position_tol_m`` of x0's position at a speed of at most
``settle_velocity_tol_m_s`` for ``settle_time_s`` (odometry time), then set theta and
the target x_ref in one atomic set (revision r) and count the steps of r from its first
sample, which must still be within the tolerance. The episode starts where the vehicle
is, not exactly at x0 (docs/protocol.md says what that does to the costs).

**Envelope aborts.** A sample of the episode's revision with the status
:data:`~hybrid_mpc_ros.core.learning.samples.ENVELOPE_ABORT_STATUS` says that the
controller's state left its envelope at that step and that it flies the safe theta from
there (:mod:`~hybrid_mpc_ros.core.mpc.safe_control`). The episode ends at that state: the
record is aborted (the steps flown, x[t] the sample's state), the tuner counts it as a
failed episode and rolls back to its best theta (:class:`Tuner`), and the session goes on
with the next episode as after any other (holding the controller first where it can).

**Robustness.** A step the :class:`EpisodeBuilder` refuses (missing, repeated or
reordered step, wrong revision, non-finite values), a wrong start, a service call
without an answer within ``service_timeout_s``, a refused call or parameter set, or an
expected message missing for ``message_timeout_s`` discards the episode and reruns it
from step 1; each is logged and counted (:attr:`LiveSession.retries`,
:attr:`LiveSession.rejections`). More than ``max_episode_retries`` reruns of one episode
in a row fail the session with the last reason. Answers to calls that were given up are
recognised by their call id and ignored.

Reruns caused by a call (refused, unanswered, its service missing: the node reports it
with :meth:`~LiveSession.unavailable` instead of sending a request nobody receives, or a
restarted controller) start after a backoff of :data:`BACKOFF_FIRST_S` doubling up to
:data:`BACKOFF_MAX_S`, so a node being restarted has time to come back. The controller
names its revision when it is reset right before an episode
(:class:`~hybrid_mpc_ros.core.control.answers.ResetAnswer`): the episode then takes
exactly the samples of that revision, whatever stale or duplicated messages arrive; a
revision at or below one named before means the controller process was restarted (with
its default theta and x_ref), and the episode is rerun with both pushed again.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import dataclass
from enum import Enum
import time
from typing import Callable

import numpy as np

from hybrid_mpc_ros.core.control.answers import Answer, HoldAnswer, Refused, ResetAnswer
from hybrid_mpc_ros.core.learning.episode import EpisodeBuilder, EpisodeRejected
from hybrid_mpc_ros.core.learning.samples import (ENVELOPE_ABORT_STATUS, NANOS_PER_SECOND,
                                                  SensitivitySample, Stamp)
from hybrid_mpc_ros.core.learning.tuning import EpisodeRequest, RecordRejected, Tuner
from hybrid_mpc_ros.core.model.frames import odometry_arrays_to_state, state_to_odometry_arrays
from hybrid_mpc_ros.core.mpc import theta as th

START_MODES = ('reset', 'fly_to_start')
HOLD_MODES = ('auto', 'never')
SERVICES = ('hold', 'controller_reset', 'simulator_reset')
ODOMETRY_KEPT = 4096            # odometry states kept by stamp (for x[T], reset and token)
# reruns after a call failed (refused, unanswered, service missing) wait this long first,
# doubling per rerun up to the maximum: a restarting controller or simulator gets time to
# come back (0.5 + 1 + 2 + 4 + 8 s over the default 5 reruns) instead of being hammered
BACKOFF_FIRST_S, BACKOFF_MAX_S = 0.5, 8.0
BACKOFF_KINDS = ('refused', 'timeout', 'unavailable', 'controller_restart')


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


# ------------------------------------------------------------------ actions

@dataclass(frozen=True)
class SetParameters:
    """Set ``values`` (ROS parameter name -> list of doubles) on the controller atomically."""

    call: int
    values: dict


@dataclass(frozen=True)
class CallService:
    """Call ``service`` (one of :data:`SERVICES`); ``data`` is the hold flag for ``hold``."""

    call: int
    service: str
    data: bool | None = None


@dataclass(frozen=True)
class Log:
    """A line for the node's log; ``level`` is ``'info'``, ``'warn'`` or ``'error'``."""

    level: str
    text: str


@dataclass(frozen=True)
class EpisodeDone:
    """An episode the tuner took: ``info`` holds :data:`EPISODE_FIELDS`."""

    info: dict


@dataclass(frozen=True)
class IterationDone:
    """An iteration completed: the tuner's history ``row`` plus the session's columns.

    ``theta`` (94,) is theta after the iteration. The extra columns of ``row``:
    ``theta_revision`` (the base episode's), ``retries`` (episode reruns so far),
    ``rollbacks`` (the tuner's refused iterations so far), ``episodes`` (taken so far).
    """

    row: dict
    theta: np.ndarray


@dataclass(frozen=True)
class Finished:
    """Every iteration is done; the final theta was pushed to the controller."""

    message: str


@dataclass(frozen=True)
class Failed:
    """The session gave up; ``reason`` says why (for a one-line error)."""

    reason: str


# the calls a session makes, by key, with what they are for (log lines)
CALLS = {
    'release_stale': 'release a hold left from before',
    'set_theta': 'set theta',
    'hold': 'hold the controller',
    'simulator_reset': 'reset the simulator',
    'controller_reset': 'reset the controller',
    'release': 'release the controller',
    'final_hold': 'hold the controller after the episode',
    'go_to_start': 'set x_ref to hover at x0',
    'set_theta_fly': 'set theta and the target',
    'finish_set': 'set the final theta',
    'finish_release': 'release the controller at the end',
}
EPISODE_FIELDS = ('iteration', 'role', 'revision', 'steps', 'attempts', 'start_stamp_s',
                  'start_position_error_m', 'start_speed_m_s', 'cost', 'wall_s')


def measured_state(x: np.ndarray) -> np.ndarray:
    """``x`` (12,) as the controller reads it back from the odometry the simulator sends.

    The round trip through the quaternion and the body-frame twist changes the last bits
    of some entries; the first sample of a reset episode must carry exactly this.
    """
    return odometry_arrays_to_state(*state_to_odometry_arrays(x))


def hover_reference(x: np.ndarray) -> np.ndarray:
    """x_ref (12,) that hovers at ``x``'s position and yaw: zero speeds, level attitude."""
    ref = np.zeros_like(np.asarray(x, dtype=float))
    ref[0:3] = x[0:3]
    ref[8] = x[8]
    return ref


class _Retry(Exception):
    """Internal: discard the episode in progress (``kind`` counted, ``reason`` logged)."""

    def __init__(self, kind: str, reason: str):
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


class LiveSession:
    """Runs a :class:`Tuner`'s episodes on a live controller; see the module docstring.

    ``period_s`` [s] is the control period; ``x0`` (12,) the episodes' initial state;
    ``x_ref`` (12,) the target the episodes fly to. ``clock()`` returns wall seconds
    (monotonic) for the timeouts; tests pass a fake one.
    """

    def __init__(self, tuner: Tuner, settings: SessionSettings, period_s: float,
                 x0: np.ndarray, x_ref: np.ndarray, clock: Callable[[], float] = time.monotonic):
        self.tuner = tuner
        self.settings = settings
        self.period_ns = round(period_s * NANOS_PER_SECOND)
        self.x0 = np.array(x0, dtype=float)
        self.x_ref = np.array(x_ref, dtype=float)
        self.clock = clock
        self._x0_measured = measured_state(self.x0)
        self._start_ref = hover_reference(self.x0)
        self._settle_ns = round(settings.settle_time_s * NANOS_PER_SECOND)
        self.phase = Phase.IDLE
        self.retries = 0
        self.stale_odometry = 0          # odometry ignored: older than the newest one
        self.rejections: Counter = Counter()
        self.episodes = 0
        self.hold_available = settings.start_mode == 'reset' and settings.hold == 'auto'
        self._held = False
        self._x_ref_sent = False
        self._calls = 0
        self._pending: dict[int, tuple[str, float]] = {}      # call id: (what, deadline)
        self._deadline: tuple[float, str] | None = None       # (deadline, what is awaited)
        self._last_revision = -1
        self._last_sample_ns: int | None = None
        self._last_odom_ns: int | None = None
        self._odometry: OrderedDict[int, np.ndarray] = OrderedDict()
        self._request: EpisodeRequest | None = None
        self._attempt = 0
        self._episode_start = 0.0
        self._prev_revision = -1
        self._builder: EpisodeBuilder | None = None
        self._token_ns: int | None = None
        self._token_target: int | None = None      # odometry stamp that brings the token
        self._reset_after_ns: int | None = None
        self._reset_ns: int | None = None
        self._reset_done = False
        self._last_step_ns: int | None = None     # odometry stamp of the episode's last step
        self._final_hold_done = True
        self._abort_sample: SensitivitySample | None = None    # the envelope abort's step
        self._settled_since: int | None = None
        self._start_info: dict = {}
        self._base_revision: int | None = None
        self._episode_revision: int | None = None     # named by the set's answer
        self._answered_revision: int | None = None    # the newest one any answer named
        self._resume_at: float | None = None          # end of a backoff before a rerun

    # ------------------------------------------------------------------ state
    @property
    def done(self) -> bool:
        """Whether the session has finished or failed (nothing more will happen)."""
        return self.phase in (Phase.FINISHED, Phase.FAILED)

    @property
    def collecting(self) -> bool:
        """Whether an episode's samples are being collected (every sample is needed)."""
        return self.phase in (Phase.COLLECT, Phase.FINAL)

    # ------------------------------------------------------------------ events
    def start(self) -> list:
        """Begin: wait for the controller's first samples and odometry (and probe ~/hold)."""
        if self.phase != Phase.IDLE:
            raise RuntimeError(f'start() called twice (phase {self.phase})')
        self.phase = Phase.STARTUP
        self._wait('the first sensitivity sample and odometry from the controller and '
                   'vehicle', self.settings.startup_timeout_s)
        actions = [Log('info', f'tuning {self.tuner.config.method}: iterations '
                               f'{self.tuner.state.iteration}..{self.tuner.config.iterations}, '
                               f'{self.tuner.config.episode_steps} steps per episode, start '
                               f'mode {self.settings.start_mode}')]
        if self.settings.start_mode == 'fly_to_start' and \
                self.tuner.config.method != 'model_based':
            actions.append(Log('warn', 'fly_to_start: every episode starts somewhere within '
                                       'the settle tolerance of x0, so the costs the '
                                       'zeroth-order difference compares differ by about '
                                       '|dC/dx0| x tolerance, far more than theta changes '
                                       'them by delta (docs/protocol.md: Starting episodes on a '
                                       'vehicle); consider method model_based'))
        if self.hold_available:
            # release a hold a previous run may have left; a refusal means the controller
            # runs on its wall-clock timer (no hold there)
            actions.append(self._call('release_stale', 'hold', False))
        return actions + self._check_startup()

    def sample(self, sample: SensitivitySample) -> list:
        """Take one sample of the controller's ``~/sensitivity``."""
        stamp_ns = sample.odom_stamp.nanoseconds
        if sample.revision > self._last_revision:
            self._last_revision = sample.revision
        if self._last_sample_ns is None or stamp_ns > self._last_sample_ns:
            self._last_sample_ns = stamp_ns
        return self._guard(self._on_sample, sample)

    def odometry(self, stamp, x: np.ndarray) -> list:
        """Take one odometry message: its stamp (:class:`Stamp`, ``(sec, nanosec)``), x (12,)."""
        stamp_ns = Stamp.of(stamp).nanoseconds
        x = np.asarray(x, dtype=float)
        if self._last_odom_ns is not None and stamp_ns < self._last_odom_ns:
            # stamps never go back (simulation time neither, even on a reset): an older
            # one is a stale or bogus message, refused as the controller refuses it
            self.stale_odometry += 1
            return []
        self._odometry[stamp_ns] = x
        self._odometry.move_to_end(stamp_ns)
        while len(self._odometry) > ODOMETRY_KEPT:
            self._odometry.popitem(last=False)
        if self._last_odom_ns is None or stamp_ns >= self._last_odom_ns:
            self._last_odom_ns = stamp_ns
        return self._guard(self._on_odometry, stamp_ns, x)

    def result(self, call: int, answer: Answer) -> list:
        """Take the answer to call ``call`` (of a :class:`SetParameters`, :class:`CallService`).

        ``answer``: :class:`Refused` when the call failed, else :class:`HoldAnswer`,
        :class:`ResetAnswer` or :class:`Accepted` (a controller that names no stamp or
        revision is understood too).
        """
        entry = self._pending.pop(call, None)
        if entry is None:
            return []                    # an answer to a call given up on: ignore it
        return self._guard(self._on_result, entry[0], answer)

    def unavailable(self, call: int, service: str) -> list:
        """Take the news that call ``call`` was not made: its ``service`` is not there.

        The node checks a service before calling it (a request to a missing service is
        lost, and would only be noticed at the timeout); the episode is rerun after a
        backoff (:data:`BACKOFF_FIRST_S`), so a restarting node gets time to come back.
        """
        entry = self._pending.pop(call, None)
        if entry is None:
            return []
        what = entry[0]
        reason = f'{CALLS[what]}: the service {service} is not available'
        if what == 'release_stale':
            # at start: ask again until it is there (the startup timeout still applies)
            return [self._call('release_stale', 'hold', False)]
        if what in ('finish_set', 'finish_release'):
            return self._guard(self._on_result, what, Refused(reason))
        return self._guard(self._raise, _Retry('unavailable', reason))

    @staticmethod
    def _raise(exc: Exception) -> list:
        raise exc

    def tick(self) -> list:
        """Check the timeouts and backoffs (call a few times a second)."""
        now = self.clock()
        if self.phase == Phase.BACKOFF:
            if now < self._resume_at:
                return []
            self._resume_at = None
            return self._guard(self._begin_attempt)
        for call, (what, deadline) in list(self._pending.items()):
            if now > deadline:
                del self._pending[call]
                if what == 'release_stale':
                    # at start a service may be seen before its answers can come back (a
                    # restarted tuner meets a running controller): ask again, within the
                    # startup timeout
                    return [Log('info', f'{CALLS[what]}: no answer within '
                                        f'{self.settings.service_timeout_s:g} s; asking '
                                        'again'),
                            self._call('release_stale', 'hold', False)]
                return self._guard(self._timeout, f'{CALLS[what]}: no answer within '
                                                  f'{self.settings.service_timeout_s:g} s')
        if self._deadline is not None and now > self._deadline[0]:
            what = self._deadline[1]
            self._deadline = None
            return self._guard(self._timeout, f'waited in vain for {what}')
        return []

    # ------------------------------------------------------------------ plumbing
    def _guard(self, handler, *args) -> list:
        """Run an event handler; turn a :class:`_Retry` into a rerun of the episode."""
        if self.done:
            return []
        try:
            return handler(*args)
        except _Retry as retry:
            return self._retry(retry.kind, retry.reason)

    def _call(self, what: str, service: str | None = None, data=None, values=None):
        """Start the call ``what`` (a key of :data:`CALLS`): a service or a parameter set."""
        self._calls += 1
        self._pending[self._calls] = (what, self.clock() + self.settings.service_timeout_s)
        if values is not None:
            return SetParameters(self._calls, values)
        return CallService(self._calls, service, data)

    def _wait(self, what: str, timeout_s: float | None = None) -> None:
        timeout_s = self.settings.message_timeout_s if timeout_s is None else timeout_s
        self._deadline = (self.clock() + timeout_s, what)

    def _timeout(self, reason: str) -> list:
        if self.phase == Phase.STARTUP:
            return self._fail(f'{reason} (is the controller running, and is the vehicle or '
                              'simulator publishing odometry?)')
        if self.phase in (Phase.FINISH_SET, Phase.FINISH_RELEASE):
            return self._finish_done(f'; {reason}')
        raise _Retry('timeout', reason)

    def _fail(self, reason: str) -> list:
        self.phase = Phase.FAILED
        self._pending.clear()
        self._deadline = None
        return [Log('error', reason), Failed(reason)]

    def _retry(self, kind: str, reason: str) -> list:
        """Discard the episode in progress and rerun it, or fail after too many reruns."""
        self.retries += 1
        self.rejections[kind] += 1
        self._attempt += 1
        request = self._request
        what = (f'{request.role} episode of iteration {request.iteration}'
                if request is not None else 'episode')
        if self._attempt > self.settings.max_episode_retries:
            return self._fail(f'the {what} failed {self._attempt} times in a row; last: '
                              f'{reason}')
        self._pending.clear()
        self._deadline = None
        self._builder = None
        # after a failure the controller may or may not be held: hold again to be sure
        self._held = False
        text = (f'{what} discarded ({kind}): {reason}; rerun {self._attempt} of at most '
                f'{self.settings.max_episode_retries}')
        if kind in BACKOFF_KINDS:
            delay = min(BACKOFF_FIRST_S * 2 ** (self._attempt - 1), BACKOFF_MAX_S)
            self.phase = Phase.BACKOFF
            self._resume_at = self.clock() + delay
            return [Log('warn', f'{text} in {delay:g} s')]
        return [Log('warn', text)] + self._begin_attempt()

    def _theta_values(self, theta: np.ndarray, x_ref: np.ndarray | None) -> dict:
        values = th.to_parameters(theta)
        if x_ref is not None:
            values['x_ref'] = [float(v) for v in x_ref]
        return values

    # ------------------------------------------------------------------ startup
    def _check_startup(self) -> list:
        if self.phase != Phase.STARTUP or self._pending:
            return []
        if self._last_sample_ns is None or self._last_odom_ns is None:
            return []
        self._deadline = None
        return self._next_episode()

    # ------------------------------------------------------------------ episodes
    def _next_episode(self) -> list:
        request = self.tuner.ask()
        if request is None:
            return self._finish()
        self._request = request
        self._attempt = 0
        self._episode_start = self.clock()
        return self._begin_attempt()

    def _begin_attempt(self) -> list:
        """Step 1 of an episode (either start mode)."""
        self._builder = None
        self._reset_ns = None
        self._reset_done = False
        self._last_step_ns = None
        self._abort_sample = None
        self._start_info = {}
        self._episode_revision = None
        if self.settings.start_mode == 'fly_to_start':
            self.phase = Phase.GO_TO_START
            return [self._call('go_to_start',
                               values={'x_ref': [float(v) for v in self._start_ref]})]
        self.phase = Phase.SET_THETA
        self._prev_revision = self._last_revision
        x_ref = None if self._x_ref_sent else self.x_ref
        return [self._call('set_theta', values=self._theta_values(self._request.theta, x_ref))]

    def _on_result(self, what: str, answer: Answer) -> list:
        refused = isinstance(answer, Refused)
        if what == 'release_stale':
            actions = []
            if refused:
                self.hold_available = False
                actions = [Log('info', f'the controller has no ~/hold ({answer.reason}): '
                                       'episodes start at the first sample after the reset '
                                       'odometry')]
            return actions + self._check_startup()
        if what in ('finish_set', 'finish_release'):
            return self._on_finish_result(what, answer)
        if refused:
            raise _Retry('refused', f'{CALLS[what]} refused: {answer.reason}')
        if what == 'set_theta':
            self._x_ref_sent = True          # the first successful set carried it
            if self.hold_available and not self._held:
                self.phase = Phase.HOLD
                return [self._call('hold', 'hold', True)]
            return self._await_token()
        if what == 'hold':
            self._held = True
            self._note_answered(answer)
            return self._await_token()
        if what == 'simulator_reset':
            self._reset_done = True
            return self._check_reset_odometry()
        if what == 'controller_reset':
            self._check_revision(answer)
            if not self.hold_available:
                return self._collect()
            # collect from now on: the controller answers x0 before it answers the call
            actions = [self._call('release', 'hold', False)]
            return actions + self._collect()
        if what == 'release':
            self._held = False
            return []
        if what == 'final_hold':
            self._final_hold_done = True
            self._held = True
            self._note_answered(answer)
            return self._check_final()
        if what == 'go_to_start':
            self.phase = Phase.SETTLE
            self._settled_since = None
            self._wait('the vehicle to settle at x0', self.settings.settle_timeout_s)
            return self._check_settled()
        if what == 'set_theta_fly':
            return []                    # already collecting: the new revision starts it
        raise RuntimeError(f'unexpected answer to {what!r} in phase {self.phase}')

    def _check_revision(self, answer: Answer) -> None:
        """Read the revision the controller's reset answer names; _Retry if it restarted.

        The controller is reset after theta was set, so a controller that names its
        revision (:class:`ResetAnswer`) lets the episode take exactly the samples of that
        revision. A revision at or below one named before means a new controller process
        (its revisions start again from 0) running its default theta and x_ref: the
        episode is rerun with theta and x_ref pushed again. Without a named revision the
        episode's is the first one above the last revision seen in samples.
        """
        if not isinstance(answer, ResetAnswer):
            return
        revision = answer.revision
        previous, self._answered_revision = self._answered_revision, revision
        if previous is not None and revision <= previous:
            self._x_ref_sent = False
            raise _Retry('controller_restart',
                         f'the controller restarted (its theta revision is {revision}, '
                         f'after {previous}): theta and x_ref are pushed again')
        self._episode_revision = revision

    # -- reset mode ------------------------------------------------------------------
    def _note_answered(self, answer: Answer) -> None:
        """Read which odometry stamp brings the token back from the hold's answer.

        The answer names the last odometry the controller answered (a), so the odometry
        a + one period, the simulator's answer to that command, is the one to wait for.
        'none' (it has answered nothing yet): whatever odometry it holds. A controller
        whose answer does not say: the newest sample's stamp + one period, which is
        right unless that sample is still on its way when the answer arrives.
        """
        if not isinstance(answer, HoldAnswer):
            self._token_target = None
            return
        answered = answer.answered
        self._token_target = (-1 if answered is None else
                              answered.nanoseconds + self.period_ns)

    def _await_token(self) -> list:
        """Step 2: wait until the odometry answering the newest sample's command is in."""
        if not self.hold_available:
            return self._reset_simulator()
        self.phase = Phase.TOKEN
        self._wait('the odometry answering the last command (token back at the controller)')
        return self._check_token()

    def _check_token(self) -> list:
        if self._last_odom_ns is None:
            return []
        if self._token_target is not None:
            if self._last_odom_ns < self._token_target:
                return []
        elif (self._last_sample_ns is None
              or self._last_odom_ns != self._last_sample_ns + self.period_ns):
            return []
        self._token_ns = self._last_odom_ns
        return self._reset_simulator()

    def _reset_simulator(self) -> list:
        """Step 3: reset the simulator; the reset odometry must be seen before going on."""
        self.phase = Phase.SIMULATOR_RESET
        # the reset state comes with the stamp of the newest odometry (lockstep: the
        # token's) or later; in lockstep it may arrive before the service's answer
        self._reset_after_ns = (self._token_ns if self.hold_available else
                                self._last_odom_ns)
        self._deadline = None
        return [self._call('simulator_reset', 'simulator_reset')]

    def _check_reset_odometry(self) -> list:
        if not self._reset_done:
            return []
        if self._reset_ns is None:
            self._wait('the simulator\'s reset odometry (x0)')
            return []
        self._deadline = None
        self.phase = Phase.CONTROLLER_RESET
        return [self._call('controller_reset', 'controller_reset')]

    def _collect(self) -> list:
        """Step 4: take the samples of the new revision."""
        self.phase = Phase.COLLECT
        self._wait('the episode\'s first sample')
        return []

    # -- fly_to_start mode ---------------------------------------------------------------
    def _start_errors(self, x: np.ndarray) -> tuple[float, float]:
        return (float(np.linalg.norm(x[0:3] - self.x0[0:3])),
                float(np.linalg.norm(x[3:6])))

    def _within_tolerance(self, x: np.ndarray) -> bool:
        position, speed = self._start_errors(x)
        return (position <= self.settings.settle_position_tol_m
                and speed <= self.settings.settle_velocity_tol_m_s)

    def _check_settled(self) -> list:
        stamp_ns = self._last_odom_ns
        if stamp_ns is None:
            return []
        if not self._within_tolerance(self._odometry[stamp_ns]):
            self._settled_since = None
            return []
        if self._settled_since is None:
            self._settled_since = stamp_ns
        if stamp_ns - self._settled_since < self._settle_ns:
            return []
        self._prev_revision = self._last_revision
        # collect from now on: samples of the new revision may come before the answer
        actions = [self._call('set_theta_fly',
                              values=self._theta_values(self._request.theta, self.x_ref))]
        return actions + self._collect()

    # -- samples and odometry ------------------------------------------------------------
    def _on_odometry(self, stamp_ns: int, x: np.ndarray) -> list:
        phase = self.phase
        if phase == Phase.STARTUP:
            return self._check_startup()
        if phase == Phase.TOKEN:
            return self._check_token()
        if phase == Phase.SIMULATOR_RESET:
            if (self._reset_ns is None and stamp_ns >= self._reset_after_ns
                    and np.array_equal(x, self._x0_measured)):
                self._reset_ns = stamp_ns
            return self._check_reset_odometry()
        if phase == Phase.FINAL:
            return self._check_final()
        if phase == Phase.SETTLE:
            return self._check_settled()
        return []

    def _on_sample(self, sample: SensitivitySample) -> list:
        if self.phase == Phase.STARTUP:
            return self._check_startup()
        if self.phase == Phase.TOKEN:
            return self._check_token()
        if self.phase != Phase.COLLECT:
            return []                # between episodes
        if self._episode_revision is not None:
            if self._builder is None and sample.revision != self._episode_revision:
                return []            # from before theta was set (or a stale message)
        elif sample.revision <= self._prev_revision:
            return []                # from before theta was set
        if self._reset_ns is not None and sample.odom_stamp.nanoseconds < self._reset_ns:
            return []                # theta was set but the vehicle not yet reset: late
        if self._builder is None:
            if not self._accept_first(sample):
                return []
            self._builder = EpisodeBuilder(self._request.theta, sample.revision,
                                           self.tuner.config.episode_steps,
                                           self.period_ns / NANOS_PER_SECOND)
        if sample.status == ENVELOPE_ABORT_STATUS:
            # the controller stopped flying this revision here: the episode ends at x
            if sample.revision != self._builder.revision:
                raise _Retry('revision', f'an envelope abort of revision {sample.revision} '
                                         f'during the episode of {self._builder.revision}')
            self._abort_sample = sample
            self._deadline = None
        else:
            try:
                self._builder.add(sample)
            except EpisodeRejected as exc:
                raise _Retry(exc.kind, str(exc)) from None
            self._wait('the next sample of the episode')
            if not self._builder.complete:
                return []
            self._last_step_ns = sample.odom_stamp.nanoseconds
            self._wait('the odometry after the episode\'s last step')
        self.phase = Phase.FINAL
        actions = []
        self._final_hold_done = True
        if self.hold_available:
            # stop the loop now: nothing flies while the tuner computes, and the next
            # episode starts from a held controller
            self._final_hold_done = False
            actions.append(self._call('final_hold', 'hold', True))
        return actions + self._check_final()

    def _accept_first(self, sample: SensitivitySample) -> bool:
        """Whether ``sample`` (of a new revision) starts the episode; _Retry if it cannot."""
        stamp_ns = sample.odom_stamp.nanoseconds
        x = sample.x
        if self.settings.start_mode == 'fly_to_start':
            if not self._within_tolerance(x):
                position, speed = self._start_errors(x)
                raise _Retry('start', f'the first step starts {position:.3g} m from x0 at '
                                      f'{speed:.3g} m/s, outside the settle tolerance')
        elif self.hold_available:
            if stamp_ns != self._reset_ns or not np.array_equal(x, self._x0_measured):
                raise _Retry('start', f'the first step (odometry {sample.odom_stamp}) is not '
                                      f'the reset state x0 at '
                                      f'{Stamp.from_nanoseconds(self._reset_ns)}')
        elif self._reset_ns is None or stamp_ns < self._reset_ns:
            return False             # computed from odometry of before the reset
        position, speed = self._start_errors(x)
        self._start_info = {'start_stamp_s': stamp_ns / NANOS_PER_SECOND,
                            'start_position_error_m': position, 'start_speed_m_s': speed}
        return True

    def _final_odometry(self) -> int | None:
        """Stamp of x[T]: the first odometry after the last step's, None while none came.

        In lockstep it is the last step's stamp + one period exactly; with wall-clock
        stamps (a vehicle) about that, and the builder checks it within its tolerance.
        """
        later = [stamp for stamp in self._odometry if stamp > self._last_step_ns]
        return min(later) if later else None

    def _check_final(self) -> list:
        aborted = self._abort_sample
        final_ns = None if aborted is not None else self._final_odometry()
        if (aborted is None and final_ns is None) or not self._final_hold_done:
            return []
        self._deadline = None
        self._pending.clear()            # answers this episode no longer needs
        try:
            if aborted is not None:
                # a failed episode for the tuner (it rolls back); x[t] is where it ended
                record = self._builder.abort(
                    f'the controller left its envelope at step {self._builder.count} and '
                    'flies the safe theta (its log and diagnostics say why)',
                    aborted.x, aborted.odom_stamp)
            else:
                record = self._builder.finish(self._odometry[final_ns],
                                              Stamp.from_nanoseconds(final_ns))
        except EpisodeRejected as exc:
            raise _Retry(exc.kind, str(exc)) from None
        request = self._request
        revision = self._builder.revision
        try:
            row = self.tuner.tell(record)
        except RecordRejected as exc:
            raise _Retry('record', str(exc)) from None
        self.episodes += 1
        if request.role == 'base':
            self._base_revision = revision
        info = {'iteration': request.iteration, 'role': request.role, 'revision': revision,
                'steps': record.steps, 'attempts': self._attempt + 1,
                'cost': self.tuner.cost(record),
                'wall_s': self.clock() - self._episode_start, **self._start_info}
        actions = [EpisodeDone(info)]
        if row is not None:
            row = dict(row, theta_revision=self._base_revision, retries=self.retries,
                       rollbacks=self.tuner.state.guard_rollbacks, episodes=self.episodes)
            actions.append(IterationDone(row, self.tuner.state.theta.copy()))
        return actions + self._next_episode()

    # ------------------------------------------------------------------ the end
    def _finish(self) -> list:
        """Leave the controller flying the final theta towards the target, released."""
        self.phase = Phase.FINISH_SET
        self._request = None
        return [self._call('finish_set',
                           values=self._theta_values(self.tuner.state.theta, self.x_ref))]

    def _on_finish_result(self, what: str, answer: Answer) -> list:
        note = (f'; the controller refused the last call: {answer.reason}'
                if isinstance(answer, Refused) else '')
        if what == 'finish_set' and self.hold_available:
            self.phase = Phase.FINISH_RELEASE
            actions = [Log('warn', note.lstrip('; '))] if note else []
            return actions + [self._call('finish_release', 'hold', False)]
        return self._finish_done(note)

    def _finish_done(self, note: str) -> list:
        self.phase = Phase.FINISHED
        self._pending.clear()
        self._deadline = None
        state = self.tuner.state
        text = (f'tuning finished: {len(state.history)} iterations, {self.episodes} '
                f'episodes, {self.retries} reruns{note}')
        return [Log('warn' if note else 'info', text), Finished(text)]
