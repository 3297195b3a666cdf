"""Speed benchmark of the D3S tracker: ``python -m d3s_vot.bench``.

Runs the real tracker on synthetic sequences and reports, from one run on one machine:

* whole-tracker figures: the sequence-mean frame time of ``tracker.track`` (CG frames included),
  the ``tracker.initialize`` time and the peak memory;
* the same figures as ratios to *bounds* measured in the same run: the frame bound is one DCF trunk
  pass at 256x256 plus one segmentation trunk pass at 384x384 (batch 1, conv1..layer3), the init
  bound is the first-frame trunk batch (27 augmented samples at 256x256) plus one segmentation trunk
  pass, each in its fastest memory layout (NCHW or channels-last), timed in rounds between the
  tracker's own timed calls so that both meet the same machine load;
* per-stage medians of the tracker's own functions, called on the tracker's state after a real
  ``initialize`` and tracked frames, so the table says where the time goes;
* compute floors of the DCF optimisations (d3s_vot.speed_floor): their matrix-product work at this
  machine's best matrix-product rate.

Numbers are medians over repetitions after warm-up; on CUDA every timed region is synchronised.
See docs/speed.md.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import resource
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import cv2
import numpy as np
import torch

from .io_utils import CliArgumentParser, InputError, atomic_write_text
from .model.segm_net import SEGM_TAPS
from .params import D3SParams
from .runtime import tune_cpu_allocator
from .speed_floor import counted_flops, dcf_floors, matmul_peak_gflops
from .vot_speed import hardware

DEFAULT_SIZES = ((640, 480), (1280, 720))
QUICK_SIZES = ((640, 480),)
MIN_SIDE = 64


@dataclass(frozen=True)
class BenchConfig:
    """What one benchmark run measures and how often."""

    device: str = "cpu"
    dtype: str = "float32"
    weights: Optional[str] = None           # None: random (untrained) weights
    frames: int = 50                        # tracked frames per sequence (after the init frame)
    sizes: Tuple[Tuple[int, int], ...] = DEFAULT_SIZES
    threads: Optional[int] = None           # None: torch's default
    warmup: int = 2                         # untimed calls before each timed stage
    repeats: int = 5                        # timed calls per stage (median reported)
    init_repeats: int = 3                   # timed tracker.initialize calls per size
    seed: int = 0                           # synthetic scene seed
    overrides: Tuple[Tuple[str, str], ...] = ()   # D3SParams fields, as strings
    json_path: Optional[str] = None
    quick: bool = False
    fast: bool = False                      # measure the fast mode (D3SParams.fast_mode) instead of the default
    compare_fast: bool = False              # also run default and fast mode side by side: speed-up and IoU


@dataclass
class Timer:
    """Median wall-clock milliseconds of a callable, synchronising the device around each call."""

    warmup: int
    repeats: int
    device: torch.device

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def measure(self, fn: Callable[..., Any], setup: Optional[Callable[[], Any]] = None,
                warmup: Optional[int] = None, repeats: Optional[int] = None) -> Tuple[float, Any]:
        """(median ms, last result). ``setup`` (untimed) builds a fresh argument for every call."""
        warmup = self.warmup if warmup is None else warmup
        repeats = self.repeats if repeats is None else repeats
        samples: List[float] = []
        result = None
        for i in range(warmup + repeats):
            arg = setup() if setup is not None else None
            self.sync()
            start = time.perf_counter()
            result = fn(arg) if setup is not None else fn()
            self.sync()
            if i >= warmup:
                samples.append(time.perf_counter() - start)
        return 1000.0 * statistics.median(samples), result


@dataclass
class StageTable:
    """Named stage times (ms) in the order they were measured."""

    timer: Timer
    ms: Dict[str, float] = field(default_factory=dict)

    def run(self, name: str, fn: Callable[..., Any], setup: Optional[Callable[[], Any]] = None) -> Any:
        self.ms[name], result = self.timer.measure(fn, setup)
        return result


# ------------------------------------------------------------------------------------------------
# Bounds: bare trunk passes in the fastest memory layout
# ------------------------------------------------------------------------------------------------

LAYOUTS = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}


def plain_trunks(weights, device: torch.device, dtype: torch.dtype):
    """The two trunks exactly as the checkpoints define them (BatchNorm layers unfolded), eval mode."""
    from .tracker.d3s import load_networks

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
    forms["tracker"] = (tracker.dcf_net, tracker.segm_net.feature_extractor, tracker.memory_format)
    return forms


class BoundRounds:
    """Times the bound passes in rounds interleaved with the tracker's own work.

    A round times every form once in the given passes. The bench runs a round of the init passes
    before each timed ``initialize`` and a round of the frame passes every few tracked frames, so a
    bound and the tracker time divided by it are measured under the same machine load (the machine
    may be shared), and within a round every form meets the same load too."""

    def __init__(self, forms: Dict[str, Form], init_samples: int, dtype: torch.dtype, timer: Timer):
        self.timer = timer
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
        with torch.no_grad():
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


def _torch_dtype(cfg: BenchConfig) -> torch.dtype:
    return {"float32": torch.float32, "float64": torch.float64}[cfg.dtype]


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def measure_peaks(tracker, timer: Timer) -> Dict[str, float]:
    """This machine's best matrix-product GFLOP/s in the tracker's dtype and in its DCF dtype, the
    rates the compute floors divide by (see d3s_vot.speed_floor)."""
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
# Per-stage timings on the tracker's own state
# ------------------------------------------------------------------------------------------------

def _full_memory(memory, size: int):
    """A copy of the sample memory with every slot filled (cycling the stored samples), equal weights."""
    from .tracker import dcf

    full = dcf.SampleMemory(size, memory.samples.shape[1], memory.samples.shape[-1], memory.samples.dtype,
                            memory.samples.device)
    n = max(memory.active, 1)
    idx = torch.arange(size, device=memory.samples.device) % n
    full.samples.copy_(memory.samples[idx])
    full.labels.copy_(memory.labels[idx])
    full.weights.fill_(1.0 / size)
    full.num_stored = size
    return full


def frame_stages(tracker, image: np.ndarray, gt_box: np.ndarray, gt_mask: np.ndarray, timer: Timer
                 ) -> Tuple[Dict[str, float], Dict[str, Any]]:
    """Median ms of each per-frame stage, calling the functions ``D3STracker.track`` calls.

    The DCF stages run at the tracker's current position and scale. The segmentation stages crop
    around the ground-truth box, and mask -> box fits the ground-truth mask crop, so their cost is
    that of a tracker on target even with untrained weights.
    """
    from .tracker import dcf
    from .tracker.bbox_fit import MIN_CONTOUR_AREA, external_contours, fit_box_to_mask
    from .tracker.crops import dcf_patch, normalize_segm_crop, segm_crop, segm_crop_window
    from .tracker.fourier import upsample_scores
    from .tracker.localize import localize
    from .tracker.segmentation import SegmentationOutput

    st, p = tracker._state, tracker.params
    seg = tracker.segmenter
    stages = StageTable(timer)

    im = stages.run("image_to_tensor", lambda: tracker._image_tensor(image))
    patch = stages.run("dcf_crop", lambda: dcf_patch(im, list(st.pos), st.target_scale * st.sample_size,
                                                     st.sample_size))
    feats = stages.run("dcf_trunk", lambda: tracker._dcf_features(patch))

    def locate():
        test_x = dcf.project(feats.to(tracker.dcf_dtype), st.projection)
        raw = dcf.correlate(test_x, st.filter)
        scores = upsample_scores(raw[0, 0], st.sample_size) * tracker._window
        neighbourhood = (p.target_neighborhood_scale * st.target_sz[0] / st.target_scale,
                         p.target_neighborhood_scale * st.target_sz[1] / st.target_scale)
        return test_x, localize(scores, neighbourhood, p)

    test_x, _ = stages.run("dcf_project_correlate_upsample_localize", locate)

    def crop():
        c, _ = segm_crop(image, gt_box, p.segm_search_area_factor, p.segm_output_sz)
        x = torch.from_numpy(normalize_segm_crop(c)).to(device=tracker.device, dtype=tracker.dtype)
        return x.permute(2, 0, 1).unsqueeze(0).contiguous(memory_format=seg.memory_format)

    x = stages.run("segm_crop", crop)
    segm_feats = stages.run("segm_trunk", lambda: seg.net.extract_backbone_features(x))

    def head():
        logits = seg.net.segm_predictor.predict(segm_feats, st.segm.train_embedding, st.segm.train_mask,
                                                st.segm.dist_map)
        return torch.softmax(logits, dim=1)[0, 0].cpu().numpy()

    stages.run("segm_head", head)

    mask_crop, factor = segm_crop(gt_mask.astype(np.float32), gt_box, p.segm_search_area_factor,
                                  p.segm_output_sz, pad_value=0)

    def mask_to_box():
        binary = (mask_crop > p.segm_mask_thr).astype(np.uint8)
        contours, areas = external_contours(binary)
        if not areas or max(areas) <= MIN_CONTOUR_AREA:
            return binary, None
        contour = contours[int(np.argmax(areas))]
        cv2.boxPoints(cv2.minAreaRect(contour.reshape(-1, 2)))
        filled = np.zeros(binary.shape, dtype=np.uint8)
        cv2.drawContours(filled, [contour], -1, 1, thickness=-1)
        return filled, fit_box_to_mask(filled.astype(np.int32), rotated=st.region.rotated)

    binary, fitted = stages.run("mask_to_box", mask_to_box)
    out = SegmentationOutput(prob=mask_crop, crop_factor=factor,
                             crop_window=segm_crop_window(gt_box, p.segm_search_area_factor), binary=binary)
    stages.run("full_image_mask", lambda: tracker._full_mask(st, image.shape[:2], out, None, None))

    def update(memory):
        label = tracker._label(st, list(st.pos), st.target_scale)
        return memory.insert(test_x, label, p.learning_rate)

    stages.run("memory_update", update, setup=lambda: copy.deepcopy(st.memory))
    per_frame_sum = sum(stages.ms.values())

    def cg(memory):
        return dcf.filter_gauss_newton_step(st.filter, memory.samples, memory.labels, memory.weights, p.filter_reg,
                                            p.response_activation_alpha, p.cg_iter, memory.active)

    stages.run("filter_cg_sequence_memory", cg, setup=lambda: st.memory)
    full = _full_memory(st.memory, p.sample_memory_size)
    stages.run("filter_cg_full_memory", cg, setup=lambda: full)
    cg_flops = {"filter_cg_sequence_memory": counted_flops(lambda: cg(st.memory)),
                "filter_cg_full_memory": counted_flops(lambda: cg(full))}
    info = {"per_frame_stage_sum_ms": per_frame_sum, "memory_active": st.memory.active,
            "full_memory_size": p.sample_memory_size, "cg_iterations": p.cg_iter,
            "mask_to_box_fitted": fitted is not None, "cg_flops": cg_flops}
    return stages.ms, info


def init_stages(tracker, image: np.ndarray, timer: Timer) -> Tuple[Dict[str, float], Dict[str, Any]]:
    """Median ms of each initialisation stage, calling the functions ``D3STracker.initialize`` calls,
    with the geometry of the tracker's current sequence."""
    from .tracker import dcf
    from .tracker.augment import apply_augmentations, build_augmentations
    from .tracker.crops import dcf_patch, round_half_even

    st, p = tracker._state, tracker.params
    init = st.region
    stages = StageTable(timer)
    h, w = float(init.size_hw[0]), float(init.size_hw[1])
    pos = [float(init.pos_yx[0]), float(init.pos_yx[1])]
    search_area = (h * p.search_area_scale) * (w * p.search_area_scale)
    max_area = float(p.image_sample_size ** 2)
    target_scale = math.sqrt(search_area / max_area) if search_area != max_area else 1.0
    sample = st.sample_size
    expansion = int(sample * p.augmentation_expansion_factor)
    expansion += (expansion - sample) % 2
    centre = [round_half_even(pos[0]), round_half_even(pos[1])]

    im = stages.run("image_to_tensor", lambda: tracker._image_tensor(image))

    def augment():
        augs = build_augmentations(sample, p.aug_relative_shifts, p.aug_fliplr, p.aug_blurs, p.aug_rotations) \
            if p.use_augmentation else build_augmentations(sample, (), False, (), ())
        patch = dcf_patch(im, centre, target_scale * expansion, expansion)
        return augs, apply_augmentations(patch, augs, sample)

    augs, samples = stages.run("augmentation", augment)
    feats = stages.run("trunk_batch", lambda: tracker._dcf_features(samples).to(tracker.dcf_dtype))
    def pca():
        return dcf.pca_projection(feats, p.compressed_dim, cov_dtype=tracker.dtype)

    projection = stages.run("pca", pca)
    flops = {"pca": counted_flops(pca)}

    feat_sz = st.feature_size
    kernel_offset = 0.5 * ((p.kernel_size + 1) % 2)
    centre_norm = [(pos[i] - centre[i]) / (target_scale * sample) for i in range(2)]
    labels = torch.stack([
        dcf.gaussian_label(feat_sz, st.sigma, [feat_sz * centre_norm[i] + kernel_offset + a.shift[i] / sample * feat_sz
                                               for i in range(2)], tracker.dcf_dtype, tracker.device)
        for a in augs]).unsqueeze(1)
    problem = dcf.JointProblem(feats, labels, 1.0 / feats.shape[0], p.filter_reg, p.projection_reg,
                               p.response_activation_alpha)
    zero = feats.new_zeros(1, p.compressed_dim, p.kernel_size, p.kernel_size)
    if p.init_gn_iter > 0:
        def joint():
            return dcf.joint_gauss_newton(problem, zero, projection, p.init_gn_iter, p.init_cg_iter // p.init_gn_iter)

        stages.run("joint_gauss_newton", joint)
        flops["joint_gauss_newton"] = counted_flops(joint)

    def memory_init():
        memory = dcf.SampleMemory(p.sample_memory_size, p.compressed_dim, feat_sz, tracker.dcf_dtype, tracker.device)
        memory.init(dcf.project(feats, projection), labels)
        return memory

    stages.run("memory_init", memory_init)
    if st.segm is not None:
        stages.run("segmentation_init", lambda: tracker.segmenter.initialize(
            image, init.box_xywh, init.polygon, init.size_hw, init.mask))
    return stages.ms, {"init_stage_sum_ms": sum(stages.ms.values()), "init_samples": int(feats.shape[0]),
                       "init_flops": flops}


# ------------------------------------------------------------------------------------------------
# Whole tracker
# ------------------------------------------------------------------------------------------------

def peak_memory_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0     # KiB on Linux


def _is_cg_frame(frame_num: int, flag: str, params: D3SParams) -> bool:
    return flag == "hard_negative" or (frame_num - 1) % params.train_skipping == 0


BOUND_ROUNDS_PER_SEQUENCE = 10          # frame-bound rounds spread over a tracked sequence (at least)


def bench_size(tracker, width: int, height: int, cfg: BenchConfig, timer: Timer, rounds: BoundRounds,
               progress: bool) -> Dict[str, Any]:
    """Init and sequence timings of the whole tracker at one image size, with bound rounds
    interleaved (tagged with the size), then its per-stage timings."""
    from .synthetic.scene import SceneConfig, generate_sequence

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

    init_ms, frame_ms, results = _timed_run(tracker, seq, timer, cfg.init_repeats,
                                            progress_desc=f"tracking {width}x{height}" if progress else None,
                                            between=between)
    while rounds.rounds(tag, "dcf_trunk_256") < cfg.repeats:      # short sequences: top up to --repeats
        rounds.run(FRAME_PASSES, tag)
    # track() of the i-th tracked frame (0-based) runs with frame_num = i + 2
    cg_flags = [_is_cg_frame(i + 2, r.flag, tracker.params) for i, r in enumerate(results)]
    segm_used = sum(int(r.segmentation_used) for r in results)
    peak = peak_memory_mib(tracker.device)

    last = len(seq.frames) - 1
    gt_box = seq.boxes[last]
    if not np.all(np.isfinite(gt_box)):                 # target invisible in the last frame: use the polygon
        xs, ys = seq.polygons[last][0::2], seq.polygons[last][1::2]
        gt_box = np.array([xs.min(), ys.min(), xs.max() - xs.min(), ys.max() - ys.min()])
    with torch.no_grad():           # as in track() and initialize(): no autograd bookkeeping in the stage times
        frame_stage_ms, frame_info = frame_stages(tracker, seq.frames[last], gt_box, seq.masks[last], timer)
        init_stage_ms, init_info = init_stages(tracker, seq.frames[0], timer)

    cg_times = [t for t, c in zip(frame_ms, cg_flags) if c]
    plain_times = [t for t, c in zip(frame_ms, cg_flags) if not c]
    mean_frame = statistics.fmean(frame_ms)
    return {
        "size": tag, "width": width, "height": height, "frames": len(frame_ms),
        "init_ms": init_ms, "frame_mean_ms": mean_frame, "frame_median_ms": statistics.median(frame_ms),
        "frame_max_ms": max(frame_ms), "fps": 1000.0 / mean_frame,
        "cg_frames": len(cg_times), "cg_frame_mean_ms": statistics.fmean(cg_times) if cg_times else None,
        "plain_frame_mean_ms": statistics.fmean(plain_times) if plain_times else None,
        "segmentation_used_frames": segm_used, "peak_memory_mib": peak,
        "frame_stages_ms": frame_stage_ms, "init_stages_ms": init_stage_ms, **frame_info, **init_info,
    }


def _warm_up(tracker, cfg: BenchConfig) -> None:
    """One small initialise + track, so that one-time costs (allocations, kernel selection) stay out."""
    from .synthetic.scene import SceneConfig, generate_sequence

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


def _timed_run(tracker, seq, timer: Timer, init_repeats: int, progress_desc: Optional[str] = None,
               between: Optional[Callable[[str, int], None]] = None) -> Tuple[float, List[float], List[Any]]:
    """(median init ms over ``init_repeats`` initialisations from the first polygon, per-frame ms,
    per-frame results) of one synthetic sequence; a progress bar when ``progress_desc`` is given.
    ``between(kind, i)``, untimed, runs before the i-th initialisation ('init') and after the i-th
    tracked frame ('frame')."""
    from tqdm import tqdm

    init_times = []
    for i in range(init_repeats):
        if between is not None:
            between("init", i)
        ms, _ = timer.measure(lambda: tracker.initialize(seq.frames[0], seq.polygons[0]), warmup=0, repeats=1)
        init_times.append(ms)
    frame_ms, results = [], []
    for i, image in enumerate(tqdm(seq.frames[1:], desc=progress_desc, unit="frame", disable=progress_desc is None,
                                   file=sys.stderr)):
        timer.sync()
        start = time.perf_counter()
        results.append(tracker.track(image))
        timer.sync()
        frame_ms.append(1000.0 * (time.perf_counter() - start))
        if between is not None:
            between("frame", i)
    return statistics.median(init_times), frame_ms, results


def compare_fast_mode(weights, params: D3SParams, cfg: BenchConfig, progress: bool) -> List[Dict[str, Any]]:
    """The default and the fast mode on the same sequences, one after the other in one process:
    mean frame time, init time, speed-ups and the per-frame IoU of the fast mode's boxes against
    the default mode's (axis-aligned boxes)."""
    from tqdm import tqdm

    from .synthetic.scene import SceneConfig, generate_sequence
    from .tracker.d3s import D3STracker

    dtype = _torch_dtype(cfg)
    trackers = {"default": D3STracker(weights, params=params, device=cfg.device, dtype=dtype),
                "fast": D3STracker(weights, params=params.fast_mode(), device=cfg.device, dtype=dtype)}
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
        ious = [_box_iou(a.box, b.box) for a, b in zip(runs["default"][2], runs["fast"][2])]
        row: Dict[str, Any] = {"size": f"{width}x{height}", "frames": len(ious)}
        for name, (init_ms, frame_ms, _) in runs.items():
            row[f"{name}_init_ms"] = init_ms
            row[f"{name}_frame_mean_ms"] = statistics.fmean(frame_ms)
        row["init_speedup"] = row["default_init_ms"] / row["fast_init_ms"]
        row["frame_speedup"] = row["default_frame_mean_ms"] / row["fast_frame_mean_ms"]
        row.update(iou_mean=statistics.fmean(ious), iou_min=min(ious),
                   iou_at_least_0_5=sum(v >= 0.5 for v in ious) / len(ious), iou_per_frame=ious)
        rows.append(row)
    return rows


def run_bench(cfg: BenchConfig, progress: bool = True) -> Dict[str, Any]:
    """Everything the bench measures, as a JSON-ready dict."""
    from .tracker.augment import build_augmentations
    from .tracker.d3s import D3STracker
    from .weights import WeightsError, load_weights, random_weights

    # before any large allocation: the bounds and the tracker run under the same allocator settings
    malloc_tuned = tune_cpu_allocator()
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
        cv2.setNumThreads(cfg.threads)
    try:
        base_params = D3SParams().with_overrides(dict(cfg.overrides))
    except ValueError as exc:
        raise InputError(str(exc)) from None
    params = base_params.fast_mode() if cfg.fast else base_params
    if cfg.weights is None:
        weights, weights_desc = random_weights(0), "random (untrained, random_weights(seed=0))"
    else:
        if not Path(cfg.weights).is_file():
            raise InputError(f"weights file {cfg.weights} not found (see docs/weights.md for how to get and pack them)")
        try:
            weights = load_weights(cfg.weights)
        except WeightsError as exc:
            raise InputError(f"{cfg.weights}: {exc}") from None
        weights_desc = str(Path(cfg.weights).resolve())
    dtype = _torch_dtype(cfg)
    tracker = D3STracker(weights, params=params, device=cfg.device, dtype=dtype)
    timer = Timer(cfg.warmup, cfg.repeats, tracker.device)

    _warm_up(tracker, cfg)
    init_samples = len(build_augmentations(256, params.aug_relative_shifts, params.aug_fliplr, params.aug_blurs,
                                           params.aug_rotations)) if params.use_augmentation else 1
    rounds = BoundRounds(bound_forms(tracker, weights), init_samples, dtype, timer)
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

    comparison = compare_fast_mode(weights, base_params, cfg, progress) if cfg.compare_fast else None

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
            "fast_mode_comparison": comparison}


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
                     f"{s['frame_stages_ms']['filter_cg_full_memory']:10.1f} {s['peak_memory_mib']:9.0f}")
    lines.append("ratios per size divide by the bounds of the rounds run during that size's timings:")
    for s in report["sizes"]:
        sb, n = s["bounds"], s["bound_rounds"]
        lines.append(f"{s['size']:>10}  frame bound {sb['frame_bound_ms']:.1f} ms (own {sb['tracker_frame_trunks_ms']:.1f}, "
                     f"{n['frame']} rounds), init bound {sb['init_bound_ms']:.1f} ms "
                     f"(own {sb['tracker_init_trunks_ms']:.1f}, {n['init']} rounds)")
    for s in report["sizes"]:
        lines += ["", f"per-stage medians at {s['size']} (ms, % of the stage sum):"]
        per_frame = {k: v for k, v in s["frame_stages_ms"].items() if not k.startswith("filter_cg")}
        total = s["per_frame_stage_sum_ms"]
        lines.append("  frame:")
        for name, ms in per_frame.items():
            lines.append(f"    {name:<42} {ms:9.2f} {100 * ms / total:6.1f}%")
        lines.append(f"    {'sum (without CG)':<42} {total:9.2f}   vs measured plain-frame mean "
                     f"{_fmt(s['plain_frame_mean_ms'])}")
        lines.append(f"    {'filter CG, ' + str(s['memory_active']) + ' samples in memory':<42} "
                     f"{s['frame_stages_ms']['filter_cg_sequence_memory']:9.2f}")
        lines.append(f"    {'filter CG, full memory (' + str(s['full_memory_size']) + ')':<42} "
                     f"{s['frame_stages_ms']['filter_cg_full_memory']:9.2f}")
        total = s["init_stage_sum_ms"]
        lines.append("  init:")
        for name, ms in s["init_stages_ms"].items():
            lines.append(f"    {name:<42} {ms:9.2f} {100 * ms / total:6.1f}%")
        lines.append(f"    {'sum':<42} {total:9.2f}   vs measured init {s['init_ms']:.1f}")
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


