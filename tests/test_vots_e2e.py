"""VOTS2023-2025: several targets in one TraX session, through a raw trax client and the real toolkit 0.7.4.

The ``vots2023`` stack (the same experiment as ``vots2024/main`` and ``vots2025/main``: one unsupervised
multi-object run per sequence) lists no analyses, so the workspace is evaluated with the real stack and then
analysed with a stack file that adds the analyses of the toolkit's own ``tests/multiobject`` stack (results
live under ``results/<tracker>/baseline`` whatever the stack file is called). ``burnin: 1`` leaves the
initialisation frame out of the quality, so the oracle scores exactly 1 there; the long-term AR analysis
counts that frame as a miss, so the oracle's A and R are ``(frames - 1) / frames``.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from trax import TraxException
from trax.image import FileImage
from trax.region import Mask, Rectangle

from d3s_vot.synthetic.scene import SceneConfig
from d3s_vot.synthetic.vot import write_vot
from support import MASK_TRACKERS_INI, TraxSession, analysis, vot

SCENE = SceneConfig(width=160, height=120, speed=(4.0, 6.0), leave_view=False)
FRAMES = 10

ANALYSIS_STACK = """\
title: vots2023 with the analyses of the toolkit's tests/multiobject stack
experiments:
  baseline:
    type: unsupervised
    repetitions: 1
    multiobject: True
    analyses:
      - type: average_accuracy
        name: Quality
        burnin: 1
        ignore_unknown: False
        weighted: False
      - type: longterm_ar
        name: AR
