"""The tuner's ask/tell interface: same numbers as run(), record checks, checkpoints, resume."""

import dataclasses
import os

import numpy as np
import pytest

from hybrid_mpc_ros.core.learning import run, tuning
from hybrid_mpc_ros.core.learning.gradients import averaged_zeroth_order_gradient
from scenario_setup import scenario, tuning_setup

STEPS = 12


@pytest.fixture(scope='module')
def setup():
    model, policy, plant, cost = tuning_setup()
    episodes = tuning.simulated_episodes(plant, policy, plant.hover_state(), STEPS)
    return model, policy.theta.copy(), episodes, cost


def _tuner(setup, method='hybrid', iterations=3, checkpoint=None, state=None, offline=True,
           jacobians=None):
    model, theta0, episodes, cost = setup
    config = scenario().tuning_config(method=method, iterations=iterations, seed=11)
    return tuning.Tuner(config, episodes if offline else None, jacobians or model.jacobians,
                        cost, theta0, checkpoint, state=state)


def _drive(tuner, episodes, log=None):
    """The ROS tuner's loop, without ROS: ask, run the episode elsewhere, tell."""
    rows = []
    while (request := tuner.ask()) is not None:
        if log is not None:
            log.append(request)
        row = tuner.tell(episodes(request.theta, request.sensitivities))
        if row is not None:
            rows.append(row)
    return rows


@pytest.mark.parametrize('method', ['hybrid', 'model_based', 'zeroth_order'])
def test_ask_tell_gives_the_numbers_of_run(setup, method):
    episodes = setup[2]
    straight = _tuner(setup, method).run()
    tuner = _tuner(setup, method, offline=False)
    requests = []
    rows = _drive(tuner, episodes, requests)
    assert tuner.finished and tuner.ask() is None
    assert np.array_equal(tuner.state.theta, straight.theta)
    for row, expected in zip(rows, straight.history, strict=True):
        assert {k: v for k, v in row.items() if k != 'wall_s'} == {
            k: v for k, v in expected.items() if k != 'wall_s'}
    # the episodes asked for: a base episode per iteration (with sensitivities unless the
    # model is unused), and a perturbed one wherever eta < 1
    for request in requests:
        assert not request.theta.flags.writeable
    roles = [(r.iteration, r.role, r.sensitivities) for r in requests]
    etas = {row['iteration']: row['eta'] for row in rows}
    expected_roles = []
    for k in (1, 2, 3):
        expected_roles.append((k, 'base', etas[k] > 0))
        if etas[k] < 1:
            expected_roles.append((k, 'perturbed', False))
    assert roles == expected_roles


def test_perturbed_request_is_theta_plus_delta_v(setup):
    tuner = _tuner(setup, 'zeroth_order', offline=False)
    base = tuner.ask()
    assert tuner.ask() is base                         # asking again: the same episode
    assert tuner.tell(setup[2](base.theta, base.sensitivities)) is None
    perturbed = tuner.ask()
    assert perturbed.role == 'perturbed' and perturbed.iteration == 1
    step = perturbed.theta - base.theta
    assert np.linalg.norm(step) == pytest.approx(tuner.config.delta, rel=1e-6)


@pytest.mark.parametrize('antithetic', [False, True])
def test_m_directions_ask_m_perturbed_episodes_and_average_their_estimates(setup, antithetic):
    model, theta0, episodes, cost = setup
    config = dataclasses.replace(
        scenario().tuning_config(method='zeroth_order', iterations=2, seed=11),
        zo_directions=4, zo_antithetic=antithetic)
    tuner = tuning.Tuner(config, None, model.jacobians, cost, theta0)
    requests = []
    rows = _drive(tuner, episodes, requests)
    assert [(r.iteration, r.role) for r in requests] == [
        (k, role) for k in (1, 2) for role in ['base'] + ['perturbed'] * 4]
    base, perturbed = requests[0], requests[1:5]
    steps = np.array([r.theta - base.theta for r in perturbed]) / config.delta
    np.testing.assert_allclose(np.linalg.norm(steps, axis=1), 1.0, rtol=1e-6)
    if antithetic:
        np.testing.assert_allclose(steps[1], -steps[0], atol=1e-9)
        np.testing.assert_allclose(steps[3], -steps[2], atol=1e-9)
    # the estimate of iteration 1, rebuilt from the episodes the tuner asked for
    costs = [cost(episodes(r.theta, False)) for r in perturbed]
    g_zo = averaged_zeroth_order_gradient(costs, rows[0]['cost'], steps, config.delta)
    assert rows[0]['grad_zo_norm'] == pytest.approx(np.linalg.norm(g_zo), rel=1e-6)
    with pytest.raises(ValueError, match='even'):
        dataclasses.replace(config, zo_directions=3, zo_antithetic=True)


def _record(setup, theta, sensitivities=True):
    return setup[2](theta, sensitivities)


