"""RotorPy's multirotor (UPenn, ``rotorpy`` on PyPI) as a true plant of the package.

:class:`RotorPyPlant` flies ``rotorpy.vehicles.multirotor.Multirotor`` (control
abstraction ``cmd_motor_speeds``) with one of its presets (``hummingbird``,
``crazyflie``, ``crazyfliebrushless``, ``px4_sihsim_quadx``), optionally with some of
the preset's constants replaced, aerodynamics on or off, and an optional constant wind.
Each period ``dt`` the command is held and RotorPy's own dynamics are integrated in
``inner_step_s`` steps (RotorPy's 100 Hz by default), each exactly as
``Multirotor.step`` takes it: one ``scipy.integrate.solve_ivp`` (RK45) call of
``Multirotor._s_dot_fn`` with the command clamped to the rotor limits, then the
quaternion renormalised and the rotor speeds clamped. What differs from calling
``Multirotor.step`` is only the bookkeeping around it: the state stays one array (no
dicts packed and unpacked per step) and motor noise is drawn from the plant's own
seeded generator instead of numpy's global one (``Multirotor.step`` calls
``np.random.normal`` after every step, even with zero noise, which would move the global
random stream; every preset ships ``motor_noise_std`` 0).

State conversion (RotorPy: ``x``, ``v`` world, ``q`` world-from-body quaternion
``[i, j, k, w]``, ``w`` body rates; z up, as the package): position and velocity as
they are, Euler angles from the quaternion (:mod:`.frames`, yaw unwrapped to stay
within pi of the previous yaw, as the package's Euler model integrates it), body rates
as they are. RotorPy's hidden states are the rotor speeds (first-order motor lag
``tau_m``) and the wind (constant: RotorPy does not integrate it). :meth:`reset` puts
the rotor speeds at the hover speed ``sqrt(m g / (4 k_eta))`` (clamped to the rotor
limits), the wind at the configured constant and the noise generator at its seed, so
two episodes from the same ``x0`` are identical.

:meth:`RotorPyPlant.step` continues from its own full state (quaternion, rotor speeds,
wind) when ``x`` is the state it last returned; any other ``x`` replaces the visible
state (the hidden ones are kept), so a caller may also set the vehicle somewhere.
"""

from __future__ import annotations

import copy
import importlib
import math
from typing import Mapping

import numpy as np
from numpy.linalg import norm

from hybrid_mpc_ros.core.config import ConfigError
from hybrid_mpc_ros.core.model.frames import euler_to_quaternion, quaternion_to_euler
from hybrid_mpc_ros.core.model.plant import (check_layout, IDENTITY_ROTORS, layout_rotors,
                                             rotor_order)
from hybrid_mpc_ros.core.model.quadcopter import NU, NX

PRESETS = ('hummingbird', 'crazyflie', 'crazyfliebrushless', 'px4_sihsim_quadx')
# 'rotorpy': RotorPy's own solve_ivp steps; 'rk4': its equations in CasADi, fixed RK4 steps
INTEGRATIONS = ('rotorpy', 'rk4')
INNER_STEP_S = {'rotorpy': 0.01, 'rk4': 0.001}
# RotorPy's constants a scenario may replace, with their units ('arm_length' rescales
# the preset's rotor positions to that distance from the centre)
PARAMETERS = {
    'mass': 'vehicle mass [kg]',
    'Ixx': 'moment of inertia about body x [kg m^2]',
    'Iyy': 'moment of inertia about body y [kg m^2]',
    'Izz': 'moment of inertia about body z [kg m^2]',
    'arm_length': 'distance from the centre to every rotor [m] (rescales the preset\'s '
                  'rotor positions)',
    'k_eta': 'rotor thrust coefficient: thrust = k_eta omega^2 [N s^2]',
    'k_m': 'rotor yaw-moment coefficient: torque = k_m omega^2 [N m s^2]',
    'k_d': 'rotor drag coefficient (aerodynamics on) [kg/rad]',
    'k_z': 'induced inflow coefficient (aerodynamics on) [kg/rad]',
    'k_h': 'translational lift coefficient (aerodynamics on) [kg/m]',
    'k_flap': 'flapping moment coefficient (aerodynamics on) [kg m/rad]',
    'c_Dx': 'parasitic drag along body x (aerodynamics on) [N/(m/s)^2]',
    'c_Dy': 'parasitic drag along body y (aerodynamics on) [N/(m/s)^2]',
    'c_Dz': 'parasitic drag along body z (aerodynamics on) [N/(m/s)^2]',
    'tau_m': 'motor time constant (first-order lag of the rotor speeds) [s]',
    'rotor_speed_min': 'lowest rotor speed [rad/s]',
    'rotor_speed_max': 'highest rotor speed [rad/s]',
    'motor_noise_std': 'standard deviation of the noise added to the rotor speeds after '
                       'every inner step [rad/s] (0: none)',
}


