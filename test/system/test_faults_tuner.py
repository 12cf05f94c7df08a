"""Fault injection on a live tuning: real node processes, faults from outside (suite ``faults``).

* The sensitivity stream between controller and tuner loses, repeats, swaps, backdates
  (stale revision) and corrupts one message in each of five episodes: the tuner discards
  each of those episodes and reruns it, says so in its log, progress and summary, and the
  run still equals the offline run of the same seed (no gradient from a broken episode).
* The tuner is SIGKILLed mid-episode and started again; later the controller is
  SIGKILLed mid-episode and started again: the tuner resumes at the same iteration with
  the same theta and random state (the run equals the offline run), the CSVs hold every
  iteration exactly once, and the restarted controller got theta pushed again.
* With ``start_mode: fly_to_start`` (a vehicle), the controller SIGKILLed mid-episode and
  started again: the episode is rerun; the tuner waits for the vehicle to settle at x0
  again, notices the restart from the revisions of the samples while it settles, sends
  theta, the target and its best theta (the safe theta) to the new controller, and loses
  or repeats no iteration.
* The simulator's reset service missing at start, then failing, then vanishing: retried
  with backoff (growing intervals), then a clear error and exit status 1.
"""

from collections import Counter
import os
import re
import time

import numpy as np
import pytest
from rcl_interfaces.srv import GetParameters
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import Trigger

from hybrid_mpc_ros.core.learning.live_session import BACKOFF_KINDS
from hybrid_mpc_ros.core.learning.run import load_checkpoint
from hybrid_mpc_ros.core.mpc import theta as th
from hybrid_mpc_ros.ros.sensitivity_msg import parse_sensitivity_message
from hybrid_mpc_ros.tools import fault_injection as fi
from fault_graph import FaultGraph
import param_sweep

pytestmark = pytest.mark.faults


@pytest.fixture
def graphs():
    made = []
    yield made
    for graph in made:
        graph.stop()


def test_broken_sensitivity_messages_make_the_tuner_rerun_the_episode(
        ros_node, tmp_path, graphs):
    faults = dict(enumerate(fi.STREAM_FAULTS, start=1))
    graph = FaultGraph(ros_node, tmp_path, faults=faults, iterations=2)
    graphs.append(graph)
    graph.start_all()
    graph.wait_tuner(180.0)

    assert graph.relay.injected == list(faults.items())
    summary = graph.summary()
    assert summary['status'] == 'finished' and summary['iterations'] == 2, summary
    expected = Counter(fi.EXPECTED_REJECTION[kind] for kind in fi.STREAM_FAULTS)
    assert summary['reruns'] == len(faults) and Counter(summary['rejections']) == expected
    assert summary['bad_samples'] == 1                      # the corrupted one
    log = graph.nodes['tuner'].log_text()
    for kind in expected:
        assert f'discarded ({kind})' in log, log[-3000:]
    # progress and CSV carry the reruns (all in the first iteration's base episode)
    assert [int(row['retries']) for row in graph.rows('csv')] == [len(faults)] * 2
    assert [int(row['attempts']) for row in graph.rows('episodes.csv')][0] == len(faults) + 1
    graph.assert_files_complete(2)
    graph.assert_equals_offline(2)
    assert graph.commands.count > 0 and graph.commands.bad == []


