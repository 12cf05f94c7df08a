"""The tuner node's episode protocol: :class:`LiveSession`, events in and actions out.

How an attempt at an episode begins is a start procedure's (:mod:`.starts`); this module
runs the rest: startup, collecting the samples, the tuner's ask and tell, reruns, the end
(the package docstring describes envelope aborts and reruns).
"""

from __future__ import annotations

from collections import Counter
import time
from typing import Callable

import numpy as np

from hybrid_mpc_ros.core.control.answers import Answer, Refused
from hybrid_mpc_ros.core.learning.episode import EpisodeBuilder, EpisodeRejected
from hybrid_mpc_ros.core.learning.live_session.actions import (CALLS, EpisodeDone, Failed,
                                                               Finished, IterationDone, Log,
                                                               parameter_values)
from hybrid_mpc_ros.core.learning.live_session.attempt import Attempt, Retry
from hybrid_mpc_ros.core.learning.live_session.bookkeeping import Calls, Observed
from hybrid_mpc_ros.core.learning.live_session.settings import Phase, SessionSettings
from hybrid_mpc_ros.core.learning.live_session.starts import (STARTING, StartProcedure,
                                                              choose_start, start_errors)
from hybrid_mpc_ros.core.learning.samples import (ENVELOPE_ABORT_STATUS, NANOS_PER_SECOND,
                                                  SensitivitySample, Stamp)
from hybrid_mpc_ros.core.learning.tuning import RecordRejected, Tuner

# reruns after a call failed (refused, unanswered, service missing) wait this long first,
# doubling per rerun up to the maximum: a restarting controller or simulator gets time to
# come back (0.5 + 1 + 2 + 4 + 8 s over the default 5 reruns) instead of being hammered
BACKOFF_FIRST_S, BACKOFF_MAX_S = 0.5, 8.0
BACKOFF_KINDS = ('refused', 'timeout', 'unavailable', 'controller_restart')


