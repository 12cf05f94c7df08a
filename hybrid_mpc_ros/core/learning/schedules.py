"""Step-size (alpha_k) and mixing (eta_k) schedules, k = 1, 2, ...

Convergence of the hybrid scheme needs ``sum alpha = inf``, ``sum alpha^2 < inf``,
``eta in [0, 1]`` and ``sum alpha eta < inf`` (SPEC section 1).

The paper's step size is stated in the spec as ``5e-5 log(k) + 2/(k+1)^0.75``. Read
literally it grows without bound (``sum alpha^2 = inf``) and starts at ~1.2, which with
closed-loop costs of order 10^3 would throw theta far out in the first step. We read it as
``alpha_k = 5e-5 (log(k) + 2) / (k+1)^0.75``, the only grouping of those constants that
meets the convergence conditions and gives steps of a sensible size; ``kind: literal``
keeps the literal reading available. The README states this choice.
"""

from __future__ import annotations

from dataclasses import dataclass
import math

import numpy as np


@dataclass(frozen=True)
class Schedule:
    """A schedule ``value(k)`` for k >= 1, from a small configuration.

    ``kind``:
    * ``paper_alpha``: ``scale (log k + offset) / (k+1)^power`` (defaults 5e-5, 2, 0.75);
    * ``literal``:     ``scale log k + offset / (k+1)^power`` (the spec's text, literally);
    * ``power``:       ``scale / (k+1)^power`` (the paper's ``eta_k = 1/(k+1)^gamma``);
    * ``constant``:    ``scale``.
    """

    kind: str = 'paper_alpha'
    scale: float = 5e-5
    offset: float = 2.0
    power: float = 0.75

    def __post_init__(self):
        if self.kind not in ('paper_alpha', 'literal', 'power', 'constant'):
            raise ValueError(f'unknown schedule kind {self.kind!r}')

    def __call__(self, k: int) -> float:
        """Value at iteration k (k >= 1)."""
        return float(self.values(np.array([k]))[0])

    def values(self, ks: np.ndarray) -> np.ndarray:
        """Vectorised values at iterations ``ks`` (array of k >= 1)."""
        ks = np.asarray(ks, dtype=float)
        if self.kind == 'paper_alpha':
            return self.scale * (np.log(ks) + self.offset) / (ks + 1.0) ** self.power
        if self.kind == 'literal':
            return self.scale * np.log(ks) + self.offset / (ks + 1.0) ** self.power
        if self.kind == 'power':
            return self.scale / (ks + 1.0) ** self.power
        return np.full(ks.shape, self.scale)


def eta_schedule(gamma: float | None = None, constant: float | None = None) -> Schedule:
    """``eta_k = 1/(k+1)^gamma`` or a constant in [0, 1] (1: model-based, 0: zeroth-order)."""
    if constant is not None:
        if not 0.0 <= constant <= 1.0:
            raise ValueError(f'eta must lie in [0, 1], got {constant}')
        return Schedule('constant', scale=constant)
    if gamma is None or gamma <= 0:
        raise ValueError(f'gamma must be > 0, got {gamma}')
    return Schedule('power', scale=1.0, power=gamma)


def series_behaviour(terms: np.ndarray) -> dict:
    """Judge whether ``sum terms`` converges from its last decade of (positive) terms.

    Fits the local decay exponent ``p`` of ``a_k ~ k^-p`` between k = n/10 and k = n
    (a log factor lowers it by ~1/ln k); ``p > 1`` means the series converges. Also
    returns the partial sum and the share of it contributed by the last decade.
    """
    n = terms.size
    if n < 100:
        raise ValueError('need at least 100 terms')
    total = float(np.sum(terms))
    if np.all(terms[n // 10:] == 0.0):
        return {'exponent': math.inf, 'converges': True, 'partial_sum': total,
                'last_decade_share': 0.0}
    lo, hi = terms[n // 10 - 1], terms[n - 1]
    exponent = math.log(lo / hi) / math.log(n / (n // 10)) if lo > 0 and hi > 0 else 0.0
    return {'exponent': exponent, 'converges': exponent > 1.0, 'partial_sum': total,
            'last_decade_share': float(np.sum(terms[n // 10:]) / total) if total else 0.0}


def check_conditions(alpha: Schedule, eta: Schedule, iterations: int = 10 ** 6) -> dict:
    """Check the convergence conditions numerically over ``iterations`` steps."""
    ks = np.arange(1, iterations + 1)
    a, e = alpha.values(ks), eta.values(ks)
    return {'sum_alpha_diverges': not series_behaviour(a)['converges'],
            'sum_alpha_sq_converges': series_behaviour(a * a)['converges'],
            'eta_in_unit_interval': bool(np.all((e >= 0.0) & (e <= 1.0))),
            'sum_alpha_eta_converges': series_behaviour(a * e)['converges']}
