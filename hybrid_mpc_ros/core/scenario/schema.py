"""What a scenario file holds: every key with its check, description (with unit) and range.

The one source of the scenario's keys: the loader checks files and nodes' values with it,
nodes declare their parameters from it (description, range, type), and
``docs/parameters.md`` is generated from what the nodes declare. Keys wrapped in
:class:`~hybrid_mpc_ros.core.param_schema.Optional` may be left out; a node declares them
typed and without a value, so "not given" stays "not given".
"""

from __future__ import annotations

from dataclasses import fields

from hybrid_mpc_ros.core.learning.mixing import AgreementEta
from hybrid_mpc_ros.core.learning.schedules import KINDS
from hybrid_mpc_ros.core.learning.run import METHODS
from hybrid_mpc_ros.core.model.plant import LAYOUTS
from hybrid_mpc_ros.core.model.quadcopter import (INTEGRATORS, NU, NX, PARAM_DESCRIPTIONS,
                                                  QuadParams)
from hybrid_mpc_ros.core.model.rotorpy_plant import (INTEGRATIONS,
                                                     PARAMETERS as ROTORPY_DESCRIPTIONS,
                                                     PRESETS)
from hybrid_mpc_ros.core.mpc import theta as th
from hybrid_mpc_ros.core.mpc.policy import SOFT_IDX
from hybrid_mpc_ros.core.param_schema import (boolean, distinct_floats, distinct_integers,
                                              float_list, floating, floats, integer,
                                              Optional, text, texts)

TERMINAL_WEIGHTS = ('diagonal', 'dare')
PLANT_KINDS = ('quadcopter', 'rotorpy')
STEP_RULES = ('schedule', 'scale_free')
ETA_RULES = ('schedule', 'agreement')
N_SOFT = len(SOFT_IDX)
_STATE = ('position [m] (odom, ENU), velocity [m/s] (world), roll pitch yaw [rad], body '
          'rates p q r [rad/s]')

PLANT = {item.name: floating(0.0, description=f'true plant: {PARAM_DESCRIPTIONS[item.name]}')
         for item in fields(QuadParams)}
ROTORPY_PARAMETERS = {
    name: Optional(floating(0.0, description=(
        f'rotorpy: replaces the preset\'s {name}: {text_}')))
    for name, text_ in ROTORPY_DESCRIPTIONS.items()}
