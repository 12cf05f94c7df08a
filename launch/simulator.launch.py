"""Launch the quadcopter simulator alone (bring your own controller).

Usage::

    ros2 launch hybrid_mpc_ros simulator.launch.py
    ros2 launch hybrid_mpc_ros simulator.launch.py clock_mode:=lockstep
    ros2 launch hybrid_mpc_ros simulator.launch.py namespace:=quad1
    ros2 launch hybrid_mpc_ros simulator.launch.py scenario:=/path/to/my_scenario.yaml

The node reads its runtime settings (``simulator_params``, default
``config/simulator.yaml``: clock, frames, timeouts), then the scenario file (``scenario``,
default ``config/scenarios/l4dc2026.yaml``, the package's default scenario: plant,
integrator, period, initial state); the arguments below override both. ``clock_mode``
defaults to ``realtime``: odom stamped with the wall clock, no ``/clock``. In
``lockstep`` the simulator advances one period per received command, stamps odom with
the simulation time and publishes it on ``/clock`` (run your controller with
``use_sim_time:=true``). The node publishes ``odom``, subscribes ``rotor_speeds_cmd`` and
serves ``~/reset``; under ``namespace:=quad1`` those become ``/quad1/...`` and the frame
ids ``quad1/odom`` and ``quad1/base_link``. The other launch files include this one.
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
    share = FindPackageShare(PACKAGE)
    clock_mode = LaunchConfiguration('clock_mode')
    publish_clock = LaunchConfiguration('publish_clock')
    return LaunchDescription([
        DeclareLaunchArgument(
            'scenario', default_value=PathJoinSubstitution(
                [share, 'config', 'scenarios', 'l4dc2026.yaml']),
            description='scenario file: the plant, its integration, period and initial state'),
        DeclareLaunchArgument(
            'simulator_params', default_value=PathJoinSubstitution(
                [share, 'config', 'simulator.yaml']),
            description="the simulator's runtime settings (read before the scenario)"),
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
            'use_sim_time', default_value='false',
            description='the simulator itself follows /clock (not needed in lockstep, where '
                        'it is the clock)'),
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
            parameters=[LaunchConfiguration('simulator_params'), LaunchConfiguration('scenario'),
                        {'clock_mode': clock_mode,
                         'publish_clock': ParameterValue(publish_clock, value_type=bool),
                         'use_sim_time': ParameterValue(LaunchConfiguration('use_sim_time'),
                                                        value_type=bool)}],
        ),
    ])
