"""The peers (CMA-ES, Bayesian optimisation) on a budget of episodes, and the 90 % figure."""

import numpy as np
import pytest

from hybrid_mpc_ros.core.learning import peers
from hybrid_mpc_ros.core.mpc import theta as th
from hybrid_mpc_ros.tools import bench_peers


def _problem():
    """theta0 like the shipped ones (P's off-diagonal entries at zero), its box, and a cost
    whose minimiser lies outside the box in half of the entries, so bounds are pressed."""
    rng = np.random.default_rng(3)
    theta0 = np.zeros(th.N_THETA)
    theta0[:th.SLICE_R.stop] = rng.uniform(0.1, 3.0, th.SLICE_R.stop)
    box = th.default_box(theta0, 10.0, 1.0)
    target = np.where(np.arange(th.N_THETA) % 2 == 0, 3.0 * box.upper, theta0 + 0.05)

    def cost(record):              # the "record" of the fake episodes is theta itself
        return 1.0 + float(np.sum(((record - target) / np.maximum(np.abs(theta0), 0.1)) ** 2))
    return theta0, box, cost


def _counter(cost, budget):
    return peers.EpisodeCounter(lambda theta, sensitivities: theta.copy(), cost, budget)


@pytest.mark.parametrize('budget', [1, 17, 40])     # 17: CMA-ES's population for n = 94
def test_cma_es_flies_exactly_the_budget_inside_the_box(budget):
    theta0, box, cost = _problem()
    counter = _counter(cost, budget)
    final = peers.cma_es_on_budget(counter, theta0, box, seed=0)
    assert len(counter.costs) == budget
    assert all(box.contains(theta) for theta in counter.thetas) and box.contains(final)
    assert not any(np.array_equal(theta, theta0) for theta in counter.thetas)  # samples
    with pytest.raises(peers.BudgetSpent):
        counter(theta0, False)


def test_cma_es_on_the_diagonals_moves_only_p_q_and_p_r():
    theta0, box, cost = _problem()
    counter = _counter(cost, 40)
    final = peers.cma_es_on_budget(counter, theta0, box, seed=1,
                                   free=peers.free_entries(diagonal=True))
    thetas = np.array(counter.thetas + [final])
    assert np.array_equal(thetas[:, 16:], np.broadcast_to(theta0[16:], (41, 78)))
    assert np.all(np.ptp(thetas[:, :16], axis=0) > 0.0)
    assert min(counter.costs) < cost(theta0)


@pytest.mark.parametrize('budget, diagonal', [
    (1, False), (6, False), pytest.param(8, True, marks=pytest.mark.slow)])
def test_bayes_opt_flies_theta0_first_then_exactly_the_budget_inside_the_box(budget, diagonal):
    # 94 entries: theta0 and the 5 random points only (an acquisition step in 94
    # dimensions takes seconds); 16 entries: 2 acquisition steps too
    theta0, box, cost = _problem()
    counter = _counter(cost, budget)
    free = peers.free_entries(diagonal)
    final = peers.bayes_opt_on_budget(counter, theta0, box, seed=0, free=free)
    assert len(counter.costs) == budget
    assert np.array_equal(counter.thetas[0], theta0)
    assert all(box.contains(theta) for theta in counter.thetas)
    assert np.array_equal(final, counter.thetas[int(np.argmin(counter.costs))])
    fixed = np.setdiff1d(np.arange(th.N_THETA), free)
    assert all(np.array_equal(theta[fixed], theta0[fixed]) for theta in counter.thetas)


def test_episodes_to_90_percent_on_a_known_history():
    costs = [100.0, 98.0, 95.0, 80.0, 85.0, 70.0]
    # best improvement 100 - 78 = 22: 90 % of it is reached at 80.2, by episode 4
    assert peers.episodes_to_fraction(costs, 100.0, 78.0) == 4
    # best 70 (this history's own): the target 73 is first met by episode 6
    assert peers.episodes_to_fraction(costs, 100.0, 70.0) == 6
    # another method found 60: the target 64 is never met
    assert peers.episodes_to_fraction(costs, 100.0, 60.0) is None
    assert peers.episodes_to_fraction(costs, 100.0, 100.0) is None   # nothing improved
    assert peers.episodes_to_fraction(costs, 100.0, 70.0, fraction=0.5) == 4


def _run(scenario, method, seed, costs, start=100.0, final=None):
    return {'scenario': scenario, 'method': method, 'seed': seed, 'start_cost': start,
            'final_cost': min(costs) if final is None else final, 'best_cost': min(costs),
            'max_cost': max(costs), 'episodes': len(costs), 'outside_box': 0,
            'costs': costs}


def test_the_summary_on_hand_made_runs():
    results = [
        # scenario a: the best improvement is b's 100 -> 60, its 90 % target 64
        _run('a', 'hybrid', 0, [100.0, 90.0, 70.0, 64.0]),             # episode 4
        _run('a', 'peer', 0, [130.0, 60.0, 125.0]),    # episode 2; 2 above 1.2 x start
        # scenario b (start 10): best 5 (hybrid), target 5.5
        _run('b', 'hybrid', 0, [10.0, 5.0], start=10.0),               # episode 2
        _run('b', 'peer', 0, [10.0, 9.0, 11.0, 12.5], start=10.0),     # never
        _run('c', 'hybrid', 0, [10.0, 9.0, 8.0], start=10.0),          # episode 3
        _run('c', 'peer', 0, [10.0, 8.0, 13.0], start=10.0),           # episode 2
    ]
    summary = bench_peers.summarise(results)
    hybrid, peer = summary['hybrid'], summary['peer']
    assert hybrid['episodes_to_90pct_median'] == 3 and hybrid['reached_90pct'] == 3
    assert peer['episodes_to_90pct_median'] == 2 and peer['reached_90pct'] == 2
    assert peer['worst_excursion'] == pytest.approx(1.3)
    assert peer['unsafe_episodes'] == 4 and hybrid['unsafe_episodes'] == 0
    assert hybrid['final_cost_median'] == 8.0 and peer['best_over_start_median'] == 0.8
    assert hybrid['episodes'] == 9
    # a median run that never got there: null, not a number
    slow = bench_peers.summarise(results[2:4])
    assert slow['peer']['episodes_to_90pct_median'] is None
