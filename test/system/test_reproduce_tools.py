"""The reproduction tools: the paper's claims as tests, the optimum hook, study, ablations.

Everything runs for a few iterations on short episodes; the numbers of the full runs are
in docs/ and paper/. The claims are checked on made-up learning curves where the
answer is known.
"""

import json
import math
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
from scenario_setup import scenario, scenario_path
import yaml

from hybrid_mpc_ros.core.scenario import load_scenario
from hybrid_mpc_ros.paper import ablation, study
from hybrid_mpc_ros.tools import claims, optimum_hook, reproduce


def _curve(start, end, rate, n=101, bump=None):
    """A learning curve decaying from start to end at ``rate``; ``bump`` (k, height)."""
    k = np.arange(n)
    costs = end + (start - end) * np.exp(-rate * k)
    if bump is not None:
        costs[bump[0]:] += bump[1]
    return costs.tolist()


def _paper_like():
    return {'zeroth_order': _curve(2000, 1150, 0.02),
            'model_based': _curve(2000, 1100, 0.3, bump=(40, 80)),
            'hybrid_g0.25': _curve(2000, 1085, 0.25, bump=(30, 6)),
            'hybrid_g0.5': _curve(2000, 1085, 0.15, bump=(30, 3)),
            'hybrid_g0.75': _curve(2000, 1085, 0.1),
            'exact_model': _curve(2000, 1081, 0.2)}


def test_claims_hold_on_curves_shaped_like_the_papers_figure():
    judged = claims.judge(_paper_like())
    assert {name: verdict['holds'] for name, verdict in judged.items()} == {
        'hybrid_fastest': True, 'model_based_fast_then_unstable': True,
        'zeroth_order_steady_but_slower': True, 'smaller_gamma_faster_less_stable': True,
        'hybrid_within_1pct_of_exact': True}
    assert 'hybrid_g0.25' in judged['hybrid_fastest']['why']


def test_claims_fail_when_the_curves_say_otherwise():
    curves = _paper_like()
    curves['model_based'] = _curve(2000, 1050, 0.5)          # fast and stable
    curves['zeroth_order'] = _curve(2000, 2500, 0.05)        # gets worse
    curves['exact_model'] = _curve(2000, 1000, 0.3)          # hybrid 8.5 % above
    judged = claims.judge(curves)
    assert not judged['hybrid_fastest']['holds']
    assert not judged['model_based_fast_then_unstable']['holds']
    assert not judged['zeroth_order_steady_but_slower']['holds']
    assert not judged['hybrid_within_1pct_of_exact']['holds']
    # an optimum reference tightens the last claim
    assert not claims.judge(_paper_like(), optimum_cost=1000.0)[
        'hybrid_within_1pct_of_exact']['holds']


def test_curve_measures():
    assert claims.iters_to_fraction([10.0, 5.0, 1.0, 0.0]) == 3
    assert claims.iters_to_fraction([1.0, 2.0]) is None
    assert claims.iters_to_level([5.0, 4.0, 3.0], 3.5) == 3
    assert claims.iters_to_level([5.0], 1.0) == math.inf
    assert claims.instability([10.0, 8.0, 9.0, 7.0, 7.5]) == pytest.approx(12.5)  # 1 on 8


def test_reproduce_runs_the_optimum_reference_on_the_runs_episode_length(tmp_path):
    """The real reference (L-BFGS-B on the exact gradient), capped at 2 iterations, T = 12."""
    out = str(tmp_path / 'with_optimum')
    code = reproduce.main(scenario_path('l4dc2026'), out, iterations=2, steps=12,
                          runs=['hybrid_g0.5', 'exact_model'])
    assert code == 0
    summary = json.load(open(os.path.join(out, 'summary.json')))
    stored = json.load(open(os.path.join(out, 'optimum.json')))
    assert summary['optimum_cost'] == stored['cost'] < summary['initial_cost']
    assert stored['initial_cost'] == pytest.approx(summary['initial_cost'], rel=1e-9)
    assert summary['optimum_iterations'] == 2 and stored['episode_steps'] == 12
    assert summary['optimum_status'] == 'iteration cap 2'
    best = summary['final_cost']['hybrid_g0.5']
    assert summary['hybrid_gap_vs_optimum_pct'] == pytest.approx(
        100 * (best / summary['optimum_cost'] - 1))
    assert summary['hybrid_gap_vs_same_steps_pct'] == pytest.approx(
        100 * (best / summary['final_cost']['exact_model'] - 1))
    table = open(os.path.join(out, 'results.md')).read()
    assert 'optimum reference' in table and 'same steps' in table
    saved = np.load(os.path.join(out, 'optimum.final.npz'))
    assert saved['x'].shape == (13, 12) and saved['u'].shape == (12, 4)
    # the stored trajectory is the closed loop at the stored theta, with the stored cost
    published = load_scenario(scenario_path('l4dc2026'))
    assert published.cost().parts(saved['x'], saved['u'])[0] + stored['violation'] == \
        pytest.approx(stored['cost'], rel=1e-9)
    np.testing.assert_array_equal(saved['theta'], stored['theta'])


