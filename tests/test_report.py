"""The reproduction report: published numbers as data, tables built from format-exact result files.

The inputs are small hand-made files in the exact layouts the tools write (a `vot analysis --format json`
file of vot-toolkit 0.7.4, VOT text trajectories and timing files, got10k's performance.json, the
--json files of d3s_vot.got10k_eval and d3s_vot.trackingnet_eval); every number in the tables is checked.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from d3s_vot.tools.report import (ReportError, build_report, load_references, main, parse_vot_analysis, render_html,
                            render_markdown)
from d3s_vot.synthetic.scene import SceneConfig
from d3s_vot.synthetic.vot import write_vot

FRAMES = 20


def table(markdown: str, title: str) -> dict:
    """``{metric: [cells...]}`` of the Markdown table under ``## title``."""
    section = markdown.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| metric")]
    return {cells[0]: cells[1:] for cells in ([c.strip() for c in r.strip("|").split(" | ")] for r in rows)}


# --- the published numbers --------------------------------------------------------------------------------


def test_published_numbers_have_sources_and_the_known_values():
    refs = load_references()
    assert all(e.paper.source and e.seed.source for e in refs.values())
    expected = {"vot2016.eao": 0.493, "vot2016.accuracy": 0.66, "vot2016.robustness": 0.131,
                "vot2018.eao": 0.489, "vot2018.accuracy": 0.640, "vot2018.robustness": 0.150,
                "got10k.ao": 59.7, "got10k.sr50": 67.6, "got10k.sr75": 46.2,
                "trackingnet.success": 72.8, "trackingnet.precision": 66.4, "trackingnet.norm_precision": 76.8}
    assert {k: refs[k].paper.value for k in expected} == expected
    assert all(refs[k].paper.verified for k in expected)
    assert (refs["vot2018.eao"].seed.value, refs["got10k.ao"].seed.value, refs["speed.got10k"].seed.value) == \
        (0.487, 60.0, 16.0)
    # anything not read in a source is flagged
    assert not refs["davis2016.jf"].paper.verified and refs["vot2018.realtime_eao"].paper.value is None
    assert all(not e.paper.verified for e in refs.values() if e.paper.value is None)


def test_a_broken_reference_file_is_named(tmp_path):
    bad = tmp_path / "paper.json"
    bad.write_text('{"format": "d3s_vot.paper_results/1", "results": [{"id": "x"}]}')
    with pytest.raises(ReportError, match=r"paper\.json: malformed entry"):
        load_references(bad)


# --- inputs --------------------------------------------------------------------------------------------------


def analysis_json(trackers, baseline_ar, baseline_eao, realtime_eao, unsupervised_ao) -> dict:
    """The layout of vot-toolkit 0.7.4's `vot analysis --format json` (curves shortened)."""
    def supervised(eao_values, ar_values):
        return {"parameters": {"realtime": None, "repetitions": 15, "skip_initialize": 5, "analyses": [
                    {"name": None, "sensitivity": 30.0, "burnin": 10, "ignore_unknown": True, "bounded": True,
                     "type": "vot.analysis.supervised.AverageAccuracyRobustness"},
                    {"name": None, "burnin": 10, "bounded": True, "low": 3, "high": 16,
                     "type": "vot.analysis.supervised.EAOScore"},
                    {"name": None, "burnin": 10, "bounded": True, "type": "vot.analysis.supervised.EAOCurve"}]},
                "type": "vot.experiment.multirun.SupervisedExperiment",
                "results": [ar_values, [[v] for v in eao_values], [[[0.0, 1.0, 0.9]] for _ in eao_values]]}
    return {
        "toolkit": "0.7.4", "timestamp": "2026-11-24T15:36:32.907250",
        "trackers": {t: {"command": "d3s_vot.vot_tracker", "label": t, "protocol": "traxpython",
                         "arguments": {}, "env": {}} for t in trackers},
        "sequences": {"synthetic-000": {"length": FRAMES, "width": 160, "height": 120}},
        "results": {
            "baseline": supervised(baseline_eao, baseline_ar),
            "realtime": supervised(realtime_eao, baseline_ar),
            "unsupervised": {"parameters": {"analyses": [{"name": None, "burnin": 10, "weighted": True,
                                                          "type": "vot.analysis.accuracy.AverageAccuracy"}]},
                             "type": "vot.experiment.multirun.UnsupervisedExperiment",
                             "results": [[[v] for v in unsupervised_ao]]},
        },
    }


