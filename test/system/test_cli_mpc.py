"""The MPC-side subcommands of ``hybrid-mpc`` run end to end (benchmarks measure, not assert)."""

import json
import subprocess
import sys

import numpy as np

from hybrid_mpc_ros.core.model.nominal_model import AffineModel


def _run(*args, timeout=300):
    result = subprocess.run([sys.executable, '-m', 'hybrid_mpc_ros.tools.cli', *args],
                            capture_output=True, text=True, timeout=timeout, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1]), result


def test_bench_mpc_reports_every_key():
    summary, _ = _run('bench', 'mpc', '--steps', '300', '--fd-steps', '2')
    for key in ('solve_ms_p50', 'solve_ms_p99', 'step_ms_p50', 'step_ms_p99',
                'fd_step_ms_p50', 'reference_solve_ms_p50', 'sens_max_rel_err',
                'rss_growth_mb'):
        assert key in summary, key
    assert summary['solve_ms_p50'] > 0 and summary['step_ms_p50'] >= summary['solve_ms_p50']
    assert summary['solver_failures'] == 0


def test_bench_mpc_runs_the_nonlinear_kind():
    summary, _ = _run('bench', 'mpc', '--kind', 'nonlinear', '--steps', '200',
                      '--fd-steps', '1')
    assert summary['kind'] == 'nonlinear' and summary['step_ms_p50'] > 0


def test_identify_writes_a_loadable_model(tmp_path):
    out = tmp_path / 'model.npz'
    summary, result = _run('identify', '--out', str(out), '--trajectories', '10')
    model = AffineModel.load(out)
    assert model.header['settings']['trajectories'] == 10
    assert summary['one_step_rmse_position'] == model.header['held_out_errors'][
        'one_step_rmse_position']
    assert np.all(np.isfinite(model.A))
    assert 'collecting' in result.stderr
