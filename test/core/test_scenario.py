"""Scenario files: the shipped ones load and say what the papers say; bad ones fail clearly.

Every bad-file test edits one value of the arXiv scenario and asserts that the error names
the file and the key. The ROS test checks that rcl, which parses the same file for the
nodes, reads every value with the same type the loader checked.
"""

import glob
import math
import os

import numpy as np
import pytest
from scenario_setup import FAMILY, scenario, scenario_path, SHIPPED
import yaml

from hybrid_mpc_ros.core import paths
from hybrid_mpc_ros.core.config import ConfigError, flatten
from hybrid_mpc_ros.core.learning.mixing import AgreementEta, ScheduleEta
from hybrid_mpc_ros.core.learning.step_rules import SafetyGuard, ScaleFreeSteps, ScheduleSteps
from hybrid_mpc_ros.core.model.quadcopter import QuadParams
from hybrid_mpc_ros.core.scenario import (default_scenario_path, load_scenario,
                                          resolve_scenario_path)

ARXIV_TEXT = open(scenario_path('arxiv_v1')).read()


@pytest.mark.parametrize('name', SHIPPED)
def test_shipped_scenarios_load_and_build(name):
    chosen = scenario(name)
    assert chosen.name == name and chosen.model.dt == chosen.period_s
    hover = chosen.plant_params.hover_speed
    assert chosen.plant_params.omega_min <= hover <= chosen.plant_params.omega_max
    assert chosen.cost().x_lb.shape == (12,) and chosen.plant().dt == chosen.period_s
    assert chosen.tuning_config().episode_steps == 200
    assert all(chosen.run_config(run.name).method == run.method for run in chosen.runs)
    with pytest.raises(ValueError):
        chosen.x0[0] = 1.0            # shared, read-only


def test_the_default_is_the_published_scenario_and_names_resolve():
    assert os.path.samefile(default_scenario_path(), scenario_path('l4dc2026'))
    assert os.path.samefile(resolve_scenario_path(None), scenario_path('l4dc2026'))
    assert os.path.samefile(resolve_scenario_path('arxiv_v1'), scenario_path('arxiv_v1'))
    assert os.path.samefile(resolve_scenario_path('l4dc2026'), scenario_path('l4dc2026'))
    assert os.path.samefile(resolve_scenario_path('l4dc2026.yaml'), scenario_path('l4dc2026'))
    with pytest.raises(ConfigError, match='mismatch_example.yaml'):
        resolve_scenario_path('no_such_scenario')
    with pytest.raises(ConfigError, match='not found'):     # a path is never a name
        resolve_scenario_path(os.path.join('elsewhere', 'l4dc2026.yaml'))
    assert os.path.samefile(resolve_scenario_path('robustness/issue_vehicle'),
                            scenario_path('robustness/issue_vehicle'))
    with pytest.raises(ConfigError, match='not found'):
        resolve_scenario_path('../scenarios/l4dc2026')


def test_the_arxiv_scenario_is_the_packages_first_reproduction():
    arxiv = scenario('arxiv_v1')
    assert arxiv.x_ref[0:3].tolist() == [-6.0, -3.5, 0.0] and not arxiv.x0.any()
    assert arxiv.mpc_config.x_ub[3:6] == (math.pi / 4,) * 3
    assert arxiv.mpc_config.x_ub[6:9] == (math.pi / 8,) * 3
    assert arxiv.u_ref.tolist() == [arxiv.plant_params.hover_speed] * 4
    assert arxiv.terminal_weight_kind == 'diagonal' and arxiv.violation_weight == 300.0
    config = arxiv.tuning_config()
    assert (config.delta, config.iterations, config.alpha.first_k) == (1e-4, 200, 1)
    assert arxiv.model.c.any() and arxiv.integrator == 'rk4'
    assert [run.name for run in arxiv.runs] == ['zeroth_order', 'model_based', 'hybrid_g0.25',
                                                'hybrid_g0.5', 'hybrid_g0.75', 'exact_model']
    assert arxiv.paper.hybrid_final_cost == 1111.71


