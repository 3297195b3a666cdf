"""Target localisation in the upsampled DCF response, with the hard-negative / not-found logic."""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Tuple

import numpy as np
import torch

from ..params import D3SParams
from .transfers import read_values, upload


@dataclass(frozen=True)
class Localisation:
    displacement: Tuple[float, float]   # (dy, dx) of the peak from the sample centre, in sample pixels
    max_score: float                    # maximum of the windowed map (the uncertainty uses it)
    flag: str                           # 'none', 'hard_negative', 'uncertain', 'not_found'


def _peak(scores: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Max and (row, col) of a 2-D map as 0-dim device tensors: the first occurrence of the column
    maxima of the row maxima, as the original."""
    col_max, row_idx = torch.max(scores, dim=-2)
    value, col = torch.max(col_max, dim=-1)
    return value, row_idx.gather(0, col.view(1))[0], col


def _outside_neighbourhood(centred: torch.Tensor, peak_rc: torch.Tensor, half_hw: Tuple[float, float]
                           ) -> torch.Tensor:
    """``centred`` with the target neighbourhood around ``peak_rc`` (float64 (row, col)) set to zero:
    rows ``max(round(r - h/2), 0)`` to ``min(round(r + h/2 + 1), n)`` (exclusive), the same for the
    columns, with Python's rounding (ties to even), computed on the device."""
    n = centred.shape[-1]
    half = upload(np.array(half_hw, dtype=np.float64), centred.device)
    top_left = torch.round(peak_rc - half).clamp_min(0)
    bottom_right = torch.round(peak_rc + half + 1).clamp_max(n)
    index = _cells(n, centred.device)
    inside = (index >= top_left[:, None]) & (index < bottom_right[:, None])      # 2 x n: rows, columns
    return centred.masked_fill(inside[0][:, None] & inside[1][None, :], 0)


@lru_cache(maxsize=8)
def _cells(n: int, device: torch.device) -> torch.Tensor:
    """0 .. n-1 on ``device`` (uploaded once)."""
    return upload(np.arange(n, dtype=np.float64), device)


def localize(scores: torch.Tensor, target_neighbourhood_hw: Tuple[float, float], params: D3SParams) -> Localisation:
    """``scores``: windowed, upsampled N x N map with zero displacement at (0, 0).

    Both peaks (the target's and the strongest one outside its neighbourhood) are found on the
    device and read in one transfer: the only host synchronisation of the DCF step."""
    n = scores.shape[-1]
    half = (n + 1) // 2
    centred = torch.roll(scores, shifts=(-half, -half), dims=(-2, -1))   # zero displacement -> n // 2
    max1, r1, c1 = _peak(centred)
    if not params.advanced_localization:
        value, row, col = read_values(torch.stack((max1, r1, c1)).to(torch.float64))
        return Localisation((int(row) - n // 2, int(col) - n // 2), value, "none")
    nh, nw = target_neighbourhood_hw
    peak_rc = torch.stack((r1, c1)).to(torch.float64)
    masked = _outside_neighbourhood(centred, peak_rc, (nh / 2, nw / 2))
    max2, r2, c2 = _peak(masked)
    # one transfer: the two maxima and the two positions (cells < 2^24, exact in any float dtype)
    values = read_values(torch.stack((max1, max2, r1, c1, r2, c2)).to(torch.float64))
    max1, max2 = values[0], values[1]
    disp1 = (int(values[2]) - n // 2, int(values[3]) - n // 2)
    disp2 = (int(values[4]) - n // 2, int(values[5]) - n // 2)
    if max1 < params.target_not_found_threshold:
        return Localisation(disp1, max1, "not_found")
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
