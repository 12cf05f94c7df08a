"""Launch the simulator and the MPC controller flying a scenario.

Usage::

    ros2 launch hybrid_mpc_ros sim_mpc.launch.py
    ros2 launch hybrid_mpc_ros sim_mpc.launch.py clock_mode:=lockstep
    ros2 launch hybrid_mpc_ros sim_mpc.launch.py scenario:=/path/to/scenario.yaml \
        namespace:=quad1

``simulator.launch.py`` and ``mpc_controller.launch.py`` together, reading the same
scenario file (the simulator its plant, period and initial state; the controller its MPC
settings). The controller answers each new odometry stamp once (``trigger: odometry``), in
both clock modes. ``clock_mode`` defaults to ``realtime``: the simulator publishes
odometry at the control rate on wall time, and each command goes out as soon as its
odometry arrives (a timer's phase against the odometry could make every command a period
late); the controller's watchdog keeps commanding if odometry stops. In ``lockstep`` the
simulator advances one period per command and publishes ``/clock``; the controller gets
``use_sim_time``, so the flight is deterministic and as fast as the two processes
exchange messages.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution, PythonExpression
from launch_ros.substitutions import FindPackageShare

PACKAGE = 'hybrid_mpc_ros'


def generate_launch_description():
    """Build the launch description: arguments, then the simulator and controller launches."""
    share = FindPackageShare(PACKAGE)
    clock_mode = LaunchConfiguration('clock_mode')
    shared = {'scenario': LaunchConfiguration('scenario'),
              'namespace': LaunchConfiguration('namespace')}
    arguments = [
        DeclareLaunchArgument(
            'scenario', default_value=PathJoinSubstitution(
                [share, 'config', 'scenarios', 'l4dc2026.yaml']),
            description='scenario file both nodes read'),
        DeclareLaunchArgument(
            'clock_mode', default_value='realtime', choices=['realtime', 'lockstep'],
            description="simulator clock: 'realtime' or 'lockstep'"),
        DeclareLaunchArgument(
            'use_sim_time',
            default_value=PythonExpression(
                ["'true' if '", clock_mode, "' == 'lockstep' else 'false'"]),
            description='the controller follows /clock (default: true in lockstep mode)'),
        DeclareLaunchArgument('namespace', default_value='',
                              description='namespace for both nodes (topics, frame ids)'),
    ]
    simulator = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(
            PathJoinSubstitution([share, 'launch', 'simulator.launch.py'])),
        launch_arguments=dict(shared, clock_mode=clock_mode, use_sim_time='false').items())
    controller = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(
            PathJoinSubstitution([share, 'launch', 'mpc_controller.launch.py'])),
        launch_arguments=dict(shared, use_sim_time=LaunchConfiguration('use_sim_time'),
                              trigger='odometry').items())
    # an included file sees its includer's configurations: every argument it declares that
    # this file declares too is passed explicitly (the simulator is the clock: no sim time)
    return LaunchDescription(arguments + [simulator, controller])
