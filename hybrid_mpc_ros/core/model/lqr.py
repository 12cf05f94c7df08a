"""A discrete LQR that holds the quadcopter at a target position (ROS-free).

It is the simple stabilising controller of the package: the "trivial controller" of the
speed benchmark and the demo, and a baseline to compare the MPC with. The plant
:class:`~hybrid_mpc_ros.core.model.quadcopter.Quadcopter` is linearised at hover (its
``jacobians``), and the gain comes from the discrete algebraic Riccati equation::

    P = A' P A - A' P B (R + B' P B)^-1 B' P A + Q,     K = (R + B' P B)^-1 B' P A
    u = u_hover + K (x_ref - x)

Defaults for ``Q`` and ``R`` are the paper's upper-level cost weights
``Qc = diag(1 x6, 0.1 x6)`` and ``Rc = 0.01 I``.

Two additions to the textbook law keep it inside the region where the linearisation holds;
without them it diverges on the reference step from the origin to (-6, -3.5, 0):

* the position error is saturated to ``max_position_error`` metres (a moving "carrot"),
  because a 7 m error asks for rotor speeds far outside [0, 630] rad/s;
* before clipping to the rotor limits, all four rotors are shifted by the same amount so
  the largest (or smallest) fits. Hover (620.6 rad/s) sits 9.4 rad/s under the upper
  limit, so plain per-rotor clipping mostly destroys the differential speeds that make the
  attitude torques; shifting gives attitude priority over collective thrust, as flight
  controller mixers do.

The yaw error is wrapped to (-pi, pi] so a yaw measured as 2 pi - 0.1 means -0.1. The yaw
reference is 0, the yaw the gain was linearised at.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.linalg

from hybrid_mpc_ros.core.config import ConfigError
from hybrid_mpc_ros.core.model.quadcopter import NU, NX, Quadcopter, QuadParams

YAW_INDEX = 8
DEFAULT_MAX_POSITION_ERROR = 2.0


def default_state_weight() -> np.ndarray:
    """Return the paper's upper-level state weight ``Qc = diag(1 x6, 0.1 x6)``, shape (12, 12)."""
    return np.diag([1.0] * 6 + [0.1] * 6)


def default_input_weight() -> np.ndarray:
    """Return the paper's upper-level input weight ``Rc = 0.01 I``, shape (4, 4)."""
    return 0.01 * np.eye(NU)


def hover_linearisation(quad: Quadcopter) -> tuple[np.ndarray, np.ndarray]:
    """Jacobians ``(A (12x12), B (12x4))`` of ``quad.step`` at hover at the origin, yaw 0."""
    return quad.jacobians(quad.hover_state(), quad.params.hover_input)


