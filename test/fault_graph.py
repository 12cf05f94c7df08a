"""The tuning graph of the fault-injection tests: real node processes, faults from outside.

:class:`FaultGraph` starts the graph ``hybrid-mpc tune`` runs
(:class:`~hybrid_mpc_ros.tools.graph.TuningGraph`: lockstep simulator, MPC controller,
tuner, as separate processes in the test session's isolated domain), the tuner's sensitivity
subscription remapped through a :class:`~hybrid_mpc_ros.tools.fault_injection.
SensitivityRelay` in the test process, and watches every command. Nodes can be killed
and started again (same parameters, same output directory) by name.
"""

import csv
import json
import os
import signal

import numpy as np
import pytest

from hybrid_mpc_ros.core.scenario.sections import run_name
from hybrid_mpc_ros.tools import fault_injection as fi
from hybrid_mpc_ros.tools.graph import TuningGraph
from scenario_setup import offline_run, scenario, scenario_path

RUN = 'hybrid_g0.5'
STEPS = 25
# over the production settings (config/hybrid_tuner.yaml), on purpose: short timeouts, so a
# lost link or a killed node is noticed in seconds, not minutes, and a retry more for the
# faults injected; short episodes
TUNER_DEFAULTS = {'message_timeout_s': 2.0, 'service_timeout_s': 2.0,
                  'max_episode_retries': 6, 'episode_steps': STEPS}


class FaultGraph:
    """The tuning graph's processes with a fault relay in front of the tuner's stream."""

    def __init__(self, ros_node, folder, faults=None, hook=None, out=None, **tuner_params):
        self.ros_node = ros_node
        self.folder = folder
        self.out_dir = str(out or folder / 'out')
        self.path = scenario_path('arxiv_v1')
        chosen = scenario()
        config = chosen.mpc_config
        self.relay = fi.SensitivityRelay(ros_node.node, chosen.x0, faults, hook=hook)
        self.commands = fi.CommandWatch(ros_node.node, config.u_min, config.u_max)
        self.tuner_params = dict(TUNER_DEFAULTS, output_dir=self.out_dir, resume=True,
                                 **tuner_params)
        self.graph = TuningGraph(self.path, str(folder), self.tuner_params,
                                 remaps={'tuner': {fi.SOURCE_TOPIC: fi.RELAY_TOPIC}})
        self.nodes = self.graph.nodes
        self.starts = self.graph.starts
        # the run's files are named after the method (hybrid_g0.5 unless it is overridden)
        self.run = run_name(self.tuner_params.get('method', chosen.tuning.method),
                            chosen.tuning.gamma)

    def start(self, name, **extra):
        """Start node ``name`` ('simulator', 'controller', 'tuner'); its log is per start."""
        return self.graph.start(name, **extra)

    def start_all(self):
        """Start the three nodes."""
        self.graph.start_all()

    def kill(self, name):
        """SIGKILL node ``name`` (no clean shutdown, as a crash or the OOM killer)."""
        os.kill(self.nodes[name].pid, signal.SIGKILL)

    def logs(self):
        """The tail of every node's log, for a failure message."""
        return self.graph.logs()

    def spin_until(self, predicate, timeout, watch=('simulator', 'controller')):
        """Spin until ``predicate()``; fail with the logs on timeout or if a node died."""
        def done():
            for name in watch:
                if name in self.nodes and not self.nodes[name].alive():
                    pytest.fail(f'{name} exited:\n{self.logs()}')
            return predicate()
        assert self.ros_node.spin_until(done, timeout), self.logs()

    def wait_tuner(self, timeout, status=0):
        """Wait until the tuner exits; assert its exit status."""
        tuner = self.nodes['tuner']
        self.spin_until(lambda: not tuner.alive(), timeout)
        self.ros_node.spin_for(0.3)
        assert tuner.returncode == status, self.logs()

    def stop(self):
        """Stop every node."""
        self.graph.stop()

    def file(self, suffix):
        """Path of the run's file ``<run>.<suffix>``."""
        return os.path.join(self.out_dir, f'{self.run}.{suffix}')

    def rows(self, suffix):
        """Rows of the run's CSV ``<run>.<suffix>``."""
        with open(self.file(suffix), newline='') as stream:
            return list(csv.DictReader(stream))

    def summary(self):
        """The run's summary.json."""
        with open(self.file('summary.json')) as stream:
            return json.load(stream)

    def assert_files_complete(self, iterations):
        """Every iteration exactly once in the CSVs; both episodes of each in episodes.csv."""
        for suffix in ('csv', 'theta.csv'):
            counted = fi.iteration_rows(self.file(suffix), iterations)
            assert counted == {'rows': iterations, 'lost': 0, 'duplicated': 0}, \
                (suffix, counted)
        pairs = [(int(row['iteration']), row['role']) for row in self.rows('episodes.csv')]
        assert sorted(pairs) == [(k, role) for k in range(1, iterations + 1)
                                 for role in ('base', 'perturbed')], pairs

    def assert_equals_offline(self, iterations):
        """Costs and theta of every iteration equal the offline run's (same seed)."""
        history, thetas = offline_run(iterations, STEPS)
        from hybrid_mpc_ros.core.mpc import theta as th
        for row, expected, theta_row, expected_theta in zip(
                self.rows('csv'), history, self.rows('theta.csv'), thetas):
            assert abs(float(row['cost']) - expected['cost']) <= 1e-9 * expected['cost']
            theta = np.array([float(theta_row[name]) for name in th.names()])
            # the odometry round trip changes the last bits (see test_tuner_node)
            np.testing.assert_allclose(theta, expected_theta, rtol=1e-6, atol=1e-9)
