"""``python -m d3s_vot.track``: sequence discovery, frame reading, output format, errors, a real run."""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import cv2
import numpy as np
import pytest

from d3s_vot.tools import track
from d3s_vot.common.io_utils import find_sequence, natural_key, read_frame
from support import run_track_cli


def write_frames(folder: Path, frames, names=None, ext=".jpg"):
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames):
        name = names[i] if names else f"{i + 1:08d}{ext}"
        assert cv2.imwrite(str(folder / name), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))


def coloured_frames(n, h=60, w=80):
    """Frame i: red channel = 10*i, green = 100, blue = 200 (so RGB order is checkable)."""
    return [np.dstack([np.full((h, w), 10 * i, np.uint8), np.full((h, w), 100, np.uint8),
                       np.full((h, w), 200, np.uint8)]) for i in range(n)]


@dataclass
class StubResult:
    box: np.ndarray
    polygon: Optional[np.ndarray]
    mask: np.ndarray


class StubTracker:
    """Stands in for D3STracker: moves a fixed box 1 px right per frame, records what it was given."""

    def __init__(self):
        self.images, self.init_region = [], None
        self.raise_at = {}  # track call number (1 = second frame) -> exception raised once there

    def initialize(self, image, region):
        if len(region) == 4 and region[2] > 1000:
            raise ValueError("region is larger than the image")
        self.images = [image]  # re-initialisation starts over, as in D3STracker
        self.init_region = np.asarray(region, dtype=float)

    def track(self, image):
        self.images.append(image)
        k = len(self.images) - 1
        if k in self.raise_at:
            raise self.raise_at.pop(k)
        box = np.array([10.0 + k, 20.0, 30.5, 15.25])
        mask = np.zeros(image.shape[:2], np.uint8)
        mask[20:35, 10 + k:40 + k] = 1
        polygon = None
        if len(self.init_region) == 8:
            polygon = np.array([[10.0 + k, 20.0], [40.5 + k, 20.0], [40.5 + k, 35.25], [10.0 + k, 35.25]])
        return StubResult(box, polygon, mask)


@pytest.fixture
def stub(monkeypatch):
    """Run the CLI with the stub tracker and without loading weights."""
    tracker = StubTracker()
    monkeypatch.setattr(track, "make_tracker", lambda spec: tracker)
    return tracker


run_cli = run_track_cli


# ---------------------------------------------------------------------------------------------
# sequence layouts and frames
# ---------------------------------------------------------------------------------------------

def test_natural_order_and_layouts(tmp_path):
    names = ["10.jpg", "2.jpg", "1.jpg", "frame_0011.png", ".hidden.jpg", "notes.txt"]
    frames = coloured_frames(len(names))
    for name, frame in zip(names, frames):
        if name.endswith("txt"):
            (tmp_path / name).write_text("x")
        else:
            write_frames(tmp_path, [frame], [name])
    assert [p.name for p in find_sequence(tmp_path).frames] == ["1.jpg", "2.jpg", "10.jpg", "frame_0011.png"]
    assert sorted(["a10", "a9", "A1"], key=natural_key) == ["A1", "a9", "a10"]
    vot = tmp_path / "vot"
    write_frames(vot / "color", coloured_frames(2))
    (vot / "groundtruth.txt").write_text("1,2,3,4,5,6,7,8\n")
    seq = find_sequence(vot)
    assert [p.name for p in seq.frames] == ["00000001.jpg", "00000002.jpg"] and seq.groundtruth == vot / "groundtruth.txt"


def test_read_frame_rgb_gray_16bit_alpha(tmp_path):
    bgr = np.zeros((4, 5, 3), np.uint8)
    bgr[..., 0] = 200  # blue in OpenCV's order
    cv2.imwrite(str(tmp_path / "c.png"), bgr)
    assert read_frame(tmp_path / "c.png")[0, 0].tolist() == [0, 0, 200]
    cv2.imwrite(str(tmp_path / "g.png"), np.full((4, 5), 77, np.uint8))
    gray = read_frame(tmp_path / "g.png")
    assert gray.shape == (4, 5, 3) and gray.dtype == np.uint8 and np.all(gray == 77)
    cv2.imwrite(str(tmp_path / "d.png"), np.array([[0, 257, 65535, 32896]], np.uint16))
    assert read_frame(tmp_path / "d.png")[0, :, 0].tolist() == [0, 1, 255, 128]
    bgra = np.dstack([bgr, np.full((4, 5), 9, np.uint8)])
    cv2.imwrite(str(tmp_path / "a.png"), bgra)
    assert read_frame(tmp_path / "a.png").shape == (4, 5, 3)


