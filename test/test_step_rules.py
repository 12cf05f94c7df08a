"""Step rules and the safety guard on small cases with a known answer."""

import math

import numpy as np
import pytest

from hybrid_mpc_ros.core.learning.schedules import Schedule, series_behaviour
from hybrid_mpc_ros.core.learning.step_rules import SafetyGuard, ScaleFreeSteps, ScheduleSteps

SHAPE = Schedule('log_plus_offset', scale=5e-5, offset=2.0, power=0.75, first_k=1)


def _directions(seed, count, dim=6):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=dim) * rng.uniform(0.5, 2.0) for _ in range(count)]


def test_scale_free_steps_do_not_depend_on_the_cost_scale():
    small, large = ScaleFreeSteps(0.1, SHAPE), ScaleFreeSteps(0.1, SHAPE)
    for k, direction in enumerate(_directions(0, 30), start=1):
        step_small, _ = small(k, direction)
        step_large, _ = large(k, 100.0 * direction)   # a vehicle with 100x the gradients
        np.testing.assert_allclose(step_large, step_small, rtol=1e-12)
    # the paper's schedule does depend on it, by exactly that factor
    paper = ScheduleSteps(SHAPE)
    direction = _directions(1, 1)[0]
    np.testing.assert_allclose(paper(3, 100 * direction)[0], 100 * paper(3, direction)[0])


def test_the_first_step_is_as_long_as_the_radius_and_no_step_exceeds_the_cap():
    rule = ScaleFreeSteps(0.25, SHAPE, warmup=3, cap=2.0)
    directions = _directions(2, 40)
    directions[20] = directions[20] * 1e3             # one wild zeroth-order estimate
    for k, direction in enumerate(directions, start=1):
        step, alpha = rule(k, direction)
        length = float(np.linalg.norm(step))
        if k == 1:
            assert length == pytest.approx(0.25, rel=1e-12)
        assert length <= 2.0 * rule.radius_at(k) * (1 + 1e-12)
        assert alpha >= 0.0
    assert rule.seen == 3          # the gradient scale froze after the warm-up


def test_scale_free_steps_descend_to_the_minimum_of_a_quadratic():
    # f(theta) = 1/2 |theta - optimum|^2 in a box, exact gradients: the answer is known
    optimum = np.array([1.0, -2.0, 0.5, 3.0])
    theta = np.zeros(4)
    shape = Schedule('power', scale=1.0, offset=0.0, power=0.6, first_k=1)
    rule = ScaleFreeSteps(0.5, shape, warmup=1, cap=1.0)
    for k in range(1, 3001):
        step, _ = rule(k, theta - optimum)
        theta = np.clip(theta - step, -5.0, 5.0)
    np.testing.assert_allclose(theta, optimum, atol=1e-3)


def test_the_effective_steps_keep_the_convergence_conditions():
    """Bounded estimates keep the cap's factor in [m, 1]: the series behave like alpha's."""
    rng = np.random.default_rng(4)
    rule = ScaleFreeSteps(0.1, SHAPE, warmup=5, cap=2.0)
    n = 20000
    alphas = np.empty(n)
    for k in range(1, n + 1):
        direction = rng.normal(size=8) * rng.uniform(0.1, 10.0)   # bounded, noisy norms
        alphas[k - 1] = rule(k, direction)[1]
    raw = SHAPE.values(np.arange(1, n + 1))
    ratio = alphas / raw
    assert ratio.min() > 0.0 and ratio.max() / ratio.min() < 1e3
    assert not series_behaviour(alphas)['converges']          # sum alpha = inf
    assert series_behaviour(alphas ** 2)['converges']          # sum alpha^2 < inf


def test_shrink_halves_the_steps_a_bounded_number_of_times():
    for rule in (ScaleFreeSteps(0.1, SHAPE, max_shrinks=2),
                 ScheduleSteps(SHAPE, max_shrinks=2)):
        direction = np.ones(3)
        before = np.linalg.norm(rule(1, direction)[0])
        assert rule.shrink() and rule.shrink() and not rule.shrink()
        after = np.linalg.norm(rule(1, direction)[0])
        assert after == pytest.approx(before / 4)


def test_step_rule_state_round_trips():
    rule = ScaleFreeSteps(0.1, SHAPE)
    for k, direction in enumerate(_directions(5, 3), start=1):
        rule(k, direction)
    rule.shrink()
    copy = ScaleFreeSteps(0.1, SHAPE)
    copy.load_state(rule.state())
    direction = _directions(6, 1)[0]
    np.testing.assert_array_equal(copy(4, direction)[0], rule(4, direction)[0])


def test_a_non_finite_direction_is_refused():
    with pytest.raises(FloatingPointError):
        ScaleFreeSteps(0.1, SHAPE)(1, np.array([1.0, np.nan]))


def test_the_guard_refuses_costly_or_violating_episodes():
    guard = SafetyGuard(cost_margin=0.2, violation_limit=5.0)
    assert guard.verdict(119.0, 0.0, best_cost=100.0) == ''
    assert 'exceeds 1.2 x the best' in guard.verdict(121.0, 0.0, best_cost=100.0)
    assert 'violation' in guard.verdict(100.0, 6.0, best_cost=100.0)
    assert 'not finite' in guard.verdict(math.nan, 0.0, best_cost=100.0)
    assert guard.verdict(1e9, 0.0, best_cost=math.inf) == ''       # nothing to compare yet
    with pytest.raises(ValueError):
        SafetyGuard(cost_margin=0.0)
