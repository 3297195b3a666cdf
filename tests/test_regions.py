"""Initial-region validation (d3s_vot.tracker.regions), the one check every entry point goes through.

Most cases run at the parse level (cheap); a few go through ``D3STracker.initialize`` on a tiny image
with random weights, whose refusals happen before any network work.
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from d3s_vot.tracker.crops import segm_crop_window
from d3s_vot.tracker.regions import MAX_SIZE_FACTOR, normalize_region, parse_region, polygon_to_box

SHAPE = (100, 120, 3)           # H x W x 3: the image is 120 wide, 100 high
NOT_NUMBERS = "region must be numbers (a box [x, y, w, h], 2*N polygon coordinates or an H x W mask), got "
LARGER = "init region is larger than the image: "
BOUND = " (a region may be at most 2x the image's width and height)"
F32_MAX = float(np.finfo(np.float32).max)


class Thing:
    def __repr__(self):
        return "<thing>"


def _mask(value=1, dtype=np.uint8, rows=slice(40, 70), cols=slice(50, 90)):
    mask = np.zeros(SHAPE[:2], dtype)
    mask[rows, cols] = value
    return mask


REJECTED = [
    # not numbers
    ("1,2,3,4", NOT_NUMBERS + "str '1,2,3,4'"),
    (None, NOT_NUMBERS + "None"),
    (["a", "b", "c", "d"], NOT_NUMBERS + "list ['a', 'b', 'c', 'd']"),
    (np.array(["1", "2", "3", "4"]), NOT_NUMBERS + "ndarray array(['1', '2', '3', '4'], dtype='<U1')"),
    ({"x": 1}, NOT_NUMBERS + "dict {'x': 1}"),
    (Thing(), NOT_NUMBERS + "Thing <thing>"),
    ([1 + 2j, 2, 3, 4], NOT_NUMBERS + "list [(1+2j), 2, 3, 4]"),
    ([[1, 2], [3]], NOT_NUMBERS + "list [[1, 2], [3]]"),
    ([True, False, True, True], NOT_NUMBERS + "list [True, False, True, True]"),
    (np.ones((4, 2), bool), NOT_NUMBERS + "ndarray array([[ True, Tr... [ True, True]])"),
    # boxes
    ([10, np.nan, 5, 5], "init box contains NaN or infinite values: [10, nan, 5, 5]"),
    ([10, 10, np.inf, 5], "init box contains NaN or infinite values: [10, 10, inf, 5]"),
    ([10, 10, 0, 5], "init box must have positive width and height, got w=0, h=5"),
    ([10, 10, -3, 5], "init box must have positive width and height, got w=-3, h=5"),
    ([10, 10, 1e-200, 1e-200], "init box is too small: w=1e-200, h=1e-200 (each side must be at least 0.001 pixels)"),
    ([0, 0, 1e300, 1e300], LARGER + "box [0, 0, 1e+300, 1e+300] has width 1e+300, more than 2x the image width 120"
     + BOUND),
    ([-1e6, -1e6, 2e6, 2e6], LARGER + "box [-1e+06, -1e+06, 2e+06, 2e+06] has width 2e+06, more than 2x the image "
     "width 120" + BOUND),
    ([1, 2, 3000, 4], LARGER + "box [1, 2, 3000, 4] has width 3000, more than 2x the image width 120" + BOUND),
    ([10, 10, 20, 201], LARGER + "box [10, 10, 20, 201] has height 201, more than 2x the image height 100" + BOUND),
    ([500, 500, 10, 10], "init region [500, 500] - [510, 510] lies entirely outside the 120x100 image"),
    ([-30, -30, 30, 30], "init region [-30, -30] - [0, 0] lies entirely outside the 120x100 image"),
    # wrong counts
    ([1, 2, 3], "init region must be 4 numbers [x, y, w, h], 2*N numbers (a polygon of N >= 3 points) or an 100x120 "
     "mask; got 3 numbers"),
    ([1, 2, 3, 4, 5], "init region must be 4 numbers [x, y, w, h], 2*N numbers (a polygon of N >= 3 points) or an "
     "100x120 mask; got 5 numbers"),
    ([], "init region must be 4 numbers [x, y, w, h], 2*N numbers (a polygon of N >= 3 points) or an 100x120 mask; "
     "got 0 numbers"),
    # polygons
    ([0, 0, 0, 0, 0, 0, 0, 0], "init polygon [0, 0, 0, 0, 0, 0, 0, 0] is degenerate (zero area): it has fewer than 3 "
     "distinct points"),
    ([0, 0, 10, 10, 20, 20, 30, 30], "init polygon [0, 0, 10, 10, 20, 20, 30, 30] is degenerate (zero area): its "
     "points are collinear"),
    ([1, 2, 3, 4, 5, 6], "init polygon [1, 2, 3, 4, 5, 6] is degenerate (zero area): its points are collinear"),
    ([0, 0, 0, 0, 10, 0, 20, 0], "init polygon [0, 0, 0, 0, 10, 0, 20, 0] is degenerate (zero area): its points are "
     "collinear"),
    ([5, 5, 9, 9, 5, 5, 9, 9], "init polygon [5, 5, 9, 9, 5, 5, 9, 9] is degenerate (zero area): it has fewer than 3 "
     "distinct points"),
    ([10, 10, np.nan, 10, 20, 20, 10, 20], "init polygon contains NaN or infinite values: [10, 10, nan, 10, 20, 20, "
     "10, 20]"),
    ([500, 500, 510, 500, 510, 510, 500, 510], "init region [500, 500] - [510, 510] lies entirely outside the 120x100 "
     "image"),
    ([0, 0, 300, 0, 300, 10, 0, 10], LARGER + "polygon [0, 0, 300, 0, 300, 10, 0, 10] has width 300, more than 2x the "
     "image width 120" + BOUND),
    # what the trax client makes of an empty mask for a polygon tracker
    ([F32_MAX, F32_MAX, -F32_MAX, F32_MAX, -F32_MAX, -F32_MAX, F32_MAX, -F32_MAX],
     LARGER + "polygon [3.40282e+38, 3.40282e+38, -3.40282e+38, 3.40282e+38, -3.40282e+38, -3.40282e+38, "
     "3.40282e+38, -3.40282e+38] has width 6.80565e+38, more than 2x the image width 120" + BOUND),
    # a thin quadrilateral whose preserve-area box is much larger than its extent
    ([0, 0, 200, 2, 0, 2.5, 200, 0.5], LARGER + "polygon (as a box) [-794.951, -10.4306, 1789.9, 23.3613] has width "
     "1789.9, more than 2x the image width 120" + BOUND),
    # masks
    (np.zeros((5, 5)), "init mask has shape (5, 5) but the image is 100x120"),
    (np.ones((100, 120, 3), np.uint8), "init mask has shape (100, 120, 3) but the image is 100x120"),
    (np.zeros((100, 120), np.uint8), "init mask is empty: no target (nonzero) pixel in the 100x120 mask"),
    (np.zeros((100, 120), bool), "init mask is empty: no target (nonzero) pixel in the 100x120 mask"),
    (_mask(-1, np.int32), "init mask values must be >= 0 (0 = background, > 0 = target), got a minimum of -1"),
    (_mask(0.5, np.float32), "init mask values must be whole numbers (0 = background, > 0 = target), got dtype "
     "float32 with values in [0, 0.5]"),
    (_mask(np.nan, np.float64), "init mask values must be whole numbers (0 = background, > 0 = target), got dtype "
     "float64 with values in [0, 0]"),
]


@pytest.mark.parametrize("region, message", REJECTED)
def test_bad_regions_are_refused_with_one_line(region, message):
    with pytest.raises(ValueError) as info:
        parse_region(region, SHAPE)
    assert str(info.value) == message
    assert "\n" not in str(info.value)


def test_box_values():
    r = parse_region([10, 20, 30, 40], SHAPE)
    assert r.pos_yx.tolist() == [40.0, 25.0] and r.size_hw.tolist() == [40.0, 30.0]
    assert r.box_xywh.tolist() == [10.0, 20.0, 30.0, 40.0] and r.box_xywh.dtype == np.float64
    assert r.polygon.tolist() == [[10, 20], [39, 20], [39, 59], [10, 59]] and not r.rotated and r.mask is None
    assert np.array_equal(parse_region(np.array([10, 20, 30, 40], np.int64), SHAPE).box_xywh, r.box_xywh)


def test_box_partly_outside_and_at_the_size_bound_are_accepted_unclipped():
    r = parse_region([-10, -5, 30, 20], SHAPE)
    assert r.pos_yx.tolist() == [5.0, 5.0] and r.box_xywh.tolist() == [-10, -5, 30, 20]
    r = parse_region([-60, -50, 240, 200], SHAPE)           # exactly 2x the image
    assert r.size_hw.tolist() == [200.0, 240.0] and r.pos_yx.tolist() == [50.0, 60.0]


def test_tiny_positive_box_is_accepted():
    assert parse_region([10, 10, 0.001, 0.5], SHAPE).size_hw.tolist() == [0.5, 0.001]


def test_four_point_polygon_is_used_exactly_as_given():
    poly = np.array([50.3, 40.1, 89.7, 41.2, 88.9, 69.4, 49.6, 68.8])
    r = parse_region(poly, SHAPE)
    assert np.array_equal(r.polygon, poly.reshape(4, 2)) and r.rotated
    box = polygon_to_box(poly[0::2], poly[1::2])
    assert np.array_equal(r.box_xywh, box) and np.array_equal(r.size_hw, box[[3, 2]])
    assert r.pos_yx.tolist() == [np.mean(poly[1::2]), np.mean(poly[0::2])]
    assert np.array_equal(parse_region(poly.reshape(4, 2), SHAPE).box_xywh, box)
    assert normalize_region(poly, SHAPE) is not poly and np.array_equal(normalize_region(poly, SHAPE), poly)


def _min_area_rect(points):
    return cv2.boxPoints(cv2.minAreaRect(np.asarray(points, np.float32).reshape(-1, 2))).astype(np.float64)


def test_triangle_with_a_repeated_vertex_is_its_minimum_area_rectangle():
    triangle = [10, 10, 50, 10, 10, 40]
    repeated = parse_region([10, 10, 10, 10, 50, 10, 10, 40], SHAPE)
    plain = parse_region(triangle, SHAPE)
    assert np.array_equal(plain.polygon, _min_area_rect(triangle)) and plain.rotated
    assert np.array_equal(repeated.polygon, plain.polygon) and np.array_equal(repeated.box_xywh, plain.box_xywh)
    assert repeated.size_hw == pytest.approx([33.94379472, 37.42566232])


def test_polygon_of_n_points_becomes_its_minimum_area_rectangle():
    pentagon = [[30, 10], [50, 25], [42, 50], [18, 50], [10, 25]]
    r = parse_region(pentagon, SHAPE)
    assert np.array_equal(r.polygon, _min_area_rect(pentagon))
    assert normalize_region(np.array(pentagon, float).reshape(-1), SHAPE).shape == (8,)


def test_all_ones_mask_gives_the_image_box():
    r = parse_region(np.ones(SHAPE[:2], np.uint8), SHAPE)
    assert r.box_xywh.tolist() == [0.0, 0.0, 120.0, 100.0] and r.size_hw.tolist() == [100.0, 120.0]
    assert r.pos_yx.tolist() == [50.0, 60.0] and r.mask.dtype == np.float32 and r.mask.all()


@pytest.mark.parametrize("mask", [_mask(1), _mask(255), _mask(True, bool), _mask(1.0, np.float32), _mask(7, np.int64)])
def test_mask_encodings_agree(mask):
    r = parse_region(mask, SHAPE)
    assert r.box_xywh.tolist() == [50.0, 40.0, 40.0, 30.0] and r.pos_yx.tolist() == [55.0, 70.0]
    assert np.array_equal(r.mask, _mask(1).astype(np.float32))
    assert normalize_region(mask, SHAPE) is mask


def test_validated_sizes_bound_the_segmentation_crop():
    """The first segmentation crop's side is ceil(4 sqrt(w h)): at most 4 * MAX_SIZE_FACTOR * sqrt(W H)."""
    h, w = SHAPE[:2]
    limit = 4 * MAX_SIZE_FACTOR * np.sqrt(w * h)
    for region in ([-60, -50, 240, 200], [0, 0, 240, 1], [-60, 50, 60, -50, 180, 50, 60, 150],
                   np.ones(SHAPE[:2], np.uint8)):
        box = parse_region(region, SHAPE).box_xywh
        assert segm_crop_window(box, 4.0)[2] <= np.ceil(limit)


