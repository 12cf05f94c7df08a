"""Where the package's shipped files (``config/``) are, installed or in a source checkout."""

from __future__ import annotations

import os
import sys

PACKAGE = 'hybrid_mpc_ros'
# this file is <checkout>/hybrid_mpc_ros/core/paths.py
_SOURCE_CONFIG = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), 'config')


def config_dirs() -> list[str]:
    """Candidate ``config`` directories, most specific first.

    ``$HYBRID_MPC_CONFIG_DIR``; the package's share directory from the ament index (a
    colcon install with its setup file sourced); the source checkout (editable installs,
    ``make setup``); ``<prefix>/share/hybrid_mpc_ros/config`` of the running interpreter.
    """
    dirs = []
    if os.environ.get('HYBRID_MPC_CONFIG_DIR'):
        dirs.append(os.environ['HYBRID_MPC_CONFIG_DIR'])
    if os.environ.get('AMENT_PREFIX_PATH'):
        try:
            from ament_index_python.packages import get_package_share_directory
            dirs.append(os.path.join(get_package_share_directory(PACKAGE), 'config'))
        except (ImportError, LookupError, ValueError):
            pass
    dirs.append(_SOURCE_CONFIG)
    dirs.append(os.path.join(sys.prefix, 'share', PACKAGE, 'config'))
    return dirs


def config_file(name: str) -> str:
    """Path of the shipped file ``config/<name>``; FileNotFoundError lists where we looked."""
    dirs = config_dirs()
    for folder in dirs:
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(f'config file {name!r} not found in: ' + ', '.join(dirs))


def source_config_dir() -> str:
    """Return the ``config`` directory of the source checkout (where ``identify`` writes)."""
    return _SOURCE_CONFIG
