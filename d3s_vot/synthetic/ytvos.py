"""Synthetic videos in the YouTube-VOS 2018 train layout, for training smoke tests.

Layout (as the real train split)::

    OUT_DIR/meta.json                         {"videos": {<vid>: {"objects": {"1": {"category", "frames"}}}}}
    OUT_DIR/JPEGImages/<vid>/00000.jpg ...    every 5th frame index, 5-digit names
    OUT_DIR/Annotations/<vid>/00000.png ...   palette PNGs, palette index == object id (0 = background)
    OUT_DIR/vos-list-train.txt, vos-list-val.txt   '<vid>-<object>' lists (not part of YouTube-VOS; the
                                              D3S authors ship such lists for the real data)

Every video has object 1 (the scene generator's target); every third video also has object 2, a
second generated target pasted on top (it occludes object 1 where they overlap).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image
from tqdm import tqdm

from d3s_vot.common.io_utils import atomic_write_text
from d3s_vot.synthetic.scene import SceneConfig, generate_sequence
from d3s_vot.synthetic.segmentation_files import write_labelled_frames

FRAME_STEP = 5              # YouTube-VOS annotates every 5th frame of the 30 fps video
SECOND_OBJECT_EVERY = 3     # videos 2, 5, 8, ... get a second object
# DAVIS/YouTube-VOS style palette: index 0 black, 1 dark red, 2 dark green, ...
PALETTE = [0, 0, 0, 128, 0, 0, 0, 128, 0, 128, 128, 0, 0, 0, 128] + [0] * (768 - 15)


def video_id(index: int) -> str:
    """A 10-character hexadecimal id like YouTube-VOS's."""
    return f"{index + 0x5e0000:010x}"


def frame_name(index: int) -> str:
    return f"{index * FRAME_STEP:05d}"


def _label_maps(seed: int, num_frames: int, config: SceneConfig, two_objects: bool):
    """Frames (RGB) and per-frame label maps (0 background, 1, 2 object ids)."""
    first = generate_sequence(seed=seed, num_frames=num_frames, config=config)
    frames = [f.copy() for f in first.frames]
    labels = [m.astype(np.uint8) for m in first.masks]
    if two_objects:
        second = generate_sequence(seed=seed + 100_003, num_frames=num_frames, config=config)
        for t in range(num_frames):
            on_top = second.masks[t].astype(bool)
            frames[t][on_top] = second.frames[t][on_top]
            labels[t][on_top] = 2
    return frames, labels


def _write_video(root: Path, vid: str, frames: list[np.ndarray], labels: list[np.ndarray]) -> None:
    write_labelled_frames(root / "JPEGImages" / vid, root / "Annotations" / vid, frames, labels, frame_name,
                          _write_palette_png)


def _write_palette_png(path: Path, label: np.ndarray) -> None:
    png = Image.frombytes("P", (label.shape[1], label.shape[0]), np.ascontiguousarray(label).tobytes())
    png.putpalette(PALETTE)
    png.save(path)


def write_ytvos(out_dir: str | os.PathLike, num_videos: int = 6, num_frames: int = 24, seed: int = 0,
                config: Optional[SceneConfig] = None, val_videos: int = 1, progress: bool = False) -> Path:
    """Write ``num_videos`` synthetic videos; the last ``val_videos`` go to ``vos-list-val.txt``.

    Video ``i`` is generated from seed ``seed + i``. Returns ``out_dir``.
    """
    if num_videos < 1 or num_frames < 1:
        raise ValueError(f"need at least one video and one frame, got {num_videos} videos of {num_frames} frames")
    if not 0 <= val_videos < num_videos:
        raise ValueError(f"val_videos must be in [0, {num_videos - 1}], got {val_videos}")
    config = config or SceneConfig(width=320, height=240)
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    videos: dict[str, dict] = {}
    entries: list[str] = []
    for i in tqdm(range(num_videos), desc="ytvos videos", disable=not progress, file=sys.stderr):
        vid = video_id(i)
        frames, labels = _label_maps(seed + i, num_frames, config, i % SECOND_OBJECT_EVERY == SECOND_OBJECT_EVERY - 1)
        _write_video(root, vid, frames, labels)
        objects = {}
        for obj in sorted(int(v) for v in np.unique(np.stack(labels)) if v):
            present = [frame_name(t) for t, label in enumerate(labels) if np.any(label == obj)]
            objects[str(obj)] = {"category": "synthetic", "frames": present}
            entries.append(f"{vid}-{obj}")
        videos[vid] = {"objects": objects}
    atomic_write_text(root / "meta.json", json.dumps({"videos": videos}, indent=1) + "\n")
    val_ids = {video_id(i) for i in range(num_videos - val_videos, num_videos)}
    train_list = [e for e in entries if e.rsplit("-", 1)[0] not in val_ids]
    val_list = [e for e in entries if e.rsplit("-", 1)[0] in val_ids]
    atomic_write_text(root / "vos-list-train.txt", "".join(f"{e}\n" for e in train_list))
    atomic_write_text(root / "vos-list-val.txt", "".join(f"{e}\n" for e in val_list))
    return root


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out_dir", metavar="OUT_DIR", help="dataset root (gets meta.json, JPEGImages/, Annotations/)")
    parser.add_argument("--videos", type=int, default=6, help="number of videos (default 6)")
    parser.add_argument("--frames", type=int, default=24, help="annotated frames per video (default 24)")
    parser.add_argument("--val-videos", type=int, default=1, help="videos listed in vos-list-val.txt (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first video (default 0)")
    parser.add_argument("--width", type=int, default=320, help="frame width (default 320)")
    parser.add_argument("--height", type=int, default=240, help="frame height (default 240)")


def main(args: argparse.Namespace) -> int:
    config = SceneConfig(width=args.width, height=args.height)
    root = write_ytvos(args.out_dir, args.videos, args.frames, args.seed, config, args.val_videos, progress=True)
    print(f"wrote {args.videos} videos, meta.json, vos-list-train.txt and vos-list-val.txt to {root}")
    return 0
