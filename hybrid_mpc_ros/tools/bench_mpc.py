"""``hybrid-mpc bench mpc``: speed, accuracy and memory of the MPC policy.

Closed-loop episodes of a scenario on its simulated plant (from its x0 towards its
target, its episode length, then reset), timing per step ``solve`` and ``solve +
sensitivities``;
at ``fd_steps`` states of the first episode, the same sensitivities by central differences
of the solver and an independent QP solve (quadprog). A benchmark: it measures and prints,
with a JSON object as the last line; it asserts nothing.
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np

from hybrid_mpc_ros.core.mpc.policy import finite_difference_sensitivities
from hybrid_mpc_ros.core.mpc.reference_qp import solve_reference
from hybrid_mpc_ros.core.scenario import load_scenario, resolve_scenario_path, Scenario
from hybrid_mpc_ros.tools.cli import add_scenario_argument, positive_int


def rss_mb() -> float:
    """Resident set size of this process [MiB] (Linux /proc)."""
    with open('/proc/self/statm') as stream:
        pages = int(stream.read().split()[1])
    return pages * os.sysconf('SC_PAGE_SIZE') / 2 ** 20


def _percentile_ms(samples, q) -> float:
    return float(np.percentile(np.asarray(samples) * 1e3, q))


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _policies(kind: str, scenario: Scenario):
    """Return ``(timed policy, policy for the accuracy checks)`` of the given kind.

    The affine kind uses the scenario's nominal model; the nonlinear kind the plant's own
    constants. Its accuracy is checked on a converged twin (up to 100 RTI iterations
    sharing the compiled solver): with one iteration per call each solve depends on the
    previous one through the warm start, and central differences would measure that.
    """
    if kind == 'affine':
        policy = scenario.policy()
        return policy, policy
    return (scenario.nonlinear_policy(),
            scenario.nonlinear_policy(rti_iterations=100, rti_tol=1e-9))


def main(scenario: str | None = None, steps: int = 100000, fd_steps: int = 50,
         kind: str = 'affine') -> int:
    """Run the benchmark and print its JSON summary last; returns 0.

    ``scenario`` is a file or a shipped scenario's name (default: the default scenario).
    """
    setup = load_scenario(resolve_scenario_path(scenario), load_model=kind == 'affine')
    policy, checked = _policies(kind, setup)
    plant = setup.plant()
    x0 = setup.x0
    episode_steps = setup.tuning.episode_steps

    # accuracy and finite-difference cost on the first episode
    fd_times, ref_times, errors, skipped = [], [], [], 0
    x = x0.copy()
    stride = max(1, episode_steps // fd_steps)
    plant.reset(x)
    for t in range(episode_steps):
        sol = checked.solve(x)
        if t % stride == 0 and len(fd_times) < fd_steps and sol.ok:
            du_dx, du_dtheta = checked.sensitivities()
            start = time.perf_counter()
            fd_x, fd_t, same = finite_difference_sensitivities(checked, x)
            fd_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            solve_reference(checked.qp, x, checked.x_ref, checked.u_ref)
            ref_times.append(time.perf_counter() - start)
            if same:
                errors.append(max(np.max(np.abs(a - n)) / max(np.max(np.abs(n)), 1e-12)
                                  for a, n in ((du_dx, fd_x), (du_dtheta, fd_t))))
            else:
                skipped += 1
        x = plant.step(x, sol.u)
    _log(f'finite differences at {len(fd_times)} states ({skipped} straddle an active-set '
         'change and are left out of the error)')

    # timing and memory over `steps` closed-loop steps
    # timings go to preallocated arrays so the harness itself does not grow the RSS
    solve_s, step_s, failures = np.empty(steps), np.empty(steps), 0
    x = x0.copy()
    warmup = min(1000, steps // 10)
    rss_start = None
    report_every = max(1, steps // 10)
    wall = time.perf_counter()
    for k in range(steps + warmup):
        if k == warmup:
            rss_start = rss_mb()
        if k % episode_steps == 0:
            x = x0.copy()
            plant.reset(x)
        t0 = time.perf_counter()
        sol = policy.solve(x)
        t1 = time.perf_counter()
        if sol.ok:
            policy.sensitivities()
        else:
            failures += 1
        t2 = time.perf_counter()
        if k >= warmup:
            done = k - warmup
            solve_s[done] = t1 - t0
            step_s[done] = t2 - t0
            if (done + 1) % report_every == 0:
                _log(f'{done + 1}/{steps} steps, {time.perf_counter() - wall:.0f} s, '
                     f'step p50 {_percentile_ms(step_s[:done + 1], 50):.3f} ms')
        x = plant.step(x, sol.u)
    rss_growth = rss_mb() - rss_start

    result = {
        'scenario': setup.path,
        'kind': kind,
        'steps': steps,
        'solve_ms_p50': _percentile_ms(solve_s, 50),
        'solve_ms_p99': _percentile_ms(solve_s, 99),
        'step_ms_p50': _percentile_ms(step_s, 50),
        'step_ms_p99': _percentile_ms(step_s, 99),
        'fd_step_ms_p50': _percentile_ms(fd_times, 50) if fd_times else None,
        'reference_solve_ms_p50': _percentile_ms(ref_times, 50) if ref_times else None,
        'sens_max_rel_err': max(errors) if errors else None,
        'sens_points': len(errors),
        'rss_growth_mb': rss_growth,
        'solver_failures': failures,
        'build_s': policy.timings['build_s'],
    }
    if result['fd_step_ms_p50']:
        result['fd_speedup'] = result['fd_step_ms_p50'] / result['step_ms_p50']
    for key, value in result.items():
        print(f'{key:24s} {value}')
    print(json.dumps(result))
    return 0


def add_arguments(parser) -> None:
    """Add the options of ``hybrid-mpc bench mpc`` to ``parser``."""
    parser.description = (
        'Closed-loop MPC steps on the plant: solve and solve+sensitivity times, the same '
        'sensitivities by finite differences of the solver, an independent QP solve, the '
        'sensitivity error and memory growth.')
    add_scenario_argument(parser)
    parser.add_argument('--steps', type=positive_int, default=100000,
                        help='closed-loop steps to time (default: %(default)s)')
    parser.add_argument('--fd-steps', type=positive_int, default=50,
                        help='steps at which finite differences are timed (default: '
                             '%(default)s)')
    parser.add_argument('--kind', choices=('affine', 'nonlinear'), default='affine',
                        help='nominal model kind: the identified affine model, or the '
                             'nonlinear physics model solved by SQP-RTI (default: affine)')


def run(args) -> int:
    """Run ``hybrid-mpc bench mpc`` with the parsed ``args``; the exit status."""
    return main(scenario=args.scenario, steps=args.steps, fd_steps=args.fd_steps,
                kind=args.kind)
