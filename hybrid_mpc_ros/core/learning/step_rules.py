"""How a search direction becomes a step in theta: the paper's raw schedule or scale-free.

The update is ``theta[k+1] = Proj_Theta(theta[k] - step_k)`` with ``step_k = a_k d_k`` for
the direction ``d_k = (1 - eta_k) G_zo + eta_k J_C``. Convergence needs
``sum a = inf``, ``sum a^2 < inf`` and ``sum a eta < inf``.

* :class:`ScheduleSteps` is the paper: ``a_k = alpha_k`` from a :class:`Schedule`. Its
  constants carry the cost's units: a step that suits one vehicle's gradient scale
  (``|d| ~ 1e3``) is 100 times too long on a vehicle whose gradients are 100 times
  larger, and on a real vehicle one such step can be a crash.
* :class:`ScaleFreeSteps` (the default for new vehicles) specifies the step as a *trust
  radius*, ``r_k = radius * alpha_k / alpha_1``, which decays like the paper's schedule,
  *per entry* of theta: no entry moves by more than ``r_k s_i``, where ``s`` (n,) holds
  the entries' own scales, ``s_i = max(|theta0_i|, floor)``
  (:meth:`ScaleFreeSteps.relative`). So a radius of 0.1 changes no entry by more than
  10 % of its size, whether it is 0.1 (a weight on R) or 9 (one of P). The step follows
  the direction ``D d`` (``D = diag(s)``), measured in the norm ``|d|_inf = max_i
  |d_i|`` and divided by a gradient scale ``G``, the *median* of ``|d|_inf`` over the
  run's first ``warmup`` directions (the median of those seen so far during the warm-up;
  frozen afterwards)::

      step_k = r_k min(|d_k|_inf / G, cap) D d_k / |d_k|_inf
      (so max_i |step_k,i| / s_i = r_k min(|d_k|_inf / G, cap) <= cap r_k)

  Without scales (``entry_scale`` None) ``D = I`` and the radius bounds every entry's
  change in theta units. Why this shape:

  - *Per entry, the largest change.* A model-based direction is often concentrated on a
    few entries; a radius on the Euclidean or root-mean-square change would let those
    few move by 100 % while the average stays small (measured: such a first step raised
    the cost by 38 %). Bounding each entry's relative change bounds that too.
  - *``D d``, not the steepest descent ``D^2 d`` of the relative norm.* The zeroth-order
    direction ``G_zo ~ v`` is isotropic in theta (v is uniform on the sphere), so its
    relative changes ``step_i / s_i`` are isotropic with ``D`` and grow with ``s_i`` with
    ``D^2``, which spends the radius on P's largest entries.
  - *The median.* One heavy-tailed zeroth-order estimate (a finite difference 100 times
    the typical one) moves it by at most one rank, where a maximum would freeze it at
    the outlier and make every later step a fraction of the radius.
  - *``cap = 1``* makes the radius a true trust radius: no step is longer, and directions
    shorter than the typical one give proportionally shorter steps. The first step is
    exactly ``r_1`` long whatever the vehicle's cost scale.

Why the convergence conditions still hold for :class:`ScaleFreeSteps`.

1. *The metric.* ``D`` is fixed (from theta0) and positive diagonal. With the inner
   product ``<a, b>_D = a^T D^-1 b`` the gradient of any function is ``D`` times its
   Euclidean gradient, so ``D J_C`` is the model-based gradient and ``E[D G_zo] = D grad
   C_delta`` the gradient of the same smoothed cost ``C_delta`` in that geometry. The
   projection onto the box Theta is the same entry-wise clipping in both geometries (the
   box is a product of intervals and ``D`` is diagonal). So the iteration is the paper's
   in an equivalent inner product on R^n, with step ``a_k``: the step conditions are
   unchanged, and stationarity in the Goldstein sense holds for the balls of that
   geometry, which lie between Euclidean balls of radius ``delta sqrt(min s)`` and
   ``delta sqrt(max s)``.
2. *The step.* After the warm-up ``a_k = m_k c alpha_k`` with ``c = radius / (G
   alpha_1)`` a constant and ``m_k = min(1, cap G / |d_k|_inf)`` the cap's factor. Under
   Assumption 1 on the compact Theta the estimates are bounded, ``|J_C| <= L`` and
   ``|G_zo| <= (n / delta) L delta = n L`` (Euclidean norms, which bound ``|.|_inf``), so
   ``m_k`` lies in ``[min(1, cap G / (n L)), 1]``: bounded away from 0 and from above
   by 1. Multiplying a sequence by factors in a
   fixed interval ``[m, 1]`` with ``m > 0`` changes none of the three conditions (``sum m
   c alpha >= m c sum alpha = inf``; ``sum (m_k c alpha)^2 <= c^2 sum alpha^2 < inf``;
   ``sum m_k c alpha eta <= c sum alpha eta < inf``), so they hold exactly when they hold
   for the paper's ``alpha_k``. ``G`` is a median of finitely many norms, positive (zero
   directions are not counted) and frozen after ``warmup`` directions; the warm-up is
   finitely many steps, which no condition sees. :meth:`shrink` (used by the safety
   guard after a rollback) multiplies ``c`` by a factor at most ``max_shrinks`` times,
   again a constant rescaling.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import math

import numpy as np

from hybrid_mpc_ros.core.learning.schedules import Schedule


def _check_positive(name: str, value: float) -> None:
    if not (math.isfinite(value) and value > 0.0):
        raise ValueError(f'{name} must be a finite number > 0, got {value}')


class _Shrinking:
    """What the safety guard does to a step rule after a rollback: shorter steps.

    The rule's fields ``shrink_factor``, ``max_shrinks``, ``scale`` (the factor on every
    step, 1 at first) and ``shrinks`` (how often it was applied).
    """

    def shrink(self) -> bool:
        """Make every later step ``shrink_factor`` times shorter; False once at the limit."""
        if self.shrinks >= self.max_shrinks:
            return False
        self.shrinks += 1
        self.scale *= self.shrink_factor
        return True


@dataclass
class ScheduleSteps(_Shrinking):
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

    def state(self) -> dict:
        """JSON-friendly state for checkpoints."""
        return {'scale': self.scale, 'shrinks': self.shrinks}

    def load_state(self, state: dict) -> None:
        """Restore :meth:`state`."""
        self.scale = float(state['scale'])
        self.shrinks = int(state['shrinks'])


@dataclass
class ScaleFreeSteps(_Shrinking):
    """Trust-radius steps in theta-space, per entry; see the module docstring.

    ``radius``: the largest change of any entry in the first step: with ``entry_scale``,
    relative to the entry's scale (with theta0's magnitudes as the scales, see
    :meth:`relative`: 0.1 moves no entry by more than 10 %); without, in theta units.
    ``shape``: the schedule whose decay the radius follows (the paper's alpha_k; the
    radius is ``radius`` at iteration 1); ``warmup``: the number of (non-zero) directions
    whose median norm ``|d|_inf`` fixes ``G``; ``cap``: steps are never longer than
    ``cap * r_k`` (1: a true trust radius); ``entry_scale``: the scales ``s`` (n,) of
    theta's entries, or None for all ones.

    The effective alpha it returns is the factor of ``D d`` (of ``d`` when
    ``entry_scale`` is None).
    """

    radius: float
    shape: Schedule
    warmup: int = 10
    cap: float = 1.0
    entry_scale: tuple | None = None
    shrink_factor: float = 0.5
    max_shrinks: int = 10
    scale: float = 1.0
    shrinks: int = 0
    grad_scale: float = 0.0
    seen: int = 0
    warmup_norms: list = field(default_factory=list)

    def __post_init__(self):
        _check_positive('radius', self.radius)
        _check_positive('cap', self.cap)
        if int(self.warmup) != self.warmup or self.warmup < 1:
            raise ValueError(f'warmup must be an integer >= 1, got {self.warmup}')
        if not 0.0 < self.shrink_factor < 1.0:
            raise ValueError(f'shrink_factor must lie in (0, 1), got {self.shrink_factor}')
        if self.entry_scale is not None:
            self.entry_scale = tuple(float(value) for value in self.entry_scale)
            if not all(math.isfinite(value) and value > 0.0 for value in self.entry_scale):
                raise ValueError('entry_scale must hold finite numbers > 0')

    @classmethod
    def relative(cls, theta0: np.ndarray, radius: float, floor: float, shape: Schedule,
                 **settings) -> 'ScaleFreeSteps':
        """Return steps relative to theta0's (n,) magnitudes: ``s_i = max(|theta0_i|, floor)``.

        ``floor`` > 0 is the scale of the entries that start at (or near) zero, such as the
        off-diagonal entries of P's factor; ``settings`` are the other fields.
        """
        _check_positive('floor', floor)
        scale = np.maximum(np.abs(np.asarray(theta0, dtype=float)), floor)
        return cls(radius, shape, entry_scale=tuple(scale.tolist()), **settings)

    def radius_at(self, k: int) -> float:
        """Trust radius ``r_k`` at iteration k (1-based) before any shrink."""
        return self.radius * self.shape(k) / self.shape(1)

    def __call__(self, k: int, direction: np.ndarray) -> tuple[np.ndarray, float]:
        """Return ``(step (n,), effective alpha)`` for iteration k and direction (n,)."""
        direction = np.asarray(direction, dtype=float)
        if not np.all(np.isfinite(direction)):
            raise FloatingPointError('search direction is not finite')
        scale = 1.0 if self.entry_scale is None else np.asarray(self.entry_scale)
        if self.entry_scale is not None and scale.shape != direction.shape:
            raise ValueError(f'entry_scale has {scale.size} entries, the direction '
                             f'{direction.size}')
        norm = float(np.max(np.abs(direction))) if direction.size else 0.0
        if self.seen < self.warmup and norm > 0.0:
            self.warmup_norms.append(norm)
            self.seen += 1
            self.grad_scale = float(np.median(self.warmup_norms))
        if self.grad_scale == 0.0 or norm == 0.0:
            return np.zeros_like(direction), 0.0
        # the largest relative change of an entry: r_k, or less for a short direction
        length = self.scale * self.radius_at(k) * min(norm / self.grad_scale, self.cap)
        alpha = length / norm
        return alpha * (scale * direction), alpha

    def state(self) -> dict:
        """JSON-friendly state for checkpoints."""
        return {'scale': self.scale, 'shrinks': self.shrinks, 'grad_scale': self.grad_scale,
                'seen': self.seen, 'warmup_norms': list(self.warmup_norms)}

    def load_state(self, state: dict) -> None:
        """Restore :meth:`state`."""
        self.scale = float(state['scale'])
        self.shrinks = int(state['shrinks'])
        self.grad_scale = float(state['grad_scale'])
        self.seen = int(state['seen'])
        self.warmup_norms = [float(value) for value in state['warmup_norms']]


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