def test_killed_tuner_resumes_and_restarted_controller_gets_theta_again(
        ros_node, tmp_path, graphs):
    killed = []

    def hook(episode, step):
        # mid-episode: the tuner at the 10th step of episode 3 (iteration 2's base: the
        # checkpoint holds iteration 1), the controller at the 10th step of episode 7
        if step == 10 and episode in (3, 7) and episode not in killed:
            killed.append(episode)
            graph.kill('tuner' if episode == 3 else 'controller')

    graph = FaultGraph(ros_node, tmp_path, hook=hook, iterations=4)
    graphs.append(graph)
    graph.start_all()
    graph.spin_until(lambda: 3 in killed, 120.0)
    first = graph.nodes['tuner']
    graph.spin_until(lambda: not first.alive(), 10.0)
    assert first.returncode == -9
    _, state = load_checkpoint(graph.file('checkpoint.json'))
    assert state.iteration == 2
    graph.start('tuner')
    graph.spin_until(lambda: 7 in killed, 120.0, watch=('simulator',))
    controller = graph.nodes['controller']
    graph.spin_until(lambda: not controller.alive(), 10.0, watch=('simulator',))
    graph.start('controller')
    graph.wait_tuner(180.0)

    assert killed == [3, 7]
    log = graph.nodes['tuner'].log_text()
    assert 'resuming from' in log and 'at iteration 2' in log, log[-3000:]
    assert 'the controller restarted' in log, log[-3000:]
    summary = graph.summary()
    assert summary['status'] == 'finished' and summary['iterations'] == 4, summary
    graph.assert_files_complete(4)
    graph.assert_equals_offline(4)
    # theta reached the new controller process: it flies the run's final theta
    _, state = load_checkpoint(graph.file('checkpoint.json'))
    response = ros_node.call(GetParameters, '/mpc_controller/get_parameters',
                             GetParameters.Request(names=list(th.PARAMETER_NAMES)))
    on_controller = th.from_parameters({name: list(value.double_array_value) for name, value
                                        in zip(th.PARAMETER_NAMES, response.values)})
    np.testing.assert_array_equal(on_controller, state.theta)
    assert graph.commands.bad == []


def test_a_controller_restarted_during_fly_to_start_gets_theta_after_settling_again(
        ros_node, tmp_path, graphs):
    tolerance, iterations = 0.1, 3
    # model-based: one episode per iteration, as the tuner advises for fly_to_start; in a
    # clean run episode k flies revision 2k (go_to_start makes 2k - 1): kill when this
    # process has seen the 10th step of episode 2 (the lockstep loop may be a few steps
    # or an episode further by then: the kill lands somewhere after episode 1)
    per_revision = Counter()
    killed = []

    def on_sample(msg):
        revision = parse_sensitivity_message(msg).revision
        per_revision[revision] += 1
        if revision == 4 and per_revision[revision] == 10 and not killed:
            killed.append(revision)
            graph.kill('controller')

    graph = FaultGraph(ros_node, tmp_path, iterations=iterations, method='model_based',
                       start_mode='fly_to_start', settle_position_tol_m=tolerance,
                       settle_velocity_tol_m_s=tolerance, settle_time_s=1.0)
    graphs.append(graph)
    ros_node.node.create_subscription(Float64MultiArray, fi.SOURCE_TOPIC, on_sample,
                                      fi.stream_qos())
    graph.start_all()
    graph.spin_until(lambda: killed, 180.0)
    controller = graph.nodes['controller']
    graph.spin_until(lambda: not controller.alive(), 10.0, watch=('simulator',))
    assert controller.returncode == -9
    graph.start('controller')
    graph.wait_tuner(240.0)

    log = graph.nodes['tuner'].log_text()
    # the tuner sees the new process's lower revision; which one depends on how many of
    # its sets the new process took before the first settled window (1 after 4 when the
    # first rerun's set reaches it; 3 after 5, seen beside a CPU hog, when it comes up
    # during a rerun)
    restarted = re.findall(r'the controller restarted \(its theta revision is (\d+), after '
                           r'(\d+)\)', log)
    assert restarted, log[-3000:]
    assert all(int(now) < int(before) for now, before in restarted), restarted
    summary = graph.summary()
    assert summary['status'] == 'finished' and summary['iterations'] == iterations, summary
    for suffix in ('csv', 'theta.csv'):
        assert fi.iteration_rows(graph.file(suffix), iterations) == {
            'rows': iterations, 'lost': 0, 'duplicated': 0}
    episodes = graph.rows('episodes.csv')
    assert [int(row['iteration']) for row in episodes] == list(range(1, iterations + 1))
    # the episode the kill hit is rerun: it waits in vain for a sample or an answer, then
    # the controller's services may still be missing while the new process starts (a
    # rerun each, after a backoff); never for a wrong revision or a wrong start
    attempts = [int(row['attempts']) for row in episodes]
    assert attempts[0] == 1 and sum(attempts) - iterations == summary['reruns'] >= 1, summary
    assert set(summary['rejections']) <= set(BACKOFF_KINDS), summary
    for row in episodes:                          # every episode starts settled at x0
        assert float(row['start_position_error_m']) <= tolerance
        assert float(row['start_speed_m_s']) <= tolerance
    # the new controller flies the final theta, with the tuner's best as its safe theta
    _, state = load_checkpoint(graph.file('checkpoint.json'))
    names = list(th.PARAMETER_NAMES + th.SAFE_PARAMETER_NAMES)
    response = ros_node.call(GetParameters, '/mpc_controller/get_parameters',
                             GetParameters.Request(names=names))
    values = {name: list(value.double_array_value)
              for name, value in zip(names, response.values)}
    np.testing.assert_array_equal(th.from_parameters(
        {name: values[name] for name in th.PARAMETER_NAMES}), state.theta)
    np.testing.assert_array_equal(th.from_parameters(th.unprefix_safe(values)),
                                  state.best_theta)
    assert graph.commands.count > 0 and graph.commands.bad == []


