"""One closed-loop episode: the record type, its builder and the simulated rollout.

:class:`EpisodeRecord` is what the tuner needs from an episode, whether it ran here on the
simulated plant (:func:`rollout`) or through ROS. Both assemble it with the same
:class:`EpisodeBuilder` from per-step
:class:`~hybrid_mpc_ros.core.learning.samples.SensitivitySample` s (the tuner node decodes
them from the controller's ``~/sensitivity`` messages), plus the final state from the
final odometry. The builder refuses an incomplete or mixed episode with
:class:`EpisodeRejected`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from hybrid_mpc_ros.core.learning.samples import NANOS_PER_SECOND, SensitivitySample, Stamp
from hybrid_mpc_ros.core.mpc import theta as th
from hybrid_mpc_ros.core.model.quadcopter import NU, NX


@dataclass
class EpisodeRecord:
    """Measured closed-loop trajectory of ``T`` steps with the policy's sensitivities.

    ``x`` (T+1, 12) states, ``x[0]`` the initial state; ``u`` (T, 4) applied inputs;
    ``du_dx`` (T, 4, 12) and ``du_dtheta`` (T, 4, 94) the policy's sensitivities at each
    step (zero where the solve failed); ``status`` (T,) solver status (0 = success);
    ``theta`` (94,) the parameters the episode ran with.

    ``aborted``: the episode was ended early for safety (the controller's envelope abort
    on a vehicle, or ``abort_if`` in :func:`rollout`), with ``abort_reason`` saying why;
    ``T`` is then the number of steps flown and ``x[T]`` the state that triggered the
    abort. The tuner counts an aborted episode as failed: it rolls back to its best theta
    and never uses the record for a gradient.

    An offset-free controller (:mod:`~hybrid_mpc_ros.core.mpc.offset_free`) adds ``d``
    (T, 12), the disturbance estimate each step used, and ``du_dd`` (T, 4, 12), the policy's
    sensitivity to it (zero where the solve failed), and ``observer_gain`` the gain of the
    observer that made ``d``; all None otherwise.
    """

    x: np.ndarray
    u: np.ndarray
    du_dx: np.ndarray
    du_dtheta: np.ndarray
    status: np.ndarray
    theta: np.ndarray
    aborted: bool = False
    abort_reason: str = ''
    d: np.ndarray | None = None
    du_dd: np.ndarray | None = None
    observer_gain: float | None = None

    @property
    def offset_free(self) -> bool:
        """Whether the controller estimated a disturbance (``d`` and ``du_dd`` are set)."""
        return self.d is not None

    @property
    def steps(self) -> int:
        """Number of closed-loop steps T."""
        return self.u.shape[0]

    @property
    def failures(self) -> int:
        """Steps at which the MPC solve failed (and a fallback input was applied)."""
        return int(np.count_nonzero(self.status))

    def validate(self) -> None:
        """Raise ValueError if shapes are inconsistent or data non-finite."""
        steps = self.u.shape[0]
        expected = {'x': (steps + 1, NX), 'u': (steps, NU), 'du_dx': (steps, NU, NX),
                    'du_dtheta': (steps, NU, th.N_THETA), 'status': (steps,),
                    'theta': (th.N_THETA,)}
        if not (self.d is None) == (self.du_dd is None) == (self.observer_gain is None):
            raise ValueError('episode d, du_dd and observer_gain come together (all or none)')
        if self.offset_free:
            expected.update(d=(steps, NX), du_dd=(steps, NU, NX))
        for name, shape in expected.items():
            value = getattr(self, name)
            if value.shape != shape:
                raise ValueError(f'episode {name} has shape {value.shape}, expected {shape}')
            if not np.all(np.isfinite(value)):
                raise ValueError(f'episode {name} has non-finite entries')
        if self.aborted and not self.abort_reason:
            raise ValueError('an aborted episode needs an abort_reason')


class EpisodeRejected(ValueError):
    """An episode cannot be assembled; ``kind`` names the rule, the message the details.

    Kinds: ``wrong_revision``, ``repeated_step``, ``reordered``, ``missing_step``,
    ``irregular_step`` (odometry advanced by neither one nor a whole number of periods),
    ``too_many_steps``, ``non_finite``, ``too_few_steps`` (a finish before T steps),
    ``finished`` (anything after the finish) and ``mixed_estimate`` (samples with and
    without a disturbance estimate in one episode).
    """

    KINDS = ('wrong_revision', 'repeated_step', 'reordered', 'missing_step', 'irregular_step',
             'too_many_steps', 'non_finite', 'too_few_steps', 'finished', 'mixed_estimate')

    def __init__(self, kind: str, reason: str):
        if kind not in self.KINDS:
            raise ValueError(f'unknown episode rejection kind {kind!r}')
        super().__init__(f'episode rejected ({kind}): {reason}')
        self.kind = kind
        self.reason = reason


class EpisodeBuilder:
    """Assembles an :class:`EpisodeRecord` of ``steps`` steps run at ``theta`` (94,).

    Feed it the controller's samples in order with :meth:`add`, then the final state x[T]
    (12,) with its odometry stamp with :meth:`finish`. It refuses, raising
    :class:`EpisodeRejected`, a sample of another theta ``revision``, more than ``steps``
    samples, non-finite values (:meth:`SensitivitySample.non_finite`), and odometry stamps
    (the samples', then the final one) that do not advance by exactly one ``period_s``
    within ``tolerance_s`` (default a quarter period; it must stay below half a period so
    that a missing step and jitter cannot be confused): equal stamps are a repeated step,
    decreasing ones reordered, a whole number n > 1 of periods means n - 1 missing steps.
    A finish before ``steps`` samples is refused too.

    A refused :meth:`add` changes nothing, so a caller may drop that sample and go on (for
    example skip a duplicate message) or discard the builder. Where a solve failed
    (``status != 0``) the record holds zero sensitivities, whatever the sample carried.
    """

    def __init__(self, theta: np.ndarray, revision: int, steps: int, period_s: float,
                 tolerance_s: float | None = None):
        self.theta = np.array(theta, dtype=float)
        if self.theta.shape != (th.N_THETA,):
            raise ValueError(f'theta must have shape ({th.N_THETA},), got {self.theta.shape}')
        if int(steps) < 1:
            raise ValueError(f'an episode needs at least one step, got {steps}')
        self.revision = int(revision)
        self.steps = int(steps)
        self.period_ns = round(period_s * NANOS_PER_SECOND)
        tolerance_s = period_s / 4 if tolerance_s is None else tolerance_s
        self.tolerance_ns = round(tolerance_s * NANOS_PER_SECOND)
        if self.period_ns <= 0 or not 0 <= 2 * self.tolerance_ns < self.period_ns:
            raise ValueError(f'need period_s > 0 and 0 <= tolerance_s < period_s / 2, got '
                             f'{period_s} and {tolerance_s}')
        self._x = np.empty((self.steps + 1, NX))
        self._u = np.empty((self.steps, NU))
        self._du_dx = np.zeros((self.steps, NU, NX))
        self._du_dtheta = np.zeros((self.steps, NU, th.N_THETA))
        self._status = np.zeros(self.steps, dtype=int)
        self._d = np.zeros((self.steps, NX))
        self._du_dd = np.zeros((self.steps, NU, NX))
        self._offset_free = None           # set by the first sample: does it carry d?
        self._observer_gain = None
        self._count = 0
        self._last_ns = None
        self._finished = False

    @property
    def count(self) -> int:
        """Number of samples accepted so far."""
        return self._count

    @property
    def complete(self) -> bool:
        """Whether all ``steps`` samples are in (the final state may still be missing)."""
        return self._count == self.steps

    def _check_advance(self, stamp: Stamp, what: str) -> None:
        """Refuse an odometry stamp that is not one period after the previous one."""
        stamp_ns = stamp.nanoseconds
        if self._last_ns is None:
            return
        delta = stamp_ns - self._last_ns
        if delta == self.period_ns:
            return                  # the usual case, decided without building messages
        last = Stamp.from_nanoseconds(self._last_ns)
        if delta == 0:
            raise EpisodeRejected('repeated_step', f'{what} has the odometry stamp {stamp} '
                                                   f'of the step before it')
        if delta < 0:
            raise EpisodeRejected('reordered', f'{what} has odometry stamp {stamp}, earlier '
                                               f'than the previous {last}')
        periods = round(delta / self.period_ns)
        if abs(delta - periods * self.period_ns) <= self.tolerance_ns:
            if periods == 1:
                return
            if periods > 1:
                raise EpisodeRejected('missing_step', f'{periods - 1} step(s) missing before '
                                                      f'{what}: odometry advanced by '
                                                      f'{delta} ns since {last}')
        raise EpisodeRejected('irregular_step', f'{what}: odometry advanced by {delta} ns '
                                                f'since {last}, expected {self.period_ns} '
                                                f'+- {self.tolerance_ns} ns')

    def add(self, sample: SensitivitySample) -> None:
        """Take the next step's sample, or raise :class:`EpisodeRejected` and change nothing."""
        if self._finished:
            raise EpisodeRejected('finished', 'a sample arrived after the finish')
        t = self._count
        if sample.revision != self.revision:
            raise EpisodeRejected('wrong_revision', f'step {t} ran with theta revision '
                                                    f'{sample.revision}, expected '
                                                    f'{self.revision}')
        if t >= self.steps:
            raise EpisodeRejected('too_many_steps', f'sample for step {t} of an episode of '
                                                    f'{self.steps} steps')
        self._check_advance(sample.odom_stamp, f'step {t}')
        if t and sample.offset_free != self._offset_free:
            has = 'carries' if sample.offset_free else 'lacks'
            raise EpisodeRejected('mixed_estimate', f'step {t} {has} a disturbance estimate, '
                                                    'unlike the steps before it')
        if t and sample.observer_gain != self._observer_gain:
            raise EpisodeRejected('mixed_estimate', f'step {t} has observer gain '
                                                    f'{sample.observer_gain}, the steps '
                                                    f'before it {self._observer_gain}')
        problem = sample.non_finite()
        if problem:
            raise EpisodeRejected('non_finite', f'step {t}: {problem}')
        self._x[t] = sample.x
        self._u[t] = sample.u
        self._status[t] = sample.status
        self._offset_free = sample.offset_free
        self._observer_gain = sample.observer_gain
        if sample.offset_free:
            self._d[t] = sample.d
        if sample.ok:
            self._du_dx[t] = sample.du_dx
            self._du_dtheta[t] = sample.du_dtheta
            if sample.offset_free:
                self._du_dd[t] = sample.du_dd
        self._count = t + 1
        self._last_ns = sample.odom_stamp.nanoseconds

    def finish(self, x_final: np.ndarray, odom_stamp) -> EpisodeRecord:
        """Close the episode with x[T] (12,) measured at ``odom_stamp``; return the record.

        ``odom_stamp`` is a :class:`Stamp`, a ``(sec, nanosec)`` pair or a ROS ``Time``;
        it must follow the last sample's by one period.
        """
        if self._finished:
            raise EpisodeRejected('finished', 'the episode was already finished')
        if self._count < self.steps:
            raise EpisodeRejected('too_few_steps', f'finished after {self._count} of '
                                                   f'{self.steps} steps')
        x_final = np.asarray(x_final, dtype=float)
        if x_final.shape != (NX,):
            raise ValueError(f'final state must have shape ({NX},), got {x_final.shape}')
        self._check_advance(Stamp.of(odom_stamp), 'the final state')
        if not np.all(np.isfinite(x_final)):
            raise EpisodeRejected('non_finite', f'the final state is not finite: {x_final}')
        self._x[self.steps] = x_final
        self._finished = True
        estimate = (self._d, self._du_dd) if self._offset_free else (None, None)
        return EpisodeRecord(self._x, self._u, self._du_dx, self._du_dtheta, self._status,
                             self.theta.copy(), d=estimate[0], du_dd=estimate[1],
                             observer_gain=self._observer_gain)

    def abort(self, reason: str, x_final: np.ndarray, odom_stamp) -> EpisodeRecord:
        """Close an episode ended early for safety after :attr:`count` steps; return it.

        ``x_final`` (12,) is the state at which the episode was stopped (the one that left
        the envelope), measured at ``odom_stamp``, one period after the last sample's. The
        record (``aborted`` True, ``abort_reason`` = ``reason``) holds the ``count`` steps
        flown: ``x`` (count+1, 12), ``u`` (count, 4) and so on.
        """
        if not reason:
            raise ValueError('an abort needs a reason')
        if self._finished:
            raise EpisodeRejected('finished', 'the episode was already finished')
        x_final = np.asarray(x_final, dtype=float)
        if x_final.shape != (NX,):
            raise ValueError(f'final state must have shape ({NX},), got {x_final.shape}')
        self._check_advance(Stamp.of(odom_stamp), 'the abort state')
        if not np.all(np.isfinite(x_final)):
            raise EpisodeRejected('non_finite', f'the abort state is not finite: {x_final}')
        t = self._count
        x = self._x[:t + 1].copy()
        x[t] = x_final
        self._finished = True
        estimate = ((self._d[:t].copy(), self._du_dd[:t].copy()) if self._offset_free
                    else (None, None))
        return EpisodeRecord(x, self._u[:t].copy(), self._du_dx[:t].copy(),
                             self._du_dtheta[:t].copy(), self._status[:t].copy(),
                             self.theta.copy(), aborted=True, abort_reason=reason,
                             d=estimate[0], du_dd=estimate[1],
                             observer_gain=self._observer_gain)


def plant_parts(plant) -> tuple[Callable, Callable | None]:
    """Return ``(step, reset)`` of a plant object or of a bare step callable.

    A :class:`~hybrid_mpc_ros.core.model.plant.Plant` gives its ``step`` and ``reset``; a
    bare ``step(x, u) -> x+`` callable gives itself and None (a stateless plant).
    """
    step = getattr(plant, 'step', None)
    if callable(step):
        return step, getattr(plant, 'reset', None)
    if callable(plant):
        return plant, None
    raise TypeError(f'a plant is an object with step(x, u) and reset(x0), or a step '
                    f'callable; got {plant!r}')


def rollout(plant, policy, x0: np.ndarray, steps: int, sensitivities: bool = True,
            period_s: float | None = None,
            abort_if: Callable[[np.ndarray], str] | None = None,
            observe: Callable[[np.ndarray], np.ndarray] | None = None) -> EpisodeRecord:
    """Run ``policy`` on the true system ``plant`` for ``steps`` steps.

    ``plant`` is a :class:`~hybrid_mpc_ros.core.model.plant.Plant` (``step(x, u) -> x+``
    and ``reset(x0)``, called first so that its hidden states, such as rotor speeds or
    wind, start the same in every episode) or a bare ``step(x, u) -> x+`` callable of a
    plant without hidden states. ``policy`` has the
    :class:`~hybrid_mpc_ros.core.mpc.policy.MPCPolicy` interface; it is reset first too,
    so an episode depends only on (theta, x0) and reruns bit for bit. Each step goes
    through the :class:`EpisodeBuilder` the ROS tuner uses, as a sample stamped
    ``t * period_s`` (default: the policy's ``config.dt``) with revision 0; the record's
    ``x`` (T+1, 12), ``u`` (T, 4), ``du_dx`` (T, 4, 12), ``du_dtheta`` (T, 4, 94) and
    ``status`` (T,) are the measured values (zero sensitivities where the solve failed or
    ``sensitivities`` is False).

    ``abort_if(x) -> reason`` (12,) stands in for the controller's envelope check: before
    each step's solve, a non-empty reason ends the episode there with an aborted record
    (:meth:`EpisodeBuilder.abort`), as a vehicle would stop flying the candidate theta.

    ``observe(x) -> x_seen`` (12,) (default: none, the exact state) is how the controller
    and the tuner see the plant's state: the policy solves at, ``abort_if`` judges and the
    record holds (``x[0..T]``) the observed states, while the plant integrates its exact
    one. Through ROS they see it after the odometry round trip
    (:func:`~hybrid_mpc_ros.core.learning.live_session.measured_state`), which changes its
    last bits; with that as ``observe`` the rollout is the lockstep ROS episode's to the
    last digit.

    An offset-free policy (one with ``disturbance_sensitivity``, :mod:`~hybrid_mpc_ros.core.
    mpc.offset_free`) adds its estimate ``d`` and ``du_dd`` to every sample and the record.
    """
    plant_step, plant_reset = plant_parts(plant)
    x = np.array(x0, dtype=float)
    if plant_reset is not None:
        plant_reset(x)
    offset_free = hasattr(policy, 'disturbance_sensitivity')
    no_du_dd = np.zeros((NU, NX))
    no_du_dd.flags.writeable = False
    policy.reset()
    builder = EpisodeBuilder(policy.theta, 0, steps,
                             policy.config.dt if period_s is None else period_s)
    no_du_dx, no_du_dtheta = np.zeros((NU, NX)), np.zeros((NU, th.N_THETA))
    no_du_dx.flags.writeable = no_du_dtheta.flags.writeable = False    # shared by every step
    for t in range(steps):
        seen = observe(x) if observe is not None else x
        reason = abort_if(seen) if abort_if is not None else ''
        if reason:
            return builder.abort(f'step {t}: {reason}',
                                 seen, Stamp.from_nanoseconds(t * builder.period_ns))
        sol = policy.solve(seen)
        if sol.ok and sensitivities:
            du_dx, du_dtheta = policy.sensitivities()
        else:
            du_dx, du_dtheta = no_du_dx, no_du_dtheta
        estimate = {}
        if offset_free:
            estimate = dict(d=policy.disturbance.copy(), du_dd=(
                policy.disturbance_sensitivity() if sol.ok and sensitivities else no_du_dd),
                observer_gain=policy.observer.gain)
        stamp = Stamp.from_nanoseconds(t * builder.period_ns)
        builder.add(SensitivitySample(stamp, stamp, 0, sol.status, sol.solve_ms, seen, sol.u,
                                      du_dx, du_dtheta, **estimate))
        x = plant_step(x, sol.u)
        if not np.all(np.isfinite(x)):
            raise FloatingPointError(f'plant state became non-finite at step {t + 1}')
    return builder.finish(observe(x) if observe is not None else x,
                          Stamp.from_nanoseconds(steps * builder.period_ns))
