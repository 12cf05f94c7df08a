"""The codec of the controller's ~/hold and ~/reset answers (ros/replies.py)."""

from rcl_interfaces.msg import SetParametersResult
from rclpy.serialization import deserialize_message, serialize_message
from std_srvs.srv import SetBool, Trigger
import pytest

from hybrid_mpc_ros.core.control.answers import Accepted, HoldAnswer, Refused, ResetAnswer
from hybrid_mpc_ros.core.control.controller_loop import HOLD_REFUSAL
from hybrid_mpc_ros.core.learning.samples import Stamp
from hybrid_mpc_ros.ros import replies


def _wire(response):
    """``response`` after a trip through ROS serialisation."""
    return deserialize_message(serialize_message(response), type(response))


@pytest.mark.parametrize('answer', [HoldAnswer(True, Stamp(12, 300000000)),
                                    HoldAnswer(False, Stamp(0, 0)), HoldAnswer(True, None),
                                    HoldAnswer(False, Stamp(-3, 999999999)),
                                    Refused(HOLD_REFUSAL)])
def test_hold_answers_round_trip(answer):
    response = replies.hold_response(answer, SetBool.Response())
    assert replies.decode_hold(_wire(response)) == answer


@pytest.mark.parametrize('revision', [0, 1, 17, 2 ** 53])
def test_reset_answers_round_trip(revision):
    response = replies.reset_response(ResetAnswer(revision), Trigger.Response())
    assert replies.decode_reset(_wire(response)) == ResetAnswer(revision)


def test_the_wire_text_is_the_one_controllers_always_sent():
    """Older tuners and controllers read and write exactly these texts."""
    hold = replies.hold_response(HoldAnswer(True, Stamp(12, 3000)), SetBool.Response())
    assert (hold.success, hold.message) == (
        True, 'holding: odometry is kept, not answered; last answered odometry stamp: '
              '12.000003000')
    release = replies.hold_response(HoldAnswer(False, None), SetBool.Response())
    assert release.message == 'released; last answered odometry stamp: none'
    reset = replies.reset_response(ResetAnswer(7), Trigger.Response())
    assert (reset.success, reset.message) == (
        True, 'solver warm start and plan cleared; theta revision: 7')


def test_successful_answers_without_numbers_are_accepted_as_they_are():
    # a controller that names no stamp or revision, the simulator's reset
    assert replies.decode_hold(SetBool.Response(success=True, message='released')) == \
        Accepted('released')
    text = 'reset to initial_state at sim time 3.0 s'
    assert replies.decode_reset(Trigger.Response(success=True, message=text)) == \
        Accepted(text)
    assert replies.decode_trigger(Trigger.Response(success=True, message=text)) == \
        Accepted(text)
    assert replies.decode_trigger(Trigger.Response(success=False, message='no')) == \
        Refused('no')
    assert replies.decode_reset(Trigger.Response(success=False, message='gone')) == \
        Refused('gone')


def test_parameter_set_results_decode_to_accepted_or_refused():
    assert replies.decode_set_parameters(SetParametersResult(successful=True)) == Accepted()
    refused = SetParametersResult(successful=False, reason='theta.p_Q must hold 12 values')
    assert replies.decode_set_parameters(refused) == Refused('theta.p_Q must hold 12 values')


@pytest.mark.parametrize('text, problem', [
    ('holding: odometry is kept, not answered; last answered odometry stamp: soon',
     'no readable stamp'),
    ('holding: odometry is kept, not answered; last answered odometry stamp: 12.3',
     'no readable stamp'),
    ('holding: odometry is kept, not answered; last answered odometry stamp: 12',
     'no readable stamp'),
    ('holding: odometry is kept, not answered; last answered odometry stamp: '
     '99999999999.000000000', 'out of range'),
    ('paused; last answered odometry stamp: 1.000000000', 'neither holding nor released'),
])
def test_a_malformed_hold_answer_is_an_error_that_quotes_it(text, problem):
    with pytest.raises(replies.ReplyError, match=problem) as caught:
        replies.decode_hold(SetBool.Response(success=True, message=text))
    assert repr(text) in str(caught.value)


@pytest.mark.parametrize('text', ['solver warm start and plan cleared; theta revision: ',
                                  'solver warm start and plan cleared; theta revision: -1',
                                  'solver warm start and plan cleared; theta revision: 2.0',
                                  'cleared; theta revision: 9007199254740993'])
def test_a_malformed_reset_answer_is_an_error_that_quotes_it(text):
    with pytest.raises(replies.ReplyError, match='no readable theta revision') as caught:
        replies.decode_reset(Trigger.Response(success=True, message=text))
    assert repr(text) in str(caught.value)
