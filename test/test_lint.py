"""Code style as ament_flake8 / ament_pep257 would check it."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(*args):
    return subprocess.run([sys.executable, '-m', *args], cwd=ROOT, capture_output=True,
                          text=True, check=False)


def test_flake8():
    result = _run('flake8', 'hybrid_mpc_ros', 'test', 'launch', 'setup.py')
    assert result.returncode == 0, result.stdout + result.stderr


def test_pep257_docstrings():
    result = _run('pydocstyle', 'hybrid_mpc_ros')
    assert result.returncode == 0, result.stdout + result.stderr
