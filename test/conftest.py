"""Session-wide test setup: an isolated ROS domain on loopback, and a test-side node.

Before any test runs, this process's environment gets ``ROS_AUTOMATIC_DISCOVERY_RANGE=
LOCALHOST``, its own ``ROS_DOMAIN_ID`` (``HYBRID_MPC_TEST_DOMAIN_ID`` overrides the
random pick) and ``FASTDDS_BUILTIN_TRANSPORTS=UDPv4``, so DDS traffic stays on loopback,
concurrent test runs do not mix, and no test inherits the shared-memory state a node
SIGKILLed by an earlier test left in ``/dev/shm``. Nodes started with
:func:`hybrid_mpc_ros.tools.processes.start_node` inherit all three.

Fixtures: ``rclpy_context`` (rclpy initialised once per session, on first use) and
``ros_node`` (a :class:`ProbeNode`: a test-side node with helpers that spin its own
executor until a condition holds or a timeout expires, so a broken node fails a test
instead of hanging it).
"""

import itertools
import os
import time

import pytest

from hybrid_mpc_ros.tools import processes

_NODE_COUNTER = itertools.count()


def pytest_configure(config):
    """Isolate this test session's ROS traffic before anything initialises rclpy."""
    domain = os.environ.get('HYBRID_MPC_TEST_DOMAIN_ID') or str(processes.free_domain_id())
    os.environ.update(processes.ros_env(int(domain), base={}))


class ProbeNode:
    """A test-side rclpy node with a private executor and waiting helpers."""

    def __init__(self, name):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        self.node = rclpy.create_node(name)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)

    def collect(self, msg_type, topic, qos=10):
        """Subscribe ``topic`` and return the list every received message is appended to."""
        received = []
        self.node.create_subscription(msg_type, topic, received.append, qos)
        return received

    def spin_until(self, predicate, timeout=5.0):
        """Spin until ``predicate()`` is true; return it (false after ``timeout`` s)."""
        deadline = time.monotonic() + timeout
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0.0:
                return predicate()
            self.executor.spin_once(timeout_sec=min(remaining, 0.05))
        return True

    def spin_for(self, seconds):
        """Spin for ``seconds`` of wall time."""
        self.spin_until(lambda: False, timeout=seconds)

    def call(self, srv_type, name, request, timeout=5.0):
        """Call service ``name`` and return the response; fails the test on timeout."""
        client = self.node.create_client(srv_type, name)
        try:
            if not self.spin_until(client.service_is_ready, timeout):
                pytest.fail(f'service {name} did not appear within {timeout} s')
            future = client.call_async(request)
            if not self.spin_until(future.done, timeout):
                pytest.fail(f'service {name} did not answer within {timeout} s')
            return future.result()
        finally:
            self.node.destroy_client(client)

    def wait_matched(self, subscription, node_name, timeout=60.0):
        """Wait until ``subscription`` and the writer of node ``node_name`` have matched.

        This side: the subscription counts a matched publisher. The writer's side: the node
        answers a ``get_parameters`` request of this participant's (asked again until it
        does). An answer delivered proves that the node discovered this participant's
        readers up to the service client's; DDS announces a participant's readers reliably
        and in order of creation, so the node has matched ``subscription``, created before,
        too. Fails the test on timeout.
        """
        from rcl_interfaces.srv import GetParameters
        deadline = time.monotonic() + timeout
        if not self.spin_until(lambda: subscription.get_publisher_count() > 0, timeout):
            pytest.fail(f'{subscription.topic_name} matched no publisher within {timeout} s')
        client = self.node.create_client(GetParameters, f'/{node_name}/get_parameters')
        try:
            while time.monotonic() < deadline:
                if not self.spin_until(client.service_is_ready, deadline - time.monotonic()):
                    break
                future = client.call_async(GetParameters.Request(names=['use_sim_time']))
                if self.spin_until(future.done, min(2.0, max(deadline - time.monotonic(),
                                                             0.0))):
                    return
                client.remove_pending_request(future)
            pytest.fail(f'/{node_name} did not answer get_parameters within {timeout} s')
        finally:
            self.node.destroy_client(client)

    def destroy(self):
        """Destroy the executor and the node."""
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()


@pytest.fixture(scope='session')
def rclpy_context():
    """Initialise rclpy once for the session (in the isolated domain)."""
    import rclpy
    rclpy.init()
    yield
    rclpy.try_shutdown()


@pytest.fixture
def ros_node(rclpy_context):
    """A fresh :class:`ProbeNode` for one test."""
    probe = ProbeNode(f'test_probe_{os.getpid()}_{next(_NODE_COUNTER)}')
    yield probe
    probe.destroy()
