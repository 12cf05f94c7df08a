"""Launch the MPC controller alone, for a vehicle (its onboard companion computer).

Usage::

    ros2 launch hybrid_mpc_ros mpc_controller.launch.py
    ros2 launch hybrid_mpc_ros mpc_controller.launch.py namespace:=quad1 \
        odom_topic:=/quad1/estimator/odometry cmd_topic:=/quad1/motors/speed_cmd \
        scenario:=/path/to/my_vehicle.yaml

The node reads the scenario file (``scenario``, default ``config/scenarios/l4dc2026.yaml``:
its ``/**`` and ``mpc_controller`` sections: period, references, constraints, nominal
model, horizon, slack weights) and then its runtime settings (``controller_params``,
default ``config/mpc_controller.yaml``: trigger, timeouts, failsafe, envelope).
``trigger`` overrides the file's trigger when given: ``timer`` (a command every period on
the latest odometry, failsafe on stale odometry: a vehicle whose odometry comes faster than
the control rate), ``odometry`` (one step per new odometry: a lockstep simulator, or
odometry at the control rate such as the realtime simulator's, with a watchdog on wall
time) or ``auto`` (``odometry`` with ``use_sim_time``, else ``timer``). ``odom_topic`` and
``cmd_topic`` remap its ``odom`` input and ``rotor_speeds_cmd`` output onto the vehicle's
topics; ``~/sensitivity``, ``~/predicted_path`` and the parameter services stay under the
node's name. The other launch files that start a controller include this one.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

PACKAGE = 'hybrid_mpc_ros'
TRIGGERS = ('', 'auto', 'timer', 'odometry')


def _controller(context):
    """Build the controller node; ``trigger`` joins its parameters only when given."""
    value = {name: LaunchConfiguration(name).perform(context) for name in
             ('scenario', 'controller_params', 'namespace', 'odom_topic', 'cmd_topic',
              'use_sim_time', 'trigger')}
    overrides = {'use_sim_time': value['use_sim_time'].lower() in ('true', '1', 'yes')}
    if value['trigger']:
        overrides['trigger'] = value['trigger']
    return [Node(
        package=PACKAGE,
        executable='mpc_controller_node',
        name='mpc_controller',
        namespace=value['namespace'],
        output='screen',
        emulate_tty=True,
        parameters=[value['scenario'], value['controller_params'], overrides],
        remappings=[('odom', value['odom_topic']), ('rotor_speeds_cmd', value['cmd_topic'])],
    )]


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
            description="the controller's runtime settings (trigger, timeouts, failsafe, "
                        'envelope)'),
        DeclareLaunchArgument(
            'trigger', default_value='', choices=list(TRIGGERS),
            description="when the MPC steps: 'timer', 'odometry' or 'auto' (empty: "
                        "controller_params' value)"),
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
    return LaunchDescription(arguments + [OpaqueFunction(function=_controller)])
