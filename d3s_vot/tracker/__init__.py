"""The online D3S tracker (logic only; networks live in :mod:`d3s_vot.model`)."""
from .d3s import D3STracker, check_image, resolve_device
from .result import TrackResult

__all__ = ["D3STracker", "TrackResult", "check_image", "resolve_device"]
