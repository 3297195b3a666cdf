"""TrackingNet: synthetic data, the runner, the submission zip and the ``score`` command."""
from __future__ import annotations

import json
import math
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from d3s_vot.synthetic.got10k import HIDDEN_DIR
from d3s_vot.synthetic.trackingnet import write_trackingnet
from d3s_vot.integrations.trackingnet.evaluate import main

W, H, FRAMES = 128, 96, 12
TRAIN = ["syn00000000_0", "syn00000001_0"]
TEST = ["syn99000000_0", "syn99000001_0"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("trackingnet")
    write_trackingnet(root, chunks=("TRAIN_0", "TEST"), sequences=2, frames=FRAMES, width=W, height=H, seed=3)
    return root


def run(root, out, *extra):
    assert main(["run", "--root", str(root), "--result-dir", str(out / "results"), "--no-progress",
                 "--json", str(out / "out.json"), *extra]) == 0
    return json.loads((out / "out.json").read_text())


def read(path):
    return np.loadtxt(path, delimiter=",", ndmin=2)


def reference_scores(gts, preds):
    """The devkit definitions, written out frame by frame (python ``round`` is half-to-even too)."""
    thresholds = (np.linspace(0, 1, 21), np.linspace(0, 50, 21), np.linspace(0, 0.5, 21))
    curves = np.zeros((3, 21))
    for name, gt in gts.items():
        counts = np.zeros((3, 21))
        for f, g in enumerate(gt):
            g = [round(v) for v in g]
            p = g if f == 0 else [round(v) for v in preds[name][f]]
            iw = max(0, min(g[0] + g[2] - 1, p[0] + p[2] - 1) - max(g[0], p[0]) + 1)
            ih = max(0, min(g[1] + g[3] - 1, p[1] + p[3] - 1) - max(g[1], p[1]) + 1)
            overlap = iw * ih / (g[2] * g[3] + p[2] * p[3] - iw * ih)
            dx = (g[0] + (g[2] + 1) / 2) - (p[0] + (p[2] + 1) / 2)
            dy = (g[1] + (g[3] + 1) / 2) - (p[1] + (p[3] + 1) / 2)
            values = (overlap, math.sqrt(dx * dx + dy * dy), math.sqrt((dx / g[2]) ** 2 + (dy / g[3]) ** 2))
            for m in range(3):
                counts[m] += [(values[m] >= t) if m == 0 else (values[m] <= t) for t in thresholds[m]]
        curves += counts / len(gt)
    curves /= len(gts)
    x = np.linspace(0, 1, 21)
    return [float(np.sum((curve[1:] + curve[:-1]) / 2 * np.diff(x)) * 100) for curve in curves]


def test_synthetic_layout(dataset):
    assert sorted(p.name for p in (dataset / "TRAIN_0" / "anno").iterdir()) == [f"{n}.txt" for n in TRAIN]
    frames = dataset / "TRAIN_0" / "frames" / TRAIN[0]
    assert sorted(p.name for p in frames.iterdir()) == sorted(f"{i}.jpg" for i in range(FRAMES))
    lines = (dataset / "TRAIN_0" / "anno" / f"{TRAIN[0]}.txt").read_text().splitlines()
    assert len(lines) == FRAMES and all(len(v.split(".")[1]) == 2 for v in lines[0].split(","))
    assert all(len(n.split("_")[0]) == 11 for n in TRAIN + TEST)
    test_anno = (dataset / "TEST" / "anno" / f"{TEST[0]}.txt").read_text().splitlines()
    hidden = (dataset / HIDDEN_DIR / "TEST" / f"{TEST[0]}.txt").read_text().splitlines()
    assert len(test_anno) == 1 and len(hidden) == FRAMES and hidden[0] == test_anno[0]


def test_frames_are_sorted_numerically(tmp_path):
    from d3s_vot.integrations.trackingnet.dataset import load_chunk
    write_trackingnet(tmp_path, chunks=("TRAIN_3",), sequences=1, frames=11, width=64, height=48)
    seq, = load_chunk(tmp_path, "TRAIN_3")
    assert [p.rsplit("/", 1)[1] for p in seq.frame_files] == [f"{i}.jpg" for i in range(11)]   # 10 after 9


def test_oracle_scores_100_and_the_zip_is_the_server_format(dataset, tmp_path, capsys):
    out = run(dataset, tmp_path, "--chunks", "TRAIN_0,TEST", "--tracker", "oracle",
              "--oracle-gt", str(dataset / HIDDEN_DIR / "TEST"), "--zip", str(tmp_path / "subm.zip"))
    scores = out["scores"]
    assert out["scored_chunks"] == ["TRAIN_0"] and scores["sequences"] == 2
    assert (scores["success"], scores["precision"], scores["norm_precision"], scores["coverage"]) == (100, 100, 100, 100)
    assert "ground truth of TEST is withheld" in capsys.readouterr().out
    with zipfile.ZipFile(tmp_path / "subm.zip") as archive:
        assert archive.namelist() == [f"{n}.txt" for n in sorted(TRAIN + TEST)]
        # one "x,y,w,h" line per frame incl. frame 0, '%.2f', comma-separated: the annotation's own bytes
        for name in TRAIN:
            assert archive.read(f"{name}.txt") == (dataset / "TRAIN_0" / "anno" / f"{name}.txt").read_bytes()
        for name in TEST:
            assert archive.read(f"{name}.txt") == (dataset / HIDDEN_DIR / "TEST" / f"{name}.txt").read_bytes()
    # scoring the zip against the hidden TEST boxes and TRAIN_0 (the server's job) gives 100 too
    assert main(["score", "--results", str(tmp_path / "subm.zip"), "--annotations",
                 str(dataset / "TRAIN_0" / "anno"), str(dataset / HIDDEN_DIR / "TEST"),
                 "--json", str(tmp_path / "s.json")]) == 0
    scored = json.loads((tmp_path / "s.json").read_text())["scores"]
    assert scored["sequences"] == 4 and scored["success"] == 100 and scored["missing"] == []


def test_static_matches_an_independent_computation(dataset, tmp_path):
    out = run(dataset, tmp_path, "--chunks", "TRAIN_0", "--tracker", "static", "--zip", str(tmp_path / "s.zip"))
    gts = {n: read(dataset / "TRAIN_0" / "anno" / f"{n}.txt") for n in TRAIN}
    preds = {n: np.repeat(gts[n][:1], FRAMES, axis=0) for n in TRAIN}
    success, precision, norm_precision = reference_scores(gts, preds)
    scores = out["scores"]
    assert scores["success"] == pytest.approx(success, abs=1e-9)
    assert scores["precision"] == pytest.approx(precision, abs=1e-9)
    assert scores["norm_precision"] == pytest.approx(norm_precision, abs=1e-9)
    assert 0 < scores["success"] < 100
    first = (dataset / "TRAIN_0" / "anno" / f"{TRAIN[0]}.txt").read_text().splitlines()[0]
    with zipfile.ZipFile(tmp_path / "s.zip") as archive:
        assert archive.read(f"{TRAIN[0]}.txt").decode() == (first + "\n") * FRAMES
    # the score command on the result folder agrees with the run
    assert main(["score", "--results", str(tmp_path / "results" / "Static"),
                 "--annotations", str(dataset / "TRAIN_0" / "anno"), "--json", str(tmp_path / "s.json")]) == 0
    again = json.loads((tmp_path / "s.json").read_text())["scores"]
    assert again["success"] == scores["success"] and again["norm_precision"] == scores["norm_precision"]


def test_score_reports_missing_sequences(dataset, tmp_path, capsys):
    results = tmp_path / "partial"
    results.mkdir()
    (results / f"{TRAIN[0]}.txt").write_bytes((dataset / "TRAIN_0" / "anno" / f"{TRAIN[0]}.txt").read_bytes())
    assert main(["score", "--results", str(results), "--annotations", str(dataset / "TRAIN_0" / "anno")]) == 0
    printed = capsys.readouterr().out
    assert f"1 sequence(s) without a result file, scored as failures: {TRAIN[1]}" in printed
    assert "single box" not in printed
    # scoring against the first-frame-only TEST annotations is meaningless: say so
    assert main(["score", "--results", str(results), "--annotations", str(dataset / "TEST" / "anno")]) == 0
    assert "2 annotation file(s) hold a single box" in capsys.readouterr().out


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "d3s_vot.trackingnet_eval", *args], capture_output=True,
                          text=True, timeout=120)


