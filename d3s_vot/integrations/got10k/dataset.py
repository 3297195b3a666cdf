"""A strict reader of the GOT-10k layout (``<root>/<subset>/list.txt``, ``<SEQ>/00000001.jpg``, ...).

The toolkit's own ``GOT10k`` class only asserts or prints on bad data; this reader names the file and
line instead, before any tracking starts. The sequence order is ``list.txt``'s, like the toolkit's.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Tuple

import numpy as np

from d3s_vot.integrations.box_runner.boxio import BenchmarkError, read_boxes

SUBSETS = ("train", "val", "test")
DOWNLOAD_HINT = "get GOT-10k from http://got-10k.aitestunion.com/downloads (or make a synthetic one with " \
                "`python -m d3s_vot.synthetic got10k OUT`)"


@dataclass(frozen=True)
class Got10kSequence:
    name: str
    frame_files: Tuple[str, ...]
    groundtruth: np.ndarray      # (N, 4); only the first row on the test subset
    groundtruth_file: str

    @property
    def init_box(self) -> Tuple[float, float, float, float]:
        return tuple(float(v) for v in self.groundtruth[0])

    @property
    def has_full_groundtruth(self) -> bool:
        return len(self.groundtruth) == len(self.frame_files)


def read_list_file(path: Path) -> List[str]:
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        raise BenchmarkError(f"{path}: not found; {DOWNLOAD_HINT}") from None
    names = [line.strip() for line in lines if line.strip()]
    if not names:
        raise BenchmarkError(f"{path}: lists no sequences")
    return names


def load_subset(root, subset: str) -> List[Got10kSequence]:
    """Load every sequence of ``<root>/<subset>`` listed in its ``list.txt``."""
    if subset not in SUBSETS:
        raise BenchmarkError(f"unknown GOT-10k subset {subset!r}; choose one of {', '.join(SUBSETS)}")
    root = Path(root)
    if not root.is_dir():
        raise BenchmarkError(f"GOT-10k root {root} does not exist; {DOWNLOAD_HINT}")
    list_file = root / subset / "list.txt"
    sequences = []
    for number, name in enumerate(read_list_file(list_file), start=1):
        seq_dir = root / subset / name
        if not seq_dir.is_dir():
            raise BenchmarkError(f"{list_file}, line {number}: sequence folder {seq_dir} does not exist")
        frames = tuple(str(p) for p in sorted(seq_dir.glob("*.jpg")))
        if not frames:
            raise BenchmarkError(f"{seq_dir}: no *.jpg frames")
        gt_file = seq_dir / "groundtruth.txt"
        gt = read_boxes(gt_file)
        if len(gt) == 0:
            raise BenchmarkError(f"{gt_file}: empty (at least the initial box is needed)")
        if subset != "test" and len(gt) != len(frames):
            raise BenchmarkError(f"{gt_file}: {len(gt)} boxes for {len(frames)} frames")
        sequences.append(Got10kSequence(name, frames, gt, str(gt_file)))
    return sequences
