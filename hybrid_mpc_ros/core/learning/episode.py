"""One closed-loop episode: the record type and the simulated rollout.

:class:`EpisodeRecord` is what the tuner needs from an episode, whether it ran here on the
simulated plant (:func:`rollout`) or through ROS (the tuner node assembles the same record
from the controller's sensitivity messages).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from hybrid_mpc_ros.core.mpc import theta as th
from hybrid_mpc_ros.core.model.quadcopter import NU, NX


@dataclass
class EpisodeRecord:
    """Measured closed-loop trajectory of ``T`` steps with the policy's sensitivities.

    ``x`` (T+1, 12) states, ``x[0]`` the initial state; ``u`` (T, 4) applied inputs;
    ``du_dx`` (T, 4, 12) and ``du_dtheta`` (T, 4, 94) the policy's sensitivities at each
    step (zero where the solve failed); ``status`` (T,) solver status (0 = success);
    ``theta`` (94,) the parameters the episode ran with.
    """

    x: np.ndarray
    u: np.ndarray
    du_dx: np.ndarray
    du_dtheta: np.ndarray
    status: np.ndarray
    theta: np.ndarray

    @property
    def steps(self) -> int:
        """Number of closed-loop steps T."""
        return self.u.shape[0]

    @property
    def failures(self) -> int:
        """Steps at which the MPC solve failed (and a fallback input was applied)."""
        return int(np.count_nonzero(self.status))

    def validate(self) -> None:
        """Raise ValueError if shapes are inconsistent or data non-finite."""
        steps = self.u.shape[0]
        expected = {'x': (steps + 1, NX), 'u': (steps, NU), 'du_dx': (steps, NU, NX),
                    'du_dtheta': (steps, NU, th.N_THETA), 'status': (steps,),
                    'theta': (th.N_THETA,)}
        for name, shape in expected.items():
            value = getattr(self, name)
            if value.shape != shape:
                raise ValueError(f'episode {name} has shape {value.shape}, expected {shape}')
            if not np.all(np.isfinite(value)):
                raise ValueError(f'episode {name} has non-finite entries')


def rollout(plant_step: Callable[[np.ndarray, np.ndarray], np.ndarray], policy,
            x0: np.ndarray, steps: int, sensitivities: bool = True) -> EpisodeRecord:
    """Run ``policy`` on the true system ``plant_step(x, u) -> x+`` for ``steps`` steps.

    ``policy`` has the :class:`~hybrid_mpc_ros.core.mpc.policy.MPCPolicy` interface; it is reset
    first so an episode depends only on (theta, x0) and reruns bit for bit.
    """
    x = np.array(x0, dtype=float)
    xs = np.empty((steps + 1, NX))
    us = np.empty((steps, NU))
    kx = np.zeros((steps, NU, NX))
    kt = np.zeros((steps, NU, th.N_THETA))
    status = np.zeros(steps, dtype=int)
    policy.reset()
    xs[0] = x
    for t in range(steps):
        sol = policy.solve(x)
        us[t] = sol.u
        status[t] = sol.status
        if sol.ok and sensitivities:
            kx[t], kt[t] = policy.sensitivities()
        x = plant_step(x, sol.u)
        if not np.all(np.isfinite(x)):
            raise FloatingPointError(f'plant state became non-finite at step {t + 1}')
        xs[t + 1] = x
    return EpisodeRecord(xs, us, kx, kt, status, policy.theta.copy())
