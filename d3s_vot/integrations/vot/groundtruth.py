"""The VOT toolkit's region text format (``groundtruth.txt`` lines), masks included.

One line is one frame's region:

* ``x,y,w,h``: a rectangle;
* ``x1,y1,x2,y2,...``: a polygon (at least 3 points);
* ``m<x0>,<y0>,<w>,<h>,<c1>,<c2>,...``: a mask (VOT2020 and later): the ``w x h`` box at ``(x0, y0)``
  holds the mask, read row by row as run lengths that alternate between 0 and 1 pixels, starting with
  a (possibly zero) run of 0 pixels. The writer uses the mask's tight bounding box; an empty mask is
  ``m0,0,0,0,0``;
* a single number: a special region (``0``: unknown, the target is not annotated).

Written here (not taken from ``vot``) so the synthetic datasets and the oracle tracker do not import the
toolkit; the tests check both directions against the toolkit's own reader and writer.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np


def mask_runs(mask: np.ndarray) -> list[int]:
    """Run lengths of a 2-D 0/1 array read row-major, starting with the count of leading zeros."""
    flat = (np.asarray(mask).reshape(-1) > 0).astype(np.int8)
    if flat.size == 0:
        return [0]
    changes = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    runs = np.diff(bounds).tolist()
    return ([0] + runs) if flat[0] else runs


def format_mask(mask: np.ndarray) -> str:
    """A full-image 0/1 mask as one ``m...`` line (tight bounding box; ``m0,0,0,0,0`` when empty)."""
    mask = np.asarray(mask) > 0
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return "m0,0,0,0,0"
    x0, y0, x1, y1 = int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])
    runs = mask_runs(mask[y0:y1 + 1, x0:x1 + 1])
    return "m" + ",".join(str(v) for v in [x0, y0, x1 - x0 + 1, y1 - y0 + 1, *runs])


def parse_mask(line: str, image_hw: Tuple[int, int]) -> np.ndarray:
    """An ``m...`` line -> the full-image 0/1 uint8 mask (parts outside the image are dropped)."""
    values = [int(v) for v in line.strip()[1:].split(",")]
    if len(values) < 5:
        raise ValueError(f"mask line {line.strip()!r} needs x0,y0,w,h and run lengths")
    x0, y0, w, h = values[:4]
    runs = values[4:]
    if sum(runs) > w * h or any(r < 0 for r in runs):
        raise ValueError(f"mask line {line.strip()!r}: run lengths do not fit its {w}x{h} box")
    flat = np.zeros(w * h, np.uint8)
    position = 0
    for index, run in enumerate(runs):
        if index % 2:
            flat[position:position + run] = 1
        position += run
    local = flat.reshape(h, w)
    height, width = image_hw
    full = np.zeros((height, width), np.uint8)
    xa, ya, xb, yb = max(x0, 0), max(y0, 0), min(x0 + w, width), min(y0 + h, height)
    if xa < xb and ya < yb:
        full[ya:yb, xa:xb] = local[ya - y0:yb - y0, xa - x0:xb - x0]
    return full


def parse_region_line(line: str, image_hw: Tuple[int, int]):
    """One ground-truth line -> a full-image mask (``m...``), or the numbers of a rectangle (4),
    polygon (>= 6) or special region (1 number)."""
    text = line.strip()
    if text.startswith("m"):
        return parse_mask(text, image_hw)
    return np.array([float(v) for v in text.split(",")], dtype=np.float64)
