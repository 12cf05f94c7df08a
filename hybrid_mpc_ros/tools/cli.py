"""The ``hybrid-mpc`` command: parses arguments and dispatches to the package's modules.

Each subcommand is registered by one ``_add_<command>`` function that builds its parser
and sets ``handler``, a function taking the parsed arguments and returning an exit status.
The handlers import their module only when run, so ``hybrid-mpc --help`` stays fast and
needs no ROS graph. Adding ``bench mpc``, ``identify``, ``reproduce`` or ``tune`` means one
more ``_add_*`` function (or one more target in :func:`_add_bench`).

Installed as a console script into ``lib/hybrid_mpc_ros``, so it also runs as
``ros2 run hybrid_mpc_ros hybrid-mpc ...``; ROS arguments (``--ros-args ...``) that
``ros2 run`` or a launch file may append are dropped before parsing.
"""

from __future__ import annotations

import argparse
import sys

PROG = 'hybrid-mpc'
DEFAULT_TARGET = (-6.0, -3.5, 0.0)


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0.0:
        raise argparse.ArgumentTypeError(f'must be > 0, got {text}')
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f'must be >= 1, got {text}')
    return value


def _run_demo(args: argparse.Namespace) -> int:
    from hybrid_mpc_ros.tools import demo
    return demo.main(seconds=args.seconds, target=tuple(args.target),
                     realtime=args.realtime, odom_timeout_s=args.odom_timeout)


def _run_bench_sim(args: argparse.Namespace) -> int:
    from hybrid_mpc_ros.tools import bench
    return bench.main_sim(steps=args.steps, warmup_steps=args.warmup)


def _run_identify(args: argparse.Namespace) -> int:
    from hybrid_mpc_ros.core.model import identification
    from hybrid_mpc_ros.core import paths
    import os
    out = args.out or os.path.join(paths.source_config_dir(), 'nominal_model.npz')
    return identification.main(out=out, seed=args.seed, trajectories=args.trajectories,
                               plant_file=args.plant_file)


def _run_bench_mpc(args: argparse.Namespace) -> int:
    from hybrid_mpc_ros.tools import bench_mpc
    return bench_mpc.main(steps=args.steps, fd_steps=args.fd_steps, model_file=args.model,
                          kind=args.kind)


def _add_identify(commands) -> None:
    parser = commands.add_parser(
        'identify', help='fit the affine nominal model from closed-loop plant data',
        description='Collect seeded, excited closed-loop trajectories near the target on the '
                    'simulated plant, fit x+ = A x + B u + c by least squares, report held-out '
                    'prediction errors and write the model (NPZ with a YAML header).')
    parser.add_argument('--out', default=None,
                        help='output file (default: config/nominal_model.npz of the checkout)')
    parser.add_argument('--seed', type=int, default=0, help='random seed (default: 0)')
    parser.add_argument('--trajectories', type=_positive_int, default=100,
                        help='training trajectories (default: %(default)s)')
    parser.add_argument('--plant-file', default=None,
                        help='ROS parameter file with plant constants under plant: '
                             '(default: the paper\'s plant)')
    parser.set_defaults(handler=_run_identify)


def _run_reproduce(args: argparse.Namespace) -> int:
    from hybrid_mpc_ros.tools import reproduce
    return reproduce.main(out=args.out, iterations=args.iterations, steps=args.steps,
                          seed=args.seed, runs=args.runs, workers=args.workers,
                          model_file=args.model)


def _add_reproduce(commands) -> None:
    from hybrid_mpc_ros.tools.reproduce import RUNS
    parser = commands.add_parser(
        'reproduce', help="reproduce the paper's quadcopter experiment (all methods)",
        description='Tune the MPC from the paper\'s initialisation with the zeroth-order, '
                    'model-based and hybrid (gamma 0.25/0.5/0.75) gradients and the '
                    'exact-model reference, in parallel processes; write CSVs, figures, a '
                    'markdown table and a JSON summary (last line). Reruns resume from the '
                    'checkpoints in --out.')
    parser.add_argument('--out', default='results/reproduce',
                        help='output directory (default: %(default)s)')
    parser.add_argument('--iterations', type=_positive_int, default=200,
                        help='iterations per run (default: %(default)s)')
    parser.add_argument('--steps', type=_positive_int, default=200,
                        help='closed-loop steps per episode, T (default: %(default)s)')
    parser.add_argument('--seed', type=int, default=0, help='random seed (default: 0)')
    parser.add_argument('--runs', nargs='+', choices=list(RUNS), default=None,
                        help='which runs (default: all)')
    parser.add_argument('--workers', type=_positive_int, default=None,
                        help='parallel processes (default: number of cores)')
    parser.add_argument('--model', default=None,
                        help='nominal model file (default: config/nominal_model.npz)')
    parser.set_defaults(handler=_run_reproduce)


