"""The shared synthetic scene generator and its VOT writer: conventions, determinism and exact file format."""

from __future__ import annotations

import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from d3s_vot.synthetic.scene import TAG_NAMES, SceneConfig, generate_sequence
from d3s_vot.synthetic.vot import format_polygon, sequence_name, write_vot


@pytest.fixture(scope="module")
def seq():
    return generate_sequence(seed=3, num_frames=40)


def test_shapes_and_types(seq):
    assert len(seq) == 40
    assert all(f.shape == (240, 320, 3) and f.dtype == np.uint8 for f in seq.frames)
    assert all(m.shape == (240, 320) and m.dtype == np.uint8 and set(np.unique(m)) <= {0, 1} for m in seq.masks)
    assert seq.polygons.shape == (40, 8) and seq.boxes.shape == (40, 4) and seq.visible_ratio.shape == (40,)
    assert sorted(seq.tags) == sorted(TAG_NAMES)
    assert all(v.shape == (40,) and set(np.unique(v)) <= {0, 1} for v in seq.tags.values())


def test_deterministic_by_seed():
    a, b = generate_sequence(seed=7, num_frames=12), generate_sequence(seed=7, num_frames=12)
    c = generate_sequence(seed=8, num_frames=12)
    assert all(np.array_equal(x, y) for x, y in zip(a.frames, b.frames))
    assert np.array_equal(a.polygons, b.polygons) and np.array_equal(a.boxes, b.boxes, equal_nan=True)
    assert not np.array_equal(a.frames[0], c.frames[0])


def test_box_is_exact_extent_of_visible_mask(seq):
    for mask, box in zip(seq.masks, seq.boxes):
        if not mask.any():
            assert np.isnan(box).all()
            continue
        rows, cols = np.nonzero(mask)
        assert box.tolist() == [cols.min(), rows.min(), cols.max() - cols.min() + 1, rows.max() - rows.min() + 1]


def test_polygon_is_a_rectangle_enclosing_the_mask(seq):
    for polygon, mask in zip(seq.polygons, seq.masks):
        p = polygon.reshape(4, 2)
        sides = np.roll(p, -1, axis=0) - p
        assert abs(np.dot(sides[0], sides[1])) < 1e-6 * np.dot(sides[0], sides[0]) + 1e-9  # right angle
        assert np.allclose(sides[0], -sides[2]) and np.allclose(sides[1], -sides[3])
        rows, cols = np.nonzero(mask)
        contour = p.astype(np.float32).reshape(-1, 1, 2)
        inside = [cv2.pointPolygonTest(contour, (float(x) + 0.5, float(y) + 0.5), False) >= 0
                  for x, y in zip(cols[::37], rows[::37])]
        assert all(inside)


def test_occlusion_tag_matches_visible_ratio():
    seq = generate_sequence(seed=0, num_frames=50)
    occluded = np.flatnonzero(seq.tags["occlusion"])
    assert occluded.size > 0
    assert np.all(seq.visible_ratio[occluded] < 0.95)
    free = seq.tags["occlusion"] == 0
    # without the occluder the target is only cut by the image border
    assert np.median(seq.visible_ratio[free]) == 1.0


def test_config_switches_off_events():
    quiet = SceneConfig(occlusion=False, distractor=False, camera_motion=False, illumination_change=False,
                        scale_change=False, motion_changes=0, noise=0.0)
    seq = generate_sequence(seed=1, num_frames=20, config=quiet)
    assert all(seq.tags[t].sum() == 0 for t in TAG_NAMES)


def test_fast_enough():
    start = time.perf_counter()
    generate_sequence(seed=5, num_frames=50)
    assert time.perf_counter() - start < 3.0  # ~0.25 s on an idle core; generous for shared CI machines


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="num_frames"):
        generate_sequence(seed=0, num_frames=0)
    with pytest.raises(ValueError, match="32x32"):
        SceneConfig(width=10, height=240)


def test_vot_layout_is_exact(tmp_path):
    out = tmp_path / "sequences"
    write_vot(out, num_sequences=2, num_frames=6, seed=4)
    assert (out / "list.txt").read_text() == "synthetic-000\nsynthetic-001\n"
    seq_dir = out / sequence_name(1)
    assert (seq_dir / "sequence").read_text() == (
        "channel.default=color\nchannels.color=color/%08d.jpg\nformat=default\nfps=30\n"
        "height=240\nlength=6\nname=synthetic-001\nwidth=320\n")
    assert sorted(p.name for p in (seq_dir / "color").iterdir()) == [f"{i:08d}.jpg" for i in range(1, 7)]
    expected = generate_sequence(seed=5, num_frames=6)
    lines = (seq_dir / "groundtruth.txt").read_text().splitlines()
    assert lines == [format_polygon(p) for p in expected.polygons]
    assert len(lines[0].split(",")) == 8
    for tag in TAG_NAMES:
        assert (seq_dir / f"{tag}.tag").read_text() == "".join(f"{v}\n" for v in expected.tags[tag])
    image = cv2.cvtColor(cv2.imread(str(seq_dir / "color" / "00000001.jpg")), cv2.COLOR_BGR2RGB)
    assert np.abs(image.astype(int) - expected.frames[0]).mean() < 3  # JPEG of the same frame
    assert not list(out.glob(".*"))  # no staging leftovers


def test_vot_toolkit_reads_it(tmp_path):
    from vot.dataset.common import read_sequence

    write_vot(tmp_path, num_sequences=1, num_frames=5, seed=0)
    seq = read_sequence(str(tmp_path / "synthetic-000"))
    assert len(seq) == 5 and tuple(seq.size) == (320, 240)
    gt = seq.groundtruth()
    assert gt[0].type.name.lower() == "polygon"
    assert seq.tags() and set(seq.tags()) == set(TAG_NAMES)


def test_cli_refuses_to_overwrite_and_names_unknown_formats(tmp_path):
    run = lambda *a: subprocess.run([sys.executable, "-m", "d3s_vot.synthetic", *a], capture_output=True, text=True)
    ok = run("vot", str(tmp_path), "--sequences", "1", "--frames", "3")
    assert ok.returncode == 0, ok.stderr
    again = run("vot", str(tmp_path), "--sequences", "1", "--frames", "3")
    assert again.returncode == 2
    assert again.stderr.strip().splitlines()[-1] == (
        f"error: {tmp_path / 'synthetic-000'} already exists (use --overwrite to replace it)")
    assert run("vot", str(tmp_path), "--sequences", "1", "--frames", "3", "--overwrite").returncode == 0
    bad = run("vot", str(tmp_path), "--frames", "1", "--overwrite")
    assert bad.returncode == 2 and "error: need at least 2 frames" in bad.stderr
    none = run()
    assert none.returncode == 2 and "error: choose a format" in none.stderr
