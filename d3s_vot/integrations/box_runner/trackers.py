"""The trackers a benchmark run can use: D3S and two baselines, behind one small interface.

The baselines are real code paths used by the tests and useful as sanity checks of a data set or a
scorer: ``oracle`` replays the ground truth (every metric must come out perfect) and ``static``
repeats the initial box (the constant-box lower bound, like got10k's ``IdentityTracker``).

A :class:`RunnerTrackerSpec` is a plain picklable description, so ``spawn`` worker processes can build
their own tracker from it.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, Optional, Protocol, Tuple

import numpy as np

from d3s_vot.devices import synchronize
from d3s_vot.factory import TrackerBuildError, TrackerSpec, build_tracker
from d3s_vot.integrations.box_runner.boxio import BenchmarkError, read_boxes

TRACKER_KINDS = ("d3s", "oracle", "static")


class BoxTracker(Protocol):
    """Box-mode single-object tracker: RGB ``HxWx3`` uint8 images, 0-based ``[x, y, w, h]`` boxes."""

    def start(self, sequence: str, image: np.ndarray, box: np.ndarray) -> None: ...

    def update(self, image: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class RunnerTrackerSpec:
    """Which tracker a benchmark run uses, built anew in each process (``spawn`` workers included).

    ``d3s``: the D3S tracker's :class:`~d3s_vot.factory.TrackerSpec`; ``oracle_gt`` maps sequence
    name -> full ground-truth file; ``threads``: torch intra-op threads of each tracking process."""

    kind: str = "d3s"
    d3s: TrackerSpec = TrackerSpec()
    oracle_gt: Tuple[Tuple[str, str], ...] = ()
    threads: Optional[int] = None     # None: torch's default

    def default_name(self) -> str:
        """A result-folder name that changes when the configuration does (results are resumed by name)."""
        if self.kind == "oracle":
            return "Oracle"
        if self.kind == "static":
            return "Static"
        seed = self.d3s.random_weights_seed
        name = "D3S" if seed is None else f"D3S_random{seed}"
        if self.d3s.params:
            digest = hashlib.sha1(repr(sorted(self.d3s.params)).encode()).hexdigest()[:8]
            name += f"_p{digest}"
        return name


class StaticBoxTracker:
    """Reports the initial box on every frame."""

    def start(self, sequence: str, image: np.ndarray, box: np.ndarray) -> None:
        self._box = np.asarray(box, dtype=np.float64).copy()

    def update(self, image: np.ndarray) -> np.ndarray:
        return self._box.copy()


class OracleBoxTracker:
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
    """Box-mode D3S; waits for the tracker's device before returning so that per-frame timings are honest."""

    def __init__(self, tracker):
        self._tracker = tracker

    def start(self, sequence: str, image: np.ndarray, box: np.ndarray) -> None:
        self._tracker.initialize(image, [float(v) for v in box])
        synchronize(self._tracker.device)

    def update(self, image: np.ndarray) -> np.ndarray:
        result = self._tracker.track(image)
        synchronize(self._tracker.device)
        return np.asarray(result.box, dtype=np.float64)


def build_box_tracker(spec: RunnerTrackerSpec) -> BoxTracker:
    """Build the tracker a spec describes (loads the D3S weights; errors are :class:`BenchmarkError`)."""
    if spec.kind == "static":
        return StaticBoxTracker()
    if spec.kind == "oracle":
        return OracleBoxTracker(dict(spec.oracle_gt))
    if spec.kind != "d3s":
        raise BenchmarkError(f"unknown tracker {spec.kind!r}; choose one of {', '.join(TRACKER_KINDS)}")
    from d3s_vot.runtime import configure_process

    # on CPU the float summation order, hence the last bits of the boxes, depends on the thread count
    configure_process(spec.threads)
    try:
        return D3SBoxTracker(build_tracker(spec.d3s))
    except TrackerBuildError as exc:
        raise BenchmarkError(str(exc)) from None


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
