"""Initial regions: validation and conversion to the tracker's internal state.

:func:`parse_region` is the one place where an initial region is checked; every entry point goes
through it (``D3STracker.initialize``, hence the Python API and ``python -m d3s_vot.track``; the TraX
entry calls :func:`normalize_region` before handing the region to its tracker). A region is accepted
when it is one of

* a box ``[x, y, w, h]`` (0-based): 4 finite real numbers, ``w`` and ``h`` at least
  ``MIN_BOX_SIDE`` (1e-3) pixels;
* a polygon of ``N >= 3`` points: ``2*N`` finite real numbers ``x1, y1, ..., xN, yN`` (or an N x 2
  array), with at least 3 distinct points that are not collinear (repeated vertices are ignored when
  judging, so a triangle given as 4 points with a repeated vertex is valid). An 8-number polygon with
  4 distinct points is used exactly as given (the original D3S behaviour); any other polygon becomes
  its minimum-area rotated rectangle (``cv2.minAreaRect``), 4 corners;
* a mask: a 2-D array of the frame's H x W size, bool or integer-valued (0 = background, a positive
  value such as 1 or 255 = target; floats are accepted when their values are whole numbers), with at
  least one target pixel. Its target box is the bounding box of the target pixels, so it always lies
  within the image.

Boxes and polygons must intersect the image. **Size bound: refuse, never clip.** A box or polygon
whose width or height (the box's ``w``/``h``, the polygon's bounding box and its preserve-area box)
is more than ``MAX_SIZE_FACTOR`` = 2 times the image's width or height is refused with a
``ValueError`` ("init region is larger than the image: ..."). Refusing keeps every accepted region
bit-identical to the original tracker (clipping would silently change regions that overhang the
border, which real ground truth does); the factor 2 leaves room for targets partly out of view while
bounding the work: the first segmentation crop has side ``ceil(4 * sqrt(w * h))`` (see
:func:`~d3s_vot.tracker.crops.segm_crop_window`), at most ``8 * sqrt(W * H)`` pixels for a W x H
image, i.e. at most 64 times the frame's pixel count, and the DCF sample is resampled to a fixed size.
Every refusal is a ``ValueError`` with a one-line message.
"""
from __future__ import annotations

import reprlib
from dataclasses import dataclass
from typing import Optional

import numpy as np

MAX_SIZE_FACTOR = 2.0       # a region may be at most this many times the image's width / height
MIN_BOX_SIDE = 1e-3         # pixels; smaller boxes underflow the DCF scale computation
COLLINEAR_TOLERANCE = 1e-6  # pixels: points this close to one line have zero area


@dataclass(frozen=True)
class InitRegion:
    """The first frame's target, normalised.

    pos_yx / size_hw: DCF state (centre and size of the axis-aligned box).
    box_xywh: 0-based box used for the segmentation crop.
    polygon: 4 x 2 corners rasterised as the initial segmentation mask.
    rotated: polygon (VOT) mode -> rotated-rectangle outputs.
    mask: full-image init mask (VOS mode) or None.
    """

    pos_yx: np.ndarray
    size_hw: np.ndarray
    box_xywh: np.ndarray
    polygon: np.ndarray
    rotated: bool
    mask: Optional[np.ndarray] = None


