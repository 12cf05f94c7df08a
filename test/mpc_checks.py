"""Checks shared by the tests of both MPC kinds."""

import os

import numpy as np

from hybrid_mpc_ros.core.mpc import theta as th
from hybrid_mpc_ros.core.mpc.reference_qp import solve_reference


def assert_theta_is_runtime_data(policy):
    """A changed theta changes the command at once, and the QP solved is still the right one."""
    x = policy.x_ref + 0.3
    u_a = policy.solve(x).u
    theta = policy.theta.copy()
    theta[th.SLICE_R] *= 3.0               # heavier input weights: a gentler command
    policy.set_theta(theta)
    u_b = policy.solve(x).u
    assert np.max(np.abs(u_a - u_b)) > 1e-3
    np.testing.assert_allclose(
        policy.plan().reshape(-1), solve_reference(policy.qp, x, policy.x_ref, policy.u_ref),
        atol=1e-6)


def compiled_solvers() -> dict:
    """Modification time of every compiled solver library in the acados cache, by path.

    Equal before and after a build means the build generated and compiled nothing: the
    cache's promise, checked without timing anything.
    """
    from hybrid_mpc_ros.core.mpc import acados_env
    found = {}
    for folder, _, files in os.walk(acados_env.cache_root()):
        for name in files:
            if name.endswith('.so'):
                path = os.path.join(folder, name)
                found[path] = os.stat(path).st_mtime_ns
    return found
