"""scenario.tuner_settings: a tuner node's scenario values checked and built like a file's."""

import numpy as np
import pytest

from hybrid_mpc_ros.core.config import ConfigError
from hybrid_mpc_ros.core.scenario import node_defaults, tuner_settings
from scenario_setup import scenario, scenario_path, SHIPPED


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
