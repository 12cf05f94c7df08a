"""A node whose callbacks raise on request: the test subject for ``run_node``'s error paths.

Run as ``python test/nodes/raising_node.py --ros-args -p fail_on_start:=<how>``. It
subscribes ``trigger`` (``std_msgs/String``): ``raise`` makes the callback raise a
``RuntimeError`` (an internal error in a callback); anything else is echoed on ``echo``,
so a test can tell that the node still works. ``fail_on_start`` makes building the node
fail: ``value`` raises a ``ValueError`` (as a bad parameter value does), ``bug`` a
``ZeroDivisionError``.
"""

import sys

from rclpy.node import Node
from std_msgs.msg import String

from hybrid_mpc_ros.ros.node_runtime import run_node

NODE_NAME = 'raising_node'
MAX_CALLBACK_ERRORS = 3


class RaisingNode(Node):
    """Echoes ``trigger`` on ``echo``; raises on ``raise``."""

    def __init__(self):
        super().__init__(NODE_NAME)
        how = self.declare_parameter('fail_on_start', '').value
        if how == 'value':
            raise ValueError('parameter fail_on_start: asked to fail with a bad value')
        if how == 'bug':
            print(1 / 0)
        self._echo = self.create_publisher(String, 'echo', 10)
        self.create_subscription(String, 'trigger', self._on_trigger, 10)

    def _on_trigger(self, msg):
        if msg.data == 'raise':
            raise RuntimeError('asked to raise from a callback')
        self._echo.publish(msg)


if __name__ == '__main__':
    sys.exit(run_node(RaisingNode, NODE_NAME, max_callback_errors=MAX_CALLBACK_ERRORS,
                      callback_error_window_s=60.0))