def preset_parameters(vehicle: str, overrides: Mapping[str, float] | None = None) -> dict:
    """Return the ``quad_params`` of RotorPy preset ``vehicle`` with ``overrides`` applied.

    ``overrides`` maps names of :data:`PARAMETERS` to values; ``motor_noise_std`` is 0
    unless given (so is every preset's).
    """
    if vehicle not in PRESETS:
        raise ConfigError(f'RotorPy vehicle must be one of {PRESETS}, got {vehicle!r}')
    module = importlib.import_module(f'rotorpy.vehicles.{vehicle}_params')
    params = copy.deepcopy(module.quad_params)
    params['motor_noise_std'] = 0.0
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(PARAMETERS))
    if unknown:
        raise ConfigError(f'unknown RotorPy parameters {unknown}; known: {sorted(PARAMETERS)}')
    for name, value in overrides.items():
        value = float(value)
        if not math.isfinite(value) or value < 0.0:
            raise ConfigError(f'RotorPy parameter {name} must be finite and >= 0, got {value}')
        if name == 'arm_length':
            params['rotor_pos'] = {
                key: value * np.asarray(pos, dtype=float) / norm(np.asarray(pos)[:2])
                for key, pos in params['rotor_pos'].items()}
        else:
            params[name] = value
    for name in ('mass', 'Ixx', 'Iyy', 'Izz', 'k_eta', 'tau_m'):
        if not params[name] > 0.0:
            raise ConfigError(f'RotorPy parameter {name} must be > 0, got {params[name]}')
    if not params['rotor_speed_max'] > params['rotor_speed_min']:
        raise ConfigError('RotorPy parameter rotor_speed_max must exceed rotor_speed_min')
    return params


