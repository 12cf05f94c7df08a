"""Sweeps of independent jobs: what their worker processes share."""

from __future__ import annotations

import os
import sys


def stdout_to_stderr() -> None:
    """Send a worker's stdout (fd 1) to stderr, where the solver's C code prints.

    The bench's stdout is for the table and the JSON line only (a pool's initializer).
    """
    sys.stdout.flush()
    os.dup2(2, 1)
