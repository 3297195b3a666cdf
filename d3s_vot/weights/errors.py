"""The one exception of the weights package and the texts that tell a user where to get the files.

Every user-facing problem (missing file, unsafe pickle, wrong network) is a :class:`WeightsError`
whose message says what to do; the "where to get them" texts live here so that all messages match.
"""
from __future__ import annotations

from pathlib import Path

from .files import SEGM_FILE_NAME, PathLike

D3S_URL = "https://github.com/alanlukezic/d3s"
WHERE_SEGM = (f"{SEGM_FILE_NAME} is the authors' pre-trained segmentation network: follow the "
              f"'Download the pre-trained network' link in the README of {D3S_URL}")
WHERE_BACKBONE = ("the DCF backbone is torchvision's ResNet-50 ResNet50_Weights.IMAGENET1K_V1 "
                  "(resnet50-0676ba61.pth): on a machine with internet run "
                  "python -c \"import torchvision; torchvision.models.resnet50(weights='IMAGENET1K_V1')\" "
                  "and copy ~/.cache/torch/hub/checkpoints/resnet50-0676ba61.pth")
HOW_TO_PACK = ("then pack both once: python -m d3s_vot.weights pack --segm SegmNet.pth.tar "
               "--backbone resnet50-0676ba61.pth --out ~/.cache/d3s_vot/d3s.safetensors "
               "(see docs/weights.md)")


class WeightsError(Exception):
    """A user-facing problem with weight files (missing, unsafe, wrong network); the message says what to do."""


def require_file(path: PathLike, what: str, where: str) -> Path:
    """``path`` (``~`` expanded) when it is a file; else a :class:`WeightsError` naming ``what`` and ``where``."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsError(f"{what} not found: {path} ({where})")
    return path