ROTORPY = {
    'vehicle': Optional(text(PRESETS, description=(
        "rotorpy: RotorPy's vehicle preset ('hummingbird', 'crazyflie', "
        "'crazyfliebrushless' or 'px4_sihsim_quadx')"))),
    'aero': Optional(boolean(description=(
        "rotorpy: RotorPy's aerodynamics (parasitic drag, rotor drag, induced inflow, "
        'translational lift); the motor lag stays either way'))),
    'wind': Optional(floats(3, description=(
        'rotorpy: constant wind velocity in the world frame (ENU) [m/s]; unset: no wind'))),
    'integration': Optional(text(INTEGRATIONS, description=(
        "rotorpy: 'rotorpy' (RotorPy's own steps: scipy's RK45 per inner step, as "
        "Multirotor.step) or 'rk4' (RotorPy's equations in CasADi, classic RK4 inner "
        "steps, one compiled call per period: some 30-50 times cheaper and closer to the "
        "exact solution); unset: 'rotorpy'"))),
    'inner_step_s': Optional(floating(0.0, strict=True, description=(
        'rotorpy: the inner step inside each period, the command held [s]; must divide '
        "period_s (unset: 0.01, RotorPy's 100 Hz, with integration 'rotorpy'; 0.001 with "
        "'rk4')"))),
    'noise_seed': Optional(integer(0, description=(
        'rotorpy: seed of the motor noise (parameters.motor_noise_std), drawn again from '
        'the seed at every episode reset (unset: 0)'))),
    'parameters': ROTORPY_PARAMETERS,
}
SHARED = {
    'period_s': floating(0.0, strict=True, description=(
        'sampling time of the plant, the MPC, the nominal model and the tuner [s]')),
    'initial_state': floats(NX, description=(
        f'x0, the state every episode starts from (and the simulator\'s reset state): '
        f'{_STATE}')),
    'x_ref': floats(NX, description=f'the target state x_ref: {_STATE}'),
    'u_ref': floats(NU, description=(
        'the input reference u_ref (the MPC\'s input offset) [rad/s], one per rotor')),
    'constraints': {
        'x_lb': floats(N_SOFT, description=(
            'lower bounds of the state constraint set X on states 3..11 (softened in the '
            'MPC, penalised by the tuner): velocity [m/s], roll pitch yaw [rad], body rates '
            '[rad/s]')),
        'x_ub': floats(N_SOFT, description=(
            'upper bounds of X on states 3..11, same units as x_lb')),
        'u_min': floating(description='lowest rotor speed the MPC commands [rad/s]'),
        'u_max': floating(description='highest rotor speed the MPC commands [rad/s]')},
    # theta adds 1e-6 to the diagonals of Q and R; the start Q = Qc must exceed it
    'cost_weights': {
        'qc': floats(NX, th.EPS, strict=True, description=(
            'diagonal of Qc, the upper-level state weight (and the MPC\'s start Q), per '
            'state in cost units per squared state unit')),
        'rc': floats(NU, th.EPS, strict=True, description=(
            'diagonal of Rc, the upper-level input weight (and the MPC\'s start R) '
            '[cost units / (rad/s)^2]'))},
    'nominal_model_file': text(description=(
        'the nominal model (.npz) the MPC and the model-based gradient use; a relative name '
        'is looked up in config/')),
}
SIMULATOR = {
    'kind': Optional(text(PLANT_KINDS, description=(
        "the true plant: 'quadcopter' (the package's equations: integrator, substeps, "
        "plant) or 'rotorpy' (RotorPy's multirotor: the rotorpy group); unset: "
        "'quadcopter'"))),
    'layout': Optional(text(LAYOUTS, description=(
        "rotor layout the commands refer to: '+' (rotor 1 front, 2 right, 3 back, 4 left) "
        "or 'x' (rotor 1 front-left, then clockwise); rotors 1 and 3 spin alike. Unset: "
        "'+' (quadcopter only; a rotorpy plant states it)"))),
    'command_rotors': Optional(distinct_integers(1, description=(
        'the rotor each command entry drives, numbered as the layout numbers them (entry '
        'i: the rotor command i drives), 1, 2, 3, 4 in some order. A RotorPy vehicle\'s '
        'own rotors are found at the layout\'s places by their arm directions and spins. '
        'Unset: [1, 2, 3, 4] (quadcopter only)')).within(
            constraints='a permutation of 1, 2, 3, 4')),
    'integrator': Optional(text(INTEGRATORS, description=(
        "quadcopter: integration of the true plant over one period: 'rk4' (classic "
        "Runge-Kutta) or 'euler' (forward Euler), `substeps` steps of period_s / substeps "
        'each'))),
    'substeps': Optional(integer(1, description=(
        'quadcopter: integrator steps per period (RK4 stages or Euler steps)'))),
    'plant': {name: Optional(spec) for name, spec in PLANT.items()},
    'rotorpy': ROTORPY,
}
# the keys each plant kind needs ('plant': all of its keys) and may have
PLANT_KIND_KEYS = {
    'quadcopter': (('integrator', 'substeps', 'plant'), ('layout', 'command_rotors')),
    'rotorpy': (('layout', 'command_rotors', 'rotorpy.vehicle', 'rotorpy.aero'),
                ('rotorpy.wind', 'rotorpy.integration', 'rotorpy.inner_step_s',
                 'rotorpy.noise_seed', 'rotorpy.parameters')),
}
CONTROLLER = {
    'horizon': integer(1, description='prediction horizon N of the MPC [steps]'),
    'slack_quadratic': floating(0.0, description=(
        'quadratic penalty rho2 on the slacks s of the soft state bounds (per state and '
        'stage, in the state\'s units squared)')),
    'slack_linear': floating(0.0, description=(
        'linear penalty rho1 on the slacks s of the soft state bounds (per state and stage, '
        'in the state\'s units)')),
    'disturbance_observer_gain': Optional(floating(0.0, strict=True, maximum=1.0, description=(
        'offset-free tracking: gain in (0, 1] of the observer of a constant input disturbance '
        '(per step, dimensionless); left out: off, the plain MPC'))),
}
TUNER = {
    'method': text(METHODS, description=(
        "the gradient: 'hybrid' (eta_k = 1/(k+1)^gamma), 'model_based' (eta = 1), "
        "'zeroth_order' (eta = 0) or 'exact_model' (the plant's own Jacobians; offline "
        'only)')),
    'gamma': floating(0.0, strict=True, description=(
        'mixing exponent of the hybrid: eta_k = 1/(k+1)^gamma')),
    'delta': floating(0.0, strict=True, description=(
        'smoothing radius of the zeroth-order estimate [theta units]')),
    'iterations': integer(1, description='tuning iterations'),
    'episode_steps': integer(1, description='closed-loop steps per episode T'),
    'seed': integer(0, description=(
        'seed of the random directions of the zeroth-order estimate')),
    'alpha': {
        'kind': text(KINDS, description=(
            "formula of the step size alpha_k: 'log_shifted' scale log(k + offset) / "
            "(k+1)^power, 'log_plus_offset' scale (log k + offset) / (k+1)^power, 'literal' "
            "scale log k + offset / (k+1)^power, 'power' scale / (k+1)^power, 'constant' "
            'scale')),
        'scale': floating(0.0, strict=True, description=(
            'constant factor of alpha_k [theta units per cost unit]')),
        'offset': floating(description='offset of alpha_k\'s formula (see alpha.kind)'),
        'power': floating(0.0, description='decay exponent of alpha_k'),
        'first_k': integer(0, description='k of the first iteration in alpha_k')},
    'eta': {'first_k': integer(0, description='k of the first iteration in eta_k')},
    'zeroth_order': {
        'directions': Optional(integer(1, description=(
            'perturbed episodes per zeroth-order estimate M (their mean; unset: 1, the '
            "paper's); an iteration that needs the estimate flies 1 + M episodes")).within(
                high=1000)),
        'antithetic': Optional(boolean(description=(
            'the M directions come in pairs v, -v (central differences; M even); unset: '
            'independent')))},
    'step_rule': {
        'kind': text(STEP_RULES, description=(
            "how a direction becomes a step: 'schedule' (the paper's alpha_k, in the cost's "
            "units) or 'scale_free' (a trust radius per entry of theta; the default for a "
            'new vehicle)')),
        'radius': Optional(floating(0.0, strict=True, description=(
            'scale_free: the largest relative change of any entry of theta in the first '
            'step (0.1 = 10 %); later steps shrink like alpha_k'))),
        'floor': Optional(floating(0.0, strict=True, description=(
            "scale_free: the size of theta's entries that start at zero (the relative "
            'radius is taken of max(|theta0_i|, floor)) [theta units]'))),
        'warmup': Optional(integer(1, description=(
            'scale_free: directions whose median max-norm fixes the gradient '
            'scale')).within(high=1_000_000)),
        'cap': Optional(floating(1.0, description=(
            'scale_free: no step is longer than cap times the radius')))},
    'guard': {
        'enabled': boolean(description=(
            'the safety guard: refuse an episode much worse than the best one so far, roll '
            'theta back to the best theta and halve the steps')),
        'cost_margin': Optional(floating(0.0, strict=True, description=(
            'guard: refuse an episode costlier than (1 + cost_margin) x the best so far'))),
        'violation_limit': Optional(floating(0.0, description=(
            'guard: refuse an episode whose constraint penalty exceeds this [cost units]; '
            'unset: no limit')))},
    'eta_rule': {
        'kind': text(ETA_RULES, description=(
            "the mixing weight eta: 'schedule' (the paper's eta_k) or 'agreement' (the "
            "paper's eta_k while the model agrees with the data)")),
        'beta': Optional(floating(0.0, maximum=1.0, description=(
            'agreement: memory of the agreement average (about 1 / (1 - beta) '
            f'iterations); < 1 (e.g. {AgreementEta.beta:g})')).within(
                constraints='< 1')),
        'prior': Optional(floating(-1.0, maximum=1.0, description=(
            'agreement: the agreement before any test (1: trust the model at first, as '
            f'eta_1 does; e.g. {AgreementEta.prior:g})')))},
    'theta_box': {
        'scale': floating(0.0, strict=True, description=(
            'the box Theta: |theta_i| <= max(scale |theta0_i|, abs_min) around the start')),
        'abs_min': floating(0.0, strict=True, description=(
            'the box Theta: the least half-width of any entry [theta units]'))},
    'cost': {
        'terminal_weight': text(TERMINAL_WEIGHTS, description=(
            "terminal weight of the closed-loop cost: 'diagonal' (cost.pc) or 'dare' (P of "
            'the DARE of the nominal (A, B) with Qc, Rc)')),
        'pc': Optional(floats(NX, 0.0, description=(
            "diagonal terminal weight of the closed-loop cost (terminal_weight 'diagonal' "
            'only), per state in cost units per squared state unit'))),
        'violation_weight': floating(0.0, description=(
            'weight of the constraint penalty dist_1(x, X) in the closed-loop cost [cost '
            'units per unit of violation]'))},
}
IDENTIFICATION_METHODS = ('lqr', 'flights')
EXCITATION_KINDS = ('prbs', 'gaussian')
SPEC_KEYS = ('mass', 'arm_length', 'thrust_coeff', 'drag_torque_coeff', 'inertia_xx',
             'inertia_yy', 'inertia_zz', 'translational_drag', 'rotor_inertia')
