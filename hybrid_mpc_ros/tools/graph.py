"""The simulated tuning graph: lockstep simulator, MPC controller and tuner, as processes.

The one place that says which nodes a simulated tuning runs and with which parameters.
``hybrid-mpc tune`` (and ``bench ros`` through it), ``bench faults``,
``launch/tuning_sim.launch.py`` and the node tests all take the graph from here, so the
tests run the graph users run.

* :data:`NODES`: per role (``simulator``, ``controller``, ``tuner``) the node's name, its
  console script and its module;
* :func:`node_parameters`: per role the parameter list, as ``launch_ros``'s ``Node``
  takes it (files and dicts, a later entry wins): every node reads the scenario file; the
  simulator runs in lockstep and is the ``/clock`` source (without ``use_sim_time``,
  which it does not need: a subscriber to its own ``/clock`` would cost it a delivery and
  a callback per step); the controller runs on simulation time, so it answers every
  odometry at once; the tuner also reads its runtime settings
  (``config/hybrid_tuner.yaml``) and then the caller's overrides (method, iterations,
  output directory, ...);
* :class:`TuningGraph`: starts those nodes as processes
  (:func:`~hybrid_mpc_ros.tools.processes.start_node`) one role at a time, in the order
  the caller chooses (a test can wait for discovery between two starts), restarts a role
  after a crash, and stops them all.
"""

from __future__ import annotations

from dataclasses import dataclass
import os

from hybrid_mpc_ros.core import paths
from hybrid_mpc_ros.tools import processes


@dataclass(frozen=True)
class NodeRole:
    """One node of the graph: its ROS name, console script and Python module."""

    name: str           # node name, as the scenario file's section and the launch file's
    executable: str     # console script (``ros2 run hybrid_mpc_ros <executable>``)
    module: str         # module under hybrid_mpc_ros that ``python -m`` runs


NODES = {
    'simulator': NodeRole('quadcopter_simulator', 'simulator_node', 'ros.simulator_node'),
    'controller': NodeRole('mpc_controller', 'mpc_controller_node',
                           'ros.mpc_controller_node'),
    'tuner': NodeRole('hybrid_tuner', 'tuner_node', 'ros.tuner_node'),
}
START_ORDER = ('simulator', 'controller', 'tuner')
# the tuner first (it has normally exited), then the controller, then the clock
STOP_ORDER = ('tuner', 'controller', 'simulator')
TUNER_SETTINGS_FILE = 'hybrid_tuner.yaml'

# The tuner's launch arguments, shared by launch/tuning_sim.launch.py and
# launch/tuning_vehicle.launch.py: (name, default, description, type of the parameter).
# An empty value leaves the parameter to the scenario (or the tuner's settings file).
TUNER_ARGUMENTS = (
    ('method', '', "hybrid, model_based or zeroth_order (empty: the scenario's)", str),
    ('gamma', '', "hybrid mixing exponent (empty: the scenario's)", float),
    ('iterations', '', "tuning iterations (empty: the scenario's)", int),
    ('episode_steps', '', "steps per episode T (empty: the scenario's)", int),
    ('seed', '', "seed of the random directions (empty: the scenario's)", int),
    ('output_dir', 'results/tuning', 'where the tuner writes CSVs, checkpoint and figure '
     '(relative: to the folder the launch was started in)', str),
    ('resume', 'false', 'true: continue the run whose checkpoint is in output_dir (a '
     "checkpoint of another run is refused); false: start afresh", bool),
)
# The files both tuning launch files take: (argument, path under the package's config/,
# description).
FILE_ARGUMENTS = (
    ('scenario', ('scenarios', 'l4dc2026.yaml'), 'the scenario: a ROS parameter file every '
     'node reads'),
    ('tuner_params', (TUNER_SETTINGS_FILE,), "the tuner's runtime settings (timeouts, "
     'retries, settling tolerances, output)'),
)
_TRUE, _FALSE = ('true', '1', 'yes'), ('false', '0', 'no')


def tuner_overrides(values: dict[str, str]) -> dict:
    """Return the tuner parameters of :data:`TUNER_ARGUMENTS` given as launch argument text.

    Empty values are left out; a value that is not of its parameter's type raises
    ValueError naming the argument (``iterations:=three`` is not an integer), instead of
    reaching the node as a parameter of the wrong type.
    """
    overrides = {}
    for name, _, _, kind in TUNER_ARGUMENTS:
        text = str(values.get(name, '')).strip()
        if not text:
            continue
        try:
            if kind is bool:
                if text.lower() not in _TRUE + _FALSE:
                    raise ValueError
                overrides[name] = text.lower() in _TRUE
            else:
                overrides[name] = kind(text)
        except ValueError:
            raise ValueError(f'launch argument {name}:={text} is not a valid '
                             f'{kind.__name__}') from None
    return overrides


