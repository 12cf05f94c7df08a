"""The MPC cost parameters theta: layout, names, bounds and the map to (Q, R, P).

One source of truth for theta (SPEC section 2)::

    theta = (p_Q in R^12, p_R in R^4, p_P in R^78),  n_theta = 94
    Q = diag(p_Q^2) + 1e-6 I,   R = diag(p_R^2) + 1e-6 I,   P = L L^T + 1e-6 I

``L`` is lower triangular; ``p_P`` lists its entries row by row: ``L[0,0], L[1,0], L[1,1],
L[2,0], ...`` (``numpy.tril_indices`` order). The ROS parameter names are ``theta.p_Q``,
``theta.p_R`` and ``theta.p_P`` (double arrays).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg

from hybrid_mpc_ros.core.model.quadcopter import NU, NX

EPS = 1e-6
N_Q = NX
N_R = NU
N_P = NX * (NX + 1) // 2
N_THETA = N_Q + N_R + N_P
SLICE_Q = slice(0, N_Q)
SLICE_R = slice(N_Q, N_Q + N_R)
SLICE_P = slice(N_Q + N_R, N_THETA)
TRIL = np.tril_indices(NX)
GROUPS = (('p_Q', SLICE_Q, 'Q = diag(p_Q^2) + 1e-6 I: stage state weights (12)'),
          ('p_R', SLICE_R, 'R = diag(p_R^2) + 1e-6 I: stage input weights (4)'),
          ('p_P', SLICE_P, 'P = L L^T + 1e-6 I, L lower-triangular row by row (78)'))


def names() -> list[str]:
    """Human-readable name of every theta entry, length 94 (e.g. ``p_P[3,1]``)."""
    out = [f'p_Q[{i}]' for i in range(N_Q)] + [f'p_R[{i}]' for i in range(N_R)]
    out += [f'p_P[{r},{c}]' for r, c in zip(*TRIL)]
    return out


def split(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return views ``(p_Q (12,), p_R (4,), p_P (78,))`` of ``theta`` (94,)."""
    theta = np.asarray(theta, dtype=float)
    if theta.shape != (N_THETA,):
        raise ValueError(f'theta must have shape ({N_THETA},), got {theta.shape}')
    return theta[SLICE_Q], theta[SLICE_R], theta[SLICE_P]


def lower_factor(p_p: np.ndarray) -> np.ndarray:
    """Return the lower-triangular ``L`` (12x12) holding ``p_P`` (78,)."""
    out = np.zeros((NX, NX))
    out[TRIL] = p_p
    return out


def weights(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cost matrices ``(Q 12x12, R 4x4, P 12x12)`` of theta (94,)."""
    p_q, p_r, p_p = split(theta)
    low = lower_factor(p_p)
    return (np.diag(p_q ** 2) + EPS * np.eye(NX), np.diag(p_r ** 2) + EPS * np.eye(NU),
            low @ low.T + EPS * np.eye(NX))


def from_weights(q_diag: np.ndarray, r_diag: np.ndarray, p_matrix: np.ndarray) -> np.ndarray:
    """Return theta (94,) reproducing diagonal ``Q``, ``R`` and a positive definite ``P``."""
    q_diag, r_diag = np.asarray(q_diag, float), np.asarray(r_diag, float)
    if np.any(q_diag <= EPS) or np.any(r_diag <= EPS):
        raise ValueError('Q and R diagonals must exceed 1e-6')
    low = np.linalg.cholesky(np.asarray(p_matrix, float) - EPS * np.eye(NX))
    return np.concatenate([np.sqrt(q_diag - EPS), np.sqrt(r_diag - EPS), low[TRIL]])


def dare_weight(a_matrix: np.ndarray, b_matrix: np.ndarray, q_diag: np.ndarray,
                r_diag: np.ndarray) -> np.ndarray:
    """Return the DARE solution P (12x12, symmetrised): the infinite-horizon LQR cost-to-go.

    ``a_matrix`` (12x12), ``b_matrix`` (12x4); ``q_diag`` (12,) and ``r_diag`` (4,) are the
    diagonals of the state and input weights.
    """
    p_dare = scipy.linalg.solve_discrete_are(a_matrix, b_matrix, np.diag(q_diag),
                                             np.diag(r_diag))
    return 0.5 * (p_dare + p_dare.T)


def initial_theta(a_matrix: np.ndarray, b_matrix: np.ndarray, qc_diag: np.ndarray,
                  rc_diag: np.ndarray) -> np.ndarray:
    """Return the paper's start (94,): Q = Qc, R = Rc, P from the DARE of (A, B, Qc, Rc).

    ``a_matrix`` (12x12) and ``b_matrix`` (12x4) are the nominal model's; ``qc_diag`` (12,)
    and ``rc_diag`` (4,) the diagonals of the scenario's upper-level weights.
    """
    qc_diag, rc_diag = np.asarray(qc_diag, float), np.asarray(rc_diag, float)
    return from_weights(qc_diag, rc_diag, dare_weight(a_matrix, b_matrix, qc_diag, rc_diag))


@dataclass(frozen=True)
class ThetaBox:
    """The convex compact set Theta: a box ``lower <= theta <= upper`` (each (94,))."""

    lower: np.ndarray
    upper: np.ndarray

    def project(self, theta: np.ndarray) -> np.ndarray:
        """Euclidean projection of theta (94,) onto the box."""
        return np.clip(theta, self.lower, self.upper)

    def contains(self, theta: np.ndarray) -> bool:
        """Whether theta (94,) lies in the box."""
        return bool(np.all(theta >= self.lower) and np.all(theta <= self.upper))

    def violations(self, theta: np.ndarray) -> list[str]:
        """Names of the entries of theta outside the box, with their values and bounds."""
        bad = np.flatnonzero((theta < self.lower) | (theta > self.upper) | ~np.isfinite(theta))
        labels = names()
        return [f'{labels[i]}={theta[i]:.6g} not in [{self.lower[i]:.6g}, {self.upper[i]:.6g}]'
                for i in bad]


def default_box(theta0: np.ndarray, scale: float, abs_min: float) -> ThetaBox:
    """Theta box around a start theta0 (94,): ``|theta_i| <= max(scale |theta0_i|, abs_min)``.

    The paper leaves Theta unstated; this keeps every weight within a factor ``scale`` of
    its start in square-root units (a factor ``scale^2`` on Q and R) and lets entries that
    start at zero (off-diagonal L) move by ``abs_min``. Both come from the scenario.
    """
    radius = np.maximum(scale * np.abs(theta0), abs_min)
    return ThetaBox(-radius, radius)
