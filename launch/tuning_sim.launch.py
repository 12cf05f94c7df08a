"""Launch the simulated tuning: lockstep simulator + MPC controller + hybrid tuner.

Usage::

    ros2 launch hybrid_mpc_ros tuning_sim.launch.py
    ros2 launch hybrid_mpc_ros tuning_sim.launch.py iterations:=60 output_dir:=/tmp/tuning
    ros2 launch hybrid_mpc_ros tuning_sim.launch.py \
        params_file:=$PWD/config/scenarios/l4dc2026.yaml method:=model_based

What ``hybrid-mpc tune`` runs, for ``ros2 launch``: the node names and parameters come
from :mod:`hybrid_mpc_ros.tools.graph`, as ``hybrid-mpc tune``'s do. Every node reads
the scenario ``params_file`` (default: ``config/scenarios/arxiv_v1.yaml`` of the
installed package);
the tuner also ``tuner_params`` (default: ``config/hybrid_tuner.yaml``, its runtime
settings) and the overrides given as arguments: ``method``, ``gamma``, ``iterations``,
``episode_steps`` and ``seed`` (empty: the scenario's value), ``output_dir``,
``start_mode`` (``reset``, the default, or ``fly_to_start``) and ``resume``.

The simulator runs in lockstep and is the ``/clock`` source; the controller runs on
simulation time, so it answers every odometry at once (its odometry trigger), and the
tuner resets simulator and controller between episodes: the run reproduces
``hybrid-mpc reproduce`` of the same scenario and seed. When the tuner has done its
iterations it leaves the controller flying the final theta and exits, and the launch
shuts down. ``namespace`` puts all three nodes in one namespace (the tuner finds the
controller and the simulator's reset service by relative names; ``/clock`` stays global).
"""

from launch import LaunchDescription
from launch.actions import (DeclareLaunchArgument, EmitEvent, OpaqueFunction,
                            RegisterEventHandler)
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from hybrid_mpc_ros.tools import graph

PACKAGE = 'hybrid_mpc_ros'
# tuner parameters taken from a launch argument when it is not empty, with their types
OVERRIDES = (('method', str), ('gamma', float), ('iterations', int), ('episode_steps', int),
             ('seed', int))


def _nodes(context):
    """The three nodes, with only the overrides that were given (rcl types them)."""
    value = {name: LaunchConfiguration(name).perform(context) for name in
             ('params_file', 'tuner_params', 'namespace', 'output_dir', 'start_mode',
              'resume') + tuple(name for name, _ in OVERRIDES)}
    overrides = {name: kind(value[name]) for name, kind in OVERRIDES if value[name] != ''}
    overrides.update(output_dir=value['output_dir'], start_mode=value['start_mode'],
                     resume=value['resume'].lower() in ('true', '1', 'yes'))
    # the graph hybrid-mpc tune and the tests run: names and parameters from one place;
    # the dicts come last, launch_ros writes each as that node's own section, which
    # overrides the scenario's section for the node
    parameters = graph.node_parameters(value['params_file'], overrides, value['tuner_params'])
    nodes = {role: Node(package=PACKAGE, executable=node.executable, name=node.name,
                        namespace=value['namespace'], output='screen', emulate_tty=True,
                        parameters=parameters[role])
             for role, node in graph.NODES.items()}
    tuner = nodes['tuner']
    done = RegisterEventHandler(OnProcessExit(
        target_action=tuner,
        on_exit=[EmitEvent(event=Shutdown(reason='the tuner has finished'))]))
    return [nodes[role] for role in graph.START_ORDER] + [done]


def generate_launch_description():
    """Build the launch description: arguments, then the nodes (see the module docstring)."""
    share = FindPackageShare(PACKAGE)
    arguments = [
        DeclareLaunchArgument(
            'params_file',
            default_value=PathJoinSubstitution([share, 'config', 'scenarios', 'arxiv_v1.yaml']),
            description='the scenario: a ROS parameter file every node reads'),
        DeclareLaunchArgument(
            'tuner_params',
            default_value=PathJoinSubstitution([share, 'config', 'hybrid_tuner.yaml']),
            description="the tuner's runtime settings (timeouts, retries, settling, output)"),
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
        DeclareLaunchArgument('start_mode', default_value='reset',
                              choices=['reset', 'fly_to_start'],
                              description='reset (exact episodes) or fly_to_start'),
        DeclareLaunchArgument('resume', default_value='true',
                              description='continue from the checkpoint in output_dir'),
        DeclareLaunchArgument('namespace', default_value='',
                              description='namespace of the three nodes'),
    ]
    return LaunchDescription(arguments + [OpaqueFunction(function=_nodes)])
