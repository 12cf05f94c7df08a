"""Scenarios: one ROS parameter file defines an experiment; this module builds it.

A scenario file (``config/scenarios/*.yaml``) is a ROS 2 parameter file, so ``ros2 run
--params-file``, ``ros2 launch`` and the package's commands read the same values. Values
several nodes need sit in the wildcard section ``/**``; each node has its own section;
sections no node reads (``system_identification``, ``reproduction``, ``paper``) are
ignored by ROS (rclpy ignores overrides of parameters a node does not declare)::

    /**:                    period_s, initial_state (12), x_ref (12), u_ref (4),
                            constraints: {x_lb (9), x_ub (9), u_min, u_max},
                            cost_weights: {qc (12), rc (4)}, nominal_model_file
    quadcopter_simulator:   integrator, substeps, plant: {mass, ..., omega_max} (the true system)
    mpc_controller:         horizon, slack_quadratic, slack_linear
    hybrid_tuner:           method, gamma, delta, iterations, episode_steps, seed,
                            alpha: {kind, scale, offset, power, first_k}, eta: {first_k},
                            step_rule: {kind, radius, floor, warmup, cap},
                            guard: {enabled, cost_margin, violation_limit},
                            eta_rule: {kind, beta, prior},
                            theta_box: {scale, abs_min},
                            cost: {terminal_weight, pc (12), violation_weight}
    system_identification:  trajectories, held_out, steps, seed, input_noise_std, the four
                            start spreads, prediction_horizon, affine
    reproduction:           methods, gammas (the runs of ``hybrid-mpc reproduce``)
    ablation:               run, iterations, alpha_scale, best_of_last, deltas, seeds
                            (optional: ``hybrid-mpc paper ablation delta|seeds``)
    paper:                  citation, hybrid_final_cost, exact_model_cost, and optionally
                            ablation_delta_costs, ablation_seed_costs, timing_qp_solve_ms,
                            timing_jacobian_ms, timing_iteration_s, timing_machine
                            (the section is optional)

Every key is required (the keys marked optional above may be left out), except that some
belong to one choice only: ``pc`` to ``terminal_weight: diagonal``; ``radius``, ``floor``,
``warmup``, ``cap`` to ``step_rule.kind: scale_free``; ``cost_margin`` to ``guard.enabled:
true`` (and ``violation_limit``, optional there); ``beta`` and ``prior`` to
``eta_rule.kind: agreement``. A key of the other choice is refused (it would do nothing).
The shipped files
comment each value with its unit and source. :func:`load_scenario` checks the whole file
before anything is built and raises :class:`ConfigError` naming the file, the key and the
problem: an unknown key (a typo never passes silently), a missing key, a wrong type (as
ROS would type the value: ``1`` is an integer, ``1e-5`` a string, ``1.0e-5`` a double), a
wrong length, a non-finite number, a value out of range, an empty state box, a vehicle that
cannot hover within its rotor limits, a nominal model whose sampling time is not the
scenario's. The :class:`Scenario` it returns builds the parts of a run: the plant, the
nominal model, the MPC policy, the closed-loop cost and the tuning configuration.
"""

from __future__ import annotations

import array
from dataclasses import dataclass, fields, replace
import math
import os
from typing import Any, Mapping

import numpy as np

from hybrid_mpc_ros.core import paths
from hybrid_mpc_ros.core.config import ConfigError, flatten, load_yaml
from hybrid_mpc_ros.core.learning.mixing import AgreementEta, ScheduleEta
from hybrid_mpc_ros.core.learning.objective import ClosedLoopCost
from hybrid_mpc_ros.core.learning.schedules import KINDS, Schedule
from hybrid_mpc_ros.core.learning.step_rules import SafetyGuard, ScaleFreeSteps, ScheduleSteps
from hybrid_mpc_ros.core.learning.tuning import METHODS, TuningConfig
from hybrid_mpc_ros.core.model.identification import identify, IdentificationSettings
from hybrid_mpc_ros.core.model.lqr import hover_linearisation, LQRController
from hybrid_mpc_ros.core.model.nominal_model import AffineModel
from hybrid_mpc_ros.core.model.quadcopter import INTEGRATORS, NU, NX, Quadcopter, QuadParams
from hybrid_mpc_ros.core.mpc import theta as th
from hybrid_mpc_ros.core.mpc.policy import MPCConfig, MPCPolicy, SOFT_IDX
from hybrid_mpc_ros.core.param_schema import (boolean, distinct_floats, distinct_integers,
                                              float_list, floating, floats, integer,
                                              Optional, ParameterFile, text, texts)

DEFAULT_SCENARIO = 'l4dc2026.yaml'    # the published paper's experiment
SCENARIO_DIR = 'scenarios'            # under config/
TERMINAL_WEIGHTS = ('diagonal', 'dare')
STEP_RULES = ('schedule', 'scale_free')
ETA_RULES = ('schedule', 'agreement')
N_SOFT = len(SOFT_IDX)


def default_scenario_path() -> str:
    """Path of the default scenario file, ``config/scenarios/l4dc2026.yaml`` (published paper)."""
    return paths.config_file(os.path.join(SCENARIO_DIR, DEFAULT_SCENARIO))


