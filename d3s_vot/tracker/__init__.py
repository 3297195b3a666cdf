"""The online D3S tracker (logic only; networks live in :mod:`d3s_vot.model`)."""
from .d3s import D3STracker, check_image, resolve_device
from .result import TrackResult
from .stages import FRAME_STAGES, INIT_STAGES, StageLog, StageRecorder, StageTimer

__all__ = ["D3STracker", "FRAME_STAGES", "INIT_STAGES", "StageLog", "StageRecorder", "StageTimer", "TrackResult",
           "check_image", "resolve_device"]
