"""The tuning graph: one set of nodes and parameters for the CLI, the launch file and tests.

``launch/tuning_sim.launch.py`` is run here without upstream ``launch`` (not on PyPI):
stand-ins for the few ``launch``/``launch_ros`` classes it uses record what it builds, and
its nodes' names, executables and parameters must equal
:func:`hybrid_mpc_ros.tools.graph.node_parameters`'s. No ROS graph starts here.
"""

import importlib.util
import os
import sys
import types

import pytest

from hybrid_mpc_ros.core import paths
from hybrid_mpc_ros.tools import graph

HERE = os.path.dirname(os.path.abspath(__file__))
LAUNCH_FILE = os.path.join(HERE, '..', '..', 'launch', 'tuning_sim.launch.py')


class _Recorded:
    """A stand-in for a launch class: keeps its arguments."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


class _LaunchConfiguration(_Recorded):
    def perform(self, context):
        return context[self.args[0]]


def _fake_launch_modules():
    classes = {
        'launch': ('LaunchDescription',),
        'launch.actions': ('DeclareLaunchArgument', 'EmitEvent', 'OpaqueFunction',
                           'RegisterEventHandler'),
        'launch.event_handlers': ('OnProcessExit',),
        'launch.events': ('Shutdown',),
        'launch.substitutions': ('LaunchConfiguration', 'PathJoinSubstitution'),
        'launch_ros': (),
        'launch_ros.actions': ('Node',),
        'launch_ros.substitutions': ('FindPackageShare',),
    }
    modules = {}
    for name, names in classes.items():
        module = types.ModuleType(name)
        for class_name in names:
            setattr(module, class_name, type(class_name, (_Recorded,), {}))
        modules[name] = module
    modules['launch.substitutions'].LaunchConfiguration = _LaunchConfiguration
    return modules


@pytest.fixture
def launch_file(monkeypatch):
    """The launch file's module, loaded with the stand-ins in place of launch/launch_ros."""
    for name, module in _fake_launch_modules().items():
        monkeypatch.setitem(sys.modules, name, module)
    spec = importlib.util.spec_from_file_location('tuning_sim_launch', LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _launched_nodes(module, arguments):
    """Run the launch description's OpaqueFunction with these argument values."""
    description = module.generate_launch_description()
    declared = {action.args[0]: action.kwargs.get('default_value')
                for action in description.args[0]
                if type(action).__name__ == 'DeclareLaunchArgument'}
    values = {name: default if isinstance(default, str) else '' for name, default in
              declared.items()}
    values.update(arguments)
    opaque = [action for action in description.args[0]
              if type(action).__name__ == 'OpaqueFunction']
    assert len(opaque) == 1
    actions = opaque[0].kwargs['function'](values)
    return [action for action in actions if type(action).__name__ == 'Node']


@pytest.mark.parametrize('arguments, overrides', [
    ({}, {'output_dir': 'results/tuning', 'start_mode': 'reset', 'resume': False}),
    ({'iterations': '60', 'episode_steps': '20', 'method': 'model_based', 'gamma': '0.25',
      'seed': '3', 'output_dir': '/tmp/x', 'start_mode': 'fly_to_start', 'resume': 'false'},
     {'iterations': 60, 'episode_steps': 20, 'method': 'model_based', 'gamma': 0.25,
      'seed': 3, 'output_dir': '/tmp/x', 'start_mode': 'fly_to_start', 'resume': False}),
])
def test_the_launch_file_starts_the_graph_modules_nodes(launch_file, arguments, overrides):
    files = {'scenario': '/share/scenario.yaml', 'tuner_params': '/share/tuner.yaml',
             'namespace': 'quad1'}
    nodes = _launched_nodes(launch_file, dict(files, **arguments))
    expected = graph.node_parameters(files['scenario'], overrides, files['tuner_params'])
    assert [node.kwargs['name'] for node in nodes] == \
        [graph.NODES[role].name for role in graph.START_ORDER]
    for role, node in zip(graph.START_ORDER, nodes):
        assert node.kwargs['executable'] == graph.NODES[role].executable
        assert node.kwargs['package'] == 'hybrid_mpc_ros'
        assert node.kwargs['namespace'] == 'quad1'
        assert node.kwargs['parameters'] == expected[role], role
        # the values keep their types (rcl types a parameter by its Python type)
        for got, want in zip(node.kwargs['parameters'], expected[role]):
            if isinstance(want, dict):
                assert {k: type(v) for k, v in got.items()} == \
                    {k: type(v) for k, v in want.items()}


def test_a_tuning_argument_of_the_wrong_type_is_named():
    with pytest.raises(ValueError, match='iterations:=three is not a valid int'):
        graph.tuner_overrides({'iterations': 'three'})
    with pytest.raises(ValueError, match='resume:=maybe is not a valid bool'):
        graph.tuner_overrides({'resume': 'maybe'})
    assert graph.tuner_overrides({'iterations': ' 4 ', 'gamma': '', 'resume': 'True'}) == {
        'iterations': 4, 'resume': True}


def test_the_node_modules_and_console_scripts_exist():
    with open(os.path.join(HERE, '..', '..', 'setup.py')) as stream:
        setup = stream.read()
    for node in graph.NODES.values():
        assert importlib.util.find_spec(f'hybrid_mpc_ros.{node.module}') is not None
        assert f"'{node.executable} = hybrid_mpc_ros.{node.module}:main'" in setup


def test_every_node_reads_the_scenario_and_the_tuner_its_runtime_settings():
    params = graph.node_parameters('scenario.yaml', {'iterations': 2})
    assert params['simulator'] == ['scenario.yaml', {'clock_mode': 'lockstep'}]
    assert params['controller'] == ['scenario.yaml', {'use_sim_time': True}]
    assert params['tuner'] == ['scenario.yaml', paths.config_file('hybrid_tuner.yaml'),
                               {'iterations': 2}]


def test_a_start_writes_the_dicts_as_the_nodes_section_after_the_files(
        tmp_path, monkeypatch):
    started = []

    def start_node(module, **kwargs):
        started.append((module, kwargs))
        return object()
    monkeypatch.setattr(graph.processes, 'start_node', start_node)
    tuning = graph.TuningGraph('scenario.yaml', str(tmp_path), {'iterations': 2},
                               remaps={'tuner': {'a': 'b'}})
    tuning.start('controller')
    tuning.start('tuner')
    tuning.start('tuner', startup_timeout_s=3.0)
    assert [module for module, _ in started] == [
        'ros.mpc_controller_node', 'ros.tuner_node', 'ros.tuner_node']
    controller, tuner, again = (kwargs for _, kwargs in started)
    assert controller['params_file'] == ['scenario.yaml',
                                         str(tmp_path / 'controller_overrides.yaml')]
    assert controller['remaps'] is None
    assert (tmp_path / 'controller_overrides.yaml').read_text() == \
        'mpc_controller:\n  ros__parameters:\n    use_sim_time: true\n'
    assert tuner['params_file'][:2] == ['scenario.yaml', paths.config_file('hybrid_tuner.yaml')]
    assert tuner['remaps'] == {'a': 'b'} and tuner['log_path'] == str(tmp_path / 'tuner.log')
    assert again['log_path'] == str(tmp_path / 'tuner2.log')
    assert (tmp_path / 'tuner2_overrides.yaml').read_text() == (
        'hybrid_tuner:\n  ros__parameters:\n    iterations: 2\n    startup_timeout_s: 3.0\n')
    assert tuning.starts == {'controller': 1, 'tuner': 2}
