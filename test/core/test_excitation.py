"""Input excitation: bounded, seeded, off by default, never beyond the rotor bounds."""

import numpy as np
import pytest

from hybrid_mpc_ros.core.config import ConfigError
from hybrid_mpc_ros.core.control.excitation import Excitation, ExcitationConfig
from hybrid_mpc_ros.core.mpc.safe_control import SafeController, SafetyConfig


@pytest.mark.parametrize('kind', ['prbs', 'gaussian'])
def test_excited_commands_never_leave_the_rotor_bounds(kind):
    excitation = Excitation(ExcitationConfig(50.0, kind, 7), 0.0, 630.0)
    rng = np.random.default_rng(0)
    # commands at, near and beyond both bounds
    commands = np.vstack([rng.uniform(-20.0, 650.0, (2000, 4)), np.zeros((50, 4)),
                          np.full((50, 4), 630.0)])
    excited = np.array([excitation.apply(u) for u in commands])
    assert np.all(excited >= 0.0) and np.all(excited <= 630.0)
    inside = np.all((commands > 60.0) & (commands < 570.0), axis=1)
    change = np.abs(excited[inside] - commands[inside])
    assert np.all(change <= 50.0 + 1e-12) and np.max(change) > 10.0
    if kind == 'prbs':
        np.testing.assert_allclose(change, 50.0)


def test_excitation_is_seeded_and_off_by_default():
    first = Excitation(ExcitationConfig(5.0, 'gaussian', 3), 0.0, 630.0)
    again = Excitation(ExcitationConfig(5.0, 'gaussian', 3), 0.0, 630.0)
    other = Excitation(ExcitationConfig(5.0, 'gaussian', 4), 0.0, 630.0)
    u = np.full(4, 300.0)
    a = [first.apply(u) for _ in range(10)]
    np.testing.assert_array_equal(a, [again.apply(u) for _ in range(10)])
    assert not np.array_equal(a, [other.apply(u) for _ in range(10)])
    off = Excitation(ExcitationConfig(), 0.0, 630.0)
    assert not off.enabled and off.apply(u) is u and off.steps == 0
    assert ExcitationConfig().describe() == 'off'
    # a new seed restarts the draws; another amplitude continues them
    first.configure(ExcitationConfig(5.0, 'gaussian', 9))
    fresh = Excitation(ExcitationConfig(5.0, 'gaussian', 9), 0.0, 630.0)
    np.testing.assert_array_equal(first.apply(u), fresh.apply(u))


@pytest.mark.parametrize('settings, match', [
    ({'amplitude_rad_s': -1.0}, 'amplitude'), ({'amplitude_rad_s': float('nan')}, 'amplitude'),
    ({'amplitude_rad_s': 2000.0}, 'amplitude'), ({'kind': 'sine'}, 'kind'),
    ({'seed': -1}, 'seed')])
def test_bad_excitation_settings_are_refused(settings, match):
    with pytest.raises(ConfigError, match=match):
        ExcitationConfig(**settings)


class _Policy:
    """The policy interface, with a command at the upper bound."""

    class config:                                   # noqa: N801 (a stand-in namespace)
        horizon = 5

    theta = np.zeros(94)
    u_ref = np.full(4, 620.0)
    x_ref = np.zeros(12)

    def __init__(self, ok=True):
        self.ok = ok

    def solve(self, x):
        class Solution:
            pass
        solution = Solution()
        solution.ok, solution.u, solution.status = self.ok, np.full(4, 630.0), 0 if self.ok else 4
        solution.solve_ms, solution.message = 0.1, 'test'
        return solution

    def plan(self):
        return np.full((5, 4), 630.0)

    def sensitivities(self):
        return np.zeros((4, 12)), np.zeros((4, 94))

    def reset(self):
        pass


def test_the_safe_controller_excites_within_bounds_but_never_the_failsafe():
    excitation = Excitation(ExcitationConfig(20.0, 'prbs', 0), 0.0, 630.0)
    safe = SafeController(_Policy(), SafetyConfig(0.2, 0, 0.9), 0.0, 630.0, None, excitation)
    commands = np.array([safe.step(np.zeros(12)).u for _ in range(200)])
    assert np.all(commands <= 630.0) and np.all(commands >= 610.0 - 1e-9)
    assert np.any(commands < 630.0) and excitation.steps == 200
    failing = SafeController(_Policy(ok=False), SafetyConfig(0.2, 0, 0.9), 0.0, 630.0, None,
                             excitation)
    result = failing.step(np.zeros(12))
    assert result.mode == 'failsafe' and excitation.steps == 200
    np.testing.assert_array_equal(result.u, failing.failsafe_input)
