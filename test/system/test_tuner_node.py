"""The hybrid_tuner node through ROS: real processes, real DDS, an isolated domain.

* A short lockstep tuning (reset mode): theta reaches the controller through its
  parameter service, every episode is exactly T steps of its own revision from x0, the
  CSVs and the checkpoint are written, progress is published, and the run reproduces
  the offline run of the same scenario and seed.
* fly_to_start in simulation: the tuner waits until the vehicle has settled at x0 before
  each episode, and the episodes start within the tolerance.
* The scenario's rules (step rule, safety guard, eta rule) reach the node as declared,
  described and bounded parameters, and it steps, rolls back and mixes as the offline
  tuning with the same values.
"""

import csv
import json
import os

import numpy as np
import pytest
from rcl_interfaces.srv import GetParameters
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_msgs.msg import Float64MultiArray
from diagnostic_msgs.msg import DiagnosticArray

from hybrid_mpc_ros.core.learning.live_session import measured_state
from hybrid_mpc_ros.core.learning.tuning import simulated_episodes, Tuner
from hybrid_mpc_ros.core.learning.run import load_checkpoint
from hybrid_mpc_ros.core.mpc import theta as th
from hybrid_mpc_ros.core.scenario import node_defaults, node_scenario
from hybrid_mpc_ros.ros.progress_msg import parse_progress
from hybrid_mpc_ros.ros.sensitivity_msg import parse_sensitivity_message
from hybrid_mpc_ros.ros.tuner_node import PROGRESS_QOS, TunerNode
from hybrid_mpc_ros.tools.graph import TuningGraph
from scenario_setup import offline_run, scenario, scenario_path

DEEP = QoSProfile(depth=5000, reliability=ReliabilityPolicy.RELIABLE)
STEPS = 25
ITERATIONS = 3
RUN = 'hybrid_g0.5'
# process start (the controller loads its solver) and DDS discovery, on a loaded machine
DISCOVERY_TIMEOUT_S = 60.0


class Graph:
    """The tuning graph's processes (:class:`TuningGraph`), observed from this process.

    Nothing counts before the probe hears every stream it checks. The controller and the
    tuner start first and wait for the simulator (no odometry: no control step, no
    episode); the simulator starts only once the probe has matched the controller's
    ``~/sensitivity`` and the tuner's ``~/progress`` writers, both ends
    (:meth:`ProbeNode.wait_matched`). The probe reads the odometry as the controller saw
    it, from the sensitivity messages (the controller answers every odometry in lockstep).
    """

    def __init__(self, ros_node, folder, tuner_params):
        self.ros_node = ros_node
        self.folder = folder
        self.samples, self.progress = [], []
        node = ros_node.node
        sensitivity = node.create_subscription(
            Float64MultiArray, '/mpc_controller/sensitivity',
            lambda msg: self.samples.append(parse_sensitivity_message(msg)), DEEP)
        progress = node.create_subscription(
            DiagnosticArray, '/hybrid_tuner/progress',
            lambda msg: self.progress.append(parse_progress(msg)), PROGRESS_QOS)
        # the graph users run; resume false: each test's run starts afresh in its folder
        self.graph = TuningGraph(scenario_path('arxiv_v1'), str(folder),
                                 dict({'output_dir': str(folder / 'out'), 'resume': False},
                                      **tuner_params))
        self.nodes = self.graph.nodes
        self.graph.start('controller')
        self.graph.start('tuner')
        ros_node.wait_matched(sensitivity, 'mpc_controller', DISCOVERY_TIMEOUT_S)
        ros_node.wait_matched(progress, 'hybrid_tuner', DISCOVERY_TIMEOUT_S)
        self.graph.start('simulator')

    def _spin_until(self, predicate, timeout, what):
        def done():
            for name, process in self.nodes.items():
                if name != 'tuner' and not process.alive():
                    pytest.fail(f'{name} exited:\n{self.logs()}')
            return predicate()
        if not self.ros_node.spin_until(done, timeout):
            pytest.fail(f'{what} within {timeout} s:\n{self.logs()}')

    def logs(self):
        return self.graph.logs()

    def wait_for_tuner(self, timeout):
        tuner = self.nodes['tuner']
        self._spin_until(lambda: not tuner.alive(), timeout, 'the tuner did not finish')
        self.ros_node.spin_for(0.5)              # the last messages in flight
        assert tuner.returncode == 0, self.logs()

    def stop(self):
        self.graph.stop()

    def out(self, suffix):
        return os.path.join(self.folder, 'out', f'{RUN}.{suffix}')

    def rows(self, suffix):
        with open(self.out(suffix), newline='') as stream:
            return list(csv.DictReader(stream))


@pytest.fixture
def graph(ros_node, tmp_path):
    made = []

    def make(**tuner_params):
        made.append(Graph(ros_node, tmp_path, tuner_params))
        return made[-1]
    yield make
    for item in made:
        item.stop()


