"""Launch the quadcopter simulator alone (bring your own controller).

Usage::

    ros2 launch hybrid_mpc_ros simulator.launch.py
    ros2 launch hybrid_mpc_ros simulator.launch.py clock_mode:=lockstep
    ros2 launch hybrid_mpc_ros simulator.launch.py \
        params_file:=/path/to/plant_mismatch_example.yaml

The node reads ``params_file`` (default: ``config/simulator.yaml`` of the installed
package); ``clock_mode`` overrides the file's value. It publishes ``odom`` and ``/clock``,
subscribes ``rotor_speeds_cmd`` and serves ``~/reset``; remap or namespace those to wire
it to a controller.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

PACKAGE = 'hybrid_mpc_ros'


def generate_launch_description():
    """Build the launch description: the two arguments and the simulator node."""
    return LaunchDescription([
        DeclareLaunchArgument(
            'params_file',
            default_value=PathJoinSubstitution(
                [FindPackageShare(PACKAGE), 'config', 'simulator.yaml']),
            description='ROS parameter file of the quadcopter_simulator node'),
        DeclareLaunchArgument(
            'clock_mode', default_value='realtime', choices=['realtime', 'lockstep'],
            description="'realtime' (wall-clock timer) or 'lockstep' (one period per "
                        'received command; the node publishes /clock)'),
        Node(
            package=PACKAGE,
            executable='simulator_node',
            name='quadcopter_simulator',
            output='screen',
            emulate_tty=True,
            parameters=[LaunchConfiguration('params_file'),
                        {'clock_mode': LaunchConfiguration('clock_mode')}],
        ),
    ])