def test_errors_are_one_clear_line(dataset, tmp_path):
    result = run_cli("run", "--root", str(tmp_path / "nope"), "--chunks", "TEST", "--result-dir", str(tmp_path),
                     "--tracker", "static")
    assert result.returncode == 2 and result.stderr.startswith("error: TrackingNet root")
    assert "Traceback" not in result.stderr
    result = run_cli("run", "--root", str(dataset), "--chunks", "TRAIN_0,VAL", "--result-dir", str(tmp_path),
                     "--tracker", "static")
    assert result.returncode == 2 and "unknown TrackingNet chunk 'VAL'" in result.stderr
    result = run_cli("run", "--root", str(dataset), "--chunks", "TRAIN_1", "--result-dir", str(tmp_path),
                     "--tracker", "static")
    assert result.returncode == 2 and "TRAIN_1/anno does not exist" in result.stderr
    result = run_cli("score", "--results", str(tmp_path / "none.zip"), "--annotations", str(dataset / "TEST" / "anno"))
    assert result.returncode == 2 and "none.zip: not a folder or zip" in result.stderr
    result = run_cli("score", "--results", str(tmp_path), "--annotations", str(dataset))
    assert result.returncode == 2 and "no <sequence>.txt files" in result.stderr


def test_malformed_annotation_names_file_and_line(tmp_path):
    write_trackingnet(tmp_path, chunks=("TRAIN_0",), sequences=1, frames=4, width=64, height=48)
    anno = tmp_path / "TRAIN_0" / "anno" / f"{TRAIN[0]}.txt"
    lines = anno.read_text().splitlines()
    lines[3] = "1,2,3"
    anno.write_text("\n".join(lines) + "\n")
    result = run_cli("run", "--root", str(tmp_path), "--chunks", "TRAIN_0", "--result-dir", str(tmp_path / "r"),
                     "--tracker", "static")
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {anno}, line 4: expected 4 comma-separated numbers x,y,w,h, got '1,2,3'"


