"""The quadcopter model against facts the equations fix (no ROS)."""

import math

import numpy as np
import pytest

from hybrid_mpc_ros.core.config import ConfigError
from hybrid_mpc_ros.core.model.quadcopter import NU, NX, QuadParams, Quadcopter


@pytest.fixture(scope='module')
def quad():
    return Quadcopter(QuadParams(), dt=0.1, substeps=4)


def test_hover_speed_matches_paper():
    assert QuadParams().hover_speed == pytest.approx(620.6, abs=0.05)


@pytest.mark.parametrize('position,yaw', [((0.0, 0.0, 0.0), 0.0), ((-6.0, -3.5, 2.0), 0.7)])
def test_hover_keeps_state_constant_for_10_s(quad, position, yaw):
    x0 = quad.hover_state(position, yaw)
    x = x0.copy()
    for _ in range(100):
        x = quad.step(x, quad.params.hover_input)
    assert np.max(np.abs(x - x0)) < 1e-9


def test_equal_rotor_speeds_produce_no_rotation(quad):
    x = np.zeros(NX)
    x[3:6] = [0.3, -0.2, 0.1]          # translating, level, not rotating
    for _ in range(50):
        x = quad.step(x, np.full(NU, 500.0))
    assert np.all(x[6:12] == 0.0)
    assert x[5] < 0.0                  # 500 rad/s is below hover: it sinks


def test_rotor_differences_give_the_torques_of_the_equations(quad):
    p = quad.params
    w, dw = p.hover_speed, 20.0
    base = np.zeros(NX)
    # roll: rotor 4 (left, +y) faster than rotor 2 (right) rolls right-side down, positive p
    u = np.array([w, w - dw, w, w + dw])
    expected = p.arm_length * p.thrust_coeff * ((w + dw) ** 2 - (w - dw) ** 2) / p.inertia_xx
    rates = quad.f(base, u)[9:12]
    assert rates[0] == pytest.approx(expected, rel=1e-12) and expected > 0
    assert rates[1] == pytest.approx(0.0, abs=1e-12)
    # pitch: rotor 3 (back) faster than rotor 1 (front) pitches nose down, positive q
    u = np.array([w - dw, w, w + dw, w])
    expected = p.arm_length * p.thrust_coeff * ((w + dw) ** 2 - (w - dw) ** 2) / p.inertia_yy
    assert quad.f(base, u)[10] == pytest.approx(expected, rel=1e-12) and expected > 0
    # yaw: rotors 1 and 3 faster than 2 and 4 give positive r with the drag-torque coefficient
    u = np.array([w + dw, w - dw, w + dw, w - dw])
    expected = 2 * p.drag_torque_coeff * ((w + dw) ** 2 - (w - dw) ** 2) / p.inertia_zz
    assert quad.f(base, u)[11] == pytest.approx(expected, rel=1e-12) and expected > 0


def test_gyroscopic_term_couples_rates(quad):
    p = quad.params
    x = np.zeros(NX)
    x[10] = 0.2                        # pitch rate q
    u = np.array([630.0, 600.0, 630.0, 600.0])   # omega_G = +60
    pdot = quad.f(x, u)[9]
    assert pdot == pytest.approx(-p.rotor_inertia * 0.2 * 60.0 / p.inertia_xx, rel=1e-12)


def test_free_fall_with_drag_matches_closed_form(quad):
    p = quad.params
    tau = p.mass / p.translational_drag
    v_terminal = p.gravity * tau
    x = np.zeros(NX)
    for step in range(1, 31):
        x = quad.step(x, np.zeros(NU))
        t = step * quad.dt
        v_exact = -v_terminal * (1 - math.exp(-t / tau))
        z_exact = -v_terminal * t + v_terminal * tau * (1 - math.exp(-t / tau))
        assert x[5] == pytest.approx(v_exact, rel=1e-8)
        assert x[2] == pytest.approx(z_exact, rel=1e-8)
    assert np.all(x[[0, 1, 3, 4]] == 0.0)


def test_step_jacobians_match_central_differences(quad):
    rng = np.random.default_rng(7)
    for _ in range(10):
        x = np.concatenate([rng.uniform(-2, 2, 3), rng.uniform(-1.5, 1.5, 3),
                            rng.uniform(-0.6, 0.6, 3), rng.uniform(-0.4, 0.4, 3)])
        u = rng.uniform(450.0, 630.0, NU)
        jx, ju = quad.jacobians(x, u)
        fd_x = np.empty((NX, NX))
        for i in range(NX):
            h = 1e-6
            e = np.zeros(NX)
            e[i] = h
            fd_x[:, i] = (quad.step(x + e, u) - quad.step(x - e, u)) / (2 * h)
        fd_u = np.empty((NX, NU))
        for i in range(NU):
            h = 1e-4
            e = np.zeros(NU)
            e[i] = h
            fd_u[:, i] = (quad.step(x, u + e) - quad.step(x, u - e)) / (2 * h)
        for analytic, numeric in ((jx, fd_x), (ju, fd_u)):
            scale = np.max(np.abs(numeric))
            assert np.max(np.abs(analytic - numeric)) / scale < 1e-6


def test_plant_constants_come_from_a_parameter_file(tmp_path):
    path = tmp_path / 'plant.yaml'
    path.write_text('quadcopter_simulator:\n  ros__parameters:\n    period_s: 0.1\n'
                    '    plant:\n      mass: 0.55\n      translational_drag: 0.35\n')
    params = QuadParams.from_yaml(path)
    assert params.mass == 0.55 and params.translational_drag == 0.35
    assert params.inertia_xx == QuadParams().inertia_xx
    assert params.hover_speed > QuadParams().hover_speed


def test_bad_plant_constants_are_rejected_clearly(tmp_path):
    with pytest.raises(ConfigError, match='unknown plant constants'):
        QuadParams.from_mapping({'mas': 1.0})
    with pytest.raises(ConfigError, match='mass must be > 0'):
        QuadParams.from_mapping({'mass': -1.0})
    with pytest.raises(ConfigError, match='finite'):
        QuadParams.from_mapping({'gravity': float('nan')})
    with pytest.raises(ConfigError, match='not found'):
        QuadParams.from_yaml(tmp_path / 'missing.yaml')
    with pytest.raises(ConfigError, match='sampling period'):
        Quadcopter(dt=0.0)


def test_forward_euler_is_one_explicit_step_per_substep(quad):
    """integrator='euler': x+ = x + dt f(x, u) per sub-step; many sub-steps approach RK4."""
    euler = Quadcopter(quad.params, dt=0.1, substeps=1, integrator='euler')
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.uniform(-2, 2, 3), rng.uniform(-1, 1, 3),
                        rng.uniform(-0.5, 0.5, 3), rng.uniform(-0.3, 0.3, 3)])
    u = rng.uniform(550.0, 630.0, NU)
    np.testing.assert_allclose(euler.step(x, u), x + 0.1 * quad.f(x, u), rtol=0, atol=1e-14)
    jx, _ = euler.jacobians(x, u)
    np.testing.assert_allclose(jx[0:3, 3:6], 0.1 * np.eye(3), atol=1e-15)   # p+ = p + dt v
    fine = Quadcopter(quad.params, dt=0.1, substeps=1000, integrator='euler')
    assert np.max(np.abs(fine.step(x, u) - quad.step(x, u))) < 1e-3
    assert np.max(np.abs(euler.step(x, u) - quad.step(x, u))) > 1e-3
    with pytest.raises(ConfigError, match='integrator'):
        Quadcopter(quad.params, dt=0.1, substeps=1, integrator='midpoint')