def test_the_published_scenario_states_what_the_paper_states():
    """Every value the published paper (L4DC 2026) states about its experiment."""
    published = scenario('l4dc2026')
    config = published.tuning_config()
    assert config.delta == 1e-5 and config.iterations == 300 and config.episode_steps == 200
    alpha = config.alpha
    assert (alpha.kind, alpha.scale, alpha.offset, alpha.power, alpha.first_k) == (
        'log_shifted', 2e-4, 2.0, 0.8, 0)
    assert config.eta_first_k == 0
    assert published.violation_weight == 1e4 and published.terminal_weight_kind == 'dare'
    assert published.pc is None
    model = published.nominal_model()
    np.testing.assert_array_equal(model.c, np.zeros(12))        # g = A x + B u
    assert model.header['settings']['affine'] is False
    assert (published.integrator, published.substeps, published.period_s) == ('euler', 1, 0.1)
    # the start: Q = Qc, R = Rc, P = the same DARE solution as the upper-level weight
    theta0 = published.initial_theta()
    from hybrid_mpc_ros.core.mpc import theta as th
    q_mat, r_mat, p_mat = th.weights(theta0)
    np.testing.assert_allclose(np.diag(q_mat), published.qc)
    np.testing.assert_allclose(np.diag(r_mat), published.rc)
    np.testing.assert_allclose(p_mat, published.cost().pc, rtol=1e-9)
    assert {run.gamma for run in published.runs if run.method == 'hybrid'} == {0.25, 0.5, 0.75}
    assert (published.paper.hybrid_final_cost, published.paper.exact_model_cost) == (
        1084.91, 1081.3)
    # the schedules read with k = 0, 1, 2, ...: iteration 1 is k = 0
    assert alpha(1) == 2e-4 * math.log(2.0) and alpha(2) == 2e-4 * math.log(3.0) / 2 ** 0.8
    eta = published.tuning_config('hybrid', 0.25).eta()
    assert eta(1) == 1.0 and eta(2) == 1.0 / 2 ** 0.25          # the first step is model-based
    assert published.tuning_config('zeroth_order').eta()(1) == 0.0
    assert published.tuning_config('model_based').eta()(5) == 1.0
    assert [run.name for run in published.runs] == [
        'zeroth_order', 'model_based', 'hybrid_g0.25', 'hybrid_g0.5', 'hybrid_g0.75',
        'exact_model']
    # what both versions share (the paper's experiment): references, box, MPC, upper-level weights
    assert published.x_ref.tolist() == [-6.0, -3.5] + [0.0] * 10
    assert published.u_ref.tolist() == [published.plant_params.hover_speed] * 4
    assert published.qc.tolist() == [1.0] * 6 + [0.1] * 6
    assert published.rc.tolist() == [0.01] * 4
    mpc = published.mpc_config
    assert (mpc.horizon, mpc.slack_quadratic, mpc.slack_linear) == (12, 25.0, 25.0)
    assert (mpc.u_min, mpc.u_max) == (0.0, 630.0)
    assert mpc.x_ub == (2.0,) * 3 + (math.pi / 4,) * 3 + (math.pi / 8,) * 3
    assert mpc.x_lb == tuple(-value for value in mpc.x_ub)
    assert published.plant_params == QuadParams()          # the paper's plant constants
    assert published.identification.trajectories == 100


@pytest.mark.parametrize('name', ('arxiv_v1', 'l4dc2026'))
def test_the_paper_scenarios_keep_the_paper_s_raw_schedule_and_no_guard(name):
    chosen = scenario(name)
    config = chosen.tuning_config()
    rules = chosen.tuner_rules(config)
    assert rules['guard'] is None
    assert rules['step_rule'] == ScheduleSteps(config.alpha)       # the Tuner's defaults
    assert rules['eta_rule'] == ScheduleEta(config.eta())


def test_the_mismatch_example_and_the_family_use_the_defaults_for_a_new_vehicle():
    for name in ('mismatch_example',) + FAMILY:
        chosen = scenario(name)
        rules = chosen.rules
        assert (rules.step_rule, rules.radius, rules.floor, rules.warmup, rules.cap) == (
            'scale_free', 0.1, 0.1, 10, 1.0), name
        assert rules.guard == SafetyGuard(cost_margin=0.2) and rules.eta_rule == 'schedule'
    chosen = scenario('mismatch_example')
    config = chosen.tuning_config(method='zeroth_order')
    theta0 = chosen.initial_theta()
    built = chosen.tuner_rules(config, theta0)
    assert isinstance(built['step_rule'], ScaleFreeSteps)
    np.testing.assert_array_equal(built['step_rule'].entry_scale,
                                  np.maximum(np.abs(theta0), 0.1))
    assert built['step_rule'].shape == config.alpha
    assert built['eta_rule'].schedule == config.eta()             # eta = 0: the method's