def discrete_lqr(a: np.ndarray, b: np.ndarray, q: np.ndarray,
                 r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Infinite-horizon discrete LQR: gain ``K`` (m x n) and Riccati solution ``P`` (n x n).

    ``a`` is (n x n), ``b`` (n x m), ``q`` (n x n) positive semi-definite, ``r`` (m x m)
    positive definite. The optimal law is ``u = -K x``.
    """
    p = scipy.linalg.solve_discrete_are(a, b, q, r)
    k = np.linalg.solve(r + b.T @ p @ b, b.T @ p @ a)
    return k, p


def wrap_angle(angle):
    """Angle(s) in radians wrapped to (-pi, pi]."""
    return np.pi - np.mod(np.pi - angle, 2.0 * np.pi)


def _weight(value, size: int, default: np.ndarray, name: str) -> np.ndarray:
    """Build a weight matrix from None (default), a diagonal (size,) or a (size, size)."""
    if value is None:
        return default
    value = np.asarray(value, dtype=float)
    if value.shape == (size,):
        value = np.diag(value)
    if value.shape != (size, size) or not np.all(np.isfinite(value)):
        raise ConfigError(f'{name} must be a finite ({size},) diagonal or ({size}, {size}) '
                          f'matrix, got shape {value.shape}')
    return value


class LQRController:
    """Hover-linearised discrete LQR position holder for the quadcopter.

    ``quad_or_params`` is a :class:`Quadcopter` (its ``dt`` is used unless ``dt`` is given,
    which must then agree), a :class:`QuadParams` or None (the paper's plant). ``dt`` [s] is
    the control period the gain is designed for (default 0.1). ``Q`` (12x12 or a diagonal
    of 12) and ``R`` (4x4 or a diagonal of 4) default to the paper's ``Qc`` and ``Rc``.
    ``max_position_error`` [m] saturates the position error (None or inf: no saturation).
    """

    def __init__(self, quad_or_params: Quadcopter | QuadParams | None = None,
                 dt: float | None = None, Q=None, R=None,
                 target_position=(0.0, 0.0, 0.0),
                 max_position_error: float | None = DEFAULT_MAX_POSITION_ERROR,
                 substeps: int = 4):
        if isinstance(quad_or_params, Quadcopter):
            quad = quad_or_params
            if dt is not None and not math.isclose(dt, quad.dt):
                raise ConfigError(f'dt {dt} s disagrees with the model period {quad.dt} s')
        else:
            quad = Quadcopter(quad_or_params, dt=0.1 if dt is None else dt, substeps=substeps)
        if max_position_error is None:
            max_position_error = math.inf
        if not max_position_error > 0.0:
            raise ConfigError(f'max_position_error must be > 0 m, got {max_position_error}')
        self.quad = quad
        self.params = quad.params
        self.dt = quad.dt
        self.Q = _weight(Q, NX, default_state_weight(), 'Q')
        self.R = _weight(R, NU, default_input_weight(), 'R')
        self.A, self.B = hover_linearisation(quad)
        self.K, self.P = discrete_lqr(self.A, self.B, self.Q, self.R)
        self.max_position_error = float(max_position_error)
        self._u_hover = self.params.hover_input
        self._omega_min = self.params.omega_min
        self._omega_max = self.params.omega_max
        self.x_ref = quad.hover_state()
        self.set_target(target_position)

    @property
    def closed_loop_matrix(self) -> np.ndarray:
        """``A - B K`` of the linearised closed loop, shape (12, 12)."""
        return self.A - self.B @ self.K

    @property
    def spectral_radius(self) -> float:
        """Largest eigenvalue modulus of :attr:`closed_loop_matrix` (< 1: stable)."""
        return float(np.max(np.abs(np.linalg.eigvals(self.closed_loop_matrix))))

    @property
    def target_position(self) -> np.ndarray:
        """The hover target position [m], shape (3,) (a copy)."""
        return self.x_ref[0:3].copy()

    def set_target(self, position) -> None:
        """Hover at ``position`` (3,) [m] from now on; raises ConfigError if not finite."""
        position = np.asarray(position, dtype=float)
        if position.shape != (3,) or not np.all(np.isfinite(position)):
            raise ConfigError(f'target position must be 3 finite numbers, got {position!r}')
        self.x_ref = self.quad.hover_state(position)

    def command(self, x: np.ndarray) -> np.ndarray:
        """Rotor speeds [rad/s] for state ``x`` (12,), within the rotor limits; shape (4,)."""
        error = self.x_ref - x
        error[YAW_INDEX] = wrap_angle(error[YAW_INDEX])
        distance = math.sqrt(error[0] ** 2 + error[1] ** 2 + error[2] ** 2)
        if distance > self.max_position_error:
            error[0:3] *= self.max_position_error / distance
        u = self._u_hover + self.K @ error
        # shift collectively first so the differential speeds (attitude) survive clipping
        excess = u.max() - self._omega_max
        if excess > 0.0:
            u -= excess
        deficit = self._omega_min - u.min()
        if deficit > 0.0:
            u += deficit
        return np.clip(u, self._omega_min, self._omega_max)
