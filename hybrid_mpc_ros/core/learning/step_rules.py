"""How a search direction becomes a step in theta: the paper's raw schedule or scale-free.

The update is ``theta[k+1] = Proj_Theta(theta[k] - step_k)`` with ``step_k = a_k d_k`` for
the direction ``d_k = (1 - eta_k) G_zo + eta_k J_C`` (SPEC section 1). Convergence needs
``sum a = inf``, ``sum a^2 < inf`` and ``sum a eta < inf``.

* :class:`ScheduleSteps` is the paper: ``a_k = alpha_k`` from a :class:`Schedule`. Its
  constants carry the cost's units: a step that suits one vehicle's gradient scale
  (``|d| ~ 1e3``) is 100 times too long on a vehicle whose gradients are 100 times
  larger, and on a real vehicle one such step can be a crash.
* :class:`ScaleFreeSteps` (the default for new vehicles) specifies the step as a *trust
  radius in theta-space*, ``r_k = radius * alpha_k / alpha_1``, which decays like the
  paper's schedule, and divides the direction by a gradient-norm scale ``G`` learnt from
  the run's own first ``warmup`` directions (their running maximum, frozen afterwards)::

      step_k = (r_k / G_k) d_k,     capped at |step_k| <= cap * r_k

  The first steps are then exactly ``r_k`` long whatever the vehicle's cost scale, and
  the run never moves theta further than ``cap * r_k`` in one step.

Why the convergence conditions still hold for :class:`ScaleFreeSteps`. After the warm-up
the step is ``a_k d_k`` with ``a_k = m_k c alpha_k``, where ``c = radius / (G
alpha_1)`` is a constant and ``m_k = min(1, cap G / |d_k|)`` is the cap's factor.
Under Assumption 1 on the compact Theta the estimates are bounded, ``|J_C| <= L`` and
``|G_zo| <= (n / delta) L delta = n L``, so ``m_k`` lies in ``[min(1, cap G / (n L)), 1]``:
bounded away from 0 and from above by 1. Multiplying a sequence by factors in a fixed
interval ``[m, 1]`` with ``m > 0`` changes none of the three conditions (``sum m c alpha >=
m c sum alpha = inf``; ``sum (m_k c alpha)^2 <= c^2 sum alpha^2 < inf``; ``sum m_k c alpha
eta <= c sum alpha eta < inf``), so they hold exactly when they hold for the paper's
``alpha_k``. The warm-up is finitely many steps, which no condition sees. :meth:`shrink`
(used by the safety guard after a rollback) multiplies ``c`` by a factor at most
``max_shrinks`` times, again a constant rescaling.
"""

from __future__ import annotations

from dataclasses import dataclass
import math

import numpy as np

from hybrid_mpc_ros.core.learning.schedules import Schedule


def _check_positive(name: str, value: float) -> None:
    if not (math.isfinite(value) and value > 0.0):
        raise ValueError(f'{name} must be a finite number > 0, got {value}')


@dataclass
class ScheduleSteps:
    """The paper's steps ``alpha_k d_k`` (times the shrink factor after rollbacks)."""

    alpha: Schedule
    shrink_factor: float = 0.5
    max_shrinks: int = 10
    scale: float = 1.0
    shrinks: int = 0

    def __call__(self, k: int, direction: np.ndarray) -> tuple[np.ndarray, float]:
        """Return ``(step (n,), effective alpha)`` for iteration k and direction (n,)."""
        alpha = self.scale * self.alpha(k)
        return alpha * direction, alpha

    def shrink(self) -> bool:
        """Make every later step ``shrink_factor`` times shorter; False once at the limit."""
        if self.shrinks >= self.max_shrinks:
            return False
        self.shrinks += 1
        self.scale *= self.shrink_factor
        return True

    def state(self) -> dict:
        """JSON-friendly state for checkpoints."""
        return {'scale': self.scale, 'shrinks': self.shrinks}

    def load_state(self, state: dict) -> None:
        """Restore :meth:`state`."""
        self.scale = float(state['scale'])
        self.shrinks = int(state['shrinks'])


