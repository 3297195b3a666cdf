"""The public tracker API on random weights: outputs, re-initialisation, determinism, bad input."""
import numpy as np
import pytest
import torch

from d3s_vot import D3SParams, D3STracker, TrackResult
from d3s_vot.weights import random_weights

# a cheap configuration for API tests: few optimiser iterations; the algorithm is otherwise unchanged
FAST = D3SParams(init_gn_iter=1, init_cg_iter=2, cg_iter=1, hard_negative_cg_iter=1)


def _frames(n=4, h=120, w=160, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, size=(h, w, 3), dtype=np.uint8)
    frames = []
    for t in range(n):
        f = base.copy()
        f[40:70, 50 + 2 * t:90 + 2 * t] = [200, 40, 40]
        frames.append(f)
    return frames


@pytest.fixture(scope="module")
def tracker():
    return D3STracker(random_weights(0), FAST, device="cpu")


def test_box_mode_outputs(tracker):
    frames = _frames()
    tracker.initialize(frames[0], [50, 40, 40, 30])
    res = tracker.track(frames[1])
    assert isinstance(res, TrackResult)
    assert res.polygon is None and res.box.shape == (4,) and np.all(np.isfinite(res.box))
    assert res.mask.shape == frames[0].shape[:2] and res.mask.dtype == np.uint8 and res.mask.max() == 1
    assert 0.0 <= res.score <= 1.0
    assert res.flag in ("none", "hard_negative", "uncertain", "not_found")


def test_polygon_mode_outputs(tracker):
    frames = _frames()
    tracker.initialize(frames[0], [50, 40, 89, 40, 89, 69, 50, 69])
    res = tracker.track(frames[1])
    assert res.polygon.shape == (4, 2) and np.all(np.isfinite(res.polygon))
    np.testing.assert_allclose(res.box[:2], res.polygon.min(axis=0))


def test_mask_initialisation(tracker):
    frames = _frames()
    mask = np.zeros(frames[0].shape[:2], np.uint8)
    mask[40:70, 50:90] = 1
    tracker.initialize(frames[0], mask)
    res = tracker.track(frames[1])
    assert res.polygon is None and np.all(np.isfinite(res.box))


def test_reinitialisation_gives_identical_runs(tracker):
    frames = _frames(5)
    runs = []
    for _ in range(2):
        tracker.initialize(frames[0], [50, 40, 40, 30])
        runs.append([tracker.track(f) for f in frames[1:]])
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a.box, b.box)
        np.testing.assert_array_equal(a.mask, b.mask)
        assert a.score == b.score


def test_deterministic_across_tracker_objects():
    frames = _frames(3)
    boxes = []
    for _ in range(2):
        t = D3STracker(random_weights(0), FAST, device="cpu")
        t.initialize(frames[0], [50, 40, 40, 30])
        boxes.append([t.track(f).box for f in frames[1:]])
    np.testing.assert_array_equal(np.array(boxes[0]), np.array(boxes[1]))


def test_track_before_initialize_raises():
    t = D3STracker(random_weights(0), FAST, device="cpu")
    with pytest.raises(RuntimeError, match="before initialize"):
        t.track(_frames(1)[0])


@pytest.mark.parametrize("image,message", [
    (np.zeros((60, 80), np.uint8), "grayscale"),
    (np.zeros((60, 80, 4), np.uint8), "RGBA"),
    (np.zeros((60, 80, 3), np.uint16), "16-bit"),
    (np.zeros((60, 80, 3), np.float32), "uint8"),
    ([[1, 2, 3]], "numpy array"),
])
def test_bad_images_are_rejected(tracker, image, message):
    with pytest.raises(ValueError, match=message):
        tracker.initialize(image, [10, 10, 20, 20])


def test_frame_size_change_is_rejected(tracker):
    frames = _frames(1)
    tracker.initialize(frames[0], [50, 40, 40, 30])
    with pytest.raises(ValueError, match="differs from the initialisation frame"):
        tracker.track(np.zeros((50, 50, 3), np.uint8))


def test_failed_initialize_leaves_no_stale_state():
    t = D3STracker(random_weights(0), FAST, device="cpu")
    frames = _frames(2)
    t.initialize(frames[0], [50, 40, 40, 30])
    with pytest.raises(ValueError):
        t.initialize(frames[0], [50, 40, 0, 30])
    with pytest.raises(RuntimeError, match="before initialize"):
        t.track(frames[1])


def test_small_frames_and_target_leaving_the_image(tracker):
    # frames much smaller than the 256/384 crops, and a target that moves out of view
    frames = [np.full((40, 50, 3), 90, np.uint8) for _ in range(4)]
    frames[0][10:25, 10:30] = 250
    tracker.initialize(frames[0], [10, 10, 20, 15])
    for f in frames[1:]:
        res = tracker.track(f)
        assert np.all(np.isfinite(res.box)) and np.all(np.isfinite(res.position))


def test_cuda_request_without_cuda_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("CUDA present: the error path cannot be exercised")   # only on GPU machines
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        D3STracker(random_weights(0), FAST, device="cuda")


def test_params_overrides_parse_strings():
    p = D3SParams().with_overrides({"learning_rate": "0.01", "use_segmentation": "false", "cg_iter": "3"})
    assert p.learning_rate == 0.01 and p.use_segmentation is False and p.cg_iter == 3
    with pytest.raises(ValueError, match="unknown D3SParams field"):
        D3SParams().with_overrides({"no_such": "1"})
    with pytest.raises(ValueError, match="expected int"):
        D3SParams().with_overrides({"cg_iter": "1.5"})
