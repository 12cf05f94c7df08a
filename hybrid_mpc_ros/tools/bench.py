"""``hybrid-mpc bench``: speed benchmarks of the ROS loops (``sim`` and ``controller``).

``bench sim`` measures

* ``core_steps_per_s``: :meth:`Quadcopter.step` called in a tight Python loop (the
  scenario's plant, period, integrator and substeps, as the simulator node runs it), and
* ``ros_lockstep_steps_per_s``: the simulator node in lockstep, answered by the LQR
  controller node, each in its own process. This process is a third node subscribing
  ``odom`` (best effort, depth 1, so it can never hold the publisher up); it counts
  simulator steps from the odometry *stamps* (sim time / period), not from messages
  received, over the wall time between the receptions that open and close the timed
  window. The first ``warmup`` steps (discovery, imports, first-message latency) are
  excluded. In the window the observer only wakes every 50 ms to look at the newest
  message, so it takes little CPU from the two nodes; still, its DDS reader costs the
  simulator one extra delivery per step, so the figure slightly underestimates the
  two-process loop alone.

Progress goes to stderr; the result is one JSON object on the last line of stdout.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np

from hybrid_mpc_ros.core.scenario import load_scenario, resolve_scenario_path, Scenario
from hybrid_mpc_ros.tools.cli import add_scenario_argument, positive_float, positive_int
from hybrid_mpc_ros.tools.demo import ClosedLoop, DemoError, run_ros_command


def core_steps_per_s(scenario: Scenario, steps: int) -> float:
    """Rate of the scenario's plant step at hover input, steps per wall second."""
    quad = scenario.plant()
    x, u = np.zeros(len(scenario.x0)), quad.hover_input
    quad.reset(x)
    quad.step(x, u)
    start = time.perf_counter()
    for _ in range(steps):
        x = quad.step(x, u)
    return steps / (time.perf_counter() - start)


def core_lqr_steps_per_s(scenario: Scenario, steps: int) -> float:
    """Rate of one LQR command plus one plant step, in one process, steps per wall second."""
    controller = scenario.lqr()
    quad = controller.quad
    x = scenario.x0.copy()
    start = time.perf_counter()
    for _ in range(steps):
        x = quad.step(x, controller.command(x))
    return steps / (time.perf_counter() - start)


def ros_lockstep(scenario: Scenario, steps: int, warmup_steps: int = 50,
                 timeout_s: float = 30.0, poll_s: float = 0.05, log=sys.stderr,
                 controller: str = 'lqr', diagnostics_from: str | None = None) -> dict:
    """Time at least ``steps`` lockstep steps of simulator + controller after ``warmup_steps``.

    ``controller`` is ``'lqr'`` (the trivial controller) or ``'mpc'``. With
    ``diagnostics_from`` (a diagnostics status name), the first such status published
    after the window is returned too, as ``diagnostics`` (its key-values).

    The observer takes every message only during the warm-up. In the timed window it
    sleeps ``poll_s`` at a time and then takes just the newest message (depth-1, best
    effort), so its own CPU use barely competes with the two nodes on a small machine.
    Both ends of the window are messages that arrived while the observer was waiting for
    them, so their reception times are accurate. Returns ``steps_per_s``, ``steps`` (the
    stamps' difference / period), ``wall_s`` and ``domain_id``.
    """
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    observer_qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
    period_s = scenario.period_s
    with ClosedLoop(scenario, clock_mode='lockstep', observer_qos=observer_qos,
                    watch_commands=False, controller=controller) as loop:
        print(f'bench: lockstep simulator + {controller.upper()} controller on ROS_DOMAIN_ID '
              f'{loop.domain_id} (node logs in {loop.log_dir})', file=log, flush=True)
        sample = loop.next_sample(timeout_s)
        while sample.sim_s < warmup_steps * period_s - 1e-9:
            sample = loop.next_sample(timeout_s)
        start = loop.next_sample(timeout_s)
        end_sim = start.sim_s + steps * period_s - 1e-9
        deadline = time.monotonic() + timeout_s
        while True:
            time.sleep(poll_s)
            loop.check_nodes()
            latest = loop.latest_sample()
            if latest is not None:
                deadline = time.monotonic() + timeout_s
                if latest.sim_s >= end_sim:
                    break
            elif time.monotonic() > deadline:
                raise DemoError(f'lockstep loop stalled for {timeout_s:g} s '
                                f'(node logs in {loop.log_dir})')
        end = loop.next_sample(timeout_s)
        loop.check_nodes()
        domain_id = loop.domain_id
        diagnostics = fresh_diagnostics(loop, diagnostics_from, timeout_s) \
            if diagnostics_from else None
    counted = round((end.sim_s - start.sim_s) / period_s)
    wall = end.wall_s - start.wall_s
    return {'steps_per_s': counted / wall, 'steps': counted, 'wall_s': wall,
            'domain_id': domain_id, 'diagnostics': diagnostics}


