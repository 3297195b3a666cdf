"""Track one target through a folder of frames: ``python -m d3s_vot.track SEQ_DIR --out regions.txt``.

The sequence folder may be a VOT sequence (frames in ``color/``), a GOT-10k sequence or any folder
of ``.jpg``/``.png`` frames (natural order). Without ``--init``/``--init-polygon`` the first line of
its ``groundtruth.txt`` initialises the tracker. Output: one region per frame (the first line is
the initial region), comma-separated, 4 numbers ``x,y,w,h`` (0-based) for a box run or 8 numbers
``x1,y1,...,x4,y4`` for a polygon run; ``--masks DIR`` also writes ``%08d.png`` full-image masks.
See ``docs/weights.md`` for where the weights come from.

No work is lost: ``--out`` and ``--masks`` are checked for writability before the tracker is built,
and the regions are written as they are produced to ``<out>.partial`` beside the output (one line
per frame, flushed), which is renamed to ``--out`` once the last frame is tracked (masks are written
frame by frame). Ctrl-C (exit code 130) or a frame that fails (unreadable, truncated or empty file,
dangling link, a different size, a tracker error: exit code 2, one ``error: <file>: ...`` line)
leaves the regions tracked so far in the partial file. ``--resume`` continues such a run: D3S is
deterministic, so it re-tracks from the first frame, checks that the regions it reproduces equal
the kept lines (an error if the frames, options or weights changed) and appends the rest.
Dangling links and empty files are refused when the folder is listed, before any tracking.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence

import numpy as np

from d3s_vot.common.cli import CliArgumentParser, UserError, error_line
from d3s_vot.factory import DTYPES, TrackerBuildError, TrackerSpec, check_spec
from d3s_vot.common.io_utils import (InputError, atomic_write_bytes, find_sequence,
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
    parser.add_argument("--out", required=True, metavar="FILE",
                        help="output region file; regions are streamed to FILE.partial, renamed to FILE at the end "
                             "(an interrupted or failed run leaves the regions tracked so far there)")
    parser.add_argument("--resume", action="store_true",
                        help="continue a run that left FILE.partial: re-track from the first frame, check that "
                             "the kept regions are reproduced exactly, then append the rest")
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
    spec = tracker_spec(args)
    partial = partial_path(out)
    if partial.is_dir():
        raise InputError(f"--out {out}: {partial} is a directory, cannot write the partial region file there")
    check_writable_dir(out.parent, f"--out {out}")
    if masks is not None:
        check_writable_dir(masks, f"--masks {masks}")
    return TrackJob(seq.frames, init, out, masks, spec)


def partial_path(out: Path) -> Path:
    """Where the regions are streamed while tracking: ``<out>.partial`` beside the output."""
    return out.with_name(out.name + ".partial")


def check_writable_dir(folder: Path, option: str) -> None:
    """Create ``folder`` (with its parents) and write a probe file there: an unwritable output is an
    error before any tracking, not after the whole sequence ran."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".d3s-track-", suffix=".probe")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise InputError(f"{option}: cannot write to the folder {folder} ({exc.strerror or exc})") from None


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
        if exc.setting == "device":         # --device takes cpu or cuda: only a missing CUDA fails
            raise InputError("--device cuda: no CUDA device is available (use --device cpu)") from None
        raise InputError(exc.cli_message()) from None
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


class RegionWriter:
    """Streams the regions to ``<out>.partial`` (one flushed line per frame), renamed to ``out`` by :meth:`finish`.

    With ``resume`` the lines already in the partial file are kept: the regions of those frames are
    compared with them (they must be identical) instead of being written again.
    """

    def __init__(self, out: Path, resume: bool = False):
        self.out, self.partial = out, partial_path(out)
        self.kept_lines: List[str] = []     # lines found in the partial file by --resume
        self.resumed = False
        if resume and self.partial.is_file():
            self.kept_lines = read_complete_lines(self.partial)
            self.resumed = True
            with open(self.partial, "r+b") as handle:  # drop a last line cut off by a kill
                handle.truncate(handle.read().rfind(b"\n") + 1)
            self.handle = open(self.partial, "a", encoding="utf-8", newline="\n")
        else:
            self.handle = open(self.partial, "w", encoding="utf-8", newline="\n")
        self.count = 0                      # regions produced so far in this run

    def add(self, region: np.ndarray, frame: Path) -> None:
        line = format_region(region)
        if self.count < len(self.kept_lines):
            if line != self.kept_lines[self.count]:
                raise InputError(f"--resume: {frame}: region {line} differs from line {self.count + 1} of "
                                 f"{self.partial} ({self.kept_lines[self.count]}): the frames, the options or "
                                 "the weights changed; run without --resume to start over")
        else:
            self.handle.write(line + "\n")
            self.handle.flush()
        self.count += 1

    def kept(self) -> int:
        """Complete lines now in the partial file (closes it)."""
        self.close()
        return len(read_complete_lines(self.partial)) if self.partial.is_file() else 0

    def close(self) -> None:
        if not self.handle.closed:
            self.handle.close()

    def finish(self) -> None:
        self.close()
        os.replace(self.partial, self.out)

    def discard_if_empty(self) -> int:
        """After a failure: the number of regions kept; an empty partial file is removed."""
        kept = self.kept()
        if kept == 0 and self.partial.is_file():
            self.partial.unlink()
        return kept


