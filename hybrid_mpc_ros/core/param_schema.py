"""Checking ROS parameter files against a schema, without ROS.

A parameter file (``node: ros__parameters: {...}``) is read by PyYAML here and by rcl for
the nodes, and ROS types a parameter by how its value is written: ``1`` is an integer,
``1.0`` a double, and PyYAML (YAML 1.1) reads ``1e-5`` as a string while rcl reads a
double. So the checks accept exactly what a node declaring the parameter would accept
(a double is a YAML float, an integer a YAML int, arrays homogeneous and non-empty), and
the messages say how to write a value that was typed differently. :class:`ParameterFile`
turns a problem into a :class:`~hybrid_mpc_ros.core.config.ConfigError` naming the file
and the key (``section.group.key``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
import difflib
import math
import re
from typing import Any, Callable

import numpy as np

from hybrid_mpc_ros.core.config import ConfigError


class Problem(Exception):
    """What is wrong with one value; :meth:`ParameterFile.read` adds the file and the key."""


def describe(value) -> str:
    """Describe a parsed YAML value the way an error message names it."""
    if isinstance(value, bool):
        return f'the boolean {str(value).lower()}'
    if isinstance(value, int):
        return f'the integer {value}'
    if isinstance(value, float):
        return f'the floating-point number {value!r}'
    if isinstance(value, str):
        return f'the string {value!r}'
    if isinstance(value, list):
        return f'a list of {len(value)} entries'
    if isinstance(value, dict):
        return 'a group of keys'
    return f'{type(value).__name__} {value!r}'


_NUMBER_TEXT = re.compile(r'^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$')


def type_problem(expected: str, value) -> Problem:
    """Say what was expected and, for the usual YAML traps, how to write it."""
    message = f'expected {expected}, got {describe(value)}'
    if 'floating-point' in expected and isinstance(value, int) and not isinstance(value, bool):
        message += (f': ROS types a parameter by how it is written, so write {value}.0 '
                    '(nodes declare this parameter as a double)')
    elif isinstance(value, str) and _NUMBER_TEXT.match(value.strip()):
        mantissa, _, exponent = value.strip().lower().partition('e')
        fixed = (mantissa if '.' in mantissa else mantissa + '.0') + (
            'e' + exponent if exponent else '')
        message += (': YAML reads a number without a decimal point in front of the '
                    f'exponent as a string, so write {fixed}')
    return Problem(message)


@dataclass(frozen=True)
class Spec:
    """One parameter of a schema: its check, ROS type, description and range.

    ``check(value)`` returns the checked value or raises :class:`Problem`; ``ros_type``
    names the ``rclpy.parameter.Parameter.Type`` a node declares it with (``'DOUBLE'``,
    ``'INTEGER_ARRAY'``, ...); ``description`` says what it is, with its unit; ``low`` and
    ``high`` (None: unbounded) are the range a node's descriptor gets, both ends included
    (rclpy enforces it on scalars only); ``constraints`` is the text ``ros2 param
    describe`` shows for what a range cannot say (a strict bound, a length, choices).
    """

    check: Callable[[Any], Any]
    ros_type: str
    description: str = ''
    low: float | int | None = None
    high: float | int | None = None
    constraints: str = ''

    def __call__(self, value):
        """Check ``value``; return the checked value or raise :class:`Problem`."""
        return self.check(value)

    def describe(self, description: str) -> 'Spec':
        """Return this spec with ``description``."""
        return replace(self, description=description)

    def within(self, low=None, high=None, constraints: str | None = None) -> 'Spec':
        """Return this spec with a narrower range a node enforces (the check is unchanged)."""
        return replace(self, low=self.low if low is None else low,
                       high=self.high if high is None else high,
                       constraints=self.constraints if constraints is None else constraints)

    def range(self) -> tuple | None:
        """Return the ``(low, high)`` descriptor range of a bounded scalar, else None."""
        if self.ros_type not in ('DOUBLE', 'INTEGER') or (self.low is None and self.high is None):
            return None
        if self.ros_type == 'DOUBLE':
            return (-math.inf if self.low is None else float(self.low),
                    math.inf if self.high is None else float(self.high))
        return (-2 ** 63 if self.low is None else int(self.low),
                2 ** 63 - 1 if self.high is None else int(self.high))


def _bound_text(minimum, strict: bool, maximum=None) -> str:
    parts = []
    if minimum is not None:
        parts.append(f'{">" if strict else ">="} {minimum:g}')
    if maximum is not None:
        parts.append(f'<= {maximum:g}')
    return ' and '.join(parts)


def _check_floating(minimum, strict, maximum):
    def check(value):
        if isinstance(value, bool) or not isinstance(value, float):
            raise type_problem('a floating-point number', value)
        if not math.isfinite(value):
            raise Problem(f'must be finite, got {value}')
        if minimum is not None and (value <= minimum if strict else value < minimum):
            raise Problem(f'must be {">" if strict else ">="} {minimum:g}, got {value:g}')
        if maximum is not None and value > maximum:
            raise Problem(f'must be <= {maximum:g}, got {value:g}')
        return value
    return check


def floating(minimum: float | None = None, strict: bool = False,
             maximum: float | None = None, description: str = '') -> Spec:
    """Check one finite double, ``>= minimum`` (``> minimum`` if strict), ``<= maximum``."""
    return Spec(_check_floating(minimum, strict, maximum), 'DOUBLE', description, minimum,
                maximum, f'{_bound_text(minimum, True)}' if strict else '')


def floats(length: int, minimum: float | None = None, strict: bool = False,
           description: str = '') -> Spec:
    """Check a list of ``length`` finite doubles; return a float array (length,)."""
    item = _check_floating(minimum, strict, None)

    def check(value):
        if not isinstance(value, list):
            raise type_problem(f'a list of {length} floating-point numbers', value)
        if len(value) != length:
            raise Problem(f'expected {length} values, got {len(value)}')
        out = []
        for index, entry in enumerate(value):
            try:
                out.append(item(entry))
            except Problem as exc:
                raise Problem(f'entry {index}: {exc}') from None
        return np.array(out, dtype=float)
    bound = _bound_text(minimum, strict)
    return Spec(check, 'DOUBLE_ARRAY', description, constraints=f'{length} finite values'
                + (f', each {bound}' if bound else ''))


def integer(minimum: int | None = None, maximum: int | None = None,
            description: str = '') -> Spec:
    """Check one integer, optionally ``>= minimum`` and ``<= maximum``."""
    def check(value):
        if isinstance(value, bool) or not isinstance(value, int):
            raise type_problem('an integer', value)
        if minimum is not None and value < minimum:
            raise Problem(f'must be >= {minimum}, got {value}')
        if maximum is not None and value > maximum:
            raise Problem(f'must be <= {maximum}, got {value}')
        return value
    return Spec(check, 'INTEGER', description, minimum, maximum)


def _check_boolean(value):
    if not isinstance(value, bool):
        raise type_problem('true or false', value)
    return value


def boolean(description: str = '') -> Spec:
    """Check one boolean."""
    return Spec(_check_boolean, 'BOOL', description)


def _check_text(choices):
    def check(value):
        if not isinstance(value, str) or not value:
            raise type_problem('a non-empty string', value)
        if choices is not None and value not in choices:
            raise Problem(f'must be one of {list(choices)}, got {value!r}')
        return value
    return check


def _choices_text(choices) -> str:
    return 'one of ' + ', '.join(repr(choice) for choice in choices) if choices else ''


def text(choices: tuple[str, ...] | None = None, description: str = '') -> Spec:
    """Check one non-empty string, optionally one of ``choices``."""
    return Spec(_check_text(choices), 'STRING', description,
                constraints=_choices_text(choices))


def _list_of(item, what: str, distinct: bool):
    """Check a non-empty list, each entry checked by ``item``; return a tuple.

    ``what`` names the entries in the error (``'strings'``); with ``distinct`` the entries
    must differ from each other.
    """
    def check(value):
        if not isinstance(value, list) or not value:
            raise type_problem(f'a non-empty list of {what}', value)
        out = []
        for index, entry in enumerate(value):
            try:
                out.append(item(entry))
            except Problem as exc:
                raise Problem(f'entry {index}: {exc}') from None
        if distinct and len(set(out)) != len(out):
            raise Problem(f'entries must be distinct, got {out}')
        return tuple(out)
    return check


def texts(choices: tuple[str, ...], description: str = '') -> Spec:
    """Check a non-empty list of distinct strings from ``choices``."""
    return Spec(_list_of(_check_text(choices), 'strings', distinct=True), 'STRING_ARRAY',
                description, constraints='distinct, each ' + _choices_text(choices))


def distinct_floats(minimum: float, description: str = '') -> Spec:
    """Check a non-empty list of distinct doubles above ``minimum``; return a tuple."""
    return Spec(_list_of(_check_floating(minimum, True, None), 'floating-point numbers',
                         distinct=True), 'DOUBLE_ARRAY', description,
                constraints=f'distinct, each > {minimum:g}')


def float_list(minimum: float | None = None, description: str = '') -> Spec:
    """Check a non-empty list of finite doubles (any length); return a tuple."""
    bound = _bound_text(minimum, False)
    return Spec(_list_of(_check_floating(minimum, False, None), 'floating-point numbers',
                         distinct=False), 'DOUBLE_ARRAY', description,
                constraints='finite' + (f', each {bound}' if bound else ''))


def distinct_integers(minimum: int | None = None, description: str = '') -> Spec:
    """Check a non-empty list of distinct integers, optionally ``>= minimum``; a tuple."""
    bound = _bound_text(minimum, False)
    return Spec(_list_of(integer(minimum).check, 'integers', distinct=True), 'INTEGER_ARRAY',
                description, constraints='distinct' + (f', each {bound}' if bound else ''))


@dataclass(frozen=True)
class Optional:
    """A key that may be left out (a node declares it typed, with no value)."""

    check: Spec

    @property
    def spec(self) -> Spec:
        """The key's spec when it is given."""
        return self.check


