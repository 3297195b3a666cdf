"""Image crops of the two branches.

The DCF branch and the segmentation branch of D3S resample differently, and both behaviours are
kept bit-for-bit: the DCF crop (:func:`dcf_patch`) decimates large crops by plain striding, crops
with replicated borders and resizes with torch's bilinear ``interpolate`` (align_corners=False);
the segmentation crop (:func:`segm_crop`) pads with OpenCV and resizes with ``cv2.resize``
(INTER_LINEAR), including the original's far-side padding quirk.
"""
from __future__ import annotations

import functools
import math
from typing import Sequence, Tuple

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .transfers import upload

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _replicate_window(length: int, start: int, stop: int) -> np.ndarray:
    """Indices start..stop-1 clamped into [0, length): cropping with replicated borders."""
    return np.clip(np.arange(start, stop, dtype=np.int64), 0, length - 1)


def select_window(image: torch.Tensor, rows: np.ndarray, cols: np.ndarray) -> torch.Tensor:
    """``image[..., rows, :][..., cols]`` for host index arrays of equal length, uploaded together
    (no host synchronisation)."""
    index_rows, index_cols = upload(np.stack((rows, cols)), image.device)
    return image.index_select(-2, index_rows).index_select(-1, index_cols)


def dcf_patch(image: torch.Tensor, pos_yx: Sequence[float], sample_size: float, output_size: int) -> torch.Tensor:
    """Square patch of side ``sample_size`` image pixels around ``pos_yx``, resampled to
    ``output_size`` (image: 1 x 3 x H x W float tensor with 0..255 values).

    The integer centre is the truncated position; crops larger than ~2.1x the output are first
    decimated by an integer factor (no anti-aliasing), as in the original sampler.
    """
    posl = [int(pos_yx[0]), int(pos_yx[1])]           # truncation toward zero, like Tensor.long()
    resize_factor = sample_size / output_size
    df = int(max(int(resize_factor - 0.1), 1))
    size = sample_size / df
    img = image
    if df > 1:
        offset = [p % df for p in posl]                   # Python modulo == torch remainder
        posl = [(p - o) // df for p, o in zip(posl, offset)]
        img = image[..., offset[0]::df, offset[1]::df]
    szl = max(int(round_half_even(size)), 2)
    half_lo, half_hi = (szl - 1) // 2, szl // 2
    h, w = img.shape[-2:]
    patch = select_window(img, _replicate_window(h, posl[0] - half_lo, posl[0] + half_hi + 1),
                          _replicate_window(w, posl[1] - half_lo, posl[1] + half_hi + 1))
    if patch.shape[-2] == output_size and patch.shape[-1] == output_size:
        return patch
    return F.interpolate(patch, size=(output_size, output_size), mode="bilinear", align_corners=False)


def round_half_even(x: float) -> float:
    """torch.round / numpy.round semantics (ties to even) for a Python float."""
    return float(np.round(x))


def segm_crop_window(box_xywh: Sequence[float], area_factor: float) -> Tuple[int, int, int]:
    """(x1, y1, side) of the square segmentation crop around a box (Python rounding, ties to even)."""
    x, y, w, h = (float(v) for v in box_xywh)
    crop_sz = math.ceil(math.sqrt(w * h) * area_factor)
    if crop_sz < 1:
        raise ValueError(f"target box {list(box_xywh)} is too small to crop")
    return round(x + 0.5 * w - crop_sz * 0.5), round(y + 0.5 * h - crop_sz * 0.5), crop_sz


def segm_crop(image: np.ndarray, box_xywh: Sequence[float], area_factor: float, output_size: int,
              pad_value: float | None = None) -> Tuple[np.ndarray, float]:
    """Square crop of side ``ceil(sqrt(w*h) * area_factor)`` centred on the box, resized to
    ``output_size`` with cv2 (INTER_LINEAR). Returns the crop and the resize factor.

    Borders are replicated (images) or filled with ``pad_value`` (masks). The far-side padding is
    one pixel too generous, exactly as in D3S: a crop that reaches the right/bottom image border
    drops the last image column/row and replicates the second-to-last one.
    """
    x1, y1, crop_sz = segm_crop_window(box_xywh, area_factor)
    x2, y2 = x1 + crop_sz, y1 + crop_sz
    im_h, im_w = image.shape[:2]
    x1_pad, y1_pad = max(0, -x1), max(0, -y1)
    x2_pad, y2_pad = max(x2 - im_w + 1, 0), max(y2 - im_h + 1, 0)
    crop = image[y1 + y1_pad:y2 - y2_pad, x1 + x1_pad:x2 - x2_pad]
    if crop.size == 0:
        # the window misses the image (a target centred outside it): replicate the nearest edge
        # pixels, or fill with pad_value (the original cannot handle this case at all)
        rows = np.clip(np.arange(y1, y2), 0, im_h - 1)
        cols = np.clip(np.arange(x1, x2), 0, im_w - 1)
        padded = image[np.ix_(rows, cols)] if pad_value is None else \
            np.full((crop_sz, crop_sz) + image.shape[2:], pad_value, dtype=image.dtype)
        return cv2.resize(np.ascontiguousarray(padded), (output_size, output_size)), output_size / crop_sz
    if pad_value is None:
        padded = cv2.copyMakeBorder(crop, y1_pad, y2_pad, x1_pad, x2_pad, cv2.BORDER_REPLICATE)
    else:
        padded = cv2.copyMakeBorder(crop, y1_pad, y2_pad, x1_pad, x2_pad, cv2.BORDER_CONSTANT, value=pad_value)
    return cv2.resize(padded, (output_size, output_size)), output_size / crop_sz


def _normalize_values(crop: np.ndarray) -> np.ndarray:
    """The original's float32/float64 mix: x/255 in float32, mean and std applied in float64,
    each result rounded to float32."""
    x = crop.astype(np.float32) / np.float32(255.0)
    x = (x.astype(np.float64) - np.asarray(IMAGENET_MEAN)).astype(np.float32)
    return (x.astype(np.float64) / np.asarray(IMAGENET_STD)).astype(np.float32)


def normalize_segm_crop(crop: np.ndarray) -> np.ndarray:
    """ImageNet normalisation of an RGB crop (H x W x 3), bit-identical to the original's.

    A uint8 crop goes through a 256-entry table per channel built with the same arithmetic
    (``cv2.LUT``, ~6x faster than the float64 round trips on a 384x384 crop)."""
    if crop.dtype == np.uint8 and crop.ndim == 3 and crop.shape[2] == 3:
        return cv2.LUT(np.ascontiguousarray(crop), _normalize_table())
    return _normalize_values(crop)


def device_normalize_table(device: torch.device) -> torch.Tensor:
    """The 256 x 3 float32 table of :func:`normalize_segm_crop` on ``device`` (the caller keeps it)."""
    return upload(np.array(_normalize_table()[0]), device)        # a writable copy of the shared table


def normalize_segm_crop_tensor(crop: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """:func:`normalize_segm_crop` of an H x W x 3 uint8 crop already on the device: each channel's
    values looked up in ``table`` (:func:`device_normalize_table`), so the crop travels as uint8
    (a quarter of the float32 bytes) and the values are the host table's, bit for bit."""
    h, w, c = crop.shape
    return table.gather(0, crop.reshape(h * w, c).long()).view(h, w, c)


@functools.lru_cache(maxsize=1)
def _normalize_table() -> np.ndarray:
    """The 1 x 256 x 3 table of :func:`_normalize_values` for every uint8 value, built once (read-only)."""
    table = _normalize_values(np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 3, axis=2))
    table.setflags(write=False)
    return table


def centre_distance_map(size: int) -> np.ndarray:
    """Euclidean distance of every pixel to pixel ``size/2 - 1`` (191 for 384) in both axes,
    float32: the network's third input (the crop is always centred on the DCF estimate)."""
    coords = np.arange(1, size + 1, dtype=np.float64) - size / 2
    xx, yy = np.meshgrid(coords, coords)
    return np.sqrt(xx * xx + yy * yy).astype(np.float32)