def test_region_mask_box_and_polygon():
    mask = track.region_mask(np.array([2.0, 1.0, 3.0, 2.0]), 6, 8)
    assert mask.sum() == 6 and mask[1:3, 2:5].all()
    assert track.region_mask(np.array([-5.0, -5.0, 100.0, 100.0]), 6, 8).sum() == 48
    poly = track.region_mask(np.array([1.0, 1.0, 4.0, 1.0, 4.0, 3.0, 1.0, 3.0]), 6, 8)
    assert poly.sum() == 12 and poly[1:4, 1:5].all()


# ---------------------------------------------------------------------------------------------
# runs with the stand-in tracker (exact output format)
# ---------------------------------------------------------------------------------------------

def test_box_run_from_got10k_layout(tmp_path, stub, capsys):
    seq = tmp_path / "GOT-10k_Val_000001"
    write_frames(seq, coloured_frames(4), ext=".png")  # lossless, so the RGB values are exact
    (seq / "groundtruth.txt").write_text("10.0000,20.0000,30.0000,15.0000\n11,20,30,15\n")
    out = tmp_path / "res" / "out.txt"
    code, stdout, err = run_cli(capsys, seq, "--out", out, "--masks", tmp_path / "masks")
    assert code == 0, err
    assert out.read_text() == ("10.0000,20.0000,30.0000,15.0000\n11.0000,20.0000,30.5000,15.2500\n"
                               "12.0000,20.0000,30.5000,15.2500\n13.0000,20.0000,30.5000,15.2500\n")
    assert stdout.startswith(f"wrote 4 regions to {out} (")
    assert [img[0, 0].tolist() for img in stub.images] == [[10 * i, 100, 200] for i in range(4)]  # RGB
    np.testing.assert_array_equal(stub.init_region, [10, 20, 30, 15])
    masks = sorted(p.name for p in (tmp_path / "masks").iterdir())
    assert masks == ["00000001.png", "00000002.png", "00000003.png", "00000004.png"]
    first = cv2.imread(str(tmp_path / "masks" / "00000001.png"), cv2.IMREAD_UNCHANGED)
    assert first.dtype == np.uint8 and set(np.unique(first)) == {0, 255}
    assert (first > 0).sum() == 30 * 15 and first[20:35, 10:40].all()
    second = cv2.imread(str(tmp_path / "masks" / "00000002.png"), cv2.IMREAD_UNCHANGED)
    assert (second > 0).sum() == 30 * 15 and second[20:35, 11:41].all()
    assert sorted(p.name for p in out.parent.iterdir()) == ["out.txt"]  # no temp files left


def test_polygon_run_from_vot_layout_and_init_override(tmp_path, stub, capsys):
    seq = tmp_path / "vot-seq"
    write_frames(seq / "color", coloured_frames(3))
    (seq / "groundtruth.txt").write_text("10 20 40 20 40 35 10 35\n")
    out = tmp_path / "poly.txt"
    code, _, err = run_cli(capsys, seq, "--out", out)
    assert code == 0, err
    lines = out.read_text().splitlines()
    assert lines[0] == "10.0000,20.0000,40.0000,20.0000,40.0000,35.0000,10.0000,35.0000"
    assert lines[1] == "11.0000,20.0000,41.5000,20.0000,41.5000,35.2500,11.0000,35.2500"
    assert len(lines) == 3
    code, _, err = run_cli(capsys, seq, "--out", out, "--init", "5,6,7,8")
    assert code == 0, err
    assert out.read_text().splitlines()[0] == "5.0000,6.0000,7.0000,8.0000"
    assert out.read_text().splitlines()[1] == "11.0000,20.0000,30.5000,15.2500"


# ---------------------------------------------------------------------------------------------
# bad input: one clear line, exit 2
# ---------------------------------------------------------------------------------------------

@pytest.fixture
def seq_dir(tmp_path):
    seq = tmp_path / "seq"
    write_frames(seq, coloured_frames(3))
    (seq / "groundtruth.txt").write_text("10,20,30,15\n")
    return seq