def gt_polygons(ws):
    return np.loadtxt(ws / "sequences" / "synthetic-000" / "groundtruth.txt", delimiter=",")


def make_vot_workspace(root, stack="vot2018/shortterm", failures=(7,)):
    """One 20-frame sequence; D3S results: 3 identical repetitions that replay the ground truth except for the
    given failure frames (1-based: failure code 2, 4 skipped frames, re-initialisation)."""
    ws = root / "ws"
    write_vot(ws / "sequences", num_sequences=1, num_frames=FRAMES, seed=3,
              config=SceneConfig(width=160, height=120, leave_view=False))
    (ws / "config.yaml").write_text(f"registry:\n- ./trackers.ini\nstack: {stack}\n")
    gt = gt_polygons(ws)
    lines, times = [], []
    reinit = 0
    for frame in range(1, FRAMES + 1):
        if frame in (1, reinit):
            lines.append("1"), times.append("2.0")
        elif frame in failures:
            lines.append("2"), times.append("0.5")
            reinit = frame + 5
        elif frame < reinit:
            lines.append("0"), times.append("")
        else:
            lines.append(",".join(f"{v:.4f}" for v in gt[frame - 1])), times.append("0.25")
    seq_dir = ws / "results" / "D3S" / "baseline" / "synthetic-000"
    seq_dir.mkdir(parents=True)
    for rep in (1, 2, 3):
        (seq_dir / f"synthetic-000_{rep:03d}.txt").write_text("\n".join(lines) + "\n")
        (seq_dir / f"synthetic-000_{rep:03d}_time.value").write_text("\n".join(times) + "\n")
    (ws / "analysis").mkdir()
    return ws


def write_analysis(ws, name, doc, mtime=None):
    path = ws / "analysis" / f"{name}.json"
    path.write_text(json.dumps(doc))
    if mtime is not None:
        import os
        os.utime(path, (mtime, mtime))
    return path


def test_vot_table_from_a_workspace(tmp_path):
    ws = make_vot_workspace(tmp_path)
    doc = analysis_json(["static", "D3S"], [[0.1, 2.0, [0.5, 0.1], 20.0], [0.62, 1.0, [0.22, 0.62], 20.0]],
                        [0.2, 0.45], [0.1, 0.4], [0.3, 0.55])
    write_analysis(ws, "older", analysis_json(["D3S"], [[0.9, 0.0, [1, 0.9], 20.0]], [0.9], [0.9], [0.9]), 1000)
    write_analysis(ws, "newer", doc, 2000)
    report = build_report([ws], tracker="D3S")
    markdown = render_markdown(report)
    rows = table(markdown, "VOT2018: D3S")
    # legacy EAO: the ground truth is replayed (overlap 1) except one failure at frame 7 (re-init at 12)
    from d3s_vot.integrations.vot.legacy_eao import workspace_legacy_eao
    legacy = workspace_legacy_eao(ws, "D3S", stack="vot2018")
    assert math.isnan(legacy.score)  # the real interval 100..356 is beyond a 20-frame curve
    assert rows["EAO (legacy Matlab definition)"][:5] == ["n/a", "0.489", "n/a", "0.487", "n/a"]
    assert rows["EAO (Python toolkit)"][:5] == ["0.450", "n/a", "n/a", "n/a", "n/a"]
    assert rows["Accuracy A"][:5] == ["0.620", "0.640", "-0.020", "0.630", "-0.010"]
    # one failure per repetition on 20 frames: 5 failures per 100 frames
    assert rows["Robustness R (failures per 100 frames)"][:5] == ["5.000", "0.150", "+4.850", "0.153", "+4.847"]
    assert rows["Failures per sequence (Python toolkit R)"][0] == "1.00"
    assert rows["Realtime EAO (Python toolkit)"][:3] == ["0.400", "n/a", "n/a"]
    assert rows["Unsupervised AO (Python toolkit)"][0] == "0.550"
    # FPS over tracked frames (not init or skipped ones): per repetition 13 frames of 0.25 s and the failure
    # frame of 0.5 s -> 14 / 3.75 = 3.73 fps
    assert rows["FPS (baseline, tracked frames)"][:5] == ["3.7", "25.0", "-21.3", "21.0", "-17.3"]
    assert "Source: `" + str(ws) + "; analysis newer.json`" in markdown


