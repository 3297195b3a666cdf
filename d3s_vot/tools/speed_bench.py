"""Speed benchmark of the D3S tracker: ``python -m d3s_vot.bench``.

Runs the real tracker on synthetic sequences and reports, from one run on one machine:

* whole-tracker figures: the sequence-mean frame time of ``tracker.track`` (filter-update frames
  included), the ``tracker.initialize`` time and the peak memory;
* the same figures as ratios to *bounds* measured in the same run: the frame bound is one DCF trunk
  pass at 256x256 plus one segmentation trunk pass at 384x384 (batch 1, conv1..layer3), the init
  bound is the first-frame trunk batch (27 augmented samples at 256x256) plus one segmentation trunk
  pass, each in its fastest memory layout (NCHW or channels-last), timed in rounds between the
  tracker's own timed calls so that both meet the same machine load;
* per-stage medians of the tracker's real ``initialize`` and ``track`` calls, reported by its stage
  hooks (d3s_vot.tracker.stages), so the table says where the time goes;
* compute floors of the DCF optimisations (d3s_vot.tools.compute_floors): their matrix-product work, counted
  inside the tracker's own stages, at this machine's best matrix-product rate.

Numbers are medians after warm-up; on CUDA every timed region is synchronised. See docs/speed.md.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import resource
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, ContextManager, Dict, Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from d3s_vot.devices import synchronize
from d3s_vot.factory import TrackerBuildError, TrackerSpec, build_tracker, check_spec, load_spec_weights
from d3s_vot.common.cli import CliArgumentParser, run_cli
from d3s_vot.common.io_utils import InputError, atomic_write_text
from d3s_vot.model.segm_net import SEGM_TAPS
from d3s_vot.params import first_frame_samples, parse_assignments
from d3s_vot.runtime import configure_process
from d3s_vot.tools.compute_floors import counted_flops, dcf_floors, matmul_peak_gflops
from d3s_vot.tools.sync_count import render_counts, run_count
from d3s_vot.tracker.d3s import deterministic_mode
from d3s_vot.tracker.stages import FRAME_STAGES, INIT_STAGES, NULL_STAGE, SEGMENTATION_STAGES, StageLog, StageTimer
from d3s_vot.integrations.vot.toolkit_fps import hardware

DEFAULT_SIZES = ((640, 480), (1280, 720))
QUICK_SIZES = ((640, 480),)
MIN_SIDE = 64
RANDOM_WEIGHTS_SEED = 0


@dataclass(frozen=True)
class BenchConfig:
    """What one benchmark run measures and how often."""

    device: str = "cpu"
    dtype: str = "float32"
    weights: Optional[str] = None           # None: random (untrained) weights
    frames: int = 50                        # tracked frames per sequence (after the init frame)
    sizes: Tuple[Tuple[int, int], ...] = DEFAULT_SIZES
    threads: Optional[int] = None           # None: torch's default
    warmup: int = 2                         # untimed calls before each timed measurement
    repeats: int = 5                        # timed calls per bound pass and micro-benchmark (median reported)
    init_repeats: int = 3                   # timed tracker.initialize calls per size
    seed: int = 0                           # synthetic scene seed
    overrides: Tuple[Tuple[str, str], ...] = ()   # D3SParams fields, as strings
    json_path: Optional[str] = None
    quick: bool = False
    fast: bool = False                      # measure the fast mode (D3SParams.fast_mode) instead of the default
    compare_fast: bool = False              # also run default and fast mode side by side: speed-up and IoU
    count_syncs: bool = False               # count host syncs and ops (d3s_vot.tools.sync_count) instead of timing


def tracker_spec(cfg: BenchConfig, fast_mode: Optional[bool] = None) -> TrackerSpec:
    """The bench's tracker, for d3s_vot.factory (``fast_mode``: override the config's)."""
    return TrackerSpec(weights=cfg.weights, random_weights_seed=None if cfg.weights else RANDOM_WEIGHTS_SEED,
                       device=cfg.device, dtype=cfg.dtype, params=dict(cfg.overrides),
                       fast_mode=cfg.fast if fast_mode is None else fast_mode)


@dataclass
class Timer:
    """Median wall-clock milliseconds of a callable, synchronising the device around each call."""

    warmup: int
    repeats: int
    device: torch.device

    def sync(self) -> None:
        synchronize(self.device)

    def measure(self, fn: Callable[[], Any], warmup: Optional[int] = None,
                repeats: Optional[int] = None) -> Tuple[float, Any]:
        """(median ms, last result) of ``warmup`` untimed and ``repeats`` timed calls."""
        warmup = self.warmup if warmup is None else warmup
        repeats = self.repeats if repeats is None else repeats
        samples: List[float] = []
        result = None
        for i in range(warmup + repeats):
            self.sync()
            start = time.perf_counter()
            result = fn()
            self.sync()
            if i >= warmup:
                samples.append(time.perf_counter() - start)
        return 1000.0 * statistics.median(samples), result


# ------------------------------------------------------------------------------------------------
# Bounds: bare trunk passes in the fastest memory layout
# ------------------------------------------------------------------------------------------------

LAYOUTS = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}


def plain_trunks(weights, device: torch.device, dtype: torch.dtype):
    """The two trunks exactly as the checkpoints define them (BatchNorm layers unfolded), eval mode."""
    from d3s_vot.tracker.d3s import load_networks

    segm_net, dcf_net = load_networks(weights)
    return tuple(net.eval().requires_grad_(False).to(device=device, dtype=dtype)
                 for net in (dcf_net, segm_net.feature_extractor))


PASSES = ("dcf_trunk_256", "segm_trunk_384", "init_trunk_batch_256")
FRAME_PASSES = ("dcf_trunk_256", "segm_trunk_384")
INIT_PASSES = ("init_trunk_batch_256", "segm_trunk_384")
Form = Tuple[Any, Any, torch.memory_format]          # (DCF trunk, segmentation trunk, memory layout)


def bound_forms(tracker, weights) -> Dict[str, Form]:
    """The checkpoints' trunks (BatchNorm unfolded, as the original runs them) in each memory layout,
    and the trunks as this tracker runs them (folded and fused where it does) under 'tracker'."""
    forms: Dict[str, Form] = {}
    for name, fmt in LAYOUTS.items():
        dcf_net, segm_trunk = (net.to(memory_format=fmt) for net in plain_trunks(weights, tracker.device,
                                                                                 tracker.dtype))
        forms[name] = (dcf_net, segm_trunk, fmt)
    precision = tracker.trunk_precision        # bfloat16 autocast in the CUDA fast mode, else nothing

    def own(net):
        def call(x, taps):
            with precision():
                return net(x, taps)
        return call
    forms["tracker"] = (own(tracker.dcf_net), own(tracker.segm_net.feature_extractor), tracker.memory_format)
    return forms


class BoundRounds:
    """Times the bound passes in rounds interleaved with the tracker's own work.

    A round times every form once in the given passes. The bench runs a round of the init passes
    before each timed ``initialize`` and a round of the frame passes every few tracked frames, so a
    bound and the tracker time divided by it are measured under the same machine load (the machine
    may be shared), and within a round every form meets the same load too."""

    def __init__(self, forms: Dict[str, Form], init_samples: int, dtype: torch.dtype, timer: Timer,
                 kernel_mode: Optional[Callable[[], ContextManager[Any]]] = None):
        self.timer = timer
        # the tracker's own CUDA kernel settings (deterministic_mode), so that bounds and tracker
        # calls get the same cuDNN / TF32 choices
        self.kernel_mode = kernel_mode if kernel_mode is not None else contextlib.nullcontext
        self.forms = tuple(forms)
        gen = torch.Generator().manual_seed(0)
        base = {side_n: torch.randn(side_n[1], 3, side_n[0], side_n[0], generator=gen, dtype=torch.float32)
                for side_n in ((256, 1), (256, init_samples), (384, 1))}
        self.calls: Dict[Tuple[str, str], Callable[[], Any]] = {}
        for name, (dcf_net, segm_trunk, fmt) in forms.items():
            x256, batch, x384 = (base[k].to(device=timer.device, dtype=dtype).contiguous(memory_format=fmt)
                                 for k in ((256, 1), (256, init_samples), (384, 1)))
            self.calls[(name, "dcf_trunk_256")] = lambda net=dcf_net, x=x256: net(x, ("layer3",))
            self.calls[(name, "segm_trunk_384")] = lambda net=segm_trunk, x=x384: net(x, SEGM_TAPS)
            self.calls[(name, "init_trunk_batch_256")] = lambda net=dcf_net, x=batch: net(x, ("layer3",))
        self.samples: Dict[str, Dict[Tuple[str, str], List[float]]] = {}

    def run(self, passes: Tuple[str, ...] = PASSES, tag: Optional[str] = None) -> None:
        """One round; the times are kept under ``tag`` (None: an untimed warm-up round)."""
        with torch.no_grad(), self.kernel_mode():
            for key, fn in self.calls.items():
                if key[1] in passes:
                    ms, _ = self.timer.measure(fn, warmup=0, repeats=1)
                    if tag is not None:
                        self.samples.setdefault(tag, {}).setdefault(key, []).append(ms)

    def rounds(self, tag: str, pass_name: str) -> int:
        return len(self.samples.get(tag, {}).get(("tracker", pass_name), []))

    def medians(self, tag: Optional[str] = None) -> Dict[str, Dict[str, float]]:
        """form -> pass -> median ms, over the rounds of one tag or of all tags."""
        pooled: Dict[Tuple[str, str], List[float]] = {}
        for t, per_key in self.samples.items():
            if tag is None or t == tag:
                for key, values in per_key.items():
                    pooled.setdefault(key, []).extend(values)
        out: Dict[str, Dict[str, float]] = {name: {} for name in self.forms}
        for (name, pass_name), values in pooled.items():
            out[name][pass_name] = statistics.median(values)
        return out


SIZE_BOUND_KEYS = ("frame_bound_ms", "init_bound_ms", "tracker_frame_trunks_ms", "tracker_init_trunks_ms")


def summarize_bounds(times: Dict[str, Dict[str, float]], tracker) -> Dict[str, Any]:
    """The bounds from per-form pass medians: for each pass the fastest plain layout; frame bound =
    DCF trunk + segmentation trunk, init bound = 27-sample batch + segmentation trunk. Also the
    tracker's own trunks, the bound of its non-network overhead."""
    times = dict(times)
    own = times.pop("tracker")
    per_layout = times
    best: Dict[str, Any] = {}
    for key in PASSES:
        layout = min(per_layout, key=lambda n: per_layout[n][key])
        best[key + "_ms"] = per_layout[layout][key]
        best[key + "_layout"] = layout
    best["frame_bound_ms"] = best["dcf_trunk_256_ms"] + best["segm_trunk_384_ms"]
    best["init_bound_ms"] = best["init_trunk_batch_256_ms"] + best["segm_trunk_384_ms"]
    best["tracker_trunks_ms"] = own
    best["tracker_trunks_folded"] = bool(tracker.folded)
    best["tracker_trunks_fused"] = bool(tracker.fused)
    best["tracker_frame_trunks_ms"] = own["dcf_trunk_256"] + own["segm_trunk_384"]
    best["tracker_init_trunks_ms"] = own["init_trunk_batch_256"] + own["segm_trunk_384"]
    best["per_layout_ms"] = per_layout
    return best