@dataclass
class ScaleFreeSteps:
    """Trust-radius steps in theta-space; see the module docstring.

    ``radius``: length of the first step in theta units (theta holds square roots of the
    cost weights, so this is a relative change of about ``radius / |theta_i|`` per entry).
    ``shape``: the schedule whose decay the radius follows (the paper's alpha_k; the
    radius is ``radius`` at iteration 1); ``warmup``: the number of directions whose
    largest norm fixes ``G``; ``cap``: steps are never longer than ``cap * r_k``.
    """

    radius: float
    shape: Schedule
    warmup: int = 5
    cap: float = 2.0
    shrink_factor: float = 0.5
    max_shrinks: int = 10
    scale: float = 1.0
    shrinks: int = 0
    grad_scale: float = 0.0
    seen: int = 0

    def __post_init__(self):
        _check_positive('radius', self.radius)
        _check_positive('cap', self.cap)
        if int(self.warmup) != self.warmup or self.warmup < 1:
            raise ValueError(f'warmup must be an integer >= 1, got {self.warmup}')
        if not 0.0 < self.shrink_factor < 1.0:
            raise ValueError(f'shrink_factor must lie in (0, 1), got {self.shrink_factor}')

    def radius_at(self, k: int) -> float:
        """Trust radius ``r_k`` at iteration k (1-based) before any shrink."""
        return self.radius * self.shape(k) / self.shape(1)

    def __call__(self, k: int, direction: np.ndarray) -> tuple[np.ndarray, float]:
        """Return ``(step (n,), effective alpha)`` for iteration k and direction (n,)."""
        norm = float(np.linalg.norm(direction))
        if not math.isfinite(norm):
            raise FloatingPointError(f'search direction is not finite (norm {norm})')
        if self.seen < self.warmup:
            self.grad_scale = max(self.grad_scale, norm)
            self.seen += 1
        if self.grad_scale == 0.0 or norm == 0.0:
            return np.zeros_like(direction), 0.0
        radius = self.scale * self.radius_at(k)
        alpha = radius / self.grad_scale
        if alpha * norm > self.cap * radius:
            alpha = self.cap * radius / norm
        return alpha * direction, alpha

    def shrink(self) -> bool:
        """Make every later step ``shrink_factor`` times shorter; False once at the limit."""
        if self.shrinks >= self.max_shrinks:
            return False
        self.shrinks += 1
        self.scale *= self.shrink_factor
        return True

    def state(self) -> dict:
        """JSON-friendly state for checkpoints."""
        return {'scale': self.scale, 'shrinks': self.shrinks, 'grad_scale': self.grad_scale,
                'seen': self.seen}

    def load_state(self, state: dict) -> None:
        """Restore :meth:`state`."""
        self.scale = float(state['scale'])
        self.shrinks = int(state['shrinks'])
        self.grad_scale = float(state['grad_scale'])
        self.seen = int(state['seen'])


@dataclass(frozen=True)
class SafetyGuard:
    """Limits on an episode, relative to the best one so far.

    An episode is refused when its cost exceeds ``(1 + cost_margin) * best_cost`` or its
    constraint violation term exceeds ``violation_limit`` (in cost units, i.e. after the
    penalty weight; ``inf`` disables either check). The tuner then rolls theta back to the
    best theta and shrinks its steps.
    """

    cost_margin: float = 0.2
    violation_limit: float = math.inf

    def __post_init__(self):
        if not self.cost_margin > 0.0:
            raise ValueError(f'cost_margin must be > 0, got {self.cost_margin}')
        if not self.violation_limit >= 0.0:
            raise ValueError(f'violation_limit must be >= 0, got {self.violation_limit}')

    def verdict(self, cost: float, violation: float, best_cost: float) -> str:
        """Why an episode of ``cost`` and ``violation`` is refused, or '' when it is fine."""
        if not math.isfinite(cost):
            return f'episode cost is not finite ({cost})'
        if math.isfinite(best_cost) and cost > (1.0 + self.cost_margin) * best_cost:
            return (f'episode cost {cost:.6g} exceeds {1.0 + self.cost_margin:g} x the best '
                    f'{best_cost:.6g}')
        if violation > self.violation_limit:
            return (f'constraint violation {violation:.6g} exceeds the limit '
                    f'{self.violation_limit:g}')
        return ''