def fresh_diagnostics(loop: ClosedLoop, name: str, timeout_s: float) -> dict:
    """Key-values of the next ``name`` diagnostics status published from now on."""
    loop.diagnostics.pop(name, None)
    deadline = time.monotonic() + timeout_s
    while name not in loop.diagnostics:
        if time.monotonic() > deadline:
            raise DemoError(f'no diagnostics from {name} within {timeout_s:g} s')
        loop.spin_once(0.1)
        loop.check_nodes()
    return loop.diagnostics[name][2]


def main_sim(scenario: str | None = None, steps: int = 2000, warmup_steps: int = 50) -> int:
    """Run ``hybrid-mpc bench sim``: progress on stderr, a JSON object as the last line.

    ``scenario`` is a file or a shipped scenario's name (default: the default scenario).
    """
    setup = load_scenario(resolve_scenario_path(scenario), load_model=False)
    core = core_steps_per_s(setup, steps)
    print(f'bench sim: Quadcopter.step {core:.0f} steps/s', file=sys.stderr, flush=True)
    core_lqr = core_lqr_steps_per_s(setup, steps)
    print(f'bench sim: LQR command + Quadcopter.step {core_lqr:.0f} steps/s', file=sys.stderr,
          flush=True)
    ros, status = run_ros_command('bench sim', ros_lockstep, setup, steps, warmup_steps)
    if status is not None:
        return status
    print(f'bench sim: ROS lockstep {ros["steps_per_s"]:.0f} steps/s '
          f'({ros["steps"]} steps in {ros["wall_s"]:.3f} s wall)', file=sys.stderr, flush=True)
    result = {
        'command': 'bench sim',
        'steps': steps,
        'warmup_steps': warmup_steps,
        'core_steps_per_s': round(core, 1),
        'core_lqr_steps_per_s': round(core_lqr, 1),
        'ros_lockstep_steps_per_s': round(ros['steps_per_s'], 1),
        'ros_lockstep_wall_s': round(ros['wall_s'], 4),
        'ros_lockstep_steps': ros['steps'],
        'period_s': setup.period_s,
        'scenario': setup.path,
        'python': sys.version.split()[0],
        'numpy': np.__version__,
    }
    print(json.dumps(result), flush=True)
    return 0


CONTROLLER_STATUS = 'mpc_controller: mpc'


def wall_clock_jitter(scenario: Scenario, rate_hz: float, seconds: float,
                      log=sys.stderr, storm: bool = False) -> dict:
    """Run the MPC node on a wall timer at ``rate_hz`` beside the realtime simulator.

    Returns the node's own diagnostics after ``seconds`` of flight (``idle``): the timer's
    period jitter (|period - 1/rate|, over its last 1000 ticks), its solve and latency
    times and the age of the odometry its steps used. With ``storm``, ``seconds`` more
    under ground traffic (:mod:`hybrid_mpc_ros.tools.storm`: subscribers joining and
    leaving, parameter gets and sets, service calls, each from a new participant) follow:
    ``storm`` holds the diagnostics at their end, ``storm_start`` those at their start
    (for the counters) and ``storm_counts`` what the storm did.
    """
    from hybrid_mpc_ros.tools import storm as ground
    with ClosedLoop(scenario, clock_mode='realtime', watch_commands=False,
                    controller='mpc', controller_params={'rate_hz': float(rate_hz)}) as loop:
        print(f'bench: MPC controller on a {rate_hz:g} Hz wall timer beside the realtime '
              f'simulator, {seconds:g} s (ROS_DOMAIN_ID {loop.domain_id})', file=log,
              flush=True)
        # the window opens once the node reports control steps (odometry arrived)
        deadline = time.monotonic() + 30.0
        while int(fresh_diagnostics(loop, CONTROLLER_STATUS, 10.0).get('steps', 0)) == 0:
            if time.monotonic() > deadline:
                raise DemoError('the MPC controller made no control step within 30 s '
                                f'(node logs in {loop.log_dir})')
        _fly(loop, seconds)
        result = {'idle': fresh_diagnostics(loop, CONTROLLER_STATUS, 10.0)}
        if storm:
            processes = ground.start(loop.domain_id, loop.log_dir)
            try:
                print(f'bench: storm on the controller for {seconds:g} s', file=log,
                      flush=True)
                result['storm_start'] = fresh_diagnostics(loop, CONTROLLER_STATUS, 10.0)
                _fly(loop, seconds)
                result['storm'] = fresh_diagnostics(loop, CONTROLLER_STATUS, 10.0)
            finally:
                result['storm_counts'] = ground.stop(processes)
        return result


