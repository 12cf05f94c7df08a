"""The one place that finds acados, prepares its environment and caches generated solvers.

Works with two installs:

* the ``comma-deps-acados`` wheel (module ``acados`` exposing ``DIR``, ``LIB_DIR``,
  ``TERA_PATH``, ``TEMPLATE_DIR``; the Python interface is ``acados.acados_template``);
* an upstream acados build whose ``acados_template`` is importable at top level, with
  ``ACADOS_SOURCE_DIR`` set (or derivable from where ``acados_template`` lives).

acados' Python interface reads ``ACADOS_SOURCE_DIR``, ``TERA_PATH`` and
``ACADOS_PYTHON_INTERFACE_PATH`` from the environment, and the generated solver library
needs ``libacados``/``libhpipm``/``libblasfeo`` at load time. Instead of asking users for
``LD_LIBRARY_PATH`` we load those libraries once with ``RTLD_GLOBAL`` in dependency order,
so the dynamic loader resolves the generated library against them.

Generated code is cached per formulation under :func:`cache_root` (``$HYBRID_MPC_CACHE``,
else ``$XDG_CACHE_HOME/hybrid_mpc_ros/acados``, else ``~/.cache/hybrid_mpc_ros/acados``);
a file lock makes concurrent processes build a given formulation once.
"""

from __future__ import annotations

import contextlib
import ctypes
from dataclasses import dataclass
import fcntl
import hashlib
import importlib
import io
import json
import os
import sys
from types import ModuleType
from typing import Any, Callable

CACHE_ENV = 'HYBRID_MPC_CACHE'
_LIBS_IN_LOAD_ORDER = ('blasfeo', 'hpipm', 'qpOASES_e', 'acados')


class AcadosNotFound(RuntimeError):
    """acados (or one of its parts) cannot be found or loaded."""


@dataclass(frozen=True)
class AcadosInstall:
    """Where the pieces of an acados install are."""

    source_dir: str        # ACADOS_SOURCE_DIR: has include/ and lib/
    lib_dir: str
    tera_path: str         # the t_renderer executable
    interface_path: str    # ACADOS_PYTHON_INTERFACE_PATH: the acados_template package dir
    template_module: str   # importable name of the Python interface
    flavour: str           # 'comma-deps-acados' or 'upstream'


_install: AcadosInstall | None = None
_template: ModuleType | None = None


def _lib_name(stem: str) -> str:
    return f'lib{stem}' + ('.dylib' if sys.platform == 'darwin' else '.so')


def locate() -> AcadosInstall:
    """Find acados without changing anything; raise :class:`AcadosNotFound` with a hint."""
    try:
        wheel = importlib.import_module('acados')
        if hasattr(wheel, 'LIB_DIR') and hasattr(wheel, 'TEMPLATE_DIR'):
            return AcadosInstall(source_dir=wheel.DIR, lib_dir=wheel.LIB_DIR,
                                 tera_path=wheel.TERA_PATH, interface_path=wheel.TEMPLATE_DIR,
                                 template_module='acados.acados_template',
                                 flavour='comma-deps-acados')
    except ImportError:
        pass
    spec = importlib.util.find_spec('acados_template')
    if spec is None or spec.origin is None:
        raise AcadosNotFound(
            'acados not found: install the pinned wheel (`pip install -r requirements.txt`, '
            'package comma-deps-acados) or an upstream acados with its Python interface '
            '`acados_template` and ACADOS_SOURCE_DIR set')
    interface = os.path.dirname(spec.origin)
    # upstream layout: <src>/interfaces/acados_template/acados_template/__init__.py
    guess = os.path.abspath(os.path.join(interface, '..', '..', '..'))
    source = os.environ.get('ACADOS_SOURCE_DIR', guess)
    if not os.path.isdir(os.path.join(source, 'lib')):
        raise AcadosNotFound(f'upstream acados_template found at {interface} but '
                             f'ACADOS_SOURCE_DIR={source!r} has no lib/; set ACADOS_SOURCE_DIR')
    tera = os.environ.get('TERA_PATH', os.path.join(source, 'bin', 't_renderer'))
    return AcadosInstall(source_dir=source, lib_dir=os.path.join(source, 'lib'),
                         tera_path=tera, interface_path=interface,
                         template_module='acados_template', flavour='upstream')