def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def measure_peaks(tracker, timer: Timer) -> Dict[str, float]:
    """This machine's best matrix-product GFLOP/s in the tracker's dtype and in its DCF dtype, the
    rates the compute floors divide by (see d3s_vot.tools.compute_floors)."""
    return {_dtype_name(dtype): matmul_peak_gflops(dtype, tracker.device, lambda fn: timer.measure(fn)[0])
            for dtype in dict.fromkeys((tracker.dtype, tracker.dcf_dtype))}


def add_floors(size_report: Dict[str, Any], bounds: Dict[str, Any], peaks: Dict[str, float],
               dcf_dtype: str, dtype: str) -> None:
    """The DCF stages' compute floors and the init floor (the tracker's own trunk passes + the
    floors of the PCA covariance and the joint Gauss-Newton), also as a ratio to the init bound."""
    flops = {**size_report["init_flops"], **size_report["cg_flops"]}
    floors = dcf_floors(flops, peaks[dcf_dtype], peaks[dtype])
    size_report["floors_ms"] = floors
    size_report["init_floor_ms"] = (bounds["tracker_init_trunks_ms"] + floors["pca"]
                                    + floors.get("joint_gauss_newton", 0.0))
    size_report["init_floor_ratio"] = size_report["init_floor_ms"] / bounds["init_bound_ms"]