def test_missing_and_failing_reset_service_is_retried_with_backoff_then_a_clear_error(
        ros_node, tmp_path, graphs):
    graph = FaultGraph(ros_node, tmp_path, iterations=2)
    graphs.append(graph)
    graph.start('simulator')
    graph.start('controller')

    # missing from the start: looked for with a growing interval, then a clear error
    graph.start('tuner', simulator_reset_service='/nobody/reset', startup_timeout_s=3.0)
    graph.wait_tuner(30.0, status=1)
    log = graph.nodes['tuner'].log_text()
    assert 'services not available after 3 s: /nobody/reset' in log, log[-2000:]
    intervals = [float(part.split(' s')[0]) for part in log.split('looking again in ')[1:]]
    assert intervals[:4] == [0.1, 0.2, 0.4, 0.8], intervals
    # a tuner that never flew leaves its output directory as it was: nothing written
    assert not os.path.exists(graph.out_dir) or os.listdir(graph.out_dir) == []

    # failing, then gone: every rerun waits longer; the last reason says what failed
    calls = []
    state = {}

    def refuse(request, response):
        calls.append(time.monotonic())
        response.success = False
        response.message = 'reset refused by the test'
        return response
    state['service'] = ros_node.node.create_service(Trigger, '/faulty/reset', refuse)

    def vanish():
        if len(calls) >= 2 and 'service' in state:
            ros_node.node.destroy_service(state.pop('service'))
        return False
    graph.start('tuner', simulator_reset_service='/faulty/reset', max_episode_retries=3)
    tuner = graph.nodes['tuner']
    graph.spin_until(lambda: vanish() or not tuner.alive(), 60.0)
    assert tuner.returncode == 1, graph.logs()
    log = tuner.log_text()
    assert 'reset the simulator refused: reset refused by the test' in log, log[-3000:]
    assert 'base episode of iteration 1 failed 4 times in a row' in log, log[-3000:]
    assert 'the service /faulty/reset is not available' in log, log[-3000:]
    assert len(calls) == 2 and calls[1] - calls[0] >= 0.45, calls
    assert ' in 0.5 s' in log and ' in 1 s' in log and ' in 2 s' in log, log[-3000:]
    assert graph.commands.bad == []


@pytest.mark.parametrize('start_mode', ['reset', 'fly_to_start'])
def test_every_tuner_parameter_is_read_only_and_a_set_is_refused_with_a_reason(
        ros_node, tmp_path, graphs, start_mode):
    # the tuner alone (it waits for its services): its parameters define the run, so none
    # may change under it; the sweep finds nothing of its own writable, a set is refused
    graph = FaultGraph(ros_node, tmp_path, iterations=1)
    graphs.append(graph)
    tuner = graph.start('tuner', start_mode=start_mode, startup_timeout_s=120.0)
    client = param_sweep.ParameterClient(ros_node, '/hybrid_tuner')
    ros_node.spin_until(lambda: 'tuner ready' in tuner.log_text(), 30.0)
    outcomes = param_sweep.sweep(client, tuner, lambda context: None)
    # only rclpy's own use_sim_time is writable (its wall-clock timers do not mind)
    assert {outcome.name for outcome in outcomes} == {'use_sim_time'}
    names = client.names()
    assert 'message_timeout_s' in names and 'iterations' in names
    for name in ('message_timeout_s', 'iterations', 'output_dir'):
        value = client.get([name])[name]
        result = client.set([param_sweep.parameter(name, value.type,
                                                   param_sweep.python_value(value))])[0]
        assert not result.successful and result.reason.strip(), name
    assert tuner.alive(), tuner.log_text()[-2000:]
