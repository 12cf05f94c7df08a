"""Step rules and the safety guard on small cases with a known answer."""

import json
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
    """Lengths are the largest change of an entry (the max norm)."""
    rule = ScaleFreeSteps(0.25, SHAPE, warmup=3, cap=2.0)
    directions = _directions(2, 40)
    directions[20] = directions[20] * 1e3             # one wild zeroth-order estimate
    for k, direction in enumerate(directions, start=1):
        step, alpha = rule(k, direction)
        length = float(np.max(np.abs(step)))
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


# -- the robust gradient scale and the per-entry radius --------------------------------------

def test_one_wild_direction_in_the_warm_up_does_not_freeze_the_scale():
    """The median ignores a 1000x outlier; a maximum would shrink every later step 1000x."""
    rule = ScaleFreeSteps(0.2, SHAPE, warmup=5, cap=2.0)
    typical = np.array([3.0, -4.0])                    # max norm 4
    directions = [typical, 1000.0 * typical, typical, typical, typical]
    for k, direction in enumerate(directions, start=1):
        rule(k, direction)
    assert rule.seen == 5 and rule.grad_scale == pytest.approx(4.0)
    step, _ = rule(6, typical)                         # a typical direction: a full radius
    assert np.max(np.abs(step)) == pytest.approx(rule.radius_at(6), rel=1e-12)


def test_zero_directions_are_not_counted_in_the_warm_up():
    rule = ScaleFreeSteps(0.2, SHAPE, warmup=2)
    step, alpha = rule(1, np.zeros(3))
    assert not step.any() and alpha == 0.0 and rule.seen == 0
    rule(2, np.array([0.0, -2.0, 1.0]))
    assert rule.seen == 1 and rule.grad_scale == 2.0


def test_per_entry_radius_moves_each_entry_relative_to_its_own_size():
    """s_i = max(|theta0_i|, floor); no entry moves by more than `radius` s_i."""
    theta0 = np.array([9.0, -3.0, 0.1, 0.0])
    rule = ScaleFreeSteps.relative(theta0, 0.3, 0.5, SHAPE, warmup=1)
    np.testing.assert_array_equal(rule.entry_scale, [9.0, 3.0, 0.5, 0.5])
    direction = np.array([1.0, -2.0, 4.0, 0.5])
    step, alpha = rule(1, direction)
    scale = np.array(rule.entry_scale)
    assert np.max(np.abs(step / scale)) == pytest.approx(0.3, rel=1e-12)
    # along D d: entry i moves by alpha s_i d_i; the largest relative change is entry 2's
    np.testing.assert_allclose(step, alpha * scale * direction, rtol=1e-12)
    assert np.argmax(np.abs(step / scale)) == 2
    np.testing.assert_allclose(step / scale, 0.3 * direction / 4.0, rtol=1e-12)
    # the same direction and radius in theta units, for a theta0 10 times larger: 10x
    big = ScaleFreeSteps.relative(10 * theta0, 0.3, 5.0, SHAPE, warmup=1)
    np.testing.assert_allclose(big(1, direction / 10)[0], 10 * step, rtol=1e-12)
    with pytest.raises(ValueError):
        ScaleFreeSteps.relative(theta0, 0.3, 0.0, SHAPE)
    with pytest.raises(ValueError, match='entry_scale has 4 entries'):
        rule(2, np.ones(3))


def test_per_entry_steps_descend_a_badly_scaled_quadratic_to_its_minimum():
    """Entries of size 0.1 and 9 side by side; the per-entry radius reaches both."""
    optimum = np.array([0.15, 0.05, 12.0, 7.0])
    weights = np.array([10.0, 10.0, 0.1, 0.1])        # curvature ~ 1 / size per entry
    theta0 = np.array([0.1, 0.1, 9.0, 9.0])
    theta = theta0.copy()
    shape = Schedule('power', scale=1.0, offset=0.0, power=0.6, first_k=1)
    rule = ScaleFreeSteps.relative(theta0, 0.2, 0.05, shape, warmup=1, cap=1.0)
    for k in range(1, 3001):
        step, _ = rule(k, 2 * weights * (theta - optimum))
        theta = np.clip(theta - step, -100.0, 100.0)
    np.testing.assert_allclose(theta, optimum, rtol=1e-3)


def test_the_warm_up_norms_round_trip_through_the_state():
    rule = ScaleFreeSteps(0.1, SHAPE, warmup=4)
    for k, direction in enumerate(_directions(7, 2), start=1):
        rule(k, direction)
    copy = ScaleFreeSteps(0.1, SHAPE, warmup=4)
    copy.load_state(json.loads(json.dumps(rule.state())))
    for k, direction in enumerate(_directions(8, 4), start=3):      # finishes the warm-up
        np.testing.assert_array_equal(copy(k, direction)[0], rule(k, direction)[0])
    assert copy.grad_scale == rule.grad_scale and copy.seen == rule.seen == 4
