"""The layout's promise: core/ imports no ROS package, and neither core/ nor ros/ imports tools/."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORE = os.path.join(ROOT, 'hybrid_mpc_ros', 'core')


def _modules(folder, package):
    names = []
    for base, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if d != '__pycache__']
        rel = os.path.relpath(base, folder)
        prefix = package if rel == '.' else package + '.' + rel.replace(os.sep, '.')
        names += [prefix if name == '__init__.py' else f'{prefix}.{name[:-3]}'
                  for name in files if name.endswith('.py')]
    return sorted(names)


def test_importing_every_core_module_pulls_in_no_ros():
    modules = _modules(CORE, 'hybrid_mpc_ros.core')
    assert len(modules) > 20
    code = ('import importlib, sys\n'
            f'for name in {modules!r}:\n'
            '    importlib.import_module(name)\n'
            "ros = sorted(m for m in sys.modules if m.split('.')[0] in ('rclpy', 'rcl_interfaces',"
            " 'std_msgs', 'nav_msgs', 'geometry_msgs', 'builtin_interfaces', 'rosidl_runtime_py'"
            ", 'diagnostic_msgs', 'std_srvs', 'rosgraph_msgs'))\n"
            'print(ros)\n')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                            check=False)           # a fresh interpreter: nothing preloaded
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == '[]', result.stdout


def _imported_packages(path):
    """Every module a file imports, absolute names (relative imports resolved one level)."""
    import ast
    tree = ast.parse(open(path).read(), path)
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module if node.level == 0 else f'.{node.module}')
    return names


def test_nodes_and_core_use_no_tool():
    """ros/ and core/ import nothing from tools/: a node only translates for the core."""
    offenders = []
    for layer in ('ros', 'core'):
        for base, _, files in os.walk(os.path.join(ROOT, 'hybrid_mpc_ros', layer)):
            for name in files:
                if name.endswith('.py'):
                    path = os.path.join(base, name)
                    offenders += [(path, module) for module in _imported_packages(path)
                                  if 'tools' in module.split('.')]
    assert offenders == []
