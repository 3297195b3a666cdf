"""Reading the two original files: the authors' ``SegmNet.pth.tar`` and torchvision's ResNet-50.

These are pickles written by other software, so they go through the restricted unpickler (the
torchvision file first through ``weights_only``); the state dict is then found inside the file's
layout and checked. A safetensors file is accepted too (one section of a pack, or a bare dict).
"""
from __future__ import annotations

import warnings
from typing import Any, Dict, Mapping

import torch

from .errors import WHERE_BACKBONE, WHERE_SEGM, WeightsError, require_file
from .files import PathLike
from .pack import BACKBONE_PREFIX, SEGM_PREFIX, is_safetensors, pack_section, read_safetensors
from .state import check_backbone_state, check_segm_state
from .unpickler import torch_load_restricted


def state_dict_of(obj: Any, source: str) -> Mapping[str, Any]:
    """The state dict inside a loaded checkpoint: ``net`` (the authors' trainer), ``state_dict``, or itself."""
    if isinstance(obj, Mapping):
        for key in ("net", "state_dict", "model"):
            if isinstance(obj.get(key), Mapping):
                return obj[key]
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return obj
    raise WeightsError(f"{source}: no state dict found (expected a dict of tensors, or a checkpoint with a "
                       "'net' entry like the authors' SegmNet.pth.tar)")


def segm_state_of(obj: Any, source: str) -> Dict[str, torch.Tensor]:
    """The checked SegmNet state dict of an already-loaded checkpoint object."""
    return check_segm_state(state_dict_of(obj, source), source)


def load_segm_checkpoint(path: PathLike) -> Dict[str, torch.Tensor]:
    """SegmNet state dict from the authors' ``SegmNet.pth.tar``, a plain state-dict file, or a safetensors file."""
    path = require_file(path, "segmentation network weights", WHERE_SEGM)
    if is_safetensors(path):
        return check_segm_state(pack_section(read_safetensors(path)[0], SEGM_PREFIX), str(path))
    return segm_state_of(torch_load_restricted(path), str(path))


def load_backbone_checkpoint(path: PathLike) -> Dict[str, torch.Tensor]:
    """DCF backbone state dict from a torchvision ResNet-50 file (plain state dict, loaded with ``weights_only``)."""
    path = require_file(path, "DCF backbone weights (ResNet-50)", WHERE_BACKBONE)
    if is_safetensors(path):
        return check_backbone_state(pack_section(read_safetensors(path)[0], BACKBONE_PREFIX), str(path))
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": the fallback below decides
            warnings.simplefilter("ignore")
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception:  # not a plain state dict: fall back to the restricted unpickler (clear errors)
        obj = torch_load_restricted(path)
    return check_backbone_state(state_dict_of(obj, str(path)), str(path))
