"""Live tuning through a running controller: the tuner node's episode protocol (ROS-free).

:class:`LiveSession` is a state machine between a :class:`~hybrid_mpc_ros.core.learning.
tuning.Tuner` (ask/tell) and a running controller and vehicle (or simulator). It is fed
events and returns actions; it never waits, sleeps or touches ROS, so the node that runs it
stays a thin translator and the protocol is tested deterministically without ROS.

Events (methods; each returns a list of actions):

* :meth:`~LiveSession.start`: services are there, begin;
* :meth:`~LiveSession.sample`: one :class:`SensitivitySample` from the controller's
  ``~/sensitivity``;
* :meth:`~LiveSession.odometry`: one odometry message as ``(stamp, x)``, ``x`` (12,) the
  state as the controller decodes it;
* :meth:`~LiveSession.result`: the outcome of an action's call (``call`` id and a typed
  answer of :mod:`~hybrid_mpc_ros.core.control.answers`), for :class:`SetParameters` and
  :class:`CallService`;
* :meth:`~LiveSession.unavailable`: an action's call was not made, its service is missing;
* :meth:`~LiveSession.tick`: time passes (checks the timeouts; call it a few times a
  second).

Actions: :class:`SetParameters` (one ``set_parameters_atomically`` call on the
controller), :class:`CallService` (the controller's ``~/hold`` and ``~/reset``, the
simulator's ``~/reset``), :class:`Log`, :class:`EpisodeDone`, :class:`IterationDone`, and
at the end :class:`Finished` or :class:`Failed`.

**Envelope aborts.** Every theta the session sets on the controller goes with the tuner's
best theta as the controller's safe theta (``safe_theta.*``, in the same atomic set), so
an abort flies the best theta found so far. A sample of the episode's revision with the status
:data:`~hybrid_mpc_ros.core.learning.samples.ENVELOPE_ABORT_STATUS` says that the
controller's state left its envelope at that step and that it flies the safe theta from
there (:mod:`~hybrid_mpc_ros.core.mpc.safe_control`). The episode ends at that state: the
record is aborted (the steps flown, x[t] the sample's state), the tuner counts it as a
failed episode and rolls back to its best theta (:class:`Tuner`), and the session goes on
with the next episode as after any other (holding the controller first where it can).

**Robustness.** A step the :class:`EpisodeBuilder` refuses (missing, repeated or
reordered step, wrong revision, non-finite values), a wrong start, a service call
without an answer within ``service_timeout_s``, a refused call or parameter set, or an
expected message missing for ``message_timeout_s`` discards the attempt and reruns the
episode from step 1; each is logged and counted (:attr:`LiveSession.retries`,
:attr:`LiveSession.rejections`). More than ``max_episode_retries`` reruns of one episode
in a row fail the session with the last reason. Answers to calls that were given up are
recognised by their call id and ignored.

Reruns caused by a call (refused, unanswered, its service missing: the node reports it
with :meth:`~LiveSession.unavailable` instead of sending a request nobody receives, or a
restarted controller) start after a backoff of :data:`BACKOFF_FIRST_S` doubling up to
:data:`BACKOFF_MAX_S`, so a node being restarted has time to come back. The controller
names its revision when it is reset right before an episode
(:class:`~hybrid_mpc_ros.core.control.answers.ResetAnswer`): the episode then takes
exactly the samples of that revision, whatever stale or duplicated messages arrive; a
revision at or below one named before means the controller process was restarted (with
its default theta and x_ref), and the episode is rerun with both pushed again.

The modules, in reading order:

* :mod:`.settings`: :class:`SessionSettings` and the :class:`Phase` a session is in;
* :mod:`.actions`: the actions and the calls a session makes;
* :mod:`.attempt`: :class:`~.attempt.Attempt`, the state of one try at an episode;
* :mod:`.starts`: how an attempt begins, by a reset (with or without holding the
  controller) or by flying back to x0;
* :mod:`.session`: :class:`LiveSession`: startup, collecting, envelope aborts, reruns,
  the end;
* :mod:`.bookkeeping`: the calls in flight and the messages seen.
"""

from hybrid_mpc_ros.core.learning.live_session.actions import (CALLS, CallService,
                                                               EPISODE_FIELDS, EpisodeDone,
                                                               Failed, Finished,
                                                               IterationDone, Log, SERVICES,
                                                               SetParameters)
from hybrid_mpc_ros.core.learning.live_session.attempt import Attempt
from hybrid_mpc_ros.core.learning.live_session.bookkeeping import ODOMETRY_KEPT
from hybrid_mpc_ros.core.learning.live_session.session import (BACKOFF_FIRST_S,
                                                               BACKOFF_KINDS, BACKOFF_MAX_S,
                                                               LiveSession)
from hybrid_mpc_ros.core.learning.live_session.settings import (HOLD_MODES, Phase,
                                                                SessionSettings, START_MODES)
from hybrid_mpc_ros.core.learning.live_session.starts import (FlyToStart, measured_state,
                                                              ResetStart, ResetWithHoldStart,
                                                              StartProcedure)

__all__ = [
    'Attempt', 'BACKOFF_FIRST_S', 'BACKOFF_KINDS', 'BACKOFF_MAX_S', 'CALLS', 'CallService',
    'EPISODE_FIELDS', 'EpisodeDone', 'Failed', 'Finished', 'FlyToStart', 'HOLD_MODES',
    'IterationDone', 'LiveSession', 'Log', 'ODOMETRY_KEPT', 'Phase', 'ResetStart',
    'ResetWithHoldStart', 'SERVICES', 'SessionSettings', 'SetParameters', 'START_MODES',
    'StartProcedure', 'measured_state',
]
