"""Starting and stopping the package's nodes as separate processes (tests and the CLI).

Each node runs as ``python -m hybrid_mpc_ros.<module> --ros-args ...``, exactly what
``ros2 run`` would start, with its output in a log file. Every environment made here keeps
DDS discovery on the loopback interface (``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST``),
carries DDS traffic over UDP only (see :func:`ros_env`), and can pin a ``ROS_DOMAIN_ID`` so
concurrent runs on one machine do not see each other.
"""

from __future__ import annotations

import atexit
import ctypes
import math
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import weakref

from hybrid_mpc_ros.core.config import flatten

PACKAGE = 'hybrid_mpc_ros'
_LIVE = weakref.WeakSet()


FASTDDS_TRANSPORTS = 'FASTDDS_BUILTIN_TRANSPORTS'


def ros_env(domain_id: int | None = None, base: dict | None = None) -> dict:
    """Return a copy of ``base`` (default ``os.environ``) set up for a local-only ROS process.

    Sets ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST``, ``PYTHONUNBUFFERED=1`` and, when
    ``domain_id`` is given, ``ROS_DOMAIN_ID``; ``FASTDDS_BUILTIN_TRANSPORTS=UDPv4`` unless
    ``base`` names a transport already (``DEFAULT`` brings shared memory back). Fast DDS's
    shared-memory transport keeps its ports and segments in ``/dev/shm`` across processes;
    a process SIGKILLed mid-write (which the tests and ``bench faults`` do on purpose, and
    a crash does) can leave them in a state a later participant of the same port inherits.
    UDP on loopback has no such state, and measured no slower here (docs/benchmarks.md).
    """
    env = dict(os.environ if base is None else base)
    env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    env['PYTHONUNBUFFERED'] = '1'
    env.setdefault(FASTDDS_TRANSPORTS, 'UDPv4')
    if domain_id is not None:
        if not 0 <= int(domain_id) <= 232:
            raise ValueError(f'ROS_DOMAIN_ID must be in 0..232, got {domain_id}')
        env['ROS_DOMAIN_ID'] = str(int(domain_id))
    return env


# Fast DDS (RTPS) ports: the first participant of domain d takes the metatraffic unicast
# port PB + DG d + d1 (participant 0) for itself, without sharing it
RTPS_PORT_BASE, RTPS_DOMAIN_GAIN, RTPS_UNICAST_OFFSET = 7400, 250, 10


def domain_in_use(domain_id: int) -> bool:
    """Whether some DDS participant on this machine already uses ``domain_id``.

    Tries to bind the UDP port the domain's first participant holds; a port someone holds
    means the domain is taken (a false "in use" only costs another pick).
    """
    port = RTPS_PORT_BASE + RTPS_DOMAIN_GAIN * domain_id + RTPS_UNICAST_OFFSET
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind(('', port))
        except OSError:
            return True
    return False


def free_domain_id(tries: int = 200) -> int:
    """Pick a ROS domain id in 1..100 that no participant on this machine uses yet.

    Random (seeded by the process id and the system's randomness), so that concurrent runs
    (two test sessions, a bench beside a tuning run) isolate themselves from each other;
    when every try finds its domain in use, the last candidate is returned.
    """
    rng = random.SystemRandom()
    candidate = 1 + (os.getpid() + rng.randrange(100)) % 100
    for _ in range(tries):
        if not domain_in_use(candidate):
            return candidate
        candidate = 1 + rng.randrange(100)
    return candidate


def format_param_value(value) -> str:
    """Format a parameter value as the YAML text ``--ros-args -p name:=value`` expects.

    Booleans become ``true``/``false``; floats keep a decimal point (``1.0``) so ROS types
    them as doubles; lists become ``[a, b]`` (a list mixing ints and floats is made all
    floats, since ROS arrays are homogeneous); strings are quoted when YAML would
    otherwise read them as something else.
    """
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _format_float(value)
    if isinstance(value, str):
        return _format_string(value)
    if hasattr(value, 'tolist'):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        items = list(value)
        if any(isinstance(item, float) for item in items) and all(
                isinstance(item, (int, float)) and not isinstance(item, bool) for item in items):
            items = [float(item) for item in items]
        return '[' + ', '.join(format_param_value(item) for item in items) + ']'
    raise TypeError(f'cannot pass a {type(value).__name__} as a ROS parameter: {value!r}')


def _format_float(value: float) -> str:
    if math.isnan(value):
        return '.nan'
    if math.isinf(value):
        return '.inf' if value > 0 else '-.inf'
    text = repr(value)
    if 'e' in text and '.' not in text.split('e')[0]:
        mantissa, exponent = text.split('e')
        text = f'{mantissa}.0e{exponent}'
    return text


def _format_string(value: str) -> str:
    import yaml
    if value and yaml.safe_load(value) == value and not any(
            char in value for char in ' ,[]{}:#&*!|>\'"%@`'):
        return value
    return "'" + value.replace("'", "''") + "'"


