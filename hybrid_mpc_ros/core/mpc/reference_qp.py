"""An independent solve of the MPC's QP (dense, Goldfarb-Idnani active set via quadprog).

Used to cross-check acados: the same problem as :mod:`mpc`, written from the condensed
matrices of :mod:`condensed_qp` with explicit slack variables (one per soft bound side),
solved by a different algorithm (a dual active-set method instead of an interior point).
"""

from __future__ import annotations

import numpy as np
import quadprog

from hybrid_mpc_ros.core.mpc.condensed_qp import CondensedQP


def solve_reference(qp: CondensedQP, x0: np.ndarray, x_ref: np.ndarray,
                    u_ref: np.ndarray) -> np.ndarray:
    """Optimal input plan U (N*nu,) of the QP for state x0 (nx,), at ``qp``'s theta."""
    horizon, nu = qp.horizon, qp.nu
    n_u = horizon * nu
    soft = np.flatnonzero(np.isfinite(qp.x_ub))          # rows of X with soft bounds
    n_s = soft.size
    # variables z = (U, s_up, s_lo); J = |X - Xr|^2_Qbar + |U - Ur|^2_Rbar + slack terms
    hess_u = qp.hess_theta                              # 2 (Gamma' Qbar Gamma + Rbar)
    lin_u = qp.tracking_gradient(x0, np.zeros(n_u), x_ref, u_ref)   # linear term at U = 0
    n_z = n_u + 2 * n_s
    hess = np.zeros((n_z, n_z))
    hess[:n_u, :n_u] = hess_u
    hess[n_u:, n_u:] = 2.0 * qp.rho2 * np.eye(2 * n_s)
    lin = np.concatenate([lin_u, np.full(2 * n_s, qp.rho1)])
    # constraints C^T z >= b
    gam_s = qp.gam[soft]
    x_free_s = (qp.phi @ x0 + qp.w)[soft]
    rows, rhs = [], []
    eye_u = np.eye(n_u)
    rows.append(np.hstack([eye_u, np.zeros((n_u, 2 * n_s))]))
    rhs.append(qp.u_lb)
    rows.append(np.hstack([-eye_u, np.zeros((n_u, 2 * n_s))]))
    rhs.append(-qp.u_ub)
    eye_s, zero_s = np.eye(n_s), np.zeros((n_s, n_s))
    # upper: X <= ub + s_up  ->  -Gamma U + s_up >= (Phi x0 + w) - ub
    rows.append(np.hstack([-gam_s, eye_s, zero_s]))
    rhs.append(x_free_s - qp.x_ub[soft])
    # lower: X >= lb - s_lo  ->  Gamma U + s_lo >= lb - (Phi x0 + w)
    rows.append(np.hstack([gam_s, zero_s, eye_s]))
    rhs.append(qp.x_lb[soft] - x_free_s)
    rows.append(np.hstack([np.zeros((2 * n_s, n_u)), np.eye(2 * n_s)]))
    rhs.append(np.zeros(2 * n_s))
    c_mat = np.vstack(rows).T
    b_vec = np.concatenate(rhs)
    solution = quadprog.solve_qp(0.5 * (hess + hess.T), -lin, c_mat, b_vec, 0)[0]
    return solution[:n_u]
