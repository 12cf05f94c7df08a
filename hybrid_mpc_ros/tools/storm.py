"""Ground traffic around a running controller: what ``ros2`` command-line tools do to it.

An operator looks at a flying controller with ``ros2 topic echo --once``, reads and sets
its parameters with ``ros2 param get/set`` and calls its services. Every such command is a
new process, so a new DDS participant joins the graph, makes its endpoints, does its one
thing and leaves. :func:`run` does the same from one process, one role per process, each
action in a fresh rclpy context (a new participant), a few actions per second:

* ``echo``: subscribe to ``<node>/sensitivity``, ``rotor_speeds_cmd`` and
  ``/diagnostics`` in turn (reliable, depth 10, as ``ros2 topic echo`` matches a
  reliable publisher), take one message (or give up after ``timeout_s``, 5 s) and leave.
* ``params``: ``ros2 param get`` then ``ros2 param set`` of ``theta.p_R`` in turn,
  through the node's parameter services; the value set is the one read first (valid,
  so it is accepted: each set is a new theta revision of the same theta).
* ``services``: ``ros2 param list``, ``ros2 param describe theta.p_R`` and a
  ``~/hold`` release (``ros2 service call <node>/hold std_srvs/srv/SetBool
  "{data: false}"``: harmless whatever the trigger) in turn.

``hybrid-mpc bench controller --storm`` starts one process per role
(``python -m hybrid_mpc_ros.tools.storm ROLE --node /mpc_controller``) beside a
realtime simulator and the controller; tests do the same. A role runs until SIGINT or
SIGTERM (or ``--seconds``) and then prints one JSON line of counts on stdout: actions
begun and completed (a completed echo got its message, a completed call its answer).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import sys
import time

ROLES = ('echo', 'params', 'services')
THETA_NAME = 'theta.p_R'


def _in_fresh_participant(domain_id: int, action, timeout_s: float) -> bool:
    """Run ``action(node, executor, deadline)`` in a new context (a new participant).

    Returns what ``action`` returns (whether it completed); the context is shut down
    whatever happened, as a ``ros2`` command's process ends.
    """
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from hybrid_mpc_ros.ros.context import local_context
    context = local_context(domain_id)
    node = executor = None
    try:
        node = rclpy.create_node(f'storm_{int(time.monotonic_ns()) % 1_000_000_000}',
                                 context=context, start_parameter_services=False)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        return bool(action(node, executor, time.monotonic() + timeout_s))
    finally:
        if executor is not None:
            executor.shutdown(timeout_sec=1.0)
        if node is not None:
            node.destroy_node()
        context.try_shutdown()


def _spin_until(executor, done, deadline: float) -> bool:
    while not done():
        if time.monotonic() > deadline:
            return False
        executor.spin_once(timeout_sec=0.05)
    return True


def _echo_once(topic: str, message_type):
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    def action(node, executor, deadline):
        received = []
        node.create_subscription(message_type, topic, received.append,
                                 QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
        return _spin_until(executor, lambda: received, deadline)
    return action


def _call(node, executor, client, request, deadline):
    if not client.wait_for_service(timeout_sec=max(0.0, deadline - time.monotonic())):
        return None
    future = client.call_async(request)
    _spin_until(executor, future.done, deadline)
    return future.result() if future.done() else None


def _param_get(node_name: str, store: dict):
    from rcl_interfaces.srv import GetParameters

    def action(node, executor, deadline):
        client = node.create_client(GetParameters, f'{node_name}/get_parameters')
        answer = _call(node, executor, client, GetParameters.Request(names=[THETA_NAME]),
                       deadline)
        if answer is None or not answer.values:
            return False
        store['value'] = list(answer.values[0].double_array_value)
        return True
    return action


def _param_set(node_name: str, store: dict):
    from rcl_interfaces.srv import SetParameters
    from rclpy.parameter import Parameter

    def action(node, executor, deadline):
        if 'value' not in store:
            return False
        client = node.create_client(SetParameters, f'{node_name}/set_parameters')
        parameter = Parameter(THETA_NAME, Parameter.Type.DOUBLE_ARRAY, store['value'])
        answer = _call(node, executor, client,
                       SetParameters.Request(parameters=[parameter.to_parameter_msg()]),
                       deadline)
        return answer is not None and all(result.successful for result in answer.results)
    return action


def _service(node_name: str, kind: str):
    from rcl_interfaces.srv import DescribeParameters, ListParameters
    from std_srvs.srv import SetBool
    service, request = {
        'list': (ListParameters, lambda: ListParameters.Request()),
        'describe': (DescribeParameters, lambda: DescribeParameters.Request(
            names=[THETA_NAME])),
        'hold': (SetBool, lambda: SetBool.Request(data=False)),
    }[kind]
    name = {'list': 'list_parameters', 'describe': 'describe_parameters',
            'hold': 'hold'}[kind]

    def action(node, executor, deadline):
        client = node.create_client(service, f'{node_name}/{name}')
        return _call(node, executor, client, request(), deadline) is not None
    return action


def actions(role: str, node_name: str):
    """Return the endless cycle of ``(label, action)`` pairs of ``role`` on ``node_name``."""
    if role == 'echo':
        from diagnostic_msgs.msg import DiagnosticArray
        from std_msgs.msg import Float64MultiArray
        return itertools.cycle([
            ('echo sensitivity', _echo_once(f'{node_name}/sensitivity', Float64MultiArray)),
            ('echo rotor_speeds_cmd', _echo_once('rotor_speeds_cmd', Float64MultiArray)),
            ('echo diagnostics', _echo_once('/diagnostics', DiagnosticArray))])
    if role == 'params':
        store: dict = {}
        return itertools.cycle([('param get', _param_get(node_name, store)),
                                ('param set', _param_set(node_name, store))])
    if role == 'services':
        return itertools.cycle([(f'service {kind}', _service(node_name, kind))
                                for kind in ('list', 'describe', 'hold')])
    raise ValueError(f'role must be one of {ROLES}, got {role!r}')


def run(role: str, node_name: str, domain_id: int, interval_s: float = 0.3,
        timeout_s: float = 5.0, seconds: float = 0.0) -> dict:
    """Run ``role``'s actions one after another, ``interval_s`` apart, until stopped.

    Stops on SIGINT/SIGTERM, or after ``seconds`` (0: never). Returns the counts:
    ``{label: [begun, completed]}`` and ``role``.
    """
    stop = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: stop.append(signum))
    counts: dict = {}
    end = time.monotonic() + seconds if seconds > 0 else None
    for label, action in actions(role, node_name):
        if stop or (end is not None and time.monotonic() > end):
            break
        begun_completed = counts.setdefault(label, [0, 0])
        begun_completed[0] += 1
        try:
            begun_completed[1] += _in_fresh_participant(domain_id, action, timeout_s)
        except Exception as exc:    # noqa: BLE001  a storm reports, it never stops on a miss
            print(f'storm {role}: {label}: {exc!r}', file=sys.stderr, flush=True)
        time.sleep(interval_s)
    return {'role': role, 'counts': counts}


def start(domain_id: int, log_dir: str, node_name: str = '/mpc_controller',
          roles=ROLES, interval_s: float = 0.3) -> list:
    """Start one storm process per role on ``domain_id``; logs ``<log_dir>/storm_<role>.log``.

    Returns their :class:`~hybrid_mpc_ros.tools.processes.NodeProcess` list; stop them
    with :func:`stop`.
    """
    from hybrid_mpc_ros.tools import processes
    env = processes.ros_env(domain_id)
    return [processes.NodeProcess(
        [sys.executable, '-m', __name__ if __name__ != '__main__' else
         'hybrid_mpc_ros.tools.storm', role, '--node', node_name, '--domain', str(domain_id),
         '--interval', str(interval_s)],
        env=env, log_path=os.path.join(log_dir, f'storm_{role}.log')) for role in roles]


def stop(storm: list) -> dict:
    """Stop the storm processes; return ``{label: [begun, completed]}`` over all roles."""
    counts: dict = {}
    for process in storm:
        process.stop(timeout=10.0)
        for line in reversed(process.log_text().splitlines()):
            if line.startswith('{'):
                counts.update(json.loads(line)['counts'])
                break
    return counts


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m hybrid_mpc_ros.tools.storm ROLE --node N --domain D``."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('role', choices=ROLES)
    parser.add_argument('--node', default='/mpc_controller',
                        help='fully qualified name of the node (default: %(default)s)')
    parser.add_argument('--domain', type=int, required=True, help='ROS domain id')
    parser.add_argument('--interval', type=float, default=0.3,
                        help='pause between two actions [s] (default: %(default)s)')
    parser.add_argument('--seconds', type=float, default=0.0,
                        help='stop after this long (default: run until SIGINT/SIGTERM)')
    args = parser.parse_args(argv)
    print('storm: ready', file=sys.stderr, flush=True)
    result = run(args.role, args.node, args.domain, args.interval, seconds=args.seconds)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
