"""Launch the simulated tuning: lockstep simulator + MPC controller + hybrid tuner.

Usage::

    ros2 launch hybrid_mpc_ros tuning_sim.launch.py
    ros2 launch hybrid_mpc_ros tuning_sim.launch.py iterations:=60 output_dir:=/tmp/tuning
    ros2 launch hybrid_mpc_ros tuning_sim.launch.py \
        scenario:=$PWD/config/scenarios/arxiv_v1.yaml method:=model_based

What ``hybrid-mpc tune`` runs, for ``ros2 launch``: the node names and parameters come
from :mod:`hybrid_mpc_ros.tools.graph`, as ``hybrid-mpc tune``'s and the tests' do. Every
node reads the ``scenario`` file (default: ``config/scenarios/l4dc2026.yaml``, the
package's default scenario); the tuner also ``tuner_params`` (default:
``config/hybrid_tuner.yaml``, its runtime settings) and the tuning arguments
(``graph.TUNER_ARGUMENTS``: ``method``, ``gamma``, ``iterations``, ``episode_steps``,
``seed``, empty for the scenario's value; ``output_dir``; ``resume``, false by default)
and ``start_mode`` (``reset``, the default, or ``fly_to_start``).

The simulator runs in lockstep and is the ``/clock`` source; the controller runs on
simulation time, so it answers every odometry at once (its odometry trigger), and the
tuner resets simulator and controller between episodes: the run reproduces
``hybrid-mpc reproduce`` of the same scenario and seed. When the tuner has done its
iterations it leaves the controller flying the final theta and exits, and the launch
shuts down: in lockstep nothing flies without the tuner's clock ticks anyway.
``namespace`` puts all three nodes in one namespace (the tuner finds the controller and
the simulator's reset service by relative names; ``/clock`` stays global).
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


def _nodes(context):
    """Build the three nodes, with only the tuning arguments that were given."""
    names = ('scenario', 'tuner_params', 'namespace', 'start_mode') + tuple(
        name for name, *_ in graph.TUNER_ARGUMENTS)
    value = {name: LaunchConfiguration(name).perform(context) for name in names}
    overrides = dict(graph.tuner_overrides(value), start_mode=value['start_mode'])
    # the graph hybrid-mpc tune and the tests run: names and parameters from one place;
    # the dicts come last, launch_ros writes each as that node's own section, which
    # overrides the scenario's section for the node
    parameters = graph.node_parameters(value['scenario'], overrides, value['tuner_params'])
    nodes = {role: Node(package=PACKAGE, executable=node.executable, name=node.name,
                        namespace=value['namespace'], output='screen', emulate_tty=True,
                        parameters=parameters[role])
             for role, node in graph.NODES.items()}
    done = RegisterEventHandler(OnProcessExit(
        target_action=nodes['tuner'],
        on_exit=[EmitEvent(event=Shutdown(reason='the tuner has finished'))]))
    return [nodes[role] for role in graph.START_ORDER] + [done]


def generate_launch_description():
    """Build the launch description: arguments, then the nodes (see the module docstring)."""
    share = FindPackageShare(PACKAGE)
    arguments = [
        DeclareLaunchArgument(name, default_value=PathJoinSubstitution([share, 'config', *path]),
                              description=description)
        for name, path, description in graph.FILE_ARGUMENTS
    ] + [
        DeclareLaunchArgument('start_mode', default_value='reset',
                              choices=['reset', 'fly_to_start'],
                              description='reset (exact episodes) or fly_to_start'),
        DeclareLaunchArgument('namespace', default_value='',
                              description='namespace of the three nodes'),
    ] + [DeclareLaunchArgument(name, default_value=default, description=description)
         for name, default, description, _ in graph.TUNER_ARGUMENTS]
    return LaunchDescription(arguments + [OpaqueFunction(function=_nodes)])
