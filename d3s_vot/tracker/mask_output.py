"""The full-image mask D3S reports: the original's mask-writing rule, in one place for every mode.

The original D3S wrote a frame's mask (``mask_to_disk.save_mask``, used for DAVIS and the natural
recipe for a VOT2020-style mask output) from the segmentation's foreground probability map ``p``
(``S x S``, the 384x384 crop):

* **VOS mode** (initialised from a mask, e.g. DAVIS): the score map is ``p`` itself, on every
  segmentation call -- no contour selection, no hole filling, and also when no contour is large
  enough to give a region.
* **Box/polygon mode** (VOT): the score map is ``p`` times the largest external contour of
  ``p > segm_mask_thr`` (filled) dilated with a 7x7 box; only when that contour's area exceeds the
  minimum contour area (otherwise the original wrote no mask).

The score map is resized bilinearly to the crop's side in image pixels, thresholded at 0.5 (strictly
greater) and pasted into a zero image with its top-left at the crop window's corner, clipped to the
image. Frames without such a mask (the segmentation was not run, or gave no contour in box mode) get
the rasterised output region instead (:func:`region_mask`).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Optional, Tuple

import cv2
import numpy as np

OUTPUT_THRESHOLD = 0.5      # on the resized score map
DILATION_SIZE = 7           # box-mode contour dilation (pixels of the crop)


@dataclass(frozen=True)
class CropMask:
    """A segmentation's score map on its crop and where the crop lies in the image."""
    score: np.ndarray                   # S x S float32, in [0, 1]
    window: Tuple[int, int, int]        # x1, y1, side of the crop in image pixels

    @functools.cached_property
    def resized(self) -> np.ndarray:
        """The score map at the crop's size in image pixels (side x side, float32), resized once for
        both :meth:`full_mask` and :meth:`full_score`."""
        side = self.window[2]
        return cv2.resize(self.score, (side, side), interpolation=cv2.INTER_LINEAR)

    def paste(self, values: np.ndarray, hw: Tuple[int, int], dtype=np.uint8) -> np.ndarray:
        """``values`` (side x side) in a zero image of size ``hw``, clipped at the borders."""
        x1, y1, side = self.window
        out = np.zeros(hw, dtype=dtype)
        xa, ya = max(x1, 0), max(y1, 0)
        xb, yb = min(x1 + side, hw[1]), min(y1 + side, hw[0])
        if xb > xa and yb > ya:
            out[ya:yb, xa:xb] = values[ya - y1:yb - y1, xa - x1:xb - x1]
        return out

    def full_mask(self, hw: Tuple[int, int]) -> np.ndarray:
        """The 0/1 uint8 full-image mask of the original's rule."""
        return self.paste((self.resized > OUTPUT_THRESHOLD).astype(np.uint8), hw)

    def full_score(self, hw: Tuple[int, int]) -> np.ndarray:
        """The resized score map pasted into a zero image (float32): what :meth:`full_mask`
        thresholds; used to resolve overlaps between several objects."""
        return self.paste(self.resized, hw, dtype=np.float32)


def vos_crop_mask(prob: np.ndarray, window: Tuple[int, int, int]) -> CropMask:
    """VOS mode: the probability map itself."""
    return CropMask(np.asarray(prob, dtype=np.float32), window)


def box_mode_crop_mask(prob: np.ndarray, largest_contour: np.ndarray, window: Tuple[int, int, int]) -> CropMask:
    """Box/polygon mode: the probability inside the dilated largest contour (a 0/1 uint8 crop mask)."""
    kernel = np.ones((DILATION_SIZE, DILATION_SIZE), np.uint8)
    selected = cv2.dilate(np.asarray(largest_contour, dtype=np.uint8), kernel, iterations=1)
    return CropMask((selected * prob).astype(np.float32), window)


def region_mask(hw: Tuple[int, int], polygon: Optional[np.ndarray], box: np.ndarray) -> np.ndarray:
    """The output region rasterised (0/1 uint8): the fallback when no segmentation mask exists."""
    mask = np.zeros(hw, dtype=np.uint8)
    corners = polygon if polygon is not None else np.array(
        [[box[0], box[1]], [box[0] + box[2], box[1]], [box[0] + box[2], box[1] + box[3]], [box[0], box[1] + box[3]]])
    if np.all(np.isfinite(corners)):
        cv2.fillConvexPoly(mask, np.round(corners).astype(np.int32), 1)
    return mask
