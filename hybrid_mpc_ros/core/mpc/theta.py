"""The MPC cost parameters theta: layout, names, bounds and the map to (Q, R, P).

One source of truth for theta (the paper's parametrisation)::

    theta = (p_Q in R^12, p_R in R^4, p_P in R^78),  n_theta = 94
    Q = diag(p_Q^2) + 1e-6 I,   R = diag(p_R^2) + 1e-6 I,   P = L L^T + 1e-6 I

``L`` is lower triangular; ``p_P`` lists its entries row by row: ``L[0,0], L[1,0], L[1,1],
L[2,0], ...`` (``numpy.tril_indices`` order). The ROS parameter names are ``theta.p_Q``,
``theta.p_R`` and ``theta.p_P`` (double arrays, :data:`PARAMETER_NAMES`):
:func:`to_parameters` and :func:`from_parameters` convert, :func:`validate_parameters`
checks a (partial) update without applying it. The safe theta a controller flies after an
envelope abort has the same arrays under ``safe_theta.`` (:data:`SAFE_PARAMETER_NAMES`,
:func:`to_safe_parameters`, :func:`unprefix_safe`).

Where each limit on theta is enforced:

* The Theta box (:class:`ThetaBox`, the paper's convex compact set) belongs to
  the tuner: it projects every update onto the box. The zeroth-order episode runs at
  ``theta + delta v``, which may lie outside the box by up to ``delta``, so the box is
  *not* a limit the controller applies.
* The controller accepts any theta that :func:`validate_parameters` accepts: the right
  sizes, real numbers, finite, and every entry within ``MAX_ABS_ENTRY`` in magnitude.
  ``Q``, ``R`` and ``P`` are positive definite by construction (the ``+ 1e-6 I``), whatever
  the signs; the magnitude limit keeps the QP's scale where HPIPM's absolute tolerances can
  be met (see :data:`MAX_ABS_ENTRY`).
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

PARAMETER_PREFIX = 'theta.'
PARAMETER_NAMES = tuple(PARAMETER_PREFIX + name for name, _, _ in GROUPS)
# the theta a controller falls back to on an envelope abort, as the same three arrays
SAFE_PARAMETER_PREFIX = 'safe_theta.'
SAFE_PARAMETER_NAMES = tuple(SAFE_PARAMETER_PREFIX + name for name, _, _ in GROUPS)
# Largest |theta_i| a controller accepts. Weights are squares of theta, so this caps a
# diagonal weight at 9e4. Measured on the arXiv v1 scenario (60-step episodes from hover,
# HPIPM with absolute tolerances 1e-10): the QP solves at every step with theta = 30 theta0
# (largest entry 270), fails at some steps at 50 theta0 (largest 450) and at every step at
# 100 theta0; Q alone scaled by 100 (entries up to 100) already fails at some steps. So the
# limit rejects scales at which the QP cannot be solved at all, while the default Theta box
# (|theta_i| <= max(10 |theta0_i|, 1), largest entry 90) plus delta stays well inside it;
# it does not promise that every theta within it solves (the controller's fallback input
# covers a failed solve).
MAX_ABS_ENTRY = 300.0


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


def to_parameters(theta: np.ndarray) -> dict[str, list[float]]:
    """ROS parameter values of theta (94,): ``{'theta.p_Q': [12 floats], ...}``.

    One entry per :data:`PARAMETER_NAMES` (``theta.p_Q`` 12, ``theta.p_R`` 4, ``theta.p_P``
    78 values), lists of Python floats as a ``DOUBLE_ARRAY`` parameter wants them.
    """
    theta = np.asarray(theta, dtype=float)
    if theta.shape != (N_THETA,):
        raise ValueError(f'theta must have shape ({N_THETA},), got {theta.shape}')
    return {PARAMETER_PREFIX + name: theta[part].tolist() for name, part, _ in GROUPS}


def to_safe_parameters(theta: np.ndarray) -> dict[str, list[float]]:
    """As :func:`to_parameters`, under the names of :data:`SAFE_PARAMETER_NAMES`."""
    return {SAFE_PARAMETER_PREFIX + name[len(PARAMETER_PREFIX):]: value
            for name, value in to_parameters(theta).items()}


def unprefix_safe(values) -> dict:
    """Return the ``safe_theta.*`` entries of ``values`` renamed ``theta.*`` (others dropped)."""
    return {PARAMETER_PREFIX + name[len(SAFE_PARAMETER_PREFIX):]: value
            for name, value in values.items() if name in SAFE_PARAMETER_NAMES}


_SLICES = {PARAMETER_PREFIX + name: part for name, part, _ in GROUPS}
_REAL_KINDS = 'iuf'     # numpy dtype kinds of integers and floats (not bool 'b', not complex)


def _as_doubles(name: str, value) -> tuple[np.ndarray | None, str]:
    """``(values (n,), '')`` for a sequence of real numbers, else ``(None, reason)``."""
    if isinstance(value, (str, bytes)) or not hasattr(value, '__len__'):
        return None, f'{name} must be an array of doubles, got {type(value).__name__}'
    if isinstance(value, np.ndarray):
        if value.ndim != 1 or value.dtype.kind not in _REAL_KINDS:
            return None, (f'{name} must be a 1-D array of doubles, got {value.dtype} '
                          f'with shape {value.shape}')
        return value.astype(float), ''
    for i, item in enumerate(value):
        # a bool is an int to Python, but a weight given as True is a mistake
        if isinstance(item, (bool, np.bool_)) or not isinstance(
                item, (int, float, np.integer, np.floating)):
            return None, f'{name}[{i}] must be a number, got {type(item).__name__} {item!r}'
    return np.array(value, dtype=float), ''


def validate_parameters(values, max_abs: float = MAX_ABS_ENTRY) -> str:
    """Say why a (partial) theta update cannot be applied; ``''`` when it can.

    ``values`` maps some of :data:`PARAMETER_NAMES` to arrays of doubles (lists,
    ``array.array('d')`` as rclpy hands them over, tuples or 1-D numpy arrays; integers are
    accepted as doubles, booleans are not). Checks names, types, sizes, finiteness and
    ``|entry| <= max_abs``; the Theta box is deliberately not checked (module docstring).
    Validates only: nothing is applied.
    """
    for name, value in values.items():
        part = _SLICES.get(name)
        if part is None:
            return f'unknown theta parameter {name!r} (expected one of {list(PARAMETER_NAMES)})'
        array, reason = _as_doubles(name, value)
        if reason:
            return reason
        size = part.stop - part.start
        if array.shape != (size,):
            return f'{name} must hold {size} values, got {array.size}'
        labels = names()[part]
        bad = np.flatnonzero(~np.isfinite(array))
        if bad.size:
            return f'{name} has non-finite entries: ' + ', '.join(
                f'{labels[i]}={array[i]}' for i in bad[:5])
        big = np.flatnonzero(np.abs(array) > max_abs)
        if big.size:
            return (f'{name} has entries beyond the magnitude limit {max_abs:g}: ' + ', '.join(
                f'{labels[i]}={array[i]:.6g}' for i in big[:5]))
    return ''


def from_parameters(values, current: np.ndarray | None = None,
                    max_abs: float = MAX_ABS_ENTRY) -> np.ndarray:
    """Return theta (94,) with the groups in ``values`` replaced, the rest from ``current``.

    ``values`` as for :func:`validate_parameters`; ``current`` (94,) supplies the groups a
    partial update leaves out (required unless all three are given). Raises ValueError with
    the :func:`validate_parameters` reason. The result is a new array.
    """
    reason = validate_parameters(values, max_abs)
    if reason:
        raise ValueError(reason)
    missing = [name for name in PARAMETER_NAMES if name not in values]
    if current is None:
        if missing:
            raise ValueError(f'{missing} not given and no current theta to keep them from')
        theta = np.empty(N_THETA)
    else:
        theta = np.array(current, dtype=float)
        if theta.shape != (N_THETA,):
            raise ValueError(f'current theta must have shape ({N_THETA},), got {theta.shape}')
    for name, value in values.items():
        theta[_SLICES[name]] = _as_doubles(name, value)[0]
    return theta
