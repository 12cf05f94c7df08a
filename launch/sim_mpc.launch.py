"""Launch the simulator and the MPC controller flying a scenario.

Usage::

    ros2 launch hybrid_mpc_ros sim_mpc.launch.py
    ros2 launch hybrid_mpc_ros sim_mpc.launch.py clock_mode:=lockstep
    ros2 launch hybrid_mpc_ros sim_mpc.launch.py scenario:=/path/to/scenario.yaml \
        namespace:=quad1

Both nodes read the same scenario file (the simulator its plant, period and initial state;
the controller its MPC settings), the controller then ``config/mpc_controller.yaml``.
``clock_mode`` defaults to ``realtime``, as everywhere in the package: the controller runs
on its wall-clock timer. In ``lockstep`` the simulator advances one period per command and
publishes ``/clock``; both nodes get ``use_sim_time`` and the controller answers each new
odometry stamp once (its ``auto`` trigger), so the flight is deterministic and as fast as
the two processes exchange messages.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution, PythonExpression
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

PACKAGE = 'hybrid_mpc_ros'


def generate_launch_description():
    """Build the launch description: arguments, simulator node, MPC controller node."""
    share = FindPackageShare(PACKAGE)
    clock_mode = LaunchConfiguration('clock_mode')
    use_sim_time = ParameterValue(LaunchConfiguration('use_sim_time'), value_type=bool)
    namespace = LaunchConfiguration('namespace')
    scenario = LaunchConfiguration('scenario')
    arguments = [
        DeclareLaunchArgument(
            'scenario', default_value=PathJoinSubstitution(
                [share, 'config', 'scenarios', 'l4dc2026.yaml']),
            description='scenario file both nodes read'),
        DeclareLaunchArgument(
            'controller_params', default_value=PathJoinSubstitution(
                [share, 'config', 'mpc_controller.yaml']),
            description="the controller's runtime settings"),
        DeclareLaunchArgument(
            'clock_mode', default_value='realtime', choices=['realtime', 'lockstep'],
            description="simulator clock: 'realtime' or 'lockstep'"),
        DeclareLaunchArgument(
            'use_sim_time',
            default_value=PythonExpression(
                ["'true' if '", clock_mode, "' == 'lockstep' else 'false'"]),
            description='both nodes follow /clock (default: true in lockstep mode)'),
        DeclareLaunchArgument('namespace', default_value='',
                              description='namespace for both nodes (topics, frame ids)'),
    ]
    simulator = Node(
        package=PACKAGE,
        executable='simulator_node',
        name='quadcopter_simulator',
        namespace=namespace,
        output='screen',
        emulate_tty=True,
        parameters=[scenario, {'clock_mode': clock_mode, 'use_sim_time': use_sim_time}],
    )
    controller = Node(
        package=PACKAGE,
        executable='mpc_controller_node',
        name='mpc_controller',
        namespace=namespace,
        output='screen',
        emulate_tty=True,
        parameters=[scenario, LaunchConfiguration('controller_params'),
                    {'use_sim_time': use_sim_time}],
    )
    return LaunchDescription(arguments + [simulator, controller])
