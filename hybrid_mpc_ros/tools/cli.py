"""The ``hybrid-mpc`` command: parses arguments and dispatches to the package's modules.

Each subcommand is registered by one ``_add_<command>`` function that builds its parser
and sets ``handler``, a function taking the parsed arguments and returning an exit status.
The handlers import their module only when run, so ``hybrid-mpc --help`` stays fast and
needs no ROS graph. Adding ``bench mpc``, ``identify``, ``reproduce`` or ``tune`` means one
more ``_add_*`` function (or one more target in :func:`_add_bench`).

Every subcommand that runs an experiment takes ``--scenario`` (a scenario file, or the
name of one in ``config/scenarios``; default: the default scenario), and reads everything
else from it; options only override. A bad scenario file ends the command with one line
naming the file, the key and the problem (exit status 2).

Installed as a console script into ``lib/hybrid_mpc_ros``, so it also runs as
``ros2 run hybrid_mpc_ros hybrid-mpc ...``; ROS arguments (``--ros-args ...``) that
``ros2 run`` or a launch file may append are dropped before parsing.
"""

from __future__ import annotations

import argparse
import sys

PROG = 'hybrid-mpc'
SCENARIO_HELP = ('scenario file, or the name of one in config/scenarios (default: '
                 'l4dc2026, the published paper; arxiv_v1 is the preprint)')


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
    return demo.main(scenario=args.scenario, seconds=args.seconds,
                     target=tuple(args.target) if args.target else None,
                     realtime=args.realtime, odom_timeout_s=args.odom_timeout,
                     controller=args.controller)


def _run_bench_sim(args: argparse.Namespace) -> int:
    from hybrid_mpc_ros.tools import bench
    return bench.main_sim(scenario=args.scenario, steps=args.steps, warmup_steps=args.warmup)


def _run_identify(args: argparse.Namespace) -> int:
    from hybrid_mpc_ros.tools import identify
    return identify.main(scenario=args.scenario, out=args.out, seed=args.seed,
                         trajectories=args.trajectories)


def _run_bench_controller(args: argparse.Namespace) -> int:
    from hybrid_mpc_ros.tools import bench
    return bench.main_controller(scenario=args.scenario, steps=args.steps,
                                 warmup_steps=args.warmup, rate_hz=args.rate,
                                 seconds=args.seconds)


def _run_bench_mpc(args: argparse.Namespace) -> int:
    from hybrid_mpc_ros.tools import bench_mpc
    return bench_mpc.main(scenario=args.scenario, steps=args.steps, fd_steps=args.fd_steps,
                          kind=args.kind)


def _run_bench_paper_timings(args: argparse.Namespace) -> int:
    from hybrid_mpc_ros.paper import timings as paper_timings
    return paper_timings.main(scenario=args.scenario, iterations=args.iterations)


def _run_bench_robustness(args: argparse.Namespace) -> int:
    from hybrid_mpc_ros.paper import robustness as bench_robustness
    return bench_robustness.main(out=args.out, seeds=args.seeds, iterations=args.iterations,
                                 workers=args.workers, quick=args.quick,
                                 scenarios=args.scenarios,
                                 optimum_iterations=args.optimum_iterations,
                                 stored_only=args.stored_only,
                                 compare_eta=args.compare_eta)


def _add_identify(commands) -> None:
    parser = commands.add_parser(
        'identify', help="fit a scenario's nominal model from closed-loop plant data",
        description='Collect seeded, excited closed-loop trajectories near the target on the '
                    "scenario's simulated plant, fit x+ = A x + B u + c (or A x + B u when "
                    'its system_identification says affine: false) by least squares, report '
                    'held-out prediction errors and write the model the scenario names (NPZ '
                    'with a YAML header). A model file identified for another scenario is '
                    'not overwritten unless --out names it.')
    parser.add_argument('--scenario', default=None, help=SCENARIO_HELP)
    parser.add_argument('--out', default=None,
                        help="output file (default: the scenario's nominal_model_file, in "
                             'config/ of the checkout when relative)')
    parser.add_argument('--seed', type=int, default=None,
                        help="random seed (default: the scenario's)")
    parser.add_argument('--trajectories', type=_positive_int, default=None,
                        help="training trajectories (default: the scenario's)")
    parser.set_defaults(handler=_run_identify)


