"""One control step of the MPC controller, with the safe behaviour a vehicle needs (ROS-free).

:class:`SafeController` wraps an MPC policy (the :class:`~hybrid_mpc_ros.core.mpc.policy.
MPCPolicy` interface: ``solve``, ``sensitivities``, ``plan``, ``reset``) and turns every
call of :meth:`SafeController.step` into a command that is always finite and within the
rotor bounds, whatever happens:

==========================  =========================================================
situation                   command (``mode``)
==========================  =========================================================
solve succeeded             the MPC's first input (``mpc``), with its sensitivities
solve failed, the previous  the previous plan shifted by one step per failure, i.e.
plan is recent enough       ``u_{k+j}`` of the last successful plan after j failures
                            (``shifted_plan``), at most ``max_plan_steps`` failures
more consecutive failures   the failsafe input (``failsafe``)
than that, or no plan yet
odometry older than         the failsafe input (``failsafe``); the solver is not run
``odom_timeout_s``, or a
non-finite state
==========================  =========================================================

The failsafe input is open-loop: all rotors at the same speed, giving
``failsafe_thrust_fraction`` of the hover thrust of the reference input (thrust grows
with the square of rotor speed, so the speed is ``sqrt(fraction) * mean(u_ref)``). Equal
speeds make no roll, pitch or yaw torque, so the vehicle keeps its attitude and, with a
fraction below 1, descends slowly. It is the least harmful thing to do without a state
estimate or a plan; a real vehicle's flight controller should take over from there.

For an identification flight an optional input excitation
(:mod:`hybrid_mpc_ros.core.control.excitation`) is added to the MPC's and the shifted
plan's commands, then clipped to the rotor bounds; the failsafe input is never excited.

The controller recovers by itself: the next step whose odometry is fresh and whose solve
succeeds is a normal MPC step again. :attr:`SafeController.counters` counts what
happened, for diagnostics.

**The envelope abort** (for tuning on a live vehicle). A tuner tries candidate theta on the
vehicle; the safety guard judges an episode only after it was flown. An optional
:class:`Envelope` bounds the state while the vehicle flies: the distance of the position
from the target (x_ref's), the roll and pitch angles, and the body rates. The first step
whose measured state lies outside it *aborts* the episode: before solving, the controller
puts back :attr:`SafeController.safe_theta` (the theta known to fly safely: the start
theta, or what its owner sets with :meth:`SafeController.set_safe_theta`, e.g. the
tuner's best theta) and flies it from then on; the step's result and
:attr:`SafeController.abort_reason` say why. The abort is latched until :meth:`reset`
(the next episode's start), so one excursion aborts once and the candidate theta is not
flown again in that episode (:meth:`SafeController.rearm` re-arms it for a new candidate
theta without a reset). An episode that ends this way counts as failed: the tuner
rolls back to its best theta and shrinks its steps
(:class:`~hybrid_mpc_ros.core.learning.tuning.Tuner`).
:meth:`SafeController.envelope_abort` is the same check for an offline rollout
(``rollout(..., abort_if=controller.envelope_abort)``), which ends the episode there.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
import math

import numpy as np

from hybrid_mpc_ros.core.config import ConfigError
from hybrid_mpc_ros.core.control.excitation import Excitation
from hybrid_mpc_ros.core.model.quadcopter import NU, NX
from hybrid_mpc_ros.core.mpc import theta as th

MODES = ('mpc', 'shifted_plan', 'failsafe')


@dataclass(frozen=True)
class SafetyConfig:
    """When the controller stops trusting its inputs, and what it does then.

    ``odom_timeout_s`` [s]: odometry older than this switches to the failsafe.
    ``max_plan_steps``: consecutive solver failures bridged with the previous plan
    (0: none; at most horizon - 1). ``failsafe_thrust_fraction``: total thrust of the
    failsafe input as a fraction of the reference (hover) thrust, in [0, 1.5].
    """

    odom_timeout_s: float
    max_plan_steps: int
    failsafe_thrust_fraction: float

    def __post_init__(self):
        if not (math.isfinite(self.odom_timeout_s) and self.odom_timeout_s > 0.0):
            raise ConfigError(f'odom_timeout_s must be > 0 s, got {self.odom_timeout_s}')
        if int(self.max_plan_steps) != self.max_plan_steps or self.max_plan_steps < 0:
            raise ConfigError(f'max_plan_steps must be an integer >= 0, '
                              f'got {self.max_plan_steps}')
        if not (math.isfinite(self.failsafe_thrust_fraction)
                and 0.0 <= self.failsafe_thrust_fraction <= 1.5):
            raise ConfigError('failsafe_thrust_fraction must lie in [0, 1.5], got '
                              f'{self.failsafe_thrust_fraction}')


@dataclass(frozen=True)
class Envelope:
    """Where the vehicle may be while a candidate theta flies it (see the module docstring).

    ``max_position_error_m`` [m]: the largest distance of the position from the target
    position (the first three entries of x_ref); set it above the start's distance from the
    target. ``max_tilt_rad`` [rad]: the largest ``|roll|`` and ``|pitch|``.
    ``max_rate_rad_s`` [rad/s]: the largest ``|p|``, ``|q|``, ``|r|``. ``inf`` disables a
    limit; every limit must be > 0.
    """

    max_position_error_m: float = math.inf
    max_tilt_rad: float = math.inf
    max_rate_rad_s: float = math.inf

    def __post_init__(self):
        for name in ('max_position_error_m', 'max_tilt_rad', 'max_rate_rad_s'):
            value = getattr(self, name)
            if not value > 0.0:              # NaN too; inf is allowed (no limit)
                raise ConfigError(f'envelope {name} must be > 0 (inf: no limit), got {value}')

    @property
    def enabled(self) -> bool:
        """True when at least one limit is finite."""
        return any(math.isfinite(value) for value in
                   (self.max_position_error_m, self.max_tilt_rad, self.max_rate_rad_s))

    def check(self, x: np.ndarray, x_ref: np.ndarray) -> str:
        """Why the state x (12,) is outside the envelope around x_ref (12,), or ''."""
        x = np.asarray(x, dtype=float)
        error = float(np.linalg.norm(x[0:3] - np.asarray(x_ref, dtype=float)[0:3]))
        if error > self.max_position_error_m:
            return (f'position error {error:.3f} m exceeds the envelope\'s '
                    f'{self.max_position_error_m:g} m')
        tilt = float(np.max(np.abs(x[6:8])))
        if tilt > self.max_tilt_rad:
            return f'tilt {tilt:.3f} rad exceeds the envelope\'s {self.max_tilt_rad:g} rad'
        rate = float(np.max(np.abs(x[9:12])))
        if rate > self.max_rate_rad_s:
            return (f'body rate {rate:.3f} rad/s exceeds the envelope\'s '
                    f'{self.max_rate_rad_s:g} rad/s')
        return ''


@dataclass
class StepResult:
    """What one :meth:`SafeController.step` decided.

    ``u`` (4,) rotor speeds [rad/s], always finite and within the bounds. ``mode`` is one
    of :data:`MODES`; ``status`` the solver status (0 success, -1 not solved, >0 acados
    failure); ``solve_ms`` the solver time (0 when not solved). ``du_dx`` (4x12) and
    ``du_dtheta`` (4x94) are the policy's sensitivities when ``mode == 'mpc'`` and they
    could be computed, zeros otherwise (``sensitivities_ok`` says which). ``reason`` says
    why the step was not a plain MPC step ('' when it was). ``sensitivities_pending``: an
    MPC step taken with ``sensitivities=False`` whose sensitivities
    :meth:`SafeController.add_sensitivities` has yet to compute. ``abort_reason``: why
    this step aborted the episode (the state left the envelope; the step already flies
    the safe theta), '' otherwise. The arrays belong to the caller: the controller never
    changes them afterwards. With an offset-free policy (:mod:`offset_free`), ``d`` (12,)
    is the disturbance estimate the step used and ``du_dd`` (4x12) its sensitivity (zeros
    like the others when not computed); both None otherwise.
    """

    u: np.ndarray
    mode: str
    status: int
    solve_ms: float
    du_dx: np.ndarray
    du_dtheta: np.ndarray
    sensitivities_ok: bool
    reason: str = ''
    sensitivities_pending: bool = False
    abort_reason: str = ''
    d: np.ndarray | None = None
    du_dd: np.ndarray | None = None


@dataclass
class Counters:
    """What happened since start (for diagnostics)."""

    steps: int = 0
    solver_failures: int = 0
    sensitivity_failures: int = 0
    shifted_plan_steps: int = 0
    failsafe_steps: int = 0
    stale_odometry_steps: int = 0
    envelope_aborts: int = 0
    consecutive_failures: int = 0
    last_reason: str = ''
    modes: dict = field(default_factory=lambda: {mode: 0 for mode in MODES})


class SafeController:
    """The MPC policy plus shifted-plan fallback, failsafe and output guarding.

    ``policy`` has the MPC policy interface; ``safety`` is a :class:`SafetyConfig`;
    ``u_min``/``u_max`` [rad/s] are the rotor bounds every command is kept in;
    ``envelope`` the optional :class:`Envelope` (None: no abort). The safe theta starts as
    the policy's theta. ``excitation``: the optional
    :class:`~hybrid_mpc_ros.core.control.excitation.Excitation` of an identification
    flight, added to every command but the failsafe's and clipped to the bounds (None or
    amplitude 0: commands as the policy computes them).
    """

    def __init__(self, policy, safety: SafetyConfig, u_min: float, u_max: float,
                 envelope: Envelope | None = None, excitation: Excitation | None = None):
        if not u_max > u_min:
            raise ConfigError(f'rotor bounds need u_min < u_max, got [{u_min}, {u_max}]')
        horizon = policy.config.horizon
        if safety.max_plan_steps > horizon - 1:
            raise ConfigError(f'max_plan_steps {safety.max_plan_steps} exceeds what a plan '
                              f'of horizon {horizon} holds ({horizon - 1})')
        self.policy = policy
        self.safety = safety
        self.u_min, self.u_max = float(u_min), float(u_max)
        self.counters = Counters()
        self._plan = None                # (N, 4) of the last successful solve
        self._zero_dx = np.zeros((NU, NX))
        self._zero_dtheta = np.zeros((NU, th.N_THETA))
        self._zero_dd = np.zeros((NU, NX))
        self.envelope = envelope
        self.safe_theta = np.array(policy.theta, dtype=float)
        self.abort_reason = ''
        self.excitation = excitation
        # an offset-free policy estimates from the commands sent: tell it each one
        self._applied = getattr(policy, 'applied', None)

    def set_safe_theta(self, theta: np.ndarray) -> None:
        """Make theta (94,) the one an envelope abort restores (a copy is kept)."""
        theta = np.array(theta, dtype=float)
        if theta.shape != (th.N_THETA,) or not np.all(np.isfinite(theta)):
            raise ValueError(f'a safe theta has {th.N_THETA} finite entries, got {theta!r}')
        self.safe_theta = theta

    def envelope_abort(self, x: np.ndarray) -> str:
        """Check the state x (12,) against the envelope; on leaving it, abort (module doc).

        Returns the reason when this call aborted the episode (the safe theta is back in
        the policy), '' otherwise: inside the envelope, no envelope, or already aborted
        since the last :meth:`reset`.
        """
        # the node always holds an Envelope; with every limit inf (the default) there is
        # nothing to check on the control step's path
        if self.envelope is None or not self.envelope.enabled or self.abort_reason:
            return ''
        reason = self.envelope.check(x, self.policy.x_ref)
        if reason:
            self.policy.set_theta(self.safe_theta)
            self.abort_reason = reason
            self.counters.envelope_aborts += 1
            self.counters.last_reason = f'envelope abort: {reason}'
        return reason

    @property
    def failsafe_input(self) -> np.ndarray:
        """The failsafe rotor speeds (4,) [rad/s] for the policy's current ``u_ref``."""
        hover = float(np.mean(self.policy.u_ref))
        speed = math.sqrt(self.safety.failsafe_thrust_fraction) * hover
        return np.full(NU, min(max(speed, self.u_min), self.u_max))

    def reset(self) -> None:
        """Forget the last plan, the warm start and an envelope abort (an episode starts)."""
        self.policy.reset()
        self._plan = None
        self.counters.consecutive_failures = 0
        self.rearm()

    def rearm(self) -> None:
        """Let the envelope abort again (a new episode, or a new candidate theta)."""
        self.abort_reason = ''

    def step(self, x: np.ndarray, odom_age_s: float = 0.0,
             sensitivities: bool = True, consecutive: bool = True) -> StepResult:
        """Command for state x (12,) measured ``odom_age_s`` seconds ago; see the module doc.

        With ``sensitivities`` False an MPC step comes back without its sensitivities
        (``sensitivities_pending``): send the command, then call :meth:`add_sensitivities`
        before the next step, so the vehicle (or a lockstep simulator) can act on the
        command while they are computed. ``consecutive``: whether x was measured one
        period after the previous step's state; False (the same odometry again, or one
        skipped) makes an offset-free policy skip its estimate's update, which would
        otherwise take a period's motion it did not see for model error.
        """
        if not consecutive and self._applied is not None:
            self._applied(None)
        if not odom_age_s <= self.safety.odom_timeout_s:     # also catches NaN
            self.counters.stale_odometry_steps += 1
            return self._unsolved(self._failsafe(f'odometry is {odom_age_s:.3f} s old '
                                                 f'(timeout {self.safety.odom_timeout_s:g} '
                                                 's)', -1, 0.0))
        x = np.asarray(x, dtype=float)
        if x.shape != (NX,) or not np.all(np.isfinite(x)):
            # no plan step can be trusted to fit a state nobody knows
            return self._unsolved(self._failsafe('state is malformed or non-finite', -1, 0.0))
        aborted = self.envelope_abort(x)        # before the solve: this step flies safe theta
        result = self._solved_step(x, sensitivities)
        if self.excitation is not None and result.mode != 'failsafe':
            # after the MPC and clipped again: an excited command never leaves the bounds
            result.u = self.excitation.apply(result.u)
        if aborted:
            result.abort_reason = aborted
        if self._applied is not None:
            self._applied(result.u)
            result.d = self.policy.disturbance.copy()
            result.du_dd = self._zero_dd.copy() if result.du_dd is None else result.du_dd
        return result

    def _unsolved(self, result: StepResult) -> StepResult:
        """Finish a step without a solve: an offset-free policy skips its next update."""
        if self._applied is not None:
            self._applied(None)
            result.d = self.policy.disturbance.copy()
            result.du_dd = self._zero_dd.copy()
        return result

    def _solved_step(self, x: np.ndarray, sensitivities: bool) -> StepResult:
        sol = self.policy.solve(x)
        if sol.ok and self._valid(sol.u):
            self.counters.consecutive_failures = 0
            self._plan = self.policy.plan()
            result = self._result(sol.u, 'mpc', sol.status, sol.solve_ms, '')
            result.sensitivities_pending = True
            return self.add_sensitivities(result) if sensitivities else result
        self.counters.solver_failures += 1
        self.counters.consecutive_failures += 1
        failures = self.counters.consecutive_failures
        reason = f'solver failed ({sol.message})' if not sol.ok else \
            f'solver returned an invalid input {sol.u.tolist()}'
        if self._plan is not None and failures <= self.safety.max_plan_steps:
            u = self._plan[failures]
            if self._valid(u):
                self.counters.shifted_plan_steps += 1
                return self._result(u, 'shifted_plan', sol.status, sol.solve_ms,
                                    f'{reason}; using step {failures} of the last plan')
        return self._failsafe(f'{reason}; {failures} consecutive failures', sol.status,
                              sol.solve_ms)

    def add_sensitivities(self, result: StepResult) -> StepResult:
        """Return ``result`` of the last :meth:`step` with its sensitivities, if pending.

        A new result (the given one is left as it was); ``result`` itself when nothing is
        pending. The policy must not have solved again since that step.
        """
        if not result.sensitivities_pending:
            return result
        try:
            du_dx, du_dtheta = self.policy.sensitivities()
            sens_ok = bool(np.all(np.isfinite(du_dx)) and np.all(np.isfinite(du_dtheta)))
        except (np.linalg.LinAlgError, RuntimeError, ValueError):
            sens_ok = False
        if sens_ok and self._applied is not None:
            try:
                du_dd = self.policy.disturbance_sensitivity()
                sens_ok = bool(np.all(np.isfinite(du_dd)))
            except (np.linalg.LinAlgError, RuntimeError, ValueError):
                sens_ok = False
            if sens_ok:
                result = replace(result, du_dd=du_dd.copy())
        if sens_ok:
            return replace(result, du_dx=du_dx.copy(), du_dtheta=du_dtheta.copy(),
                           sensitivities_ok=True, sensitivities_pending=False)
        # the command is fine; only the derivative is missing, which the tuner must know
        self.counters.sensitivity_failures += 1
        reason = 'sensitivities could not be computed'
        self.counters.last_reason = reason
        return replace(result, reason=reason, sensitivities_pending=False)

    def _failsafe(self, reason: str, status: int, solve_ms: float) -> StepResult:
        self.counters.failsafe_steps += 1
        # a plan older than a failsafe stretch is no plan to return to
        self._plan = None
        return self._result(self.failsafe_input, 'failsafe', status, solve_ms, reason)

    def _result(self, u, mode, status, solve_ms, reason, du_dx=None,
                du_dtheta=None) -> StepResult:
        counters = self.counters
        counters.steps += 1
        counters.modes[mode] += 1
        if reason:
            counters.last_reason = reason
        ok = du_dx is not None
        # the last line of defence: every command leaves here finite and within bounds
        u = np.clip(np.asarray(u, dtype=float), self.u_min, self.u_max)
        return StepResult(u, mode, int(status), float(solve_ms),
                          du_dx if ok else self._zero_dx.copy(),
                          du_dtheta if ok else self._zero_dtheta.copy(), ok, reason)

    def _valid(self, u: np.ndarray) -> bool:
        return bool(u.shape == (NU,) and np.all(np.isfinite(u)))
