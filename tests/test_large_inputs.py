"""Long and large inputs: a 300-frame run keeps its memory flat, a 4000x3000 frame tracks.

Both are slow (CPU, real network sizes) and run in CI with the slow marker.
"""
from __future__ import annotations

import gc
import tracemalloc

import numpy as np
import pytest

from d3s_vot.factory import TrackerSpec, build_tracker
from d3s_vot.synthetic.scene import SceneConfig, generate_sequence


def _rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * 4096


@pytest.mark.slow
def test_300_frames_at_flat_memory():
    """Every per-sequence buffer of D3S is bounded (sample memory, score and pixel histories): after a
    warm-up, 200 more frames add neither Python/numpy allocations nor resident memory. Half-size crops
    (DCF 128, segmentation 192) make the run 4x cheaper; the buffers are the same."""
    seq = generate_sequence(seed=3, num_frames=300, config=SceneConfig(width=160, height=120))
    small = {"image_sample_size": 128, "segm_output_sz": 192}
    tracker = build_tracker(TrackerSpec(random_weights_seed=1, device="cpu", params=small))
    tracker.initialize(seq.frames[0], seq.boxes[0])
    for frame in seq.frames[1:100]:
        tracker.track(frame)
    gc.collect()
    rss_before = _rss_bytes()
    tracemalloc.start()
    traced_before = tracemalloc.get_traced_memory()[0]
    for frame in seq.frames[100:]:
        result = tracker.track(frame)
    gc.collect()
    traced_growth = tracemalloc.get_traced_memory()[0] - traced_before
    tracemalloc.stop()
    rss_growth = _rss_bytes() - rss_before
    assert np.all(np.isfinite(result.box))
    assert traced_growth < 2 * 2**20, f"numpy/Python memory grew by {traced_growth / 2**20:.1f} MiB over 200 frames"
    assert rss_growth < 64 * 2**20, f"resident memory grew by {rss_growth / 2**20:.1f} MiB over 200 frames"


@pytest.mark.slow
def test_a_4000x3000_frame_tracks():
    """A 12-megapixel frame: the crops are resampled to fixed sizes, the full-image mask has the
    frame's size, and the box stays on the target's scale."""
    rng = np.random.default_rng(0)
    frames = []
    for shift in range(4):
        image = rng.integers(0, 60, size=(3000, 4000, 3), dtype=np.uint8)
        image[1400:1700, 1800 + 10 * shift:2200 + 10 * shift] = (220, 40, 40)   # a red 400x300 target
        frames.append(image)
    tracker = build_tracker(TrackerSpec(random_weights_seed=1, device="cpu"))
    tracker.initialize(frames[0], [1800, 1400, 400, 300])
    for frame in frames[1:]:
        result = tracker.track(frame)
        assert result.mask.shape == (3000, 4000) and result.mask.dtype == np.uint8
        assert np.all(np.isfinite(result.box))
        x, y, w, h = result.box
        assert 0 <= x < 4000 and 0 <= y < 3000 and 40 < w < 4000 and 30 < h < 3000