def test_the_robustness_family():
    """12 vehicles, each wrong for the arXiv model in its own way, from its own start."""
    assert len(FAMILY) >= 12
    arxiv = scenario('arxiv_v1')
    nominal = QuadParams()
    differs = {'mass': [], 'translational_drag': [], 'inertia_xx': [], 'arm_length': []}
    for name in FAMILY:
        chosen = scenario(name)
        assert os.path.samefile(chosen.nominal_model_path, arxiv.nominal_model_path)
        params = chosen.plant_params
        assert params != arxiv.plant_params, name
        for key, values in differs.items():
            if getattr(params, key) != getattr(nominal, key):
                values.append(name)
        # only the plant, start, target, episode length and tuner rules differ from arXiv
        np.testing.assert_array_equal(chosen.u_ref, arxiv.u_ref)
        assert chosen.mpc_config == arxiv.mpc_config
        assert chosen.tuning_config().episode_steps == 100
        assert chosen.tuning_config(episode_steps=200) == arxiv.tuning_config()
    for key, names in differs.items():
        assert len(names) >= 3, (key, names)          # each kind of mismatch, several times
    starts = {tuple(scenario(name).x0) for name in FAMILY}
    targets = {tuple(scenario(name).x_ref) for name in FAMILY}
    assert len(starts) >= 6 and len(targets) == len(FAMILY)


def test_the_mismatch_example_flies_another_vehicle_with_the_arxiv_model():
    mismatch, arxiv = scenario('mismatch_example'), scenario('arxiv_v1')
    assert os.path.samefile(mismatch.nominal_model_path, arxiv.nominal_model_path)
    assert mismatch.plant_params.mass > arxiv.plant_params.mass
    assert mismatch.plant_params.inertia_xx > arxiv.plant_params.inertia_xx
    assert mismatch.plant_params.translational_drag > arxiv.plant_params.translational_drag
    assert not np.array_equal(mismatch.x0, arxiv.x0)
    assert not np.array_equal(mismatch.x_ref, arxiv.x_ref)
    assert mismatch.paper is None


# ------------------------------------------------------------------ bad files

def _write(tmp_path, text, name='bad.yaml'):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _edit(tmp_path, edit):
    """Write the arXiv scenario with ``edit(data)`` applied to its parsed YAML."""
    data = yaml.safe_load(ARXIV_TEXT)
    edit(data)
    return _write(tmp_path, yaml.safe_dump(data, sort_keys=False))


def _params(data, section):
    return data[section]['ros__parameters']


def _expect(path, key, *phrases):
    with pytest.raises(ConfigError) as info:
        load_scenario(path)
    message = str(info.value)
    assert path in message and key in message, message
    for phrase in phrases:
        assert phrase in message, message
    return message


def test_unknown_key_names_the_typo_and_suggests(tmp_path):
    path = _write(tmp_path, ARXIV_TEXT.replace('mass: 0.468', 'mas: 0.468'))
    _expect(path, 'quadcopter_simulator.plant.mas', 'unknown key', "did you mean 'mass'")


def test_node_runtime_settings_and_dotted_names_are_unknown_keys(tmp_path):
    path = _edit(tmp_path, lambda d: _params(d, 'quadcopter_simulator').update(
        clock_mode='lockstep'))
    _expect(path, 'quadcopter_simulator.clock_mode', 'unknown key', "node's own parameter file")
    path = _edit(tmp_path, lambda d: _params(d, 'mpc_controller').update(period_s=0.1))
    _expect(path, 'mpc_controller.period_s', 'belongs in the /** section')
    path = _edit(tmp_path, lambda d: _params(d, 'hybrid_tuner').update({'alpha.scale': 1.0}))
    _expect(path, 'hybrid_tuner.alpha.scale', 'unknown key', 'nested keys')


def test_unknown_and_missing_sections(tmp_path):
    path = _write(tmp_path, ARXIV_TEXT.replace('hybrid_tuner:', 'hybrid_tunr:'))
    _expect(path, 'hybrid_tunr', 'unknown section', "did you mean 'hybrid_tuner'")
    path = _edit(tmp_path, lambda d: d.pop('mpc_controller'))
    _expect(path, 'mpc_controller', 'missing section')
    path = _edit(tmp_path, lambda d: d.update(paper={'citation': 'x'}))
    _expect(path, 'paper', 'ros__parameters')


