"""The ~/sensitivity codec: exact round trip, every corruption refused with its reason."""

import copy
import re

from builtin_interfaces.msg import Time
import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message
from std_msgs.msg import Float64MultiArray

from hybrid_mpc_ros.core.learning.samples import SensitivitySample, Stamp
from hybrid_mpc_ros.ros import sensitivity_msg as codec


def _sample(seed=0, status=0, **changes):
    rng = np.random.default_rng(seed)
    fields = dict(stamp=Stamp(2 ** 31 - 1, 999_999_999), odom_stamp=Stamp(1_700_000_000, 1),
                  revision=2 ** 40 + 3, status=status, solve_ms=0.4213,
                  x=rng.normal(size=12), u=600 + rng.normal(size=4),
                  du_dx=rng.normal(size=(4, 12)), du_dtheta=rng.normal(size=(4, 94)) * 1e-7)
    fields.update(changes)
    return SensitivitySample(**fields)


def _assert_same(decoded, sample):
    assert decoded.stamp == sample.stamp and decoded.odom_stamp == sample.odom_stamp
    assert (decoded.revision, decoded.status, decoded.solve_ms) == (
        sample.revision, sample.status, sample.solve_ms)
    for name in ('x', 'u', 'du_dx', 'du_dtheta'):
        assert np.array_equal(getattr(decoded, name), getattr(sample, name), equal_nan=True)


def test_round_trip_is_exact_through_ros_serialisation():
    sample = _sample()
    msg = codec.sensitivity_message(sample)
    assert len(msg.data) == codec.SIZE == 447
    wire = deserialize_message(serialize_message(msg), Float64MultiArray)
    decoded = codec.parse_sensitivity_message(wire)
    _assert_same(decoded, sample)
    assert isinstance(decoded.stamp, Stamp) and decoded.stamp.nanoseconds == (
        (2 ** 31 - 1) * 10 ** 9 + 999_999_999)


def test_a_failed_step_may_carry_nan_sensitivities():
    nan = np.full((4, 12), np.nan)
    sample = _sample(status=4, du_dx=nan, du_dtheta=np.full((4, 94), np.nan))
    decoded = codec.parse_sensitivity_message(codec.sensitivity_message(sample))
    _assert_same(decoded, sample)
    assert not decoded.ok and np.isnan(decoded.du_dx).all()


def test_encoder_reuses_one_message_and_accepts_ros_time():
    encoder = codec.SensitivityEncoder()
    first, second = _sample(1), _sample(2, status=-1)
    msg = encoder.encode_sample(first)
    kept = codec.parse_sensitivity_message(msg)          # decoding copies the data
    assert encoder.encode_sample(second) is msg
    _assert_same(kept, first)
    _assert_same(codec.parse_sensitivity_message(msg), second)
    ros_msg = encoder.encode(Time(sec=5, nanosec=7), Time(sec=4, nanosec=100_000_000), 1, 0,
                             0.5, second.x, second.u, second.du_dx, second.du_dtheta)
    decoded = codec.parse_sensitivity_message(ros_msg)
    assert decoded.stamp == (5, 7) and decoded.odom_stamp == Stamp(4, 100_000_000)
    with pytest.raises(ValueError, match='du_dx'):
        encoder.encode(Time(), Time(), 1, 0, 0.5, second.x, second.u, second.du_dx[0],
                       second.du_dtheta)
    # decoded samples are read-only
    with pytest.raises(ValueError):
        decoded.x[0] = 1.0


def _corrupt(edit):
    msg = codec.sensitivity_message(_sample())
    data = list(msg.data)
    dims = list(msg.layout.dim)
    edit(msg, data, dims)
    msg.layout.dim = dims
    msg.data = data
    return msg


def _set(index, value):
    def edit(msg, data, dims):
        data[index] = value
    return edit


def _swap(msg, data, dims):
    dims[6], dims[7] = dims[7], dims[6]


def _relabel(msg, data, dims):
    dims[3] = copy.copy(dims[3])
    dims[3].label = 'revision'


def _version(msg, data, dims):
    dims[0] = copy.copy(dims[0])
    dims[0].label = 'hybrid_mpc_ros/sensitivity/v2'


def _resize(msg, data, dims):
    dims[6] = copy.copy(dims[6])
    dims[6].size = 13


