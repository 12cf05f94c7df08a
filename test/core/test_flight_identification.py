"""Identification from a recorded flight: a known linear system comes back; bad data are refused."""

import json

import numpy as np
import pytest

from hybrid_mpc_ros.core.config import ConfigError
from hybrid_mpc_ros.core.control.excitation import Excitation, ExcitationConfig
from hybrid_mpc_ros.core.model.fit_report import FitSettings, IdentificationError
from hybrid_mpc_ros.core.model.flight_identification import (fit_from_recording,
                                                             fit_recording, record_flight)
from hybrid_mpc_ros.core.model.flight_log import FlightRecord
from hybrid_mpc_ros.tools.cli import main as cli_main

U_HOVER = np.full(4, 500.0)
X_HOVER = np.array([1.0, -2.0, 0.5] + [0.0] * 9)


class LinearPlant:
    """A known ``x+ = A x + B u + c + w`` (stable, hovering at X_HOVER with U_HOVER)."""

    dt = 0.1

    def __init__(self, seed=1, noise=1e-5):
        rng = np.random.default_rng(seed)
        a_mat = np.eye(12) + 0.05 * rng.normal(size=(12, 12)) / np.sqrt(12)
        self.A = a_mat * 0.97 / np.max(np.abs(np.linalg.eigvals(a_mat)))
        self.B = 1e-3 * rng.normal(size=(12, 4))
        self.c = X_HOVER - self.A @ X_HOVER - self.B @ U_HOVER
        self.noise, self.rng, self.resets = noise, rng, 0

    def reset(self, x0):
        self.resets += 1

    def step(self, x, u):
        return self.A @ x + self.B @ u + self.c + self.noise * self.rng.normal(size=12)

    def clip_input(self, u):
        return np.clip(u, 0.0, 1000.0)


def _feedback(plant, amplitude=20.0, gain=0.5):
    """A stabilising-ish state feedback to hover plus the controller's excitation."""
    excitation = Excitation(ExcitationConfig(amplitude, 'prbs', 3), 0.0, 1000.0)
    k_mat = gain * np.linalg.pinv(plant.B)
    return lambda x: excitation.apply(U_HOVER - np.clip(k_mat @ (x - X_HOVER), -100, 100))


def test_identification_recovers_a_known_linear_system_from_its_recording(tmp_path):
    plant = LinearPlant()
    record_flight(plant, _feedback(plant), X_HOVER, 600, path=tmp_path / 'flight')
    assert plant.resets == 1
    model, report = fit_from_recording(tmp_path / 'flight', 0.1, X_HOVER, U_HOVER)
    np.testing.assert_allclose(model.A, plant.A, rtol=0, atol=5e-3)
    np.testing.assert_allclose(model.B, plant.B, rtol=0, atol=5e-7)
    np.testing.assert_allclose(model.c, plant.c, rtol=0, atol=1e-2)
    # the report: held-out errors at the noise level, the hover input, no warning
    assert report.held_out_blocks == 2 and report.training_samples == 500
    assert max(v for k, v in report.errors.items() if k.startswith('one_step')) < 3e-5
    np.testing.assert_allclose(report.hover_input_rad_s, U_HOVER, rtol=0, atol=0.5)
    assert min(report.excitation_ratio) > 0.5 and report.warnings == []
    assert report.alignment['used_steps'] == 600
    assert np.all(np.array(report.input_std_rad_s) > 15.0)
    assert model.header['report']['condition_number'] == report.condition_number
    assert any(line.startswith('hover input implied') for line in report.lines())


def _record(plant, command, steps=600):
    return record_flight(plant, command, X_HOVER, steps)


