"""Per-frame overlap as the legacy Matlab toolkit computed it: trax's C rasteriser, re-implemented in numpy.

The Matlab toolkit's ``calculate_overlap`` called the trax library (``region_overlap`` mex ->
``region_compute_overlap``). Its result differs from vot-toolkit's ``calculate_overlap`` by a few pixels per
frame, so the legacy EAO needs its own overlap. Facts and source lines: docs/legacy_eao.md.

Definitions (``OVERLAP_DEFINITIONS``):

* ``matlab``: what the Matlab toolkit used for the VOT2016/VOT2018 stacks. ``workspace_load`` sets
  ``legacy_rasterization`` to false and only the VOT2013-2015 stacks set it back, so this is trax's *default*
  rasterisation: vertices rounded half away from zero, scan-line spans filled inclusively, horizontal edges
  add no node. Rectangles ``x, y, w, h`` become the corners ``x .. x+w-1``, ``y .. y+h-1`` (toolkit-legacy
  since 2019-04-17).
* ``matlab-2018``: the same, but rectangles become ``x .. x+w``, ``y .. y+h``, as in every toolkit version
  from 2016 to April 2019 (the VOT2016-VOT2018 challenge analyses). Polygons give the same numbers as
  ``matlab``.
* ``matlab-legacy-raster``: trax's legacy rasterisation (the VOT2013-2015 stacks): vertices not rounded, the
  grid starts at the unrounded corner of the two boxes, spans filled exclusively. Rectangles as ``matlab``.
* ``toolkit``: vot-toolkit's ``calculate_overlap`` (what ``vot analysis`` uses).

In all trax definitions the overlap is bounded by the image (``[0, width-1] x [0, height-1]``), coordinates and
the result are 32-bit floats like trax's, and a region that trax cannot take (a special code, a polygon with
fewer than 4 vertices) gives NaN.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

# frames x rows x vertices x vertices handled at once: bounds the memory of one batch
BATCH_CELLS = 4_000_000


@dataclass(frozen=True)
class OverlapDefinition:
    """How one frame's overlap is computed: trax's rasteriser (default or legacy mode) or vot-toolkit's."""

    name: str
    engine: str  # "trax" or "toolkit"
    legacy_raster: bool = False
    rectangle_end: float = 1.0  # rectangle corners run from x to x + w - rectangle_end

    def describe(self) -> str:
        if self.engine == "toolkit":
            return "vot-toolkit calculate_overlap (rounded half to even, inclusive spans)"
        raster = ("trax legacy rasterisation (unrounded vertices, exclusive spans)" if self.legacy_raster
                  else "trax default rasterisation (vertices rounded half away from zero, inclusive spans)")
        end = "x+w-1" if self.rectangle_end == 1 else "x+w"
        return f"{raster}, rectangles x..{end}, bounded by the image"


OVERLAP_DEFINITIONS = {
    "matlab": OverlapDefinition("matlab", "trax"),
    "matlab-2018": OverlapDefinition("matlab-2018", "trax", rectangle_end=0.0),
    "matlab-legacy-raster": OverlapDefinition("matlab-legacy-raster", "trax", legacy_raster=True),
    "toolkit": OverlapDefinition("toolkit", "toolkit"),
}
DEFAULT_OVERLAP = "matlab"


def overlap_definition(name: str) -> OverlapDefinition:
    try:
        return OVERLAP_DEFINITIONS[name]
    except KeyError:
        raise ValueError(f"unknown overlap definition {name!r} (choose from {', '.join(OVERLAP_DEFINITIONS)})") from None


