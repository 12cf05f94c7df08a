"""Scenarios: one ROS parameter file defines an experiment; this module builds it.

A scenario file (``config/scenarios/*.yaml``) is a ROS 2 parameter file, so ``ros2 run
--params-file``, ``ros2 launch`` and the package's commands read the same values. Values
several nodes need sit in the wildcard section ``/**``; each node has its own section;
sections no node reads (``system_identification``, ``reproduction``, ``paper``) are
ignored by ROS (rclpy ignores overrides of parameters a node does not declare)::

    /**:                    period_s, initial_state (12), x_ref (12), u_ref (4),
                            constraints: {x_lb (9), x_ub (9), u_min, u_max},
                            cost_weights: {qc (12), rc (4)}, nominal_model_file
    quadcopter_simulator:   the true system: kind ('quadcopter' or 'rotorpy'), layout,
                            command_rotors; quadcopter: integrator, substeps, plant:
                            {mass, ..., omega_max}; rotorpy: rotorpy: {vehicle, aero,
                            wind, integration, inner_step_s, noise_seed, parameters:
                            {mass, ...}}
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
``eta_rule.kind: agreement``; the simulator's ``integrator``, ``substeps`` and ``plant``
to ``kind: quadcopter`` (the default), its ``rotorpy`` group (``vehicle`` and ``aero``
required), ``layout`` and ``command_rotors`` (required) to ``kind: rotorpy``. A key of
the other choice is refused (it would do nothing).
The shipped files
comment each value with its unit and source. :func:`load_scenario` checks the whole file
before anything is built and raises :class:`ConfigError` naming the file, the key and the
problem: an unknown key (a typo never passes silently), a missing key, a wrong type (as
ROS would type the value: ``1`` is an integer, ``1e-5`` a string, ``1.0e-5`` a double), a
wrong length, a non-finite number, a value out of range, an empty state box, a vehicle that
cannot hover within its rotor limits, a RotorPy vehicle whose rotors are not where
``layout`` and ``command_rotors`` say, an MPC input box beyond the plant's rotor limits
(the plant the scenario uses), a nominal model whose sampling time is not the
scenario's. The :class:`Scenario` it returns builds the parts of a run: the plant, the
nominal model, the MPC policy, the closed-loop cost and the tuning configuration.

A node reads the same sections from its ROS parameters: :func:`node_parameters` is what
it declares (every key of ``/**`` and of its section, with description and range from
:mod:`.schema`; an optional key the default scenario leaves out is declared without a
value), and :func:`node_scenario` checks the values it was given exactly as a file's and
returns a :class:`Scenario` with its own section only.

Modules: :mod:`.schema` (the keys), :mod:`.sections` (one dataclass per section),
:mod:`.load` (the loader), :mod:`.model` (:class:`Scenario`), :mod:`.files` (where
scenario files are).
"""

from hybrid_mpc_ros.core.config import ConfigError
from hybrid_mpc_ros.core.scenario.files import (DEFAULT_SCENARIO, default_scenario_path,
                                                resolve_scenario_path, SCENARIO_DIR,
                                                shipped_scenarios)
from hybrid_mpc_ros.core.scenario.load import (load_scenario, node_defaults, node_parameters,
                                               node_scenario)
from hybrid_mpc_ros.core.scenario.model import Scenario
from hybrid_mpc_ros.core.scenario.sections import (AblationSettings, Controller, PaperNumbers,
                                                   Reproduction, Run, run_name, Shared,
                                                   Simulator, Tuner, TunerRules)

__all__ = [
    'AblationSettings', 'ConfigError', 'Controller', 'DEFAULT_SCENARIO',
    'default_scenario_path', 'load_scenario', 'node_defaults', 'node_parameters',
    'node_scenario', 'PaperNumbers', 'Reproduction', 'resolve_scenario_path', 'Run',
    'run_name', 'Scenario', 'SCENARIO_DIR', 'Shared', 'shipped_scenarios', 'Simulator',
    'Tuner', 'TunerRules',
]
