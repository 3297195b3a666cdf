"""Track DAVIS sequences into official-format result folders: resumable, sharded, atomic.

A sequence's PNGs are written into ``<results>/.partial/<sequence>/`` and the folder is renamed to
``<results>/<sequence>/`` when the last frame is written, so a sequence folder is always complete and
an interrupted run resumes by skipping the folders that exist. Frame 0 gets the given annotation (the
official evaluation does not score it). Per-frame times go to ``<results>/timing/<sequence>.txt``
(frame 0 = initialisation), written before the rename.

``--workers N`` (a spawn pool) and torchrun ranks split the sequences exactly as the GOT-10k runner
does (:mod:`d3s_vot.integrations.box_runner.sharding`).
"""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

from d3s_vot.common.io_utils import atomic_write_text
from d3s_vot.integrations.box_runner.boxio import BenchmarkError, format_rows
from d3s_vot.integrations.box_runner.runner import load_rgb
from d3s_vot.integrations.box_runner import sharding
from d3s_vot.integrations.box_runner.sharding import JobRunner
from d3s_vot.integrations.box_runner.trackers import RunnerTrackerSpec
from d3s_vot.common.distributed import DistContext
from d3s_vot.integrations.davis.dataset import DavisSequence
from d3s_vot.integrations.davis.labels import write_label_png
from d3s_vot.integrations.davis.trackers import MaskTracker, build_mask_tracker

TIME_FORMAT = "%.8f"
PARTIAL_DIR = ".partial"
TIMING_DIR = "timing"
RUN_FILE = "run.json"
RUN_FORMAT = "d3s_vot.davis_results/1"


@dataclass(frozen=True)
class DavisJob:
    """One sequence to track into ``results_dir``."""

    sequence: DavisSequence
    results_dir: str

    @property
    def name(self) -> str:
        return self.sequence.name

    @property
    def output_dir(self) -> Path:
        return Path(self.results_dir) / self.name

    @property
    def time_path(self) -> Path:
        return Path(self.results_dir) / TIMING_DIR / f"{self.name}.txt"

    def is_done(self) -> bool:
        return self.output_dir.is_dir()


def check_run_identity(results_dir: Path, identity: dict) -> None:
    """Refuse to resume into a folder written by another tracker, data set year or split; record the
    identity of a new folder."""
    record = results_dir / RUN_FILE
    wanted = {"format": RUN_FORMAT, **identity}
    if record.is_file():
        try:
            found = json.loads(record.read_text())
        except (OSError, ValueError) as exc:
            raise BenchmarkError(f"{record}: unreadable ({exc}); delete it or choose another --results") from None
        if found != wanted:
            differing = ", ".join(f"{k}={found.get(k)!r}" for k in wanted if found.get(k) != wanted[k])
            raise BenchmarkError(f"{record}: these results are from another run ({differing}); resume only with "
                                 "the same settings, or choose another --results folder")
        return
    atomic_write_text(record, json.dumps(wanted, indent=2) + "\n")


def _frame(sequence: DavisSequence, index: int) -> np.ndarray:
    image = load_rgb(sequence.frame_files[index])
    if image.shape[:2] != sequence.size:
        raise BenchmarkError(f"{sequence.frame_files[index]}: {image.shape[1]}x{image.shape[0]} pixels, but the "
                             f"annotation {sequence.annotation_files[0]} is {sequence.size[1]}x{sequence.size[0]}")
    return image


def run_job(tracker: MaskTracker, job: DavisJob, progress: bool = False) -> bool:
    """Track ``job`` unless its folder exists; returns whether it was tracked now."""
    if job.is_done():
        return False
    sequence = job.sequence
    partial = Path(job.results_dir) / PARTIAL_DIR / job.name
    if partial.exists():
        shutil.rmtree(partial)          # left by an interrupted run
    times = np.zeros(len(sequence.frame_files))
    first = sequence.labels(0)
    frames = tqdm(range(len(sequence.frame_files)), desc=job.name, unit="frame", leave=False, disable=not progress)
    for index in frames:
        image = _frame(sequence, index)
        start = time.perf_counter()
        if index == 0:
            tracker.start(sequence, image, first)
            labels = first
        else:
            labels = tracker.update(image)
        times[index] = time.perf_counter() - start
        write_label_png(partial / f"{sequence.frame_names[index]}.png", labels)
    atomic_write_text(job.time_path, format_rows(times, TIME_FORMAT))
    os.replace(partial, job.output_dir)
    return True


#: how the shared sharded runner (:mod:`d3s_vot.integrations.box_runner.sharding`) runs DAVIS jobs
DAVIS_RUNNER = JobRunner(build=build_mask_tracker, run=run_job)


def run_sharded(spec: RunnerTrackerSpec, jobs: Sequence[DavisJob], ctx: DistContext, *, workers: int,
                wait_timeout: float, progress: bool, desc: str) -> bool:
    """This rank's share of ``jobs``; True on rank 0 once every sequence folder exists (then it scores),
    False on the other ranks."""
    return sharding.run_sharded(spec, jobs, ctx, workers=workers, wait_timeout=wait_timeout, progress=progress,
                                desc=desc, runner=DAVIS_RUNNER)