IDENTIFICATION = {
    'method': Optional(text(IDENTIFICATION_METHODS, description=(
        "how `hybrid-mpc identify --scenario` collects its data: 'lqr' (trajectories from "
        "spread starts under a hover LQR linearised from the plant's equations: a "
        "quadcopter plant only) or 'flights' (the scenario's own MPC flies the plant near "
        "the target with input excitation, the flight is recorded and fitted, and again "
        "with the fitted model: any plant kind); unset: 'lqr'"))),
    'trajectories': Optional(integer(1, description='lqr: training trajectories')),
    'held_out': Optional(integer(1, description='lqr: test trajectories for the reported '
                                                'errors')),
    'steps': Optional(integer(1, description='lqr: steps per trajectory')),
    'seed': integer(0, description='seed of the starts and the excitation'),
    'input_noise_std': Optional(floating(0.0, description=(
        'lqr: excitation on every rotor [rad/s]'))),
    'position_spread': Optional(floating(0.0, description=(
        'lqr: uniform start offsets: position [m]'))),
    'velocity_spread': Optional(floating(0.0, description=(
        'lqr: uniform start offsets: velocity [m/s]'))),
    'attitude_spread': Optional(floating(0.0, description=(
        'lqr: uniform start offsets: attitude [rad]'))),
    'rate_spread': Optional(floating(0.0, description=(
        'lqr: uniform start offsets: body rates [rad/s]'))),
    'prediction_horizon': integer(1, description=(
        'steps of the reported open-loop error (lqr: at most steps)')),
    'affine': boolean(description='fit x+ = A x + B u + c (else c = 0)'),
    'flights': {
        'rounds': Optional(integer(1, description=(
            'flights: identification flights, each flown with the model the one before '
            'fitted (the first with the specs\' model)'))),
        'duration_s': Optional(floating(0.0, strict=True, description=(
            'flights: length of each flight [s], from hover at x_ref'))),
        'amplitude_rad_s': Optional(floating(0.0, strict=True, description=(
            'flights: input excitation added to every rotor command [rad/s] (clipped to '
            'the input box)'))),
        'kind': Optional(text(EXCITATION_KINDS, description=(
            "flights: 'prbs' (+-amplitude, random sign each step) or 'gaussian' (std "
            "amplitude / 3, cut at the amplitude); unset: 'prbs'")))},
    'specs': dict(
        {name: Optional(floating(0.0, description=(
            f'rough specifications of the vehicle, for the first model: '
            f'{PARAM_DESCRIPTIONS[name]}'
            + ('; unset: 0' if name in ('translational_drag', 'rotor_inertia') else ''))))
         for name in SPEC_KEYS},
        layout=Optional(text(LAYOUTS, description=(
            "rough specifications: the vehicle's rotor layout ('+' or 'x', as "
            'quadcopter_simulator.layout)'))),
        command_rotors=Optional(distinct_integers(1, description=(
            'rough specifications: the rotor each command entry drives, in the layout\'s '
            'numbering (unset: [1, 2, 3, 4])')).within(
                constraints='a permutation of 1, 2, 3, 4'))),
}
# the keys each identification method needs, and may have
IDENTIFICATION_METHOD_KEYS = {
    'lqr': (('trajectories', 'held_out', 'steps', 'input_noise_std', 'position_spread',
             'velocity_spread', 'attitude_spread', 'rate_spread'), ()),
    'flights': (('flights.rounds', 'flights.duration_s', 'flights.amplitude_rad_s'),
                ('flights.kind', 'specs')),
}
REQUIRED_SPECS = ('mass', 'arm_length', 'thrust_coeff', 'drag_torque_coeff', 'inertia_xx',
                  'inertia_yy', 'inertia_zz', 'layout')
