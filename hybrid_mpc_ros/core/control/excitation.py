"""Input excitation for identification flights: a bounded, seeded signal added to the command.

A model fitted from closed-loop data needs inputs that the state does not explain: under
a pure state feedback ``u = K x`` the regressor ``[x, u]`` is rank deficient and least
squares cannot separate ``A`` from ``B K``. :class:`Excitation` adds a perturbation ``d``
(4,) [rad/s] to the controller's command *after* the MPC, then clips to the rotor bounds,
so the command sent is ``clip(u_mpc + d, u_min, u_max)`` and never leaves them:

* ``'prbs'``: every rotor gets ``+-amplitude_rad_s`` with a random sign, drawn anew each
  step (a white binary sequence: the largest power for a given bound);
* ``'gaussian'``: every rotor gets a normal draw of standard deviation
  ``amplitude_rad_s / 3``, cut at ``+-amplitude_rad_s`` (the bound is hard).

The draws come from ``numpy.random.default_rng(seed)``: the same seed gives the same
sequence, whichever route (the controller node or an offline flight) consumes it. An
amplitude of 0 (the default) turns the excitation off: no draw is made and the command is
the controller's own. Failsafe steps are never excited (the safe controller decides that).
"""

from __future__ import annotations

from dataclasses import dataclass
import math

import numpy as np

from hybrid_mpc_ros.core.config import ConfigError
from hybrid_mpc_ros.core.model.quadcopter import NU

KINDS = ('prbs', 'gaussian')
MAX_AMPLITUDE_RAD_S = 1000.0


@dataclass(frozen=True)
class ExcitationConfig:
    """The excitation's settings.

    ``amplitude_rad_s`` [rad/s]: the largest perturbation of a rotor command, in
    ``[0, 1000]`` (0: off). ``kind``: one of :data:`KINDS`. ``seed``: the seed of its
    random draws (an integer >= 0).
    """

    amplitude_rad_s: float = 0.0
    kind: str = 'prbs'
    seed: int = 0

    def __post_init__(self):
        amplitude = self.amplitude_rad_s
        if not (math.isfinite(amplitude) and 0.0 <= amplitude <= MAX_AMPLITUDE_RAD_S):
            raise ConfigError(f'excitation amplitude_rad_s must lie in '
                              f'[0, {MAX_AMPLITUDE_RAD_S:g}] rad/s, got {amplitude}')
        if self.kind not in KINDS:
            raise ConfigError(f'excitation kind must be one of {KINDS}, got {self.kind!r}')
        if int(self.seed) != self.seed or self.seed < 0:
            raise ConfigError(f'excitation seed must be an integer >= 0, got {self.seed}')

    @property
    def enabled(self) -> bool:
        """True when the amplitude is above 0."""
        return self.amplitude_rad_s > 0.0

    def describe(self) -> str:
        """One line for diagnostics and logs: 'off' or what is added."""
        if not self.enabled:
            return 'off'
        return f'{self.kind} +-{self.amplitude_rad_s:g} rad/s (seed {self.seed})'


class Excitation:
    """Draws the perturbations of :class:`ExcitationConfig` and applies them within bounds.

    ``u_min`` / ``u_max`` [rad/s] are the rotor bounds every excited command is clipped to.
    """

    def __init__(self, config: ExcitationConfig, u_min: float, u_max: float):
        if not u_max > u_min:
            raise ConfigError(f'rotor bounds need u_min < u_max, got [{u_min}, {u_max}]')
        self.u_min, self.u_max = float(u_min), float(u_max)
        self.config = config
        self._rng = np.random.default_rng(config.seed)
        self.steps = 0                  # excited commands so far

    def configure(self, config: ExcitationConfig) -> None:
        """Take new settings; a new seed restarts the draws, other changes continue them."""
        if config.seed != self.config.seed:
            self._rng = np.random.default_rng(config.seed)
        self.config = config

    @property
    def enabled(self) -> bool:
        """True when commands are excited."""
        return self.config.enabled

    def perturbation(self) -> np.ndarray:
        """Draw the next perturbation d (4,) [rad/s], each entry within +-amplitude."""
        amplitude = self.config.amplitude_rad_s
        if self.config.kind == 'prbs':
            return amplitude * np.where(self._rng.random(NU) < 0.5, -1.0, 1.0)
        return np.clip(self._rng.normal(0.0, amplitude / 3.0, NU), -amplitude, amplitude)

    def apply(self, u: np.ndarray) -> np.ndarray:
        """Return ``clip(u + d, u_min, u_max)`` (4,) for the next draw ``d``; ``u`` if off."""
        if not self.enabled:
            return u
        self.steps += 1
        return np.clip(np.asarray(u, dtype=float) + self.perturbation(), self.u_min, self.u_max)
