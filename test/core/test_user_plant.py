"""Tuning against a plant the user brings: an object with ``step`` and ``reset``.

``Scenario.offline_tuner(plant=...)`` flies the user's plant with the scenario's policy,
cost, start theta and rules (step rule, guard, mixing), and resets the plant at every
episode's start.
"""

import numpy as np

from hybrid_mpc_ros.core.learning.step_rules import ScaleFreeSteps
from hybrid_mpc_ros.core.scenario import load_scenario, resolve_scenario_path


class BiasedPlant:
    """The scenario's own plant with a constant rotor-speed bias, counting its resets."""

    def __init__(self, inner, bias):
        self.inner, self.bias, self.resets = inner, np.asarray(bias, dtype=float), 0
        self.dt = inner.dt

    def reset(self, x0):
        self.resets += 1
        self.inner.reset(x0)

    def step(self, x, u):
        return self.inner.step(x, np.asarray(u) + self.bias)


def test_a_user_plant_is_tuned_with_the_scenario_rules():
    scenario = load_scenario(resolve_scenario_path('mismatch_example'))
    plant = BiasedPlant(scenario.plant(), [3.0, -3.0, 3.0, -3.0])
    config = scenario.tuning_config(iterations=3, episode_steps=30)
    rows = []
    tuner = scenario.offline_tuner(plant=plant, config=config, progress=rows.append)
    assert isinstance(tuner.step_rule, ScaleFreeSteps)            # the scenario's, not alpha_k
    assert tuner.guard is scenario.rules.guard
    state = tuner.run()
    assert len(rows) == 3 and plant.resets >= 3 * 2               # base and perturbed episodes
    # the bias is felt: the same theta flown on the scenario's own plant costs otherwise
    own = scenario.offline_tuner(config=config).run()
    assert own.history[0]['cost'] != state.history[0]['cost']
