"""Step rules, the safety guard and aborted episodes inside the tuner; checkpoints of rules.

Two episode sources:

* :class:`landscape.Landscape`, a deterministic function of theta with a known answer
  (closed-loop cost ``|D (theta - optimum)|^2``, exact model-based gradient);
* the real simulated rollout with the real MPC (the paper's setup), where the answer is
  checked through invariants (theta goes back to the best theta, the rerun of the best
  theta costs exactly the best cost, steps halve).
"""

import json
import math
import pathlib

import numpy as np
import pytest

from hybrid_mpc_ros.core.learning import run, tuning
from hybrid_mpc_ros.core.learning.episode import EpisodeRecord
from hybrid_mpc_ros.core.learning.mixing import AgreementEta
from hybrid_mpc_ros.core.learning.schedules import eta_schedule
from hybrid_mpc_ros.core.learning.step_rules import SafetyGuard, ScaleFreeSteps, ScheduleSteps
from hybrid_mpc_ros.core.model.quadcopter import NU, NX
from hybrid_mpc_ros.core.mpc import theta as th
from landscape import constant, history_rows, Landscape, landscape_tuner, paper_alpha
from scenario_setup import scenario, tuning_setup

N = th.N_THETA


def test_the_landscape_has_the_cost_and_gradient_it_claims():
    land = Landscape()
    theta = np.linspace(-0.4, 0.7, N)
    record = land(theta)
    assert land.cost(record) == pytest.approx(land.value(theta), rel=1e-12)
    tuner = landscape_tuner(land, iterations=1)
    request = tuner.ask()
    row = tuner.tell(land(request.theta))
    exact = 2 * land.weights ** 2 * (request.theta - land.optimum)
    assert row['grad_model_norm'] == pytest.approx(np.linalg.norm(exact), rel=1e-12)


def test_an_absurd_step_is_rolled_back_and_the_steps_shrink_until_they_fit():
    """Constant alpha 10: the gradient step overshoots by up to 180x until shrunk to < 1/9."""
    land = Landscape()
    guard = SafetyGuard(cost_margin=0.2)
    tuner = landscape_tuner(land, iterations=150, guard=guard,
                            step_rule=ScheduleSteps(constant(10.0)))
    theta0 = tuner.state.theta.copy()
    rows = []
    best, best_theta, shrinks = math.inf, theta0, 0
    while not tuner.finished:
        theta_k = tuner.ask().theta.copy()
        row = tuner.step()
        rows.append(row)
        # the guard's rule, checked from outside: cost against the best of accepted ones
        refused = math.isfinite(best) and row['cost'] > 1.2 * best
        assert row['rollback'] == refused, row
        if refused:
            assert row['rollback_reason'].startswith('guard: episode cost')
            assert row['alpha'] is None
            assert np.array_equal(tuner.state.theta, best_theta)      # back to the best
            shrinks += 1
        else:
            assert row['alpha'] == 10.0 * 0.5 ** shrinks                # shorter after each
            if row['cost'] < best:
                best, best_theta = row['cost'], theta_k
    assert rows[0]['rollback'] is False and rows[1]['rollback'] is True
    assert rows[2]['cost'] == rows[0]['cost']          # iteration 3 reran the best theta
    assert tuner.state.guard_rollbacks == shrinks == tuner.step_rule.shrinks >= 1
    assert 10.0 * 0.5 ** shrinks < 1 / 9               # shrunk until the step is stable
    # and then it converges to the known minimum
    np.testing.assert_allclose(tuner.state.theta, land.optimum, atol=1e-6)
    assert tuner.state.best_cost == pytest.approx(land.value(tuner.state.best_theta))


def test_without_a_guard_the_same_steps_diverge():
    land = Landscape()
    tuner = landscape_tuner(land, iterations=5,
                            step_rule=ScheduleSteps(constant(10.0)))
    history = tuner.run().history
    assert not any(row['rollback'] for row in history)
    assert max(row['cost'] for row in history) > 20 * history[0]['cost']   # box-limited


