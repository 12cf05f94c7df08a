"""Gradient estimates of the closed-loop cost C(theta).

* :func:`model_based_gradient`: forward sensitivity recursion over the *measured*
  trajectory through a nominal model's Jacobians ``(G_x, G_u)``.
* :func:`zeroth_order_gradient`: one-direction forward-difference estimate with a
  direction uniform on the unit sphere.
* :func:`hybrid_direction`: their mix ``(1 - eta) G_zo + eta J_C``.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from hybrid_mpc_ros.core.learning.episode import EpisodeRecord
from hybrid_mpc_ros.core.learning.objective import ClosedLoopCost

Jacobians = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def model_based_gradient(record: EpisodeRecord, cost: ClosedLoopCost,
                         jacobians: Jacobians) -> np.ndarray:
    """``J_C`` (94,): dC/dtheta chained through ``jacobians(x, u) -> (G_x, G_u)``.

    Recursion (``S_t`` = dx_t/dtheta, 12 x 94)::

        S_0 = 0
        dU_t = K_x[t] S_t + K_theta[t]
        S_{t+1} = G_x(x_t, u_t) S_t + G_u(x_t, u_t) dU_t
        J_C = sum_t dc/dx_t S_t + dc/du_t dU_t  (+ terminal and violation terms)

    With the plant's own Jacobians this is the exact gradient of C along the episode.
    """
    gx, gu = cost.gradients(record.x, record.u)
    sens = np.zeros((record.x.shape[1], record.du_dtheta.shape[2]))
    grad = np.zeros(record.du_dtheta.shape[2])
    for t in range(record.steps):
        d_u = record.du_dx[t] @ sens + record.du_dtheta[t]
        grad += gx[t] @ sens + gu[t] @ d_u
        g_x, g_u = jacobians(record.x[t], record.u[t])
        sens = g_x @ sens + g_u @ d_u
    grad += gx[-1] @ sens
    return grad


def sample_unit_sphere(rng: np.random.Generator, dim: int) -> np.ndarray:
    """Draw a direction (dim,) uniform on the unit sphere (normalised Gaussian)."""
    v = rng.standard_normal(dim)
    return v / np.linalg.norm(v)


def zeroth_order_gradient(cost_perturbed: float, cost_base: float, direction: np.ndarray,
                          delta: float) -> np.ndarray:
    """``G_zo = (n / delta) (C(theta + delta v) - C(theta)) v`` for v (n,) on the sphere."""
    return (direction.size / delta) * (cost_perturbed - cost_base) * direction


def hybrid_direction(g_zo: np.ndarray | None, j_c: np.ndarray | None,
                     eta: float) -> np.ndarray:
    """``(1 - eta) G_zo + eta J_C``; a term whose weight is 0 may be None (not computed)."""
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f'eta must lie in [0, 1], got {eta}')
    out = 0.0
    if eta < 1.0:
        out = out + (1.0 - eta) * g_zo
    if eta > 0.0:
        out = out + eta * j_c
    return np.asarray(out, dtype=float)
