"""bench vehicles: the job order, the summary on known runs, the failure check, --quick."""

import json

import numpy as np
import pytest

from hybrid_mpc_ros.paper import robustness
from hybrid_mpc_ros.tools import bench_vehicles as bench


def test_jobs_go_hybrid_first_and_model_based_once():
    paths = robustness.family_paths(['hummingbird', 'crazyflie'], bench.FAMILY)
    keys = [job.key for job in bench.jobs_for(paths, 2)]
    assert keys == ['hummingbird/hybrid_s0', 'hummingbird/hybrid_s1', 'crazyflie/hybrid_s0',
                    'crazyflie/hybrid_s1', 'hummingbird/model_based_s0',
                    'crazyflie/model_based_s0', 'hummingbird/zeroth_order_s0',
                    'hummingbird/zeroth_order_s1', 'crazyflie/zeroth_order_s0',
                    'crazyflie/zeroth_order_s1']


class _Record:
    def __init__(self, u, status):
        self.u, self.status = np.array(u, dtype=float), np.array(status)


def test_a_failure_is_unhandled_only_where_its_command_is_bad():
    records = iter([_Record([[1.0] * 4, [2.0] * 4, [np.nan, 1, 1, 1]], [0, 4, 0]),
                    _Record([[5.0] * 4, [1.0] * 4], [1, 2])])
    watched = robustness._Watched(lambda theta, sens: next(records), lambda r: 1.0, 0.0, 4.0)
    watched(None, False)
    assert (watched.solver_failures, watched.unhandled_failures) == (1, 0)
    assert (watched.non_finite, watched.out_of_bounds) == (1, 0)
    watched(None, False)           # a failed step commanding 5 > u_max: unhandled
    assert (watched.solver_failures, watched.unhandled_failures) == (3, 1)
    assert watched.out_of_bounds == 4


def _run(method, seed, gain, excursion, start=1.0, tuned=0.5, failures=0, bad=0):
    return {'scenario': 'v', 'method': method, 'seed': seed, 'cost_gain': gain,
            'worst_excursion': excursion, 'position_error_start_m': start,
            'position_error_tuned_m': tuned, 'solver_failures': failures,
            'unhandled_solver_failures': 0, 'non_finite_commands': bad,
            'out_of_bounds_commands': 0, 'model': 'm', 'error': None}


def test_the_summary_takes_medians_worsts_and_totals_over_seeds():
    summary = bench.summarise([_run('hybrid', 0, 0.3, 1.1, tuned=0.2, failures=2),
                               _run('hybrid', 1, -0.1, 1.3, tuned=0.4, bad=1),
                               _run('hybrid', 2, 0.2, 1.0, tuned=0.9),
                               _run('model_based', 0, 0.5, 1.0)])
    hybrid = summary['v']['hybrid']
    assert hybrid['cost_gain'] == pytest.approx(0.2)
    assert hybrid['min_cost_gain'] == pytest.approx(-0.1)
    assert hybrid['worst_excursion'] == pytest.approx(1.3)
    assert hybrid['position_error_tuned_m'] == pytest.approx(0.4)
    assert (hybrid['solver_failures'], hybrid['bad_commands']) == (2, 1)
    assert summary['v']['model_based']['deterministic'] and list(summary['v']) == [
        'hybrid', 'model_based']


KEYS = {'position_error_start_m', 'position_error_tuned_m', 'cost_gain', 'worst_excursion',
        'solver_failures', 'bad_commands'}


@pytest.mark.slow
def test_quick_bench_flies_two_vehicles_with_every_method(tmp_path, capsys):
    assert bench.main(out=str(tmp_path), quick=True) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(summary) == set(bench.QUICK_SCENARIOS)
    for vehicle, methods in summary.items():
        assert set(methods) == set(bench.METHODS)
        for method, row in methods.items():
            assert KEYS <= set(row), (vehicle, method)
            assert np.isfinite(row['position_error_start_m'])
            assert np.isfinite(row['position_error_tuned_m'])
            assert row['bad_commands'] == 0 and row['unhandled_solver_failures'] == 0
            assert row['worst_excursion'] >= 1.0        # the start episode is among them
    # a rerun resumes: every run stored, the same figures
    assert bench.main(out=str(tmp_path), quick=True) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out.strip().splitlines()[-1]) == summary
    assert captured.err.count('(stored)') == 6
