"""Set every writable parameter of a running node to many values through its services.

Used by the node tests: the sweep asks the node itself which parameters it has
(``list_parameters``, ``describe_parameters``, ``get_parameters``), so a parameter added
later is swept without editing a test. For each parameter that is not read-only it
tries, one ``set_parameters`` call each:

* values inside the declared range, its boundaries and the neighbours just inside
  (scalars with a ``FloatingPointRange``/``IntegerRange``), or a spread of magnitudes
  from tiny to huge (scalars without a range; array elements);
* invalid values: just outside the range, NaN, +-inf, the wrong type (every other
  parameter type), arrays of the wrong length;
* any extra values the test names (the valid range of an array is not in its
  descriptor).

After every call the response must say either "applied" (the node then reports the
value it was given) or "refused" with a non-empty reason (the node then reports its
previous value), the node process must be alive, and ``check_alive`` (the test's own
"still publishing" probe) must pass. Each outcome is recorded for the report.
"""

from __future__ import annotations

from dataclasses import dataclass
import math

from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import (DescribeParameters, GetParameters, ListParameters,
                                SetParameters)

T = ParameterType
_FIELD = {
    T.PARAMETER_BOOL: 'bool_value',
    T.PARAMETER_INTEGER: 'integer_value',
    T.PARAMETER_DOUBLE: 'double_value',
    T.PARAMETER_STRING: 'string_value',
    T.PARAMETER_BYTE_ARRAY: 'byte_array_value',
    T.PARAMETER_BOOL_ARRAY: 'bool_array_value',
    T.PARAMETER_INTEGER_ARRAY: 'integer_array_value',
    T.PARAMETER_DOUBLE_ARRAY: 'double_array_value',
    T.PARAMETER_STRING_ARRAY: 'string_array_value',
}
# one value of every type, for the wrong-type probes
_SAMPLES = {
    T.PARAMETER_BOOL: True,
    T.PARAMETER_INTEGER: 3,
    T.PARAMETER_DOUBLE: 0.5,
    T.PARAMETER_STRING: 'not a number',
    T.PARAMETER_BYTE_ARRAY: [b'\x01'],
    T.PARAMETER_BOOL_ARRAY: [True, False],
    T.PARAMETER_INTEGER_ARRAY: [1, 2, 3],
    T.PARAMETER_DOUBLE_ARRAY: [0.5, 1.5],
    T.PARAMETER_STRING_ARRAY: ['a', 'b'],
}
_MAGNITUDES = (0.0, -0.0, 5e-324, 1e-9, -1e-9, 1.0, -1.0, 1e3, -1e3, 1e12, -1e12,
               1e300, -1e300, 1.7976931348623157e308, -1.7976931348623157e308)
_INT64 = (-2 ** 63, 2 ** 63 - 1)


def parameter(name: str, type_: int, value) -> Parameter:
    """An ``rcl_interfaces/Parameter`` of ``type_`` holding ``value`` (NOT_SET: no value)."""
    msg = Parameter(name=name, value=ParameterValue(type=type_))
    if type_ != T.PARAMETER_NOT_SET:
        setattr(msg.value, _FIELD[type_], value)
    return msg


def python_value(value: ParameterValue):
    """The Python value held by an ``rcl_interfaces/ParameterValue`` (lists for arrays)."""
    if value.type == T.PARAMETER_NOT_SET:
        return None
    held = getattr(value, _FIELD[value.type])
    return held if isinstance(held, (bool, int, float, str)) else list(held)


def same_value(a, b) -> bool:
    """Equality that treats NaN as equal to NaN (elementwise for lists)."""
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b and type(a) is type(b)


@dataclass
class Outcome:
    """What one ``set_parameters`` call did."""

    name: str
    type_: int
    value: object
    applied: bool
    reason: str

    def __str__(self) -> str:
        verdict = 'applied' if self.applied else f'refused: {self.reason}'
        return f'{self.name} = {self.value!r} (type {self.type_}): {verdict}'


