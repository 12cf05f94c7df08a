"""The true plant's interface, and the rotor layout every backend states explicitly.

A plant is what an episode flies: the package's own :class:`~.quadcopter.Quadcopter` or
an independent simulator (:class:`~.rotorpy_plant.RotorPyPlant`). Each maps the
package's 12-state ``x`` (position, world velocity, Z-Y-X Euler angles, body rates;
ENU world, FLU body, see :mod:`.quadcopter`) and 4 rotor-speed commands ``u`` [rad/s]
held for one period ``dt`` to the next state, and has a :meth:`Plant.reset` that puts
back every state it hides (rotor speeds, wind, a noise generator) at the start of an
episode, so that two episodes from the same ``x0`` are the same.

Rotor layout (the command vector's meaning): rotors are numbered 1..4 clockwise seen
from above; rotors 1 and 3 spin so that their drag torque on the body is about +z
(``tau_psi = b (w1^2 - w2^2 + w3^2 - w4^2)``), 2 and 4 the other way.

* ``'+'``: rotor 1 on the +x arm (front), 2 on -y (right), 3 on -x (back), 4 on +y (left);
* ``'x'``: the '+' vehicle turned by +45 deg about z: rotor 1 front-left (+x, +y), 2
  front-right, 3 back-right, 4 back-left (RotorPy's Hummingbird and Crazyflies).

``command_rotors`` (the numbers 1..4, each once) says which rotor each command entry
drives, in the layout's numbering above: entry ``i`` drives rotor ``command_rotors[i]``
(default ``[1, 2, 3, 4]``: command i drives rotor i). Both settings mean the same for
every backend: the package's quadcopter numbers its rotors as the layout; a RotorPy
vehicle numbers them in its own order (``rotor_pos``), so the backend finds which of its
rotors sits at each of the layout's places (arm direction and spin) and refuses a
vehicle that does not fit the layout, naming the layout that fits.
"""

from __future__ import annotations

import math
from typing import Protocol, runtime_checkable

import numpy as np

from hybrid_mpc_ros.core.config import ConfigError

LAYOUTS = ('+', 'x')
IDENTITY_ROTORS = (1, 2, 3, 4)
# sign of each rotor's drag torque about body +z, in the layout's numbering
ROTOR_SPIN = (1.0, -1.0, 1.0, -1.0)
# arm direction of rotor 1..4 about +z from body +x [deg]: clockwise seen from above
ARM_ANGLES_DEG = {'+': (0.0, -90.0, 180.0, 90.0), 'x': (45.0, -45.0, -135.0, 135.0)}
SQRT_HALF = math.sqrt(0.5)


@runtime_checkable
class Plant(Protocol):
    """What an episode flies: one period per :meth:`step`, hidden states put back by reset.

    ``dt`` [s] is the period a command is held; ``u_min`` and ``u_max`` [rad/s] the rotor
    limits (commands outside are clamped by the vehicle); ``hover_input`` (4,) the command
    that holds the vehicle still; ``layout`` and ``command_rotors`` as in the module
    docstring.
    """

    dt: float
    layout: str
    command_rotors: tuple[int, ...]

    @property
    def u_min(self) -> float:
        """Lowest rotor speed the vehicle accepts [rad/s]."""

    @property
    def u_max(self) -> float:
        """Highest rotor speed the vehicle accepts [rad/s]."""

    @property
    def hover_input(self) -> np.ndarray:
        """Command (4,) [rad/s] that holds the vehicle level and still."""

    def step(self, x: np.ndarray, u: np.ndarray) -> np.ndarray:
        """State (12,) one period after ``x`` (12,) with command ``u`` (4,) held."""

    def reset(self, x0: np.ndarray) -> None:
        """Start an episode at ``x0`` (12,): put back every hidden state."""

    def clip_input(self, u: np.ndarray) -> np.ndarray:
        """Command (4,) clamped to ``[u_min, u_max]`` (copy)."""


def check_layout(layout: str, command_rotors) -> tuple[str, tuple[int, ...]]:
    """Check a layout name and a command-to-rotor map; return ``(layout, rotors)``.

    ``command_rotors`` must hold the numbers 1..4 once each; ConfigError says what is
    wrong.
    """
    if layout not in LAYOUTS:
        raise ConfigError(f'rotor layout must be one of {LAYOUTS}, got {layout!r}')
    rotors = tuple(int(item) for item in command_rotors)
    if sorted(rotors) != list(IDENTITY_ROTORS) or any(
            int(item) != item for item in command_rotors):
        raise ConfigError(f'command_rotors must hold the rotor numbers 1, 2, 3, 4 once each '
                          f'(entry i: the rotor command i drives), got {list(command_rotors)}')
    return layout, rotors


