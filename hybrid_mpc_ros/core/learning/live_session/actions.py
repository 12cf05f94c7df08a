"""What a :class:`LiveSession` asks its node to do: the actions, and the calls it makes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hybrid_mpc_ros.core.mpc import theta as th

SERVICES = ('hold', 'controller_reset', 'simulator_reset')


@dataclass(frozen=True)
class SetParameters:
    """Set ``values`` (ROS parameter name -> list of doubles) on the controller atomically."""

    call: int
    values: dict


@dataclass(frozen=True)
class CallService:
    """Call ``service`` (one of :data:`SERVICES`); ``data`` is the hold flag for ``hold``."""

    call: int
    service: str
    data: bool | None = None


@dataclass(frozen=True)
class Log:
    """A line for the node's log; ``level`` is ``'info'``, ``'warn'`` or ``'error'``."""

    level: str
    text: str


@dataclass(frozen=True)
class EpisodeDone:
    """An episode the tuner took: ``info`` holds :data:`EPISODE_FIELDS`."""

    info: dict


@dataclass(frozen=True)
class IterationDone:
    """An iteration completed: the tuner's history ``row`` plus the session's columns.

    ``theta`` (94,) is theta after the iteration. The extra columns of ``row``:
    ``theta_revision`` (the base episode's), ``retries`` (episode reruns so far),
    ``rollbacks`` (the tuner's refused iterations so far), ``episodes`` (taken so far).
    """

    row: dict
    theta: np.ndarray


@dataclass(frozen=True)
class Finished:
    """Every iteration is done; the final theta was pushed to the controller."""

    message: str


@dataclass(frozen=True)
class Failed:
    """The session gave up; ``reason`` says why (for a one-line error)."""

    reason: str


# the calls a session makes, by key, with what they are for (log lines)
CALLS = {
    'release_stale': 'release a hold left from before',
    'set_theta': 'set theta',
    'hold': 'hold the controller',
    'simulator_reset': 'reset the simulator',
    'controller_reset': 'reset the controller',
    'release': 'release the controller',
    'final_hold': 'hold the controller after the episode',
    'go_to_start': 'set x_ref to hover at x0',
    'set_theta_fly': 'set theta and the target',
    'finish_set': 'set the final theta',
    'finish_release': 'release the controller at the end',
}
EPISODE_FIELDS = ('iteration', 'role', 'revision', 'steps', 'attempts', 'start_stamp_s',
                  'start_position_error_m', 'start_speed_m_s', 'cost', 'wall_s')


def parameter_values(theta: np.ndarray, x_ref: np.ndarray | None,
                     safe_theta: np.ndarray | None = None) -> dict:
    """Return the controller's parameters for theta (94,) and, unless None, x_ref (12,).

    With ``safe_theta`` (94,) also the ``safe_theta.*`` parameters: what the controller
    flies after an envelope abort (the tuner's best theta).
    """
    values = th.to_parameters(theta)
    if safe_theta is not None:
        values.update(th.to_safe_parameters(safe_theta))
    if x_ref is not None:
        values['x_ref'] = [float(v) for v in x_ref]
    return values