def _run_reproduce(args: argparse.Namespace) -> int:
    optimum = not args.no_optimum
    if args.study and args.ablation:
        raise SystemExit(f'{PROG} reproduce: error: --study and --ablation are separate runs')
    if (args.study or args.ablation) and (args.seed is not None or args.runs):
        raise SystemExit(f'{PROG} reproduce: error: --seed and --runs apply to one '
                         'experiment, not to --study or --ablation')
    if args.combinations and not args.study:
        raise SystemExit(f'{PROG} reproduce: error: --combinations needs --study')
    if args.ablation:
        from hybrid_mpc_ros.paper import ablation
        return ablation.main(args.ablation, scenario=args.scenario,
                             out=args.out or 'results/ablation', iterations=args.iterations,
                             workers=args.workers, steps=args.steps)
    if args.study:
        from hybrid_mpc_ros.paper import study
        return study.main(scenario=args.scenario, out=args.out or 'results/study',
                          combinations=args.combinations, iterations=args.iterations,
                          steps=args.steps, workers=args.workers, optimum=optimum)
    from hybrid_mpc_ros.tools import reproduce
    return reproduce.main(scenario=args.scenario, out=args.out or 'results/reproduce',
                          iterations=args.iterations, steps=args.steps, seed=args.seed,
                          runs=args.runs, workers=args.workers, optimum=optimum)


def _add_reproduce(commands) -> None:
    parser = commands.add_parser(
        'reproduce', help="run a scenario's tuning experiment (all its runs), its study of "
                          'the unstated choices, or the paper\'s ablations',
        description='Tune the MPC from the paper\'s initialisation with every run the '
                    "scenario lists (normally zeroth-order, model-based, hybrid per gamma "
                    'and the exact-model run), in parallel processes; write CSVs, figures '
                    "like the paper's Figures 2 and 3, a markdown table with the paper's "
                    'claims judged, and a JSON summary (last line). With --study: the same '
                    'for each combination of the choices the paper leaves unstated '
                    '(integrator, model, x0, Theta), one factor at a time. With --ablation: '
                    "the paper's Appendix C (delta, seeds). Reruns resume from the "
                    'checkpoints in --out.')
    parser.add_argument('--scenario', default=None, help=SCENARIO_HELP)
    parser.add_argument('--out', default=None,
                        help='output directory (default: results/reproduce, results/study '
                             'or results/ablation)')
    parser.add_argument('--iterations', type=_positive_int, default=None,
                        help="iterations per run (default: the scenario's; for --ablation "
                             'its ablation.iterations)')
    parser.add_argument('--steps', type=_positive_int, default=None,
                        help="closed-loop steps per episode, T (default: the scenario's)")
    parser.add_argument('--seed', type=int, default=None,
                        help="random seed (default: the scenario's; not with --study or "
                             '--ablation)')
    parser.add_argument('--runs', nargs='+', default=None,
                        help="which of the scenario's runs (default: all)")
    parser.add_argument('--workers', type=_positive_int, default=None,
                        help='parallel processes (default: number of cores)')
    parser.add_argument('--no-optimum', action='store_true',
                        help='skip the optimum reference (L-BFGS-B on the exact gradient)')
    parser.add_argument('--study', action='store_true',
                        help='run the study of the unstated choices (paper/study.py)')
    parser.add_argument('--combinations', nargs='+', default=None, metavar='NAME',
                        help='with --study: which combinations (default: all of default, '
                             'rk4, affine, x0_above, x0_half_way, box_wide)')
    parser.add_argument('--ablation', nargs='+', default=None, choices=('delta', 'seeds'),
                        help="the paper's Appendix C: one run per delta and/or per seed "
                             '(both in one process pool when both are given)')
    parser.set_defaults(handler=_run_reproduce)


