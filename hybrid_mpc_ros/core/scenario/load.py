"""The one scenario loader: a scenario file, or a node's ROS parameter values.

:func:`load_scenario` reads a file's sections, :func:`node_scenario` the flattened values
a node was given (its section and ``/**``); both check them with the same schema and the
same cross-checks (:func:`_build`) and raise :class:`ConfigError` naming the file or the
node, the key and the problem. :func:`node_parameters` is what a node declares: every
key of its section and of ``/**`` with its spec and the default scenario's value (None
where the default scenario leaves an optional key out: the node declares it unset).
"""

from __future__ import annotations

import array
from dataclasses import fields
import math
import os
from typing import Any, Mapping

import numpy as np

from hybrid_mpc_ros.core import paths
from hybrid_mpc_ros.core.config import ConfigError, flatten, load_yaml
from hybrid_mpc_ros.core.learning.schedules import Schedule
from hybrid_mpc_ros.core.learning.step_rules import SafetyGuard
from hybrid_mpc_ros.core.learning.run import TuningConfig
from hybrid_mpc_ros.core.model.flight_identification import FlightSettings, VehicleSpecs
from hybrid_mpc_ros.core.model.identification import IdentificationSettings
from hybrid_mpc_ros.core.model.nominal_model import AffineModel
from hybrid_mpc_ros.core.model.plant import check_layout, IDENTITY_ROTORS
from hybrid_mpc_ros.core.model.quadcopter import QuadParams
from hybrid_mpc_ros.core.mpc.policy import SOFT_IDX
from hybrid_mpc_ros.core.param_schema import flat_specs, ParameterFile, Spec
from hybrid_mpc_ros.core.scenario.files import default_scenario_path
from hybrid_mpc_ros.core.scenario.model import Scenario
from hybrid_mpc_ros.core.scenario.schema import (IDENTIFICATION_METHOD_KEYS, NODE_SECTIONS,
                                                 OPTIONAL_SECTIONS, PLANT_KIND_KEYS,
                                                 REQUIRED_SPECS, RULE_CHOICES, SCHEMA,
                                                 SHARED, SIMULATOR, SPEC_KEYS,
                                                 unknown_key_hint)
from hybrid_mpc_ros.core.scenario.sections import (AblationSettings, Controller, frozen,
                                                   PaperNumbers, Reproduction, RotorPySettings,
                                                   Run, run_name, Shared, Simulator, Tuner,
                                                   TunerRules)


def load_scenario(path: str | os.PathLike, load_model: bool = True) -> Scenario:
    """Read and check the scenario file at ``path``; see the package docstring.

    With ``load_model`` False a missing nominal model file is allowed (``identify`` is
    about to write it); an existing one is still checked. Raises :class:`ConfigError`
    naming the file, the key and the problem; builds no solver.
    """
    path = os.fspath(path)
    file = ParameterFile(path, 'scenario', unknown_key_hint)
    sections = file.sections(load_yaml(path), tuple(SCHEMA), OPTIONAL_SECTIONS)
    return _build(file, sections, os.path.splitext(os.path.basename(path))[0], load_model)


def node_scenario(node: str, values: Mapping[str, Any], source: str) -> Scenario:
    """Check a node's scenario values like a scenario file's, and build the scenario.

    ``values`` maps the flattened names of :func:`node_parameters` for ``node`` to the
    values the node was given (plain Python or rclpy's arrays; None: not given);
    ``source`` names where they came from in error messages (e.g. the node's name). The
    scenario has the ``/**`` section and the node's; the others are None.
    """
    if node not in NODE_SECTIONS:
        raise ValueError(f'unknown node {node!r}; scenario sections: {NODE_SECTIONS}')
    nested = nested_values({name: value for name, value in values.items() if value is not None})
    file = ParameterFile(source, 'node', unknown_key_hint)
    shared = {key: nested[key] for key in SHARED if key in nested}
    own = {key: value for key, value in nested.items() if key not in SHARED}
    return _build(file, {'/**': shared, node: own}, source, load_model=True)