@pytest.mark.parametrize('damage, reason', [
    (lambda r: r.u.__setitem__((3, 1), np.nan), 'episode u has non-finite entries'),
    (lambda r: r.x.__setitem__((-1, 0), np.inf), 'episode x has non-finite entries'),
    (lambda r: r.du_dtheta.__setitem__((0, 0, 0), np.nan), 'episode du_dtheta has non-finite'),
])
def test_a_non_finite_record_is_refused_and_changes_nothing(setup, damage, reason):
    """Today's defect: a NaN in a record went through np.clip into theta."""
    tuner = _tuner(setup, 'model_based', offline=False)
    request = tuner.ask()
    record = _record(setup, request.theta)
    damage(record)
    before = dataclasses.replace(tuner.state, theta=tuner.state.theta.copy(),
                                 history=list(tuner.state.history))
    with pytest.raises(tuning.RecordRejected, match=reason):
        tuner.tell(record)
    assert np.array_equal(tuner.state.theta, before.theta) and tuner.state.iteration == 1
    assert tuner.ask() is request                      # rerun the same episode
    row = tuner.tell(_record(setup, request.theta))
    assert row['iteration'] == 1 and np.all(np.isfinite(tuner.state.theta))


def test_records_of_another_episode_are_refused(setup):
    tuner = _tuner(setup, 'hybrid', offline=False)
    with pytest.raises(RuntimeError, match='ask'):
        tuner.tell(_record(setup, tuner.state.theta))
    base = tuner.ask()
    other = base.theta.copy()
    other[5] += 1e-3
    with pytest.raises(tuning.RecordRejected, match=r'base episode of iteration 1 ran at '
                                                    r'another theta \(max \|difference\| 0.001'):
        tuner.tell(_record(setup, other))
    tuner.tell(_record(setup, base.theta))
    perturbed = tuner.ask()
    # the base episode's record again: the wrong theta for the perturbed episode
    with pytest.raises(tuning.RecordRejected, match='perturbed episode of iteration 1'):
        tuner.tell(_record(setup, base.theta, False))
    short = tuning.simulated_episodes(*_episode_parts(setup), STEPS - 2)
    with pytest.raises(tuning.RecordRejected, match='has 10 steps, the base episode 12'):
        tuner.tell(short(perturbed.theta, False))
    malformed = _record(setup, perturbed.theta, False)
    malformed.du_dx = malformed.du_dx[:, :, :3]
    with pytest.raises(tuning.RecordRejected, match='du_dx has shape'):
        tuner.tell(malformed)
    assert tuner.tell(_record(setup, perturbed.theta, False))['iteration'] == 1


def _episode_parts(setup):
    chosen = scenario()
    return chosen.plant(), chosen.policy(), chosen.x0


def test_checkpoint_after_each_completed_iteration_only(setup, tmp_path):
    path = str(tmp_path / 'run.checkpoint.json')
    tuner = _tuner(setup, 'hybrid', offline=False, checkpoint=path)
    episodes = setup[2]
    for k in (1, 2):
        request = tuner.ask()
        assert tuner.tell(episodes(request.theta, request.sensitivities)) is None
        if k == 1:
            assert not os.path.exists(path)            # half an iteration is never saved
        else:
            assert run.load_checkpoint(path)[1].iteration == 2
        request = tuner.ask()
        assert tuner.tell(episodes(request.theta, request.sensitivities))['iteration'] == k
        assert run.load_checkpoint(path)[1].iteration == k + 1


def test_resume_between_the_base_and_the_perturbed_episode(setup, tmp_path):
    """The interrupted iteration reruns both episodes and the run ends as if never stopped."""
    straight = _tuner(setup, 'hybrid', iterations=3).run()
    path = str(tmp_path / 'run.checkpoint.json')
    first = _tuner(setup, 'hybrid', iterations=3, checkpoint=path, offline=False)
    episodes = setup[2]
    request = first.ask()
    first.tell(episodes(request.theta, request.sensitivities))
    request = first.ask()
    first.tell(episodes(request.theta, request.sensitivities))          # iteration 1 done
    request = first.ask()
    first.tell(episodes(request.theta, request.sensitivities))          # base of iteration 2
    assert first.ask().role == 'perturbed'
    del first                                                           # stopped here
    _, state = run.load_checkpoint(path)
    assert state.iteration == 2
    resumed = _tuner(setup, 'hybrid', iterations=3, checkpoint=path, state=state).run()
    assert np.array_equal(resumed.theta, straight.theta)
    assert [r['cost'] for r in resumed.history] == [r['cost'] for r in straight.history]
    assert [r['grad_zo_norm'] for r in resumed.history] == [
        r['grad_zo_norm'] for r in straight.history]


def test_an_overflowing_gradient_never_reaches_theta(setup):
    def exploding(x, u):
        return np.full((12, 12), 1e200), np.full((12, 4), 1e200)

    tuner = _tuner(setup, 'model_based', offline=False, jacobians=exploding)
    request = tuner.ask()
    theta_before = tuner.state.theta.copy()
    with pytest.raises(FloatingPointError, match='not finite'), np.errstate(all='ignore'):
        tuner.tell(_record(setup, request.theta))
    assert np.array_equal(tuner.state.theta, theta_before) and tuner.state.iteration == 1


def test_step_needs_an_episode_runner(setup):
    tuner = _tuner(setup, offline=False)
    with pytest.raises(RuntimeError, match='ask'):
        tuner.step()
    done = _tuner(setup, 'model_based', iterations=1)
    done.run()
    with pytest.raises(RuntimeError, match='all 1 iterations are done'):
        done.step()
