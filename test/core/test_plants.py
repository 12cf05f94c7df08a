"""Plant backends (core/model/plant.py, quadcopter.py, rotorpy_plant.py) against RotorPy itself.

The rotor layouts and command maps are checked against RotorPy's own rotor geometry
(``rotor_pos``, ``rotor_directions``, ``k_eta``, ``k_m``); the RotorPy backend against
``Multirotor.step`` and against the package's quadcopter with the same constants; reset
against a second episode.
"""

import copy
import time

import numpy as np
import pytest
import yaml

from hybrid_mpc_ros.core.config import ConfigError
from hybrid_mpc_ros.core.learning.tuning import simulated_episodes
from hybrid_mpc_ros.core.model.plant import layout_rotors, Plant, rotor_order, rotor_torques
from hybrid_mpc_ros.core.model.quadcopter import Quadcopter, QuadParams
from hybrid_mpc_ros.core.model.rotorpy_plant import preset_parameters, RotorPyPlant
from hybrid_mpc_ros.core.scenario import load_scenario
from scenario_setup import scenario_path

rotorpy_multirotor = pytest.importorskip('rotorpy.vehicles.multirotor')
Multirotor = rotorpy_multirotor.Multirotor
X0 = np.array([0.3, -0.2, 1.0, 0.2, -0.1, 0.05, 0.1, -0.05, 0.3, 0.2, -0.1, 0.05])


def _turned(params: dict, degrees: float) -> dict:
    """RotorPy parameters with the rotor positions turned about body z by ``degrees``."""
    out = copy.deepcopy(params)
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    turn = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    out['rotor_pos'] = {key: turn @ pos for key, pos in params['rotor_pos'].items()}
    return out


def _arm(params: dict) -> float:
    return float(np.linalg.norm(next(iter(params['rotor_pos'].values()))[:2]))


# (vehicle parameters, layout, command_rotors): the Hummingbird ('x'), the Hummingbird
# turned by -45 deg (a '+' vehicle), PX4's SIH quad (an 'x' that numbers its rotors
# otherwise), the Hummingbird with its commands wired to other rotors
CASES = [(preset_parameters('hummingbird'), 'x', (1, 2, 3, 4)),
         (_turned(preset_parameters('hummingbird'), -45.0), '+', (1, 2, 3, 4)),
         (preset_parameters('px4_sihsim_quadx'), 'x', (1, 2, 3, 4)),
         (preset_parameters('hummingbird'), 'x', (2, 3, 4, 1))]
IDS = ['x', '+', 'x-px4', 'x-rewired']


def _vehicle_speeds(params, layout, rotors, u):
    """RotorPy's rotor speeds (its numbering) and the layout's (4,) for commands ``u``."""
    positions = np.array(list(params['rotor_pos'].values()))
    places = layout_rotors(positions, params['rotor_directions'], layout)
    in_layout = u[np.array(rotor_order(rotors))]
    speeds = np.empty(4)
    speeds[list(places)] = in_layout
    return speeds, in_layout


@pytest.mark.parametrize('params,layout,rotors', CASES, ids=IDS)
def test_mixers_agree_with_rotorpy_rotor_geometry(params, layout, rotors):
    vehicle = Multirotor(params, aero=False)
    k, b, arm = params['k_eta'], params['k_m'], _arm(params)
    rng = np.random.default_rng(7)
    for _ in range(20):
        u = rng.uniform(0.0, params['rotor_speed_max'], 4)   # command entries
        speeds, in_layout = _vehicle_speeds(params, layout, rotors, u)
        force, moment = vehicle.compute_body_wrench(np.zeros(3), speeds, np.zeros(3))
        torques = rotor_torques(in_layout ** 2, layout, arm, k, b)
        np.testing.assert_allclose(force, [0.0, 0.0, k * np.sum(u * u)], rtol=1e-13,
                                   atol=1e-13 * abs(force[2]))
        # RotorPy's positions are written with 0.70710678118 (1e-12 relative)
        np.testing.assert_allclose(moment, torques, rtol=1e-10, atol=1e-10 * np.abs(moment).max())


