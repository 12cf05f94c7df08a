"""The nodes' parameter tables in ``docs/parameters.md``, generated from their descriptors.

Each node is built in-process in a private rclpy context with its defaults (the default
scenario and the node's file in ``config/``), and every parameter it declares is read
back through ``describe_parameters``: name, type, default, whether it may change at
runtime, its range or constraints and its description. What the page says is therefore
what ``ros2 param describe`` says of a running node. A test regenerates the page and
compares, so a parameter added, removed or re-described without regenerating it fails.

    python -m hybrid_mpc_ros.tools.param_docs            # print the page
    python -m hybrid_mpc_ros.tools.param_docs --write    # rewrite docs/parameters.md
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

from hybrid_mpc_ros.core.paths import source_config_dir

PAGE = os.path.join('docs', 'parameters.md')
# (node name, module, class, what it is): the order of the page
NODES = (
    ('mpc_controller', 'hybrid_mpc_ros.ros.mpc_controller_node', 'MPCControllerNode',
     'the MPC controller (executable `mpc_controller_node`)'),
    ('quadcopter_simulator', 'hybrid_mpc_ros.ros.simulator_node', 'SimulatorNode',
     'the simulator (executable `simulator_node`)'),
    ('hybrid_tuner', 'hybrid_mpc_ros.ros.tuner_node', 'TunerNode',
     'the tuner (executable `tuner_node`)'),
    ('lqr_controller', 'hybrid_mpc_ros.ros.lqr_controller_node', 'LQRControllerNode',
     'the hover LQR of the demo (executable `lqr_controller_node`)'),
)
HEADER = """# Node parameters

Generated from the nodes' parameter descriptors by
`python -m hybrid_mpc_ros.tools.param_docs --write`; do not edit by hand (a test
regenerates this page and compares). Defaults are those of a node started without a
parameter file: the default scenario (`config/scenarios/l4dc2026.yaml`) for the experiment
values and the node's own file in `config/` for its runtime settings. A scenario file
given with `--params-file` replaces the experiment values. "not given": an optional key the
default scenario leaves out; a node declares it only when a parameter file gives it (a
scenario gives it where its choices need it). "runtime" parameters may be set
on a running node (`ros2 param set`); a set is checked whole and refused with a reason,
never applied in part. What each node does with them: [nodes](nodes.md).
"""
# declared by rclpy itself, not by the node
_ROS_OWN = ('use_sim_time', 'start_type_description_service')
_TYPES = {1: 'bool', 2: 'int', 3: 'double', 4: 'string', 5: 'byte[]', 6: 'bool[]',
          7: 'int[]', 8: 'double[]', 9: 'string[]'}


def _number(value) -> str:
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, float):
        return f'{value:.6g}'
    return str(value)


def _value(value) -> str:
    """Format a default as a table cell: scalars as they are, long arrays summarised."""
    if value is None:
        return 'not given'
    if isinstance(value, str):
        return f'`{value}`' if value else "`''`"
    if isinstance(value, (list, tuple)) or hasattr(value, 'tolist'):
        items = list(value.tolist() if hasattr(value, 'tolist') else value)
        if len(items) > 1 and all(item == items[0] for item in items):
            return f'{len(items)} x {_number(items[0])}'
        if len(items) > 6:
            return f'{len(items)} values'
        return '[' + ', '.join(_number(item) for item in items) + ']'
    return _number(value)


def _integer(value: int) -> str:
    """Format an integer range's end; the int64 limits (an open end) as -inf and inf."""
    return 'inf' if value >= 2 ** 62 else '-inf' if value <= -2 ** 62 else str(value)


def _range(descriptor) -> str:
    parts = []
    for item in descriptor.floating_point_range:
        parts.append(f'[{_number(item.from_value)}, {_number(item.to_value)}]')
    for item in descriptor.integer_range:
        parts.append(f'[{_integer(item.from_value)}, {_integer(item.to_value)}]')
    if descriptor.additional_constraints:
        parts.append(descriptor.additional_constraints)
    return '; '.join(parts)


def _cell(text: str) -> str:
    return ' '.join(text.split()).replace('|', '\\|')


def node_table(node) -> list[str]:
    """Markdown rows of every parameter ``node`` declares, sorted by name."""
    names = sorted(name for name in node._parameters if name not in _ROS_OWN)
    descriptors = node.describe_parameters(names)
    rows = ['| parameter | type | default | runtime | range | description |',
            '|---|---|---|---|---|---|']
    values = {name: node.get_parameter(name).value for name in names}
    # optional parameters a parameter file did not give are not declared (None: unset)
    absent = getattr(node, 'absent_parameters', {})
    described = dict(zip(names, descriptors), **absent)
    values.update(dict.fromkeys(absent))
    for name in sorted(described):
        descriptor = described[name]
        rows.append('| `{}` | {} | {} | {} | {} | {} |'.format(
            name, _TYPES.get(descriptor.type, '?'), _cell(_value(values[name])),
            'no' if descriptor.read_only else 'yes', _cell(_range(descriptor)),
            _cell(descriptor.description)))
    return rows


def render() -> str:
    """Return the whole page, from nodes built with their defaults."""
    import importlib

    import rclpy
    from rclpy.context import Context
    lines = [HEADER]
    with tempfile.TemporaryDirectory() as scratch:
        for name, module, cls, what in NODES:
            context = Context()
            rclpy.init(args=[], context=context)
            node = None
            try:
                node_class = getattr(importlib.import_module(module), cls)
                overrides = []
                if name == 'hybrid_tuner':    # it opens its run directory when built
                    from rclpy.parameter import Parameter
                    overrides = [Parameter('output_dir', value=scratch)]
                node = node_class(context=context, parameter_overrides=overrides)
                rows = node_table(node)
                if name == 'hybrid_tuner':    # the scratch directory is not a default
                    rows = [row.replace(_cell(_value(scratch)), '`results/tuning`')
                            for row in rows]
            finally:
                if node is not None:
                    node.destroy_node()
                rclpy.shutdown(context=context)
            lines += [f'## `{name}`: {what}', ''] + rows + ['']
    return '\n'.join(lines)


def main(argv: list[str] | None = None) -> int:
    """Print the page, or rewrite it with ``--write``."""
    parser = argparse.ArgumentParser(prog='python -m hybrid_mpc_ros.tools.param_docs',
                                     description=__doc__.splitlines()[0])
    parser.add_argument('--write', action='store_true', help=f'rewrite {PAGE}')
    args = parser.parse_args(argv)
    page = render()
    if args.write:
        path = os.path.join(os.path.dirname(source_config_dir()), PAGE)
        with open(path, 'w') as stream:
            stream.write(page)
        print(f'wrote {path}')
    else:
        sys.stdout.write(page)
    return 0


if __name__ == '__main__':
    sys.exit(main())
