"""The online D3S tracker (logic only; networks live in :mod:`d3s_vot.model`).

The names below are imported on first use, so that light modules of this package (``regions``: the
validation of init regions, numpy only) can be imported without torch, e.g. by the TraX entry before
its handshake.
"""
from importlib import import_module

_EXPORTS = {
    "D3STracker": ".d3s", "check_image": ".d3s", "resolve_device": ".d3s",
    "TrackResult": ".result", "MultiObjectTracker": ".multi", "disjoint_masks": ".multi",
    "FRAME_STAGES": ".stages", "INIT_STAGES": ".stages", "StageLog": ".stages", "StageRecorder": ".stages",
    "StageTimer": ".stages",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
