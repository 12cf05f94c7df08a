"""Identification of the nominal model, the shipped model files, and who may overwrite them."""

from dataclasses import replace
import hashlib
import shutil

import numpy as np
import pytest
from scenario_setup import scenario
import yaml

from hybrid_mpc_ros.core.config import ConfigError
from hybrid_mpc_ros.core.model.nominal_model import AffineModel, linearised_model
from hybrid_mpc_ros.core.scenario import load_scenario
from hybrid_mpc_ros.tools.identify import main as identify_main, overwrite_problem

SMALL = {'trajectories': 30, 'held_out': 5}


@pytest.mark.slow
def test_identification_is_seeded_and_close_to_the_local_linearisation():
    arxiv = scenario()
    first = arxiv.identify(seed=3, **SMALL)
    again = arxiv.identify(seed=3, **SMALL)
    np.testing.assert_array_equal(first.A, again.A)
    lin = linearised_model(arxiv.plant())
    # near hover the plant is nearly linear: the fit recovers its Jacobians
    assert np.max(np.abs(first.B - lin.B)) / np.max(np.abs(lin.B)) < 0.02
    errors = first.header['held_out_errors']
    assert errors['one_step_rmse_position'] < 1e-3
    assert errors['10_step_rmse_position'] < 0.05
    other = arxiv.identify(seed=4, **SMALL)
    assert not np.array_equal(first.A, other.A)


@pytest.mark.slow
def test_identification_sees_a_different_plant():
    arxiv = scenario()
    plant = replace(arxiv.plant_params, mass=0.5, thrust_coeff=3.2e-6)
    heavy = replace(arxiv, simulator=replace(arxiv.simulator, plant=plant))
    model = heavy.identify(trajectories=20, held_out=5)
    assert model.header['plant']['mass'] == 0.5
    nominal = arxiv.identify(trajectories=20, held_out=5)
    assert np.max(np.abs(model.B - nominal.B)) > 1e-4


def test_a_linear_model_has_no_affine_term_and_the_mpc_takes_it():
    """affine: false (the published paper's g = A x + B u): c is exactly 0."""
    published = scenario('l4dc2026')
    model = published.identify(**SMALL)
    assert model.header['settings']['affine'] is False
    assert model.header['integrator'] == 'euler' and model.header['scenario'] == 'l4dc2026'
    assert np.all(model.c == 0.0)
    policy = published.policy(model=model)
    solution = policy.solve(published.x0)
    assert solution.ok
    assert np.all((solution.u >= policy.config.u_min) & (solution.u <= policy.config.u_max))


@pytest.mark.parametrize('name', ['arxiv_v1', 'l4dc2026'])
def test_shipped_model_is_what_identify_produces(name):
    """The committed model file of each scenario is regenerated from the scenario alone."""
    chosen = scenario(name)
    shipped = chosen.nominal_model()
    assert shipped.header['command'] == 'hybrid-mpc identify'
    settings = dict(shipped.header['settings'])
    settings.setdefault('affine', True)          # written before the option existed
    assert settings.pop('target') == chosen.x_ref[0:3].tolist()
    assert settings == {key: getattr(chosen.identification, key) for key in settings}
    assert shipped.header['plant'] == chosen.plant_params.as_dict()
    fresh = chosen.identify()
    np.testing.assert_allclose(fresh.A, shipped.A, rtol=0, atol=1e-12)
    np.testing.assert_allclose(fresh.B, shipped.B, rtol=0, atol=1e-12)
    np.testing.assert_allclose(fresh.c, shipped.c, rtol=0, atol=1e-12)


def test_identify_knows_whose_model_a_file_holds():
    arxiv_model = scenario().nominal_model_path
    # the arXiv model file (written before scenarios existed) fits the arXiv scenario...
    assert overwrite_problem(arxiv_model, scenario()) == ''
    # ...but not the mismatch example, which names it on purpose
    problem = overwrite_problem(arxiv_model, scenario('mismatch_example'))
    assert 'plant' in problem and 'settings' in problem and '--out' in problem
    # another seed is another model: refused unless the header names this scenario
    assert 'settings' in overwrite_problem(arxiv_model, scenario(), seed=1)
    l4dc_model = scenario('l4dc2026').nominal_model_path
    assert overwrite_problem(l4dc_model, scenario('l4dc2026'), seed=1) == ''
    assert "scenario 'l4dc2026'" in overwrite_problem(l4dc_model, scenario())


def _digest(path):
    with open(path, 'rb') as stream:
        return hashlib.sha256(stream.read()).hexdigest()


def test_identify_refuses_to_clobber_another_scenarios_model(tmp_path):
    """The mismatch scenario names the arXiv model: identify must leave that file alone.

    On a copy in a temporary directory (the scenario naming it by absolute path), so a
    failure of the check cannot touch the shipped file.
    """
    model_copy = tmp_path / 'nominal_model.npz'
    shutil.copyfile(scenario().nominal_model_path, model_copy)
    with open(scenario('mismatch_example').path) as stream:
        data = yaml.safe_load(stream)
    data['/**']['ros__parameters']['nominal_model_file'] = str(model_copy)
    path = tmp_path / 'mismatch.yaml'
    path.write_text(yaml.safe_dump(data))
    before = _digest(model_copy)
    with pytest.raises(ConfigError, match='holds the nominal model of another'):
        identify_main(scenario=str(path), trajectories=2)
    assert _digest(model_copy) == before
    # with --out it writes where it is told, and the header says whose model it is
    out = tmp_path / 'mismatch_model.npz'
    assert identify_main(scenario=str(path), out=str(out), trajectories=2) == 0
    written = AffineModel.load(out)
    assert written.header['scenario'] == 'mismatch' and written.header['plant']['mass'] == 0.55
    assert _digest(model_copy) == before
    # naming its own file now, the scenario loads and re-identifies it in place
    data['/**']['ros__parameters']['nominal_model_file'] = str(out)
    path.write_text(yaml.safe_dump(data))
    assert load_scenario(path).nominal_model().header['scenario'] == 'mismatch'
    assert identify_main(scenario=str(path), trajectories=3) == 0
    assert AffineModel.load(out).header['settings']['trajectories'] == 3
