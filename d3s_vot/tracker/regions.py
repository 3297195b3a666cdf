"""Initial regions: validation and conversion to the tracker's internal state."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np


@dataclass(frozen=True)
class InitRegion:
    """The first frame's target, normalised.

    pos_yx / size_hw: DCF state (centre and size of the axis-aligned box).
    box_xywh: 0-based box used for the segmentation crop.
    polygon: 4 x 2 corners rasterised as the initial segmentation mask.
    rotated: polygon (VOT) mode -> rotated-rectangle outputs.
    mask: full-image init mask (VOS mode) or None.
    """

    pos_yx: np.ndarray
    size_hw: np.ndarray
    box_xywh: np.ndarray
    polygon: np.ndarray
    rotated: bool
    mask: Optional[np.ndarray] = None


def polygon_to_box(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Axis-aligned [x, y, w, h] with the polygon's centre and (rectangle) area ('preserve_area')."""
    cx, cy = np.mean(xs), np.mean(ys)
    x1, x2, y1, y2 = np.min(xs), np.max(xs), np.min(ys), np.max(ys)
    a1 = np.linalg.norm(np.array([xs[0], ys[0]]) - np.array([xs[1], ys[1]])) * \
        np.linalg.norm(np.array([xs[1], ys[1]]) - np.array([xs[2], ys[2]]))
    a2 = (x2 - x1) * (y2 - y1)
    s = np.sqrt(a1 / a2)
    w = s * (x2 - x1) + 1
    h = s * (y2 - y1) + 1
    return np.array([cx - w / 2, cy - h / 2, w, h])


def _check_finite(values: np.ndarray, what: str) -> None:
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{what} contains NaN or infinite values: {values.tolist()}")


def parse_region(region, image_shape) -> InitRegion:
    """Accepts a 0-based [x, y, w, h] box, an 8-number polygon (x1, y1, ..., x4, y4) or an H x W mask."""
    im_h, im_w = image_shape[:2]
    arr = np.asarray(region)
    if arr.ndim == 2 and arr.shape == (im_h, im_w):
        return _from_mask(arr)
    if arr.ndim == 2 and arr.shape == (4, 2):
        arr = arr.reshape(-1)
    if arr.ndim == 2:
        raise ValueError(f"init mask has shape {arr.shape} but the image is {im_h}x{im_w}")
    arr = arr.astype(np.float64).reshape(-1)
    if arr.size == 4:
        _check_finite(arr, "init box")
        x, y, w, h = arr
        if w <= 0 or h <= 0:
            raise ValueError(f"init box must have positive width and height, got w={w:g}, h={h:g}")
        _check_overlap(x, y, x + w, y + h, im_w, im_h)
        polygon = np.array([[x, y], [x + w - 1, y], [x + w - 1, y + h - 1], [x, y + h - 1]])
        return InitRegion(pos_yx=np.array([y + h / 2, x + w / 2]), size_hw=np.array([h, w]),
                          box_xywh=arr.copy(), polygon=polygon, rotated=False)
    if arr.size == 8:
        _check_finite(arr, "init polygon")
        xs, ys = arr[0::2], arr[1::2]
        with np.errstate(invalid="ignore", divide="ignore"):
            box = polygon_to_box(xs, ys)
        if not np.all(np.isfinite(box)) or box[2] <= 1 or box[3] <= 1:
            raise ValueError(f"init polygon {arr.tolist()} is degenerate (zero area)")
        _check_overlap(xs.min(), ys.min(), xs.max(), ys.max(), im_w, im_h)
        return InitRegion(pos_yx=np.array([np.mean(ys), np.mean(xs)]), size_hw=np.array([box[3], box[2]]),
                          box_xywh=box, polygon=arr.reshape(4, 2), rotated=True)
    raise ValueError(f"init region must be 4 numbers [x, y, w, h], 8 numbers (polygon) or an "
                     f"{im_h}x{im_w} mask; got {arr.size} numbers")


def _check_overlap(x1, y1, x2, y2, im_w, im_h) -> None:
    if x2 <= 0 or y2 <= 0 or x1 >= im_w or y1 >= im_h:
        raise ValueError(f"init region [{x1:g}, {y1:g}] - [{x2:g}, {y2:g}] lies entirely outside the "
                         f"{im_w}x{im_h} image")


def _from_mask(mask: np.ndarray) -> InitRegion:
    m = np.asarray(mask)
    if m.dtype == bool:
        m = m.astype(np.uint8)
    ys, xs = np.nonzero(m > 0)
    if ys.size == 0:
        raise ValueError("init mask is empty")
    x1, x2, y1, y2 = xs.min(), xs.max(), ys.min(), ys.max()
    w, h = float(x2 - x1 + 1), float(y2 - y1 + 1)
    x, y = float(x1), float(y1)
    polygon = np.array([[x, y], [x + w - 1, y], [x + w - 1, y + h - 1], [x, y + h - 1]])
    return InitRegion(pos_yx=np.array([y + h / 2, x + w / 2]), size_hw=np.array([h, w]),
                      box_xywh=np.array([x, y, w, h]), polygon=polygon, rotated=False,
                      mask=(m > 0).astype(np.float32))
