"""How an attempt at an episode begins: the three start procedures behind one interface.

A :class:`StartProcedure` takes an :class:`~.attempt.Attempt` from its first call to the
moment its samples are collected (:meth:`LiveSession.begin_collecting`), and decides
whether a sample of the new revision may be the episode's first. The session chooses one
when its startup is over (:func:`choose_start`): :class:`FlyToStart` for ``start_mode:
fly_to_start``, else :class:`ResetWithHoldStart` if the controller accepts ``~/hold``,
else :class:`ResetStart`.

**Episodes started by a reset** (``start_mode: reset``, simulation). In lockstep (the
controller's odometry trigger, which has ``~/hold``) the ROS run reproduces the offline
rollout exactly: the solver's warm start changes commands at the 1e-9 level and the
zeroth-order difference ``(C(theta + delta v) - C(theta)) / delta`` amplifies that, so
the controller's solver is reset right before the episode's first solve, as
:func:`~hybrid_mpc_ros.core.learning.episode.rollout` does::

    1. set theta (and x_ref, first episode) in one atomic set; wait for its success. The
       episode's revision r is the first one above the last revision seen in samples.
       The set carries the tuner's best theta as the controller's safe theta too (what
       an envelope abort flies), as every theta set of every start procedure does.
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
is, not exactly at x0 (docs/protocol.md says what that does to the costs). r is the
first revision above those of the samples computed while the vehicle settled (not above
the highest ever seen): a controller restarted during tuning counts its revisions from 0
again, and the next attempt runs on it at once; it gets x_ref, theta and the safe theta
with that attempt's sets, as every attempt sends them.
"""

from __future__ import annotations

import numpy as np

from hybrid_mpc_ros.core.control.answers import Answer, HoldAnswer, ResetAnswer
from hybrid_mpc_ros.core.learning.live_session.actions import Log, parameter_values
from hybrid_mpc_ros.core.learning.live_session.attempt import Attempt, Retry
from hybrid_mpc_ros.core.learning.live_session.settings import Phase
from hybrid_mpc_ros.core.learning.samples import NANOS_PER_SECOND, SensitivitySample, Stamp
from hybrid_mpc_ros.core.model.frames import odometry_arrays_to_state, state_to_odometry_arrays
from hybrid_mpc_ros.core.model.quadcopter import hover_reference

# the phases a start procedure handles events in
STARTING = frozenset({Phase.SET_THETA, Phase.HOLD, Phase.TOKEN, Phase.SIMULATOR_RESET,
                      Phase.CONTROLLER_RESET, Phase.GO_TO_START, Phase.SETTLE})


def measured_state(x: np.ndarray) -> np.ndarray:
    """``x`` (12,) as the controller reads it back from the odometry the simulator sends.

    The round trip through the quaternion and the body-frame twist changes the last bits
    of some entries; the first sample of a reset episode must carry exactly this.
    """
    return odometry_arrays_to_state(*state_to_odometry_arrays(x))


def start_errors(x: np.ndarray, x0: np.ndarray) -> tuple[float, float]:
    """Distance [m] of state ``x`` (12,) from ``x0``'s (12,) position, and its speed [m/s]."""
    return (float(np.linalg.norm(x[0:3] - x0[0:3])), float(np.linalg.norm(x[3:6])))


class StartProcedure:
    """One way to begin attempts; it drives ``session`` through the phases in :data:`STARTING`.

    It uses the session's ``phase``, ``calls`` (:class:`~.bookkeeping.Calls`), ``seen``
    (:class:`~.bookkeeping.Observed`) and :meth:`LiveSession.begin_collecting`. Each
    event method returns the actions to take.
    """

    holds = False       # whether the controller is held after an episode's steps

    def __init__(self, session):
        self.session = session

    def begin(self, attempt: Attempt) -> list:
        """Step 1 of ``attempt``."""
        raise NotImplementedError

    def on_result(self, attempt: Attempt, what: str, answer: Answer) -> list:
        """Take the successful answer to one of this procedure's calls (``what``)."""
        raise RuntimeError(f'unexpected answer to {what!r} in phase {self.session.phase}')

    def on_odometry(self, attempt: Attempt, stamp_ns: int, x: np.ndarray) -> list:
        """Take an odometry message (its stamp [ns], x (12,)) in a starting phase."""
        return []

    def on_sample(self, attempt: Attempt) -> list:
        """Take a sample in a starting phase (the session noted its revision and stamp)."""
        return []

    def accept_first(self, attempt: Attempt, sample: SensitivitySample) -> bool:
        """Tell whether ``sample`` (of the new revision) starts the episode; Retry if it cannot."""
        raise NotImplementedError

    def holding(self, answer: Answer) -> None:
        """Note that the controller answered a hold (only procedures that hold it)."""
        raise RuntimeError('this start procedure does not hold the controller')

    def waiting_detail(self) -> str:
        """Say where the wait in vain stands, for its message (empty: nothing to add)."""
        return ''

    def discard(self) -> None:
        """Forget what the discarded attempt may have left behind."""