def setup() -> AcadosInstall:
    """Set acados' environment variables and preload its libraries (idempotent)."""
    global _install
    if _install is not None:
        return _install
    install = locate()
    if not (os.path.isfile(install.tera_path) and os.access(install.tera_path, os.X_OK)):
        raise AcadosNotFound(f'acados template renderer not executable: {install.tera_path}')
    os.environ['ACADOS_SOURCE_DIR'] = install.source_dir
    os.environ['TERA_PATH'] = install.tera_path
    os.environ['ACADOS_PYTHON_INTERFACE_PATH'] = install.interface_path
    for stem in _LIBS_IN_LOAD_ORDER:
        path = os.path.join(install.lib_dir, _lib_name(stem))
        if not os.path.isfile(path):
            if stem == 'qpOASES_e':   # optional QP solver; not every build has it
                continue
            raise AcadosNotFound(f'acados library missing: {path}')
        try:
            ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
        except OSError as exc:
            raise AcadosNotFound(f'cannot load {path}: {exc}') from exc
    _install = install
    return install


def acados_template() -> ModuleType:
    """Return the ``acados_template`` Python interface, with the environment prepared."""
    global _template
    if _template is None:
        install = setup()
        _template = importlib.import_module(install.template_module)
    return _template


def cache_root() -> str:
    """Directory holding generated solvers (created on demand)."""
    root = os.environ.get(CACHE_ENV)
    if not root:
        base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
        root = os.path.join(base, 'hybrid_mpc_ros', 'acados')
    os.makedirs(root, exist_ok=True)
    return root


def formulation_key(description: dict[str, Any]) -> str:
    """Short stable hash of a JSON-serialisable formulation plus the acados install."""
    install = setup()
    payload = json.dumps({'formulation': description, 'acados': install.source_dir,
                          'python': sys.version_info[:2]}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


@contextlib.contextmanager
def _quiet():
    """Silence acados' prints (it reports OpenMP and build commands on stdout)."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def cached_ocp_solver(key: str, make_ocp: Callable[[str], Any], verbose: bool = False):
    """Return an ``AcadosOcpSolver`` for formulation ``key``, generating and compiling once.

    ``make_ocp(code_dir)`` must return the ``AcadosOcp`` whose ``code_export_directory`` is
    ``code_dir``. When ``<cache>/<key>/BUILD_OK`` exists the compiled solver is loaded
    without code generation or compilation.
    """
    at = acados_template()
    folder = os.path.join(cache_root(), key)
    os.makedirs(folder, exist_ok=True)
    code_dir = os.path.join(folder, 'c_generated_code')
    json_file = os.path.join(folder, 'acados_ocp.json')
    marker = os.path.join(folder, 'BUILD_OK')
    ocp = make_ocp(code_dir)
    with open(os.path.join(folder, '.lock'), 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            built = os.path.isfile(marker)
            output = contextlib.nullcontext() if verbose else _quiet()
            with output:
                if not built:
                    at.AcadosOcpSolver.generate(ocp, json_file=json_file)
                    at.AcadosOcpSolver.build(code_dir, with_cython=False, verbose=verbose)
                    with open(json_file) as stream:
                        name = json.load(stream)['model']['name']
                    library = os.path.join(code_dir, f'libacados_ocp_solver_{name}.so')
                    if not os.path.isfile(library):
                        raise AcadosNotFound(
                            f'acados code generation or compilation failed in {code_dir} '
                            '(is gcc/make installed?); rerun with verbose=True to see why')
                solver = at.AcadosOcpSolver(ocp, json_file=json_file, build=False,
                                            generate=False, verbose=verbose)
            if not built:
                with open(marker, 'w') as stream:
                    stream.write(key + '\n')
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return solver


class BoundSetter:
    """Set a solver's simple bounds (``lbx``, ``ubx``, ``lbu``, ``ubu``) on the control path.

    ``AcadosOcpSolver.constraints_set`` re-declares the C signatures and queries the
    dimensions on every call (27 to 45 us each here); the offset-free MPC moves 4 bounds
    at each of N stages every step. This calls the same C function,
    ``ocp_nlp_constraints_model_set``, with the signature declared once. ``value`` must be
    a C-contiguous float64 array of the field's size at that stage (the caller's arrays
    are fixed-size and preallocated; :meth:`set` checks the dtype and layout only).
    """

    def __init__(self, solver):
        self._solver = solver
        lib = solver.shared_lib
        self._set = lib.ocp_nlp_constraints_model_set
        self._set.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int,
                              ctypes.c_char_p, ctypes.c_void_p]
        self._fields = {name: name.encode('utf-8') for name in ('lbx', 'ubx', 'lbu', 'ubu')}

    def set(self, stage: int, field: str, value) -> None:
        """Set ``field`` at ``stage`` to ``value`` (a C-contiguous float64 array)."""
        if value.dtype != 'float64' or not value.flags.c_contiguous:
            raise ValueError('bounds must be C-contiguous float64 arrays')
        solver = self._solver
        self._set(solver.nlp_config, solver.nlp_dims, solver.nlp_in, stage,
                  self._fields[field], value.ctypes.data)
