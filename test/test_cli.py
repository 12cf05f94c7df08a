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
from scenario_setup import scenario

from hybrid_mpc_ros.tools.cli import build_parser, strip_ros_args
from hybrid_mpc_ros.tools.processes import ros_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(os.path.dirname(sys.executable), 'hybrid-mpc')


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
    assert args.scenario is None      # the default scenario
    args = build_parser().parse_args(['reproduce', '--scenario', 'l4dc2026', '--runs', 'x'])
    assert args.scenario == 'l4dc2026' and args.iterations is None and args.runs == ['x']
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
    # the default scenario flown offline by the same LQR (the node's weights are Qc, Rc)
    default = scenario()
    controller = default.lqr()
    x = default.x0.copy()
    for _ in range(30):
        x = controller.quad.step(x, controller.command(x))
    target = default.x_ref[0:3]
    # (a tolerance, not exact: a lockstep re-publish racing the first command can repeat it)
    np.testing.assert_allclose(summary['final_position'], x[0:3], atol=0.02)
    expected_error = np.linalg.norm(x[0:3] - target)
    assert summary['final_error_m'] == pytest.approx(expected_error, abs=0.02)
    initial_error = np.linalg.norm(default.x0[0:3] - target)
    assert summary['initial_error_m'] == pytest.approx(initial_error, abs=1e-6)
    assert summary['target'] == target.tolist()


def test_a_bad_scenario_file_is_one_line_naming_file_and_key(tmp_path):
    bad = tmp_path / 'bad.yaml'
    text = open(scenario().path).read().replace('horizon: 12', 'horizn: 12')
    bad.write_text(text)
    commands = (('reproduce', '--iterations', '1'),
                ('identify', '--out', str(tmp_path / 'm.npz')))
    for command in commands:
        result = run_cli(*command, '--scenario', str(bad))
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and str(bad) in lines[0]
        assert 'mpc_controller.horizn: unknown key' in lines[0]
    result = run_cli('reproduce', '--scenario', 'no_such_scenario')
    assert result.returncode == 2 and 'arxiv_v1.yaml' in result.stderr


def test_bench_sim_reports_both_rates():
    result = run_cli('bench', 'sim', '--steps', '300')
    assert result.returncode == 0, result.stdout + result.stderr
    report = last_json(result.stdout)
    assert report['core_steps_per_s'] > 0
    assert report['ros_lockstep_steps_per_s'] > 0
    assert report['ros_lockstep_steps'] >= 300


def test_bench_robustness_quick_runs_every_method_and_resumes(tmp_path):
    """--quick: two family scenarios, every method; a rerun takes the stored results."""
    out = str(tmp_path / 'bench')
    result = run_cli('bench', 'robustness', '--quick', '--out', out, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    report = last_json(result.stdout)
    assert list(report) == ['hybrid', 'zeroth_order', 'model_based', 'optimum']
    for method, row in report.items():
        assert set(row) >= {'improved_fraction', 'median_gain_vs_optimum', 'worst_excursion',
                            'guard_rollbacks', 'non_finite_commands',
                            'out_of_bounds_commands'}, method
        assert row['runs'] == 2 and 0.0 <= row['improved_fraction'] <= 1.0
        assert row['worst_excursion'] >= 1.0
        assert row['non_finite_commands'] == row['out_of_bounds_commands'] == 0
    assert report['optimum']['median_gain_vs_optimum'] == 1.0
    assert report['model_based']['deterministic'] and not report['hybrid']['deterministic']
    assert '| hybrid |' in result.stdout and '[  8/8]' in result.stderr
    again = run_cli('bench', 'robustness', '--quick', '--out', out, timeout=600)
    assert again.returncode == 0, again.stderr
    assert last_json(again.stdout) == report
    assert again.stderr.count('(stored)') == 8 and '(0 run now, 8 stored)' in again.stdout
