"""The simulator's command-stream rules (counters, silence reports, levels), without ROS."""

import pytest

from hybrid_mpc_ros.ros.simulator_health import CommandHealth, ERROR, WARN


def _levels(problems):
    return [level for level, _ in problems]


def test_silence_is_reported_with_exponential_backoff_and_once_when_it_ends():
    health = CommandHealth(started=100.0, command_timeout_s=0.5, realtime=True)
    reports = [t for t in (100.0 + 0.1 * k for k in range(1000))
               if health.silence_to_report(t) is not None]
    # after 0.5, then 2x the silence of each report: 1.0, 2.0, 4.0, 8.0 s, ...
    assert [round(t - 100.0, 1) for t in reports] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0,
                                                      64.0]
    assert health.command_received(200.0) == pytest.approx(100.0)
    assert health.command_received(200.1) is None      # said once
    assert health.silence_to_report(200.5) is None
    assert health.silence_to_report(200.7) == pytest.approx(0.6)   # from the timeout again


def test_reports_are_capped_in_interval_and_a_new_timeout_applies_at_once():
    health = CommandHealth(0.0, 1.0, realtime=True, max_warning_interval_s=10.0)
    reports = [t for t in (0.5 * k for k in range(200)) if health.silence_to_report(t)]
    assert reports[:5] == [1.0, 2.0, 4.0, 8.0, 16.0]
    assert all(b - a <= 10.0 for a, b in zip(reports, reports[1:]))
    health.set_command_timeout(2.0)
    assert health.silence_to_report(100.5) == pytest.approx(100.5)


def test_no_silence_reports_in_lockstep_or_with_a_zero_timeout():
    assert CommandHealth(0.0, 0.5, realtime=False).silence_to_report(100.0) is None
    assert CommandHealth(0.0, 0.0, realtime=True).silence_to_report(100.0) is None
    assert CommandHealth(0.0, 0.5, realtime=False).problems(100.0) == []


def test_the_controller_is_lost_past_the_timeout_in_realtime_only():
    health = CommandHealth(started=10.0, command_timeout_s=0.5, realtime=True)
    assert not health.lost(10.4) and health.lost(10.6)
    health.command_received(10.6)
    assert not health.lost(11.0) and health.lost(11.2)
    assert not CommandHealth(0.0, 0.5, realtime=False).lost(100.0)
    assert not CommandHealth(0.0, 0.0, realtime=True).lost(100.0)


def test_levels_follow_the_counters_within_the_window():
    health = CommandHealth(0.0, 0.5, realtime=True, rotor_limits=(0.0, 630.0))
    health.command_received(0.9)
    assert health.problems(1.0) == []
    health.count_rejected('must hold 4 rotor speeds, got 3')
    health.count_clamped()
    health.command_received(1.5)
    problems = health.problems(2.0)
    assert _levels(problems) == [WARN, WARN]
    assert 'rejected' in problems[0][1] and 'got 3' in problems[0][1]
    assert 'clamped to [0, 630] rad/s' in problems[1][1]
    for t in (3.0, 4.0, 5.0, 6.0):
        health.command_received(t - 0.1)
        assert _levels(health.problems(t)) == [WARN, WARN], t
    health.command_received(7.9)
    assert health.problems(8.0) == []                     # more than 5 s later: OK again
    health.command_received(8.9)
    assert _levels(health.problems(9.0, diverged_at_step=42)) == [ERROR]
    assert 'no rotor command for 1.1 s (timeout 0.5 s)' in health.problems(10.0)[0][1]
