"""Reference TraX trackers with known scores, to check a VOT workspace end to end without D3S.

``python -m d3s_vot.vot_reference_trackers`` with ``D3S_REFERENCE_TRACKER``:

* ``oracle``: reports the ground truth read from ``groundtruth.txt`` beside the ``color/`` frames
  (polygon output scores A = 1, R = 0, AO = 1 on polygon ground truth; mask output on mask ground
  truth, including VOT2020 ``m...`` lines). In a multi-object sequence (``groundtruth_<id>.txt``) each
  initialised object follows the file whose region in the init frame overlaps it most;
* ``static``: reports the initialisation region forever (fails whenever the target moves away).

Both serve any number of objects per session (the entry declares multi-object support).

They run through the same server loop as D3S (``d3s_vot.integrations.vot.trax_entry.serve``), so they also exercise its
region handling, error handling and process reuse (``D3S_OUTPUT``, ``D3S_INIT_LOG`` work the same way).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from d3s_vot.integrations.vot.groundtruth import parse_region_line
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
        box = np.array([cols[0], rows[0], cols[-1] - cols[0] + 1, rows[-1] - rows[0] + 1], float) if rows.size \
            else np.zeros(4)
        return ReferenceResult(box, box_corners(box), (region > 0).astype(np.uint8), 1.0, box)
    if region.size == 8:
        points = region.reshape(4, 2)
        lo, hi = points.min(axis=0), points.max(axis=0)
        box = np.concatenate([lo, hi - lo])
        return ReferenceResult(box, points, _polygon_mask(region, shape), 1.0, region)
    return ReferenceResult(region, None, _polygon_mask(box_corners(region).reshape(-1), shape), 1.0, region)


def _full_mask(region: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Any region (box, polygon or mask) rasterised to a full-image 0/1 mask."""
    return _result_for(region, shape).mask if region.ndim == 2 or region.size >= 4 else np.zeros(shape[:2], np.uint8)


class StaticReferenceTracker:
    """Reports each object's initialisation region on every frame."""

    def initialize(self, image: np.ndarray, regions: dict[int, np.ndarray]) -> None:
        self._results = {k: _result_for(np.asarray(r), image.shape) for k, r in regions.items()}

    def track(self, image: np.ndarray) -> dict[int, ReferenceResult]:
        return dict(self._results)


class OracleReferenceTracker:
    """Reports the sequence's ground truth; needs the current frame's path (set by :func:`main`)."""

    def __init__(self) -> None:
        self.frame_path: str | None = None
        self._cache: dict[Path, list[str]] = {}
        self._files: dict[int, Path] = {}

    def _lines(self, gt_file: Path) -> list[str]:
        if gt_file not in self._cache:
            self._cache[gt_file] = [line for line in gt_file.read_text().splitlines() if line.strip()]
        return self._cache[gt_file]

    def _region(self, gt_file: Path, shape: tuple[int, ...]) -> np.ndarray:
        index = int(Path(self.frame_path).stem) - 1
        lines = self._lines(gt_file)
        if not 0 <= index < len(lines):
            raise EntryError(f"oracle: {gt_file} has no line for frame {index + 1}")
        return parse_region_line(lines[index], shape[:2])

    def initialize(self, image: np.ndarray, regions: dict[int, np.ndarray]) -> None:
        sequence = Path(self.frame_path).parent.parent
        candidates = sorted(sequence.glob("groundtruth_*.txt")) or [sequence / "groundtruth.txt"]
        if not candidates[0].is_file():
            raise EntryError(f"oracle: no ground truth at {candidates[0]}")
        self._files = {}
        for key, region in regions.items():
            init = _full_mask(np.asarray(region), image.shape).astype(bool)
            overlaps = []
            for gt_file in candidates:
                truth = _full_mask(self._region(gt_file, image.shape), image.shape).astype(bool)
                overlaps.append((init & truth).sum() / max((init | truth).sum(), 1))
            self._files[key] = candidates[int(np.argmax(overlaps))]

    def track(self, image: np.ndarray) -> dict[int, ReferenceResult]:
        out = {}
        for key, gt_file in self._files.items():
            region = self._region(gt_file, image.shape)
            out[key] = _result_for(region, image.shape) if region.ndim == 2 or region.size >= 4 \
                else _result_for(np.zeros(image.shape[:2], np.uint8), image.shape)
        return out


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
