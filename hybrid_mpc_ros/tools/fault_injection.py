"""Faults injected from outside into a running tuning graph (``bench faults`` and the tests).

The nodes are left as they are; faults come from where they come on a real system:

* :class:`SensitivityRelay` stands between the controller's ``~/sensitivity`` and the
  tuner (the tuner's subscription is remapped to :data:`RELAY_TOPIC`), as a lossy link
  would: it forwards every message, except at a chosen step of chosen episodes, where it
  drops the message, sends it twice, swaps it with the next one, rewrites its theta
  revision to the previous one (stale) or cuts its data (a corrupted layout). Episodes
  are counted from the samples themselves: an episode starts at the first sample of a
  new revision (above 0: theta was set) that carries the reset state x0. A
  ``hook(episode, step)`` called after every forwarded step of an episode lets a caller
  act at an exact point (kill a process mid-episode).
* :func:`bad_odometry` builds the odometry the controller must refuse: NaN and Inf
  fields, a zero and a non-unit quaternion, a stamp older than the newest.
* :class:`CommandWatch` counts every command on ``rotor_speeds_cmd`` that is not finite or
  not within the rotor bounds.
* :func:`iteration_rows` counts the iterations a run's CSV lost or repeated.
"""

from __future__ import annotations

import csv
from dataclasses import replace
import math
import os

import numpy as np

from hybrid_mpc_ros.core.learning.live_session import measured_state
from hybrid_mpc_ros.core.learning.samples import NANOS_PER_SECOND

RELAY_TOPIC = '/fault_relay/sensitivity'
SOURCE_TOPIC = '/mpc_controller/sensitivity'
STREAM_FAULTS = ('drop', 'duplicate', 'reorder', 'stale_revision', 'corrupt')
# the tuner's episode rejection each stream fault causes (a corrupted message is ignored,
# so the next step arrives after a gap; a swapped pair starts with a gap too)
EXPECTED_REJECTION = {'drop': 'missing_step', 'duplicate': 'repeated_step',
                      'reorder': 'missing_step', 'stale_revision': 'wrong_revision',
                      'corrupt': 'missing_step'}
ODOMETRY_FAULTS = ('nan', 'inf', 'zero_quaternion', 'non_unit_quaternion', 'older_stamp')


def stream_qos():
    """Return the relayed stream's QoS: as deep and reliable as the tuner's subscription."""
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    return QoSProfile(depth=2000, reliability=ReliabilityPolicy.RELIABLE)


class SensitivityRelay:
    """Forwards ``source`` to ``target`` on ``node``, injecting ``faults`` on the way.

    ``faults`` maps an episode number (1, 2, ... in the order episodes start) to one of
    :data:`STREAM_FAULTS`, applied to that episode's step ``at_step`` (1-based). ``x0``
    (12,) is the scenario's initial state. ``injected`` lists ``(episode, fault)`` as they
    happen; ``hook(episode, step)`` runs after each forwarded step of an episode. While
    :attr:`paused` nothing is forwarded (the messages are lost).
    """

    def __init__(self, node, x0, faults=None, at_step: int = 8, source: str = SOURCE_TOPIC,
                 target: str = RELAY_TOPIC, hook=None):
        from std_msgs.msg import Float64MultiArray
        from hybrid_mpc_ros.ros.sensitivity_msg import SensitivityEncoder
        self.faults = dict(faults or {})
        self.at_step = int(at_step)
        self.hook = hook
        self.paused = False
        self.injected: list[tuple[int, str]] = []
        self.episode = 0
        self.step = 0
        self.forwarded = 0
        self._x0 = measured_state(np.asarray(x0, dtype=float))
        self._revision = None
        self._in_episode = False
        self._held_back = None
        self._encoder = SensitivityEncoder()
        self._pub = node.create_publisher(Float64MultiArray, target, stream_qos())
        node.create_subscription(Float64MultiArray, source, self._on_message, stream_qos())

    def _send(self, msg) -> None:
        self._pub.publish(msg)
        self.forwarded += 1

    def _on_message(self, msg) -> None:
        from std_msgs.msg import Float64MultiArray
        from hybrid_mpc_ros.ros.sensitivity_msg import parse_sensitivity_message
        if self.paused:
            return
        sample = parse_sensitivity_message(msg)
        if sample.revision != self._revision:
            self._revision = sample.revision
            self._in_episode = False
        # revision 0 is a controller's start (theta never set): no tuner's episode
        if not self._in_episode and sample.revision > 0 and np.array_equal(sample.x,
                                                                           self._x0):
            self._in_episode = True
            self.episode += 1
            self.step = 0
        if not self._in_episode:
            self._send(msg)
            return
        self.step += 1
        fault = self.faults.get(self.episode) if self.step == self.at_step else None
        if fault is not None:
            self.injected.append((self.episode, fault))
        if fault == 'drop':
            pass
        elif fault == 'duplicate':
            self._send(msg)
            self._send(msg)
        elif fault == 'reorder':
            self._held_back = msg
        elif fault == 'stale_revision':
            self._send(self._encoder.encode_sample(replace(sample,
                                                           revision=sample.revision - 1)))
        elif fault == 'corrupt':
            cut = Float64MultiArray(layout=msg.layout, data=list(msg.data)[:-7])
            self._send(cut)
        elif fault is not None:
            raise ValueError(f'unknown stream fault {fault!r}; one of {STREAM_FAULTS}')
        else:
            self._send(msg)
            if self._held_back is not None:
                self._send(self._held_back)
                self._held_back = None
        if self.hook is not None:
            self.hook(self.episode, self.step)


