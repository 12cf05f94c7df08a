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


def _python_files(*folders):
    found = set()
    for folder in folders:
        for base, dirs, files in os.walk(os.path.join(ROOT, folder)):
            dirs[:] = [d for d in dirs if d != '__pycache__']
            found.update(os.path.relpath(os.path.join(base, name), ROOT)
                         for name in files if name.endswith('.py'))
    return found


def test_every_package_file_is_linted():
    """A sub-folder left out by a match-dir or exclude setting fails here, not silently."""
    package = _python_files('hybrid_mpc_ros')
    assert any(os.sep in os.path.relpath(path, 'hybrid_mpc_ros') for path in package)
    checked = _run('pydocstyle', '-v', 'hybrid_mpc_ros')
    seen = {line[len('Checking file '):].rstrip('.') for line in checked.stderr.splitlines()
            + checked.stdout.splitlines() if line.startswith('Checking file ')}
    assert seen == package, sorted(package ^ seen)
    counted = _run('flake8', '--benchmark', 'hybrid_mpc_ros', 'test', 'launch', 'setup.py')
    files = int(next(line.split()[0] for line in counted.stdout.splitlines()
                     if line.strip().endswith('total files processed')))
    assert files == len(package | _python_files('test', 'launch') | {'setup.py'})
