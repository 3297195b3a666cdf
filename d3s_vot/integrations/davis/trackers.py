"""Trackers for semi-supervised VOS: given frame 0's label image, report one label image per frame.

* ``d3s``: one D3S state per object over one set of networks (:class:`MultiObjectTracker`), each
  initialised from its first-frame mask (VOS mode: every frame's mask is the segmentation probability
  > 0.5, the original's DAVIS output); where masks overlap, the object with the highest probability wins
  (:func:`disjoint_masks`).
* ``oracle``: replays the ground truth (every measure must come out 1).
* ``static``: repeats the first frame's labels (a lower bound).

The kinds and their settings are the box runner's :class:`RunnerTrackerSpec`, so result folders get the
same names (``D3S``, ``D3S_random0``, ``Oracle``, ``Static``).
"""
from __future__ import annotations

from typing import Protocol

import numpy as np

from d3s_vot.devices import synchronize
from d3s_vot.factory import TrackerBuildError, build_tracker
from d3s_vot.integrations.box_runner.boxio import BenchmarkError
from d3s_vot.integrations.box_runner.trackers import TRACKER_KINDS, RunnerTrackerSpec
from d3s_vot.integrations.davis.dataset import DavisSequence
from d3s_vot.tracker.multi import MultiObjectTracker, disjoint_masks, label_image


class MaskTracker(Protocol):
    """RGB ``H x W x 3`` uint8 frames in, ``H x W`` uint8 label images (object ids, 0 background) out."""

    def start(self, sequence: DavisSequence, image: np.ndarray, labels: np.ndarray) -> None: ...

    def update(self, image: np.ndarray) -> np.ndarray: ...


class StaticMaskTracker:
    def start(self, sequence: DavisSequence, image: np.ndarray, labels: np.ndarray) -> None:
        self._labels = labels.copy()

    def update(self, image: np.ndarray) -> np.ndarray:
        return self._labels.copy()


class OracleMaskTracker:
    def start(self, sequence: DavisSequence, image: np.ndarray, labels: np.ndarray) -> None:
        self._sequence = sequence
        self._frame = 0

    def update(self, image: np.ndarray) -> np.ndarray:
        self._frame += 1
        return self._sequence.labels(self._frame)


class D3SMaskTracker:
    """D3S over the sequence's objects; waits for the device so that per-frame times are honest."""

    def __init__(self, tracker):
        self._device = tracker.device
        self._objects = MultiObjectTracker(tracker)

    def start(self, sequence: DavisSequence, image: np.ndarray, labels: np.ndarray) -> None:
        regions = {object_id: (labels == object_id).astype(np.uint8) for object_id in sequence.object_ids}
        try:
            self._objects.initialize(image, regions)
        except ValueError as exc:
            raise BenchmarkError(f"{sequence.annotation_files[0]}: {exc}") from None
        synchronize(self._device)

    def update(self, image: np.ndarray) -> np.ndarray:
        masks = disjoint_masks(self._objects.track(image))
        synchronize(self._device)
        return label_image(masks, {object_id: object_id for object_id in masks})


def build_mask_tracker(spec: RunnerTrackerSpec) -> MaskTracker:
    """Build the tracker a spec describes (loads the D3S weights; errors are :class:`BenchmarkError`)."""
    if spec.kind == "static":
        return StaticMaskTracker()
    if spec.kind == "oracle":
        return OracleMaskTracker()
    if spec.kind != "d3s":
        raise BenchmarkError(f"unknown tracker {spec.kind!r}; choose one of {', '.join(TRACKER_KINDS)}")
    from d3s_vot.runtime import configure_process

    configure_process(spec.threads)     # CPU results are bit-identical only at equal thread counts
    try:
        return D3SMaskTracker(build_tracker(spec.d3s))
    except TrackerBuildError as exc:
        raise BenchmarkError(str(exc)) from None