def trax_polygon(region, rectangle_end: float = 1.0) -> np.ndarray | None:
    """The float32 ``(k, 2)`` polygon the Matlab mex hands to trax, or None where it gives NaN.

    ``region`` is a ``vot.region`` shape: a Rectangle becomes its 4 corners, a Polygon needs at least 4
    vertices (the mex takes more than 6 numbers), anything else (Special, Mask, triangle) has no overlap.
    """
    from vot.region import Polygon, Rectangle

    if isinstance(region, Rectangle):
        x, y, w, h = (float(np.float32(v)) for v in (region.x, region.y, region.width, region.height))
        right, bottom = x + w - rectangle_end, y + h - rectangle_end
        return np.array([[x, y], [right, y], [right, bottom], [x, bottom]], dtype=np.float32)
    if isinstance(region, Polygon) and region.size >= 4:
        return np.asarray(region.points(), dtype=np.float32).reshape(-1, 2)
    return None


def _round_half_away(values: np.ndarray) -> np.ndarray:
    return np.where(values < 0, np.ceil(values - 0.5), np.floor(values + 0.5)).astype(np.float32)


def _pad_vertices(polygons: Sequence[np.ndarray]) -> np.ndarray:
    """Stack polygons, repeating each last vertex up to the longest: a zero-length edge adds no scan-line node."""
    count = max(p.shape[0] for p in polygons)
    out = np.empty((len(polygons), count, 2), dtype=np.float32)
    for i, p in enumerate(polygons):
        out[i, : p.shape[0]] = p
        out[i, p.shape[0]:] = p[-1]
    return out


def _spans_default(nodes: np.ndarray, counts: np.ndarray, width: np.ndarray):
    """trax default-mode span filling: skip equal node pairs, stop past the width, inclusive ends."""
    rows, slots = nodes.shape
    position = np.zeros(rows, dtype=np.int64)
    active = np.ones(rows, dtype=bool)
    starts, ends = [], []
    index = np.arange(rows)
    for _ in range(slots):
        can = active & (position < counts - 1)
        a = nodes[index, np.minimum(position, slots - 1)]
        b = nodes[index, np.minimum(position + 1, slots - 1)]
        equal = can & (a == b)
        stop = can & ~equal & (a >= width)
        pair = can & ~equal & ~stop
        fill = pair & (b >= 0)
        starts.append(np.where(fill, np.maximum(a, 0), 0))
        ends.append(np.where(fill, np.minimum(b, width - 1), -1))
        position = position + np.where(equal, 1, 0) + np.where(pair, 2, 0)
        active = can & ~stop
    return np.stack(starts, axis=1), np.stack(ends, axis=1)


def _spans_legacy(nodes: np.ndarray, counts: np.ndarray, width: np.ndarray):
    """trax legacy-mode span filling: node pairs, stop past the width, exclusive ends (``> width`` -> width-1)."""
    rows, slots = nodes.shape
    active = np.ones(rows, dtype=bool)
    starts, ends = [], []
    for i in range(0, slots - 1, 2):
        can = active & (i < counts)
        a, b = nodes[:, i], nodes[:, i + 1]
        stop = can & (a >= width)
        fill = can & ~stop & (b > 0)
        end = np.where(b > width, width - 1, b)
        starts.append(np.where(fill, np.maximum(a, 0), 0))
        ends.append(np.where(fill, end - 1, -1))
        active = can & ~stop
    if not starts:
        return np.zeros((rows, 0), dtype=np.int64), np.zeros((rows, 0), dtype=np.int64)
    return np.stack(starts, axis=1), np.stack(ends, axis=1)


def _disjoint(starts: np.ndarray, ends: np.ndarray):
    """Spans of a row come sorted but may share an end pixel with the next one: start each after the last end."""
    ends = np.where(ends >= starts, ends, -1)
    reached = np.maximum.accumulate(ends, axis=-1)
    previous = np.concatenate([np.full(reached.shape[:-1] + (1,), -1), reached[..., :-1]], axis=-1)
    starts = np.maximum(starts, previous + 1)
    return starts, np.where(ends >= starts, ends, -1)


