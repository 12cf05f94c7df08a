"""A run's files after a crash at any point: RunRecorder's commit order and resume (no ROS).

The recorder writes an iteration's rows first and the checkpoint last (``commit``); a
process killed in between leaves rows of the iteration after the checkpoint's, which a
resume drops, so no iteration is lost or repeated; the live columns survive a resume.
The one resume policy (another run's checkpoint is refused, a finished run is said so) and
the one iteration line every tool prints.
(A real full disk is test_faults_storage's.)
"""

import csv

import numpy as np
import pytest

from hybrid_mpc_ros.core.learning import live_session as ls
from hybrid_mpc_ros.core.learning.reporting import (iteration_line, resume_line,
                                                    resume_state, ResumeRefused,
                                                    RunRecorder)
from hybrid_mpc_ros.core.learning.run import load_checkpoint, TuningState
from hybrid_mpc_ros.core.mpc import theta as th
from scenario_setup import scenario

pytestmark = pytest.mark.faults


def _row(k):
    return {'iteration': k, 'cost': 100.0 - k, 'tracking': 90.0, 'violation': 10.0 - k,
            'eta': 0.5, 'wall_s': 0.1, 'rollback': False, 'rollback_reason': '',
            'theta_revision': 2 * k - 1, 'retries': k, 'rollbacks': 0, 'episodes': 2 * k}


def _state(done):
    theta = np.full(th.N_THETA, float(done))
    history = [{key: value for key, value in _row(k).items()
                if key not in ('theta_revision', 'retries', 'rollbacks', 'episodes')}
               for k in range(1, done + 1)]
    return TuningState(done + 1, theta, theta.copy(), 1.0, {'state': 'rng'}, history)


def _episode(k, role):
    return {'iteration': k, 'role': role, 'revision': 1, 'steps': 25, 'attempts': 1,
            'cost': 1.0, 'wall_s': 0.1}


def _read(path):
    with open(path, newline='') as stream:
        return list(csv.DictReader(stream))


def _iterate(recorder, config, k, commit=True):
    recorder.episode(_episode(k, 'base'))
    recorder.episode(_episode(k, 'perturbed'))
    recorder.iteration(_row(k), np.full(th.N_THETA, float(k)))
    if commit:
        recorder.commit(config, _state(k))


def test_a_crash_before_the_commit_loses_and_repeats_no_iteration(tmp_path):
    config = scenario().tuning_config(iterations=4)
    recorder = RunRecorder(str(tmp_path), 'run', 1e4, ls.EPISODE_FIELDS)
    for k in (1, 2):
        _iterate(recorder, config, k)
    # iteration 3's rows are written, then the process dies before the checkpoint
    _iterate(recorder, config, 3, commit=False)
    recorder.episode(_episode(4, 'base'))
    recorder.close()
    _, state = load_checkpoint(recorder.checkpoint)
    assert state.iteration == 3

    resumed = RunRecorder(str(tmp_path), 'run', 1e4, ls.EPISODE_FIELDS, state.history)
    for k in (3, 4):
        _iterate(resumed, config, k)
    resumed.close()
    assert [int(r['iteration']) for r in _read(resumed.path('csv'))] == [1, 2, 3, 4]
    assert [int(r['iteration']) for r in _read(resumed.path('theta.csv'))] == [1, 2, 3, 4]
    assert [(int(r['iteration']), r['role']) for r in _read(resumed.path('episodes.csv'))] \
        == [(k, role) for k in (1, 2, 3, 4) for role in ('base', 'perturbed')]
    # the resumed rows keep the live columns the CSV had for them
    assert [int(r['retries']) for r in _read(resumed.path('csv'))] == [1, 2, 3, 4]


def test_one_resume_policy_continues_this_run_and_refuses_another(tmp_path):
    """resume_state: nothing there, this run (finished or not), another run, a broken file."""
    config = scenario().tuning_config(iterations=4)
    checkpoint = str(tmp_path / 'run.checkpoint.json')
    assert resume_state(checkpoint, config) is None
    recorder = RunRecorder(str(tmp_path), 'run', 1e4, ls.EPISODE_FIELDS)
    _iterate(recorder, config, 1)
    recorder.close()
    state = resume_state(checkpoint, config)
    assert state.iteration == 2
    assert resume_line(checkpoint, state, config) == \
        f'resuming from {checkpoint} at iteration 2'
    finished = _state(4)
    assert resume_line(checkpoint, finished, config) == (
        f'{checkpoint} holds the finished run (4 of 4 iterations): nothing left to tune')
    # another experiment (here: the episode length) is refused, never overwritten
    with pytest.raises(ResumeRefused, match='holds another run .*episode_steps'):
        resume_state(checkpoint, scenario().tuning_config(iterations=4, episode_steps=7))
    with open(checkpoint, 'w') as stream:
        stream.write('{"not": "a checkpoint"}')
    with pytest.raises(ResumeRefused, match='cannot resume from'):
        resume_state(checkpoint, config)


def test_the_iteration_line_of_an_offline_and_a_live_row():
    offline = {key: value for key, value in _row(3).items()
               if key not in ('theta_revision', 'retries', 'rollbacks', 'episodes')}
    offline.update(grad_model_norm=12.5, grad_zo_norm=None, alpha=float('nan'))
    assert iteration_line(offline, 10) == (
        'iteration    3/10  cost      97.00  violation     7.00  |J_C| 12.5  |G_zo| -  '
        'alpha -  eta 0.500  0.10 s')
    live = dict(_row(3), rollback=True, rollback_reason='cost 2 exceeds 1.01 x the best')
    assert iteration_line(live, 10).endswith(
        'eta 0.500  revision 5  reruns 3  rollbacks 0  0.10 s  ROLLBACK: cost 2 exceeds '
        '1.01 x the best')


def test_a_run_that_recorded_nothing_writes_nothing(tmp_path):
    out = tmp_path / 'not_yet' / 'tuning'
    recorder = RunRecorder(str(out), 'hybrid_g0.5', 300.0, ls.EPISODE_FIELDS)
    recorder.check_writable()                         # its parent exists and is writable
    assert recorder.finish({'status': 'failed'}) == [] and not out.exists()
    recorder = RunRecorder(str(out), 'hybrid_g0.5', 300.0, ls.EPISODE_FIELDS)
    recorder.episode({field: 0 for field in ls.EPISODE_FIELDS})
    assert sorted(path.name for path in out.iterdir()) == [
        'hybrid_g0.5.csv', 'hybrid_g0.5.episodes.csv', 'hybrid_g0.5.theta.csv']
    recorder.close()
