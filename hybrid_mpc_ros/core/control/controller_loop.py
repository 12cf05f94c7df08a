"""The controller's half of the episode protocol, as a state machine (ROS-free).

:class:`ControllerLoop` wraps a :class:`~hybrid_mpc_ros.core.mpc.safe_control.
SafeController` and decides what the controller node does with each event; the node only
translates messages and services into these calls and publishes what comes back:

* :meth:`~ControllerLoop.odometry` (an accepted state with its stamp): with the
  ``odometry`` trigger, whether to step now. Each odometry stamp is answered once: a
  lockstep simulator re-publishes its odometry while it waits for a command, and every
  simulator period must get exactly one command. Stamps older than the last accepted one
  are refused (ValueError) and counted with :meth:`~ControllerLoop.reject`.
* :meth:`~ControllerLoop.timer`: with the ``timer`` trigger, whether to step now (from
  the first odometry on). A tick can come before the next odometry (the same state
  again) or after two (one skipped) when odometry arrives at the control rate; such a
  step is not *consecutive*, and an offset-free controller does not update its
  disturbance estimate from it (:meth:`SafeController.step`).
* :meth:`~ControllerLoop.watchdog`: with the ``odometry`` trigger on wall time (beside a
  realtime simulator or a vehicle whose odometry comes at the control rate), whether a
  step is overdue: no step for :data:`WATCHDOG_PERIODS` periods (odometry delayed or
  lost). The node then steps on the newest odometry, whose age decides MPC or failsafe,
  so commands never stop because odometry does; a step on odometry already answered is
  not consecutive.
* :meth:`~ControllerLoop.hold` (``~/hold``, ``odometry`` trigger on simulated time
  only): while held, odometry is kept but not answered; on release the newest odometry
  is answered at once. On wall time (the timer trigger, or the odometry trigger beside a
  realtime simulator or a vehicle) it is refused: a held controller sends no commands,
  and nothing flying in real time may go without them.
  The answer (:class:`~hybrid_mpc_ros.core.control.answers.HoldAnswer`) names the last
  odometry answered before it, so a tuner knows which odometry brings the token back.
* :meth:`~ControllerLoop.reset` (``~/reset``): forget the solver's warm start and the last
  plan; the answer (:class:`~hybrid_mpc_ros.core.control.answers.ResetAnswer`) names the
  current theta revision.
* :meth:`~ControllerLoop.set_policy`: a new theta and/or x_ref, one revision per call.
* :meth:`~ControllerLoop.set_safe_theta`: the theta an envelope abort flies (a tuner keeps
  its best theta there); no revision: it flies only after an abort, which has its own.

A control step is two calls, so the command goes out before the sensitivities, which only
the tuner needs, are computed: :meth:`~ControllerLoop.command` (the rotor speeds), then
:meth:`~ControllerLoop.report` (the step's
:class:`~hybrid_mpc_ros.core.learning.samples.SensitivitySample`). Sensitivities that could
not be computed are NaN ("none", never a zero derivative). At an envelope abort the
step's sample carries :data:`~hybrid_mpc_ros.core.learning.samples.ENVELOPE_ABORT_STATUS`
and the revision of the theta it stopped; the safe theta flying from there gets the next
revision.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from hybrid_mpc_ros.core.control.answers import HoldAnswer, Refused, ResetAnswer
from hybrid_mpc_ros.core.learning.samples import (ENVELOPE_ABORT_STATUS, SensitivitySample,
                                                  Stamp)
from hybrid_mpc_ros.core.model.quadcopter import NU, NX
from hybrid_mpc_ros.core.mpc import theta as th
from hybrid_mpc_ros.core.mpc.safe_control import SafeController, StepResult

TRIGGERS = ('timer', 'odometry')
# the odometry trigger on wall time steps anyway after this many periods without a step
WATCHDOG_PERIODS = 1.5
HOLD_REFUSAL = ('hold is only available with the odometry trigger on simulated time (lockstep '
                'simulation): on wall time a held controller would send no commands, and a '
                'vehicle or a realtime simulator must never go without them')
# sensitivities that could not be computed (read-only: samples keep them without a copy)
NO_DU_DX = np.full((NU, NX), np.nan)
NO_DU_DTHETA = np.full((NU, th.N_THETA), np.nan)
NO_DU_DD = np.full((NU, NX), np.nan)
NO_DU_DX.flags.writeable = NO_DU_DTHETA.flags.writeable = NO_DU_DD.flags.writeable = False


class ControllerLoop:
    """When the controller steps, which revision it reports, and its hold and reset.

    ``controller``: the safe MPC controller it steps. ``trigger``: ``'timer'`` (a wall
    timer calls :meth:`timer`; vehicles, a realtime simulator) or ``'odometry'`` (one step
    per new odometry stamp; the lockstep simulator). Times (``received``, ``now``) are
    wall seconds on one monotonic clock; stamps are integer nanoseconds. ``sim_time``:
    whether the odometry runs on simulated time (``use_sim_time``: the lockstep
    simulation, the only loop that may be held).
    """

    def __init__(self, controller: SafeController, trigger: str, sim_time: bool = True):
        if trigger not in TRIGGERS:
            raise ValueError(f'trigger must be one of {TRIGGERS}, got {trigger!r}')
        self.controller = controller
        self.trigger = trigger
        self.sim_time = bool(sim_time)
        self.revision = 0
        self.held = False
        self.x: np.ndarray | None = None     # latest accepted odometry as a model state (12,)
        self.odom_stamp_ns = -1              # its stamp
        self.odom_received: float | None = None   # wall time of its arrival
        self.answered_ns = -1                # odometry trigger: the stamp last answered
        self.rejected_odometry = 0
        self.last_rejection = ''
        # the odometry stamp of the last step, and the period steps are one apart in
        self._stepped_ns = -1
        self.irregular_steps = 0        # steps not one period after the last (the first too)
        self._stepped_at: float | None = None     # wall time of the last step
        self._period_ns = round(controller.policy.config.dt * 1e9)
        self._watchdog_s = WATCHDOG_PERIODS * controller.policy.config.dt

    # -- events ----------------------------------------------------------------------------
    def odometry(self, stamp_ns: int, x: np.ndarray, received: float) -> bool:
        """Take an odometry state x (12,) stamped ``stamp_ns``; return whether to step now.

        Raises ValueError (nothing changes) when the stamp is older than the last accepted
        one; the caller counts that with :meth:`reject`.
        """
        if stamp_ns < self.odom_stamp_ns:
            raise ValueError(f'stamp {stamp_ns * 1e-9:.9f} s is older than the last '
                             f'accepted one ({self.odom_stamp_ns * 1e-9:.9f} s)')
        if stamp_ns > self.odom_stamp_ns:
            # a re-published stamp is not news: its age runs from its first arrival, so a
            # source that repeats a frozen state still ends in the failsafe
            self.odom_received = received
        # the state is the newest one even for the same stamp: the lockstep simulator's
        # reset publishes x0 at the simulated time of the state it replaces
        self.x, self.odom_stamp_ns = x, stamp_ns
        return self.trigger == 'odometry' and self._answer_new_odometry()

    def reject(self, reason: str) -> int:
        """Count an odometry refused for ``reason``; return how many were refused so far."""
        self.rejected_odometry += 1
        self.last_rejection = reason
        return self.rejected_odometry

    def timer(self) -> bool:
        """Return whether a tick of the control timer steps (never before the first odometry)."""
        return self.x is not None

    def step_done(self, now: float) -> None:
        """Say the step of :meth:`command` was sent and reported at wall time ``now``.

        The watchdog counts from here, so a step slower than its 1.5 periods is not
        followed at once by another on the same odometry.
        """
        self._stepped_at = now

    def watchdog(self, now: float) -> bool:
        """Return whether a step is overdue at wall time ``now`` (odometry trigger, wall time).

        True when no step ran for :data:`WATCHDOG_PERIODS` periods since the last one
        ended (:meth:`step_done`; or since the first odometry): odometry is late or lost,
        and a vehicle must not go without commands. Never with the timer trigger (its
        timer steps) nor on simulated time (a lockstep simulation waits for each command;
        holding it is allowed).
        """
        if self.trigger != 'odometry' or self.sim_time or self.x is None:
            return False
        since = self.odom_received if self._stepped_at is None else self._stepped_at
        return now - since >= self._watchdog_s

    def hold(self, held: bool) -> tuple[HoldAnswer | Refused, bool]:
        """Hold (True) or release (False); return the answer and whether to step now.

        On release the newest odometry is answered at once if it was not yet: step first,
        then send the answer (which names the stamp answered before this call). Refused
        with the ``timer`` trigger and on wall time (``sim_time`` false): a vehicle must
        never go without commands. A tuner that meets the refusal starts its episodes at
        their first sample instead (:mod:`hybrid_mpc_ros.core.learning.live_session`).
        """
        if self.trigger != 'odometry' or not self.sim_time:
            return Refused(HOLD_REFUSAL), False
        self.held = bool(held)
        answered = Stamp.from_nanoseconds(self.answered_ns) if self.answered_ns >= 0 else None
        answer = HoldAnswer(self.held, answered)
        return answer, not self.held and self._answer_new_odometry()

    def reset(self) -> ResetAnswer:
        """Forget the solver's warm start and the last plan; name the current revision."""
        self.controller.reset()
        return ResetAnswer(self.revision)

    def set_policy(self, theta_updates: dict, x_ref=None) -> list[str]:
        """Apply an accepted set: theta parameters (name -> values) and/or x_ref (12,).

        One revision per call that changes either, so every later sample says which
        policy made it; a new theta re-arms the envelope abort. Returns the names changed
        (none: the revision stays).
        """
        policy = self.controller.policy
        if theta_updates:
            policy.set_theta(th.from_parameters(theta_updates, policy.theta))
            self.controller.rearm()           # a new candidate: the envelope may abort it
        if x_ref is not None:
            policy.set_reference(np.array(x_ref, dtype=float))
        changed = sorted(theta_updates) + (['x_ref'] if x_ref is not None else [])
        if changed:
            self.revision += 1
        return changed

    def set_safe_theta(self, updates: dict) -> bool:
        """Apply an accepted set of ``safe_theta.*`` parameters (name -> values).

        Groups left out keep their safe values. The safe theta flies from the next envelope
        abort on (one flying now, after an abort, is not changed). Returns whether any
        was given.
        """
        updates = th.unprefix_safe(updates)
        if updates:
            self.controller.set_safe_theta(th.from_parameters(updates,
                                                              self.controller.safe_theta))
        return bool(updates)

    # -- the control step -----------------------------------------------------------------
    def command(self, now: float) -> StepResult:
        """Compute the command for the latest odometry (call when an event said to step).

        The result's sensitivities are still pending: send ``result.u``, then call
        :meth:`report`. With the ``odometry`` trigger on simulated time the odometry's age
        is 0: the lockstep simulation waits while a step is held, so the wall time the
        odometry waited says nothing about the vehicle (with odom_timeout_s 0.2 s a loaded
        machine turned the first step of an episode into a failsafe step). On wall time it
        is the time since the odometry arrived (0 when answered at once; a
        :meth:`watchdog` step's is its lateness).
        """
        age = 0.0 if self.trigger == 'odometry' and self.sim_time else now - self.odom_received
        self._stepped_at = now
        consecutive = (self._stepped_ns >= 0 and abs(self.odom_stamp_ns - self._stepped_ns
                                                     - self._period_ns) <= self._period_ns // 4)
        self._stepped_ns = self.odom_stamp_ns
        self.irregular_steps += not consecutive
        return self.controller.step(self.x, age, sensitivities=False, consecutive=consecutive)

    def report(self, result: StepResult,
               clock: Callable[[], Stamp]) -> tuple[StepResult, SensitivitySample]:
        """Finish the step of :meth:`command`: its sensitivities, then its sample.

        ``clock()`` gives the sample's stamp, read once the sensitivities are computed
        (when the sample is made). Returns the completed result and the sample.
        """
        result = self.controller.add_sensitivities(result)
        # sensitivities that could not be computed are NaN: "none", never a zero derivative
        du_dx, du_dtheta = (result.du_dx, result.du_dtheta) if result.sensitivities_ok else \
            (NO_DU_DX, NO_DU_DTHETA)
        # an envelope abort: this step's sample ends the episode of this revision (its
        # status says so); the safe theta flying from here gets a revision of its own
        status = ENVELOPE_ABORT_STATUS if result.abort_reason else result.status
        # an offset-free controller's estimate and its sensitivity (NaN: not computed)
        estimate = {} if result.d is None else dict(
            d=result.d, du_dd=result.du_dd if result.sensitivities_ok else NO_DU_DD,
            observer_gain=self.controller.policy.observer.gain)
        sample = SensitivitySample(clock(), Stamp.from_nanoseconds(self.odom_stamp_ns),
                                   self.revision, status, result.solve_ms, self.x, result.u,
                                   du_dx, du_dtheta, **estimate)
        if result.abort_reason:
            self.revision += 1
        return result, sample

    def _answer_new_odometry(self) -> bool:
        if not self.held and self.x is not None and self.odom_stamp_ns != self.answered_ns:
            self.answered_ns = self.odom_stamp_ns
            return True
        return False