def flat_specs(schema: dict, prefix: str = '') -> dict[str, tuple[Spec, bool]]:
    """``{'group.key': (spec, optional)}`` of a nested schema, as ROS names the parameters."""
    out = {}
    for key, spec in schema.items():
        if isinstance(spec, dict):
            out.update(flat_specs(spec, f'{prefix}{key}.'))
        elif isinstance(spec, Optional):
            out[prefix + key] = (spec.spec, True)
        else:
            out[prefix + key] = (spec, False)
    return out


class ParameterFile:
    """Checks the values of one parameter file; errors name the file and the key.

    ``unknown_hint(section, key, close)`` may add advice to the message about an unknown
    key (e.g. where the key belongs instead); ``close`` is the known key it resembles, or
    None.
    """

    def __init__(self, path: str, kind: str = 'parameter file',
                 unknown_hint: Callable[[str, Any, str | None], str] | None = None):
        self.path = path
        self.kind = kind
        self._unknown_hint = unknown_hint

    def error(self, section: str, key: str, problem: str) -> ConfigError:
        """Return the ConfigError for ``problem`` with ``section.key`` of this file."""
        name = f'{section}.{key}' if key else section
        return ConfigError(f'{self.kind} {self.path}: {name}: {problem}')

    def sections(self, data: dict, known: tuple[str, ...],
                 optional: tuple[str, ...] = ()) -> dict:
        """Split a parsed ROS parameter file into ``{section: parameters}``, strictly.

        Every section must be one of ``known`` (a node name, with or without a leading
        slash, or ``/**``) holding exactly ``ros__parameters``; all but ``optional`` ones
        must be there.
        """
        out = {}
        for raw_key, entry in data.items():
            key = raw_key if raw_key == '/**' else str(raw_key).lstrip('/')
            if key not in known:
                close = difflib.get_close_matches(key, list(known), n=1)
                hint = f' (did you mean {close[0]!r}?)' if close else ''
                raise self.error(str(raw_key), '', f'unknown section{hint}; a {self.kind} '
                                 f'has the sections {", ".join(known)}')
            if key in out:
                raise self.error(str(raw_key), '', 'section given twice')
            if not isinstance(entry, dict) or set(entry) != {'ros__parameters'}:
                raise self.error(str(raw_key), '', 'a section of a ROS parameter file holds '
                                 'exactly one key, ros__parameters')
            out[key] = entry['ros__parameters'] if entry['ros__parameters'] is not None else {}
        for key in known:
            if key not in out and key not in optional:
                raise self.error(key, '', 'missing section')
        return out

    def read(self, section: str, data, schema: dict, prefix: str = '') -> dict:
        """Check ``data`` against ``schema``; return the checked values (nested dicts).

        ``schema`` maps each key to a check (a function returning the checked value or
        raising :class:`Problem`), an :class:`Optional` check, or a nested schema (a group;
        one whose keys are all optional may be left out).
        """
        if not isinstance(data, dict):
            raise self.error(section, prefix.rstrip('.'),
                             f'expected a group of keys, got {describe(data)}')
        for key in data:
            if key not in schema:
                raise self.error(section, prefix + str(key), self._unknown(section, key, schema))
        out = {}
        for key, spec in schema.items():
            name = prefix + key
            if key not in data:
                if isinstance(spec, Optional) or (isinstance(spec, dict) and all(
                        optional for _, optional in flat_specs(spec).values())):
                    continue            # an optional key, or a group of optional keys only
                raise self.error(section, name, 'missing')
            if isinstance(spec, dict):
                out[key] = self.read(section, data[key], spec, name + '.')
                continue
            check = spec.check if isinstance(spec, Optional) else spec
            try:
                out[key] = check(data[key])
            except Problem as exc:
                raise self.error(section, name, str(exc)) from None
        return out

    def _unknown(self, section: str, key, schema: dict) -> str:
        message = 'unknown key'
        if isinstance(key, str) and '.' in key:
            message += (' (a dot separates ROS parameter namespaces; write the group as '
                        'nested keys)')
        close = difflib.get_close_matches(str(key), list(schema), n=1)
        if close:
            message += f' (did you mean {close[0]!r}?)'
        if self._unknown_hint is not None:
            message += self._unknown_hint(section, key, close[0] if close else None)
        return message + f'; known keys here: {", ".join(schema)}'
