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
"""

from __future__ import annotations

import os
from typing import Callable

import numpy as np

from hybrid_mpc_ros.core.model.fit_report import (FitReport, FitSettings, fit_with_report,
                                                  IdentificationError)
from hybrid_mpc_ros.core.model.flight_log import (DEFAULT_COMMAND_TOPIC, DEFAULT_ODOMETRY_TOPIC,
                                                  FlightRecord, read_flight, segments,
                                                  write_flight)
from hybrid_mpc_ros.core.model.nominal_model import AffineModel
from hybrid_mpc_ros.core.model.quadcopter import NU, NX

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