def _add_demo(commands) -> None:
    parser = commands.add_parser(
        'demo', help='fly the quadcopter simulator with the LQR controller (ROS 2 nodes)',
        description='Start the quadcopter simulator node and the LQR controller node as '
                    'separate processes on a private ROS domain, follow the odometry and '
                    'print progress every simulated second, a summary and, as the last '
                    'line, a JSON object.')
    parser.add_argument('--seconds', type=_positive_float, default=20.0,
                        help='simulated seconds to fly (default: %(default)s)')
    parser.add_argument('--target', type=float, nargs=3, metavar=('X', 'Y', 'Z'),
                        default=list(DEFAULT_TARGET),
                        help='hover target in the odom frame [m] (default: -6 -3.5 0)')
    parser.add_argument('--realtime', action='store_true',
                        help='run the simulator in real time instead of lockstep')
    parser.add_argument('--odom-timeout', type=_positive_float, default=30.0,
                        help='wall seconds to wait for the first odometry and, after it, for '
                             'simulated time to advance (default: %(default)s)')
    parser.set_defaults(handler=_run_demo)


def _add_bench(commands) -> None:
    parser = commands.add_parser(
        'bench', help='speed benchmarks; prints a JSON object as the last line',
        description='Speed benchmarks. Progress goes to stderr, the result is a JSON object '
                    'on the last line of stdout.')
    targets = parser.add_subparsers(dest='target', metavar='TARGET', required=True)
    sim = targets.add_parser(
        'sim', help='plant step rate: core Quadcopter.step and the ROS lockstep loop',
        description='Measure Quadcopter.step in a tight loop (core_steps_per_s) and the '
                    'simulator node in lockstep answered by the LQR controller node, '
                    'counted from odometry stamps by this process (ros_lockstep_steps_per_s).')
    sim.add_argument('--steps', type=_positive_int, default=2000,
                     help='steps to time, after the warm-up (default: %(default)s)')
    sim.add_argument('--warmup', type=_positive_int, default=50,
                     help='lockstep steps to let pass before timing (default: %(default)s)')
    sim.set_defaults(handler=_run_bench_sim)
    mpc = targets.add_parser(
        'mpc', help='MPC solve and sensitivity timings, accuracy and memory',
        description='Closed-loop MPC steps on the plant: solve and solve+sensitivity times, '
                    'the same sensitivities by finite differences of the solver, an '
                    'independent QP solve, the sensitivity error and memory growth.')
    mpc.add_argument('--steps', type=_positive_int, default=100000,
                     help='closed-loop steps to time (default: %(default)s)')
    mpc.add_argument('--fd-steps', type=_positive_int, default=50,
                     help='steps at which finite differences are timed (default: %(default)s)')
    mpc.add_argument('--model', default=None,
                     help='nominal model file (default: config/nominal_model.npz)')
    mpc.add_argument('--kind', choices=('affine', 'nonlinear'), default='affine',
                     help='nominal model kind: the identified affine model, or the '
                          'nonlinear physics model solved by SQP-RTI (default: affine)')
    mpc.set_defaults(handler=_run_bench_mpc)


def build_parser() -> argparse.ArgumentParser:
    """Build the ``hybrid-mpc`` argument parser with all its subcommands."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description='Hybrid model-based / zeroth-order tuning of an MPC, with ROS 2 nodes.')
    commands = parser.add_subparsers(dest='command', metavar='COMMAND', required=True)
    _add_demo(commands)
    _add_identify(commands)
    _add_reproduce(commands)
    _add_bench(commands)
    return parser


def strip_ros_args(argv: list[str]) -> list[str]:
    """``argv`` without ``--ros-args ... [--]`` blocks (ros2 run and launch may add them)."""
    if '--ros-args' not in argv:
        return list(argv)
    kept, inside = [], False
    for arg in argv:
        if arg == '--ros-args':
            inside = True
        elif inside and arg == '--':
            inside = False
        elif not inside:
            kept.append(arg)
    return kept


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``hybrid-mpc`` console script; returns the exit status."""
    argv = strip_ros_args(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == '__main__':
    sys.exit(main())
