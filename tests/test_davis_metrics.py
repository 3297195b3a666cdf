"""DAVIS J and F: hand-computed cases and a second, independent implementation written here.

The second implementation follows the definitions (davisvideochallenge/davis2017-evaluation,
davis2017/metrics.py) with other algorithms: per-pixel loops for the boundary, explicit pairwise
distances instead of a morphological dilation, plain Python sums for J.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from d3s_vot.integrations.davis.metrics import (boundary_f, boundary_map, boundary_radius, decay_bins, disk,
                                                region_jaccard, statistics)


# --- a second implementation, from the definitions ----------------------------------------------------

def reference_boundary(mask):
    """A pixel is on the boundary when it differs from its right, lower or lower-right neighbour
    (neighbours outside the image are never compared)."""
    h, w = mask.shape
    out = np.zeros((h, w), bool)
    for y in range(h):
        for x in range(w):
            for dy, dx in ((0, 1), (1, 0), (1, 1)):
                if y + dy < h and x + dx < w and bool(mask[y, x]) != bool(mask[y + dy, x + dx]):
                    out[y, x] = True
    return out


def reference_f(truth, prediction, tolerance=0.008):
    h, w = truth.shape
    radius = math.ceil(tolerance * math.sqrt(h * h + w * w)) if tolerance < 1 else math.ceil(tolerance)
    bt, bp = np.argwhere(reference_boundary(truth)), np.argwhere(reference_boundary(prediction))
    if len(bt) == 0 and len(bp) == 0:
        return 1.0
    if len(bt) == 0 or len(bp) == 0:
        return 0.0
    d2 = ((bt[:, None, :] - bp[None, :, :]) ** 2).sum(axis=2)     # squared distances, truth x prediction
    recall = np.mean(d2.min(axis=1) <= radius * radius)
    precision = np.mean(d2.min(axis=0) <= radius * radius)
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def reference_j(truth, prediction):
    inter = union = 0
    for t, p in zip(truth.ravel().tolist(), prediction.ravel().tolist()):
        inter += bool(t) and bool(p)
        union += bool(t) or bool(p)
    return 1.0 if union == 0 else inter / union


def random_blob(rng, shape):
    """A union of a few random ellipses, sometimes touching the border, sometimes empty."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    mask = np.zeros(shape, bool)
    for _ in range(rng.integers(0, 4)):
        cy, cx = rng.uniform(-0.1, 1.1) * h, rng.uniform(-0.1, 1.1) * w
        ry, rx = rng.uniform(1, h / 3), rng.uniform(1, w / 3)
        mask |= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    return mask


# --- hand-computed cases ------------------------------------------------------------------------------

def test_jaccard_by_hand():
    truth = np.zeros((4, 5), bool)
    truth[1:3, 1:3] = True                     # 4 pixels
    prediction = np.zeros((4, 5), bool)
    prediction[1:3, 1:4] = True                # 6 pixels, containing the 4
    assert region_jaccard(truth, prediction) == 4 / 6
    assert region_jaccard(prediction, truth) == 4 / 6
    assert region_jaccard(truth, ~truth) == 0.0
    # empty on both sides: a perfect 1 (an object absent in a frame and correctly not predicted)
    empty = np.zeros((4, 5), bool)
    assert region_jaccard(empty, empty) == 1.0
    assert region_jaccard(empty, truth) == 0.0 and region_jaccard(truth, empty) == 0.0


def test_boundary_of_a_pixel_and_a_square_by_hand():
    one = np.zeros((5, 5), bool)
    one[2, 2] = True
    # the pixel and its upper, left and upper-left neighbours: the contour moved half a pixel to the origin
    assert sorted(map(tuple, np.argwhere(boundary_map(one)))) == [(1, 1), (1, 2), (2, 1), (2, 2)]
    square = np.zeros((6, 6), bool)
    square[1:4, 1:4] = True
    expected = {(0, 0), (0, 1), (0, 2), (0, 3), (1, 0), (1, 3), (2, 0), (2, 3), (3, 0), (3, 1), (3, 2), (3, 3)}
    assert set(map(tuple, np.argwhere(boundary_map(square)))) == expected
    # the image border is no boundary: a full mask has none, a half mask only its inner edge
    assert not boundary_map(np.ones((4, 6), bool)).any()
    half = np.zeros((4, 6), bool)
    half[:, :3] = True
    assert set(map(tuple, np.argwhere(boundary_map(half)))) == {(y, 2) for y in range(4)}


def test_boundary_radius_and_disk():
    assert boundary_radius((480, 854)) == 8            # DAVIS 480p: ceil(0.008 * 979.6)
    assert boundary_radius((100, 100)) == 2            # ceil(1.13)
    assert boundary_radius((75, 100)) == 1             # diagonal 125: exactly 1.0, not rounded up
    assert boundary_radius((10, 10), tolerance=3) == 3  # >= 1: pixels
    kernel = disk(2)
    assert kernel.shape == (5, 5) and kernel.sum() == 13
    assert kernel[2, 0] == 1 and kernel[0, 1] == 0     # distance 2 inside, sqrt(5) outside


