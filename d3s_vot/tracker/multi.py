"""Several targets in one sequence: one D3S state per object over one set of networks.

Used by the VOTS multi-object TraX sessions and the DAVIS 2017 runner. Each object is a
:meth:`D3STracker.fork` of one loaded tracker, so the weights are loaded once whatever the number of
objects; the objects never see each other (D3S is a single-target tracker), except when their masks
are made disjoint with :func:`disjoint_masks`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Dict, Hashable, Iterable, List, Mapping

import numpy as np

if TYPE_CHECKING:       # only for annotations: this module loads without torch
    from .d3s import D3STracker
    from .result import TrackResult


class MultiObjectTracker:
    """``MultiObjectTracker(tracker)``: track the objects of ``initialize(image, {key: region})``.

    ``region`` as for :meth:`D3STracker.initialize` (0-based box, 8-number polygon or H x W mask);
    keys are any hashable object ids (VOTS: 0..N-1, DAVIS: the annotation's object ids)."""

    def __init__(self, tracker: D3STracker):
        self._prototype = tracker
        self._objects: Dict[Hashable, D3STracker] = {}

    @property
    def object_ids(self) -> List[Hashable]:
        """The tracked objects, in initialisation order."""
        return list(self._objects)

    def initialize(self, image: np.ndarray, regions: Mapping[Hashable, object]) -> None:
        """Start a sequence with exactly these objects (any previous objects are dropped)."""
        if not regions:
            raise ValueError("no objects to track: give at least one region")
        self._objects = {}
        self.reinitialize(image, regions)

    def reinitialize(self, image: np.ndarray, regions: Mapping[Hashable, object]) -> None:
        """(Re)start the given objects on this frame and keep tracking the others as they are. An
        object whose region is refused is dropped and the error names it."""
        for key, region in regions.items():
            twin = self._objects.get(key) or self._prototype.fork()
            try:
                twin.initialize(image, region)
            except ValueError as exc:
                self._objects.pop(key, None)
                raise ValueError(f"object {key}: {exc}") from exc
            self._objects[key] = twin

    def remove(self, keys: Iterable[Hashable]) -> None:
        """Stop tracking these objects."""
        for key in keys:
            self._objects.pop(key, None)

    def track(self, image: np.ndarray) -> Dict[Hashable, TrackResult]:
        """Every object's result on the next frame, in :attr:`object_ids` order."""
        if not self._objects:
            raise RuntimeError("track() called before initialize(); initialise the objects on the first frame")
        return {key: tracker.track(image) for key, tracker in self._objects.items()}


def disjoint_masks(results: Mapping[Hashable, TrackResult]) -> Dict[Hashable, np.ndarray]:
    """The objects' masks made disjoint: a pixel claimed by several masks goes to the object with the
    highest :meth:`TrackResult.mask_score` there (ties: the earlier object)."""
    keys = list(results)
    if not keys:
        return {}
    masks = np.stack([results[k].mask.astype(bool) for k in keys])
    if len(keys) == 1 or not (masks.sum(axis=0) > 1).any():     # nothing claimed twice: no scores needed
        return {k: m.astype(np.uint8) for k, m in zip(keys, masks)}
    scores = np.stack([np.where(m, results[k].mask_score(), -np.inf) for k, m in zip(keys, masks)])
    winner = np.argmax(scores, axis=0)
    claimed = masks.any(axis=0)
    return {k: ((winner == i) & claimed).astype(np.uint8) for i, k in enumerate(keys)}


def label_image(masks: Mapping[Hashable, np.ndarray], labels: Mapping[Hashable, int]) -> np.ndarray:
    """Disjoint 0/1 masks -> one uint8 image of object labels (0: background)."""
    first = next(iter(masks.values()))
    out = np.zeros(first.shape, dtype=np.uint8)
    for key, mask in masks.items():
        out[mask.astype(bool)] = labels[key]
    return out
