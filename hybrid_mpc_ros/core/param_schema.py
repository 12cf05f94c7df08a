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

from dataclasses import dataclass
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


def floating(minimum: float | None = None, strict: bool = False, maximum: float | None = None):
    """Check one finite double, optionally ``>= minimum`` (``> minimum`` if strict)."""
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


def floats(length: int, minimum: float | None = None, strict: bool = False):
    """Check a list of ``length`` finite doubles; return a float array (length,)."""
    item = floating(minimum, strict)

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
    return check


def integer(minimum: int | None = None):
    """Check one integer, optionally ``>= minimum``."""
    def check(value):
        if isinstance(value, bool) or not isinstance(value, int):
            raise type_problem('an integer', value)
        if minimum is not None and value < minimum:
            raise Problem(f'must be >= {minimum}, got {value}')
        return value
    return check


def boolean(value):
    """Check one boolean."""
    if not isinstance(value, bool):
        raise type_problem('true or false', value)
    return value


def text(choices: tuple[str, ...] | None = None):
    """Check one string, optionally one of ``choices``."""
    def check(value):
        if not isinstance(value, str) or not value:
            raise type_problem('a non-empty string', value)
        if choices is not None and value not in choices:
            raise Problem(f'must be one of {list(choices)}, got {value!r}')
        return value
    return check


def _distinct_list(item, what: str):
    """Check a non-empty list of distinct entries, each checked by ``item``; a tuple."""
    def check(value):
        if not isinstance(value, list) or not value:
            raise type_problem(f'a non-empty list of {what}', value)
        out = []
        for index, entry in enumerate(value):
            try:
                out.append(item(entry))
            except Problem as exc:
                raise Problem(f'entry {index}: {exc}') from None
        if len(set(out)) != len(out):
            raise Problem(f'entries must be distinct, got {out}')
        return tuple(out)
    return check


def texts(choices: tuple[str, ...]):
    """Check a non-empty list of distinct strings from ``choices``."""
    return _distinct_list(text(choices), 'strings')


def distinct_floats(minimum: float):
    """Check a non-empty list of distinct doubles above ``minimum``; return a tuple."""
    return _distinct_list(floating(minimum, strict=True), 'floating-point numbers')


def float_list(minimum: float | None = None):
    """Check a non-empty list of finite doubles (any length); return a tuple."""
    item = floating(minimum)

    def check(value):
        if not isinstance(value, list) or not value:
            raise type_problem('a non-empty list of floating-point numbers', value)
        out = []
        for index, entry in enumerate(value):
            try:
                out.append(item(entry))
            except Problem as exc:
                raise Problem(f'entry {index}: {exc}') from None
        return tuple(out)
    return check


def distinct_integers(minimum: int | None = None):
    """Check a non-empty list of distinct integers, optionally ``>= minimum``; a tuple."""
    item = integer(minimum)

    def check(value):
        if not isinstance(value, list) or not value:
            raise type_problem('a non-empty list of integers', value)
        out = []
        for index, entry in enumerate(value):
            try:
                out.append(item(entry))
            except Problem as exc:
                raise Problem(f'entry {index}: {exc}') from None
        if len(set(out)) != len(out):
            raise Problem(f'entries must be distinct, got {out}')
        return tuple(out)
    return check


@dataclass(frozen=True)
class Optional:
    """A key that may be left out."""

    check: Callable[[Any], Any]


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
        raising :class:`Problem`), an :class:`Optional` check, or a nested schema (a group).
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
                if isinstance(spec, Optional):
                    continue
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
