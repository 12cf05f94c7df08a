"""Offset-free tracking on the shipped vehicles with other constants than their model.

For ``mismatch_example`` and every vehicle of ``config/scenarios/robustness``: fly the
scenario's episode (x0 to x_ref, 200 steps of 0.1 s) at its start theta with the plain
MPC and with the offset-free MPC (observer gains 0.2, 0.5 and 1.0), print the final
distance from the target and the median control step (the policy's solve and
sensitivities, without the plant) [ms].
Run: ``python scripts/offset_free_family.py``; other scenarios, gains or episode lengths:
``python scripts/offset_free_family.py --scenarios l4dc2026 --gains 0.02 0.1 0.5 --steps
600``. ``--input-delay``: the plant gets each command one period late (the hover input
first), as a vehicle does whose controller's timer ticks just before its odometry's
next sample, when odometry comes at the control rate.
"""

import argparse
import glob
import os
import time

import numpy as np

from hybrid_mpc_ros.core.learning.episode import rollout
from hybrid_mpc_ros.core.mpc.offset_free import OffsetFreePolicy
from hybrid_mpc_ros.core.mpc.policy import MPCPolicy
from hybrid_mpc_ros.core.scenario import load_scenario, resolve_scenario_path

GAINS = (0.2, 0.5, 1.0)


class _Timed:
    """The policy, with the wall time of each solve and sensitivities call kept [ms]."""

    def __init__(self, policy):
        self.policy, self.times = policy, []

    def __getattr__(self, name):
        return getattr(self.policy, name)

    def solve(self, x):
        started = time.perf_counter()
        solution = self.policy.solve(x)
        self.times.append(time.perf_counter() - started)
        return solution

    def sensitivities(self):
        started = time.perf_counter()
        out = self.policy.sensitivities()
        self.times[-1] += time.perf_counter() - started
        return out


class _Late:
    """``plant`` receiving each command one period late (the hover input ``u_ref`` first)."""

    def __init__(self, plant, u_ref):
        self.plant, self.u_ref, self.held = plant, np.array(u_ref, dtype=float), None

    def reset(self, x0):
        self.plant.reset(x0)
        self.held = self.u_ref.copy()

    def step(self, x, u):
        x_next = self.plant.step(x, self.held)
        self.held = np.array(u, dtype=float)
        return x_next


def _fly(scenario, policy, steps=200, input_delay=False):
    timed = _Timed(policy)
    plant = _Late(scenario.plant(), scenario.u_ref) if input_delay else scenario.plant()
    record = rollout(plant, timed, scenario.x0, steps)
    step_ms = 1e3 * float(np.median(timed.times))
    return float(np.linalg.norm(record.x[-1, 0:3] - scenario.x_ref[0:3])), step_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--scenarios', nargs='+', default=None,
                        help='scenario names (default: mismatch_example and the robustness '
                             'family)')
    parser.add_argument('--gains', nargs='+', type=float, default=list(GAINS))
    parser.add_argument('--steps', type=int, default=200, help='episode steps (default 200)')
    parser.add_argument('--input-delay', action='store_true',
                        help='the plant gets each command one period late')
    args = parser.parse_args()
    family = os.path.dirname(resolve_scenario_path('robustness/light_climb'))
    names = args.scenarios or ['mismatch_example'] + sorted(
        'robustness/' + os.path.basename(path)[:-5]
        for path in glob.glob(os.path.join(family, '*.yaml')))
    print(f'{"vehicle":34s} {"plain [m]":>10s} ' + ' '.join(
        f'{"gain " + str(g) + " [m]":>13s}' for g in args.gains)
        + '   median step [ms] plain / offset-free')
    for name in names:
        scenario = load_scenario(resolve_scenario_path(name))
        policy_args = (scenario.nominal_model(), scenario.mpc_config, scenario.initial_theta(),
                       scenario.x_ref, scenario.u_ref)
        plain, plain_ms = _fly(scenario, MPCPolicy(*policy_args), args.steps, args.input_delay)
        errors, offset_ms = [], []
        for gain in args.gains:
            error, step_ms = _fly(scenario, OffsetFreePolicy(*policy_args, gain), args.steps,
                                  args.input_delay)
            errors.append(error)
            offset_ms.append(step_ms)
        print(f'{name:34s} {plain:10.4f} ' + ' '.join(f'{e:13.4f}' for e in errors)
              + f'   {plain_ms:.2f} / {np.median(offset_ms):.2f}')


if __name__ == '__main__':
    main()
