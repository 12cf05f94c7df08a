"""bench peers --quick: every method runs its budget, the JSON last line has the figures."""

import json

from hybrid_mpc_ros.tools import bench_peers


def test_quick_mode_runs_and_reports_every_method(tmp_path, capsys):
    out = str(tmp_path / 'peers')
    assert bench_peers.main(out=out, quick=True, workers=2) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(lines[-1])
    assert list(summary) == ['hybrid', 'cma_es', 'bayes_opt']
    for row in summary.values():
        assert {'episodes_to_90pct_median', 'final_cost_median', 'worst_excursion',
                'unsafe_episodes'} <= set(row)
        assert row['runs'] == 2 and row['episodes'] == 2 * bench_peers.QUICK_BUDGET
        assert row['outside_box'] == 0 or row is summary['hybrid']
    assert (tmp_path / 'peers' / 'peers.png').stat().st_size > 0
    # a rerun resumes: every result is stored, nothing runs again
    assert bench_peers.main(out=out, quick=True, workers=2) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == summary
