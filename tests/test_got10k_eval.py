"""GOT-10k: synthetic data, the runner and the official toolkit report, the test-server zip."""
from __future__ import annotations

import ast
import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from d3s_vot.integrations.box_runner.fps import read_time_file, summarize_times
from d3s_vot.integrations.got10k.evaluate import main
from d3s_vot.synthetic.got10k import HIDDEN_DIR, cover_levels, write_got10k

W, H, FRAMES = 128, 96, 12


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("got10k")
    write_got10k(root, subset="val", sequences=3, frames=FRAMES, width=W, height=H, seed=5)
    write_got10k(root, subset="test", sequences=2, frames=FRAMES, width=W, height=H, seed=5)
    # make the toolkit's cover == 0 exclusion matter: hide the target on frames 4-5 of sequence 2
    cover_file = root / "val" / "GOT-10k_Val_000002" / "cover.label"
    cover = cover_file.read_text().split()
    cover[4] = cover[5] = "0"
    cover_file.write_text("\n".join(cover) + "\n")
    return root


def run_eval(root, out, *extra):
    code = main(["--root", str(root), "--result-dir", str(out / "results"), "--report-dir", str(out / "reports"),
                 "--no-progress", "--json", str(out / "out.json"), *extra])
    assert code == 0
    return json.loads((out / "out.json").read_text())


def load_gt(path):
    return np.loadtxt(path, delimiter=",", ndmin=2)


def test_synthetic_layout(dataset):
    val = dataset / "val"
    assert (val / "list.txt").read_text() == "GOT-10k_Val_000001\nGOT-10k_Val_000002\nGOT-10k_Val_000003\n"
    seq = val / "GOT-10k_Val_000001"
    assert sorted(p.name for p in seq.glob("*.jpg")) == [f"{i:08d}.jpg" for i in range(1, FRAMES + 1)]
    lines = (seq / "groundtruth.txt").read_text().splitlines()
    assert len(lines) == FRAMES
    assert all(len(v.split(".")[1]) == 4 for v in lines[0].split(","))
    for label in ("absence", "cover", "cut_by_image"):
        assert len((seq / f"{label}.label").read_text().split()) == FRAMES
    meta = (seq / "meta_info.ini").read_text().splitlines()
    assert meta[0] == "[METAINFO]" and f"resolution: ({W}, {H})" in meta
    # the official toolkit reads it all
    from got10k.datasets import GOT10k
    frames, anno, info = GOT10k(str(dataset), subset="val", return_meta=True)[0]
    assert len(frames) == FRAMES and anno.shape == (FRAMES, 4)
    assert ast.literal_eval(info["resolution"]) == (W, H)
    # test split: first line only, full boxes kept outside the data set
    test_seq = dataset / "test" / "GOT-10k_Test_000001"
    assert len((test_seq / "groundtruth.txt").read_text().splitlines()) == 1
    assert not (test_seq / "cover.label").exists()
    hidden = dataset / HIDDEN_DIR / "test" / "GOT-10k_Test_000001.txt"
    assert len(hidden.read_text().splitlines()) == FRAMES
    assert hidden.read_text().splitlines()[0] == (test_seq / "groundtruth.txt").read_text().strip()


def test_cover_levels():
    assert cover_levels(np.array([0.0, 0.01, 0.125, 0.126, 0.5, 0.99, 1.0])).tolist() == [0, 1, 1, 2, 4, 8, 8]


def test_oracle_is_perfect_and_fps_matches_the_toolkit(dataset, tmp_path):
    out = run_eval(dataset, tmp_path, "--subset", "val", "--tracker", "oracle")
    assert (out["ao"], out["sr50"], out["sr75"]) == (1.0, 1.0, 1.0)
    assert out["tracker"] == "Oracle" and out["sequences"] == 3
    report = tmp_path / "reports" / "GOT-10k" / "Oracle"
    assert (report / "success_plot.png").stat().st_size > 0
    perf = json.loads((report / "performance.json").read_text())
    assert perf["Oracle"]["overall"]["succ_curve"][75] == 1.0
    # our reimplementation of the toolkit's speed (mean of 1/t incl. the init frame) equals its number
    times = [read_time_file(p) for p in sorted((tmp_path / "results" / "GOT-10k" / "Oracle").glob("*/*_time.txt"))]
    assert len(times) == 3 and all(len(t) == FRAMES for t in times)
    assert summarize_times(times).toolkit_fps == pytest.approx(perf["Oracle"]["overall"]["speed_fps"], rel=1e-12)
    assert out["fps_toolkit"] == perf["Oracle"]["overall"]["speed_fps"]
    assert out["tracked_frames"] == 3 * (FRAMES - 1)