def polygon_to_box(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Axis-aligned [x, y, w, h] with the polygon's centre and (rectangle) area ('preserve_area')."""
    cx, cy = np.mean(xs), np.mean(ys)
    x1, x2, y1, y2 = np.min(xs), np.max(xs), np.min(ys), np.max(ys)
    a1 = np.linalg.norm(np.array([xs[0], ys[0]]) - np.array([xs[1], ys[1]])) * \
        np.linalg.norm(np.array([xs[1], ys[1]]) - np.array([xs[2], ys[2]]))
    a2 = (x2 - x1) * (y2 - y1)
    s = np.sqrt(a1 / a2)
    w = s * (x2 - x1) + 1
    h = s * (y2 - y1) + 1
    return np.array([cx - w / 2, cy - h / 2, w, h])


def _fmt(values) -> str:
    """``[1, 2.5, nan]``: numbers as %g, the list shortened after 12 entries."""
    values = list(np.asarray(values, dtype=np.float64).reshape(-1))
    text = ", ".join(f"{v:g}" for v in values[:12])
    return f"[{text}{', ...' if len(values) > 12 else ''}]"


def _describe(region) -> str:
    if region is None:
        return "None"
    short = reprlib.Repr()
    short.maxstring = short.maxother = 40
    text = " ".join(short.repr(region).split())
    return f"{type(region).__name__} {text}"


def _check_finite(values: np.ndarray, what: str) -> None:
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{what} contains NaN or infinite values: {_fmt(values)}")


def _check_size(what: str, values, w: float, h: float, im_w: int, im_h: int) -> None:
    """The documented size bound: refuse (never clip) a region more than MAX_SIZE_FACTOR x the image."""
    k = MAX_SIZE_FACTOR
    if w <= k * im_w and h <= k * im_h:
        return
    side, size, limit = ("width", w, im_w) if not w <= k * im_w else ("height", h, im_h)
    raise ValueError(f"init region is larger than the image: {what} {_fmt(values)} has {side} {size:g}, more than "
                     f"{k:g}x the image {side} {limit} (a region may be at most {k:g}x the image's width and height)")


def _check_overlap(x1, y1, x2, y2, im_w, im_h) -> None:
    if x2 <= 0 or y2 <= 0 or x1 >= im_w or y1 >= im_h:
        raise ValueError(f"init region [{x1:g}, {y1:g}] - [{x2:g}, {y2:g}] lies entirely outside the "
                         f"{im_w}x{im_h} image")


def normalize_region(region, image_shape) -> np.ndarray:
    """Validate ``region`` for a frame of ``image_shape`` (see the module docstring for the rules).

    Returns what the tracker takes: a float64 box (4 numbers), a float64 polygon (8 numbers: the
    input when it is a 4-point polygon, else the minimum-area rectangle's corners) or the H x W mask
    as given. Raises ``ValueError`` with a one-line message."""
    im_h, im_w = (int(v) for v in image_shape[:2])
    if region is None or isinstance(region, (str, bytes, dict, set)):
        raise _not_numbers(region)
    try:
        arr = np.asarray(region)
    except (ValueError, TypeError):     # ragged nested lists, objects numpy cannot convert
        raise _not_numbers(region) from None
    if arr.dtype.kind not in "biuf":
        raise _not_numbers(region)
    if arr.ndim == 2 and arr.shape == (im_h, im_w):
        return _check_mask(arr)
    if arr.dtype.kind == "b":           # bool is for masks only
        raise _not_numbers(region)
    if arr.ndim == 2 and arr.shape[1] == 2 and arr.shape[0] >= 3:
        arr = arr.reshape(-1)
    if arr.ndim >= 2:
        raise ValueError(f"init mask has shape {arr.shape} but the image is {im_h}x{im_w}")
    arr = arr.astype(np.float64).reshape(-1)
    if arr.size == 4:
        return _check_box(arr, im_w, im_h)
    if arr.size >= 6 and arr.size % 2 == 0:
        return _check_polygon(arr, im_w, im_h)
    raise ValueError(f"init region must be 4 numbers [x, y, w, h], 2*N numbers (a polygon of N >= 3 points) or an "
                     f"{im_h}x{im_w} mask; got {arr.size} numbers")


def _not_numbers(region) -> ValueError:
    return ValueError("region must be numbers (a box [x, y, w, h], 2*N polygon coordinates or an H x W mask), "
                      f"got {_describe(region)}")


def _check_box(arr: np.ndarray, im_w: int, im_h: int) -> np.ndarray:
    _check_finite(arr, "init box")
    x, y, w, h = arr
    if w <= 0 or h <= 0:
        raise ValueError(f"init box must have positive width and height, got w={w:g}, h={h:g}")
    if w < MIN_BOX_SIDE or h < MIN_BOX_SIDE:
        raise ValueError(f"init box is too small: w={w:g}, h={h:g} "
                         f"(each side must be at least {MIN_BOX_SIDE:g} pixels)")
    _check_size("box", arr, w, h, im_w, im_h)
    _check_overlap(x, y, x + w, y + h, im_w, im_h)
    return arr


def _check_polygon(arr: np.ndarray, im_w: int, im_h: int) -> np.ndarray:
    _check_finite(arr, "init polygon")
    points = arr.reshape(-1, 2)
    lo, hi = points.min(axis=0), points.max(axis=0)
    _check_size("polygon", arr, hi[0] - lo[0], hi[1] - lo[1], im_w, im_h)   # also keeps the arithmetic finite
    distinct = np.unique(points, axis=0)
    if len(distinct) < 3:
        raise ValueError(f"init polygon {_fmt(arr)} is degenerate (zero area): it has fewer than 3 distinct points")
    offsets = distinct - distinct[0]
    far = offsets[np.argmax(np.einsum("ij,ij->i", offsets, offsets))]
    thickness = np.max(np.abs(far[0] * offsets[:, 1] - far[1] * offsets[:, 0])) / np.hypot(far[0], far[1])
    if not thickness > COLLINEAR_TOLERANCE:
        raise ValueError(f"init polygon {_fmt(arr)} is degenerate (zero area): its points are collinear")
    if arr.size != 8 or len(distinct) != 4:
        import cv2

        arr = cv2.boxPoints(cv2.minAreaRect(points.astype(np.float32))).astype(np.float64).reshape(-1)
    xs, ys = arr[0::2], arr[1::2]
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        box = polygon_to_box(xs, ys)
    if not np.all(np.isfinite(box)) or box[2] <= 1 or box[3] <= 1:
        raise ValueError(f"init polygon {_fmt(arr)} is degenerate (zero area)")
    _check_size("polygon (as a box)", box, box[2], box[3], im_w, im_h)
    _check_overlap(xs.min(), ys.min(), xs.max(), ys.max(), im_w, im_h)
    return arr


def _check_mask(mask: np.ndarray) -> np.ndarray:
    if mask.dtype.kind == "f":
        finite = np.isfinite(mask)
        if not finite.all() or not np.array_equal(mask, np.round(mask)):
            raise ValueError(f"init mask values must be whole numbers (0 = background, > 0 = target), got dtype "
                             f"{mask.dtype} with values in [{np.nanmin(mask) if finite.any() else np.nan:g}, "
                             f"{np.nanmax(mask) if finite.any() else np.nan:g}]")
    if mask.dtype.kind != "b" and mask.size and mask.min() < 0:
        raise ValueError("init mask values must be >= 0 (0 = background, > 0 = target), "
                         f"got a minimum of {mask.min():g}")
    if not np.any(mask > 0):
        raise ValueError(f"init mask is empty: no target (nonzero) pixel in the {mask.shape[0]}x{mask.shape[1]} mask")
    return mask


def parse_region(region, image_shape) -> InitRegion:
    """Validate (:func:`normalize_region`) and normalise: a 0-based [x, y, w, h] box, a polygon of 2*N
    numbers (x1, y1, ..., xN, yN; N >= 3) or an H x W mask."""
    arr = normalize_region(region, image_shape)
    if arr.ndim == 2:
        return _from_mask(arr)
    if arr.size == 4:
        x, y, w, h = arr
        polygon = np.array([[x, y], [x + w - 1, y], [x + w - 1, y + h - 1], [x, y + h - 1]])
        return InitRegion(pos_yx=np.array([y + h / 2, x + w / 2]), size_hw=np.array([h, w]),
                          box_xywh=arr.copy(), polygon=polygon, rotated=False)
    xs, ys = arr[0::2], arr[1::2]
    box = polygon_to_box(xs, ys)
    return InitRegion(pos_yx=np.array([np.mean(ys), np.mean(xs)]), size_hw=np.array([box[3], box[2]]),
                      box_xywh=box, polygon=arr.reshape(4, 2), rotated=True)


def _from_mask(mask: np.ndarray) -> InitRegion:
    m = np.asarray(mask)
    if m.dtype == bool:
        m = m.astype(np.uint8)
    ys, xs = np.nonzero(m > 0)
    if ys.size == 0:
        raise ValueError("init mask is empty")
    x1, x2, y1, y2 = xs.min(), xs.max(), ys.min(), ys.max()
    w, h = float(x2 - x1 + 1), float(y2 - y1 + 1)
    x, y = float(x1), float(y1)
    polygon = np.array([[x, y], [x + w - 1, y], [x + w - 1, y + h - 1], [x, y + h - 1]])
    return InitRegion(pos_yx=np.array([y + h / 2, x + w / 2]), size_hw=np.array([h, w]),
                      box_xywh=np.array([x, y, w, h]), polygon=polygon, rotated=False,
                      mask=(m > 0).astype(np.float32))
