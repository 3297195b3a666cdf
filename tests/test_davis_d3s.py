"""D3S in VOS mode for DAVIS: the mask rule of the original, several objects over one set of networks,
and the runner end to end (random weights: the numbers mean nothing, the plumbing is what is tested)."""
from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest

from d3s_vot.factory import TrackerSpec, build_tracker
from d3s_vot.integrations.davis.evaluate import main
from d3s_vot.integrations.davis.labels import read_label_png
from d3s_vot.synthetic.davis import compose, write_davis
from d3s_vot.synthetic.scene import SceneConfig
from d3s_vot.tracker.multi import MultiObjectTracker, disjoint_masks

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tracker():
    # no first-frame augmentation: a much faster initialisation; the mask rule does not depend on it
    return build_tracker(TrackerSpec(random_weights_seed=0, device="cpu", params={"use_augmentation": False}))


def original_vos_mask(prob, pos_yx, size_hw, image_hw, area_factor):
    """The original D3S's DAVIS mask (pytracking/mask_to_disk.py save_mask with mask=None, called from
    segment_target on every frame of a mask-initialised sequence), re-stated here: the crop box is
    [x - w/2, y - h/2, w, h] around the segmentation centre, the probability map is resized to
    ceil(sqrt(w h) * factor) pixels (bilinear), thresholded > 0.5 and pasted with its top-left corner at
    round(box centre - side / 2), cut at the image borders."""
    box = [pos_yx[1] - size_hw[1] / 2, pos_yx[0] - size_hw[0] / 2, size_hw[1], size_hw[0]]
    side = math.ceil(math.sqrt(box[2] * box[3]) * area_factor)
    crop = (cv2.resize(prob.astype(np.float32), (side, side), interpolation=cv2.INTER_LINEAR) > 0.5).astype(np.uint8)
    img_h, img_w = image_hw
    left, top = int(round(box[0] + box[2] / 2 - side / 2)), int(round(box[1] + box[3] / 2 - side / 2))
    out = np.zeros((img_h, img_w), np.uint8)
    for y in range(max(top, 0), min(top + side, img_h)):          # pixel by pixel: no slicing arithmetic
        for x in range(max(left, 0), min(left + side, img_w)):
            out[y, x] = crop[y - top, x - left]
    clipped = left < 0 or top < 0 or left + side > img_w or top + side > img_h
    return out, clipped


def record_segmentation(tracker, monkeypatch):
    """Spy on the segmentation calls: the centre and size each crop was cut around, and the map it gave."""
    calls = []
    segment = tracker.segmenter.segment

    def spy(image, pos_yx, size_hw, *args, **kwargs):
        out = segment(image, pos_yx, size_hw, *args, **kwargs)
        calls.append((np.array(pos_yx, dtype=np.float64), np.array(size_hw, dtype=np.float64), out.prob.copy()))
        return out

    monkeypatch.setattr(tracker.segmenter, "segment", spy)
    return calls


def test_vos_mask_is_the_originals_rule_on_recorded_probability_maps(tracker, monkeypatch):
    calls = record_segmentation(tracker, monkeypatch)
    clipped_seen = set()
    rng = np.random.default_rng(4)
    # a small target inside a larger image (crop inside), and a synthetic scene (crop cut by the borders)
    small = [rng.integers(0, 256, (96, 112, 3), dtype=np.uint8) for _ in range(3)]
    small_mask = np.zeros((96, 112), np.uint8)
    small_mask[44:52, 50:58] = 1
    frames, labels = compose(seed=2, num_frames=3, num_objects=1, config=SceneConfig(width=64, height=48))
    for images, mask in ((small, small_mask), (frames, labels[0])):
        single = tracker.fork()
        single.initialize(images[0], mask)
        for image in images[1:]:
            result = single.track(image)
            pos, size, prob = calls[-1]
            expected, clipped = original_vos_mask(prob, pos, size, image.shape[:2],
                                                  tracker.params.segm_search_area_factor)
            assert result.mask.dtype == np.uint8 and np.array_equal(result.mask, expected)   # pixel-exact
            assert result.crop_mask is not None
            assert np.array_equal(result.mask_score() > 0.5, expected.astype(bool))
            clipped_seen.add(clipped)
    assert clipped_seen == {False, True}
    assert len(calls) == 4          # VOS mode segments every frame


def test_objects_are_independent_forks_and_overlaps_go_to_the_highest_probability(tracker):
    frames, labels = compose(seed=5, num_frames=3, num_objects=2, config=SceneConfig(width=64, height=48))
    multi = MultiObjectTracker(tracker)
    multi.initialize(frames[0], {k: (labels[0] == k).astype(np.uint8) for k in (1, 2)})
    alone = tracker.fork()
    alone.initialize(frames[0], (labels[0] == 2).astype(np.uint8))
    for frame in frames[1:]:
        results = multi.track(frame)
        solo = alone.track(frame)
        # object 2 tracked next to object 1 = object 2 tracked alone: the forks share nothing per sequence
        assert np.array_equal(results[2].mask, solo.mask) and np.allclose(results[2].position, solo.position)
        masks = disjoint_masks(results)
        one, two = results[1].mask.astype(bool), results[2].mask.astype(bool)
        s1, s2 = results[1].mask_score(), results[2].mask_score()
        assert not (masks[1].astype(bool) & masks[2].astype(bool)).any()
        assert np.array_equal(masks[1].astype(bool) | masks[2].astype(bool), one | two)
        both = one & two
        assert np.array_equal(masks[1].astype(bool)[both], (s1 >= s2)[both])      # ties: the first object
    assert both.any()           # random weights: the masks do overlap, so the rule was exercised


def test_d3s_end_to_end_on_synthetic_davis_2017(tmp_path, capsys):
    write_davis(tmp_path / "data", sequences=2, frames=5, objects=3, width=64, height=48, seed=7)
    results = tmp_path / "res"
    # one sequence (the other is in train.txt), three objects; no first-frame augmentation, for speed
    code = main(["--root", str(tmp_path / "data"), "--year", "2017", "--results", str(results), "--random-weights",
                 "0", "--device", "cpu", "--param", "use_augmentation=false", "--no-progress",
                 "--json", str(tmp_path / "s.json")])
    assert code == 0
    captured = capsys.readouterr()
    assert "RANDOM, UNTRAINED" in captured.err
    assert "synthetic-001_3" in captured.out and "all objects" in captured.out
    scores = json.loads((tmp_path / "s.json").read_text())
    assert scores["tracker"].startswith("D3S_random0_p") and scores["objects"] == 3 and scores["tracked_frames"] == 4
    assert 0 <= scores["overall"]["J-Mean"] <= 1 and 0 <= scores["overall"]["F-Mean"] <= 1
    assert scores["fps"] > 0 and scores["init_seconds_mean"] > 0
    for i in range(5):
        labels = read_label_png(results / "synthetic-001" / f"{i:05d}.png")
        assert labels.shape == (48, 64) and set(np.unique(labels)) <= {0, 1, 2, 3}
    assert json.loads((results / "run.json").read_text())["tracker"] == scores["tracker"]