def node_defaults(node: str, path: str | os.PathLike | None = None) -> dict[str, Any]:
    """Return the scenario values ``node`` reads from the file at ``path``, as ROS names.

    The ``/**`` section and the node's own section of the scenario file (default: the
    default scenario), e.g. ``{'period_s': 0.1, 'constraints.u_min': 0.0, 'horizon': 12,
    ...}``; keys the file leaves out are not there. The file is checked first
    (:func:`load_scenario`, without building anything).
    """
    path = os.fspath(path or default_scenario_path())
    if node not in NODE_SECTIONS:
        raise ValueError(f'unknown node {node!r}; scenario sections: {NODE_SECTIONS}')
    load_scenario(path, load_model=False)
    file = ParameterFile(path, 'scenario', unknown_key_hint)
    sections = file.sections(load_yaml(path), tuple(SCHEMA), OPTIONAL_SECTIONS)
    return flatten(dict(sections['/**'], **sections[node]))


def node_parameters(node: str) -> dict[str, tuple[Any, Spec]]:
    """Return what ``node`` declares of the scenario: ``{ROS name: (default, spec)}``.

    Every key of ``/**`` and of the node's section, with the default scenario's value
    (None for an optional key it leaves out: declared typed, without a value), so a
    node's defaults live in the scenario file only.
    """
    defaults = node_defaults(node)
    specs = dict(flat_specs(SHARED), **flat_specs(SCHEMA[node]))
    return {name: (defaults.get(name), spec) for name, (spec, _) in specs.items()}


def nested_values(values: Mapping[str, Any]) -> dict:
    """``{'a.b': v}`` -> ``{'a': {'b': v}}``; arrays (rclpy's array.array) become lists."""
    out: dict = {}
    for name, value in values.items():
        if hasattr(value, 'tolist'):
            value = value.tolist()
        elif isinstance(value, (tuple, array.array)):
            value = list(value)
        group = out
        *parents, leaf = name.split('.')
        for parent in parents:
            group = group.setdefault(parent, {})
        group[leaf] = value
    return out


# ------------------------------------------------------------------ the checks

def _build(file: ParameterFile, sections: dict, name: str, load_model: bool) -> Scenario:
    """Check every section given (``{section: raw values}``) and build the scenario."""
    values = {section: file.read(section, data, SCHEMA[section])
              for section, data in sections.items()}
    shared = _shared(file, values['/**'])
    simulator = (_simulator(file, shared, values['quadcopter_simulator'])
                 if 'quadcopter_simulator' in values else None)
    controller = (Controller(**values['mpc_controller']) if 'mpc_controller' in values
                  else None)
    tuner = _tuner(file, values['hybrid_tuner']) if 'hybrid_tuner' in values else None
    reproduction = (_reproduction(file, values['reproduction']) if 'reproduction' in values
                    else None)
    ablation = _ablation(file, values, reproduction.runs) if 'ablation' in values else None
    ident = values.get('system_identification')
    identification = _identification(file, shared, ident) if ident is not None else None
    model_path, model = _load_model(file, shared, load_model)
    paper = values.get('paper')
    return Scenario(
        path=file.path, name=name, shared=shared, simulator=simulator, controller=controller,
        tuner=tuner, identification=identification,
        reproduction=reproduction, ablation=ablation,
        paper=PaperNumbers(**paper) if paper is not None else None,
        nominal_model_path=model_path, model=model)


def _identification(file: ParameterFile, shared: Shared, ident: dict):
    """Check ``system_identification`` by method; its settings (lqr or flights).

    The chosen method's keys (``IDENTIFICATION_METHOD_KEYS``) must be there and the other
    method's are refused; rough specifications, when given, need every key of
    ``REQUIRED_SPECS``.
    """
    section = 'system_identification'
    method = ident.get('method', 'lqr')
    needs, allows = IDENTIFICATION_METHOD_KEYS[method]
    every = {key for keys in IDENTIFICATION_METHOD_KEYS.values() for part in keys
             for key in part}
    given = [f'flights.{key}' for key in ident.get('flights') or {}]
    given += ['specs'] if ident.get('specs') else []
    given += [key for key in ident if key in every]
    for name in given:
        if name not in needs + allows:
            raise file.error(section, name, f'given, but method {method} does not use it')
    for name in needs:
        if name not in given:
            raise file.error(section, name, f'missing (method {method})')
    if method == 'lqr':
        if ident['prediction_horizon'] > ident['steps']:
            raise file.error(section, 'prediction_horizon',
                             f'must not exceed steps ({ident["steps"]}), got '
                             f'{ident["prediction_horizon"]}')
        return IdentificationSettings(**{item.name: ident[item.name]
                                         for item in fields(IdentificationSettings)})
    flights, specs = ident['flights'], ident.get('specs') or None
    if specs is not None:
        missing = [key for key in REQUIRED_SPECS if key not in specs]
        if missing:
            raise file.error(section, f'specs.{missing[0]}',
                             'missing (rough specifications need mass, arm_length, '
                             'thrust_coeff, drag_torque_coeff, the inertia and the layout)')
        try:
            layout, rotors = check_layout(specs['layout'],
                                          specs.get('command_rotors', IDENTITY_ROTORS))
            params = QuadParams.from_mapping(dict(
                {key: specs.get(key, 0.0) for key in SPEC_KEYS},
                omega_min=shared.u_min, omega_max=shared.u_max))
        except ConfigError as exc:
            raise file.error(section, 'specs', str(exc)) from None
        specs = VehicleSpecs(params, layout, rotors)
    return FlightSettings(flights['rounds'], flights['duration_s'], flights['amplitude_rad_s'],
                          flights.get('kind', 'prbs'), ident['seed'],
                          ident['prediction_horizon'], ident['affine'], specs)