def resolve_scenario_path(name_or_path: str | os.PathLike | None) -> str:
    """Return the scenario file for a path, a shipped scenario's name, or None (the default).

    A path to an existing file is used as it is; otherwise ``name`` (with or without
    ``.yaml``) is looked up in ``config/scenarios`` of the package, where it may name a
    file in a subfolder (``robustness/issue_vehicle``).
    """
    if name_or_path is None:
        return default_scenario_path()
    given = os.fspath(name_or_path)
    if os.path.isfile(given):
        return given
    parts = given.replace(os.sep, '/').split('/')
    if not os.path.isabs(given) and '..' not in parts:      # a name: look among the shipped
        candidates = [given] if given.endswith('.yaml') else [given + '.yaml', given]
        for candidate in candidates:
            try:
                return paths.config_file(os.path.join(SCENARIO_DIR, candidate))
            except FileNotFoundError:
                continue
    raise ConfigError(f'scenario file not found: {given} (neither a file nor a scenario in '
                      f'config/{SCENARIO_DIR}: {", ".join(shipped_scenarios())})')


def shipped_scenarios() -> list[str]:
    """Names of the scenario files the package ships (``config/scenarios/*.yaml``)."""
    found = set()
    for folder in paths.config_dirs():
        folder = os.path.join(folder, SCENARIO_DIR)
        if os.path.isdir(folder):
            found.update(name for name in os.listdir(folder) if name.endswith('.yaml'))
    return sorted(found)


# ------------------------------------------------------------------ the schema

_PLANT = {item.name: floating(0.0) for item in fields(QuadParams)}
_SHARED = {
    'period_s': floating(0.0, strict=True),
    'initial_state': floats(NX),
    'x_ref': floats(NX),
    'u_ref': floats(NU),
    'constraints': {'x_lb': floats(N_SOFT), 'x_ub': floats(N_SOFT),
                    'u_min': floating(), 'u_max': floating()},
    # theta adds 1e-6 to the diagonals of Q and R; the start Q = Qc must exceed it
    'cost_weights': {'qc': floats(NX, th.EPS, strict=True),
                     'rc': floats(NU, th.EPS, strict=True)},
    'nominal_model_file': text(),
}
_SCHEMA = {
    '/**': _SHARED,
    'quadcopter_simulator': {'integrator': text(INTEGRATORS), 'substeps': integer(1),
                             'plant': _PLANT},
    'mpc_controller': {'horizon': integer(1), 'slack_quadratic': floating(0.0),
                       'slack_linear': floating(0.0)},
    'hybrid_tuner': {
        'method': text(METHODS), 'gamma': floating(0.0, strict=True),
        'delta': floating(0.0, strict=True), 'iterations': integer(1),
        'episode_steps': integer(1), 'seed': integer(0),
        'alpha': {'kind': text(KINDS), 'scale': floating(0.0, strict=True),
                  'offset': floating(), 'power': floating(0.0), 'first_k': integer(0)},
        'eta': {'first_k': integer(0)},
        'step_rule': {'kind': text(STEP_RULES),
                      'radius': Optional(floating(0.0, strict=True)),
                      'floor': Optional(floating(0.0, strict=True)),
                      'warmup': Optional(integer(1)),
                      'cap': Optional(floating(1.0))},
        'guard': {'enabled': boolean,
                  'cost_margin': Optional(floating(0.0, strict=True)),
                  'violation_limit': Optional(floating(0.0))},
        'eta_rule': {'kind': text(ETA_RULES),
                     'beta': Optional(floating(0.0, maximum=1.0)),
                     'prior': Optional(floating(-1.0, maximum=1.0))},
        'theta_box': {'scale': floating(0.0, strict=True),
                      'abs_min': floating(0.0, strict=True)},
        'cost': {
            'terminal_weight': text(TERMINAL_WEIGHTS), 'pc': Optional(floats(NX, 0.0)),
            'violation_weight': floating(0.0)},
    },
    'system_identification': {
        'trajectories': integer(1), 'held_out': integer(1), 'steps': integer(1),
        'seed': integer(0), 'input_noise_std': floating(0.0),
        'position_spread': floating(0.0), 'velocity_spread': floating(0.0),
        'attitude_spread': floating(0.0), 'rate_spread': floating(0.0),
        'prediction_horizon': integer(1), 'affine': boolean},
    'reproduction': {'methods': texts(METHODS), 'gammas': Optional(distinct_floats(0.0))},
    'ablation': {'run': text(), 'iterations': integer(1),
                 'alpha_scale': floating(0.0, strict=True), 'best_of_last': integer(1),
                 'deltas': distinct_floats(0.0), 'seeds': distinct_integers(0)},
    'paper': {'citation': text(), 'hybrid_final_cost': floating(0.0, strict=True),
              'exact_model_cost': floating(0.0, strict=True),
              'ablation_delta_costs': Optional(float_list(0.0)),
              'ablation_seed_costs': Optional(float_list(0.0)),
              'timing_qp_solve_ms': Optional(floating(0.0, strict=True)),
              'timing_jacobian_ms': Optional(floating(0.0, strict=True)),
              'timing_iteration_s': Optional(floating(0.0, strict=True)),
              'timing_machine': Optional(text())},
}
_OPTIONAL_SECTIONS = ('paper', 'ablation')

