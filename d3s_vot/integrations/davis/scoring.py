"""Score a folder of DAVIS result PNGs against the ground truth, with the official protocol.

* Result files: ``<results>/<sequence>/<frame>.png``, indexed PNGs whose values are object ids (2016:
  any non-zero value is the object, as the DAVIS 2016 code reads them). An id the sequence does not
  have is an error, as in the official code; objects missing from the results are empty masks.
* Scored frames: all but the first (given) and the last, as the official semi-supervised evaluation
  (``all_gt_masks[:, 1:-1]``) and the DAVIS 2016 code do.
* Overall numbers are means over **objects** (all sequences pooled), J&F = (J-Mean + F-Mean) / 2.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np
from tqdm import tqdm

from d3s_vot.integrations.box_runner.boxio import BenchmarkError
from d3s_vot.integrations.davis.dataset import DavisSequence
from d3s_vot.integrations.davis.labels import read_label_png
from d3s_vot.integrations.davis.metrics import Statistics, boundary_f, region_jaccard, statistics

MEASURES = ("J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay")


@dataclass(frozen=True)
class ObjectScore:
    """One object's per-frame J and F over the scored frames, and their statistics."""

    sequence: str
    object_id: int
    frames: Tuple[str, ...]
    j: Tuple[float, ...]
    f: Tuple[float, ...]

    @property
    def name(self) -> str:
        """``<sequence>_<id>``, the official per-object name."""
        return f"{self.sequence}_{self.object_id}"

    @property
    def j_stats(self) -> Statistics:
        return statistics(self.j)

    @property
    def f_stats(self) -> Statistics:
        return statistics(self.f)

    def summary(self) -> Dict[str, float]:
        j, f = self.j_stats, self.f_stats
        return {"J&F-Mean": (j.mean + f.mean) / 2, "J-Mean": j.mean, "J-Recall": j.recall, "J-Decay": j.decay,
                "F-Mean": f.mean, "F-Recall": f.recall, "F-Decay": f.decay}


def scored_frames(sequence: DavisSequence) -> range:
    """Frame indices the official evaluation scores: not the first, not the last."""
    return range(1, len(sequence.frame_files) - 1)


def result_path(results_dir, sequence: DavisSequence, index: int) -> Path:
    return Path(results_dir) / sequence.name / f"{sequence.frame_names[index]}.png"


def read_result(results_dir, sequence: DavisSequence, index: int) -> np.ndarray:
    """A result PNG under the sequence's protocol, checked for size and object ids."""
    path = result_path(results_dir, sequence, index)
    if not path.is_file():
        raise BenchmarkError(f"{path}: missing result (every frame of {sequence.name} needs "
                             f"<results>/{sequence.name}/<frame>.png)")
    labels = read_label_png(path)
    if labels.shape != sequence.size:
        raise BenchmarkError(f"{path}: {labels.shape[1]}x{labels.shape[0]} pixels, but the annotations of "
                             f"{sequence.name} are {sequence.size[1]}x{sequence.size[0]}")
    if sequence.year == "2016":
        return (labels != 0).astype(np.uint8)
    highest = int(labels.max(initial=0))
    if highest > len(sequence.object_ids):
        raise BenchmarkError(f"{path}: object id {highest} in the result, but {sequence.name} has "
                             f"{len(sequence.object_ids)} object(s)")
    return labels


def score_sequence(sequence: DavisSequence, results_dir) -> List[ObjectScore]:
    """J and F of every object of ``sequence`` on its scored frames."""
    frames = scored_frames(sequence)
    j = np.zeros((len(sequence.object_ids), len(frames)))
    f = np.zeros_like(j)
    for column, index in enumerate(frames):
        truth = sequence.labels(index)
        prediction = read_result(results_dir, sequence, index)
        for row, object_id in enumerate(sequence.object_ids):
            j[row, column] = region_jaccard(truth == object_id, prediction == object_id)
            f[row, column] = boundary_f(truth == object_id, prediction == object_id)
    names = tuple(sequence.frame_names[i] for i in frames)
    return [ObjectScore(sequence.name, object_id, names, tuple(j[row].tolist()), tuple(f[row].tolist()))
            for row, object_id in enumerate(sequence.object_ids)]


def score_results(sequences: Sequence[DavisSequence], results_dir, progress: bool = False) -> List[ObjectScore]:
    """Every object of every sequence, in the split's order."""
    scores: List[ObjectScore] = []
    for sequence in tqdm(sequences, desc="scoring", unit="seq", disable=not progress, leave=False):
        scores.extend(score_sequence(sequence, results_dir))
    return scores


def overall(scores: Sequence[ObjectScore]) -> Dict[str, float]:
    """The official global numbers: each measure averaged over all objects; J&F from the two means."""
    if not scores:
        return {key: math.nan for key in ("J&F-Mean",) + MEASURES}
    rows = [s.summary() for s in scores]
    table = {key: float(np.mean([r[key] for r in rows])) for key in MEASURES}
    return {"J&F-Mean": (table["J-Mean"] + table["F-Mean"]) / 2, **table}


def per_sequence(scores: Sequence[ObjectScore]) -> Dict[str, Dict[str, float]]:
    """Each sequence's measures averaged over its objects (2016: its only object)."""
    grouped: Dict[str, List[ObjectScore]] = {}
    for score in scores:
        grouped.setdefault(score.sequence, []).append(score)
    return {name: {"objects": len(group), **overall(group)} for name, group in grouped.items()}
