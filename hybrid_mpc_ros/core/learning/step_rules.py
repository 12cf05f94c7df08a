"""How a search direction becomes a step in theta: the paper's raw schedule or scale-free.

The update is ``theta[k+1] = Proj_Theta(theta[k] - step_k)`` with ``step_k = a_k d_k`` for
the direction ``d_k = (1 - eta_k) G_zo + eta_k J_C`` (SPEC section 1). Convergence needs
``sum a = inf``, ``sum a^2 < inf`` and ``sum a eta < inf``.

* :class:`ScheduleSteps` is the paper: ``a_k = alpha_k`` from a :class:`Schedule`. Its
  constants carry the cost's units: a step that suits one vehicle's gradient scale
  (``|d| ~ 1e3``) is 100 times too long on a vehicle whose gradients are 100 times
  larger, and on a real vehicle one such step can be a crash.
* :class:`ScaleFreeSteps` (the default for new vehicles) specifies the step as a *trust
  radius*, ``r_k = radius * alpha_k / alpha_1``, which decays like the paper's schedule,
  measured in the norm ``|x|_s = rms(x / s)`` (the root mean square over the entries of
  ``x_i / s_i``) where ``s`` (n,) holds each entry's own scale, ``s_i = max(|theta0_i|,
  floor)`` (:meth:`ScaleFreeSteps.relative`): a radius of 0.1 changes theta's entries by
  about 10 % each (root mean square), whether an entry is 0.1 (a weight on R) or 9 (one of
  P). The direction is measured in the dual norm ``|D d|`` (``D = diag(s)``) and divided
  by a gradient scale ``G``, the *median* of ``|D d|`` over the run's first ``warmup``
  directions (the median of those seen so far during the warm-up; frozen afterwards)::

      step_k = (sqrt(n) r_k / G) D^2 d_k,     shortened so that |step_k|_s <= cap * r_k

  ``D^2 d`` is the steepest-descent direction of the norm ``|.|_s``. Without scales
  (``entry_scale`` None) the norm is the Euclidean one in theta units and the factor
  ``sqrt(n)`` is left out. The median makes the scale robust: one heavy-tailed
  zeroth-order estimate (a 100 times longer finite difference) moves it by at most one
  rank, where a maximum would freeze it at the outlier and make every later step a
  fraction of the radius. The first step is exactly ``r_1`` long whatever the vehicle's
  cost scale, and no step is longer than ``cap * r_k``.

Why the convergence conditions still hold for :class:`ScaleFreeSteps`.

1. *The metric.* ``D`` is fixed (from theta0). With the inner product ``<a, b>_s = a^T
   D^-2 b`` the gradient of any function is ``D^2`` times its Euclidean gradient, so
   ``D^2 J_C`` is the model-based gradient and ``E[D^2 G_zo] = D^2 grad C_delta`` the
   gradient of the same smoothed cost ``C_delta`` in that geometry. The projection onto
   the box Theta is the same entry-wise clipping in both geometries (the box is a product
   of intervals and ``D`` is diagonal). So the iteration is the paper's, in an equivalent
   inner product on R^n, with step ``a_k``: the step conditions are unchanged, and
   stationarity in the Goldstein sense holds for balls of ``|.|_s``, which lie between
   Euclidean balls of radius ``delta min(s)`` and ``delta max(s)``.
2. *The step.* After the warm-up ``a_k = m_k c alpha_k`` with ``c = sqrt(n) radius / (G
   alpha_1)`` a constant and ``m_k = min(1, cap G / |D d_k|)`` the cap's factor. Under
   Assumption 1 on the compact Theta the estimates are bounded, ``|J_C| <= L`` and
   ``|G_zo| <= (n / delta) L delta = n L``, so ``m_k`` lies in ``[min(1, cap G / (n L
   max(s))), 1]``: bounded away from 0 and from above by 1. Multiplying a sequence by
   factors in a fixed interval ``[m, 1]`` with ``m > 0`` changes none of the three
   conditions (``sum m c alpha >= m c sum alpha = inf``; ``sum (m_k c alpha)^2 <= c^2 sum
   alpha^2 < inf``; ``sum m_k c alpha eta <= c sum alpha eta < inf``), so they hold
   exactly when they hold for the paper's ``alpha_k``. ``G`` is a median of finitely many
   norms, positive (zero directions are not counted) and frozen after ``warmup``
   directions; the warm-up is finitely many steps, which no condition sees.
   :meth:`shrink` (used by the safety guard after a rollback) multiplies ``c`` by a
   factor at most ``max_shrinks`` times, again a constant rescaling.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
    """Trust-radius steps in theta-space, per-entry scaled; see the module docstring.

    ``radius``: length of the first step: with ``entry_scale``, in the norm ``rms(x /
    entry_scale)`` (a relative change when the scales are theta0's magnitudes, see
    :meth:`relative`: 0.1 moves the entries by about 10 % each); without, the Euclidean
    norm in theta units. ``shape``: the schedule whose decay the
    radius follows (the paper's alpha_k; the radius is ``radius`` at iteration 1);
    ``warmup``: the number of (non-zero) directions whose median norm fixes ``G``;
    ``cap``: steps are never longer than ``cap * r_k``; ``entry_scale``: the scales ``s``
    (n,) of theta's entries, or None for all ones.

    The effective alpha it returns is the factor of ``D^2 d`` (of ``d`` when
    ``entry_scale`` is None).
    """

    radius: float
    shape: Schedule
    warmup: int = 10
    cap: float = 2.0
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
        scale = 1.0 if self.entry_scale is None else np.asarray(self.entry_scale)
        if self.entry_scale is not None and scale.shape != direction.shape:
            raise ValueError(f'entry_scale has {scale.size} entries, the direction '
                             f'{direction.size}')
        scaled = scale * direction                    # D d, the dual norm's argument
        norm = float(np.linalg.norm(scaled))
        # lengths in rms(x / s) are |x / s| / sqrt(n): the step's factor is sqrt(n) larger
        root_n = 1.0 if self.entry_scale is None else math.sqrt(direction.size)
        if not math.isfinite(norm):
            raise FloatingPointError(f'search direction is not finite (norm {norm})')
        if self.seen < self.warmup and norm > 0.0:
            self.warmup_norms.append(norm)
            self.seen += 1
            self.grad_scale = float(np.median(self.warmup_norms))
        if self.grad_scale == 0.0 or norm == 0.0:
            return np.zeros_like(direction), 0.0
        radius = root_n * self.scale * self.radius_at(k)
        alpha = radius / self.grad_scale
        if alpha * norm > self.cap * radius:          # |D^-1 step| = alpha |D d|
            alpha = self.cap * radius / norm
        return alpha * (scale * scaled), alpha

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
