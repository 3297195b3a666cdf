"""Synthetic sequences in the GOT-10k layout, readable by got10k==0.1.3 and ``d3s_vot.got10k_eval``.

Layout (``python -m d3s_vot.synthetic got10k OUT --subset val``)::

    OUT/<subset>/list.txt                        GOT-10k_Val_000001 ... one per line
    OUT/<subset>/<SEQ>/00000001.jpg ...          8-digit, 1-based frames
    OUT/<subset>/<SEQ>/groundtruth.txt           x,y,w,h per frame, 4 decimals (test: first line only)
    OUT/<subset>/<SEQ>/absence.label             train/val: 1 = target not visible
    OUT/<subset>/<SEQ>/cover.label               train/val: visible ratio as 0..8 (0 = not visible)
    OUT/<subset>/<SEQ>/cut_by_image.label        train/val: 1 = target crosses the image border
    OUT/<subset>/<SEQ>/meta_info.ini             train/val: [METAINFO] + "key: value" lines
    OUT/_hidden_groundtruth/test/<SEQ>.txt       test only: the full ground truth the server would keep

The box is the axis-aligned box of the visible target mask (integer pixels); frames where the target
is invisible repeat the last visible box and get ``cover = 0`` so the toolkit ignores them.
"""
from __future__ import annotations

import argparse
from pathlib import Path
import cv2
import numpy as np
from tqdm import tqdm

from d3s_vot.integrations.box_runner.boxio import format_rows
from d3s_vot.common.io_utils import atomic_write_text
from d3s_vot.synthetic.scene import SceneConfig, SyntheticSequence, generate_sequence

SUBSET_TITLES = {"train": "Train", "val": "Val", "test": "Test"}
SUBSET_SEED_OFFSET = {"train": 0, "val": 1000, "test": 2000}
HIDDEN_DIR = "_hidden_groundtruth"
JPEG_QUALITY = 95
GT_FORMAT = "%.4f"


def sequence_name(subset: str, index: int) -> str:
    """``GOT-10k_Val_000001`` for ``index`` 0 of ``val``."""
    return f"GOT-10k_{SUBSET_TITLES[subset]}_{index + 1:06d}"


def groundtruth_boxes(seq: SyntheticSequence) -> np.ndarray:
    """Visible-mask boxes with invisible frames filled by the last visible box (the polygon hull first)."""
    boxes = np.array(seq.boxes, dtype=np.float64)
    for t in range(len(boxes)):
        if np.isnan(boxes[t]).any():
            if t > 0:
                boxes[t] = boxes[t - 1]
            else:
                xs, ys = seq.polygons[0, 0::2], seq.polygons[0, 1::2]
                boxes[t] = [xs.min(), ys.min(), xs.max() - xs.min(), ys.max() - ys.min()]
    return boxes


def cover_levels(visible_ratio: np.ndarray) -> np.ndarray:
    """GOT-10k cover label: 0 when invisible, else ``ceil(8 * ratio)`` in 1..8."""
    ratio = np.clip(np.asarray(visible_ratio, dtype=np.float64), 0.0, 1.0)
    levels = np.clip(np.ceil(ratio * 8 - 1e-9), 1, 8).astype(np.int64)
    return np.where(ratio <= 0, 0, levels)


def cut_by_image(seq: SyntheticSequence, width: int, height: int) -> np.ndarray:
    xs, ys = seq.polygons[:, 0::2], seq.polygons[:, 1::2]
    outside = (xs.min(1) < 0) | (ys.min(1) < 0) | (xs.max(1) > width) | (ys.max(1) > height)
    return outside.astype(np.int64)


def write_frames(directory: Path, frames, name_of) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for index, frame in enumerate(frames):
        path = directory / name_of(index)
        if not cv2.imwrite(str(path), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]):
            raise OSError(f"could not write {path}")


def _labels(values: np.ndarray) -> str:
    return "".join(f"{int(v)}\n" for v in values)


def _meta_info(name: str, width: int, height: int, frames: int) -> str:
    return ("[METAINFO]\n"
            f"url: synthetic://{name}\n"
            "begin: 00:00:00\n"
            f"end: 00:00:{frames // 10:02d}\n"
            "anno_fps: 10Hz\n"
            "object_class: blob\n"
            "motion_class: drifting\n"
            "major_class: synthetic\n"
            "root_class: synthetic\n"
            "motion_adverb: smoothly\n"
            f"resolution: ({width}, {height})\n")


def write_got10k(out_dir, subset: str = "val", sequences: int = 3, frames: int = 30, width: int = 320,
                 height: int = 240, seed: int = 0, progress: bool = False) -> Path:
    """Write ``sequences`` synthetic sequences of ``frames`` frames as ``OUT/<subset>``; returns ``OUT``."""
    if subset not in SUBSET_TITLES:
        raise ValueError(f"unknown subset {subset!r}; choose one of {', '.join(SUBSET_TITLES)}")
    if sequences < 1 or frames < 2:
        raise ValueError("need at least 1 sequence of at least 2 frames")
    out = Path(out_dir)
    subset_dir = out / subset
    subset_dir.mkdir(parents=True, exist_ok=True)
    config = SceneConfig(width=width, height=height)
    names = []
    for index in tqdm(range(sequences), desc=f"GOT-10k {subset}", unit="seq", disable=not progress):
        name = sequence_name(subset, index)
        names.append(name)
        seq = generate_sequence(seed=seed + SUBSET_SEED_OFFSET[subset] + index, num_frames=frames, config=config)
        seq_dir = subset_dir / name
        write_frames(seq_dir, seq.frames, lambda i: f"{i + 1:08d}.jpg")
        gt = groundtruth_boxes(seq)
        if subset == "test":
            atomic_write_text(seq_dir / "groundtruth.txt", format_rows(gt[:1], GT_FORMAT))
            atomic_write_text(out / HIDDEN_DIR / subset / f"{name}.txt", format_rows(gt, GT_FORMAT))
            continue
        atomic_write_text(seq_dir / "groundtruth.txt", format_rows(gt, GT_FORMAT))
        cover = cover_levels(seq.visible_ratio)
        atomic_write_text(seq_dir / "cover.label", _labels(cover))
        atomic_write_text(seq_dir / "absence.label", _labels(cover == 0))
        atomic_write_text(seq_dir / "cut_by_image.label", _labels(cut_by_image(seq, width, height)))
        atomic_write_text(seq_dir / "meta_info.ini", _meta_info(name, width, height, frames))
    atomic_write_text(subset_dir / "list.txt", "".join(f"{n}\n" for n in names))
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out_dir", metavar="OUT_DIR", help="data set root to write (OUT_DIR/<subset>/...)")
    parser.add_argument("--subset", choices=tuple(SUBSET_TITLES), default="val")
    parser.add_argument("--sequences", type=int, default=3)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--seed", type=int, default=0)


def main(args: argparse.Namespace) -> int:
    out = write_got10k(args.out_dir, subset=args.subset, sequences=args.sequences, frames=args.frames,
                       width=args.width, height=args.height, seed=args.seed, progress=True)
    print(f"wrote GOT-10k {args.subset} ({args.sequences} sequences x {args.frames} frames) to {out}")
    if args.subset == "test":
        print(f"full ground truth (withheld from the data set): {out / HIDDEN_DIR / 'test'}")
    return 0
