"""DAVIS: the synthetic layout, the runner (oracle/static baselines, resume, sharding), the scorer's
protocol and the errors on bad input. D3S itself: tests/test_davis_d3s.py."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from d3s_vot.integrations.davis.dataset import load_split
from d3s_vot.integrations.davis.evaluate import main
from d3s_vot.integrations.davis.labels import PALETTE, read_label_png, write_label_png
from d3s_vot.integrations.davis.scoring import score_sequence
from d3s_vot.synthetic.__main__ import main as synthetic_main
from d3s_vot.synthetic.davis import write_davis

W, H, FRAMES, OBJECTS = 64, 48, 6, 3


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("davis")
    write_davis(root, sequences=3, frames=FRAMES, objects=OBJECTS, width=W, height=H, seed=3, void=1)
    return root


def copy_of(dataset, tmp_path):
    shutil.copytree(dataset, tmp_path / "data")
    return tmp_path / "data"


def run(root, results, *extra, year="2017"):
    code = main(["--root", str(root), "--year", year, "--results", str(results), "--no-progress", *extra])
    return code, (json.loads((results / "scores.json").read_text()) if code == 0 else None)


def test_synthetic_layout(dataset, capsys):
    assert (dataset / "ImageSets" / "2017" / "val.txt").read_text() == "synthetic-001\nsynthetic-002\n"
    assert (dataset / "ImageSets" / "2016" / "train.txt").read_text() == "synthetic-000\n"
    images = sorted((dataset / "JPEGImages" / "480p" / "synthetic-001").iterdir())
    assert [p.name for p in images] == [f"{i:05d}.jpg" for i in range(FRAMES)]
    annotation = dataset / "Annotations" / "480p" / "synthetic-001" / "00000.png"
    with Image.open(annotation) as png:
        assert png.mode == "P" and png.size == (W, H)
        assert png.getpalette()[:12] == [0, 0, 0, 128, 0, 0, 0, 128, 0, 128, 128, 0]   # DAVIS colours
    labels = read_label_png(annotation)
    assert set(np.unique(labels)) == {0, 1, 2, 3, 255}              # three objects and a void border
    # the command line writes the same files
    assert synthetic_main(["davis", str(dataset.parent / "cli"), "--sequences", "2", "--frames", "3",
                           "--objects", "2", "--width", "48", "--height", "40"]) == 0
    assert "wrote 2 sequences" in capsys.readouterr().out
    assert set(np.unique(read_label_png(dataset.parent / "cli/Annotations/480p/synthetic-001/00002.png"))) <= {0, 1, 2}
    # fewer than 3 frames leave nothing for the official evaluation to score: refused, nothing written
    assert synthetic_main(["davis", str(dataset.parent / "short"), "--frames", "2"]) == 2
    assert capsys.readouterr().err == ("error: need at least 3 frames per sequence (the DAVIS evaluation leaves the "
                                       "first and the last frame out), got 2\n")
    assert not (dataset.parent / "short").exists()


def test_labels_round_trip(tmp_path):
    labels = np.random.default_rng(0).integers(0, 256, (5, 7)).astype(np.uint8)
    write_label_png(tmp_path / "x.png", labels)
    assert np.array_equal(read_label_png(tmp_path / "x.png"), labels)
    assert PALETTE[3 * 255:] == [224, 224, 192]      # the PASCAL VOC colour of void


def test_oracle_scores_one_and_static_less(dataset, tmp_path):
    code, oracle = run(dataset, tmp_path / "oracle", "--tracker", "oracle")
    assert code == 0 and oracle["tracker"] == "Oracle" and oracle["objects"] == 2 * OBJECTS
    assert oracle["overall"] == {"J&F-Mean": 1.0, "J-Mean": 1.0, "J-Recall": 1.0, "J-Decay": 0.0,
                                 "F-Mean": 1.0, "F-Recall": 1.0, "F-Decay": 0.0}
    first = oracle["per_object"]["synthetic-001_1"]
    assert first["frames"] == [f"{i:05d}" for i in range(1, FRAMES - 1)]    # not the first, not the last
    # official result format: an indexed PNG per frame, the object ids, frame 0 = the annotation (void -> 0)
    out = tmp_path / "oracle" / "synthetic-002"
    assert sorted(p.name for p in out.iterdir()) == [f"{i:05d}.png" for i in range(FRAMES)]
    truth = read_label_png(dataset / "Annotations/480p/synthetic-002/00000.png")
    truth[truth == 255] = 0
    assert np.array_equal(read_label_png(out / "00000.png"), truth)
    assert Image.open(out / "00003.png").mode == "P"
    assert (tmp_path / "oracle" / "timing" / "synthetic-002.txt").read_text().count("\n") == FRAMES

    code, static = run(dataset, tmp_path / "static", "--tracker", "static")
    assert code == 0 and static["tracker"] == "Static"
    assert static["overall"]["J-Mean"] < 1 and static["overall"]["F-Mean"] < 1
    objects = static["per_object"].values()
    assert static["overall"]["J-Mean"] == pytest.approx(np.mean([o["J-Mean"] for o in objects]), abs=1e-15)
    assert static["overall"]["J&F-Mean"] == (static["overall"]["J-Mean"] + static["overall"]["F-Mean"]) / 2


def test_davis_2016_merges_the_objects(dataset, tmp_path):
    code, scores = run(dataset, tmp_path / "r16", "--tracker", "oracle", year="2016")
    assert code == 0 and scores["objects"] == 2 and set(scores["per_object"]) == {"synthetic-001_1", "synthetic-002_1"}
    merged = read_label_png(tmp_path / "r16/synthetic-001/00002.png")
    truth = read_label_png(dataset / "Annotations/480p/synthetic-001/00002.png")
    assert np.array_equal(merged, ((truth != 0) & (truth != 255)).astype(np.uint8))
    assert scores["overall"]["J-Mean"] == 1.0


def test_scorer_protocol(dataset, tmp_path):
    """First and last frames are not scored; a missing object is an empty mask; 255 in the truth is
    background; per-frame J by hand."""
    (sequence,) = load_split(dataset, "2017", "val", only=["synthetic-001"])
    results = tmp_path / "res"
    for i, name in enumerate(sequence.frame_names):
        labels = sequence.labels(i)
        if i in (0, FRAMES - 1):
            labels = np.zeros_like(labels)          # wrong on the unscored frames: no effect
        labels[labels == 2] = 0                     # object 2 never predicted
        write_label_png(results / sequence.name / f"{name}.png", labels)
    scores = {s.object_id: s for s in score_sequence(sequence, results)}
    assert scores[1].j == (1.0,) * (FRAMES - 2) and scores[3].f == (1.0,) * (FRAMES - 2)
    # object 2 is never predicted: J = 0 where it is in the truth, 1 where it is absent there too
    absent = tuple(float(not np.any(sequence.labels(i) == 2)) for i in range(1, FRAMES - 1))
    assert scores[2].j == absent and scores[2].f == absent and 0.0 in absent
    # an extra pixel of object 3 on frame 2: J = |truth| / (|truth| + 1)
    frame = read_label_png(results / sequence.name / "00002.png")
    spot = np.argwhere(frame == 0)[0]
    frame[tuple(spot)] = 3
    write_label_png(results / sequence.name / "00002.png", frame)
    truth3 = int(np.count_nonzero(sequence.labels(2) == 3))
    assert score_sequence(sequence, results)[2].j[1] == truth3 / (truth3 + 1)


def test_resume_and_run_identity(dataset, tmp_path, capsys):
    results = tmp_path / "res"
    assert run(dataset, results, "--tracker", "static")[0] == 0
    done = results / "synthetic-001" / "00003.png"
    stamp = done.stat().st_mtime_ns
    shutil.rmtree(results / "synthetic-002")               # as if interrupted before the second sequence
    (results / ".partial" / "synthetic-002").mkdir(parents=True)     # with a half-written folder left behind
    (results / ".partial" / "synthetic-002" / "00000.png").write_bytes(b"junk")
    code, scores = run(dataset, results, "--tracker", "static")
    assert code == 0 and scores["sequences"] == 2
    assert done.stat().st_mtime_ns == stamp                  # the finished sequence was kept
    assert len(list((results / "synthetic-002").iterdir())) == FRAMES
    capsys.readouterr()
    assert run(dataset, results, "--tracker", "oracle")[0] == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {results / 'run.json'}: these results are from another run (tracker='Static')")
    assert err.count("\n") == 1


def test_torchrun_sharding_without_a_process_group(dataset, tmp_path, monkeypatch, capsys):
    """Rank 1 of 2 tracks sequences 1, 3, ... and stops; rank 0 tracks the rest and scores all."""
    results = tmp_path / "res"
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert main(["--root", str(dataset), "--year", "2017", "--results", str(results), "--tracker", "oracle",
                 "--no-progress"]) == 0
    assert sorted(p.name for p in results.iterdir()) == [".partial", "run.json", "synthetic-002", "timing"]
    assert not any((results / ".partial").iterdir())        # only finished sequences were moved out
    monkeypatch.setenv("RANK", "0")
    code, scores = run(dataset, results, "--tracker", "oracle", "--wait-timeout", "30")
    assert code == 0 and scores["overall"]["J&F-Mean"] == 1.0 and scores["sequences"] == 2


def test_score_only_reads_any_results(dataset, tmp_path, capsys):
    code, oracle = run(dataset, tmp_path / "a", "--tracker", "oracle")
    shutil.copytree(tmp_path / "a", tmp_path / "b", ignore=shutil.ignore_patterns("scores.json", "run.json"))
    code, again = run(dataset, tmp_path / "b", "--score-only", "--sequences", "synthetic-002")
    assert code == 0 and again["tracker"] == "results" and again["sequences"] == 1
    assert again["overall"]["J&F-Mean"] == 1.0 and "fps" not in again


# --- bad input: one error line naming the file --------------------------------------------------------

def error_of(capsys, root, results, *extra, year="2017"):
    code = main(["--root", str(root), "--year", year, "--results", str(results), "--no-progress", *extra])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    return err[len("error: "):].strip()


def test_missing_first_annotation(dataset, tmp_path, capsys):
    root = copy_of(dataset, tmp_path)
    first = root / "Annotations/480p/synthetic-002/00000.png"
    first.unlink()
    assert error_of(capsys, root, tmp_path / "r", "--tracker", "static") == \
        f"{first}: missing; the first frame's annotation defines the objects to track"


def test_object_absent_in_first_frame(dataset, tmp_path, capsys):
    root = copy_of(dataset, tmp_path)
    first = root / "Annotations/480p/synthetic-001/00000.png"
    labels = read_label_png(first)
    labels[labels == 2] = 0                       # ids 1 and 3 left: 2 is missing
    write_label_png(first, labels)
    assert error_of(capsys, root, tmp_path / "r", "--tracker", "static").startswith(
        f"{first}: object id(s) 2 absent in the first frame (it has ids 1, 3)")
    labels[labels > 0] = 0
    write_label_png(first, labels)
    assert error_of(capsys, root, tmp_path / "r2").startswith(f"{first}: no object in the first frame's annotation")


def test_object_appearing_later(dataset, tmp_path, capsys):
    root = copy_of(dataset, tmp_path)
    later = root / "Annotations/480p/synthetic-001/00003.png"
    labels = read_label_png(later)
    labels[0, 0] = 7
    write_label_png(later, labels)
    assert error_of(capsys, root, tmp_path / "r", "--tracker", "static").startswith(
        f"{later}: object id(s) 7 do not appear in the first frame")


def test_mismatched_sizes(dataset, tmp_path, capsys):
    root = copy_of(dataset, tmp_path)
    first = root / "Annotations/480p/synthetic-001/00000.png"
    write_label_png(first, np.pad(read_label_png(first), ((0, 2), (0, 0))))
    frame0 = root / "JPEGImages/480p/synthetic-001/00000.jpg"
    assert error_of(capsys, root, tmp_path / "r", "--tracker", "static") == \
        f"{first}: {W}x{H + 2} pixels, but the frame {frame0} is {W}x{H}"

    root = copy_of(dataset, tmp_path / "second")
    frame = root / "JPEGImages/480p/synthetic-002/00004.jpg"
    Image.new("RGB", (W + 1, H)).save(frame)
    assert error_of(capsys, root, tmp_path / "r2", "--tracker", "static") == \
        f"{frame}: {W + 1}x{H} pixels, but the annotation {root / 'Annotations/480p/synthetic-002/00000.png'} " \
        f"is {W}x{H}"


def test_bad_results(dataset, tmp_path, capsys):
    code, _ = run(dataset, tmp_path / "res", "--tracker", "oracle")
    result = tmp_path / "res" / "synthetic-001" / "00002.png"
    write_label_png(result, np.full((H, W), 4, np.uint8))
    assert error_of(capsys, dataset, tmp_path / "res", "--score-only") == \
        f"{result}: object id 4 in the result, but synthetic-001 has 3 object(s)"
    write_label_png(result, np.zeros((H - 1, W), np.uint8))
    assert error_of(capsys, dataset, tmp_path / "res", "--score-only").startswith(f"{result}: {W}x{H - 1} pixels")
    Image.new("RGB", (W, H)).save(result)
    assert error_of(capsys, dataset, tmp_path / "res", "--score-only").startswith(f"{result}: a RGB image")
    result.unlink()
    assert error_of(capsys, dataset, tmp_path / "res", "--score-only").startswith(f"{result}: missing result")


def test_cli_errors(dataset, tmp_path, capsys):
    assert error_of(capsys, tmp_path / "nowhere", tmp_path / "r").startswith(f"DAVIS root {tmp_path / 'nowhere'} does not exist")
    assert error_of(capsys, dataset, tmp_path / "r", "--split", "test").startswith(
        f"{dataset / 'ImageSets/2017/test.txt'}: not found")
    assert error_of(capsys, dataset, tmp_path / "r", "--sequences", "nope") == \
        f"sequence(s) nope are not in {dataset / 'ImageSets/2017/val.txt'}"
    assert error_of(capsys, dataset, tmp_path / "r", "--tracker", "static", "--random-weights", "0") == \
        "--weights, --random-weights and --param only apply to --tracker d3s"
    assert error_of(capsys, dataset, tmp_path / "r", "--tracker", "oracle", "--oracle-gt", "x") == \
        "--oracle-gt does not apply to DAVIS: the oracle replays the annotations of --root"
    with pytest.raises(SystemExit) as exit_info:
        main(["--root", str(dataset), "--year", "2018", "--results", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith("error: argument --year: invalid choice") and err.count("\n") == 1


def test_reproduction_report_rows(dataset, tmp_path):
    from d3s_vot.tools.report import ReportError, build_report, davis_section, render_markdown

    code, scores = run(dataset, tmp_path / "res", "--tracker", "static")
    section = davis_section(tmp_path / "res" / "scores.json")
    assert section.title == "DAVIS 2017 val: Static"
    rows = {row.metric: row for row in section.rows}
    assert rows["J&F"].ours == pytest.approx(100 * scores["overall"]["J&F-Mean"], abs=1e-12)
    assert (rows["J&F"].ref, rows["J mean"].ref, rows["F mean"].ref) == ("davis2017.jf", "davis2017.j", "davis2017.f")
    markdown = render_markdown(build_report(davis=[tmp_path / "res" / "scores.json"]))
    assert f"| J&F | {100 * scores['overall']['J&F-Mean']:.1f} | 60.8* |" in markdown
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ReportError, match="bad.json: not a DAVIS scores JSON"):
        davis_section(tmp_path / "bad.json")


@pytest.mark.slow
def test_worker_pool(dataset, tmp_path):
    """--workers 2: two spawn processes, one sequence each; the same files as a single process."""
    code, pooled = run(dataset, tmp_path / "pool", "--tracker", "static", "--workers", "2")
    code1, single = run(dataset, tmp_path / "one", "--tracker", "static")
    assert code == code1 == 0 and pooled["overall"] == single["overall"]
    for name in ("synthetic-001", "synthetic-002"):
        for i in range(FRAMES):
            png = f"{name}/{i:05d}.png"
            assert (tmp_path / "pool" / png).read_bytes() == (tmp_path / "one" / png).read_bytes()
