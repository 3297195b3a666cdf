"""A DCF filter that is exactly zero (``init_gn_iter=0``) gives max score 0: "target not found", no ZeroDivisionError."""
from __future__ import annotations

import math

from d3s_vot import D3STracker
from d3s_vot.params import D3SParams
from d3s_vot.synthetic.scene import SceneConfig, generate_sequence
from d3s_vot.weights import random_weights


def test_zero_max_score_is_target_not_found():
    seq = generate_sequence(0, 8, SceneConfig(width=160, height=120))
    tracker = D3STracker(random_weights(0), D3SParams(init_gn_iter=0), device="cpu")
    tracker.initialize(seq.frames[0], seq.polygons[0])
    results = [tracker.track(frame) for frame in seq.frames[1:]]  # frames 2..8: the uncertainty starts at 6
    assert [r.max_score for r in results] == [0.0] * 7
    assert [r.score for r in results] == [0.0] * 7
    assert [r.flag for r in results] == ["none"] * 7
    assert [r.uncertainty for r in results] == [0.0] * 4 + [math.inf] * 3
    assert not any(r.segmentation_used for r in results)
    assert all(r.box.tolist() == results[-1].box.tolist() for r in results[4:])  # no state update once not found
