"""The ``hybrid-mpc`` console script, run as a user would run it (real ROS 2 node processes).

The demo's expectation comes from the ROS-free core: in lockstep the closed loop through
the two node processes must reproduce, step for step, the LQR flying the model offline.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from hybrid_mpc_ros.tools.cli import build_parser, strip_ros_args
from hybrid_mpc_ros.core.model.lqr import LQRController
from hybrid_mpc_ros.tools.processes import ros_env
from hybrid_mpc_ros.core.model.quadcopter import Quadcopter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(os.path.dirname(sys.executable), 'hybrid-mpc')
TARGET = (-6.0, -3.5, 0.0)


def run_cli(*args, timeout=120):
    """Run the installed console script from outside the source tree."""
    assert os.access(SCRIPT, os.X_OK), f'{SCRIPT} missing: run make setup'
    # the demo picks its own ROS_DOMAIN_ID; this env only keeps discovery on loopback
    return subprocess.run([SCRIPT, *args], cwd='/', env=ros_env(), capture_output=True,
                          text=True, timeout=timeout, check=False)


def last_json(stdout):
    lines = [line for line in stdout.splitlines() if line.strip()]
    assert lines, 'no output'
    return json.loads(lines[-1])


def test_help_lists_subcommands():
    result = run_cli('--help')
    assert result.returncode == 0, result.stderr
    assert 'demo' in result.stdout and 'bench' in result.stdout
    result = run_cli('bench', '--help')
    assert result.returncode == 0 and 'sim' in result.stdout


def test_parser_and_ros_args_stripping():
    args = build_parser().parse_args(['demo', '--seconds', '3', '--target', '1', '2', '3'])
    assert args.seconds == 3.0 and args.target == [1.0, 2.0, 3.0] and not args.realtime
    args = build_parser().parse_args(['bench', 'sim', '--steps', '10'])
    assert args.target == 'sim' and args.steps == 10
    assert strip_ros_args(['demo', '--ros-args', '-r', '__node:=x', '--', '--realtime']) == [
        'demo', '--realtime']
    assert strip_ros_args(['demo', '--ros-args', '-p', 'a:=1']) == ['demo']
    with pytest.raises(SystemExit):
        build_parser().parse_args(['demo', '--seconds', '-1'])
    with pytest.raises(SystemExit):
        build_parser().parse_args([])


def test_demo_reproduces_the_offline_closed_loop():
    result = run_cli('demo', '--seconds', '3')
    assert result.returncode == 0, result.stdout + result.stderr
    summary = last_json(result.stdout)
    assert summary['clock_mode'] == 'lockstep'
    assert summary['sim_time_s'] == pytest.approx(3.0)
    assert summary['steps'] >= 29
    assert summary['steps_per_wall_s'] > 0
    # progress: one line per simulated second, 0 to 3
    assert sum(line.startswith('t=') for line in result.stdout.splitlines()) == 4
    quad = Quadcopter(dt=0.1, substeps=4)
    controller = LQRController(quad, target_position=TARGET)
    x = quad.hover_state()
    for _ in range(30):
        x = quad.step(x, controller.command(x))
    # (a tolerance, not exact: a lockstep re-publish racing the first command can repeat it)
    np.testing.assert_allclose(summary['final_position'], x[0:3], atol=0.02)
    expected_error = np.linalg.norm(x[0:3] - np.array(TARGET))
    assert summary['final_error_m'] == pytest.approx(expected_error, abs=0.02)
    assert summary['initial_error_m'] == pytest.approx(np.hypot(6.0, 3.5), abs=1e-6)


def test_bench_sim_reports_both_rates():
    result = run_cli('bench', 'sim', '--steps', '300')
    assert result.returncode == 0, result.stdout + result.stderr
    report = last_json(result.stdout)
    assert report['core_steps_per_s'] > 0
    assert report['ros_lockstep_steps_per_s'] > 0
    assert report['ros_lockstep_steps'] >= 300
