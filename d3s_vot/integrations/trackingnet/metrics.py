"""The official TrackingNet scorer (devkit ``metrics.py``, used by the EvalAI server) in numpy.

Definitions, kept exactly (they differ from the paper's text and from got10k's TrackingNet code):

* submission rows are aligned to the ground truth by index: extra rows are ignored, missing rows are
  failures (NaN); all numbers are rounded to integers (``np.round``: half to even); frame 0 of the
  submission is replaced by the ground truth (and counts);
* inclusive pixels: ``x2 = x + w - 1``, intersection side ``round(min x2 - max x1 + 1)`` clipped at 0,
  IoU = inter / (area_gt + area_pred - inter); centre ``x + (w + 1) / 2``;
* per sequence, 21 thresholds each: success(t) = mean(IoU >= t), t in linspace(0, 1, 21);
  precision(t) = mean(centre distance <= t), t in linspace(0, 50, 21) px; normalized precision(t) =
  mean(||(dx / w_gt, dy / h_gt)|| <= t), t in linspace(0, 0.5, 21);
* the curves are averaged over sequences (each weighs the same), then each score is
  ``trapz(curve, x=linspace(0, 1, 21)) * 100``: "Precision" is the area under the 0-50 px curve, not P@20;
* a ground-truth sequence is matched to the submission file whose path contains ``<seq>.txt``; with
  no or several matches the sequence counts as all-zero boxes; coverage = % of frames whose
  ``x + y + w + h > 0``.
"""
from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence

import numpy as np

from d3s_vot.integrations.box_runner.boxio import BenchmarkError, parse_box_lines, read_boxes

NUM_THRESHOLDS = 21
SUCCESS_X = np.linspace(0, 1, NUM_THRESHOLDS)
PRECISION_X = np.linspace(0, 50, NUM_THRESHOLDS)
NORM_PRECISION_X = np.linspace(0, 0.5, NUM_THRESHOLDS)
_trapezoid = getattr(np, "trapezoid", None) or getattr(np, "trapz")


def area_under(curve: np.ndarray) -> float:
    """The devkit's score of a curve: trapezoid area over x = linspace(0, 1, 21), times 100."""
    return float(_trapezoid(np.asarray(curve, dtype=np.float64), x=SUCCESS_X) * 100)


@dataclass(frozen=True)
class SequenceCurves:
    success: np.ndarray
    precision: np.ndarray
    norm_precision: np.ndarray
    frames: int
    covered: np.ndarray        # per frame: x + y + w + h > 0 after rounding (the devkit's sanity check)


def sequence_curves(gt: np.ndarray, pred: Optional[np.ndarray]) -> SequenceCurves:
    """Curves of one sequence; ``pred`` None means no (or an ambiguous) submission file: all-zero boxes."""
    gt = np.asarray(gt, dtype=np.float64).reshape(-1, 4)
    n = len(gt)
    if pred is None:
        sub = np.zeros((n, 4))
    else:
        pred = np.asarray(pred, dtype=np.float64).reshape(-1, 4)
        sub = np.full((n, 4), np.nan)
        rows = min(n, len(pred))
        sub[:rows] = pred[:rows]
    anno = np.round(gt)
    sub = np.round(sub)
    sub[0] = anno[0]
    ax1, ay1, aw, ah = anno.T
    sx1, sy1, sw, sh = sub.T
    with np.errstate(divide="ignore", invalid="ignore"):
        ax2, ay2 = ax1 + aw - 1.0, ay1 + ah - 1.0
        sx2, sy2 = sx1 + sw - 1.0, sy1 + sh - 1.0
        acx, acy = ax1 + (aw + 1.0) / 2.0, ay1 + (ah + 1.0) / 2.0
        scx, scy = sx1 + (sw + 1.0) / 2.0, sy1 + (sh + 1.0) / 2.0
        # pandas' row max/min skip NaN: fmax/fmin do the same
        inter_w = np.clip(np.round(np.fmin(ax2, sx2) - np.fmax(ax1, sx1) + 1), 0, None)
        inter_h = np.clip(np.round(np.fmin(ay2, sy2) - np.fmax(ay1, sy1) + 1), 0, None)
        inter = inter_w * inter_h
        iou = inter / (ah * aw + sh * sw - inter)
        dx, dy = acx - scx, acy - scy
        distance = np.sqrt(dx * dx + dy * dy)
        norm_distance = np.sqrt(dx / aw * dx / aw + dy / ah * dy / ah)
        covered = (sh + sw + sx1 + sy1) > 0
        success = np.array([np.sum(iou >= t) / n for t in SUCCESS_X], dtype=np.float64)
        precision = np.array([np.sum(distance <= t) / n for t in PRECISION_X], dtype=np.float64)
        norm_precision = np.array([np.sum(norm_distance <= t) / n for t in NORM_PRECISION_X], dtype=np.float64)
    return SequenceCurves(success, precision, norm_precision, n, covered)