def _shared(file: ParameterFile, shared: dict) -> Shared:
    box = shared['constraints']
    if not box['u_min'] < box['u_max']:
        raise file.error('/**', 'constraints.u_min',
                         f'must be below u_max, got [{box["u_min"]:g}, {box["u_max"]:g}]')
    empty = np.flatnonzero(box['x_lb'] >= box['x_ub'])
    if empty.size:
        i = int(empty[0])
        raise file.error('/**', 'constraints.x_lb',
                         f'entry {i} (state {SOFT_IDX[i]}) must be below x_ub, got '
                         f'{box["x_lb"][i]:g} >= {box["x_ub"][i]:g}')
    outside = np.flatnonzero((shared['u_ref'] < box['u_min'])
                             | (shared['u_ref'] > box['u_max']))
    if outside.size:
        raise file.error('/**', 'u_ref', f'entry {int(outside[0])} lies outside the input '
                         f'box [{box["u_min"]:g}, {box["u_max"]:g}]')
    weights = shared['cost_weights']
    return Shared(shared['period_s'], frozen(shared['initial_state']), frozen(shared['x_ref']),
                  frozen(shared['u_ref']), frozen(box['x_lb']), frozen(box['x_ub']),
                  box['u_min'], box['u_max'], frozen(weights['qc']), frozen(weights['rc']),
                  shared['nominal_model_file'])


def simulator_section(file: ParameterFile, sim: dict) -> Simulator:
    """Check the simulator section's checked values ``sim`` by plant kind; build it.

    The chosen kind's keys (``PLANT_KIND_KEYS``) must be there, the other kind's are
    refused; the layout and command map are checked, and a RotorPy vehicle against its
    rotor geometry; the vehicle must hover within its rotor limits. Errors name ``file``
    (a scenario file or a node) and the key. Nothing is checked of a plant the section
    does not use.
    """
    section = 'quadcopter_simulator'
    kind = sim.get('kind', 'quadcopter')
    needs, allows = PLANT_KIND_KEYS[kind]
    given = []
    for key, value in sim.items():
        if key in ('plant', 'rotorpy'):
            given += [f'{key}.{sub}' for sub in value]
        elif key != 'kind':
            given.append(key)
    for name in given:
        if name not in needs + allows and name.split('.')[0] not in needs + allows:
            raise file.error(section, name, f'given, but kind {kind} does not use it')
    for name in needs:
        if name == 'plant':
            missing = [key for key in SIMULATOR['plant'] if key not in sim.get('plant', {})]
            if missing:
                raise file.error(section, f'plant.{missing[0]}', f'missing (kind {kind})')
        elif name not in given:
            raise file.error(section, name, f'missing (kind {kind})')
    try:
        layout, rotors = check_layout(sim.get('layout', '+'),
                                      sim.get('command_rotors', IDENTITY_ROTORS))
    except ConfigError as exc:
        raise file.error(section, 'command_rotors', str(exc)) from None
    if kind == 'rotorpy':
        values = sim['rotorpy']
        wind = values.get('wind')
        settings = RotorPySettings(
            values['vehicle'], values['aero'],
            tuple(float(item) for item in wind) if wind is not None else None,
            values.get('integration', 'rotorpy'), values.get('inner_step_s'),
            values.get('noise_seed', 0),
            tuple(sorted(values.get('parameters', {}).items())))
        return Simulator(None, None, None, kind, layout, rotors, settings)
    try:
        params = QuadParams.from_mapping(sim['plant'])
    except ConfigError as exc:
        raise file.error(section, 'plant', str(exc)) from None
    hover = params.hover_speed
    if not params.omega_min <= hover <= params.omega_max:
        raise file.error(section, 'plant',
                         f'this vehicle cannot hover within its rotor limits: hover speed '
                         f'sqrt(m g / (4 k)) = sqrt({params.mass:g} * {params.gravity:g} / '
                         f'(4 * {params.thrust_coeff:g})) = {hover:.1f} rad/s is outside '
                         f'[omega_min, omega_max] = [{params.omega_min:g}, '
                         f'{params.omega_max:g}] rad/s')
    return Simulator(sim['integrator'], sim['substeps'], params, kind, layout, rotors)


