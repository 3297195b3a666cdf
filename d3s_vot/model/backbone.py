"""ResNet-50 trunk that returns the intermediate feature maps D3S uses.

Module names (and so state-dict keys) are exactly torchvision's ``resnet50``, so torchvision's
ImageNet checkpoints and the ``feature_extractor.*`` part of the D3S checkpoint load unchanged.
Only the requested taps are computed: the forward pass stops after the deepest one.
"""
from __future__ import annotations

from typing import Callable, Dict, Sequence

import torch
from torch import nn
from torchvision.models.resnet import Bottleneck, ResNet

TAP_ORDER = ("conv1", "layer1", "layer2", "layer3", "layer4")


class ResNet50Trunk(ResNet):
    """torchvision ResNet-50 whose forward returns named taps instead of class scores.

    Tap ``conv1`` is conv1 -> bn1 -> ReLU *before* the max-pool (stride 2); ``layer1`` .. ``layer3``
    are the residual stages (strides 4, 8, 16).
    """

    def __init__(self) -> None:
        super().__init__(Bottleneck, [3, 4, 6, 3])

    def forward(self, x: torch.Tensor, taps: Sequence[str] = ("conv1", "layer1", "layer2", "layer3")
                ) -> Dict[str, torch.Tensor]:
        return run_taps(x, taps, lambda t: self.relu(self.bn1(self.conv1(t))), self.maxpool,
                        lambda name, t: getattr(self, name)(t))


def run_taps(x: torch.Tensor, taps: Sequence[str], stem: Callable[[torch.Tensor], torch.Tensor],
             pool: Callable[[torch.Tensor], torch.Tensor], stage: Callable[[str, torch.Tensor], torch.Tensor]
             ) -> Dict[str, torch.Tensor]:
    """The trunk's tap logic, shared by every way of running it: ``stem`` (conv1 + ReLU, the
    ``conv1`` tap), ``pool``, then ``stage(name, x)`` for layer1.. until the deepest wanted tap."""
    wanted = set(taps)
    unknown = wanted.difference(TAP_ORDER)
    if unknown:
        raise ValueError(f"unknown feature taps {sorted(unknown)}; choose from {TAP_ORDER}")
    out: Dict[str, torch.Tensor] = {}
    x = stem(x)
    if "conv1" in wanted:
        out["conv1"] = x
    x = pool(x)
    for name in TAP_ORDER[1:]:
        if len(out) == len(wanted):
            break
        x = stage(name, x)
        if name in wanted:
            out[name] = x
    return out


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
