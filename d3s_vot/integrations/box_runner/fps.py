"""Honest speed numbers from per-frame times.

The GOT-10k toolkit's ``speed_fps`` is the mean over all frames (initialisation included) of
``1/t``, which favours fast frames: times of 1 ms and 100 ms give 505 fps, not 19.8. We report it
for comparability beside the true rate ``tracked frames / total tracking time`` (frames >= 1) and
the mean initialisation time, which is kept separate.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict, Sequence

import numpy as np


@dataclass(frozen=True)
class SpeedSummary:
    sequences: int
    tracked_frames: int        # frames >= 1 (the initialisation frame is not counted)
    fps: float                 # tracked_frames / sum of their times
    toolkit_fps: float         # GOT-10k toolkit definition: mean(1/t) over all frames with t > 0; -1 if none
    init_seconds_mean: float   # mean time of the initialisation frame

    def to_dict(self) -> Dict[str, float]:
        return asdict(self)


def summarize_times(per_sequence: Sequence[np.ndarray]) -> SpeedSummary:
    """Summarise per-sequence time arrays (seconds, frame 0 = initialisation)."""
    arrays = [np.asarray(t, dtype=np.float64).reshape(-1) for t in per_sequence]
    tracked = np.concatenate([t[1:] for t in arrays]) if arrays else np.zeros(0)
    init = np.array([t[0] for t in arrays if len(t) > 0])
    everything = np.concatenate(arrays) if arrays else np.zeros(0)
    positive = everything[everything > 0]
    total = float(tracked.sum())
    return SpeedSummary(
        sequences=len(arrays),
        tracked_frames=int(tracked.size),
        fps=float(tracked.size / total) if total > 0 else float("nan"),
        toolkit_fps=float(np.mean(1.0 / positive)) if positive.size else -1.0,
        init_seconds_mean=float(init.mean()) if init.size else float("nan"),
    )


def read_time_file(path) -> np.ndarray:
    """First column of a ``*_time.txt`` file (one row per frame; later columns are extra repetitions)."""
    values = np.loadtxt(path, delimiter=",", ndmin=2)
    return values[:, 0]
