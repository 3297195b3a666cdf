"""YouTube-VOS 2018 (train split) as a list of single-object sequences for training.

Layout (the official train split): ``ROOT/meta.json``, ``ROOT/JPEGImages/<video>/<frame>.jpg`` and
``ROOT/Annotations/<video>/<frame>.png`` (palette PNGs, palette index == object id). One *sequence* is
one ``<video>-<object>`` pair over all frames of its video.

Visibility and boxes: when the authors' optional box file ``Annotations/<video>/groundtruth-<object>.txt``
exists (one ``x,y,w,h`` line per frame, ``-1`` for absent frames), a frame is visible when all four
values are > -1 and that box is used. Otherwise visibility comes from ``meta.json`` (the frames the
object appears in) and the box is derived from the mask when the frame is loaded, so no mask has to be
read up front.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import cv2
import numpy as np
from PIL import Image
from d3s_vot.common.cli import UserError


class DatasetError(UserError):
    """A malformed or incomplete dataset; the message names the offending file."""


class CorruptFrameError(Exception):
    """One frame or mask could not be read; the sampler skips it."""


@dataclass(frozen=True)
class VOSSequence:
    """One object of one video."""

    video: str
    object_id: int
    frames: tuple[str, ...]             # frame names without extension, sorted
    visible: np.ndarray                 # (T,) bool
    boxes: Optional[np.ndarray] = None  # (T, 4) from the authors' box file, else None (mask-derived)

    @property
    def name(self) -> str:
        return f"{self.video}-{self.object_id}"


@dataclass(frozen=True)
class VOSFrame:
    """A decoded frame: RGB image, the object's 0/1 mask and its 0-based [x, y, w, h] box."""

    image: np.ndarray
    mask: np.ndarray
    box: np.ndarray


def parse_list_file(path: str | Path) -> list[tuple[str, int]]:
    """Read a ``<video_id>-<object_id>`` per line list (blank lines and ``#`` comments ignored)."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise DatasetError(f"cannot read sequence list {path}: {exc.strerror or exc}") from None
    entries = []
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        video, sep, obj = text.rpartition("-")
        if not sep or not video or not obj.isdigit():
            raise DatasetError(f"{path}:{number}: expected '<video_id>-<object_id>', got {text!r}")
        entries.append((video, int(obj)))
    return entries


def mask_box(mask: np.ndarray) -> np.ndarray:
    """0-based pixel-inclusive [x, y, w, h] of the non-zero pixels (NaN when empty)."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return np.full(4, np.nan)
    x0, x1, y0, y1 = xs.min(), xs.max(), ys.min(), ys.max()
    return np.array([x0, y0, x1 - x0 + 1, y1 - y0 + 1], dtype=np.float64)


def _read_box_file(path: Path, num_frames: int) -> np.ndarray:
    boxes = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.replace("\t", ",").replace(" ", ",").split(",")
        values = [p for p in parts if p]
        try:
            box = [float(v) for v in values]
        except ValueError:
            box = []
        if len(box) != 4:
            raise DatasetError(f"{path}:{number}: expected 'x,y,w,h', got {line.strip()!r}")
        boxes.append(box)
    if len(boxes) != num_frames:
        raise DatasetError(f"{path}: {len(boxes)} boxes for {num_frames} frames")
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4)


