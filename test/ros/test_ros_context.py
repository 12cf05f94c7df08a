"""The observer's rclpy context: private domain and loopback discovery, environment untouched.

The discovery range a context really uses is read back from rcl through ctypes
(``rcl_context_get_init_options`` -> ``rmw_init_options_t``): the layout of that struct
(Kilted: ``instance_id``, ``implementation_identifier``, ``domain_id`` at byte 16,
``security_options``, then ``discovery_options`` whose first member, the range enum, is at
byte 40) is checked on the way by reading the domain id first.
"""

import ctypes
import os
import sys

import pytest

from hybrid_mpc_ros.ros.context import local_context
from hybrid_mpc_ros.tools.demo import ClosedLoop
from scenario_setup import scenario

RANGE_CODES = {'OFF': 1, 'LOCALHOST': 2, 'SUBNET': 3}   # rmw_automatic_discovery_range_t


def _rmw_options(context):
    """``(domain_id, automatic_discovery_range)`` that rcl initialised ``context`` with."""
    path = os.path.join(sys.prefix, 'lib', 'librcl.so')
    if not os.path.exists(path):
        pytest.skip(f'{path} not found (the PyPI rclpy wheels put it in <venv>/lib)')
    lib = ctypes.CDLL(path)
    lib.rcl_context_get_init_options.restype = ctypes.c_void_p
    lib.rcl_context_get_init_options.argtypes = [ctypes.c_void_p]
    lib.rcl_init_options_get_rmw_init_options.restype = ctypes.c_void_p
    lib.rcl_init_options_get_rmw_init_options.argtypes = [ctypes.c_void_p]
    rmw = lib.rcl_init_options_get_rmw_init_options(
        lib.rcl_context_get_init_options(context.handle.pointer))
    return ctypes.c_size_t.from_address(rmw + 16).value, ctypes.c_int.from_address(rmw + 40).value


@pytest.fixture
def plain_environment(monkeypatch):
    """An environment that would give SUBNET discovery on domain 0 if rclpy read it."""
    monkeypatch.delenv('ROS_AUTOMATIC_DISCOVERY_RANGE', raising=False)
    monkeypatch.setenv('ROS_DOMAIN_ID', '0')


@pytest.mark.parametrize('discovery_range', ['LOCALHOST', 'SUBNET', 'OFF'])
def test_context_gets_domain_and_range_and_leaves_the_environment(plain_environment,
                                                                  discovery_range):
    before = dict(os.environ)
    context = local_context(97, discovery_range)
    try:
        assert dict(os.environ) == before
        assert context.get_domain_id() == 97
        assert _rmw_options(context) == (97, RANGE_CODES[discovery_range])
    finally:
        context.try_shutdown()


def test_a_previous_value_is_restored(monkeypatch):
    monkeypatch.setenv('ROS_AUTOMATIC_DISCOVERY_RANGE', 'SUBNET')
    local_context(98).try_shutdown()
    assert os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'SUBNET'
    with pytest.raises(ValueError, match='discovery_range'):
        local_context(98, 'localhost')
    assert os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'SUBNET'


def test_closed_loop_observer_does_not_touch_the_environment(plain_environment, tmp_path):
    loop = ClosedLoop(scenario(), domain_id=96, log_dir=str(tmp_path))
    before = dict(os.environ)
    try:
        loop._start_observer()
        assert dict(os.environ) == before
        assert _rmw_options(loop._context) == (96, RANGE_CODES['LOCALHOST'])
        assert loop._context.get_domain_id() == 96
    finally:
        loop.close()