def _rasterize(polygons: np.ndarray, width: np.ndarray, height: np.ndarray, legacy: bool):
    """Filled pixels of offset polygons ``(frames, k, 2)`` as disjoint inclusive column spans per row:
    ``(starts, ends)`` of shape ``(frames, rows, k)``, empty spans have ``end < start``. trax's scan-line
    rules; rows past a frame's height are empty."""
    frames, count = polygons.shape[:2]
    rows = int(height.max())
    if not legacy:
        polygons = _round_half_away(polygons)
    x_i, y_i = polygons[:, :, 0], polygons[:, :, 1]
    x_j, y_j = np.roll(x_i, 1, axis=1), np.roll(y_i, 1, axis=1)  # edge (i, i-1), as trax's j = previous
    pixel_y = np.arange(rows, dtype=np.float32)[None, :, None]
    yi, yj, xi, xj = (v[:, None, :] for v in (y_i, y_j, x_i, x_j))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if legacy:
            crossing = ((yi < pixel_y) & (yj >= pixel_y)) | ((yj < pixel_y) & (yi >= pixel_y))
            position = xi + (pixel_y - yi) / (yj - yi) * (xj - xi)  # float32 arithmetic, as in trax
        else:
            low, high = np.minimum(yi, yj), np.maximum(yi, yj)
            crossing = (low <= pixel_y) & (pixel_y <= high) & (yj != yi)
            r = (yj - yi).astype(np.float64)
            k = (xj - xi).astype(np.float64)
            position = xi.astype(np.float64) + (pixel_y - yi).astype(np.float64) / r * k
        position = np.where(crossing, position, 0)
    crossing &= np.arange(rows)[None, :, None] < height[:, None, None]
    big = np.iinfo(np.int64).max
    nodes = np.where(crossing, np.trunc(position).astype(np.int64), big)
    nodes = np.sort(nodes.reshape(frames * rows, count), axis=1)
    counts = crossing.reshape(frames * rows, count).sum(axis=1)
    row_width = np.repeat(width, rows)
    spans = _spans_legacy if legacy else _spans_default
    starts, ends = spans(nodes, counts, row_width)
    starts, ends = _disjoint(starts, ends)
    return starts.reshape(frames, rows, -1), ends.reshape(frames, rows, -1)


