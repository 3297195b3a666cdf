"""The in-memory result of every loader: :class:`D3SWeights` (the tracker's two state dicts + provenance).

Its own module because every reader (pack, authors' files, training checkpoints, random weights)
returns it and the tracker consumes it; it depends on nothing else in the package.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict

import torch


@dataclass(frozen=True)
class D3SWeights:
    """Everything the tracker needs, as CPU tensors.

    segm_state: :class:`d3s_vot.model.SegmNet` state dict (the authors' checkpoint keys).
    backbone_state: the DCF's ResNet-50 (:class:`d3s_vot.model.ResNet50Trunk`, torchvision keys).
    metadata: provenance (source files, sha256s, format version, notes), all strings.
    """

    segm_state: Dict[str, torch.Tensor]
    backbone_state: Dict[str, torch.Tensor]
    metadata: Dict[str, str] = field(default_factory=dict)
