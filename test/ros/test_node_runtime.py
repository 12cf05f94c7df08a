"""``run_node``, the entry point of every node: how each kind of error ends, on real processes.

* A configuration error while building the node (a bad parameter file, a wrong type, a
  value out of range or refused by the node) ends the process with status 1 and one
  line ``<node>: invalid configuration: ...``, no traceback.
* A bug while building the node ends it with status 1 and its traceback.
* An exception escaping a callback while spinning is logged with its traceback as an
  internal error in a callback; the node keeps running, until too many come within the
  window (status 1).
"""

import os
import subprocess
import sys
import time

import pytest
from std_msgs.msg import String

from hybrid_mpc_ros.tools import processes

HERE = os.path.dirname(os.path.abspath(__file__))
RAISING_NODE = os.path.join(HERE, '..', 'nodes', 'raising_node.py')
START_TIMEOUT = 15.0


def _wait_exit(process, timeout=START_TIMEOUT):
    deadline = time.monotonic() + timeout
    while process.alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    return process.returncode


def _raising_node(*ros_args):
    return processes.NodeProcess([sys.executable, RAISING_NODE, '--ros-args', *ros_args],
                                 env=processes.ros_env())


@pytest.mark.parametrize('module, params, params_file, expected', [
    # the review defect: the LQR raised ValueError for a bad target, which escaped
    ('ros.lqr_controller_node', {'target_position': [1.0, 2.0]}, None,
     'lqr_controller: invalid configuration: parameter target_position: must be 3 doubles'),
    ('ros.lqr_controller_node', {'target_position': [0.0, 0.0, 1e9]}, None,
     'lqr_controller: invalid configuration: parameter target_position: each coordinate'),
    ('ros.simulator_node', {'period_s': 'fast'}, None,
     "quadcopter_simulator: invalid configuration: Trying to set parameter 'period_s' to "
     "'fast' of type 'STRING', expecting type 'DOUBLE'"),
    ('ros.simulator_node', {'substeps': 0}, None,
     'quadcopter_simulator: invalid configuration:'),
    ('ros.simulator_node', {'initial_state': [0.0] * 11}, None,
     'quadcopter_simulator: invalid configuration:'),
    ('ros.simulator_node', {'frame_prefix': '/quad1/'}, None,
     'quadcopter_simulator: invalid configuration:'),
    ('ros.simulator_node', {'plant': {'mass': -1.0}}, None,
     'quadcopter_simulator: invalid configuration: Invalid parameter value (-1.0) for '
     'parameter. Reason: Parameter plant.mass out of range Min: 0.0, Max: inf'),
    ('ros.simulator_node', {}, '/nonexistent/simulator.yaml',
     "quadcopter_simulator: invalid configuration: failed to initialize rcl: Couldn't "
     'parse params file'),
])
def test_configuration_errors_end_with_one_clear_line(module, params, params_file, expected):
    with processes.start_node(module, params=params, params_file=params_file) as node:
        assert _wait_exit(node) == 1, node.log_text()
    log = node.log_text()
    assert expected in log, log
    lines = [line for line in log.splitlines() if 'invalid configuration' in line]
    assert len(lines) == 1, log
    assert 'Traceback' not in log, log


def test_a_value_error_while_building_is_a_configuration_error():
    with _raising_node('-p', 'fail_on_start:=value') as node:
        assert _wait_exit(node) == 1, node.log_text()
    log = node.log_text()
    assert ('raising_node: invalid configuration: parameter fail_on_start: asked to fail'
            in log), log
    assert 'Traceback' not in log, log


def test_a_bug_while_building_ends_with_its_traceback():
    with _raising_node('-p', 'fail_on_start:=bug') as node:
        assert _wait_exit(node) == 1, node.log_text()
    log = node.log_text()
    assert 'raising_node: internal error while starting' in log, log
    assert 'Traceback' in log and 'ZeroDivisionError' in log, log
    assert 'invalid configuration' not in log, log


def test_an_error_in_a_callback_is_logged_and_the_node_keeps_running(ros_node):
    node = _raising_node()
    try:
        echoes = ros_node.collect(String, 'echo')
        trigger = ros_node.node.create_publisher(String, 'trigger', 10)
        assert ros_node.spin_until(
            lambda: trigger.get_subscription_count() > 0 or not node.alive(), START_TIMEOUT)

        def round_trip(text):
            count = len(echoes)
            trigger.publish(String(data=text))
            return ros_node.spin_until(lambda: len(echoes) > count, 5.0)

        assert round_trip('hello'), node.log_text()
        for attempt in range(3):   # the node allows 3 errors in its window
            trigger.publish(String(data='raise'))
            assert round_trip(f'still there {attempt}'), node.log_text()
        log = node.log_text()
        assert log.count('internal error in a callback') == 3, log
        assert 'Traceback' in log and 'RuntimeError: asked to raise from a callback' in log
        assert 'invalid configuration' not in log and node.alive()
        # one more within the window is too many: the node stops and says why
        trigger.publish(String(data='raise'))
        assert _wait_exit(node, 5.0) == 1, node.log_text()
        assert ('raising_node: internal error in a callback: more than 3 within 60 s, '
                'stopping') in node.log_text()
    finally:
        node.stop()


def test_sigint_stops_cleanly_with_status_0(ros_node):
    with _raising_node() as node:
        echo = ros_node.node.create_publisher(String, 'trigger', 10)
        assert ros_node.spin_until(lambda: echo.get_subscription_count() > 0, START_TIMEOUT)
    assert node.returncode == 0, node.log_text()
    assert 'Traceback' not in node.log_text()


def test_nodes_import_nothing_from_tools():
    """The ROS layer stands on the core alone; tools/ (CLI, harness) sit on top of it."""
    code = ('import importlib, pkgutil, sys\n'
            'import hybrid_mpc_ros.ros as ros\n'
            'for info in pkgutil.iter_modules(ros.__path__):\n'
            '    importlib.import_module(f"hybrid_mpc_ros.ros.{info.name}")\n'
            'print(sorted(name for name in sys.modules\n'
            '             if name.startswith("hybrid_mpc_ros.tools")))')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == '[]', result.stdout + result.stderr
