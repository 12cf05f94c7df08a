"""A live session's run-level bookkeeping: its calls in flight and what it has seen.

:class:`Calls` numbers the calls, remembers which are unanswered until when, and the one
message the session waits for; :class:`Observed` keeps the newest sample revision and
stamps and the recent odometry states by stamp.
"""

from __future__ import annotations

from collections import deque, OrderedDict
from typing import Callable

import numpy as np

from hybrid_mpc_ros.core.learning.live_session.actions import CallService, SetParameters
from hybrid_mpc_ros.core.learning.live_session.settings import SessionSettings
from hybrid_mpc_ros.core.learning.samples import SensitivitySample

ODOMETRY_KEPT = 4096            # odometry states kept by stamp (for x[T], reset and token)


class Calls:
    """The calls a session has made and not yet had answered, and the message it waits for.

    ``pending`` maps a call id to ``(what, deadline)``, ``what`` a key of
    :data:`~hybrid_mpc_ros.core.learning.live_session.actions.CALLS`; ``deadline`` is
    ``(deadline, what is awaited)`` or None. Times are the session's ``clock()`` [s].
    """

    def __init__(self, settings: SessionSettings, clock: Callable[[], float]):
        self.settings = settings
        self.clock = clock
        self.count = 0
        self.pending: dict[int, tuple[str, float]] = {}      # call id: (what, deadline)
        self.deadline: tuple[float, str] | None = None       # (deadline, what is awaited)

    def call(self, what: str, service: str | None = None, data=None, values=None):
        """Start the call ``what``: a :class:`CallService`, or with ``values`` a set."""
        self.count += 1
        self.pending[self.count] = (what, self.clock() + self.settings.service_timeout_s)
        if values is not None:
            return SetParameters(self.count, values)
        return CallService(self.count, service, data)

    def pop(self, call: int) -> str | None:
        """Forget call ``call``; return what it was for, None for a call given up on."""
        entry = self.pending.pop(call, None)
        return None if entry is None else entry[0]

    def overdue(self, now: float) -> str | None:
        """Forget the first call unanswered past its deadline at ``now``; return what it was for."""
        for call, (what, deadline) in list(self.pending.items()):
            if now > deadline:
                del self.pending[call]
                return what
        return None

    def wait(self, what: str, timeout_s: float | None = None) -> None:
        """Wait for ``what`` for ``timeout_s`` [s] (default: the message timeout)."""
        timeout_s = self.settings.message_timeout_s if timeout_s is None else timeout_s
        self.deadline = (self.clock() + timeout_s, what)

    def stop_waiting(self) -> None:
        """Wait for no message."""
        self.deadline = None

    def waited_in_vain(self, now: float) -> str | None:
        """Stop waiting if the deadline passed before ``now``: return what was awaited."""
        if self.deadline is None or not now > self.deadline[0]:
            return None
        what = self.deadline[1]
        self.deadline = None
        return what

    def clear(self) -> None:
        """Give up every call and every wait."""
        self.pending.clear()
        self.deadline = None


class Observed:
    """The newest sample revision and stamps [ns] seen, and recent odometry by stamp.

    ``states`` maps an odometry stamp [ns] to its state x (12,), the newest
    :data:`ODOMETRY_KEPT`; ``stale`` counts odometry refused for being older than the
    newest; ``recent`` the (odometry stamp, revision) of the newest :data:`ODOMETRY_KEPT`
    samples, by arrival.
    """

    def __init__(self):
        self.revision = -1
        self.recent: deque[tuple[int, int]] = deque(maxlen=ODOMETRY_KEPT)
        self.sample_ns: int | None = None
        self.odom_ns: int | None = None
        self.states: OrderedDict[int, np.ndarray] = OrderedDict()
        self.stale = 0

    def add_sample(self, sample: SensitivitySample) -> None:
        """Note ``sample``'s revision and odometry stamp."""
        stamp_ns = sample.odom_stamp.nanoseconds
        self.recent.append((stamp_ns, sample.revision))
        if sample.revision > self.revision:
            self.revision = sample.revision
        if self.sample_ns is None or stamp_ns > self.sample_ns:
            self.sample_ns = stamp_ns

    def add_odometry(self, stamp_ns: int, x: np.ndarray) -> bool:
        """Keep x (12,) at ``stamp_ns``; False (and counted) if older than the newest."""
        if self.odom_ns is not None and stamp_ns < self.odom_ns:
            # stamps never go back (simulation time neither, even on a reset): an older
            # one is a stale or bogus message, refused as the controller refuses it
            self.stale += 1
            return False
        self.states[stamp_ns] = x
        self.states.move_to_end(stamp_ns)
        while len(self.states) > ODOMETRY_KEPT:
            self.states.popitem(last=False)
        self.odom_ns = stamp_ns
        return True

    def revision_since(self, stamp_ns: int) -> int | None:
        """Return the highest revision of samples computed from odometry at or after ``stamp_ns``.

        None while there is none. Unlike :attr:`revision` (the highest ever) it follows a
        restarted controller, whose revisions start again from 0.
        """
        revisions = [revision for stamp, revision in self.recent if stamp >= stamp_ns]
        return max(revisions) if revisions else None

    def first_after(self, stamp_ns: int) -> int | None:
        """Return the stamp of the first odometry after ``stamp_ns``, None while none came."""
        later = [stamp for stamp in self.states if stamp > stamp_ns]
        return min(later) if later else None
