"""Reader of the TrackingNet layout (got10k's own TrackingNet class is broken, see docs).

    ROOT/TRAIN_0 .. TRAIN_11/{frames,anno}     full annotations
    ROOT/TEST/{frames,anno}                    anno has only the first frame's box
    <chunk>/frames/<seq>/0.jpg, 1.jpg, ...     0-based, not zero-padded: sorted numerically
    <chunk>/anno/<seq>.txt                     x,y,w,h per frame, comma-separated

The sequences of a chunk are those with an ``anno/<seq>.txt``, sorted by name.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import List, Sequence, Tuple

import numpy as np

from d3s_vot.integrations.box_runner.boxio import BenchmarkError, read_boxes

CHUNKS = ("TEST",) + tuple(f"TRAIN_{k}" for k in range(12))
DOWNLOAD_HINT = ("get TrackingNet with its devkit (https://github.com/SilvioGiancola/TrackingNet-devkit) or make "
                 "a synthetic one with `python -m d3s_vot.synthetic trackingnet OUT`")
_FRAME = re.compile(r"^(\d+)\.jpg$")


@dataclass(frozen=True)
class TrackingNetSequence:
    name: str
    chunk: str
    frame_files: Tuple[str, ...]
    anno: np.ndarray           # (N, 4); TEST: (1, 4)
    anno_file: str

    @property
    def init_box(self) -> Tuple[float, float, float, float]:
        return tuple(float(v) for v in self.anno[0])

    @property
    def has_full_annotation(self) -> bool:
        return len(self.anno) == len(self.frame_files)


def parse_chunks(text: str) -> List[str]:
    """``"TRAIN_0,TEST"`` -> ``["TRAIN_0", "TEST"]`` (validated, duplicates removed, order kept)."""
    chunks = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        if item not in CHUNKS:
            raise BenchmarkError(f"unknown TrackingNet chunk {item!r}; expected TEST or TRAIN_0 .. TRAIN_11")
        if item not in chunks:
            chunks.append(item)
    if not chunks:
        raise BenchmarkError("no TrackingNet chunk given")
    return chunks


def frame_files(frames_dir: Path) -> Tuple[str, ...]:
    """``N.jpg`` files of a sequence, sorted by the number ``N``."""
    if not frames_dir.is_dir():
        raise BenchmarkError(f"{frames_dir}: frame folder does not exist")
    numbered = []
    for path in frames_dir.iterdir():
        match = _FRAME.match(path.name)
        if match:
            numbered.append((int(match.group(1)), str(path)))
    if not numbered:
        raise BenchmarkError(f"{frames_dir}: no <N>.jpg frames")
    numbered.sort()
    return tuple(path for _, path in numbered)


def load_chunk(root, chunk: str) -> List[TrackingNetSequence]:
    root = Path(root)
    if not root.is_dir():
        raise BenchmarkError(f"TrackingNet root {root} does not exist; {DOWNLOAD_HINT}")
    anno_dir = root / chunk / "anno"
    if not anno_dir.is_dir():
        raise BenchmarkError(f"{anno_dir} does not exist (chunk {chunk} not downloaded/extracted?); {DOWNLOAD_HINT}")
    sequences = []
    for anno_file in sorted(anno_dir.glob("*.txt")):
        name = anno_file.stem
        frames = frame_files(root / chunk / "frames" / name)
        anno = read_boxes(anno_file)
        if len(anno) == 0:
            raise BenchmarkError(f"{anno_file}: empty (at least the initial box is needed)")
        if chunk != "TEST" and len(anno) != len(frames):
            raise BenchmarkError(f"{anno_file}: {len(anno)} boxes for {len(frames)} frames")
        sequences.append(TrackingNetSequence(name, chunk, frames, anno, str(anno_file)))
    if not sequences:
        raise BenchmarkError(f"{anno_dir}: no <sequence>.txt annotation files")
    return sequences


def load_chunks(root, chunks: Sequence[str]) -> List[TrackingNetSequence]:
    sequences = [seq for chunk in chunks for seq in load_chunk(root, chunk)]
    seen = {}
    for seq in sequences:
        if seq.name in seen:
            raise BenchmarkError(f"sequence {seq.name} appears in both {seen[seq.name]} and {seq.chunk}")
        seen[seq.name] = seq.chunk
    return sequences
