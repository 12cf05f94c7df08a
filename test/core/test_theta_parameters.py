"""theta as the ROS parameters theta.p_Q, theta.p_R, theta.p_P: conversion and validation."""

import array

import numpy as np
import pytest

from hybrid_mpc_ros.core.mpc import theta as th
from scenario_setup import scenario


@pytest.fixture
def theta():
    return np.random.default_rng(4).normal(size=th.N_THETA)


def test_names_follow_the_groups():
    assert th.PARAMETER_NAMES == ('theta.p_Q', 'theta.p_R', 'theta.p_P')


def test_round_trip_is_exact(theta):
    values = th.to_parameters(theta)
    assert list(values) == list(th.PARAMETER_NAMES)
    assert [len(v) for v in values.values()] == [12, 4, 78]
    assert all(type(item) is float for v in values.values() for item in v)
    np.testing.assert_array_equal(values['theta.p_P'], theta[16:])
    back = th.from_parameters(values)
    assert np.array_equal(back, theta)
    # as rclpy delivers them from a set_parameters request
    as_ros = {name: array.array('d', v) for name, v in values.items()}
    assert th.validate_parameters(as_ros) == ''
    assert np.array_equal(th.from_parameters(as_ros), theta)


def test_partial_update_is_merged_onto_the_current_theta(theta):
    new_r = [0.5, 0.25, 2, 3]                      # ints in a double array: accepted
    merged = th.from_parameters({'theta.p_R': new_r}, current=theta)
    np.testing.assert_array_equal(merged[th.SLICE_R], new_r)
    np.testing.assert_array_equal(merged[th.SLICE_Q], theta[th.SLICE_Q])
    np.testing.assert_array_equal(merged[th.SLICE_P], theta[th.SLICE_P])
    assert merged is not theta and not np.shares_memory(merged, theta)
    with pytest.raises(ValueError, match='no current theta'):
        th.from_parameters({'theta.p_R': new_r})


@pytest.mark.parametrize('values, reason', [
    ({'theta.p_X': [1.0]}, "unknown theta parameter 'theta.p_X'"),
    ({'theta.p_Q': [1.0] * 11}, 'theta.p_Q must hold 12 values, got 11'),
    ({'theta.p_R': [1.0] * 5}, 'theta.p_R must hold 4 values, got 5'),
    ({'theta.p_R': 1.0}, 'theta.p_R must be an array of doubles, got float'),
    ({'theta.p_R': 'abcd'}, 'theta.p_R must be an array of doubles, got str'),
    ({'theta.p_R': [1.0, True, 1.0, 1.0]}, 'theta.p_R[1] must be a number, got bool'),
    ({'theta.p_R': [1.0, '1', 1.0, 1.0]}, 'theta.p_R[1] must be a number, got str'),
    ({'theta.p_R': np.ones((2, 2))}, 'theta.p_R must be a 1-D array of doubles'),
    ({'theta.p_R': np.ones(4, dtype=bool)}, 'theta.p_R must be a 1-D array of doubles'),
    ({'theta.p_R': [1.0, float('nan'), 1.0, 1.0]},
     'theta.p_R has non-finite entries: p_R[1]=nan'),
    ({'theta.p_P': [0.0] * 77 + [float('-inf')]},
     'theta.p_P has non-finite entries: p_P[11,11]=-inf'),
    ({'theta.p_Q': [1.0] * 11 + [-301.0]},
     'theta.p_Q has entries beyond the magnitude limit 300: p_Q[11]=-301'),
])
def test_bad_updates_are_refused_with_their_reason(theta, values, reason):
    found = th.validate_parameters(values)
    assert found.startswith(reason), found
    with pytest.raises(ValueError) as error:
        th.from_parameters(values, current=theta)
    assert str(error.value) == found


def test_validation_is_separate_from_applying(theta):
    before = theta.copy()
    assert th.validate_parameters({'theta.p_Q': np.full(12, 2.0)}) == ''
    np.testing.assert_array_equal(theta, before)
    # a later bad group refuses the whole update
    assert 'theta.p_R' in th.validate_parameters({'theta.p_Q': [2.0] * 12,
                                                  'theta.p_R': [1.0]})


def test_the_controller_accepts_a_perturbation_just_outside_the_theta_box(theta):
    """theta + delta v can leave the box by delta; only the tuner projects onto it."""
    tuning = scenario().tuning
    box = th.default_box(theta, tuning.box_scale, tuning.box_abs_min)
    edge = box.upper.copy()
    perturbed = edge + 1e-4 * np.ones(th.N_THETA) / np.sqrt(th.N_THETA)
    assert not box.contains(perturbed)
    assert th.validate_parameters(th.to_parameters(perturbed)) == ''


def test_limit_is_well_above_the_default_box_and_configurable():
    theta0 = np.full(th.N_THETA, 9.0)            # the DARE start's largest entry is ~9
    tuning = scenario().tuning
    assert th.default_box(theta0, tuning.box_scale, tuning.box_abs_min).upper.max() * 3 <= \
        th.MAX_ABS_ENTRY
    values = {'theta.p_R': [50.0] * 4}
    assert th.validate_parameters(values) == ''
    assert 'magnitude limit 10' in th.validate_parameters(values, max_abs=10.0)


def test_weights_stay_positive_definite_at_the_limits():
    """Any accepted theta (signs, zeros, entries at the limit) gives positive definite Q, R, P."""
    rng = np.random.default_rng(1)
    for theta in (np.zeros(th.N_THETA), np.full(th.N_THETA, -th.MAX_ABS_ENTRY),
                  rng.uniform(-th.MAX_ABS_ENTRY, th.MAX_ABS_ENTRY, th.N_THETA)):
        assert th.validate_parameters(th.to_parameters(theta)) == ''
        for matrix in th.weights(theta):
            assert np.linalg.eigvalsh(matrix).min() > 0
