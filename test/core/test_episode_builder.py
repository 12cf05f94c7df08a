"""EpisodeBuilder: records from per-step samples, refusals of incomplete or mixed episodes."""

import numpy as np
import pytest

from hybrid_mpc_ros.core.learning.episode import (EpisodeBuilder, EpisodeRejected,
                                                  EpisodeRecord, rollout)
from hybrid_mpc_ros.core.learning.live_session import measured_state
from hybrid_mpc_ros.core.learning.samples import SensitivitySample, Stamp
from hybrid_mpc_ros.core.model.quadcopter import NU, NX
from hybrid_mpc_ros.core.mpc import theta as th
from scenario_setup import scenario

PERIOD_S = 0.1
PERIOD_NS = 100_000_000
START_NS = 1_700_000_000 * 10 ** 9 + 5          # a wall-clock-like start, not a round number
STEPS = 5
REVISION = 7


def _samples(steps=STEPS, seed=0, revision=REVISION, start_ns=START_NS):
    rng = np.random.default_rng(seed)
    out = []
    for t in range(steps):
        stamp = Stamp.from_nanoseconds(start_ns + t * PERIOD_NS)
        out.append(SensitivitySample(stamp, stamp, revision, 0, 0.3, rng.normal(size=NX),
                                     600 + rng.normal(size=NU), rng.normal(size=(NU, NX)),
                                     rng.normal(size=(NU, th.N_THETA))))
    return out


def _final_stamp(steps=STEPS):
    return Stamp.from_nanoseconds(START_NS + steps * PERIOD_NS)


def _builder(steps=STEPS, **kwargs):
    return EpisodeBuilder(np.arange(th.N_THETA) / 10.0, REVISION, steps, PERIOD_S, **kwargs)


def _replace(sample, **changes):
    fields = {name: getattr(sample, name) for name in sample.__dataclass_fields__}
    fields.update(changes)
    return SensitivitySample(**fields)


def test_builder_assembles_the_record_from_the_samples():
    samples = _samples()
    builder = _builder()
    for sample in samples:
        builder.add(sample)
    assert builder.complete and builder.count == STEPS
    x_final = np.full(NX, 0.25)
    record = builder.finish(x_final, _final_stamp())
    record.validate()
    assert np.array_equal(record.x, np.vstack([[s.x for s in samples], [x_final]]))
    assert np.array_equal(record.u, [s.u for s in samples])
    assert np.array_equal(record.du_dx, [s.du_dx for s in samples])
    assert np.array_equal(record.du_dtheta, [s.du_dtheta for s in samples])
    assert np.array_equal(record.theta, np.arange(th.N_THETA) / 10.0)
    assert record.steps == STEPS and record.failures == 0


def test_a_failed_step_keeps_its_status_and_zero_sensitivities():
    samples = _samples()
    nan = np.full((NU, NX), np.nan)
    samples[2] = _replace(samples[2], status=4, du_dx=nan,
                          du_dtheta=np.full((NU, th.N_THETA), np.nan))
    builder = _builder()
    for sample in samples:
        builder.add(sample)
    record = builder.finish(np.zeros(NX), _final_stamp())
    assert record.status.tolist() == [0, 0, 4, 0, 0] and record.failures == 1
    assert not record.du_dx[2].any() and not record.du_dtheta[2].any()
    record.validate()


def _refusal(samples, kind, match, final=None, **builder_args):
    builder = _builder(**builder_args)
    with pytest.raises(EpisodeRejected, match=match) as error:
        for sample in samples:
            builder.add(sample)
        builder.finish(np.zeros(NX) if final is None else final[0],
                       _final_stamp() if final is None else final[1])
    assert error.value.kind == kind
    return builder


def test_wrong_revision_is_refused():
    samples = _samples()
    samples[3] = _replace(samples[3], revision=REVISION - 1)
    _refusal(samples, 'wrong_revision', r'step 3 ran with theta revision 6, expected 7')


