"""paper robustness: the job order, the summary's figures on results with known answers."""

import pytest

from hybrid_mpc_ros.paper import robustness as bench


def test_jobs_go_scenario_by_scenario_with_the_baselines_and_the_eta_comparison_last():
    paths = bench.family_paths(['issue_vehicle', 'low_drag'])
    jobs = bench.jobs_for(paths, 2)
    assert [job.key for job in jobs[:6]] == [
        'issue_vehicle/optimum_s0', 'issue_vehicle/hybrid_s0', 'issue_vehicle/hybrid_s1',
        'low_drag/optimum_s0', 'low_drag/hybrid_s0', 'low_drag/hybrid_s1']
    assert [job.method for job in jobs[6:]] == ['zeroth_order'] * 4 + ['model_based'] * 2
    more = bench.jobs_for(paths, 2, compare_eta=True)
    assert more[:len(jobs)] == jobs
    assert [job.key for job in more[len(jobs):]] == [
        'issue_vehicle/hybrid_agreement_s0', 'low_drag/hybrid_agreement_s0',
        'issue_vehicle/hybrid_agreement_s1', 'low_drag/hybrid_agreement_s1']


def test_an_optimum_run_s_signature_covers_its_line_search():
    path = bench.family_paths(['low_drag'])[0]
    settings = bench.Settings(100, None, 200)
    optimum = bench.Job(path, 'low_drag', 'optimum', 0)
    hybrid = bench.Job(path, 'low_drag', 'hybrid', 0)
    before = bench._signature(optimum, settings), bench._signature(hybrid, settings)
    try:
        bench.LINE_SEARCH = 10
        after = bench._signature(optimum, settings), bench._signature(hybrid, settings)
    finally:
        bench.LINE_SEARCH = 20
    assert after[0] != before[0] and after[1] == before[1]


def _run(scenario, method, seed, initial, final, peak, rollbacks=0):
    return {'scenario': scenario, 'method': method, 'seed': seed, 'initial_cost': initial,
            'final_cost': final, 'max_cost': peak, 'guard_rollbacks': rollbacks,
            'non_finite_commands': 0, 'out_of_bounds_commands': 0}


def test_the_summary_s_figures_on_known_runs():
    results = [_run('a', 'optimum', 0, 100.0, 60.0, 300.0),
               _run('b', 'optimum', 0, 50.0, 40.0, 55.0),
               _run('a', 'hybrid', 0, 100.0, 70.0, 110.0, 1),      # gain 30/40 = 0.75
               _run('a', 'hybrid', 1, 100.0, 110.0, 125.0, 2),     # worse: gain -0.25
               _run('b', 'hybrid', 0, 50.0, 41.0, 50.0)]           # gain 9/10 = 0.9
    summary = bench.summarise(results)
    hybrid = summary['hybrid']
    assert hybrid['runs'] == 3 and hybrid['improved_fraction'] == pytest.approx(2 / 3)
    assert hybrid['median_gain_vs_optimum'] == pytest.approx(0.75)
    assert hybrid['worst_excursion'] == pytest.approx(1.25)
    assert hybrid['guard_rollbacks'] == 3 and not hybrid['deterministic']
    assert summary['optimum']['median_gain_vs_optimum'] == 1.0
    assert summary['optimum']['worst_excursion'] == pytest.approx(3.0)
    assert list(summary) == ['hybrid', 'optimum']
