"""The TraX entry point's server loop and configuration, driven by a real trax client.

The loop is shared by D3S and the reference trackers, so the static reference tracker (fast, no weights)
exercises region handling, replies and error handling here; the D3S process itself is covered end to end
in test_vot_e2e.py.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from trax import TraxException
from trax.region import Mask, Polygon, Rectangle

from d3s_vot.synthetic.vot import write_vot
from d3s_vot.integrations.vot.trax_entry import EntryConfig, EntryError, parse_param_overrides
from support import TraxSession


@pytest.fixture(scope="module")
def frame(tmp_path_factory):
    root = tmp_path_factory.mktemp("seq")
    write_vot(root, num_sequences=1, num_frames=2, seed=0)
    return str(root / "synthetic-000" / "color" / "00000001.jpg")


def Session(**env):
    """A reference tracker process behind a trax client (what the VOT toolkit does)."""
    return TraxSession(timeout=30, **env)


def test_rectangle_init_reports_rectangle_with_confidence(frame):
    session = Session()
    session.init(frame, Rectangle.create(10.5, 20.25, 30, 40))
    (region, props), = session.frame(frame)
    assert region.type == "rectangle" and region.bounds() == (10.5, 20.25, 30.0, 40.0)
    assert dict(props) == {"confidence": "1.0000"}
    session.client.quit()
    assert session.finish()[0] == 0


def test_polygon_init_reports_four_corners_and_reinitialises_in_the_same_process(frame, tmp_path):
    log = tmp_path / "init.log"
    session = Session(D3S_INIT_LOG=str(log))
    corners = [(10.0, 10.0), (50.0, 20.0), (45.0, 60.0), (5.0, 50.0)]
    session.init(frame, Polygon.create(corners))
    (region, _), = session.frame(frame)
    assert region.type == "polygon" and [region.get(i) for i in range(region.size())] == corners
    # a 3-point polygon becomes its minimum-area rectangle (4 corners)
    session.init(frame, Polygon.create([(10.0, 10.0), (50.0, 10.0), (10.0, 40.0)]))
    (region, _), = session.frame(frame)
    assert region.size() == 4
    session.client.quit()
    assert session.finish()[0] == 0
    pids = [line.split()[0] for line in log.read_text().splitlines()]
    assert pids == [str(session.process.pid)] * 2
    assert log.read_text().splitlines()[1].endswith(" 2 1")  # second initialisation, one object


def test_triangle_with_a_repeated_vertex_is_its_minimum_area_rectangle(frame):
    session = Session()
    session.init(frame, Polygon.create([(10.0, 10.0), (50.0, 10.0), (10.0, 40.0)]))
    (triangle, _), = session.frame(frame)
    session.init(frame, Polygon.create([(10.0, 10.0), (10.0, 10.0), (50.0, 10.0), (10.0, 40.0)]))
    (repeated, _), = session.frame(frame)
    assert repeated.size() == 4 and [repeated.get(i) for i in range(4)] == [triangle.get(i) for i in range(4)]
    session.client.quit()
    assert session.finish()[0] == 0


def test_mask_output_is_full_image(frame):
    session = Session(D3S_OUTPUT="mask")
    session.init(frame, Rectangle.create(10, 20, 30, 40))
    (region, _), = session.frame(frame)
    assert region.type == "mask" and region.offset() == (0, 0)
    array = region.array()
    assert array.shape == (240, 320) and array.sum() > 0.9 * 30 * 40
    session.client.quit()
    session.finish()


def test_mask_init_is_accepted(frame):
    session = Session(D3S_OUTPUT="mask")
    mask = np.zeros((10, 12), np.uint8)
    mask[2:8, 3:9] = 1
    session.init(frame, Mask.create(mask, 100, 50))
    (region, _), = session.frame(frame)
    full = region.array()
    assert full[52:58, 103:109].all() and full.sum() == 36
    session.client.quit()
    session.finish()


@pytest.mark.parametrize("region, message, env", [
    (lambda: Polygon.create([(1.0, 2.0), (3.0, 4.0), (5.0, 6.0)]),
     "error: invalid init region: init polygon [1, 2, 3, 4, 5, 6] is degenerate (zero area): its points are collinear",
     {}),
    (lambda: Polygon.create([(5.0, 5.0), (5.0, 5.0), (9.0, 9.0), (5.0, 5.0)]),
     "error: invalid init region: init polygon [5, 5, 5, 5, 9, 9, 5, 5] is degenerate (zero area): "
     "it has fewer than 3 distinct points", {}),
    (lambda: Polygon.create([(1.0, float("nan")), (3.0, 4.0), (5.0, 6.0), (7.0, 8.0)]),
     "error: invalid init region: the client sent a special (unknown) region, e.g. NaN coordinates in groundtruth.txt",
     {}),
    (lambda: Rectangle.create(1, 2, 0, 5),
     "error: invalid init region: init box must have positive width and height, got w=0, h=5", {}),
    (lambda: Rectangle.create(1, 2, 3000, 5),
     "error: invalid init region: init region is larger than the image: box [1, 2, 3000, 5] has width 3000, "
     "more than 2x the image width 320 (a region may be at most 2x the image's width and height)", {}),
    # an empty mask: a mask tracker gets the mask, a polygon tracker the client's +-3.4e38 polygon
    (lambda: Mask.create(np.zeros((10, 12), np.uint8), 5, 5),
     "error: invalid init region: init mask is empty: no target (nonzero) pixel in the 240x320 mask",
     {"D3S_OUTPUT": "mask"}),
    (lambda: Mask.create(np.zeros((10, 12), np.uint8), 5, 5),
     "error: invalid init region: the client sent an empty mask (as a polygon with corners at -3.4e38 and 3.4e38)", {}),
    (lambda: Mask.create(np.ones((10, 12), np.uint8), 1000, 1000),
     "error: invalid init region: init mask lies entirely outside the 320x240 image: its 12x10 box starts at "
     "x=1000, y=1000", {"D3S_OUTPUT": "mask"}),
    (lambda: Mask.create(np.ones((10, 12), np.uint8), 1000, 1000),
     "error: invalid init region: init region [1000, 1000] - [1011, 1009] lies entirely outside the 320x240 image", {}),
])
def test_bad_region_ends_the_session_with_a_message(frame, region, message, env):
    session = Session(**env)
    with pytest.raises(TraxException, match="Server terminated the session: " + message.replace("(", r"\(")
                       .replace(")", r"\)").replace("[", r"\[").replace("]", r"\]")):
        session.init(frame, region())
    code, stderr = session.finish()
    assert code == 1 and stderr.strip().splitlines()[-1] == message


def test_unreadable_image_ends_the_session_with_a_message(frame, tmp_path):
    session = Session()
    session.init(frame, Rectangle.create(10, 20, 30, 40))
    missing = str(tmp_path / "missing.jpg")
    with pytest.raises(TraxException, match="cannot read image"):
        session.frame(missing)
    code, stderr = session.finish()
    assert code == 1 and stderr.strip().splitlines()[-1] == f"error: cannot read image {missing!r}: no such file"


def test_run_by_hand_explains_itself():
    out = subprocess.run([sys.executable, "-m", "d3s_vot.vot_tracker", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "protocol = traxpython" in out.stdout


def test_missing_weights_fail_before_the_handshake(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("D3S_")}
    env.update(TRAX="1", D3S_WEIGHTS=str(tmp_path / "nope.safetensors"))
    out = subprocess.run([sys.executable, "-m", "d3s_vot.vot_tracker"], capture_output=True, text=True, env=env,
                         stdin=subprocess.DEVNULL, timeout=120)
    assert out.returncode == 1
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "nope.safetensors" in last


def test_bad_params_fail_before_the_handshake():
    env = {k: v for k, v in os.environ.items() if not k.startswith("D3S_")}
    env.update(TRAX="1", D3S_RANDOM_WEIGHTS="0", D3S_PARAMS="no_such_param=1")
    out = subprocess.run([sys.executable, "-m", "d3s_vot.vot_tracker"], capture_output=True, text=True, env=env,
                         stdin=subprocess.DEVNULL, timeout=120)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines()[-1].startswith("error: unknown D3SParams field 'no_such_param'")


def test_param_overrides_keep_commas_inside_values():
    assert parse_param_overrides("") == {}
    assert parse_param_overrides("a=1, b_c=(1, 2),d = x") == {"a": "1", "b_c": "(1, 2)", "d": "x"}
    with pytest.raises(EntryError, match=r"^D3S_PARAMS item .novalue.: expected NAME=VALUE$"):
        parse_param_overrides("novalue")


def test_config_from_env_validates():
    config = EntryConfig.from_env({"D3S_RANDOM_WEIGHTS": "3", "D3S_OUTPUT": "MASK", "D3S_PARAMS": "cg_iter=7"})
    assert (config.tracker.random_weights_seed, config.output, dict(config.tracker.params)) == \
        (3, "mask", {"cg_iter": "7"})
    assert EntryConfig.from_env({}) == EntryConfig()
    with pytest.raises(EntryError, match="D3S_OUTPUT='box' is not one of polygon, mask, rectangle"):
        EntryConfig.from_env({"D3S_OUTPUT": "box"})
    with pytest.raises(EntryError, match="must be an integer seed"):
        EntryConfig.from_env({"D3S_RANDOM_WEIGHTS": "x"})
    with pytest.raises(EntryError, match="D3S_DTYPE"):
        EntryConfig.from_env({"D3S_DTYPE": "int8"})