def test_the_optimum_reference_makes_its_folder(tmp_path):
    # in a sweep it may be the first job to write there (paper study's default combination
    # failed so beside a CPU hog when the reference finished before any run had started)
    out = tmp_path / 'not' / 'there'
    summary = optimum_hook.run_optimum(scenario_path('l4dc2026'), str(out), steps=12,
                                       iterations=1)
    assert summary['iterations'] == 1
    assert (out / 'optimum.json').exists() and (out / 'optimum.final.npz').exists()


def test_the_optimum_reference_resumes_only_the_same_experiment(tmp_path, capsys):
    path = scenario_path('l4dc2026')
    out = str(tmp_path)
    first = optimum_hook.run_optimum(path, out, steps=8, iterations=1)
    assert first['iterations'] == 1 and first['episode_steps'] == 8
    assert 'iteration' in capsys.readouterr().err
    again = optimum_hook.run_optimum(path, out, steps=8, iterations=1)
    assert again == first                                  # read back, not run again
    assert 'iteration' not in capsys.readouterr().err
    longer = optimum_hook.run_optimum(path, out, steps=9, iterations=1)
    assert longer['episode_steps'] == 9 and longer['signature'] != first['signature']
    assert 'another experiment' in capsys.readouterr().err


def _fake_results(curves):
    return {name: {'costs': costs, 'best_cost': min(costs), 'final_cost': costs[-1],
                   'initial_cost': costs[0], 'final_violation': 0.0, 'episode_steps': 200,
                   'wall_s': 1.0, 'solver_failures': 0} for name, costs in curves.items()}


def test_an_optimum_reference_above_a_run_is_flagged_and_not_judged_against():
    published = scenario('l4dc2026')
    results = _fake_results(_paper_like())
    below = {'cost': 1080.0, 'iterations': 30, 'evaluations': 60, 'reason': 'converged'}
    summary = reproduce.summarise(results, published, 'out', below)
    assert summary['optimum_below_every_run'] is True
    assert 'vs optimum 1080.0' in summary['claims']['hybrid_within_1pct_of_exact']['why']
    stalled = dict(below, cost=1500.0, reason='no progress after a restart')
    summary = reproduce.summarise(results, published, 'out', stalled)
    assert summary['optimum_below_every_run'] is False
    assert summary['hybrid_gap_vs_optimum_pct'] < 0            # reported, labelled
    assert 'vs optimum' not in summary['claims']['hybrid_within_1pct_of_exact']['why']
    stalled.update(initial_cost=2000.0, violation=0.0, wall_s=1.0)
    text = reproduce.table(results, summary, published, stalled)
    assert 'it is no optimum here' in text and 'no progress after a restart' in text


def test_study_combinations_change_one_factor_each(tmp_path):
    base = scenario_path('l4dc2026')
    assert study.write_variant(base, 'default', str(tmp_path)) == base
    published = scenario('l4dc2026')
    changed = {}
    for combination in study.COMBINATIONS:
        if combination == 'default':
            continue
        path = study.write_variant(base, combination, str(tmp_path / combination))
        variant = load_scenario(path, load_model=False)
        differs = []
        if variant.integrator != published.integrator:
            differs.append('integrator')
        if variant.identification.affine != published.identification.affine:
            differs.append('model')
        if not np.array_equal(variant.x0, published.x0):
            differs.append('x0')
        if variant.tuning.box_scale != published.tuning.box_scale:
            differs.append('box')
        changed[combination] = differs
        # everything else is the base file's
        assert variant.x_ref.tolist() == published.x_ref.tolist()
        assert variant.tuning.delta == published.tuning.delta
        assert variant.paper == published.paper
    assert changed == {'rk4': ['integrator'], 'affine': ['model'], 'x0_above': ['x0'],
                       'x0_half_way': ['x0'], 'box_wide': ['box']}
    with open(tmp_path / 'rk4' / 'l4dc2026_rk4.yaml') as stream:
        text = stream.read()
    assert text.startswith('# Generated by `hybrid-mpc paper study`')
    assert yaml.safe_load(text)['quadcopter_simulator']['ros__parameters']['substeps'] == 4


