"""Identification from a recorded flight, and the offline flight that makes one (ROS-free).

The route a user with a real vehicle takes, and the same code offline:

1. fly near hover with the controller's input excitation on and record odometry and rotor
   commands to MCAP (on ROS: the controller node with ``excitation.amplitude_rad_s > 0``
   and ``hybrid-mpc record``; offline: :func:`record_flight` with a
   :class:`~hybrid_mpc_ros.core.mpc.safe_control.SafeController` holding an
   :class:`~hybrid_mpc_ros.core.control.excitation.Excitation`);
2. :func:`fit_from_recording`: read the recording
   (:func:`~hybrid_mpc_ros.core.model.flight_log.read_flight`), align commands to odometry
   on the model's period (:func:`~hybrid_mpc_ros.core.model.flight_log.segments`), refuse
   a recording with too many gaps, and fit with the report of
   :func:`~hybrid_mpc_ros.core.model.fit_report.fit_with_report`.

Where no model exists yet, a first one comes from rough specifications
(:class:`VehicleSpecs`: the package's quadcopter equations with the vehicle's mass,
arm, rotor coefficients, inertia and layout, linearised at hover), and
:func:`identify_by_flying` runs "fly with excitation, identify, fly again" on any plant:
the route of ``hybrid-mpc identify --scenario`` for a scenario whose
``system_identification.method`` is ``flights``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
import os
from typing import Callable

import numpy as np

from hybrid_mpc_ros.core.model.fit_report import (FitReport, FitSettings, fit_with_report,
                                                  IdentificationError)
from hybrid_mpc_ros.core.model.flight_log import (DEFAULT_COMMAND_TOPIC, DEFAULT_ODOMETRY_TOPIC,
                                                  FlightRecord, read_flight, segments,
                                                  write_flight)
from hybrid_mpc_ros.core.model.nominal_model import AffineModel, linearised_model
from hybrid_mpc_ros.core.model.quadcopter import NU, NX, Quadcopter, QuadParams

COMMAND_DELAY_NS = 1000     # offline: a command is logged 1 us after its odometry


def record_flight(plant, command: Callable[[np.ndarray], np.ndarray], x0: np.ndarray,
                  steps: int, path: str | os.PathLike | None = None,
                  odometry_topic: str = DEFAULT_ODOMETRY_TOPIC,
                  command_topic: str = DEFAULT_COMMAND_TOPIC,
                  start_ns: int = 0) -> FlightRecord:
    """Fly ``plant`` for ``steps`` periods under ``command`` and record it as a recorder would.

    ``plant`` has ``dt`` [s], ``step(x, u)`` and ``clip_input(u)`` (and ``reset(x0)``,
    called first when it has one); ``command(x)`` gives the rotor speeds (4,) [rad/s] for
    the state x (12,), e.g. ``lambda x: safe.step(x).u`` for a safe MPC controller with
    excitation. Odometry k is stamped and logged at ``start_ns + k dt``, its command logged
    1 us later; the command recorded is the one the plant receives (``clip_input``). With
    ``path`` the recording is also written there (a new directory; MCAP). Returns the
    :class:`FlightRecord` (``steps + 1`` odometry, ``steps`` commands).
    """
    x = np.array(x0, dtype=float).reshape(NX)
    if hasattr(plant, 'reset'):
        plant.reset(x.copy())
    period_ns = int(round(plant.dt * 1e9))
    stamps = start_ns + period_ns * np.arange(steps + 1, dtype=np.int64)
    states, inputs = [x], []
    for _ in range(steps):
        u = np.asarray(plant.clip_input(np.asarray(command(x), dtype=float)), dtype=float)
        x = np.asarray(plant.step(x, u), dtype=float)
        inputs.append(u)
        states.append(x)
    record = FlightRecord(stamps.copy(), stamps, np.array(states),
                          stamps[:-1] + COMMAND_DELAY_NS,
                          np.array(inputs).reshape(-1, NU))
    if path is not None:
        write_flight(path, record, odometry_topic, command_topic)
    return record


def fit_recording(record: FlightRecord, period_s: float, x_hover: np.ndarray,
                  u_ref: np.ndarray,
                  settings: FitSettings = FitSettings()) -> tuple[AffineModel, FitReport]:
    """Align a :class:`FlightRecord` on ``period_s`` [s] and fit it.

    As :func:`fit_from_recording` without the file (and without the model's header).
    """
    data, alignment = segments(record, period_s)
    if alignment.grid_steps == 0:
        raise IdentificationError(
            f'too short: the recording holds {len(record.odometry_stamp_ns)} odometry '
            f'messages and {len(record.command_log_ns)} commands, no step to fit')
    if alignment.gap_fraction > settings.max_gap_fraction:
        raise IdentificationError(
            f'gaps: only {alignment.used_steps} of the recording\'s {alignment.grid_steps} '
            f'steps of {period_s:g} s have odometry at both ends and a command '
            f'({alignment.missing_odometry} grid points without odometry, '
            f'{alignment.missing_commands} steps without a command, '
            f'{alignment.off_grid_odometry} odometry off the grid); at most '
            f'{settings.max_gap_fraction:.0%} may be missing. Is the odometry published '
            'every period, and are both topics recorded?')
    model, report = fit_with_report(data, period_s, x_hover, u_ref, settings)
    report.alignment = {name: getattr(alignment, name) for name in (
        'grid_steps', 'used_steps', 'missing_odometry', 'missing_commands',
        'duplicate_odometry', 'off_grid_odometry', 'reordered_commands', 'segments')}
    return model, report


def fit_from_recording(path: str | os.PathLike, period_s: float, x_hover: np.ndarray,
                       u_ref: np.ndarray, settings: FitSettings = FitSettings(),
                       odometry_topic: str = DEFAULT_ODOMETRY_TOPIC,
                       command_topic: str = DEFAULT_COMMAND_TOPIC
                       ) -> tuple[AffineModel, FitReport]:
    """Fit ``x+ = A x + B u (+ c)`` from the MCAP recording at ``path``, with its report.

    ``period_s`` [s]: the model's period (the data are aligned on it); ``x_hover`` (12,)
    and ``u_ref`` (4,) [rad/s]: the hover state and input reference of the hover-input
    check. The model's header says where the data came from (file, topics, settings, the
    report). Raises :class:`~hybrid_mpc_ros.core.config.ConfigError` (an
    :class:`IdentificationError` for unusable data) with the reason.
    """
    record = read_flight(path, odometry_topic, command_topic)
    model, report = fit_recording(record, period_s, x_hover, u_ref, settings)
    model.header = {
        'source': 'least squares on a recorded flight',
        'command': 'hybrid-mpc identify --from',
        'recording': os.path.abspath(os.fspath(path)),
        'topics': {'odometry': odometry_topic, 'command': command_topic},
        'settings': {name: getattr(settings, name) for name in (
            'affine', 'horizon', 'block_steps', 'holdout_every', 'max_gap_fraction')},
        'samples': report.training_samples,
        'held_out_errors': report.errors,
        'report': report.as_dict(),
    }
    return model, report


# -- the loop: fly with excitation, identify, fly again -------------------------------

@dataclass(frozen=True)
class VehicleSpecs:
    """Rough specifications of a vehicle, enough for a first model to fly with.

    ``params`` the constants of the package's quadcopter equations (mass, arm length,
    thrust and drag-torque coefficients, inertia; drag and rotor inertia 0 unless given),
    ``layout`` ('+' or 'x') and ``command_rotors`` as the plant's (see
    :mod:`~hybrid_mpc_ros.core.model.plant`).
    """

    params: QuadParams
    layout: str
    command_rotors: tuple[int, ...] = (1, 2, 3, 4)

    def model(self, period_s: float) -> AffineModel:
        """Return the quadcopter equations with these constants linearised at hover (affine).

        RK4 with 4 substeps over ``period_s``; ``c`` makes hover an equilibrium of the
        model. This is a model with no aerodynamics and no motor lag: good enough to fly
        the first identification flight, not to tune with.
        """
        quad = Quadcopter(self.params, period_s, 4, 'rk4', self.layout, self.command_rotors)
        model = linearised_model(quad)
        model.header = {'source': 'rough specifications linearised at hover',
                        'specs': dict(self.params.as_dict(), layout=self.layout,
                                      command_rotors=list(self.command_rotors))}
        return model


@dataclass(frozen=True)
class FlightSettings:
    """The ``flights`` identification method's settings (a scenario's ``system_identification``).

    ``rounds`` flights of ``duration_s`` [s] each from hover at the target, every rotor
    command excited by ``amplitude_rad_s`` [rad/s] of ``kind`` (seed ``seed + round``);
    each flight is flown with the model the one before fitted (the first with the specs'
    model, :class:`VehicleSpecs`, or the model given). The fit: ``affine`` (else
    ``c = 0``) and ``prediction_horizon`` steps for the multi-step error.
    """

    rounds: int
    duration_s: float
    amplitude_rad_s: float
    kind: str
    seed: int
    prediction_horizon: int
    affine: bool
    specs: VehicleSpecs | None = None
    method: str = 'flights'

    def fit_settings(self) -> FitSettings:
        """Return the :class:`FitSettings` of each round's fit."""
        return replace(FitSettings(), affine=self.affine, horizon=self.prediction_horizon)