# The tuner's rule keys as a tuner node declares them: (value declared when the default
# scenario leaves the key out, description, (low, high) range rclpy enforces, ends
# included). A scenario file gives only the keys of the kinds it chooses (the others are
# refused), but a node must declare every key a file may set, so the keys the default
# scenario leaves out get the values below: the package's settings for a new vehicle
# (docs/own_vehicle.md; those of mismatch_example.yaml and the robustness
# family, which a test checks) and AgreementEta's defaults. :func:`tuner_settings` ignores
# the keys the chosen kinds do not use. violation_limit: inf means no limit (a file
# leaves the key out instead). Lower ends of "> 0" keys are checked by the loader.
TUNER_RULE_PARAMETERS = {
    'step_rule.kind': ('schedule', "how a direction becomes a step: 'schedule' (the paper's "
                       "alpha_k, in the cost's units) or 'scale_free' (a trust radius per "
                       'entry of theta; the default for a new vehicle)', None),
    'step_rule.radius': (0.1, 'scale_free: the largest relative change of any entry of '
                         'theta in the first step (0.1 = 10 %); later steps shrink like '
                         'alpha_k; > 0', (0.0, math.inf)),
    'step_rule.floor': (0.1, "scale_free: the size of theta's entries that start at zero "
                        '(the relative radius is taken of max(|theta0_i|, floor)); > 0',
                        (0.0, math.inf)),
    'step_rule.warmup': (10, 'scale_free: directions whose median max-norm fixes the '
                         'gradient scale', (1, 1_000_000)),
    'step_rule.cap': (1.0, 'scale_free: no step is longer than cap times the radius',
                      (1.0, math.inf)),
    'guard.enabled': (False, 'the safety guard: refuse an episode much worse than the best '
                      'one so far, roll theta back to the best theta and halve the steps',
                      None),
    'guard.cost_margin': (0.2, 'guard: refuse an episode costlier than (1 + cost_margin) x '
                          'the best so far; > 0', (0.0, math.inf)),
    'guard.violation_limit': (math.inf, "guard: refuse an episode whose constraint penalty "
                              "exceeds this [cost units]; inf: no limit", (0.0, math.inf)),
    'eta_rule.kind': ('schedule', "the mixing weight eta: 'schedule' (the paper's eta_k) or "
                      "'agreement' (the paper's eta_k while the model agrees with the data)",
                      None),
    'eta_rule.beta': (AgreementEta.beta, 'agreement: memory of the agreement average '
                      '(about 1 / (1 - beta) iterations); < 1', (0.0, 1.0)),
    'eta_rule.prior': (AgreementEta.prior, 'agreement: the agreement before any test (1: '
                       'trust the model at first, as eta_1 does)', (-1.0, 1.0)),
}
# keys of each choice: (group, key of the choice, {choice value: keys it uses})
_RULE_CHOICES = (
    ('step_rule', 'kind', {'scale_free': ('radius', 'floor', 'warmup', 'cap')}),
    ('guard', 'enabled', {True: ('cost_margin', 'violation_limit')}),
    ('eta_rule', 'kind', {'agreement': ('beta', 'prior')}),
)
_NODE_SECTIONS = ('quadcopter_simulator', 'mpc_controller', 'hybrid_tuner')


def _unknown_key_hint(section: str, key, close: str | None) -> str:
    """Say where an unknown key of a node section belongs instead."""
    if section not in _NODE_SECTIONS:
        return ''
    if key in _SHARED:
        return ' (it belongs in the /** section, which every node reads)'
    if close is None:
        return (' (a scenario holds the experiment; node runtime settings such as the '
                "simulator's clock_mode go in the node's own parameter file)")
    return ''


# ------------------------------------------------------------------ the scenario

@dataclass(frozen=True)
class Run:
    """One tuning run of ``hybrid-mpc reproduce``: its name, method and (hybrid) gamma."""

    name: str
    method: str
    gamma: float | None = None


@dataclass(frozen=True)
class AblationSettings:
    """The paper's Appendix C ablations (``hybrid-mpc paper ablation delta|seeds``).

    ``run`` is the reproduction run varied (a hybrid), run for ``iterations`` with the
    step size's constant replaced by ``alpha_scale``; each entry of a table is the best
    base-episode cost in the last ``best_of_last`` iterations. ``deltas`` (with the
    scenario's seed) and ``seeds`` (with its delta) are the values tried.
    """

    run: str
    iterations: int
    alpha_scale: float
    best_of_last: int
    deltas: tuple[float, ...]
    seeds: tuple[int, ...]


@dataclass(frozen=True)
class PaperNumbers:
    """The paper's published numbers a scenario compares with (tables, summaries).

    The ablation costs line up with :class:`AblationSettings` ``deltas`` and ``seeds``;
    the timings are the paper's per QP solve [ms], per Jacobian (MPC sensitivity) [ms]
    and per closed-loop tuning iteration [s], measured on ``timing_machine``.
    """

    citation: str
    hybrid_final_cost: float
    exact_model_cost: float
    ablation_delta_costs: tuple[float, ...] | None = None
    ablation_seed_costs: tuple[float, ...] | None = None
    timing_qp_solve_ms: float | None = None
    timing_jacobian_ms: float | None = None
    timing_iteration_s: float | None = None
    timing_machine: str | None = None

    def as_dict(self) -> dict:
        """Plain dict (JSON summaries)."""
        return {item.name: getattr(self, item.name) for item in fields(self)}