@dataclass
class TrackingNetScores:
    """Scores in percent, like the devkit/server, plus what went into them."""

    success: float
    precision: float
    norm_precision: float
    coverage: float
    sequences: int
    success_curve: List[float]
    precision_curve: List[float]
    norm_precision_curve: List[float]
    missing: List[str] = field(default_factory=list)      # no submission file: scored as all-zero boxes
    ambiguous: List[str] = field(default_factory=list)    # several matching files: scored as all-zero boxes
    per_sequence: Dict[str, Dict[str, float]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def match_submission(sequence: str, submission_paths: Sequence[str]) -> List[str]:
    """The devkit's rule: submission paths that contain ``<sequence>.txt``."""
    key = f"{sequence}.txt"
    return [p for p in submission_paths if key in p]


def score(groundtruth: Mapping[str, np.ndarray], submission_paths: Sequence[str],
          read_submission: Callable[[str], np.ndarray]) -> TrackingNetScores:
    """Score every ground-truth sequence against the submission files (``read_submission(path)``)."""
    if not groundtruth:
        raise BenchmarkError("no ground-truth sequences to score")
    total_s = np.zeros(NUM_THRESHOLDS)
    total_p = np.zeros(NUM_THRESHOLDS)
    total_np = np.zeros(NUM_THRESHOLDS)
    covered = []
    result = TrackingNetScores(0.0, 0.0, 0.0, 0.0, len(groundtruth), [], [], [])
    for name in sorted(groundtruth):
        matches = match_submission(name, submission_paths)
        if len(matches) == 1:
            pred = read_submission(matches[0])
        else:
            (result.missing if not matches else result.ambiguous).append(name)
            pred = None
        curves = sequence_curves(groundtruth[name], pred)
        total_s += curves.success
        total_p += curves.precision
        total_np += curves.norm_precision
        covered.append(curves.covered)
        result.per_sequence[name] = {"success": area_under(curves.success),
                                     "precision": area_under(curves.precision),
                                     "norm_precision": area_under(curves.norm_precision),
                                     "frames": curves.frames}
    count = len(groundtruth)
    success, precision, norm_precision = total_s / count, total_p / count, total_np / count
    result.success = area_under(success)
    result.precision = area_under(precision)
    result.norm_precision = area_under(norm_precision)
    result.coverage = float(np.mean(np.concatenate(covered)) * 100)
    result.success_curve = success.tolist()
    result.precision_curve = precision.tolist()
    result.norm_precision_curve = norm_precision.tolist()
    return result


# --- reading ground truth and submissions from folders or zips ------------------------------------

def _txt_members(names: Sequence[str]) -> List[str]:
    return sorted(n for n in names if n.endswith(".txt") and "__MACOSX" not in n)


def read_annotations(sources: Sequence[str]) -> Dict[str, np.ndarray]:
    """Ground truth from folders of ``<seq>.txt`` (e.g. ``TRAIN_0/anno``) and/or zips of them."""
    groundtruth: Dict[str, np.ndarray] = {}
    for source in sources:
        path = Path(source)
        if path.is_dir():
            files = {p.stem: p for p in sorted(path.glob("*.txt"))}
            loaded = {name: read_boxes(p) for name, p in files.items()}
        elif path.is_file() and zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                loaded = {Path(m).stem: parse_box_lines(archive.read(m).decode().splitlines(), f"{path}:{m}")
                          for m in _txt_members(archive.namelist())}
        else:
            raise BenchmarkError(f"annotations {path}: not a folder or zip of <sequence>.txt files")
        if not loaded:
            raise BenchmarkError(f"annotations {path}: no <sequence>.txt files")
        for name, boxes in loaded.items():
            if name in groundtruth:
                raise BenchmarkError(f"annotations: sequence {name} given twice (again in {path})")
            if len(boxes) == 0:
                raise BenchmarkError(f"annotations {path}: {name}.txt is empty")
            groundtruth[name] = boxes
    return groundtruth


class SubmissionReader:
    """Lists and reads the ``*.txt`` files of a result folder or a submission zip."""

    def __init__(self, source: str):
        self.source = Path(source)
        if self.source.is_dir():
            self._zip = None
            self.paths = _txt_members([p.relative_to(self.source).as_posix() for p in self.source.rglob("*.txt")])
        elif self.source.is_file() and zipfile.is_zipfile(self.source):
            self._zip = zipfile.ZipFile(self.source)
            self.paths = _txt_members(self._zip.namelist())
        else:
            raise BenchmarkError(f"results {self.source}: not a folder or zip of <sequence>.txt files")

    def read(self, member: str) -> np.ndarray:
        if self._zip is None:
            return read_boxes(self.source / member, allow_nan=True)
        text = self._zip.read(member).decode(errors="replace")
        return parse_box_lines(text.splitlines(), f"{self.source}:{member}", allow_nan=True)

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()

    def __enter__(self) -> "SubmissionReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def score_files(results: str, annotations: Sequence[str]) -> TrackingNetScores:
    """Score a result folder or submission zip against annotation folders/zips."""
    groundtruth = read_annotations(annotations)
    with SubmissionReader(results) as reader:
        return score(groundtruth, reader.paths, reader.read)