def _simulator(file: ParameterFile, shared: Shared, sim: dict) -> Simulator:
    """Build the simulator section; check the MPC input box against its vehicle."""
    simulator = simulator_section(file, sim)
    if simulator.kind == 'rotorpy':
        try:
            plant = simulator.build(shared.period_s)
        except ConfigError as exc:
            raise file.error('quadcopter_simulator', 'rotorpy', str(exc)) from None
        low, high, hover = plant.u_min, plant.u_max, plant.hover_speed
        vehicle = f'the RotorPy {simulator.rotorpy.vehicle}'
    else:
        params = simulator.plant
        low, high, hover = params.omega_min, params.omega_max, params.hover_speed
        vehicle = 'quadcopter_simulator.plant'
    if shared.u_min < low or shared.u_max > high:
        raise file.error('/**', 'constraints.u_max' if shared.u_max > high
                         else 'constraints.u_min',
                         f'the MPC input box [{shared.u_min:g}, {shared.u_max:g}] rad/s '
                         f'leaves the rotor limits [{low:g}, {high:g}] of {vehicle} (the '
                         'vehicle would clamp the commands)')
    if not shared.u_min <= hover <= shared.u_max:
        raise file.error('/**', 'constraints',
                         f'the MPC input box [{shared.u_min:g}, {shared.u_max:g}] rad/s '
                         f'excludes the hover speed {hover:.1f} rad/s: the MPC could not '
                         'hold altitude')
    return simulator


def _tuner(file: ParameterFile, tuner: dict) -> Tuner:
    values = tuner['alpha']
    alpha = Schedule(values['kind'], values['scale'], values['offset'], values['power'],
                     values['first_k'])
    with np.errstate(divide='ignore', invalid='ignore'):     # log(0) is reported below
        first = alpha(1)
    if not (math.isfinite(first) and first > 0.0):
        raise file.error('hybrid_tuner', 'alpha', f'the step size of the first iteration '
                         f'(k = first_k = {alpha.first_k}) is {first}, not a finite positive '
                         'number')
    rules = _rules(file, tuner)
    cost = tuner['cost']
    if cost['terminal_weight'] == 'diagonal' and 'pc' not in cost:
        raise file.error('hybrid_tuner', 'cost.pc', 'missing (terminal_weight is diagonal)')
    if cost['terminal_weight'] == 'dare' and 'pc' in cost:
        raise file.error('hybrid_tuner', 'cost.pc', 'given, but terminal_weight is dare '
                         '(the terminal weight is the DARE solution, not pc)')
    tuning = TuningConfig(
        method=tuner['method'], iterations=tuner['iterations'], gamma=tuner['gamma'],
        delta=tuner['delta'], alpha=alpha, eta_first_k=tuner['eta']['first_k'],
        episode_steps=tuner['episode_steps'], seed=tuner['seed'],
        box_scale=tuner['theta_box']['scale'], box_abs_min=tuner['theta_box']['abs_min'],
        **_zeroth_order(file, tuner.get('zeroth_order', {})))
    return Tuner(tuning, rules, cost['terminal_weight'],
                 frozen(cost['pc']) if 'pc' in cost else None, cost['violation_weight'])


