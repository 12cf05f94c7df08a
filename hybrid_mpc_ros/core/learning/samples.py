"""One control step as the controller reports it: :class:`SensitivitySample` (ROS-free).

The controller node publishes one sample per control step (``~/sensitivity``, encoded by
:mod:`hybrid_mpc_ros.ros.sensitivity_msg`); the tuner decodes it back into this type and
feeds :class:`~hybrid_mpc_ros.core.learning.episode.EpisodeBuilder`, which the offline
rollout feeds with the same type. So the tuner's core never sees a ROS message.

Stamps are kept as integer ``(sec, nanosec)`` pairs (:class:`Stamp`), as in
``builtin_interfaces/Time``, so they compare exactly: consecutive steps of one episode are
recognised by their odometry stamps.
"""

from __future__ import annotations

from dataclasses import dataclass
import math
from typing import NamedTuple

import numpy as np

from hybrid_mpc_ros.core.model.quadcopter import NU, NX
from hybrid_mpc_ros.core.mpc import theta as th

NANOS_PER_SECOND = 1_000_000_000
INT32_MIN, INT32_MAX = -2 ** 31, 2 ** 31 - 1
MAX_REVISION = 2 ** 53          # above this a revision no longer survives a float64
# status of the sample of the step at which the controller's envelope abort happened: the
# state x left the envelope, the step already flew the safe theta, and the episode of
# this revision ends there (core/mpc/safe_control.py)
ENVELOPE_ABORT_STATUS = -2


class Stamp(NamedTuple):
    """A time stamp as ``builtin_interfaces/Time``: ``sec`` (int32), ``nanosec`` in [0, 1e9)."""

    sec: int
    nanosec: int

    def __str__(self) -> str:
        total = self.nanoseconds
        sec, nanosec = divmod(abs(total), NANOS_PER_SECOND)
        return f'{"-" if total < 0 else ""}{sec}.{nanosec:09d} s'

    @property
    def nanoseconds(self) -> int:
        """The stamp in integer nanoseconds."""
        return self.sec * NANOS_PER_SECOND + self.nanosec

    @classmethod
    def from_nanoseconds(cls, nanoseconds: int) -> 'Stamp':
        """Make the stamp of an integer number of nanoseconds."""
        sec, nanosec = divmod(int(nanoseconds), NANOS_PER_SECOND)
        return cls(sec, nanosec)

    @classmethod
    def of(cls, value) -> 'Stamp':
        """Make a :class:`Stamp` from a Stamp, a ``(sec, nanosec)`` pair or a ROS ``Time``.

        Raises ValueError unless both parts are integers within the ``Time`` ranges.
        """
        if isinstance(value, tuple):
            sec, nanosec = value
        else:
            sec, nanosec = value.sec, value.nanosec
        for name, part in (('sec', sec), ('nanosec', nanosec)):
            if isinstance(part, (bool, np.bool_)) or not isinstance(part, (int, np.integer)):
                raise ValueError(f'stamp {name} must be an integer, got {part!r}')
        if not INT32_MIN <= sec <= INT32_MAX:
            raise ValueError(f'stamp sec {sec} is outside int32')
        if not 0 <= nanosec < NANOS_PER_SECOND:
            raise ValueError(f'stamp nanosec {nanosec} is outside [0, 1e9)')
        return cls(int(sec), int(nanosec))


def _frozen_array(name: str, value, shape: tuple) -> np.ndarray:
    """``value`` as a read-only float64 array of ``shape``; copied unless already read-only."""
    if (isinstance(value, np.ndarray) and value.dtype == np.float64 and value.shape == shape
            and not value.flags.writeable):
        return value                # the producer already handed over an unchangeable array
    array = np.array(value, dtype=float)
    if array.shape != shape:
        raise ValueError(f'sample {name} has shape {array.shape}, expected {shape}')
    array.flags.writeable = False
    return array