def test_f_tolerance_edges_by_hand():
    # 100 x 100: radius 2. Truth's boundary is column 49, the prediction's column 49 + shift.
    truth = np.zeros((100, 100), bool)
    truth[:, :50] = True
    for shift, expected in ((0, 1.0), (1, 1.0), (2, 1.0), (3, 0.0)):
        prediction = np.zeros((100, 100), bool)
        prediction[:, :50 + shift] = True
        assert boundary_f(truth, prediction) == expected, shift
    # diagonal offsets: (2, 0) is within radius 2, (2, 1) (distance sqrt 5) is not
    a = np.zeros((100, 100), bool)
    a[50, 50] = True
    near, far = np.zeros_like(a), np.zeros_like(a)
    near[52, 50] = True
    far[52, 51] = True
    assert boundary_f(a, near) == 1.0
    # truth boundary {49,50}x{49,50}, far's {51,52}x{50,51}: matched pairs need distance <= 2
    bt, bp = np.argwhere(boundary_map(a)), np.argwhere(boundary_map(far))
    hits_p = sum(any(((p - t) ** 2).sum() <= 4 for t in bt) for p in bp)
    hits_t = sum(any(((p - t) ** 2).sum() <= 4 for p in bp) for t in bt)
    precision, recall = hits_p / 4, hits_t / 4
    assert (hits_p, hits_t) == (3, 3)
    assert boundary_f(a, far) == pytest.approx(2 * precision * recall / (precision + recall), abs=0)


def test_f_empty_and_full_masks():
    empty, full = np.zeros((8, 9), bool), np.ones((8, 9), bool)
    blob = np.zeros((8, 9), bool)
    blob[2:5, 3:6] = True
    assert boundary_f(empty, empty) == 1.0            # no boundary on either side
    assert boundary_f(blob, empty) == 0.0             # precision 1, recall 0
    assert boundary_f(empty, blob) == 0.0             # precision 0, recall 1
    assert boundary_f(full, full) == 1.0              # a full mask has no boundary either
    assert boundary_f(full, blob) == 0.0
    assert boundary_f(blob, blob) == 1.0


def test_shapes_must_match():
    with pytest.raises(ValueError, match="one shape"):
        region_jaccard(np.zeros((3, 4)), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="one shape"):
        boundary_f(np.zeros((3, 4)), np.zeros((3, 5)))


# --- the second implementation on random masks ----------------------------------------------------------

@pytest.mark.parametrize("shape,tolerance", [((24, 32), 0.008), ((120, 160), 0.008), ((30, 41), 0.1),
                                             ((17, 23), 3.0)])
def test_matches_a_second_implementation_on_random_masks(shape, tolerance):
    rng = np.random.default_rng(sum(shape))
    for _ in range(12):
        truth, prediction = random_blob(rng, shape), random_blob(rng, shape)
        if rng.random() < 0.3:                        # near misses, where the tolerance matters
            prediction = np.roll(truth, tuple(rng.integers(-3, 4, 2)), (0, 1))
        assert np.array_equal(boundary_map(truth), reference_boundary(truth))
        assert abs(region_jaccard(truth, prediction) - reference_j(truth, prediction)) <= 1e-12
        assert abs(boundary_f(truth, prediction, tolerance) - reference_f(truth, prediction, tolerance)) <= 1e-12


# --- per-object statistics ------------------------------------------------------------------------------

def test_statistics_by_hand():
    values = [1, 0, 1, 0, 1, 0, 1, 0]
    # borders round(linspace(1, 8, 5)) - 1 = [0, 2, 4, 5, 7] (4.5 rounds up): bins [0..2] ... [5..7]
    assert decay_bins(8) == ((0, 2), (2, 4), (4, 5), (5, 7))
    stats = statistics(values)
    assert stats.mean == 0.5 and stats.recall == 0.5
    assert stats.decay == pytest.approx(2 / 3 - 1 / 3, abs=1e-15)
    assert statistics([0.5, 0.51]).recall == 0.5       # strictly above 0.5
    one = statistics([0.7])                            # a 3-frame sequence scores one frame: no decay
    assert (one.mean, one.recall, one.decay) == (0.7, 1.0, 0.0)
    assert all(math.isnan(v) for v in (statistics([]).mean, statistics([]).decay))
    # decreasing quality decays: first quartile mean minus last quartile mean
    assert statistics(np.linspace(1, 0, 9)).decay == pytest.approx(np.mean([1, 0.875, 0.75]) - np.mean([0.25, 0.125, 0]))
