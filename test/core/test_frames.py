"""Frame conversions between the model state and odometry content (no ROS needed)."""

import math

import numpy as np
import pytest

from hybrid_mpc_ros.core.model import frames
from hybrid_mpc_ros.core.model.quadcopter import rotation_world_from_body


def _random_state(rng):
    x = rng.uniform(-3.0, 3.0, 12)
    x[6] = rng.uniform(-math.pi + 1e-3, math.pi - 1e-3)
    x[7] = rng.uniform(-math.radians(80), math.radians(80))
    x[8] = rng.uniform(-math.pi + 1e-3, math.pi - 1e-3)
    return x


def _quat_to_matrix(q):
    x, y, z, w = q
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def test_euler_quaternion_round_trip_at_random_attitudes():
    rng = np.random.default_rng(1)
    for _ in range(500):
        roll = rng.uniform(-math.pi + 1e-3, math.pi - 1e-3)
        pitch = rng.uniform(-math.radians(80), math.radians(80))
        yaw = rng.uniform(-math.pi + 1e-3, math.pi - 1e-3)
        quat = frames.euler_to_quaternion(roll, pitch, yaw)
        assert np.linalg.norm(quat) == pytest.approx(1.0, abs=1e-12)
        assert quat[3] >= 0.0
        np.testing.assert_allclose(frames.quaternion_to_euler(quat), (roll, pitch, yaw),
                                   atol=1e-10)


def test_quaternion_is_the_model_rotation():
    rng = np.random.default_rng(2)
    for _ in range(100):
        roll, pitch, yaw = rng.uniform(-1.5, 1.5, 3)
        np.testing.assert_allclose(_quat_to_matrix(frames.euler_to_quaternion(roll, pitch, yaw)),
                                   rotation_world_from_body(roll, pitch, yaw), atol=1e-12)


@pytest.mark.parametrize('euler, quat', [
    ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 1.0)),
    ((0.0, 0.0, math.pi / 2), (0.0, 0.0, math.sqrt(0.5), math.sqrt(0.5))),
    ((math.pi / 2, 0.0, 0.0), (math.sqrt(0.5), 0.0, 0.0, math.sqrt(0.5))),
    ((0.0, math.pi / 4, 0.0), (0.0, math.sin(math.pi / 8), 0.0, math.cos(math.pi / 8))),
    ((0.0, 0.0, math.pi), (0.0, 0.0, 1.0, 0.0)),
])
def test_known_quaternions(euler, quat):
    np.testing.assert_allclose(frames.euler_to_quaternion(*euler), quat, atol=1e-12)
    np.testing.assert_allclose(frames.quaternion_to_euler(quat), euler, atol=1e-12)


def test_quaternion_sign_and_scale_do_not_matter():
    quat = frames.euler_to_quaternion(0.3, -0.2, 1.1)
    expected = frames.quaternion_to_euler(quat)
    np.testing.assert_allclose(frames.quaternion_to_euler(-quat), expected, atol=1e-12)
    np.testing.assert_allclose(frames.quaternion_to_euler(3.0 * quat), expected, atol=1e-12)


@pytest.mark.parametrize('bad', [(0.0, 0.0, 0.0, 0.0), (math.nan, 0.0, 0.0, 1.0)])
def test_degenerate_quaternion_is_rejected(bad):
    with pytest.raises(ValueError, match='quaternion'):
        frames.quaternion_to_euler(bad)


def test_state_odometry_round_trip_at_random_states():
    rng = np.random.default_rng(3)
    for _ in range(300):
        x = _random_state(rng)
        back = frames.odometry_arrays_to_state(*frames.state_to_odometry_arrays(x))
        np.testing.assert_allclose(back, x, atol=1e-10)


def test_velocity_is_expressed_in_the_body_frame():
    # yawed 90 deg left: flying world +x (east) is flying body -y (to the right)
    x = np.zeros(12)
    x[3] = 2.0
    x[8] = math.pi / 2
    x[9:12] = (0.1, -0.2, 0.3)
    position, quat, lin_body, ang_body = frames.state_to_odometry_arrays(x)
    np.testing.assert_allclose(lin_body, (0.0, -2.0, 0.0), atol=1e-12)
    np.testing.assert_allclose(ang_body, (0.1, -0.2, 0.3))
    np.testing.assert_allclose(quat, (0.0, 0.0, math.sqrt(0.5), math.sqrt(0.5)), atol=1e-12)
    # pitched +30 deg (nose down in FLU): climbing straight up is body (-sin, 0, cos)
    x = np.zeros(12)
    x[5] = 1.0
    x[7] = math.radians(30)
    _, _, lin_body, _ = frames.state_to_odometry_arrays(x)
    np.testing.assert_allclose(lin_body, (-0.5, 0.0, math.cos(math.radians(30))), atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(lin_body), 1.0)


def test_outputs_do_not_alias_the_state():
    x = np.arange(12, dtype=float) * 0.01
    position, _, _, rates = frames.state_to_odometry_arrays(x)
    position[0] = 99.0
    rates[0] = 99.0
    assert x[0] == 0.0 and x[9] == pytest.approx(0.09)
