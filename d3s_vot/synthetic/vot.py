"""Synthetic sequences in the VOT toolkit's dataset layout, so a workspace can be evaluated offline.

Layout (what ``vot`` 0.7.4 reads from ``WS/sequences``)::

    OUT_DIR/list.txt                      one sequence name per line
    OUT_DIR/<seq>/sequence                key=value metadata (channels.color=color/%08d.jpg, fps, ...)
    OUT_DIR/<seq>/color/00000001.jpg ...  1-based frame numbers
    OUT_DIR/<seq>/groundtruth.txt         one 4-corner polygon per frame: x1,y1,x2,y2,x3,y3,x4,y4 (0-based)
    OUT_DIR/<seq>/<tag>.tag               one 0/1 per frame for each VOT attribute

Options for the newer stacks:

* ``masks=True`` (``--masks``): VOT2020-format mask ground truth (``m<x0>,<y0>,<w>,<h>,<runs>`` lines,
  see :mod:`d3s_vot.integrations.vot.groundtruth`) and ``anchor.value``, the anchor frames of the
  multistart experiment (vot2020-2022 short-term): frame 0 and then every ``anchor_step`` frames, moved
  to the next frame where the target is visible; ``1`` (run forward to the end) in the first half of
  the sequence, ``-1`` (run backward to frame 0) in the second half, ``0`` elsewhere.
* ``objects=N`` (``--objects N``, N > 1): N targets in one sequence (the VOTS layout): one
  ``groundtruth_<k>.txt`` per object (``k`` = 000, 001, ... like the toolkit's own multi-object test
  data) and no ``groundtruth.txt``. Object 0 is the scene of seed ``seed + i``; each further object ``k``
  is the target of the scene of seed ``seed + i + 1000 k`` pasted on top, so later objects occlude
  earlier ones and the masks never overlap. Every object is visible in the first frame (where VOTS
  initialises all targets).
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
from d3s_vot.integrations.vot.groundtruth import format_mask
from d3s_vot.synthetic.scene import TAG_NAMES, SceneConfig, SyntheticSequence, generate_sequence

FPS = 30
JPEG_QUALITY = 95
ANCHOR_STEP = 50           # frames between multistart anchors (the VOT2020 data has about this spacing)
OBJECT_SEED_STRIDE = 1000  # object k of sequence i is the target of the scene with seed seed + i + 1000 k


def sequence_name(index: int) -> str:
    """Name of the ``index``-th synthetic sequence (valid as a VOT sequence and results directory name)."""
    return f"synthetic-{index:03d}"


def format_polygon(polygon: np.ndarray) -> str:
    """One groundtruth.txt line: 8 comma-separated numbers with 4 decimals (VOT data uses plain decimals)."""
    return ",".join(f"{float(v):.4f}" for v in polygon)


def ground_truth_name(index: int, objects: int) -> str:
    """``groundtruth.txt`` for a single target, ``groundtruth_<index:03d>.txt`` in a multi-object sequence."""
    return "groundtruth.txt" if objects == 1 else f"groundtruth_{index:03d}.txt"


def anchor_values(masks: list[np.ndarray], step: int) -> list[int]:
    """``anchor.value`` of a sequence: +1 forward / -1 backward anchors every ``step`` frames (see the module
    docstring), each moved to the next frame with a visible target."""
    if step < 1:
        raise ValueError(f"anchor step must be at least 1, got {step}")
    length = len(masks)
    values = [0] * length
    for start in range(0, length, step):
        frame = next((f for f in range(start, length) if masks[f].any()), None)
        if frame is not None and values[frame] == 0:
            values[frame] = 1 if frame < length / 2 else -1
    return values


def composite(base: SyntheticSequence, others: list[SyntheticSequence]) -> tuple[list[np.ndarray], list[list[np.ndarray]]]:
    """Paste the targets of ``others`` (in order) onto ``base``'s frames; returns the frames and, per object,
    its visible mask in every frame (earlier objects lose the pixels covered by later ones)."""
    frames = [frame.copy() for frame in base.frames]
    masks = [[m.astype(bool) for m in base.masks]] + [[m.astype(bool) for m in o.masks] for o in others]
    for k, other in enumerate(others, start=1):
        for t, frame in enumerate(frames):
            cover = masks[k][t]
            frame[cover] = other.frames[t][cover]
            for j in range(k):
                masks[j][t] = masks[j][t] & ~cover
    return frames, [[m.astype(np.uint8) for m in per_object] for per_object in masks]


def _write_sequence_dir(directory: Path, name: str, seq, masks: bool = False, objects: int = 1,
                        object_masks: list[list[np.ndarray]] | None = None, object_polygons=None,
                        anchor_step: int = ANCHOR_STEP) -> None:
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
    object_masks = object_masks if object_masks is not None else [seq.masks]
    object_polygons = object_polygons if object_polygons is not None else [seq.polygons]
    for k in range(objects):
        lines = [format_mask(m) for m in object_masks[k]] if masks else [format_polygon(p) for p in object_polygons[k]]
        (directory / ground_truth_name(k, objects)).write_text("".join(line + "\n" for line in lines))
    if masks:
        visible = [np.logical_and.reduce([per_object[t] > 0 for per_object in object_masks])
                   for t in range(len(seq.frames))]
        (directory / "anchor.value").write_text("".join(f"{v}\n" for v in anchor_values(visible, anchor_step)))
    for tag in TAG_NAMES:
        (directory / f"{tag}.tag").write_text("".join(f"{int(v)}\n" for v in seq.tags[tag]))


def _render(seed: int, num_frames: int, config: SceneConfig | None, objects: int):
    """The sequence (frames replaced by the composite when ``objects > 1``), the per-object masks and polygons."""
    seq = generate_sequence(seed=seed, num_frames=num_frames, config=config)
    if objects == 1:
        return seq, [seq.masks], [seq.polygons]
    others = [generate_sequence(seed=seed + OBJECT_SEED_STRIDE * k, num_frames=num_frames, config=config)
              for k in range(1, objects)]
    frames, masks = composite(seq, others)
    hidden = [k for k in range(objects) if not masks[k][0].any()]
    if hidden:
        raise ValueError(f"object {hidden[0]} of the sequence with seed {seed} is hidden in the first frame; "
                         "use another --seed")
    seq = SyntheticSequence(frames, seq.polygons, seq.boxes, seq.masks, seq.visible_ratio, seq.tags)
    return seq, masks, [seq.polygons] + [o.polygons for o in others]


def write_vot(out_dir: str | os.PathLike, num_sequences: int = 3, num_frames: int = 50, seed: int = 0,
              config: SceneConfig | None = None, overwrite: bool = False, progress: bool = False,
              masks: bool = False, objects: int = 1, anchor_step: int = ANCHOR_STEP) -> list[Path]:
    """Write ``num_sequences`` sequences (sequence ``i`` uses seed ``seed + i``) plus ``list.txt``.

    ``masks``: VOT2020-format mask ground truth and ``anchor.value``; ``objects``: targets per sequence
    (see the module docstring). Each sequence is rendered into a hidden temporary directory and moved into
    place, so an interrupted run never leaves a half-written sequence behind. Returns the sequence directories.
    """
    if num_sequences < 1:
        raise ValueError(f"need at least 1 sequence, got {num_sequences}")
    if num_frames < 2:
        raise ValueError(f"need at least 2 frames per sequence, got {num_frames}")
    if objects < 1:
        raise ValueError(f"need at least 1 object per sequence, got {objects}")
    if anchor_step < 1:
        raise ValueError(f"anchor step must be at least 1, got {anchor_step}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = [sequence_name(i) for i in range(num_sequences)]
    existing = [n for n in names if (out / n).exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{out / existing[0]} already exists (use --overwrite to replace it)")
    directories = []
    for i, name in enumerate(tqdm(names, desc="vot sequences", unit="seq", disable=not progress)):
        seq, object_masks, object_polygons = _render(seed + i, num_frames, config, objects)
        staging = Path(tempfile.mkdtemp(dir=out, prefix=f".{name}."))
        try:
            staging.chmod(0o755)  # mkdtemp makes it private; a dataset should be readable like any directory
            _write_sequence_dir(staging, name, seq, masks, objects, object_masks, object_polygons, anchor_step)
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
    parser.add_argument("--masks", action="store_true",
                        help="VOT2020-format mask ground truth (m... RLE lines) and anchor.value (vot2020-2022 stacks)")
    parser.add_argument("--objects", type=int, default=1,
                        help="targets per sequence; more than 1 writes groundtruth_000.txt ... (VOTS layout; default 1)")
    parser.add_argument("--anchor-step", type=int, default=ANCHOR_STEP,
                        help=f"frames between multistart anchors with --masks (default {ANCHOR_STEP})")


def main(args: argparse.Namespace) -> int:
    config = SceneConfig(width=args.width, height=args.height)
    directories = write_vot(args.out_dir, args.sequences, args.frames, args.seed, config,
                            overwrite=args.overwrite, progress=True, masks=args.masks, objects=args.objects,
                            anchor_step=args.anchor_step)
    print(f"wrote {len(directories)} sequences and list.txt to {args.out_dir}")
    return 0
