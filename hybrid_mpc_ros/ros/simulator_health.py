"""The simulator's view of its command stream: counters, silence reports, diagnostic levels.

Plain Python (times are ``time.monotonic()`` seconds passed in), so the rules are tested
without a ROS graph; :mod:`hybrid_mpc_ros.ros.simulator_node` turns them into log lines
and ``diagnostic_msgs/DiagnosticStatus``.

Rules:

* a missing controller (realtime mode) is reported after ``command_timeout_s`` of
  silence, then after 2x, 4x, ... that silence (at most ``max_warning_interval_s`` apart),
  and once more when commands resume; ``command_timeout_s = 0`` disables it;
* diagnostics: ERROR while the plant has diverged; WARN while commands were rejected or
  clamped within the last ``window_s`` (counted from one diagnostics tick to the next) or,
  in realtime mode, no command came for ``command_timeout_s``; OK otherwise.
"""

from __future__ import annotations

from collections import deque

OK, WARN, ERROR = 0, 1, 2   # the levels of diagnostic_msgs/DiagnosticStatus
DEFAULT_WINDOW_S = 5.0
DEFAULT_MAX_WARNING_INTERVAL_S = 600.0


class CommandHealth:
    """Counters and silence tracking of one simulator's rotor commands.

    ``started`` is the start time [s] (silence is counted from it until the first command);
    ``realtime`` says whether silence is a problem at all (in lockstep, waiting for a
    command is normal); ``rotor_limits`` [rad/s] only appear in messages.
    """

    def __init__(self, started: float, command_timeout_s: float, realtime: bool,
                 rotor_limits: tuple[float, float] = (0.0, 630.0),
                 window_s: float = DEFAULT_WINDOW_S,
                 max_warning_interval_s: float = DEFAULT_MAX_WARNING_INTERVAL_S):
        self.started = started
        self.realtime = realtime
        self.rotor_limits = rotor_limits
        self.window_s = window_s
        self.max_warning_interval_s = max_warning_interval_s
        self.rejected = 0
        self.clamped = 0
        self.last_rejection = ''
        self.last_command = None
        self.command_timeout_s = command_timeout_s
        self._next_warning_s = command_timeout_s
        self._warned = False
        # (time, rejected, clamped) at each diagnostics tick, for the counts in the window
        self._history = deque([(started, 0, 0)])

    def set_command_timeout(self, value: float) -> None:
        """Use a new timeout; the next silence check reports at once if it is exceeded."""
        self.command_timeout_s = value
        self._next_warning_s = value

    def count_rejected(self, reason: str) -> int:
        """Count a rejected command (``reason``: why); return the total."""
        self.rejected += 1
        self.last_rejection = reason
        return self.rejected

    def count_clamped(self) -> int:
        """Count a clamped command; return the total."""
        self.clamped += 1
        return self.clamped

    def silence(self, now: float) -> float:
        """Seconds since the last command (since the start when none came yet)."""
        return now - (self.started if self.last_command is None else self.last_command)

    def lost(self, now: float) -> bool:
        """Whether the controller counts as lost at ``now``: realtime, silent past the timeout."""
        return self.realtime and 0.0 < self.command_timeout_s < self.silence(now)

    def command_received(self, now: float) -> float | None:
        """Record a command at ``now``; return the silence it ended if that was reported."""
        ended = None
        if self._warned:
            self._warned = False
            self._next_warning_s = self.command_timeout_s
            ended = self.silence(now)
        self.last_command = now
        return ended

    def silence_to_report(self, now: float) -> float | None:
        """Return the silence [s] if a missing-controller report is due now, else None.

        Due after ``command_timeout_s``, then after twice the silence of the previous
        report (at most ``max_warning_interval_s`` later); never in lockstep mode or with
        a zero timeout.
        """
        if not self.realtime or self.command_timeout_s <= 0.0:
            return None
        silence = self.silence(now)
        if silence < self._next_warning_s:
            return None
        self._warned = True
        self._next_warning_s = min(2.0 * silence, silence + self.max_warning_interval_s)
        return silence

    @property
    def next_report_s(self) -> float:
        """The silence [s] at which the next missing-controller report is due."""
        return self._next_warning_s

    def problems(self, now: float, diverged_at_step: int | None = None) -> list:
        """``(level, text)`` for everything wrong at ``now``; empty when all is well.

        Call once per diagnostics tick: it also advances the window of recent counts.
        """
        history = self._history
        history.append((now, self.rejected, self.clamped))
        # baseline: the latest tick at least window_s old (or the oldest one)
        while len(history) > 2 and now - history[1][0] >= self.window_s:
            history.popleft()
        since, rejected_before, clamped_before = history[0]
        window = now - since
        problems = []
        if diverged_at_step is not None:
            problems.append((ERROR, f'plant state diverged at step {diverged_at_step}; '
                                    'holding the last finite state until ~/reset'))
        if self.rejected > rejected_before:
            problems.append((WARN, f'{self.rejected - rejected_before} rotor command(s) '
                                   f'rejected in the last {window:.0f} s (last: '
                                   f'{self.last_rejection})'))
        if self.clamped > clamped_before:
            low, high = self.rotor_limits
            problems.append((WARN, f'{self.clamped - clamped_before} rotor command(s) '
                                   f'clamped to [{low:g}, {high:g}] rad/s in the last '
                                   f'{window:.0f} s'))
        silence = self.silence(now)
        if self.lost(now):
            problems.append((WARN, f'no rotor command for {silence:.1f} s (timeout '
                                   f'{self.command_timeout_s:g} s)'))
        return problems
