"""End to end through the real VOT toolkit (0.7.4): synthetic workspace, vot test/evaluate/analysis.

The ORACLE (reports the ground-truth polygon) and STATIC (reports the init region) reference trackers give
numbers that are known exactly; D3S runs with random weights on tiny data, so only the plumbing is checked
(it fails often, that is fine). A tiny custom stack (vot2018/shortterm layout, EAO interval 5..25) keeps the
EAO finite on 30-frame sequences.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from d3s_vot.integrations.vot.legacy_eao import workspace_legacy_eao
from d3s_vot.synthetic.scene import SceneConfig
from d3s_vot.synthetic.vot import write_vot
from support import analysis, vot

STACK = """\
title: tiny vot2018/shortterm-like stack for tests
experiments:
  baseline:
    type: supervised
    repetitions: 15
    skip_initialize: 5
    analyses:
      - type: supervised_average_ar
        sensitivity: 30
      - type: supervised_eao_score
        low: 5
        high: 25
      - type: supervised_eao_curve
  realtime:
    type: supervised
    realtime:
      grace: 3
    repetitions: 1
    skip_initialize: 5
    analyses:
      - type: supervised_average_ar
        sensitivity: 30
      - type: supervised_eao_score
        low: 5
        high: 25
      - type: supervised_eao_curve
  unsupervised:
    type: unsupervised
    repetitions: 1
    analyses:
      - type: average_accuracy
"""

TRACKERS = """\
[oracle]
protocol = traxpython
command = d3s_vot.vot_reference_trackers
env_D3S_REFERENCE_TRACKER = oracle

[static]
protocol = traxpython
command = d3s_vot.vot_reference_trackers
env_D3S_REFERENCE_TRACKER = static
env_D3S_INIT_LOG = {ws}/static_inits.log