def expect_error(capsys, expected_start, *argv):
    code, out, err = run_cli(capsys, *argv)
    assert code == 2
    assert err.startswith("error: " + expected_start), err
    assert err.count("\n") == 1 and "Traceback" not in err
    return err


def test_errors_sequence(tmp_path, seq_dir, stub, capsys):
    out = tmp_path / "o.txt"
    expect_error(capsys, f"{tmp_path / 'nope'}: no such directory", tmp_path / "nope", "--out", out)
    (tmp_path / "empty").mkdir()
    expect_error(capsys, f"{tmp_path / 'empty'}: no frames found", tmp_path / "empty", "--out", out)
    (seq_dir / "groundtruth.txt").unlink()
    expect_error(capsys, f"{seq_dir}: no groundtruth.txt; give the initial region with --init", seq_dir, "--out", out)
    (seq_dir / "groundtruth.txt").write_text("\n10,20,abc,15\n")
    expect_error(capsys, f"{seq_dir / 'groundtruth.txt'}, line 2: not a list of numbers: '10,20,abc,15'",
                 seq_dir, "--out", out)
    (seq_dir / "groundtruth.txt").write_text("1,2,3,4,5,6\n")
    expect_error(capsys, f"{seq_dir / 'groundtruth.txt'}, line 1: expected 4 or 8 numbers, got 6",
                 seq_dir, "--out", out)
    (seq_dir / "groundtruth.txt").write_text("m1,2,3,4,0,12\n")
    expect_error(capsys, f"{seq_dir / 'groundtruth.txt'}, line 1: a mask region", seq_dir, "--out", out)
    assert not out.exists()


def test_errors_frames(tmp_path, seq_dir, stub, capsys):
    out = tmp_path / "o.txt"
    (seq_dir / "00000002.jpg").write_bytes(b"not a jpeg")
    expect_error(capsys, f"{seq_dir / '00000002.jpg'}: cannot read the image", seq_dir, "--out", out)
    write_frames(seq_dir, [np.zeros((30, 40, 3), np.uint8)], ["00000002.jpg"])
    err = expect_error(capsys, f"{seq_dir / '00000002.jpg'}: frame size 40x30 differs from the first frame's 80x60",
                       seq_dir, "--out", out)
    assert err.endswith(f"80x60 (kept 1 region in {out}.partial)\n")
    assert not out.exists()
    assert (tmp_path / "o.txt.partial").read_text() == "10.0000,20.0000,30.0000,15.0000\n"


def test_errors_options(tmp_path, seq_dir, stub, capsys):
    out = tmp_path / "o.txt"
    expect_error(capsys, "--init: expected 4 numbers, got 3 in '1,2,3'", seq_dir, "--out", out, "--init", "1,2,3")
    expect_error(capsys, "--init: box width and height must be positive", seq_dir, "--out", out, "--init", "1,2,0,4")
    expect_error(capsys, "--init-polygon: not a list of numbers", seq_dir, "--out", out, "--init-polygon", "1,2,x")
    expect_error(capsys, "argument --init-polygon: not allowed with argument --init", seq_dir, "--out", out,
                 "--init", "1,2,3,4", "--init-polygon", "1,2,3,4,5,6,7,8")
    expect_error(capsys, "initial region 1.0000,2.0000,3000.0000,4.0000: region is larger than the image",
                 seq_dir, "--out", out, "--init", "1,2,3000,4")
    err = expect_error(capsys, "--param: unknown D3SParams field 'nope'; known fields: ", seq_dir, "--out", out,
                       "--param", "nope=1")
    assert "segm_mask_thr" in err
    expect_error(capsys, "--param: parameter cg_iter: cannot parse 'many' as int", seq_dir, "--out", out,
                 "--param", "cg_iter=many")
    expect_error(capsys, "--param 'cg_iter': expected NAME=VALUE", seq_dir, "--out", out, "--param", "cg_iter")
    expect_error(capsys, "--backbone-weights needs --segm-weights", seq_dir, "--out", out,
                 "--backbone-weights", "r.pth")
    expect_error(capsys, "the following arguments are required: --out", seq_dir)
    expect_error(capsys, f"--out {tmp_path}: is a directory", seq_dir, "--out", tmp_path)


