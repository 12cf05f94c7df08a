"""Flight recordings: odometry and rotor commands in a rosbag2 MCAP file (ROS-free).

A recording is what ``ros2 bag record -s mcap`` writes: a directory holding
``metadata.yaml`` and one ``.mcap`` file, messages in ROS 2 CDR encoding, so ``ros2 bag
info``, Foxglove and PlotJuggler open it. It is written and read with ``rosbags`` (no ROS
installation needed) and holds two topics:

* odometry, ``nav_msgs/msg/Odometry`` (default topic ``/odom``), converted to the model's
  12 states by :mod:`hybrid_mpc_ros.core.model.frames` (quaternion to Z-Y-X Euler angles,
  body-frame linear velocity to the world frame, body rates unchanged);
* rotor commands, ``std_msgs/msg/Float64MultiArray`` with 4 rotor speeds [rad/s]
  (default topic ``/rotor_speeds_cmd``, what the controller publishes).

Every message has two times: its *log time* (when the recorder received it, the bag's
timestamp) and, for odometry only, its header *stamp* (when the state was measured; a
command has no header). :func:`segments` aligns them (see there). The bag's metadata is
version 9 (ROS 2 Kilted's).

:class:`FlightWriter` writes incrementally (the recorder node hands it serialised
messages; the offline route hands it states and commands); :func:`read_flight` reads a
recording back as a :class:`FlightRecord` of arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
import os

import numpy as np

from hybrid_mpc_ros.core.config import ConfigError
from hybrid_mpc_ros.core.model.frames import (odometry_arrays_to_state,
                                              state_to_odometry_arrays)
from hybrid_mpc_ros.core.model.quadcopter import NU, NX

ODOMETRY_TYPE = 'nav_msgs/msg/Odometry'
COMMAND_TYPE = 'std_msgs/msg/Float64MultiArray'
DEFAULT_ODOMETRY_TOPIC = '/odom'
DEFAULT_COMMAND_TOPIC = '/rotor_speeds_cmd'
COMMAND_LABEL = 'rotor_speed_rad_s'       # as hybrid_mpc_ros.ros.msgs labels a command
BAG_VERSION = 9


def topic_name(name: str) -> str:
    """Return the topic as a bag names it: absolute (``odom`` -> ``/odom``)."""
    name = name.strip()
    if not name:
        raise ConfigError('a topic name must not be empty')
    return name if name.startswith('/') else '/' + name


def _typestore():
    from rosbags.typesys import get_typestore, Stores
    return get_typestore(Stores.ROS2_KILTED)


@dataclass
class FlightRecord:
    """A recording's content as arrays (nanosecond integer times).

    ``odometry_log_ns`` (n,), ``odometry_stamp_ns`` (n,) and ``states`` (n, 12) (a row of
    NaN where a message could not be converted: non-finite or zero quaternion);
    ``command_log_ns`` (m,) and ``commands`` (m, 4) [rad/s]. Rows in file order.
    """

    odometry_log_ns: np.ndarray
    odometry_stamp_ns: np.ndarray
    states: np.ndarray
    command_log_ns: np.ndarray
    commands: np.ndarray


class FlightWriter:
    """Write a recording (module docstring) to the new directory ``path``.

    ``odometry_topic`` / ``command_topic``: the topics' names (made absolute). The
    directory must not exist (ConfigError). Use as a context manager, or call
    :meth:`close`; the recording is complete only once closed.
    """

    def __init__(self, path: str | os.PathLike, odometry_topic: str = DEFAULT_ODOMETRY_TOPIC,
                 command_topic: str = DEFAULT_COMMAND_TOPIC):
        from rosbags.rosbag2 import StoragePlugin, Writer
        self.path = os.fspath(path)
        if os.path.exists(self.path):
            raise ConfigError(f'recording {self.path} exists already: name a new directory')
        self._store = _typestore()
        self._writer = Writer(self.path, version=BAG_VERSION,
                              storage_plugin=StoragePlugin.MCAP)
        self._writer.open()
        self._odometry = self._writer.add_connection(topic_name(odometry_topic), ODOMETRY_TYPE,
                                                     typestore=self._store)
        self._command = self._writer.add_connection(topic_name(command_topic), COMMAND_TYPE,
                                                    typestore=self._store)
        self.counts = {'odometry': 0, 'commands': 0}

    def __enter__(self) -> 'FlightWriter':
        """Return the open writer."""
        return self

    def __exit__(self, *exc) -> None:
        """Close the recording."""
        self.close()

    def close(self) -> None:
        """Finish the file and write ``metadata.yaml`` (again calls do nothing)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def write_odometry_cdr(self, log_ns: int, data: bytes) -> None:
        """Write a serialised (CDR) ``nav_msgs/Odometry`` logged at ``log_ns``."""
        self._writer.write(self._odometry, int(log_ns), data)
        self.counts['odometry'] += 1

    def write_command_cdr(self, log_ns: int, data: bytes) -> None:
        """Write a serialised (CDR) ``std_msgs/Float64MultiArray`` logged at ``log_ns``."""
        self._writer.write(self._command, int(log_ns), data)
        self.counts['commands'] += 1

    def write_state(self, log_ns: int, stamp_ns: int, x: np.ndarray, frame_id: str = 'odom',
                    child_frame_id: str = 'base_link') -> None:
        """Write the model state x (12,) as odometry stamped ``stamp_ns``, logged at ``log_ns``."""
        types = self._store.types
        position, quat, linear, angular = state_to_odometry_arrays(x)
        vector = types['geometry_msgs/msg/Vector3']
        stamp = types['builtin_interfaces/msg/Time'](sec=int(stamp_ns // 1_000_000_000),
                                                     nanosec=int(stamp_ns % 1_000_000_000))
        msg = types[ODOMETRY_TYPE](
            header=types['std_msgs/msg/Header'](stamp=stamp, frame_id=frame_id),
            child_frame_id=child_frame_id,
            pose=types['geometry_msgs/msg/PoseWithCovariance'](
                pose=types['geometry_msgs/msg/Pose'](
                    position=types['geometry_msgs/msg/Point'](*(float(v) for v in position)),
                    orientation=types['geometry_msgs/msg/Quaternion'](
                        *(float(v) for v in quat))),
                covariance=np.zeros(36)),
            twist=types['geometry_msgs/msg/TwistWithCovariance'](
                twist=types['geometry_msgs/msg/Twist'](
                    linear=vector(*(float(v) for v in linear)),
                    angular=vector(*(float(v) for v in angular))),
                covariance=np.zeros(36)))
        self.write_odometry_cdr(log_ns, self._store.serialize_cdr(msg, ODOMETRY_TYPE))

    def write_command(self, log_ns: int, u: np.ndarray) -> None:
        """Write the rotor speeds u (4,) [rad/s] as a command logged at ``log_ns``."""
        types = self._store.types
        layout = types['std_msgs/msg/MultiArrayLayout'](
            dim=[types['std_msgs/msg/MultiArrayDimension'](label=COMMAND_LABEL, size=NU,
                                                           stride=NU)],
            data_offset=0)
        msg = types[COMMAND_TYPE](layout=layout,
                                  data=np.asarray(u, dtype=np.float64).reshape(NU).copy())
        self.write_command_cdr(log_ns, self._store.serialize_cdr(msg, COMMAND_TYPE))


def write_flight(path: str | os.PathLike, record: FlightRecord,
                 odometry_topic: str = DEFAULT_ODOMETRY_TOPIC,
                 command_topic: str = DEFAULT_COMMAND_TOPIC) -> None:
    """Write a whole :class:`FlightRecord` to the new directory ``path`` (in log-time order)."""
    events = [(int(t), 0, i) for i, t in enumerate(record.odometry_log_ns)]
    events += [(int(t), 1, i) for i, t in enumerate(record.command_log_ns)]
    with FlightWriter(path, odometry_topic, command_topic) as writer:
        for log_ns, kind, index in sorted(events):
            if kind == 0:
                writer.write_state(log_ns, int(record.odometry_stamp_ns[index]),
                                   record.states[index])
            else:
                writer.write_command(log_ns, record.commands[index])


def read_flight(path: str | os.PathLike, odometry_topic: str = DEFAULT_ODOMETRY_TOPIC,
                command_topic: str = DEFAULT_COMMAND_TOPIC) -> FlightRecord:
    """Read a recording's odometry and commands (ConfigError naming what is wrong).

    ``path``: the recording's directory (or its ``.mcap`` file's directory). Refused: no
    such recording, a topic missing or of another type, a command without 4 values.
    """
    from rosbags.rosbag2 import Reader
    path = os.fspath(path)
    if os.path.isfile(path) and path.endswith('.mcap'):
        path = os.path.dirname(path) or '.'
    if not os.path.isfile(os.path.join(path, 'metadata.yaml')):
        raise ConfigError(f'{path} is not a rosbag2 recording (no metadata.yaml)')
    wanted = {topic_name(odometry_topic): ODOMETRY_TYPE, topic_name(command_topic): COMMAND_TYPE}
    store = _typestore()
    odometry, commands = [], []
    try:
        reader = Reader(path)
        reader.open()
    except Exception as exc:              # rosbags raises its own error types
        raise ConfigError(f'recording {path} cannot be read: {exc}') from exc
    try:
        found = {conn.topic: conn.msgtype for conn in reader.connections}
        for topic, msgtype in wanted.items():
            if topic not in found:
                raise ConfigError(f'recording {path} has no topic {topic} (it has: '
                                  f'{", ".join(sorted(found)) or "none"}); name the topic '
                                  'with --odom-topic / --command-topic')
            if found[topic] != msgtype:
                raise ConfigError(f'recording {path}: topic {topic} holds {found[topic]}, '
                                  f'expected {msgtype}')
        connections = [conn for conn in reader.connections if conn.topic in wanted]
        for conn, log_ns, raw in reader.messages(connections=connections):
            msg = store.deserialize_cdr(raw, conn.msgtype)
            if conn.msgtype == ODOMETRY_TYPE:
                odometry.append((log_ns, _stamp_ns(msg.header.stamp), _state(msg)))
            else:
                u = np.asarray(msg.data, dtype=float)
                if u.shape != (NU,):
                    raise ConfigError(f'recording {path}: a command on {conn.topic} holds '
                                      f'{u.size} values, expected {NU} rotor speeds')
                commands.append((log_ns, u))
    finally:
        reader.close()
    return FlightRecord(
        np.array([o[0] for o in odometry], dtype=np.int64),
        np.array([o[1] for o in odometry], dtype=np.int64),
        np.array([o[2] for o in odometry], dtype=float).reshape(-1, NX),
        np.array([c[0] for c in commands], dtype=np.int64),
        np.array([c[1] for c in commands], dtype=float).reshape(-1, NU))


def _stamp_ns(stamp) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def _state(msg) -> np.ndarray:
    pose, twist = msg.pose.pose, msg.twist.twist
    try:
        return odometry_arrays_to_state(
            (pose.position.x, pose.position.y, pose.position.z),
            (pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w),
            (twist.linear.x, twist.linear.y, twist.linear.z),
            (twist.angular.x, twist.angular.y, twist.angular.z))
    except ValueError:                     # a zero or non-finite quaternion
        return np.full(NX, np.nan)


@dataclass(frozen=True)
class Alignment:
    """What :func:`segments` made of a recording.

    ``grid_steps``: periods between the first and the last odometry on the grid;
    ``used_steps``: those with a state at both ends and a command (the data);
    ``missing_odometry``: grid points without odometry; ``missing_commands``: steps with
    both odometry but no command; ``duplicate_odometry``: re-published stamps dropped;
    ``off_grid_odometry``: odometry between grid points, dropped; ``reordered_commands``:
    commands logged beyond their step's odometry and given back to it (rule 2);
    ``segments``: how many stretches without a gap.
    """

    grid_steps: int
    used_steps: int
    missing_odometry: int
    missing_commands: int
    duplicate_odometry: int
    off_grid_odometry: int
    reordered_commands: int
    segments: int

    @property
    def gap_fraction(self) -> float:
        """Share of the grid's steps that are not data."""
        return 1.0 - self.used_steps / self.grid_steps if self.grid_steps else 1.0


def segments(record: FlightRecord, period_s: float,
             tolerance: float = 0.1) -> tuple[list[tuple[np.ndarray, np.ndarray]], Alignment]:
    """Cut a recording into gap-free stretches ``(X (T+1, 12), U (T, 4))`` on ``period_s``.

    Alignment, in three rules:

    1. **Time is the odometry's stamp.** Odometry is sorted by stamp; a re-published
       stamp (the lockstep simulator repeats its odometry while it waits) is dropped.
       The grid starts at the first stamp and advances by ``period_s``; an odometry more
       than ``tolerance`` periods from a grid point is dropped (faster odometry is thus
       resampled to the period by keeping the samples on the grid).
    2. **The command of step k is the one computed from odometry k**: the last command
       *logged* after odometry k was logged and before odometry k+1 was (commands have no
       stamp; the controller answers the newest odometry, so this is the command sent
       for k, or under a timer trigger the one in force when step k ended). Log times
       must come from one clock: the ``flight_recorder`` node's are the send times (the
       publishers' clock), ``ros2 bag record``'s the receive times (the recorder's). A
       recorder serving two topics may log them out of order (seen in lockstep, both
       ways, with receive times): a
       step without a command next to a step with two takes the one of those that
       belongs to it, the first of the next step's or the second of the previous
       step's (counted as ``reordered_commands``).
    3. **Gaps split the data**: a grid point without odometry, or a step without a
       command, ends a stretch; stretches of fewer than 2 steps are dropped. Nothing is
       interpolated.
    """
    if not period_s > 0.0:
        raise ConfigError(f'period_s must be > 0, got {period_s}')
    period_ns = period_s * 1e9
    order = np.argsort(record.odometry_stamp_ns, kind='stable')
    stamps = record.odometry_stamp_ns[order]
    logs = record.odometry_log_ns[order]
    states = record.states[order]
    unique = np.ones(len(stamps), dtype=bool)
    unique[1:] = np.diff(stamps) > 0
    duplicates = int(np.count_nonzero(~unique))
    stamps, logs, states = stamps[unique], logs[unique], states[unique]
    if len(stamps) < 2:
        return [], Alignment(0, 0, 0, 0, duplicates, 0, 0, 0)
    offset = (stamps - stamps[0]) / period_ns
    index = np.round(offset).astype(np.int64)
    keep = np.abs(offset - index) <= tolerance
    on_grid = np.flatnonzero(keep)
    keep[on_grid[1:][index[on_grid[1:]] == index[on_grid[:-1]]]] = False   # one per point
    off_grid = int(np.count_nonzero(~keep))
    index, logs, states = index[keep], logs[keep], states[keep]
    grid_steps = int(index[-1] - index[0])
    cmd_order = np.argsort(record.command_log_ns, kind='stable')
    cmd_logs, commands = record.command_log_ns[cmd_order], record.commands[cmd_order]
    out, xs, us = [], [states[0]], []
    missing_odometry = int(grid_steps - (len(index) - 1))
    missing_commands = 0
    choice = _command_choice(np.searchsorted(cmd_logs, logs, side='left'))
    reordered = int(np.count_nonzero(choice[:, 1]))

    def close():
        if len(us) >= 2:
            out.append((np.array(xs), np.array(us)))

    for k in range(len(index) - 1):
        has_command = choice[k, 0] >= 0
        if index[k + 1] != index[k] + 1 or not has_command:
            missing_commands += int(index[k + 1] == index[k] + 1 and not has_command)
            close()
            xs, us = [states[k + 1]], []
            continue
        us.append(commands[choice[k, 0]])
        xs.append(states[k + 1])
    close()
    used = sum(len(u) for _, u in out)
    return out, Alignment(grid_steps, used, missing_odometry, missing_commands, duplicates,
                          off_grid, reordered, len(out))


def _command_choice(bounds: np.ndarray) -> np.ndarray:
    """Which command each step takes (rule 2 of :func:`segments`), shape (n - 1, 2).

    ``bounds`` (n,): for odometry k, the index of the first command logged at or after it,
    so step k's window is ``[bounds[k], bounds[k+1])``. Row k: the command's index (-1:
    none) and whether it was taken from a neighbouring window (1) or its own (0).
    """
    steps = len(bounds) - 1
    counts = np.diff(bounds)
    choice = np.full((steps, 2), -1, dtype=np.int64)
    choice[:, 1] = 0
    first = bounds[:-1].copy()          # a window's first command not yet given away
    for k in range(steps):
        if choice[k, 0] >= 0:           # given by the previous window already
            continue
        available = bounds[k + 1] - first[k]
        if available >= 2 and k + 1 < steps and counts[k + 1] == 0:
            # the second command was computed from odometry k+1 and logged before it
            choice[k] = (bounds[k + 1] - 2, 0)
            choice[k + 1] = (bounds[k + 1] - 1, 1)
        elif available >= 1:
            choice[k] = (bounds[k + 1] - 1, 0)
        elif k + 1 < steps and counts[k + 1] >= 2:
            # step k's command was logged after odometry k+1: the next window's first
            choice[k] = (bounds[k + 1], 1)
            first[k + 1] += 1
    return choice