def test_missing_key(tmp_path):
    path = _edit(tmp_path, lambda d: _params(d, 'mpc_controller').pop('horizon'))
    _expect(path, 'mpc_controller.horizon', 'missing')


def test_wrong_length(tmp_path):
    path = _edit(tmp_path, lambda d: _params(d, '/**')['x_ref'].pop())
    _expect(path, '/**.x_ref', 'expected 12 values, got 11')


def test_non_finite(tmp_path):
    path = _edit(tmp_path, lambda d: _params(d, '/**')['cost_weights']['qc'].__setitem__(
        3, float('nan')))
    _expect(path, '/**.cost_weights.qc', 'entry 3', 'finite')
    path = _edit(tmp_path, lambda d: _params(d, '/**').update(period_s=float('inf')))
    _expect(path, '/**.period_s', 'finite')


def test_wrong_types_say_how_ros_would_read_them(tmp_path):
    path = _write(tmp_path, ARXIV_TEXT.replace('mass: 0.468', 'mass: 1'))
    _expect(path, 'quadcopter_simulator.plant.mass', 'the integer 1', 'write 1.0')
    path = _write(tmp_path, ARXIV_TEXT.replace('delta: 1.0e-4', 'delta: 1e-4'))
    _expect(path, 'hybrid_tuner.delta', "the string '1e-4'", 'write 1.0e-4')
    path = _write(tmp_path, ARXIV_TEXT.replace('iterations: 200', 'iterations: 200.0'))
    _expect(path, 'hybrid_tuner.iterations', 'expected an integer')
    path = _write(tmp_path, ARXIV_TEXT.replace('affine: true', 'affine: 1'))
    _expect(path, 'system_identification.affine', 'true or false')
    path = _write(tmp_path, ARXIV_TEXT.replace('method: hybrid', 'method: hybird'))
    _expect(path, 'hybrid_tuner.method', "must be one of")


def test_out_of_range_values(tmp_path):
    path = _edit(tmp_path, lambda d: _params(d, 'hybrid_tuner').update(delta=-1.0e-4))
    _expect(path, 'hybrid_tuner.delta', 'must be > 0')
    path = _edit(tmp_path, lambda d: _params(d, '/**')['cost_weights']['rc'].__setitem__(
        0, 0.0))
    _expect(path, '/**.cost_weights.rc', 'entry 0', 'must be > 1e-06')


def test_a_vehicle_that_cannot_hover_within_its_rotor_limits(tmp_path):
    # the paper's thrust coefficient carries at most 4 k 630^2 / g = 0.483 kg
    path = _write(tmp_path, ARXIV_TEXT.replace('mass: 0.468', 'mass: 0.55'))
    _expect(path, 'quadcopter_simulator.plant', 'cannot hover', '672.8 rad/s')


def test_mpc_input_box_must_fit_the_rotors_and_hold_hover(tmp_path):
    path = _write(tmp_path, ARXIV_TEXT.replace('u_max: 630.0', 'u_max: 640.0'))
    _expect(path, '/**.constraints.u_max', 'rotor limits')
    path = _write(tmp_path, ARXIV_TEXT.replace('u_max: 630.0', 'u_max: 600.0'))
    _expect(path, '/**.u_ref', 'outside the input box')
    path = _write(tmp_path, ARXIV_TEXT.replace('u_min: 0.0', 'u_min: 630.0'))
    _expect(path, '/**.constraints.u_min', 'below u_max')


def test_an_empty_state_box(tmp_path):
    path = _edit(tmp_path, lambda d: _params(d, '/**')['constraints']['x_lb'].__setitem__(
        4, 3.0))
    _expect(path, '/**.constraints.x_lb', 'entry 4 (state 7)', 'below x_ub')


def test_a_nominal_model_at_another_sampling_time(tmp_path):
    path = _edit(tmp_path, lambda d: _params(d, '/**').update(period_s=0.05))
    _expect(path, '/**.nominal_model_file', 'sampling time of 0.1 s', 'period_s is 0.05 s')


def test_a_missing_or_broken_nominal_model(tmp_path):
    path = _edit(tmp_path, lambda d: _params(d, '/**').update(
        nominal_model_file='no_such_model.npz'))
    _expect(path, '/**.nominal_model_file', 'not found', 'hybrid-mpc identify')
    assert load_scenario(path, load_model=False).model is None   # identify may create it
    broken = tmp_path / 'broken.npz'
    broken.write_bytes(b'not an archive')
    path = _edit(tmp_path, lambda d: _params(d, '/**').update(nominal_model_file=str(broken)))
    _expect(path, '/**.nominal_model_file', 'malformed')