STUB_LINES = ["10.0000,20.0000,30.0000,15.0000"] + [f"{10 + k}.0000,20.0000,30.5000,15.2500" for k in range(1, 9)]


def test_unwritable_outputs_checked_before_tracking(tmp_path, seq_dir, stub, capsys):
    blocker = tmp_path / "somefile"
    blocker.write_text("a regular file, so nothing can be created under it\n")
    err = expect_error(capsys, f"--out {blocker / 'out.txt'}: cannot write to the folder {blocker} (",
                       seq_dir, "--out", blocker / "out.txt")
    assert "Not a directory" in err or "File exists" in err
    (tmp_path / "o.txt.partial").mkdir()
    expect_error(capsys, f"--out {tmp_path / 'o.txt'}: {tmp_path / 'o.txt.partial'} is a directory",
                 seq_dir, "--out", tmp_path / "o.txt")
    expect_error(capsys, f"--masks {blocker / 'masks'}: cannot write to the folder {blocker / 'masks'} (",
                 seq_dir, "--out", tmp_path / "r.txt", "--masks", blocker / "masks")
    assert stub.init_region is None and stub.images == []  # the tracker never saw a frame
    assert not (tmp_path / "r.txt").exists() and not (tmp_path / "r.txt.partial").exists()


def test_regions_streamed_and_renamed(tmp_path, seq_dir, stub, capsys, monkeypatch):
    out = tmp_path / "res" / "o.txt"
    seen = []
    track_real = StubTracker.track

    def spy(self, image):  # what is on disk while frame k is tracked
        seen.append((out.with_name("o.txt.partial").read_text(), out.exists()))
        return track_real(self, image)

    monkeypatch.setattr(StubTracker, "track", spy)
    code, stdout, err = run_cli(capsys, seq_dir, "--out", out)
    assert code == 0, err
    assert seen == [(STUB_LINES[0] + "\n", False), ("".join(l + "\n" for l in STUB_LINES[:2]), False)]
    assert out.read_text() == "".join(l + "\n" for l in STUB_LINES[:3])
    assert sorted(p.name for p in out.parent.iterdir()) == ["o.txt"]
    assert "--resume" in track.build_parser().format_help() and ".partial" in track.build_parser().format_help()