def _run_tune(args: argparse.Namespace) -> int:
    from hybrid_mpc_ros.tools import tune
    return tune.main(scenario=args.scenario, out=args.out, method=args.method,
                     gamma=args.gamma, iterations=args.iterations, steps=args.steps,
                     seed=args.seed, start_mode=args.start_mode, resume=args.resume)


def _add_tune(commands) -> None:
    parser = commands.add_parser(
        'tune', help='the simulated tuning through ROS 2 nodes (the main job)',
        description='Start the simulator (lockstep), the MPC controller and the tuner as '
                    'three ROS 2 processes on a private domain, tune theta from the '
                    "scenario's start with its method, print a line per iteration, write "
                    'the CSVs, checkpoint, learning-curve figure and summary into --out, '
                    'and print a JSON summary as the last line.')
    parser.add_argument('--scenario', default=None, help=SCENARIO_HELP)
    parser.add_argument('--out', default='results/tuning',
                        help='output directory (default: %(default)s)')
    parser.add_argument('--method', default=None,
                        choices=('hybrid', 'model_based', 'zeroth_order'),
                        help="tuning method (default: the scenario's)")
    parser.add_argument('--gamma', type=_positive_float, default=None,
                        help="hybrid mixing exponent (default: the scenario's)")
    parser.add_argument('--iterations', type=_positive_int, default=None,
                        help="iterations (default: the scenario's)")
    parser.add_argument('--steps', type=_positive_int, default=None,
                        help="closed-loop steps per episode, T (default: the scenario's)")
    parser.add_argument('--seed', type=int, default=None,
                        help="random seed (default: the scenario's)")
    parser.add_argument('--start-mode', default='reset', choices=('reset', 'fly_to_start'),
                        help='how episodes start: a simulator reset (exact, the default) or '
                             'flying back to x0 as a vehicle would')
    parser.add_argument('--resume', action='store_true',
                        help='continue from the checkpoint in --out if it holds this run')
    parser.set_defaults(handler=_run_tune)


