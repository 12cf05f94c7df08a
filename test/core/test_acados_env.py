"""The acados setup module builds, caches and solves a tiny OCP with the real solver."""

import os

import numpy as np
import pytest

from hybrid_mpc_ros.core.mpc import acados_env
from mpc_checks import compiled_solvers


def _tiny_ocp(code_dir, horizon=5):
    """A double integrator with linear discrete dynamics and a least-squares cost."""
    at = acados_env.acados_template()
    import casadi as ca
    ocp = at.AcadosOcp()
    model = at.AcadosModel()
    model.name = 'tiny_double_integrator'
    x = ca.SX.sym('x', 2)
    u = ca.SX.sym('u', 1)
    model.x, model.u = x, u
    model.disc_dyn_expr = ca.vertcat(x[0] + 0.1 * x[1], x[1] + 0.1 * u[0])
    ocp.model = model
    ocp.dims.N = horizon
    ocp.cost.cost_type = 'LINEAR_LS'
    ocp.cost.cost_type_e = 'LINEAR_LS'
    ocp.cost.Vx = np.vstack([np.eye(2), np.zeros((1, 2))])
    ocp.cost.Vu = np.array([[0.0], [0.0], [1.0]])
    ocp.cost.W = np.diag([1.0, 1.0, 0.1])
    ocp.cost.yref = np.zeros(3)
    ocp.cost.Vx_e = np.eye(2)
    ocp.cost.W_e = np.eye(2)
    ocp.cost.yref_e = np.zeros(2)
    ocp.constraints.x0 = np.zeros(2)
    ocp.constraints.idxbu = np.array([0])
    ocp.constraints.lbu = np.array([-1.0])
    ocp.constraints.ubu = np.array([1.0])
    ocp.solver_options.integrator_type = 'DISCRETE'
    ocp.solver_options.qp_solver = 'PARTIAL_CONDENSING_HPIPM'
    ocp.solver_options.nlp_solver_type = 'SQP'
    ocp.solver_options.tf = 0.1 * horizon
    ocp.code_export_directory = code_dir
    return ocp


def test_setup_sets_environment_and_finds_template():
    install = acados_env.setup()
    assert os.environ['ACADOS_SOURCE_DIR'] == install.source_dir
    assert os.access(os.environ['TERA_PATH'], os.X_OK)
    at = acados_env.acados_template()
    assert hasattr(at, 'AcadosOcpSolver')
    assert install.flavour in ('comma-deps-acados', 'upstream')


def test_tiny_ocp_builds_caches_and_solves(tmp_path, monkeypatch):
    monkeypatch.setenv(acados_env.CACHE_ENV, str(tmp_path))
    key = acados_env.formulation_key({'test': 'tiny', 'N': 5})
    solver = acados_env.cached_ocp_solver(key, _tiny_ocp)
    assert (tmp_path / key / 'BUILD_OK').is_file()
    x0 = np.array([1.0, 0.0])
    solver.set(0, 'lbx', x0)
    solver.set(0, 'ubx', x0)
    assert solver.solve() == 0
    u0 = solver.get(0, 'u')
    # pushing a positive position back to zero needs a negative, bounded acceleration
    assert -1.0 - 1e-9 <= u0[0] < 0.0
    # second construction loads the compiled solver: no code generation, no compilation
    before = compiled_solvers()
    again = acados_env.cached_ocp_solver(key, _tiny_ocp)
    assert compiled_solvers() == before
    again.set(0, 'lbx', x0)
    again.set(0, 'ubx', x0)
    assert again.solve() == 0
    np.testing.assert_allclose(again.get(0, 'u'), u0, atol=1e-9)


def test_formulation_key_changes_with_formulation():
    assert acados_env.formulation_key({'N': 5}) != acados_env.formulation_key({'N': 6})
    assert acados_env.formulation_key({'N': 5}) == acados_env.formulation_key({'N': 5})


def test_missing_acados_gives_a_clear_error(monkeypatch):
    import importlib
    real = importlib.import_module

    def no_acados(name, *args, **kwargs):
        if name == 'acados':
            raise ImportError('simulated absence')
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib, 'import_module', no_acados)
    monkeypatch.setattr(importlib.util, 'find_spec', lambda name: None)
    with pytest.raises(acados_env.AcadosNotFound, match='comma-deps-acados'):
        acados_env.locate()
