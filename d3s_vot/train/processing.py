"""Turn a (train frame, test frame) pair into the network's training tensors.

Follows the original recipe: crops of side ``ceil(sqrt(w*h) * 4)`` resized to 384x384 with
``cv2.resize`` INTER_LINEAR (replicate padding for images, zero padding for masks, so masks become
soft), the train crop centred on the exact train box, the test crop on a jittered test box, a distance
map from the jittered test-box centre, rare box-mask substitution, brightness jitter and ImageNet
normalisation. All randomness comes from the ``numpy.random.Generator`` passed in.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from .config import TrainConfig

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def crop_and_resize(image: np.ndarray, box: np.ndarray, search_area_factor: float, output_size: int,
                    zero_pad: bool = False) -> tuple[np.ndarray, float]:
    """Square crop of side ``ceil(sqrt(w*h)*factor)`` around the box centre, resized to output_size.

    Top-left corner ``round(c - side/2)`` (Python round); outside pixels are replicated (images) or zero
    (masks). As in the original, the far-side padding counts one pixel too many, so a crop reaching the
    far border replicates the second-to-last row/column. Returns the crop and the resize factor.
    """
    x, y, w, h = (float(v) for v in box)
    side = math.ceil(math.sqrt(w * h) * search_area_factor)
    if side < 1:
        raise ValueError(f"box {list(box)} is too small to crop")
    x1 = round(x + 0.5 * w - side * 0.5)
    y1 = round(y + 0.5 * h - side * 0.5)
    x2, y2 = x1 + side, y1 + side
    height, width = image.shape[:2]
    left, top = max(0, -x1), max(0, -y1)
    right, bottom = max(0, x2 - width + 1), max(0, y2 - height + 1)
    patch = image[y1 + top:y2 - bottom, x1 + left:x2 - right]
    if patch.size == 0:
        crop = np.zeros((side, side) + image.shape[2:], dtype=image.dtype)
    else:
        border = cv2.BORDER_CONSTANT if zero_pad else cv2.BORDER_REPLICATE
        crop = cv2.copyMakeBorder(patch, top, bottom, left, right, border, value=0)
    resized = cv2.resize(crop, (output_size, output_size), interpolation=cv2.INTER_LINEAR)
    return resized, output_size / side


def box_in_crop(box: np.ndarray, crop_box: np.ndarray, resize_factor: float, output_size: int) -> np.ndarray:
    """Map an image box into the coordinates of the crop taken around ``crop_box``."""
    crop_center = crop_box[:2] + 0.5 * crop_box[2:]
    center = box[:2] + 0.5 * box[2:]
    out_center = (output_size - 1) / 2 + (center - crop_center) * resize_factor
    out_size = box[2:] * resize_factor
    return np.concatenate([out_center - 0.5 * out_size, out_size])


def jitter_box(box: np.ndarray, rng: np.random.Generator, scale_jitter: float, center_jitter: float) -> np.ndarray:
    """size *= exp(N(0,1) * scale_jitter); centre += U(-0.5, 0.5) * center_jitter * sqrt(new area)."""
    size = box[2:] * np.exp(rng.standard_normal(2) * scale_jitter)
    max_offset = math.sqrt(float(np.prod(size))) * center_jitter
    center = box[:2] + 0.5 * box[2:] + max_offset * (rng.random(2) - 0.5)
    return np.concatenate([center - 0.5 * size, size])


def distance_map(center_xy: np.ndarray, size: int) -> np.ndarray:
    """Euclidean distance (pixels, unnormalised) of every 0-based pixel to ``center_xy``: (size, size)."""
    coords = np.arange(size, dtype=np.float32)
    dx = coords[None, :] - np.float32(center_xy[0])
    dy = coords[:, None] - np.float32(center_xy[1])
    return np.sqrt(dx * dx + dy * dy)


def box_mask(box: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """0/1 mask of the rounded axis-aligned box (clipped to the image)."""
    mask = np.zeros(shape, dtype=np.uint8)
    x, y, w, h = (int(round(float(v))) for v in box)
    mask[max(0, y):max(0, y + h), max(0, x):max(0, x + w)] = 1
    return mask


def normalise(image: np.ndarray, brightness: float = 1.0) -> np.ndarray:
    """uint8 HxWx3 RGB -> float32 3xHxW: times brightness/255, clamped to [0, 1], ImageNet-normalised."""
    scaled = np.clip(image.astype(np.float32) * np.float32(brightness / 255.0), 0.0, 1.0)
    return ((scaled - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1).copy()


@dataclass(frozen=True)
class PairSample:
    """Network inputs and target for one pair, all float32 in channel-first layout."""

    train_image: np.ndarray   # 3 x S x S
    train_mask: np.ndarray    # 1 x S x S (soft)
    test_image: np.ndarray    # 3 x S x S
    test_mask: np.ndarray     # 1 x S x S (soft): the target
    test_dist: np.ndarray     # 1 x S x S distance map in pixels
    box_mask_used: bool

    def as_dict(self) -> dict:
        return {"train_image": self.train_image, "train_mask": self.train_mask, "test_image": self.test_image,
                "test_mask": self.test_mask, "test_dist": self.test_dist}


def process_pair(train_image: np.ndarray, train_mask: np.ndarray, train_box: np.ndarray,
                 test_image: np.ndarray, test_mask: np.ndarray, test_box: np.ndarray,
                 rng: np.random.Generator, config: TrainConfig, augment: bool = True) -> PairSample:
    """Crop, jitter and normalise one pair. ``augment=False`` (validation) skips brightness jitter only."""
    train_box = np.asarray(train_box, dtype=np.float64)
    test_box = np.asarray(test_box, dtype=np.float64)
    size, factor = config.output_size, config.search_area_factor
    use_box_mask = bool(rng.random() < config.box_mask_prob)
    if use_box_mask:
        test_image, test_mask, test_box = train_image, train_mask, train_box
        train_mask = box_mask(train_box, train_mask.shape[:2])

    train_crop, _ = crop_and_resize(train_image, train_box, factor, size)
    train_mask_crop, _ = crop_and_resize(train_mask.astype(np.float32), train_box, factor, size, zero_pad=True)

    jittered = jitter_box(test_box, rng, config.scale_jitter, config.center_jitter)
    test_crop, resize = crop_and_resize(test_image, jittered, factor, size)
    test_mask_crop, _ = crop_and_resize(test_mask.astype(np.float32), jittered, factor, size, zero_pad=True)
    target = box_in_crop(test_box, jittered, resize, size)
    center = target[:2] + 0.5 * target[2:] + (rng.random(2) * 2.0 - 1.0) * config.dist_jitter * target[2:]
    dist = distance_map(center, size)

    low, high = 1.0 - config.brightness_jitter, 1.0 + config.brightness_jitter
    bright_train = rng.uniform(low, high) if augment else 1.0
    bright_test = rng.uniform(low, high) if augment else 1.0
    return PairSample(
        train_image=normalise(train_crop, bright_train),
        train_mask=train_mask_crop[None].astype(np.float32),
        test_image=normalise(test_crop, bright_test),
        test_mask=test_mask_crop[None].astype(np.float32),
        test_dist=dist[None],
        box_mask_used=use_box_mask,
    )
