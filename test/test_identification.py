"""Identification of the affine nominal model, and the shipped model file."""

import numpy as np

from hybrid_mpc_ros.core import paths
from hybrid_mpc_ros.core.model.identification import identify, IdentificationSettings
from hybrid_mpc_ros.core.model.nominal_model import AffineModel, linearised_model
from hybrid_mpc_ros.core.model.quadcopter import QuadParams, Quadcopter


def test_identification_is_seeded_and_close_to_the_local_linearisation():
    settings = IdentificationSettings(trajectories=30, held_out=5, seed=3)
    first = identify(settings=settings)
    again = identify(settings=settings)
    np.testing.assert_array_equal(first.A, again.A)
    lin = linearised_model(Quadcopter())
    # near hover the plant is nearly linear: the fit recovers its Jacobians
    assert np.max(np.abs(first.B - lin.B)) / np.max(np.abs(lin.B)) < 0.02
    errors = first.header['held_out_errors']
    assert errors['one_step_rmse_position'] < 1e-3
    assert errors['10_step_rmse_position'] < 0.05
    other = identify(settings=IdentificationSettings(trajectories=30, held_out=5, seed=4))
    assert not np.array_equal(first.A, other.A)


def test_identification_sees_a_different_plant():
    heavy = QuadParams(mass=0.5, thrust_coeff=3.2e-6)
    settings = IdentificationSettings(trajectories=20, held_out=5)
    model = identify(heavy, settings=settings)
    assert model.header['plant']['mass'] == 0.5
    nominal = identify(settings=settings)
    assert np.max(np.abs(model.B - nominal.B)) > 1e-4


def test_shipped_model_is_what_identify_produces():
    shipped = AffineModel.load(paths.config_file('nominal_model.npz'))
    assert shipped.header['command'] == 'hybrid-mpc identify'
    assert shipped.header['samples'] == 100 * 60
    fresh = identify(settings=IdentificationSettings(**{
        k: tuple(v) if isinstance(v, list) else v
        for k, v in shipped.header['settings'].items()}))
    np.testing.assert_allclose(fresh.A, shipped.A, rtol=0, atol=1e-12)
    np.testing.assert_allclose(fresh.B, shipped.B, rtol=0, atol=1e-12)