class LiveSession:
    """Runs a :class:`Tuner`'s episodes on a live controller; see the package docstring.

    ``period_s`` [s] is the control period; ``x0`` (12,) the episodes' initial state;
    ``x_ref`` (12,) the target the episodes fly to. ``clock()`` returns wall seconds
    (monotonic) for the timeouts; tests pass a fake one.

    Its parts: ``calls`` (:class:`~.bookkeeping.Calls`, the calls in flight and the
    awaited message), ``seen`` (:class:`~.bookkeeping.Observed`, the newest samples and
    odometry), the start procedure (:mod:`.starts`, chosen when the startup is over) and
    :attr:`attempt`, the try at an episode in progress.
    """

    def __init__(self, tuner: Tuner, settings: SessionSettings, period_s: float,
                 x0: np.ndarray, x_ref: np.ndarray, clock: Callable[[], float] = time.monotonic):
        self.tuner = tuner
        self.settings = settings
        self.period_ns = round(period_s * NANOS_PER_SECOND)
        self.x0 = np.array(x0, dtype=float)
        self.x_ref = np.array(x_ref, dtype=float)
        self.clock = clock
        self.phase = Phase.IDLE
        self.retries = 0
        self.rejections: Counter = Counter()
        self.episodes = 0
        # until the startup's probe finds a controller without ~/hold
        self.hold_available = settings.start_mode == 'reset' and settings.hold == 'auto'
        self.calls = Calls(settings, clock)
        self.seen = Observed()
        self._start: StartProcedure | None = None
        self._attempt: Attempt | None = None
        self._base_revision: int | None = None
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

    @property
    def attempt(self) -> Attempt | None:
        """The try at an episode in progress (or waiting out a backoff); None between."""
        return self._attempt

    @property
    def best_theta(self) -> np.ndarray:
        """The tuner's best theta (94,): sent as the controller's safe theta with every set."""
        return self.tuner.state.best_theta

    @property
    def stale_odometry(self) -> int:
        """Odometry messages ignored for being older than the newest one."""
        return self.seen.stale

    # ------------------------------------------------------------------ events
    def start(self) -> list:
        """Begin: wait for the controller's first samples and odometry (and probe ~/hold)."""
        if self.phase != Phase.IDLE:
            raise RuntimeError(f'start() called twice (phase {self.phase})')
        self.phase = Phase.STARTUP
        self.calls.wait('the first sensitivity sample and odometry from the controller and '
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
            actions.append(self.calls.call('release_stale', 'hold', False))
        return actions + self._check_startup()

    def sample(self, sample: SensitivitySample) -> list:
        """Take one sample of the controller's ``~/sensitivity``."""
        self.seen.add_sample(sample)
        return self._guard(self._on_sample, sample)

    def odometry(self, stamp, x: np.ndarray) -> list:
        """Take one odometry message: its stamp (:class:`Stamp`, ``(sec, nanosec)``), x (12,)."""
        stamp_ns = Stamp.of(stamp).nanoseconds
        x = np.asarray(x, dtype=float)
        if not self.seen.add_odometry(stamp_ns, x):
            return []
        return self._guard(self._on_odometry, stamp_ns, x)

    def result(self, call: int, answer: Answer) -> list:
        """Take the answer to call ``call`` (of a :class:`SetParameters`, :class:`CallService`).

        ``answer``: :class:`Refused` when the call failed, else :class:`HoldAnswer`,
        :class:`ResetAnswer` or :class:`Accepted` (a controller that names no stamp or
        revision is understood too).
        """
        what = self.calls.pop(call)
        if what is None:
            return []                    # an answer to a call given up on: ignore it
        return self._guard(self._on_result, what, answer)

    def unavailable(self, call: int, service: str) -> list:
        """Take the news that call ``call`` was not made: its ``service`` is not there.

        The node checks a service before calling it (a request to a missing service is
        lost, and would only be noticed at the timeout); the episode is rerun after a
        backoff (:data:`BACKOFF_FIRST_S`), so a restarting node gets time to come back.
        """
        what = self.calls.pop(call)
        if what is None:
            return []
        reason = f'{CALLS[what]}: the service {service} is not available'
        if what == 'release_stale':
            # at start: ask again until it is there (the startup timeout still applies)
            return [self.calls.call('release_stale', 'hold', False)]
        if what in ('finish_set', 'finish_release'):
            return self._guard(self._on_result, what, Refused(reason))
        return self._guard(self._raise, Retry('unavailable', reason))

    def tick(self) -> list:
        """Check the timeouts and backoffs (call a few times a second)."""
        now = self.clock()
        if self.phase == Phase.BACKOFF:
            if now < self._resume_at:
                return []
            self._resume_at = None
            return self._guard(self._begin_attempt)
        what = self.calls.overdue(now)
        if what == 'release_stale':
            # at start a service may be seen before its answers can come back (a restarted
            # tuner meets a running controller): ask again, within the startup timeout
            return [Log('info', f'{CALLS[what]}: no answer within '
                                f'{self.settings.service_timeout_s:g} s; asking again'),
                    self.calls.call('release_stale', 'hold', False)]
        if what is not None:
            return self._guard(self._timeout, f'{CALLS[what]}: no answer within '
                                              f'{self.settings.service_timeout_s:g} s')
        what = self.calls.waited_in_vain(now)
        if what is not None:
            detail = self._start.waiting_detail() if self._start is not None else ''
            return self._guard(self._timeout, f'waited in vain for {what}{detail}')
        return []

    # ------------------------------------------------------------------ for the starts
    def begin_collecting(self) -> list:
        """Step 4: take the samples of the new revision (a start procedure's last step)."""
        self.phase = Phase.COLLECT
        self.calls.wait('the episode\'s first sample')
        return []

    # ------------------------------------------------------------------ plumbing
    def _guard(self, handler, *args) -> list:
        """Run an event handler; turn a :class:`Retry` into a rerun of the episode."""
        if self.done:
            return []
        try:
            return handler(*args)
        except Retry as retry:
            return self._retry(retry.kind, retry.reason)

    @staticmethod
    def _raise(exc: Exception) -> list:
        raise exc

    def _timeout(self, reason: str) -> list:
        if self.phase == Phase.STARTUP:
            return self._fail(f'{reason} (is the controller running, and is the vehicle or '
                              'simulator publishing odometry?)')
        if self.phase in (Phase.FINISH_SET, Phase.FINISH_RELEASE):
            return self._finish_done(f'; {reason}')
        raise Retry('timeout', reason)

    def _fail(self, reason: str) -> list:
        self.phase = Phase.FAILED
        self.calls.clear()
        return [Log('error', reason), Failed(reason)]

    def _retry(self, kind: str, reason: str) -> list:
        """Discard the attempt in progress and rerun the episode, or fail after too many."""
        self.retries += 1
        self.rejections[kind] += 1
        attempt = self._attempt.rerun()
        request = attempt.request
        what = f'{request.role} episode of iteration {request.iteration}'
        if attempt.number > self.settings.max_episode_retries:
            return self._fail(f'the {what} failed {attempt.number} times in a row; last: '
                              f'{reason}')
        self.calls.clear()
        self._attempt = attempt
        self._start.discard()
        text = (f'{what} discarded ({kind}): {reason}; rerun {attempt.number} of at most '
                f'{self.settings.max_episode_retries}')
        if kind in BACKOFF_KINDS:
            delay = min(BACKOFF_FIRST_S * 2 ** (attempt.number - 1), BACKOFF_MAX_S)
            self.phase = Phase.BACKOFF
            self._resume_at = self.clock() + delay
            return [Log('warn', f'{text} in {delay:g} s')]
        return [Log('warn', text)] + self._begin_attempt()

    # ------------------------------------------------------------------ startup
    def _check_startup(self) -> list:
        if self.phase != Phase.STARTUP or self.calls.pending:
            return []
        if self.seen.sample_ns is None or self.seen.odom_ns is None:
            return []
        self.calls.stop_waiting()
        self._start = choose_start(self, self.hold_available)
        return self._next_episode()

    # ------------------------------------------------------------------ episodes
    def _next_episode(self) -> list:
        request = self.tuner.ask()
        if request is None:
            return self._finish()
        self._attempt = Attempt(request, 0, self.clock())
        return self._begin_attempt()

    def _begin_attempt(self) -> list:
        """Step 1 of an episode: the start procedure's."""
        return self._start.begin(self._attempt)

    def _on_result(self, what: str, answer: Answer) -> list:
        if what == 'release_stale':
            actions = []
            if isinstance(answer, Refused):
                self.hold_available = False
                actions = [Log('info', f'the controller has no ~/hold ({answer.reason}): '
                                       'episodes start at the first sample after the reset '
                                       'odometry')]
            return actions + self._check_startup()
        if what in ('finish_set', 'finish_release'):
            return self._on_finish_result(what, answer)
        if isinstance(answer, Refused):
            raise Retry('refused', f'{CALLS[what]} refused: {answer.reason}')
        if what == 'final_hold':
            self._attempt.final_hold_done = True
            self._start.holding(answer)
            return self._check_final()
        return self._start.on_result(self._attempt, what, answer)

    def _on_odometry(self, stamp_ns: int, x: np.ndarray) -> list:
        if self.phase == Phase.STARTUP:
            return self._check_startup()
        if self.phase in STARTING:
            return self._start.on_odometry(self._attempt, stamp_ns, x)
        if self.phase == Phase.FINAL:
            return self._check_final()
        return []

    def _on_sample(self, sample: SensitivitySample) -> list:
        if self.phase == Phase.STARTUP:
            return self._check_startup()
        if self.phase in STARTING:
            return self._start.on_sample(self._attempt)
        if self.phase != Phase.COLLECT:
            return []                # between episodes
        attempt = self._attempt
        if attempt.predates(sample):
            return []
        if attempt.builder is None:
            if not self._start.accept_first(attempt, sample):
                return []
            position, speed = start_errors(sample.x, self.x0)
            attempt.start_info = {'start_stamp_s': sample.odom_stamp.nanoseconds
                                  / NANOS_PER_SECOND,
                                  'start_position_error_m': position, 'start_speed_m_s': speed}
            attempt.builder = EpisodeBuilder(attempt.request.theta, sample.revision,
                                             self.tuner.config.episode_steps,
                                             self.period_ns / NANOS_PER_SECOND)
        if sample.status == ENVELOPE_ABORT_STATUS:
            # the controller stopped flying this revision here: the episode ends at x
            if sample.revision != attempt.builder.revision:
                raise Retry('revision', f'an envelope abort of revision {sample.revision} '
                                        f'during the episode of {attempt.builder.revision}')
            attempt.abort_sample = sample
            self.calls.stop_waiting()
        else:
            try:
                attempt.builder.add(sample)
            except EpisodeRejected as exc:
                raise Retry(exc.kind, str(exc)) from None
            self.calls.wait('the next sample of the episode')
            if not attempt.builder.complete:
                return []
            attempt.last_step_ns = sample.odom_stamp.nanoseconds
            self.calls.wait('the odometry after the episode\'s last step')
        self.phase = Phase.FINAL
        actions = []
        if self._start.holds:
            # stop the loop now: nothing flies while the tuner computes, and the next
            # episode starts from a held controller
            attempt.final_hold_done = False
            actions.append(self.calls.call('final_hold', 'hold', True))
        return actions + self._check_final()

    def _check_final(self) -> list:
        """Hand the record to the tuner once x[T] is in (and the final hold answered).

        x[T] is the first odometry after the last step's: in lockstep its stamp + one
        period exactly; with wall-clock stamps (a vehicle) about that, and the builder
        checks it within its tolerance.
        """
        attempt = self._attempt
        aborted = attempt.abort_sample
        final_ns = None if aborted is not None else self.seen.first_after(attempt.last_step_ns)
        if (aborted is None and final_ns is None) or not attempt.final_hold_done:
            return []
        self.calls.stop_waiting()
        self.calls.pending.clear()       # answers this episode no longer needs
        builder = attempt.builder
        try:
            if aborted is not None:
                # a failed episode for the tuner (it rolls back); x[t] is where it ended
                record = builder.abort(
                    f'the controller left its envelope at step {builder.count} and '
                    'flies the safe theta (its log and diagnostics say why)',
                    aborted.x, aborted.odom_stamp)
            else:
                record = builder.finish(self.seen.states[final_ns],
                                        Stamp.from_nanoseconds(final_ns))
        except EpisodeRejected as exc:
            raise Retry(exc.kind, str(exc)) from None
        request = attempt.request
        try:
            row = self.tuner.tell(record)
        except RecordRejected as exc:
            raise Retry('record', str(exc)) from None
        self._attempt = None
        self.episodes += 1
        if request.role == 'base':
            self._base_revision = builder.revision
        info = {'iteration': request.iteration, 'role': request.role,
                'revision': builder.revision, 'steps': record.steps,
                'attempts': attempt.number + 1, 'cost': self.tuner.cost(record),
                'wall_s': self.clock() - attempt.started, **attempt.start_info}
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
        return [self.calls.call('finish_set', values=parameter_values(
            self.tuner.state.theta, self.x_ref, self.best_theta))]

    def _on_finish_result(self, what: str, answer: Answer) -> list:
        note = (f'; the controller refused the last call: {answer.reason}'
                if isinstance(answer, Refused) else '')
        if what == 'finish_set' and self._start.holds:
            self.phase = Phase.FINISH_RELEASE
            actions = [Log('warn', note.lstrip('; '))] if note else []
            return actions + [self.calls.call('finish_release', 'hold', False)]
        return self._finish_done(note)

    def _finish_done(self, note: str) -> list:
        self.phase = Phase.FINISHED
        self.calls.clear()
        state = self.tuner.state
        text = (f'tuning finished: {len(state.history)} iterations, {self.episodes} '
                f'episodes, {self.retries} reruns{note}')
        return [Log('warn' if note else 'info', text), Finished(text)]