"""

TRACKERS = MASK_TRACKERS_INI


def make_workspace(root: Path, sequences: int, frames: int, stack: str = "vots2023") -> Path:
    ws = root / "ws"
    write_vot(ws / "sequences", num_sequences=sequences, num_frames=frames, seed=0, config=SCENE, masks=True,
              objects=2)
    (ws / "trackers.ini").write_text(TRACKERS.format(ws=ws))
    (ws / "config.yaml").write_text(f"registry:\n- ./trackers.ini\nstack: {stack}\n")
    return ws


def analyse(ws: Path, name: str, *trackers: str) -> dict:
    (ws / "analysis_stack.yaml").write_text(ANALYSIS_STACK)
    (ws / "config.yaml").write_text("registry:\n- ./trackers.ini\nstack: ./analysis_stack.yaml\n")
    return analysis(ws, name, *trackers)


@pytest.fixture(scope="module")
def vots_ws(tmp_path_factory):
    ws = make_workspace(tmp_path_factory.mktemp("vots"), sequences=2, frames=FRAMES)
    log = vot("evaluate", "--workspace", str(ws), "oracle", "static", cwd=ws)
    assert "Evaluation concluded successfuly" in log, log
    return ws, analyse(ws, "ref", "oracle", "static")


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    root = tmp_path_factory.mktemp("seq")
    write_vot(root, num_sequences=1, num_frames=3, seed=0, config=SCENE, masks=True, objects=2)
    return [str(root / "synthetic-000" / "color" / f"{i:08d}.jpg") for i in (1, 2, 3)]


def _initialize(session, path, regions):
    return session.client.initialize({"color": FileImage.create(path)}, [(r, {}) for r in regions], {})[0]


def _frame(session, path, new=None):
    return session.client.frame({"color": FileImage.create(path)}, {}, [(r, {}) for r in new or []])[0]


def test_one_process_tracks_any_number_of_objects_and_reinitialises_subsets(frames, tmp_path):
    log = tmp_path / "init.log"
    session = TraxSession(timeout=30, D3S_OUTPUT="mask", D3S_INIT_LOG=str(log))
    assert session.client.get("multiobject") is True
    a, b, c = Rectangle.create(10, 10, 20, 15), Rectangle.create(60, 40, 30, 20), Rectangle.create(100, 70, 12, 12)
    assert len(_initialize(session, frames[0], [a, b, c])) == 3
    reply = _frame(session, frames[1])
    assert [region.type for region, _ in reply] == ["mask"] * 3
    assert [int(region.array()[y:y + 5, x:x + 5].sum()) for (region, _), (x, y) in zip(reply, [(10, 10), (60, 40), (100, 70)])] == [25] * 3
    assert all(dict(props) == {"confidence": "1.0000"} for _, props in reply)
    # a new sequence with a subset of the objects, in the same process
    assert len(_initialize(session, frames[1], [b])) == 1
    (region, _), = _frame(session, frames[2])
    assert region.array()[40:60, 60:90].all() and region.array().sum() == 31 * 21  # corners filled inclusively
    session.client.quit()
    assert session.finish()[0] == 0
    assert [line.split() for line in log.read_text().splitlines()] == \
        [[str(session.process.pid), "1", "3"], [str(session.process.pid), "2", "1"]]


@pytest.mark.parametrize("make_regions, message", [
    (lambda: [Rectangle.create(10, 10, 20, 15), Mask.create(np.zeros((4, 4), np.uint8), 5, 5)],
     "error: invalid init region: object 1 of 2: init mask is empty: no target (nonzero) pixel in the 120x160 mask"),
    (lambda: [Mask.create(np.ones((4, 4), np.uint8), 500, 5), Rectangle.create(10, 10, 20, 15)],
     "error: invalid init region: object 0 of 2: init mask lies entirely outside the 160x120 image: its 4x4 box "
     "starts at x=500, y=5"),
])
def test_a_bad_object_ends_the_session_naming_it(frames, make_regions, message):
    session = TraxSession(timeout=30, D3S_OUTPUT="mask")
    with pytest.raises(TraxException, match="Server terminated the session"):
        _initialize(session, frames[0], make_regions())
    code, stderr = session.finish()
    assert code == 1 and stderr.strip().splitlines()[-1] == message


def test_an_object_count_change_mid_sequence_ends_the_session(frames):
    session = TraxSession(timeout=30, D3S_OUTPUT="mask")
    _initialize(session, frames[0], [Rectangle.create(10, 10, 20, 15), Rectangle.create(60, 40, 30, 20)])
    with pytest.raises(TraxException, match="object count changed mid-sequence"):
        _frame(session, frames[1], new=[Rectangle.create(100, 70, 12, 12)])
    code, stderr = session.finish()
    assert code == 1 and stderr.strip().splitlines()[-1] == (
        "error: object count changed mid-sequence: a frame request brought 1 new object(s) while 2 are tracked; "
        "every target must be given in the INITIALIZE request (VOTS initialises all targets in the first frame)")


def test_oracle_and_static_through_the_vots2023_stack(vots_ws):
    ws, res = vots_ws
    assert sorted(p.name for p in (ws / "results" / "oracle" / "baseline" / "synthetic-000").glob("*.txt")) == \
        ["synthetic-000_000_001.txt", "synthetic-000_001_001.txt"]
    assert res[("oracle", "baseline", "AverageAccuracy")] == [1.0]
    accuracy, robustness, _ = res[("oracle", "baseline", "AccuracyRobustness")]
    assert accuracy == pytest.approx((FRAMES - 1) / FRAMES) and robustness == pytest.approx((FRAMES - 1) / FRAMES)
    static_quality = res[("static", "baseline", "AverageAccuracy")][0]
    assert 0 < static_quality < 0.6
    # every sequence's objects are served by one process and one INITIALIZE with both objects
    lines = [line.split() for line in (ws / "static_inits.log").read_text().splitlines()]
    assert [(count, objects) for _, count, objects in lines] == [("1", "2")] * 2


def test_bad_ground_truth_gives_a_clear_error_in_the_toolkit_log(tmp_path):
    ws = make_workspace(tmp_path, sequences=1, frames=3)
    gt = ws / "sequences" / "synthetic-000" / "groundtruth_001.txt"
    lines = gt.read_text().splitlines()
    gt.write_text("\n".join(["m0,0,0,0,0"] + lines[1:]) + "\n")         # object 1 has an empty first mask
    out = vot("evaluate", "--workspace", str(ws), "static", cwd=ws)
    message = "error: invalid init region: object 1 of 2: init mask is empty: no target (nonzero) pixel in the 120x160 mask"
    assert message in out
    logs = list((ws / "logs").glob("static_*.log"))
    assert len(logs) == 1 and message in logs[0].read_text() and "Process exited with code (1)" in logs[0].read_text()


@pytest.mark.parametrize("stack", ["vots2024/main", "vots2025/main"])
def test_the_later_vots_stacks_run_the_same_experiment(tmp_path, stack):
    ws = make_workspace(tmp_path, sequences=1, frames=4, stack=stack)
    log = vot("evaluate", "--workspace", str(ws), "oracle", cwd=ws)
    assert "Evaluation concluded successfuly" in log, log
    res = analyse(ws, "oracle", "oracle")
    assert res[("oracle", "baseline", "AverageAccuracy")] == [1.0]


@pytest.mark.slow
def test_d3s_mask_tracks_both_objects_in_one_process(tmp_path):
    ws = make_workspace(tmp_path, sequences=1, frames=6)
    log = vot("evaluate", "--workspace", str(ws), "D3S_mask", cwd=ws)
    assert "Evaluation concluded successfuly" in log, log
    res = analyse(ws, "d3s", "D3S_mask")
    quality = res[("D3S_mask", "baseline", "AverageAccuracy")][0]
    accuracy, robustness, _ = res[("D3S_mask", "baseline", "AccuracyRobustness")]
    assert all(math.isfinite(v) and 0 <= v <= 1 for v in (quality, accuracy, robustness))
    results = ws / "results" / "D3S_mask" / "baseline" / "synthetic-000"
    masks = [[line for line in (results / f"synthetic-000_00{k}_001.txt").read_text().splitlines()[1:]] for k in (0, 1)]
    assert all(line.startswith("m") for lines in masks for line in lines) and len(masks[0]) == 5
    lines = [line.split() for line in (ws / "d3s_inits.log").read_text().splitlines()]
    assert len(lines) == 1 and lines[0][1:] == ["1", "2"]     # one process, one INITIALIZE with both objects