class NodeProcess:
    """One node running in its own process; a context manager that stops it on exit.

    ``command`` is the full argument list, ``log_path`` the file holding the process's
    stdout and stderr. With ``kill_with_parent`` (Linux) the node receives SIGTERM when the
    thread that started it ends, so a crashed test run leaves no stray nodes behind; start
    long-lived nodes from the main thread.
    """

    def __init__(self, command: list[str], env: dict | None = None,
                 log_path: str | None = None, kill_with_parent: bool = True):
        self.command = list(command)
        if log_path is None:
            handle, log_path = tempfile.mkstemp(prefix=f'{PACKAGE}_', suffix='.log')
            os.close(handle)
        self.log_path = str(log_path)
        self._log = open(self.log_path, 'wb')
        self._process = subprocess.Popen(
            self.command, env=env, stdin=subprocess.DEVNULL, stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent if kill_with_parent and _PRCTL is not None else None)
        _LIVE.add(self)

    @property
    def pid(self) -> int:
        """Process id of the node."""
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        """Exit status (negative: killed by that signal), or ``None`` while running."""
        return self._process.poll()

    def alive(self) -> bool:
        """Whether the process is still running."""
        return self._process.poll() is None

    def log_text(self) -> str:
        """Everything the node has written to stdout and stderr so far."""
        if not self._log.closed:
            self._log.flush()
        with open(self.log_path, encoding='utf-8', errors='replace') as stream:
            return stream.read()

    def stop(self, timeout: float = 5.0) -> int:
        """Stop the node: SIGINT, then SIGTERM, then SIGKILL, ``timeout`` s apart; exit status."""
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            if self._process.poll() is not None:
                break
            try:
                self._process.send_signal(sig)
                self._process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                continue
            except ProcessLookupError:
                break
        self._process.wait()
        self._log.close()
        _LIVE.discard(self)
        return self._process.returncode

    def __enter__(self) -> 'NodeProcess':
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = 'running' if self.alive() else f'exited {self.returncode}'
        return f'<NodeProcess pid={self.pid} {state} log={self.log_path}>'


def node_command(module: str, params: dict | None = None, params_file=None,
                 remaps: dict | None = None, node_name: str | None = None) -> list[str]:
    """Build the argument list running ``hybrid_mpc_ros.<module>`` with these ROS arguments.

    ``params_file`` is one parameter file or a list of them. Nested ``params`` groups are
    flattened to dotted names (``{'plant': {'mass': 1.0}}`` gives ``plant.mass``) and
    passed as ``-p``. How rclpy (Kilted) resolves them, checked here: values are grouped
    by node-name entry (``/**``, ``/node``), the entries are applied in the order they
    first appear and, within one entry, a later value wins. ``-p`` values join the
    ``/**`` entry; so with a scenario file, whose ``/**`` section comes before its node
    sections, a ``-p`` value does not override the node's section. To override such a
    value, write it with :func:`write_params_file` (a section for the node) and pass that
    file last, as ``launch_ros`` does with a dict of parameters for a named node.
    """
    module = module if module.startswith(PACKAGE + '.') else f'{PACKAGE}.{module}'
    command = [sys.executable, '-m', module, '--ros-args']
    if node_name:
        command += ['-r', f'__node:={node_name}']
    files = [params_file] if isinstance(params_file, (str, os.PathLike)) else \
        list(params_file or [])
    for path in files:
        command += ['--params-file', os.fspath(path)]
    for name, value in flatten(params or {}).items():
        command += ['-p', f'{name}:={format_param_value(value)}']
    for source, target in (remaps or {}).items():
        command += ['-r', f'{source}:={target}']
    return command


def write_params_file(path: str, node_name: str, params: dict) -> str:
    """Write ``params`` as the ROS parameter file ``path`` with a section for ``node_name``.

    Values are written as ROS would type them (floats keep a decimal point); returns
    ``path``. Passed after a scenario file, they override the scenario's node section.
    """
    lines = [f'{node_name}:', '  ros__parameters:']
    for name, value in flatten(params).items():
        lines.append(f'    {name}: {format_param_value(value)}')
    with open(path, 'w') as stream:
        stream.write('\n'.join(lines) + '\n')
    return path


def start_node(module: str, params: dict | None = None, params_file=None,
               remaps: dict | None = None, node_name: str | None = None,
               env: dict | None = None, log_path: str | None = None,
               kill_with_parent: bool = True) -> NodeProcess:
    """Start ``python -m hybrid_mpc_ros.<module> --ros-args ...`` and return its process.

    ``env`` defaults to :func:`ros_env` of the current environment; a given ``env`` that
    does not set ``ROS_AUTOMATIC_DISCOVERY_RANGE`` gets ``LOCALHOST`` (and unbuffered
    Python output) added, so discovery leaves the machine only when asked to. See
    :func:`node_command` for the arguments and :class:`NodeProcess` for the rest.
    """
    if env is None:
        env = ros_env()
    else:
        env = dict(env)
        env.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
        env.setdefault('PYTHONUNBUFFERED', '1')
    command = node_command(module, params, params_file, remaps, node_name)
    return NodeProcess(command, env=env, log_path=log_path, kill_with_parent=kill_with_parent)


def _load_prctl():
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


# resolved here, not in the child: dlopen between fork and exec can deadlock when the
# parent has other threads (DDS always does)
_PRCTL = _load_prctl() if sys.platform == 'linux' else None
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # runs in the child between fork and exec: ask Linux for SIGTERM when the parent goes
    _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGTERM))


@atexit.register
def _stop_leftovers() -> None:
    for process in list(_LIVE):
        process.stop(timeout=2.0)