def _add_demo(commands) -> None:
    parser = commands.add_parser(
        'demo', help='fly the quadcopter simulator with the MPC controller (ROS 2 nodes)',
        description="Start the quadcopter simulator node (with the scenario's plant, period "
                    'and initial state) and the MPC (or LQR) controller node as separate processes '
                    'on a private ROS domain, follow the odometry and print progress every '
                    'simulated second, a summary and, as the last line, a JSON object.')
    parser.add_argument('--scenario', default=None, help=SCENARIO_HELP)
    parser.add_argument('--seconds', type=_positive_float, default=20.0,
                        help='simulated seconds to fly (default: %(default)s)')
    parser.add_argument('--target', type=float, nargs=3, metavar=('X', 'Y', 'Z'),
                        default=None,
                        help="hover target in the odom frame [m] (default: the scenario's "
                             'x_ref position)')
    parser.add_argument('--realtime', action='store_true',
                        help='run the simulator in real time instead of lockstep')
    parser.add_argument('--controller', choices=('mpc', 'lqr'), default='mpc',
                        help="the scenario's MPC at its start theta, or the hover LQR "
                             '(default: %(default)s)')
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
    sim.add_argument('--scenario', default=None, help=SCENARIO_HELP)
    sim.add_argument('--steps', type=_positive_int, default=2000,
                     help='steps to time, after the warm-up (default: %(default)s)')
    sim.add_argument('--warmup', type=_positive_int, default=50,
                     help='lockstep steps to let pass before timing (default: %(default)s)')
    sim.set_defaults(handler=_run_bench_sim)
    controller = targets.add_parser(
        'controller', help='MPC controller node: latency, lockstep rate, timer jitter',
        description='The MPC controller node in lockstep with the simulator (its own '
                    'odometry-to-command latency, the loop rate from odometry stamps) and on '
                    'a wall timer beside the realtime simulator (period jitter).')
    controller.add_argument('--scenario', default=None, help=SCENARIO_HELP)
    controller.add_argument('--steps', type=_positive_int, default=3000,
                            help='lockstep steps to time (default: %(default)s)')
    controller.add_argument('--warmup', type=_positive_int, default=100,
                            help='lockstep steps before timing (default: %(default)s)')
    controller.add_argument('--rate', type=_positive_float, default=100.0,
                            help='wall-timer rate for the jitter [Hz] (default: %(default)s)')
    controller.add_argument('--seconds', type=_positive_float, default=12.0,
                            help='wall seconds on the timer (default: %(default)s)')
    controller.set_defaults(handler=_run_bench_controller)
    mpc = targets.add_parser(
        'mpc', help='MPC solve and sensitivity timings, accuracy and memory',
        description='Closed-loop MPC steps on the plant: solve and solve+sensitivity times, '
                    'the same sensitivities by finite differences of the solver, an '
                    'independent QP solve, the sensitivity error and memory growth.')
    mpc.add_argument('--scenario', default=None, help=SCENARIO_HELP)
    mpc.add_argument('--steps', type=_positive_int, default=100000,
                     help='closed-loop steps to time (default: %(default)s)')
    mpc.add_argument('--fd-steps', type=_positive_int, default=50,
                     help='steps at which finite differences are timed (default: %(default)s)')
    mpc.add_argument('--kind', choices=('affine', 'nonlinear'), default='affine',
                     help='nominal model kind: the identified affine model, or the '
                          'nonlinear physics model solved by SQP-RTI (default: affine)')
    mpc.set_defaults(handler=_run_bench_mpc)
    timings = targets.add_parser(
        'paper-timings', help="per QP solve, per Jacobian, per tuning iteration, beside "
                              "the published paper's",
        description="Run the scenario's hybrid for a few tuning iterations and time each "
                    "MPC solve, each Jacobian of the MPC's solution (du/dx, du/dtheta) and "
                    "each whole iteration (two episodes and the update), as the published "
                    'paper reports them (3.0 ms, 6.1 ms, 1.6 s on an i7-1165G7), in wall '
                    'time and in CPU time; describes the machine (lscpu) and its load.')
    timings.add_argument('--scenario', default=None, help=SCENARIO_HELP)
    timings.add_argument('--iterations', type=_positive_int, default=10,
                         help='tuning iterations to run, at least 2: the first (eta_0 = 1, '
                              'no perturbed episode) is not timed as an iteration (default: '
                              '%(default)s)')
    timings.set_defaults(handler=_run_bench_paper_timings)
    robust = targets.add_parser(
        'robustness', help='the default tuning on the family of mismatched vehicles',
        description='Tune every scenario of config/scenarios/robustness (vehicles that '
                    'differ from the nominal model in mass, drag, inertia and arm length) '
                    'with its own default settings: hybrid and zeroth-order once per seed, '
                    'model-based once (deterministic), and the optimum reference (L-BFGS-B '
                    'on the exact closed-loop gradient inside Theta). Prints a table and, '
                    'as the last line, a JSON object keyed by method. Runs in a process '
                    'pool; a rerun reuses the stored results in --out (resume).')
    robust.add_argument('--out', default=None,
                        help='results directory (default: results/bench_robustness, '
                             'results/bench_robustness_quick with --quick)')
    robust.add_argument('--seeds', type=_positive_int, default=3,
                        help='seeds of the hybrid and zeroth-order runs (default: '
                             '%(default)s)')
    robust.add_argument('--iterations', type=_positive_int, default=100,
                        help='tuning iterations per run (default: %(default)s)')
    robust.add_argument('--optimum-iterations', type=_positive_int, default=200,
                        help="cap on the optimum reference's iterations (default: "
                             '%(default)s)')
    robust.add_argument('--workers', type=_positive_int, default=None,
                        help='parallel processes (default: number of cores)')
    robust.add_argument('--scenarios', nargs='+', default=None,
                        help='some of the family (file names without .yaml; default: all)')
    robust.add_argument('--quick', action='store_true',
                        help='CI-sized check of the machinery: two scenarios, one seed, '
                             '3 iterations of 20-step episodes')
    robust.add_argument('--compare-eta', action='store_true',
                        help="also run the hybrid with the agreement eta rule "
                             "(hybrid_agreement) beside the scenario's")
    robust.add_argument('--stored-only', action='store_true',
                        help='run nothing: the table and JSON line of the runs stored in '
                             '--out so far (e.g. while a bench is still running)')
    robust.set_defaults(handler=_run_bench_robustness)
    _add_bench_ros(targets)
    _add_bench_faults(targets)


