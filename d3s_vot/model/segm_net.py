"""The full segmentation network: ResNet-50 trunk + D3S head, keyed like the authors' checkpoint."""
from __future__ import annotations

from typing import List

import torch
from torch import nn

from .backbone import ResNet50Trunk
from .segm_head import SegmHead

SEGM_TAPS = ("conv1", "layer1", "layer2", "layer3")


class SegmNet(nn.Module):
    """``feature_extractor`` (ResNet-50, torchvision names) + ``segm_predictor`` (:class:`SegmHead`).

    ``net(train_imgs, test_imgs, train_masks, test_dist)`` gives logits B x 2 x H x W. Images are
    ImageNet-normalised RGB; masks are in [0, 1]; ``test_dist`` is the distance map in pixels.
    """

    def __init__(self, topk: int = 3) -> None:
        super().__init__()
        self.feature_extractor = ResNet50Trunk()
        self.segm_predictor = SegmHead(topk, topk)

    def extract_backbone_features(self, images: torch.Tensor) -> List[torch.Tensor]:
        taps = self.feature_extractor(images, SEGM_TAPS)
        return [taps[name] for name in SEGM_TAPS]

    def forward(self, train_imgs: torch.Tensor, test_imgs: torch.Tensor, train_masks: torch.Tensor,
                test_dist: torch.Tensor) -> torch.Tensor:
        train_feats = self.extract_backbone_features(train_imgs)
        test_feats = self.extract_backbone_features(test_imgs)
        return self.segm_predictor(test_feats, train_feats, train_masks, test_dist)