@pytest.mark.parametrize('params,layout,rotors', CASES, ids=IDS)
def test_quadcopter_layouts_accelerate_as_rotorpy(params, layout, rotors):
    """The quadcopter's equations with a layout and a command map: RotorPy's body accelerations."""
    quad = Quadcopter(_matching(params), 0.1, 4, layout=layout, command_rotors=rotors)
    vehicle = Multirotor(params, aero=False)
    rng = np.random.default_rng(11)
    for _ in range(10):
        u = rng.uniform(0.3, 1.0, 4) * params['rotor_speed_max']
        x = np.zeros(12)
        x[6:9] = rng.uniform(-0.5, 0.5, 3)
        state = np.zeros(20)
        state[6:10] = _quaternion(x[6:9])
        state[16:20] = _vehicle_speeds(params, layout, rotors, u)[0]
        rotorpy = vehicle._s_dot_fn(0.0, state, state[16:20])
        ours = quad.f(x, u)
        np.testing.assert_allclose(ours[3:6], rotorpy[3:6], rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(ours[9:12], rotorpy[10:13], rtol=1e-10,
                                   atol=1e-10 * np.abs(rotorpy[10:13]).max())


def _quaternion(euler):
    from hybrid_mpc_ros.core.model.frames import euler_to_quaternion
    return euler_to_quaternion(*euler)


def _matching(params: dict) -> QuadParams:
    """The package's constants of a RotorPy vehicle with its aerodynamics off."""
    return QuadParams(mass=params['mass'], arm_length=_arm(params), thrust_coeff=params['k_eta'],
                      drag_torque_coeff=params['k_m'], inertia_xx=params['Ixx'],
                      inertia_yy=params['Iyy'], inertia_zz=params['Izz'],
                      translational_drag=0.0, rotor_inertia=0.0, gravity=9.81,
                      omega_min=float(params['rotor_speed_min']),
                      omega_max=float(params['rotor_speed_max']))


def test_layout_check_finds_the_vehicles_rotors_and_names_the_layout_that_fits():
    with pytest.raises(ConfigError, match="hummingbird: the vehicle has 0 rotors on the arm at "
                                          "0 deg .* this vehicle fits layout 'x'"):
        RotorPyPlant('hummingbird', layout='+')
    with pytest.raises(ConfigError, match='once each'):
        RotorPyPlant('hummingbird', command_rotors=(1, 1, 2, 3))
    # PX4's SIH quad numbers its rotors front-right, back-left, front-left, back-right
    assert RotorPyPlant('px4_sihsim_quadx').vehicle_rotors == (3, 1, 4, 2)
    assert RotorPyPlant('hummingbird').vehicle_rotors == (1, 2, 3, 4)
    spun = preset_parameters('hummingbird')
    with pytest.raises(ConfigError, match='spins the other way'):
        layout_rotors(np.array(list(spun['rotor_pos'].values())), -spun['rotor_directions'], 'x')
    assert isinstance(RotorPyPlant('crazyflie'), Plant) and isinstance(Quadcopter(), Plant)


@pytest.mark.parametrize('aero,wind', [(False, None), (True, (1.0, -0.5, 0.2))])
def test_a_period_is_rotorpy_own_steps_with_the_command_held(aero, wind):
    """Bit for bit ``Multirotor.step`` at 100 Hz, 10 times per 0.1 s period."""
    plant = RotorPyPlant('hummingbird', aero=aero, wind=wind or (0.0, 0.0, 0.0))
    plant.reset(X0)
    vehicle = Multirotor(plant.params, aero=aero)
    state = vehicle._unpack_state(plant._state.copy())
    rng = np.random.default_rng(5)
    x = X0
    for _ in range(5):
        u = 469.0 + 40.0 * rng.normal(size=4)
        x = plant.step(x, u)
        for _ in range(10):
            state = vehicle.step(state, {'cmd_motor_speeds': u}, 0.01)
    assert np.array_equal(Multirotor._pack_state(state), plant._state)
    np.testing.assert_allclose(x[:6], plant._state[:6], rtol=0, atol=0)


def test_rotorpy_without_aerodynamics_agrees_with_the_quadcopter():
    """Same constants, equal rotor speeds: attitude and rates agree to rounding, position and
    velocity within RotorPy's motor lag (the quadcopter has none)."""
    tight = {'method': 'RK45', 'rtol': 1e-12, 'atol': 1e-12}
    plant = RotorPyPlant('hummingbird', aero=False, integrator_kwargs=tight)
    quad = Quadcopter(_matching(plant.params), 0.1, 100, layout='x')
    k, m, tau = plant.params['k_eta'], plant.params['mass'], plant.params['tau_m']
    rng = np.random.default_rng(3)
    for _ in range(4):
        x0 = np.concatenate([rng.normal(size=3), 0.5 * rng.normal(size=3),
                             rng.uniform(-0.4, 0.4, 3), 0.5 * rng.normal(size=3)])
        plant.reset(x0)
        ours, theirs, before, lag, drift = x0, x0, plant.hover_speed, 0.0, 0.0
        for _ in range(10):
            speed = plant.hover_speed + 20.0 * rng.normal()
            ours, theirs = quad.step(ours, np.full(4, speed)), plant.step(theirs, np.full(4, speed))
            # velocity lost while a rotor settles: 4 k |w^2 - w_before^2| tau / m per change,
            # and the position that velocity error covers in a period
            lag += 4.0 * k * abs(speed ** 2 - before ** 2) * tau / m
            drift += lag * quad.dt
            before = speed
            assert np.max(np.abs(ours[6:12] - theirs[6:12])) < 1e-13
            assert np.max(np.abs(ours[3:6] - theirs[3:6])) <= 1.05 * lag + 1e-9
            assert np.max(np.abs(ours[0:3] - theirs[0:3])) <= 1.05 * drift + 1e-9


def _episode(plant, x0, commands):
    plant.reset(x0)
    xs = [np.array(x0)]
    for u in commands:
        xs.append(plant.step(xs[-1], u))
    return np.array(xs)


def test_reset_restores_rotor_speeds_wind_and_noise():
    plant = RotorPyPlant('hummingbird', aero=True, wind=(2.0, -1.0, 0.0),
                         parameters={'motor_noise_std': 5.0}, noise_seed=3)
    commands = 469.2 + 30.0 * np.random.default_rng(2).normal(size=(20, 4))
    global_stream = np.random.get_state()[1].copy()
    first = _episode(plant, X0, commands)
    assert not np.allclose(plant.rotor_speeds, plant.hover_speed)
    second = _episode(plant, X0, commands)
    assert np.array_equal(first, second)
    assert np.array_equal(np.random.get_state()[1], global_stream)   # numpy's stream untouched
    plant.reset(X0)
    assert np.array_equal(plant.rotor_speeds, np.full(4, plant.hover_speed))
    assert np.array_equal(plant._state[13:16], [2.0, -1.0, 0.0])
    # without the reset the second episode starts from the first one's rotor speeds
    plant.reset(X0)
    x = X0
    for u in commands:
        x = plant.step(x, u)
    np.testing.assert_array_equal(x, first[-1])
    carried = [X0]
    for u in commands:
        carried.append(plant.step(carried[-1], u))
    assert not np.array_equal(np.array(carried), first)


def test_yaw_stays_continuous_past_pi():
    plant = RotorPyPlant('hummingbird', aero=False)
    x0 = np.zeros(12)
    x0[8], x0[11] = 3.0, 2.0                   # yawing at 2 rad/s from 3 rad
    plant.reset(x0)
    x = x0
    for _ in range(5):
        x = plant.step(x, plant.hover_input)
    assert x[8] == pytest.approx(4.0, abs=1e-6)


def _rotorpy_scenario(tmp_path, simulator: dict, u_max: float | None = None):
    with open(scenario_path('arxiv_v1'), encoding='utf-8') as stream:
        data = yaml.safe_load(stream)
    data['quadcopter_simulator']['ros__parameters'] = simulator
    if u_max is not None:
        data['/**']['ros__parameters']['constraints']['u_max'] = u_max
    path = tmp_path / 'rotorpy.yaml'
    path.write_text(yaml.safe_dump(data))
    return path


HUMMINGBIRD = {'kind': 'rotorpy', 'layout': 'x', 'command_rotors': [1, 2, 3, 4],
               'rotorpy': {'vehicle': 'hummingbird', 'aero': True}}


def test_scenario_builds_a_rotorpy_plant_and_checks_its_limits(tmp_path):
    chosen = load_scenario(_rotorpy_scenario(tmp_path, HUMMINGBIRD, u_max=1500.0))
    plant = chosen.plant()
    assert isinstance(plant, RotorPyPlant) and plant.dt == chosen.period_s
    assert (plant.u_min, plant.u_max) == (0.0, 1500.0) and chosen.simulator.plant is None
    with pytest.raises(ConfigError, match=r'leaves the rotor limits \[0, 1500\] of the RotorPy '
                                          'hummingbird'):
        load_scenario(_rotorpy_scenario(tmp_path, HUMMINGBIRD, u_max=1600.0))
    wrong = dict(HUMMINGBIRD, integrator='rk4')
    with pytest.raises(ConfigError, match='integrator: given, but kind rotorpy does not use it'):
        load_scenario(_rotorpy_scenario(tmp_path, wrong))
    unstated = {key: value for key, value in HUMMINGBIRD.items() if key != 'layout'}
    with pytest.raises(ConfigError, match='layout: missing \\(kind rotorpy\\)'):
        load_scenario(_rotorpy_scenario(tmp_path, unstated))
    with pytest.raises(ConfigError, match='fits layout'):
        load_scenario(_rotorpy_scenario(tmp_path, dict(HUMMINGBIRD, layout='+')))
    windy = copy.deepcopy(HUMMINGBIRD)
    windy['rotorpy'].update(wind=[1.0, 0.0, 0.0], inner_step_s=0.005,
                            parameters={'mass': 0.55, 'arm_length': 0.2})
    plant = load_scenario(_rotorpy_scenario(tmp_path, windy)).plant()
    assert plant.inner_steps == 20 and plant.params['mass'] == 0.55
    assert plant.integration == 'rotorpy'
    windy['rotorpy'].update(integration='rk4')
    windy['rotorpy'].pop('inner_step_s')
    plant = load_scenario(_rotorpy_scenario(tmp_path, windy)).plant()
    assert (plant.integration, plant.inner_steps) == ('rk4', 100)
    assert np.linalg.norm(plant.rotor_geometry()[0][0, :2]) == pytest.approx(0.2)


def test_offline_episodes_reset_the_plant(tmp_path):
    chosen = load_scenario(_rotorpy_scenario(tmp_path, HUMMINGBIRD))
    plant, policy = chosen.plant(), chosen.policy()
    episodes = simulated_episodes(plant, policy, chosen.x0, 8)
    theta = chosen.initial_theta()
    first, second = episodes(theta, False), episodes(theta, False)
    assert np.array_equal(first.x, second.x) and np.array_equal(first.u, second.u)


@pytest.mark.parametrize('aero', [True, False])
def test_casadi_transcription_is_rotorpy_dynamics(aero):
    import casadi as ca
    from hybrid_mpc_ros.core.model.rotorpy_casadi import rotorpy_dynamics
    vehicle = Multirotor(preset_parameters('hummingbird', {'k_flap': 0.01}), aero=aero)
    s, command = ca.SX.sym('s', 20), ca.SX.sym('command', 4)
    f = ca.Function('f', [s, command], [rotorpy_dynamics(vehicle, s, command)])
    rng = np.random.default_rng(0)
    for _ in range(50):
        state = rng.normal(size=20)
        state[6:10] /= np.linalg.norm(state[6:10])
        state[16:20] = rng.uniform(300.0, 600.0, 4)
        speeds = rng.uniform(300.0, 600.0, 4)
        theirs = vehicle._s_dot_fn(0.0, state, speeds)
        ours = np.asarray(f(state, speeds)).reshape(20)
        assert np.max(np.abs(ours - theirs)) <= 1e-14 * np.max(np.abs(theirs))


@pytest.mark.parametrize('vehicle', ['hummingbird', 'crazyflie'])
def test_rk4_integration_is_closer_to_the_exact_solution_than_rotorpy_own_steps(vehicle):
    tight = {'method': 'RK45', 'rtol': 1e-11, 'atol': 1e-11}
    exact = RotorPyPlant(vehicle, wind=(1.0, -0.5, 0.0), integrator_kwargs=tight)
    fast = RotorPyPlant(vehicle, wind=(1.0, -0.5, 0.0), integration='rk4')
    own = RotorPyPlant(vehicle, wind=(1.0, -0.5, 0.0))
    commands = exact.hover_speed * (1.0 + 0.02 * np.random.default_rng(1).normal(size=(20, 4)))
    reference = _episode(exact, X0, commands)
    fast_error = np.max(np.abs(_episode(fast, X0, commands) - reference))
    own_error = np.max(np.abs(_episode(own, X0, commands) - reference))
    assert fast_error < 1e-6 and fast_error < own_error
    second = _episode(fast, X0, commands)
    assert np.array_equal(second, _episode(fast, X0, commands))


def test_step_cost_against_the_quadcopter(capsys):
    """Print what a 0.1 s period costs (no assertion: the machine decides)."""
    costs = {}
    for name, plant in (('quadcopter rk4x4', Quadcopter()),
                        ('rotorpy hummingbird aero', RotorPyPlant('hummingbird')),
                        ('rotorpy hummingbird no aero', RotorPyPlant('hummingbird', aero=False)),
                        ('rotorpy hummingbird aero rk4',
                         RotorPyPlant('hummingbird', integration='rk4'))):
        u = plant.hover_input * np.array([1.01, 0.99, 1.0, 1.0])
        plant.reset(X0)
        x = plant.step(X0, u)
        start = time.perf_counter()
        for _ in range(20):
            x = plant.step(x, u)
        costs[name] = (time.perf_counter() - start) / 20 * 1e3
    with capsys.disabled():
        print('\nms per 0.1 s period: ' + ', '.join(f'{k} {v:.3f}' for k, v in costs.items()))
