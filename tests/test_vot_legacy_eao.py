"""Legacy (Matlab-toolkit) EAO: hand-computed cases, then the same numbers read from a workspace."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from d3s_vot.integrations.vot.legacy_eao import Run, eao_score, expected_overlap_curve, legacy_eao, run_fragments, workspace_legacy_eao
from d3s_vot.synthetic.vot import write_vot

nan = float("nan")

# frame 1 init, 2-3 tracked (IoU 1), 4 failure, 5-8 skipped, 9 re-init, 10 tracked (IoU 1)
FAILING = Run("a", np.array([nan, 1, 1, nan, nan, nan, nan, nan, nan, 1.0]), (4,))
FAILING_CURVE = [1, 1, 1, 2 / 3, 2 / 4, 2 / 5, 2 / 6, 2 / 7, 2 / 8, 2 / 9]


def test_fragments_of_a_failing_run():
    first, last = run_fragments(FAILING, max_length=10)
    # init..re-init frame inclusive, NaN -> 0, zero-padded to the longest sequence
    assert first.tolist() == [0, 1, 1, 0, 0, 0, 0, 0, 0, 0]
    # the last fragment is not padded: NaN past its end
    assert last[:2].tolist() == [0, 1] and np.isnan(last[2:]).all()


def test_curve_of_a_failing_run():
    assert np.allclose(expected_overlap_curve([FAILING], 10), FAILING_CURVE)
    result = legacy_eao([FAILING], 10, low=2, high=10)
    assert result.score == pytest.approx(np.mean(FAILING_CURVE[1:]))
    assert (result.runs, result.sequences, result.failures) == (1, 1, 1)


def test_repetitions_weigh_one_over_their_count():
    runs = [Run("a", np.array([nan, .5, .5, .5]), ()), Run("a", np.array([nan, 1, 1, 1.]), ()),
            Run("b", np.array([nan, .2, .2, .2]), ())]
    curve = expected_overlap_curve(runs, 4)
    assert curve[0] == 1
    assert np.allclose(curve[1:], (0.5 * 0.5 + 0.5 * 1.0 + 1 * 0.2) / 2)  # 0.475, not the plain mean 0.5667


def test_shorter_sequences_leave_the_curve_after_their_end():
    runs = [Run("long", np.array([nan, 1, 1, 1, 1, 1.]), ()), Run("short", np.array([nan, .4, .4]), ())]
    assert np.allclose(expected_overlap_curve(runs, 6), [1, .7, .7, 1, 1, 1])


def test_failure_too_close_to_the_end_gives_no_break_point():
    run = Run("a", np.array([nan, 1, 1, 1, nan, nan]), (5,))  # 5 + 5 > 6: no re-initialisation
    fragments = run_fragments(run, 6)
    assert len(fragments) == 1 and fragments[0].tolist() == [0, 1, 1, 1, 0, 0]
    assert expected_overlap_curve([run], 6)[5] == pytest.approx(0.6)


def test_score_interval_is_clipped_and_nan_when_empty():
    curve = np.array([1, .5, .25, nan])
    assert eao_score(curve, 2, 3) == pytest.approx(0.375)
    assert eao_score(curve, 2, 100) == pytest.approx(0.375)
    assert math.isnan(eao_score(curve, 100, 356))


# --- the same case read from a workspace (text and the toolkit's binary trajectories) -----------------


def _make_workspace(tmp_path, binary: bool):
    from vot.region import Special
    from vot.region.io import parse_region, write_trajectory, write_trajectory_binary

    ws = tmp_path / "ws"
    write_vot(ws / "sequences", num_sequences=1, num_frames=10, seed=2)
    gt = (ws / "sequences" / "synthetic-000" / "groundtruth.txt").read_text().splitlines()
    trajectory = [Special(1), parse_region(gt[1]), parse_region(gt[2]), Special(2)] + [Special(0)] * 4 + \
                 [Special(1), parse_region(gt[9])]
    out = ws / "results" / "T" / "baseline" / "synthetic-000"
    out.mkdir(parents=True)
    for rep in (1, 2, 3):
        if binary:
            with open(out / f"synthetic-000_{rep:03d}.bin", "wb") as handle:
                write_trajectory_binary(handle, trajectory)
        else:
            write_trajectory(str(out / f"synthetic-000_{rep:03d}.txt"), trajectory)
    return ws


@pytest.mark.parametrize("binary", [False, True])
def test_workspace_results_give_the_hand_computed_score(tmp_path, binary):
    ws = _make_workspace(tmp_path, binary)
    result = workspace_legacy_eao(ws, "T", low=2, high=10)
    assert result.runs == 3 and result.failures == 3  # 3 identical repetitions, each with one failure
    assert np.allclose(result.curve, FAILING_CURVE)
    assert result.score == pytest.approx(np.mean(FAILING_CURVE[1:]))


def test_cli_output_and_errors(tmp_path):
    ws = _make_workspace(tmp_path, binary=False)
    run = lambda *a: subprocess.run([sys.executable, "-m", "d3s_vot.legacy_eao", *a], capture_output=True, text=True)
    ok = run(str(ws), "T", "--low", "2", "--high", "10")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == (f"T baseline: legacy EAO (vot2018, frames 2..10) = {np.mean(FAILING_CURVE[1:]):.4f}"
                                 "  [1 sequences, 3 runs, 3 failures, overlap matlab, curve from zeros, "
                                 "runs by is_deterministic]")
    default = run(str(ws), "T", "--stack", "vot2016")
    assert "frames 108..371) = nan" in default.stdout
    missing = run(str(ws), "nobody")
    assert missing.returncode == 2
    assert missing.stderr.strip() == (f"error: no results at {ws / 'results' / 'nobody' / 'baseline'} "
                                      f"(run: vot evaluate --workspace {ws} nobody)")
    no_ws = run(str(tmp_path / "absent"), "T")
    assert no_ws.returncode == 2 and no_ws.stderr.startswith("error: workspace")
