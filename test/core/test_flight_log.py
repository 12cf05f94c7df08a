"""Flight recordings: MCAP round trip, what ROS tools read, and commands aligned to odometry."""

import os

import numpy as np
import pytest
import yaml

from hybrid_mpc_ros.core.config import ConfigError
from hybrid_mpc_ros.core.model.flight_log import (FlightRecord, FlightWriter, read_flight,
                                                  segments, write_flight)

PERIOD_NS = 100_000_000


def _flight(steps=50, seed=0):
    rng = np.random.default_rng(seed)
    states = rng.normal(size=(steps + 1, 12)) * 0.2
    states[:, 6:9] = rng.uniform(-1.0, 1.0, (steps + 1, 3))   # attitudes in their ranges
    commands = rng.uniform(400.0, 630.0, (steps, 4))
    stamps = 1_700_000_000_000_000_000 + PERIOD_NS * np.arange(steps + 1, dtype=np.int64)
    return FlightRecord(stamps + 3000, stamps, states, stamps[:-1] + 5000, commands)


def test_a_recorded_flight_round_trips_through_mcap(tmp_path):
    flight = _flight()
    path = tmp_path / 'flight'
    write_flight(path, flight)
    assert sorted(os.listdir(path)) == ['flight.mcap', 'metadata.yaml']
    with open(path / 'flight.mcap', 'rb') as stream:
        assert stream.read(8) == b'\x89MCAP0\r\n'               # the MCAP magic
    info = yaml.safe_load((path / 'metadata.yaml').read_text())['rosbag2_bagfile_information']
    assert info['storage_identifier'] == 'mcap' and info['message_count'] == 101
    topics = {t['topic_metadata']['name']: t['topic_metadata'] for t in
              info['topics_with_message_count']}
    assert topics['/odom']['type'] == 'nav_msgs/msg/Odometry'
    assert topics['/rotor_speeds_cmd']['type'] == 'std_msgs/msg/Float64MultiArray'
    assert {t['serialization_format'] for t in topics.values()} == {'cdr'}
    back = read_flight(path)
    for name in ('odometry_log_ns', 'odometry_stamp_ns', 'command_log_ns', 'commands'):
        np.testing.assert_array_equal(getattr(back, name), getattr(flight, name))
    # states go through a quaternion and a body-frame twist: equal to rounding
    np.testing.assert_allclose(back.states, flight.states, rtol=0, atol=1e-12)


def test_topics_are_configurable_and_a_missing_one_is_named(tmp_path):
    write_flight(tmp_path / 'f', _flight(), odometry_topic='uav/odom',
                 command_topic='/uav/cmd')
    assert read_flight(tmp_path / 'f', 'uav/odom', '/uav/cmd').commands.shape == (50, 4)
    with pytest.raises(ConfigError, match='no topic /odom .*/uav/cmd, /uav/odom'):
        read_flight(tmp_path / 'f')
    with pytest.raises(ConfigError, match='holds std_msgs/msg/Float64MultiArray'):
        read_flight(tmp_path / 'f', '/uav/cmd', '/uav/odom')
    with pytest.raises(ConfigError, match='not a rosbag2 recording'):
        read_flight(tmp_path / 'nothing')
    with pytest.raises(ConfigError, match='exists already'):
        FlightWriter(tmp_path / 'f')


def test_commands_align_to_the_odometry_they_answer():
    flight = _flight(steps=20)
    data, alignment = segments(flight, 0.1)
    assert len(data) == 1 and alignment.used_steps == 20 and alignment.gap_fraction == 0.0
    np.testing.assert_array_equal(data[0][1], flight.commands)
    np.testing.assert_array_equal(data[0][0], flight.states)


def test_lockstep_repeats_and_faster_odometry_are_dropped_and_gaps_split():
    flight = _flight(steps=20)
    # a lockstep simulator re-publishes odometry 3 with the same stamp (later log time)
    repeat = FlightRecord(np.append(flight.odometry_log_ns, flight.odometry_log_ns[3] + 10),
                          np.append(flight.odometry_stamp_ns, flight.odometry_stamp_ns[3]),
                          np.vstack([flight.states, flight.states[3] + 1.0]),
                          flight.command_log_ns, flight.commands)
    data, alignment = segments(repeat, 0.1)
    assert alignment.duplicate_odometry == 1 and alignment.used_steps == 20
    np.testing.assert_array_equal(data[0][0], flight.states)
    # odometry at 5x the period: the samples between grid points are dropped
    fine_stamps = flight.odometry_stamp_ns[0] + PERIOD_NS // 5 * np.arange(101)
    fine = FlightRecord(fine_stamps + 3000, fine_stamps,
                        np.repeat(flight.states, 5, axis=0)[:101], flight.command_log_ns,
                        flight.commands)
    data, alignment = segments(fine, 0.1)
    assert alignment.off_grid_odometry == 80 and alignment.used_steps == 20
    np.testing.assert_array_equal(data[0][1], flight.commands)
    # no command in step 7, and no odometry at grid point 12: three stretches
    keep = np.ones(21, dtype=bool)
    keep[12] = False
    gappy = FlightRecord(flight.odometry_log_ns[keep], flight.odometry_stamp_ns[keep],
                         flight.states[keep], np.delete(flight.command_log_ns, 7),
                         np.delete(flight.commands, 7, axis=0))
    data, alignment = segments(gappy, 0.1)
    assert (alignment.missing_commands, alignment.missing_odometry) == (1, 1)
    assert [len(u) for _, u in data] == [7, 3, 7]          # steps 7, 11 and 12 lost
    np.testing.assert_array_equal(data[1][1], flight.commands[8:11])
    assert alignment.used_steps == 17 and alignment.grid_steps == 20


def test_a_command_logged_after_the_next_odometry_goes_back_to_its_step():
    """A recorder serving two topics logged command 5 after odometry 6 (seen in lockstep)."""
    flight = _flight(steps=20)
    logs = flight.command_log_ns.copy()
    logs[5] = flight.odometry_log_ns[6] + 10
    late = FlightRecord(flight.odometry_log_ns, flight.odometry_stamp_ns, flight.states, logs,
                        flight.commands)
    data, alignment = segments(late, 0.1)
    assert alignment.reordered_commands == 1 and alignment.used_steps == 20
    np.testing.assert_array_equal(data[0][1], flight.commands)


def test_a_command_logged_before_its_odometry_goes_back_to_its_step():
    """The reverse: command 9 (computed from odometry 9) logged just before odometry 9."""
    flight = _flight(steps=20)
    logs = flight.command_log_ns.copy()
    logs[9] = flight.odometry_log_ns[9] - 10
    early = FlightRecord(flight.odometry_log_ns, flight.odometry_stamp_ns, flight.states,
                         logs, flight.commands)
    data, alignment = segments(early, 0.1)
    assert alignment.reordered_commands == 1 and alignment.used_steps == 20
    np.testing.assert_array_equal(data[0][1], flight.commands)
