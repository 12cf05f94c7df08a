"""launch_testing: ``launch/tuning_sim.launch.py`` runs a short tuning to its end.

Run with upstream ``launch_test test/system/tuning_sim_launch_test.py`` (or ``colcon test``) where
``launch_testing`` is installed; pytest skips this file, with the reason, where it is not
(it is not on PyPI). The launch's three nodes (lockstep simulator, MPC controller, tuner)
tune for two iterations of 20-step episodes; the test waits for the tuner's lines, then
checks after the shutdown that every process ended cleanly and the tuner wrote its files.
"""

import csv
import json
import os
import tempfile
import unittest

import pytest

launch_testing = pytest.importorskip(
    'launch_testing', reason='launch_testing is not installable here (not on PyPI); run '
                             'this file with upstream launch_test (docs/ros.md: Launch files)')

from launch import LaunchDescription  # noqa: E402
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
import launch_testing.actions  # noqa: E402
import launch_testing.asserts  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
LAUNCH_FILE = os.path.join(HERE, '..', '..', 'launch', 'tuning_sim.launch.py')
OUT = tempfile.mkdtemp(prefix='tuning_sim_launch_test_')
RUN = 'hybrid_g0.5'


@pytest.mark.launch_test
def generate_test_description():
    """The launch file with a short tuning, then ready to test."""
    tuning = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(LAUNCH_FILE),
        launch_arguments={'iterations': '2', 'episode_steps': '20', 'output_dir': OUT,
                          'resume': 'false'}.items())
    return LaunchDescription([tuning, launch_testing.actions.ReadyToTest()])


class TestTheTuningRuns(unittest.TestCase):
    """While the launch runs."""

    def test_a_line_per_iteration_then_the_end(self, proc_output):
        """The tuner logs both iterations and finishes."""
        proc_output.assertWaitFor('iteration    1/2', timeout=180)
        proc_output.assertWaitFor('iteration    2/2', timeout=60)
        proc_output.assertWaitFor('tuning finished', timeout=60)


@launch_testing.post_shutdown_test()
class TestAfterTheTuning(unittest.TestCase):
    """After the launch shut down (the tuner's exit ends it)."""

    def test_every_process_ended_cleanly(self, proc_info):
        """Simulator and controller stop on the shutdown, the tuner by itself: all 0."""
        launch_testing.asserts.assertExitCodes(proc_info)

    def test_the_tuner_wrote_its_files(self):
        """History, theta, episodes, checkpoint and summary, two iterations."""
        with open(os.path.join(OUT, f'{RUN}.csv'), newline='') as stream:
            rows = list(csv.DictReader(stream))
        self.assertEqual([row['iteration'] for row in rows], ['1', '2'])
        with open(os.path.join(OUT, f'{RUN}.summary.json')) as stream:
            summary = json.load(stream)
        self.assertEqual(summary['status'], 'finished')
        # the default scenario's first step is purely model-based (eta_1 = 1): one episode
        self.assertEqual(summary['episodes'], 3)
        for suffix in ('theta.csv', 'episodes.csv', 'checkpoint.json', 'learning_curve.png'):
            self.assertTrue(os.path.isfile(os.path.join(OUT, f'{RUN}.{suffix}')), suffix)