@pytest.mark.parametrize('combination', ['rk4', 'affine'])
def test_shipped_study_models_are_what_identify_produces(tmp_path, combination):
    path = study.write_variant(scenario_path('l4dc2026'), combination, str(tmp_path))
    variant = load_scenario(path)
    shipped = variant.nominal_model()
    assert os.path.basename(variant.nominal_model_path) == \
        f'nominal_model_l4dc2026_{combination}.npz'
    assert shipped.header['scenario'] == f'l4dc2026_{combination}'
    assert shipped.header['integrator'] == variant.integrator
    assert bool(np.any(shipped.c)) == (combination == 'affine')
    fresh = variant.identify()
    for name in ('A', 'B', 'c'):
        np.testing.assert_allclose(getattr(fresh, name), getattr(shipped, name), rtol=0,
                                   atol=1e-12)


def _small_scenario(tmp_path, methods, gammas, **ablation_values):
    """The published scenario with fewer runs (and ablation points), in ``tmp_path``."""
    with open(scenario_path('l4dc2026')) as stream:
        data = yaml.safe_load(stream)
    data['reproduction']['ros__parameters'].update(methods=methods, gammas=gammas)
    data['ablation']['ros__parameters'].update(ablation_values)
    paper = data['paper']['ros__parameters']
    for key, given in (('ablation_delta_costs', 'deltas'), ('ablation_seed_costs', 'seeds')):
        paper[key] = paper[key][:len(data['ablation']['ros__parameters'][given])]
    path = tmp_path / 'small.yaml'
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def _cli(*args):
    return subprocess.run([sys.executable, '-m', 'hybrid_mpc_ros.tools.cli', *args],
                          capture_output=True, text=True, timeout=600, check=False)


def test_ablation_command_runs_both_tables_once_each_and_resumes(tmp_path):
    path = _small_scenario(tmp_path, ['hybrid'], [0.5], deltas=[1.0e-4, 1.0e-5],
                           seeds=[0, 1])
    out = tmp_path / 'ablation'
    args = ('paper', 'ablation', 'delta', 'seeds', '--scenario', path, '--out', str(out),
            '--iterations', '2', '--steps', '10')
    result = _cli(*args)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    delta, seeds = report['ablations']['delta'], report['ablations']['seeds']
    assert [row['value'] for row in delta['rows']] == [1e-4, 1e-5]
    assert [row['value'] for row in seeds['rows']] == [0, 1]
    # delta 1e-5 with seed 0 is one run shared by both tables
    assert delta['rows'][1]['run'] == seeds['rows'][0]['run'] == 'delta1e-05_seed0'
    assert delta['rows'][1]['best_of_last'] == seeds['rows'][0]['best_of_last']
    assert result.stderr.count('done: final cost') == 3
    assert delta['paper_spread_pct'] == pytest.approx(ablation.spread_pct([1092.9, 1093.1]))
    assert delta['alpha_scale'] == 1e-4 and delta['iterations'] == 2
    checkpoint = json.load(open(out / 'delta0.0001_seed0.checkpoint.json'))
    assert checkpoint['config']['alpha']['scale'] == 1e-4
    assert checkpoint['config']['delta'] == 1e-4
    assert (out / 'ablation_delta.md').read_text().startswith('| delta |')
    # a rerun resumes: no iteration is run again
    again = _cli(*args)
    assert again.returncode == 0 and 'iteration    1/2' not in again.stderr


def test_a_sweep_on_a_dask_cluster_computes_what_the_process_pool_does(tmp_path):
    path = _small_scenario(tmp_path, ['hybrid'], [0.5], deltas=[1.0e-4, 1.0e-5],
                           seeds=[0, 1])
    reports = {}
    for engine in ('process', 'dask'):
        out = tmp_path / engine
        result = _cli('paper', 'ablation', 'delta', '--scenario', path, '--out', str(out),
                      '--iterations', '2', '--steps', '10', '--workers', '2',
                      '--engine', engine)
        assert result.returncode == 0, result.stderr[-2000:]
        reports[engine] = json.loads(result.stdout.strip().splitlines()[-1])
        assert result.stderr.count('done: final cost') == 2
    # (all but the wall time each run took)
    rows = {engine: [{key: value for key, value in row.items() if key != 'wall_s'}
                     for row in report['ablations']['delta']['rows']]
            for engine, report in reports.items()}
    # the same runs, the same numbers to the last bit
    assert [row['run'] for row in rows['dask']] == ['delta0.0001_seed0', 'delta1e-05_seed0']
    assert rows['dask'] == rows['process']
    assert all(math.isfinite(row['best_of_last']) for row in rows['dask'])
    # a scheduler address without the dask engine is refused before anything runs
    refused = _cli('paper', 'ablation', 'delta', '--scenario', path, '--out',
                   str(tmp_path / 'x'), '--scheduler', 'tcp://127.0.0.1:8786')
    assert refused.returncode != 0
    assert 'a scheduler address needs the dask engine' in refused.stderr
    assert not (tmp_path / 'x').exists()