# ------------------------------------------------------------------------------------------------
# Compute floors: matrix-product work counted inside the tracker's stages
# ------------------------------------------------------------------------------------------------

UPDATE_STAGE = "filter_update"          # the frame stage that runs on the update frames only
INIT_FLOP_STAGES = ("pca", "joint_gauss_newton")
FRAME_FLOP_STAGES = (UPDATE_STAGE,)


class FlopCounter:
    """A stage recorder (d3s_vot.tracker.stages) that counts the matrix-product work of the chosen
    stages with torch's ``FlopCounterMode`` (see d3s_vot.tools.compute_floors.counted_flops); the other stages
    run uninstrumented. ``flops``: stage -> FLOPs of its last call."""

    def __init__(self, names: Sequence[str]):
        self.names = frozenset(names)
        self.flops: Dict[str, float] = {}

    def stage(self, name: str) -> ContextManager[Any]:
        return self._count(name) if name in self.names else NULL_STAGE

    @contextlib.contextmanager
    def _count(self, name: str) -> Iterator[None]:
        with FlopCounterMode(display=False) as counter:
            yield
        self.flops[name] = float(counter.get_total_flops())


def count_dcf_flops(tracker, seq, first_update: Optional[int]) -> Dict[str, float]:
    """FLOPs of the counted DCF stages, from one extra (untimed) ``initialize`` on the sequence's first
    frame and, when ``first_update`` (0-based tracked frame) is given, its frames up to that filter
    update: the same calls as the timed run, so the same work."""
    counter = FlopCounter(INIT_FLOP_STAGES + (FRAME_FLOP_STAGES if first_update is not None else ()))
    with tracker.record_stages(counter):
        tracker.initialize(seq.frames[0], seq.polygons[0])
        if first_update is not None:
            for image in seq.frames[1:first_update + 2]:
                tracker.track(image)
    return counter.flops


def full_memory_cg(tracker, timer: Timer) -> Tuple[float, float]:
    """(median ms, counted FLOPs) of one filter update with every slot of the sample memory filled, a
    state a 50-frame sequence never reaches: a micro-benchmark of the public
    ``d3s_vot.tracker.dcf.filter_gauss_newton_step`` on synthetic inputs of the tracker's shapes
    (``sample_memory_size`` samples of ``compressed_dim`` x F x F, F = ``image_sample_size //
    feature_stride``; a random nonzero filter, equal weights; ``cg_iter`` CG iterations) in the DCF
    dtype. The values do not change the work; fixed seed, torch's global generator is left alone."""
    from d3s_vot.tracker.dcf import filter_gauss_newton_step

    p = tracker.params
    n, c, k = p.sample_memory_size, p.compressed_dim, p.kernel_size
    side = p.image_sample_size // p.feature_stride
    gen = torch.Generator().manual_seed(0)

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen, dtype=torch.float64).to(device=tracker.device,
                                                                           dtype=tracker.dcf_dtype)

    samples, labels, filt = rand(n, c, side, side), rand(n, 1, side, side).abs(), 0.01 * rand(1, c, k, k)
    weights = torch.full((n,), 1.0 / n, dtype=tracker.dcf_dtype, device=tracker.device)

    def step() -> torch.Tensor:
        return filter_gauss_newton_step(filt, samples, labels, weights, p.filter_reg, p.response_activation_alpha,
                                        p.cg_iter, n)

    with torch.no_grad():
        ms, _ = timer.measure(step)
        return ms, counted_flops(step)


# ------------------------------------------------------------------------------------------------
# Whole tracker, with its stages
# ------------------------------------------------------------------------------------------------

BOUND_ROUNDS_PER_SEQUENCE = 10          # frame-bound rounds spread over a tracked sequence (at least)

Stages = List[Tuple[str, Any]]          # one tracker call's (stage, ms) records, in the order they ran


