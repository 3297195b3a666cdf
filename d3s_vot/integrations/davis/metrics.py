"""The DAVIS measures, as the official evaluation (davisvideochallenge/davis2017-evaluation) defines them.

* **J** (region similarity): intersection over union of the object's predicted and true masks; 1 when
  both are empty.
* **F** (boundary accuracy): the F-measure of boundary precision and recall. A mask's boundary is the
  set of pixels whose value differs from their right, lower or lower-right neighbour (neighbours outside
  the image are not compared), i.e. the contour shifted half a pixel towards the origin. A boundary pixel
  of one mask is matched when a boundary pixel of the other lies within ``ceil(0.008 x image diagonal)``
  pixels (Euclidean, a disk). Empty boundaries: both -> F = 1, one -> F = 0.
* Per object over the scored frames: **mean**, **recall** (fraction of frames above 0.5) and **decay**
  (mean of the first minus mean of the last of four temporal quartiles; the quartiles share their
  border frames).

Every number is float64, like the official code's.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence, Tuple

import cv2
import numpy as np

BOUNDARY_TOLERANCE = 0.008      # fraction of the image diagonal (>= 1: pixels)
DECAY_BINS = 4


def region_jaccard(truth: np.ndarray, prediction: np.ndarray) -> float:
    """J of two masks of the same shape (any non-zero pixel is foreground)."""
    truth, prediction = _same_shape(truth, prediction)
    union = np.count_nonzero(truth | prediction)
    if union == 0:
        return 1.0
    return np.count_nonzero(truth & prediction) / union


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """The boundary pixels of a mask (bool, same shape); see the module docstring."""
    seg = np.asarray(mask).astype(bool)
    edge = np.zeros_like(seg)
    edge[:, :-1] |= seg[:, :-1] != seg[:, 1:]         # right neighbour
    edge[:-1, :] |= seg[:-1, :] != seg[1:, :]         # lower neighbour
    edge[:-1, :-1] |= seg[:-1, :-1] != seg[1:, 1:]    # lower-right neighbour
    return edge


def boundary_radius(shape: Tuple[int, int], tolerance: float = BOUNDARY_TOLERANCE) -> int:
    """The matching distance in pixels for an image of ``shape`` (H, W)."""
    if tolerance >= 1:
        return int(math.ceil(tolerance))
    return int(math.ceil(tolerance * math.hypot(shape[0], shape[1])))


def disk(radius: int) -> np.ndarray:
    """uint8 structuring element of the pixels with ``dx^2 + dy^2 <= radius^2``."""
    offsets = np.arange(-radius, radius + 1)
    return ((offsets[:, None] ** 2 + offsets[None, :] ** 2) <= radius ** 2).astype(np.uint8)


def boundary_f(truth: np.ndarray, prediction: np.ndarray, tolerance: float = BOUNDARY_TOLERANCE) -> float:
    """F of two masks of the same shape."""
    truth, prediction = _same_shape(truth, prediction)
    truth_edge, pred_edge = boundary_map(truth), boundary_map(prediction)
    n_truth, n_pred = np.count_nonzero(truth_edge), np.count_nonzero(pred_edge)
    if n_truth == 0 and n_pred == 0:
        return 1.0
    if n_truth == 0 or n_pred == 0:
        return 0.0      # precision 1 and recall 0, or the other way round
    kernel = disk(boundary_radius(truth.shape, tolerance))
    near_truth = cv2.dilate(truth_edge.astype(np.uint8), kernel).astype(bool)
    near_pred = cv2.dilate(pred_edge.astype(np.uint8), kernel).astype(bool)
    precision = np.count_nonzero(pred_edge & near_truth) / n_pred
    recall = np.count_nonzero(truth_edge & near_pred) / n_truth
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


@dataclass(frozen=True)
class Statistics:
    """One object's summary of a per-frame measure (NaN when no frame is scored)."""

    mean: float
    recall: float
    decay: float


def decay_bins(count: int) -> Tuple[Tuple[int, int], ...]:
    """Inclusive (first, last) frame indices of the four quartiles of ``count`` values: the borders
    ``round(linspace(1, count, 5)) - 1`` with halves rounded up, each border frame in both bins.

    (The official code casts the borders to uint8, which wraps beyond 255 scored frames; DAVIS sequences
    are far shorter, and here the borders stay exact.)"""
    borders = np.floor(np.linspace(1, count, DECAY_BINS + 1) + 0.5).astype(np.int64) - 1
    return tuple((int(borders[i]), int(borders[i + 1])) for i in range(DECAY_BINS))


def statistics(values: Sequence[float]) -> Statistics:
    """Mean, recall (> 0.5) and decay of per-frame values. As in the official code, the mean skips NaN
    values and the recall counts them as frames not above 0.5 (J and F are never NaN)."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if values.size == 0:
        return Statistics(math.nan, math.nan, math.nan)
    mean = _nanmean(values)
    recall = float(np.mean(values > 0.5))
    bins = decay_bins(values.size)
    first, last = (values[a:b + 1] for a, b in (bins[0], bins[-1]))
    decay = float(_nanmean(first) - _nanmean(last))
    return Statistics(mean, recall, decay)


def _nanmean(values: np.ndarray) -> float:
    kept = values[~np.isnan(values)]
    return float(np.mean(kept)) if kept.size else math.nan


def _same_shape(truth: np.ndarray, prediction: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    truth, prediction = np.asarray(truth).astype(bool), np.asarray(prediction).astype(bool)
    if truth.shape != prediction.shape or truth.ndim != 2:
        raise ValueError(f"masks must be two H x W arrays of one shape, got {truth.shape} and {prediction.shape}")
    return truth, prediction