@dataclass(frozen=True)
class TunerRules:
    """How the tuner steps, guards and mixes, as the scenario's ``hybrid_tuner`` sets them.

    ``step_rule``: ``'schedule'`` (the paper's ``alpha_k``, :class:`ScheduleSteps`) or
    ``'scale_free'`` (:class:`ScaleFreeSteps` relative to theta0's magnitudes, with
    ``radius``, ``floor``, ``warmup`` and ``cap``); ``guard``: the :class:`SafetyGuard`, or
    None for none; ``eta_rule``: ``'schedule'`` (the method's eta, :class:`ScheduleEta`)
    or ``'agreement'`` (:class:`AgreementEta` with ``beta`` and ``prior``, capped by the
    hybrid's schedule).
    """

    step_rule: str = 'schedule'
    radius: float | None = None
    floor: float | None = None
    warmup: int | None = None
    cap: float | None = None
    guard: SafetyGuard | None = None
    eta_rule: str = 'schedule'
    beta: float | None = None
    prior: float | None = None

    def build(self, config: TuningConfig, theta0: np.ndarray) -> dict:
        """Return the :class:`Tuner` keywords ``step_rule``, ``eta_rule``, ``guard`` of a run.

        ``config`` is the run's :class:`TuningConfig` (its alpha is the step schedule, or
        the radius' shape; its method's eta the mixing); ``theta0`` (94,) the start, whose
        magnitudes scale the scale-free steps. The agreement rule applies to the hybrid
        only: the baselines are defined by their constant eta (1 or 0).
        """
        if self.step_rule == 'scale_free':
            step_rule = ScaleFreeSteps.relative(theta0, self.radius, self.floor, config.alpha,
                                                warmup=self.warmup, cap=self.cap)
        else:
            step_rule = ScheduleSteps(config.alpha)
        if self.eta_rule == 'agreement' and config.method == 'hybrid':
            eta_rule = AgreementEta(config.eta(), beta=self.beta, prior=self.prior)
        else:
            eta_rule = ScheduleEta(config.eta())
        return {'step_rule': step_rule, 'eta_rule': eta_rule, 'guard': self.guard}


def _frozen(values) -> np.ndarray:
    array = np.array(values, dtype=float)
    array.setflags(write=False)          # shared by everything built from the scenario
    return array


@dataclass(frozen=True, eq=False)
class Scenario:
    """Everything one experiment needs, read from a scenario file by :func:`load_scenario`.

    Arrays are read-only: ``x0`` (12,) the initial state, ``x_ref`` (12,), ``u_ref`` (4,),
    ``qc`` (12,), ``rc`` (4,) and ``pc`` (12,) (None with the DARE terminal weight) the
    upper-level weights' diagonals. ``period_s`` [s] is the sampling time of plant, MPC,
    model and tuner. ``model`` is the nominal model (None when loaded without it).
    ``tuning`` is the file's tuning configuration; :meth:`tuning_config` returns a run's
    copy; ``rules`` its step rule, guard and mixing rule (:meth:`tuner_rules` builds
    them). ``nominal_model_file`` is the name as written, ``nominal_model_path`` where it
    was found (None if it does not exist yet).
    """

    path: str
    name: str
    period_s: float
    x0: np.ndarray
    x_ref: np.ndarray
    u_ref: np.ndarray
    plant_params: QuadParams
    integrator: str
    substeps: int
    mpc_config: MPCConfig
    nominal_model_file: str
    nominal_model_path: str | None
    model: AffineModel | None
    qc: np.ndarray
    rc: np.ndarray
    pc: np.ndarray | None
    terminal_weight_kind: str
    violation_weight: float
    tuning: TuningConfig
    rules: TunerRules
    runs: tuple[Run, ...]
    identification: IdentificationSettings
    paper: PaperNumbers | None
    ablation: AblationSettings | None = None

    # -- the true system and the nominal model ---------------------------------------

    def plant(self) -> Quadcopter:
        """Return the true system: the plant constants integrated over ``period_s``."""
        return Quadcopter(self.plant_params, self.period_s, self.substeps, self.integrator)

    def nominal_model(self) -> AffineModel:
        """Return the nominal model the scenario names; ConfigError if it was not loaded."""
        if self.model is None:
            raise ConfigError(f'scenario {self.path}: the nominal model '
                              f'{self.nominal_model_file} is not loaded (run `hybrid-mpc '
                              f'identify --scenario {self.path}` if it does not exist)')
        return self.model

    def nominal_model_output(self) -> str:
        """Return where ``hybrid-mpc identify`` writes this scenario's model by default.

        An absolute ``nominal_model_file`` as it is; a relative one in the checkout's
        ``config/`` directory (where the shipped models live).
        """
        if os.path.isabs(self.nominal_model_file):
            return self.nominal_model_file
        return os.path.join(paths.source_config_dir(), self.nominal_model_file)

    def identify(self, progress=None, **overrides) -> AffineModel:
        """Identify a nominal model on this scenario's plant (see :mod:`identification`).

        ``overrides`` replace fields of :attr:`identification`. The data are flown by the
        hover LQR with the upper-level weights (Qc, Rc) towards ``x_ref``'s position; the
        header records the scenario's name.
        """
        settings = replace(self.identification, **overrides)
        model = identify(self.plant(), settings, self.x_ref[0:3], self.qc, self.rc, progress)
        model.header = dict({'scenario': self.name}, **model.header)
        return model

    # -- the controller ----------------------------------------------------------------

    def initial_theta(self, model: AffineModel | None = None) -> np.ndarray:
        """Return the paper's start (94,): Q = Qc, R = Rc, P = DARE of the model's (A, B)."""
        model = model or self.nominal_model()
        return th.initial_theta(model.A, model.B, self.qc, self.rc)

    def policy(self, model: AffineModel | None = None, config: MPCConfig | None = None,
               theta: np.ndarray | None = None) -> MPCPolicy:
        """Build the MPC on the nominal model (or ``model``), from :meth:`initial_theta`.

        ``config`` replaces :attr:`mpc_config` (e.g. a test's solver settings) and
        ``theta`` (94,) the start.
        """
        model = model or self.nominal_model()
        theta = self.initial_theta(model) if theta is None else theta
        return MPCPolicy(model, config or self.mpc_config, theta, self.x_ref, self.u_ref)

    def nonlinear_policy(self, params: QuadParams | None = None, theta: np.ndarray | None = None,
                         **config_overrides):
        """Build the nonlinear-model MPC (:mod:`nonlinear`) with nominal constants ``params``.

        ``params`` default to the plant's own constants (a twin of the true system, as the
        benchmark uses it); theta starts from the DARE of the nominal model linearised at
        hover; ``config_overrides`` set :class:`NonlinearMPCConfig` fields.
        """
        from hybrid_mpc_ros.core.mpc.nonlinear import NonlinearMPCConfig, NonlinearMPCPolicy
        params = params or self.plant_params
        config = NonlinearMPCConfig.from_config(self.mpc_config, **config_overrides)
        if theta is None:
            nominal = Quadcopter(params, config.dt, config.substeps)
            theta = th.initial_theta(*hover_linearisation(nominal), self.qc, self.rc)
        return NonlinearMPCPolicy(params, config, theta, self.x_ref, self.u_ref)

    def lqr(self) -> LQRController:
        """Build the hover LQR (weights Qc, Rc) on the plant, holding ``x_ref``'s position."""
        return LQRController(self.plant(), Q=self.qc, R=self.rc,
                             target_position=self.x_ref[0:3])

    # -- the tuner -------------------------------------------------------------------

    def terminal_weight(self, model: AffineModel | None = None) -> np.ndarray:
        """Return the upper-level terminal weight: ``pc`` (12,) or the DARE solution P (12, 12).

        The DARE is that of the nominal model's (A, B) (or ``model``'s) with Qc and Rc,
        the same P the MPC's terminal weight starts from.
        """
        if self.terminal_weight_kind == 'diagonal':
            return self.pc.copy()
        model = model or self.nominal_model()
        return th.dare_weight(model.A, model.B, self.qc, self.rc)

    def cost(self, model: AffineModel | None = None) -> ClosedLoopCost:
        """Build the closed-loop cost C: the scenario's weights, references and the MPC's box X."""
        x_lb, x_ub = self.mpc_config.state_box()
        return ClosedLoopCost(self.x_ref.copy(), self.u_ref.copy(), self.qc.copy(),
                              self.rc.copy(), self.terminal_weight(model), x_lb, x_ub,
                              self.violation_weight)

    def tuning_config(self, method: str | None = None, gamma: float | None = None,
                      **overrides) -> TuningConfig:
        """Return the file's :class:`TuningConfig` with some fields replaced.

        ``method``, ``gamma`` and ``overrides`` (other fields) that are None keep the
        file's value.
        """
        values = dict(overrides, method=method, gamma=gamma)
        return replace(self.tuning, **{k: v for k, v in values.items() if v is not None})

    def tuner_rules(self, config: TuningConfig | None = None,
                    theta0: np.ndarray | None = None) -> dict:
        """Return the :class:`Tuner` keywords ``step_rule``, ``eta_rule`` and ``guard``.

        For a run of ``config`` (default: the file's) from ``theta0`` (94,; default
        :meth:`initial_theta`); see :meth:`TunerRules.build`.
        """
        config = config or self.tuning
        theta0 = self.initial_theta() if theta0 is None else theta0
        return self.rules.build(config, theta0)

    def run(self, name: str) -> Run:
        """Return the reproduction run called ``name``; ConfigError lists the runs there are."""
        for run in self.runs:
            if run.name == name:
                return run
        raise ConfigError(f'scenario {self.path} has no run {name!r}; its runs: '
                          + ', '.join(run.name for run in self.runs))

    def run_config(self, name: str, **overrides) -> TuningConfig:
        """Return the :class:`TuningConfig` of the reproduction run ``name`` (see :meth:`run`)."""
        run = self.run(name)
        return self.tuning_config(run.method, run.gamma, **overrides)


