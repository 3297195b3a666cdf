"""The CUDA-only fast paths of the two ResNet trunks: bfloat16 autocast and compiled trunks.

Both are off by default and do nothing on the CPU. ``bf16_trunks`` (part of the fast mode) runs the
trunks' convolutions in bfloat16 (``torch.autocast``) and hands float32 taps to the rest of the
tracker; the DCF and the segmentation head keep the trackers' dtype. ``compile_trunks`` wraps each
trunk in ``torch.compile(mode="reduce-overhead")`` (CUDA graphs: one replay per trunk call; the
input shapes are static, 256x256 and 384x384); the first calls compile and record, so warm up
before timing. Outputs of a CUDA-graph replay are overwritten by the next replay, so they are
cloned before the tracker keeps them. Neither has been measured yet (docs/speed.md).
"""
from __future__ import annotations

import contextlib
from typing import Any, ContextManager

import torch


class TrunkPrecision:
    """``with precision():`` around a trunk call, then ``precision.restore(output, dtype)``."""

    def __init__(self, device: torch.device, bf16: bool):
        self.enabled = bool(bf16) and device.type == "cuda"

    def __call__(self) -> ContextManager[Any]:
        if not self.enabled:
            return contextlib.nullcontext()
        # no cast cache: a CUDA graph may record the trunk call (d3s_vot.tracker.cuda_graphs)
        return torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=False)

    def restore(self, tensor: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """A trunk output in the trackers' dtype (unchanged when bfloat16 is off)."""
        return tensor.to(dtype) if self.enabled else tensor


class _Compiled(torch.nn.Module):
    """A trunk behind ``torch.compile``; its outputs cloned (CUDA-graph buffers are reused)."""

    def __init__(self, trunk: torch.nn.Module):
        super().__init__()
        self.trunk = trunk
        self.compiled = torch.compile(trunk, mode="reduce-overhead", dynamic=False)

    def forward(self, x: torch.Tensor, taps):
        out = self.compiled(x, taps)
        return {name: value.clone() for name, value in out.items()} if isinstance(out, dict) \
            else [value.clone() for value in out]


def compile_trunk(trunk: torch.nn.Module) -> torch.nn.Module:
    return _Compiled(trunk)