def test_lockstep_tuning_through_ros_reproduces_the_offline_run(graph, ros_node):
    run = graph(iterations=ITERATIONS, episode_steps=STEPS)
    run.wait_for_tuner(240.0)
    chosen = scenario()
    period_ns = round(chosen.period_s * 1e9)

    # files: history, theta after each iteration, episodes, checkpoint, figure, summary
    history = run.rows('csv')
    thetas = run.rows('theta.csv')
    episodes = run.rows('episodes.csv')
    assert [int(row['iteration']) for row in history] == [1, 2, 3]
    assert len(thetas) == ITERATIONS and len(episodes) == 2 * ITERATIONS
    config, state = load_checkpoint(run.out('checkpoint.json'))
    assert state.iteration == ITERATIONS + 1 and config.episode_steps == STEPS
    assert os.path.getsize(run.out('learning_curve.png')) > 10_000
    with open(run.out('summary.json')) as stream:
        summary = json.load(stream)
    assert summary['status'] == 'finished' and summary['reruns'] == 0, summary

    # progress: one message per iteration, the CSV's numbers
    assert [p['iteration'] for p in run.progress] == [1, 2, 3]
    for message, row in zip(run.progress, history):
        assert message['cost'] == float(row['cost'])
        assert message['theta_revision'] == int(row['theta_revision'])

    # every episode: exactly T steps of its revision, consecutive, from x0 (measured)
    x0 = measured_state(chosen.x0)
    for episode in episodes:
        revision = int(episode['revision'])
        start = round(float(episode['start_stamp_s']) * 1e9)
        assert int(episode['steps']) == STEPS
        # simulation time never goes back (not even on a reset), so the episode's stamps
        # belong to it alone: every step the controller took in them
        mine = [s for s in run.samples
                if start <= s.odom_stamp.nanoseconds < start + STEPS * period_ns]
        assert {s.revision for s in mine} == {revision}, episode
        assert [s.odom_stamp.nanoseconds for s in mine] == [
            start + t * period_ns for t in range(STEPS)], episode
        assert np.array_equal(mine[0].x, x0)

    # theta reached the controller through its parameter service: it holds the final theta
    response = ros_node.call(GetParameters, '/mpc_controller/get_parameters',
                             GetParameters.Request(names=list(th.PARAMETER_NAMES)))
    on_controller = th.from_parameters({name: list(value.double_array_value) for name, value
                                        in zip(th.PARAMETER_NAMES, response.values)})
    np.testing.assert_array_equal(on_controller, state.theta)
    assert max(s.revision for s in run.samples) == 2 * ITERATIONS + 1

    # the offline run of the same scenario and seed, seeing the state as the nodes do
    # (after the odometry round trip): the same costs and theta (measured: bit for bit)
    offline_history, offline_thetas = offline_run(ITERATIONS, STEPS, observe=measured_state)
    assert len(history) == len(offline_history) == ITERATIONS
    for row, expected, theta_row, expected_theta in zip(history, offline_history, thetas,
                                                        offline_thetas):
        assert abs(float(row['cost']) - expected['cost']) <= 1e-12 * expected['cost'], (
            row['cost'], expected['cost'])
        theta = np.array([float(theta_row[name]) for name in th.names()])
        np.testing.assert_allclose(theta, expected_theta, rtol=1e-12, atol=1e-15)
    # offline on the exact state: odometry carries the attitude as a quaternion and the
    # velocity in the body frame, so the controller's x differs from the plant's in the
    # last bits, and the zeroth-order difference quotient amplifies that (docs/tuning.md)
    exact_history, _ = offline_run(ITERATIONS, STEPS)
    for row, expected in zip(history, exact_history):
        assert abs(float(row['cost']) - expected['cost']) <= 1e-9 * expected['cost'], (
            row['cost'], expected['cost'])


def test_fly_to_start_waits_for_the_vehicle_to_settle(graph):
    tolerance, settle_s, steps = 0.05, 1.0, 20
    run = graph(iterations=1, episode_steps=steps, start_mode='fly_to_start',
                settle_position_tol_m=tolerance, settle_velocity_tol_m_s=tolerance,
                settle_time_s=settle_s)
    run.wait_for_tuner(240.0)
    chosen = scenario()
    period_ns = round(chosen.period_s * 1e9)
    episodes = run.rows('episodes.csv')
    assert len(episodes) == 2
    stamps = np.array([sample.odom_stamp.nanoseconds for sample in run.samples])
    states = np.array([sample.x for sample in run.samples])
    for episode in episodes:
        start = round(float(episode['start_stamp_s']) * 1e9)
        assert float(episode['start_position_error_m']) <= tolerance
        assert float(episode['start_speed_m_s']) <= tolerance
        # settled for settle_s before the episode: every odometry of that window
        window = states[(stamps >= start - round(settle_s * 1e9)) & (stamps <= start)]
        assert len(window) >= settle_s * 1e9 / period_ns
        assert np.all(np.linalg.norm(window[:, 0:3] - chosen.x0[0:3], axis=1) <= tolerance)
        assert np.all(np.linalg.norm(window[:, 3:6], axis=1) <= tolerance)
    # the vehicle left x0 in the first episode, so the second had to fly back
    first_end = round(float(episodes[0]['start_stamp_s']) * 1e9) + steps * period_ns
    after = states[stamps == first_end]
    assert len(after) and np.linalg.norm(after[0][0:3] - chosen.x0[0:3]) > 5 * tolerance
    assert 'reset to initial_state' not in run.nodes['simulator'].log_text()


