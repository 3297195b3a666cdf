"""Mask -> box: the rectangle D3S reports for a segmentation mask.

A rotated fit estimates the orientation with an ellipse fit (falling back to the minimum-area
rectangle when the ellipse is implausibly large), rotates the mask upright and greedily shrinks
an axis-aligned box that trades covered mask pixels against covered background (background
weighted 0.25, at least 90% of the mask kept). Everything that affects the result (OpenCV's
contour, ellipse and warp conventions, the greedy edge order) follows the original.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import cv2
import numpy as np

MIN_CONTOUR_AREA = 50.0
BINARISE_THRESHOLD = 0.3
ELLIPSE_AXIS_LIMIT = 0.6
BACKGROUND_WEIGHT = 0.25
MIN_KEPT_FRACTION = 0.9


def external_contours(binary: np.ndarray) -> Tuple[list, List[float]]:
    """External contours of a uint8 mask and their areas (OpenCV 3 and 4/5 return conventions)."""
    found = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    contours = found[-2]
    return list(contours), [cv2.contourArea(c) for c in contours]


def _box_score(integral: np.ndarray, y1: int, x1: int, y2: int, x2: int, n_total: float) -> float:
    """Weighted IoU of box [x1..x2] x [y1..y2] (inclusive) with the mask; -1 when invalid."""
    if not (y1 < integral.shape[0] and x1 < integral.shape[1] and y2 >= 0 and x2 >= 0):
        return -1.0
    inside = float(integral[y2 + 1, x2 + 1] - integral[y2 + 1, x1] - integral[y1, x2 + 1] + integral[y1, x1])
    if inside / n_total < MIN_KEPT_FRACTION:
        return -1.0
    area = float((y2 - y1 + 1) * (x2 - x1 + 1))
    union = BACKGROUND_WEIGHT * (area - inside) + inside + (n_total - inside)
    if union < 1e-3:
        return -1.0
    return inside / union


def fit_axis_aligned(mask: np.ndarray, optimise: bool = True) -> Optional[List[int]]:
    """[x1, y1, x2, y2] (inclusive) around the largest contour, greedily tightened if ``optimise``;
    None for an empty mask."""
    contours, areas = external_contours(mask)
    if not contours:
        return None
    points = contours[int(np.argmax(areas))].reshape(-1, 2)
    x1 = max(int(points[:, 0].min()), 0)
    y1 = max(int(points[:, 1].min()), 0)
    x2 = min(int(points[:, 0].max()), mask.shape[1] - 1)
    y2 = min(int(points[:, 1].max()), mask.shape[0] - 1)
    if not optimise:
        return [x1, y1, x2, y2]
    n_total = float(np.sum(mask))
    integral = cv2.integral(mask)
    best = -1.0   # the starting box is never scored, so the first valid move is always taken
    while True:
        changed = False
        for move in ("top", "left", "bottom", "right"):
            cand = {"top": (y1 + 1, x1, y2, x2), "left": (y1, x1 + 1, y2, x2),
                    "bottom": (y1, x1, y2 - 1, x2), "right": (y1, x1, y2, x2 - 1)}[move]
            score = _box_score(integral, *cand, n_total)
            if score > best:
                y1, x1, y2, x2 = cand
                best = score
                changed = True
        if not changed:
            return [x1, y1, x2, y2]


def _corners(box: List[int]) -> np.ndarray:
    x1, y1, x2, y2 = box
    return np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], dtype=np.float64)


def fit_box_to_mask(mask: np.ndarray, rotated: bool) -> Optional[np.ndarray]:
    """4 x 2 corners (x, y) of the box fitted to ``mask`` (crop coordinates), or None when the
    mask has no contour larger than 50 pixels."""
    binary = (mask > BINARISE_THRESHOLD).astype(np.uint8)
    contours, areas = external_contours(binary)
    if not contours or max(areas) <= MIN_CONTOUR_AREA:
        return None
    points = contours[int(np.argmax(areas))].reshape(-1, 2)
    if not rotated:
        return _corners(fit_axis_aligned(binary, optimise=False))  # type: ignore[arg-type]
    (cx, cy), axes, angle = cv2.fitEllipse(points)
    if axes[0] > binary.shape[0] * ELLIPSE_AXIS_LIMIT or axes[1] > binary.shape[1] * ELLIPSE_AXIS_LIMIT:
        (cx, cy), _, angle = cv2.minAreaRect(points)
    R = cv2.getRotationMatrix2D((cx, cy), angle, 1.0)
    upright = cv2.warpAffine(binary, R, (binary.shape[1], binary.shape[0]))
    box = fit_axis_aligned(upright, optimise=True)
    if box is None:
        return None
    corners = _corners(box)
    R_inv = cv2.invertAffineTransform(R)
    homog = np.concatenate([corners, np.ones((4, 1))], axis=1)
    return (R_inv @ homog[:, :, None]).reshape(-1, 2)