def element_positions(size: int, max_positions: int | None) -> list[int]:
    """Array positions to probe one at a time: all, or the ends and the middle of long arrays."""
    if max_positions is None or size <= max_positions:
        return list(range(size))
    return sorted({0, 1, size // 2, size - 2, size - 1})


def candidates(descriptor, current: ParameterValue, extra=(),
               max_positions: int | None = None) -> list[tuple[int, object]]:
    """``(type, value)`` pairs to try on a parameter with this descriptor and value.

    ``max_positions``: arrays longer than this get single-element probes at their ends
    and middle only (every element otherwise).
    """
    type_ = current.type
    values: list[tuple[int, object]] = [(type_, python_value(current))]
    if type_ == T.PARAMETER_DOUBLE:
        if descriptor.floating_point_range:
            bounds = descriptor.floating_point_range[0]
            low, high = sorted((bounds.from_value, bounds.to_value))
            span = high - low
            values += [(type_, v) for v in (
                low, high, 0.5 * (low + high), math.nextafter(low, high),
                math.nextafter(high, low), low + 1e-3 * span, high - 1e-3 * span,
                low - 1e-3 * span - 1e-9, high + 1e-3 * span + 1e-9,
                low - 1e300, high + 1e300)]
            values += [(type_, v) for v in _grid(low, high)]
        else:
            values += [(type_, v) for v in _MAGNITUDES]
        values += [(type_, v) for v in (math.nan, math.inf, -math.inf)]
    elif type_ == T.PARAMETER_INTEGER:
        if descriptor.integer_range:
            bounds = descriptor.integer_range[0]
            low, high = sorted((bounds.from_value, bounds.to_value))
            values += [(type_, v) for v in (low, high, (low + high) // 2, low + 1, high - 1,
                                            low - 1, high + 1)]
            values += [(type_, int(round(v))) for v in _grid(low, high)]
        values += [(type_, v) for v in (0, 1, -1) + _INT64]
    elif type_ == T.PARAMETER_BOOL:
        values += [(type_, True), (type_, False)]
    elif type_ == T.PARAMETER_STRING:
        values += [(type_, v) for v in ('', ' ', 'x', 'lockstep', 'realtime', '/', 'a/b',
                                        'ünïcode', 'x' * 10_000)]
    elif type_ == T.PARAMETER_DOUBLE_ARRAY:
        now = python_value(current)
        size = len(now)
        for element in _MAGNITUDES + (math.nan, math.inf, -math.inf):
            values.append((type_, [element] * size))
            if size > 1:
                values += [(type_, now[:i] + [element] + now[i + 1:])
                           for i in element_positions(size, max_positions)]
        values += [(type_, []), (type_, now[:-1]), (type_, now + [0.0]),
                   (type_, [0.0] * (10 * size + 10))]
    elif type_ in (T.PARAMETER_INTEGER_ARRAY, T.PARAMETER_BOOL_ARRAY,
                   T.PARAMETER_STRING_ARRAY, T.PARAMETER_BYTE_ARRAY):
        now = python_value(current)
        values += [(type_, []), (type_, now[:-1]), (type_, now + now[-1:])]
    values += [(other, sample) for other, sample in _SAMPLES.items() if other != type_]
    values.append((T.PARAMETER_NOT_SET, None))
    values += [(type_, value) for value in extra]
    return values


def _grid(low: float, high: float, count: int = 12) -> list[float]:
    """Points spread over ``[low, high]``: evenly, and log-spaced where the range is > 0.

    Behaviour often changes at small values (a timeout shorter than a period, a throttle
    of 1 s), which an even grid over a long range steps over.
    """
    points = [low + (high - low) * k / count for k in range(1, count)]
    if high > 0.0:
        start = max(low, high * 1e-6) if low > 0.0 else high * 1e-6
        ratio = (high / start) ** (1.0 / count)
        points += [start * ratio ** k for k in range(count + 1)]
    return points


class ParameterClient:
    """Parameter services of one node, called through a conftest ``ProbeNode``."""

    def __init__(self, probe, node_path: str):
        self.probe = probe
        self.node_path = node_path.rstrip('/')

    def _call(self, srv_type, service: str, request):
        return self.probe.call(srv_type, f'{self.node_path}/{service}', request)

    def names(self) -> list[str]:
        """Every parameter the node has."""
        return list(self._call(ListParameters, 'list_parameters',
                               ListParameters.Request()).result.names)

    def describe(self, names) -> dict:
        """Descriptors by name."""
        response = self._call(DescribeParameters, 'describe_parameters',
                              DescribeParameters.Request(names=list(names)))
        return dict(zip(names, response.descriptors))

    def get(self, names) -> dict:
        """``ParameterValue`` messages by name."""
        response = self._call(GetParameters, 'get_parameters',
                              GetParameters.Request(names=list(names)))
        return dict(zip(names, response.values))

    def set(self, parameters) -> list:
        """``SetParametersResult`` of each parameter (separate sets, ``set_parameters``)."""
        return list(self._call(SetParameters, 'set_parameters',
                               SetParameters.Request(parameters=list(parameters))).results)


def sweep(client: ParameterClient, process, check_alive, extra=None, after_applied=None,
          skip=(), max_positions: int | None = None) -> list[Outcome]:
    """Try every candidate value on every writable parameter; return the outcomes.

    ``process`` is the node's :class:`NodeProcess`; ``check_alive()`` must raise (or fail
    an assertion) when the node stopped doing its job. ``extra`` maps a parameter name to
    more values to try; ``after_applied(name, value)`` runs after a value was applied
    (for example to exercise it with a reset). ``skip`` names parameters left alone;
    ``max_positions`` limits the single-element probes of long arrays (:func:`candidates`).
    Asserts, after every call, the contract described in the module docstring. Each
    parameter gets its original value back once its sweep is over.
    """
    extra = extra or {}
    names = client.names()
    descriptors = client.describe(names)
    outcomes = []
    for name in names:
        descriptor = descriptors[name]
        if descriptor.read_only or name in skip:
            continue
        original = client.get([name])[name]
        before = python_value(original)
        for type_, value in candidates(descriptor, original, extra.get(name, ()),
                                       max_positions):
            result = client.set([parameter(name, type_, value)])[0]
            assert process.alive(), (
                f'{name} = {value!r} killed the node:\n{process.log_text()[-4000:]}')
            now = python_value(client.get([name])[name])
            outcome = Outcome(name, type_, value, bool(result.successful), result.reason)
            outcomes.append(outcome)
            if result.successful:
                assert same_value(now, value), f'{outcome}, but the node now reports {now!r}'
                before = now
                if after_applied is not None:
                    after_applied(name, value)
            else:
                assert result.reason.strip(), f'{outcome}: refused without a reason'
                assert same_value(now, before), (
                    f'{outcome}, but the value changed from {before!r} to {now!r}')
            check_alive(str(outcome))
        restored = client.set([parameter(name, original.type, python_value(original))])[0]
        assert restored.successful, f'could not restore {name}: {restored.reason}'
        if after_applied is not None:
            after_applied(name, python_value(original))
        check_alive(f'{name} restored')
    return outcomes


def report(outcomes) -> str:
    """One line per outcome, for a test's output (``pytest -s``) or a failure message."""
    return '\n'.join(str(outcome) for outcome in outcomes)
