"""The ``hybrid-mpc`` command: a table of subcommands, each run by one module.

:data:`COMMANDS` maps a command's path (``'tune'``, ``'bench sim'``, ``'paper study'``) to
its module (under ``hybrid_mpc_ros``) and one-line help; a path without a module is a
group. The module's ``add_arguments(parser)`` fills the command's parser (description and
options) and its ``run(args)`` returns the exit status; ``bench:sim`` names
``add_sim_arguments`` and ``run_sim`` of a module holding several commands. Only the
named command's module is imported, so ``hybrid-mpc --help`` stays fast.

Every subcommand that runs an experiment takes ``--scenario`` (a scenario file, or the
name of one in ``config/scenarios``; default: the default scenario) and reads everything
else from it; options only override. A bad scenario file ends the command with one line
naming the file, the key and the problem (exit status 2). ROS arguments (``--ros-args
...``) that ``ros2 run hybrid_mpc_ros hybrid-mpc`` or a launch file may append are dropped.
"""

from __future__ import annotations

import argparse
import importlib
import sys

PROG = 'hybrid-mpc'
SCENARIO_HELP = ('scenario file, or the name of one in config/scenarios (default: '
                 'l4dc2026, the published paper; arxiv_v1 is the preprint)')

COMMANDS = {
    'tune': ('tools.tune', 'the simulated tuning through ROS 2 nodes (the main job)'),
    'demo': ('tools.demo', 'fly the quadcopter simulator with the MPC controller (ROS 2 nodes)'),
    'identify': ('tools.identify', "fit a scenario's nominal model from closed-loop plant data"),
    'record': ('tools.record', 'record odometry and rotor commands to MCAP (ROS topics, or an '
                               'offline flight with excitation)'),
    'reproduce': ('tools.reproduce',
                  "run a scenario's tuning experiment (all its runs), with figures"),
    'bench': (None, 'speed benchmarks; prints a JSON object as the last line'),
    'bench sim': ('tools.bench:sim',
                  'plant step rate: core Quadcopter.step and the ROS lockstep loop'),
    'bench controller': ('tools.bench:controller',
                         'MPC controller node: latency, lockstep rate, timer jitter'),
    'bench mpc': ('tools.bench_mpc', 'MPC solve and sensitivity timings, accuracy and memory'),
    'bench ros': ('tools.bench_ros', 'the same short tuning through ROS (lockstep) and offline'),
    'bench faults': ('tools.bench_faults', 'a short tuning through ROS (lockstep) with faults '
                                           'injected from outside'),
    'bench peers': ('tools.bench_peers', 'the hybrid against CMA-ES and Bayesian optimisation '
                                         'on the same budget of episodes'),
    'paper': (None, "the published paper's experiments besides its main one (`reproduce`)"),
    'paper study': ('paper.study',
                    "the scenario's experiment for each choice the paper leaves unstated"),
    'paper ablation': ('paper.ablation',
                       "the paper's Appendix C: one run per delta and/or per seed"),
    'paper timings': ('paper.timings', "per QP solve, per Jacobian, per tuning iteration, "
                                       "beside the published paper's"),
    'paper robustness': ('paper.robustness',
                         'the default tuning on the family of mismatched vehicles'),
}


def positive_float(text: str) -> float:
    """Argument type: a float > 0."""
    value = float(text)
    if not value > 0.0:
        raise argparse.ArgumentTypeError(f'must be > 0, got {text}')
    return value


def positive_int(text: str) -> int:
    """Argument type: an int >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f'must be >= 1, got {text}')
    return value


def add_scenario_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--scenario`` (default None: the default scenario) to ``parser``."""
    parser.add_argument('--scenario', default=None, help=SCENARIO_HELP)


def command_path(argv: list[str]) -> str:
    """Return the longest command path of :data:`COMMANDS` that ``argv`` starts with."""
    path = ''
    for word in argv:
        if f'{path} {word}'.strip() not in COMMANDS:
            break
        path = f'{path} {word}'.strip()
    return path


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """Build the ``hybrid-mpc`` argument parser.

    With ``argv``, only the command it names gets its options (its module alone is
    imported); without, every command does.
    """
    chosen = None if argv is None else command_path(argv)
    parser = argparse.ArgumentParser(
        prog=PROG,
        description='Hybrid model-based / zeroth-order tuning of an MPC, with ROS 2 nodes.')
    groups = {'': parser.add_subparsers(dest='command', metavar='COMMAND', required=True)}
    for path, (target, text) in COMMANDS.items():
        parent, _, name = path.rpartition(' ')
        command = groups[parent].add_parser(name, help=text, description=text)
        if target is None:
            groups[path] = command.add_subparsers(dest='target', metavar='TARGET',
                                                  required=True)
        elif chosen in (None, path):
            module_name, _, name = target.partition(':')
            module = importlib.import_module(f'hybrid_mpc_ros.{module_name}')
            suffix = f'_{name}' if name else ''
            getattr(module, f'add{suffix}_arguments')(command)
            command.set_defaults(handler=getattr(module, 'run' + suffix))
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
    from hybrid_mpc_ros.core.config import ConfigError
    argv = strip_ros_args(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv).parse_args(argv)
    try:
        return args.handler(args)
    except ConfigError as exc:
        # a bad scenario or parameter file: one line saying which file, key and problem
        print(f'{PROG} {command_path(argv)}: error: {exc}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
