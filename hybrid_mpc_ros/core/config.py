"""Reading ROS 2 parameter files without ROS.

Every YAML file in ``config/`` is a ROS parameter file::

    node_name:
      ros__parameters:
        some_param: 1.0
        group:
          nested_param: 2.0

so the same file works with ``ros2 run ... --ros-args --params-file``, ``ros2 launch`` and
the package's own commands. This module is the one place that parses that shape.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Mapping

import yaml


class ConfigError(ValueError):
    """A configuration file or value is missing, malformed or out of range."""


def load_yaml(path: str | os.PathLike) -> dict:
    """Load a YAML mapping from ``path`` with a clear error when it is not one."""
    try:
        with open(path, encoding='utf-8') as stream:
            data = yaml.safe_load(stream)
    except FileNotFoundError as exc:
        raise ConfigError(f'config file not found: {path}') from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f'config file {path} is not valid YAML: {exc}') from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f'config file {path} must hold a mapping, found {type(data).__name__}')
    return data


def ros_parameters(data: Mapping[str, Any], node_name: str | None = None) -> dict:
    """Return the ``ros__parameters`` mapping of ``node_name`` from a parsed parameter file.

    ``node_name`` may be given with or without a leading slash or namespace; the wildcard
    entry ``/**`` applies to every node and is merged under the node's own entry. Without
    ``node_name`` the file must hold exactly one node entry (or be a plain mapping, which
    is returned unchanged so small hand-written files also work).
    """
    entries = {key: value for key, value in data.items()
               if isinstance(value, dict) and 'ros__parameters' in value}
    if not entries:
        return dict(data)
    merged: dict = {}
    if '/**' in entries:
        merged.update(entries['/**']['ros__parameters'] or {})
    if node_name is None:
        named = [key for key in entries if key != '/**']
        if len(named) > 1:
            raise ConfigError(f'parameter file holds several nodes {named}; name one')
        if named:
            merged.update(entries[named[0]]['ros__parameters'] or {})
        return merged
    wanted = node_name.strip('/').split('/')[-1]
    for key, value in entries.items():
        if key != '/**' and key.strip('/').split('/')[-1] == wanted:
            merged.update(value['ros__parameters'] or {})
            return merged
    if '/**' not in entries:
        raise ConfigError(f'parameter file has no entry for node {node_name!r} '
                          f'(entries: {sorted(entries)})')
    return merged


def flatten(params: Mapping[str, Any], prefix: str = '') -> dict:
    """Flatten nested parameter groups to ROS dotted names: ``{'a': {'b': 1}} -> {'a.b': 1}``."""
    flat: dict = {}
    for key, value in params.items():
        name = f'{prefix}{key}'
        if isinstance(value, dict):
            flat.update(flatten(value, name + '.'))
        else:
            flat[name] = value
    return flat


def load_node_params(path: str | os.PathLike, node_name: str | None = None) -> dict:
    """Load the (nested) ``ros__parameters`` of ``node_name`` from the file at ``path``."""
    return ros_parameters(load_yaml(path), node_name)


def file_signature(path: str | os.PathLike, record) -> str:
    """SHA-256 of a YAML file's values and ``record`` (JSON-serialisable), for stored results.

    A stored result is reused only while its signature matches: the values of the file it
    was computed from (comments, key order and layout do not count, so a file's comments
    can be corrected without invalidating what was computed from it) and ``record``, the
    other settings it depends on.
    """
    payload = json.dumps([load_yaml(path), record], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()
