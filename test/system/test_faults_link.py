"""The vehicle / ground-station link cut in the middle of a tuning (suite ``faults``).

The test builds the split itself: two Linux network namespaces joined by a veth pair,
with only their own addresses. The vehicle side runs the simulator (realtime, standing
in for the vehicle), the MPC controller answering each odometry (never held: the
tuner's ``hold: never``) and a recorder of the controller's steps; the ground-station
side runs the tuner. Not the controller's wall-clock timer: the realtime simulator
publishes odometry at the control rate, and a timer of the same rate whose phase lands
on the odometry's arrival steps twice on one odometry now and then, which the tuner
rightly refuses (``repeated_step``; CI saw seven such episodes in a row once; docs/protocol.md,
"Starting episodes on a vehicle"). DDS runs over UDP on the veth (Fast DDS's
shared-memory transport would bypass the link between namespaces of one machine, so it
is switched off with ``FASTDDS_BUILTIN_TRANSPORTS=UDPv4``; discovery is multicast, which
needs a multicast route on the veth in each namespace).

After the first iteration the ground station's end of the link goes down for a few
seconds, then up again. The controller keeps flying at its rate, on the theta it had,
every command finite and within the bounds; the tuner notices (an episode times out and
is discarded), and finishes when the link is back, every iteration exactly once.

Skipped, with the reason printed, where network namespaces cannot be created (not root,
no ``ip``, a container without the capability).
"""

import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from hybrid_mpc_ros.core import paths
from hybrid_mpc_ros.tools import fault_injection as fi
from hybrid_mpc_ros.tools import graph
from hybrid_mpc_ros.tools import processes
from scenario_setup import scenario, scenario_path

pytestmark = pytest.mark.faults
ITERATIONS = 3
STEPS = 20
CUT_S = 4.0
HERE = os.path.dirname(os.path.abspath(__file__))


def _ip(*args, check=True):
    done = subprocess.run(['ip', *args], capture_output=True, text=True)
    if check and done.returncode != 0:
        raise RuntimeError(f'ip {" ".join(args)}: {done.stderr.strip()}')
    return done


class Link:
    """Two namespaces ('vehicle', 'ground') joined by a veth pair; removed by :meth:`close`."""

    def __init__(self):
        tag = f'{os.getpid() % 100000}'
        self.ns = {'vehicle': f'hm_vehicle_{tag}', 'ground': f'hm_ground_{tag}'}
        self.dev = {'vehicle': f'hmv{tag}', 'ground': f'hmg{tag}'}
        subnet = f'10.{200 + os.getpid() % 50}.{os.getpid() % 250}'
        self.addr = {'vehicle': f'{subnet}.1/24', 'ground': f'{subnet}.2/24'}
        self.created = []
        for side in ('vehicle', 'ground'):
            _ip('netns', 'add', self.ns[side])
            self.created.append(self.ns[side])
        _ip('link', 'add', self.dev['vehicle'], 'type', 'veth', 'peer', 'name',
            self.dev['ground'])
        for side in ('vehicle', 'ground'):
            ns, dev = self.ns[side], self.dev[side]
            _ip('link', 'set', dev, 'netns', ns)
            _ip('-n', ns, 'addr', 'add', self.addr[side], 'dev', dev)
            _ip('-n', ns, 'link', 'set', 'lo', 'up')
            self.up(side)

    def up(self, side):
        """Bring ``side``'s end up, with the multicast route DDS discovery needs."""
        ns, dev = self.ns[side], self.dev[side]
        _ip('-n', ns, 'link', 'set', dev, 'up')
        _ip('-n', ns, 'route', 'replace', '224.0.0.0/4', 'dev', dev)

    def down(self, side):
        """Take ``side``'s end down: nothing crosses the link."""
        _ip('-n', self.ns[side], 'link', 'set', self.dev[side], 'down')

    def command(self, side, command):
        """``command`` run inside ``side``'s namespace."""
        return ['ip', 'netns', 'exec', self.ns[side]] + list(command)

    def close(self):
        """Delete the namespaces (and with them the veth pair)."""
        for ns in self.created:
            _ip('netns', 'del', ns, check=False)


@pytest.fixture
def link():
    if shutil.which('ip') is None:
        reason = 'no ip command (iproute2) to create network namespaces'
        print(f'SKIPPED: {reason}')
        pytest.skip(reason)
    try:
        made = Link()
    except RuntimeError as exc:
        reason = f'cannot create network namespaces here: {exc}'
        print(f'SKIPPED: {reason}')
        pytest.skip(reason)
    yield made
    made.close()


def _env():
    env = processes.ros_env(processes.free_domain_id())
    # discovery over the veth (not loopback only), data over UDP (shared memory would
    # cross between namespaces of one machine without the link)
    env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'SUBNET'
    env['FASTDDS_BUILTIN_TRANSPORTS'] = 'UDPv4'
    return env


