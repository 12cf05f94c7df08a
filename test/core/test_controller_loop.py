"""The controller's half of the episode protocol (core/control/controller_loop.py), no ROS.

A recording stand-in for the SafeController: the loop decides when to step, which
revision a sample carries and what hold and reset answer; the control step itself is
tested in test_safe_control.py and through the node in test_mpc_controller_node.py.
"""

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest

from hybrid_mpc_ros.core.control.answers import HoldAnswer, Refused, ResetAnswer
from hybrid_mpc_ros.core.control.controller_loop import ControllerLoop, HOLD_REFUSAL
from hybrid_mpc_ros.core.learning.samples import ENVELOPE_ABORT_STATUS, Stamp
from hybrid_mpc_ros.core.mpc import theta as th
from hybrid_mpc_ros.core.mpc.safe_control import StepResult

PERIOD_NS = 10_000_000


class Policy:
    def __init__(self):
        self.theta = np.arange(th.N_THETA, dtype=float)
        self.x_ref = np.zeros(12)
        self.config = SimpleNamespace(dt=PERIOD_NS * 1e-9)

    def set_theta(self, theta):
        self.theta = np.array(theta)

    def set_reference(self, x_ref):
        self.x_ref = x_ref


class Controller:
    """Records what the loop asks of a SafeController; steps return fixed numbers."""

    def __init__(self):
        self.policy = Policy()
        self.calls = []
        self.abort_reason = ''
        self.sensitivities_ok = True
        self.safe_theta = self.policy.theta.copy()

    def step(self, x, odom_age_s, sensitivities=True, consecutive=True):
        self.calls.append(('step', x.copy(), odom_age_s, sensitivities, consecutive))
        return StepResult(np.full(4, 400.0), 'mpc', 0, 1.5, np.zeros((4, 12)),
                          np.zeros((4, th.N_THETA)), False, sensitivities_pending=True,
                          abort_reason=self.abort_reason)

    def add_sensitivities(self, result):
        self.calls.append(('add_sensitivities',))
        return replace(result, du_dx=np.ones((4, 12)), du_dtheta=np.ones((4, th.N_THETA)),
                       sensitivities_ok=self.sensitivities_ok, sensitivities_pending=False)

    def reset(self):
        self.calls.append(('reset',))

    def rearm(self):
        self.calls.append(('rearm',))

    def set_safe_theta(self, theta):
        self.calls.append(('set_safe_theta', np.array(theta)))
        self.safe_theta = np.array(theta)


def loop(trigger='odometry'):
    return ControllerLoop(Controller(), trigger)


def state(value):
    return np.full(12, float(value))


def test_the_odometry_trigger_answers_each_new_stamp_once():
    ctl = loop()
    assert ctl.odometry(0, state(0), received=1.0)
    assert not ctl.odometry(0, state(0), received=1.5)       # re-published: no command
    assert ctl.odometry(PERIOD_NS, state(1), received=2.0)
    assert ctl.answered_ns == PERIOD_NS


def test_an_older_stamp_is_refused_and_changes_nothing():
    ctl = loop()
    ctl.odometry(2 * PERIOD_NS, state(2), received=1.0)
    with pytest.raises(ValueError, match='older than the last accepted one'):
        ctl.odometry(PERIOD_NS, state(1), received=2.0)
    assert ctl.odom_stamp_ns == 2 * PERIOD_NS and ctl.x[0] == 2.0 and ctl.odom_received == 1.0
    assert ctl.reject('older stamp') == 1 and ctl.reject('NaN') == 2
    assert ctl.last_rejection == 'NaN'


def test_the_timer_trigger_steps_on_the_timer_from_the_first_odometry_with_its_age():
    ctl = loop('timer')
    assert not ctl.timer()                                   # no odometry yet
    assert not ctl.odometry(0, state(0), received=1.0)       # odometry never steps here
    assert ctl.timer() and ctl.timer()                       # every tick steps
    ctl.command(now=1.25)
    assert ctl.controller.calls[-1][2] == 0.25               # the odometry's wall age
    assert ctl.controller.calls[-1][3] is False              # command first