def bad_odometry(x, newest_stamp_ns: int) -> list[tuple[str, object]]:
    """``(fault, nav_msgs/Odometry)`` for each of :data:`ODOMETRY_FAULTS`, near state x (12,).

    The faulty fields are made on a copy of x's odometry stamped one period after
    ``newest_stamp_ns`` (so only the fault makes it invalid); ``older_stamp`` is x's
    valid odometry one second before ``newest_stamp_ns``.
    """
    from hybrid_mpc_ros.ros.msgs import state_to_odometry
    from builtin_interfaces.msg import Time

    def stamp(ns):
        sec, nanosec = divmod(int(ns), NANOS_PER_SECOND)
        return Time(sec=sec, nanosec=nanosec)

    def make(ns, edit=None):
        msg = state_to_odometry(np.asarray(x, dtype=float), stamp(ns), 'odom', 'base_link')
        if edit is not None:
            edit(msg)
        return msg

    def nan(msg):
        msg.pose.pose.position.x = math.nan

    def inf(msg):
        msg.twist.twist.linear.y = math.inf

    def zero(msg):
        q = msg.pose.pose.orientation
        q.x = q.y = q.z = q.w = 0.0

    def long(msg):
        q = msg.pose.pose.orientation
        q.x, q.y, q.z, q.w = q.x * 2.0, q.y * 2.0, q.z * 2.0, q.w * 2.0

    later = newest_stamp_ns + NANOS_PER_SECOND // 10
    return [('nan', make(later, nan)), ('inf', make(later, inf)),
            ('zero_quaternion', make(later, zero)), ('non_unit_quaternion', make(later, long)),
            ('older_stamp', make(max(newest_stamp_ns - NANOS_PER_SECOND, 0)))]


class CommandWatch:
    """Counts the commands on ``topic`` and those not finite or outside [u_min, u_max]."""

    def __init__(self, node, u_min: float, u_max: float, topic: str = 'rotor_speeds_cmd'):
        from std_msgs.msg import Float64MultiArray
        self.u_min, self.u_max = float(u_min), float(u_max)
        self.count = 0
        self.bad: list[list[float]] = []
        node.create_subscription(Float64MultiArray, topic, self._on_command, stream_qos())

    def _on_command(self, msg) -> None:
        self.count += 1
        u = np.asarray(msg.data, dtype=float)
        if u.shape != (4,) or not np.all(np.isfinite(u)) or u.min() < self.u_min or \
                u.max() > self.u_max:
            self.bad.append(u.tolist())


def iteration_rows(path: str, iterations: int) -> dict:
    """Count what the CSV ``path`` lost or repeated of iterations 1..``iterations``.

    Returns ``{'rows', 'lost', 'duplicated'}``: rows read, iterations missing, rows
    repeating an iteration already seen (a missing file loses every iteration).
    """
    if not os.path.exists(path):
        return {'rows': 0, 'lost': iterations, 'duplicated': 0}
    with open(path, newline='') as stream:
        numbers = [int(row['iteration']) for row in csv.DictReader(stream)]
    seen = set(numbers)
    return {'rows': len(numbers),
            'lost': sum(1 for k in range(1, iterations + 1) if k not in seen),
            'duplicated': len(numbers) - len(seen)}
