"""Run one tracker over one sequence and record its boxes and per-frame times.

The loop follows ``got10k.trackers.Tracker.track``: frame 0's box is the given initial box, only
the tracker's own ``start``/``update`` call is timed. Unlike the toolkit, the image is decoded
(and closed) before the timer starts, so times measure the tracker, not the JPEG decoder.

A sequence is finished when its record file exists: the time file is written first and the record
last, both atomically, so an interrupted run resumes without redoing or losing a sequence.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence, Tuple

import numpy as np
from PIL import Image
from tqdm import tqdm

from d3s_vot.common.io_utils import atomic_write_text
from d3s_vot.integrations.box_runner.boxio import BenchmarkError, format_rows, read_boxes
from d3s_vot.integrations.box_runner.trackers import BoxTracker

TIME_FORMAT = "%.8f"


@dataclass(frozen=True)
class SequenceJob:
    """One sequence to track and where its results go (``box_format`` as the benchmark expects)."""

    name: str
    frame_files: Tuple[str, ...]
    init_box: Tuple[float, float, float, float]
    record_path: str
    time_path: str
    box_format: str

    def is_done(self) -> bool:
        return Path(self.record_path).is_file()


@dataclass(frozen=True)
class JobOutcome:
    name: str
    frames: int
    skipped: bool


def load_rgb(path: str) -> np.ndarray:
    """Decode an image file to an ``HxWx3`` uint8 RGB array."""
    try:
        with Image.open(path) as image:
            if image.mode != "RGB":
                image = image.convert("RGB")
            return np.asarray(image).copy()
    except FileNotFoundError:
        raise BenchmarkError(f"{path}: image not found") from None
    except OSError as exc:
        raise BenchmarkError(f"{path}: cannot read image ({exc})") from None


def track_sequence(tracker: BoxTracker, name: str, frame_files: Sequence[str], init_box: Sequence[float],
                   progress: bool = False) -> Tuple[np.ndarray, np.ndarray]:
    """Track a sequence; returns ``(boxes (N, 4), seconds (N,))`` with ``boxes[0] = init_box``."""
    count = len(frame_files)
    boxes = np.zeros((count, 4), dtype=np.float64)
    times = np.zeros(count, dtype=np.float64)
    init = np.asarray(init_box, dtype=np.float64)
    boxes[0] = init
    frames = tqdm(frame_files, desc=name, unit="frame", leave=False, disable=not progress)
    for index, path in enumerate(frames):
        image = load_rgb(path)
        start = time.perf_counter()
        if index == 0:
            tracker.start(name, image, init.copy())
        else:
            box = np.asarray(tracker.update(image), dtype=np.float64).reshape(-1)
            if box.shape != (4,):
                raise RuntimeError(f"{name}, frame {index}: tracker returned {box.shape[0]} numbers, expected 4")
            boxes[index] = box
        times[index] = time.perf_counter() - start
    return boxes, times


def run_job(tracker: BoxTracker, job: SequenceJob, progress: bool = False) -> JobOutcome:
    """Track ``job`` unless its record exists; write the time file, then the record (both atomic)."""
    if job.is_done():
        return JobOutcome(job.name, len(job.frame_files), skipped=True)
    boxes, times = track_sequence(tracker, job.name, job.frame_files, job.init_box, progress=progress)
    atomic_write_text(job.time_path, format_rows(times, TIME_FORMAT))
    atomic_write_text(job.record_path, format_rows(boxes, job.box_format))
    return JobOutcome(job.name, len(job.frame_files), skipped=False)


def missing_records(jobs: Sequence[SequenceJob]) -> Tuple[str, ...]:
    return tuple(job.name for job in jobs if not job.is_done())


def check_records(jobs: Sequence[SequenceJob]) -> None:
    """Every record must hold one box per frame: catches stale results reused from another data set."""
    for job in jobs:
        rows = len(read_boxes(job.record_path, allow_nan=True))
        if rows != len(job.frame_files):
            raise BenchmarkError(f"{job.record_path}: {rows} boxes for {len(job.frame_files)} frames (a stale result "
                                 "from another run?); delete it or choose another --tracker-name")
