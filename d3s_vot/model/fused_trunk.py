"""CPU inference form of a BatchNorm-folded ResNet-50 trunk: each convolution runs as one oneDNN
call with its ReLU (and, at the end of a bottleneck, the residual add) fused in, on weights
reordered once into oneDNN's blocked layout.

This is the same oneDNN convolution the module path calls; it only drops the separate ReLU/add passes
and the per-call weight reordering: ~7% faster at 256x256 and ~3% at 384x384 on a 2-core AVX2 CPU.
With 2 threads on the development machine the outputs are bit-identical to the folded module's; with
other thread counts oneDNN may choose another kernel for one of the two paths, and they differ by
float32 rounding (~2e-6 relative at layer3). It uses
``torch.ops.mkldnn._convolution_pointwise`` (the kernels torch.compile's CPU backend calls);
:func:`fused_trunk` falls back to the module when that operator is missing or refuses to run.
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import torch
from torch import nn

from .backbone import ResNet50Trunk, run_taps


def _conv_args(conv: nn.Conv2d) -> Tuple[list, list, list, int]:
    return list(conv.padding), list(conv.stride), list(conv.dilation), conv.groups


class FusedTrunk(nn.Module):
    """Wraps a folded :class:`ResNet50Trunk` (no BatchNorm left); same call signature and taps."""

    def __init__(self, trunk: ResNet50Trunk) -> None:
        super().__init__()
        if any(isinstance(m, nn.BatchNorm2d) for m in trunk.modules()):
            raise ValueError("FusedTrunk needs a trunk with its BatchNorm folded (d3s_vot.model.fold_batchnorm)")
        self.trunk = trunk
        self._packed: Dict[Tuple[int, Tuple[int, ...]], torch.Tensor] = {}

    def _weight(self, conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
        key = (id(conv), tuple(x.shape))
        packed = self._packed.get(key)
        if packed is None:
            padding, stride, dilation, groups = _conv_args(conv)
            packed = torch.ops.mkldnn._reorder_convolution_weight(conv.weight, padding, stride, dilation, groups,
                                                                  list(x.shape))
            self._packed[key] = packed
        return packed

    def _conv(self, conv: nn.Conv2d, x: torch.Tensor, relu: bool) -> torch.Tensor:
        padding, stride, dilation, groups = _conv_args(conv)
        return torch.ops.mkldnn._convolution_pointwise(x, self._weight(conv, x), conv.bias, padding, stride, dilation,
                                                       groups, "relu" if relu else "none", [], "")

    def _conv_add_relu(self, conv: nn.Conv2d, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        padding, stride, dilation, groups = _conv_args(conv)
        return torch.ops.mkldnn._convolution_pointwise.binary(x, residual, self._weight(conv, x), conv.bias, padding,
                                                              stride, dilation, groups, "add", 1.0, "relu", [], "")

    def _bottleneck(self, block, x: torch.Tensor) -> torch.Tensor:
        out = self._conv(block.conv1, x, relu=True)
        out = self._conv(block.conv2, out, relu=True)
        residual = x if block.downsample is None else self._conv(block.downsample[0], x, relu=False)
        return self._conv_add_relu(block.conv3, out, residual)

    def _stem(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv(self.trunk.conv1, x.contiguous(memory_format=torch.channels_last), relu=True)

    def _stage(self, name: str, x: torch.Tensor) -> torch.Tensor:
        for block in getattr(self.trunk, name):
            x = self._bottleneck(block, x)
        return x

    def forward(self, x: torch.Tensor, taps: Sequence[str] = ("conv1", "layer1", "layer2", "layer3")
                ) -> Dict[str, torch.Tensor]:
        if torch.is_grad_enabled():
            return self.trunk(x, taps)              # the fused operators are for inference only
        return run_taps(x, taps, self._stem, self.trunk.maxpool, self._stage)


def fused_trunk(trunk: ResNet50Trunk, device: torch.device, dtype: torch.dtype) -> Optional[FusedTrunk]:
    """A :class:`FusedTrunk` for a folded trunk when the fused oneDNN operators run here (CPU,
    float32), else None. The check runs one tiny fused convolution against the module path."""
    if device.type != "cpu" or dtype != torch.float32 or not torch.backends.mkldnn.is_available():
        return None
    try:
        fused = FusedTrunk(trunk)
        gen = torch.Generator().manual_seed(0)          # leaves torch's global RNG alone
        probe = nn.Conv2d(3, 4, 3, padding=1, device="meta").to_empty(device="cpu").to(dtype).eval()
        x = torch.randn(1, 3, 8, 8, generator=gen).to(dtype).contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            probe.weight.copy_(torch.randn(probe.weight.shape, generator=gen))
            probe.bias.copy_(torch.randn(probe.bias.shape, generator=gen))
            ok = torch.allclose(fused._conv(probe, x, relu=True), torch.relu(probe(x)), rtol=1e-5, atol=1e-5)
        fused._packed.clear()
    except (RuntimeError, AttributeError, ValueError):
        return None
    return fused if ok else None
