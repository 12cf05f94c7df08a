"""What a 0.1 s plant period costs, and how far each integration is from the exact one.

Run: ``python scripts/plant_step_cost.py`` (prints a Markdown table). For each RotorPy
preset (aerodynamics on, wind (1, -0.5, 0) m/s) 30 periods from a moving state with
commands 2 % around hover, integrated by RotorPy's own steps and by the RK4 integration
(1 ms and 2 ms steps), against RotorPy with RK45 at tolerance 1e-11 as the reference;
the package's quadcopter (RK4, 4 substeps) for scale. Timings depend on the machine's
load; the errors do not.
"""

import time

import numpy as np

from hybrid_mpc_ros.core.model.quadcopter import Quadcopter
from hybrid_mpc_ros.core.model.rotorpy_plant import PRESETS, RotorPyPlant

X0 = np.array([0.3, -0.2, 1.0, 0.2, -0.1, 0.05, 0.1, -0.05, 0.3, 0.2, -0.1, 0.05])
TIGHT = {'method': 'RK45', 'rtol': 1e-11, 'atol': 1e-11}
WIND = (1.0, -0.5, 0.0)


def fly(plant, commands) -> tuple[np.ndarray, float]:
    """Return the states (T, 12) after each command and the mean cost per period [ms]."""
    plant.reset(X0)
    x, states = X0, []
    start = time.perf_counter()
    for u in commands:
        x = plant.step(x, u)
        states.append(x)
    return np.array(states), (time.perf_counter() - start) / len(commands) * 1e3


def main():
    """Print the table."""
    quad = Quadcopter()
    _, cost = fly(quad, np.tile(quad.hover_input, (200, 1)))
    print(f'package quadcopter (rk4, 4 substeps): {cost:.3f} ms per period\n')
    print('| vehicle | integration | ms per period | max error in 3 s: position [m] | '
          'velocity [m/s] | attitude [rad] | rates [rad/s] |')
    print('|---|---|---|---|---|---|---|')
    for vehicle in PRESETS:
        reference = RotorPyPlant(vehicle, wind=WIND, integrator_kwargs=TIGHT)
        rng = np.random.default_rng(1)
        commands = reference.hover_speed * (1.0 + 0.02 * rng.normal(size=(30, 4)))
        exact, _ = fly(reference, commands)
        for name, plant in (
                ('rotorpy (0.01 s RK45)', RotorPyPlant(vehicle, wind=WIND)),
                ('rk4 (0.001 s)', RotorPyPlant(vehicle, wind=WIND, integration='rk4')),
                ('rk4 (0.002 s)', RotorPyPlant(vehicle, wind=WIND, integration='rk4',
                                               inner_step_s=0.002))):
            states, cost = fly(plant, commands)
            error = np.abs(states - exact).max(axis=0)
            print(f'| {vehicle} | {name} | {cost:.2f} | {error[0:3].max():.1e} | '
                  f'{error[3:6].max():.1e} | {error[6:9].max():.1e} | {error[9:12].max():.1e} |')


if __name__ == '__main__':
    main()
