"""The tuning loop: reproducibility, resume from checkpoint, projection, reproduce command."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from hybrid_mpc_ros.core.learning import tuning
from hybrid_mpc_ros.core.model.quadcopter import Quadcopter
from hybrid_mpc_ros.tools.reproduce import paper_setup

STEPS = 25


@pytest.fixture(scope='module')
def setup():
    model, policy, plant, cost = paper_setup()
    episodes = tuning.simulated_episodes(plant.step, policy, plant.hover_state(), STEPS)
    return model, policy, episodes, cost


def _tuner(setup, config, checkpoint=None, state=None, theta0=None):
    model, policy, episodes, cost = setup
    theta0 = policy.theta.copy() if theta0 is None else theta0
    return tuning.Tuner(config, episodes, model.jacobians, cost, theta0, checkpoint,
                        state=state)


def test_resume_from_checkpoint_gives_identical_results(setup, tmp_path):
    _, policy, _, _ = setup
    theta0 = policy.theta.copy()
    config = tuning.TuningConfig(method='hybrid', iterations=4, seed=3)
    straight = _tuner(setup, config, theta0=theta0).run()
    path = str(tmp_path / 'run.checkpoint.json')
    first = _tuner(setup, tuning.TuningConfig(method='hybrid', iterations=2, seed=3), path,
                   theta0=theta0)
    first.run()
    saved_config, state = tuning.load_checkpoint(path)
    assert state.iteration == 3 and len(state.history) == 2
    resumed = _tuner(setup, config, path, state=state, theta0=theta0).run()
    assert np.array_equal(resumed.theta, straight.theta)
    assert [r['cost'] for r in resumed.history] == [r['cost'] for r in straight.history]
    assert resumed.history[-1]['grad_zo_norm'] == straight.history[-1]['grad_zo_norm']


def test_a_failed_checkpoint_write_keeps_the_previous_one(setup, tmp_path, monkeypatch):
    _, policy, _, _ = setup
    path = str(tmp_path / 'run.checkpoint.json')
    tuner = _tuner(setup, tuning.TuningConfig(method='zeroth_order', iterations=3), path)
    tuner.step()
    before = open(path).read()

    def disk_full(*args, **kwargs):
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(tuning.json, 'dump', disk_full)
    with pytest.raises(OSError):
        tuner.step()
    assert open(path).read() == before
    assert [name for name in os.listdir(tmp_path) if name.endswith('.tmp')] == []
    assert tuning.load_checkpoint(path)[1].iteration == 2


def test_projection_keeps_theta_in_the_box(setup):
    config = tuning.TuningConfig(method='model_based', iterations=3, box_scale=1.01,
                                 box_abs_min=1e-3)
    tuner = _tuner(setup, config)
    for _ in range(3):
        tuner.step()
        assert tuner.box.contains(tuner.state.theta)
    assert any(row['step_norm'] > 0 for row in tuner.state.history)


def test_tuning_lowers_the_closed_loop_cost(setup):
    tuner = _tuner(setup, tuning.TuningConfig(method='exact_model', iterations=6))
    # exact_model needs the plant's Jacobians
    tuner.jacobians = Quadcopter().jacobians
    history = tuner.run().history
    assert history[-1]['cost'] < history[0]['cost']


def test_reproduce_command_writes_everything(tmp_path):
    out = tmp_path / 'rep'
    result = subprocess.run(
        [sys.executable, '-m', 'hybrid_mpc_ros.tools.cli', 'reproduce', '--out', str(out),
         '--iterations', '2', '--steps', '15', '--runs', 'hybrid_g0.5', 'exact_model'],
        capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(summary['final_cost']) == {'hybrid_g0.5', 'exact_model'}
    assert summary['reference_cost'] == summary['final_cost']['exact_model']
    assert summary['hybrid_gap_pct'] is not None
    for name in ('learning_curves.png', 'trajectories.png', 'results.md',
                 'hybrid_g0.5.csv', 'exact_model.checkpoint.json'):
        assert (out / name).is_file(), name
    assert 'iteration    2/2' in result.stderr