def run_name(method: str, gamma: float | None) -> str:
    """Name of a reproduction run: the method, plus ``_g<gamma>`` for the hybrid."""
    return f'{method}_g{gamma:g}' if method == 'hybrid' else method


def _runs(file: ParameterFile, values: dict) -> tuple[Run, ...]:
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
    return tuple(runs)


def _ablation(file: ParameterFile, values: dict, runs: tuple[Run, ...]) -> AblationSettings | None:
    settings = values.get('ablation')
    if settings is None:
        return None
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


def _check_plant(file: ParameterFile, shared: dict, sim: dict) -> QuadParams:
    try:
        params = QuadParams.from_mapping(sim['plant'])
    except ConfigError as exc:
        raise file.error('quadcopter_simulator', 'plant', str(exc)) from None
    hover = params.hover_speed
    if not params.omega_min <= hover <= params.omega_max:
        raise file.error('quadcopter_simulator', 'plant',
                         f'this vehicle cannot hover within its rotor limits: hover speed '
                         f'sqrt(m g / (4 k)) = sqrt({params.mass:g} * {params.gravity:g} / '
                         f'(4 * {params.thrust_coeff:g})) = {hover:.1f} rad/s is outside '
                         f'[omega_min, omega_max] = [{params.omega_min:g}, '
                         f'{params.omega_max:g}] rad/s')
    box = shared['constraints']
    if box['u_min'] < params.omega_min or box['u_max'] > params.omega_max:
        raise file.error('/**', 'constraints.u_max' if box['u_max'] > params.omega_max
                         else 'constraints.u_min',
                         f'the MPC input box [{box["u_min"]:g}, {box["u_max"]:g}] rad/s '
                         f'leaves the rotor limits [{params.omega_min:g}, '
                         f'{params.omega_max:g}] of quadcopter_simulator.plant (the vehicle '
                         'would clamp the commands)')
    if not box['u_min'] <= hover <= box['u_max']:
        raise file.error('/**', 'constraints',
                         f'the MPC input box [{box["u_min"]:g}, {box["u_max"]:g}] rad/s '
                         f'excludes the hover speed {hover:.1f} rad/s: the MPC could not '
                         'hold altitude')
    return params