@pytest.mark.slow
def test_d3s_random_weights_end_to_end(tmp_path, capsys):
    """The real tracker (random weights): TRAIN_0 scored locally and TEST packed, 1 sequence x 8 frames each."""
    write_trackingnet(tmp_path / "data", chunks=("TRAIN_0", "TEST"), sequences=1, frames=8, width=160,
                      height=120, seed=2)
    out = run(tmp_path / "data", tmp_path, "--chunks", "TRAIN_0,TEST", "--random-weights", "0", "--device", "cpu",
              "--zip", str(tmp_path / "d3s.zip"))
    assert "RANDOM, UNTRAINED" in capsys.readouterr().err
    scores = out["scores"]
    assert scores["sequences"] == 1 and 0 <= scores["success"] <= 100 and scores["coverage"] > 0
    with zipfile.ZipFile(tmp_path / "d3s.zip") as archive:
        assert archive.namelist() == ["syn00000000_0.txt", "syn99000000_0.txt"]
        lines = archive.read("syn99000000_0.txt").decode().splitlines()
    assert len(lines) == 8
    assert lines[0] == (tmp_path / "data" / "TEST" / "anno" / "syn99000000_0.txt").read_text().strip()
    assert all(len(line.split(",")) == 4 and all(len(v.split(".")[1]) == 2 for v in line.split(",")) for line in lines)