def _render_floors(report: Dict[str, Any]) -> List[str]:
    peaks = report["matmul_peak_gflops"]
    lines = ["", "compute floors: matrix-product work of the DCF stages (counted on the tracker's own calls) at this",
             "machine's best square matrix-product rate (" + ", ".join(f"{k} {v:.1f}" for k, v in peaks.items())
             + " GFLOP/s); element-wise work and the eigensolver are not counted:",
             f"{'size':>10}  {'stage':<27} {'GFLOP':>7} {'ms':>9} {'GFLOP/s':>8} {'floor ms':>9} {'x floor':>8}"]
    for s in report["sizes"]:
        measured = {**s["init_stages_ms"], **s["frame_stages_ms"]}
        flops = {**s["init_flops"], **s["cg_flops"]}
        for i, (name, floor) in enumerate(s["floors_ms"].items()):
            ms = measured[name]
            lines.append(f"{s['size'] if i == 0 else '':>10}  {name:<27} {flops[name] / 1e9:7.2f} {ms:9.1f} "
                         f"{flops[name] / (ms * 1e6):8.1f} {floor:9.1f} {ms / floor:8.2f}")
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
    parser.add_argument("--repeats", type=int, help="timed calls per stage, median reported (default 5; 1 with --quick)")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="override a D3SParams field (repeatable), e.g. channels_last=false")
    parser.add_argument("--json", metavar="OUT", help="also write every number (and the hardware) to this JSON file")
    parser.add_argument("--quick", action="store_true", help="short run: one size, few frames, few repetitions")
    parser.add_argument("--fast", action="store_true", help="measure the fast mode (D3SParams.fast_mode())")
    parser.add_argument("--compare-fast", action="store_true",
                        help="also run the default and the fast mode side by side: speed-ups and IoU between them")
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
    overrides = []
    for item in args.param:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise InputError(f"--param {item!r}: expected NAME=VALUE")
        overrides.append((name.strip(), value.strip()))
    if args.json:
        parent = Path(args.json).expanduser().resolve().parent
        if not parent.is_dir():
            raise InputError(f"--json {args.json}: folder {parent} does not exist")
    quick = args.quick
    repeats = args.repeats if args.repeats is not None else (1 if quick else 5)
    return BenchConfig(
        device=args.device, dtype=args.dtype, weights=args.weights,
        frames=args.frames if args.frames is not None else (5 if quick else 50),
        sizes=parse_sizes(args.sizes) if args.sizes else (QUICK_SIZES if quick else DEFAULT_SIZES),
        threads=args.threads, warmup=1 if quick else 2, repeats=repeats,
        init_repeats=1 if quick else min(repeats, 3), overrides=tuple(overrides), json_path=args.json, quick=quick,
        fast=args.fast, compare_fast=args.compare_fast)


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = config_from_args(args)
        report = run_bench(cfg, progress=not args.no_progress)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(render_text(report))
    if cfg.json_path:
        atomic_write_text(Path(cfg.json_path).expanduser(), json.dumps(report, indent=2) + "\n")
        print(f"\nwrote {cfg.json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
