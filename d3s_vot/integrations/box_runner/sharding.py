"""Spreading sequences over processes: ``--workers N`` on one machine and torchrun ranks.

* torchrun (``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` in the environment): rank ``r`` of ``N`` takes
  sequences ``r, r+N, ...`` of the sorted list and writes their result files; rank 0 then waits for
  all records (a gloo barrier when torch.distributed can be initialised, else by polling the result
  files) and merges/reports.
* ``--workers N``: a ``spawn`` pool on one machine; each worker builds its own tracker once and
  limits torch to ``cpu_count // N`` threads (or ``--threads``) so the workers don't fight over cores.
  On CPU the last bits of D3S's boxes depend on the torch thread count (summation order): compare
  runs bit for bit only at the same ``--threads``.

Results are per-sequence files written atomically, so any of these runs can be interrupted and
started again: finished sequences are skipped.
"""
from __future__ import annotations

import dataclasses
import multiprocessing
import os
import time
from datetime import timedelta
from dataclasses import dataclass
from typing import Any, Callable, List, Sequence, TypeVar

from tqdm import tqdm

from d3s_vot.common.distributed import DistContext
from d3s_vot.integrations.box_runner.boxio import BenchmarkError
from d3s_vot.integrations.box_runner.runner import missing_records, run_job
from d3s_vot.integrations.box_runner.trackers import RunnerTrackerSpec, build_box_tracker

T = TypeVar("T")


def shard(items: Sequence[T], rank: int, world_size: int) -> List[T]:
    """Round-robin split: rank ``r`` gets items ``r, r + world_size, ...``."""
    return list(items[rank::world_size])


def threads_per_worker(workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // max(1, workers))


@dataclass(frozen=True)
class JobRunner:
    """How one kind of job runs: ``build(spec)`` makes a process's tracker (once), ``run(tracker, job,
    progress=...)`` runs one job. Both are module-level functions, so spawn workers receive them by
    reference. Jobs need ``name`` and ``is_done()`` (their result exists)."""
    build: Callable[[RunnerTrackerSpec], Any]
    run: Callable[..., Any]


#: the GOT-10k/TrackingNet box runner
BOX_RUNNER = JobRunner(build=build_box_tracker, run=run_job)

# Per-process tracker of a pool worker: built on the worker's first sequence (not in the pool
# initializer, where an exception would make the pool respawn workers forever).
_worker_state: dict = {}


def _init_worker(spec: RunnerTrackerSpec, runner: JobRunner) -> None:
    os.environ["OMP_NUM_THREADS"] = str(spec.threads)
    os.environ["MKL_NUM_THREADS"] = str(spec.threads)
    _worker_state["spec"], _worker_state["runner"] = spec, runner


def _run_in_worker(job):
    runner: JobRunner = _worker_state["runner"]
    tracker = _worker_state.get("tracker")
    if tracker is None:
        tracker = _worker_state["tracker"] = runner.build(_worker_state["spec"])
    return runner.run(tracker, job)


def run_jobs(spec: RunnerTrackerSpec, jobs: Sequence[Any], workers: int = 1, progress: bool = True,
             desc: str = "sequences", runner: JobRunner = BOX_RUNNER) -> List[Any]:
    """Run every unfinished job, in this process (``workers <= 1``) or in a spawn pool; the outcomes of
    the jobs run now."""
    todo = [job for job in jobs if not job.is_done()]
    outcomes: List[Any] = []
    with tqdm(total=len(jobs), initial=len(jobs) - len(todo), desc=desc, unit="seq",
              disable=not progress) as bar:
        if not todo:
            return outcomes
        if workers <= 1:
            tracker = runner.build(spec)
            for job in todo:
                outcomes.append(runner.run(tracker, job, progress=progress))
                bar.update(1)
            return outcomes
        if spec.threads is None:
            # from the requested N, not from what is left: a resumed run computes like the first one
            spec = dataclasses.replace(spec, threads=threads_per_worker(workers))
        context = multiprocessing.get_context("spawn")
        with context.Pool(min(workers, len(todo)), initializer=_init_worker, initargs=(spec, runner)) as pool:
            for outcome in pool.imap_unordered(_run_in_worker, todo):
                outcomes.append(outcome)
                bar.update(1)
    return outcomes


def init_distributed(ctx: DistContext, timeout_s: float) -> bool:
    """Join the torchrun group with gloo (CPU-only barrier); False when not under torchrun."""
    if ctx.world_size <= 1 or "MASTER_ADDR" not in os.environ:
        return False
    import torch.distributed as dist
    if not dist.is_available():
        return False
    if not dist.is_initialized():
        dist.init_process_group("gloo", rank=ctx.rank, world_size=ctx.world_size,
                                timeout=timedelta(seconds=timeout_s))
    return True


def finish_distributed(active: bool) -> None:
    if active:
        import torch.distributed as dist
        if dist.is_initialized():
            dist.destroy_process_group()


def wait_for_records(jobs: Sequence[Any], use_barrier: bool, timeout_s: float,
                     poll_s: float = 2.0) -> None:
    """Block until every job's record exists: a gloo barrier when joined, else by polling the files."""
    if use_barrier:
        import torch.distributed as dist
        dist.barrier()
    deadline = time.monotonic() + timeout_s
    while True:
        missing = missing_records(jobs)
        if not missing:
            return
        if use_barrier or time.monotonic() > deadline:
            raise BenchmarkError(
                f"{len(missing)} sequence(s) have no result after waiting for the other ranks "
                f"(first: {missing[0]}); re-run to resume")
        time.sleep(poll_s)


def run_sharded(spec: RunnerTrackerSpec, jobs: Sequence[Any], ctx: DistContext, *, workers: int,
                wait_timeout: float, progress: bool, desc: str, runner: JobRunner = BOX_RUNNER) -> bool:
    """Run this rank's share of ``jobs`` (with ``workers`` local processes). Returns True on rank 0
    once every rank's records exist (the caller then reports), False on the other ranks."""
    distributed = init_distributed(ctx, wait_timeout)
    try:
        run_jobs(spec, shard(jobs, ctx.rank, ctx.world_size), workers=workers, progress=progress,
                 desc=desc + (f" rank {ctx.rank}" if ctx.world_size > 1 else ""), runner=runner)
        if not ctx.is_main and not distributed:
            return False
        wait_for_records(jobs, distributed, wait_timeout)
    finally:
        finish_distributed(distributed)
    return ctx.is_main
