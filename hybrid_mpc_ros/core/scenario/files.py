"""Where scenario files are: the default one, the shipped ones, a name or a path."""

from __future__ import annotations

import os

from hybrid_mpc_ros.core import paths
from hybrid_mpc_ros.core.config import ConfigError

DEFAULT_SCENARIO = 'l4dc2026.yaml'    # the published paper's experiment
SCENARIO_DIR = 'scenarios'            # under config/


def default_scenario_path() -> str:
    """Path of the default scenario file, ``config/scenarios/l4dc2026.yaml`` (published paper)."""
    return paths.config_file(os.path.join(SCENARIO_DIR, DEFAULT_SCENARIO))


def resolve_scenario_path(name_or_path: str | os.PathLike | None) -> str:
    """Return the scenario file for a path, a shipped scenario's name, or None (the default).

    A path to an existing file is used as it is; otherwise ``name`` (with or without
    ``.yaml``) is looked up in ``config/scenarios`` of the package, where it may name a
    file in a subfolder (``robustness/issue_vehicle``).
    """
    if name_or_path is None:
        return default_scenario_path()
    given = os.fspath(name_or_path)
    if os.path.isfile(given):
        return given
    parts = given.replace(os.sep, '/').split('/')
    if not os.path.isabs(given) and '..' not in parts:      # a name: look among the shipped
        candidates = [given] if given.endswith('.yaml') else [given + '.yaml', given]
        for candidate in candidates:
            try:
                return paths.config_file(os.path.join(SCENARIO_DIR, candidate))
            except FileNotFoundError:
                continue
    raise ConfigError(f'scenario file not found: {given} (neither a file nor a scenario in '
                      f'config/{SCENARIO_DIR}: {", ".join(shipped_scenarios())})')


def shipped_scenarios() -> list[str]:
    """Names of the scenario files the package ships (``config/scenarios/*.yaml``)."""
    found = set()
    for folder in paths.config_dirs():
        folder = os.path.join(folder, SCENARIO_DIR)
        if os.path.isdir(folder):
            found.update(name for name in os.listdir(folder) if name.endswith('.yaml'))
    return sorted(found)
