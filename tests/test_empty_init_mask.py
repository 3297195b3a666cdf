"""An empty first-frame segmentation leaves no pixel history: later masks are 'infinitely' far from
it (no scale or position from the segmentation), without numpy's divide-by-zero warning."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from d3s_vot.factory import TrackerSpec, build_tracker
from d3s_vot.synthetic.scene import SceneConfig, generate_sequence


@pytest.mark.slow
def test_empty_first_frame_mask_tracks_without_warnings():
    # init threshold 1.0: no probability exceeds it, the first-frame mask is empty; segm threshold 0.0:
    # every later crop is one large contour, so the pixel-history comparison runs on every frame
    spec = TrackerSpec(random_weights_seed=2, device="cpu",
                       params={"init_segm_mask_thr": 1.0, "segm_mask_thr": 0.0})
    tracker = build_tracker(spec)
    seq = generate_sequence(seed=4, num_frames=4, config=SceneConfig(width=160, height=120))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tracker.initialize(seq.frames[0], seq.boxes[0])
        results = [tracker.track(frame) for frame in seq.frames[1:]]
    for result in results:
        assert tracker.debug["segm_called"]
        assert not result.segmentation_used          # pixels_ratio = inf: no region from the mask
        assert np.all(np.isfinite(result.box)) and result.mask.any()