def _check_box(file: ParameterFile, shared: dict) -> None:
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


def _mpc_config(shared: dict, mpc: dict) -> MPCConfig:
    box = shared['constraints']
    return MPCConfig(
        horizon=mpc['horizon'], dt=shared['period_s'], u_min=box['u_min'], u_max=box['u_max'],
        x_lb=tuple(box['x_lb'].tolist()), x_ub=tuple(box['x_ub'].tolist()),
        u_offset=tuple(shared['u_ref'].tolist()), slack_quadratic=mpc['slack_quadratic'],
        slack_linear=mpc['slack_linear'])


def _schedule(file: ParameterFile, tuner: dict) -> Schedule:
    values = tuner['alpha']
    alpha = Schedule(values['kind'], values['scale'], values['offset'], values['power'],
                     values['first_k'])
    with np.errstate(divide='ignore', invalid='ignore'):     # log(0) is reported below
        first = alpha(1)
    if not (math.isfinite(first) and first > 0.0):
        raise file.error('hybrid_tuner', 'alpha', f'the step size of the first iteration '
                         f'(k = first_k = {alpha.first_k}) is {first}, not a finite positive '
                         'number')
    return alpha


def _cost(file: ParameterFile, tuner: dict) -> dict:
    cost = tuner['cost']
    if cost['terminal_weight'] == 'diagonal' and 'pc' not in cost:
        raise file.error('hybrid_tuner', 'cost.pc', 'missing (terminal_weight is diagonal)')
    if cost['terminal_weight'] == 'dare' and 'pc' in cost:
        raise file.error('hybrid_tuner', 'cost.pc', 'given, but terminal_weight is dare '
                         '(the terminal weight is the DARE solution, not pc)')
    return cost


def _choice_keys(file: ParameterFile, group: str, values: dict, choice: str,
                 wanted: tuple[str, ...], optional: tuple[str, ...] = ()) -> None:
    """Refuse keys of ``hybrid_tuner.<group>`` that ``choice`` does not use; need ``wanted``."""
    for key in values:
        if key not in wanted + optional + ('kind', 'enabled'):
            raise file.error('hybrid_tuner', f'{group}.{key}',
                             f'given, but {choice} does not use it')
    for key in wanted:
        if key not in values:
            raise file.error('hybrid_tuner', f'{group}.{key}', f'missing ({choice})')


def _rules(file: ParameterFile, tuner: dict) -> TunerRules:
    step, guard, eta = tuner['step_rule'], tuner['guard'], tuner['eta_rule']
    step_keys = ('radius', 'floor', 'warmup', 'cap') if step['kind'] == 'scale_free' else ()
    _choice_keys(file, 'step_rule', step, f'step_rule.kind {step["kind"]}', step_keys)
    guard_keys = ('cost_margin',) if guard['enabled'] else ()
    _choice_keys(file, 'guard', guard, f'guard.enabled {str(guard["enabled"]).lower()}',
                 guard_keys, ('violation_limit',) if guard['enabled'] else ())
    eta_keys = ('beta', 'prior') if eta['kind'] == 'agreement' else ()
    _choice_keys(file, 'eta_rule', eta, f'eta_rule.kind {eta["kind"]}', eta_keys)
    if eta.get('beta', 0.0) >= 1.0:
        raise file.error('hybrid_tuner', 'eta_rule.beta',
                         f'must be below 1 (the memory of the agreement), got {eta["beta"]:g}')
    safety = None
    if guard['enabled']:
        safety = SafetyGuard(guard['cost_margin'], guard.get('violation_limit', math.inf))
    return TunerRules(step['kind'], step.get('radius'), step.get('floor'), step.get('warmup'),
                      step.get('cap'), safety, eta['kind'], eta.get('beta'), eta.get('prior'))


def _tuning_config(tuner: dict, alpha: Schedule) -> TuningConfig:
    return TuningConfig(
        method=tuner['method'], iterations=tuner['iterations'], gamma=tuner['gamma'],
        delta=tuner['delta'], alpha=alpha, eta_first_k=tuner['eta']['first_k'],
        episode_steps=tuner['episode_steps'], seed=tuner['seed'],
        box_scale=tuner['theta_box']['scale'], box_abs_min=tuner['theta_box']['abs_min'])


def _load_model(file: ParameterFile, shared: dict,
                require: bool) -> tuple[str | None, AffineModel | None]:
    name = shared['nominal_model_file']
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
    if abs(model.dt - shared['period_s']) > 1e-12:
        raise file.error('/**', 'nominal_model_file',
                         f'{path} was identified at a sampling time of {model.dt:g} s, '
                         f'but period_s is {shared["period_s"]:g} s')
    return path, model