class ResetStart(StartProcedure):
    """Reset the simulator and the controller; without a hold (a wall-clock controller).

    Run-level state: whether x_ref reached the controller, and the newest revision a
    reset answer named (a lower one means a restarted controller).
    """

    def __init__(self, session):
        super().__init__(session)
        self.x0_measured = measured_state(session.x0)
        self.x_ref_sent = False
        self.answered_revision: int | None = None

    def begin(self, attempt: Attempt) -> list:
        """Step 1: set theta (and x_ref the first time), then step 2 or 3."""
        session = self.session
        session.phase = Phase.SET_THETA
        attempt.prev_revision = session.seen.revision
        x_ref = None if self.x_ref_sent else session.x_ref
        return [session.calls.call('set_theta', values=parameter_values(
            attempt.request.theta, x_ref, session.best_theta))]

    def on_result(self, attempt: Attempt, what: str, answer: Answer) -> list:
        """Take the answer to set_theta, simulator_reset or controller_reset."""
        if what == 'set_theta':
            self.x_ref_sent = True          # the first successful set carried it
            return self._theta_set(attempt)
        if what == 'simulator_reset':
            attempt.reset_done = True
            return self._check_reset_odometry(attempt)
        if what == 'controller_reset':
            self._check_revision(attempt, answer)
            return self._controller_reset(attempt)
        return super().on_result(attempt, what, answer)

    def on_odometry(self, attempt: Attempt, stamp_ns: int, x: np.ndarray) -> list:
        """Look for the simulator's reset odometry (x0, at or after the reset)."""
        if self.session.phase == Phase.SIMULATOR_RESET:
            if (attempt.reset_ns is None and stamp_ns >= attempt.reset_after_ns
                    and np.array_equal(x, self.x0_measured)):
                attempt.reset_ns = stamp_ns
            return self._check_reset_odometry(attempt)
        return []

    def accept_first(self, attempt: Attempt, sample: SensitivitySample) -> bool:
        """Take the first sample computed from the reset odometry or later."""
        # computed from odometry of before the reset: not yet
        return attempt.reset_ns is not None and sample.odom_stamp.nanoseconds >= attempt.reset_ns

    def _theta_set(self, attempt: Attempt) -> list:
        return self._reset_simulator(attempt, self.session.seen.odom_ns)

    def _controller_reset(self, attempt: Attempt) -> list:
        return self.session.begin_collecting()

    def _reset_simulator(self, attempt: Attempt, after_ns: int) -> list:
        """Step 3: reset the simulator; the reset odometry must be seen before going on."""
        session = self.session
        session.phase = Phase.SIMULATOR_RESET
        # the reset state comes with the stamp of the newest odometry (lockstep: the
        # token's) or later; in lockstep it may arrive before the service's answer
        attempt.reset_after_ns = after_ns
        session.calls.stop_waiting()
        return [session.calls.call('simulator_reset', 'simulator_reset')]

    def _check_reset_odometry(self, attempt: Attempt) -> list:
        session = self.session
        if not attempt.reset_done:
            return []
        if attempt.reset_ns is None:
            session.calls.wait('the simulator\'s reset odometry (x0)')
            return []
        session.calls.stop_waiting()
        session.phase = Phase.CONTROLLER_RESET
        return [session.calls.call('controller_reset', 'controller_reset')]

    def _check_revision(self, attempt: Attempt, answer: Answer) -> None:
        """Read the revision the controller's reset answer names; Retry if it restarted.

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
        previous, self.answered_revision = self.answered_revision, revision
        if previous is not None and revision <= previous:
            self.x_ref_sent = False
            raise Retry('controller_restart',
                        f'the controller restarted (its theta revision is {revision}, '
                        f'after {previous}): theta and x_ref are pushed again')
        attempt.revision = revision


class ResetWithHoldStart(ResetStart):
    """Reset in lockstep, the controller held while the simulator and solver are reset.

    Run-level state besides :class:`ResetStart`'s: whether the controller is held, and
    the odometry stamp [ns] that brings the token back (from the last hold's answer).
    """

    holds = True

    def __init__(self, session):
        super().__init__(session)
        self.held = False
        self.token_target: int | None = None      # odometry stamp that brings the token

    def on_result(self, attempt: Attempt, what: str, answer: Answer) -> list:
        """Take the answer to hold or release, else as :class:`ResetStart`."""
        if what == 'hold':
            self.holding(answer)
            return self._await_token(attempt)
        if what == 'release':
            self.held = False
            return []
        return super().on_result(attempt, what, answer)

    def on_odometry(self, attempt: Attempt, stamp_ns: int, x: np.ndarray) -> list:
        """Check the token in its phase, else as :class:`ResetStart`."""
        if self.session.phase == Phase.TOKEN:
            return self._check_token(attempt)
        return super().on_odometry(attempt, stamp_ns, x)

    def on_sample(self, attempt: Attempt) -> list:
        """Check the token in its phase (a sample may bring it)."""
        if self.session.phase == Phase.TOKEN:
            return self._check_token(attempt)
        return []

    def accept_first(self, attempt: Attempt, sample: SensitivitySample) -> bool:
        """Accept only x0 exactly, at the reset odometry's stamp; Retry otherwise."""
        if (sample.odom_stamp.nanoseconds != attempt.reset_ns
                or not np.array_equal(sample.x, self.x0_measured)):
            raise Retry('start', f'the first step (odometry {sample.odom_stamp}) is not '
                                 f'the reset state x0 at '
                                 f'{Stamp.from_nanoseconds(attempt.reset_ns)}')
        return True

    def holding(self, answer: Answer) -> None:
        """Note the hold, and which odometry stamp brings the token back from its answer.

        The answer names the last odometry the controller answered (a), so the odometry
        a + one period, the simulator's answer to that command, is the one to wait for.
        'none' (it has answered nothing yet): whatever odometry it holds. A controller
        whose answer does not say: the newest sample's stamp + one period, which is
        right unless that sample is still on its way when the answer arrives.
        """
        self.held = True
        if not isinstance(answer, HoldAnswer):
            self.token_target = None
            return
        answered = answer.answered
        self.token_target = (-1 if answered is None else
                             answered.nanoseconds + self.session.period_ns)

    def discard(self) -> None:
        """Hold again at the next attempt: after a failure the controller may or may not be held."""
        self.held = False

    def _theta_set(self, attempt: Attempt) -> list:
        if not self.held:
            self.session.phase = Phase.HOLD
            return [self.session.calls.call('hold', 'hold', True)]
        return self._await_token(attempt)

    def _controller_reset(self, attempt: Attempt) -> list:
        # collect from now on: the controller answers x0 before it answers the call
        actions = [self.session.calls.call('release', 'hold', False)]
        return actions + self.session.begin_collecting()

    def _await_token(self, attempt: Attempt) -> list:
        """Step 2: wait until the odometry answering the newest sample's command is in."""
        self.session.phase = Phase.TOKEN
        self.session.calls.wait('the odometry answering the last command (token back at '
                                'the controller)')
        return self._check_token(attempt)

    def _check_token(self, attempt: Attempt) -> list:
        seen = self.session.seen
        if seen.odom_ns is None:
            return []
        if self.token_target is not None:
            if seen.odom_ns < self.token_target:
                return []
        elif seen.sample_ns is None or seen.odom_ns != seen.sample_ns + self.session.period_ns:
            return []
        return self._reset_simulator(attempt, seen.odom_ns)


class FlyToStart(StartProcedure):
    """Fly back to hover at x0, wait until settled there, then set theta and the target."""

    def __init__(self, session):
        super().__init__(session)
        self.start_ref = hover_reference(session.x0)
        self.settle_ns = round(session.settings.settle_time_s * NANOS_PER_SECOND)
        self.flown_revision: int | None = None     # the last episode revision set

    def begin(self, attempt: Attempt) -> list:
        """Set x_ref to hover at x0 (theta unchanged)."""
        self.session.phase = Phase.GO_TO_START
        return [self.session.calls.call('go_to_start',
                                        values={'x_ref': [float(v) for v in self.start_ref]})]

    def on_result(self, attempt: Attempt, what: str, answer: Answer) -> list:
        """Take the answer to go_to_start (then settle) or set_theta_fly."""
        if what == 'go_to_start':
            self.session.phase = Phase.SETTLE
            attempt.settled_since = None
            self.session.calls.wait('the vehicle to settle at x0',
                                    self.session.settings.settle_timeout_s)
            return self._check_settled(attempt)
        if what == 'set_theta_fly':
            return []                    # already collecting: the new revision starts it
        return super().on_result(attempt, what, answer)

    def on_odometry(self, attempt: Attempt, stamp_ns: int, x: np.ndarray) -> list:
        """Check whether the vehicle has settled at x0."""
        if self.session.phase == Phase.SETTLE:
            return self._check_settled(attempt)
        return []

    def accept_first(self, attempt: Attempt, sample: SensitivitySample) -> bool:
        """Accept a first sample within the settle tolerance; Retry otherwise."""
        if not self._within_tolerance(sample.x):
            position, speed = start_errors(sample.x, self.session.x0)
            raise Retry('start', f'the first step starts {position:.3g} m from x0 at '
                                 f'{speed:.3g} m/s, outside the settle tolerance')
        return True

    def waiting_detail(self) -> str:
        """Where the newest odometry puts the vehicle against the settle tolerance."""
        seen, settings = self.session.seen, self.session.settings
        if self.session.phase != Phase.SETTLE:
            return ''
        if seen.odom_ns is None:
            return ': no odometry'
        position, speed = start_errors(seen.states[seen.odom_ns], self.session.x0)
        return (f': last seen {position:.3g} m from x0 at {speed:.3g} m/s (tolerance '
                f'{settings.settle_position_tol_m:g} m, {settings.settle_velocity_tol_m_s:g} '
                'm/s)')

    def _within_tolerance(self, x: np.ndarray) -> bool:
        settings = self.session.settings
        position, speed = start_errors(x, self.session.x0)
        return (position <= settings.settle_position_tol_m
                and speed <= settings.settle_velocity_tol_m_s)

    def _check_settled(self, attempt: Attempt) -> list:
        session = self.session
        stamp_ns = session.seen.odom_ns
        if stamp_ns is None:
            return []
        if not self._within_tolerance(session.seen.states[stamp_ns]):
            attempt.settled_since = None
            return []
        if attempt.settled_since is None:
            attempt.settled_since = stamp_ns
        if stamp_ns - attempt.settled_since < self.settle_ns:
            return []
        # the revision the controller flies now: the samples of the settled window (their
        # odometry came after the go_to_start answer)
        revision = session.seen.revision_since(attempt.settled_since)
        if revision is None:
            # none in the window (seen on wall time, cause not found): the newest ever, as
            # before, which misses a restarted controller until its revisions catch up
            revision = session.seen.revision
        actions = []
        if self.flown_revision is not None and revision < self.flown_revision:
            actions.append(Log('warn', f'the controller restarted (its theta revision is '
                                       f'{revision}, after {self.flown_revision}): theta, the '
                                       'target and the safe theta go to it with this set'))
        attempt.prev_revision = revision
        self.flown_revision = revision + 1
        # collect from now on: samples of the new revision may come before the answer
        actions.append(session.calls.call('set_theta_fly', values=parameter_values(
            attempt.request.theta, session.x_ref, session.best_theta)))
        return actions + session.begin_collecting()


def choose_start(session, hold_available: bool) -> StartProcedure:
    """Choose the start procedure for ``session``'s settings and whether ``~/hold`` is there."""
    if session.settings.start_mode == 'fly_to_start':
        return FlyToStart(session)
    if hold_available:
        return ResetWithHoldStart(session)
    return ResetStart(session)
