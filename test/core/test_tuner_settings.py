"""scenario.node_scenario: a tuner node's scenario values checked and built like a file's."""

import numpy as np
import pytest

from hybrid_mpc_ros.core.config import ConfigError
from hybrid_mpc_ros.core.learning.mixing import AgreementEta, ScheduleEta
from hybrid_mpc_ros.core.learning.step_rules import ScaleFreeSteps, ScheduleSteps
from hybrid_mpc_ros.core.scenario import node_defaults, node_parameters, node_scenario
from scenario_setup import FAMILY, scenario, scenario_path, SHIPPED


@pytest.mark.parametrize('name', SHIPPED)
def test_node_values_build_the_scenarios_tuning_and_cost(name):
    chosen = scenario(name)
    values = node_defaults('hybrid_tuner', scenario_path(name))
    settings = node_scenario('hybrid_tuner', values, 'test')
    assert settings.tuning.to_dict() == chosen.tuning.to_dict()
    assert settings.period_s == chosen.period_s
    np.testing.assert_array_equal(settings.x0, chosen.x0)
    np.testing.assert_array_equal(settings.initial_theta(), chosen.initial_theta())
    mine, theirs = settings.cost(), chosen.cost()
    for field in ('x_ref', 'u_ref', 'qc', 'rc', 'pc', 'x_lb', 'x_ub'):
        np.testing.assert_array_equal(getattr(mine, field), getattr(theirs, field), field)
    assert mine.violation_weight == theirs.violation_weight
    assert settings.run_name == f'hybrid_g{chosen.tuning.gamma:g}'


def test_rclpy_arrays_are_accepted_and_unset_keys_are_absent():
    import array
    values = node_defaults('hybrid_tuner', scenario_path('l4dc2026'))
    values = {name: array.array('d', value) if isinstance(value, list) and
              all(isinstance(item, float) for item in value) else value
              for name, value in values.items()}
    # the node declares cost.pc without a value (None) where the file (terminal weight:
    # the DARE) has none
    values['cost.pc'] = None
    settings = node_scenario('hybrid_tuner', values, '/hybrid_tuner')
    assert settings.pc is None
    assert settings.cost().pc.shape == (12, 12)
    # given with the DARE, it is refused as in a file
    values['cost.pc'] = array.array('d', [1.0] * 12)
    with pytest.raises(ConfigError, match='cost.pc: given, but terminal_weight is dare'):
        node_scenario('hybrid_tuner', values, '/hybrid_tuner')


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
        node_scenario('hybrid_tuner', values, '/my_tuner')
    assert '/my_tuner' in str(error.value) and message in str(error.value), str(error.value)


@pytest.mark.parametrize('name', SHIPPED + FAMILY)
def test_node_values_give_the_offline_tuning_s_rules(name):
    """The node steps, guards and mixes as the offline tuning of the same file."""
    chosen = scenario(name)
    values = node_defaults('hybrid_tuner', scenario_path(name))
    settings = node_scenario('hybrid_tuner', values, 'test')
    assert settings.rules == chosen.rules
    theta0 = chosen.initial_theta()
    mine, theirs = settings.tuner_rules(theta0=theta0), chosen.tuner_rules(theta0=theta0)
    assert type(mine['step_rule']) is type(theirs['step_rule'])
    assert mine['step_rule'] == theirs['step_rule'] and mine['guard'] == theirs['guard']
    assert type(mine['eta_rule']) is type(theirs['eta_rule'])


def test_rule_keys_the_file_leaves_out_are_declared_unset():
    declared = node_parameters('hybrid_tuner')
    # the default scenario chooses the paper's schedule, no guard, the paper's eta
    for name in ('step_rule.radius', 'step_rule.floor', 'step_rule.warmup', 'step_rule.cap',
                 'guard.cost_margin', 'guard.violation_limit', 'eta_rule.beta',
                 'eta_rule.prior', 'cost.pc'):
        default, spec = declared[name]
        assert default is None and spec.description, name
    values = {name: default for name, (default, _) in declared.items()}
    settings = node_scenario('hybrid_tuner', values, 'test')
    rules = settings.tuner_rules(theta0=settings.initial_theta())
    assert isinstance(rules['step_rule'], ScheduleSteps) and rules['guard'] is None
    assert isinstance(rules['eta_rule'], ScheduleEta)
    # choosing another kind on the node alone needs its keys, as in a file
    values['step_rule.kind'] = 'scale_free'
    with pytest.raises(ConfigError, match=r'step_rule.radius: missing \(step_rule.kind '
                                          r'scale_free\)'):
        node_scenario('hybrid_tuner', values, 'test')
    values.update({'guard.enabled': True, 'eta_rule.kind': 'agreement',
                   'step_rule.radius': 0.05, 'step_rule.floor': 0.1, 'step_rule.warmup': 10,
                   'step_rule.cap': 1.0, 'guard.cost_margin': 0.2,
                   'guard.violation_limit': 7.0, 'eta_rule.beta': 0.9, 'eta_rule.prior': 1.0})
    settings = node_scenario('hybrid_tuner', values, 'test')
    theta0 = settings.initial_theta()
    rules = settings.tuner_rules(theta0=theta0)
    step, guard, eta = rules['step_rule'], rules['guard'], rules['eta_rule']
    assert isinstance(step, ScaleFreeSteps) and step.radius == 0.05
    assert (step.warmup, step.cap) == (10, 1.0)
    np.testing.assert_array_equal(step.entry_scale, np.maximum(np.abs(theta0), 0.1))
    assert (guard.cost_margin, guard.violation_limit) == (0.2, 7.0)
    assert isinstance(eta, AgreementEta) and (eta.beta, eta.prior) == (0.9, 1.0)
    # no violation limit given (unset): no limit
    values['guard.violation_limit'] = None
    assert node_scenario('hybrid_tuner', values, 'test').rules.guard.violation_limit == np.inf


def test_the_settings_for_a_new_vehicle_lie_in_the_declared_ranges():
    """mismatch_example's rules (the settings for a new vehicle) pass the nodes' ranges."""
    example = node_defaults('hybrid_tuner', scenario_path('mismatch_example'))
    assert example['step_rule.kind'] == 'scale_free' and example['guard.enabled']
    declared = node_parameters('hybrid_tuner')
    for name in ('step_rule.radius', 'step_rule.floor', 'step_rule.warmup', 'step_rule.cap',
                 'guard.cost_margin'):
        low, high = declared[name][1].range()
        assert low <= example[name] <= high, name


@pytest.mark.parametrize('key, value, message', [
    ('step_rule.radius', 0.0, 'hybrid_tuner.step_rule.radius: must be > 0'),
    ('step_rule.cap', 0.5, 'hybrid_tuner.step_rule.cap: must be >= 1'),
    ('guard.cost_margin', -0.1, 'hybrid_tuner.guard.cost_margin: must be > 0'),
    ('eta_rule.beta', 1.0, 'hybrid_tuner.eta_rule.beta: must be below 1'),
    ('step_rule.kind', 'newton', 'hybrid_tuner.step_rule.kind: must be one of'),
])
def test_bad_rule_values_name_the_key(key, value, message):
    values = node_defaults('hybrid_tuner', scenario_path('mismatch_example'))
    values.update({'eta_rule.kind': 'agreement', 'eta_rule.beta': 0.9, 'eta_rule.prior': 1.0})
    values[key] = value
    with pytest.raises(ConfigError) as error:
        node_scenario('hybrid_tuner', values, '/my_tuner')
    assert message in str(error.value), str(error.value)
