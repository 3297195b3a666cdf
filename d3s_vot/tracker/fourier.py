"""Score-map upsampling in the Fourier domain and the output window.

D3S evaluates the 16x16 correlation response as a Fourier series on a 256x256 grid. The spectrum
of an even-sized map is extended to odd size by repeating the Nyquist row (so it appears at both
-8 and +8 with full weight), shifted by half a cell (the 4x4 kernel is even), and zero-padded.
The phase factors and the Hann window are computed in float32, as in the original, so that a
float64 tracker reproduces the original's float64 numbers. Both are computed on the host once and
kept on the device (uploaded without a host synchronisation), so a frame transfers nothing here.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Tuple

import torch

from .transfers import host_side, upload

_PI32 = float(torch.tensor(math.pi, dtype=torch.float32))


@lru_cache(maxsize=8)
def _half_shift_phase(rows: int, cols: int) -> torch.Tensor:
    """exp(i*pi*ky) * exp(i*pi*kx) on the centred half spectrum, rounded like the original
    (float32 angles, float32 cos/sin)."""
    ky = torch.arange(-((rows - 1) // 2), rows // 2 + 1, dtype=torch.float32).view(-1, 1)
    kx = torch.arange(0, cols, dtype=torch.float32).view(1, -1)
    ay, ax = _PI32 * ky, _PI32 * kx
    py = torch.complex(torch.cos(ay), torch.sin(ay)).to(torch.complex128)
    px = torch.complex(torch.cos(ax), torch.sin(ax)).to(torch.complex128)
    return py, px


@lru_cache(maxsize=16)
def _device_constants(n: int, output_size: int, device: torch.device, cdtype: torch.dtype
                      ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The two phase vectors (in ``cdtype``) and the rows of the zero-padded spectrum that receive
    the n + 1 frequencies, on ``device``: built and uploaded once per (size, device, dtype)."""
    with host_side():
        py, px = _half_shift_phase(n + 1, n // 2 + 1)
        py, px = py.to(cdtype), px.to(cdtype)
        rows = torch.arange(-(n // 2), n // 2 + 1) % output_size
    return upload(py, device), upload(px, device), upload(rows, device)


def upsample_scores(scores: torch.Tensor, output_size: int) -> torch.Tensor:
    """Fourier-interpolate ``... x n x n`` raw scores (n even) to ``... x N x N``; zero
    displacement lands at pixel (0, 0)."""
    n = scores.shape[-1]
    spec = torch.fft.rfft2(scores) / (n * n)                       # ... x n x (n/2+1)
    spec = torch.cat((spec[..., n // 2:, :], spec[..., : n // 2 + 1, :]), dim=-2)   # ky = -n/2 .. n/2
    py, px, rows = _device_constants(n, output_size, spec.device, spec.dtype)
    spec = spec * py
    spec = spec * px
    full = spec.new_zeros(spec.shape[:-2] + (output_size, output_size // 2 + 1))
    full[..., rows, : n // 2 + 1] = spec
    return torch.fft.irfft2(full, s=(output_size, output_size)) * float(output_size * output_size)


@lru_cache(maxsize=8)
def _hann1d_uncentred(size: int) -> torch.Tensor:
    half = 0.5 * (1 + torch.cos((2 * math.pi / (size + 2)) * torch.arange(0, size // 2 + 1).float()))
    return torch.cat([half, half[1:size - size // 2].flip((0,))])


def output_window(size: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Hann window with its peak at pixel (0, 0) (wrapped), float32-accurate."""
    with host_side():
        w = _hann1d_uncentred(size)
        window = (w.view(-1, 1) * w.view(1, -1)).to(dtype)
    return upload(window, device)
