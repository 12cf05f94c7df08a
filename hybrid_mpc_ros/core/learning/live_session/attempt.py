"""One attempt at an episode (:class:`Attempt`) and how one is discarded (:class:`Retry`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from hybrid_mpc_ros.core.learning.episode import EpisodeBuilder
from hybrid_mpc_ros.core.learning.samples import SensitivitySample
from hybrid_mpc_ros.core.learning.tuning import EpisodeRequest


class Retry(Exception):
    """Discard the attempt in progress, rerun the episode: ``kind`` counted, ``reason`` logged."""

    def __init__(self, kind: str, reason: str):
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


@dataclass
class Attempt:
    """The state of one try at an episode; a rerun is a new attempt, nothing is cleared.

    Created when the tuner asks for an episode or when the previous try was discarded
    (before its backoff), dropped when the tuner takes its record. Stamps are odometry
    stamps [ns]; revisions the controller's theta revisions.
    """

    request: EpisodeRequest
    number: int                       # 0 for the first try, n for the n-th rerun
    started: float                    # clock() [s] when the episode's first try began
    prev_revision: int | None = None  # newest revision in samples before theta was set
    revision: int | None = None       # the episode's, named by the controller's reset answer
    reset_after_ns: int | None = None   # the reset odometry comes at or after this stamp
    reset_done: bool = False          # the simulator answered its reset
    reset_ns: int | None = None       # the simulator's reset odometry (x0)
    settled_since: int | None = None  # fly_to_start: within the tolerance since this stamp
    builder: EpisodeBuilder | None = None       # from the episode's first sample on
    start_info: dict = field(default_factory=dict)   # where the first sample started
    abort_sample: SensitivitySample | None = None    # the envelope abort's step
    last_step_ns: int | None = None   # the episode's last step
    final_hold_done: bool = True      # no hold after the steps, or it was answered

    def rerun(self) -> Attempt:
        """Begin the next try at the same episode: a new attempt."""
        return Attempt(self.request, self.number + 1, self.started)

    def predates(self, sample: SensitivitySample) -> bool:
        """Whether ``sample``, taken while collecting, comes from before this attempt began.

        With a revision named by the controller, only that revision starts the episode;
        else any above the newest seen before theta was set. A sample computed from
        odometry older than the simulator's reset is late, whatever its revision.
        """
        if self.revision is not None:
            if self.builder is None and sample.revision != self.revision:
                return True          # from before theta was set (or a stale message)
        elif sample.revision <= self.prev_revision:
            return True              # from before theta was set
        # theta was set but the vehicle not yet reset: late
        return self.reset_ns is not None and sample.odom_stamp.nanoseconds < self.reset_ns
