"""Compute floors: the least time the DCF optimisations can take on this machine.

The joint Gauss-Newton (initialisation) and the filter CG (updates) are chains of matrix products
whose number and shapes the algorithm fixes: each CG iteration needs the previous one's result, so
they cannot be merged into fewer, larger products. Their floating-point work, counted on the
tracker's own call with torch's ``FlopCounterMode`` (matrix products and convolutions; element-wise
work and eigensolvers are not counted), divided by the best rate this machine reaches on large
square products in the same precision, is a time that no implementation of the same algorithm in
the same precision can beat. The bench prints these floors next to the measured times, and the
init floor (the tracker's own trunk passes plus the DCF floors) as a ratio to the init bound, so a
target above what the hardware allows shows up as such.
"""
from __future__ import annotations

from typing import Callable, Dict, Iterable, Tuple

import torch
from torch.utils.flop_counter import FlopCounterMode

PEAK_SIZES_CPU = (1024, 1536)
PEAK_SIZES_CUDA = (4096,)


def counted_flops(fn: Callable[[], object]) -> float:
    """Floating-point operations of the matrix products and convolutions ``fn`` runs (2 per
    multiply-add), as torch dispatches them."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def peak_sizes(device: torch.device) -> Tuple[int, ...]:
    return PEAK_SIZES_CUDA if device.type == "cuda" else PEAK_SIZES_CPU


def matmul_peak_gflops(dtype: torch.dtype, device: torch.device,
                       measure: Callable[[Callable[[], object]], float],
                       sizes: Iterable[int] = ()) -> float:
    """Best GFLOP/s of torch's matrix product on square n x n matrices (the shape BLAS runs most
    efficiently); ``measure`` returns the milliseconds of one call (e.g. a median of several).
    Constant operands: the values do not change the speed, and no random numbers are drawn."""
    best = 0.0
    for n in tuple(sizes) or peak_sizes(device):
        a = torch.full((n, n), 0.5, dtype=dtype, device=device)
        b = torch.full((n, n), 0.25, dtype=dtype, device=device)
        ms = measure(lambda: torch.mm(a, b))
        best = max(best, 2.0 * n ** 3 / (ms * 1e6))
    return best


def floor_ms(flops: float, gflops: float) -> float:
    """Milliseconds ``flops`` take at ``gflops`` GFLOP/s."""
    return flops / (gflops * 1e6)


def dcf_floors(flops: Dict[str, float], dcf_gflops: float, cov_gflops: float) -> Dict[str, float]:
    """Floor (ms) of each counted DCF stage: the joint Gauss-Newton and the filter CG run in the
    DCF dtype, the PCA covariance in the tracker's dtype (``cov_gflops``)."""
    return {name: floor_ms(value, cov_gflops if name == "pca" else dcf_gflops) for name, value in flops.items()}