# ------------------------------------------------------------------ through D3STracker.initialize
@pytest.fixture(scope="module")
def tracker():
    from d3s_vot import TrackerSpec, build_tracker

    return build_tracker(TrackerSpec(random_weights_seed=0, device="cpu"))


TINY = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)


@pytest.mark.parametrize("region, message", [
    ("1,2,3,4", NOT_NUMBERS + "str '1,2,3,4'"),
    ([0, 0, 1e300, 1e300], LARGER + "box [0, 0, 1e+300, 1e+300] has width 1e+300, more than 2x the image width 64"
     + BOUND),
    ([-1e6, -1e6, 2e6, 2e6], LARGER + "box [-1e+06, -1e+06, 2e+06, 2e+06] has width 2e+06, more than 2x the image "
     "width 64" + BOUND),
    (np.zeros((48, 64), np.uint8), "init mask is empty: no target (nonzero) pixel in the 48x64 mask"),
    ([1, 2, 3, 4, 5, 6, 7, 8], "init polygon [1, 2, 3, 4, 5, 6, 7, 8] is degenerate (zero area): its points are "
     "collinear"),
])
def test_initialize_refuses_bad_regions(tracker, region, message):
    with pytest.raises(ValueError) as info:
        tracker.initialize(TINY, region)
    assert str(info.value) == message
    with pytest.raises(RuntimeError, match="before initialize"):
        tracker.track(TINY)


def test_initialize_accepts_a_triangle_with_a_repeated_vertex(tracker):
    tracker.initialize(TINY, [10, 10, 10, 10, 50, 10, 10, 40])
    r = tracker.track(TINY)
    assert r.polygon is not None and r.polygon.shape == (4, 2) and np.all(np.isfinite(r.box))