def _span_pixels(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    return np.clip(ends - starts + 1, 0, None).sum(axis=(1, 2))


def _shared_pixels(s1: np.ndarray, e1: np.ndarray, s2: np.ndarray, e2: np.ndarray) -> np.ndarray:
    """Pixels in both span sets, row by row (each set disjoint): the sum of pairwise span overlaps."""
    left = np.maximum(s1[..., :, None], s2[..., None, :])
    right = np.minimum(e1[..., :, None], e2[..., None, :])
    return np.clip(right - left + 1, 0, None).sum(axis=(1, 2, 3))


def _boxes(polygons: np.ndarray, image: np.ndarray, legacy: bool):
    """Per polygon (left, top, right, bottom) float32, rounded outwards in default mode, clipped to the image."""
    left, top = polygons[:, :, 0].min(axis=1), polygons[:, :, 1].min(axis=1)
    right, bottom = polygons[:, :, 0].max(axis=1), polygons[:, :, 1].max(axis=1)
    if not legacy:
        left, top, right, bottom = np.floor(left), np.floor(top), np.ceil(right), np.ceil(bottom)
    zero = np.float32(0)
    return (np.maximum(left, zero), np.maximum(top, zero),
            np.minimum(right, image[:, 0] - 1), np.minimum(bottom, image[:, 1] - 1))


def _trax_batch(first: np.ndarray, second: np.ndarray, image: np.ndarray, legacy: bool) -> np.ndarray:
    """trax ``compute_polygon_overlap`` for stacked polygon pairs (see docs/legacy_eao.md for each step)."""
    l1, t1, r1, b1 = _boxes(first, image, legacy)
    l2, t2, r2, b2 = _boxes(second, image, legacy)
    x, y = np.minimum(l1, l2), np.minimum(t1, t2)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        width = np.trunc(np.maximum(r1, r2) - x).astype(np.int64) + 1
        height = np.trunc(np.maximum(b1, b2) - y).astype(np.int64) + 1
        a1 = ((r1 - l1) * (b1 - t1)).astype(np.float64)
        a2 = ((r2 - l2) * (b2 - t2)).astype(np.float64)
        degenerate = (a1 / a2 < 1e-10) | (a2 / a1 < 1e-10) | (width < 1) | (height < 1)
        inter = (np.minimum(r1, r2) - np.maximum(l1, l2)) * (np.minimum(b1, b2) - np.maximum(t1, t2))
        box_iou = inter / ((r1 - l1) * (b1 - t1) + (r2 - l2) * (b2 - t2) - inter)
        box_iou = np.where(np.float32(0) > box_iou, np.float32(0), box_iou)  # trax MAX(0, .) keeps NaN
    result = np.zeros(len(first), dtype=np.float32)
    todo = np.flatnonzero(~degenerate & (box_iou != 0))
    if todo.size == 0:
        return result
    offset = np.stack([x, y], axis=1)[:, None, :]
    op1, op2 = first - offset, second - offset
    todo = todo[np.argsort(height[todo], kind="stable")]  # similar heights share a batch: less padding
    slots = max(first.shape[1], second.shape[1])
    start = 0
    while start < todo.size:  # batches of at most BATCH_CELLS frames x rows x vertices x vertices
        stop = start + 1
        while stop < todo.size and (stop - start + 1) * int(height[todo[stop]]) * slots * slots <= BATCH_CELLS:
            stop += 1
        chunk = todo[start:stop]
        s1, e1 = _rasterize(op1[chunk], width[chunk], height[chunk], legacy)
        s2, e2 = _rasterize(op2[chunk], width[chunk], height[chunk], legacy)
        both = _shared_pixels(s1, e1, s2, e2)
        either = _span_pixels(s1, e1) + _span_pixels(s2, e2) - both
        with np.errstate(divide="ignore", invalid="ignore"):
            result[chunk] = both.astype(np.float32) / either.astype(np.float32)
        start = stop
    return result


def trax_overlaps(first: Sequence[np.ndarray | None], second: Sequence[np.ndarray | None],
                  image_size: tuple[int, int], legacy: bool = False) -> np.ndarray:
    """Per-frame overlaps of two polygon lists (None -> NaN), bounded by an image of ``(width, height)``."""
    if len(first) != len(second):
        raise ValueError(f"{len(first)} regions against {len(second)}")
    out = np.full(len(first), np.nan)
    pairs = [i for i, (a, b) in enumerate(zip(first, second)) if a is not None and b is not None]
    if not pairs:
        return out
    image = np.tile(np.asarray(image_size, dtype=np.float32), (len(pairs), 1))
    stacked = _pad_vertices([first[i] for i in pairs] + [second[i] for i in pairs])
    values = _trax_batch(stacked[: len(pairs)], stacked[len(pairs):], image, legacy)
    out[pairs] = values.astype(np.float64)
    return out


def region_overlaps(regions: Sequence, groundtruth: Sequence, image_size: tuple[int, int],
                    definition: OverlapDefinition) -> np.ndarray:
    """Per-frame overlap of two lists of ``vot.region`` shapes; NaN wherever either is a special code."""
    from vot.region import Special, calculate_overlap

    if definition.engine == "toolkit":
        return np.array([np.nan if isinstance(a, Special) or isinstance(b, Special)
                         else calculate_overlap(a, b, tuple(image_size)) for a, b in zip(regions, groundtruth)],
                        dtype=np.float64)
    first = [trax_polygon(r, definition.rectangle_end) for r in regions]
    second = [trax_polygon(r, definition.rectangle_end) for r in groundtruth]
    return trax_overlaps(first, second, image_size, definition.legacy_raster)