def node_parameters(scenario_path: str, tuner_overrides: dict | None = None,
                    tuner_settings_file: str | None = None) -> dict[str, list]:
    """Return each role's parameter list: file paths (str) and dicts, a later entry wins.

    ``scenario_path`` is the scenario's ROS parameter file (every node reads it);
    ``tuner_settings_file`` the tuner's runtime settings (default: the package's
    ``config/hybrid_tuner.yaml``); ``tuner_overrides`` tuner parameters over both (e.g.
    ``iterations``, ``output_dir``, ``resume``). A dict is meant as the node's own
    section given after the files, which is how ``launch_ros`` passes it and how
    :class:`TuningGraph` writes it, so it overrides the scenario's section.
    """
    if tuner_settings_file is None:
        tuner_settings_file = paths.config_file(TUNER_SETTINGS_FILE)
    return {
        # the clock source itself needs no use_sim_time
        'simulator': [scenario_path, {'clock_mode': 'lockstep'}],
        'controller': [scenario_path, {'use_sim_time': True}],
        'tuner': [scenario_path, tuner_settings_file, dict(tuner_overrides or {})],
    }


class TuningGraph:
    """The graph's node processes on one domain, started role by role.

    ``folder`` receives each start's log (``<role>.log``, then ``<role>2.log``, ...) and
    the parameter file written from its dicts (``<role>_overrides.yaml``, ...). ``env``
    is the processes' environment (None: this process's, see
    :func:`~hybrid_mpc_ros.tools.processes.start_node`); ``remaps`` maps a role to its
    topic remappings (e.g. the tuner's sensitivity stream through a fault relay).
    """

    def __init__(self, scenario_path: str, folder: str, tuner_overrides: dict | None = None,
                 *, env: dict | None = None, remaps: dict | None = None,
                 tuner_settings_file: str | None = None):
        self.scenario_path = str(scenario_path)
        self.folder = str(folder)
        self.tuner_overrides = dict(tuner_overrides or {})
        self.tuner_settings_file = tuner_settings_file
        self.env = env
        self.remaps = dict(remaps or {})
        self.nodes: dict[str, processes.NodeProcess] = {}
        self.starts: dict[str, int] = {}
        os.makedirs(self.folder, exist_ok=True)

    def parameters(self) -> dict[str, list]:
        """Return this graph's :func:`node_parameters`."""
        return node_parameters(self.scenario_path, self.tuner_overrides,
                               self.tuner_settings_file)

    def log_path(self, role: str, start: int = 1) -> str:
        """Path of the log of ``role``'s ``start``-th start (1: the first)."""
        return os.path.join(self.folder, f'{_stem(role, start)}.log')

    def start(self, role: str, **overrides) -> processes.NodeProcess:
        """Start ``role``'s node (again, after a crash: a new log) and return its process.

        ``overrides`` are parameters of this start only, after the graph's own (a test's
        odd value, e.g. a service name nobody offers).
        """
        count = self.starts[role] = self.starts.get(role, 0) + 1
        node = NODES[role]
        files = []
        sections = {}
        for entry in self.parameters()[role] + [overrides]:
            if isinstance(entry, dict):
                sections.update(entry)
            else:
                files.append(entry)
        if sections:
            files.append(processes.write_params_file(
                os.path.join(self.folder, f'{_stem(role, count)}_overrides.yaml'), node.name,
                sections))
        process = processes.start_node(node.module, params_file=files,
                                       remaps=self.remaps.get(role), env=self.env,
                                       log_path=self.log_path(role, count))
        self.nodes[role] = process
        return process

    def start_all(self, order=START_ORDER) -> None:
        """Start every role in ``order``."""
        for role in order:
            self.start(role)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop every node that was started, in :data:`STOP_ORDER`."""
        for role in STOP_ORDER:
            if role in self.nodes:
                self.nodes[role].stop(timeout=timeout)

    def logs(self, chars: int = 3000) -> str:
        """Return the tail of each role's newest log, for an error message."""
        return '\n'.join(f'--- {role}:\n{node.log_text()[-chars:]}'
                         for role, node in self.nodes.items())


def _stem(role: str, start: int) -> str:
    return role if start == 1 else f'{role}{start}'
