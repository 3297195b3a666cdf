"""What :meth:`D3STracker.track` returns for one frame."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from .mask_output import CropMask


@dataclass(frozen=True)
class TrackResult:
    """One frame's output.

    box: 0-based ``[x, y, w, h]`` (float) of the target; in polygon mode the axis-aligned hull of
        the polygon.
    polygon: ``(4, 2)`` float array of rotated-rectangle corners (0-based ``x, y``) in polygon
        (VOT) mode, ``None`` in box mode.
    mask: full-image ``H x W`` uint8 mask (0/1) by the original D3S's mask-writing rule
        (:mod:`d3s_vot.tracker.mask_output`): in VOS mode (mask initialisation) the foreground
        probability > 0.5 on every frame; in box/polygon mode the probability inside the dilated
        largest contour > 0.5; the rasterised output region on frames without a segmentation mask.
    score: confidence in ``[0, 1]``: the DCF peak relative to the running mean of recent peaks,
        ``clip(max_score / mean(score history), 0, 1)`` (the inverse of D3S's uncertainty, defined
        from the first frame on), and 0 when the target was not found.
    region: the reported region, 0-based: the 8 polygon numbers when the segmentation's rotated
        rectangle gave this frame's output, else the 4 numbers of ``box``.
    original_output: exactly what the original tracker returned, for parity checks: 8 numbers
        (polygon mode, from the segmentation), 4 numbers ``[min x + 1, min y + 1, w, h]`` (box mode,
        from the segmentation; 1-based like the original's interface) or the 0-based fallback box
        ``[x, y, w, h]`` from the DCF state when the segmentation was not used.
    """

    box: np.ndarray
    polygon: Optional[np.ndarray]
    mask: np.ndarray
    score: float
    region: np.ndarray
    original_output: np.ndarray
    # internals for tests and analysis
    position: np.ndarray          # (y, x) after the frame
    target_size: np.ndarray       # (h, w) after the frame
    scale: float                  # target_scale after the frame
    flag: str                     # 'none', 'hard_negative', 'uncertain', 'not_found'
    uncertainty: float
    max_score: float
    segmentation_used: bool       # the segmentation's region was used for the output
    crop_mask: Optional[CropMask] = None   # the score map ``mask`` came from (None: the rasterised region)

    def mask_score(self) -> np.ndarray:
        """Full-image float32 map whose ``> 0.5`` is ``mask``: the resized segmentation score (0 outside
        the crop), or the 0/1 rasterised region. Several objects' masks are made disjoint by the
        highest score (:mod:`d3s_vot.tracker.multi`)."""
        if self.crop_mask is None:
            return self.mask.astype(np.float32)
        return self.crop_mask.full_score(self.mask.shape)