def test_the_violation_limit_refuses_even_the_first_episode():
    land = Landscape()
    land.cost.violation_weight = 1.0
    land.cost.x_ub = np.full(NX, -1.0)      # every state violates by 1 per entry and step
    tuner = landscape_tuner(land, iterations=2, guard=SafetyGuard(violation_limit=10.0))
    rows = tuner.run().history
    assert all(row['rollback'] for row in rows)
    assert 'violation' in rows[0]['rollback_reason']
    assert np.array_equal(tuner.state.theta, np.full(N, 0.5))       # nothing better known


def test_an_aborted_base_episode_is_a_failed_one():
    """Abort every episode far from the start: the run never leaves the safe region."""
    start = np.full(N, 0.5)

    def envelope(theta):
        gap = float(np.linalg.norm(theta - start))
        return f'theta {gap:.2f} from the start' if gap > 2.0 else ''

    land = Landscape(abort=envelope)
    tuner = landscape_tuner(land, iterations=12,
                            step_rule=ScheduleSteps(constant(0.5)))
    rows = tuner.run().history
    aborted = [row for row in rows if row['rollback']]
    assert aborted and tuner.state.guard_rollbacks == len(aborted)
    for row in aborted:
        assert row['rollback_reason'].startswith('base episode aborted: theta')
        assert row['grad_model_norm'] is None and row['alpha'] is None   # no gradient used
    assert all(row['cost'] <= rows[0]['cost'] for row in rows if not row['rollback'])
    assert np.linalg.norm(tuner.state.best_theta - start) <= 2.0


def test_an_aborted_perturbed_episode_rolls_back_without_making_its_base_the_best():
    land = Landscape()
    # model-based steps that still ask for the perturbed episode (the agreement test)
    tuner = landscape_tuner(land, iterations=3,
                            step_rule=ScheduleSteps(constant(0.01)),
                            eta_rule=AgreementEta(eta_schedule(1, constant=1.0)))
    tuner.step()                                       # iteration 1: theta0 is the best
    best_theta, best_cost = tuner.state.best_theta.copy(), tuner.state.best_cost
    base = tuner.ask()
    assert tuner.tell(land(base.theta)) is None        # base of iteration 2: lower cost
    assert land.value(base.theta) < best_cost
    perturbed = tuner.ask()
    record = land(perturbed.theta, False)
    record = EpisodeRecord(record.x[:4], record.u[:3], record.du_dx[:3], record.du_dtheta[:3],
                           record.status[:3], record.theta, True, 'pitch rate 2.1 rad/s')
    row = tuner.tell(record)
    assert row['rollback'] and row['rollback_reason'] == ('perturbed episode aborted: pitch '
                                                          'rate 2.1 rad/s')
    assert row['cost'] == land.cost(land(base.theta))  # the row shows the base episode
    assert np.array_equal(tuner.state.theta, best_theta)
    assert tuner.state.best_cost == best_cost
    assert tuner.step_rule.shrinks == 1 and tuner.state.guard_rollbacks == 1


def test_scale_free_steps_in_the_tuner_do_not_depend_on_the_cost_scale():
    small, large = Landscape(), Landscape()
    large.cost.rc = np.full(NU, 1e4)                   # the same landscape, 1e4 x the cost
    rows = []
    for land in (small, large):
        rule = ScaleFreeSteps(0.3, paper_alpha(), warmup=3)
        rows.append(landscape_tuner(land, method='model_based', iterations=8,
                                    step_rule=rule).run().history)
    for a, b in zip(*rows, strict=True):
        assert b['step_norm'] == pytest.approx(a['step_norm'], rel=1e-9)
        assert b['cost'] == pytest.approx(1e4 * a['cost'], rel=1e-9)
    first = landscape_tuner(Landscape(), method='model_based', iterations=1,
                            step_rule=ScaleFreeSteps(0.3, paper_alpha()))
    theta0 = first.state.theta.copy()
    first.run()
    assert np.max(np.abs(first.state.theta - theta0)) == pytest.approx(0.3, rel=1e-12)


def test_the_caller_s_rule_objects_are_not_changed():
    rule = ScaleFreeSteps(0.3, paper_alpha())
    tuner = landscape_tuner(Landscape(), iterations=3, step_rule=rule)
    tuner.run()
    assert rule.seen == 0 and tuner.step_rule.seen == 3


