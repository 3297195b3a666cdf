"""Stage hooks: the named steps of ``D3STracker.initialize`` and ``track``, for profiling.

The tracker wraps each step in ``with self._stage(name):`` (a :class:`StageHook`). Without a recorder
(the default) that is one shared :func:`contextlib.nullcontext`: no allocation, no timing. With one, every step calls
``recorder.stage(name)`` and runs inside the context manager it returns::

    from d3s_vot.tracker import StageTimer

    timer = StageTimer(tracker.device)
    with tracker.record_stages(timer):
        tracker.initialize(frames[0], region)
        init = timer.take()                 # [("image_to_tensor", 0.4), ("augmentation", 61.0), ...]
        for frame in frames[1:]:
            tracker.track(frame)
            print(timer.take())

A recorder is anything with a ``stage(name) -> ContextManager`` method (:class:`StageRecorder`):
:class:`StageTimer` times the stages, :class:`StageLog` only notes their names; the speed bench
(``python -m d3s_vot.bench``) also counts the matrix-product work of chosen stages through one.

The names, in the order the tracker reports them (:data:`INIT_STAGES`, :data:`FRAME_STAGES`). A call
reports a subsequence: some steps run only under a condition.

initialize:
    ``image_to_tensor``, ``augmentation`` (the expanded crop and its transformed copies),
    ``trunk_batch`` (DCF trunk + RMS normalisation of the augmented samples), ``pca`` (the projection
    matrix), ``labels`` (one Gaussian label per sample), ``joint_gauss_newton`` (when
    ``init_gn_iter > 0``), ``memory_init``, ``post_init_filter_update`` (when
    ``post_init_cg_iter > 0``; off by default), ``segmentation_init`` (first-frame crop, trunk, head
    and mask; when the segmentation is on or a mask was given).
track:
    ``image_to_tensor``, ``dcf_crop``, ``dcf_trunk``, ``dcf_localize`` (projection, correlation with
    the filter, Fourier upsampling, window and peak search), then, on the frames that run the
    segmentation, ``segm_crop``, ``segm_trunk``, ``segm_head`` (head, softmax, probability map to the
    host) and ``mask_to_box`` (threshold, contours, box fit, scale and position from the mask); then
    ``memory_update`` (label and sample-memory insert, when the frame is certain enough),
    ``filter_update`` (the filter CG: every ``train_skipping``-th frame and at hard negatives) and
    ``full_image_mask`` (the output mask in image size). The small bookkeeping between the stages
    (uncertainty, state update, the result) belongs to no stage.
"""
from __future__ import annotations

import contextlib
import time
from typing import Any, ContextManager, List, Optional, Protocol, Tuple, runtime_checkable

import torch

from ..devices import synchronize

INIT_STAGES: Tuple[str, ...] = ("image_to_tensor", "augmentation", "trunk_batch", "pca", "labels",
                                "joint_gauss_newton", "memory_init", "post_init_filter_update",
                                "segmentation_init")
FRAME_STAGES: Tuple[str, ...] = ("image_to_tensor", "dcf_crop", "dcf_trunk", "dcf_localize", "segm_crop",
                                 "segm_trunk", "segm_head", "mask_to_box", "memory_update", "filter_update",
                                 "full_image_mask")
SEGMENTATION_STAGES: Tuple[str, ...] = ("segm_crop", "segm_trunk", "segm_head", "mask_to_box")

NULL_STAGE: ContextManager[None] = contextlib.nullcontext()     # shared: entering it allocates nothing


@runtime_checkable
class StageRecorder(Protocol):
    """Receives the tracker's stages: ``stage(name)`` returns the context manager the step runs in."""

    def stage(self, name: str) -> ContextManager[Any]:
        ...


class StageHook:
    """The stage function a tracker and its parts share: ``hook(name)`` is ``recorder.stage(name)``,
    or the shared null context while ``recorder`` is None. It holds the recorder, not the tracker, so
    the parts that call it keep no reference to the tracker."""

    __slots__ = ("recorder",)

    def __init__(self, recorder: Optional[StageRecorder] = None):
        self.recorder = recorder

    def __call__(self, name: str) -> ContextManager[Any]:
        recorder = self.recorder
        return NULL_STAGE if recorder is None else recorder.stage(name)


class _Records:
    """The (name, value) pairs a recorder collected; :meth:`take` hands them over per tracker call."""

    def __init__(self) -> None:
        self.records: List[Tuple[str, Any]] = []

    def take(self) -> List[Tuple[str, Any]]:
        """Everything recorded since the last ``take`` (after each ``initialize``/``track``: that
        call's stages, in order), and forget it."""
        out, self.records = self.records, []
        return out


class StageLog(_Records):
    """Notes the names of the stages that ran, nothing else (no timing, no synchronisation)."""

    def stage(self, name: str) -> ContextManager[None]:
        self.records.append((name, None))
        return NULL_STAGE

    def names(self) -> List[str]:
        return [name for name, _ in self.records]


class _Span:
    __slots__ = ("timer", "name", "start")

    def __init__(self, timer: "StageTimer", name: str):
        self.timer, self.name = timer, name

    def __enter__(self) -> None:
        if self.timer.sync:
            synchronize(self.timer.device)
        self.start = time.perf_counter()

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.timer.sync:
            synchronize(self.timer.device)
        if exc_type is None:
            self.timer.records.append((self.name, 1000.0 * (time.perf_counter() - self.start)))


class StageTimer(_Records):
    """Wall-clock milliseconds of every stage, as ``(name, ms)`` records in the order they ran.

    On CUDA the device is synchronised before and after each stage, so each stage is charged its own
    GPU work; that costs the overlap of host and device work, so time whole calls without a recorder.
    On the CPU a stage costs two ``perf_counter`` calls."""

    def __init__(self, device: Any = "cpu"):
        super().__init__()
        self.device = torch.device(device)
        self.sync = self.device.type != "cpu"

    def stage(self, name: str) -> ContextManager[None]:
        return _Span(self, name)
