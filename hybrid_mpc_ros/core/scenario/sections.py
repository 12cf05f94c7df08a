"""One frozen dataclass per section of a scenario, as the loader builds them.

``/**`` is :class:`Shared`, ``quadcopter_simulator`` :class:`Simulator`,
``mpc_controller`` :class:`Controller`, ``hybrid_tuner`` :class:`Tuner` (with its rules,
:class:`TunerRules`), ``system_identification``
:class:`~hybrid_mpc_ros.core.model.identification.IdentificationSettings`,
``reproduction`` :class:`Reproduction`, ``ablation`` :class:`AblationSettings` and
``paper`` :class:`PaperNumbers`. Arrays are read-only (shared by everything built from
the scenario).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

from hybrid_mpc_ros.core.learning.mixing import AgreementEta, ScheduleEta
from hybrid_mpc_ros.core.learning.step_rules import SafetyGuard, ScaleFreeSteps, ScheduleSteps
from hybrid_mpc_ros.core.learning.run import TuningConfig
from hybrid_mpc_ros.core.model.plant import IDENTITY_ROTORS, Plant
from hybrid_mpc_ros.core.model.quadcopter import NX, Quadcopter, QuadParams
from hybrid_mpc_ros.core.model.rotorpy_plant import RotorPyPlant
from hybrid_mpc_ros.core.mpc.policy import MPCConfig, SOFT_IDX


def frozen(values) -> np.ndarray:
    """Return a read-only float copy of ``values``."""
    array = np.array(values, dtype=float)
    array.setflags(write=False)          # shared by everything built from the scenario
    return array


@dataclass(frozen=True, eq=False)
class Shared:
    """The ``/**`` section, which every node reads.

    ``period_s`` [s] the sampling time of plant, MPC, model and tuner; ``x0`` (12,) the
    initial state, ``x_ref`` (12,) and ``u_ref`` (4,) the references; ``x_lb``, ``x_ub``
    (9,) the state box X on states 3..11 and ``u_min``, ``u_max`` [rad/s] the input box;
    ``qc`` (12,) and ``rc`` (4,) the upper-level weights' diagonals;
    ``nominal_model_file`` the model's name as written.
    """

    period_s: float
    x0: np.ndarray
    x_ref: np.ndarray
    u_ref: np.ndarray
    x_lb: np.ndarray
    x_ub: np.ndarray
    u_min: float
    u_max: float
    qc: np.ndarray
    rc: np.ndarray
    nominal_model_file: str

    def state_box(self) -> tuple[np.ndarray, np.ndarray]:
        """Return X as full bounds ``(lb (12,), ub (12,))``, infinite where unbounded."""
        lb, ub = np.full(NX, -np.inf), np.full(NX, np.inf)
        lb[list(SOFT_IDX)], ub[list(SOFT_IDX)] = self.x_lb, self.x_ub
        return lb, ub


@dataclass(frozen=True)
class RotorPySettings:
    """The ``rotorpy`` group of the simulator section (kind ``rotorpy``).

    ``vehicle`` RotorPy's preset; ``aero`` its aerodynamics on or off; ``wind`` (3,) a
    constant world-frame wind [m/s] or None; ``integration`` ``'rotorpy'`` or ``'rk4'``
    and ``inner_step_s`` [s] (None: the integration's default) the integration inside
    each period; ``noise_seed`` the motor noise's seed; ``parameters`` the preset's
    constants replaced, as ``(name, value)`` pairs.
    """

    vehicle: str
    aero: bool
    wind: tuple[float, float, float] | None = None
    integration: str = 'rotorpy'
    inner_step_s: float | None = None
    noise_seed: int = 0
    parameters: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class Simulator:
    """The ``quadcopter_simulator`` section: the true plant and its integration.

    ``kind`` ``'quadcopter'`` (the package's equations: ``plant`` integrated with
    ``integrator`` in ``substeps`` steps; ``rotorpy`` None) or ``'rotorpy'`` (``rotorpy``
    set; ``integrator``, ``substeps`` and ``plant`` None); ``layout`` and
    ``command_rotors`` the command's meaning (see :mod:`~hybrid_mpc_ros.core.model.plant`).
    """

    integrator: str | None
    substeps: int | None
    plant: QuadParams | None
    kind: str = 'quadcopter'
    layout: str = '+'
    command_rotors: tuple[int, ...] = IDENTITY_ROTORS
    rotorpy: RotorPySettings | None = None

    def build(self, period_s: float) -> Plant:
        """Return the true plant stepped every ``period_s`` [s] (a new one per call)."""
        if self.kind == 'rotorpy':
            settings = self.rotorpy
            return RotorPyPlant(settings.vehicle, dict(settings.parameters), settings.aero,
                                settings.wind or (0.0, 0.0, 0.0), period_s,
                                settings.inner_step_s, self.layout, self.command_rotors,
                                settings.noise_seed, integration=settings.integration)
        return Quadcopter(self.plant, period_s, self.substeps, self.integrator, self.layout,
                          self.command_rotors)

    def describe(self) -> dict:
        """Return the plant as plain types (for model headers): kind, layout, its settings."""
        out = {'kind': self.kind, 'layout': self.layout,
               'command_rotors': list(self.command_rotors)}
        if self.kind == 'rotorpy':
            out['rotorpy'] = {name: (dict(value) if name == 'parameters' else
                                     list(value) if isinstance(value, tuple) else value)
                              for name, value in asdict(self.rotorpy).items()}
        else:
            out.update(plant=self.plant.as_dict(), integrator=self.integrator,
                       substeps=self.substeps)
        return out


@dataclass(frozen=True)
class Controller:
    """The ``mpc_controller`` section: the horizon [steps] and the slack penalties.

    ``disturbance_observer_gain``: None (the plain MPC) or the gain in (0, 1] of the
    offset-free MPC's disturbance observer (:mod:`~hybrid_mpc_ros.core.mpc.offset_free`).
    """

    horizon: int
    slack_quadratic: float
    slack_linear: float
    disturbance_observer_gain: float | None = None

    def mpc_config(self, shared: Shared) -> MPCConfig:
        """Return the MPC's configuration with the shared period, boxes and input offset."""
        return MPCConfig(
            horizon=self.horizon, dt=shared.period_s, u_min=shared.u_min, u_max=shared.u_max,
            x_lb=tuple(shared.x_lb.tolist()), x_ub=tuple(shared.x_ub.tolist()),
            u_offset=tuple(shared.u_ref.tolist()), slack_quadratic=self.slack_quadratic,
            slack_linear=self.slack_linear)


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


@dataclass(frozen=True, eq=False)
class Tuner:
    """The ``hybrid_tuner`` section: the run's configuration, its rules and its cost.

    ``tuning`` the :class:`TuningConfig`; ``rules`` the step rule, guard and eta rule;
    ``terminal_weight`` ``'diagonal'`` (with ``pc`` (12,)) or ``'dare'`` (``pc`` None);
    ``violation_weight`` the constraint penalty's weight.
    """

    tuning: TuningConfig
    rules: TunerRules
    terminal_weight: str
    pc: np.ndarray | None
    violation_weight: float


@dataclass(frozen=True)
class Run:
    """One tuning run of ``hybrid-mpc reproduce``: its name, method and (hybrid) gamma."""

    name: str
    method: str
    gamma: float | None = None


def run_name(method: str, gamma: float | None) -> str:
    """Name of a reproduction run: the method, plus ``_g<gamma>`` for the hybrid."""
    return f'{method}_g{gamma:g}' if method == 'hybrid' else method


@dataclass(frozen=True)
class Reproduction:
    """The ``reproduction`` section: the runs of ``hybrid-mpc reproduce``."""

    runs: tuple[Run, ...]


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
