"""The ``~/sensitivity`` message: one control step as ``std_msgs/Float64MultiArray``.

The one codec both sides use: the controller node encodes with
:class:`SensitivityEncoder` (or :func:`sensitivity_message`), the tuner decodes with
:func:`parse_sensitivity_message` into a ROS-free
:class:`~hybrid_mpc_ros.core.learning.samples.SensitivitySample`.

Layout (format version 1). ``layout.data_offset`` is 0; ``layout.dim`` has one
``MultiArrayDimension`` per block, in this order; each block is a flat run of ``size``
doubles (``stride == size``, as for a 1-D array) starting where the previous one ended.
The first dimension carries no data: its label names the format and version, so a reader
refuses a message of another format or version before reading any number.

===  ==================================================  ====  ======  ==========================
dim  label                                               size  offset  content
===  ==================================================  ====  ======  ==========================
0    ``hybrid_mpc_ros/sensitivity/v1``                   0     -       format, version; no data
1    ``stamp [sec, nanosec]``                            2     0       when the sample was made
2    ``odom_stamp [sec, nanosec]``                       2     2       stamp of the odometry used
3    ``theta_revision``                                  1     4       integer >= 0
4    ``solver_status [0 = success]``                     1     5       integer; -1: bad state,
                                                                     -2: envelope abort
5    ``solve_time [ms]``                                 1     6       finite, >= 0
6    ``x [12]: p [m], v [m/s], rpy [rad], pqr [rad/s]``  12    7       state at the step
7    ``u [4]: rotor speeds [rad/s]``                     4     19      applied input
8    ``du_dx [4x12] row-major``                          48    23      [i, j] at 23 + 12i + j
9    ``du_dtheta [4x94] row-major``                      376   71      [i, j] at 71 + 94i + j
===  ==================================================  ====  ======  ==========================

447 doubles in all.

**Version 2** (an offset-free controller, :mod:`~hybrid_mpc_ros.core.mpc.offset_free`): the
format dimension's label is ``hybrid_mpc_ros/sensitivity/v2`` and three blocks follow
version 1's ten dimensions, the rest unchanged (508 doubles):

=================  ==================================  ====  ======  ===================
block              label                               size  offset  content
=================  ==================================  ====  ======  ===================
``d``              ``d [12]: disturbance per period``  12    447     the step's estimate
``du_dd``          ``du_dd [4x12] row-major``          48    459     [i, j] at 459+12i+j
``observer_gain``  ``observer_gain (0, 1]``            1     507     the observer's gain
=================  ==================================  ====  ======  ===================

A controller without an estimate sends version 1, bit for bit as before; the reader takes
either. ``d`` must be finite and the gain in (0, 1]; ``du_dd`` may be NaN like the other
sensitivities. The gain travels with every step because the tuner's gradient chains
through the observer that made ``d`` (with the nominal model both sides load).

Stamps are ``builtin_interfaces/Time`` split into ``sec`` and
``nanosec``, each stored as its own double: integers below 2^53 are exact in float64, so
stamps round-trip exactly (a single float seconds value would not). The sensitivities may
be NaN when the solve failed (status != 0): the controller has none then.

:func:`parse_sensitivity_message` raises ValueError naming the problem: a wrong number of
dimensions, a wrong label, size or order, another format version, a data offset, a wrong
number of values, a non-integer or out-of-range stamp, revision or status, and a non-finite
value where the table does not allow one.
"""

from __future__ import annotations

import numpy as np
from std_msgs.msg import Float64MultiArray, MultiArrayDimension

from hybrid_mpc_ros.core.learning.samples import SensitivitySample
from hybrid_mpc_ros.core.model.quadcopter import NU, NX
from hybrid_mpc_ros.core.mpc import theta as th

FORMAT_LABEL = 'hybrid_mpc_ros/sensitivity/v1'
FORMAT_LABEL_V2 = 'hybrid_mpc_ros/sensitivity/v2'
# (name, label, size) per data block, in message order
BLOCKS = (
    ('stamp', 'stamp [sec, nanosec]', 2),
    ('odom_stamp', 'odom_stamp [sec, nanosec]', 2),
    ('revision', 'theta_revision', 1),
    ('status', 'solver_status [0 = success]', 1),
    ('solve_ms', 'solve_time [ms]', 1),
    ('x', f'x [{NX}]: p [m], v [m/s], rpy [rad], pqr [rad/s]', NX),
    ('u', f'u [{NU}]: rotor speeds [rad/s]', NU),
    ('du_dx', f'du_dx [{NU}x{NX}] row-major', NU * NX),
    ('du_dtheta', f'du_dtheta [{NU}x{th.N_THETA}] row-major', NU * th.N_THETA),
)
# version 2 appends the offset-free controller's estimate and its sensitivity
BLOCKS_V2 = BLOCKS + (
    ('d', f'd [{NX}]: disturbance per period', NX),
    ('du_dd', f'du_dd [{NU}x{NX}] row-major', NU * NX),
    ('observer_gain', 'observer_gain (0, 1]', 1),
)


