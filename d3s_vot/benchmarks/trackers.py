"""The trackers a benchmark run can use: D3S and two baselines, behind one small interface.

The baselines are real code paths used by the tests and useful as sanity checks of a data set or a
scorer: ``oracle`` replays the ground truth (every metric must come out perfect) and ``static``
repeats the initial box (the constant-box lower bound, like got10k's ``IdentityTracker``).

A :class:`TrackerSpec` is a plain picklable description, so ``spawn`` worker processes can build
their own tracker from it.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, Optional, Protocol, Tuple

import numpy as np

from .boxio import BenchmarkError, read_boxes

TRACKER_KINDS = ("d3s", "oracle", "static")


class BoxTracker(Protocol):
    """Box-mode single-object tracker: RGB ``HxWx3`` uint8 images, 0-based ``[x, y, w, h]`` boxes."""

    def start(self, sequence: str, image: np.ndarray, box: np.ndarray) -> None: ...

    def update(self, image: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class TrackerSpec:
    """What to build in each process. ``oracle_gt`` maps sequence name -> full ground-truth file."""

    kind: str = "d3s"
    weights: Optional[str] = None
    random_weights: Optional[int] = None
    device: Optional[str] = None
    dtype: str = "float32"
    params: Tuple[Tuple[str, str], ...] = ()
    oracle_gt: Tuple[Tuple[str, str], ...] = ()
    threads: Optional[int] = None     # torch intra-op threads of each tracking process (None: torch's default)

    def default_name(self) -> str:
        """A result-folder name that changes when the configuration does (results are resumed by name)."""
        if self.kind == "oracle":
            return "Oracle"
        if self.kind == "static":
            return "Static"
        name = "D3S" if self.random_weights is None else f"D3S_random{self.random_weights}"
        if self.params:
            digest = hashlib.sha1(repr(sorted(self.params)).encode()).hexdigest()[:8]
            name += f"_p{digest}"
        return name


class StaticTracker:
    """Reports the initial box on every frame."""

    def start(self, sequence: str, image: np.ndarray, box: np.ndarray) -> None:
        self._box = np.asarray(box, dtype=np.float64).copy()

    def update(self, image: np.ndarray) -> np.ndarray:
        return self._box.copy()


class OracleTracker:
    """Replays the ground truth of the sequence being tracked (frame ``i`` gets row ``i``)."""

    def __init__(self, gt_files: Dict[str, str]):
        self._gt_files = dict(gt_files)

    def start(self, sequence: str, image: np.ndarray, box: np.ndarray) -> None:
        path = self._gt_files.get(sequence)
        if path is None:
            raise BenchmarkError(f"oracle tracker: no ground-truth file for sequence {sequence!r}")
        self._gt = read_boxes(path)
        self._path = path
        self._frame = 0

    def update(self, image: np.ndarray) -> np.ndarray:
        self._frame += 1
        if self._frame >= len(self._gt):
            raise BenchmarkError(
                f"oracle tracker: {self._path} has {len(self._gt)} boxes, but the sequence has more frames"
                " (the ground truth of a test split is withheld: pass --oracle-gt with the full boxes)")
        return self._gt[self._frame].copy()


class D3SBoxTracker:
    """Box-mode D3S; waits for the GPU before returning so that per-frame timings are honest."""

    def __init__(self, tracker, device_type: str):
        self._tracker = tracker
        self._cuda = device_type == "cuda"

    def start(self, sequence: str, image: np.ndarray, box: np.ndarray) -> None:
        self._tracker.initialize(image, [float(v) for v in box])
        self._sync()

    def update(self, image: np.ndarray) -> np.ndarray:
        result = self._tracker.track(image)
        self._sync()
        return np.asarray(result.box, dtype=np.float64)

    def _sync(self) -> None:
        if self._cuda:
            import torch
            torch.cuda.synchronize()


def resolve_device(device: Optional[str]) -> str:
    """``None`` -> cuda if available else cpu; a bare ``cuda`` under torchrun -> ``cuda:$LOCAL_RANK``."""
    import torch
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and "LOCAL_RANK" in os.environ:
        device = f"cuda:{int(os.environ['LOCAL_RANK'])}"
    return device


def build_tracker(spec: TrackerSpec) -> BoxTracker:
    """Build the tracker a spec describes (loads the D3S weights; errors are :class:`BenchmarkError`)."""
    if spec.kind == "static":
        return StaticTracker()
    if spec.kind == "oracle":
        return OracleTracker(dict(spec.oracle_gt))
    if spec.kind != "d3s":
        raise BenchmarkError(f"unknown tracker {spec.kind!r}; choose one of {', '.join(TRACKER_KINDS)}")
    import torch
    from d3s_vot import D3SParams, D3STracker, load_weights
    from d3s_vot.runtime import tune_cpu_allocator

    tune_cpu_allocator()
    if spec.threads is not None:
        # on CPU the float summation order, hence the last bits of the boxes, depends on the thread count
        torch.set_num_threads(spec.threads)
    from d3s_vot import weights as weights_module

    try:
        if spec.random_weights is not None:
            weights = weights_module.random_weights(spec.random_weights)
        else:
            weights = load_weights(spec.weights) if spec.weights else load_weights()
    except weights_module.WeightsError as exc:
        raise BenchmarkError(str(exc)) from None
    try:
        params = D3SParams().with_overrides(dict(spec.params))
    except ValueError as exc:
        raise BenchmarkError(f"--param: {exc}") from None
    dtype = getattr(torch, spec.dtype, None)
    if not isinstance(dtype, torch.dtype):
        raise BenchmarkError(f"--dtype: unknown torch dtype {spec.dtype!r}")
    device = resolve_device(spec.device)
    tracker = D3STracker(weights, params=params, device=device, dtype=dtype)
    return D3SBoxTracker(tracker, torch.device(device).type)


def oracle_files(annotations: Iterable[Tuple[str, str, bool]], oracle_gt: Optional[str]) -> Dict[str, str]:
    """Sequence name -> file with its full ground truth, for the oracle baseline.

    ``annotations``: (name, annotation file, whether that file is complete) per sequence.
    ``--oracle-gt DIR/<name>.txt`` wins when present; a withheld annotation is an error.
    """
    files = {}
    for name, annotation_file, complete in annotations:
        path = Path(oracle_gt) / f"{name}.txt" if oracle_gt else None
        if path is None or not path.is_file():
            if not complete:
                where = f"{path} not found and " if path is not None else ""
                raise BenchmarkError(f"oracle: {where}{annotation_file} has only the initial box (ground truth "
                                     "withheld); pass --oracle-gt DIR with the full <sequence>.txt files")
            path = Path(annotation_file)
        files[name] = str(path)
    return files
