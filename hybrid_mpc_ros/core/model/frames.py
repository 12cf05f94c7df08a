"""Frame and attitude conversions between the model state and odometry (ROS-free).

Conventions (see :mod:`hybrid_mpc_ros.core.model.quadcopter`): the model already follows REP-103.
Its world frame is z-up and is published as the ENU frame ``odom``; its body frame is
x-forward, y-left, z-up and is published as the FLU frame ``base_link``. Attitude in the
model is Z-Y-X Euler angles (roll ``phi``, pitch ``theta``, yaw ``psi``) with world-from-body
rotation ``R = Rz(psi) Ry(theta) Rx(phi)``; in odometry it is the quaternion of that same
``R`` in ROS order ``(x, y, z, w)``.

Mapping between the model state ``x`` (12) and ``nav_msgs/Odometry`` content:

=====================  =============================  ===================================
model state            odometry field                 conversion
=====================  =============================  ===================================
``x[0:3]`` position    ``pose.pose.position``         identity (world = ``odom``)
``x[6:9]`` Euler ZYX   ``pose.pose.orientation``      Euler <-> quaternion (x, y, z, w)
``x[3:6]`` velocity    ``twist.twist.linear``         model: world frame; odometry: child
                                                      (body) frame, so ``v_b = R^T v_w``
``x[9:12]`` p, q, r    ``twist.twist.angular``        identity (both body-frame FLU)
=====================  =============================  ===================================

Euler angles recovered from a quaternion lie in the principal ranges roll, yaw in
``(-pi, pi]`` and pitch in ``[-pi/2, pi/2]``; a model yaw that wandered past +-pi comes
back wrapped. Z-Y-X Euler angles are singular at pitch +-90 deg (the model's kinematics
are too), which the quadcopter's constraints keep far away.
"""

from __future__ import annotations

import math

import numpy as np

from hybrid_mpc_ros.core.model.quadcopter import NX, rotation_world_from_body


def euler_to_quaternion(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """Quaternion ``(x, y, z, w)`` of ``Rz(yaw) Ry(pitch) Rx(roll)``; shape (4,), ``w >= 0``."""
    cr, sr = math.cos(0.5 * roll), math.sin(0.5 * roll)
    cp, sp = math.cos(0.5 * pitch), math.sin(0.5 * pitch)
    cy, sy = math.cos(0.5 * yaw), math.sin(0.5 * yaw)
    quat = np.array([sr * cp * cy - cr * sp * sy,
                     cr * sp * cy + sr * cp * sy,
                     cr * cp * sy - sr * sp * cy,
                     cr * cp * cy + sr * sp * sy])
    # q and -q are the same rotation; pick one so results are reproducible
    return -quat if quat[3] < 0.0 else quat


def quaternion_to_euler(quat_xyzw) -> tuple[float, float, float]:
    """Z-Y-X Euler angles ``(roll, pitch, yaw)`` [rad] of a quaternion ``(x, y, z, w)``.

    The quaternion is normalised first; a zero or non-finite one raises ``ValueError``.
    """
    qx, qy, qz, qw = _unit_quaternion(quat_xyzw)
    roll = math.atan2(2.0 * (qw * qx + qy * qz), 1.0 - 2.0 * (qx * qx + qy * qy))
    sin_pitch = 2.0 * (qw * qy - qz * qx)
    pitch = math.asin(min(1.0, max(-1.0, sin_pitch)))
    yaw = math.atan2(2.0 * (qw * qz + qx * qy), 1.0 - 2.0 * (qy * qy + qz * qz))
    return roll, pitch, yaw


def _unit_quaternion(quat_xyzw) -> tuple[float, float, float, float]:
    qx, qy, qz, qw = (float(value) for value in quat_xyzw)
    norm = math.sqrt(qx * qx + qy * qy + qz * qz + qw * qw)
    if not math.isfinite(norm) or norm < 1e-9:
        raise ValueError(f'orientation quaternion must be finite and non-zero, '
                         f'got (x, y, z, w) = {(qx, qy, qz, qw)}')
    return qx / norm, qy / norm, qz / norm, qw / norm


def state_to_odometry_arrays(x) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split a model state (12) into odometry content.

    Returns ``(position (3), quat_xyzw (4), linear_velocity_body (3),
    angular_velocity_body (3))``: position in the world (ENU ``odom``) frame, the
    world-from-body orientation, and the twist expressed in the body (FLU ``base_link``)
    frame as ``nav_msgs/Odometry`` requires (linear: ``R^T v_world``; angular: the model's
    body rates unchanged).
    """
    x = np.asarray(x, dtype=float).reshape(NX)
    rot = rotation_world_from_body(x[6], x[7], x[8])
    return (x[0:3].copy(), euler_to_quaternion(x[6], x[7], x[8]),
            rot.T @ x[3:6], x[9:12].copy())


def odometry_arrays_to_state(position, quat_xyzw, linear_velocity_body,
                             angular_velocity_body) -> np.ndarray:
    """Inverse of :func:`state_to_odometry_arrays`: the model state, shape (12,).

    ``position`` (3) is in the world frame, ``quat_xyzw`` (4) the world-from-body
    orientation (normalised here), and both velocities (3 each) are in the body frame;
    the linear one is rotated to the world frame (``v_world = R v_body``).
    """
    roll, pitch, yaw = quaternion_to_euler(quat_xyzw)
    rot = rotation_world_from_body(roll, pitch, yaw)
    x = np.empty(NX)
    x[0:3] = position
    x[3:6] = rot @ np.asarray(linear_velocity_body, dtype=float).reshape(3)
    x[6:9] = (roll, pitch, yaw)
    x[9:12] = angular_velocity_body
    return x