def _start(link, side, module, env, log, params_file):
    command = processes.node_command(module, params_file=params_file)
    return processes.NodeProcess(link.command(side, command), env=env, log_path=log)


def _rows(path):
    if not os.path.exists(path):
        return []
    with open(path) as stream:
        return [[float(v) for v in line.split()] for line in stream if line.count(' ') == 6]


def test_a_cut_link_leaves_the_controller_flying_and_the_tuner_resumes_with_nothing_lost(
        link, tmp_path):
    env = _env()
    path = scenario_path('arxiv_v1')
    out = tmp_path / 'out'
    overrides = processes.write_params_file(str(tmp_path / 'tuner.yaml'), 'hybrid_tuner', {
        'output_dir': str(out), 'resume': False, 'iterations': ITERATIONS,
        'episode_steps': STEPS, 'message_timeout_s': 2.0, 'service_timeout_s': 2.0,
        'max_episode_retries': 6, 'hold': 'never'})   # a vehicle is never held
    steps_file = str(tmp_path / 'steps.txt')
    nodes = {}
    try:
        nodes['simulator'] = _start(link, 'vehicle', 'ros.simulator_node', env,
                                    str(tmp_path / 'simulator.log'), path)
        controller_file = processes.write_params_file(
            str(tmp_path / 'controller.yaml'), 'mpc_controller', {'trigger': 'odometry'})
        nodes['controller'] = _start(link, 'vehicle', 'ros.mpc_controller_node', env,
                                     str(tmp_path / 'controller.log'), [path, controller_file])
        nodes['recorder'] = processes.NodeProcess(
            link.command('vehicle', [sys.executable,
                                     os.path.join(HERE, '..', 'nodes', 'stream_recorder.py'),
                                     steps_file]),
            env=env, log_path=str(tmp_path / 'recorder.log'))
        nodes['tuner'] = _start(link, 'ground', 'ros.tuner_node', env,
                                str(tmp_path / 'tuner.log'),
                                [path, paths.config_file(graph.TUNER_SETTINGS_FILE), overrides])

        def wait(predicate, timeout, what):
            deadline = time.monotonic() + timeout
            while not predicate():
                for name, node in nodes.items():
                    assert node.alive() or name == 'tuner', \
                        f'{name} exited:\n{node.log_text()[-3000:]}'
                assert time.monotonic() < deadline, (
                    f'{what} not within {timeout} s\n'
                    + '\n'.join(f'--- {n}:\n{p.log_text()[-2000:]}' for n, p in nodes.items()))
                time.sleep(0.05)

        csv_path = str(out / 'hybrid_g0.5.csv')
        wait(lambda: fi.iteration_rows(csv_path, ITERATIONS)['rows'] >= 1, 120.0,
             'the first iteration')
        cut = time.time()
        link.down('ground')
        time.sleep(CUT_S)
        restored = time.time()
        link.up('ground')
        wait(lambda: not nodes['tuner'].alive(), 180.0, 'the end of the tuning')
        assert nodes['tuner'].returncode == 0, nodes['tuner'].log_text()[-3000:]

        # the tuner noticed, discarded the broken episode, and lost nothing
        with open(out / 'hybrid_g0.5.summary.json') as stream:
            summary = json.load(stream)
        assert summary['status'] == 'finished' and summary['iterations'] == ITERATIONS
        assert summary['reruns'] >= 1 and summary['rejections'].get('timeout', 0) >= 1, summary
        assert 'discarded (timeout)' in nodes['tuner'].log_text()
        for suffix in ('csv', 'theta.csv'):
            counted = fi.iteration_rows(str(out / f'hybrid_g0.5.{suffix}'), ITERATIONS)
            assert counted == {'rows': ITERATIONS, 'lost': 0, 'duplicated': 0}, counted

        # the vehicle side flew on at its rate, on the theta it had, with safe commands
        rows = np.array(_rows(steps_file))
        config = scenario().mpc_config
        u = rows[:, 3:7]
        assert np.all(np.isfinite(u)) and u.min() >= config.u_min and u.max() <= config.u_max
        during = rows[(rows[:, 0] > cut + 0.5) & (rows[:, 0] < restored)]
        period = scenario().period_s
        assert len(during) >= 0.8 * (CUT_S - 0.5) / period, len(during)
        assert np.max(np.diff(during[:, 0])) < 3.5 * period, np.diff(during[:, 0])
        assert len(set(during[:, 1])) == 1, set(during[:, 1])
        assert np.mean(during[:, 2] == 0) >= 0.9, during[:, 2]
    finally:
        for node in nodes.values():
            node.stop()
