"""Launch the MPC controller alone, for a vehicle (its onboard companion computer).

Usage::

    ros2 launch hybrid_mpc_ros mpc_controller.launch.py
    ros2 launch hybrid_mpc_ros mpc_controller.launch.py namespace:=quad1 \
        odom_topic:=/quad1/estimator/odometry cmd_topic:=/quad1/motors/speed_cmd \
        scenario:=/path/to/my_vehicle.yaml

The node reads the scenario file (its ``/**`` and ``mpc_controller`` sections: period,
references, constraints, nominal model, horizon, slack weights) and then its runtime
settings (``controller_params``: trigger, timeout, failsafe). On a vehicle it runs on a
wall-clock timer at ``1 / period_s`` on the latest odometry (``use_sim_time`` false, the
default). ``odom_topic`` and ``cmd_topic`` remap its ``odom`` input and
``rotor_speeds_cmd`` output onto the vehicle's topics; ``~/sensitivity``,
``~/predicted_path`` and the parameter services stay under the node's name.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

PACKAGE = 'hybrid_mpc_ros'


def generate_launch_description():
    """Build the launch description: arguments and the mpc_controller node."""
    share = FindPackageShare(PACKAGE)
    arguments = [
        DeclareLaunchArgument(
            'scenario', default_value=PathJoinSubstitution(
                [share, 'config', 'scenarios', 'l4dc2026.yaml']),
            description='scenario file (ROS parameter file) the controller reads'),
        DeclareLaunchArgument(
            'controller_params', default_value=PathJoinSubstitution(
                [share, 'config', 'mpc_controller.yaml']),
            description="the controller's runtime settings (trigger, timeout, failsafe)"),
        DeclareLaunchArgument('namespace', default_value='',
                              description='namespace of the node and its topics'),
        DeclareLaunchArgument('odom_topic', default_value='odom',
                              description="the vehicle's odometry (nav_msgs/Odometry)"),
        DeclareLaunchArgument('cmd_topic', default_value='rotor_speeds_cmd',
                              description='where rotor speed commands go '
                                          '(std_msgs/Float64MultiArray, 4 x rad/s)'),
        DeclareLaunchArgument('use_sim_time', default_value='false',
                              description='follow /clock (a lockstep simulator)'),
    ]
    controller = Node(
        package=PACKAGE,
        executable='mpc_controller_node',
        name='mpc_controller',
        namespace=LaunchConfiguration('namespace'),
        output='screen',
        emulate_tty=True,
        parameters=[LaunchConfiguration('scenario'), LaunchConfiguration('controller_params'),
                    {'use_sim_time': ParameterValue(LaunchConfiguration('use_sim_time'),
                                                    value_type=bool)}],
        remappings=[('odom', LaunchConfiguration('odom_topic')),
                    ('rotor_speeds_cmd', LaunchConfiguration('cmd_topic'))],
    )
    return LaunchDescription(arguments + [controller])
