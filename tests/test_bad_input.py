"""Hostile inputs with exact outcomes ("Bad input never costs results").

Three entry points, each case asserting the whole message (or the exact ``error:`` line), the exit
code and that no traceback leaks:

* the Python API: :func:`~d3s_vot.tracker.regions.normalize_region` / ``parse_region``, frames given
  to ``D3STracker.initialize`` / ``track`` (one random-weight CPU tracker per module),
  ``D3SParams`` and ``check_spec`` (``TrackerBuildError``);
* ``python -m d3s_vot.track`` in-process (``track.main``) with a stand-in tracker that validates the
  init region exactly like ``D3STracker.initialize`` (``parse_region``) but needs no weights; for
  failures after tracking started, the number of lines kept in ``<out>.partial``;
* the TraX entries as the VOT toolkit drives them (a real trax client): the weight-free static
  reference tracker for region/image errors (same server loop and region validation as D3S) and
  ``python -m d3s_vot.vot_tracker`` for configuration errors (which fail before the weights).
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from d3s_vot.factory import TrackerBuildError, TrackerSpec, build_tracker, check_spec
from d3s_vot.params import D3SParams
from d3s_vot.tools import track
from d3s_vot.tracker.regions import normalize_region, parse_region
from support import TraxSession, clean_env, run_track_cli

NAN, INF = float("nan"), float("inf")
H, W = 60, 80
NUMBERS = "region must be numbers (a box [x, y, w, h], 2*N polygon coordinates or an H x W mask), got "
COUNT = ("init region must be 4 numbers [x, y, w, h], 2*N numbers (a polygon of N >= 3 points) or an 60x80 mask; "
         "got {} numbers")
LARGER = ("init region is larger than the image: {} has {} {}, more than 2x the image {} {} "
          "(a region may be at most 2x the image's width and height)")


def mask(value=1, dtype=np.uint8, shape=(H, W)):
    m = np.zeros(shape, dtype)
    m[5:10, 6:9] = value
    return m


# =============================================================================================
# Python API: regions
# =============================================================================================

BAD_REGIONS = [
    # boxes
    ("box-nan", [1, 2, NAN, 4], "init box contains NaN or infinite values: [1, 2, nan, 4]"),
    ("box-inf", [INF, 2, 3, 4], "init box contains NaN or infinite values: [inf, 2, 3, 4]"),
    ("box-minus-inf", [1, 2, 3, -INF], "init box contains NaN or infinite values: [1, 2, 3, -inf]"),
    ("box-1e300", [1, 2, 1e300, 1e300], LARGER.format("box [1, 2, 1e+300, 1e+300]", "width", "1e+300", "width", 80)),
    ("box-negative-width", [1, 2, -3, 4], "init box must have positive width and height, got w=-3, h=4"),
    ("box-zero-height", [1, 2, 3, 0], "init box must have positive width and height, got w=3, h=0"),
    ("box-tiny", [1, 2, 1e-4, 1e-4], "init box is too small: w=0.0001, h=0.0001 (each side must be at least 0.001 pixels)"),
    ("box-off-image-right", [100, 2, 3, 4], "init region [100, 2] - [103, 6] lies entirely outside the 80x60 image"),
    ("box-off-image-top-left", [-10, -10, 5, 5], "init region [-10, -10] - [-5, -5] lies entirely outside the 80x60 image"),
    ("box-too-wide", [0, 0, 161, 10], LARGER.format("box [0, 0, 161, 10]", "width", 161, "width", 80)),
    ("box-too-tall", [0, 0, 10, 121], LARGER.format("box [0, 0, 10, 121]", "height", 121, "height", 60)),
    ("box-string", "1,2,3,4", NUMBERS + "str '1,2,3,4'"),
    ("box-list-of-strings", ["1", "2", "3", "4"], NUMBERS + "list ['1', '2', '3', '4']"),
    ("box-bytes", b"1234", NUMBERS + "bytes b'1234'"),
    ("none", None, NUMBERS + "None"),
    ("dict", {"x": 1}, NUMBERS + "dict {'x': 1}"),
    ("bools", [True, False, True, True], NUMBERS + "list [True, False, True, True]"),
    ("complex", [1j, 2, 3, 4], NUMBERS + "list [1j, 2, 3, 4]"),
    ("ragged-nested", [[1, 2], [3, 4, 5]], NUMBERS + "list [[1, 2], [3, 4, 5]]"),
    ("three-numbers", [1, 2, 3], COUNT.format(3)),
    ("five-numbers", [1, 2, 3, 4, 5], COUNT.format(5)),
    ("seven-numbers", [1, 2, 3, 4, 5, 6, 7], COUNT.format(7)),
    ("no-numbers", [], COUNT.format(0)),
    # polygons
    ("polygon-collinear", [0, 0, 10, 10, 20, 20],
     "init polygon [0, 0, 10, 10, 20, 20] is degenerate (zero area): its points are collinear"),
    ("polygon-repeated-vertices", [5, 5, 5, 5, 9, 9, 5, 5],
     "init polygon [5, 5, 5, 5, 9, 9, 5, 5] is degenerate (zero area): it has fewer than 3 distinct points"),
    ("polygon-nan", [1, 2, 3, NAN, 5, 6, 7, 8], "init polygon contains NaN or infinite values: [1, 2, 3, nan, 5, 6, 7, 8]"),
    ("polygon-off-image", [100, 100, 120, 100, 120, 120, 100, 120],
     "init region [100, 100] - [120, 120] lies entirely outside the 80x60 image"),
    ("polygon-too-wide", [0, 0, 1000, 0, 1000, 10, 0, 10],
     LARGER.format("polygon [0, 0, 1000, 0, 1000, 10, 0, 10]", "width", 1000, "width", 80)),
    # masks
    ("mask-empty", np.zeros((H, W), np.uint8), "init mask is empty: no target (nonzero) pixel in the 60x80 mask"),
    ("mask-wrong-shape", np.ones((59, 80), np.uint8), "init mask has shape (59, 80) but the image is 60x80"),
    ("mask-3d", np.ones((H, W, 3), np.uint8), "init mask has shape (60, 80, 3) but the image is 60x80"),
    ("mask-negative", mask(-1, np.int32), "init mask values must be >= 0 (0 = background, > 0 = target), got a minimum of -1"),
    ("mask-fractional", mask(0.5, np.float32), "init mask values must be whole numbers (0 = background, > 0 = target), "
     "got dtype float32 with values in [0, 0.5]"),
]


@pytest.mark.parametrize("region, message", [c[1:] for c in BAD_REGIONS], ids=[c[0] for c in BAD_REGIONS])
def test_bad_region_is_refused_with_its_message(region, message):
    with pytest.raises(ValueError) as info:
        normalize_region(region, (H, W, 3))
    assert str(info.value) == message
    with pytest.raises(ValueError) as again:  # parse_region (D3STracker.initialize) says the same
        parse_region(region, (H, W, 3))
    assert str(again.value) == message


GOOD_REGIONS = [
    # (region, expected box_xywh, rotated)
    ("triangle", [10, 10, 40, 10, 10, 30], [9.5, 9.5, 31, 21], True),
    ("triangle-as-Nx2", [[10, 10], [40, 10], [10, 30]], [9.5, 9.5, 31, 21], True),
    ("triangle-with-repeated-vertex", [10, 10, 10, 10, 40, 10, 10, 30], [9.5, 9.5, 31, 21], True),
    ("pentagon", [10, 10, 40, 10, 45, 20, 30, 35, 10, 30], [9.5, 9.5, 36, 26], True),
    ("hexagon", [10, 10, 30, 10, 40, 20, 30, 30, 10, 30, 5, 20], [4.5, 9.5, 36, 21], True),
    ("mask-all-ones", np.ones((H, W), np.uint8), [0, 0, 80, 60], False),
    ("mask-0-255", mask(255), [6, 5, 3, 5], False),
    ("mask-bool", mask(True, bool), [6, 5, 3, 5], False),
    ("mask-whole-floats", mask(1.0, np.float32), [6, 5, 3, 5], False),
    ("box-overhanging-border", [-5, -5, 20, 20], [-5, -5, 20, 20], False),
]


@pytest.mark.parametrize("region, box, rotated", [c[1:] for c in GOOD_REGIONS], ids=[c[0] for c in GOOD_REGIONS])
def test_unusual_but_valid_region_is_accepted(region, box, rotated):
    init = parse_region(region, (H, W, 3))
    np.testing.assert_allclose(init.box_xywh, box, atol=1e-9)
    assert init.rotated == rotated
    if not rotated:  # a mask's (or box's) target box: all-ones lies exactly within the image
        assert init.polygon.shape == (4, 2)


# =============================================================================================
# Python API: frames given to D3STracker
# =============================================================================================

@pytest.fixture(scope="module")
def tracker():
    return build_tracker(TrackerSpec(random_weights_seed=0, device="cpu"))


GRAY_HINT = ("D3S needs H x W x 3 RGB: convert with np.repeat(img[..., None], 3, axis=2) or "
             "cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)")
BAD_FRAMES = [
    ("grayscale", np.zeros((H, W), np.uint8), f"image is grayscale (shape (60, 80)); {GRAY_HINT}"),
    ("grayscale-1-channel", np.zeros((H, W, 1), np.uint8), f"image is grayscale (shape (60, 80, 1)); {GRAY_HINT}"),
    ("rgba", np.zeros((H, W, 4), np.uint8),
     "image must have shape H x W x 3, got (60, 80, 4) (RGBA? drop the alpha channel: img[..., :3])"),
    ("two-channels", np.zeros((H, W, 2), np.uint8), "image must have shape H x W x 3, got (60, 80, 2)"),
    ("batch-of-one", np.zeros((1, H, W, 3), np.uint8), "image must have shape H x W x 3, got (1, 60, 80, 3)"),
    ("uint16", np.zeros((H, W, 3), np.uint16),
     "image must be uint8, got uint16 (16-bit? scale to 8 bits: (img >> 8).astype(np.uint8))"),
    ("float32", np.zeros((H, W, 3), np.float32), "image must be uint8, got float32"),
    ("1x1", np.zeros((1, 1, 3), np.uint8), "image of 1x1 pixels is too small"),
    ("0x0", np.zeros((0, 0, 3), np.uint8), "image of 0x0 pixels is too small"),
    ("nested-list", [[0]], "image must be a numpy array (H x W x 3 uint8 RGB), got list"),
]


@pytest.mark.parametrize("image, message", [c[1:] for c in BAD_FRAMES], ids=[c[0] for c in BAD_FRAMES])
def test_bad_frame_to_initialize(tracker, image, message):
    with pytest.raises(ValueError) as info:
        tracker.initialize(image, [10, 10, 20, 20])
    assert str(info.value) == message


def test_bad_region_through_initialize(tracker):
    with pytest.raises(ValueError) as info:
        tracker.initialize(np.zeros((H, W, 3), np.uint8), [10, 10, 0, 20])
    assert str(info.value) == "init box must have positive width and height, got w=0, h=20"


def test_track_before_initialize():
    fresh = build_tracker(TrackerSpec(random_weights_seed=0, device="cpu"))
    with pytest.raises(RuntimeError) as info:
        fresh.track(np.zeros((H, W, 3), np.uint8))
    assert str(info.value) == "track() called before initialize(); initialise the tracker on the first frame"


@pytest.fixture(scope="module")
def initialized(tracker):
    tracker.initialize(np.zeros((H, W, 3), np.uint8), [10, 10, 20, 20])
    return tracker


@pytest.mark.parametrize("image, message", [
    (np.zeros((H + 1, W, 3), np.uint8),
     "frame size 80x61 differs from the initialisation frame 80x60; call initialize() for a new sequence"),
    (np.zeros((H, W), np.uint8), f"image is grayscale (shape (60, 80)); {GRAY_HINT}"),
    (np.zeros((H, W, 4), np.uint8),
     "image must have shape H x W x 3, got (60, 80, 4) (RGBA? drop the alpha channel: img[..., :3])"),
], ids=["wrong-size", "grayscale", "rgba"])
def test_bad_frame_to_track(initialized, image, message):
    with pytest.raises(ValueError) as info:
        initialized.track(image)
    assert str(info.value) == message


# =============================================================================================
# Python API: parameters
# =============================================================================================

SPEC_ERRORS = [
    ("negative-iterations", dict(params={"cg_iter": -5}), "D3SParams.cg_iter = -5: must be an integer >= 0"),
    ("unparsable-int", dict(params={"cg_iter": "many"}), "parameter cg_iter: cannot parse 'many' as int"),
    ("probability-above-1", dict(params={"learning_rate": 1.5}), "D3SParams.learning_rate = 1.5: must be a finite number in [0, 1]"),
    ("overflow-to-inf", dict(params={"filter_reg": "1e400"}), "D3SParams.filter_reg = inf: must be a finite number > 0"),
    ("zero-regulariser", dict(params={"filter_reg": 0}), "D3SParams.filter_reg = 0: must be a finite number > 0"),
    ("segm-size-not-multiple-of-16", dict(params={"segm_output_sz": 40}),
     "D3SParams.segm_output_sz = 40: must be an integer multiple of 16, >= 32 (the segmentation network's layer3 stride)"),
    ("min-above-max", dict(params={"min_scale_change_factor": 2, "max_scale_change_factor": 1}),
     "D3SParams.min_scale_change_factor = 2: must be <= max_scale_change_factor (1)"),
    ("memory-smaller-than-first-frame", dict(params={"sample_memory_size": 1}),
     "D3SParams.sample_memory_size = 1: must be an integer >= 27 (the first frame's samples: identity + augmentations)"),
    ("sample-smaller-than-stride", dict(params={"image_sample_size": 4}),
     "D3SParams.image_sample_size = 4: must be an integer >= feature_stride (16)"),
    ("bad-boolean", dict(params={"use_augmentation": "maybe"}), "parameter use_augmentation: expected a boolean, got 'maybe'"),
    ("bad-choice", dict(params={"vot_anno_conversion_type": "x"}),
     "D3SParams.vot_anno_conversion_type = 'x': must be one of 'preserve_area'"),
    ("float-for-int", dict(params={"cg_iter": "2.5"}), "parameter cg_iter: expected int, got '2.5'"),
    ("dtype", dict(dtype="float16"), "dtype 'float16' is not supported by D3S: use float32 or float64"),
    ("device-name", dict(device="tpu"), "device 'tpu' is not a torch device name (use cpu, cuda or cuda:N)"),
    ("two-weight-sources", dict(weights="a.safetensors", random_weights_seed=0),
     "weights and random_weights_seed exclude each other: give one source of weights"),
]


@pytest.mark.parametrize("spec, message", [c[1:] for c in SPEC_ERRORS], ids=[c[0] for c in SPEC_ERRORS])
def test_check_spec_refuses(spec, message):
    with pytest.raises(TrackerBuildError) as info:
        check_spec(TrackerSpec(**spec))
    assert str(info.value) == message


def test_unknown_param_lists_the_fields():
    with pytest.raises(TrackerBuildError) as info:
        check_spec(TrackerSpec(params={"segm_mask_treshold": 0.5}))
    message = str(info.value)
    assert message.startswith("unknown D3SParams field 'segm_mask_treshold'; known fields: advanced_localization, ")
    assert "\n" not in message and ", segm_mask_thr, " in message


@pytest.mark.parametrize("kwargs, message", [
    (dict(cg_iter=-5), "D3SParams.cg_iter = -5: must be an integer >= 0"),
    (dict(cg_iter=2.5), "D3SParams.cg_iter = 2.5: must be an integer >= 0"),
    (dict(cg_iter=True), "D3SParams.cg_iter = True: must be an integer >= 0"),
    (dict(learning_rate=NAN), "D3SParams.learning_rate = nan: must be a finite number in [0, 1]"),
    (dict(segm_mask_thr=-0.1), "D3SParams.segm_mask_thr = -0.1: must be a finite number in [0, 1]"),
    (dict(aug_blurs=((0, 1),)), "D3SParams.aug_blurs = ((0, 1),): must be a tuple of (sigma_y, sigma_x) pairs of finite numbers > 0"),
    (dict(aug_rotations=(INF,)), "D3SParams.aug_rotations = (inf,): must be a tuple of finite numbers (degrees)"),
], ids=["negative", "float-for-int", "bool-for-int", "nan", "negative-threshold", "zero-blur", "inf-rotation"])
def test_d3s_params_refuses(kwargs, message):
    with pytest.raises(ValueError) as info:
        D3SParams(**kwargs)
    assert str(info.value) == message


# =============================================================================================
# python -m d3s_vot.track (in-process, stand-in tracker: no weights)
# =============================================================================================

class StubResult:
    def __init__(self, k, shape):
        self.box = np.array([10.0 + k, 20.0, 30.0, 15.0])
        self.polygon = None
        self.mask = np.zeros(shape[:2], np.uint8)


class ValidatingStub:
    """Checks the init region as D3STracker.initialize does (parse_region), then moves a box 1 px/frame."""

    def __init__(self):
        self.calls, self.raise_at = 0, {}

    def initialize(self, image, region):
        parse_region(region, image.shape)
        self.calls = 0

    def track(self, image):
        self.calls += 1
        if self.calls in self.raise_at:
            raise self.raise_at.pop(self.calls)
        return StubResult(self.calls, image.shape)


@pytest.fixture
def stub(monkeypatch):
    tracker = ValidatingStub()
    monkeypatch.setattr(track, "make_tracker", lambda spec: tracker)
    return tracker


def write_frames(folder: Path, n, size=(H, W), start=1):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(start, start + n):
        frame = np.full((*size, 3), (10 * i) % 256, np.uint8)
        assert cv2.imwrite(str(folder / f"{i:08d}.jpg"), frame)


@pytest.fixture
def seq(tmp_path):
    folder = tmp_path / "seq"
    write_frames(folder, 5)
    (folder / "groundtruth.txt").write_text("10,20,30,15\n")
    return folder


run_cli = run_track_cli


def kept_lines(out: Path):
    partial = out.with_name(out.name + ".partial")
    return len(partial.read_text().splitlines()) if partial.exists() else 0


def check_failure(capsys, tmp_path, argv, expected_err, code=2, kept=0):
    out = tmp_path / "out" / "o.txt"
    got_code, stdout, err = run_cli(capsys, *argv, "--out", out)
    assert "Traceback" not in err
    assert err == expected_err
    assert (got_code, stdout) == (code, "")
    assert kept_lines(out) == kept
    assert not out.exists()


# each case: (id, setup(tmp_path, seq) -> (argv, expected stderr[, kept]))
def _missing_folder(t, s):
    return [t / "nope"], f"error: {t / 'nope'}: no such directory\n"


def _file_not_folder(t, s):
    (t / "f.txt").write_text("x")
    return [t / "f.txt"], f"error: {t / 'f.txt'}: not a directory\n"


def _dangling_link(t, s):
    (s / "00000006.jpg").symlink_to(t / "gone.jpg")
    return [s], f"error: {s / '00000006.jpg'}: broken symbolic link (its target {t / 'gone.jpg'} does not exist)\n"


def _empty_frame(t, s):
    (s / "00000003.jpg").write_bytes(b"")
    return [s], f"error: {s / '00000003.jpg'}: empty file (0 bytes), not an image\n"


def _garbage_frame(t, s):
    (s / "00000003.jpg").write_bytes(b"not a jpeg at all")
    return [s], (f"error: {s / '00000003.jpg'}: cannot read the image (missing, damaged or not a JPEG/PNG file) "
                 f"(kept 2 regions in {t / 'out' / 'o.txt.partial'})\n"), 2


def _truncated_jpeg(t, s):
    noise = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    cv2.imwrite(str(s / "00000004.jpg"), noise)
    data = (s / "00000004.jpg").read_bytes()
    (s / "00000004.jpg").write_bytes(data[: len(data) * 2 // 3])
    return [s], (f"error: {s / '00000004.jpg'}: truncated JPEG (no end-of-image marker FF D9 at the end of the file) "
                 f"(kept 3 regions in {t / 'out' / 'o.txt.partial'})\n"), 3


def _resized_frame(t, s):
    cv2.imwrite(str(s / "00000005.jpg"), np.zeros((30, 40, 3), np.uint8))
    return [s], (f"error: {s / '00000005.jpg'}: frame size 40x30 differs from the first frame's 80x60 "
                 f"(kept 4 regions in {t / 'out' / 'o.txt.partial'})\n"), 4


def _first_frame_unreadable(t, s):
    (s / "00000001.jpg").write_bytes(b"GIF89a....")
    return [s], f"error: {s / '00000001.jpg'}: cannot read the image (missing, damaged or not a JPEG/PNG file)\n"


def _garbage_groundtruth(t, s):
    (s / "groundtruth.txt").write_text("10,20,abc,15\n")
    return [s], f"error: {s / 'groundtruth.txt'}, line 1: not a list of numbers: '10,20,abc,15'\n"


def _mask_groundtruth(t, s):
    (s / "groundtruth.txt").write_text("m10,20,3,3,0,1,1,0\n")
    return [s], (f"error: {s / 'groundtruth.txt'}, line 1: a mask region (m10,20,3,3,0,1,1,0...) cannot initialise "
                 "this tool; give a box with --init x,y,w,h or a polygon with --init-polygon\n")


def _nan_groundtruth(t, s):
    (s / "groundtruth.txt").write_text("nan,nan,nan,nan\n")
    return [s], f"error: {s / 'groundtruth.txt'}, line 1: non-finite value in 'nan,nan,nan,nan'\n"


def _empty_groundtruth(t, s):
    (s / "groundtruth.txt").write_text("\n\n")
    return [s], f"error: {s / 'groundtruth.txt'}: empty file, no initial region\n"


def _groundtruth_off_image(t, s):
    (s / "groundtruth.txt").write_text("500,500,10,10\n")
    return [s], ("error: initial region 500.0000,500.0000,10.0000,10.0000: init region [500, 500] - [510, 510] lies "
                 "entirely outside the 80x60 image\n")


def _non_utf8_groundtruth(t, s):
    (s / "groundtruth.txt").write_bytes(b"\xff\xfe\x00garbage")
    return [s], (f"error: {s / 'groundtruth.txt'}: cannot read it as text ('utf-8' codec can't decode byte 0xff in "
                 "position 0: invalid start byte)\n")


def _init_inf(t, s):
    return [s, "--init", "1,2,3,inf"], "error: --init: non-finite value in '1,2,3,inf'\n"


def _param_empty_name(t, s):
    return [s, "--param", "=5"], "error: --param '=5': expected NAME=VALUE\n"


def _param_last_wins_and_is_checked(t, s):
    return [s, "--param", "cg_iter=1", "--param", "cg_iter=-1"], \
        "error: --param: D3SParams.cg_iter = -1: must be an integer >= 0\n"


def _param_not_a_literal(t, s):
    return [s, "--param", "aug_rotations=__import__('os')"], \
        "error: --param: parameter aug_rotations: cannot parse \"__import__('os')\" as tuple\n"


def _init_three(t, s):
    return [s, "--init", "1,2,3"], "error: --init: expected 4 numbers, got 3 in '1,2,3'\n"


def _init_strings(t, s):
    return [s, "--init", "a,b,c,d"], "error: --init: not a list of numbers: 'a,b,c,d'\n"


def _init_zero(t, s):
    return [s, "--init", "1,2,0,0"], "error: --init: box width and height must be positive, got '1,2,0,0'\n"


def _init_too_large(t, s):
    return [s, "--init", "0,0,500,10"], (
        "error: initial region 0.0000,0.0000,500.0000,10.0000: " + LARGER.format("box [0, 0, 500, 10]", "width", 500,
                                                                                 "width", 80) + "\n")


def _init_polygon_count(t, s):
    return [s, "--init-polygon", "1,2,3,4,5,6"], "error: --init-polygon: expected 8 numbers, got 6 in '1,2,3,4,5,6'\n"


def _init_polygon_collinear(t, s):
    return [s, "--init-polygon", "0,0,10,10,20,20,30,30"], (
        "error: initial region 0.0000,0.0000,10.0000,10.0000,20.0000,20.0000,30.0000,30.0000: init polygon "
        "[0, 0, 10, 10, 20, 20, 30, 30] is degenerate (zero area): its points are collinear\n")


def _param_range(t, s):
    return [s, "--param", "cg_iter=-5"], "error: --param: D3SParams.cg_iter = -5: must be an integer >= 0\n"


def _param_syntax(t, s):
    return [s, "--param", "cg_iter"], "error: --param 'cg_iter': expected NAME=VALUE\n"


def _param_value(t, s):
    return [s, "--param", "learning_rate=fast"], "error: --param: parameter learning_rate: cannot parse 'fast' as float\n"


def _masks_is_file(t, s):
    (t / "m.png").write_bytes(b"x")
    return [s, "--masks", t / "m.png"], f"error: --masks {t / 'm.png'}: exists and is not a directory\n"


TRACK_CASES = [
    _missing_folder, _file_not_folder, _dangling_link, _empty_frame, _garbage_frame, _truncated_jpeg, _resized_frame,
    _first_frame_unreadable, _garbage_groundtruth, _mask_groundtruth, _nan_groundtruth, _empty_groundtruth,
    _groundtruth_off_image, _init_three, _init_strings, _init_zero, _init_too_large, _init_polygon_count,
    _init_polygon_collinear, _param_range, _param_syntax, _param_value, _masks_is_file, _non_utf8_groundtruth,
    _init_inf, _param_empty_name, _param_last_wins_and_is_checked, _param_not_a_literal,
]


@pytest.mark.parametrize("case", TRACK_CASES, ids=[c.__name__.strip("_").replace("_", "-") for c in TRACK_CASES])
def test_track_cli_refuses(case, tmp_path, seq, stub, capsys):
    argv, err, *kept = case(tmp_path, seq)
    check_failure(capsys, tmp_path, argv, err, kept=kept[0] if kept else 0)


def test_track_folder_without_frames(tmp_path, stub, capsys):
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli(capsys, tmp_path / "empty", "--out", tmp_path / "o.txt")
    assert code == 2 and err.startswith(f"error: {tmp_path / 'empty'}: no frames found (expected .jpg")
    assert err.count("\n") == 1 and "Traceback" not in err


def test_track_groundtruth_is_a_folder(tmp_path, seq, stub, capsys):
    (tmp_path / "gt").mkdir()
    code, _, err = run_cli(capsys, seq, "--groundtruth", tmp_path / "gt", "--out", tmp_path / "o.txt")
    assert code == 2 and err.startswith(f"error: {tmp_path / 'gt'}: cannot read it as text (")
    assert err.count("\n") == 1 and "Traceback" not in err


def test_track_param_typo_names_the_field(tmp_path, seq, stub, capsys):
    code, _, err = run_cli(capsys, seq, "--param", "cg_itr=5", "--out", tmp_path / "o.txt")
    assert code == 2 and err.startswith("error: --param: unknown D3SParams field 'cg_itr'; known fields: ")
    assert err.count("\n") == 1 and ", cg_iter, " in err


@pytest.mark.parametrize("option, value, choices", [("--dtype", "float16", "'float32', 'float64'"),
                                                    ("--device", "tpu", "'cpu', 'cuda'")])
def test_track_bad_choice(tmp_path, seq, stub, capsys, option, value, choices):
    code, _, err = run_cli(capsys, seq, option, value, "--out", tmp_path / "o.txt")
    assert code == 2 and "Traceback" not in err
    assert err.splitlines()[-1] == f"error: argument {option}: invalid choice: '{value}' (choose from {choices}) (see python -m d3s_vot.track --help)"


def test_track_out_parent_is_a_regular_file(tmp_path, seq, stub, capsys):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file\n")
    code, _, err = run_cli(capsys, seq, "--out", blocker / "o.txt")
    assert err in (f"error: --out {blocker / 'o.txt'}: cannot write to the folder {blocker} (Not a directory)\n",
                   f"error: --out {blocker / 'o.txt'}: cannot write to the folder {blocker} (File exists)\n")
    assert code == 2 and stub.calls == 0


def test_track_out_is_a_folder(tmp_path, seq, stub, capsys):
    code, _, err = run_cli(capsys, seq, "--out", tmp_path)
    assert (code, err) == (2, f"error: --out {tmp_path}: is a directory, expected a file name\n")


def test_track_tracker_raising_mid_sequence_keeps_regions(tmp_path, seq, stub, capsys):
    stub.raise_at[3] = RuntimeError("CG diverged")
    out = tmp_path / "out" / "o.txt"
    expected = (f"error: {seq / '00000004.jpg'}: the tracker failed on this frame (RuntimeError: CG diverged) "
                f"(kept 3 regions in {out}.partial)\n")
    check_failure(capsys, tmp_path, [seq], expected, kept=3)


def test_track_keyboard_interrupt_keeps_regions(tmp_path, seq, stub, capsys):
    stub.raise_at[2] = KeyboardInterrupt()
    out = tmp_path / "out" / "o.txt"
    expected = f"interrupted: kept 2 regions in {out}.partial (run again with --resume to continue)\n"
    check_failure(capsys, tmp_path, [seq], expected, code=130, kept=2)


def test_track_memory_error_mid_sequence_keeps_regions(tmp_path, seq, stub, capsys):
    stub.raise_at[1] = MemoryError("out of memory")
    out = tmp_path / "out" / "o.txt"
    expected = (f"error: {seq / '00000002.jpg'}: the tracker failed on this frame (MemoryError: out of memory) "
                f"(kept 1 region in {out}.partial)\n")
    check_failure(capsys, tmp_path, [seq], expected, kept=1)


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without CUDA")
def test_track_cuda_without_cuda(tmp_path, seq, stub, capsys):
    code, _, err = run_cli(capsys, seq, "--device", "cuda", "--out", tmp_path / "o.txt")
    assert (code, err) == (2, "error: --device cuda: no CUDA device is available (use --device cpu)\n")


# =============================================================================================
# TraX entries, driven by a real trax client (as the VOT toolkit does)
# =============================================================================================

from trax import TraxException  # noqa: E402
from trax.region import Mask, Polygon, Rectangle  # noqa: E402


@pytest.fixture(scope="module")
def vot_frame(tmp_path_factory):
    from d3s_vot.synthetic.vot import write_vot

    root = tmp_path_factory.mktemp("vot")
    write_vot(root, num_sequences=1, num_frames=2, seed=0)
    return str(root / "synthetic-000" / "color" / "00000001.jpg")  # 320x240


Session = TraxSession


def expect_session_error(session, send, message):
    with pytest.raises(TraxException) as info:
        send()
    assert str(info.value) == "Server terminated the session: " + message
    code, stderr = session.finish()
    assert "Traceback" not in stderr
    assert (code, stderr.strip().splitlines()[-1]) == (1, message)


def _rect(*v):
    return lambda: Rectangle.create(*v)


def _poly(*points):
    return lambda: Polygon.create(list(points))


def _mask(array, x, y):
    return lambda: Mask.create(array, x, y)


INVALID = "error: invalid init region: "
TRAX_REGION_CASES = [
    ("rectangle-zero-width", _rect(1, 2, 0, 5), {}, INVALID + "init box must have positive width and height, got w=0, h=5"),
    ("rectangle-negative-height", _rect(1, 2, 5, -5), {},
     INVALID + "init box must have positive width and height, got w=5, h=-5"),
    ("rectangle-tiny", _rect(1, 2, 1e-4, 5), {},
     INVALID + "init box is too small: w=0.0001, h=5 (each side must be at least 0.001 pixels)"),
    ("rectangle-oversize", _rect(1, 2, 3000, 5), {},
     INVALID + LARGER.format("box [1, 2, 3000, 5]", "width", 3000, "width", 320)),
    ("rectangle-off-image", _rect(400, 300, 10, 10), {},
     INVALID + "init region [400, 300] - [410, 310] lies entirely outside the 320x240 image"),
    ("polygon-collinear", _poly((1.0, 2.0), (3.0, 4.0), (5.0, 6.0)), {},
     INVALID + "init polygon [1, 2, 3, 4, 5, 6] is degenerate (zero area): its points are collinear"),
    ("polygon-one-point", _poly((5.0, 5.0), (5.0, 5.0), (5.0, 5.0), (5.0, 5.0)), {},
     INVALID + "init polygon [5, 5, 5, 5, 5, 5, 5, 5] is degenerate (zero area): it has fewer than 3 distinct points"),
    ("special-region-nan", _poly((1.0, NAN), (3.0, 4.0), (5.0, 6.0), (7.0, 8.0)), {},
     INVALID + "the client sent a special (unknown) region, e.g. NaN coordinates in groundtruth.txt"),
    ("rectangle-nan", _rect(NAN, 1, 5, 5), {},
     INVALID + "the client sent a special (unknown) region, e.g. NaN coordinates in groundtruth.txt"),
    ("rectangle-inf-width", _rect(1, 2, INF, 5), {}, INVALID + "init box contains NaN or infinite values: [1, 2, inf, 5]"),
    # 1e300 does not survive the protocol's float32: the tracker sees (and names) infinities
    ("polygon-1e300", _poly((0.0, 0.0), (1e300, 0.0), (1e300, 1e300), (0.0, 1e300)), {},
     INVALID + "init polygon contains NaN or infinite values: [0, 0, inf, 0, inf, inf, 0, inf]"),
    ("mask-empty", _mask(np.zeros((10, 12), np.uint8), 5, 5), {"D3S_OUTPUT": "mask"},
     INVALID + "init mask is empty: no target (nonzero) pixel in the 240x320 mask"),
    ("mask-empty-polygon-tracker", _mask(np.zeros((10, 12), np.uint8), 5, 5), {},
     INVALID + "the client sent an empty mask (as a polygon with corners at -3.4e38 and 3.4e38)"),
    ("mask-outside-image", _mask(np.ones((10, 12), np.uint8), 1000, 1000), {"D3S_OUTPUT": "mask"},
     INVALID + "init mask lies entirely outside the 320x240 image: its 12x10 box starts at x=1000, y=1000"),
    ("mask-outside-image-polygon-tracker", _mask(np.ones((10, 12), np.uint8), 1000, 1000), {},
     INVALID + "init region [1000, 1000] - [1011, 1009] lies entirely outside the 320x240 image"),
]


@pytest.mark.parametrize("region, env, message", [c[1:] for c in TRAX_REGION_CASES],
                         ids=[c[0] for c in TRAX_REGION_CASES])
def test_trax_bad_init_region(vot_frame, region, env, message):
    session = Session(**env)
    expect_session_error(session, lambda: session.init(vot_frame, region()), message)


def test_trax_init_image_missing(tmp_path):
    session = Session()
    missing = str(tmp_path / "missing.jpg")
    expect_session_error(session, lambda: session.init(missing, Rectangle.create(10, 20, 30, 40)),
                         f"error: cannot read image {missing!r}: no such file")


def test_trax_frame_image_not_an_image(vot_frame, tmp_path):
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"not a jpeg")
    session = Session()
    session.init(vot_frame, Rectangle.create(10, 20, 30, 40))
    expect_session_error(session, lambda: session.frame(str(garbage)), f"error: cannot read image {str(garbage)!r}")


def test_trax_d3s_bad_init_region(vot_frame):
    """The D3S process itself (random weights): same validation, same line, exit 1."""
    session = Session("d3s_vot.vot_tracker", D3S_RANDOM_WEIGHTS="0", D3S_DEVICE="cpu")
    expect_session_error(session, lambda: session.init(vot_frame, Rectangle.create(1, 2, 0, 5)),
                         INVALID + "init box must have positive width and height, got w=0, h=5")


TRAX_CONFIG_CASES = [
    ("output", {"D3S_OUTPUT": "box"}, "error: D3S_OUTPUT='box' is not one of polygon, mask, rectangle"),
    ("dtype", {"D3S_DTYPE": "int8"}, "error: D3S_DTYPE='int8' is not one of float32, float64"),
    ("random-weights", {"D3S_RANDOM_WEIGHTS": "x"}, "error: D3S_RANDOM_WEIGHTS='x' must be an integer seed"),
    ("params-syntax", {"D3S_PARAMS": "novalue", "D3S_RANDOM_WEIGHTS": "0"},
     "error: D3S_PARAMS item 'novalue': expected NAME=VALUE"),
    ("params-range", {"D3S_PARAMS": "cg_iter=-5", "D3S_RANDOM_WEIGHTS": "0"},
     "error: D3SParams.cg_iter = -5: must be an integer >= 0"),
    ("params-value", {"D3S_PARAMS": "learning_rate=fast", "D3S_RANDOM_WEIGHTS": "0"},
     "error: parameter learning_rate: cannot parse 'fast' as float"),
    ("device", {"D3S_DEVICE": "tpu", "D3S_RANDOM_WEIGHTS": "0"},
     "error: device 'tpu' is not a torch device name (use cpu, cuda or cuda:N)"),
    ("two-weight-sources", {"D3S_WEIGHTS": "/nonexistent/d3s.safetensors", "D3S_RANDOM_WEIGHTS": "0"},
     "error: weights and random_weights_seed exclude each other: give one source of weights"),
]


@pytest.mark.parametrize("env, message", [c[1:] for c in TRAX_CONFIG_CASES], ids=[c[0] for c in TRAX_CONFIG_CASES])
def test_trax_bad_configuration_fails_before_the_handshake(env, message):
    out = subprocess.run([sys.executable, "-m", "d3s_vot.vot_tracker"], capture_output=True, text=True,
                         env=clean_env(**env), stdin=subprocess.DEVNULL, timeout=120)
    assert "Traceback" not in out.stderr
    assert (out.returncode, out.stderr.strip().splitlines()[-1]) == (1, message)
    assert out.stdout == ""  # no handshake was sent


def test_reference_tracker_bad_configuration():
    out = subprocess.run([sys.executable, "-m", "d3s_vot.vot_reference_trackers"], capture_output=True, text=True,
                         env=clean_env(D3S_REFERENCE_TRACKER="static", D3S_OUTPUT="box"), stdin=subprocess.DEVNULL,
                         timeout=60)
    assert "Traceback" not in out.stderr
    assert (out.returncode, out.stderr) == (1, "error: D3S_OUTPUT='box' is not one of polygon, mask, rectangle\n")


def test_track_huge_init_box_message_is_readable(tmp_path, seq, stub, capsys):
    code, _, err = run_cli(capsys, seq, "--init", "1e308,1e308,1e308,1e308", "--out", tmp_path / "o.txt")
    region_message = LARGER.format("box [1e+308, 1e+308, 1e+308, 1e+308]", "width", "1e+308", "width", 80)
    assert code == 2 and err.count("\n") == 1 and err.endswith(": " + region_message + "\n")
    assert len(err) < 300, err
