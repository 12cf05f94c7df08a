"""Launch the tuning on a vehicle: MPC controller + hybrid tuner, episodes by flying back.

Usage::

    ros2 launch hybrid_mpc_ros tuning_vehicle.launch.py \
        odom_topic:=/mavros/local_position/odom cmd_topic:=/quad1/rotor_speeds
    ros2 launch hybrid_mpc_ros tuning_vehicle.launch.py namespace:=quad1 iterations:=20 \
        scenario:=/path/to/my_vehicle_scenario.yaml tuner_params:=/path/to/tuner.yaml

No simulator: the vehicle's driver publishes its odometry (``nav_msgs/Odometry``, pose in
an ENU world frame, twist in the FLU body frame, REP-103/105) on ``odom_topic`` and takes
rotor speeds (``std_msgs/Float64MultiArray``, 4 values [rad/s]) on ``cmd_topic``; both
default to the package's relative names ``odom`` and ``rotor_speeds_cmd``, so within
``namespace`` they need no remapping. The controller is ``mpc_controller.launch.py`` with
``trigger`` (default ``timer``: a command every period whatever the odometry does,
failsafe on stale odometry; ``odometry`` answers each new odometry once, for odometry at
the control rate). The tuner starts every episode with ``start_mode: fly_to_start``: it
sets the controller's x_ref to hover at the scenario's x0, waits until the vehicle has
settled within the tolerances of ``tuner_params`` (``settle_position_tol_m``,
``settle_velocity_tol_m_s``, ``settle_time_s``), then sets theta and the target in one
atomic parameter set and counts the steps. Read docs/protocol.md, "Starting episodes on a
vehicle", first: with a start tolerance of centimetres, the zeroth-order part of the
gradient is dominated by where episodes start (``method:=model_based`` avoids it).

Every node reads the ``scenario`` file (default ``config/scenarios/l4dc2026.yaml``: put
your vehicle's in your own scenario); the controller also ``controller_params``
(``config/mpc_controller.yaml``) and the tuner ``tuner_params``
(``config/hybrid_tuner.yaml``) and the tuning arguments of ``hybrid_mpc_ros.tools.graph``
(``method``, ``gamma``, ``iterations``, ``episode_steps``, ``seed``: empty for the
scenario's; ``output_dir``; ``resume``, false by default). When the tuner has finished,
or if it fails, the controller keeps flying (the final theta, or the last one it
accepted) towards the target: the launch does not end with the tuner. Land the vehicle,
then stop the launch (Ctrl-C).
"""

from launch import LaunchDescription
from launch.actions import (DeclareLaunchArgument, IncludeLaunchDescription, LogInfo,
                            OpaqueFunction, RegisterEventHandler)
from launch.event_handlers import OnProcessExit
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from hybrid_mpc_ros.tools import graph

PACKAGE = 'hybrid_mpc_ros'


def _tuner(context):
    """Build the tuner node (fly_to_start) and the message the launch logs when it exits."""
    names = ('scenario', 'tuner_params', 'namespace', 'odom_topic') + tuple(
        name for name, *_ in graph.TUNER_ARGUMENTS)
    value = {name: LaunchConfiguration(name).perform(context) for name in names}
    overrides = dict(graph.tuner_overrides(value), start_mode='fly_to_start')
    role = graph.NODES['tuner']
    tuner = Node(package=PACKAGE, executable=role.executable, name=role.name,
                 namespace=value['namespace'], output='screen', emulate_tty=True,
                 parameters=graph.node_parameters(value['scenario'], overrides,
                                                  value['tuner_params'])['tuner'],
                 remappings=[('odom', value['odom_topic'])])
    # the vehicle must not lose its controller with the tuner: say so, stop nothing
    note = RegisterEventHandler(OnProcessExit(
        target_action=tuner,
        on_exit=[LogInfo(msg='the tuner has exited; the MPC controller keeps flying the '
                             'last theta it accepted. Land, then stop this launch (Ctrl-C).')]))
    return [tuner, note]


def generate_launch_description():
    """Build the launch description: arguments, the controller launch, the tuner."""
    share = FindPackageShare(PACKAGE)
    arguments = [
        DeclareLaunchArgument(name, default_value=PathJoinSubstitution([share, 'config', *path]),
                              description=description)
        for name, path, description in graph.FILE_ARGUMENTS
    ] + [
        DeclareLaunchArgument(
            'controller_params',
            default_value=PathJoinSubstitution([share, 'config', 'mpc_controller.yaml']),
            description="the controller's runtime settings (odometry timeout, failsafe)"),
        DeclareLaunchArgument('trigger', default_value='timer',
                              choices=['timer', 'odometry', 'auto'],
                              description="when the controller steps (see "
                                          'mpc_controller.launch.py)'),
        DeclareLaunchArgument('odom_topic', default_value='odom',
                              description="the vehicle's odometry (nav_msgs/Odometry)"),
        DeclareLaunchArgument('cmd_topic', default_value='rotor_speeds_cmd',
                              description="the vehicle's rotor speed command topic"),
        DeclareLaunchArgument('namespace', default_value='',
                              description='namespace of both nodes'),
    ] + [DeclareLaunchArgument(name, default_value=default, description=description)
         for name, default, description, _ in graph.TUNER_ARGUMENTS]
    controller = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(
            PathJoinSubstitution([share, 'launch', 'mpc_controller.launch.py'])),
        launch_arguments=dict(
            {name: LaunchConfiguration(name) for name in
             ('scenario', 'controller_params', 'trigger', 'namespace', 'odom_topic',
              'cmd_topic')}, use_sim_time='false').items())
    return LaunchDescription(arguments + [controller, OpaqueFunction(function=_tuner)])
