"""``hybrid-mpc bench``: speed benchmarks (``sim`` now; ``mpc`` belongs here too).

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
from hybrid_mpc_ros.tools.demo import ClosedLoop, DemoError


def core_steps_per_s(scenario: Scenario, steps: int) -> float:
    """Rate of the scenario's :meth:`Quadcopter.step` at hover input, steps per wall second."""
    quad = scenario.plant()
    x, u = quad.hover_state(), quad.params.hover_input
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
                 timeout_s: float = 30.0, poll_s: float = 0.05, log=sys.stderr) -> dict:
    """Time at least ``steps`` lockstep steps of simulator + LQR node after ``warmup_steps``.

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
                    watch_commands=False) as loop:
        print(f'bench sim: lockstep simulator + LQR controller on ROS_DOMAIN_ID '
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
    counted = round((end.sim_s - start.sim_s) / period_s)
    wall = end.wall_s - start.wall_s
    return {'steps_per_s': counted / wall, 'steps': counted, 'wall_s': wall,
            'domain_id': domain_id}


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
    try:
        ros = ros_lockstep(setup, steps, warmup_steps)
    except DemoError as exc:
        print(f'hybrid-mpc bench sim: error: {exc}', file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print('hybrid-mpc bench sim: interrupted; nodes stopped', file=sys.stderr)
        return 130
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
