"""d3s_vot: the D3S tracker (Lukezic, Matas, Kristan, CVPR 2020) for the VOT toolkit, GOT-10k and TrackingNet.

Public API::

    from d3s_vot import TrackerSpec, build_tracker
    tracker = build_tracker(TrackerSpec(weights=None, device=None, params={"cg_iter": "3"}))
    tracker.initialize(rgb_frame, [x, y, w, h])      # or an 8-number polygon, or an H x W mask
    result = tracker.track(next_rgb_frame)           # TrackResult: box, polygon, mask, score, ...
"""
from .factory import TrackerBuildError, TrackerSpec, build_tracker
from .params import D3SParams

__version__ = "0.1.0"
__all__ = ["D3STracker", "D3SParams", "TrackResult", "TrackerBuildError", "TrackerSpec", "build_tracker",
           "load_weights", "__version__"]


def __getattr__(name):
    # heavy imports (torch, cv2) only when the tracker or the weights are actually used
    if name in ("D3STracker", "TrackResult"):
        from . import tracker
        return getattr(tracker, name)
    if name == "load_weights":
        from .weights import load_weights
        return load_weights
    raise AttributeError(f"module 'd3s_vot' has no attribute {name!r}")
