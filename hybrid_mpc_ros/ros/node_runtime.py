"""What every node of the package shares: parameter descriptors and the ``main()`` loop.

Every node's ``main()`` is ``run_node(NodeClass, NODE_NAME, args)``. It sorts what can go
wrong into three outcomes, so a user sees at once whether to fix a parameter file or
report a bug:

* **invalid configuration** (exit status 1, one line on stderr,
  ``<node>: invalid configuration: <what>``): rcl cannot parse the command line or a
  parameter file, or building the node raised :class:`ConfigError`, any rclpy
  ``ParameterException`` (wrong type, out of range, refused by the node's on-set
  callback, read-only) or a ``ValueError``/``TypeError`` from a parameter value. Nodes
  read and check every parameter in their constructor, so these only happen there.
* **internal error while starting** (exit status 1, with the traceback): anything else
  raised while building the node. That is a bug, not a configuration problem.
* **internal error in a callback**: an exception escaping a subscription, timer or
  service callback while spinning. Callbacks handle what they expect themselves
  (malformed messages are rejected and counted, refused parameters get a reason), so an
  escaping exception is a bug. It is logged with its traceback and the node *keeps
  running*: a controller or a simulator must not drop out because one message hit an
  unforeseen case, and rclpy's executor is in a consistent state after a callback raised
  (the message was taken, the timer re-armed; only a service client gets no answer).
  Callbacks are written so that they compute first and change the node's state last,
  so a failed one leaves the node as it was. When errors keep coming, more than
  ``max_callback_errors`` within ``callback_error_window_s``, the node is not doing its
  job and staying up would hide it: it stops with exit status 1 (so ``ros2 launch``'s
  ``respawn`` or a supervisor can act).

SIGINT and SIGTERM stop the node cleanly with exit status 0. Nodes spin in rclpy's
``EventsExecutor`` (see :func:`make_executor`).

A node whose job ends (the tuner after its last iteration, or after giving up) sets its
attribute ``exit_status`` (0 or 1); ``run_node`` then stops it and returns that status.
Nodes that run until stopped need no such attribute.
"""

from __future__ import annotations

from collections import deque
import os
import signal
import sys
import threading
import time
import traceback

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

from hybrid_mpc_ros.core.config import ConfigError

EXECUTOR_VARIABLE = 'HYBRID_MPC_EXECUTOR'
MAX_CALLBACK_ERRORS = 10
CALLBACK_ERROR_WINDOW_S = 10.0


def descriptor(description: str, read_only: bool = False, float_range=None,
               int_range=None, constraints: str = '') -> ParameterDescriptor:
    """Build a ``ParameterDescriptor``: description, read-only flag, ranges, constraints.

    ``float_range`` / ``int_range`` are ``(low, high)`` pairs, both ends included; rclpy
    enforces them on scalar parameters (a NaN is refused too), never on arrays, which the
    node's on-set callback must check. ``constraints`` is the human-readable
    ``additional_constraints`` text ``ros2 param describe`` shows.
    """
    result = ParameterDescriptor(description=description, read_only=read_only,
                                 additional_constraints=constraints)
    if float_range is not None:
        low, high = (float(value) for value in float_range)
        result.floating_point_range = [FloatingPointRange(from_value=low, to_value=high,
                                                          step=0.0)]
    if int_range is not None:
        low, high = (int(value) for value in int_range)
        result.integer_range = [IntegerRange(from_value=low, to_value=high, step=1)]
    return result


def configuration_errors() -> tuple[type[BaseException], ...]:
    """Exception types that mean "invalid configuration" while a node is being built."""
    from rclpy.exceptions import ParameterException
    return (ConfigError, ParameterException, ValueError, TypeError)


class _CallbackErrors:
    """Times of the callback errors within the last ``window_s`` seconds (monotonic)."""

    def __init__(self, limit: int, window_s: float):
        self.limit = int(limit)
        self.window_s = float(window_s)
        self.total = 0
        self._times = deque()

    def record(self) -> bool:
        """Count one error now; whether more than ``limit`` fell within the window."""
        now = time.monotonic()
        self.total += 1
        self._times.append(now)
        while self._times and now - self._times[0] > self.window_s:
            self._times.popleft()
        return len(self._times) > self.limit


def run_node(make_node, name: str, args: list[str] | None = None,
             max_callback_errors: int = MAX_CALLBACK_ERRORS,
             callback_error_window_s: float = CALLBACK_ERROR_WINDOW_S) -> int:
    """Run the node ``make_node()`` builds until SIGINT or SIGTERM; return an exit status.

    0 after a clean stop, 1 after an invalid configuration, an internal error while
    starting, or more than ``max_callback_errors`` errors escaping callbacks within
    ``callback_error_window_s`` seconds (see the module docstring), or the node's own
    ``exit_status`` once it sets one (its job is done). Call it from the main
    thread: rclpy's own signal handlers would shut the context down from another thread
    while a callback may still be publishing, which under load ends in ``RCLError:
    publisher's context is invalid`` tracebacks. Here a signal only sets a flag, the
    executor finishes its current callback (spinning with a 0.1 s timeout) and the node is
    destroyed before rclpy shuts down.
    """
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from rclpy.impl.implementation_singleton import rclpy_implementation
    from rclpy.signals import SignalHandlerOptions

    stop_requested = []

    def request_stop(signum, frame):
        stop_requested.append(signum)

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    node = executor = None
    status = 0
    try:
        try:
            rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
        except rclpy_implementation.RCLError as exc:
            # rcl could not parse --ros-args or a parameter file
            print(f'{name}: invalid configuration: {exc}', file=sys.stderr)
            return 1
        try:
            node = make_node()
        except configuration_errors() as exc:
            print(f'{name}: invalid configuration: {exc}', file=sys.stderr)
            return 1
        except (KeyboardInterrupt, ExternalShutdownException):
            return 0
        except Exception:
            print(f'{name}: internal error while starting (a bug, please report it):\n'
                  f'{traceback.format_exc()}', file=sys.stderr)
            return 1
        executor = make_executor(SingleThreadedExecutor)
        executor.add_node(node)
        errors = _CallbackErrors(max_callback_errors, callback_error_window_s)
        while not stop_requested and rclpy.ok():
            finished = getattr(node, 'exit_status', None)
            if finished is not None:
                status = int(finished)
                break
            try:
                executor.spin_once(timeout_sec=0.1)
            except (KeyboardInterrupt, ExternalShutdownException):
                break
            except Exception:
                too_many = errors.record()
                _log_error(node, f'internal error in a callback ({errors.total} so far; '
                                 f'the node keeps running):\n{traceback.format_exc()}')
                if too_many:
                    print(f'{name}: internal error in a callback: more than '
                          f'{errors.limit} within {errors.window_s:g} s, stopping',
                          file=sys.stderr)
                    status = 1
                    break
    finally:
        if executor is not None:
            executor.shutdown(timeout_sec=1.0)
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return status