def test_a_sweep_goes_to_an_existing_dask_cluster(tmp_path):
    # a scheduler and a worker process started apart, as on a lab's machines
    from dask.distributed import Client
    path = _small_scenario(tmp_path, ['hybrid'], [0.5], deltas=[1.0e-4], seeds=[0])
    with socket.socket() as probe:          # a free port for the scheduler
        probe.bind(('127.0.0.1', 0))
        port = probe.getsockname()[1]
    address = f'tcp://127.0.0.1:{port}'
    bin_dir = os.path.dirname(sys.executable)
    started = [subprocess.Popen([os.path.join(bin_dir, 'dask'), 'scheduler', '--host',
                                 '127.0.0.1', '--port', str(port), '--no-dashboard'],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        started.append(subprocess.Popen([os.path.join(bin_dir, 'dask'), 'worker', address,
                                         '--nthreads', '1', '--no-dashboard'],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        with Client(address, timeout=60) as client:
            client.wait_for_workers(1, timeout=60)
        result = _cli('paper', 'ablation', 'delta', '--scenario', path, '--out',
                      str(tmp_path / 'out'), '--iterations', '2', '--steps', '10',
                      '--engine', 'dask', '--scheduler', address)
        assert result.returncode == 0, result.stderr[-2000:]
        rows = json.loads(result.stdout.strip().splitlines()[-1])['ablations']['delta']['rows']
        assert [row['run'] for row in rows] == ['delta0.0001_seed0']
        assert math.isfinite(rows[0]['best_of_last'])
    finally:
        for process in started:
            process.terminate()
            process.wait(timeout=30)


def test_ablation_helpers():
    assert ablation.best_of_last([9.0, 3.0, 5.0, 4.0, 1.0], 2) == 4.0   # final left out
    assert ablation.spread_pct([99.0, 101.0]) == pytest.approx(2.0)
    # a spread far below 0.1 % is printed with its digits, not as 0.00 %
    published = scenario('l4dc2026')
    rows = [{'value': 1e-5, 'best_of_last': 1286.0512, 'paper': 1098.1},
            {'value': 1e-6, 'best_of_last': 1286.0505, 'paper': 1097.1}]
    text = ablation.table('delta', rows, published, 1000)
    assert '| 1e-05 | 1286.05 | 1098.1 | +188.0 |' in text
    assert 'ours 5.4e-05 %, paper 0.091 %' in text, text
    assert ablation.points(published, 'delta')[2] == (1e-5, 0)
    assert ablation.points(published, 'seeds')[9] == (1e-5, 9)


def test_study_command_writes_its_tables(tmp_path):
    path = _small_scenario(tmp_path, ['zeroth_order', 'model_based', 'hybrid', 'exact_model'],
                           [0.25, 0.75], run='hybrid_g0.25')
    out = tmp_path / 'study'
    result = _cli('paper', 'study', '--scenario', path, '--combinations', 'default',
                  'box_wide', '--out', str(out), '--iterations', '3', '--steps', '10')
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert list(report['combinations']) == ['default', 'box_wide']
    default = report['combinations']['default']
    assert set(default['final_cost']) == {'zeroth_order', 'model_based', 'hybrid_g0.25',
                                          'hybrid_g0.75', 'exact_model'}
    assert set(default['claims']) == set(study.CLAIMS)
    assert report['combinations']['box_wide']['scenario'].endswith('small_box_wide.yaml')
    assert (out / 'study.md').read_text().startswith('| combination | initial cost |')
    for combination in ('default', 'box_wide'):
        for name in ('learning_curves.png', 'trajectories.png', 'results.md',
                     'summary.json'):
            assert (out / combination / name).is_file(), (combination, name)
    # the study's runs take the scenario's seeds: no --seed (nor --runs)
    result = _cli('paper', 'study', '--seed', '3')
    assert result.returncode == 2 and 'unrecognized arguments: --seed 3' in result.stderr
