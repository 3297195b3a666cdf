"""Synthetic videos in the exact DAVIS 2017 layout (which also holds the 2016 lists), several objects each.

    OUT_DIR/JPEGImages/480p/<seq>/00000.jpg ...
    OUT_DIR/Annotations/480p/<seq>/00000.png ...   indexed PNGs, DAVIS palette, pixel value = object id
    OUT_DIR/ImageSets/2017/{train,val}.txt, ImageSets/2016/{train,val}.txt

Sequence ``i`` has ``objects`` generated targets (ids 1..N, each a scene of
:func:`d3s_vot.synthetic.scene.generate_sequence`), pasted in id order: a higher id occludes a lower one
where they overlap, as in real annotations where every pixel has one label. Every object is visible in
frame 0 (a seed whose first frame hides one is skipped, deterministically). ``--void`` draws a 255 (void)
border of that many pixels around object 1, like the DAVIS 2017 annotations' uncertain pixels.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import List, Optional, Tuple

import cv2
import numpy as np
from tqdm import tqdm

from d3s_vot.common.io_utils import atomic_write_text
from d3s_vot.integrations.davis.labels import write_label_png
from d3s_vot.synthetic.scene import SceneConfig, generate_sequence
from d3s_vot.synthetic.segmentation_files import write_labelled_frames

VOID = 255
SEED_STRIDE = 1_000     # object k of sequence i uses seed (seed + i) * SEED_STRIDE + k (+ skips)
MIN_FRAMES = 3          # the official evaluation scores frames 1 .. N-2: three frames leave one to score


def sequence_name(index: int) -> str:
    return f"synthetic-{index:03d}"


def compose(seed: int, num_frames: int, num_objects: int, config: SceneConfig,
            void: int = 0) -> Tuple[List[np.ndarray], List[np.ndarray]]:
    """Frames (RGB) and label images of one multi-object video."""
    frames: List[np.ndarray] = []
    labels: List[np.ndarray] = []
    object_seed = seed * SEED_STRIDE
    for object_id in range(1, num_objects + 1):
        while True:
            scene = generate_sequence(seed=object_seed, num_frames=num_frames, config=config)
            object_seed += 1
            if object_id == 1:
                break
            # this object must leave every earlier object something visible in frame 0, and be visible itself
            first = labels[0].copy()
            first[scene.masks[0].astype(bool)] = object_id
            if all(np.any(first == k) for k in range(1, object_id + 1)):
                break
        if object_id == 1:
            frames = [f.copy() for f in scene.frames]
            labels = [m.astype(np.uint8) for m in scene.masks]
            continue
        for t in range(num_frames):
            on_top = scene.masks[t].astype(bool)
            frames[t][on_top] = scene.frames[t][on_top]
            labels[t][on_top] = object_id
    if void > 0:
        kernel = np.ones((2 * void + 1, 2 * void + 1), np.uint8)
        for label in labels:
            inner = (label == 1).astype(np.uint8)
            ring = cv2.dilate(inner, kernel).astype(bool) & (label == 0)
            label[ring] = VOID
    return frames, labels


def _write_sequence(root: Path, name: str, frames: List[np.ndarray], labels: List[np.ndarray]) -> None:
    write_labelled_frames(root / "JPEGImages" / "480p" / name, root / "Annotations" / "480p" / name, frames, labels,
                          lambda t: f"{t:05d}", write_label_png)


def write_davis(out_dir: str | os.PathLike, sequences: int = 3, frames: int = 12, objects: int = 3,
                width: int = 160, height: int = 120, seed: int = 0, train_sequences: int = 1, void: int = 0,
                config: Optional[SceneConfig] = None, progress: bool = False) -> Path:
    """Write ``sequences`` videos; the first ``train_sequences`` are listed in ``train.txt``, the rest in
    ``val.txt`` (both years). Returns ``out_dir``."""
    if sequences < 1 or objects < 1:
        raise ValueError(f"need at least one sequence and object, got {sequences}, {objects}")
    if frames < MIN_FRAMES:
        raise ValueError(f"need at least {MIN_FRAMES} frames per sequence (the DAVIS evaluation leaves the first "
                         f"and the last frame out), got {frames}")
    if not 0 <= train_sequences < sequences:
        raise ValueError(f"train_sequences must be in [0, {sequences - 1}], got {train_sequences}")
    if objects > 254:
        raise ValueError(f"at most 254 objects (255 is void), got {objects}")
    config = config or SceneConfig(width=width, height=height, leave_view=False)
    root = Path(out_dir)
    names = [sequence_name(i) for i in range(sequences)]
    for i in tqdm(range(sequences), desc="davis sequences", disable=not progress, file=sys.stderr):
        video, labels = compose(seed + i, frames, objects, config, void)
        _write_sequence(root, names[i], video, labels)
    for year in ("2016", "2017"):
        atomic_write_text(root / "ImageSets" / year / "train.txt", "".join(f"{n}\n" for n in names[:train_sequences]))
        atomic_write_text(root / "ImageSets" / year / "val.txt", "".join(f"{n}\n" for n in names[train_sequences:]))
    return root


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out_dir", metavar="OUT_DIR", help="dataset root (gets JPEGImages/, Annotations/, ImageSets/)")
    parser.add_argument("--sequences", type=int, default=3, help="number of sequences (default 3)")
    parser.add_argument("--train-sequences", type=int, default=1,
                        help="how many of them go to train.txt, the rest to val.txt (default 1)")
    parser.add_argument("--frames", type=int, default=12, help="frames per sequence (default 12)")
    parser.add_argument("--objects", type=int, default=3, help="objects per sequence (default 3)")
    parser.add_argument("--void", type=int, default=0, metavar="PX",
                        help="a void (255) border of PX pixels around object 1 (default 0: none)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first sequence (default 0)")
    parser.add_argument("--width", type=int, default=160, help="frame width (default 160)")
    parser.add_argument("--height", type=int, default=120, help="frame height (default 120)")


def main(args: argparse.Namespace) -> int:
    config = SceneConfig(width=args.width, height=args.height, leave_view=False)
    root = write_davis(args.out_dir, args.sequences, args.frames, args.objects, args.width, args.height,
                       args.seed, args.train_sequences, args.void, config, progress=True)
    print(f"wrote {args.sequences} sequences of {args.frames} frames with {args.objects} objects each to {root} "
          "(ImageSets/2016 and ImageSets/2017)")
    return 0
