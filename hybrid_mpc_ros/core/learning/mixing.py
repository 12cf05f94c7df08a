"""How far the hybrid step trusts the model: the mixing weight eta_k.

The hybrid direction is ``d_k = (1 - eta_k) G_zo + eta_k J_C``; convergence needs
``eta_k in [0, 1]`` and ``sum alpha_k eta_k < inf`` (the model is eventually discarded).
An eta rule answers three questions for the tuner:

* ``rule(k) -> eta_k``, decided before iteration k's episodes run;
* ``rule.needs(k) -> (model, zeroth)``: whether iteration k needs the model-based
  gradient (sensitivities in the base episode) and the perturbed episode;
* ``rule.observe(k, measured, predicted)`` after an iteration that measured both: the
  directional derivative of C along the random direction v measured on the system,
  ``(C(theta + delta v) - C(theta)) / delta``, and the one the model predicts, ``J_C . v``.

Rules:

* :class:`ScheduleEta` is the paper's schedule (``eta_k = 1/(k+1)^gamma``, or a constant 1
  or 0 for the baselines). It observes nothing, so it never asks for an episode it does
  not use: sensitivities only when ``eta_k > 0``, the perturbed episode only when
  ``eta_k < 1``.
* :class:`AgreementEta` (beyond the paper) trusts the model while its gradient agrees
  with the data: ``eta_k = min(cap_k, a_k)`` with ``cap_k`` the paper's schedule and
  ``a_k`` an estimate of the cosine between ``J_C`` and the true gradient, from the signs
  of the measured and the predicted directional derivatives (see its docstring).
"""

from __future__ import annotations

from dataclasses import dataclass
import math

from hybrid_mpc_ros.core.learning.schedules import Schedule


def _check_unit(name: str, value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f'{name} must lie in [0, 1], got {value}')
    return value


@dataclass
class ScheduleEta:
    """The paper's mixing weights ``eta_k = schedule(k)`` (values in [0, 1])."""

    schedule: Schedule

    def __call__(self, k: int) -> float:
        """Mixing weight of iteration k."""
        return _check_unit(f'eta_{k}', self.schedule(k))

    def needs(self, k: int) -> tuple[bool, bool]:
        """``(model-based gradient, perturbed episode)`` needed in iteration k."""
        eta = self(k)
        return eta > 0.0, eta < 1.0

    def observe(self, k: int, measured: float, predicted: float) -> None:
        """Nothing to learn: the schedule is fixed."""

    def state(self) -> dict:
        """JSON-friendly state for checkpoints (none)."""
        return {}

    def load_state(self, state: dict) -> None:
        """Restore :meth:`state` (nothing to restore)."""


@dataclass
class AgreementEta:
    """``eta_k = min(cap(k), a_k)``: the paper's weight while the model agrees with the data.

    **The agreement test.** Each iteration that ran both episodes gives one scalar test of
    the model: along the random direction v, the measured directional derivative
    ``m = (C(theta + delta v) - C(theta)) / delta`` (about ``g . v`` for the true gradient
    g) against the model's ``p = J_C . v``. Their sign product ``s = sign(m p)`` is
    ``+1`` or ``-1``. For v uniform on the sphere, ``P(s = -1) = phi / pi`` where ``phi``
    is the angle between g and J_C (random-hyperplane rounding, Goemans and Williamson
    1995), so ``E[s] = 1 - 2 phi / pi`` and the angle can be read back from the mean::

        s_bar_k = beta s_bar_{k-1} + (1 - beta) s_k          (s_bar_0 = prior)
        a_k     = max(0, cos(pi/2 (1 - s_bar_k)))             (estimate of cos phi)

    ``a = 1`` for a model whose gradient points like the true one, ``0`` for one that is
    no better than a random direction (or worse). Only signs enter, so one costly outlier
    episode cannot swing it; magnitudes are the step rule's business. ``beta`` sets the
    memory (about ``1 / (1 - beta)`` iterations), so trust recovers when theta moves to
    where the model is good again. The default ``prior = 1`` starts by trusting the model,
    as the paper's ``eta_1`` does.

    **Convergence.** ``0 <= eta_k <= cap_k`` term by term, so ``eta_k in [0, 1]`` and
    ``sum alpha_k eta_k <= sum alpha_k cap_k < inf`` whenever the paper's schedule meets
    the condition, whatever the agreement does (and with any step rule whose effective
    ``alpha_k`` is bounded by a constant times the paper's, as
    :class:`~hybrid_mpc_ros.core.learning.step_rules.ScaleFreeSteps`'s is). ``a_k`` uses
    only iterations before k, so ``eta_k`` is fixed before ``v_k`` is drawn and ``G_zo``
    stays an unbiased estimate given the past.

    **What it costs.** The test needs both episodes and ``J_C`` in every iteration where
    ``cap(k) > 0``, even when ``eta_k`` comes out 1 (the perturbed episode is not needed
    for the step then) or 0 (``J_C`` is not). With the paper's hybrid schedule,
    ``0 < cap(k) < 1`` always, so both are measured anyway and the rule costs nothing; as
    a cap of 1 (model-based method) it doubles the episodes per iteration; as a cap of 0
    (zeroth-order) it is the zeroth-order method. On a vehicle each test is a flight, and
    a noisy cost makes ``m`` (and so ``s``) unreliable where ``|g . v|`` is small compared
    with the noise divided by delta: the agreement then drifts towards 0, which only falls
    back on the zeroth-order estimate, the safe side.
    """

    cap: Schedule
    beta: float = 0.9
    prior: float = 1.0
    mean: float | None = None       # s_bar, None until the first observation
    count: int = 0

    def __post_init__(self):
        if not 0.0 <= self.beta < 1.0:
            raise ValueError(f'beta must lie in [0, 1), got {self.beta}')
        if not -1.0 <= self.prior <= 1.0:
            raise ValueError(f'prior must lie in [-1, 1], got {self.prior}')

    @property
    def agreement(self) -> float:
        """Current ``a`` in [0, 1], the estimated cosine between J_C and the true gradient."""
        mean = self.prior if self.mean is None else self.mean
        return max(0.0, math.cos(0.5 * math.pi * (1.0 - mean)))

    def __call__(self, k: int) -> float:
        """Mixing weight of iteration k: ``min(cap(k), a)``."""
        return min(_check_unit(f'cap_{k}', self.cap(k)), self.agreement)

    def needs(self, k: int) -> tuple[bool, bool]:
        """``(model-based gradient, perturbed episode)`` needed in iteration k."""
        return self.cap(k) > 0.0, True

    def observe(self, k: int, measured: float, predicted: float) -> None:
        """Take iteration k's directional derivatives: measured ``m`` and model ``J_C . v``."""
        if not (math.isfinite(measured) and math.isfinite(predicted)):
            return                  # no evidence either way
        sign = float(math.copysign(1.0, measured) * math.copysign(1.0, predicted))
        if measured == 0.0 or predicted == 0.0:
            sign = 0.0
        previous = self.prior if self.mean is None else self.mean
        self.mean = self.beta * previous + (1.0 - self.beta) * sign
        self.count += 1

    def state(self) -> dict:
        """JSON-friendly state for checkpoints."""
        return {'mean': self.mean, 'count': self.count}

    def load_state(self, state: dict) -> None:
        """Restore :meth:`state`."""
        self.mean = None if state['mean'] is None else float(state['mean'])
        self.count = int(state['count'])