def test_the_node_steps_guards_and_mixes_as_the_offline_tuning(graph, ros_node):
    """Scale-free steps with a radius so large and a guard so tight that iteration 5 is refused.

    The zeroth-order estimates average two directions (three episodes an iteration). The
    offline run with the same values (known from it: iteration 5's episode costs more than
    1.01 x the best) is the reference: the same costs, the rollback, the same theta.
    """
    # the keys of a chosen kind are all given (a node has no values for them otherwise);
    # floor, warmup, cap, beta and prior are the settings for a new vehicle
    rules = {'step_rule': {'kind': 'scale_free', 'radius': 1.0, 'floor': 0.1, 'warmup': 10,
                           'cap': 1.0},
             'guard': {'enabled': True, 'cost_margin': 0.01},
             'eta_rule': {'kind': 'agreement', 'beta': 0.9, 'prior': 1.0},
             'zeroth_order': {'directions': 2}}
    iterations = 5
    run = graph(iterations=iterations, episode_steps=STEPS, **rules)
    run.wait_for_tuner(240.0)
    history = run.rows('csv')
    assert [row['rollback'] for row in history] == ['False'] * 4 + ['True']
    assert 'exceeds 1.01 x the best' in history[4]['rollback_reason']
    assert [p['rollbacks'] for p in run.progress] == [0, 0, 0, 0, 1]
    assert 'ROLLBACK' in run.progress[4]['message']
    assert 'ROLLBACK' in run.nodes['tuner'].log_text()

    values = node_defaults('hybrid_tuner', scenario_path('arxiv_v1'))
    values.update({'iterations': iterations, 'episode_steps': STEPS,
                   'step_rule.kind': 'scale_free', 'step_rule.radius': 1.0,
                   'step_rule.floor': 0.1, 'step_rule.warmup': 10, 'step_rule.cap': 1.0,
                   'guard.enabled': True, 'guard.cost_margin': 0.01,
                   'eta_rule.kind': 'agreement', 'eta_rule.beta': 0.9, 'eta_rule.prior': 1.0,
                   'zeroth_order.directions': 2})
    settings = node_scenario('hybrid_tuner', values, 'offline')
    chosen = scenario('arxiv_v1')
    theta0 = settings.initial_theta()
    offline = Tuner(settings.tuning, simulated_episodes(chosen.plant(), chosen.policy(),
                                                        chosen.x0, STEPS),
                    settings.model.jacobians, settings.cost(), theta0,
                    **settings.tuner_rules(theta0=theta0)).run()
    for row, expected in zip(history, offline.history):
        assert abs(float(row['cost']) - expected['cost']) <= 1e-6 * expected['cost']
        assert float(row['eta']) == pytest.approx(expected['eta'], rel=1e-9)
    assert settings.tuning.zo_directions == 2
    episodes = run.rows('episodes.csv')
    assert sum(row['role'] == 'perturbed' for row in episodes) == 2 * sum(
        expected['grad_zo_norm'] is not None for expected in offline.history)
    _, state = load_checkpoint(run.out('checkpoint.json'))
    assert state.guard_rollbacks == offline.guard_rollbacks == 1
    np.testing.assert_allclose(state.theta, offline.theta, rtol=1e-6, atol=1e-9)


def test_the_rule_parameters_are_described_with_their_ranges(rclpy_context, tmp_path):
    """In this process: a tuner of a few short episodes can exit before a remote describe."""
    node = TunerNode(parameter_overrides=[Parameter('output_dir', value=str(tmp_path)),
                                          Parameter('resume', value=False)])
    try:
        (eta_kind,) = node.describe_parameters(['eta_rule.kind'])
        # the default scenario leaves the scale-free and guard keys out: not declared (a
        # declared parameter without a value empties every answer of get_parameters),
        # their descriptors kept for the documentation
        assert not node.has_parameter('step_rule.radius')
        absent = node.absent_parameters
        radius, margin, warmup = (absent[name] for name in (
            'step_rule.radius', 'guard.cost_margin', 'step_rule.warmup'))
        assert node.get_parameters(['iterations'])[0].value > 0
    finally:
        node.destroy_node()
    assert 'largest relative change' in radius.description and radius.read_only
    assert radius.floating_point_range[0].from_value == 0.0
    assert margin.floating_point_range and 'best so far' in margin.description
    assert warmup.integer_range[0].from_value == 1 and 'agreement' in eta_kind.description
