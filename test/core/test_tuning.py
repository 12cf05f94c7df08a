"""The tuning loop: reproducibility, resume from checkpoint, projection, reproduce command."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from scenario_setup import ROOT, scenario, scenario_path, tuning_setup

from hybrid_mpc_ros.core.learning import run, tuning
from hybrid_mpc_ros.tools import reproduce

STEPS = 25


@pytest.fixture(scope='module')
def setup():
    model, policy, plant, cost = tuning_setup()
    episodes = tuning.simulated_episodes(plant, policy, scenario().x0, STEPS)
    return model, policy, episodes, cost


def short_config(method, iterations, **overrides):
    """The default scenario's tuning configuration with a method and few iterations."""
    return scenario().tuning_config(method, iterations=iterations, episode_steps=STEPS,
                                    **overrides)


def _tuner(setup, config, checkpoint=None, state=None, theta0=None):
    model, policy, episodes, cost = setup
    theta0 = policy.theta.copy() if theta0 is None else theta0
    return tuning.Tuner(config, episodes, model.jacobians, cost, theta0, checkpoint,
                        state=state)


def test_resume_from_checkpoint_gives_identical_results(setup, tmp_path):
    _, policy, _, _ = setup
    theta0 = policy.theta.copy()
    four = short_config('hybrid', 4, seed=3)
    straight = _tuner(setup, four, theta0=theta0).run()
    path = str(tmp_path / 'run.checkpoint.json')
    first = _tuner(setup, short_config('hybrid', 2, seed=3), path,
                   theta0=theta0)
    first.run()
    saved_config, state = run.load_checkpoint(path)
    assert state.iteration == 3 and len(state.history) == 2
    resumed = _tuner(setup, four, path, state=state, theta0=theta0).run()
    assert np.array_equal(resumed.theta, straight.theta)
    assert [r['cost'] for r in resumed.history] == [r['cost'] for r in straight.history]
    assert resumed.history[-1]['grad_zo_norm'] == straight.history[-1]['grad_zo_norm']


def test_a_failed_checkpoint_write_keeps_the_previous_one(setup, tmp_path, monkeypatch):
    _, policy, _, _ = setup
    path = str(tmp_path / 'run.checkpoint.json')
    tuner = _tuner(setup, short_config('zeroth_order', 3), path)
    tuner.step()
    before = open(path).read()

    def disk_full(*args, **kwargs):
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(run.json, 'dump', disk_full)
    with pytest.raises(OSError):
        tuner.step()
    assert open(path).read() == before
    assert [name for name in os.listdir(tmp_path) if name.endswith('.tmp')] == []
    assert run.load_checkpoint(path)[1].iteration == 2


def test_projection_keeps_theta_in_the_box(setup):
    tuner = _tuner(setup, short_config('model_based', 3, box_scale=1.01, box_abs_min=1e-3))
    for _ in range(3):
        tuner.step()
        assert tuner.box.contains(tuner.state.theta)
    assert any(row['step_norm'] > 0 for row in tuner.state.history)


def test_tuning_lowers_the_closed_loop_cost(setup):
    tuner = _tuner(setup, short_config('exact_model', 6))
    # exact_model needs the plant's Jacobians
    tuner.jacobians = scenario().plant().jacobians
    history = tuner.run().history
    assert history[-1]['cost'] < history[0]['cost']


@pytest.mark.slow
def test_reproduce_command_writes_everything(tmp_path):
    out = tmp_path / 'rep'
    result = subprocess.run(
        [sys.executable, '-m', 'hybrid_mpc_ros.tools.cli', 'reproduce', '--out', str(out),
         '--iterations', '2', '--steps', '15', '--runs', 'hybrid_g0.5', 'exact_model'],
        capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(summary['final_cost']) == {'hybrid_g0.5', 'exact_model'}
    assert set(summary['best_cost']) == set(summary['iters_to_90pct']) == set(
        summary['final_cost'])
    assert all(summary['best_cost'][name] <= summary['final_cost'][name]
               for name in summary['final_cost'])
    assert summary['same_steps_reference_cost'] == summary['final_cost']['exact_model']
    expected_gap = 100 * (summary['final_cost']['hybrid_g0.5'] /
                          summary['final_cost']['exact_model'] - 1)
    assert summary['hybrid_gap_vs_same_steps_pct'] == pytest.approx(expected_gap)
    # the optimum reference ran too, capped by --iterations, on the runs' 15 steps
    assert summary['optimum_iterations'] == 2 and summary['optimum_status'] == 'iteration cap 2'
    assert summary['hybrid_gap_vs_optimum_pct'] == pytest.approx(
        100 * (summary['final_cost']['hybrid_g0.5'] / summary['optimum_cost'] - 1))
    assert np.load(out / 'optimum.final.npz')['x'].shape == (16, 12)
    assert summary['scenario'].endswith('l4dc2026.yaml')        # the default scenario
    assert json.load(open(out / 'summary.json'))['final_cost'] == summary['final_cost']
    for name in ('learning_curves.png', 'trajectories.png', 'results.md',
                 'hybrid_g0.5.csv', 'exact_model.checkpoint.json'):
        assert (out / name).is_file(), name
    assert 'iteration    2/2' in result.stderr


def _rows(path):
    with open(path, newline='') as stream:
        return list(csv.DictReader(stream))


def test_arxiv_scenario_reproduces_the_committed_run_to_the_last_digit(tmp_path):
    """The first 2 iterations of paper/reproduce_arxiv_v1/hybrid_g0.5.csv (T = 200), every digit.

    The committed results were made before scenarios were files; the arXiv scenario file
    must give the same floating-point operations, so equal strings, not a tolerance
    (only the wall time may differ).
    """
    reproduce.run_one(scenario_path('arxiv_v1'), 'hybrid_g0.5', str(tmp_path), iterations=2)
    committed = _rows(os.path.join(ROOT, 'paper', 'reproduce_arxiv_v1', 'hybrid_g0.5.csv'))[:2]
    fresh = _rows(tmp_path / 'hybrid_g0.5.csv')
    assert len(fresh) == 2
    for old, new in zip(committed, fresh):
        old.pop('wall_s')
        # every committed column, to the digit (newer columns did not exist then)
        assert {key: new[key] for key in old} == old


@pytest.mark.slow
def test_reproduce_runs_the_mismatch_scenario_from_its_file_alone(tmp_path):
    out = tmp_path / 'mismatch'
    result = subprocess.run(
        [sys.executable, '-m', 'hybrid_mpc_ros.tools.cli', 'reproduce', '--scenario',
         scenario_path('mismatch_example'), '--out', str(out), '--iterations', '2',
         '--steps', '15'], capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    runs = [run.name for run in scenario('mismatch_example').runs]
    assert list(summary['final_cost']) == runs
    assert summary['paper'] is None and summary['episode_steps'] == 15
    for name in runs:
        assert len(_rows(out / f'{name}.csv')) == 2, name
    assert all(np.isfinite(cost) for cost in summary['final_cost'].values())
