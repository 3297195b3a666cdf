"""vot_speed on a hand-made results directory: init, skipped and realtime-dropped frames are kept apart."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from d3s_vot.integrations.vot.toolkit_fps import speed_report

POLY = "1,1,5,1,5,5,1,5"


def _write(directory, stem, trajectory, times):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{stem}.txt").write_text("".join(f"{r}\n" for r in trajectory))
    (directory / f"{stem}_time.value").write_text("".join(f"{t}\n" for t in times))


@pytest.fixture()
def workspace(tmp_path):
    res = tmp_path / "results" / "T"
    # baseline: init (2 s), 2 frames, failure (frame time counted), 2 skipped (blank), re-init (1 s), 1 frame
    _write(res / "baseline" / "s1", "s1_001", ["1", POLY, POLY, "2", "0", "0", "1", POLY],
           ["2.0", "0.5", "0.25", "0.25", "", "", "1.0", "0.5"])
    _write(res / "baseline" / "s2", "s2_001", ["1", POLY, POLY], ["3.0", "0.1", "0.4"])
    # realtime: two frames dropped (time 0, previous output re-used)
    _write(res / "realtime" / "s1", "s1_001", ["1", POLY, POLY, POLY, POLY], ["2.0", "0.2", "0", "0", "0.3"])
    return tmp_path


def test_counts_and_fps(workspace):
    report = speed_report(workspace, with_hardware=False)
    baseline = report["trackers"]["T"]["baseline"]
    s1 = baseline["sequences"]["s1"]
    assert (s1["tracked_frames"], s1["init_frames"], s1["skipped_frames"], s1["dropped_frames"]) == (4, 2, 2, 0)
    assert s1["fps"] == pytest.approx(4 / 1.5) and s1["mean_init_seconds"] == pytest.approx(1.5)
    assert baseline["sequences"]["s2"]["fps"] == pytest.approx(2 / 0.5)
    total = baseline["total"]
    assert (total["tracked_frames"], total["init_frames"]) == (6, 3)
    assert total["fps"] == pytest.approx(6 / 2.0)  # pooled frames over pooled time, not a mean of FPS
    realtime = report["trackers"]["T"]["realtime"]["total"]
    assert (realtime["tracked_frames"], realtime["dropped_frames"]) == (2, 2)
    assert realtime["fps"] == pytest.approx(2 / 0.5)


def test_cli_json_and_table(workspace):
    out = subprocess.run([sys.executable, "-m", "d3s_vot.vot_speed", str(workspace), "T", "--json"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert set(doc["hardware"]) == {"cpu", "gpu", "torch", "python"} and doc["hardware"]["torch"]
    assert doc["trackers"]["T"]["baseline"]["total"]["fps"] == pytest.approx(3.0)
    table = subprocess.run([sys.executable, "-m", "d3s_vot.vot_speed", str(workspace)], capture_output=True, text=True)
    assert table.returncode == 0
    assert "  ALL                                6     3.00      3   2.000        2        0" in table.stdout


def test_errors_name_the_problem(workspace, tmp_path):
    (workspace / "results" / "T" / "baseline" / "s2" / "s2_001_time.value").write_text("3.0\nabc\n0.4\n")
    out = subprocess.run([sys.executable, "-m", "d3s_vot.vot_speed", str(workspace), "T"], capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.strip() == f"error: {workspace / 'results/T/baseline/s2/s2_001_time.value'}:2: not a number: 'abc'"
    missing = subprocess.run([sys.executable, "-m", "d3s_vot.vot_speed", str(workspace), "U"], capture_output=True,
                             text=True)
    assert missing.returncode == 2 and missing.stderr.startswith("error: no results for tracker 'U'")