REPRODUCTION = {
    'methods': texts(METHODS, description='the methods `hybrid-mpc reproduce` runs'),
    'gammas': Optional(distinct_floats(0.0, description=(
        'the hybrid\'s gammas, one run each (needed when methods include hybrid)'))),
}
ABLATION = {
    'run': text(description='the reproduction run varied (a hybrid)'),
    'iterations': integer(1, description='iterations of each ablation run'),
    'alpha_scale': floating(0.0, strict=True, description=(
        'the step size\'s constant in place of alpha.scale')),
    'best_of_last': integer(1, description=(
        'each table entry is the best cost in this many last iterations')),
    'deltas': distinct_floats(0.0, description='the deltas tried (with the seed above)'),
    'seeds': distinct_integers(0, description='the seeds tried (with the delta above)'),
}
PAPER = {
    'citation': text(description='the paper the numbers come from'),
    'hybrid_final_cost': floating(0.0, strict=True, description=(
        'final closed-loop cost of the hybrid-trained controller [cost units]')),
    'exact_model_cost': floating(0.0, strict=True, description=(
        'cost of the controller optimised with the exact model [cost units]')),
    'ablation_delta_costs': Optional(float_list(0.0, description=(
        'the ablation\'s costs, one per ablation.deltas'))),
    'ablation_seed_costs': Optional(float_list(0.0, description=(
        'the ablation\'s costs, one per ablation.seeds'))),
    'timing_qp_solve_ms': Optional(floating(0.0, strict=True, description=(
        'time per QP solve [ms]'))),
    'timing_jacobian_ms': Optional(floating(0.0, strict=True, description=(
        'time per Jacobian (the MPC\'s sensitivities at one step) [ms]'))),
    'timing_iteration_s': Optional(floating(0.0, strict=True, description=(
        'time per closed-loop tuning iteration [s]'))),
    'timing_machine': Optional(text(description='the machine of the timings')),
}
SCHEMA = {
    '/**': SHARED, 'quadcopter_simulator': SIMULATOR, 'mpc_controller': CONTROLLER,
    'hybrid_tuner': TUNER, 'system_identification': IDENTIFICATION,
    'reproduction': REPRODUCTION, 'ablation': ABLATION, 'paper': PAPER,
}
OPTIONAL_SECTIONS = ('paper', 'ablation')
NODE_SECTIONS = ('quadcopter_simulator', 'mpc_controller', 'hybrid_tuner')
# keys of each choice: (group, key of the choice, {choice value: keys it needs},
# {choice value: keys it may have})
RULE_CHOICES = (
    ('step_rule', 'kind', {'scale_free': ('radius', 'floor', 'warmup', 'cap')}, {}),
    ('guard', 'enabled', {True: ('cost_margin',)}, {True: ('violation_limit',)}),
    ('eta_rule', 'kind', {'agreement': ('beta', 'prior')}, {}),
)


def unknown_key_hint(section: str, key, close: str | None) -> str:
    """Say where an unknown key of a node section belongs instead."""
    if section not in NODE_SECTIONS:
        return ''
    if key in SHARED:
        return ' (it belongs in the /** section, which every node reads)'
    if close is None:
        return (' (a scenario holds the experiment; node runtime settings such as the '
                "simulator's clock_mode go in the node's own parameter file)")
    return ''