def test_frame_failing_midway_keeps_regions(tmp_path, stub, capsys):
    seq = tmp_path / "seq"
    write_frames(seq, coloured_frames(5))
    (seq / "groundtruth.txt").write_text("10,20,30,15\n")
    (seq / "00000004.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "o.txt"
    code, stdout, err = run_cli(capsys, seq, "--out", out, "--masks", tmp_path / "m")
    assert code == 2 and stdout == ""
    assert err == (f"error: {seq / '00000004.jpg'}: cannot read the image (missing, damaged or not a JPEG/PNG "
                   f"file) (kept 3 regions in {out}.partial)\n")
    assert (tmp_path / "o.txt.partial").read_text() == "".join(l + "\n" for l in STUB_LINES[:3])
    assert not out.exists()
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [f"{i:08d}.png" for i in (1, 2, 3)]


def test_tracker_error_keeps_regions(tmp_path, seq_dir, stub, capsys):
    stub.raise_at[2] = RuntimeError("CG diverged")
    out = tmp_path / "o.txt"
    code, _, err = run_cli(capsys, seq_dir, "--out", out)
    assert code == 2
    assert err == (f"error: {seq_dir / '00000003.jpg'}: the tracker failed on this frame (RuntimeError: CG diverged)"
                   f" (kept 2 regions in {out}.partial)\n")
    assert len((tmp_path / "o.txt.partial").read_text().splitlines()) == 2


def test_dangling_link_and_empty_frame_refused_before_tracking(tmp_path, seq_dir, stub, capsys):
    out = tmp_path / "o.txt"
    link = seq_dir / "00000004.jpg"
    link.symlink_to(tmp_path / "gone.jpg")
    expect_error(capsys, f"{link}: broken symbolic link (its target {tmp_path / 'gone.jpg'} does not exist)",
                 seq_dir, "--out", out)
    link.unlink()
    (seq_dir / "00000002.jpg").write_bytes(b"")
    err = expect_error(capsys, f"{seq_dir / '00000002.jpg'}: empty file (0 bytes), not an image", seq_dir, "--out", out)
    assert "kept" not in err
    assert stub.images == [] and not out.exists() and not (tmp_path / "o.txt.partial").exists()
    good = tmp_path / "good.jpg"
    write_frames(tmp_path, coloured_frames(1), ["good.jpg"])
    (seq_dir / "00000002.jpg").unlink()
    (seq_dir / "00000002.jpg").symlink_to(good)  # a link to a frame is fine
    code, _, err = run_cli(capsys, seq_dir, "--out", out)
    assert code == 0, err


def test_truncated_jpeg_is_an_error(tmp_path, stub, capsys):
    seq = tmp_path / "seq"
    write_frames(seq, coloured_frames(4))
    (seq / "groundtruth.txt").write_text("10,20,30,15\n")
    noise = np.random.default_rng(0).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    write_frames(seq, [noise], ["00000003.jpg"])
    whole = (seq / "00000003.jpg").read_bytes()
    assert whole.endswith(b"\xff\xd9")
    (seq / "00000003.jpg").write_bytes(whole[:len(whole) * 2 // 3])
    assert cv2.imread(str(seq / "00000003.jpg")) is not None  # OpenCV alone would accept it (with a warning)
    out = tmp_path / "o.txt"
    code, _, err = run_cli(capsys, seq, "--out", out)
    assert code == 2
    assert err == (f"error: {seq / '00000003.jpg'}: truncated JPEG (no end-of-image marker FF D9 at the end of the "
                   f"file) (kept 2 regions in {out}.partial)\n")
    (seq / "00000003.jpg").write_bytes(whole + b"\x00" * 16)  # padding after the marker is accepted
    assert run_cli(capsys, seq, "--out", out)[0] == 0


def test_keyboard_interrupt_keeps_regions_and_resume(tmp_path, stub, capsys):
    seq = tmp_path / "seq"
    write_frames(seq, coloured_frames(6))
    (seq / "groundtruth.txt").write_text("10,20,30,15\n")
    out, partial = tmp_path / "o.txt", tmp_path / "o.txt.partial"
    stub.raise_at[3] = KeyboardInterrupt()
    code, stdout, err = run_cli(capsys, seq, "--out", out, "--masks", tmp_path / "m")
    assert code == 130 and stdout == ""
    assert err == f"interrupted: kept 3 regions in {partial} (run again with --resume to continue)\n"
    assert partial.read_text() == "".join(l + "\n" for l in STUB_LINES[:3]) and not out.exists()
    partial.write_bytes(partial.read_bytes() + b"12.00")  # a line cut off by a kill is dropped
    code, stdout, err = run_cli(capsys, seq, "--out", out, "--masks", tmp_path / "m", "--resume")
    assert code == 0, err
    assert err == f"resuming: re-tracking from the first frame and checking the 3 regions kept in {partial}\n"
    assert stdout.startswith(f"resumed: the 3 regions kept in {partial} were reproduced exactly, 3 tracked after "
                             f"them\nwrote 6 regions to {out} (")
    assert out.read_text() == "".join(l + "\n" for l in STUB_LINES[:6]) and not partial.exists()
    assert len(list((tmp_path / "m").iterdir())) == 6
    # a kept line the re-tracking does not reproduce: error, the partial file is left as it was
    partial.write_text(STUB_LINES[0] + "\n" + "99.0000,20.0000,30.5000,15.2500\n")
    code, _, err = run_cli(capsys, seq, "--out", out, "--resume")
    assert code == 2
    assert err.splitlines()[1:] == [
        f"error: --resume: {seq / '00000002.jpg'}: region {STUB_LINES[1]} differs from line 2 of {partial} "
        "(99.0000,20.0000,30.5000,15.2500): the frames, the options or the weights changed; run without --resume "
        f"to start over (kept 2 regions in {partial})"]
    assert partial.read_text() == STUB_LINES[0] + "\n" + "99.0000,20.0000,30.5000,15.2500\n"
    # --resume without a partial file tracks from the start; without --resume a partial file is replaced
    partial.unlink()
    code, _, err = run_cli(capsys, seq, "--out", out, "--resume")
    assert code == 0 and err == f"resuming: no {partial}, tracking from the first frame\n"
    partial.write_text("junk\n")
    assert run_cli(capsys, seq, "--out", out)[0] == 0
    assert out.read_text() == "".join(l + "\n" for l in STUB_LINES[:6])


def test_interrupt_before_tracking(tmp_path, seq_dir, monkeypatch, capsys):
    def interrupted(spec):
        raise KeyboardInterrupt

    monkeypatch.setattr(track, "make_tracker", interrupted)
    partial = tmp_path / "o.txt.partial"
    partial.write_text(STUB_LINES[0] + "\n")  # an earlier run's partial file is not touched
    code, _, err = run_cli(capsys, seq_dir, "--out", tmp_path / "o.txt")
    assert code == 130 and err == "interrupted: no region written yet\n"
    assert partial.read_text() == STUB_LINES[0] + "\n"


def test_missing_weights_error(tmp_path, seq_dir, capsys, monkeypatch):
    import d3s_vot.tracker

    monkeypatch.setattr(d3s_vot.tracker, "D3STracker", lambda *a, **k: pytest.fail("no tracker without weights"))
    missing = tmp_path / "d3s.safetensors"
    expect_error(capsys, f"weights file not found: {missing} (SegmNet.pth.tar is the authors'", seq_dir,
                 "--out", tmp_path / "o.txt", "--weights", missing)
    expect_error(capsys, f"segmentation network weights not found: {tmp_path / 'S.pth.tar'}", seq_dir,
                 "--out", tmp_path / "o.txt", "--segm-weights", tmp_path / "S.pth.tar")


# ---------------------------------------------------------------------------------------------
# the real tracker
# ---------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_real_tracker_random_weights(tmp_path):
    from d3s_vot.synthetic.scene import SceneConfig, generate_sequence

    seq = generate_sequence(seed=3, num_frames=8, config=SceneConfig(width=160, height=120))
    folder = tmp_path / "seq"
    write_frames(folder / "color", seq.frames)
    (folder / "groundtruth.txt").write_text("".join(",".join(f"{v:.4f}" for v in p) + "\n" for p in seq.polygons))
    out = tmp_path / "out.txt"
    proc = subprocess.run([sys.executable, "-m", "d3s_vot.track", str(folder), "--random-weights", "0",
                           "--device", "cpu", "--out", str(out), "--masks", str(tmp_path / "masks")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"wrote 8 regions to {out} (")
    lines = out.read_text().splitlines()
    assert len(lines) == 8
    assert lines[0] == ",".join(f"{v:.4f}" for v in seq.polygons[0])
    for line in lines:
        values = np.array([float(v) for v in line.split(",")])
        assert values.shape == (8,) and np.all(np.isfinite(values))
    masks = sorted((tmp_path / "masks").iterdir())
    assert [p.name for p in masks] == [f"{i:08d}.png" for i in range(1, 9)]
    for path in masks:
        mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        assert mask.shape == (120, 160) and set(np.unique(mask)) <= {0, 255}


def synthetic_sequence(folder: Path, num_frames: int):
    from d3s_vot.synthetic.scene import SceneConfig, generate_sequence

    seq = generate_sequence(seed=3, num_frames=num_frames, config=SceneConfig(width=160, height=120))
    write_frames(folder / "color", seq.frames)
    (folder / "groundtruth.txt").write_text("".join(",".join(f"{v:.4f}" for v in p) + "\n" for p in seq.polygons))
    return seq


@pytest.mark.slow
def test_real_tracker_sigint_keeps_regions_and_resume(tmp_path):
    folder = tmp_path / "seq"
    synthetic_sequence(folder, 10)
    out, partial = tmp_path / "out.txt", tmp_path / "out.txt.partial"
    command = [sys.executable, "-m", "d3s_vot.track", str(folder), "--random-weights", "0", "--device", "cpu",
               "--out", str(out)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while not (partial.is_file() and partial.read_text().count("\n") >= 2):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no 2 regions within 300 s"
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and stdout == ""
    kept = partial.read_text().splitlines()
    assert 2 <= len(kept) < 10 and not out.exists()
    assert stderr == f"interrupted: kept {len(kept)} regions in {partial} (run again with --resume to continue)\n"
    proc = subprocess.run(command + ["--resume"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"resumed: the {len(kept)} regions kept in {partial} were reproduced exactly, "
                                  f"{10 - len(kept)} tracked after them\nwrote 10 regions to {out} (")
    lines = out.read_text().splitlines()
    assert len(lines) == 10 and lines[:len(kept)] == kept and not partial.exists()
