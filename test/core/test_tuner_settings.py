"""scenario.tuner_settings: a tuner node's scenario values checked and built like a file's."""

import math

import numpy as np
import pytest

from hybrid_mpc_ros.core.config import ConfigError
from hybrid_mpc_ros.core.learning.mixing import AgreementEta, ScheduleEta
from hybrid_mpc_ros.core.learning.step_rules import ScaleFreeSteps, ScheduleSteps
from hybrid_mpc_ros.core.scenario import node_defaults, TUNER_RULE_PARAMETERS, tuner_settings
from scenario_setup import FAMILY, scenario, scenario_path, SHIPPED


@pytest.mark.parametrize('name', SHIPPED)
def test_node_values_build_the_scenarios_tuning_and_cost(name):
    chosen = scenario(name)
    settings = tuner_settings(node_defaults('hybrid_tuner', scenario_path(name)), 'test')
    assert settings.tuning.to_dict() == chosen.tuning.to_dict()
    assert settings.period_s == chosen.period_s
    np.testing.assert_array_equal(settings.x0, chosen.x0)
    np.testing.assert_array_equal(settings.initial_theta(), chosen.initial_theta())
    mine, theirs = settings.cost(), chosen.cost()
    for field in ('x_ref', 'u_ref', 'qc', 'rc', 'pc', 'x_lb', 'x_ub'):
        np.testing.assert_array_equal(getattr(mine, field), getattr(theirs, field), field)
    assert mine.violation_weight == theirs.violation_weight
    assert settings.run_name == f'hybrid_g{chosen.tuning.gamma:g}'


def test_rclpy_arrays_are_accepted_and_pc_is_ignored_with_the_dare():
    import array
    values = node_defaults('hybrid_tuner', scenario_path('l4dc2026'))
    values = {name: array.array('d', value) if isinstance(value, list) and
              all(isinstance(item, float) for item in value) else value
              for name, value in values.items()}
    # the node declares cost.pc with the default scenario's value even where the file
    # (terminal weight: the DARE) has none
    values['cost.pc'] = array.array('d', [1.0] * 12)
    settings = tuner_settings(values, '/hybrid_tuner')
    assert settings.pc is None
    assert settings.cost().pc.shape == (12, 12)


@pytest.mark.parametrize('key, value, message', [
    ('delta', -1.0, 'hybrid_tuner.delta: must be > 0'),
    ('method', 'newton', 'hybrid_tuner.method: must be one of'),
    ('x_ref', [0.0] * 11, '/**.x_ref: expected 12 values'),
    ('alpha.scale', 1, 'write 1.0'),
    ('episode_steps', 0, 'hybrid_tuner.episode_steps: must be >= 1'),
])
def test_bad_values_name_the_source_and_key(key, value, message):
    values = node_defaults('hybrid_tuner')
    values[key] = value
    with pytest.raises(ConfigError) as error:
        tuner_settings(values, '/my_tuner')
    assert '/my_tuner' in str(error.value) and message in str(error.value), str(error.value)


@pytest.mark.parametrize('name', SHIPPED + FAMILY)
def test_node_values_give_the_offline_tuning_s_rules(name):
    """The node steps, guards and mixes as the offline tuning of the same file."""
    chosen = scenario(name)
    settings = tuner_settings(node_defaults('hybrid_tuner', scenario_path(name)), 'test')
    assert settings.rules == chosen.rules
    theta0 = chosen.initial_theta()
    mine, theirs = settings.tuner_rules(theta0), chosen.tuner_rules(theta0=theta0)
    assert type(mine['step_rule']) is type(theirs['step_rule'])
    assert mine['step_rule'] == theirs['step_rule'] and mine['guard'] == theirs['guard']
    assert type(mine['eta_rule']) is type(theirs['eta_rule'])


def test_rule_keys_the_file_leaves_out_are_declared_and_ignored_unless_chosen():
    values = node_defaults('hybrid_tuner', scenario_path('l4dc2026'))
    # the published scenario chooses the paper's schedule, no guard, the paper's eta
    for name, (default, _, _) in TUNER_RULE_PARAMETERS.items():
        assert name in values, name
    settings = tuner_settings(values, 'test')
    rules = settings.tuner_rules(settings.initial_theta())
    assert isinstance(rules['step_rule'], ScheduleSteps) and rules['guard'] is None
    assert isinstance(rules['eta_rule'], ScheduleEta)
    # choosing the other kinds on the node alone picks up the declared values
    values.update({'step_rule.kind': 'scale_free', 'guard.enabled': True,
                   'eta_rule.kind': 'agreement', 'step_rule.radius': 0.05,
                   'guard.violation_limit': 7.0})
    settings = tuner_settings(values, 'test')
    theta0 = settings.initial_theta()
    rules = settings.tuner_rules(theta0)
    step, guard, eta = rules['step_rule'], rules['guard'], rules['eta_rule']
    assert isinstance(step, ScaleFreeSteps) and step.radius == 0.05
    assert (step.warmup, step.cap) == (10, 1.0)
    np.testing.assert_array_equal(step.entry_scale, np.maximum(np.abs(theta0), 0.1))
    assert (guard.cost_margin, guard.violation_limit) == (0.2, 7.0)
    assert isinstance(eta, AgreementEta) and (eta.beta, eta.prior) == (0.9, 1.0)
    # an infinite violation limit (the declared default) is no limit
    values['guard.violation_limit'] = math.inf
    assert tuner_settings(values, 'test').rules.guard.violation_limit == math.inf


def test_the_declared_rule_values_are_the_settings_for_a_new_vehicle():
    """TUNER_RULE_PARAMETERS restates mismatch_example's rules: they must agree."""
    example = node_defaults('hybrid_tuner', scenario_path('mismatch_example'))
    assert example['step_rule.kind'] == 'scale_free' and example['guard.enabled']
    for name in ('step_rule.radius', 'step_rule.floor', 'step_rule.warmup', 'step_rule.cap',
                 'guard.cost_margin'):
        default, _, (low, high) = TUNER_RULE_PARAMETERS[name]
        assert example[name] == default and type(example[name]) is type(default), name
        assert low <= default <= high


@pytest.mark.parametrize('key, value, message', [
    ('step_rule.radius', 0.0, 'hybrid_tuner.step_rule.radius: must be > 0'),
    ('step_rule.cap', 0.5, 'hybrid_tuner.step_rule.cap: must be >= 1'),
    ('guard.cost_margin', -0.1, 'hybrid_tuner.guard.cost_margin: must be > 0'),
    ('eta_rule.beta', 1.0, 'hybrid_tuner.eta_rule.beta: must be below 1'),
    ('step_rule.kind', 'newton', 'hybrid_tuner.step_rule.kind: must be one of'),
])
def test_bad_rule_values_name_the_key(key, value, message):
    values = node_defaults('hybrid_tuner', scenario_path('mismatch_example'))
    values['eta_rule.kind'] = 'agreement'
    values[key] = value
    with pytest.raises(ConfigError) as error:
        tuner_settings(values, '/my_tuner')
    assert message in str(error.value), str(error.value)
