"""The closed-loop (upper-level) cost of an episode, with its derivatives.

::

    C = sum_{t<T} (|x_t - x_ref|^2_Qc + |u_t - u_ref|^2_Rc) + |x_T - x_ref|^2_Pc
        + w_viol * sum_{t=0..T} dist_1(x_t, X)

``dist_1(x, X) = sum_i max(0, x_i - ub_i) + max(0, lb_i - x_i)`` is the 1-norm distance to
the state box ``X`` (the MPC's state constraints). Its derivative is taken as the
subgradient ``+-w_viol`` on strictly violated components and 0 elsewhere. Every weight
comes from the scenario (:meth:`hybrid_mpc_ros.core.scenario.Scenario.cost`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hybrid_mpc_ros.core.learning.episode import EpisodeRecord


@dataclass
class ClosedLoopCost:
    """Weights and references of the closed-loop cost.

    ``x_ref`` (12,), ``u_ref`` (4,); ``qc`` (12,) and ``rc`` (4,) are diagonals; ``pc`` is a
    diagonal (12,) or a full symmetric matrix (12, 12) (e.g. the DARE solution); ``x_lb``,
    ``x_ub`` (12,) the state box X (``-inf``/``inf`` where unbounded), normally the MPC's
    own (:meth:`MPCConfig.state_box`); ``violation_weight`` is ``w_viol``.
    """

    x_ref: np.ndarray
    u_ref: np.ndarray
    qc: np.ndarray
    rc: np.ndarray
    pc: np.ndarray
    x_lb: np.ndarray
    x_ub: np.ndarray
    violation_weight: float

    def _terminal(self, dx_final: np.ndarray) -> float:
        if self.pc.ndim == 1:
            return float(np.sum(dx_final ** 2 * self.pc))
        return float(dx_final @ self.pc @ dx_final)

    def parts(self, x: np.ndarray, u: np.ndarray) -> tuple[float, float]:
        """``(tracking, violation)`` of states x (T+1, 12) and inputs u (T, 4)."""
        dx = x - self.x_ref
        du = u - self.u_ref
        tracking = (float(np.sum(dx[:-1] ** 2 * self.qc)) + float(np.sum(du ** 2 * self.rc))
                    + self._terminal(dx[-1]))
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
        if self.pc.ndim == 1:
            gx[-1] = 2.0 * self.pc * dx[-1]
        else:
            gx[-1] = 2.0 * self.pc @ dx[-1]      # pc symmetric: d(dx' P dx)/dx = 2 P dx
        gx += self.violation_weight * ((x > self.x_ub).astype(float)
                                       - (x < self.x_lb).astype(float))
        gu = 2.0 * self.rc * (u - self.u_ref)
        return gx, gu
