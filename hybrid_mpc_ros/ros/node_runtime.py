"""What every node of the package shares: parameter declaration and the ``main()`` loop.

Every node declares its parameters with :func:`declare_parameters`, from schema entries
(:class:`~hybrid_mpc_ros.core.param_schema.Spec`: ROS type, description with unit,
range): the scenario's keys (:func:`hybrid_mpc_ros.core.scenario.node_parameters`) and
the node's runtime settings alike.

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

Nodes on simulated time say when it jumps (:func:`log_time_jumps`): ``/clock`` going
back, or forward by more than :data:`TIME_JUMP_FORWARD_S` at once, is logged as a
warning with what the node does about it.
"""

from __future__ import annotations

from collections import deque
import os
import signal
import sys
import time
import traceback
from typing import Any, Collection, Mapping

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

from hybrid_mpc_ros.core.config import ConfigError
from hybrid_mpc_ros.core.param_schema import Spec

EXECUTOR_VARIABLE = 'HYBRID_MPC_EXECUTOR'
# a jump of simulated time forward by more than this is logged (a lockstep simulator's
# /clock advances one period per message; a held one does not advance at all)
TIME_JUMP_FORWARD_S = 1.0
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


def spec_descriptor(spec: Spec, read_only: bool = True) -> ParameterDescriptor:
    """Return the descriptor of a schema entry: its description, range and constraints."""
    bounds = spec.range()
    kind = {} if bounds is None else {
        'float_range' if spec.ros_type == 'DOUBLE' else 'int_range': bounds}
    return descriptor(spec.description, read_only=read_only, constraints=spec.constraints,
                      **kind)


def declare_parameters(node, specs: Mapping[str, Spec], defaults: Mapping[str, Any],
                       writable: Collection[str] = ()) -> dict[str, Any]:
    """Declare a parameter per entry of ``specs``; return their values by name.

    ``specs`` maps ROS names to schema entries, ``defaults`` names to default values.
    Parameters are read-only unless named in ``writable``. A name without a default (or
    with None) is optional: it is declared only when a parameter file or ``-p`` gives it,
    and its value here is None otherwise. Absent stays absent without a declared
    parameter that has no value, which rclpy's parameter services cannot answer for (a
    ``ros2 param dump`` of the node would come back empty). The descriptors of the
    optional parameters not given are kept in ``node.absent_parameters`` (name ->
    descriptor), for the documentation.
    """
    from rclpy.parameter import Parameter
    absent = getattr(node, 'absent_parameters', None)
    if absent is None:
        absent = node.absent_parameters = {}
    for name, spec in specs.items():
        described = spec_descriptor(spec, read_only=name not in writable)
        default = defaults.get(name)
        if default is None:
            # a writable probe finds out whether an override gives the name a value
            node.declare_parameter(name, Parameter.Type[spec.ros_type],
                                   spec_descriptor(spec, read_only=False))
            default = node.get_parameter_or(name).value
            node.undeclare_parameter(name)
            if default is None:
                described.type = Parameter.Type[spec.ros_type].value
                absent[name] = described
                continue
        node.declare_parameter(name, default, described)
    return {name: node.get_parameter_or(name).value for name in specs}


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
             callback_error_window_s: float = CALLBACK_ERROR_WINDOW_S,
             events: bool = True) -> int:
    """Run the node ``make_node()`` builds until SIGINT or SIGTERM; return an exit status.

    0 after a clean stop, 1 after an invalid configuration, an internal error while
    starting, or more than ``max_callback_errors`` errors escaping callbacks within
    ``callback_error_window_s`` seconds (see the module docstring), or the node's own
    ``exit_status`` once it sets one (its job is done). Call it from the main
    thread: rclpy's own signal handlers would shut the context down from another thread
    while a callback may still be publishing, which under load ends in ``RCLError:
    publisher's context is invalid`` tracebacks. Here a signal only sets a flag, the
    executor finishes its current callback (spinning with a 0.1 s timeout) and the node is
    destroyed before rclpy shuts down. ``events`` False: rclpy's single-threaded executor
    whatever :func:`make_executor` would choose (a node whose callbacks take the message
    info, which this rclpy's EventsExecutor cannot deliver).
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
        executor = make_executor(SingleThreadedExecutor) if events else SingleThreadedExecutor()
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


def log_time_jumps(node, consequence: str):
    """Log a warning when ``node``'s ROS clock jumps; return the handle (keep a reference).

    A jump is ``/clock`` (``use_sim_time``) going back, or forward by more than
    :data:`TIME_JUMP_FORWARD_S`; the first ``/clock`` message (from 0) is not one.
    ``consequence`` says what the node does about it, for the log line.
    """
    from rclpy.clock import JumpThreshold
    from rclpy.duration import Duration
    threshold = JumpThreshold(min_forward=Duration(seconds=TIME_JUMP_FORWARD_S),
                              min_backward=Duration(nanoseconds=-1), on_clock_change=False)
    clock = node.get_clock()

    def jumped(jump) -> None:
        delta_s = jump.delta.nanoseconds * 1e-9
        now_ns = clock.now().nanoseconds
        if now_ns - jump.delta.nanoseconds == 0:
            return                          # the first /clock message: time starts
        direction = 'back' if delta_s < 0 else 'forward'
        node.get_logger().warning(
            f'simulated time (/clock) jumped {direction} by {abs(delta_s):.3f} s to '
            f'{now_ns * 1e-9:.3f} s: {consequence}')
    return clock.create_jump_callback(threshold, post_callback=jumped)


def make_executor(fallback):
    """Return the executor nodes spin in: rclpy's EventsExecutor, else ``fallback()``.

    rclpy's default ``SingleThreadedExecutor`` rebuilds a wait set in Python for every
    callback; in the lockstep loop (a simulator, a controller and a tuner exchanging a
    message each per step, three processes on two cores) that cost about a third of the
    nodes' CPU time. The ``EventsExecutor`` (``rclpy.experimental``, C++) dispatches from
    middleware events instead and passes every node test. ``HYBRID_MPC_EXECUTOR=single``
    selects the default executor (to compare, or should the experimental one misbehave);
    an rclpy without the EventsExecutor gets it too.
    """
    if os.environ.get(EXECUTOR_VARIABLE, 'events') != 'single':
        try:
            from rclpy.experimental import EventsExecutor
        except ImportError:
            pass
        else:
            return EventsExecutor()
    return fallback()


def _log_error(node, message: str) -> None:
    try:
        node.get_logger().error(message)
    except Exception:   # the logger itself failed (context gone): stderr still works
        print(message, file=sys.stderr)