@dataclass
class FlightRound:
    """One round of :func:`identify_by_flying`: its flight and the model fitted from it."""

    index: int
    model: AffineModel
    report: FitReport
    modes: dict
    recording: str | None


MAX_FLIGHT_DISTANCE_M = 5.0      # an identification flight farther from its hover point
MAX_UNSOLVED_FRACTION = 0.1      # or with more steps flown without a solve was not held


def _check_held(record: FlightRecord, x_hover: np.ndarray, modes: dict, index: int,
                excitation) -> None:
    """Refuse a flight the controller did not hold near its hover point.

    Such a flight is a crash or a tumble: its fit describes the crash, not the vehicle
    near hover, and the next flight would fly that model.
    """
    distance = float(np.max(np.linalg.norm(record.states[:, 0:3] - x_hover[0:3], axis=1)))
    unsolved = sum(count for mode, count in modes.items() if mode != 'mpc')
    steps = max(1, sum(modes.values()))
    if distance > MAX_FLIGHT_DISTANCE_M or unsolved > MAX_UNSOLVED_FRACTION * steps:
        raise IdentificationError(
            f'flight {index + 1} was not held near its hover point: it went {distance:.1f} m '
            f'away (at most {MAX_FLIGHT_DISTANCE_M:g}) and {unsolved} of its {steps} steps '
            f'were flown without an MPC solve ({modes}); a fit of that flight would '
            f'describe a crash. Fly with a smaller excitation than '
            f'{excitation.config.describe()}, or better rough specifications')