# -- checkpoints ---------------------------------------------------------------------------

@pytest.mark.parametrize('kwargs', [
    {'step_rule': ScaleFreeSteps(6.0, paper_alpha(), warmup=5)},
    {'step_rule': ScaleFreeSteps(6.0, paper_alpha(), warmup=5),
     'guard': SafetyGuard(cost_margin=0.01), 'eta_rule': AgreementEta(eta_schedule(1, 0.5))},
])
def test_exact_resume_with_rules_on_the_landscape(tmp_path, kwargs):
    """Stop in the warm-up (and after a rollback): the resumed run is the same run."""
    land = Landscape()
    straight = landscape_tuner(land, 'hybrid', 9, **kwargs).run()
    path = str(tmp_path / 'run.json')
    landscape_tuner(land, 'hybrid', 4, checkpoint=path, **kwargs).run()
    _, state = run.load_checkpoint(path)
    assert state.step_rule['kind'] == 'ScaleFreeSteps'
    assert 0 < state.step_rule['state']['seen'] < 5                 # in the warm-up
    stopped_rollbacks = state.guard_rollbacks
    if 'guard' in kwargs:                                           # a shrunk rule
        assert stopped_rollbacks == state.step_rule['state']['shrinks'] >= 1
    resumed = landscape_tuner(land, 'hybrid', 9, checkpoint=path, state=state, **kwargs).run()
    assert np.array_equal(resumed.theta, straight.theta)
    assert history_rows(resumed.history) == history_rows(straight.history)
    assert resumed.guard_rollbacks == straight.guard_rollbacks
    if 'guard' in kwargs:                                           # one before, more after
        assert straight.guard_rollbacks > stopped_rollbacks


def test_resuming_with_other_rules_is_refused(tmp_path):
    land = Landscape()
    path = str(tmp_path / 'run.json')
    landscape_tuner(land, iterations=2, checkpoint=path,
                    step_rule=ScaleFreeSteps(0.2, paper_alpha())).run()
    _, state = run.load_checkpoint(path)
    with pytest.raises(ValueError, match='written with step rule ScaleFreeSteps.*this tuner '
                                         'has ScheduleSteps'):
        landscape_tuner(land, iterations=4, state=state)
    with pytest.raises(ValueError, match='step rule'):
        landscape_tuner(land, iterations=4, state=state,
                        step_rule=ScaleFreeSteps(0.3, paper_alpha()))
    with pytest.raises(ValueError, match='written with guard none, this tuner has '
                                         'SafetyGuard'):
        landscape_tuner(land, iterations=4, state=state, guard=SafetyGuard(),
                        step_rule=ScaleFreeSteps(0.2, paper_alpha()))
    with pytest.raises(ValueError, match='eta rule'):
        landscape_tuner(land, iterations=4, state=state, eta_rule=AgreementEta(paper_alpha()),
                        step_rule=ScaleFreeSteps(0.2, paper_alpha()))


def test_an_old_or_unknown_checkpoint_version_is_refused_clearly(tmp_path):
    path = str(tmp_path / 'run.json')
    landscape_tuner(Landscape(), iterations=1, checkpoint=path).run()
    with open(path) as stream:
        data = json.load(stream)
    for version in (1, 2, 4):
        data['version'] = version
        with open(path, 'w') as stream:
            json.dump(data, stream)
        with pytest.raises(ValueError, match=rf'has version {version}; this version of '
                                             r'hybrid_mpc_ros reads versions \(3,\)'):
            run.load_checkpoint(path)
    # the committed reproduction's checkpoints predate scenario files: refused, not misread
    committed = pathlib.Path(__file__).parent.parent.parent / 'paper' / 'reproduce_arxiv_v1' / (
        'hybrid_g0.5.checkpoint.json')
    with pytest.raises(ValueError, match='has version 1'):
        run.load_checkpoint(str(committed))


# -- the real MPC on the simulated plant ---------------------------------------------------

STEPS = 25


@pytest.fixture(scope='module')
def paper():
    model, policy, plant, cost = tuning_setup()
    return model, policy, plant, cost, policy.theta.copy()


