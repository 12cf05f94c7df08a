"""The ``hybrid-mpc`` console script, run as a user would run it (real ROS 2 node processes).

The demo's expectation comes from the ROS-free core: in lockstep the closed loop through
the two node processes must reproduce, step for step, the LQR flying the model offline.
"""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from scenario_setup import scenario

from hybrid_mpc_ros.core.model.lqr import LQRController
from hybrid_mpc_ros.core.scenario import default_scenario_path, load_scenario
from hybrid_mpc_ros.tools.cli import build_parser, strip_ros_args
from hybrid_mpc_ros.tools.processes import ros_env

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
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
    assert 'demo' in result.stdout and 'bench' in result.stdout and 'paper' in result.stdout
    result = run_cli('bench', '--help')
    assert result.returncode == 0 and 'sim' in result.stdout
    result = run_cli('paper', '--help')
    assert result.returncode == 0 and 'study' in result.stdout and 'robustness' in result.stdout


def test_parser_and_ros_args_stripping():
    args = build_parser().parse_args(['demo', '--seconds', '3', '--target', '1', '2', '3'])
    assert args.seconds == 3.0 and args.target == [1.0, 2.0, 3.0] and not args.realtime
    assert args.scenario is None      # the default scenario
    args = build_parser().parse_args(['reproduce', '--scenario', 'l4dc2026', '--runs', 'x'])
    assert args.scenario == 'l4dc2026' and args.iterations is None and args.runs == ['x']
    args = build_parser().parse_args(['bench', 'sim', '--steps', '10'])
    assert args.target == 'sim' and args.steps == 10
    args = build_parser().parse_args(['tune', '--iterations', '3', '--method', 'model_based'])
    assert args.iterations == 3 and args.method == 'model_based' and args.steps is None
    assert args.start_mode == 'reset' and not args.resume and args.out == 'results/tuning'
    args = build_parser().parse_args(['bench', 'ros'])
    assert args.target == 'ros' and args.iterations == 10 and args.steps == 200
    args = build_parser().parse_args(['bench', 'faults'])
    assert args.target == 'faults' and args.iterations == 4 and args.steps == 25
    args = build_parser().parse_args(['paper', 'ablation', 'delta', 'seeds'])
    assert args.target == 'ablation' and args.kinds == ['delta', 'seeds']
    assert args.out == 'results/ablation' and args.iterations is None
    args = build_parser().parse_args(['paper', 'robustness'])
    assert args.seeds == 3 and args.iterations == 100 and args.out is None
    # only the named command's module is imported; its options are the same
    assert vars(build_parser(['bench', 'ros']).parse_args(['bench', 'ros'])).keys() == \
        vars(build_parser().parse_args(['bench', 'ros'])).keys()
    assert strip_ros_args(['demo', '--ros-args', '-r', '__node:=x', '--', '--realtime']) == [
        'demo', '--realtime']
    assert strip_ros_args(['demo', '--ros-args', '-p', 'a:=1']) == ['demo']
    with pytest.raises(SystemExit):
        build_parser().parse_args(['demo', '--seconds', '-1'])
    with pytest.raises(SystemExit):
        build_parser().parse_args([])


