"""RotorPy's multirotor equations written once more in CasADi, for a cheap period step.

:func:`rotorpy_dynamics` transcribes ``Multirotor._s_dot_fn`` (control abstraction
``cmd_motor_speeds``, no ground contact) term by term: rigid body, quaternion kinematics
``[i, j, k, w]``, thrust ``k_eta w^2``, yaw moments ``k_m w^2`` with the rotor
directions, first-order motor lag ``tau_m``, and with aerodynamics parasitic drag, rotor
drag, induced inflow, translational lift and flapping moments. The tests check it
against RotorPy's own function to rounding (about 1e-13 relative) at random states.
:func:`rk4_period` integrates it over one period with classic RK4 steps, the quaternion
renormalised and the rotor speeds clamped after each step, as ``Multirotor.step`` does
after each of its steps; built once, one call costs tens of microseconds where RotorPy's
``solve_ivp`` takes milliseconds.
"""

from __future__ import annotations

import casadi as ca
import numpy as np


def rotorpy_dynamics(vehicle, s, command):
    """Symbolic ``ds/dt`` (20,) of RotorPy's state ``s`` (20,) for rotor commands (4,).

    ``vehicle`` is a ``rotorpy.vehicles.multirotor.Multirotor`` (its constants are read);
    ``s`` holds position, velocity, quaternion ``[i, j, k, w]``, body rates, wind, rotor
    speeds, in RotorPy's order; ``command`` the rotor speeds commanded (already clamped),
    in RotorPy's rotor numbering.
    """
    qx, qy, qz, qw = s[6], s[7], s[8], s[9]
    scale = 1.0 / ca.sqrt(qx * qx + qy * qy + qz * qz + qw * qw)   # scipy normalises too
    x, y, z, w = qx * scale, qy * scale, qz * scale, qw * scale
    rot = ca.vertcat(
        ca.horzcat(1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)),
        ca.horzcat(2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)),
        ca.horzcat(2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)))
    rates, rotors = s[10:13], s[16:20]
    force, moment = ca.SX.zeros(3), ca.SX.zeros(3)
    air = rot.T @ (s[3:6] - s[13:16]) if vehicle.aero else None
    for index in range(vehicle.num_rotors):
        arm = ca.DM(np.asarray(vehicle.rotor_geometry[index], dtype=float))
        speed = rotors[index]
        rotor_force = ca.vertcat(0, 0, vehicle.k_eta * speed ** 2)
        if vehicle.aero:
            local = air + ca.cross(rates, arm)
            rotor_force = rotor_force + ca.vertcat(
                -speed * vehicle.k_d * local[0], -speed * vehicle.k_d * local[1],
                -speed * vehicle.k_z * local[2] + vehicle.k_h * (local[0] ** 2 + local[1] ** 2))
            moment = moment - vehicle.k_flap * speed * ca.vertcat(local[1], -local[0], 0)
        force = force + rotor_force
        moment = moment + ca.cross(arm, rotor_force)
        moment[2] = moment[2] + vehicle.rotor_dir[index] * vehicle.k_m * speed ** 2
    if vehicle.aero:
        drag = ca.DM([vehicle.c_Dx, vehicle.c_Dy, vehicle.c_Dz])
        force = force - ca.sqrt(ca.sumsqr(air)) * (drag * air)
    inertia = ca.DM(vehicle.inertia)
    q = s[6:10]
    quat_rate = 0.5 * ca.vertcat(
        q[3] * rates[0] - q[2] * rates[1] + q[1] * rates[2],
        q[2] * rates[0] + q[3] * rates[1] - q[0] * rates[2],
        -q[1] * rates[0] + q[0] * rates[1] + q[3] * rates[2],
        -q[0] * rates[0] - q[1] * rates[1] - q[2] * rates[2])
    return ca.vertcat(
        s[3:6],
        (ca.DM(vehicle.weight) + rot @ force) / vehicle.mass,
        quat_rate,
        ca.DM(vehicle.inv_inertia) @ (moment - ca.cross(rates, inertia @ rates)),
        ca.SX.zeros(3),
        (command - rotors) / vehicle.tau_m)


def rk4_period(vehicle, period_s: float, steps: int) -> ca.Function:
    """Return the function ``(s (20,), command (4,)) -> s`` one period later (RK4 steps).

    The command (RotorPy's rotor numbering) is clamped to the rotor limits first; after
    each step the quaternion is renormalised and the rotor speeds clamped.
    """
    s = ca.SX.sym('s', 20)
    command = ca.SX.sym('command', 4)
    low, high = float(vehicle.rotor_speed_min), float(vehicle.rotor_speed_max)
    held = ca.fmin(ca.fmax(command, low), high)
    f = ca.Function('f', [s, command], [rotorpy_dynamics(vehicle, s, command)])
    h = period_s / steps
    state = s
    for _ in range(steps):
        k1 = f(state, held)
        k2 = f(state + 0.5 * h * k1, held)
        k3 = f(state + 0.5 * h * k2, held)
        k4 = f(state + h * k3, held)
        state = state + (h / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
        quat = state[6:10] / ca.norm_2(state[6:10])
        state = ca.vertcat(state[0:6], quat, state[10:16],
                           ca.fmin(ca.fmax(state[16:20], low), high))
    return ca.Function('rotorpy_period', [s, command], [state])