def test_a_huge_step_on_the_real_mpc_is_rolled_back_to_the_best_theta(paper):
    """alpha = 1 moves theta by ~70: a 6.6x costlier flight, refused; then halving steps."""
    model, policy, plant, cost, theta0 = paper
    episodes = tuning.simulated_episodes(plant, policy, plant.hover_state(), STEPS)
    config = scenario().tuning_config(method='model_based', iterations=6)
    tuner = tuning.Tuner(config, episodes, model.jacobians, cost, theta0,
                         step_rule=ScheduleSteps(constant(1.0)),
                         guard=SafetyGuard(cost_margin=0.2))
    start = tuner.state.theta.copy()
    rows = [tuner.step() for _ in range(6)]
    assert [row['rollback'] for row in rows] == [False, True] * 3
    for k in (1, 3, 5):                                 # each refused flight...
        assert rows[k]['cost'] > 1.2 * rows[0]['cost']
        assert 'exceeds 1.2 x the best' in rows[k]['rollback_reason']
        assert rows[k]['step_norm'] == pytest.approx(rows[k - 1]['step_norm'])   # ...undone
    for k in (2, 4):                                    # the best theta flown again
        assert rows[k]['cost'] == rows[0]['cost']
    assert [rows[k]['alpha'] for k in (0, 2, 4)] == [1.0, 0.5, 0.25]
    assert rows[0]['step_norm'] > rows[2]['step_norm'] > rows[4]['step_norm']
    assert np.array_equal(tuner.state.theta, start) and np.array_equal(
        tuner.state.best_theta, start)
    assert tuner.state.guard_rollbacks == 3 and tuner.step_rule.shrinks == 3


def test_an_envelope_abort_on_the_real_mpc_rolls_back(paper):
    """The start theta stays within 0.45 rad of level; the one after a huge step does not."""
    model, policy, plant, cost, theta0 = paper

    def envelope(x):
        tilt = float(np.max(np.abs(x[6:8])))
        return f'tilt {tilt:.2f} rad beyond 0.45' if tilt > 0.45 else ''

    episodes = tuning.simulated_episodes(plant, policy, plant.hover_state(), STEPS,
                                         abort_if=envelope)
    config = scenario().tuning_config(method='model_based', iterations=3)
    tuner = tuning.Tuner(config, episodes, model.jacobians, cost, theta0,
                         step_rule=ScheduleSteps(constant(1.0)))
    start = tuner.state.theta.copy()
    rows = tuner.run().history
    assert not rows[0]['rollback'] and rows[1]['rollback']
    assert rows[1]['rollback_reason'].startswith('base episode aborted: step ')
    assert 'beyond 0.45' in rows[1]['rollback_reason']
    assert rows[2]['cost'] == rows[0]['cost'] and rows[2]['alpha'] == 0.5
    assert tuner.state.guard_rollbacks == 1
    # the aborted flight never reached theta: iteration 3 started from the start
    assert np.array_equal(tuner.state.best_theta, start)


def test_exact_resume_with_scale_free_steps_on_the_real_mpc(paper, tmp_path):
    model, policy, plant, cost, theta0 = paper
    episodes = tuning.simulated_episodes(plant, policy, plant.hover_state(), STEPS)

    def tuner(iterations, checkpoint=None, state=None):
        config = scenario().tuning_config(method='hybrid', iterations=iterations, seed=2)
        return tuning.Tuner(config, episodes, model.jacobians, cost, theta0, checkpoint,
                            state=state, step_rule=ScaleFreeSteps(0.5, config.alpha, warmup=3),
                            guard=SafetyGuard())

    straight = tuner(4).run()
    path = str(tmp_path / 'run.json')
    tuner(2, path).run()
    _, state = run.load_checkpoint(path)
    resumed = tuner(4, path, state).run()
    assert np.array_equal(resumed.theta, straight.theta)
    assert history_rows(resumed.history) == history_rows(straight.history)
    first = tuner(1)
    start = first.state.theta.copy()
    first.run()
    change = first.state.theta - start                 # the box may clip some entries
    assert np.max(np.abs(change)) == pytest.approx(0.5, rel=1e-9) or np.any(
        first.state.theta == first.box.upper) or np.any(first.state.theta == first.box.lower)
