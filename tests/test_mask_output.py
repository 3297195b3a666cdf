"""The full-image mask follows the original D3S's mask-writing rule; several objects share one set of networks.

The rule (``mask_to_disk.save_mask`` of the original) is re-implemented here independently, pixel by
pixel: a full-image pixel (r, c) takes the resized score map's value at (r - y1, c - x1) when that lies
inside the crop, and is set when the value exceeds 0.5.
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from d3s_vot.factory import TrackerSpec, build_tracker
from d3s_vot.synthetic.scene import SceneConfig, generate_sequence
from d3s_vot.tracker.mask_output import CropMask, box_mode_crop_mask, region_mask, vos_crop_mask
from d3s_vot.tracker.multi import MultiObjectTracker, disjoint_masks, label_image


def reference_paste(score_crop: np.ndarray, x1: int, y1: int, side: int, hw) -> np.ndarray:
    resized = cv2.resize(score_crop.astype(np.float32), (side, side), interpolation=cv2.INTER_LINEAR)
    out = np.zeros(hw, np.uint8)
    for r in range(hw[0]):
        for c in range(hw[1]):
            u, v = r - y1, c - x1
            if 0 <= u < side and 0 <= v < side and resized[u, v] > 0.5:
                out[r, c] = 1
    return out


@pytest.mark.parametrize("window", [(3, 4, 20), (-7, -5, 24), (30, 25, 16), (-30, 0, 20), (50, 50, 10)])
def test_vos_rule_is_the_thresholded_resized_probability(window):
    prob = np.random.default_rng(sum(window) + 100).random((12, 12)).astype(np.float32)
    hw = (40, 45)
    expected = reference_paste(prob, *window, hw)
    assert np.array_equal(vos_crop_mask(prob, window).full_mask(hw), expected)


def test_box_mode_rule_keeps_the_probability_inside_the_dilated_contour():
    prob = np.full((30, 30), 0.9, np.float32)
    contour = np.zeros((30, 30), np.uint8)
    contour[10:15, 12:18] = 1
    crop = box_mode_crop_mask(prob, contour, (0, 0, 30))
    # dilated by a 7x7 box: rows 7..17, columns 9..20 keep 0.9, the rest is 0
    expected = np.zeros((30, 30), np.float32)
    expected[7:18, 9:21] = 0.9
    assert np.array_equal(crop.score, expected)
    assert np.array_equal(crop.full_mask((30, 30)), (expected > 0.5).astype(np.uint8))
    # a probability below the threshold inside the contour stays out
    prob[12, 14] = 0.3
    assert box_mode_crop_mask(prob, contour, (0, 0, 30)).full_mask((30, 30))[12, 14] == 0


def test_full_score_is_what_full_mask_thresholds():
    prob = np.random.default_rng(1).random((16, 16)).astype(np.float32)
    crop = CropMask(prob, (-3, 5, 21))
    score = crop.full_score((30, 25))
    assert score.dtype == np.float32
    assert np.array_equal(crop.full_mask((30, 25)), (score > 0.5).astype(np.uint8))


def test_region_fallback_rasterises_the_box_and_ignores_non_finite():
    mask = region_mask((10, 10), None, np.array([2.0, 3.0, 4.0, 2.0]))
    assert mask.sum() == 15 and mask[3:6, 2:7].all()
    assert not region_mask((10, 10), None, np.array([np.nan, 3.0, 4.0, 2.0])).any()


# a cheap initialisation (no augmented samples, one Gauss-Newton step): these tests are about masks and
# object bookkeeping, not the DCF
CHEAP = {"use_augmentation": False, "init_gn_iter": 1, "init_cg_iter": 5}


@pytest.fixture(scope="module")
def tracker():
    return build_tracker(TrackerSpec(random_weights_seed=3, device="cpu", params=CHEAP))


@pytest.fixture(scope="module")
def sequence():
    return generate_sequence(seed=8, num_frames=5, config=SceneConfig(width=160, height=120))


def test_tracker_vos_mask_is_the_rule_applied_to_its_probability_map(tracker, sequence):
    tracker.initialize(sequence.frames[0], sequence.masks[0])
    for frame in sequence.frames[1:]:
        result = tracker.track(frame)
        assert tracker.debug["segm_called"]          # VOS mode segments every frame
        x1, y1, side = result.crop_mask.window
        expected = reference_paste(tracker.debug["segm_prob"], x1, y1, side, frame.shape[:2])
        assert np.array_equal(result.mask, expected)


def test_forks_share_networks_and_track_like_separate_trackers(tracker, sequence):
    twin = tracker.fork()
    assert twin.segm_net is tracker.segm_net and twin.dcf_net is tracker.dcf_net and not twin.initialized
    boxes = {"a": sequence.boxes[0], "b": np.array([10.0, 10.0, 30.0, 24.0])}
    multi = MultiObjectTracker(tracker)
    multi.initialize(sequence.frames[0], boxes)
    alone = {key: tracker.fork() for key in boxes}
    for key, t in alone.items():
        t.initialize(sequence.frames[0], boxes[key])
    for i, frame in enumerate(sequence.frames[1:], start=1):
        if i == 2:      # restart object b only; a keeps its state
            multi.reinitialize(frame, {"b": sequence.boxes[i]})
            alone["b"].initialize(frame, sequence.boxes[i])
            continue
        got = multi.track(frame)
        assert list(got) == ["a", "b"]
        for key in boxes:
            want = alone[key].track(frame)
            assert np.array_equal(got[key].box, want.box) and np.array_equal(got[key].mask, want.mask)


def test_multi_object_errors_name_the_object(tracker, sequence):
    multi = MultiObjectTracker(tracker)
    with pytest.raises(RuntimeError, match="before initialize"):
        multi.track(sequence.frames[0])
    with pytest.raises(ValueError, match="no objects to track"):
        multi.initialize(sequence.frames[0], {})
    with pytest.raises(ValueError, match=r"^object 7: "):
        multi.initialize(sequence.frames[0], {1: sequence.boxes[0], 7: [0, 0, np.nan, 4]})
    assert multi.object_ids == [1]


class _Result:
    def __init__(self, mask, score):
        self.mask, self._score = mask, score

    def mask_score(self):
        return self._score


def test_disjoint_masks_give_each_pixel_to_the_highest_score():
    a = _Result(np.array([[1, 1, 0]], np.uint8), np.array([[0.9, 0.6, 0.0]], np.float32))
    b = _Result(np.array([[1, 1, 1]], np.uint8), np.array([[0.7, 0.6, 0.8]], np.float32))
    got = disjoint_masks({"a": a, "b": b})
    assert got["a"].tolist() == [[1, 1, 0]]      # 0.9 beats 0.7; the 0.6 tie goes to the earlier object
    assert got["b"].tolist() == [[0, 0, 1]]
    assert label_image(got, {"a": 3, "b": 5}).tolist() == [[3, 3, 5]]
    assert disjoint_masks({}) == {}
