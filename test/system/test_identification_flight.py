"""An identification flight the ROS way: simulator and controller (excitation on, lockstep)
recorded by the flight_recorder node to MCAP, then fitted from the recording."""

import time

from diagnostic_msgs.msg import DiagnosticArray
import numpy as np
from rcl_interfaces.msg import Parameter as ParameterMsg, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import SetBool

from hybrid_mpc_ros.core.model.fit_report import FitSettings
from hybrid_mpc_ros.core.model.flight_identification import fit_from_recording
from hybrid_mpc_ros.core.model.flight_log import read_flight
from hybrid_mpc_ros.tools import processes
from scenario_setup import scenario, scenario_path

DEEP = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
STEPS = 700


def _start(module, log_dir, name, params_file=True, **params):
    return processes.start_node(module, params_file=scenario_path('arxiv_v1') if params_file
                                else None, params=params,
                                log_path=str(log_dir / f'{name}.log'))


def _hold(ros_node, hold):
    return ros_node.call(SetBool, '/mpc_controller/hold', SetBool.Request(data=hold),
                         timeout=60.0)


def _set(ros_node, name, kind, field, value):
    param = ParameterMsg(name=name, value=ParameterValue(type=kind, **{field: value}))
    return ros_node.call(SetParameters, '/mpc_controller/set_parameters',
                         SetParameters.Request(parameters=[param])).results[0]


def test_a_recorded_lockstep_flight_with_excitation_is_identified(tmp_path, ros_node):
    commands = ros_node.collect(Float64MultiArray, 'rotor_speeds_cmd', DEEP)
    diagnostics = ros_node.collect(DiagnosticArray, '/diagnostics', DEEP)
    out = tmp_path / 'flight'
    started = time.monotonic()
    recorder = _start('ros.flight_recorder_node', tmp_path, 'recorder', params_file=False,
                      output=str(out))
    sim = controller = None
    try:
        # the flight must not start before the recorder hears both topics: a lockstep
        # flight of 700 steps takes 2 to 3 s, discovering a new participant up to 3.6 s
        # here (a recording of 1037 commands and no odometry: the recorder matched the
        # simulator after the flight). So the controller is held (it keeps the odometry
        # without answering, and the lockstep simulator waits, re-publishing it) until the
        # recorder has heard the controller and recorded the simulator's odometry
        controller = _start('ros.mpc_controller_node', tmp_path, 'controller',
                            use_sim_time=True,
                            **{'excitation.amplitude_rad_s': 5.0, 'excitation.seed': 1})
        assert _hold(ros_node, True).success, controller.log_text()
        assert ros_node.spin_until(
            lambda: 'rotor_speeds_cmd: 1 publisher(s) matched' in recorder.log_text(),
            60.0), recorder.log_text()
        sim = _start('ros.simulator_node', tmp_path, 'simulator', clock_mode='lockstep',
                     use_sim_time=True)
        assert ros_node.spin_until(
            lambda: '/odom: first message recorded' in recorder.log_text(), 60.0), \
            recorder.log_text()
        assert _hold(ros_node, False).success, controller.log_text()
        assert ros_node.spin_until(lambda: len(commands) >= STEPS, 120.0), (
            sim.log_text()[-2000:] + controller.log_text()[-2000:])
        assert sim.stop() == 0
        # the diagnostics say the excitation is on; live changes are judged, never fatal
        assert ros_node.spin_until(lambda: any(
            'input excitation on: prbs +-5 rad/s (seed 1)' in status.message
            for msg in diagnostics for status in msg.status), 10.0), controller.log_text()
        bad = _set(ros_node, 'excitation.kind', ParameterType.PARAMETER_STRING, 'string_value',
                   'sine')
        assert not bad.successful and "kind must be one of ('prbs', 'gaussian')" in bad.reason
        too_big = _set(ros_node, 'excitation.amplitude_rad_s', ParameterType.PARAMETER_DOUBLE,
                       'double_value', 5000.0)
        assert not too_big.successful
        assert _set(ros_node, 'excitation.amplitude_rad_s', ParameterType.PARAMETER_DOUBLE,
                    'double_value', 0.0).successful
        assert controller.alive()
        ros_node.spin_for(0.5)
        assert recorder.stop() == 0, recorder.log_text()
    finally:
        for node in (sim, controller, recorder):
            if node is not None:
                node.stop()
    flown = time.monotonic() - started
    chosen = scenario('arxiv_v1')
    record = read_flight(out)
    config = chosen.mpc_config
    # both topics recorded (the recorder's log says what it heard and wrote)
    assert len(record.commands) >= STEPS - 5, recorder.log_text()
    assert len(record.states) >= STEPS - 5, recorder.log_text()
    # excited, and never beyond the rotor bounds
    assert np.all((record.commands >= config.u_min) & (record.commands <= config.u_max))
    started = time.monotonic()
    model, report = fit_from_recording(out, chosen.period_s, chosen.x_ref, chosen.u_ref,
                                       FitSettings(affine=True))
    fitted = time.monotonic() - started
    # lockstep: one command per odometry, no gap
    assert report.alignment['missing_commands'] == 0, report.alignment
    assert report.alignment['missing_odometry'] == 0, report.alignment
    assert min(report.input_std_rad_s) > 3.0
    assert report.errors['one_step_rmse_position'] < 1e-3, report.lines()
    np.testing.assert_allclose(report.hover_input_rad_s, chosen.u_ref, rtol=0.02)
    print(f'flight and recording {flown:.1f} s, fit {fitted:.2f} s')
    print('\n'.join(report.lines()))
