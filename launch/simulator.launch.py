"""Launch the quadcopter simulator alone (bring your own controller).

Usage::

    ros2 launch hybrid_mpc_ros simulator.launch.py
    ros2 launch hybrid_mpc_ros simulator.launch.py clock_mode:=lockstep
    ros2 launch hybrid_mpc_ros simulator.launch.py namespace:=quad1
    ros2 launch hybrid_mpc_ros simulator.launch.py \
        params_file:=/path/to/plant_mismatch_example.yaml

The node reads ``params_file`` (default: ``config/simulator.yaml`` of the installed
package); the arguments below override the file. ``clock_mode`` defaults to ``realtime``
(as in the node, ``config/simulator.yaml`` and ``demo.launch.py``): odom stamped with the
wall clock, no ``/clock``. In ``lockstep`` the simulator advances one period per received
command, stamps odom with the simulation time and publishes it on ``/clock`` (run your
controller with ``use_sim_time:=true``). The node publishes ``odom``, subscribes
``rotor_speeds_cmd`` and serves ``~/reset``; under ``namespace:=quad1`` those become
``/quad1/...`` and the frame ids ``quad1/odom`` and ``quad1/base_link``.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution, PythonExpression
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

PACKAGE = 'hybrid_mpc_ros'


def generate_launch_description():
    """Build the launch description: the arguments and the simulator node."""
    clock_mode = LaunchConfiguration('clock_mode')
    publish_clock = LaunchConfiguration('publish_clock')
    return LaunchDescription([
        DeclareLaunchArgument(
            'params_file',
            default_value=PathJoinSubstitution(
                [FindPackageShare(PACKAGE), 'config', 'simulator.yaml']),
            description='ROS parameter file of the quadcopter_simulator node'),
        DeclareLaunchArgument(
            'clock_mode', default_value='realtime', choices=['realtime', 'lockstep'],
            description="'realtime' (wall-clock timer) or 'lockstep' (one period per "
                        'received command, simulation time on /clock)'),
        DeclareLaunchArgument(
            'publish_clock',
            default_value=PythonExpression(
                ["'true' if '", clock_mode, "' == 'lockstep' else 'false'"]),
            description='publish the simulation time on /clock and stamp odom with it '
                        '(default: true in lockstep mode only)'),
        DeclareLaunchArgument(
            'use_sim_time', default_value=publish_clock,
            description='the simulator itself follows /clock (default: publish_clock)'),
        DeclareLaunchArgument(
            'namespace', default_value='',
            description='namespace of the node; its topics and frame ids follow it'),
        Node(
            package=PACKAGE,
            executable='simulator_node',
            name='quadcopter_simulator',
            namespace=LaunchConfiguration('namespace'),
            output='screen',
            emulate_tty=True,
            parameters=[LaunchConfiguration('params_file'), {
                'clock_mode': clock_mode,
                'publish_clock': ParameterValue(publish_clock, value_type=bool),
                'use_sim_time': ParameterValue(LaunchConfiguration('use_sim_time'),
                                               value_type=bool)}],
        ),
    ])
