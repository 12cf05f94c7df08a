"""The closed-loop (upper-level) cost of an episode, with its derivatives (SPEC section 1).

::

    C = sum_{t<T} (|x_t - x_ref|^2_Qc + |u_t - u_ref|^2_Rc) + |x_T - x_ref|^2_Pc
        + w_viol * sum_{t=0..T} dist_1(x_t, X)

``dist_1(x, X) = sum_i max(0, x_i - ub_i) + max(0, lb_i - x_i)`` is the 1-norm distance to
the state box ``X`` (the MPC's state constraints). Its derivative is taken as the
subgradient ``+-w_viol`` on strictly violated components and 0 elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hybrid_mpc_ros.core.mpc import theta as th
from hybrid_mpc_ros.core.learning.episode import EpisodeRecord
from hybrid_mpc_ros.core.mpc.policy import MPCConfig


def _box(side: int) -> np.ndarray:
    # the cost penalises leaving the MPC's own state constraint set X
    return MPCConfig().state_box()[side]


@dataclass
class ClosedLoopCost:
    """Weights and references of the closed-loop cost (defaults: the paper's)."""

    x_ref: np.ndarray
    u_ref: np.ndarray
    qc: np.ndarray = field(default_factory=lambda: th.QC_DIAG.copy())     # diagonal (12,)
    rc: np.ndarray = field(default_factory=lambda: th.RC_DIAG.copy())     # diagonal (4,)
    pc: np.ndarray = field(default_factory=lambda: th.PC_DIAG.copy())     # diagonal (12,)
    x_lb: np.ndarray = field(default_factory=lambda: _box(0))
    x_ub: np.ndarray = field(default_factory=lambda: _box(1))
    violation_weight: float = 300.0

    def parts(self, x: np.ndarray, u: np.ndarray) -> tuple[float, float]:
        """``(tracking, violation)`` of states x (T+1, 12) and inputs u (T, 4)."""
        dx = x - self.x_ref
        du = u - self.u_ref
        tracking = (float(np.sum(dx[:-1] ** 2 * self.qc)) + float(np.sum(du ** 2 * self.rc))
                    + float(np.sum(dx[-1] ** 2 * self.pc)))
        over = np.maximum(x - self.x_ub, 0.0)
        under = np.maximum(self.x_lb - x, 0.0)
        violation = self.violation_weight * float(np.sum(over) + np.sum(under))
        return tracking, violation

    def __call__(self, record: EpisodeRecord) -> float:
        """Total cost C of an episode."""
        tracking, violation = self.parts(record.x, record.u)
        return tracking + violation

    def gradients(self, x: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(dC/dx_t (T+1, 12), dC/du_t (T, 4))``, terminal and violation terms included."""
        dx = x - self.x_ref
        gx = np.empty_like(x)
        gx[:-1] = 2.0 * self.qc * dx[:-1]
        gx[-1] = 2.0 * self.pc * dx[-1]
        gx += self.violation_weight * ((x > self.x_ub).astype(float)
                                       - (x < self.x_lb).astype(float))
        gu = 2.0 * self.rc * (u - self.u_ref)
        return gx, gu