def identify_by_flying(plant, controller_for: Callable, start: AffineModel,
                       settings: FlightSettings, x_hover: np.ndarray, u_ref: np.ndarray,
                       u_bounds: tuple[float, float], recordings: str | None = None,
                       progress: Callable[[str], None] | None = None
                       ) -> tuple[AffineModel, list[FlightRound]]:
    """Fly ``plant`` with excitation, fit, fly again with the fitted model (``settings.rounds``).

    ``controller_for(model, excitation)`` builds the controller of a flight (the
    scenario's safe MPC on ``model`` with that
    :class:`~hybrid_mpc_ros.core.control.excitation.Excitation`; it has ``step(x,
    sensitivities=False).u`` and ``counters.modes``); ``start`` is the model of the
    first flight. Each flight starts at ``x_hover`` (12,) and is fitted with
    :func:`fit_recording` (the hover-input check against ``u_ref`` (4,)); ``u_bounds``
    are the rotor bounds the excitation is clipped to. With ``recordings`` (a directory)
    each flight is also written there as ``round_<k>`` (MCAP), for ``hybrid-mpc identify
    --from`` or a ROS tool. Returns the last model (header: the rounds' reports) and the
    rounds. An unusable flight raises :class:`IdentificationError` with its round.
    """
    from hybrid_mpc_ros.core.control.excitation import Excitation, ExcitationConfig
    model, rounds = start, []
    steps = int(round(settings.duration_s / plant.dt))
    for index in range(settings.rounds):
        excitation = Excitation(ExcitationConfig(settings.amplitude_rad_s, settings.kind,
                                                 settings.seed + index), *u_bounds)
        controller = controller_for(model, excitation)
        path = None if recordings is None else os.path.join(recordings, f'round_{index}')
        if progress:
            progress(f'flight {index + 1}/{settings.rounds}: {settings.duration_s:g} s with '
                     f'{excitation.config.describe()}'
                     + (f', recorded to {path}' if path else ''))
        record = record_flight(plant, lambda x: controller.step(x, sensitivities=False).u,
                               x_hover, steps, path)
        _check_held(record, x_hover, dict(controller.counters.modes), index, excitation)
        try:
            model, report = fit_recording(record, plant.dt, x_hover, u_ref,
                                          settings.fit_settings())
        except IdentificationError as exc:
            raise IdentificationError(f'flight {index + 1}: {exc}') from None
        rounds.append(FlightRound(index, model, report, dict(controller.counters.modes),
                                  path))
        if progress:
            errors = report.errors
            progress(f'flight {index + 1}: fitted; held-out one-step position error '
                     f'{errors["one_step_rmse_position"]:.2e} m, modes '
                     f'{dict(controller.counters.modes)}')
    model.header = {
        'source': 'least squares on excited flights of the plant under the MPC',
        'settings': {name: getattr(settings, name) for name in (
            'method', 'rounds', 'duration_s', 'amplitude_rad_s', 'kind', 'seed',
            'prediction_horizon', 'affine')},
        'start_model': start.header.get('source', 'given'),
        'samples': rounds[-1].report.training_samples,
        'held_out_errors': rounds[-1].report.errors,
        'report': rounds[-1].report.as_dict(),
        'rounds': [{'round': r.index, 'modes': r.modes, 'recording': r.recording,
                    'held_out_errors': r.report.errors,
                    'hover_input_rad_s': list(r.report.hover_input_rad_s),
                    'warnings': list(r.report.warnings)} for r in rounds],
    }
    return model, rounds