def clipped(box):
    x = min(max(box[0], 0), W)
    y = min(max(box[1], 0), H)
    return [x, y, min(max(box[2], 0), W - x), min(max(box[3], 0), H - y)]


def iou(a, b):
    a, b = clipped(a), clipped(b)
    iw = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def test_static_matches_an_independent_computation(dataset, tmp_path):
    out = run_eval(dataset, tmp_path, "--subset", "val", "--tracker", "static")
    ious = []
    for name in (dataset / "val" / "list.txt").read_text().split():
        gt = load_gt(dataset / "val" / name / "groundtruth.txt")
        cover = np.loadtxt(dataset / "val" / name / "cover.label")
        # frame 0 and frames with cover == 0 are excluded; frames of all sequences are pooled
        ious += [iou(gt[0], gt[f]) for f in range(1, FRAMES) if cover[f] > 0]
    assert len(ious) == 3 * (FRAMES - 1) - 2
    ious = np.array(ious)
    assert out["ao"] == pytest.approx(ious.mean(), abs=1e-12)
    assert out["sr50"] == pytest.approx((ious > 0.5).mean(), abs=1e-12)
    assert out["sr75"] == pytest.approx((ious > 0.75).mean(), abs=1e-12)
    assert 0 < out["ao"] < 1
    # the record files: frame 0 = the init box, every row the same, '%.3f'
    record = tmp_path / "results" / "GOT-10k" / "Static" / "GOT-10k_Val_000001" / "GOT-10k_Val_000001_001.txt"
    first = ",".join(f"{v:.3f}" for v in load_gt(dataset / "val" / "GOT-10k_Val_000001" / "groundtruth.txt")[0])
    assert record.read_text() == (first + "\n") * FRAMES


def test_test_subset_writes_the_server_zip(dataset, tmp_path, capsys):
    out = run_eval(dataset, tmp_path, "--subset", "test", "--tracker", "oracle",
                   "--oracle-gt", str(dataset / HIDDEN_DIR / "test"))
    printed = capsys.readouterr().out
    assert "scoring happens on the server" in printed and "ao" not in out
    zip_path = tmp_path / "results" / "GOT-10k" / "Oracle.zip"
    assert out["submission_zip"] == str(zip_path)
    with zipfile.ZipFile(zip_path) as archive:
        names = archive.namelist()
        assert names == ["GOT-10k_Test_000001/GOT-10k_Test_000001_001.txt",
                         "GOT-10k_Test_000001/GOT-10k_Test_000001_time.txt",
                         "GOT-10k_Test_000002/GOT-10k_Test_000002_001.txt",
                         "GOT-10k_Test_000002/GOT-10k_Test_000002_time.txt"]
        for seq in ("GOT-10k_Test_000001", "GOT-10k_Test_000002"):
            gt = load_gt(dataset / HIDDEN_DIR / "test" / f"{seq}.txt")
            expected = "".join(",".join(f"{v:.3f}" for v in row) + "\n" for row in gt)
            assert archive.read(f"{seq}/{seq}_001.txt").decode() == expected
            times = archive.read(f"{seq}/{seq}_time.txt").decode().splitlines()
            assert len(times) == FRAMES and all(len(t.split(".")[1]) == 8 and "," not in t for t in times)
    # reproducible: packing again gives the same bytes
    before = zip_path.read_bytes()
    run_eval(dataset, tmp_path, "--subset", "test", "--tracker", "oracle",
             "--oracle-gt", str(dataset / HIDDEN_DIR / "test"))
    assert zip_path.read_bytes() == before


