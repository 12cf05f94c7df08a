"""Typed answers to the calls a tuner makes on a controller and a simulator (ROS-free).

A tuner sets parameters on the controller and calls its ``~/hold`` and ``~/reset`` and the
simulator's ``~/reset``. Each call ends in one of these answers, so the tuner's core
(:class:`~hybrid_mpc_ros.core.learning.live_session.LiveSession`) reads fields, never
text. The controller's core (:class:`~hybrid_mpc_ros.core.control.controller_loop.
ControllerLoop`) gives its answers in these types too; :mod:`hybrid_mpc_ros.ros.replies`
carries them over the ``std_srvs`` services.
"""

from __future__ import annotations

from dataclasses import dataclass

from hybrid_mpc_ros.core.learning.samples import MAX_REVISION, Stamp


@dataclass(frozen=True)
class Accepted:
    """A call that succeeded and says nothing the protocol reads; ``message``: its text."""

    message: str = ''


@dataclass(frozen=True)
class Refused:
    """A call that failed: refused, unanswered or unreadable; ``reason`` says why."""

    reason: str


@dataclass(frozen=True)
class HoldAnswer:
    """The controller accepted ``~/hold``.

    ``held``: whether it now holds (keeps odometry without answering it). ``answered``:
    the stamp of the last odometry it answered before this answer (None: none yet), so a
    tuner knows which odometry brings the token back (that stamp + one period).
    """

    held: bool
    answered: Stamp | None

    def __post_init__(self):
        if not isinstance(self.held, bool):
            raise ValueError(f'held must be a bool, got {self.held!r}')
        if self.answered is not None:
            object.__setattr__(self, 'answered', Stamp.of(self.answered))


@dataclass(frozen=True)
class ResetAnswer:
    """The controller cleared its solver's warm start and plan; ``revision``: its theta revision.

    A tuner resets the controller right before an episode, after setting theta, so the
    revision is exactly the one the episode's samples carry, and a revision at or below
    one named before reveals a restarted controller (revisions start at 0).
    """

    revision: int

    def __post_init__(self):
        revision = self.revision
        if isinstance(revision, bool) or not isinstance(revision, int) or \
                not 0 <= revision <= MAX_REVISION:
            raise ValueError(f'revision must be an integer in [0, 2^53], got {revision!r}')


Answer = Accepted | Refused | HoldAnswer | ResetAnswer