def rotor_order(command_rotors) -> tuple[int, ...]:
    """Command index feeding each rotor: ``order[r]`` drives rotor ``r + 1`` (0-based)."""
    order = [0] * 4
    for index, rotor in enumerate(command_rotors):
        order[rotor - 1] = index
    return tuple(order)


def arm_directions(layout: str) -> np.ndarray:
    """Return unit vectors (4, 3) from the centre to rotors 1..4 of ``layout`` in the body frame."""
    angles = np.radians(ARM_ANGLES_DEG[layout])
    return np.stack([np.cos(angles), np.sin(angles), np.zeros(4)], axis=1)


def rotor_torques(w_sq, layout: str, arm: float, k: float, b: float):
    """Body torques ``(tau_phi, tau_theta, tau_psi)`` [N m] of the squared rotor speeds.

    ``w_sq`` (4,) holds ``omega_r^2`` of rotors 1..4 in the layout's numbering (numpy or
    CasADi); ``arm`` [m] the centre-to-rotor distance, ``k`` the thrust and ``b`` the
    drag-torque coefficient. The torque of rotor r's thrust ``k w_r^2 e_z`` at ``arm d_r``
    is ``arm d_r x (k w_r^2 e_z)``; in the 'x' layout every arm is at 45 deg, so each
    rotor's lever about body x and y is ``arm / sqrt(2)``.
    """
    if layout == '+':
        tau_phi = arm * k * (w_sq[3] - w_sq[1])
        tau_theta = arm * k * (w_sq[2] - w_sq[0])
    elif layout == 'x':
        lever = arm * k * SQRT_HALF
        tau_phi = lever * ((w_sq[0] + w_sq[3]) - (w_sq[1] + w_sq[2]))
        tau_theta = lever * ((w_sq[2] + w_sq[3]) - (w_sq[0] + w_sq[1]))
    else:
        raise ConfigError(f'rotor layout must be one of {LAYOUTS}, got {layout!r}')
    tau_psi = b * (w_sq[0] - w_sq[1] + w_sq[2] - w_sq[3])
    return tau_phi, tau_theta, tau_psi


def layout_rotors(positions: np.ndarray, spins: np.ndarray, layout: str,
                  tolerance_deg: float = 1.0) -> tuple[int, ...]:
    """Return which of a vehicle's rotors sits at each place of ``layout`` (0-based, (4,)).

    ``positions`` (4, 3) [m] and ``spins`` (4,) (sign of each rotor's drag torque about
    body +z) are the vehicle's, in its own numbering; entry ``r`` of the result is the
    vehicle's rotor on the layout's arm ``r + 1`` (within ``tolerance_deg`` in the body
    x-y plane) spinning as the layout's rotor ``r + 1``. ConfigError if the vehicle does
    not fit ``layout``, naming the layout it fits, if any.
    """
    positions = np.asarray(positions, dtype=float).reshape(4, 3)
    spins = np.sign(np.asarray(spins, dtype=float).reshape(4))
    found, reason = _fit(positions, spins, layout, tolerance_deg)
    if reason:
        others = [name for name in LAYOUTS
                  if name != layout and not _fit(positions, spins, name, tolerance_deg)[1]]
        raise ConfigError(reason + (f'; this vehicle fits layout {others[0]!r}' if others
                                    else '; it fits no layout'))
    return found


def _fit(positions, spins, layout, tolerance_deg) -> tuple[tuple[int, ...], str]:
    angles = np.degrees(np.arctan2(positions[:, 1], positions[:, 0]))
    found = []
    for place, wanted in enumerate(ARM_ANGLES_DEG[layout]):
        off = np.abs((angles - wanted + 180.0) % 360.0 - 180.0)
        there = [rotor for rotor in range(4) if off[rotor] <= tolerance_deg]
        if len(there) != 1:
            return (), (f'the vehicle has {len(there)} rotors on the arm at {wanted:g} deg '
                        f'where the {layout!r} layout has rotor {place + 1} (its arms point '
                        f'at {", ".join(f"{angle:.1f}" for angle in angles)} deg)')
        if spins[there[0]] != ROTOR_SPIN[place]:
            return (), (f'the vehicle\'s rotor {there[0] + 1}, at the place of rotor '
                        f'{place + 1} of the {layout!r} layout, spins the other way')
        found.append(there[0])
    return tuple(found), ''