CORRUPTIONS = {
    'extra value': (lambda m, d, s: d.append(0.0), 'has 448 values, expected 447'),
    'missing value': (lambda m, d, s: d.pop(), 'has 446 values, expected 447'),
    'no layout': (lambda m, d, s: s.clear(), "has format 'no dimensions'"),
    'missing block': (lambda m, d, s: s.pop(), 'has 9 layout dimensions, expected 10'),
    'other version': (_version, "has format 'hybrid_mpc_ros/sensitivity/v2'"),
    'wrong label': (_relabel, "dimension 3 is ('revision', size 1, stride 1), expected "
                              "('theta_revision'"),
    'wrong order': (_swap, "dimension 6 is ('u [4]: rotor speeds [rad/s]', size 4, stride 4), "
                           "expected ('x [12]"),
    'wrong block size': (_resize, 'size 13, stride 12), expected'),
    'data offset': (lambda m, d, s: setattr(m.layout, 'data_offset', 1), 'data_offset 1'),
    'fractional nanosec': (_set(1, 0.5), 'stamp nanosec is 0.5, expected an integer'),
    'nan stamp': (_set(2, float('nan')), 'odom_stamp sec is nan, expected an integer'),
    'nanosec overflow': (_set(3, 1e9), 'stamp nanosec 1000000000 is outside [0, 1e9)'),
    'sec overflow': (_set(0, 2.0 ** 31), 'stamp sec 2147483648 is outside int32'),
    'fractional revision': (_set(4, 1.5), 'theta_revision is 1.5, expected an integer'),
    'negative revision': (_set(4, -1.0), 'revision must lie in [0, 2^53], got -1'),
    'fractional status': (_set(5, 0.1), 'solver_status is 0.1, expected an integer'),
    'nan solve time': (_set(6, float('nan')), 'solve time nan ms'),
    'negative solve time': (_set(6, -1.0), 'solve time -1.0 ms'),
    'nan state': (_set(7 + 3, float('nan')), 'x has 1 non-finite entries (first at flat index 3'),
    'inf input': (_set(19, float('inf')), 'u has 1 non-finite entries'),
    'nan du/dx after success': (_set(23 + 12 + 5, float('nan')),
                                'du_dx has 1 non-finite entries (first at flat index 17'),
    'inf du/dtheta after success': (_set(71 + 94 * 3, -float('inf')),
                                    'du_dtheta has 1 non-finite entries (first at flat index 282'),
}


@pytest.mark.parametrize('kind', list(CORRUPTIONS))
def test_corrupted_message_is_refused_with_its_reason(kind):
    edit, reason = CORRUPTIONS[kind]
    with pytest.raises(ValueError) as error:
        codec.parse_sensitivity_message(_corrupt(edit))
    assert reason in str(error.value)
    assert str(error.value).startswith('sensitivity message')


def test_docstring_table_is_the_layout():
    """The table in the module docstring and the code describe the same layout."""
    rows = re.findall(r'^(\d+)\s+``(.+?)``\s+(\d+)\s+(\S+)', codec.__doc__, re.MULTILINE)
    assert [(label, int(size)) for _, label, size, _ in rows] == [
        (label, size) for label, size, _ in codec.LAYOUT]
    offsets = [int(offset) for *_, offset in rows[1:]]
    assert offsets == [part.start for part in codec.SLICES.values()]


def _offset_free_sample(seed=0, status=0):
    rng = np.random.default_rng(seed + 100)
    return _sample(seed, status, d=rng.normal(size=12) * 0.01, du_dd=rng.normal(size=(4, 12)),
                   observer_gain=0.3)


def test_version_2_carries_the_disturbance_estimate_exactly():
    sample = _offset_free_sample()
    msg = codec.sensitivity_message(sample)
    assert msg.layout.dim[0].label == codec.FORMAT_LABEL_V2
    assert len(msg.data) == codec.SIZE_V2 == 508
    wire = deserialize_message(serialize_message(msg), Float64MultiArray)
    decoded = codec.parse_sensitivity_message(wire)
    _assert_same(decoded, sample)
    assert np.array_equal(decoded.d, sample.d) and np.array_equal(decoded.du_dd, sample.du_dd)
    assert decoded.observer_gain == 0.3
    # a controller without an estimate still sends version 1, which decodes without one
    plain = codec.parse_sensitivity_message(codec.sensitivity_message(_sample()))
    assert plain.d is None and plain.du_dd is None


def test_version_2_encoder_is_reused_and_refuses_a_sample_of_the_other_kind():
    encoder = codec.SensitivityEncoder(offset_free=True)
    first = encoder.encode_sample(_offset_free_sample(1))
    again = encoder.encode_sample(_offset_free_sample(2))
    assert first is again
    _assert_same(codec.parse_sensitivity_message(again), _offset_free_sample(2))
    with pytest.raises(ValueError, match='offset-free encoder'):
        encoder.encode_sample(_sample())
    with pytest.raises(ValueError, match='offset-free encoder'):
        codec.SensitivityEncoder().encode_sample(_offset_free_sample())


def test_version_2_refuses_a_non_finite_estimate_but_not_missing_sensitivities():
    sample = _offset_free_sample(status=4)
    msg = codec.sensitivity_message(replace_arrays(sample, du_dd=np.full((4, 12), np.nan)))
    assert np.isnan(codec.parse_sensitivity_message(msg).du_dd).all()
    bad = copy.deepcopy(codec.sensitivity_message(sample))
    bad.data[codec.SLICES_V2['d'].start] = float('nan')
    with pytest.raises(ValueError, match='d has 1 non-finite'):
        codec.parse_sensitivity_message(bad)
    bad = copy.deepcopy(codec.sensitivity_message(sample))
    bad.data[codec.SLICES_V2['observer_gain'].start] = 0.0
    with pytest.raises(ValueError, match=r'observer_gain must lie in \(0, 1\], got 0.0'):
        codec.parse_sensitivity_message(bad)


def replace_arrays(sample, **arrays):
    fields = {name: getattr(sample, name) for name in sample.__dataclass_fields__}
    fields.update(arrays)
    return SensitivitySample(**fields)


def test_docstring_table_of_version_2_is_its_layout():
    rows = re.findall(r'^``(\w+)``\s+``(.+?)``\s+(\d+)\s+(\d+)', codec.__doc__, re.MULTILINE)
    assert [(label, int(size)) for _, label, size, _ in rows] == [
        (label, size) for label, size, _ in codec.LAYOUT_V2[-3:]]
    assert [int(offset) for *_, offset in rows] == [
        codec.SLICES_V2[name].start for name, *_ in rows]