def _zeroth_order(file: ParameterFile, values: dict) -> dict:
    """Return the zeroth-order estimate's keys of :class:`TuningConfig` (unset: one)."""
    directions = values.get('directions', 1)
    antithetic = bool(values.get('antithetic', False))
    if antithetic and directions % 2:
        raise file.error('hybrid_tuner', 'zeroth_order.directions',
                         f'must be even with zeroth_order.antithetic (pairs v, -v), got '
                         f'{directions}')
    return {'zo_directions': directions, 'zo_antithetic': antithetic}


def _rules(file: ParameterFile, tuner: dict) -> TunerRules:
    """Refuse the rule keys a chosen kind does not use, need those it does; build the rules."""
    for group, choice, needs, allows in RULE_CHOICES:
        values = tuner[group]
        chosen = values[choice]
        label = f'{group}.{choice} {str(chosen).lower() if chosen in (True, False) else chosen}'
        wanted, optional = needs.get(chosen, ()), allows.get(chosen, ())
        for key in values:
            if key not in wanted + optional + (choice,):
                raise file.error('hybrid_tuner', f'{group}.{key}',
                                 f'given, but {label} does not use it')
        for key in wanted:
            if key not in values:
                raise file.error('hybrid_tuner', f'{group}.{key}', f'missing ({label})')
    step, guard, eta = tuner['step_rule'], tuner['guard'], tuner['eta_rule']
    if eta.get('beta', 0.0) >= 1.0:
        raise file.error('hybrid_tuner', 'eta_rule.beta',
                         f'must be below 1 (the memory of the agreement), got {eta["beta"]:g}')
    safety = None
    if guard['enabled']:
        safety = SafetyGuard(guard['cost_margin'], guard.get('violation_limit', math.inf))
    return TunerRules(step['kind'], step.get('radius'), step.get('floor'), step.get('warmup'),
                      step.get('cap'), safety, eta['kind'], eta.get('beta'), eta.get('prior'))


def _reproduction(file: ParameterFile, values: dict) -> Reproduction:
    gammas = values.get('gammas')
    if 'hybrid' in values['methods'] and gammas is None:
        raise file.error('reproduction', 'gammas', 'missing (the runs include hybrid)')
    if 'hybrid' not in values['methods'] and gammas is not None:
        raise file.error('reproduction', 'gammas', 'given, but the runs include no hybrid')
    runs = []
    for method in values['methods']:
        for gamma in (gammas if method == 'hybrid' else (None,)):
            runs.append(Run(run_name(method, gamma), method, gamma))
    names = [run.name for run in runs]
    if len(set(names)) != len(names):
        raise file.error('reproduction', 'gammas', f'two gammas give the same run name: {names}')
    return Reproduction(tuple(runs))


def _ablation(file: ParameterFile, values: dict, runs: tuple[Run, ...]) -> AblationSettings:
    settings = values['ablation']
    names = [run.name for run in runs]
    if settings['run'] not in names:
        raise file.error('ablation', 'run', f'must be one of the reproduction runs {names}, '
                         f'got {settings["run"]!r}')
    paper = values.get('paper') or {}
    for key, given in (('ablation_delta_costs', 'deltas'), ('ablation_seed_costs', 'seeds')):
        if key in paper and len(paper[key]) != len(settings[given]):
            raise file.error('paper', key, f'holds {len(paper[key])} costs for the '
                             f'{len(settings[given])} ablation.{given}')
    return AblationSettings(**settings)


def _resolve_model(name: str) -> str | None:
    """Path of the nominal model file ``name`` (relative: in the config dirs), or None."""
    if os.path.isabs(name):
        return name if os.path.isfile(name) else None
    try:
        return paths.config_file(name)
    except FileNotFoundError:
        return None


def _load_model(file: ParameterFile, shared: Shared,
                require: bool) -> tuple[str | None, AffineModel | None]:
    name = shared.nominal_model_file
    path = _resolve_model(name)
    if path is None:
        if require:
            raise file.error('/**', 'nominal_model_file',
                             f'{name} not found in {", ".join(paths.config_dirs())} (run '
                             f'`hybrid-mpc identify --scenario {file.path}` to create it)')
        return None, None
    try:
        model = AffineModel.load(path)
    except ConfigError as exc:
        raise file.error('/**', 'nominal_model_file', str(exc)) from None
    if abs(model.dt - shared.period_s) > 1e-12:
        raise file.error('/**', 'nominal_model_file',
                         f'{path} was identified at a sampling time of {model.dt:g} s, '
                         f'but period_s is {shared.period_s:g} s')
    return path, model
