"""Writing one synthetic video with segmentation labels: JPEG frames beside label PNGs (YouTube-VOS, DAVIS)."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

JPEG_QUALITY = 90


def write_labelled_frames(images: Path, annotations: Path, frames: Sequence[np.ndarray], labels: Sequence[np.ndarray],
                          frame_name: Callable[[int], str], write_label: Callable[[Path, np.ndarray], None]) -> None:
    """``images/<name>.jpg`` (RGB frames) and ``annotations/<name>.png`` (``write_label``) for every frame;
    both folders are emptied first, so a rerun never leaves frames of an earlier, longer video."""
    for folder in (images, annotations):
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
    for t, (frame, label) in enumerate(zip(frames, labels)):
        path = images / f"{frame_name(t)}.jpg"
        if not cv2.imwrite(str(path), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]):
            raise OSError(f"could not write {path}")
        write_label(annotations / f"{frame_name(t)}.png", label)