def test_terminal_weight_and_pc_must_agree(tmp_path):
    path = _edit(tmp_path, lambda d: _params(d, 'hybrid_tuner')['cost'].update(
        terminal_weight='dare'))
    _expect(path, 'hybrid_tuner.cost.pc', 'terminal_weight is dare')
    path = _edit(tmp_path, lambda d: _params(d, 'hybrid_tuner')['cost'].pop('pc'))
    _expect(path, 'hybrid_tuner.cost.pc', 'missing')


def test_a_step_size_that_is_not_finite_at_the_first_iteration(tmp_path):
    # log k at k = 0
    path = _edit(tmp_path, lambda d: _params(d, 'hybrid_tuner')['alpha'].update(first_k=0))
    _expect(path, 'hybrid_tuner.alpha', 'first iteration', '-inf')


def _rules_edit(tmp_path, group, values):
    """The arXiv scenario with ``hybrid_tuner.<group>`` replaced by ``values``."""
    return _edit(tmp_path, lambda d: _params(d, 'hybrid_tuner').update({group: values}))


SCALE_FREE = {'kind': 'scale_free', 'radius': 0.1, 'floor': 0.1, 'warmup': 10, 'cap': 2.0}


def test_tuner_rules_from_the_file(tmp_path):
    path = _rules_edit(tmp_path, 'step_rule', SCALE_FREE)
    chosen = load_scenario(path)
    rules = chosen.tuner_rules()
    step = rules['step_rule']
    assert (step.radius, step.warmup, step.cap) == (0.1, 10, 2.0)
    assert min(step.entry_scale) == 0.1 and max(step.entry_scale) > 8.0
    path = _rules_edit(tmp_path, 'guard', {'enabled': True, 'cost_margin': 0.3,
                                           'violation_limit': 50.0})
    assert load_scenario(path).rules.guard == SafetyGuard(0.3, 50.0)
    path = _rules_edit(tmp_path, 'eta_rule', {'kind': 'agreement', 'beta': 0.8, 'prior': 0.5})
    chosen = load_scenario(path)
    hybrid = chosen.tuner_rules(chosen.tuning_config(method='hybrid'))['eta_rule']
    assert isinstance(hybrid, AgreementEta) and (hybrid.beta, hybrid.prior) == (0.8, 0.5)
    assert hybrid.cap == chosen.tuning_config(method='hybrid').eta()
    baseline = chosen.tuner_rules(chosen.tuning_config(method='model_based'))['eta_rule']
    assert isinstance(baseline, ScheduleEta)           # baselines keep their constant eta


@pytest.mark.parametrize('group, values, key, phrases', [
    ('step_rule', {'kind': 'scale_free', 'radius': 0.1, 'floor': 0.1, 'cap': 2.0},
     'step_rule.warmup', ('missing', 'scale_free')),
    ('step_rule', {'kind': 'schedule', 'radius': 0.1}, 'step_rule.radius',
     ('given, but step_rule.kind schedule does not use it',)),
    ('step_rule', dict(SCALE_FREE, kind='trust'), 'step_rule.kind', ("'scale_free'",)),
    ('step_rule', dict(SCALE_FREE, radius=0.0), 'step_rule.radius', ('must be > 0',)),
    ('step_rule', dict(SCALE_FREE, floor=-1.0), 'step_rule.floor', ('must be > 0',)),
    ('step_rule', dict(SCALE_FREE, warmup=0), 'step_rule.warmup', ('must be >= 1',)),
    ('step_rule', dict(SCALE_FREE, warmup=2.0), 'step_rule.warmup', ('an integer',)),
    ('step_rule', dict(SCALE_FREE, cap=0.5), 'step_rule.cap', ('must be >= 1',)),
    ('step_rule', dict(SCALE_FREE, radius=1), 'step_rule.radius', ('write 1.0',)),
    ('guard', {'enabled': True}, 'guard.cost_margin', ('missing', 'guard.enabled true')),
    ('guard', {'enabled': False, 'cost_margin': 0.2}, 'guard.cost_margin',
     ('given, but guard.enabled false',)),
    ('guard', {'enabled': 'yes'}, 'guard.enabled', ('true or false',)),
    ('guard', {'enabled': True, 'cost_margin': 0.0}, 'guard.cost_margin', ('must be > 0',)),
    ('guard', {'enabled': True, 'cost_margin': 0.2, 'violation_limit': -1.0},
     'guard.violation_limit', ('must be >= 0',)),
    ('eta_rule', {'kind': 'agreement', 'beta': 0.9}, 'eta_rule.prior', ('missing',)),
    ('eta_rule', {'kind': 'schedule', 'beta': 0.9}, 'eta_rule.beta', ('does not use it',)),
    ('eta_rule', {'kind': 'agreement', 'beta': 1.0, 'prior': 1.0}, 'eta_rule.beta',
     ('must be below 1',)),
    ('eta_rule', {'kind': 'agreement', 'beta': 0.9, 'prior': 2.0}, 'eta_rule.prior',
     ('must be <= 1',)),
    ('zeroth_order', {'directions': 3, 'antithetic': True}, 'zeroth_order.directions',
     ('must be even',)),
    ('zeroth_order', {'directions': 0}, 'zeroth_order.directions', ('must be >= 1',)),
])
def test_bad_tuner_rules(tmp_path, group, values, key, phrases):
    _expect(_rules_edit(tmp_path, group, values), f'hybrid_tuner.{key}', *phrases)


