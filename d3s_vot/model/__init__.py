"""Pure ``nn.Module`` definitions of the D3S networks (no I/O, no tracker logic)."""
from .backbone import ResNet50Trunk
from .fold import fold_batchnorm, fold_conv_bn
from .segm_head import HEAD_LAYOUT, SegmHead, topk_similarity
from .segm_net import SEGM_TAPS, SegmNet

__all__ = ["ResNet50Trunk", "SegmHead", "SegmNet", "HEAD_LAYOUT", "SEGM_TAPS", "topk_similarity",
           "fold_batchnorm", "fold_conv_bn"]