def load_scenario(path: str | os.PathLike, load_model: bool = True) -> Scenario:
    """Read and check the scenario file at ``path``; see the module docstring.

    With ``load_model`` False a missing nominal model file is allowed (``identify`` is
    about to write it); an existing one is still checked. Raises :class:`ConfigError`
    naming the file, the key and the problem; builds no solver.
    """
    path = os.fspath(path)
    file = ParameterFile(path, 'scenario', _unknown_key_hint)
    sections = file.sections(load_yaml(path), tuple(_SCHEMA), _OPTIONAL_SECTIONS)
    values = {name: file.read(name, data, _SCHEMA[name]) for name, data in sections.items()}
    shared, sim, tuner = values['/**'], values['quadcopter_simulator'], values['hybrid_tuner']
    _check_box(file, shared)
    params = _check_plant(file, shared, sim)
    alpha = _schedule(file, tuner)
    rules = _rules(file, tuner)
    cost = _cost(file, tuner)
    runs = _runs(file, values['reproduction'])
    ablation = _ablation(file, values, runs)
    ident = values['system_identification']
    if ident['prediction_horizon'] > ident['steps']:
        raise file.error('system_identification', 'prediction_horizon',
                         f'must not exceed steps ({ident["steps"]}), got '
                         f'{ident["prediction_horizon"]}')
    mpc_config = _mpc_config(shared, values['mpc_controller'])
    tuning = _tuning_config(tuner, alpha)
    model_path, model = _load_model(file, shared, load_model)
    paper = values.get('paper')
    return Scenario(
        path=path, name=os.path.splitext(os.path.basename(path))[0],
        period_s=shared['period_s'], x0=_frozen(shared['initial_state']),
        x_ref=_frozen(shared['x_ref']), u_ref=_frozen(shared['u_ref']), plant_params=params,
        integrator=sim['integrator'], substeps=sim['substeps'], mpc_config=mpc_config,
        nominal_model_file=shared['nominal_model_file'], nominal_model_path=model_path,
        model=model, qc=_frozen(shared['cost_weights']['qc']),
        rc=_frozen(shared['cost_weights']['rc']),
        pc=_frozen(cost['pc']) if 'pc' in cost else None,
        terminal_weight_kind=cost['terminal_weight'],
        violation_weight=cost['violation_weight'], tuning=tuning, rules=rules, runs=runs,
        identification=IdentificationSettings(**ident),
        paper=PaperNumbers(**paper) if paper is not None else None, ablation=ablation)


# ------------------------------------------------------------------ what a node declares

def node_defaults(node: str, path: str | os.PathLike | None = None) -> dict[str, Any]:
    """Scenario parameters of ``node`` with their values, flattened to ROS names.

    The ``/**`` section and the node's own section of the scenario file at ``path``
    (default: the default scenario), e.g. ``{'period_s': 0.1, 'constraints.u_min': 0.0,
    'horizon': 12, ...}``: what the node declares, with the default scenario's values as
    defaults, so a node's defaults live in the scenario file only. The file is checked
    first (:func:`load_scenario`, without building anything).
    """
    path = os.fspath(path or default_scenario_path())
    if node not in _NODE_SECTIONS:
        raise ValueError(f'unknown node {node!r}; scenario sections: {_NODE_SECTIONS}')
    load_scenario(path, load_model=False)
    file = ParameterFile(path, 'scenario', _unknown_key_hint)
    sections = file.sections(load_yaml(path), tuple(_SCHEMA), _OPTIONAL_SECTIONS)
    values = flatten(dict(sections['/**'], **sections[node]))
    if node == 'hybrid_tuner' and 'cost.pc' not in values:
        # a node declares what the default scenario has; a scenario with a diagonal
        # terminal weight gives cost.pc, so it must be declared too. NaN: a file that
        # should give it and does not is refused by tuner_settings ("finite"), not run
        values['cost.pc'] = [math.nan] * NX
    if node == 'hybrid_tuner':
        for name, (default, _, _) in TUNER_RULE_PARAMETERS.items():
            values.setdefault(name, default)
    return values


def _nested(values: Mapping[str, Any]) -> dict:
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


@dataclass(frozen=True, eq=False)
class ControllerSettings:
    """What an MPC controller node builds its policy from (see :func:`controller_settings`).

    ``model`` the nominal model, ``mpc_config`` the MPC's configuration, ``x_ref`` (12,)
    and ``u_ref`` (4,) the references, ``qc`` (12,) and ``rc`` (4,) the diagonals of the
    start weights Q = Qc, R = Rc; ``model_path`` where the model was found.
    """

    model: AffineModel
    model_path: str
    mpc_config: MPCConfig
    x_ref: np.ndarray
    u_ref: np.ndarray
    qc: np.ndarray
    rc: np.ndarray

    def initial_theta(self) -> np.ndarray:
        """Return the paper's start (94,): Q = Qc, R = Rc, P = DARE of the model's (A, B)."""
        return th.initial_theta(self.model.A, self.model.B, self.qc, self.rc)

    def policy(self, theta: np.ndarray) -> MPCPolicy:
        """Build the MPC policy at theta (94,)."""
        return MPCPolicy(self.model, self.mpc_config, theta, self.x_ref, self.u_ref)


def controller_settings(values: Mapping[str, Any], source: str) -> ControllerSettings:
    """Check a controller's scenario values like a scenario file's, and build its parts.

    ``values`` maps the flattened names of :func:`node_defaults` for ``mpc_controller`` to
    the values the node was given (plain Python or rclpy's arrays); ``source`` names where
    they came from in error messages (e.g. the node's name). Raises :class:`ConfigError`
    naming the key and the problem, with the same checks as :func:`load_scenario`.
    """
    nested = _nested(values)
    file = ParameterFile(source, 'node', _unknown_key_hint)
    node = 'mpc_controller'
    shared = file.read('/**', {key: nested[key] for key in _SHARED if key in nested}, _SHARED)
    mpc = file.read(node, {key: value for key, value in nested.items() if key not in _SHARED},
                    _SCHEMA[node])
    _check_box(file, shared)
    model_path, model = _load_model(file, shared, True)
    weights = shared['cost_weights']
    return ControllerSettings(model, model_path, _mpc_config(shared, mpc),
                              _frozen(shared['x_ref']), _frozen(shared['u_ref']),
                              _frozen(weights['qc']), _frozen(weights['rc']))