def test_unusable_data_are_refused_with_the_reason():
    plant = LinearPlant()
    good = _record(plant, _feedback(plant))
    with pytest.raises(IdentificationError, match='too short'):
        fit_recording(_record(plant, _feedback(plant), steps=100), 0.1, X_HOVER, U_HOVER)
    states = good.states.copy()
    states[40, 3] = np.nan
    with pytest.raises(IdentificationError, match='1 non-finite states'):
        fit_recording(FlightRecord(good.odometry_log_ns, good.odometry_stamp_ns, states,
                                   good.command_log_ns, good.commands), 0.1, X_HOVER, U_HOVER)
    # pure feedback, no excitation: the input is a function of the state
    with pytest.raises(IdentificationError, match='no excitation: every command is an affine'):
        fit_recording(_record(plant, _feedback(plant, amplitude=0.0)), 0.1, X_HOVER, U_HOVER)
    with pytest.raises(IdentificationError, match=r'no excitation: the command of rotor\(s\)'):
        fit_recording(_record(plant, lambda x: U_HOVER), 0.1, X_HOVER, U_HOVER)
    # every other command lost: half the steps are gaps
    with pytest.raises(IdentificationError, match='gaps: only 0 of'):
        fit_recording(FlightRecord(good.odometry_log_ns, good.odometry_stamp_ns, good.states,
                                   good.command_log_ns[::2], good.commands[::2]),
                      0.1, X_HOVER, U_HOVER)
    # a state that never moves makes the regressor rank deficient
    frozen = good.states.copy()
    frozen[:, 11] = 0.0
    with pytest.raises(IdentificationError, match=r'rank deficient.*state\(s\) \[11\]'):
        fit_recording(FlightRecord(good.odometry_log_ns, good.odometry_stamp_ns, frozen,
                                   good.command_log_ns, good.commands), 0.1, X_HOVER, U_HOVER)
    assert issubclass(IdentificationError, ConfigError)


def test_a_feedback_dominated_flight_is_flagged():
    # large disturbances the feedback answers, a small excitation
    plant = LinearPlant(noise=1e-2)
    _, report = fit_recording(_record(plant, _feedback(plant, amplitude=0.5, gain=0.9)), 0.1,
                              X_HOVER, U_HOVER, FitSettings())
    assert min(report.excitation_ratio) < 0.2
    assert any('excitation is small against the feedback' in w for w in report.warnings)


def test_identify_from_a_recording_on_the_command_line(tmp_path, capsys):
    """`hybrid-mpc identify --from`: the report, the model file, exit 2 on bad data."""
    plant = LinearPlant()
    record_flight(plant, _feedback(plant), X_HOVER, 600, path=tmp_path / 'flight',
                  odometry_topic='/uav/odom')
    out = tmp_path / 'model.npz'
    status = cli_main(['identify', '--from', str(tmp_path / 'flight'), '--odom-topic',
                       '/uav/odom', '--out', str(out)])
    printed = capsys.readouterr().out
    assert status == 0, printed
    summary = json.loads(printed.strip().splitlines()[-1])
    assert summary['out'] == str(out) and 'condition_number' in summary
    assert 'held-out one_step_rmse_position' in printed and 'u_ref: 620.61' in printed
    status = cli_main(['identify', '--from', str(tmp_path / 'flight'), '--out', str(out)])
    assert status == 2 and 'no topic /odom' in capsys.readouterr().err


def test_an_offline_identification_flight_of_a_scenario_on_the_command_line(tmp_path, capsys):
    """`hybrid-mpc record --offline` then `identify --from`: the scenario's own vehicle."""
    flight = tmp_path / 'flight'
    assert cli_main(['record', '--offline', '--scenario', 'arxiv_v1', '--out', str(flight),
                     '--duration', '30', '--amplitude', '5']) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary['steps'] == 300 and summary['modes']['failsafe'] == 0
    assert cli_main(['identify', '--scenario', 'arxiv_v1', '--from', str(flight), '--out',
                     str(tmp_path / 'model.npz')]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary['one_step_rmse_position'] < 5e-3        # an RK4 plant: nearly linear
    np.testing.assert_allclose(summary['hover_input_rad_s'], [620.61] * 4, rtol=0.02)
    # the simulated route's options do not mix with a recording
    assert cli_main(['identify', '--scenario', 'arxiv_v1', '--from', str(flight), '--seed',
                     '2', '--out', str(tmp_path / 'other.npz')]) == 2