def _fly(loop: ClosedLoop, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        loop.spin_once(0.1)
        loop.check_nodes()


def control_step_breakdown(scenario: Scenario, steps: int = 600) -> dict:
    """Time the parts of one control step in this process (no ROS graph), p50/p99 [ms].

    Decoding an odometry message, :meth:`SafeController.step` (solve, sensitivities,
    guarding), of which the solve, and encoding the command and the sensitivity message:
    what the node does per step besides rclpy's dispatch and DDS; and ``parse``, the
    tuner's decoding of that sensitivity message.
    """
    from builtin_interfaces.msg import Time
    from hybrid_mpc_ros.core.learning.samples import Stamp
    from hybrid_mpc_ros.core.mpc.safe_control import SafeController, SafetyConfig
    from hybrid_mpc_ros.ros.msgs import odometry_to_state, rotor_command, state_to_odometry
    from hybrid_mpc_ros.ros.sensitivity_msg import parse_sensitivity_message, SensitivityEncoder
    config = scenario.mpc_config
    policy = scenario.policy()
    controller = SafeController(policy, SafetyConfig(1.0, 1, 1.0), config.u_min, config.u_max)
    plant, encoder = scenario.plant(), SensitivityEncoder()
    times = {name: np.empty(steps) for name in ('decode', 'step', 'solve', 'encode', 'parse')}
    x = scenario.x0.copy()
    for t in range(steps):
        if t % 200 == 0:
            controller.reset()
            x = scenario.x0.copy()
            plant.reset(x)
        msg = state_to_odometry(x, Time(sec=t), 'odom', 'base_link')
        t0 = time.perf_counter()
        state = odometry_to_state(msg)
        t1 = time.perf_counter()
        result = controller.step(state, 0.0)
        t2 = time.perf_counter()
        rotor_command(result.u)
        sensitivity = encoder.encode(Stamp(t, 0), Stamp(t, 0), 0, result.status,
                                     result.solve_ms, state, result.u, result.du_dx,
                                     result.du_dtheta)
        t3 = time.perf_counter()
        parse_sensitivity_message(sensitivity)
        t4 = time.perf_counter()
        times['decode'][t], times['step'][t], times['encode'][t] = t1 - t0, t2 - t1, t3 - t2
        times['parse'][t] = t4 - t3
        times['solve'][t] = result.solve_ms * 1e-3
        x = plant.step(x, result.u)
    out = {}
    for name, values in times.items():
        p50, p99 = np.percentile(values * 1e3, (50, 99))
        out[f'{name}_ms_p50'], out[f'{name}_ms_p99'] = round(p50, 4), round(p99, 4)
    return out


def main_controller(scenario: str | None = None, steps: int = 3000, warmup_steps: int = 100,
                    rate_hz: float = 100.0, seconds: float = 12.0, storm: bool = False) -> int:
    """Run ``hybrid-mpc bench controller``: progress on stderr, a JSON object last.

    ``latency_ms_p50``/``p99``: the node's own time from entering its odometry callback to
    having published the command, over its last 1000 lockstep steps; ``step_ms_p50``/``p99``:
    the same to having published the sensitivity message too (the node publishes the command
    first: the vehicle, or the simulator, goes on while it computes the sensitivities);
    ``lockstep_steps_per_s``: simulator + MPC node, counted from odometry stamps as
    ``bench sim`` does; ``jitter_ms_p50``/``p99``: the node's wall-timer period error at
    ``rate_hz``; ``odom_age_ms_p99``: on that timer, how old the odometry a step used
    was (wall time since its stamp: publishing, delivery and waiting to be served);
    ``failsafe_steps``: the timer run's failsafe steps.

    With ``storm``, the timer run goes on for ``seconds`` under ground traffic
    (:mod:`hybrid_mpc_ros.tools.storm`) and adds ``storm_failsafe_steps`` (in that window),
    ``storm_odom_age_ms_p99``, ``storm_latency_ms_p99`` and ``storm_jitter_ms_p99`` (over
    the node's last 1000 steps: all in the storm when ``seconds * rate_hz`` >= 1000) and
    ``storm_actions`` (what the storm did: begun and completed, per kind).
    """
    setup = load_scenario(resolve_scenario_path(scenario))
    breakdown = control_step_breakdown(setup)
    print('bench: one control step in-process: ' + ', '.join(
        f'{key} {value}' for key, value in breakdown.items()), file=sys.stderr, flush=True)
    lockstep, status = run_ros_command('bench controller', ros_lockstep, setup, steps,
                                       warmup_steps, controller='mpc',
                                       diagnostics_from=CONTROLLER_STATUS)
    if status is None:
        timer, status = run_ros_command('bench controller', wall_clock_jitter, setup, rate_hz,
                                        seconds, storm=storm)
    if status is not None:
        return status
    diag, idle = lockstep['diagnostics'], timer['idle']
    result = {
        'command': 'bench controller',
        'scenario': setup.name,
        'horizon': setup.mpc_config.horizon,
        'latency_ms_p50': float(diag['latency_ms_p50']),
        'latency_ms_p99': float(diag['latency_ms_p99']),
        'step_ms_p50': float(diag['step_ms_p50']),
        'step_ms_p99': float(diag['step_ms_p99']),
        'solve_ms_p50': float(diag['solve_ms_p50']),
        'solve_ms_p99': float(diag['solve_ms_p99']),
        'lockstep_steps_per_s': round(lockstep['steps_per_s'], 1),
        'lockstep_steps': lockstep['steps'],
        'rate_hz': rate_hz,
        'jitter_ms_p50': float(idle['timer_jitter_ms_p50']),
        'jitter_ms_p99': float(idle['timer_jitter_ms_p99']),
        'timer_latency_ms_p99': float(idle['latency_ms_p99']),
        'odom_age_ms_p99': float(idle['odometry_stamp_age_ms_p99']),
        'failsafe_steps': int(idle['failsafe_steps']),
    }
    if storm:
        start, end = timer['storm_start'], timer['storm']
        result.update({
            'storm_failsafe_steps': int(end['failsafe_steps']) - int(start['failsafe_steps']),
            'storm_odom_age_ms_p99': float(end['odometry_stamp_age_ms_p99']),
            'storm_latency_ms_p99': float(end['latency_ms_p99']),
            'storm_jitter_ms_p99': float(end['timer_jitter_ms_p99']),
            'storm_steps': int(end['steps']) - int(start['steps']),
            'storm_actions': timer['storm_counts'],
        })
    result.update({'in_process': breakdown, 'python': sys.version.split()[0]})
    for key, value in result.items():
        print(f'{key:24s} {value}', file=sys.stderr)
    print(json.dumps(result), flush=True)
    return 0


def add_sim_arguments(parser) -> None:
    """Add the options of ``hybrid-mpc bench sim`` to ``parser``."""
    parser.description = (
        'Measure Quadcopter.step in a tight loop (core_steps_per_s) and the simulator node '
        'in lockstep answered by the LQR controller node, counted from odometry stamps by '
        'this process (ros_lockstep_steps_per_s).')
    add_scenario_argument(parser)
    parser.add_argument('--steps', type=positive_int, default=2000,
                        help='steps to time, after the warm-up (default: %(default)s)')
    parser.add_argument('--warmup', type=positive_int, default=50,
                        help='lockstep steps to let pass before timing (default: '
                             '%(default)s)')


def run_sim(args) -> int:
    """Run ``hybrid-mpc bench sim`` with the parsed ``args``; the exit status."""
    return main_sim(scenario=args.scenario, steps=args.steps, warmup_steps=args.warmup)


def add_controller_arguments(parser) -> None:
    """Add the options of ``hybrid-mpc bench controller`` to ``parser``."""
    parser.description = (
        'The MPC controller node in lockstep with the simulator (its own odometry-to-command '
        'latency, the loop rate from odometry stamps) and on a wall timer beside the '
        'realtime simulator (period jitter).')
    add_scenario_argument(parser)
    parser.add_argument('--steps', type=positive_int, default=3000,
                        help='lockstep steps to time (default: %(default)s)')
    parser.add_argument('--warmup', type=positive_int, default=100,
                        help='lockstep steps before timing (default: %(default)s)')
    parser.add_argument('--rate', type=positive_float, default=100.0,
                        help='wall-timer rate for the jitter [Hz] (default: %(default)s)')
    parser.add_argument('--seconds', type=positive_float, default=12.0,
                        help='wall seconds on the timer (default: %(default)s)')
    parser.add_argument('--storm', action='store_true',
                        help='then as many seconds more under ground traffic (subscribers '
                             'joining and leaving, parameter gets and sets, service calls) '
                             'and report storm_* figures')


def run_controller(args) -> int:
    """Run ``hybrid-mpc bench controller`` with the parsed ``args``; the exit status."""
    return main_controller(scenario=args.scenario, steps=args.steps, warmup_steps=args.warmup,
                           rate_hz=args.rate, seconds=args.seconds, storm=args.storm)
