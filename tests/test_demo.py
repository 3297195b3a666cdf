"""The newcomer demo: argument and precondition errors (fast), one tiny end-to-end run (slow).

The end-to-end run uses the real VOT toolkit (vot evaluate/analysis as subprocesses, TraX to D3S with
random weights) and the got10k toolkit's scoring; its numbers are checked against the files the toolkits
wrote and against an independent recomputation (legacy EAO), not against fixed values: random-weight
tracking is not a quality measure.
"""
from __future__ import annotations

import json
import math
import sys

import pytest

from d3s_vot.tools import demo
from d3s_vot.tools.demo import DemoConfig, DemoError, WeightsChoice, eao_interval, got10k_frames_for, main


@pytest.fixture
def no_weights(tmp_path, monkeypatch):
    """An empty home (no ~/.cache/d3s_vot) and no $D3S_WEIGHTS: the demo falls back to random weights."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("D3S_WEIGHTS", raising=False)
    return home


def run_main(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("argv, message", [
    (["--sequences", "0"], "error: --sequences must be between 1 and 50, got 0"),
    (["--frames", "5"], "error: --frames must be between 10 and 2000, got 5"),
    (["--device", "tpu"], "error: argument --device: invalid choice: 'tpu'"),
    (["--frames", "many"], "error: argument --frames: invalid int value: 'many'"),
    (["--threads", "0"], "error: --threads must be at least 1, got 0"),
])
def test_bad_arguments(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.startswith(message) and err.count("\n") == 1


def test_missing_weights_file(tmp_path, capsys):
    code, _, err = run_main(["--out", str(tmp_path / "o"), "--weights", str(tmp_path / "nope.safetensors")], capsys)
    assert code == 2
    assert err == f"error: --weights {tmp_path / 'nope.safetensors'}: no such file (see docs/weights.md)\n"
    assert not (tmp_path / "o").exists()


def test_broken_weights_are_an_error_not_a_silent_fallback(tmp_path, no_weights, monkeypatch, capsys):
    bad = tmp_path / "d3s.safetensors"
    bad.write_bytes(b"not a weights file")
    monkeypatch.setenv("D3S_WEIGHTS", str(bad))
    code, _, err = run_main(["--out", str(tmp_path / "o")], capsys)
    assert code == 2 and err.startswith(f"error: cannot use the weights {bad}: ") and err.count("\n") == 1


def test_random_weights_are_announced(no_weights):
    choice = demo.resolve_weights(None)
    assert choice.path is None
    assert choice.notice.startswith(f"no D3S weights found (looked in $D3S_WEIGHTS (not set), "
                                    f"{no_weights / '.cache' / 'd3s_vot' / 'd3s.safetensors'}, ")
    assert choice.notice.endswith("using random weights: these numbers demonstrate the pipeline, not D3S's "
                                  "accuracy; see docs/weights.md")


def test_missing_toolkits(tmp_path, monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "vot" else real(name, *a))
    code, _, err = run_main(["--out", str(tmp_path / "o")], capsys)
    assert code == 2 and err.startswith("error: the VOT toolkit is not installed: pip install -e .[vot] ")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "got10k" else real(name, *a))
    code, _, err = run_main(["--out", str(tmp_path / "o")], capsys)
    assert code == 2 and err.startswith("error: the GOT-10k toolkit is not installed: pip install -e .[got10k]")


def test_refuses_a_foreign_non_empty_folder(tmp_path, no_weights, capsys):
    (tmp_path / "mine.txt").write_text("precious")
    code, _, err = run_main(["--out", str(tmp_path)], capsys)
    assert code == 2
    assert err == f"error: --out {tmp_path} is not empty and was not made by the demo; choose a new or empty folder\n"
    assert (tmp_path / "mine.txt").read_text() == "precious"


def test_out_dir_reuse_and_keep(tmp_path):
    out = tmp_path / "demo"
    config = DemoConfig(out, frames=30, got10k_frames=20)
    random = WeightsChoice(None, "random")
    demo.prepare_out_dir(config, random)
    (out / "logs").mkdir()
    (out / "report.md").write_text("old")
    (out / "notes.txt").write_text("user file")
    demo.prepare_out_dir(DemoConfig(out, frames=30, got10k_frames=20, keep=True), random)
    assert (out / "report.md").exists()                      # --keep: earlier outputs stay
    demo.prepare_out_dir(config, random)
    assert not (out / "report.md").exists() and not (out / "logs").exists()
    assert (out / "notes.txt").read_text() == "user file"    # only the demo's own outputs are removed
    settings = json.loads((out / "demo_settings.json").read_text())
    assert settings == {"sequences": 2, "frames": 30, "got10k_frames": 20, "device": None, "threads": 1,
                        "size": [320, 240], "weights": "random:0"}
    with pytest.raises(DemoError, match=r"--keep: .* holds results made with other settings"):
        demo.prepare_out_dir(DemoConfig(out, frames=40, got10k_frames=27, keep=True), random)


def test_small_helpers():
    assert eao_interval(60) == (10, 50) and eao_interval(20) == (3, 17) and eao_interval(10) == (2, 9)
    assert (got10k_frames_for(60), got10k_frames_for(20), got10k_frames_for(4)) == (40, 13, 5)
    ini = demo.trackers_ini(WeightsChoice(None, ""), "cpu", 1)
    assert ini.splitlines() == ["[D3S]", "label = D3S", "protocol = traxpython", "command = d3s_vot.vot_tracker",
                                "; CPU initialisation can take long on a busy machine: generous per-request timeout",
                                "timeout = 900", "env_D3S_OUTPUT = polygon", "env_D3S_RANDOM_WEIGHTS = 0",
                                "env_D3S_DEVICE = cpu", "env_OMP_NUM_THREADS = 1"]
    ini = demo.trackers_ini(WeightsChoice(demo.Path("/w/50%/d3s.safetensors"), ""), None, 2)
    assert "env_D3S_WEIGHTS = /w/50%%/d3s.safetensors" in ini and "D3S_DEVICE" not in ini
    assert ini.endswith("env_OMP_NUM_THREADS = 2\n")


def test_a_failed_evaluation_shows_the_log(tmp_path, capsys):
    fake_vot = [sys.executable, "-c", "print('Tracker execution interrupted: Unable to establish connection')"]
    with pytest.raises(DemoError) as exc:
        demo.vot_evaluate(fake_vot, tmp_path, tmp_path / "logs")
    log = tmp_path / "logs" / "vot_evaluate.log"
    assert str(log) in str(exc.value) and "Evaluation concluded successfuly" in str(exc.value)
    assert log.read_text() == "Tracker execution interrupted: Unable to establish connection\n"
    assert "  | Tracker execution interrupted" in capsys.readouterr().err


@pytest.mark.slow
def test_demo_end_to_end_with_random_weights(tmp_path, no_weights, capsys):
    out = tmp_path / "demo"
    code, stdout, err = run_main(["--out", str(out), "--sequences", "1", "--frames", "20", "--device", "cpu"],
                                 capsys)
    assert code == 0, err + stdout[-3000:]
    assert "WARNING: no D3S weights found" in stdout and "RANDOM WEIGHTS" in stdout
    assert "Evaluation concluded successfuly" in (out / "logs" / "vot_evaluate.log").read_text()
    results = json.loads((out / "demo_results.json").read_text())
    assert results["weights"]["random"] and results["settings"]["frames"] == 20
    vot = results["vot"]
    assert vot["eao_interval"] == [3, 17]
    for key in ("eao", "legacy_eao", "accuracy", "unsupervised_ao"):
        assert 0.0 <= vot[key] <= 1.0, key
    assert vot["failures_per_sequence"] >= 0 and vot["fps"] > 0
    # the numbers are the toolkits': the analysis file, an independent legacy-EAO computation
    from d3s_vot.integrations.vot.legacy_eao import workspace_legacy_eao
    from d3s_vot.tools.report import parse_vot_analysis

    ws = out / "vot_workspace"
    analysis = parse_vot_analysis(json.loads((ws / "analysis" / "demo.json").read_text()), "D3S", "demo.json")
    assert vot["eao"] == analysis[("baseline", "EAOScore")][0]
    assert vot["accuracy"] == analysis[("baseline", "AverageAccuracyRobustness")][0]
    assert vot["legacy_eao"] == workspace_legacy_eao(ws, "D3S", low=3, high=17).score
    # deterministic tracker: the toolkit stopped after 3 identical repetitions
    seq_dir = ws / "results" / "D3S" / "baseline" / "synthetic-000"
    assert sorted(p.name for p in seq_dir.glob("synthetic-000_0??.txt")) == [
        f"synthetic-000_00{r}.txt" for r in (1, 2, 3)]
    got = results["got10k"]
    performance = json.loads((out / "got10k_reports" / "GOT-10k" / "D3S" / "performance.json").read_text())
    assert got["ao"] == performance["D3S"]["overall"]["ao"] and 0 <= got["ao"] <= 1
    assert got["sr75"] == performance["D3S"]["overall"]["succ_curve"][75]
    assert got["sequences"] == 1 and got["tracked_frames"] == 12 and got["fps"] > 0
    # the report shows the same numbers
    report = (out / "report.md").read_text()
    assert f"| AO | {100 * got['ao']:.1f} | 59.7 |" in report
    assert (out / "report.html").read_text().startswith("<!DOCTYPE html>")
    assert math.isfinite(results["total_seconds"]) and "Total time:" in stdout
    assert set(results["stage_seconds"]) == {"workspace", "vot_evaluate", "vot_analysis", "got10k", "report"}
