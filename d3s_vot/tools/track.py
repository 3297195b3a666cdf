"""Track one target through a folder of frames: ``python -m d3s_vot.track SEQ_DIR --out regions.txt``.

The sequence folder may be a VOT sequence (frames in ``color/``), a GOT-10k sequence or any folder
of ``.jpg``/``.png`` frames (natural order). Without ``--init``/``--init-polygon`` the first line of
its ``groundtruth.txt`` initialises the tracker. Output: one region per frame (the first line is
the initial region), comma-separated, 4 numbers ``x,y,w,h`` (0-based) for a box run or 8 numbers
``x1,y1,...,x4,y4`` for a polygon run; ``--masks DIR`` also writes ``%08d.png`` full-image masks.
See ``docs/weights.md`` for where the weights come from.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence

import numpy as np

from d3s_vot.factory import DTYPES, TrackerBuildError, TrackerSpec, check_spec
from d3s_vot.common.io_utils import (CliArgumentParser, InputError, atomic_write_bytes, atomic_write_text, find_sequence,
                              format_region, parse_region_text, read_first_region, read_frame)
from d3s_vot.params import parse_assignments


@dataclass(frozen=True)
class TrackJob:
    """Everything one run needs, checked before any tracking starts."""

    frames: List[Path]
    init_region: np.ndarray          # 4 numbers (0-based box) or 8 (polygon)
    out: Path
    masks_dir: Optional[Path]
    spec: TrackerSpec                # what to build (checked, weights not read yet)


def build_parser() -> argparse.ArgumentParser:
    parser = CliArgumentParser(prog="python -m d3s_vot.track",
                               description="Run the D3S tracker on one sequence folder and write its regions.")
    parser.add_argument("seq_dir", metavar="SEQ_DIR", help="VOT sequence (color/), GOT-10k sequence or folder of frames")
    weights = parser.add_mutually_exclusive_group()
    weights.add_argument("--weights", metavar="PACK", help="d3s.safetensors pack (default: $D3S_WEIGHTS, then "
                         "~/.cache/d3s_vot, see docs/weights.md)")
    weights.add_argument("--segm-weights", metavar="PATH", help="the authors' SegmNet.pth.tar")
    weights.add_argument("--random-weights", metavar="SEED", type=int,
                         help="untrained random weights (demos and tests; meaningless tracking)")
    parser.add_argument("--backbone-weights", metavar="PATH",
                        help="torchvision resnet50-0676ba61.pth (with --segm-weights)")
    init = parser.add_mutually_exclusive_group()
    init.add_argument("--init", metavar="X,Y,W,H", help="initial 0-based box (default: first groundtruth.txt line)")
    init.add_argument("--init-polygon", metavar="X1,Y1,...,X4,Y4", help="initial polygon: rotated-box (VOT) mode")
    parser.add_argument("--groundtruth", metavar="FILE",
                        help="ground-truth file whose first line initialises (default SEQ_DIR/groundtruth.txt)")
    parser.add_argument("--param", metavar="NAME=VALUE", action="append", default=[],
                        help="override a D3SParams field (repeatable)")
    parser.add_argument("--dtype", choices=DTYPES, default="float32")
    parser.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda if available, else cpu")
    parser.add_argument("--out", required=True, metavar="FILE", help="output region file")
    parser.add_argument("--masks", metavar="DIR", help="also write full-image masks DIR/%%08d.png (0/255)")
    return parser


def make_job(args: argparse.Namespace) -> TrackJob:
    """Check the sequence, the initial region and the output paths (no tracker, no weights yet)."""
    if args.backbone_weights and not args.segm_weights:
        raise InputError("--backbone-weights needs --segm-weights (a pack given with --weights already has it)")
    seq = find_sequence(args.seq_dir)
    if args.init:
        init = parse_region_text(args.init, "--init", counts=(4,))
    elif args.init_polygon:
        init = parse_region_text(args.init_polygon, "--init-polygon", counts=(8,))
    else:
        gt = Path(args.groundtruth) if args.groundtruth else seq.groundtruth
        if gt is None:
            raise InputError(f"{args.seq_dir}: no groundtruth.txt; give the initial region with --init x,y,w,h "
                             "or --init-polygon x1,y1,...,x4,y4")
        init = read_first_region(gt)
    out = Path(args.out)
    if out.is_dir():
        raise InputError(f"--out {out}: is a directory, expected a file name")
    masks = Path(args.masks) if args.masks else None
    if masks is not None and masks.exists() and not masks.is_dir():
        raise InputError(f"--masks {masks}: exists and is not a directory")
    return TrackJob(seq.frames, init, out, masks, tracker_spec(args))


def tracker_spec(args: argparse.Namespace) -> TrackerSpec:
    """The tracker the options ask for, checked without reading the weights."""
    try:
        overrides = parse_assignments(args.param, "--param")
    except ValueError as exc:
        raise InputError(str(exc)) from None
    spec = TrackerSpec(weights=args.weights, segm_weights=args.segm_weights, backbone_weights=args.backbone_weights,
                       random_weights_seed=args.random_weights, device=args.device, dtype=args.dtype,
                       params=overrides)
    try:
        check_spec(spec)
    except TrackerBuildError as exc:
        if args.device == "cuda" and "CUDA" in str(exc):
            raise InputError("--device cuda: no CUDA device is available (use --device cpu)") from None
        raise InputError(f"--param: {exc}") from None
    return spec


def make_tracker(spec: TrackerSpec) -> Any:
    """Build the tracker (reads the weights: ``TrackerBuildError`` when they are missing or damaged)."""
    from d3s_vot.factory import build_tracker
    from d3s_vot.runtime import tune_cpu_allocator

    tune_cpu_allocator()
    return build_tracker(spec)


def region_mask(region: np.ndarray, height: int, width: int) -> np.ndarray:
    """0/1 mask of a 4-number box (pixels whose centre lies inside) or an 8-number polygon."""
    import cv2

    mask = np.zeros((height, width), np.uint8)
    if len(region) == 4:
        x, y, w, h = region
        x0, y0 = max(0, int(np.ceil(x - 0.5))), max(0, int(np.ceil(y - 0.5)))
        x1, y1 = min(width, int(np.ceil(x + w - 0.5))), min(height, int(np.ceil(y + h - 0.5)))
        mask[y0:y1, x0:x1] = 1
    else:
        cv2.fillPoly(mask, [np.round(np.asarray(region).reshape(4, 2)).astype(np.int32)], 1)
    return mask


def output_region(result: Any, polygon_mode: bool) -> np.ndarray:
    """What one frame contributes to the output file: 8 corner numbers (polygon run) or the box."""
    if not polygon_mode:
        return np.asarray(result.box, dtype=np.float64).reshape(4)
    if result.polygon is not None:
        return np.asarray(result.polygon, dtype=np.float64).reshape(8)
    x, y, w, h = np.asarray(result.box, dtype=np.float64).reshape(4)
    return np.array([x, y, x + w, y, x + w, y + h, x, y + h])


def write_mask(directory: Path, frame_number: int, mask: np.ndarray) -> None:
    import cv2

    ok, png = cv2.imencode(".png", (np.asarray(mask) > 0).astype(np.uint8) * 255)
    if not ok:
        raise OSError(f"could not encode mask {frame_number}")
    atomic_write_bytes(directory / f"{frame_number:08d}.png", png.tobytes())


def track_frames(tracker: Any, frames: Sequence[Path], init_region: np.ndarray,
                 masks_dir: Optional[Path] = None, progress: bool = True,
                 read: Callable[[Path], np.ndarray] = read_frame) -> List[np.ndarray]:
    """Initialise on the first frame, track the rest; return one region per frame (first = ``init_region``)."""
    from tqdm import tqdm

    first = read(frames[0])
    height, width = first.shape[:2]
    try:
        tracker.initialize(first, init_region.copy())
    except ValueError as exc:
        raise InputError(f"initial region {format_region(init_region)}: {exc}") from None
    if masks_dir is not None:
        write_mask(masks_dir, 1, region_mask(init_region, height, width))
    polygon_mode = len(init_region) == 8
    regions = [np.asarray(init_region, dtype=np.float64)]
    # the bar is shown on terminals only, and closed before any error message is printed
    with tqdm(total=len(frames) - 1, desc="tracking", unit="frame", disable=None if progress else True,
              file=sys.stderr) as bar:
        for number, path in enumerate(frames[1:], start=2):
            image = read(path)
            if image.shape[:2] != (height, width):
                raise InputError(f"{path}: frame size {image.shape[1]}x{image.shape[0]} differs from the first "
                                 f"frame's {width}x{height}")
            result = tracker.track(image)
            regions.append(output_region(result, polygon_mode))
            if masks_dir is not None:
                write_mask(masks_dir, number, result.mask)
            bar.update()
    return regions


def run(job: TrackJob, tracker: Any, progress: bool = True) -> float:
    """Track and write the outputs; return the frame rate (frames after the first per second)."""
    job.out.parent.mkdir(parents=True, exist_ok=True)
    if job.masks_dir is not None:
        job.masks_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    regions = track_frames(tracker, job.frames, job.init_region, job.masks_dir, progress)
    elapsed = time.perf_counter() - start
    atomic_write_text(job.out, "".join(format_region(r) + "\n" for r in regions))
    return (len(regions) - 1) / elapsed if elapsed > 0 else float("inf")


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        job = make_job(args)
        tracker = make_tracker(job.spec)
        fps = run(job, tracker, progress=True)
    except (InputError, TrackerBuildError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {len(job.frames)} regions to {job.out} ({fps:.2f} frames/s)"
          + (f" and masks to {job.masks_dir}" if job.masks_dir else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
