"""Launch the quadcopter simulator and the hover LQR controller: a flight with no MPC.

Usage::

    ros2 launch hybrid_mpc_ros demo.launch.py
    ros2 launch hybrid_mpc_ros demo.launch.py clock_mode:=lockstep
    ros2 launch hybrid_mpc_ros demo.launch.py namespace:=quad1

``simulator.launch.py`` (the default scenario's plant, or ``scenario:=``) and the LQR node
with ``config/lqr_controller.yaml`` (``controller_params:=`` overrides it), which flies to
and holds its ``target_position``. ``clock_mode`` defaults to ``realtime``: the vehicle
flies in wall time, odom is stamped with the wall clock and no ``/clock`` is published. In
``lockstep`` mode the simulator advances one period per command (as fast as the
controller answers) and is the ``/clock`` source, and the controller gets ``use_sim_time``.
Under ``namespace:=quad1`` topics and frame ids (``quad1/odom``, ``quad1/base_link``)
follow. ``hybrid-mpc demo`` flies the same pair with the MPC instead (``--controller lqr``:
this one).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution, PythonExpression
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

PACKAGE = 'hybrid_mpc_ros'


def generate_launch_description():
    """Build the launch description: arguments, the simulator launch, the LQR node."""
    share = FindPackageShare(PACKAGE)
    clock_mode = LaunchConfiguration('clock_mode')
    namespace = LaunchConfiguration('namespace')
    arguments = [
        DeclareLaunchArgument(
            'scenario', default_value=PathJoinSubstitution(
                [share, 'config', 'scenarios', 'l4dc2026.yaml']),
            description='scenario file the simulator reads (its plant)'),
        DeclareLaunchArgument(
            'clock_mode', default_value='realtime', choices=['realtime', 'lockstep'],
            description="simulator clock: 'realtime' (wall-clock timer) or 'lockstep' (one "
                        'period per command, as fast as the controller answers)'),
        DeclareLaunchArgument(
            'use_sim_time',
            default_value=PythonExpression(
                ["'true' if '", clock_mode, "' == 'lockstep' else 'false'"]),
            description='the controller follows /clock (default: true in lockstep mode)'),
        DeclareLaunchArgument(
            'namespace', default_value='',
            description='namespace for both nodes: their topics and the frame ids follow it'),
        DeclareLaunchArgument(
            'controller_params', default_value=PathJoinSubstitution(
                [share, 'config', 'lqr_controller.yaml']),
            description='ROS parameter file of the lqr_controller node'),
    ]
    simulator = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(
            PathJoinSubstitution([share, 'launch', 'simulator.launch.py'])),
        launch_arguments={'scenario': LaunchConfiguration('scenario'), 'clock_mode': clock_mode,
                          'namespace': namespace, 'use_sim_time': 'false'}.items())
    controller = Node(
        package=PACKAGE,
        executable='lqr_controller_node',
        name='lqr_controller',
        namespace=namespace,
        output='screen',
        emulate_tty=True,
        parameters=[LaunchConfiguration('controller_params'),
                    {'use_sim_time': ParameterValue(LaunchConfiguration('use_sim_time'),
                                                    value_type=bool)}],
    )
    return LaunchDescription(arguments + [simulator, controller])