def test_custom_stack_uses_its_interval_and_has_no_paper_column(tmp_path):
    ws = make_vot_workspace(tmp_path, stack="./stack.yaml")
    (ws / "stack.yaml").write_text("title: t\nexperiments:\n  baseline:\n    type: supervised\n    analyses:\n"
                                   "      - type: supervised_average_ar\n      - type: supervised_eao_score\n"
                                   "        low: 3\n        high: 16\n")
    write_analysis(ws, "a", analysis_json(["D3S"], [[0.62, 1.0, [0.22, 0.62], 20.0]], [0.45], [0.4], [0.55]))
    markdown = render_markdown(build_report([ws], tracker="D3S"))
    rows = table(markdown, "VOT custom stack ./stack.yaml: D3S")
    from d3s_vot.integrations.vot.legacy_eao import workspace_legacy_eao
    legacy = workspace_legacy_eao(ws, "D3S", low=3, high=16)
    assert 0 < legacy.score < 1
    assert rows["EAO (legacy Matlab definition)"][:2] == [f"{legacy.score:.3f}", "n/a"]
    assert rows["Accuracy A"][1:5] == ["n/a"] * 4
    assert "legacy EAO over sequence lengths 3..16; 1 sequences, 3 runs, 3 failures" in markdown


def test_vot_workspace_without_analysis_or_results(tmp_path):
    ws = make_vot_workspace(tmp_path)
    markdown = render_markdown(build_report([ws], tracker="D3S"))
    assert "no `vot analysis` JSON for D3S" in markdown
    rows = table(markdown, "VOT2018: D3S")
    assert rows["Robustness R (failures per 100 frames)"][0] == "5.000" and "EAO (Python toolkit)" not in rows
    other = render_markdown(build_report([ws], tracker="ATOM"))
    assert "## VOT2018" not in other
    assert f"VOT2018 ({ws}): no results and no analysis for ATOM (run: vot evaluate --workspace {ws} ATOM)" in other


def test_bad_analysis_json_is_named(tmp_path):
    ws = make_vot_workspace(tmp_path)
    (ws / "analysis" / "broken.json").write_text("{not json")
    with pytest.raises(ReportError, match=r"broken\.json: not valid JSON"):
        build_report([ws])
    with pytest.raises(ReportError, match=r"x\.json: not a `vot analysis --format json` file"):
        parse_vot_analysis({"trackers": {"D3S": {}}, "results": {"baseline": {}}}, "D3S", "x.json")


def performance_json(name, ao, sr, sr75, fps):
    curve = [1.0] * 76 + [0.0] * 25
    curve[75] = sr75
    return {name: {"overall": {"ao": ao, "sr": sr, "speed_fps": fps, "succ_curve": curve},
                   "seq_wise": {"GOT-10k_Val_000001": {"ao": ao, "sr": sr, "speed_fps": fps, "length": 40}}}}


def test_got10k_tables_from_performance_json_and_runner_json(tmp_path):
    folder = tmp_path / "reports" / "GOT-10k" / "D3S"
    folder.mkdir(parents=True)
    (folder / "performance.json").write_text(json.dumps(performance_json("D3S", 0.6123, 0.7, 0.45, 30.0)))
    for where in (tmp_path / "reports", folder, folder / "performance.json"):
        rows = table(render_markdown(build_report(got10k=where)), "GOT-10k val (local): D3S")
        assert rows["AO"][:5] == ["61.2", "59.7", "+1.5", "60.0", "+1.2"]
        assert rows["SR0.5"][:5] == ["70.0", "67.6", "+2.4", "68.6", "+1.4"]
        assert rows["SR0.75"][:5] == ["45.0", "46.2", "-1.2", "47.3", "-2.3"]
        assert rows["FPS"][:5] == ["30.0", "25.0", "+5.0", "16.0", "+14.0"]
    runner = tmp_path / "val.json"
    runner.write_text(json.dumps({"benchmark": "GOT-10k", "subset": "val", "tracker": "D3S_random0", "ao": 0.1,
                                  "sr50": 0.05, "sr75": 0.0, "fps": 2.5, "fps_toolkit": 9.0}))
    markdown = render_markdown(build_report(got10k=runner))
    rows = table(markdown, "GOT-10k val (local): D3S_random0")
    assert [r[0] for r in rows.values()] == ["10.0", "5.0", "0.0", "2.5"]
    assert rows["AO"][2] == "-49.7"
    assert "results of tracker 'D3S_random0'" in markdown


