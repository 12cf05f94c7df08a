"""The quadcopter: plant constants, continuous dynamics, discrete step and its Jacobians.

Model (Luukkonen, "Modelling and control of quadcopter", 2011; constants as used by
Abdulkareem et al. 2022 and the reference paper). Frames follow ROS REP-103: the world
frame is z-up (we publish it as ENU ``odom``), the body frame is x-forward, y-left, z-up
(FLU ``base_link``). Attitude is Z-Y-X Euler angles (roll ``phi`` about x, pitch ``theta``
about y, yaw ``psi`` about z), world-from-body rotation ``R = Rz(psi) Ry(theta) Rx(phi)``.

State ``x`` (12, SI units)::

    0-2   p_x, p_y, p_z          position in the world frame [m]
    3-5   v_x, v_y, v_z          velocity in the world frame [m/s]
    6-8   phi, theta, psi        roll, pitch, yaw [rad]
    9-11  p, q, r                body angular rates about body x, y, z [rad/s]

Input ``u`` (4): rotor speeds ``omega_1..omega_4`` [rad/s]. By default the '+'
configuration with command i driving rotor i: rotor 1 on the body +x arm (front), 2 on
-y (right), 3 on -x (back), 4 on +y (left). Thrust of rotor i is ``k omega_i^2`` along
body z. Torques::

    tau_phi   = l k (omega_4^2 - omega_2^2)
    tau_theta = l k (omega_3^2 - omega_1^2)
    tau_psi   = b (omega_1^2 - omega_2^2 + omega_3^2 - omega_4^2)

The 'x' layout (the '+' vehicle turned by +45 deg: rotor 1 front-left, numbered
clockwise) and another command-to-rotor map are options of :class:`Quadcopter` (see
:mod:`.plant`, which writes the torques of both layouts); the defaults are the paper's.

Dynamics::

    m dv/dt      = R e_z k sum(omega_i^2) - m g e_z - d v            (d: linear drag)
    d(eta)/dt    = W(eta)^-1 nu                                     (eta = Euler angles)
    I dnu/dt     = -nu x (I nu) - I_r (nu x e_z) omega_G + tau     (omega_G = w1-w2+w3-w4)

The dynamics are written once, symbolically in CasADi, so the simulator, the Jacobians
that feed the model-based gradient and a nonlinear MPC model share one definition.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
import math
import os
from typing import Mapping

import casadi as ca
import numpy as np

from hybrid_mpc_ros.core.config import ConfigError, load_node_params
from hybrid_mpc_ros.core.model.plant import (check_layout, IDENTITY_ROTORS, rotor_order,
                                             rotor_torques)

NX = 12
NU = 4
STATE_NAMES = ('p_x', 'p_y', 'p_z', 'v_x', 'v_y', 'v_z',
               'roll', 'pitch', 'yaw', 'rate_p', 'rate_q', 'rate_r')
INPUT_NAMES = ('omega_1', 'omega_2', 'omega_3', 'omega_4')


@dataclass(frozen=True)
class QuadParams:
    """Physical constants of the quadcopter (defaults: the paper's plant)."""

    mass: float = 0.468
    arm_length: float = 0.225
    thrust_coeff: float = 2.98e-6
    drag_torque_coeff: float = 1.14e-7
    inertia_xx: float = 4.856e-3
    inertia_yy: float = 4.856e-3
    inertia_zz: float = 8.801e-3
    translational_drag: float = 0.25
    rotor_inertia: float = 3.357e-5
    gravity: float = 9.81
    omega_min: float = 0.0
    omega_max: float = 630.0

    def __post_init__(self):
        for item in fields(self):
            value = getattr(self, item.name)
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(f'plant constant {item.name} must be a finite number, '
                                  f'got {value!r}')
            if item.name != 'omega_min' and value <= 0.0 and item.name not in (
                    'translational_drag', 'rotor_inertia', 'drag_torque_coeff'):
                raise ConfigError(f'plant constant {item.name} must be > 0, got {value}')
            if value < 0.0:
                raise ConfigError(f'plant constant {item.name} must be >= 0, got {value}')
        if self.omega_max <= self.omega_min:
            raise ConfigError('plant constant omega_max must exceed omega_min')

    @property
    def hover_speed(self) -> float:
        """Rotor speed [rad/s] at which four rotors carry the weight: sqrt(m g / (4 k))."""
        return math.sqrt(self.mass * self.gravity / (4.0 * self.thrust_coeff))

    @property
    def hover_input(self) -> np.ndarray:
        """Hover input, shape (4,)."""
        return np.full(NU, self.hover_speed)

    def as_dict(self) -> dict:
        """Constants as a plain dict (for YAML headers and ROS parameters)."""
        return asdict(self)

    @classmethod
    def from_mapping(cls, values: Mapping | None) -> 'QuadParams':
        """Build from a mapping of constant names to values; unknown names are an error."""
        values = dict(values or {})
        known = {item.name for item in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f'unknown plant constants {unknown}; known: {sorted(known)}')
        return replace(cls(), **{key: float(val) for key, val in values.items()})

    @classmethod
    def from_yaml(cls, path: str | os.PathLike, node_name: str | None = None,
                  group: str = 'plant') -> 'QuadParams':
        """Load the ``plant`` group of a ROS parameter file (see :mod:`config`)."""
        params = load_node_params(path, node_name)
        return cls.from_mapping(params.get(group, {}))


PARAM_DESCRIPTIONS = {
    'mass': 'vehicle mass [kg]',
    'arm_length': 'distance from the centre to each rotor [m]',
    'thrust_coeff': 'rotor thrust coefficient k: thrust = k omega^2 [N s^2]',
    'drag_torque_coeff': 'rotor drag-torque coefficient b: torque = b omega^2 [N m s^2]',
    'inertia_xx': 'moment of inertia about body x [kg m^2]',
    'inertia_yy': 'moment of inertia about body y [kg m^2]',
    'inertia_zz': 'moment of inertia about body z [kg m^2]',
    'translational_drag': 'linear translational drag d: force = -d v [kg/s]',
    'rotor_inertia': 'rotor moment of inertia (gyroscopic term) [kg m^2]',
    'gravity': 'gravitational acceleration [m/s^2]',
    'omega_min': 'lowest rotor speed the motors accept [rad/s]',
    'omega_max': 'highest rotor speed the motors accept [rad/s]',
}


def hover_reference(x: np.ndarray) -> np.ndarray:
    """x_ref (12,) that hovers at ``x``'s position and yaw: zero speeds, level attitude."""
    ref = np.zeros_like(np.asarray(x, dtype=float))
    ref[0:3] = x[0:3]
    ref[8] = x[8]
    return ref


def rotation_world_from_body(phi, theta, psi, xp=np):
    """Rotation matrix ``Rz(psi) Ry(theta) Rx(phi)`` (3x3), for numpy or CasADi symbols."""
    cph, sph = xp.cos(phi), xp.sin(phi)
    cth, sth = xp.cos(theta), xp.sin(theta)
    cps, sps = xp.cos(psi), xp.sin(psi)
    rows = [[cps * cth, cps * sth * sph - sps * cph, cps * sth * cph + sps * sph],
            [sps * cth, sps * sth * sph + cps * cph, sps * sth * cph - cps * sph],
            [-sth, cth * sph, cth * cph]]
    if xp is np:
        return np.array(rows, dtype=float)
    return ca.vertcat(*[ca.horzcat(*row) for row in rows])


def continuous_dynamics(x, u, params: QuadParams, layout: str = '+',
                        command_rotors=IDENTITY_ROTORS):
    """Symbolic ``dx/dt = f(x, u)`` for CasADi ``x`` (12) and ``u`` (4); returns an SX/MX (12).

    ``layout`` ('+' or 'x') places the rotors, ``command_rotors`` says which rotor each
    command entry drives (see :mod:`.plant`).
    """
    m, g, k, b, arm = (params.mass, params.gravity, params.thrust_coeff,
                       params.drag_torque_coeff, params.arm_length)
    ixx, iyy, izz = params.inertia_xx, params.inertia_yy, params.inertia_zz
    vel = x[3:6]
    phi, theta, psi = x[6], x[7], x[8]
    p, q, r = x[9], x[10], x[11]
    if tuple(command_rotors) != IDENTITY_ROTORS:
        u = ca.vertcat(*[u[index] for index in rotor_order(command_rotors)])
    w_sq = u * u
    thrust = k * (w_sq[0] + w_sq[1] + w_sq[2] + w_sq[3])
    tau_phi, tau_theta, tau_psi = rotor_torques(w_sq, layout, arm, k, b)
    omega_gyro = u[0] - u[1] + u[2] - u[3]
    rot = rotation_world_from_body(phi, theta, psi, xp=ca)
    acc = rot[:, 2] * (thrust / m) - ca.vertcat(0, 0, g) - (params.translational_drag / m) * vel
    tan_th, cos_th = ca.tan(theta), ca.cos(theta)
    euler_rates = ca.vertcat(p + ca.sin(phi) * tan_th * q + ca.cos(phi) * tan_th * r,
                             ca.cos(phi) * q - ca.sin(phi) * r,
                             (ca.sin(phi) * q + ca.cos(phi) * r) / cos_th)
    ir = params.rotor_inertia
    body_acc = ca.vertcat(((iyy - izz) * q * r - ir * q * omega_gyro + tau_phi) / ixx,
                          ((izz - ixx) * p * r + ir * p * omega_gyro + tau_theta) / iyy,
                          ((ixx - iyy) * p * q + tau_psi) / izz)
    return ca.vertcat(vel, acc, euler_rates, body_acc)


INTEGRATORS = ('rk4', 'euler')


def euler_step(f, x, u, dt: float, substeps: int):
    """Symbolic forward-Euler integration of ``f(x, u)`` over ``dt`` with ``u`` held.

    ``substeps`` steps of ``dt / substeps`` each. With one step per period this is the
    integration of the reference paper's authors' own quadcopter code.
    """
    h = dt / substeps
    for _ in range(substeps):
        x = x + h * f(x, u)
    return x


def rk4_step(f, x, u, dt: float, substeps: int):
    """Symbolic RK4 integration of ``f(x, u)`` over ``dt`` with ``u`` held, ``substeps`` stages."""
    h = dt / substeps
    for _ in range(substeps):
        k1 = f(x, u)
        k2 = f(x + 0.5 * h * k1, u)
        k3 = f(x + 0.5 * h * k2, u)
        k4 = f(x + h * k3, u)
        x = x + (h / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
    return x


class Quadcopter:
    """The discrete-time plant ``x[t+1] = F(x[t], u[t])`` (``u`` held for ``dt``).

    ``integrator`` is ``'rk4'`` (classic Runge-Kutta, ``substeps`` stages per period) or
    ``'euler'`` (forward Euler, ``substeps`` steps per period). ``layout`` ('+' or 'x')
    and ``command_rotors`` (entry i: the rotor command i drives) fix the command's meaning
    (see :mod:`.plant`; default: '+', command i drives rotor i, the paper's plant).
    ``step`` and ``jacobians`` take and return numpy arrays. Building compiles nothing;
    CasADi evaluates the expression graph (about 20-40 us per call). It implements
    :class:`~.plant.Plant`; it hides no state, so :meth:`reset` does nothing.
    """

    def __init__(self, params: QuadParams | None = None, dt: float = 0.1, substeps: int = 4,
                 integrator: str = 'rk4', layout: str = '+',
                 command_rotors=IDENTITY_ROTORS):
        if not (math.isfinite(dt) and dt > 0.0):
            raise ConfigError(f'sampling period must be > 0 s, got {dt}')
        if int(substeps) != substeps or substeps < 1:
            raise ConfigError(f'substeps must be a positive integer, got {substeps}')
        if integrator not in INTEGRATORS:
            raise ConfigError(f'integrator must be one of {INTEGRATORS}, got {integrator!r}')
        self.params = params or QuadParams()
        self.dt = float(dt)
        self.substeps = int(substeps)
        self.integrator = integrator
        self.layout, self.command_rotors = check_layout(layout, command_rotors)
        x = ca.SX.sym('x', NX)
        u = ca.SX.sym('u', NU)
        f_expr = continuous_dynamics(x, u, self.params, self.layout, self.command_rotors)
        self._f = ca.Function('f', [x, u], [f_expr])
        integrate = rk4_step if integrator == 'rk4' else euler_step
        x_next = integrate(self._f, x, u, self.dt, self.substeps)
        self.symbolic = (x, u, f_expr, x_next)
        self._step = ca.Function('step', [x, u], [x_next])
        self._jac = ca.Function('step_jac', [x, u],
                                [ca.jacobian(x_next, x), ca.jacobian(x_next, u)])

    def f(self, x: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Continuous dynamics ``dx/dt``, shape (12,)."""
        return np.asarray(self._f(x, u)).reshape(NX)

    def step(self, x: np.ndarray, u: np.ndarray) -> np.ndarray:
        """State after one period ``dt`` with rotor speeds ``u`` (4,) held; shape (12,)."""
        return np.asarray(self._step(x, u)).reshape(NX)

    def jacobians(self, x: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Jacobians of :meth:`step`: ``(dF/dx (12x12), dF/du (12x4))``."""
        jx, ju = self._jac(x, u)
        return np.asarray(jx), np.asarray(ju)

    def hover_state(self, position=(0.0, 0.0, 0.0), yaw: float = 0.0) -> np.ndarray:
        """Return a hover equilibrium at ``position`` with ``yaw``, shape (12,)."""
        x = np.zeros(NX)
        x[0:3] = position
        x[8] = yaw
        return x

    def clip_input(self, u: np.ndarray) -> np.ndarray:
        """Rotor speeds clipped to ``[omega_min, omega_max]`` (copy), shape (4,)."""
        return np.clip(u, self.params.omega_min, self.params.omega_max)

    @property
    def u_min(self) -> float:
        """Lowest rotor speed [rad/s] (``params.omega_min``)."""
        return self.params.omega_min

    @property
    def u_max(self) -> float:
        """Highest rotor speed [rad/s] (``params.omega_max``)."""
        return self.params.omega_max

    @property
    def hover_input(self) -> np.ndarray:
        """Hover command (4,) [rad/s]: every rotor at ``params.hover_speed``."""
        return self.params.hover_input

    def reset(self, x0: np.ndarray) -> None:
        """Start an episode at ``x0`` (12,): nothing to put back (the state is ``x``)."""