@dataclass(frozen=True, eq=False)
class TunerSettings:
    """What a tuner node builds its tuning run from (see :func:`tuner_settings`).

    ``model`` the nominal model (its Jacobians give the model-based gradient),
    ``tuning`` the run's :class:`TuningConfig`, ``period_s`` [s] the sampling time, ``x0``
    (12,) the episodes' initial state, ``x_ref`` (12,) and ``u_ref`` (4,) the references,
    ``qc`` (12,) and ``rc`` (4,) the upper-level weights' diagonals, ``terminal_weight_kind``
    and ``pc`` (12,) (None with the DARE) the terminal weight, ``violation_weight`` the
    penalty weight, ``x_lb`` and ``x_ub`` (12,) the state box X (infinite where unbounded);
    ``model_path`` where the model was found; ``rules`` the step rule, guard and eta rule
    (:class:`TunerRules`).
    """

    model: AffineModel
    model_path: str
    tuning: TuningConfig
    period_s: float
    x0: np.ndarray
    x_ref: np.ndarray
    u_ref: np.ndarray
    qc: np.ndarray
    rc: np.ndarray
    terminal_weight_kind: str
    pc: np.ndarray | None
    violation_weight: float
    x_lb: np.ndarray
    x_ub: np.ndarray
    rules: TunerRules

    def initial_theta(self) -> np.ndarray:
        """Return the paper's start (94,): Q = Qc, R = Rc, P = DARE of the model's (A, B)."""
        return th.initial_theta(self.model.A, self.model.B, self.qc, self.rc)

    def tuner_rules(self, theta0: np.ndarray) -> dict:
        """Return the :class:`Tuner` keywords ``step_rule``, ``eta_rule``, ``guard``.

        The same rules as the offline tuning of the same scenario
        (:meth:`Scenario.tuner_rules`), for a run from ``theta0`` (94,).
        """
        return self.rules.build(self.tuning, theta0)

    def cost(self) -> ClosedLoopCost:
        """Build the closed-loop cost C, as :meth:`Scenario.cost` does for a scenario file."""
        terminal = (self.pc.copy() if self.terminal_weight_kind == 'diagonal' else
                    th.dare_weight(self.model.A, self.model.B, self.qc, self.rc))
        return ClosedLoopCost(self.x_ref.copy(), self.u_ref.copy(), self.qc.copy(),
                              self.rc.copy(), terminal, self.x_lb.copy(), self.x_ub.copy(),
                              self.violation_weight)

    @property
    def run_name(self) -> str:
        """The run's name as ``hybrid-mpc reproduce`` names it (e.g. ``hybrid_g0.5``)."""
        return run_name(self.tuning.method, self.tuning.gamma)


def tuner_settings(values: Mapping[str, Any], source: str) -> TunerSettings:
    """Check a tuner's scenario values like a scenario file's, and build its parts.

    ``values`` maps the flattened names of :func:`node_defaults` for ``hybrid_tuner`` to
    the values the node was given (plain Python or rclpy's arrays); ``source`` names where
    they came from in error messages (e.g. the node's name). Raises :class:`ConfigError`
    naming the key and the problem, with the same checks as :func:`load_scenario`. One
    difference: a ROS parameter cannot be absent once declared, so ``cost.pc`` (declared
    with the default scenario's value) is ignored when ``cost.terminal_weight`` is
    ``dare``, where a scenario file must leave it out.
    """
    nested = _nested(values)
    file = ParameterFile(source, 'node', _unknown_key_hint)
    node = 'hybrid_tuner'
    shared = file.read('/**', {key: nested[key] for key in _SHARED if key in nested}, _SHARED)
    own = {key: value for key, value in nested.items() if key not in _SHARED}
    if isinstance(own.get('cost'), dict) and own['cost'].get('terminal_weight') == 'dare':
        own['cost'] = {key: value for key, value in own['cost'].items() if key != 'pc'}
    _drop_unused_rule_keys(own)
    tuner = file.read(node, own, _SCHEMA[node])
    _check_box(file, shared)
    alpha = _schedule(file, tuner)
    rules = _rules(file, tuner)
    cost = _cost(file, tuner)
    model_path, model = _load_model(file, shared, True)
    x_lb, x_ub = np.full(NX, -np.inf), np.full(NX, np.inf)
    x_lb[list(SOFT_IDX)] = shared['constraints']['x_lb']
    x_ub[list(SOFT_IDX)] = shared['constraints']['x_ub']
    weights = shared['cost_weights']
    return TunerSettings(
        model=model, model_path=model_path, tuning=_tuning_config(tuner, alpha),
        period_s=shared['period_s'], x0=_frozen(shared['initial_state']),
        x_ref=_frozen(shared['x_ref']), u_ref=_frozen(shared['u_ref']),
        qc=_frozen(weights['qc']), rc=_frozen(weights['rc']),
        terminal_weight_kind=cost['terminal_weight'],
        pc=_frozen(cost['pc']) if 'pc' in cost else None,
        violation_weight=cost['violation_weight'], x_lb=_frozen(x_lb), x_ub=_frozen(x_ub),
        rules=rules)


def _drop_unused_rule_keys(own: dict) -> None:
    """Remove the rule keys (declared by every tuner node) that the chosen kinds do not use.

    ``own`` is the node's nested section, changed in place; a ``guard.violation_limit`` of
    inf (no limit) is removed too, as a file leaves it out.
    """
    for group, choice, used in _RULE_CHOICES:
        values = own.get(group)
        if not isinstance(values, dict):
            continue                        # the loader reports it
        keep = used.get(values.get(choice), ())
        for key in list(values):
            if key != choice and key not in keep and f'{group}.{key}' in TUNER_RULE_PARAMETERS:
                del values[key]
    guard = own.get('guard')
    if isinstance(guard, dict) and guard.get('violation_limit') == math.inf:
        del guard['violation_limit']