def test_a_step_is_consecutive_only_one_period_after_the_last_one():
    # a timer tick on the odometry of the last step, or after one was skipped, is not: an
    # offset-free controller then skips its estimate's update (test_offset_free.py)
    ctl = loop('timer')
    consecutive = []
    for stamp_ns in (0, PERIOD_NS, PERIOD_NS, 2 * PERIOD_NS, 4 * PERIOD_NS,
                     5 * PERIOD_NS + PERIOD_NS // 5, 6 * PERIOD_NS + PERIOD_NS // 2):
        ctl.odometry(stamp_ns, state(stamp_ns), received=1.0)
        ctl.command(now=1.0)
        consecutive.append(ctl.controller.calls[-1][4])
    # the first has no step before it; a fifth of a period late still counts, half does not
    assert consecutive == [False, True, False, True, False, True, False]
    assert ctl.irregular_steps == 4


def test_the_watchdog_steps_on_wall_time_when_odometry_is_late():
    # odometry trigger on wall time: no step for 1.5 periods (odometry late or lost) is
    # overdue; the step then goes out on the last odometry with its age
    period_s = PERIOD_NS * 1e-9
    ctl = ControllerLoop(Controller(), 'odometry', sim_time=False)
    assert not ctl.watchdog(now=5.0)                           # no odometry yet
    assert ctl.odometry(0, state(0), received=1.0)
    assert not ctl.watchdog(now=1.0 + 1.4 * period_s)          # a first step is due
    assert ctl.watchdog(now=1.0 + 1.51 * period_s)
    ctl.command(now=1.0)                                       # answered at once
    assert ctl.controller.calls[-1][2] == 0.0
    assert not ctl.watchdog(now=1.0 + 1.4 * period_s)
    late = 1.0 + 1.6 * period_s
    assert ctl.watchdog(now=late)
    ctl.command(now=late)
    assert ctl.controller.calls[-1][2] == pytest.approx(1.6 * period_s)   # its age
    assert ctl.controller.calls[-1][4] is False                # the same odometry again
    assert not ctl.watchdog(now=late + 1.4 * period_s)         # counted from that step
    assert ctl.watchdog(now=late + 1.51 * period_s)


def test_the_watchdog_counts_from_the_end_of_a_slow_step():
    period_s = PERIOD_NS * 1e-9
    ctl = ControllerLoop(Controller(), 'odometry', sim_time=False)
    ctl.odometry(0, state(0), received=1.0)
    ctl.command(now=1.0)
    ctl.step_done(1.0 + 2 * period_s)                          # it took two periods
    assert not ctl.watchdog(now=1.0 + 2.1 * period_s)
    assert ctl.watchdog(now=1.0 + 3.51 * period_s)


def test_a_republished_stamp_keeps_its_first_arrival_and_takes_the_newest_state():
    # the age of a source repeating a frozen state grows (the failsafe comes); the state
    # is the newest (the lockstep simulator's reset publishes x0 at the same stamp)
    ctl = loop('timer')
    ctl.odometry(PERIOD_NS, state(1), received=1.0)
    ctl.odometry(PERIOD_NS, state(7), received=3.0)
    assert ctl.odom_received == 1.0 and ctl.x[0] == 7.0
    ctl.command(now=3.0)
    assert ctl.controller.calls[-1][2] == 2.0


def test_no_watchdog_with_the_timer_trigger_or_on_simulated_time():
    for ctl in (loop('timer'), loop('odometry')):
        ctl.odometry(0, state(0), received=1.0)
        assert not ctl.watchdog(now=100.0)


def test_the_odometry_trigger_steps_with_age_zero():
    ctl = loop()
    ctl.odometry(0, state(0), received=1.0)
    ctl.command(now=100.0)               # a held lockstep loop: the wait is not the age
    assert ctl.controller.calls[-1][2] == 0.0


def test_hold_is_refused_with_the_timer_trigger():
    ctl = loop('timer')
    assert ctl.hold(True) == (Refused(HOLD_REFUSAL), False)
    assert not ctl.held


def test_hold_is_refused_on_wall_time_and_the_loop_keeps_answering():
    ctl = ControllerLoop(Controller(), 'odometry', sim_time=False)
    assert ctl.hold(True) == (Refused(HOLD_REFUSAL), False)
    assert ctl.hold(False) == (Refused(HOLD_REFUSAL), False)
    assert not ctl.held and 'wall time' in HOLD_REFUSAL
    # every new odometry is still answered: the vehicle never goes without commands
    assert ctl.odometry(0, state(0), received=1.0)
    assert ctl.odometry(PERIOD_NS, state(1), received=1.1)


def test_a_held_loop_keeps_odometry_and_answers_the_newest_on_release():
    ctl = loop()
    assert ctl.hold(True) == (HoldAnswer(True, None), False)     # nothing answered yet
    assert not ctl.odometry(0, state(0), received=1.0)
    assert not ctl.odometry(PERIOD_NS, state(1), received=1.1)
    # the answer names what was answered before the release; the release steps at once
    answer, step = ctl.hold(False)
    assert answer == HoldAnswer(False, None) and step
    assert ctl.answered_ns == PERIOD_NS and ctl.x[0] == 1.0
    assert ctl.hold(True) == (HoldAnswer(True, Stamp.from_nanoseconds(PERIOD_NS)), False)
    # released again with no new odometry: nothing to answer
    assert ctl.hold(False) == (HoldAnswer(False, Stamp.from_nanoseconds(PERIOD_NS)), False)
    assert ctl.odometry(2 * PERIOD_NS, state(2), received=1.2)


def test_reset_clears_the_controller_and_names_the_revision():
    ctl = loop()
    ctl.set_policy({}, x_ref=state(3))
    assert ctl.reset() == ResetAnswer(1)
    assert ctl.controller.calls == [('reset',)]


def test_one_revision_per_set_that_changes_theta_or_x_ref():
    ctl = loop()
    policy = ctl.controller.policy
    values = th.to_parameters(policy.theta + 1.0)
    assert ctl.set_policy(values) == sorted(values) and ctl.revision == 1
    np.testing.assert_array_equal(policy.theta, np.arange(th.N_THETA) + 1.0)
    assert ctl.controller.calls == [('rearm',)]          # a new candidate re-arms the abort
    assert ctl.set_policy({'theta.p_R': [2.0] * 4}, state(5)) == ['theta.p_R', 'x_ref']
    assert ctl.revision == 2 and policy.x_ref[0] == 5.0
    assert ctl.set_policy({'theta.p_R': [2.0] * 4}) == ['theta.p_R'] and ctl.revision == 3
    assert ctl.set_policy({}) == [] and ctl.revision == 3


def test_a_safe_theta_set_keeps_the_groups_left_out_and_makes_no_revision():
    ctl = loop()
    start = ctl.controller.safe_theta.copy()
    assert not ctl.set_safe_theta(th.to_parameters(start + 1.0))   # theta.*: not the safe one
    assert ctl.set_safe_theta({'safe_theta.p_R': [7.0] * 4, 'x_ref': state(1)})
    expected = start.copy()
    expected[th.SLICE_R] = 7.0
    np.testing.assert_array_equal(ctl.controller.safe_theta, expected)
    assert ctl.revision == 0 and ctl.controller.policy.theta[0] == start[0]
    np.testing.assert_array_equal(th.from_parameters(th.unprefix_safe(
        th.to_safe_parameters(expected))), expected)


def test_a_step_reports_its_sample_with_the_revision_and_odometry_stamp():
    ctl = loop()
    ctl.set_policy({}, x_ref=state(0))
    ctl.odometry(7 * PERIOD_NS, state(4), received=1.0)
    result = ctl.command(1.0)
    result, sample = ctl.report(result, lambda: Stamp(3, 5))
    assert [call[0] for call in ctl.controller.calls] == ['step', 'add_sensitivities']
    assert sample.stamp == Stamp(3, 5) and sample.odom_stamp.nanoseconds == 7 * PERIOD_NS
    assert (sample.revision, sample.status, sample.solve_ms) == (1, 0, 1.5)
    np.testing.assert_array_equal(sample.x, state(4))
    np.testing.assert_array_equal(sample.u, result.u)
    assert (sample.du_dtheta == 1.0).all() and ctl.revision == 1


def test_missing_sensitivities_are_nan_never_zero():
    ctl = loop()
    ctl.controller.sensitivities_ok = False
    ctl.odometry(0, state(0), received=1.0)
    _, sample = ctl.report(ctl.command(1.0), lambda: Stamp(0, 0))
    assert np.isnan(sample.du_dx).all() and np.isnan(sample.du_dtheta).all()


def test_an_envelope_abort_ends_the_revision_at_its_step():
    ctl = loop()
    ctl.controller.abort_reason = 'tilt 0.5 rad'
    ctl.odometry(0, state(0), received=1.0)
    result, sample = ctl.report(ctl.command(1.0), lambda: Stamp(0, 0))
    assert result.abort_reason and sample.status == ENVELOPE_ABORT_STATUS
    assert sample.revision == 0 and ctl.revision == 1     # the safe theta's own revision


def test_the_trigger_must_be_resolved():
    with pytest.raises(ValueError, match='trigger must be one of'):
        ControllerLoop(Controller(), 'auto')


@pytest.mark.parametrize('make, problem', [
    (lambda: HoldAnswer(1, None), 'held must be a bool'),
    (lambda: HoldAnswer(True, (0, 2_000_000_000)), 'nanosec'),
    (lambda: ResetAnswer(-1), 'revision must be an integer'),
    (lambda: ResetAnswer(True), 'revision must be an integer'),
])
def test_answers_check_their_fields(make, problem):
    with pytest.raises(ValueError, match=problem):
        make()
