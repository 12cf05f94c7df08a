"""Identification of a vehicle the package has no equations for: RotorPy's Hummingbird.

The ``flights`` method (``system_identification.method``): the scenario's own safe MPC
flies the plant near the target with input excitation, each flight is fitted and the next
flown with the fitted model, the first with the model of the rough specifications. The
shipped ``rotorpy/hummingbird`` scenario's model was made by that route; with it the MPC
at its start theta must reach the target despite the model's error (offset-free tracking)
where the plain MPC stops short.
"""

from dataclasses import replace

import numpy as np
import pytest
import yaml

from hybrid_mpc_ros.core.config import ConfigError
from hybrid_mpc_ros.core.learning.episode import rollout
from hybrid_mpc_ros.core.model.flight_identification import FlightSettings
from hybrid_mpc_ros.core.model.flight_log import read_flight
from hybrid_mpc_ros.core.scenario import load_scenario, resolve_scenario_path

pytest.importorskip('rotorpy.vehicles.multirotor')
NAME = 'rotorpy/hummingbird'


def _variant(tmp_path, edit) -> str:
    """Write the Hummingbird scenario with ``edit(data)`` applied; return its path."""
    with open(resolve_scenario_path(NAME), encoding='utf-8') as stream:
        data = yaml.safe_load(stream)
    edit(data)
    path = tmp_path / 'variant.yaml'
    path.write_text(yaml.safe_dump(data))
    return str(path)


def _position_error_after(scenario, policy, steps: int) -> tuple[float, int]:
    record = rollout(scenario.plant(), policy, scenario.x0, steps, sensitivities=False)
    return float(np.linalg.norm(record.x[-1, 0:3] - scenario.x_ref[0:3])), record.failures


@pytest.mark.slow
def test_the_identified_model_flies_the_hummingbird_to_its_target():
    scenario = load_scenario(resolve_scenario_path(NAME))
    header = scenario.nominal_model().header
    assert header['scenario'] == scenario.name and header['settings']['method'] == 'flights'
    error, failures = _position_error_after(scenario, scenario.policy(), 200)
    print(f'offset-free MPC at the start theta: {error:.4f} m from the target after 20 s '
          f'(the {header["chosen"]} model)')
    assert error <= 0.05 and failures == 0


@pytest.mark.slow
def test_flights_identify_any_plant_from_rough_specifications(tmp_path):
    scenario = load_scenario(resolve_scenario_path(NAME), load_model=False)
    assert isinstance(scenario.identification, FlightSettings)
    first = scenario.first_model()
    assert first.header['source'] == 'rough specifications linearised at hover'
    short = {'rounds': 2, 'duration_s': 30.0}
    model = scenario.identify(recordings=str(tmp_path), **short)
    again = scenario.identify(**short)
    np.testing.assert_array_equal(model.A, again.A)          # seeded: the same flights
    header = model.header
    assert header['scenario'] == scenario.name and header['plant']['kind'] == 'rotorpy'
    assert [r['round'] for r in header['rounds']] == [0, 1]
    assert header['rounds'][0]['modes'].get('failsafe', 0) == 0
    # the recordings are the flights that were fitted
    flight = read_flight(tmp_path / 'round_1')
    assert len(flight.odometry_stamp_ns) == 301 and len(flight.command_log_ns) == 300
    # every model was flown on the task, and the one written flies it at the lowest cost
    validation = header['validation']
    assert [flight['model'] for flight in validation] == ['start', 'flight 1', 'flight 2']
    chosen = min(validation, key=lambda flight: flight['cost'])
    assert header['chosen'] == chosen['model']
    fitted = {'start': first.B, 'flight 2': None}.get(chosen['model'])
    if fitted is not None:
        np.testing.assert_array_equal(model.B, fitted)


def test_the_lqr_route_needs_the_plant_equations(tmp_path):
    def lqr_on_rotorpy(data):
        section = data['system_identification']['ros__parameters']
        for key in ('flights', 'specs'):
            section.pop(key)
        section.update(method='lqr', trajectories=2, held_out=1, steps=20,
                       input_noise_std=5.0, position_spread=1.0, velocity_spread=0.5,
                       attitude_spread=0.1, rate_spread=0.1)
    scenario = load_scenario(_variant(tmp_path, lqr_on_rotorpy), load_model=False)
    with pytest.raises(ConfigError, match='set method: flights'):
        scenario.identify()


@pytest.mark.parametrize('edit, message', [
    (lambda s: s['flights'].pop('rounds'), r'flights\.rounds: missing \(method flights\)'),
    (lambda s: s.update(trajectories=100), 'trajectories: given, but method flights does '
                                           'not use it'),
    (lambda s: s['specs'].pop('layout'), r'specs\.layout: missing'),
    (lambda s: s['specs'].update(layout='h'), r"specs.layout: must be one of \['\+', 'x'\]"),
])
def test_the_flights_method_checks_its_keys(tmp_path, edit, message):
    path = _variant(tmp_path, lambda data: edit(
        data['system_identification']['ros__parameters']))
    with pytest.raises(ConfigError, match=message):
        load_scenario(path, load_model=False)


def test_without_specs_the_first_flight_uses_the_model_there_is(tmp_path):
    path = _variant(tmp_path, lambda data: data['system_identification'][
        'ros__parameters'].pop('specs'))
    scenario = load_scenario(path)
    assert scenario.first_model() is scenario.model
    bare = replace(load_scenario(path, load_model=False), model=None)
    with pytest.raises(ConfigError, match='no model to fly the first identification flight'):
        bare.first_model()


def test_a_flight_the_controller_did_not_hold_is_refused(tmp_path):
    # a Crazyflie (72 ms motor lag) flown at 10 Hz with a large excitation tumbles
    def crazy(data):
        data['quadcopter_simulator']['ros__parameters']['rotorpy'].update(
            vehicle='crazyflie')
        shared = data['/**']['ros__parameters']
        shared['u_ref'] = [1788.5] * 4
        shared['constraints']['u_max'] = 2500.0
        ident = data['system_identification']['ros__parameters']
        ident['flights'].update(amplitude_rad_s=300.0, duration_s=30.0)
        ident['specs'].update(mass=0.03, arm_length=0.043, thrust_coeff=2.3e-8,
                              drag_torque_coeff=7.8e-10, inertia_xx=1.4e-5,
                              inertia_yy=1.4e-5, inertia_zz=2.2e-5)
    scenario = load_scenario(_variant(tmp_path, crazy), load_model=False)
    with pytest.raises(ConfigError, match='flight 1 was not held near its hover point'):
        scenario.identify()
