"""What :meth:`D3STracker.track` returns for one frame."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np


@dataclass(frozen=True)
class TrackResult:
    """One frame's output.

    box: 0-based ``[x, y, w, h]`` (float) of the target; in polygon mode the axis-aligned hull of
        the polygon.
    polygon: ``(4, 2)`` float array of rotated-rectangle corners (0-based ``x, y``) in polygon
        (VOT) mode, ``None`` in box mode.
    mask: full-image ``H x W`` uint8 mask (0/1) of the target (empty when segmentation found none).
    score: confidence in ``[0, 1]``: the DCF peak relative to its running mean, squashed,
        ``clip(max_score / mean(score history), 0, 1)`` = ``clip(1 / uncertainty, 0, 1)``, and 0
        when the target was not found. 1 on the first frames before the uncertainty is defined.
    region: what the original tracker returned: 8 numbers (polygon mode, from the segmentation),
        or 4 numbers ``[x, y, w, h]`` (box mode, or the fallback box when segmentation failed),
        in the original's conventions (see ``docs/core.md``).
    """

    box: np.ndarray
    polygon: Optional[np.ndarray]
    mask: np.ndarray
    score: float
    region: np.ndarray
    # internals for tests and analysis
    position: np.ndarray          # (y, x) after the frame
    target_size: np.ndarray       # (h, w) after the frame
    scale: float                  # target_scale after the frame
    flag: str                     # 'none', 'hard_negative', 'uncertain', 'not_found'
    uncertainty: float
    max_score: float
    segmentation_used: bool       # the segmentation's region was used for the output