@dataclass
class SequenceRun:
    """One pass over a sequence: the call times (ms), the results and, with a recorder, each call's
    stage records."""

    init_ms: List[float] = field(default_factory=list)
    frame_ms: List[float] = field(default_factory=list)
    results: List[Any] = field(default_factory=list)
    init_stages: List[Stages] = field(default_factory=list)
    frame_stages: List[Stages] = field(default_factory=list)

    def frames_with(self, name: str) -> List[int]:
        """The tracked frames (0-based) whose call reported stage ``name``."""
        return [i for i, stages in enumerate(self.frame_stages) if any(n == name for n, _ in stages)]


def _timed_run(tracker, seq, timer: Timer, init_repeats: int, progress_desc: Optional[str] = None,
               between: Optional[Callable[[str, int], None]] = None, recorder=None) -> SequenceRun:
    """``init_repeats`` timed initialisations from the first polygon, then every frame of the
    sequence tracked and timed; a progress bar when ``progress_desc`` is given. ``between(kind, i)``,
    untimed, runs before the i-th initialisation ('init') and after the i-th tracked frame ('frame').
    ``recorder`` (a StageTimer or StageLog) receives the tracker's stages; each call's are kept."""
    from tqdm import tqdm

    run = SequenceRun()
    with tracker.record_stages(recorder) if recorder is not None else contextlib.nullcontext():
        for i in range(init_repeats):
            if between is not None:
                between("init", i)
            ms, _ = timer.measure(lambda: tracker.initialize(seq.frames[0], seq.polygons[0]), warmup=0, repeats=1)
            run.init_ms.append(ms)
            if recorder is not None:
                run.init_stages.append(recorder.take())
        for i, image in enumerate(tqdm(seq.frames[1:], desc=progress_desc, unit="frame",
                                       disable=progress_desc is None, file=sys.stderr)):
            timer.sync()
            start = time.perf_counter()
            run.results.append(tracker.track(image))
            timer.sync()
            run.frame_ms.append(1000.0 * (time.perf_counter() - start))
            if recorder is not None:
                run.frame_stages.append(recorder.take())
            if between is not None:
                between("frame", i)
    return run


def stage_medians(calls: Sequence[Stages], order: Sequence[str]) -> Tuple[Dict[str, float], Dict[str, int]]:
    """(stage -> median ms, stage -> number of calls that ran it) over the calls, in ``order`` (a stage
    the order does not name comes last rather than being dropped)."""
    values: Dict[str, List[float]] = {}
    for stages in calls:
        for name, ms in stages:
            values.setdefault(name, []).append(ms)
    names = [n for n in order if n in values] + [n for n in values if n not in order]
    return {n: statistics.median(values[n]) for n in names}, {n: len(values[n]) for n in names}


def stage_coverage(calls: Sequence[Stages], call_ms: Sequence[float]) -> float:
    """The share of the calls' measured time that their stages account for (the rest is bookkeeping
    between the stages and the call's own overhead)."""
    return sum(ms for stages in calls for _, ms in stages) / sum(call_ms)


def peak_memory_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0     # KiB on Linux


def stages_in_timed_run(device: torch.device) -> bool:
    """On the CPU the stages are timed during the timed run itself (two perf_counter calls per
    stage). On CUDA the synchronisation around each stage would stall the host-device overlap and
    distort the frame times: there the timed run only notes the stage names, and a second pass,
    instrumented, times the stages."""
    return device.type == "cpu"