def _slices(blocks) -> dict:
    out, start = {}, 0
    for name, _, size in blocks:
        out[name] = slice(start, start + size)
        start += size
    return out


SIZE = sum(size for _, _, size in BLOCKS)
SIZE_V2 = sum(size for _, _, size in BLOCKS_V2)
SLICES = _slices(BLOCKS)
SLICES_V2 = _slices(BLOCKS_V2)
# (label, size, stride) of every dimension, the format dimension first
LAYOUT = ((FORMAT_LABEL, 0, 0),) + tuple((label, size, size) for _, label, size in BLOCKS)
LAYOUT_V2 = ((FORMAT_LABEL_V2, 0, 0),) + tuple((label, size, size)
                                               for _, label, size in BLOCKS_V2)
# format label -> (layout, size, slices)
VERSIONS = {FORMAT_LABEL: (LAYOUT, SIZE, SLICES), FORMAT_LABEL_V2: (LAYOUT_V2, SIZE_V2, SLICES_V2)}
_INTEGER_ENTRIES = ((0, 'stamp sec'), (1, 'stamp nanosec'), (2, 'odom_stamp sec'),
                    (3, 'odom_stamp nanosec'), (4, 'theta_revision'), (5, 'solver_status'))


def _new_message(layout=LAYOUT) -> Float64MultiArray:
    msg = Float64MultiArray()
    for label, size, stride in layout:
        msg.layout.dim.append(MultiArrayDimension(label=label, size=size, stride=stride))
    msg.layout.data_offset = 0
    return msg


class SensitivityEncoder:
    """Encodes control steps into one reused message (allocation-light, for every step).

    :meth:`encode` refills the same ``Float64MultiArray`` in place and returns it: publish
    it (rclpy serialises during ``publish``) before the next call, and do not keep it.
    ``offset_free``: write version 2 (with ``d`` and ``du_dd``) instead of version 1.
    """

    def __init__(self, offset_free: bool = False):
        self.offset_free = bool(offset_free)
        layout, size, slices = VERSIONS[FORMAT_LABEL_V2 if offset_free else FORMAT_LABEL]
        self.msg = _new_message(layout)
        self.msg.data = np.zeros(size).tolist()
        # a numpy view on the message's own array.array: writes go straight into the message
        self._data = np.frombuffer(self.msg.data, dtype=np.float64)
        self._du_dx = self._data[SLICES['du_dx']].reshape(NU, NX)
        self._du_dtheta = self._data[SLICES['du_dtheta']].reshape(NU, th.N_THETA)
        if offset_free:
            self._d = self._data[SLICES_V2['d']]
            self._du_dd = self._data[SLICES_V2['du_dd']].reshape(NU, NX)
            self._gain_index = SLICES_V2['observer_gain'].start

    def encode(self, stamp, odom_stamp, revision: int, status: int, solve_ms: float,
               x: np.ndarray, u: np.ndarray, du_dx: np.ndarray,
               du_dtheta: np.ndarray, d: np.ndarray | None = None,
               du_dd: np.ndarray | None = None,
               observer_gain: float | None = None) -> Float64MultiArray:
        """Fill and return the message for one step.

        ``stamp``, ``odom_stamp``: objects with integer ``sec``/``nanosec`` (ROS ``Time`` or
        :class:`Stamp`); ``x`` (12,), ``u`` (4,), ``du_dx`` (4, 12), ``du_dtheta`` (4, 94);
        ``d`` (12,), ``du_dd`` (4, 12) and ``observer_gain`` exactly when the encoder is
        ``offset_free``.
        Only shapes are checked here (ValueError); the reader checks content.
        """
        given = {d is not None, du_dd is not None, observer_gain is not None}
        if given != {self.offset_free}:
            raise ValueError('an offset-free encoder needs d, du_dd and observer_gain, '
                             'another takes none of them')
        if self.offset_free:
            if np.shape(d) != (NX,) or np.shape(du_dd) != (NU, NX):
                raise ValueError(f'sensitivity sample needs d (12,) and du_dd (4, 12); got '
                                 f'{np.shape(d)}, {np.shape(du_dd)}')
            self._d[...] = d
            self._du_dd[...] = du_dd
            self._data[self._gain_index] = observer_gain
        if (np.shape(x) != (NX,) or np.shape(u) != (NU,) or np.shape(du_dx) != (NU, NX)
                or np.shape(du_dtheta) != (NU, th.N_THETA)):
            raise ValueError('sensitivity sample needs x (12,), u (4,), du_dx (4, 12) and '
                             f'du_dtheta (4, 94); got {np.shape(x)}, {np.shape(u)}, '
                             f'{np.shape(du_dx)}, {np.shape(du_dtheta)}')
        data = self._data
        data[0] = stamp.sec
        data[1] = stamp.nanosec
        data[2] = odom_stamp.sec
        data[3] = odom_stamp.nanosec
        data[4] = revision
        data[5] = status
        data[6] = solve_ms
        data[SLICES['x']] = x
        data[SLICES['u']] = u
        self._du_dx[...] = du_dx
        self._du_dtheta[...] = du_dtheta
        return self.msg

    def encode_sample(self, sample: SensitivitySample) -> Float64MultiArray:
        """Fill and return the message for ``sample`` (see :meth:`encode`)."""
        return self.encode(sample.stamp, sample.odom_stamp, sample.revision, sample.status,
                           sample.solve_ms, sample.x, sample.u, sample.du_dx,
                           sample.du_dtheta, sample.d, sample.du_dd, sample.observer_gain)


