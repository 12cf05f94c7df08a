"""The scenario, composed of its sections, and what is built from it.

The start theta, the closed-loop cost, the MPC policy and the tuner's rules are built
here only, for a scenario read from a file and for one a node read from its parameters
alike (:mod:`hybrid_mpc_ros.core.scenario.load`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
import os

import numpy as np

from hybrid_mpc_ros.core import paths
from hybrid_mpc_ros.core.config import ConfigError, flatten, load_node_params
from hybrid_mpc_ros.core.learning.episode import rollout
from hybrid_mpc_ros.core.learning.objective import ClosedLoopCost
from hybrid_mpc_ros.core.learning.run import TuningConfig
from hybrid_mpc_ros.core.model.flight_identification import FlightSettings, identify_by_flying
from hybrid_mpc_ros.core.model.identification import identify, IdentificationSettings
from hybrid_mpc_ros.core.model.lqr import hover_linearisation, LQRController
from hybrid_mpc_ros.core.model.nominal_model import AffineModel
from hybrid_mpc_ros.core.model.plant import Plant
from hybrid_mpc_ros.core.model.quadcopter import Quadcopter, QuadParams
from hybrid_mpc_ros.core.mpc import theta as th
from hybrid_mpc_ros.core.mpc.offset_free import OffsetFreePolicy
from hybrid_mpc_ros.core.mpc.policy import MPCConfig, MPCPolicy
from hybrid_mpc_ros.core.scenario.sections import (AblationSettings, Controller, PaperNumbers,
                                                   Reproduction, Run, run_name, Shared,
                                                   Simulator, Tuner)


@dataclass(frozen=True, eq=False)
class Scenario:
    """Everything one experiment needs: the sections of a scenario file or of a node.

    ``path`` is the file (or the node's name), ``name`` the scenario's name. ``shared`` is
    the ``/**`` section; ``simulator``, ``controller``, ``tuner``, ``identification``,
    ``reproduction``, ``ablation`` and ``paper`` the others (None where the source has no
    such section: a node has only its own, a file may leave out ``ablation`` and
    ``paper``). ``model`` is the nominal model (None when loaded without it),
    ``nominal_model_path`` where it was found. The properties below read the sections
    (e.g. ``x0`` is ``shared.x0``, ``tuning`` is ``tuner.tuning``).
    """

    path: str
    name: str
    shared: Shared
    simulator: Simulator | None
    controller: Controller | None
    tuner: Tuner | None
    identification: IdentificationSettings | FlightSettings | None
    reproduction: Reproduction | None
    ablation: AblationSettings | None
    paper: PaperNumbers | None
    nominal_model_path: str | None
    model: AffineModel | None

    # -- the sections' values ----------------------------------------------------------

    period_s = property(lambda self: self.shared.period_s, doc='sampling time [s]')
    x0 = property(lambda self: self.shared.x0, doc='initial state (12,)')
    x_ref = property(lambda self: self.shared.x_ref, doc='target state (12,)')
    u_ref = property(lambda self: self.shared.u_ref, doc='input reference (4,) [rad/s]')
    qc = property(lambda self: self.shared.qc, doc="Qc's diagonal (12,)")
    rc = property(lambda self: self.shared.rc, doc="Rc's diagonal (4,)")
    nominal_model_file = property(lambda self: self.shared.nominal_model_file,
                                  doc="the nominal model's name as written")
    plant_params = property(lambda self: self.simulator.plant, doc='the true plant')
    integrator = property(lambda self: self.simulator.integrator, doc="the plant's integrator")
    substeps = property(lambda self: self.simulator.substeps, doc='integrator steps per period')
    tuning = property(lambda self: self.tuner.tuning, doc="the file's TuningConfig")
    rules = property(lambda self: self.tuner.rules, doc="the tuner's TunerRules")
    pc = property(lambda self: self.tuner.pc, doc='diagonal terminal weight (12,) or None')
    terminal_weight_kind = property(lambda self: self.tuner.terminal_weight,
                                    doc="'diagonal' or 'dare'")
    violation_weight = property(lambda self: self.tuner.violation_weight,
                                doc="the constraint penalty's weight")
    runs = property(lambda self: self.reproduction.runs, doc='the reproduction runs')

    @property
    def mpc_config(self) -> MPCConfig:
        """The MPC's configuration: the controller section with the shared values."""
        return self.controller.mpc_config(self.shared)

    @property
    def run_name(self) -> str:
        """The tuner section's run as ``hybrid-mpc reproduce`` names it (``hybrid_g0.5``)."""
        return run_name(self.tuning.method, self.tuning.gamma)

    # -- the true system and the nominal model ---------------------------------------

    def plant(self) -> Plant:
        """Return the true system stepped every ``period_s``: the simulator section's kind.

        A :class:`Quadcopter` (the plant constants integrated over ``period_s``) or a
        :class:`~hybrid_mpc_ros.core.model.rotorpy_plant.RotorPyPlant`; a new one per call.
        """
        return self.simulator.build(self.period_s)

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

    def identify(self, progress=None, recordings: str | None = None,
                 **overrides) -> AffineModel:
        """Identify a nominal model on this scenario's plant, by its identification method.

        ``overrides`` replace fields of :attr:`identification`. Method ``lqr``
        (:mod:`identification`): trajectories flown by the hover LQR with the upper-level
        weights (Qc, Rc) towards ``x_ref``'s position, on a plant with the package's
        equations. Method ``flights``
        (:func:`~hybrid_mpc_ros.core.model.flight_identification.identify_by_flying`):
        the scenario's safe MPC flies the plant (any kind) near ``x_ref`` with input
        excitation, the flight is fitted, and again with the fitted model; the first
        flight uses :meth:`first_model`; with ``recordings`` (a directory) the flights are
        written there as MCAP. The header records the scenario's name.
        """
        settings = replace(self.identification, **overrides)
        if isinstance(settings, FlightSettings):
            x_hover = np.array(self.x_ref, dtype=float)
            start = self.first_model()
            model, rounds = identify_by_flying(
                self.plant(), lambda model, excitation: self.safe_controller(model, excitation),
                start, settings, x_hover, np.array(self.u_ref),
                (self.shared.u_min, self.shared.u_max), recordings, progress)
            model = self._validated([('start', start)] + [
                (f'flight {r.index + 1}', r.model) for r in rounds], model, progress)
            model.header.update(plant=self.simulator.describe(), dt=self.period_s)
        else:
            plant = self.plant()
            if not hasattr(plant, 'jacobians'):
                raise ConfigError(
                    f'scenario {self.path}: system_identification method lqr flies a hover '
                    f'LQR linearised from the plant\'s equations, and a {self.simulator.kind} '
                    'plant has none the package may use; set method: flights (the MPC flies '
                    'it with input excitation, see docs/identification.md)')
            model = identify(plant, settings, self.x_ref[0:3], self.qc, self.rc, progress)
        model.header = dict({'scenario': self.name}, **model.header)
        return model

    def _validated(self, candidates, last: AffineModel, progress) -> AffineModel:
        """Fly the scenario's episode with each model; return the one that flies it best.

        ``candidates`` are ``(label, model)``: the first flight's model and each flight's
        fit. Each flies one episode (``x0`` to ``x_ref``, ``episode_steps``, the start
        theta, no excitation) on the plant: a model that predicts one step well near hover
        can still lose the vehicle on the way to the target. Best is the lowest
        closed-loop cost C of that episode (what the tuner then lowers further), a later
        flight's model on a tie. The header of the model
        returned (``last``'s, with its matrices replaced when another won) records every
        validation flight and which model was chosen.
        """
        steps, cost = self.tuning.episode_steps, self.cost()
        flights = []
        for label, model in candidates:
            record = rollout(self.plant(), self.policy(model), self.x0, steps,
                             sensitivities=False)
            error = float(np.linalg.norm(record.x[-1, 0:3] - self.x_ref[0:3]))
            flights.append({'model': label, 'cost': float(cost(record)),
                            'final_position_error_m': error,
                            'solver_failures': record.failures})
            if progress:
                progress(f'validation: the {label} model flies x0 to x_ref in {steps} steps: '
                         f'cost {flights[-1]["cost"]:.2f}, ending {error:.4f} m away '
                         f'({record.failures} solver failures)')
        best = min(range(len(flights)), key=lambda i: (
            not np.isfinite(flights[i]['cost']), flights[i]['cost'], -i))
        chosen = candidates[best][1]
        header = dict(last.header, validation=flights, chosen=candidates[best][0])
        model = AffineModel(chosen.A, chosen.B, chosen.c, chosen.dt, header)
        if best != len(candidates) - 1 and progress:
            progress(f'WARNING: the last flight\'s model flies the episode at cost '
                     f'{flights[-1]["cost"]:.2f}; writing the {candidates[best][0]} model, '
                     f'which flies it at {flights[best]["cost"]:.2f}')
        return model

    def first_model(self) -> AffineModel:
        """Return the model the first identification flight flies with.

        From the rough specifications of ``system_identification.specs`` when the file
        gives them (so that identifying again starts from the same place), else the
        nominal model already loaded; ConfigError when there is neither.
        """
        specs = getattr(self.identification, 'specs', None)
        if specs is not None:
            return specs.model(self.period_s)
        if self.model is not None:
            return self.model
        raise ConfigError(f'scenario {self.path}: no model to fly the first identification '
                          'flight with: give system_identification.specs (the vehicle\'s '
                          f'mass, arm, rotor coefficients, inertia and layout) or a '
                          f'{self.nominal_model_file} that exists')

    # -- the controller ----------------------------------------------------------------

    def initial_theta(self, model: AffineModel | None = None) -> np.ndarray:
        """Return the paper's start (94,): Q = Qc, R = Rc, P = DARE of the model's (A, B)."""
        model = model or self.nominal_model()
        return th.initial_theta(model.A, model.B, self.qc, self.rc)

    def policy(self, model: AffineModel | None = None, config: MPCConfig | None = None,
               theta: np.ndarray | None = None) -> MPCPolicy:
        """Build the MPC on the nominal model (or ``model``), from :meth:`initial_theta`.

        ``config`` replaces :attr:`mpc_config` (e.g. a test's solver settings) and
        ``theta`` (94,) the start. With a ``disturbance_observer_gain`` it is the
        offset-free MPC (:class:`~hybrid_mpc_ros.core.mpc.offset_free.OffsetFreePolicy`).
        """
        model = model or self.nominal_model()
        theta = self.initial_theta(model) if theta is None else theta
        gain = self.controller.disturbance_observer_gain
        if gain is not None:
            return OffsetFreePolicy(model, config or self.mpc_config, theta, self.x_ref,
                                    self.u_ref, gain)
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

    def safe_controller(self, model: AffineModel | None = None, excitation=None):
        """Return the controller as the node runs it: the safe MPC on ``model`` (or the nominal).

        :class:`~hybrid_mpc_ros.core.mpc.safe_control.SafeController` around :meth:`policy`
        at the start theta, its safety settings (odometry timeout, plan steps, failsafe
        thrust) from the controller's own parameter file ``config/mpc_controller.yaml``,
        and an optional input ``excitation``
        (:class:`~hybrid_mpc_ros.core.control.excitation.Excitation`).
        """
        from hybrid_mpc_ros.core.mpc.safe_control import SafeController, SafetyConfig
        runtime = flatten(load_node_params(paths.config_file('mpc_controller.yaml'),
                                           'mpc_controller'))
        safety = SafetyConfig(runtime['odom_timeout_s'], runtime['max_plan_steps'],
                              runtime['failsafe_thrust_fraction'])
        return SafeController(self.policy(model), safety, self.shared.u_min,
                              self.shared.u_max, excitation=excitation)

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
        """Build the closed-loop cost C: the scenario's weights, references and box X."""
        x_lb, x_ub = self.shared.state_box()
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

        Also ``observer_model``, the nominal model (when loaded), for the episodes of an
        offset-free controller.

        For a run of ``config`` (default: the file's) from ``theta0`` (94,; default
        :meth:`initial_theta`); see :meth:`TunerRules.build`.
        """
        config = config or self.tuning
        theta0 = self.initial_theta() if theta0 is None else theta0
        keywords = self.rules.build(config, theta0)
        if self.model is not None:
            # the gradient of an offset-free controller's episodes chains through its
            # observer, which predicts with the nominal model (the records carry its gain)
            keywords['observer_model'] = self.model
        return keywords

    def offline_tuner(self, plant=None, config: TuningConfig | None = None, progress=None,
                      observe=None):
        """Return a :class:`~hybrid_mpc_ros.core.learning.tuning.Tuner` with this scenario's rules.

        The episodes fly ``plant`` (default :meth:`plant`; any object with ``step(x, u)``
        and ``reset(x0)``, see :class:`~hybrid_mpc_ros.core.model.plant.Plant`) from
        ``x0`` under :meth:`policy`; the gradient, the cost, the start theta, the step
        rule, the guard and the mixing are the scenario's (:meth:`tuner_rules`), as
        ``hybrid-mpc reproduce`` runs them. ``config`` replaces the file's
        :class:`TuningConfig`; ``progress(row)`` is called after each iteration and
        ``observe`` is :func:`~hybrid_mpc_ros.core.learning.tuning.simulated_episodes`'.
        Run it with ``.run()``.
        """
        from hybrid_mpc_ros.core.learning.tuning import simulated_episodes, Tuner
        config = config or self.tuning
        policy = self.policy()
        episodes = simulated_episodes(self.plant() if plant is None else plant, policy,
                                      self.x0, config.episode_steps, observe=observe)
        theta0 = policy.theta.copy()
        return Tuner(config, episodes, self.nominal_model().jacobians, self.cost(), theta0,
                     progress=progress, **self.tuner_rules(config, theta0))

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
