"""The ``std_srvs`` answers of the controller's ``~/hold`` and ``~/reset``: a typed codec.

``std_srvs/SetBool`` and ``std_srvs/Trigger`` answer with a success flag and a text only,
so the controller writes the numbers a tuner needs at the end of that text, in a fixed
form (unchanged since the first release, so older tuners and controllers still
understand each other):

* ``~/hold``: ``'holding: odometry is kept, not answered; last answered odometry stamp:
  <sec>.<nanosec, 9 digits>'`` (``'released; ...'`` on release; ``none`` for the stamp
  when nothing was answered yet);
* ``~/reset``: ``'solver warm start and plan cleared; theta revision: <revision>'``.

:func:`hold_response` and :func:`reset_response` write the answers of
:class:`~hybrid_mpc_ros.core.control.controller_loop.ControllerLoop` into the response;
:func:`decode_hold`, :func:`decode_reset`, :func:`decode_trigger` and
:func:`decode_set_parameters` read a response back into a typed answer
(:mod:`hybrid_mpc_ros.core.control.answers`). A successful answer without the numbers (a
controller that does not name them, the simulator's reset) decodes to
:class:`~hybrid_mpc_ros.core.control.answers.Accepted`; one that names them in a form
this module cannot read raises :class:`ReplyError` with the whole text.
"""

from __future__ import annotations

from rcl_interfaces.msg import SetParametersResult
from std_srvs.srv import SetBool, Trigger

from hybrid_mpc_ros.core.control.answers import Accepted, HoldAnswer, Refused, ResetAnswer
from hybrid_mpc_ros.core.learning.samples import Stamp

ANSWERED_TAG = 'last answered odometry stamp: '
HOLDING_TEXT = 'holding: odometry is kept, not answered'
RELEASED_TEXT = 'released'
REVISION_TAG = 'theta revision: '
RESET_TEXT = 'solver warm start and plan cleared'


class ReplyError(ValueError):
    """A successful answer whose numbers cannot be read (the message names the text)."""


# -- encoding (the controller) ---------------------------------------------------------------
def hold_text(answer: HoldAnswer) -> str:
    """Return the text of an accepted ``~/hold``: what it did, then the answered stamp."""
    text = HOLDING_TEXT if answer.held else RELEASED_TEXT
    stamp = answer.answered
    value = 'none' if stamp is None else f'{stamp.sec}.{stamp.nanosec:09d}'
    return f'{text}; {ANSWERED_TAG}{value}'


def reset_text(answer: ResetAnswer) -> str:
    """Return the text of ``~/reset``'s answer, ending with the theta revision."""
    return f'{RESET_TEXT}; {REVISION_TAG}{answer.revision}'


def hold_response(answer: HoldAnswer | Refused,
                  response: SetBool.Response) -> SetBool.Response:
    """Fill ``response`` (of ``~/hold``) with ``answer`` and return it."""
    if isinstance(answer, Refused):
        response.success, response.message = False, answer.reason
    else:
        response.success, response.message = True, hold_text(answer)
    return response


def reset_response(answer: ResetAnswer, response: Trigger.Response) -> Trigger.Response:
    """Fill ``response`` (of ``~/reset``) with ``answer`` and return it."""
    response.success, response.message = True, reset_text(answer)
    return response


# -- decoding (the tuner) --------------------------------------------------------------------
def parse_hold(success: bool, message: str) -> HoldAnswer | Refused | Accepted:
    """Read a ``~/hold`` answer given as its success flag and text (see :func:`decode_hold`)."""
    if not success:
        return Refused(message)
    head, tag, value = message.rpartition(ANSWERED_TAG)
    if not tag:
        return Accepted(message)
    if head not in (f'{HOLDING_TEXT}; ', f'{RELEASED_TEXT}; '):
        raise ReplyError(f'the answer to ~/hold says neither holding nor released: '
                         f'{message!r}')
    held = head.startswith(HOLDING_TEXT)
    if value == 'none':
        return HoldAnswer(held, None)
    sec, dot, nanosec = value.partition('.')
    if not dot or not sec.lstrip('-').isdigit() or not nanosec.isdigit() or \
            len(nanosec) != 9:
        raise ReplyError(f'the answer to ~/hold names no readable stamp (<sec>.<9 digits> '
                         f'or none): {message!r}')
    try:
        return HoldAnswer(held, Stamp.of((int(sec), int(nanosec))))
    except ValueError as exc:
        raise ReplyError(f'the answer to ~/hold names a stamp out of range ({exc}): '
                         f'{message!r}') from None


def parse_reset(success: bool, message: str) -> ResetAnswer | Refused | Accepted:
    """Read a ``~/reset`` answer given as its success flag and text (see :func:`decode_reset`)."""
    if not success:
        return Refused(message)
    _, tag, value = message.rpartition(REVISION_TAG)
    if not tag:
        return Accepted(message)
    value = value.strip()
    try:
        if not value.isdigit():
            raise ValueError('not a non-negative integer')
        return ResetAnswer(int(value))
    except ValueError as exc:
        raise ReplyError(f'the answer to ~/reset names no readable theta revision ({exc}): '
                         f'{message!r}') from None


def decode_hold(response: SetBool.Response) -> HoldAnswer | Refused | Accepted:
    """Read the controller's ``~/hold`` answer.

    :class:`HoldAnswer` when it names the last answered stamp, :class:`Accepted` when it
    succeeded without naming it, :class:`Refused` (its text) when it failed. Raises
    :class:`ReplyError` when it names a stamp that cannot be read.
    """
    return parse_hold(response.success, response.message)


def decode_reset(response: Trigger.Response) -> ResetAnswer | Refused | Accepted:
    """Read the controller's ``~/reset`` answer.

    :class:`ResetAnswer` when it names the theta revision, :class:`Accepted` when it
    succeeded without naming it, :class:`Refused` (its text) when it failed. Raises
    :class:`ReplyError` when it names a revision that cannot be read.
    """
    return parse_reset(response.success, response.message)


def decode_trigger(response: Trigger.Response) -> Accepted | Refused:
    """Read any ``std_srvs/Trigger`` answer (the simulator's ``~/reset``)."""
    return Accepted(response.message) if response.success else Refused(response.message)


def decode_set_parameters(result: SetParametersResult) -> Accepted | Refused:
    """Read the result of a ``set_parameters_atomically`` call (the reason when refused)."""
    return Accepted(result.reason) if result.successful else Refused(result.reason)
