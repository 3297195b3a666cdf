"""One unattended check of the tracker on a GPU: ``python -m d3s_vot.tools.gpu_check --out DIR``.

Writes ``DIR/gpu_check.json`` (every number; rewritten atomically after each section, so a run cut
short keeps what it measured) and ``DIR/gpu_check.log`` (the same, readable). Sections, in order:

``environment``  GPU, driver, CUDA, torch, cuDNN, OpenCV, numpy, Python, CPU.
``smoke``        default, fast, float64 and mask-initialised runs on a synthetic sequence (frame
                 times, boxes finite, the CUDA graphs recorded and any that fell back to eager calls),
                 and the default mode re-run in deterministic mode: bit-identical?
``sync_counts``  host syncs and ATen ops per init / plain frame / update frame (d3s_vot.tools.sync_count;
                 on CUDA confirmed by ``torch.cuda.set_sync_debug_mode``), with the CUDA graphs behind
                 the networks' replays.
``bench``        ``python -m d3s_vot.bench`` on three sizes (TF32 off: the default deterministic mode),
                 and the fast mode on the first size.
``parity``       the float64 tracker against the parity fixtures (tracker_ref.npz) at the tolerances
                 of tests/test_tracker_parity.py, and the float32 and fast-mode IoU against float64.
``training``     one smoke training step on synthetic YouTube-VOS (AMP on CUDA).

``--device cpu`` is the dry run CI exercises: the same sections and the same JSON keys, on small
settings (one first-frame sample instead of 27 outside the parity section, 2 frames, one size, the
polygon initialisation only). The parity fixtures are looked up in ``--parity``, ``$D3S_PARITY_DIR``, the in-tree copy
``gpu_check_fixtures/parity`` (ignored by git; ``scripts/gpu_check.sh`` makes it) and
``../shared/parity``. A section that fails records its error and the run goes on.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from d3s_vot.common.cli import CliArgumentParser, run_cli
from d3s_vot.common.io_utils import InputError, atomic_write_text

SECTIONS = ("environment", "smoke", "sync_counts", "bench", "parity", "training")

#: the keys every section reports, on every device (tests/test_gpu_check.py holds the dry run to them)
SECTION_KEYS: Dict[str, tuple] = {
    "environment": ("gpu", "gpu_count", "driver", "cuda", "torch", "cudnn", "opencv", "numpy", "python", "cpu"),
    "smoke": ("frames", "size", "modes", "deterministic_rerun_identical"),
    "sync_counts": ("init", "plain_frame", "update_frame", "within_budget", "frame_ops_within_budget",
                    "cuda_graphs", "graphs_recorded", "graph_fallbacks", "confirmed_by_cuda", "device"),
    "bench": ("sizes", "default", "fast"),
    "parity": ("fixtures", "frames", "float64", "float32_iou", "fast_iou"),
    "training": ("device", "amp", "loss", "seconds"),
}
SMOKE_MODES = ("default", "fast", "float64", "mask_init")
REPORT_KEYS = ("device", "dry_run", "started", "seconds", "sections", "errors") + SECTIONS


@dataclass(frozen=True)
class CheckConfig:
    """Sizes of the check; :func:`settings` gives the GPU and the dry-run (CPU) sets."""
    device: str
    out: Path
    parity: Optional[Path]
    smoke_frames: int
    smoke_size: tuple
    bench_sizes: tuple
    bench_frames: int
    parity_frames: Optional[int]            # None: the whole fixture sequence
    parity_modes: tuple
    count_frames: int
    params: tuple = ()                      # D3SParams overrides of the smoke, count and bench sections


#: the dry run's overrides: one first-frame sample instead of 27 (the CPU's initialisation is slow)
DRY_RUN_PARAMS = (("use_augmentation", "false"),)


def settings(device: str, out: Path, parity: Optional[Path]) -> CheckConfig:
    if device == "cpu":          # the dry run: every section and key, small
        return CheckConfig(device, out, parity, smoke_frames=2, smoke_size=(160, 120), bench_sizes=((160, 120),),
                           bench_frames=2, parity_frames=2, parity_modes=("poly",), count_frames=3,
                           params=DRY_RUN_PARAMS)
    return CheckConfig(device, out, parity, smoke_frames=20, smoke_size=(640, 480),
                       bench_sizes=((640, 480), (1280, 720), (1920, 1080)), bench_frames=30, parity_frames=None,
                       parity_modes=("rect", "poly"), count_frames=11)


# ------------------------------------------------------------------------------------------------
# Sections
# ------------------------------------------------------------------------------------------------

def environment(cfg: CheckConfig) -> Dict[str, Any]:
    import cv2
    import torch

    cuda = torch.cuda.is_available()
    driver = None
    if cuda:
        with contextlib.suppress(Exception):
            import subprocess

            driver = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                    capture_output=True, text=True, timeout=30).stdout.strip() or None
    return {"gpu": torch.cuda.get_device_name(0) if cuda else None, "gpu_count": torch.cuda.device_count(),
            "driver": driver, "cuda": torch.version.cuda, "torch": torch.__version__,
            "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
            "opencv": cv2.__version__, "numpy": np.__version__, "python": platform.python_version(),
            "cpu": platform.processor() or platform.machine()}


def _spec(cfg: CheckConfig, **kwargs):
    from d3s_vot.factory import TrackerSpec

    return TrackerSpec(random_weights_seed=0, device=cfg.device, params=cfg.params, **kwargs)


def _track(tracker, seq, init, frames: int) -> Dict[str, Any]:
    """Initialise on frame 0 with ``init`` and track ``frames`` frames: times and outputs."""
    from d3s_vot.devices import synchronize

    synchronize(tracker.device)
    start = time.perf_counter()
    tracker.initialize(seq.frames[0], init)
    synchronize(tracker.device)
    init_s = time.perf_counter() - start
    results, times = [], []
    for image in seq.frames[1:frames + 1]:
        start = time.perf_counter()
        results.append(tracker.track(image))
        synchronize(tracker.device)
        times.append(time.perf_counter() - start)
    return {"init_ms": 1000 * init_s, "frame_mean_ms": 1000 * float(np.mean(times)),
            "boxes": [r.box.tolist() for r in results], "masks": [r.mask for r in results],
            "finite": bool(all(np.all(np.isfinite(r.box)) for r in results))}


def smoke(cfg: CheckConfig) -> Dict[str, Any]:
    from d3s_vot.factory import build_tracker
    from d3s_vot.synthetic.scene import SceneConfig, generate_sequence

    w, h = cfg.smoke_size
    seq = generate_sequence(seed=1, num_frames=cfg.smoke_frames + 1, config=SceneConfig(width=w, height=h))
    specs = {"default": _spec(cfg), "fast": _spec(cfg, fast_mode=True), "float64": _spec(cfg, dtype="float64"),
             "mask_init": _spec(cfg)}
    modes, runs = {}, {}
    for name in SMOKE_MODES:
        tracker = build_tracker(specs[name])
        run = _track(tracker, seq, seq.masks[0] if name == "mask_init" else seq.polygons[0], cfg.smoke_frames)
        runs[name] = run
        modes[name] = {k: run[k] for k in ("init_ms", "frame_mean_ms", "finite", "boxes")} | {
            # the CUDA graphs the first initialisation recorded (none on the CPU) and any that fell back
            "graphs_recorded": tracker.graphs.recorded(), "graph_fallbacks": dict(tracker.graphs.eager_fallbacks)}
    rerun = _track(build_tracker(specs["default"]), seq, seq.polygons[0], cfg.smoke_frames)
    identical = rerun["boxes"] == runs["default"]["boxes"] and all(
        np.array_equal(a, b) for a, b in zip(rerun["masks"], runs["default"]["masks"]))
    return {"frames": cfg.smoke_frames, "size": f"{w}x{h}", "modes": modes, "deterministic_rerun_identical": identical}


def sync_counts(cfg: CheckConfig) -> Dict[str, Any]:
    from d3s_vot.tools.sync_count import run_count

    report = run_count(_spec(cfg), 640, 480, cfg.count_frames)
    confirmed = None
    if cfg.device != "cpu":
        confirmed = all(report[k] is None or report[k]["cuda_sync_warnings"] == report[k]["host_syncs"]
                        for k in ("init", "plain_frame", "update_frame"))
    keys = ("init", "plain_frame", "update_frame", "within_budget", "frame_ops_within_budget", "cuda_graphs",
            "graphs_recorded", "graph_fallbacks", "device")
    return {k: report[k] for k in keys} | {"confirmed_by_cuda": confirmed}


def bench(cfg: CheckConfig) -> Dict[str, Any]:
    from d3s_vot.tools.speed_bench import BenchConfig, run_bench

    common = dict(device=cfg.device, frames=cfg.bench_frames, warmup=1, repeats=1 if cfg.device == "cpu" else 3,
                  init_repeats=1, quick=cfg.device == "cpu", overrides=cfg.params)
    default = run_bench(BenchConfig(sizes=cfg.bench_sizes, **common), progress=False)
    fast = run_bench(BenchConfig(sizes=cfg.bench_sizes[:1], fast=True, **common), progress=False)
    return {"sizes": [f"{w}x{h}" for w, h in cfg.bench_sizes], "default": _bench_summary(default),
            "fast": _bench_summary(fast)}


def _bench_summary(report: Dict[str, Any]) -> Dict[str, Any]:
    keys = ("size", "frame_mean_ms", "fps", "init_ms", "frame_ratio", "init_ratio", "cg_frame_mean_ms",
            "plain_frame_mean_ms", "peak_memory_mib")
    return {"bounds": {k: report["bounds"][k] for k in ("frame_bound_ms", "init_bound_ms")},
            "dcf_dtype": report["dcf_dtype"], "memory_format": report["memory_format"],
            "per_size": [{k: s[k] for k in keys} for s in report["sizes"]]}


def find_parity(explicit: Optional[Path]) -> Optional[Path]:
    """The parity fixture folder: ``explicit``, $D3S_PARITY_DIR, the in-tree copy, ../shared/parity."""
    root = Path(__file__).resolve().parents[2]
    candidates = [explicit, os.environ.get("D3S_PARITY_DIR"), root / "gpu_check_fixtures" / "parity",
                  root.parent / "shared" / "parity"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "tracker_ref.npz").is_file() and (Path(candidate) / "make_weights.py").is_file():
            return Path(candidate)
    return None


def _iou(a: Sequence[float], b: Sequence[float]) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = a[2] * a[3] + b[2] * b[3] - inter
    return float(inter / union) if union > 0 else 0.0


#: (name, fixture key, tolerance) of the per-frame checks, as in tests/test_tracker_parity.py
PARITY_TOLERANCES = {"scores_raw": 1e-4, "max_score": 1e-4, "position": 1e-6, "target_size": 1e-6, "scale": 1e-6,
                     "output": 1e-6, "segm_prob": 2.5e-4}


def parity(cfg: CheckConfig) -> Dict[str, Any]:
    import importlib.util

    import torch

    from d3s_vot import D3SParams, D3STracker

    folder = find_parity(cfg.parity)
    if folder is None:
        raise FileNotFoundError("parity fixtures not found: pass --parity, set D3S_PARITY_DIR or run "
                                "scripts/gpu_check.sh (it copies ../shared/parity into gpu_check_fixtures/)")
    spec = importlib.util.spec_from_file_location("d3s_parity_make_weights", folder / "make_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    z = np.load(folder / "tracker_ref.npz")
    weights = type("Weights", (), {})()
    weights.segm_state = module.segm_state(0, head_npz=str(folder / "tracker_head_seed0.npz"))
    weights.backbone_state = module.dcf_backbone_state(0)
    frames = z["frames"] if cfg.parity_frames is None else z["frames"][:cfg.parity_frames + 1]
    out: Dict[str, Any] = {"fixtures": str(folder), "frames": len(frames) - 1, "float64": {}, "float32_iou": {},
                           "fast_iou": {}}
    for mode in cfg.parity_modes:
        init = z[f"{mode}/init_state"].copy()
        if mode == "rect":
            init[:2] -= 1
        trackers = {"float64": D3STracker(weights, D3SParams(), device=cfg.device, dtype=torch.float64),
                    "float32": D3STracker(weights, D3SParams(), device=cfg.device),
                    "fast": D3STracker(weights, D3SParams().fast_mode(), device=cfg.device)}
        boxes: Dict[str, List] = {name: [] for name in trackers}
        worst = {name: 0.0 for name in PARITY_TOLERANCES}
        segm_calls = 0
        for name, tracker in trackers.items():
            tracker.initialize(frames[0], init)
            for i, frame in enumerate(frames[1:]):
                r = tracker.track(frame)
                boxes[name].append(r.box)
                if name != "float64":
                    continue
                d = tracker.debug
                n = z[f"{mode}/output_len"][i]
                errors = {"scores_raw": np.abs(d["scores_raw"].cpu().numpy() - z[f"{mode}/scores_raw"][i]).max(),
                          "max_score": abs(r.max_score - z[f"{mode}/scores_up_max"][i]),
                          "position": np.abs(r.position - z[f"{mode}/pos"][i]).max(),
                          "target_size": np.abs(r.target_size - z[f"{mode}/target_sz"][i]).max(),
                          "scale": abs(r.scale - z[f"{mode}/target_scale"][i]),
                          "output": np.abs(r.original_output - z[f"{mode}/output"][i][:n]).max()
                          if r.original_output.size == n else math.inf}
                if d["segm_called"]:
                    errors["segm_prob"] = np.abs(d["segm_prob"] - z[f"{mode}/segm_prob"][segm_calls]).max()
                    segm_calls += 1
                for key, value in errors.items():
                    worst[key] = max(worst[key], float(value))
        out["float64"][mode] = {"max_error": worst, "tolerance": PARITY_TOLERANCES,
                                "within_tolerance": all(worst[k] <= PARITY_TOLERANCES[k] for k in worst)}
        for name in ("float32", "fast"):
            ious = [_iou(a, b) for a, b in zip(boxes[name], boxes["float64"])]
            out[f"{name}_iou"][mode] = {"mean": float(np.mean(ious)), "min": float(min(ious)), "per_frame": ious}
    return out


def training(cfg: CheckConfig) -> Dict[str, Any]:
    from d3s_vot.synthetic.scene import SceneConfig
    from d3s_vot.synthetic.ytvos import write_ytvos
    from d3s_vot.train.config import PRESETS
    from d3s_vot.train.loop import RunOptions, train

    with tempfile.TemporaryDirectory(prefix="d3s_gpu_check_") as tmp:
        root = write_ytvos(Path(tmp) / "ytvos", num_videos=2, num_frames=10, seed=3,
                           config=SceneConfig(width=160, height=120), val_videos=1)
        config = PRESETS["smoke"].replace(epochs=1, iterations=1, batch_size=2, val_pairs=2)
        options = RunOptions(data_root=root, out_dir=Path(tmp) / "run", train_list=root / "vos-list-train.txt",
                             val_list=root / "vos-list-val.txt", random_backbone=0, num_workers=0, progress=False,
                             device=cfg.device)
        start = time.perf_counter()
        history = train(config, options)
        seconds = time.perf_counter() - start
    loss = float(history[-1]["train_loss"])
    return {"device": cfg.device, "amp": bool(config.amp and cfg.device != "cpu"), "loss": loss, "seconds": seconds}


SECTION_FUNCTIONS: Dict[str, Callable[[CheckConfig], Dict[str, Any]]] = {
    "environment": environment, "smoke": smoke, "sync_counts": sync_counts, "bench": bench, "parity": parity,
    "training": training}


# ------------------------------------------------------------------------------------------------
# Driver
# ------------------------------------------------------------------------------------------------

def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON: {type(value).__name__}")


class Log:
    """The text log beside the JSON, flushed after every line."""

    def __init__(self, path: Path):
        self.handle = path.open("w")

    def line(self, text: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        self.handle.write(f"{stamp} {text}\n")
        self.handle.flush()
        print(text, file=sys.stderr)


def run_check(cfg: CheckConfig, sections: Sequence[str] = SECTIONS) -> Dict[str, Any]:
    cfg.out.mkdir(parents=True, exist_ok=True)
    log = Log(cfg.out / "gpu_check.log")
    report: Dict[str, Any] = {"device": cfg.device, "dry_run": cfg.device == "cpu",
                              "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "seconds": 0.0, "sections": {},
                              "errors": {}}
    report.update({name: None for name in SECTIONS})
    start = time.perf_counter()
    for name in sections:
        log.line(f"== {name}")
        t0 = time.perf_counter()
        try:
            report[name] = SECTION_FUNCTIONS[name](cfg)
            status = "ok"
        except Exception as exc:  # noqa: BLE001 - one section's failure is recorded, the check goes on
            report["errors"][name] = f"{type(exc).__name__}: {exc}"
            log.line(traceback.format_exc())
            status = "FAILED"
        report["sections"][name] = {"status": status, "seconds": time.perf_counter() - t0}
        report["seconds"] = time.perf_counter() - start
        log.line(f"{name}: {status} in {report['sections'][name]['seconds']:.1f} s")
        if report[name] is not None:
            log.line(json.dumps(_brief(report[name]), default=_json_default))
        atomic_write_text(cfg.out / "gpu_check.json", json.dumps(report, indent=2, default=_json_default) + "\n")
    log.line(f"done in {report['seconds']:.1f} s; {len(report['errors'])} section(s) failed; "
             f"wrote {cfg.out / 'gpu_check.json'}")
    return report


def _brief(section: Dict[str, Any]) -> Dict[str, Any]:
    """A section without its long per-frame lists, for the log."""
    def trim(value):
        if isinstance(value, dict):
            return {k: trim(v) for k, v in value.items() if k not in ("boxes", "per_frame")}
        return value
    return trim(section)


def build_parser() -> argparse.ArgumentParser:
    parser = CliArgumentParser(prog="python -m d3s_vot.tools.gpu_check", description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="output folder (gpu_check.json, gpu_check.log)")
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N, or cpu for the dry run (default cuda)")
    parser.add_argument("--parity", help="parity fixture folder (default: see the module docstring)")
    parser.add_argument("--sections", help=f"comma-separated subset of {','.join(SECTIONS)} (default: all)")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    return run_cli(_gpu_check, argv)


def _gpu_check(argv: Optional[List[str]]) -> int:
    args = build_parser().parse_args(argv)
    import torch

    from d3s_vot.devices import DeviceError, resolve_device

    try:
        device = str(resolve_device(args.device))
    except DeviceError as exc:
        raise InputError(f"--device {args.device}: {exc}") from None
    sections = SECTIONS if not args.sections else tuple(s.strip() for s in args.sections.split(","))
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown:
        raise InputError(f"--sections: unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    torch.set_num_threads(max(1, torch.get_num_threads()))
    cfg = settings("cpu" if device == "cpu" else device, Path(args.out),
                   Path(args.parity) if args.parity else None)
    report = run_check(cfg, sections)
    return 0 if not report["errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
