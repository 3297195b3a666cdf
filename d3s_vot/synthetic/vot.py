"""Synthetic sequences in the VOT toolkit's dataset layout, so a workspace can be evaluated offline.

Layout (what ``vot`` 0.7.4 reads from ``WS/sequences``)::

    OUT_DIR/list.txt                      one sequence name per line
    OUT_DIR/<seq>/sequence                key=value metadata (channels.color=color/%08d.jpg, fps, ...)
    OUT_DIR/<seq>/color/00000001.jpg ...  1-based frame numbers
    OUT_DIR/<seq>/groundtruth.txt         one 4-corner polygon per frame: x1,y1,x2,y2,x3,y3,x4,y4 (0-based)
    OUT_DIR/<seq>/<tag>.tag               one 0/1 per frame for each VOT attribute
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from d3s_vot.common.io_utils import atomic_write_text
from d3s_vot.synthetic.scene import TAG_NAMES, SceneConfig, generate_sequence

FPS = 30
JPEG_QUALITY = 95


def sequence_name(index: int) -> str:
    """Name of the ``index``-th synthetic sequence (valid as a VOT sequence and results directory name)."""
    return f"synthetic-{index:03d}"


def format_polygon(polygon: np.ndarray) -> str:
    """One groundtruth.txt line: 8 comma-separated numbers with 4 decimals (VOT data uses plain decimals)."""
    return ",".join(f"{float(v):.4f}" for v in polygon)


def _write_sequence_dir(directory: Path, name: str, seq) -> None:
    color = directory / "color"
    color.mkdir(parents=True)
    for index, frame in enumerate(seq.frames, start=1):
        ok = cv2.imwrite(str(color / f"{index:08d}.jpg"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR),
                         [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise OSError(f"could not write {color / f'{index:08d}.jpg'}")
    height, width = seq.frames[0].shape[:2]
    metadata = {
        "channel.default": "color",
        "channels.color": "color/%08d.jpg",
        "format": "default",
        "fps": FPS,
        "height": height,
        "length": len(seq.frames),
        "name": name,
        "width": width,
    }
    (directory / "sequence").write_text("".join(f"{k}={v}\n" for k, v in metadata.items()))
    (directory / "groundtruth.txt").write_text("".join(format_polygon(p) + "\n" for p in seq.polygons))
    for tag in TAG_NAMES:
        (directory / f"{tag}.tag").write_text("".join(f"{int(v)}\n" for v in seq.tags[tag]))


def write_vot(out_dir: str | os.PathLike, num_sequences: int = 3, num_frames: int = 50, seed: int = 0,
              config: SceneConfig | None = None, overwrite: bool = False, progress: bool = False) -> list[Path]:
    """Write ``num_sequences`` sequences (sequence ``i`` uses seed ``seed + i``) plus ``list.txt``.

    Each sequence is rendered into a hidden temporary directory and moved into place, so an interrupted run
    never leaves a half-written sequence behind. Returns the sequence directories.
    """
    if num_sequences < 1:
        raise ValueError(f"need at least 1 sequence, got {num_sequences}")
    if num_frames < 2:
        raise ValueError(f"need at least 2 frames per sequence, got {num_frames}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = [sequence_name(i) for i in range(num_sequences)]
    existing = [n for n in names if (out / n).exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{out / existing[0]} already exists (use --overwrite to replace it)")
    directories = []
    for i, name in enumerate(tqdm(names, desc="vot sequences", unit="seq", disable=not progress)):
        seq = generate_sequence(seed=seed + i, num_frames=num_frames, config=config)
        staging = Path(tempfile.mkdtemp(dir=out, prefix=f".{name}."))
        try:
            staging.chmod(0o755)  # mkdtemp makes it private; a dataset should be readable like any directory
            _write_sequence_dir(staging, name, seq)
            if (out / name).exists():
                shutil.rmtree(out / name)
            os.replace(staging, out / name)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        directories.append(out / name)
    atomic_write_text(out / "list.txt", "".join(f"{n}\n" for n in names))
    return directories


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out_dir", metavar="OUT_DIR", help="dataset directory, e.g. WORKSPACE/sequences")
    parser.add_argument("--sequences", type=int, default=3, help="number of sequences (default 3)")
    parser.add_argument("--frames", type=int, default=50, help="frames per sequence (default 50)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first sequence (default 0)")
    parser.add_argument("--width", type=int, default=320, help="frame width (default 320)")
    parser.add_argument("--height", type=int, default=240, help="frame height (default 240)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing sequences of the same name")


def main(args: argparse.Namespace) -> int:
    import sys

    try:
        config = SceneConfig(width=args.width, height=args.height)
        directories = write_vot(args.out_dir, args.sequences, args.frames, args.seed, config,
                                overwrite=args.overwrite, progress=True)
    except (ValueError, FileExistsError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {len(directories)} sequences and list.txt to {args.out_dir}")
    return 0
