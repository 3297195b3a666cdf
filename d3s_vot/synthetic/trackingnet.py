"""Synthetic sequences in the TrackingNet layout, readable by ``d3s_vot.trackingnet_eval``.

Layout (``python -m d3s_vot.synthetic trackingnet OUT --chunks TRAIN_0,TEST``)::

    OUT/<chunk>/frames/<seq>/0.jpg, 1.jpg, ...   0-based, not zero-padded
    OUT/<chunk>/anno/<seq>.txt                   x,y,w,h per frame, 2 decimals (TEST: first line only)
    OUT/_hidden_groundtruth/TEST/<seq>.txt       TEST only: the full ground truth the server would keep

Sequence names look like the real ones (an 11-character id, ``_``, a number): ``synCCIIIIII_0`` with
``CC`` the chunk (``99`` for TEST) and ``IIIIII`` the index. Boxes as in the GOT-10k writer.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from tqdm import tqdm

from d3s_vot.integrations.box_runner.boxio import format_rows
from d3s_vot.common.io_utils import atomic_write_text
from d3s_vot.synthetic.got10k import HIDDEN_DIR, groundtruth_boxes, write_frames
from d3s_vot.synthetic.scene import SceneConfig, generate_sequence

CHUNKS = ("TEST",) + tuple(f"TRAIN_{k}" for k in range(12))
ANNO_FORMAT = "%.2f"


def chunk_code(chunk: str) -> int:
    return 99 if chunk == "TEST" else int(chunk.split("_")[1])


def sequence_name(chunk: str, index: int) -> str:
    return f"syn{chunk_code(chunk):02d}{index:06d}_0"


def write_trackingnet(out_dir, chunks: Sequence[str] = ("TRAIN_0", "TEST"), sequences: int = 2, frames: int = 30,
                      width: int = 320, height: int = 240, seed: int = 0, progress: bool = False) -> Path:
    """Write ``sequences`` sequences of ``frames`` frames into each chunk; returns ``OUT``."""
    for chunk in chunks:
        if chunk not in CHUNKS:
            raise ValueError(f"unknown chunk {chunk!r}; expected TEST or TRAIN_0 .. TRAIN_11")
    if sequences < 1 or frames < 2:
        raise ValueError("need at least 1 sequence of at least 2 frames")
    out = Path(out_dir)
    config = SceneConfig(width=width, height=height)
    for chunk in chunks:
        for index in tqdm(range(sequences), desc=f"TrackingNet {chunk}", unit="seq", disable=not progress):
            name = sequence_name(chunk, index)
            seq = generate_sequence(seed=seed + 10000 + 100 * chunk_code(chunk) + index, num_frames=frames,
                                    config=config)
            write_frames(out / chunk / "frames" / name, seq.frames, lambda i: f"{i}.jpg")
            boxes = groundtruth_boxes(seq)
            anno = out / chunk / "anno" / f"{name}.txt"
            if chunk == "TEST":
                atomic_write_text(anno, format_rows(boxes[:1], ANNO_FORMAT))
                atomic_write_text(out / HIDDEN_DIR / chunk / f"{name}.txt", format_rows(boxes, ANNO_FORMAT))
            else:
                atomic_write_text(anno, format_rows(boxes, ANNO_FORMAT))
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out_dir", metavar="OUT_DIR", help="data set root to write (OUT_DIR/<chunk>/...)")
    parser.add_argument("--chunks", default="TRAIN_0,TEST", help="comma-separated chunks (default TRAIN_0,TEST)")
    parser.add_argument("--sequences", type=int, default=2, help="sequences per chunk")
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--seed", type=int, default=0)


def main(args: argparse.Namespace) -> int:
    chunks = [c.strip() for c in args.chunks.split(",") if c.strip()]
    out = write_trackingnet(args.out_dir, chunks=chunks, sequences=args.sequences, frames=args.frames,
                            width=args.width, height=args.height, seed=args.seed, progress=True)
    print(f"wrote TrackingNet {', '.join(chunks)} ({args.sequences} sequences x {args.frames} frames each) to {out}")
    if "TEST" in chunks:
        print(f"full TEST ground truth (withheld from the data set): {out / HIDDEN_DIR / 'TEST'}")
    return 0
