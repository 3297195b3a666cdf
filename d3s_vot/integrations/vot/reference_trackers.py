"""Reference TraX trackers with known scores, to check a VOT workspace end to end without D3S.

``python -m d3s_vot.vot_reference_trackers`` with ``D3S_REFERENCE_TRACKER``:

* ``oracle``: reports the ground truth read from ``groundtruth.txt`` beside the ``color/`` frames
  (polygon output scores A = 1, R = 0, AO = 1 on polygon ground truth);
* ``static``: reports the initialisation region forever (fails whenever the target moves away).

They run through the same server loop as D3S (``d3s_vot.integrations.vot.trax_entry.serve``), so they also exercise its
region handling, error handling and process reuse (``D3S_OUTPUT``, ``D3S_INIT_LOG`` work the same way).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from d3s_vot.integrations.vot.trax_entry import EntryConfig, EntryError, box_corners, serve

REFERENCE_TRACKERS = ("oracle", "static")


@dataclass(frozen=True)
class ReferenceResult:
    """The subset of ``TrackResult`` the server loop reads."""

    box: np.ndarray
    polygon: np.ndarray | None
    mask: np.ndarray
    score: float
    region: np.ndarray


def _polygon_mask(polygon: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Rasterise like the toolkit: pixel (i, j) is inside when (j, i) lies in the polygon."""
    import cv2

    mask = np.zeros(shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(polygon.reshape(-1, 2)).astype(np.int32)], 1)
    return mask


def _result_for(region: np.ndarray, shape: tuple[int, ...]) -> ReferenceResult:
    """Wrap a box (4), polygon (8) or mask (HxW) region as a result."""
    if region.ndim == 2:
        rows, cols = np.flatnonzero(region.any(axis=1)), np.flatnonzero(region.any(axis=0))
        box = np.array([cols[0], rows[0], cols[-1] - cols[0] + 1, rows[-1] - rows[0] + 1], float)
        return ReferenceResult(box, box_corners(box), region.astype(np.uint8), 1.0, box)
    if region.size == 8:
        points = region.reshape(4, 2)
        lo, hi = points.min(axis=0), points.max(axis=0)
        box = np.concatenate([lo, hi - lo])
        return ReferenceResult(box, points, _polygon_mask(region, shape), 1.0, region)
    return ReferenceResult(region, None, _polygon_mask(box_corners(region).reshape(-1), shape), 1.0, region)


class StaticReferenceTracker:
    """Reports the initialisation region on every frame."""

    def initialize(self, image: np.ndarray, region: np.ndarray) -> None:
        self._result = _result_for(np.asarray(region), image.shape)

    def track(self, image: np.ndarray) -> ReferenceResult:
        return self._result


class OracleReferenceTracker:
    """Reports the sequence's ground truth; needs the current frame's path (set by :func:`main`)."""

    def __init__(self) -> None:
        self.frame_path: str | None = None
        self._cache: dict[Path, list[np.ndarray]] = {}

    def _groundtruth(self, frame_path: str) -> tuple[np.ndarray, int]:
        frame = Path(frame_path)
        gt_file = frame.parent.parent / "groundtruth.txt"
        if gt_file not in self._cache:
            if not gt_file.is_file():
                raise EntryError(f"oracle: no ground truth at {gt_file}")
            self._cache[gt_file] = [np.array([float(v) for v in line.split(",")])
                                    for line in gt_file.read_text().splitlines() if line.strip()]
        index = int(frame.stem) - 1
        return self._cache[gt_file][index], index

    def initialize(self, image: np.ndarray, region: np.ndarray) -> None:
        self._init = np.asarray(region)

    def track(self, image: np.ndarray) -> ReferenceResult:
        region, _ = self._groundtruth(self.frame_path)
        return _result_for(region, image.shape)


def main() -> int:
    kind = os.environ.get("D3S_REFERENCE_TRACKER", "").strip().lower()
    if kind not in REFERENCE_TRACKERS:
        print(f"error: D3S_REFERENCE_TRACKER={kind!r} is not one of {', '.join(REFERENCE_TRACKERS)}",
              file=sys.stderr)
        return 1
    try:
        config = EntryConfig.from_env()
    except EntryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if kind == "static":
        return serve(StaticReferenceTracker(), config.output, config.init_log, tracker_name="static")
    oracle = OracleReferenceTracker()
    return serve(oracle, config.output, config.init_log, tracker_name="oracle", on_image=oracle_path_hook(oracle))


def oracle_path_hook(oracle: OracleReferenceTracker):
    def hook(path: str) -> None:
        oracle.frame_path = path
    return hook


if __name__ == "__main__":
    sys.exit(main())