def read_complete_lines(path: Path) -> List[str]:
    """The newline-terminated lines of ``path`` (a last line without its newline was cut off)."""
    text = path.read_text(encoding="utf-8", errors="replace")
    return text.split("\n")[:-1]


def readable_region(values: Sequence[float]) -> str:
    """The region as the user wrote it in messages: the output format, or ``%g`` for huge numbers
    (``1e+308`` rather than 309 digits)."""
    values = np.asarray(values, dtype=np.float64)
    if np.all(np.abs(values) < 1e6):
        return format_region(values)
    return ",".join(f"{v:.6g}" for v in values)


def track_frames(tracker: Any, frames: Sequence[Path], init_region: np.ndarray,
                 masks_dir: Optional[Path] = None, progress: bool = True,
                 read: Callable[[Path], np.ndarray] = read_frame,
                 emit: Optional[Callable[[np.ndarray, Path], None]] = None) -> List[np.ndarray]:
    """Initialise on the first frame, track the rest; return one region per frame (first = ``init_region``).

    ``emit(region, frame)`` is called as soon as each region is known (the CLI streams them to disk).
    A frame that cannot be read, has another size or makes the tracker fail raises :class:`InputError`
    naming the file.
    """
    from tqdm import tqdm

    first = read(frames[0])
    height, width = first.shape[:2]
    try:
        tracker.initialize(first, init_region.copy())
    except ValueError as exc:
        raise InputError(f"initial region {readable_region(init_region)}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - any tracker failure becomes one error line naming the frame
        raise InputError(f"{frames[0]}: the tracker failed to initialise ({type(exc).__name__}: {exc})") from None
    if masks_dir is not None:
        write_mask(masks_dir, 1, region_mask(init_region, height, width))
    polygon_mode = len(init_region) == 8
    regions = [np.asarray(init_region, dtype=np.float64)]
    if emit is not None:
        emit(regions[0], frames[0])
    # the bar is shown on terminals only, and closed before any error message is printed
    with tqdm(total=len(frames) - 1, desc="tracking", unit="frame", disable=None if progress else True,
              file=sys.stderr) as bar:
        for number, path in enumerate(frames[1:], start=2):
            image = read(path)
            if image.shape[:2] != (height, width):
                raise InputError(f"{path}: frame size {image.shape[1]}x{image.shape[0]} differs from the first "
                                 f"frame's {width}x{height}")
            try:
                result = tracker.track(image)
                region = output_region(result, polygon_mode)
            except Exception as exc:  # noqa: BLE001
                raise InputError(f"{path}: the tracker failed on this frame ({type(exc).__name__}: {exc})") from None
            regions.append(region)
            if masks_dir is not None:
                write_mask(masks_dir, number, result.mask)
            if emit is not None:
                emit(region, path)
            bar.update()
    return regions


def run(job: TrackJob, tracker: Any, progress: bool = True, writer: Optional[RegionWriter] = None) -> float:
    """Track and write the outputs; return the frame rate (frames after the first per second).

    The regions go to ``writer`` (default: a new :class:`RegionWriter` on ``job.out``) as they are
    produced; its partial file becomes ``job.out`` at the end.
    """
    job.out.parent.mkdir(parents=True, exist_ok=True)
    if job.masks_dir is not None:
        job.masks_dir.mkdir(parents=True, exist_ok=True)
    if writer is None:
        writer = RegionWriter(job.out)
    if len(writer.kept_lines) > len(job.frames):
        raise InputError(f"--resume: {writer.partial} has {len(writer.kept_lines)} regions but the sequence only "
                         f"{len(job.frames)} frames; run without --resume to start over")
    start = time.perf_counter()
    try:
        regions = track_frames(tracker, job.frames, job.init_region, job.masks_dir, progress, emit=writer.add)
    finally:
        writer.close()  # the lines written so far stay in the partial file
    elapsed = time.perf_counter() - start
    writer.finish()
    return (len(regions) - 1) / elapsed if elapsed > 0 else float("inf")


def count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    writer: Optional[RegionWriter] = None
    try:
        job = make_job(args)
        tracker = make_tracker(job.spec)
        writer = RegionWriter(job.out, resume=args.resume)
        if args.resume:
            if writer.resumed:
                print(f"resuming: re-tracking from the first frame and checking the "
                      f"{count(len(writer.kept_lines), 'region')} kept in {writer.partial}", file=sys.stderr)
            else:
                print(f"resuming: no {writer.partial}, tracking from the first frame", file=sys.stderr)
        fps = run(job, tracker, progress=True, writer=writer)
    except KeyboardInterrupt:
        kept = writer.discard_if_empty() if writer is not None else 0
        if kept:
            print(f"interrupted: kept {count(kept, 'region')} in {writer.partial} "
                  "(run again with --resume to continue)", file=sys.stderr)
        else:
            print("interrupted: no region written yet", file=sys.stderr)
        return 130
    except (UserError, OSError) as exc:
        kept = writer.discard_if_empty() if writer is not None else 0
        kept_note = f" (kept {count(kept, 'region')} in {writer.partial})" if kept else ""
        print(f"{error_line(exc)}{kept_note}", file=sys.stderr)
        return 2
    if writer.resumed:
        print(f"resumed: the {count(len(writer.kept_lines), 'region')} kept in {writer.partial} were reproduced "
              f"exactly, {len(job.frames) - len(writer.kept_lines)} tracked after them")
    print(f"wrote {len(job.frames)} regions to {job.out} ({fps:.2f} frames/s)"
          + (f" and masks to {job.masks_dir}" if job.masks_dir else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
