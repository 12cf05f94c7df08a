"""The tuner's ``~/progress`` message: one tuning iteration as ``diagnostic_msgs/DiagnosticArray``.

The one codec both sides use: the tuner node encodes with :func:`progress_message`,
readers (the ``hybrid-mpc tune`` command, tests) decode with :func:`parse_progress`.

Why a ``DiagnosticArray``: PlotJuggler's ROS 2 plugin has a parser for it that turns
every ``KeyValue`` whose value reads as a number into a series named
``<topic>/<status name>/<key>``, so ``/hybrid_tuner/progress/tuning/cost`` and the others
below can be plotted live by name with no configuration (a ``Float64MultiArray`` would
only give ``data[0]``, ``data[1]``, ...). The message holds one ``DiagnosticStatus``:

* ``name`` ``tuning`` (:data:`STATUS_NAME`), ``hardware_id`` empty;
* ``level`` OK, or WARN when the iteration was rolled back or an episode was rerun;
* ``message`` a one-line summary of the iteration;
* ``values``, in this order (:data:`FIELDS`), each a decimal number (``repr`` of a
  float, so no digit is lost), ``nan`` where the iteration has no such value (e.g. no
  zeroth-order gradient for ``eta = 1``):

===================  ===========================================================
key                  meaning
===================  ===========================================================
``iteration``        k (1-based)
``cost``             closed-loop cost C of the base episode (tracking + violation)
``tracking``         its tracking part
``violation``        its constraint-violation penalty
``grad_model_norm``  norm of J_C, the model-based gradient
``grad_zo_norm``     norm of G_zo, the zeroth-order estimate
``step_norm``        norm of theta_{k+1} - theta_k
``alpha``            step size used
``eta``              mixing weight (1: model only, 0: zeroth order only)
``theta_revision``   the controller's theta revision of the base episode
``retries``          episode reruns so far (rejected steps, timeouts, refused sets)
``rollbacks``        iterations refused and rolled back so far
``episodes``         episodes taken so far
``wall_s``           wall time of the iteration [s]
===================  ===========================================================

The header stamp is the tuner's clock when the iteration completed.
"""

from __future__ import annotations

import math

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

STATUS_NAME = 'tuning'
FIELDS = ('iteration', 'cost', 'tracking', 'violation', 'grad_model_norm', 'grad_zo_norm',
          'step_norm', 'alpha', 'eta', 'theta_revision', 'retries', 'rollbacks', 'episodes',
          'wall_s')
_INTEGERS = ('iteration', 'theta_revision', 'retries', 'rollbacks', 'episodes')


def _text(value) -> str:
    if value is None:
        return 'nan'
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int):
        return str(value)
    return repr(float(value))


def progress_message(row: dict, stamp, summary: str, warn: bool = False) -> DiagnosticArray:
    """Encode one iteration's ``row`` (a history row with :data:`FIELDS`) as the message.

    ``stamp`` is a ``builtin_interfaces/Time``; ``summary`` the status message; ``warn``
    raises the level to WARN.
    """
    status = DiagnosticStatus(name=STATUS_NAME, hardware_id='', message=summary,
                              level=DiagnosticStatus.WARN if warn else DiagnosticStatus.OK)
    status.values = [KeyValue(key=key, value=_text(row.get(key))) for key in FIELDS]
    msg = DiagnosticArray(status=[status])
    msg.header.stamp = stamp
    return msg


def parse_progress(msg: DiagnosticArray) -> dict:
    """Decode a ``~/progress`` message: ``{key: value}`` for :data:`FIELDS` plus ``message``.

    Integer keys come back as ``int``, the others as ``float`` (NaN where the iteration
    had none). Raises ValueError when the message is not a progress message.
    """
    statuses = [status for status in msg.status if status.name == STATUS_NAME]
    if len(statuses) != 1:
        raise ValueError(f'a progress message holds one status named {STATUS_NAME!r}, got '
                         f'{[status.name for status in msg.status]}')
    values = {item.key: item.value for item in statuses[0].values}
    missing = [key for key in FIELDS if key not in values]
    if missing:
        raise ValueError(f'progress message lacks {missing}')
    out = {'message': statuses[0].message}
    for key in FIELDS:
        number = float(values[key])
        out[key] = int(number) if key in _INTEGERS and math.isfinite(number) else number
    return out