@dataclass(frozen=True)
class SensitivitySample:
    """What the controller reports for one control step.

    ``stamp``: when the controller made the sample; ``odom_stamp``: the stamp of the
    odometry it was computed from (the step's time); both :class:`Stamp`. ``revision``: the
    theta revision the controller used (int >= 0). ``status``: solver status (0 = success,
    acados codes; -1: the state was rejected; :data:`ENVELOPE_ABORT_STATUS`: the state left
    the controller's envelope, which ends the episode of this revision). ``solve_ms``:
    solve time [ms]. ``x`` (12,) the state the step started from; ``u`` (4,) the applied
    rotor speeds [rad/s];
    ``du_dx`` (4, 12) and ``du_dtheta`` (4, 94) the MPC's sensitivities, which may be NaN
    ("not computed") when ``status != 0``. With an offset-free controller
    (:mod:`~hybrid_mpc_ros.core.mpc.offset_free`) ``d`` (12,) is the disturbance estimate
    the step used (state units per period), ``du_dd`` (4, 12) the sensitivity to it
    (NaN like the others) and ``observer_gain`` the gain of the observer that made it
    (the tuner's gradient chains through that observer); all None for a controller
    without one.

    Construction checks structure (shapes, integer fields, stamp ranges) and raises
    ValueError; the finiteness rules are in :meth:`non_finite`, because a sample reports
    what happened and it is for the reader (codec, episode builder) to refuse it. Arrays are
    stored read-only (a read-only float64 input of the right shape is kept as it is, so
    producers that hand over fresh arrays avoid a copy).
    """

    stamp: Stamp
    odom_stamp: Stamp
    revision: int
    status: int
    solve_ms: float
    x: np.ndarray
    u: np.ndarray
    du_dx: np.ndarray
    du_dtheta: np.ndarray
    d: np.ndarray | None = None
    du_dd: np.ndarray | None = None
    observer_gain: float | None = None

    def __post_init__(self):
        set_field = object.__setattr__       # frozen: fields are fixed here, once
        set_field(self, 'stamp', Stamp.of(self.stamp))
        set_field(self, 'odom_stamp', Stamp.of(self.odom_stamp))
        for name in ('revision', 'status'):
            value = getattr(self, name)
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
                raise ValueError(f'sample {name} must be an integer, got {value!r}')
            set_field(self, name, int(value))
        if not 0 <= self.revision <= MAX_REVISION:
            raise ValueError(f'sample revision must lie in [0, 2^53], got {self.revision}')
        if not INT32_MIN <= self.status <= INT32_MAX:
            raise ValueError(f'sample status {self.status} is outside int32')
        set_field(self, 'solve_ms', float(self.solve_ms))
        for name, shape in (('x', (NX,)), ('u', (NU,)), ('du_dx', (NU, NX)),
                            ('du_dtheta', (NU, th.N_THETA))):
            set_field(self, name, _frozen_array(name, getattr(self, name), shape))
        if not (self.d is None) == (self.du_dd is None) == (self.observer_gain is None):
            raise ValueError('sample d, du_dd and observer_gain come together (all or none)')
        if self.d is not None:
            gain = float(self.observer_gain)
            if not 0.0 < gain <= 1.0:            # also refuses NaN
                raise ValueError(f'sample observer_gain must lie in (0, 1], got {gain}')
            set_field(self, 'observer_gain', gain)
            set_field(self, 'd', _frozen_array('d', self.d, (NX,)))
            set_field(self, 'du_dd', _frozen_array('du_dd', self.du_dd, (NU, NX)))

    @property
    def offset_free(self) -> bool:
        """Whether the sample carries a disturbance estimate (``d``, ``du_dd``)."""
        return self.d is not None

    @property
    def ok(self) -> bool:
        """Whether the solve succeeded (``status == 0``)."""
        return self.status == 0

    def non_finite(self) -> str:
        """Name what is non-finite where it may not be (``''`` if nothing is).

        ``x``, ``u``, ``d`` and ``solve_ms`` must always be finite, the sensitivities
        whenever the solve succeeded.
        """
        if not math.isfinite(self.solve_ms) or self.solve_ms < 0.0:
            return f'solve time {self.solve_ms} ms is not a finite non-negative number'
        blocks = [('x', self.x), ('u', self.u)]
        if self.offset_free:
            blocks.append(('d', self.d))
        if self.ok:
            blocks += [('du_dx', self.du_dx), ('du_dtheta', self.du_dtheta)]
            if self.offset_free:
                blocks.append(('du_dd', self.du_dd))
        for name, value in blocks:
            if np.isfinite(value).all():
                continue
            bad = np.flatnonzero(~np.isfinite(value))
            where = 'always' if name in ('x', 'u', 'd') else 'after a successful solve'
            return (f'{name} has {bad.size} non-finite entries (first at flat index '
                    f'{bad[0]}: {value.flat[bad[0]]}); it must be finite {where}')
        return ''
