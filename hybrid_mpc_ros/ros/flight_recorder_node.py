"""ROS 2 node ``flight_recorder``: odometry and rotor commands to an MCAP recording.

Subscribes ``odom`` (``nav_msgs/Odometry``) and ``rotor_speeds_cmd``
(``std_msgs/Float64MultiArray``), relative names so the node can be namespaced and
remapped like the controller, and writes both, as they arrive and still serialised (CDR),
to a rosbag2 MCAP directory (:class:`~hybrid_mpc_ros.core.model.flight_log.FlightWriter`):
what ``ros2 bag record -s mcap`` would write for these two topics, so ``hybrid-mpc
identify --from`` reads either.

A message's log time is when its publisher sent it (the middleware's source timestamp,
the publishing machine's wall clock; the recorder's wall clock when the middleware gives
none), even with ``use_sim_time``:
:func:`~hybrid_mpc_ros.core.model.flight_log.segments` attributes a command to the
odometry logged before it, so the log times must order the two topics as they were sent
(the recorder's own callback times do not when it runs short of CPU, and a lockstep
simulator's ``/clock`` can reach the recorder after the odometry it stamps). The
odometry's own stamp (simulated or vehicle time) is in its header. (``ros2 bag record``
logs the receive time; its recordings are read the same way.)

Parameters (read-only): ``output`` (the new directory; default ``flight_<date>_<time>``
in the working directory), ``duration_s`` (stop after that many wall seconds; 0: until
SIGINT/SIGTERM), ``odometry_topic`` and ``command_topic`` (the topics, default ``odom``
and ``rotor_speeds_cmd``). The recording is complete once the node has stopped.
"""

from __future__ import annotations

import sys
import time

from nav_msgs.msg import Odometry
from rclpy.clock import Clock, ClockType
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_msgs.msg import Float64MultiArray

from hybrid_mpc_ros.core.model.flight_log import FlightWriter
from hybrid_mpc_ros.core.param_schema import floating, text
from hybrid_mpc_ros.ros.node_runtime import declare_parameters, run_node

NODE_NAME = 'flight_recorder'
# a recorder must not drop what the controller sends at ~1 kHz in lockstep
QOS = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
PARAMETERS = {
    'output': text(description='the recording: a new directory (rosbag2, MCAP)'),
    'duration_s': floating(0.0, description=(
        'stop after this many wall seconds [s]; 0: until SIGINT or SIGTERM')),
    'odometry_topic': text(description='odometry topic (nav_msgs/Odometry)'),
    'command_topic': text(description=(
        'rotor command topic (std_msgs/Float64MultiArray, 4 rotor speeds [rad/s])')),
}


class FlightRecorderNode(Node):
    """Writes the odometry and command topics to an MCAP recording until stopped."""

    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        defaults = {'output': time.strftime('flight_%Y%m%d_%H%M%S'), 'duration_s': 0.0,
                    'odometry_topic': 'odom', 'command_topic': 'rotor_speeds_cmd'}
        values = declare_parameters(self, PARAMETERS, defaults)
        odometry = self.create_subscription(
            Odometry, values['odometry_topic'], self._on_odometry, QOS, raw=True,
            event_callbacks=self._matched(values['odometry_topic']))
        command = self.create_subscription(
            Float64MultiArray, values['command_topic'], self._on_command, QOS, raw=True,
            event_callbacks=self._matched(values['command_topic']))
        self._writer = FlightWriter(values['output'], odometry.topic_name, command.topic_name)
        self._odometry_topic, self._command_topic = odometry.topic_name, command.topic_name
        self.output = values['output']
        self.exit_status = None
        if values['duration_s'] > 0.0:
            steady = Clock(clock_type=ClockType.STEADY_TIME)
            self._stop_timer = self.create_timer(values['duration_s'], self._finish,
                                                 clock=steady)
        self.get_logger().info(f'recording {odometry.topic_name} and {command.topic_name} to '
                               f'{self.output}')

    def _matched(self, topic: str) -> SubscriptionEventCallbacks:
        # says when a publisher is heard: what comes before is not in the recording
        def log(info) -> None:
            self.get_logger().info(f'{topic}: {info.current_count} publisher(s) matched')
        return SubscriptionEventCallbacks(matched=log)

    def _on_odometry(self, data: bytes, info) -> None:
        self._writer.write_odometry_cdr(sent_ns(info), data)
        self._first('odometry', self._odometry_topic)

    def _on_command(self, data: bytes, info) -> None:
        self._writer.write_command_cdr(sent_ns(info), data)
        self._first('commands', self._command_topic)

    def _first(self, kind: str, topic: str) -> None:
        # a publisher matched is not data arriving: say when the first message did
        if self._writer.counts[kind] == 1:
            self.get_logger().info(f'{topic}: first message recorded')

    def _finish(self) -> None:
        self.exit_status = 0

    def destroy_node(self) -> None:
        """Close the recording (it is complete from here), then destroy the node."""
        counts = dict(self._writer.counts)
        self._writer.close()
        self.get_logger().info(f'wrote {self.output}: {counts["odometry"]} odometry, '
                               f'{counts["commands"]} commands')
        super().destroy_node()


def sent_ns(info) -> int:
    """Return when a message was sent [ns]: its source timestamp, else now (the recorder's clock).

    The publisher's send time orders the two topics as they were sent, whatever the
    recorder's lag: a recorder short of CPU takes the odometry and command queues in
    turns, so its own callback times can put a command several steps away from the
    odometry it answered (seen in lockstep beside a CPU hog: 3 commands of 1170 steps).
    """
    stamp = info.get('source_timestamp', 0) if info else 0
    return int(stamp) if stamp > 0 else time.time_ns()


def main(args=None) -> int:
    """Run the node until SIGINT/SIGTERM or its duration (console script)."""
    # the single-threaded executor: this rclpy's EventsExecutor cannot pass message info
    return run_node(FlightRecorderNode, NODE_NAME, args, events=False)


if __name__ == '__main__':
    sys.exit(main())