def test_repeated_step_is_refused():
    samples = _samples()
    samples.insert(2, samples[1])
    _refusal(samples, 'repeated_step', r'step 2 has the odometry stamp .* of the step before')


def test_reordered_steps_are_refused():
    samples = _samples()
    samples[3] = samples[1]                      # a late duplicate of an earlier step
    _refusal(samples, 'reordered', r'step 3 has odometry stamp 1700000000.100000005 s, '
                                   r'earlier than the previous 1700000000.200000005 s')


def test_missing_step_is_refused():
    samples = _samples(6)
    del samples[3]
    _refusal(samples, 'missing_step', r'1 step\(s\) missing before step 3')
    _refusal(_samples()[:-1], 'missing_step', r'missing before the final state',
             final=(np.zeros(NX), _final_stamp(STEPS + 1)), steps=STEPS - 1)


def test_irregular_advance_is_refused_and_jitter_within_tolerance_is_not():
    samples = _samples()
    samples[2] = _replace(samples[2], odom_stamp=Stamp.from_nanoseconds(
        START_NS + PERIOD_NS + PERIOD_NS // 2))
    _refusal(samples, 'irregular_step', r'step 2: odometry advanced by 50000000 ns')
    jitter = 10_000_000                       # 10 ms on a 100 ms period
    jittered = _samples()
    jittered[2] = _replace(jittered[2], odom_stamp=Stamp.from_nanoseconds(
        START_NS + 2 * PERIOD_NS + jitter))
    builder = _builder(tolerance_s=0.01)
    for sample in jittered:
        builder.add(sample)
    builder.finish(np.zeros(NX), _final_stamp())
    _refusal(jittered, 'irregular_step', r'step 2: odometry advanced by 110000000 ns',
             tolerance_s=0.0099)
    with pytest.raises(ValueError, match='tolerance_s < period_s / 2'):
        _builder(tolerance_s=0.05)


def test_too_many_steps_are_refused():
    _refusal(_samples(STEPS + 1), 'too_many_steps', r'sample for step 5 of an episode of 5')


def test_non_finite_values_are_refused():
    samples = _samples()
    bad_x = samples[1].x.copy()
    bad_x[4] = np.nan
    _refusal(samples[:1] + [_replace(samples[1], x=bad_x)] + samples[2:], 'non_finite',
             r'step 1: x has 1 non-finite entries')
    bad_k = samples[1].du_dtheta.copy()
    bad_k[0, 3] = np.inf
    _refusal(samples[:1] + [_replace(samples[1], du_dtheta=bad_k)] + samples[2:], 'non_finite',
             r'step 1: du_dtheta has 1 non-finite entries .* after a successful solve')
    _refusal(samples, 'non_finite', r'the final state is not finite',
             final=(np.full(NX, np.nan), _final_stamp()))


def test_finish_before_all_steps_is_refused():
    _refusal(_samples(STEPS - 1), 'too_few_steps', r'finished after 4 of 5 steps')


def test_nothing_is_taken_after_the_finish():
    builder = _builder()
    for sample in _samples():
        builder.add(sample)
    builder.finish(np.zeros(NX), _final_stamp())
    with pytest.raises(EpisodeRejected) as error:
        builder.add(_samples(6)[-1])
    assert error.value.kind == 'finished'
    with pytest.raises(EpisodeRejected, match='already finished'):
        builder.finish(np.zeros(NX), _final_stamp(STEPS + 1))


def test_an_abort_closes_the_episode_with_the_steps_flown():
    samples = _samples()
    builder = _builder()
    for sample in samples[:3]:
        builder.add(sample)
    x_abort = np.full(NX, 3.0)
    with pytest.raises(ValueError, match='needs a reason'):
        builder.abort('', x_abort, _final_stamp(3))
    with pytest.raises(EpisodeRejected) as error:      # the abort state must follow step 2
        builder.abort('roll 1.2 rad outside [-0.8, 0.8]', x_abort, _final_stamp(4))
    assert error.value.kind == 'missing_step'
    record = builder.abort('roll 1.2 rad outside [-0.8, 0.8]', x_abort, _final_stamp(3))
    record.validate()
    assert record.aborted and record.abort_reason == 'roll 1.2 rad outside [-0.8, 0.8]'
    assert record.steps == 3 and record.x.shape == (4, NX)
    assert np.array_equal(record.x, np.vstack([[s.x for s in samples[:3]], [x_abort]]))
    assert np.array_equal(record.du_dtheta, [s.du_dtheta for s in samples[:3]])
    with pytest.raises(EpisodeRejected, match='already finished'):
        builder.abort('again', x_abort, _final_stamp(3))
    # an abort before the first step holds the start state only
    first = _builder().abort('start outside the envelope', x_abort, _final_stamp(0))
    assert first.steps == 0 and np.array_equal(first.x, [x_abort])
    record.abort_reason = ''
    with pytest.raises(ValueError, match='needs an abort_reason'):
        record.validate()


def test_a_refused_sample_changes_nothing():
    """A caller may drop a refused sample (a duplicate message) and go on."""
    samples = _samples()
    clean = _builder()
    for sample in samples:
        clean.add(sample)
    expected = clean.finish(np.ones(NX), _final_stamp())
    builder = _builder()
    for t, sample in enumerate(samples):
        builder.add(sample)
        for bad in (sample, _replace(sample, revision=0)):
            with pytest.raises(EpisodeRejected):
                builder.add(bad)
        assert builder.count == t + 1
    record = builder.finish(np.ones(NX), _final_stamp())
    for name in ('x', 'u', 'du_dx', 'du_dtheta', 'status', 'theta'):
        assert np.array_equal(getattr(record, name), getattr(expected, name))


def test_samples_through_the_ros_codec_build_the_same_record():
    codec = pytest.importorskip('hybrid_mpc_ros.ros.sensitivity_msg')
    samples = _samples()
    direct, via_ros = _builder(), _builder()
    encoder = codec.SensitivityEncoder()
    for sample in samples:
        direct.add(sample)
        via_ros.add(codec.parse_sensitivity_message(encoder.encode_sample(sample)))
    first = direct.finish(np.ones(NX), _final_stamp())
    second = via_ros.finish(np.ones(NX), _final_stamp())
    for name in ('x', 'u', 'du_dx', 'du_dtheta', 'status', 'theta'):
        assert np.array_equal(getattr(first, name), getattr(second, name))


def _plain_rollout(plant_step, policy, x0, steps):
    """The rollout loop written out without the builder: the reference for bit identity."""
    x = np.array(x0, dtype=float)
    xs, us = np.empty((steps + 1, NX)), np.empty((steps, NU))
    kx, kt = np.zeros((steps, NU, NX)), np.zeros((steps, NU, th.N_THETA))
    status = np.zeros(steps, dtype=int)
    policy.reset()
    xs[0] = x
    for t in range(steps):
        sol = policy.solve(x)
        us[t], status[t] = sol.u, sol.status
        if sol.ok:
            kx[t], kt[t] = policy.sensitivities()
        x = plant_step(x, sol.u)
        xs[t + 1] = x
    return EpisodeRecord(xs, us, kx, kt, status, policy.theta.copy())


def test_rollout_through_the_builder_is_bit_identical_to_the_plain_loop():
    from dataclasses import replace
    chosen = scenario()
    plant = chosen.plant()
    # a starved QP solver fails at most steps: the failure path is compared too
    starved = replace(chosen.mpc_config, qp_iter_max=10)
    for policy in (chosen.policy(), chosen.policy(config=starved)):
        built = rollout(plant, policy, chosen.x0, 40)
        plain = _plain_rollout(plant.step, policy, chosen.x0, 40)
        assert 0 <= built.failures < 40
        for name in ('x', 'u', 'du_dx', 'du_dtheta', 'status', 'theta'):
            assert np.array_equal(getattr(built, name), getattr(plain, name)), name
            assert getattr(built, name).dtype == getattr(plain, name).dtype


def test_stamps_are_exact_integers():
    assert Stamp.from_nanoseconds(-1) == (-1, 999_999_999)
    assert str(Stamp(-1, 5)) == '-0.999999995 s' and str(Stamp(3, 5)) == '3.000000005 s'
    big = (2 ** 31 - 1) * 10 ** 9 + 999_999_999
    assert Stamp.from_nanoseconds(big).nanoseconds == big
    for bad, match in (((1.0, 0), 'sec must be an integer'), ((1, True), 'nanosec must be an'),
                       ((1, 10 ** 9), r'outside \[0, 1e9\)'), ((2 ** 31, 0), 'outside int32')):
        with pytest.raises(ValueError, match=match):
            Stamp.of(bad)


def test_sample_checks_its_structure():
    good = _samples(1)[0]
    assert good.ok and good.non_finite() == ''
    with pytest.raises(ValueError, match=r'sample du_dx has shape \(12,\), expected \(4, 12\)'):
        _replace(good, du_dx=np.zeros(NX))
    with pytest.raises(ValueError, match='revision must be an integer'):
        _replace(good, revision=1.0)
    with pytest.raises(ValueError, match='status must be an integer'):
        _replace(good, status=False)
    with pytest.raises(ValueError, match='revision must lie in'):
        _replace(good, revision=-2)
    # the sample keeps its own read-only copy of a writable input
    x = np.zeros(NX)
    sample = _replace(good, x=x)
    x[0] = 1.0
    assert sample.x[0] == 0.0 and not sample.x.flags.writeable


def test_rollout_abort_if_ends_the_episode_where_the_envelope_is_left():
    chosen = scenario()
    plant, policy = chosen.plant(), chosen.policy()
    full = rollout(plant, policy, chosen.x0, 30)
    # an envelope on the distance flown: the target is 7 m away, so the vehicle leaves it
    leaves = int(np.argmax(np.linalg.norm(full.x[:, :3], axis=1) > 0.5))
    assert 0 < leaves < 30

    def envelope(x):
        distance = float(np.linalg.norm(x[:3]))
        return f'{distance:.3f} m from the start' if distance > 0.5 else ''

    aborted = rollout(plant, policy, chosen.x0, 30, abort_if=envelope)
    assert aborted.aborted and aborted.abort_reason.startswith(f'step {leaves}: ')
    assert aborted.steps == leaves
    assert np.array_equal(aborted.x, full.x[:leaves + 1])       # the same flight, cut short
    for name in ('u', 'du_dx', 'du_dtheta', 'status'):
        assert np.array_equal(getattr(aborted, name), getattr(full, name)[:leaves])


def test_rollout_observe_shows_the_policy_and_the_record_the_observed_state():
    chosen = scenario()
    plant, policy = chosen.plant(), chosen.policy()
    seen = rollout(plant, policy, chosen.x0, 30, observe=measured_state)
    # the plant integrated its exact state from the inputs applied
    exact = [np.array(chosen.x0, dtype=float)]
    for u in seen.u:
        exact.append(plant.step(exact[-1], u))
    exact = np.array(exact)
    assert np.array_equal(seen.x, np.array([measured_state(x) for x in exact]))
    # the odometry round trip changes the last bits, and only those
    assert not np.array_equal(seen.x, exact)
    np.testing.assert_allclose(seen.x, exact, rtol=0, atol=1e-12)
    # the policy solved at the observed states: solving at them again gives the same inputs
    policy.reset()
    for x, u in zip(seen.x[:-1], seen.u):
        assert np.array_equal(policy.solve(x).u, u)