def _run_bench_faults(args: argparse.Namespace) -> int:
    from hybrid_mpc_ros.tools import bench_faults
    return bench_faults.main(scenario=args.scenario, iterations=args.iterations,
                             steps=args.steps, out=args.out)


def _add_bench_faults(targets) -> None:
    faults = targets.add_parser(
        'faults', help='a short tuning through ROS (lockstep) with faults injected from '
                       'outside',
        description='Run the three node processes of hybrid-mpc tune in lockstep and inject '
                    'faults from outside: broken sensitivity messages (dropped, duplicated, '
                    'swapped, stale revision, corrupted), the tuner and the controller '
                    'SIGKILLed mid-episode and restarted, invalid odometry. Report '
                    'faults_injected, faults_survived, bad_commands_emitted, iterations_lost '
                    'and iterations_duplicated.')
    faults.add_argument('--scenario', default=None, help=SCENARIO_HELP)
    faults.add_argument('--iterations', type=_positive_int, default=4,
                        help='iterations (default: %(default)s; the faults need at least 4)')
    faults.add_argument('--steps', type=_positive_int, default=25,
                        help='closed-loop steps per episode (default: %(default)s; the '
                             'faults act at step 10)')
    faults.add_argument('--out', default=None,
                        help='output directory (default: a new temporary one)')
    faults.set_defaults(handler=_run_bench_faults)


def _run_bench_ros(args: argparse.Namespace) -> int:
    from hybrid_mpc_ros.tools import bench_ros
    return bench_ros.main(scenario=args.scenario, iterations=args.iterations,
                          steps=args.steps, out=args.out)


def _add_bench_ros(targets) -> None:
    ros = targets.add_parser(
        'ros', help='the same short tuning through ROS (lockstep) and offline',
        description='Tune offline in this process, then through the three ROS 2 node '
                    'processes in lockstep (as hybrid-mpc tune), with the same settings; '
                    'report ros_wall_s, offline_wall_s, overhead_ratio, ros_iteration_s '
                    '(one iteration: two episodes for the hybrid) and control_steps_per_s.')
    ros.add_argument('--scenario', default=None, help=SCENARIO_HELP)
    ros.add_argument('--iterations', type=_positive_int, default=10,
                     help='iterations (default: %(default)s)')
    ros.add_argument('--steps', type=_positive_int, default=200,
                     help='closed-loop steps per episode, T (default: %(default)s, the '
                          "paper's)")
    ros.add_argument('--out', default=None,
                     help="the ROS run's output directory (default: a new temporary one)")
    ros.set_defaults(handler=_run_bench_ros)


def build_parser() -> argparse.ArgumentParser:
    """Build the ``hybrid-mpc`` argument parser with all its subcommands."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description='Hybrid model-based / zeroth-order tuning of an MPC, with ROS 2 nodes.')
    commands = parser.add_subparsers(dest='command', metavar='COMMAND', required=True)
    _add_tune(commands)
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
    from hybrid_mpc_ros.core.config import ConfigError
    argv = strip_ros_args(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except ConfigError as exc:
        # a bad scenario or parameter file: one line saying which file, key and problem
        print(f'{PROG} {args.command}: error: {exc}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