def bench_size(tracker, width: int, height: int, cfg: BenchConfig, timer: Timer, rounds: BoundRounds,
               progress: bool) -> Dict[str, Any]:
    """Init and sequence timings of the whole tracker at one image size, with bound rounds
    interleaved (tagged with the size); its per-stage medians from the same calls (or, on CUDA, a
    second pass over the same sequence); the FLOPs of the counted DCF stages from one more pass."""
    from d3s_vot.synthetic.scene import SceneConfig, generate_sequence

    seq = generate_sequence(seed=cfg.seed, num_frames=cfg.frames + 1, config=SceneConfig(width=width, height=height))
    if tracker.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(tracker.device)
    tag = f"{width}x{height}"
    stride = max(1, cfg.frames // max(BOUND_ROUNDS_PER_SEQUENCE, cfg.repeats))

    def between(kind: str, i: int) -> None:
        if kind == "init":
            rounds.run(INIT_PASSES, tag)
        elif i % stride == stride - 1:
            rounds.run(FRAME_PASSES, tag)

    in_timed_run = stages_in_timed_run(tracker.device)
    timed = _timed_run(tracker, seq, timer, cfg.init_repeats,
                       progress_desc=f"tracking {width}x{height}" if progress else None, between=between,
                       recorder=StageTimer(tracker.device) if in_timed_run else StageLog())
    while rounds.rounds(tag, "dcf_trunk_256") < cfg.repeats:      # short sequences: top up to --repeats
        rounds.run(FRAME_PASSES, tag)
    peak = peak_memory_mib(tracker.device)
    staged = timed if in_timed_run else _timed_run(
        tracker, seq, timer, cfg.init_repeats, progress_desc=f"stages {width}x{height}" if progress else None,
        recorder=StageTimer(tracker.device))

    frame_stage_ms, frame_counts = stage_medians(staged.frame_stages, FRAME_STAGES)
    init_stage_ms, init_counts = stage_medians(staged.init_stages, INIT_STAGES)
    updates = staged.frames_with(UPDATE_STAGE)
    first_update = updates[0] if updates else None
    flops = count_dcf_flops(tracker, seq, first_update)
    full_cg_ms, full_cg_flops = full_memory_cg(tracker, timer)

    cg = set(timed.frames_with(UPDATE_STAGE))
    frame_ms = timed.frame_ms
    cg_times = [t for i, t in enumerate(frame_ms) if i in cg]
    plain_times = [t for i, t in enumerate(frame_ms) if i not in cg]
    mean_frame = statistics.fmean(frame_ms)
    p = tracker.params
    return {
        "size": tag, "width": width, "height": height, "frames": len(frame_ms),
        "init_ms": statistics.median(timed.init_ms), "frame_mean_ms": mean_frame,
        "frame_median_ms": statistics.median(frame_ms), "frame_max_ms": max(frame_ms), "fps": 1000.0 / mean_frame,
        "cg_frames": len(cg_times), "cg_frame_mean_ms": statistics.fmean(cg_times) if cg_times else None,
        "plain_frame_mean_ms": statistics.fmean(plain_times) if plain_times else None,
        "segmentation_frames": len(staged.frames_with(SEGMENTATION_STAGES[0])),
        "segmentation_used_frames": sum(int(r.segmentation_used) for r in timed.results), "peak_memory_mib": peak,
        "frame_stages_ms": frame_stage_ms, "frame_stage_counts": frame_counts,
        "per_frame_stage_sum_ms": sum(ms for name, ms in frame_stage_ms.items() if name != UPDATE_STAGE),
        "frame_stage_coverage": stage_coverage(staged.frame_stages, staged.frame_ms),
        "init_stages_ms": init_stage_ms, "init_stage_counts": init_counts,
        "init_stage_sum_ms": sum(init_stage_ms.values()),
        "init_stage_coverage": stage_coverage(staged.init_stages, staged.init_ms),
        "init_flops": {name: flops[name] for name in INIT_FLOP_STAGES if name in flops},
        "cg_flops": {**({UPDATE_STAGE: flops[UPDATE_STAGE]} if UPDATE_STAGE in flops else {}),
                     "filter_cg_full_memory": full_cg_flops},
        "filter_update_counted_frame": None if first_update is None else first_update + 2,   # frame_num in track()
        "filter_update_counted_ms": None if first_update is None else dict(staged.frame_stages[first_update])[
            UPDATE_STAGE],
        "filter_cg_full_memory_ms": full_cg_ms, "full_memory_size": p.sample_memory_size, "cg_iterations": p.cg_iter,
    }


def _warm_up(tracker, cfg: BenchConfig) -> None:
    """One small initialise + track, so that one-time costs (allocations, kernel selection) stay out."""
    from d3s_vot.synthetic.scene import SceneConfig, generate_sequence

    seq = generate_sequence(seed=cfg.seed + 1, num_frames=3, config=SceneConfig(width=320, height=240))
    tracker.initialize(seq.frames[0], seq.polygons[0])
    for image in seq.frames[1:]:
        tracker.track(image)


def _box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two [x, y, w, h] boxes (0 when either is empty or not finite)."""
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return 0.0
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = a[2] * a[3] + b[2] * b[3] - inter
    return float(inter / union) if union > 0 else 0.0



def compare_fast_mode(weights, cfg: BenchConfig, progress: bool) -> List[Dict[str, Any]]:
    """The default and the fast mode on the same sequences, one after the other in one process:
    mean frame time, init time, speed-ups and the per-frame IoU of the fast mode's boxes against
    the default mode's (axis-aligned boxes). Both trackers share ``weights``."""
    from tqdm import tqdm

    from d3s_vot.synthetic.scene import SceneConfig, generate_sequence

    with _input_errors():
        trackers = {name: build_tracker(tracker_spec(cfg, fast_mode=fast), weights)
                    for name, fast in (("default", False), ("fast", True))}
    timer = Timer(0, 1, trackers["default"].device)
    for tracker in trackers.values():
        _warm_up(tracker, cfg)
    rows = []
    for width, height in tqdm(cfg.sizes, desc="default vs fast mode", unit="size", disable=not progress,
                              file=sys.stderr):
        seq = generate_sequence(seed=cfg.seed, num_frames=cfg.frames + 1,
                                config=SceneConfig(width=width, height=height))
        runs = {name: _timed_run(tracker, seq, timer, cfg.init_repeats,
                                 progress_desc=f"{name} mode {width}x{height}" if progress else None)
                for name, tracker in trackers.items()}
        ious = [_box_iou(a.box, b.box) for a, b in zip(runs["default"].results, runs["fast"].results)]
        row: Dict[str, Any] = {"size": f"{width}x{height}", "frames": len(ious)}
        for name, run in runs.items():
            row[f"{name}_init_ms"] = statistics.median(run.init_ms)
            row[f"{name}_frame_mean_ms"] = statistics.fmean(run.frame_ms)
        row["init_speedup"] = row["default_init_ms"] / row["fast_init_ms"]
        row["frame_speedup"] = row["default_frame_mean_ms"] / row["fast_frame_mean_ms"]
        row.update(iou_mean=statistics.fmean(ious), iou_min=min(ious),
                   iou_at_least_0_5=sum(v >= 0.5 for v in ious) / len(ious), iou_per_frame=ious)
        rows.append(row)
    return rows


@contextlib.contextmanager
def _input_errors() -> Iterator[None]:
    """A setting the factory refuses (weights, device, dtype, parameters) is the bench's InputError."""
    try:
        yield
    except TrackerBuildError as exc:
        raise InputError(str(exc)) from None


def run_bench(cfg: BenchConfig, progress: bool = True) -> Dict[str, Any]:
    """Everything the bench measures, as a JSON-ready dict."""

    # before any large allocation: the bounds and the tracker run under the same allocator settings
    malloc_tuned = configure_process(cfg.threads)
    if cfg.threads is not None:
        cv2.setNumThreads(cfg.threads)
    spec = tracker_spec(cfg)
    with _input_errors():
        check_spec(spec)                # the cheap settings first, before the (slow) weights are read
        weights = load_spec_weights(spec)
        tracker = build_tracker(spec, weights)
    weights_desc = str(Path(cfg.weights).resolve()) if cfg.weights else \
        f"random (untrained, random_weights(seed={RANDOM_WEIGHTS_SEED}))"
    params = tracker.params
    timer = Timer(cfg.warmup, cfg.repeats, tracker.device)

    _warm_up(tracker, cfg)
    # the size of the first-frame batch the init bound passes through the trunk
    init_samples = first_frame_samples(params)
    rounds = BoundRounds(bound_forms(tracker, weights), init_samples, tracker.dtype, timer,
                         kernel_mode=lambda: deterministic_mode(params.deterministic, tracker.device))
    for _ in range(timer.warmup):
        rounds.run()
    sizes = [bench_size(tracker, w, h, cfg, timer, rounds, progress) for w, h in cfg.sizes]
    bounds = summarize_bounds(rounds.medians(), tracker)
    bounds["init_samples"] = init_samples
    peaks = measure_peaks(tracker, timer)
    for s in sizes:
        # each size's ratios use the bound rounds run during that size's own timings
        own_bounds = summarize_bounds(rounds.medians(s["size"]), tracker)
        s["bounds"] = {key: own_bounds[key] for key in SIZE_BOUND_KEYS}
        s["bound_rounds"] = {"frame": rounds.rounds(s["size"], "dcf_trunk_256"),
                             "init": rounds.rounds(s["size"], "init_trunk_batch_256")}
        add_floors(s, s["bounds"], peaks, _dtype_name(tracker.dcf_dtype), _dtype_name(tracker.dtype))
        s["frame_ratio"] = s["frame_mean_ms"] / own_bounds["frame_bound_ms"]
        s["init_ratio"] = s["init_ms"] / own_bounds["init_bound_ms"]
        s["frame_ratio_own_trunks"] = s["frame_mean_ms"] / own_bounds["tracker_frame_trunks_ms"]
        s["init_ratio_own_trunks"] = s["init_ms"] / own_bounds["tracker_init_trunks_ms"]

    comparison = compare_fast_mode(weights, cfg, progress) if cfg.compare_fast else None

    hw = hardware()
    hw.update({"malloc_tuned": malloc_tuned, "torch_threads": torch.get_num_threads(),
               "opencv_threads": cv2.getNumThreads(), "opencv": cv2.__version__})
    config = asdict(cfg)
    config["sizes"] = [f"{w}x{h}" for w, h in cfg.sizes]
    config["overrides"] = dict(cfg.overrides)
    return {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "device": str(tracker.device), "dtype": cfg.dtype,
            "weights": weights_desc, "memory_format": "channels_last" if tracker.memory_format == torch.channels_last
            else "nchw", "dcf_dtype": _dtype_name(tracker.dcf_dtype), "hardware": hw,
            "config": config, "bounds": bounds, "matmul_peak_gflops": peaks, "sizes": sizes, "fast_mode": cfg.fast,
            "stage_source": "timed run" if stages_in_timed_run(tracker.device) else "second, instrumented pass",
            "fast_mode_comparison": comparison}


SYNC_COUNT_FRAMES = 11                  # frame 11 is the first regular filter update


def run_sync_count(cfg: BenchConfig) -> Dict[str, Any]:
    """``--count-syncs``: host syncs and ATen ops of the CUDA code path on the first size's sequence
    (d3s_vot.tools.sync_count), with the bench's weights, dtype, parameters and fast mode."""
    configure_process(cfg.threads)
    spec = tracker_spec(cfg)
    with _input_errors():
        check_spec(spec)
        weights = load_spec_weights(spec)
    width, height = cfg.sizes[0]
    with _input_errors():
        report = run_count(spec, width, height, cfg.frames, cfg.seed, weights=weights)
    report["hardware"] = hardware()
    return report


# ------------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------------

def _fmt(value: Optional[float], spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def render_text(report: Dict[str, Any]) -> str:
    hw, b = report["hardware"], report["bounds"]
    lines = [
        f"D3S speed benchmark, {report['date']}",
        f"device {report['device']} ({hw.get('gpu') or hw['cpu']}), torch {hw['torch']}, "
        f"{hw['torch_threads']} torch threads, dtype {report['dtype']} (DCF in {report['dcf_dtype']}), "
        f"trunks {report['memory_format']}{', FAST MODE' if report.get('fast_mode') else ''}",
        f"weights: {report['weights']}; large blocks kept in the heap (d3s_vot.runtime): "
        f"{'yes' if hw.get('malloc_tuned') else 'no'}",
        "",
        "bounds (bare trunk passes, fastest layout; medians of the rounds run between the tracker's timings):",
        f"  DCF trunk 1x256x256 -> layer3        {b['dcf_trunk_256_ms']:9.1f} ms  ({b['dcf_trunk_256_layout']})",
        f"  segm trunk 1x384x384 conv1..layer3   {b['segm_trunk_384_ms']:9.1f} ms  ({b['segm_trunk_384_layout']})",
        f"  DCF trunk {b['init_samples']}x256x256 -> layer3       {b['init_trunk_batch_256_ms']:9.1f} ms  "
        f"({b['init_trunk_batch_256_layout']})",
        f"  frame bound {b['frame_bound_ms']:.1f} ms, init bound {b['init_bound_ms']:.1f} ms",
        f"the tracker's own trunks ({'BatchNorm folded, ' if b['tracker_trunks_folded'] else ''}"
        f"{'fused oneDNN conv+ReLU, ' if b.get('tracker_trunks_fused') else ''}"
        f"{report['memory_format']}): frame {b['tracker_frame_trunks_ms']:.1f} ms, "
        f"init {b['tracker_init_trunks_ms']:.1f} ms (columns 'own')",
        "",
        f"{'size':>10} {'frames':>6} {'frame ms':>9} {'/bound':>7} {'/own':>6} {'fps':>6} {'CG fr ms':>9} "
        f"{'init ms':>9} {'/bound':>7} {'/own':>6} {'CG full ms':>10} {'peak MiB':>9}",
    ]
    for s in report["sizes"]:
        lines.append(f"{s['size']:>10} {s['frames']:>6} {s['frame_mean_ms']:9.1f} {s['frame_ratio']:7.2f} "
                     f"{s['frame_ratio_own_trunks']:6.2f} "
                     f"{s['fps']:6.2f} {_fmt(s['cg_frame_mean_ms']):>9} {s['init_ms']:9.1f} {s['init_ratio']:7.2f} "
                     f"{s['init_ratio_own_trunks']:6.2f} "
                     f"{s['filter_cg_full_memory_ms']:10.1f} {s['peak_memory_mib']:9.0f}")
    lines.append("ratios per size divide by the bounds of the rounds run during that size's timings:")
    for s in report["sizes"]:
        sb, n = s["bounds"], s["bound_rounds"]
        lines.append(f"{s['size']:>10}  frame bound {sb['frame_bound_ms']:.1f} ms (own {sb['tracker_frame_trunks_ms']:.1f}, "
                     f"{n['frame']} rounds), init bound {sb['init_bound_ms']:.1f} ms "
                     f"(own {sb['tracker_init_trunks_ms']:.1f}, {n['init']} rounds)")
    for s in report["sizes"]:
        lines += _render_stages(s, report.get("stage_source", "timed run"))
    lines += _render_floors(report)
    if report.get("fast_mode_comparison"):
        lines += ["", "default vs fast mode (D3SParams.fast_mode(): DCF in the trackers' dtype, fastest CUDA kernels),",
                  "same sequences, one run each; IoU of the fast mode's boxes against the default mode's:",
                  f"{'size':>10} {'frame ms':>9} {'fast':>7} {'x':>5} {'init ms':>8} {'fast':>7} {'x':>5} "
                  f"{'IoU mean':>9} {'min':>6} {'>=0.5':>6}"]
        for c in report["fast_mode_comparison"]:
            lines.append(f"{c['size']:>10} {c['default_frame_mean_ms']:9.1f} {c['fast_frame_mean_ms']:7.1f} "
                         f"{c['frame_speedup']:5.2f} {c['default_init_ms']:8.0f} {c['fast_init_ms']:7.0f} "
                         f"{c['init_speedup']:5.2f} {c['iou_mean']:9.3f} {c['iou_min']:6.3f} "
                         f"{100 * c['iou_at_least_0_5']:5.0f}%")
    return "\n".join(lines)


def _render_stages(s: Dict[str, Any], source: str) -> List[str]:
    """One size's per-stage medians: ms, share of the stage sum, and how many calls ran the stage."""
    lines = ["", f"per-stage medians at {s['size']} from the tracker's stage hooks ({source}; ms, % of the "
             "stage sum, calls that ran the stage):", "  frame:"]
    counts, total = s["frame_stage_counts"], s["per_frame_stage_sum_ms"]
    for name, ms in s["frame_stages_ms"].items():
        if name != UPDATE_STAGE:
            lines.append(f"    {name:<42} {ms:9.2f} {100 * ms / total:6.1f}% {counts[name]:5d}")
    lines.append(f"    {'sum (without filter_update)':<42} {total:9.2f}   vs measured plain-frame mean "
                 f"{_fmt(s['plain_frame_mean_ms'])}; the stages cover {100 * s['frame_stage_coverage']:.1f}% "
                 "of the frames' time")
    lines.append(f"    {UPDATE_STAGE + ' (CG, update frames)':<42} "
                 f"{_fmt(s['frame_stages_ms'].get(UPDATE_STAGE), '9.2f'):>9} {'':7} {counts.get(UPDATE_STAGE, 0):5d}")
    lines.append(f"    {'filter CG, full memory (' + str(s['full_memory_size']) + ', synthetic)':<42} "
                 f"{s['filter_cg_full_memory_ms']:9.2f}")
    counts, total = s["init_stage_counts"], s["init_stage_sum_ms"]
    lines.append("  init:")
    for name, ms in s["init_stages_ms"].items():
        lines.append(f"    {name:<42} {ms:9.2f} {100 * ms / total:6.1f}% {counts[name]:5d}")
    lines.append(f"    {'sum':<42} {total:9.2f}   vs measured init {s['init_ms']:.1f}; the stages cover "
                 f"{100 * s['init_stage_coverage']:.1f}% of the initialisations' time")
    return lines


def floor_measured_ms(s: Dict[str, Any]) -> Dict[str, Optional[float]]:
    """The measured time each floor compares with: the init stages' medians, the filter update of the
    frame whose work was counted, the full-memory micro-benchmark."""
    return {**s["init_stages_ms"], UPDATE_STAGE: s.get("filter_update_counted_ms"),
            "filter_cg_full_memory": s["filter_cg_full_memory_ms"]}


def _render_floors(report: Dict[str, Any]) -> List[str]:
    peaks = report["matmul_peak_gflops"]
    lines = ["", "compute floors: matrix-product work of the DCF stages (counted inside the tracker's own stages) at",
             "this machine's best square matrix-product rate (" + ", ".join(f"{k} {v:.1f}" for k, v in peaks.items())
             + " GFLOP/s); element-wise work and the eigensolver are not counted:",
             f"{'size':>10}  {'stage':<27} {'GFLOP':>7} {'ms':>9} {'GFLOP/s':>8} {'floor ms':>9} {'x floor':>8}"]
    for s in report["sizes"]:
        measured = floor_measured_ms(s)
        flops = {**s["init_flops"], **s["cg_flops"]}
        for i, (name, floor) in enumerate(s["floors_ms"].items()):
            ms = measured.get(name)
            label = name if name != UPDATE_STAGE else f"{name} (frame {s['filter_update_counted_frame']})"
            lines.append(f"{s['size'] if i == 0 else '':>10}  {label:<27} {flops[name] / 1e9:7.2f} {_fmt(ms, '9.1f'):>9} "
                         f"{_fmt(None if not ms else flops[name] / (ms * 1e6), '8.1f'):>8} {floor:9.1f} "
                         f"{_fmt(None if ms is None else ms / floor, '8.2f'):>8}")
        b = s["bounds"]
        lines.append(f"{'':>10}  init floor = own trunks {b['tracker_init_trunks_ms']:.1f} + PCA and Gauss-Newton floors "
                     f"{s['init_floor_ms'] - b['tracker_init_trunks_ms']:.1f} = {s['init_floor_ms']:.1f} ms = "
                     f"{s['init_floor_ratio']:.2f}x the init bound (measured {s['init_ratio']:.2f}x)")
    return lines


# ------------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------------

def parse_sizes(text: str) -> Tuple[Tuple[int, int], ...]:
    sizes = []
    for part in text.split(","):
        part = part.strip().lower()
        pieces = part.split("x")
        if len(pieces) != 2 or not all(p.isdigit() for p in pieces):
            raise InputError(f"--sizes: {part!r} is not WIDTHxHEIGHT (e.g. 640x480,1280x720)")
        w, h = int(pieces[0]), int(pieces[1])
        if w < MIN_SIDE or h < MIN_SIDE:
            raise InputError(f"--sizes: {part} is too small (at least {MIN_SIDE}x{MIN_SIDE})")
        sizes.append((w, h))
    return tuple(sizes)


def build_parser() -> argparse.ArgumentParser:
    parser = CliArgumentParser(prog="python -m d3s_vot.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--weights", metavar="PACK", help="weights file (default: random untrained weights)")
    parser.add_argument("--frames", type=int, help="tracked frames per sequence (default 50; 5 with --quick)")
    parser.add_argument("--sizes", help="comma-separated WIDTHxHEIGHT (default 640x480,1280x720; 640x480 with --quick)")
    parser.add_argument("--threads", type=int, help="torch and OpenCV threads (default: the libraries' defaults)")
    parser.add_argument("--repeats", type=int, help="timed calls of each bound pass and micro-benchmark, median "
                        "reported; also the timed initialisations per size, at most 3 (default 5; 1 with --quick)")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="override a D3SParams field (repeatable), e.g. channels_last=false")
    parser.add_argument("--json", metavar="OUT", help="also write every number (and the hardware) to this JSON file")
    parser.add_argument("--quick", action="store_true", help="short run: one size, few frames, few repetitions")
    parser.add_argument("--fast", action="store_true", help="measure the fast mode (D3SParams.fast_mode())")
    parser.add_argument("--compare-fast", action="store_true",
                        help="also run the default and the fast mode side by side: speed-ups and IoU between them")
    parser.add_argument("--count-syncs", action="store_true",
                        help="instead of timing: count the host synchronisations and ATen ops per initialisation, "
                             "plain frame and filter-update frame on the CUDA code path (works on the CPU; "
                             "d3s_vot.tools.sync_count)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def config_from_args(args: argparse.Namespace) -> BenchConfig:
    if args.device == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda: CUDA is not available on this machine (torch "
                         f"{torch.__version__}); use --device cpu")
    for name in ("frames", "threads", "repeats"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise InputError(f"--{name} must be at least 1, got {value}")
    try:
        overrides = tuple(parse_assignments(args.param, "--param").items())
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if args.json:
        parent = Path(args.json).expanduser().resolve().parent
        if not parent.is_dir():
            raise InputError(f"--json {args.json}: folder {parent} does not exist")
    quick = args.quick
    repeats = args.repeats if args.repeats is not None else (1 if quick else 5)
    return BenchConfig(
        device=args.device, dtype=args.dtype, weights=args.weights,
        frames=args.frames if args.frames is not None else
        (SYNC_COUNT_FRAMES if args.count_syncs else 5 if quick else 50),
        sizes=parse_sizes(args.sizes) if args.sizes else (QUICK_SIZES if quick else DEFAULT_SIZES),
        threads=args.threads, warmup=1 if quick else 2, repeats=repeats,
        init_repeats=1 if quick else min(repeats, 3), overrides=overrides, json_path=args.json, quick=quick,
        fast=args.fast, compare_fast=args.compare_fast, count_syncs=args.count_syncs)


def main(argv: Optional[List[str]] = None) -> int:
    return run_cli(_bench, argv)


def _bench(argv: Optional[List[str]]) -> int:
    args = build_parser().parse_args(argv)
    cfg = config_from_args(args)
    report = run_sync_count(cfg) if cfg.count_syncs else run_bench(cfg, progress=not args.no_progress)
    print(render_counts(report) if cfg.count_syncs else render_text(report))
    if cfg.json_path:
        atomic_write_text(Path(cfg.json_path).expanduser(), json.dumps(report, indent=2) + "\n")
        print(f"\nwrote {cfg.json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
