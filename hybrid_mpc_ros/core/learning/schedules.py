"""Step-size (alpha_k) and mixing (eta_k) schedules, indexed by iteration 1, 2, ...

Convergence of the hybrid scheme needs ``sum alpha = inf``, ``sum alpha^2 < inf``,
``eta in [0, 1]`` and ``sum alpha eta < inf`` (the paper's conditions).

The two versions of the paper index their formulas differently, so a schedule says which
``k`` its first iteration uses (``first_k``): iteration ``i`` (1-based) evaluates the
formula at ``k = i - 1 + first_k``.

* arXiv v1 prints the step size as ``5e-5 log(k) + 2/(k+1)^0.75``. Read literally it
  grows without bound (``sum alpha^2 = inf``) and starts at ~1.2, which with closed-loop
  costs of order 10^3 would throw theta far out in the first step. We read it as
  ``alpha_k = 5e-5 (log(k) + 2) / (k+1)^0.75`` (kind ``log_plus_offset``), the only
  grouping of those constants that meets the convergence conditions and gives steps of a
  sensible size, with k = 1, 2, ...; kind ``literal`` keeps the literal reading available.
* The published version states ``alpha_k = 2e-4 log(k+2) / (k+1)^0.8`` and ``eta_k =
  1/(k+1)^gamma``; ``log(k+2)`` is written so that k = 0 is valid, so we read both with
  k = 0, 1, 2, ... (kind ``log_shifted``, ``first_k = 0``).

The constants of each scenario are in its file (``config/scenarios``); docs/results_arxiv_v1.md and
docs/results_l4dc2026.md state these readings.
"""

from __future__ import annotations

from dataclasses import dataclass
import math

import numpy as np

KINDS = ('log_plus_offset', 'log_shifted', 'literal', 'power', 'constant')


@dataclass(frozen=True)
class Schedule:
    """A schedule: the value for iteration i = 1, 2, ... of a formula in k.

    ``k = i - 1 + first_k``. ``kind``:

    * ``log_plus_offset``: ``scale (log k + offset) / (k+1)^power`` (arXiv v1, as read);
    * ``log_shifted``:     ``scale log(k + offset) / (k+1)^power`` (published version);
    * ``literal``:         ``scale log k + offset / (k+1)^power`` (arXiv v1's text, literally);
    * ``power``:           ``scale / (k+1)^power`` (the mixing ``eta_k = 1/(k+1)^gamma``);
    * ``constant``:        ``scale``.
    """

    kind: str
    scale: float
    offset: float
    power: float
    first_k: int

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f'unknown schedule kind {self.kind!r}; known: {KINDS}')
        if isinstance(self.first_k, bool) or int(self.first_k) != self.first_k \
                or self.first_k < 0:
            raise ValueError(f'first_k must be an integer >= 0, got {self.first_k!r}')

    def __call__(self, iteration: int) -> float:
        """Value at ``iteration`` (1-based)."""
        return float(self.values(np.array([iteration]))[0])

    def values(self, iterations: np.ndarray) -> np.ndarray:
        """Vectorised values at ``iterations`` (array of 1-based iteration numbers)."""
        # integer-valued floats: i - 1 + first_k is exact, so first_k = 1 gives k = i bit
        # for bit (the arXiv scenario's numbers do not move)
        ks = np.asarray(iterations, dtype=float) - 1.0 + self.first_k
        if self.kind == 'log_plus_offset':
            return self.scale * (np.log(ks) + self.offset) / (ks + 1.0) ** self.power
        if self.kind == 'log_shifted':
            return self.scale * np.log(ks + self.offset) / (ks + 1.0) ** self.power
        if self.kind == 'literal':
            return self.scale * np.log(ks) + self.offset / (ks + 1.0) ** self.power
        if self.kind == 'power':
            return self.scale / (ks + 1.0) ** self.power
        return np.full(ks.shape, self.scale)


def eta_schedule(first_k: int, gamma: float | None = None,
                 constant: float | None = None) -> Schedule:
    """``eta_k = 1/(k+1)^gamma`` from ``k = first_k``, or a constant in [0, 1].

    A constant 1 is the pure model-based method, 0 the pure zeroth-order one.
    """
    if constant is not None:
        if not 0.0 <= constant <= 1.0:
            raise ValueError(f'eta must lie in [0, 1], got {constant}')
        return Schedule('constant', scale=constant, offset=0.0, power=0.0, first_k=first_k)
    if gamma is None or gamma <= 0:
        raise ValueError(f'gamma must be > 0, got {gamma}')
    return Schedule('power', scale=1.0, offset=0.0, power=gamma, first_k=first_k)


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
    its = np.arange(1, iterations + 1)
    a, e = alpha.values(its), eta.values(its)
    return {'sum_alpha_diverges': not series_behaviour(a)['converges'],
            'sum_alpha_sq_converges': series_behaviour(a * a)['converges'],
            'eta_in_unit_interval': bool(np.all((e >= 0.0) & (e <= 1.0))),
            'sum_alpha_eta_converges': series_behaviour(a * e)['converges']}
