"""Launch the tuning on a vehicle: MPC controller + hybrid tuner, episodes by flying back.

Usage::

    ros2 launch hybrid_mpc_ros tuning_vehicle.launch.py \
        odom_topic:=/mavros/local_position/odom cmd_topic:=/quad1/rotor_speeds
    ros2 launch hybrid_mpc_ros tuning_vehicle.launch.py namespace:=quad1 iterations:=20 \
        params_file:=/path/to/my_vehicle_scenario.yaml tuner_params:=/path/to/tuner.yaml

No simulator: the vehicle's driver publishes its odometry (``nav_msgs/Odometry``, pose in
an ENU world frame, twist in the FLU body frame, REP-103/105) on ``odom_topic`` and takes
rotor speeds (``std_msgs/Float64MultiArray``, 4 values [rad/s]) on ``cmd_topic``; both
default to the package's relative names ``odom`` and ``rotor_speeds_cmd``, so within
``namespace`` they need no remapping. The controller runs on its wall-clock timer
(``trigger: timer``: a command every period whatever the odometry does, failsafe on
stale odometry). The tuner starts every episode with ``start_mode: fly_to_start``: it
sets the controller's x_ref to hover at the scenario's x0, waits until the vehicle has
settled within the tolerances of ``tuner_params`` (``settle_position_tol_m``,
``settle_velocity_tol_m_s``, ``settle_time_s``), then sets theta and the target in one
atomic parameter set and counts the steps. Read the README's "Starting episodes on a
vehicle" first: with a start tolerance of centimetres, the zeroth-order part of the
gradient is dominated by where episodes start (``method:=model_based`` avoids it).

Every node reads the scenario ``params_file`` (default ``config/scenarios/arxiv_v1.yaml``:
put your vehicle's in your own scenario); the controller also ``controller_params``
(``config/mpc_controller.yaml``) and the tuner ``tuner_params``
(``config/hybrid_tuner.yaml``); ``method``, ``gamma``, ``iterations``, ``episode_steps``,
``seed`` override the scenario's tuning values when given. The launch shuts down when
the tuner has finished (it leaves the controller flying the final theta towards the
target: stop the launch, or land, when you are done).
"""

from launch import LaunchDescription
from launch.actions import (DeclareLaunchArgument, EmitEvent, OpaqueFunction,
                            RegisterEventHandler)
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

PACKAGE = 'hybrid_mpc_ros'
OVERRIDES = (('method', str), ('gamma', float), ('iterations', int), ('episode_steps', int),
             ('seed', int))


def _nodes(context):
    """Controller and tuner, remapped onto the vehicle's topics."""
    value = {name: LaunchConfiguration(name).perform(context) for name in
             ('params_file', 'controller_params', 'tuner_params', 'namespace', 'odom_topic',
              'cmd_topic', 'output_dir', 'resume') + tuple(name for name, _ in OVERRIDES)}
    overrides = {name: kind(value[name]) for name, kind in OVERRIDES if value[name] != ''}
    overrides.update(output_dir=value['output_dir'], start_mode='fly_to_start',
                     resume=value['resume'].lower() in ('true', '1', 'yes'))
    odom = ('odom', value['odom_topic'])
    controller = Node(
        package=PACKAGE, executable='mpc_controller_node', name='mpc_controller',
        namespace=value['namespace'], output='screen', emulate_tty=True,
        parameters=[value['params_file'], value['controller_params'], {'trigger': 'timer'}],
        remappings=[odom, ('rotor_speeds_cmd', value['cmd_topic'])])
    tuner = Node(
        package=PACKAGE, executable='tuner_node', name='hybrid_tuner',
        namespace=value['namespace'], output='screen', emulate_tty=True,
        parameters=[value['params_file'], value['tuner_params'], overrides],
        remappings=[odom])
    done = RegisterEventHandler(OnProcessExit(
        target_action=tuner,
        on_exit=[EmitEvent(event=Shutdown(reason='the tuner has finished'))]))
    return [controller, tuner, done]


def generate_launch_description():
    """Build the launch description: arguments, then the nodes (see the module docstring)."""
    share = FindPackageShare(PACKAGE)
    arguments = [
        DeclareLaunchArgument(
            'params_file',
            default_value=PathJoinSubstitution([share, 'config', 'scenarios', 'arxiv_v1.yaml']),
            description='the scenario: a ROS parameter file both nodes read'),
        DeclareLaunchArgument(
            'controller_params',
            default_value=PathJoinSubstitution([share, 'config', 'mpc_controller.yaml']),
            description="the controller's runtime settings (odometry timeout, failsafe)"),
        DeclareLaunchArgument(
            'tuner_params',
            default_value=PathJoinSubstitution([share, 'config', 'hybrid_tuner.yaml']),
            description="the tuner's runtime settings (settle tolerances, timeouts, output)"),
        DeclareLaunchArgument('odom_topic', default_value='odom',
                              description="the vehicle's odometry (nav_msgs/Odometry)"),
        DeclareLaunchArgument('cmd_topic', default_value='rotor_speeds_cmd',
                              description="the vehicle's rotor speed command topic"),
        DeclareLaunchArgument('namespace', default_value='',
                              description='namespace of both nodes'),
        DeclareLaunchArgument('method', default_value='',
                              description="hybrid, model_based or zeroth_order (empty: the "
                                          "scenario's)"),
        DeclareLaunchArgument('gamma', default_value='',
                              description="hybrid mixing exponent (empty: the scenario's)"),
        DeclareLaunchArgument('iterations', default_value='',
                              description="tuning iterations (empty: the scenario's)"),
        DeclareLaunchArgument('episode_steps', default_value='',
                              description="steps per episode T (empty: the scenario's)"),
        DeclareLaunchArgument('seed', default_value='',
                              description="seed of the random directions (empty: the "
                                          "scenario's)"),
        DeclareLaunchArgument('output_dir', default_value='results/tuning',
                              description='where the tuner writes CSVs, checkpoint, figure'),
        DeclareLaunchArgument('resume', default_value='true',
                              description='continue from the checkpoint in output_dir'),
    ]
    return LaunchDescription(arguments + [OpaqueFunction(function=_nodes)])
