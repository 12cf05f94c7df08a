"""theta layout and the nominal-model file."""

import numpy as np
import pytest
from scenario_setup import scenario
import scipy.linalg

from hybrid_mpc_ros.core.mpc import theta as th
from hybrid_mpc_ros.core.config import ConfigError
from hybrid_mpc_ros.core.model.nominal_model import AffineModel, linearised_model
from hybrid_mpc_ros.core.model.quadcopter import Quadcopter


def test_layout_sizes_and_names():
    assert th.N_THETA == 94 and th.N_P == 78
    names = th.names()
    assert len(names) == 94 and names[16] == 'p_P[0,0]' and names[18] == 'p_P[1,1]'


def test_weights_map_and_inverse():
    rng = np.random.default_rng(0)
    theta = rng.normal(size=th.N_THETA)
    q_mat, r_mat, p_mat = th.weights(theta)
    np.testing.assert_allclose(np.diag(q_mat), theta[:12] ** 2 + 1e-6)
    np.testing.assert_allclose(np.diag(r_mat), theta[12:16] ** 2 + 1e-6)
    low = th.lower_factor(theta[16:])
    np.testing.assert_allclose(p_mat, low @ low.T + 1e-6 * np.eye(12))
    assert np.all(np.linalg.eigvalsh(p_mat) > 0)
    back = th.from_weights(np.diag(q_mat), np.diag(r_mat), p_mat)
    np.testing.assert_allclose(th.weights(back)[2], p_mat, atol=1e-10)


def test_initial_theta_is_the_papers():
    qc, rc = scenario().qc, scenario().rc
    model = linearised_model(Quadcopter())
    theta = th.initial_theta(model.A, model.B, qc, rc)
    q_mat, r_mat, p_mat = th.weights(theta)
    np.testing.assert_allclose(np.diag(q_mat), qc)
    np.testing.assert_allclose(np.diag(r_mat), rc)
    dare = scipy.linalg.solve_discrete_are(model.A, model.B, np.diag(qc), np.diag(rc))
    np.testing.assert_allclose(p_mat, dare, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(th.dare_weight(model.A, model.B, qc, rc), dare, rtol=1e-12)


def test_box_projection():
    theta0 = np.linspace(-1, 1, th.N_THETA)
    box = th.default_box(theta0, scale=10.0, abs_min=1.0)
    assert box.contains(theta0)
    far = theta0 * 100 + 50
    projected = box.project(far)
    assert box.contains(projected) and not box.contains(far)
    assert box.violations(far) and not box.violations(projected)


def test_model_file_round_trip_and_errors(tmp_path):
    model = linearised_model(Quadcopter())
    model.header['note'] = 'test'
    path = tmp_path / 'model.npz'
    model.save(path)
    loaded = AffineModel.load(path)
    np.testing.assert_array_equal(loaded.A, model.A)
    np.testing.assert_array_equal(loaded.c, model.c)
    assert loaded.dt == 0.1 and loaded.header['note'] == 'test'
    with pytest.raises(ConfigError, match='hybrid-mpc identify'):
        AffineModel.load(tmp_path / 'missing.npz')
    (tmp_path / 'bad.npz').write_bytes(b'not an archive')
    with pytest.raises(ConfigError, match='malformed'):
        AffineModel.load(tmp_path / 'bad.npz')
    with pytest.raises(ConfigError, match='shape'):
        AffineModel(np.eye(3), model.B, model.c, 0.1)
