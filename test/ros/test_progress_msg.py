"""The tuner's ~/progress codec (ros/progress_msg.py)."""

import math

from builtin_interfaces.msg import Time
from rclpy.serialization import deserialize_message, serialize_message
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
import pytest

from hybrid_mpc_ros.ros import progress_msg


def test_progress_round_trips_through_ros_serialisation():
    row = {'iteration': 7, 'cost': 1090.2560356877743, 'tracking': 1050.1, 'violation': 40.15,
           'grad_model_norm': None, 'grad_zo_norm': 3.5e4, 'step_norm': 0.01,
           'alpha': 5.9e-05, 'eta': 0.0, 'theta_revision': 13, 'retries': 1, 'rollbacks': 0,
           'episodes': 14, 'wall_s': 0.42, 'rollback': False}
    msg = progress_msg.progress_message(row, Time(sec=3, nanosec=5), 'iteration 7', warn=True)
    back = progress_msg.parse_progress(deserialize_message(serialize_message(msg),
                                                           DiagnosticArray))
    assert back['message'] == 'iteration 7'
    for key in progress_msg.FIELDS:
        if row[key] is None:
            assert math.isnan(back[key])
        else:
            assert back[key] == row[key] and type(back[key]) is type(row[key]), key
    status = msg.status[0]
    assert status.level == DiagnosticStatus.WARN and status.name == progress_msg.STATUS_NAME
    # every value reads as a number (what PlotJuggler needs to plot it)
    assert all(float(item.value) == float(item.value) or item.value == 'nan'
               for item in status.values)


def test_a_message_of_another_kind_is_refused():
    with pytest.raises(ValueError, match='one status named'):
        progress_msg.parse_progress(DiagnosticArray(status=[DiagnosticStatus(name='x')]))