@pytest.mark.parametrize('controller', ['mpc', 'lqr'])
def test_demo_reproduces_the_offline_closed_loop(controller):
    result = run_cli('demo', '--seconds', '3', '--controller', controller)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = last_json(result.stdout)
    assert summary['clock_mode'] == 'lockstep'
    # the loop runs on while this observer reads: on a loaded machine it may see the first
    # odometry at or after 3 s a step or two late; the summary is that odometry's
    assert summary['sim_time_s'] >= 3.0 - 1e-9
    assert summary['steps'] >= 29
    # The lockstep loop may outrun this observer: the simulator keeps its last 10 odometry
    # messages (a vehicle topic's depth), so a starved observer sees fewer; a rate needs
    # two advancing samples, and a progress line a sample in that second
    assert summary['steps_per_wall_s'] is None or summary['steps_per_wall_s'] > 0
    progress = [float(re.match(r't=\s*([-\d.]+) s', line).group(1))
                for line in result.stdout.splitlines() if line.startswith('t=')]
    assert progress[0] == 0.0 and progress[-1] >= 3.0 - 1e-9 and 2 <= len(progress) <= 4
    assert progress == sorted(progress)
    # the default scenario (the published one: forward Euler, which the simulator node reads
    # from the file) flown offline by the same controller
    default = load_scenario(default_scenario_path())
    plant = default.plant()
    x = default.x0.copy()
    flown = round(summary['sim_time_s'] / default.period_s)
    if controller == 'mpc':
        policy = default.policy()
        for _ in range(flown):
            x = plant.step(x, policy.solve(x).u)
        # the MPC node answers each odometry stamp once: the same flight, to the printed digit
        tolerance = 2e-6
    else:
        # the LQR the node builds: weights Qc, Rc, gain designed on the paper's plant
        # linearised with its own default (RK4) step
        lqr = LQRController(dt=default.period_s, target_position=default.x_ref[0:3])
        for _ in range(flown):
            x = plant.step(x, lqr.command(x))
        # the LQR node answers every message: a lockstep re-publish racing the first command
        # can repeat a step
        tolerance = 0.02
    target = default.x_ref[0:3]
    np.testing.assert_allclose(summary['final_position'], x[0:3], atol=tolerance)
    expected_error = np.linalg.norm(x[0:3] - target)
    assert summary['final_error_m'] == pytest.approx(expected_error, abs=tolerance)
    initial_error = np.linalg.norm(default.x0[0:3] - target)
    assert summary['initial_error_m'] == pytest.approx(initial_error, abs=1e-6)
    assert summary['target'] == target.tolist()


def test_a_bad_scenario_file_is_one_line_naming_file_and_key(tmp_path):
    bad = tmp_path / 'bad.yaml'
    text = open(scenario().path).read().replace('horizon: 12', 'horizn: 12')
    bad.write_text(text)
    commands = (('reproduce', '--iterations', '1'),
                ('identify', '--out', str(tmp_path / 'm.npz')),
                ('tune', '--out', str(tmp_path / 'tuning')))
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


