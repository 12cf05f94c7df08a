"""Records the controller's steps into a file: the observer on the vehicle's side of a link.

Run as ``python test/nodes/stream_recorder.py <file>``. For every message on
``/mpc_controller/sensitivity`` it appends one line: the wall time of arrival
(``time.time()``), the theta revision, the solver status and the 4 rotor speeds, flushed
at once, so a test outside the network namespace can read what the controller did while
the link to the tuner was down. Stops on SIGINT/SIGTERM.
"""

import signal
import sys
import time

import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_msgs.msg import Float64MultiArray

from hybrid_mpc_ros.ros.sensitivity_msg import parse_sensitivity_message


def main(path: str) -> int:
    """Record until a signal; return 0."""
    stop = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.append(1))
    rclpy.init(signal_handler_options=rclpy.signals.SignalHandlerOptions.NO)
    node = rclpy.create_node('stream_recorder')
    with open(path, 'w') as out:
        def record(msg):
            sample = parse_sensitivity_message(msg)
            values = [time.time(), sample.revision, sample.status, *sample.u]
            out.write(' '.join(repr(float(v)) for v in values) + '\n')
            out.flush()
        node.create_subscription(Float64MultiArray, '/mpc_controller/sensitivity', record,
                                 QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
        while not stop:
            rclpy.spin_once(node, timeout_sec=0.1)
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1]))
