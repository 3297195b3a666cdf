"""First-frame augmentation: 27 transformed copies of the target region for the DCF.

An expanded patch (twice the sample size) is transformed and centre-cropped back to the sample
size with replicated borders: identity, 8 translations, a horizontal flip, 5 anisotropic blurs
and 12 rotations, in that order. Translations also shift the training label.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .crops import select_window
from .transfers import download, host_side, upload, upload_many


@dataclass(frozen=True)
class Augmentation:
    kind: str                      # 'identity', 'shift', 'flip', 'blur', 'rotate'
    shift: Tuple[int, int] = (0, 0)  # (dy, dx) in sample pixels; moves the target by +shift
    sigma: Tuple[float, float] = (0.0, 0.0)
    angle_deg: float = 0.0


def build_augmentations(sample_size: int, shifts: Sequence[Tuple[float, float]], fliplr: bool,
                        blurs: Sequence[Tuple[float, float]], rotations: Sequence[float]) -> List[Augmentation]:
    augs = [Augmentation("identity")]
    for s in shifts:
        # relative shifts are in units of half a sample, truncated to whole pixels
        augs.append(Augmentation("shift", shift=(int(s[0] * sample_size / 2), int(s[1] * sample_size / 2))))
    if fliplr:
        augs.append(Augmentation("flip"))
    augs += [Augmentation("blur", sigma=(float(b[0]), float(b[1]))) for b in blurs]
    augs += [Augmentation("rotate", angle_deg=float(a)) for a in rotations]
    return augs


def _centre_indices(h: int, w: int, out: int, shift: Tuple[int, int]) -> Tuple[np.ndarray, np.ndarray]:
    """Row and column indices (host arrays) of the centre crop (or replicated pad) to out x out,
    moved by -shift."""
    pad_h, pad_w = (out - h) / 2, (out - w) / 2
    top = math.floor(pad_h) + shift[0]
    bottom = math.ceil(pad_h) - shift[0]
    left = math.floor(pad_w) + shift[1]
    right = math.ceil(pad_w) - shift[1]
    rows = np.clip(np.arange(-top, h + bottom, dtype=np.int64), 0, h - 1)
    cols = np.clip(np.arange(-left, w + right, dtype=np.int64), 0, w - 1)
    return rows, cols


def _crop_centre(image: torch.Tensor, out: int, shift: Tuple[int, int]) -> torch.Tensor:
    """Centre crop (or pad, replicated) to out x out, with the window moved by -shift."""
    rows, cols = _centre_indices(image.shape[-2], image.shape[-1], out, shift)
    return select_window(image, rows, cols)


def _blur_radius(s: float) -> int:
    """Radius of the Gaussian blur kernel for one axis."""
    return math.ceil(2 * s)


def _blur_kernels(sigma: Tuple[float, float], dtype: torch.dtype, device: torch.device) -> List[torch.Tensor]:
    """Normalised 1-D Gaussians of radius :func:`_blur_radius`, built in float32 on the host as in
    the original, then uploaded (no synchronisation)."""
    kernels = []
    for s in sigma:
        r = _blur_radius(s)
        x = torch.arange(-r, r + 1, dtype=torch.float32)
        k = torch.exp(-(x ** 2) / (2 * s ** 2))
        kernels.append(upload((k / k.sum()).to(dtype), device))
    return kernels


def _blur(image: torch.Tensor, sigma: Tuple[float, float]) -> torch.Tensor:
    """Separable Gaussian blur (zero padding)."""
    with host_side():
        ky, kx = _blur_kernels(sigma, image.dtype, image.device)
    ry, rx = ky.numel() // 2, kx.numel() // 2
    h, w = image.shape[-2:]
    flat = image.reshape(-1, 1, h, w)
    flat = F.conv2d(flat, ky.view(1, 1, -1, 1), padding=(ry, 0))
    flat = F.conv2d(flat, kx.view(1, 1, 1, -1), padding=(0, rx))
    return flat.reshape(image.shape)


def _blurred_crop(patch: torch.Tensor, sigma: Tuple[float, float], out: int, shift: Tuple[int, int]) -> torch.Tensor:
    """``_crop_centre(_blur(patch, sigma), out, shift)``, blurring only the crop and its kernel margin
    (the patch is twice the crop: 4x fewer pixels). Zero padding still applies where the margin
    reaches the patch border, and each output pixel sees the same neighbourhood, so the values
    are the same. The window comes from the host indices: no device read."""
    h, w = patch.shape[-2:]
    rows, cols = _centre_indices(h, w, out, shift)
    ry, rx = (_blur_radius(s) for s in sigma)
    y0, y1 = max(int(rows.min()) - ry, 0), min(int(rows.max()) + ry + 1, h)
    x0, x1 = max(int(cols.min()) - rx, 0), min(int(cols.max()) + rx + 1, w)
    window = _blur(patch[..., y0:y1, x0:x1], sigma)
    return select_window(window, rows - y0, cols - x0)


def _rotate(arr: np.ndarray, angle_deg: float) -> np.ndarray:
    """Rotation of an H x W x 3 patch about its centre with OpenCV's bilinear warp and replicated borders."""
    a = math.pi * angle_deg / 180
    c = (np.array(arr.shape[:2], dtype=np.float64).reshape(2, 1) - 1) / 2
    R = np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]])
    M = np.concatenate([R, c - R @ c], 1)
    return cv2.warpAffine(arr, M, arr.shape[1::-1], borderMode=cv2.BORDER_REPLICATE)


def apply_augmentations(patch: torch.Tensor, augs: Sequence[Augmentation], out_size: int) -> torch.Tensor:
    """All augmented crops of a 1 x 3 x S x S patch, stacked: len(augs) x 3 x out x out.

    The rotations run on the host (OpenCV): the patch is downloaded once and the rotated copies go
    back in one upload, cropped together."""
    crops: List[Optional[torch.Tensor]] = []
    rotations = [i for i, aug in enumerate(augs) if aug.kind == "rotate"]
    for aug in augs:
        if aug.kind == "identity" or aug.kind == "shift":
            crops.append(_crop_centre(patch, out_size, aug.shift))
        elif aug.kind == "flip":
            crops.append(_crop_centre(patch.flip((3,)), out_size, aug.shift))
        elif aug.kind == "blur":
            crops.append(_blurred_crop(patch, aug.sigma, out_size, aug.shift))
        elif aug.kind == "rotate":
            crops.append(None)          # below, all rotations at once
        else:
            raise ValueError(f"unknown augmentation {aug.kind!r}")
    if rotations:
        hwc = np.ascontiguousarray(download(patch[0].permute(1, 2, 0)))
        rotated = upload_many([_rotate(hwc, augs[i].angle_deg) for i in rotations], patch.device).permute(0, 3, 1, 2)
        by_shift = {}
        for i in rotations:
            by_shift.setdefault(augs[i].shift, []).append(i)
        for shift, indices in by_shift.items():
            picked = rotated if len(indices) == len(rotations) else rotated.index_select(
                0, upload(np.array([rotations.index(i) for i in indices], dtype=np.int64), rotated.device))
            for i, crop in zip(indices, _crop_centre(picked, out_size, shift)):
                crops[i] = crop[None]
    return torch.cat(crops)
