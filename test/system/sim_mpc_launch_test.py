"""launch_testing: the simulator and the MPC controller from launch/sim_mpc.launch.py.

Starts both nodes with the launch file as a ROS user would (lockstep), waits for the
controller's sensitivity messages, and sets theta through the real ``set_parameters``
service: an accepted set raises the revision the next messages carry; a wrong one is
refused with its reason. Run by ``launch_test`` or by pytest where launch_testing is
installed (a ROS 2 installation, ``colcon test``); skipped with the reason otherwise.
"""

import os
import time
import unittest

import pytest

launch_testing = pytest.importorskip(
    'launch_testing', reason='launch_testing is not installable from PyPI; run this test '
                             'in a ROS 2 installation (colcon test or launch_test)')

from launch import LaunchDescription  # noqa: E402
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
import launch_testing.actions  # noqa: E402
import rclpy  # noqa: E402
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue  # noqa: E402
from rcl_interfaces.srv import SetParameters  # noqa: E402
from std_msgs.msg import Float64MultiArray  # noqa: E402

from hybrid_mpc_ros.ros.sensitivity_msg import parse_sensitivity_message  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.launch_test
def generate_test_description():
    """The launch file under test, in lockstep, on the checkout's scenario and settings."""
    include = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(os.path.join(ROOT, 'launch', 'sim_mpc.launch.py')),
        launch_arguments={
            'clock_mode': 'lockstep',
            'scenario': os.path.join(ROOT, 'config', 'scenarios', 'arxiv_v1.yaml'),
            'controller_params': os.path.join(ROOT, 'config', 'mpc_controller.yaml'),
        }.items())
    return LaunchDescription([include, launch_testing.actions.ReadyToTest()])


def _double_array(name, values):
    return Parameter(name=name, value=ParameterValue(
        type=ParameterType.PARAMETER_DOUBLE_ARRAY, double_array_value=list(values)))


class TestSimMpcLaunch(unittest.TestCase):
    """Talks to the launched nodes over DDS."""

    @classmethod
    def setUpClass(cls):
        rclpy.init()
        cls.node = rclpy.create_node('sim_mpc_launch_test')

    @classmethod
    def tearDownClass(cls):
        cls.node.destroy_node()
        rclpy.shutdown()

    def _spin_until(self, predicate, timeout):
        deadline = time.monotonic() + timeout
        while not predicate() and time.monotonic() < deadline:
            rclpy.spin_once(self.node, timeout_sec=0.05)
        return predicate()

    def _set(self, params):
        client = self.node.create_client(SetParameters, '/mpc_controller/set_parameters')
        self.assertTrue(client.wait_for_service(timeout_sec=20.0))
        future = client.call_async(SetParameters.Request(parameters=params))
        self.assertTrue(self._spin_until(future.done, 20.0))
        return future.result().results

    def test_sensitivities_flow_and_theta_is_set_live(self):
        samples = []
        self.node.create_subscription(
            Float64MultiArray, '/mpc_controller/sensitivity',
            lambda msg: samples.append(parse_sensitivity_message(msg)), 1000)
        self.assertTrue(self._spin_until(lambda: len(samples) >= 20, 60.0))
        self.assertTrue(all(sample.status == 0 for sample in samples))
        revision = samples[-1].revision
        results = self._set([_double_array('theta.p_R', [0.3] * 4)])
        self.assertTrue(results[0].successful, results[0].reason)
        self.assertTrue(self._spin_until(
            lambda: samples[-1].revision == revision + 1, 20.0))
        results = self._set([_double_array('theta.p_R', [0.3] * 3)])
        self.assertFalse(results[0].successful)
        self.assertIn('must hold 4 values', results[0].reason)
