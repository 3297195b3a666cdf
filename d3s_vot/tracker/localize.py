"""Target localisation in the upsampled DCF response, with the hard-negative / not-found logic."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Tuple

import torch

from ..params import D3SParams


@dataclass(frozen=True)
class Localisation:
    displacement: Tuple[float, float]   # (dy, dx) of the peak from the sample centre, in sample pixels
    max_score: float                    # maximum of the windowed map (the uncertainty uses it)
    flag: str                           # 'none', 'hard_negative', 'uncertain', 'not_found'


def _argmax2d(scores: torch.Tensor) -> Tuple[float, int, int]:
    """Max and (row, col) of a 2-D map, first occurrence of column maxima of row maxima, as the original."""
    col_max, row_idx = torch.max(scores, dim=-2)
    value, col = torch.max(col_max, dim=-1)
    c = int(col.item())
    return float(value.item()), int(row_idx[c].item()), c


def localize(scores: torch.Tensor, target_neighbourhood_hw: Tuple[float, float], params: D3SParams) -> Localisation:
    """``scores``: windowed, upsampled N x N map with zero displacement at (0, 0)."""
    n = scores.shape[-1]
    half = (n + 1) // 2
    centred = torch.roll(scores, shifts=(-half, -half), dims=(-2, -1))   # zero displacement -> n // 2
    max1, r1, c1 = _argmax2d(centred)
    disp1 = (r1 - n // 2, c1 - n // 2)
    if not params.advanced_localization:
        return Localisation(disp1, max1, "none")
    if max1 < params.target_not_found_threshold:
        return Localisation(disp1, max1, "not_found")
    nh, nw = target_neighbourhood_hw
    top = max(round(r1 - nh / 2), 0)
    bottom = min(round(r1 + nh / 2 + 1), n)
    left = max(round(c1 - nw / 2), 0)
    right = min(round(c1 + nw / 2 + 1), n)
    masked = centred.clone()
    masked[top:bottom, left:right] = 0
    max2, r2, c2 = _argmax2d(masked)
    disp2 = (r2 - n // 2, c2 - n // 2)
    if max2 > params.distractor_threshold * max1:
        norm1 = math.sqrt(disp1[0] ** 2 + disp1[1] ** 2)
        norm2 = math.sqrt(disp2[0] ** 2 + disp2[1] ** 2)
        threshold = params.displacement_scale * math.sqrt(n * n) / 2
        if norm2 > threshold and norm1 < threshold:
            return Localisation(disp1, max1, "hard_negative")
        if norm2 < threshold and norm1 > threshold:
            return Localisation(disp2, max1, "hard_negative")
        return Localisation(disp1, max1, "uncertain")
    if max2 > params.hard_negative_threshold * max1 and max2 > params.target_not_found_threshold:
        return Localisation(disp1, max1, "hard_negative")
    return Localisation(disp1, max1, "none")
