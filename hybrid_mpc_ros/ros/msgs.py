"""The one place where nodes convert between ROS messages and numpy arrays.

* ``nav_msgs/Odometry`` <-> model state (12): frame conventions in :mod:`frames`
  (pose in the world frame, twist in the child/body frame).
* ``std_msgs/Float64MultiArray`` <-> rotor speeds (4) [rad/s], one dimension labelled
  ``rotor_speed_rad_s`` of size 4.

Parsing functions raise ``ValueError`` with a message that names the problem, so nodes
can log it and count the rejection.
"""

from __future__ import annotations

import math

from builtin_interfaces.msg import Time
from nav_msgs.msg import Odometry
import numpy as np
from std_msgs.msg import Float64MultiArray, MultiArrayDimension

from hybrid_mpc_ros.core.model.frames import odometry_arrays_to_state, state_to_odometry_arrays
from hybrid_mpc_ros.core.model.quadcopter import NU

ROTOR_COMMAND_LABEL = 'rotor_speed_rad_s'

QUATERNION_NORM_TOL = 1e-3       # |norm - 1| accepted in an odometry's orientation


def state_to_odometry(x, stamp: Time, frame_id: str, child_frame_id: str,
                      out: Odometry | None = None) -> Odometry:
    """``nav_msgs/Odometry`` for the model state ``x`` (12).

    ``stamp`` is a ``builtin_interfaces/Time``. Pass ``out`` to refill an existing message
    instead of allocating one. Covariances are left untouched (zero in a new message: the
    simulator's state is exact).
    """
    msg = Odometry() if out is None else out
    position, quat, lin, ang = state_to_odometry_arrays(x)
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.child_frame_id = child_frame_id
    pose = msg.pose.pose
    pose.position.x, pose.position.y, pose.position.z = (float(v) for v in position)
    orientation = pose.orientation
    orientation.x, orientation.y, orientation.z, orientation.w = (float(v) for v in quat)
    twist = msg.twist.twist
    twist.linear.x, twist.linear.y, twist.linear.z = (float(v) for v in lin)
    twist.angular.x, twist.angular.y, twist.angular.z = (float(v) for v in ang)
    return msg


def odometry_to_state(msg: Odometry) -> np.ndarray:
    """Model state (12) from ``nav_msgs/Odometry``.

    ``ValueError`` on non-finite content or an orientation quaternion whose norm is not 1
    within :data:`QUATERNION_NORM_TOL` (a zero quaternion included): the controller and
    the tuner refuse the same odometry.
    """
    pose, twist = msg.pose.pose, msg.twist.twist
    values = (pose.position.x, pose.position.y, pose.position.z,
              pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w,
              twist.linear.x, twist.linear.y, twist.linear.z,
              twist.angular.x, twist.angular.y, twist.angular.z)
    if not all(math.isfinite(value) for value in values):
        raise ValueError(f'odometry in frame {msg.header.frame_id!r} has non-finite '
                         f'pose or twist: {values}')
    norm = math.sqrt(sum(value * value for value in values[3:7]))
    if not abs(norm - 1.0) <= QUATERNION_NORM_TOL:
        raise ValueError(f'orientation quaternion has norm {norm:.6g}, not 1 '
                         f'(tolerance {QUATERNION_NORM_TOL:g})')
    return odometry_arrays_to_state(values[0:3], values[3:7], values[7:10], values[10:13])


def rotor_command(u) -> Float64MultiArray:
    """``std_msgs/Float64MultiArray`` carrying rotor speeds ``u`` (4) [rad/s]."""
    msg = Float64MultiArray()
    msg.layout.dim.append(MultiArrayDimension(label=ROTOR_COMMAND_LABEL, size=NU, stride=NU))
    msg.data = np.asarray(u, dtype=float).reshape(NU).tolist()
    return msg


def parse_rotor_command(msg: Float64MultiArray) -> np.ndarray:
    """Rotor speeds (4) [rad/s] from a command; ``ValueError`` naming the problem.

    Only the data matter (the layout is informative); a message must hold exactly 4
    finite values. The returned array is a copy, safe to keep.
    """
    u = np.array(msg.data, dtype=float)
    if u.shape != (NU,):
        raise ValueError(f'rotor command must hold {NU} rotor speeds, got {u.size}')
    if not np.isfinite(u).all():
        raise ValueError(f'rotor command holds non-finite values: {u.tolist()}')
    return u