def test_bench_controller_reports_latency_rate_jitter_and_the_storm():
    result = run_cli('bench', 'controller', '--steps', '300', '--warmup', '20', '--seconds',
                     '3', '--storm', timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    report = last_json(result.stdout)
    assert 0 < report['latency_ms_p50'] <= report['latency_ms_p99']
    assert report['latency_ms_p50'] <= report['step_ms_p50'] <= report['step_ms_p99']
    assert report['lockstep_steps_per_s'] > 0 and report['lockstep_steps'] >= 300
    assert 0 <= report['jitter_ms_p50'] <= report['jitter_ms_p99']
    assert report['in_process']['solve_ms_p50'] <= report['in_process']['step_ms_p50']
    assert report['failsafe_steps'] >= 0 and report['storm_failsafe_steps'] >= 0
    assert report['storm_steps'] > 0 and report['storm_actions']
    assert report['odom_age_ms_p99'] > 0 and report['storm_odom_age_ms_p99'] > 0
    assert report['storm_latency_ms_p99'] > 0


def test_paper_timings_reports_ours_beside_the_papers():
    result = run_cli('paper', 'timings', '--iterations', '2')
    assert result.returncode == 0, result.stdout + result.stderr
    report = last_json(result.stdout)
    # iteration 1 (eta_0 = 1): the base episode only; iteration 2: base and perturbed.
    # Solves in all three episodes, Jacobians in the base ones; only iteration 2 is timed
    # as an iteration
    steps = report['episode_steps']
    assert report['qp_solve_ms']['count'] == 3 * steps
    assert report['jacobian_ms']['count'] == 2 * steps
    assert report['iteration_s']['count'] == 1
    assert report['qp_solve_ms']['median'] > 0 and report['iteration_s']['median'] > 0
    # CPU-time twins of the same samples (a shared machine inflates the wall times)
    for key in ('qp_solve_ms', 'jacobian_ms', 'iteration_s'):
        assert report[key + '_cpu']['count'] == report[key]['count']
        assert report[key + '_cpu']['median'] > 0
    assert report['paper'] == {'qp_solve_ms': 3.0, 'jacobian_ms': 6.1, 'iteration_s': 1.6,
                               'machine': scenario('l4dc2026').paper.timing_machine}
    assert report['machine']['logical_cpus'] >= 1 and report['machine']['cpu_model']
    assert '| qp_solve_ms |' in result.stdout


def test_tune_runs_the_tuning_through_ros_and_resumes(tmp_path):
    out = tmp_path / 'tuning'
    result = run_cli('tune', '--scenario', 'arxiv_v1', '--iterations', '2', '--steps', '20',
                     '--out', str(out), timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert sum(line.startswith('iteration ') for line in lines) == 2, result.stdout
    summary = last_json(result.stdout)
    assert summary['command'] == 'tune' and summary['status'] == 'finished'
    assert summary['iterations'] == 2 and summary['episodes'] == 4
    assert summary['reruns'] == 0
    for suffix in ('csv', 'theta.csv', 'episodes.csv', 'checkpoint.json',
                   'learning_curve.png', 'summary.json'):
        assert (out / f'hybrid_g0.5.{suffix}').is_file(), suffix
    assert (out / 'logs' / 'tuner.log').is_file()
    # the same run again with --resume: the checkpoint says it is done, no episode flies
    result = run_cli('tune', '--scenario', 'arxiv_v1', '--iterations', '2', '--steps', '20',
                     '--out', str(out), '--resume', timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    again = last_json(result.stdout)
    assert again['iterations'] == 2 and again['episodes'] == 0
    assert again['final_cost'] == summary['final_cost']


def test_paper_robustness_quick_runs_every_method_and_resumes(tmp_path):
    """--quick: two family scenarios, every method; a rerun takes the stored results."""
    out = str(tmp_path / 'bench')
    result = run_cli('paper', 'robustness', '--quick', '--out', out, timeout=600)
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
    again = run_cli('paper', 'robustness', '--quick', '--out', out, timeout=600)
    assert again.returncode == 0, again.stderr
    assert last_json(again.stdout) == report
    assert again.stderr.count('(stored)') == 8 and '(0 run now, 8 stored)' in again.stdout


@pytest.mark.faults
def test_bench_faults_survives_every_fault_it_injects(tmp_path):
    done = subprocess.run([sys.executable, '-m', 'hybrid_mpc_ros.tools.cli', 'bench', 'faults',
                           '--out', str(tmp_path)], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-8000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    missed = [fault for fault, ok in result['faults'].items() if not ok]
    assert result['faults_injected'] == 20 and not missed, (
        f'not survived: {missed}; vehicle: {result["vehicle"]}; logs: '
        f'{done.stderr[-4000:]}')
    assert result['faults_survived'] == 20, result
    assert result['bad_commands_emitted'] == 0 and result['rejected_odometry'] == 5
    assert result['iterations_lost'] == 0 and result['iterations_duplicated'] == 0
    assert result['finished'], result
    # on wall time the controller's commands never stopped for a period or more
    assert all(gap < 0.1 for gap in result['vehicle']['command_gaps_s'].values()), result


def test_tune_prints_the_lines_of_iterations_whose_progress_messages_it_missed(tmp_path):
    """A short run may end before discovery matched the progress topic: lines from the CSV."""
    import io

    from hybrid_mpc_ros.core.learning.reporting import (CSV_FIELDS, iteration_line,
                                                        LIVE_FIELDS, read_history_csv,
                                                        write_history_csv)
    from hybrid_mpc_ros.tools import tune
    rows = [{'iteration': k, 'cost': 10.0 - k, 'tracking': 9.0, 'violation': 1.0,
             'grad_model_norm': 2.0, 'grad_zo_norm': None if k == 1 else 3.0,
             'step_norm': 0.1, 'alpha': 1e-4, 'eta': 0.5, 'solver_failures': 0,
             'wall_s': 0.2, 'rollback': False, 'rollback_reason': '', 'theta_revision': k,
             'retries': 0, 'rollbacks': 0, 'episodes': 2 * k} for k in (1, 2, 3, 4)]
    path = str(tmp_path / 'run.csv')
    write_history_csv(path, rows, CSV_FIELDS + LIVE_FIELDS)
    assert read_history_csv(path)[0]['grad_zo_norm'] is None
    out = io.StringIO()
    tune._print_missed(path, 1, 4, {3}, out)    # resumed after 1; iteration 3 was seen
    lines = out.getvalue().splitlines()
    assert 'of 2 iterations came before' in lines[0]
    assert lines[1:] == [iteration_line(read_history_csv(path)[k], 4) for k in (1, 3)]
    assert lines[1].startswith('iteration    2/4  cost       8.00')