class RotorPyPlant:
    """RotorPy's ``Multirotor`` stepped one period at a time; a :class:`~.plant.Plant`.

    ``vehicle`` a preset of :data:`PRESETS`; ``parameters`` replaces some of its constants
    (:data:`PARAMETERS`); ``aero`` RotorPy's aerodynamics (drag, rotor drag, induced
    inflow, translational lift; the motor lag stays either way); ``wind`` (3,) a constant
    wind velocity in the world frame [m/s]; ``dt`` [s] the period a command is held,
    integrated in steps of ``inner_step_s`` [s] (must divide ``dt``); ``layout`` and
    ``command_rotors`` the command's meaning (:mod:`.plant`): the vehicle must fit the
    layout (rotor positions and directions; ConfigError names the layout that fits) and
    ``vehicle_rotors[r]`` is then RotorPy's number of the layout's rotor ``r + 1``;
    ``noise_seed`` seeds the
    motor noise (if ``parameters`` sets ``motor_noise_std``); ``integrator_kwargs`` go to
    ``solve_ivp`` (RotorPy's default: ``{'method': 'RK45'}``).

    ``integration`` ``'rotorpy'`` (default) steps with RotorPy's own code as the module
    says, ``inner_step_s`` default 0.01 s; ``'rk4'`` integrates the same equations
    transcribed in CasADi (:mod:`.rotorpy_casadi`) with classic RK4 steps of
    ``inner_step_s`` (default 0.001 s, well inside the fastest preset motor lag of 5 ms),
    one compiled call per period: about 50 times cheaper, and it differs from RotorPy's
    own steps by about RotorPy's integration error (its RK45 runs at scipy's default
    tolerances, relative 1e-3); no motor noise.
    """

    def __init__(self, vehicle: str = 'hummingbird', parameters: Mapping | None = None,
                 aero: bool = True, wind=(0.0, 0.0, 0.0), dt: float = 0.1,
                 inner_step_s: float | None = None, layout: str = 'x',
                 command_rotors=IDENTITY_ROTORS, noise_seed: int = 0,
                 integrator_kwargs: Mapping | None = None, integration: str = 'rotorpy'):
        from rotorpy.vehicles.multirotor import Multirotor
        from scipy.integrate import solve_ivp      # here: a scenario loads without it
        self._solve_ivp = solve_ivp
        if not (math.isfinite(dt) and dt > 0.0):
            raise ConfigError(f'sampling period must be > 0 s, got {dt}')
        if integration not in INTEGRATIONS:
            raise ConfigError(f'integration must be one of {INTEGRATIONS}, got {integration!r}')
        if inner_step_s is None:
            inner_step_s = INNER_STEP_S[integration]
        if not (math.isfinite(inner_step_s) and 0.0 < inner_step_s <= dt):
            raise ConfigError(f'inner_step_s must be within (0, dt = {dt:g}] s, got '
                              f'{inner_step_s}')
        inner = round(dt / inner_step_s)
        if abs(inner * inner_step_s - dt) > 1e-9 * dt:
            raise ConfigError(f'inner_step_s {inner_step_s:g} s must divide the period '
                              f'{dt:g} s into whole steps')
        self.vehicle_name = vehicle
        self.params = preset_parameters(vehicle, parameters)
        self.layout, self.command_rotors = check_layout(layout, command_rotors)
        positions = np.array([self.params['rotor_pos'][key] for key in self.params['rotor_pos']])
        if positions.shape != (NU, 3):
            raise ConfigError(f'RotorPy vehicle {vehicle} has {positions.shape[0]} rotors; the '
                              f'package flies {NU}')
        try:
            places = layout_rotors(positions, self.params['rotor_directions'], self.layout)
        except ConfigError as exc:
            raise ConfigError(f'RotorPy vehicle {vehicle}: {exc}') from None
        self.wind = np.array(wind, dtype=float).reshape(3)
        if not np.isfinite(self.wind).all():
            raise ConfigError(f'wind must be 3 finite values [m/s], got {list(wind)}')
        self.aero = bool(aero)
        self.dt = float(dt)
        self.inner_step_s = float(inner_step_s)
        self.inner_steps = inner
        self.integration = integration
        self.noise_seed = int(noise_seed)
        self._noise_std = abs(float(self.params['motor_noise_std']))
        self.vehicle = Multirotor(self.params, control_abstraction='cmd_motor_speeds',
                                  aero=self.aero, enable_ground=False,
                                  integrator_kwargs=dict(integrator_kwargs)
                                  if integrator_kwargs is not None else None)
        # the command entry each of RotorPy's rotors gets: RotorPy's rotor places[r] is
        # the layout's rotor r + 1, which command rotor_order(...)[r] drives
        order = rotor_order(self.command_rotors)
        self._order = np.empty(NU, dtype=int)
        self._order[list(places)] = order
        self.vehicle_rotors = tuple(rotor + 1 for rotor in places)
        self._period = None
        if integration == 'rk4':
            from hybrid_mpc_ros.core.model.rotorpy_casadi import rk4_period
            if self._noise_std:
                raise ConfigError("motor noise needs integration 'rotorpy' (RotorPy adds it "
                                  'after each of its steps)')
            self._period = rk4_period(self.vehicle, self.dt, self.inner_steps)
        hover = math.sqrt(self.params['mass'] * self.vehicle.g / (4.0 * self.params['k_eta']))
        if not self.u_min <= hover <= self.u_max:
            raise ConfigError(f'RotorPy vehicle {vehicle} cannot hover within its rotor '
                              f'limits: hover speed {hover:.1f} rad/s is outside '
                              f'[{self.u_min:g}, {self.u_max:g}] rad/s')
        self.hover_speed = hover
        self._state = np.zeros(20)
        self._last = None
        self.reset(np.zeros(NX))

    # -- the Plant interface -------------------------------------------------------------

    @property
    def u_min(self) -> float:
        """Lowest rotor speed [rad/s] (RotorPy's ``rotor_speed_min``)."""
        return float(self.params['rotor_speed_min'])

    @property
    def u_max(self) -> float:
        """Highest rotor speed [rad/s] (RotorPy's ``rotor_speed_max``)."""
        return float(self.params['rotor_speed_max'])

    @property
    def hover_input(self) -> np.ndarray:
        """Hover command (4,) [rad/s]: every rotor at ``sqrt(m g / (4 k_eta))``."""
        return np.full(NU, self.hover_speed)

    def clip_input(self, u: np.ndarray) -> np.ndarray:
        """Rotor speeds clipped to ``[u_min, u_max]`` (copy), shape (4,)."""
        return np.clip(u, self.u_min, self.u_max)

    def reset(self, x0: np.ndarray) -> None:
        """Start an episode at ``x0`` (12,): rotors at hover speed, wind, noise seed."""
        state = np.zeros(20)
        state[13:16] = self.wind
        state[16:20] = min(max(self.hover_speed, self.u_min), self.u_max)
        self._state = state
        self._set_visible(np.asarray(x0, dtype=float).reshape(NX))
        self._rng = np.random.default_rng(self.noise_seed)
        self._last = None

    def step(self, x: np.ndarray, u: np.ndarray) -> np.ndarray:
        """State (12,) one period after ``x`` (12,) with command ``u`` (4,) held [rad/s]."""
        x = np.asarray(x, dtype=float).reshape(NX)
        if self._last is None or not np.array_equal(x, self._last):
            self._set_visible(x)
        command = np.asarray(u, dtype=float).reshape(NU)[self._order]
        command = np.clip(command, self.u_min, self.u_max)
        if self._period is not None:
            self._state = state = np.asarray(self._period(self._state, command)).reshape(20)
            x_next = self._visible(state, x[8])
            self._last = x_next.copy()
            return x_next
        vehicle, low, high = self.vehicle, self.u_min, self.u_max

        def s_dot(t, s):
            return vehicle._s_dot_fn(t, s, command)

        state = self._state
        for _ in range(self.inner_steps):
            state = self._solve_ivp(s_dot, (0.0, self.inner_step_s), state,
                                    **vehicle.integrator_kwargs)['y'][:, -1]
            state[6:10] = state[6:10] / norm(state[6:10])
            if self._noise_std:
                state[16:20] += self._rng.normal(scale=self._noise_std, size=NU)
            state[16:20] = np.clip(state[16:20], low, high)
        self._state = state
        x_next = self._visible(state, x[8])
        self._last = x_next.copy()
        return x_next

    # -- inspection ------------------------------------------------------------------------

    @property
    def rotor_speeds(self) -> np.ndarray:
        """Rotor speeds now (4,) [rad/s], in the vehicle's own numbering."""
        return self._state[16:20].copy()

    @property
    def quaternion(self) -> np.ndarray:
        """World-from-body attitude now, RotorPy's quaternion ``[i, j, k, w]`` (4,)."""
        return self._state[6:10].copy()

    def rotor_geometry(self) -> tuple[np.ndarray, np.ndarray]:
        """Return the rotor positions (4, 3) [m] and spin signs (4,), the vehicle's numbering."""
        positions = np.array([self.params['rotor_pos'][key] for key in self.params['rotor_pos']])
        return positions, np.asarray(self.params['rotor_directions'], dtype=float)

    # -- conversions ----------------------------------------------------------------------

    def _set_visible(self, x: np.ndarray) -> None:
        state = self._state
        state[0:3] = x[0:3]
        state[3:6] = x[3:6]
        state[6:10] = euler_to_quaternion(x[6], x[7], x[8])
        state[10:13] = x[9:12]

    @staticmethod
    def _visible(state: np.ndarray, yaw_before: float) -> np.ndarray:
        x = np.empty(NX)
        x[0:6] = state[0:6]
        roll, pitch, yaw = quaternion_to_euler(state[6:10])
        # as continuous as the Euler model's yaw: within pi of the previous one
        yaw = yaw_before + math.remainder(yaw - yaw_before, 2.0 * math.pi)
        x[6:9] = roll, pitch, yaw
        x[9:12] = state[10:13]
        return x
