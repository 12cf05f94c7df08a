"""docs/parameters.md is what the nodes' parameter descriptors say, regenerated and compared."""

import os

from hybrid_mpc_ros.tools import param_docs

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_the_parameter_page_is_what_the_nodes_declare():
    with open(os.path.join(ROOT, param_docs.PAGE)) as stream:
        committed = stream.read()
    assert param_docs.render() == committed, (
        'docs/parameters.md is out of date: run '
        'python -m hybrid_mpc_ros.tools.param_docs --write')


def test_every_node_parameter_has_a_row_and_a_description():
    page = param_docs.render()
    for name, *_ in param_docs.NODES:
        assert f'## `{name}`' in page
    rows = [line for line in page.splitlines() if line.startswith('| `')]
    assert len(rows) > 100
    assert all(not line.rstrip().endswith('|  |') for line in rows), 'a row without description'
