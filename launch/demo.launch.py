"""Launch the quadcopter simulator and the LQR controller: the ``hybrid-mpc demo`` pair.

Usage::

    ros2 launch hybrid_mpc_ros demo.launch.py
    ros2 launch hybrid_mpc_ros demo.launch.py clock_mode:=lockstep
    ros2 launch hybrid_mpc_ros demo.launch.py namespace:=quad1

Parameters come from ``config/simulator.yaml`` and ``config/lqr_controller.yaml`` of the
installed package (override with ``simulator_params:=`` / ``controller_params:=``).
``clock_mode`` defaults to ``realtime``, as everywhere in the package: the vehicle flies in
wall time, odom is stamped with the wall clock and no ``/clock`` is published. In
``lockstep`` mode the simulator advances one period per command (as fast as the controller
answers) and is the ``/clock`` source, so both nodes get ``use_sim_time`` true
(``publish_clock:=`` and ``use_sim_time:=`` override either default). Under
``namespace:=quad1`` topics and frame ids (``quad1/odom``, ``quad1/base_link``) follow.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution, PythonExpression
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

PACKAGE = 'hybrid_mpc_ros'


def generate_launch_description():
    """Build the launch description: arguments, simulator node, LQR controller node."""
    clock_mode = LaunchConfiguration('clock_mode')
    publish_clock = LaunchConfiguration('publish_clock')
    use_sim_time = ParameterValue(LaunchConfiguration('use_sim_time'), value_type=bool)
    namespace = LaunchConfiguration('namespace')
    arguments = [
        DeclareLaunchArgument(
            'clock_mode', default_value='realtime', choices=['realtime', 'lockstep'],
            description="simulator clock: 'realtime' (wall-clock timer) or 'lockstep' (one "
                        'period per command, as fast as the controller answers)'),
        DeclareLaunchArgument(
            'publish_clock',
            default_value=PythonExpression(
                ["'true' if '", clock_mode, "' == 'lockstep' else 'false'"]),
            description='the simulator publishes the simulation time on /clock and stamps '
                        'odom with it (default: true in lockstep mode only)'),
        DeclareLaunchArgument(
            'use_sim_time', default_value=publish_clock,
            description='both nodes follow /clock (default: publish_clock)'),
        DeclareLaunchArgument(
            'namespace', default_value='',
            description='namespace for both nodes: their topics and the frame ids follow it'),
        DeclareLaunchArgument(
            'simulator_params',
            default_value=PathJoinSubstitution(
                [FindPackageShare(PACKAGE), 'config', 'simulator.yaml']),
            description='ROS parameter file of the quadcopter_simulator node'),
        DeclareLaunchArgument(
            'controller_params',
            default_value=PathJoinSubstitution(
                [FindPackageShare(PACKAGE), 'config', 'lqr_controller.yaml']),
            description='ROS parameter file of the lqr_controller node'),
    ]
    simulator = Node(
        package=PACKAGE,
        executable='simulator_node',
        name='quadcopter_simulator',
        namespace=namespace,
        output='screen',
        emulate_tty=True,
        parameters=[LaunchConfiguration('simulator_params'),
                    {'clock_mode': clock_mode,
                     'publish_clock': ParameterValue(publish_clock, value_type=bool),
                     'use_sim_time': use_sim_time}],
    )
    controller = Node(
        package=PACKAGE,
        executable='lqr_controller_node',
        name='lqr_controller',
        namespace=namespace,
        output='screen',
        emulate_tty=True,
        parameters=[LaunchConfiguration('controller_params'),
                    {'use_sim_time': use_sim_time}],
    )
    return LaunchDescription(arguments + [simulator, controller])
