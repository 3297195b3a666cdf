"""Label images as DAVIS stores them: 8-bit indexed PNGs whose pixel value is the object id.

Index 0 is background, 1..K are objects, 255 marks void pixels in DAVIS 2017 annotations. The colours
are the PASCAL VOC colour map that DAVIS uses (index 1 dark red, 2 dark green, ...); only the indices
carry meaning, the colours are for viewing.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import List

import numpy as np
from PIL import Image, UnidentifiedImageError

from d3s_vot.common.io_utils import PathLike, atomic_write_bytes
from d3s_vot.integrations.box_runner.boxio import BenchmarkError


def davis_palette() -> List[int]:
    """The 256-colour PASCAL VOC map as 768 numbers: bit ``3k`` (``3k+1``, ``3k+2``) of the index goes to
    bit ``7-k`` of red (green, blue)."""
    palette = []
    for index in range(256):
        rgb = [0, 0, 0]
        for k in range(8):
            for channel in range(3):
                if index >> (3 * k + channel) & 1:
                    rgb[channel] |= 1 << (7 - k)
        palette += rgb
    return palette


PALETTE = davis_palette()


def read_label_png(path: PathLike) -> np.ndarray:
    """An annotation or result PNG as an ``H x W`` uint8 array of indices; an RGB or unreadable file is a
    :class:`BenchmarkError` naming it."""
    path = Path(path)
    try:
        with Image.open(path) as image:
            if image.mode not in ("P", "L"):
                raise BenchmarkError(f"{path}: a {image.mode} image; DAVIS label files are 8-bit indexed "
                                     "(palette) or grayscale PNGs whose values are object ids")
            return np.asarray(image, dtype=np.uint8).copy()
    except FileNotFoundError:
        raise BenchmarkError(f"{path}: file not found") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise BenchmarkError(f"{path}: cannot read it as a PNG ({exc})") from None


def encode_label_png(labels: np.ndarray) -> bytes:
    """``labels`` (``H x W``, values 0..255) as indexed PNG bytes with the DAVIS palette."""
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.min(initial=0) < 0 or labels.max(initial=0) > 255:
        raise ValueError(f"label image must be H x W with values in 0..255, got shape {labels.shape}")
    plain = np.ascontiguousarray(labels, dtype=np.uint8)
    image = Image.frombytes("P", (plain.shape[1], plain.shape[0]), plain.tobytes())
    image.putpalette(PALETTE)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def write_label_png(path: PathLike, labels: np.ndarray) -> None:
    """Write ``labels`` as an indexed PNG, atomically."""
    atomic_write_bytes(path, encode_label_png(labels))