def test_zeroth_order_directions_reach_the_tuning_configuration(tmp_path):
    assert (scenario().tuning_config().zo_directions, scenario().tuning_config().zo_antithetic) \
        == (1, False)
    config = load_scenario(_rules_edit(tmp_path, 'zeroth_order', {
        'directions': 4, 'antithetic': True})).tuning_config()
    assert (config.zo_directions, config.zo_antithetic) == (4, True)


def test_missing_tuner_rule_groups(tmp_path):
    for group in ('step_rule', 'guard', 'eta_rule'):
        path = _edit(tmp_path, lambda d: _params(d, 'hybrid_tuner').pop(group))
        _expect(path, f'hybrid_tuner.{group}', 'missing')


def test_reproduction_runs(tmp_path):
    path = _edit(tmp_path, lambda d: _params(d, 'reproduction').pop('gammas'))
    _expect(path, 'reproduction.gammas', 'missing', 'hybrid')
    path = _edit(tmp_path, lambda d: _params(d, 'reproduction').update(
        methods=['hybrid', 'hybrid']))
    _expect(path, 'reproduction.methods', 'distinct')
    path = _edit(tmp_path, lambda d: _params(d, 'reproduction').update(methods=[]))
    _expect(path, 'reproduction.methods', 'non-empty')


def test_not_a_parameter_file(tmp_path):
    path = _write(tmp_path, '- just\n- a list\n')
    with pytest.raises(ConfigError, match='must hold a mapping'):
        load_scenario(path)
    with pytest.raises(ConfigError, match='not found'):
        load_scenario(tmp_path / 'missing.yaml')


# ------------------------------------------------------------------ read by ROS

_TYPES = {bool: 'BOOL', int: 'INTEGER', float: 'DOUBLE', str: 'STRING'}


def _ros_type(value):
    if isinstance(value, list):
        return _TYPES[type(value[0])] + '_ARRAY'
    return _TYPES[type(value)]


@pytest.mark.parametrize('name', SHIPPED + FAMILY[:1])
def test_ros_reads_every_value_as_the_loader_checked_it(name):
    """rcl parses the file for each node section; types and values match PyYAML's reading."""
    import rclpy
    from rclpy.context import Context
    path = scenario_path(name)
    with open(path) as stream:
        data = yaml.safe_load(stream)
    shared = flatten(data['/**']['ros__parameters'])
    context = Context()
    rclpy.init(args=['--ros-args', '--params-file', path], context=context)
    try:
        for section in data:
            if section == '/**':
                continue
            expected = dict(shared, **flatten(data[section]['ros__parameters']))
            node = rclpy.create_node(
                section, context=context, start_parameter_services=False, enable_rosout=False,
                automatically_declare_parameters_from_overrides=True)
            try:
                got = node.get_parameters_by_prefix('')
                for builtin in ('use_sim_time', 'start_type_description_service'):
                    got.pop(builtin, None)      # every rclpy node declares these
                assert set(got) == set(expected), section
                for key, value in expected.items():
                    parameter = got[key]
                    assert parameter.type_.name == _ros_type(value), (section, key)
                    read = parameter.value
                    read = list(read) if isinstance(value, list) else read
                    assert read == value, (section, key)
            finally:
                node.destroy_node()
    finally:
        rclpy.try_shutdown(context=context)


