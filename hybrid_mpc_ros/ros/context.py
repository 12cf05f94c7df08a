"""An rclpy context on a chosen ROS domain with loopback-only discovery, environment untouched.

rclpy (Kilted, 9.x) takes the domain id as an argument of ``rclpy.init`` but has no
argument for the discovery range: its ``Context`` builds the rcl init options with only the
domain id set, and ``rcl_init`` then reads ``ROS_AUTOMATIC_DISCOVERY_RANGE`` from the
process environment, once, copying the result into the context's own init options (checked
in ``ros2/rclpy`` ``src/rclpy/context.cpp`` and ``ros2/rcl`` ``src/rcl/init.c``). Fast DDS
takes the range from those options when it creates the participant, later. So the range can
only be given through the environment, but only for the duration of that one call:
:func:`local_context` sets the variable, initialises, and puts the environment back as it
was, so a library user's process environment (and anything started from it later) is the
same before and after.
"""

from __future__ import annotations

import contextlib
import os
import threading

DISCOVERY_RANGE_VARIABLE = 'ROS_AUTOMATIC_DISCOVERY_RANGE'
DISCOVERY_RANGES = ('OFF', 'LOCALHOST', 'SUBNET', 'SYSTEM_DEFAULT')
_ENV_LOCK = threading.Lock()


@contextlib.contextmanager
def _scoped_variable(name: str, value: str):
    """Set environment variable ``name`` inside the block and restore it after, whatever happens.

    Not safe against another thread reading the environment from C at the same moment (no
    setenv is); the lock only serialises the callers of this module.
    """
    with _ENV_LOCK:
        previous = os.environ.get(name)
        os.environ[name] = value
        try:
            yield
        finally:
            if previous is None:
                del os.environ[name]
            else:
                os.environ[name] = previous


def local_context(domain_id: int, discovery_range: str = 'LOCALHOST',
                  signal_handler_options=None):
    """Return a new initialised ``rclpy.Context`` on ``domain_id`` with ``discovery_range``.

    ``domain_id`` is passed to rclpy directly; ``discovery_range`` (one of
    :data:`DISCOVERY_RANGES`) goes through the environment for the duration of
    ``rclpy.init`` only (see the module docstring). ``signal_handler_options`` is passed on
    to ``rclpy.init`` (``None``: rclpy's default for a non-default context, no handlers).
    The caller shuts the context down (``context.try_shutdown()``).
    """
    import rclpy
    if discovery_range not in DISCOVERY_RANGES:
        raise ValueError(f'discovery_range must be one of {DISCOVERY_RANGES}, '
                         f'got {discovery_range!r}')
    if not 0 <= int(domain_id) <= 232:
        raise ValueError(f'ROS domain id must be in 0..232, got {domain_id}')
    context = rclpy.Context()
    with _scoped_variable(DISCOVERY_RANGE_VARIABLE, discovery_range):
        rclpy.init(context=context, domain_id=int(domain_id),
                   signal_handler_options=signal_handler_options)
    return context