class DedicatedPath:
    """Callbacks a node must serve on time, in a thread and an executor of their own.

    A node's executor serves everything in arrival order: its parameter services,
    ``describe``/``list`` calls, QoS events of subscribers joining and leaving, its own
    services. Under such traffic from the ground (``ros2 topic echo``, ``ros2 param
    set`` and the like, each a new participant joining) the controller's odometry was
    served up to a few hundred milliseconds late with the EventsExecutor, and its
    steps failed safe on "stale" odometry that had arrived on time. A path holds the
    few callbacks that must not wait behind that traffic (the odometry subscription and
    the control timer): they belong to :attr:`node`, a second node of the same context
    (not in the ROS graph's parameter or logging services: no parameter services, no
    rosout, no global command-line arguments), spun by its own executor
    (:func:`make_executor`, so the same choice as the node's) in a daemon thread that
    :meth:`start` starts and :meth:`stop` joins.

    Give :attr:`node`'s entities fully resolved names (``owner.resolve_topic_name``):
    it does not see the command line's remappings, the owner does. The callbacks run in
    another thread than the owner's: share state with the owner under a lock. An
    exception escaping one is logged with its traceback on the owner's logger and the
    path keeps running; more than ``max_callback_errors`` within
    ``callback_error_window_s`` set the owner's ``exit_status`` to 1, so
    :func:`run_node` stops the node as it does for its own callbacks.
    """

    def __init__(self, owner, suffix: str, max_callback_errors: int = MAX_CALLBACK_ERRORS,
                 callback_error_window_s: float = CALLBACK_ERROR_WINDOW_S):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        self._owner = owner
        # a participant of its own: the owner's participant also does the discovery work of
        # every tool that joins to look at it (its parameter services, its publishers)
        self._context = rclpy.Context()
        rclpy.init(args=[], context=self._context, domain_id=owner.context.get_domain_id())
        context = self._context
        self.node = rclpy.create_node(
            f'{owner.get_name()}_{suffix}', namespace=owner.get_namespace(),
            context=context, use_global_arguments=False,
            start_parameter_services=False, enable_rosout=False)
        self._executor = make_executor(SingleThreadedExecutor, context=context)
        self._executor.add_node(self.node)
        self._errors = _CallbackErrors(max_callback_errors, callback_error_window_s)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, name=f'{suffix} path', daemon=True)

    def start(self) -> None:
        """Start serving the path's callbacks."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving (after the callback running now), destroy the path's node."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self._executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        self._context.try_shutdown()

    def _spin(self) -> None:
        from rclpy.executors import ExternalShutdownException
        while not self._stop.is_set() and self.node.context.ok():
            try:
                self._executor.spin_once(timeout_sec=0.1)
            except (KeyboardInterrupt, ExternalShutdownException):
                break
            except Exception:
                too_many = self._errors.record()
                _log_error(self._owner, f'internal error in a callback ({self._errors.total} '
                                        'so far; the node keeps running):\n'
                                        f'{traceback.format_exc()}')
                if too_many:
                    print(f'{self._owner.get_name()}: internal error in a callback: more '
                          f'than {self._errors.limit} within {self._errors.window_s:g} s, '
                          'stopping', file=sys.stderr)
                    self._owner.exit_status = 1
                    break


def make_executor(fallback, context=None):
    """Return the executor nodes spin in: rclpy's EventsExecutor, else ``fallback()``.

    rclpy's default ``SingleThreadedExecutor`` rebuilds a wait set in Python for every
    callback; in the lockstep loop (a simulator, a controller and a tuner exchanging a
    message each per step, three processes on two cores) that cost about a third of the
    nodes' CPU time. The ``EventsExecutor`` (``rclpy.experimental``, C++) dispatches from
    middleware events instead and passes every node test. ``HYBRID_MPC_EXECUTOR=single``
    selects the default executor (to compare, or should the experimental one misbehave);
    an rclpy without the EventsExecutor gets it too. ``context``: the executor's context
    (default: rclpy's default context).
    """
    if os.environ.get(EXECUTOR_VARIABLE, 'events') != 'single':
        try:
            from rclpy.experimental import EventsExecutor
        except ImportError:
            pass
        else:
            return EventsExecutor(context=context)
    return fallback(context=context)


def _log_error(node, message: str) -> None:
    try:
        node.get_logger().error(message)
    except Exception:   # the logger itself failed (context gone): stderr still works
        print(message, file=sys.stderr)
