"""A stand-in for ``core.learning.optimum.optimum_reference`` in the reproduce tests.

It does no optimisation: it returns the start theta0 and its closed-loop cost, so a test
can check how ``reproduce`` reports a present optimum reference without waiting for one.
A module of its own so the worker processes (spawned) can import it by name.
"""

from hybrid_mpc_ros.core.learning.episode import rollout


def optimum_reference(scenario, out_dir):
    """Return ``{'cost', 'iterations', 'theta'}`` of theta0 (no trajectory: the hook flies it)."""
    policy = scenario.policy()
    theta = policy.theta.copy()
    record = rollout(scenario.plant().step, policy, scenario.x0,
                     scenario.tuning.episode_steps, False)
    return {'cost': scenario.cost()(record), 'iterations': 0, 'theta': theta}
