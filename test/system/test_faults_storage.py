"""Storage faults under a live tuning: the output directory full, then read-only (``faults``).

The run's output directory is a small tmpfs of its own (mounted by the test, which
needs root; skipped with the reason otherwise, since root ignores file permissions and
only a mount makes a directory read-only or full for it):

* the filesystem fills up in the middle of an episode: the tuner stops with a clear
  error (exit status 1) naming the directory and the error, and the checkpoint of the
  last complete iteration is left exactly as it was;
* the filesystem is read-only when the tuner starts to resume: a clear configuration
  error, the checkpoint untouched;
* writable again: the tuner resumes from that checkpoint and finishes, every iteration
  exactly once in the CSVs, the run equal to the offline run.
"""

import errno
import os
import subprocess

import pytest

from hybrid_mpc_ros.core.learning.run import load_checkpoint
from fault_graph import FaultGraph

pytestmark = pytest.mark.faults
ITERATIONS = 4


def _mount(*args):
    return subprocess.run(['mount', *args], capture_output=True, text=True)


@pytest.fixture
def small_fs(tmp_path):
    """A 1 MiB tmpfs at ``tmp_path / 'fs'``, unmounted after the test."""
    path = tmp_path / 'fs'
    path.mkdir()
    if os.geteuid() != 0:
        pytest.skip('the storage faults mount a small tmpfs, which needs root (as any '
                    'other user root-owned permissions would do, but root ignores them)')
    done = _mount('-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', str(path))
    if done.returncode != 0:
        pytest.skip(f'cannot mount a tmpfs here: {done.stderr.strip()}')
    yield path
    subprocess.run(['umount', '-l', str(path)], capture_output=True)


def _fill(path):
    """Write zeros into the file ``path`` until the filesystem is full."""
    with open(path, 'wb', buffering=0) as stream:
        for size in (65536, 4096, 1):
            try:
                while True:
                    stream.write(b'\0' * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc


def test_full_then_read_only_output_dir_stop_the_tuner_with_the_checkpoint_intact(
        ros_node, tmp_path, small_fs):
    saved = {}

    def hook(episode, step):
        # mid-episode of iteration 3 (episodes 5, 6): the checkpoint holds 2 iterations
        if episode == 5 and step == 10 and not saved:
            _fill(small_fs / 'filler')
            with open(graph.file('checkpoint.json'), 'rb') as stream:
                saved['checkpoint'] = stream.read()

    graph = FaultGraph(ros_node, tmp_path, hook=hook, out=small_fs / 'out',
                       iterations=ITERATIONS)
    try:
        graph.start_all()
        graph.spin_until(lambda: saved, 120.0)
        graph.wait_tuner(60.0, status=1)
        log = graph.nodes['tuner'].log_text()
        assert "cannot write the run's files in" in log and 'No space left on device' in log, \
            log[-3000:]
        assert 'is left as it was (after iteration 2' in log, log[-3000:]
        with open(graph.file('checkpoint.json'), 'rb') as stream:
            assert stream.read() == saved['checkpoint']
        _, state = load_checkpoint(graph.file('checkpoint.json'))
        assert state.iteration == 3 and len(state.history) == 2
        assert not [name for name in os.listdir(graph.out_dir) if name.endswith('.tmp')]

        # read-only when the tuner is started again to resume: a clear error at once
        os.remove(small_fs / 'filler')
        done = _mount('-o', 'remount,ro', str(small_fs))
        assert done.returncode == 0, done.stderr
        graph.start('tuner')
        graph.wait_tuner(60.0, status=1)
        log = graph.nodes['tuner'].log_text()
        assert "invalid configuration: cannot write the run's files into output_dir" in log \
            and 'Read-only file system' in log, log[-3000:]
        with open(graph.file('checkpoint.json'), 'rb') as stream:
            assert stream.read() == saved['checkpoint']

        # writable again: the run resumes where the checkpoint is and ends complete
        done = _mount('-o', 'remount,rw', str(small_fs))
        assert done.returncode == 0, done.stderr
        graph.start('tuner')
        graph.wait_tuner(120.0)
        assert 'at iteration 3' in graph.nodes['tuner'].log_text()
        graph.assert_files_complete(ITERATIONS)
        graph.assert_equals_offline(ITERATIONS)
        assert graph.commands.bad == []
    finally:
        graph.stop()
