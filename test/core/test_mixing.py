"""Eta rules: the paper's schedule and the agreement rule, on cases with a known answer."""

import math

import numpy as np
import pytest

from hybrid_mpc_ros.core.learning import run
from hybrid_mpc_ros.core.learning.episode import EpisodeRecord
from hybrid_mpc_ros.core.learning.gradients import sample_unit_sphere
from hybrid_mpc_ros.core.learning.mixing import AgreementEta, ScheduleEta
from hybrid_mpc_ros.core.learning.schedules import eta_schedule, Schedule, series_behaviour
from landscape import constant, history_rows, Landscape, landscape_tuner


@pytest.mark.parametrize('angle_deg', [0.0, 30.0, 60.0, 90.0, 150.0])
def test_the_agreement_estimates_the_cosine_of_the_model_s_error_angle(angle_deg):
    """Random-hyperplane rounding: P(signs differ) = angle / pi, so a = cos(angle)."""
    rng = np.random.default_rng(1)
    dim = 94
    true = sample_unit_sphere(rng, dim)
    other = sample_unit_sphere(rng, dim)
    other -= (other @ true) * true
    other /= np.linalg.norm(other)
    angle = math.radians(angle_deg)
    model = math.cos(angle) * true + math.sin(angle) * other
    rule = AgreementEta(constant(1.0), beta=0.9998)
    for _ in range(40000):
        v = sample_unit_sphere(rng, dim)
        rule.observe(0, float(true @ v), float(model @ v))
    assert rule.agreement == pytest.approx(max(0.0, math.cos(angle)), abs=0.06)


def test_a_model_pointing_the_wrong_way_loses_trust_at_the_known_rate():
    cap = eta_schedule(1, 0.5)
    rule = AgreementEta(cap, beta=0.8)
    assert [rule(k) for k in (1, 2, 3)] == [cap(k) for k in (1, 2, 3)]    # prior: trusted
    for j in range(1, 8):
        rule.observe(j, 1.0, -2.0)
        mean = 2 * 0.8 ** j - 1                       # s_bar after j disagreements
        expected = max(0.0, math.cos(math.pi / 2 * (1 - mean)))
        assert rule.agreement == pytest.approx(expected, abs=1e-12)
        assert rule(j + 1) == pytest.approx(min(cap(j + 1), expected), abs=1e-12)
    assert rule(9) == 0.0                             # s_bar < 0: no better than chance
    rule.observe(9, 0.0, 3.0)                         # a zero slope is no evidence either way
    assert rule.mean == pytest.approx(0.8 * (2 * 0.8 ** 7 - 1))
    rule.observe(10, math.nan, 1.0)
    assert rule.count == 8


def test_eta_never_exceeds_the_paper_s_cap_so_sum_alpha_eta_converges():
    rng = np.random.default_rng(3)
    cap, alpha = eta_schedule(0, 0.5), Schedule('log_shifted', 2e-4, 2.0, 0.8, 0)
    rule = AgreementEta(cap)
    n = 20000
    etas = np.empty(n)
    for k in range(1, n + 1):
        etas[k - 1] = rule(k)
        rule.observe(k, rng.normal(), rng.normal() + 0.5)      # a noisy, partly right model
    caps = cap.values(np.arange(1, n + 1))
    assert np.all((etas >= 0.0) & (etas <= caps))
    assert series_behaviour(alpha.values(np.arange(1, n + 1)) * caps)['converges']


def test_what_each_rule_needs_measured():
    assert ScheduleEta(eta_schedule(1, constant=1.0)).needs(4) == (True, False)
    assert ScheduleEta(eta_schedule(1, constant=0.0)).needs(4) == (False, True)
    assert ScheduleEta(eta_schedule(1, 0.5)).needs(4) == (True, True)
    # the agreement test needs both even when eta is 1; with a zero cap it is zeroth-order
    assert AgreementEta(eta_schedule(1, constant=1.0)).needs(4) == (True, True)
    assert AgreementEta(eta_schedule(1, constant=0.0)).needs(4) == (False, True)
    with pytest.raises(ValueError):
        AgreementEta(eta_schedule(1, 0.5), beta=1.0)


def test_with_an_exact_model_the_agreement_rule_is_the_paper_s_schedule():
    """J_C is the true gradient on the landscape: every sign agrees, eta_k = cap_k."""
    paper = landscape_tuner(Landscape(), 'hybrid', 8).run()
    agreement = landscape_tuner(Landscape(), 'hybrid', 8,
                                eta_rule=AgreementEta(eta_schedule(1, 0.5))).run()
    assert history_rows(agreement.history) == history_rows(paper.history)
    assert agreement.eta_rule['state']['count'] == 8
    assert agreement.eta_rule['state']['mean'] == pytest.approx(1.0, abs=1e-12)
    for row in paper.history:                         # the measured slope is the model's
        assert row['slope_measured'] == pytest.approx(row['slope_model'], rel=1e-3, abs=1e-3)


class _WrongModel(Landscape):
    """The model's sensitivities are the negative of the truth: J_C = -grad C."""

    def __call__(self, theta, sensitivities=True):
        record = super().__call__(theta, sensitivities)
        return EpisodeRecord(record.x, record.u, record.du_dx, -record.du_dtheta,
                             record.status, record.theta)


def test_a_wrong_model_is_faded_out_by_the_agreement_rule():
    land = _WrongModel()
    rule = AgreementEta(eta_schedule(1, 0.5), beta=0.5)
    tuner = landscape_tuner(land, 'hybrid', 6, eta_rule=rule)
    rows = tuner.run().history
    cap = eta_schedule(1, 0.5)
    expected = [cap(1)] + [min(cap(k), max(0.0, math.cos(math.pi * (1 - 0.5 ** (k - 1)))))
                           for k in range(2, 7)]
    assert [row['eta'] for row in rows] == pytest.approx(expected, abs=1e-12)
    assert rows[-1]['eta'] == 0.0
    assert all(row['slope_measured'] * row['slope_model'] < 0 for row in rows)


def test_model_based_with_the_agreement_rule_asks_for_the_perturbed_episode():
    land = Landscape()
    tuner = landscape_tuner(land, 'model_based', 2,
                            eta_rule=AgreementEta(eta_schedule(1, constant=1.0)))
    roles = []
    while (request := tuner.ask()) is not None:
        roles.append((request.role, request.sensitivities))
        tuner.tell(land(request.theta, request.sensitivities))
    assert roles == [('base', True), ('perturbed', False)] * 2
    assert [row['eta'] for row in tuner.state.history] == [1.0, 1.0]
    # the step is the model's alone (eta = 1): the same theta as plain model-based
    plain = landscape_tuner(Landscape(), 'model_based', 2).run()
    assert np.array_equal(tuner.state.theta, plain.theta)


def test_agreement_state_round_trips():
    rule = AgreementEta(eta_schedule(1, 0.5))
    rule.observe(1, 1.0, -1.0)
    copy = AgreementEta(eta_schedule(1, 0.5))
    copy.load_state(rule.state())
    assert copy(5) == rule(5) and copy.count == 1
    assert run.rule_record(rule)['settings'] == {
        'cap': {'kind': 'power', 'scale': 1.0, 'offset': 0.0, 'power': 0.5, 'first_k': 1},
        'beta': 0.9, 'prior': 1.0}
