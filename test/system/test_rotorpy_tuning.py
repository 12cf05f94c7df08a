"""A vehicle the package has no equations for, tuned the ROS way: RotorPy's Hummingbird.

``hybrid-mpc tune --scenario rotorpy/hummingbird`` runs the simulator node with the RotorPy
backend, the offset-free MPC controller and the tuner in lockstep; its costs must be those
of the same tuning offline (``Scenario.offline_tuner``) to rounding, as for the package's
own quadcopter: the backend, the controller's estimate and the tuner's gradient through
the observer are the same code on both routes.
"""

import json

import numpy as np
import pytest

from hybrid_mpc_ros.core.scenario import load_scenario, resolve_scenario_path
from test_cli import last_json, run_cli

pytest.importorskip('rotorpy.vehicles.multirotor')


def test_tuning_through_ros_equals_the_offline_tuning(tmp_path):
    out = tmp_path / 'tuning'
    result = run_cli('tune', '--scenario', 'rotorpy/hummingbird', '--iterations', '2',
                     '--steps', '40', '--out', str(out), timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = last_json(result.stdout)
    assert summary['status'] == 'finished' and summary['reruns'] == 0
    rows = (out / 'hybrid_g0.5.csv').read_text().splitlines()
    header = rows[0].split(',')
    ros_costs = [float(row.split(',')[header.index('cost')]) for row in rows[1:]]

    scenario = load_scenario(resolve_scenario_path('rotorpy/hummingbird'))
    assert scenario.controller.disturbance_observer_gain is not None
    config = scenario.tuning_config(iterations=2, episode_steps=40)
    offline = scenario.offline_tuner(config=config).run()
    offline_costs = [row['cost'] for row in offline.history]
    print(json.dumps({'ros': ros_costs, 'offline': offline_costs}))
    np.testing.assert_allclose(ros_costs, offline_costs, rtol=1e-9)