def test_setup_installs_the_scenarios(monkeypatch):
    """setup.py's data files hold every scenario file, families included, where it belongs."""
    import runpy
    import setuptools
    root = os.path.dirname(paths.source_config_dir())
    captured = {}
    monkeypatch.setattr(setuptools, 'setup', lambda **kwargs: captured.update(kwargs))
    monkeypatch.chdir(root)
    runpy.run_path(os.path.join(root, 'setup.py'))
    installed = {os.path.join(folder, os.path.basename(name))
                 for folder, names in captured['data_files'] for name in names}
    scenarios = glob.glob('config/scenarios/**/*.yaml', recursive=True)
    assert any(os.sep + 'rotorpy' + os.sep in name for name in scenarios)
    for name in scenarios:
        assert os.path.join('share', 'hybrid_mpc_ros', name) in installed, name
    with open(os.path.join(root, 'scripts', 'colcon_check.sh')) as stream:
        assert "find config/scenarios -name '*.yaml'" in stream.read()


def test_loading_a_scenario_imports_no_ros():
    """The scenario module is core: offline commands read scenarios without rclpy."""
    import subprocess
    import sys
    code = ('import sys; from hybrid_mpc_ros.core.scenario import load_scenario, '
            'default_scenario_path; load_scenario(default_scenario_path()).cost(); '
            'print(sorted(m for m in sys.modules if m.startswith("rclpy")))')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == '[]'


def test_a_node_declares_its_scenario_values_and_gets_the_loader_s_checks():
    from hybrid_mpc_ros.core.scenario import node_defaults, node_scenario
    values = node_defaults('mpc_controller', scenario_path('arxiv_v1'))
    assert values['horizon'] == 12 and values['constraints.u_max'] == 630.0
    assert 'plant.mass' not in values and 'method' not in values     # other nodes' sections
    settings = node_scenario('mpc_controller', values, '/mpc_controller')
    assert settings.tuner is None and settings.simulator is None
    chosen = scenario('arxiv_v1')
    assert settings.mpc_config == chosen.mpc_config
    np.testing.assert_array_equal(settings.initial_theta(), chosen.initial_theta())
    bad = dict(values, **{'constraints.x_lb': [0.0] * 8})
    with pytest.raises(ConfigError, match=r'node /mpc_controller: /\*\*.constraints.x_lb'):
        node_scenario('mpc_controller', bad, '/mpc_controller')
    with pytest.raises(ConfigError, match='horizon'):
        node_scenario('mpc_controller', dict(values, horizon=0), '/mpc_controller')


def test_every_key_has_a_description_and_its_bounds_as_the_range():
    """What a node declares: a description for every key, the loader's bounds as the range."""
    from hybrid_mpc_ros.core.scenario import node_parameters
    for node in ('mpc_controller', 'hybrid_tuner'):
        for name, (_, spec) in node_parameters(node).items():
            assert spec.description, (node, name)
    tuner = node_parameters('hybrid_tuner')
    assert tuner['gamma'][1].range() == (0.0, math.inf) and tuner['gamma'][1].constraints
    assert tuner['step_rule.warmup'][1].range() == (1, 1_000_000)
    assert tuner['eta_rule.prior'][1].range() == (-1.0, 1.0)
    assert tuner['cost.pc'][0] is None and tuner['step_rule.radius'][0] is None


def test_the_ablation_s_guard_variant_is_the_published_scenario_with_the_guard_on():
    """paper/ablation_l4dc2026/l4dc2026_guard.yaml may not drift from the published file."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    variant_path = os.path.join(root, 'paper', 'ablation_l4dc2026', 'l4dc2026_guard.yaml')
    with open(variant_path) as stream:
        variant = flatten(yaml.safe_load(stream))
    with open(scenario_path('l4dc2026')) as stream:
        published = flatten(yaml.safe_load(stream))
    differ = {key for key in set(variant) | set(published)
              if variant.get(key, 'missing') != published.get(key, 'missing')}
    assert differ == {'hybrid_tuner.ros__parameters.guard.enabled',
                      'hybrid_tuner.ros__parameters.guard.cost_margin'}, differ
    assert isinstance(load_scenario(variant_path, load_model=False).rules.guard, SafetyGuard)