def test_adapter_with_the_toolkit_run_gives_our_records(dataset, tmp_path):
    from got10k.experiments import ExperimentGOT10k

    from d3s_vot.integrations.got10k.adapter import Got10kTracker
    from d3s_vot.integrations.box_runner.trackers import StaticBoxTracker

    run_eval(dataset, tmp_path, "--subset", "val", "--tracker", "static")
    adapter = Got10kTracker(StaticBoxTracker(), "StaticToolkit")
    assert adapter.is_deterministic
    experiment = ExperimentGOT10k(str(dataset), subset="val", result_dir=str(tmp_path / "toolkit"),
                                  report_dir=str(tmp_path / "toolkit_reports"))
    experiment.run(adapter)
    for name in (dataset / "val" / "list.txt").read_text().split():
        ours = tmp_path / "results" / "GOT-10k" / "Static" / name / f"{name}_001.txt"
        theirs = tmp_path / "toolkit" / "GOT-10k" / "StaticToolkit" / name / f"{name}_001.txt"
        assert ours.read_bytes() == theirs.read_bytes()
        assert not (theirs.parent / f"{name}_002.txt").exists()      # deterministic: one repetition


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "d3s_vot.got10k_eval", *args], capture_output=True, text=True,
                          timeout=120)


def test_missing_root_is_a_clear_error(tmp_path):
    result = run_cli("--root", str(tmp_path / "nope"), "--result-dir", str(tmp_path), "--tracker", "static")
    assert result.returncode == 2
    assert result.stderr.startswith("error: GOT-10k root") and "got-10k.aitestunion.com" in result.stderr
    assert "Traceback" not in result.stderr


def test_malformed_groundtruth_names_file_and_line(tmp_path):
    write_got10k(tmp_path / "data", subset="val", sequences=1, frames=4, width=64, height=48)
    gt = tmp_path / "data" / "val" / "GOT-10k_Val_000001" / "groundtruth.txt"
    lines = gt.read_text().splitlines()
    lines[2] = "1.0,2.0,three,4.0"
    gt.write_text("\n".join(lines) + "\n")
    result = run_cli("--root", str(tmp_path / "data"), "--result-dir", str(tmp_path / "r"), "--tracker", "static")
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {gt}, line 3: not a number in '1.0,2.0,three,4.0'"


def test_option_mistakes_are_clear_errors(dataset, tmp_path, capsys):
    base = ["--root", str(dataset), "--result-dir", str(tmp_path), "--no-progress"]
    assert main(base + ["--tracker", "static", "--param", "cg_iter=3"]) == 2
    assert "only apply to --tracker d3s" in capsys.readouterr().err
    assert main(base + ["--subset", "test", "--tracker", "oracle"]) == 2
    assert "has only the initial box" in capsys.readouterr().err
    assert main(base + ["--param", "no_such_field=1", "--random-weights", "0"]) == 2
    assert "unknown D3SParams field 'no_such_field'" in capsys.readouterr().err
    assert main(base + ["--weights", str(tmp_path / "missing.safetensors")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: weights file not found: {tmp_path / 'missing.safetensors'}")
    # these two ended in tracebacks before the runners used the one tracker factory
    assert main(base + ["--random-weights", "0", "--dtype", "float16"]) == 2
    assert capsys.readouterr().err == \
        "error: --dtype: dtype 'float16' is not supported by D3S: use float32 or float64\n"
    assert main(base + ["--random-weights", "0", "--device", "cuda:7"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --device: device 'cuda:7' requested but ") and err.count("\n") == 1


@pytest.mark.slow
def test_d3s_random_weights_end_to_end(tmp_path, capsys):
    """The real tracker (random weights) through the same runner: 2 sequences x 8 frames."""
    write_got10k(tmp_path / "data", subset="val", sequences=2, frames=8, width=160, height=120, seed=1)
    out = run_eval(tmp_path / "data", tmp_path, "--subset", "val", "--random-weights", "0", "--device", "cpu")
    assert "RANDOM, UNTRAINED" in capsys.readouterr().err
    assert out["tracker"] == "D3S_random0" and out["tracked_frames"] == 14
    assert 0 <= out["sr75"] <= out["sr50"] <= 1 and 0 <= out["ao"] <= 1
    assert out["fps"] > 0 and out["init_seconds_mean"] > 0
    records = sorted((tmp_path / "results" / "GOT-10k" / "D3S_random0").glob("*/*_001.txt"))
    assert len(records) == 2
    for record in records:
        boxes = np.loadtxt(record, delimiter=",")
        assert boxes.shape == (8, 4) and np.isfinite(boxes).all()
