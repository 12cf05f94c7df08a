"""``hybrid-mpc record``: record a flight (odometry and rotor commands) to MCAP.

Two routes to the same kind of recording (:mod:`hybrid_mpc_ros.core.model.flight_log`):

* from ROS topics (default): runs the ``flight_recorder`` node
  (:mod:`hybrid_mpc_ros.ros.flight_recorder_node`) until SIGINT or ``--duration``; fly
  the vehicle (or the simulator) with the MPC controller's ``excitation.amplitude_rad_s``
  above 0 meanwhile;
* ``--offline``: flies the scenario's plant from hover at ``x_ref`` with the scenario's MPC
  (the safe controller, as the node runs it, its safety settings from
  ``config/mpc_controller.yaml``) and the excitation given here, without ROS
  (:func:`~hybrid_mpc_ros.core.model.flight_identification.record_flight`).

Then ``hybrid-mpc identify --from OUT`` fits the model.
"""

from __future__ import annotations

import json
import time

from hybrid_mpc_ros.tools.cli import add_scenario_argument, positive_float


def record_offline(scenario: str | None, out: str, duration_s: float, amplitude: float,
                   kind: str, seed: int) -> dict:
    """Fly the scenario's plant offline with its MPC and excitation; write ``out``; a summary."""
    from hybrid_mpc_ros.core.control.excitation import Excitation, ExcitationConfig
    from hybrid_mpc_ros.core.model.flight_identification import record_flight
    from hybrid_mpc_ros.core.scenario import load_scenario, resolve_scenario_path
    setup = load_scenario(resolve_scenario_path(scenario))
    excitation = Excitation(ExcitationConfig(amplitude, kind, seed), setup.shared.u_min,
                            setup.shared.u_max)
    controller = setup.safe_controller(excitation=excitation)
    steps = int(round(duration_s / setup.period_s))
    started = time.perf_counter()
    record_flight(setup.plant(), lambda x: controller.step(x, sensitivities=False).u,
                  setup.x_ref, steps, out)
    return {'out': out, 'scenario': setup.path, 'steps': steps,
            'excitation': excitation.config.describe(),
            'modes': dict(controller.counters.modes),
            'seconds': round(time.perf_counter() - started, 3)}


def add_arguments(parser) -> None:
    """Add the options of ``hybrid-mpc record`` to ``parser``."""
    parser.description = (
        'Record odometry (nav_msgs/Odometry) and rotor commands (std_msgs/'
        'Float64MultiArray) to a rosbag2 MCAP directory that ros2 bag, Foxglove and '
        'PlotJuggler open and `hybrid-mpc identify --from` reads: from ROS topics until '
        'SIGINT or --duration, or --offline by flying the scenario with its MPC and an '
        'input excitation.')
    parser.add_argument('--out', required=True, help='the recording (a new directory)')
    parser.add_argument('--duration', type=positive_float, default=None,
                        help='seconds to record (ROS: wall time, default until SIGINT; '
                             'offline: flight time, default 60)')
    parser.add_argument('--odom-topic', default='odom', help='odometry topic (ROS route)')
    parser.add_argument('--command-topic', default='rotor_speeds_cmd',
                        help='rotor command topic (ROS route)')
    parser.add_argument('--offline', action='store_true',
                        help="fly the scenario's plant with its MPC instead of listening")
    add_scenario_argument(parser)
    parser.add_argument('--amplitude', type=float, default=5.0,
                        help='offline: excitation amplitude [rad/s] (default %(default)s)')
    parser.add_argument('--kind', default='prbs', choices=('prbs', 'gaussian'),
                        help='offline: excitation kind (default %(default)s)')
    parser.add_argument('--seed', type=int, default=0,
                        help='offline: excitation seed (default %(default)s)')


def run(args) -> int:
    """Run ``hybrid-mpc record`` with the parsed ``args``; the exit status."""
    if args.offline:
        summary = record_offline(args.scenario, args.out, args.duration or 60.0,
                                 args.amplitude, args.kind, args.seed)
        print(f"flew {summary['steps']} steps ({summary['excitation']}) in "
              f"{summary['seconds']} s; wrote {args.out}")
        print(json.dumps(summary))
        return 0
    from hybrid_mpc_ros.ros.flight_recorder_node import FlightRecorderNode, NODE_NAME
    from hybrid_mpc_ros.ros.node_runtime import run_node
    ros_args = ['--ros-args', '-p', f'output:={args.out}', '-p',
                f'odometry_topic:={args.odom_topic}', '-p',
                f'command_topic:={args.command_topic}']
    if args.duration:
        ros_args += ['-p', f'duration_s:={float(args.duration)}']
    return run_node(FlightRecorderNode, NODE_NAME, ros_args)