class YouTubeVOS:
    """The sequences of a YouTube-VOS style root, optionally restricted to a list of entries."""

    def __init__(self, root: str | Path, entries: Optional[Sequence[tuple[str, int]]] = None,
                 list_name: str = "sequence list"):
        self.root = Path(root)
        meta_path = self.root / "meta.json"
        if not self.root.is_dir():
            raise DatasetError(f"dataset root {self.root} does not exist (expected the YouTube-VOS 2018 "
                               "train folder with meta.json, JPEGImages/ and Annotations/)")
        try:
            meta = json.loads(meta_path.read_text())
        except FileNotFoundError:
            raise DatasetError(f"{meta_path} is missing (expected the YouTube-VOS 2018 train split's "
                               "meta.json next to JPEGImages/ and Annotations/)") from None
        except (OSError, ValueError) as exc:
            raise DatasetError(f"{meta_path}: not valid JSON ({exc})") from None
        videos = meta.get("videos") if isinstance(meta, dict) else None
        if not isinstance(videos, dict):
            raise DatasetError(f"{meta_path}: expected an object with a 'videos' mapping")
        self._meta_path = meta_path
        self._videos = videos
        self._frames_cache: dict[str, tuple[str, ...]] = {}
        if entries is None:
            entries = [(video, int(obj)) for video in sorted(videos)
                       for obj in sorted(self._objects_of(video), key=int)]
        self.sequences: list[VOSSequence] = [self._sequence(v, o, list_name) for v, o in entries]

    def __len__(self) -> int:
        return len(self.sequences)

    # --- index ------------------------------------------------------------------------------------
    def _objects_of(self, video: str) -> dict:
        objects = self._videos[video].get("objects") if isinstance(self._videos[video], dict) else None
        if not isinstance(objects, dict):
            raise DatasetError(f"{self._meta_path}: video {video!r} has no 'objects' mapping")
        return objects

    def _video_frames(self, video: str) -> tuple[str, ...]:
        if video not in self._frames_cache:
            folder = self.root / "JPEGImages" / video
            if not folder.is_dir():
                raise DatasetError(f"{folder} is missing (video {video!r} is listed in {self._meta_path})")
            frames = tuple(sorted(p.stem for p in folder.glob("*.jpg")))
            if not frames:
                raise DatasetError(f"{folder} contains no .jpg frames")
            self._frames_cache[video] = frames
        return self._frames_cache[video]

    def _sequence(self, video: str, object_id: int, list_name: str) -> VOSSequence:
        if video not in self._videos:
            raise DatasetError(f"{list_name}: video {video!r} is not in {self._meta_path}")
        objects = self._objects_of(video)
        if str(object_id) not in objects:
            raise DatasetError(f"{list_name}: object {object_id} of video {video!r} is not in {self._meta_path}")
        frames = self._video_frames(video)
        box_file = self.root / "Annotations" / video / f"groundtruth-{object_id}.txt"
        if box_file.is_file():
            boxes = _read_box_file(box_file, len(frames))
            return VOSSequence(video, object_id, frames, np.all(boxes > -1, axis=1), boxes)
        present = objects[str(object_id)].get("frames") if isinstance(objects[str(object_id)], dict) else None
        if not isinstance(present, list):
            raise DatasetError(f"{self._meta_path}: object {object_id} of video {video!r} has no 'frames' list")
        present_set = set(present)
        visible = np.array([f in present_set for f in frames], dtype=bool)
        return VOSSequence(video, object_id, frames, visible, None)

    # --- frames -----------------------------------------------------------------------------------
    def load_frame(self, sequence: VOSSequence, index: int) -> VOSFrame:
        """Decode frame ``index`` of ``sequence``; raises :class:`CorruptFrameError` when unreadable."""
        name = sequence.frames[index]
        image_path = self.root / "JPEGImages" / sequence.video / f"{name}.jpg"
        mask_path = self.root / "Annotations" / sequence.video / f"{name}.png"
        bgr = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise CorruptFrameError(f"cannot decode {image_path}")
        try:
            with Image.open(mask_path) as png:
                labels = np.asarray(png)
        except (OSError, ValueError) as exc:
            raise CorruptFrameError(f"cannot decode {mask_path}: {exc}") from None
        if labels.ndim != 2 or labels.shape != bgr.shape[:2]:
            raise CorruptFrameError(f"{mask_path}: expected a {bgr.shape[1]}x{bgr.shape[0]} palette PNG, "
                                    f"got array of shape {labels.shape}")
        mask = (labels == sequence.object_id).astype(np.uint8)
        if sequence.boxes is not None:
            box = sequence.boxes[index].copy()
        else:
            box = mask_box(mask)
            if np.isnan(box[0]):
                raise CorruptFrameError(f"{mask_path}: object {sequence.object_id} is listed as present in "
                                        "meta.json but has no mask pixels")
        return VOSFrame(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), mask, box)


def warn_skipped(message: str) -> None:
    """Report one skipped frame (the training loop also counts them)."""
    warnings.warn(f"skipping unreadable training frame: {message}", RuntimeWarning, stacklevel=2)