def test_got10k_errors_name_the_file(tmp_path):
    two = tmp_path / "performance.json"
    two.write_text(json.dumps({**performance_json("A", 0.5, 0.5, 0.5, 1), **performance_json("B", 0.5, 0.5, 0.5, 1)}))
    with pytest.raises(ReportError, match=r"performance\.json: no results for tracker 'D3S' \(it has A, B\)"):
        build_report(got10k=two)
    bad = tmp_path / "bad.json"
    bad.write_text('{"D3S": {"overall": {"ao": 0.5}}}')
    with pytest.raises(ReportError, match=r"bad\.json: not a GOT-10k performance\.json"):
        build_report(got10k=bad)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReportError, match="no performance.json in"):
        build_report(got10k=tmp_path / "empty")
    with pytest.raises(ReportError, match="does not exist"):
        build_report(got10k=tmp_path / "missing")
    test_split = tmp_path / "test.json"
    test_split.write_text(json.dumps({"benchmark": "GOT-10k", "subset": "test", "tracker": "D3S", "fps": 3.0}))
    with pytest.raises(ReportError, match="test results without metrics"):
        build_report(got10k=test_split)


def trackingnet_json(path, **extra):
    scores = {"success": 70.25, "precision": 65.0, "norm_precision": 77.04, "coverage": 100.0, "sequences": 3,
              "success_curve": [], "precision_curve": [], "norm_precision_curve": [], "missing": [],
              "ambiguous": [], "per_sequence": {}}
    path.write_text(json.dumps({"benchmark": "TrackingNet", "chunks": ["TRAIN_0"], "tracker": "D3S",
                                "scored_chunks": ["TRAIN_0"], "scores": scores, **extra}))
    return path


def test_trackingnet_table(tmp_path):
    markdown = render_markdown(build_report(trackingnet=trackingnet_json(tmp_path / "tn.json", fps=20.0)))
    rows = table(markdown, "TrackingNet (TRAIN_0): D3S")
    assert rows["Success (AUC)"][:5] == ["70.2", "72.8", "-2.5", "72.8", "-2.5"]  # 70.25 -> 70.2 (half-even)
    assert rows["Precision"][:5] == ["65.0", "66.4", "-1.4", "66.5", "-1.5"]
    assert rows["Normalized precision"][:5] == ["77.0", "76.8", "+0.2", "76.8", "+0.2"]
    assert rows["FPS"][:3] == ["20.0", "25.0", "-5.0"]
    assert "scored on TRAIN_0 (3 sequences)" in markdown
    # the scorer's JSON (score subcommand) has no FPS
    score_only = trackingnet_json(tmp_path / "s.json")
    assert "FPS" not in table(render_markdown(build_report(trackingnet=score_only)), "TrackingNet (TRAIN_0): D3S")
    (tmp_path / "x.json").write_text(json.dumps({"benchmark": "GOT-10k"}))
    with pytest.raises(ReportError, match=r"x\.json: not a TrackingNet scores JSON"):
        build_report(trackingnet=tmp_path / "x.json")


def test_missing_inputs_are_noted_and_unverified_values_starred():
    report = build_report()
    markdown = render_markdown(report)
    assert "* GOT-10k: no --got10k-report given" in markdown
    assert "* TrackingNet: no --trackingnet-json given" in markdown
    assert "* VOT: no --vot-workspace given" in markdown
    assert "| DAVIS 2016 val | J&F | 74.0* | n/a |" in markdown
    assert "| VOT2018 | EAO | 0.489 | 0.487 |" in markdown


def test_cli_writes_markdown_and_html(tmp_path, capsys):
    tn = trackingnet_json(tmp_path / "tn.json", fps=20.0)
    out, page = tmp_path / "r.md", tmp_path / "r.html"
    assert main(["--trackingnet-json", str(tn), "--out", str(out), "--html", str(page)]) == 0
    printed = capsys.readouterr().out
    assert out.read_text() == printed
    text = page.read_text()
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    assert "<td>Normalized precision</td><td class=\"num\">77.0</td><td class=\"num\">76.8</td>" in text
    assert "<h2>TrackingNet (TRAIN_0): D3S</h2>" in text


def test_cli_errors(tmp_path, capsys):
    assert main(["--trackingnet-json", str(tmp_path / "none.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: TrackingNet results ") and err.count("\n") == 1 and "none.json" in err
    assert main(["--vot-workspace", str(tmp_path / "nows")]) == 2
    assert "error: VOT workspace" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["--bogus"])
    assert exc.value.code == 2 and capsys.readouterr().err.startswith("error: unrecognized arguments: --bogus")


def test_html_escapes(tmp_path):
    path = tmp_path / "a<b>.json"
    trackingnet_json(path)
    assert "a&lt;b&gt;.json" in render_html(build_report(trackingnet=path))