def sensitivity_message(sample: SensitivitySample) -> Float64MultiArray:
    """Encode ``sample`` into a new ``Float64MultiArray`` (allocates; nodes use the encoder).

    Version 2 when the sample carries a disturbance estimate, version 1 otherwise.
    """
    return SensitivityEncoder(sample.offset_free).encode_sample(sample)


def _check_layout(layout) -> tuple:
    """Check the layout; return its version's ``(layout, size, slices)``."""
    dims = layout.dim
    if not dims or dims[0].label not in VERSIONS:
        found = dims[0].label if dims else 'no dimensions'
        raise ValueError(f'sensitivity message has format {found!r}, expected '
                         f'{FORMAT_LABEL!r} or {FORMAT_LABEL_V2!r} (another version or '
                         'another message)')
    version = VERSIONS[dims[0].label]
    expected_layout = version[0]
    if len(dims) != len(expected_layout):
        raise ValueError(f'sensitivity message has {len(dims)} layout dimensions, expected '
                         f'{len(expected_layout)}: it has format {dims[0].label!r}')
    for index, (dim, expected) in enumerate(zip(dims, expected_layout)):
        if (dim.label, dim.size, dim.stride) != expected:
            raise ValueError(f'sensitivity message dimension {index} is ({dim.label!r}, '
                             f'size {dim.size}, stride {dim.stride}), expected '
                             f'({expected[0]!r}, size {expected[1]}, stride {expected[2]})')
    if layout.data_offset != 0:
        raise ValueError(f'sensitivity message has data_offset {layout.data_offset}, '
                         'expected 0')
    return version


def parse_sensitivity_message(msg: Float64MultiArray) -> SensitivitySample:
    """Decode a ``~/sensitivity`` message into a :class:`SensitivitySample`.

    Raises ValueError naming the problem (module docstring); the sample holds read-only
    views of one private copy of the data, safe to keep.
    """
    _, size, slices = _check_layout(msg.layout)
    if len(msg.data) != size:
        raise ValueError(f'sensitivity message has {len(msg.data)} values, expected {size}')
    data = np.array(msg.data, dtype=np.float64)
    data.flags.writeable = False
    for index, name in _INTEGER_ENTRIES:
        value = data[index]
        if not float(value).is_integer():       # also refuses NaN and inf
            raise ValueError(f'sensitivity message {name} is {value}, expected an integer')
    try:
        sample = SensitivitySample(
            (int(data[0]), int(data[1])), (int(data[2]), int(data[3])),
            int(data[4]), int(data[5]), float(data[6]), data[SLICES['x']],
            data[SLICES['u']], data[SLICES['du_dx']].reshape(NU, NX),
            data[SLICES['du_dtheta']].reshape(NU, th.N_THETA),
            *((data[slices['d']], data[slices['du_dd']].reshape(NU, NX),
               float(data[slices['observer_gain']][0])) if 'd' in slices else ()))
    except ValueError as exc:
        raise ValueError(f'sensitivity message: {exc}') from None
    problem = sample.non_finite()
    if problem:
        raise ValueError(f'sensitivity message: {problem}')
    return sample