[D3S]
protocol = traxpython
command = d3s_vot.vot_tracker
timeout = 300
env_D3S_RANDOM_WEIGHTS = 0
env_D3S_DEVICE = cpu
; a cheaper initialisation keeps this CPU test short (and exercises D3S_PARAMS)
env_D3S_PARAMS = use_augmentation=False,init_cg_iter=12
env_D3S_INIT_LOG = {ws}/d3s_inits.log
"""


def make_workspace(root: Path, sequences: int, frames: int) -> Path:
    ws = root / "ws"
    # fast targets so that the static tracker fails (and is re-initialised) within 30 frames
    write_vot(ws / "sequences", num_sequences=sequences, num_frames=frames, seed=0,
              config=SceneConfig(speed=(4.0, 6.0), leave_view=False))
    (ws / "stack.yaml").write_text(STACK)
    (ws / "config.yaml").write_text("registry:\n- ./trackers.ini\nstack: ./stack.yaml\n")
    (ws / "trackers.ini").write_text(TRACKERS.format(ws=ws))
    return ws


@pytest.fixture(scope="module")
def reference_ws(tmp_path_factory):
    ws = make_workspace(tmp_path_factory.mktemp("vot"), sequences=2, frames=30)
    log = vot("evaluate", "--workspace", str(ws), "oracle", "static", cwd=ws)
    assert "Evaluation concluded successfuly" in log, log
    return ws, analysis(ws, "ref", "oracle", "static")


def test_oracle_scores_perfectly(reference_ws):
    _, res = reference_ws
    for experiment in ("baseline", "realtime"):
        accuracy, failures, (reliability, _), length = res[("oracle", experiment, "AverageAccuracyRobustness")]
        assert (accuracy, failures, reliability, length) == (1.0, 0.0, 1.0, 30.0)
        assert res[("oracle", experiment, "EAOScore")] == [1.0]
    assert res[("oracle", "unsupervised", "AverageAccuracy")] == [1.0]


def _simulated_static_failures(seq_dir: Path) -> int:
    """Failures of a static tracker under the supervised protocol, simulated independently of the runs."""
    from vot.dataset.common import read_sequence
    from vot.region import calculate_overlap

    seq = read_sequence(str(seq_dir))
    gt = seq.groundtruth()
    failures, frame = 0, 0
    while frame < len(gt):
        init = gt[frame]
        for current in range(frame + 1, len(gt)):
            if calculate_overlap(init, gt[current], tuple(seq.size)) <= 0:
                failures += 1
                frame = current + 5
                break
        else:
            break
    return failures


def test_static_fails_exactly_as_simulated_and_reuses_its_process(reference_ws):
    ws, res = reference_ws
    expected = [_simulated_static_failures(ws / "sequences" / f"synthetic-00{i}") for i in range(2)]
    assert sum(expected) >= 1, "the synthetic targets should move away from a static box"
    accuracy, failures, _, _ = res[("static", "baseline", "AverageAccuracyRobustness")]
    assert failures == pytest.approx(np.mean(expected))
    assert 0 <= accuracy < 1 and math.isfinite(res[("static", "baseline", "EAOScore")][0])
    assert 0 < res[("static", "unsupervised", "AverageAccuracy")][0] < 1
    # deterministic: the toolkit's early stop leaves 3 repetitions, not 15
    index = int(np.argmax(expected))
    name = f"synthetic-00{index}"
    seq_dir = ws / "results" / "static" / "baseline" / name
    assert sorted(p.name for p in seq_dir.glob("*_0??.txt")) == [f"{name}_00{r}.txt" for r in (1, 2, 3)]
    trajectory = (seq_dir / f"{name}_001.txt").read_text().splitlines()
    assert trajectory[0] == "1" and trajectory.count("2") == expected[index]
    f = trajectory.index("2")  # failure, 4 skipped frames, re-initialisation 5 frames later
    assert trajectory[f + 1 : f + 5] == ["0"] * 4 and trajectory[f + 5] == "1"
    # re-initialisations after failures happen in the running process
    pids = [line.split()[0] for line in (ws / "static_inits.log").read_text().splitlines()]
    total_inits = 3 * (2 + sum(expected)) + (2 + sum(expected))  # baseline x3 + realtime (+ unsupervised below)
    assert len(pids) >= total_inits
    assert len(set(pids)) < len(pids) and max(pids.count(p) for p in set(pids)) >= 2


def test_legacy_eao_of_the_reference_trackers(reference_ws):
    ws, _ = reference_ws
    assert workspace_legacy_eao(ws, "oracle", low=5, high=25).score == 1.0
    static = workspace_legacy_eao(ws, "static", low=5, high=25)
    assert 0 <= static.score < 1 and static.runs == 6


@pytest.mark.slow
def test_d3s_end_to_end_with_random_weights(tmp_path):
    ws = make_workspace(tmp_path, sequences=1, frames=10)
    test_log = vot("--registry", str(ws), "test", "D3S", "--sequence", str(ws / "sequences" / "synthetic-000"), cwd=ws)
    assert "Test concluded successfuly" in test_log, test_log
    log = vot("evaluate", "--workspace", str(ws), "D3S", cwd=ws)
    assert "Evaluation concluded successfuly" in log, log
    res = analysis(ws, "d3s", "D3S")
    accuracy, failures, _, _ = res[("D3S", "baseline", "AverageAccuracyRobustness")]
    assert 0 <= accuracy <= 1 and failures >= 0
    assert 0 <= res[("D3S", "unsupervised", "AverageAccuracy")][0] <= 1
    seq_dir = ws / "results" / "D3S" / "baseline" / "synthetic-000"
    assert sorted(p.name for p in seq_dir.glob("*_0??.txt")) == [f"synthetic-000_00{r}.txt" for r in (1, 2, 3)]
    confidences = (seq_dir / "synthetic-000_001_confidence.value").read_text().split()
    assert all(0.0 <= float(c) <= 1.0 for c in confidences)
    polygon_lines = [l for l in (seq_dir / "synthetic-000_001.txt").read_text().splitlines() if "," in l]
    assert polygon_lines and all(len(l.split(",")) == 8 for l in polygon_lines)
    lines = (ws / "d3s_inits.log").read_text().splitlines()
    pids = [line.split()[0] for line in lines]
    assert len(set(pids)) < len(pids)  # one process served several initialisations
