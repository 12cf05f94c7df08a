"""The shared runtime of the package's nodes: the ``main()`` loop every node runs."""

from __future__ import annotations

import signal
import sys

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

from hybrid_mpc_ros.core.config import ConfigError


def descriptor(description: str, read_only: bool = False, float_range=None,
               int_range=None, constraints: str = '') -> ParameterDescriptor:
    """A ``ParameterDescriptor`` with a description and optional ranges."""
    descriptor = ParameterDescriptor(description=description, read_only=read_only,
                                     additional_constraints=constraints)
    if float_range is not None:
        descriptor.floating_point_range = [
            FloatingPointRange(from_value=float_range[0], to_value=float_range[1], step=0.0)]
    if int_range is not None:
        descriptor.integer_range = [
            IntegerRange(from_value=int_range[0], to_value=int_range[1], step=1)]
    return descriptor


def run_node(make_node, name: str, args: list[str] | None = None) -> int:
    """Run the node ``make_node()`` builds until SIGINT or SIGTERM; return an exit status.

    The node side of :meth:`NodeProcess.stop`, for every node's ``main()`` (call it from
    the main thread). rclpy's own signal handlers shut the context down from another
    thread while a callback may still be publishing, which under load ends in
    ``RCLError: publisher's context is invalid`` tracebacks; here a signal only sets a
    flag, the executor finishes its current callback (spinning with a 0.1 s timeout) and
    the node is destroyed before rclpy shuts down. A configuration error
    (:class:`ConfigError` or an rclpy parameter exception while building the node) is
    printed as one line prefixed with ``name`` and gives status 1; a clean stop gives 0.
    """
    import rclpy
    from rclpy.exceptions import ParameterException
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions

    stop_requested = []

    def request_stop(signum, frame):
        stop_requested.append(signum)

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    node = executor = None
    try:
        node = make_node()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        while not stop_requested and rclpy.ok():
            executor.spin_once(timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except (ConfigError, ParameterException) as exc:
        print(f'{name}: invalid configuration: {exc}', file=sys.stderr)
        return 1
    finally:
        if executor is not None:
            executor.shutdown(timeout_sec=1.0)
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
