"""Human-readable summaries of weights and checkpoints, for ``python -m d3s_vot.weights inspect``.

Separate from the CLI so that the summaries can be used (and tested) without argparse.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Mapping

import torch

from .authors import state_dict_of
from .container import D3SWeights
from .state import MIXER_KEY, count_parameters, strip_module_prefix
from .unpickler import InertObject, torch_load_restricted


def compare_backbones(weights: D3SWeights) -> Dict[str, bool]:
    """Whether the segmentation backbone's conv weights / BN statistics equal the DCF backbone's."""
    segm = {k[len("feature_extractor."):]: v for k, v in weights.segm_state.items()
            if k.startswith("feature_extractor.")}
    backbone = weights.backbone_state

    def same(pred) -> bool:
        return all(torch.equal(segm[k], backbone[k]) for k in backbone if pred(k))

    return {
        "conv_weights_equal": same(lambda k: backbone[k].dim() == 4),
        "bn_stats_equal": same(lambda k: k.endswith(("running_mean", "running_var"))),
    }


def _mixer_line(state: Mapping[str, torch.Tensor]) -> List[str]:
    mixer = state.get(MIXER_KEY)
    return [] if mixer is None else [f"mixer input channels: {mixer.shape[1]} (D3S: 3)"]


def describe(weights: D3SWeights) -> List[str]:
    """Human-readable summary lines (used by ``inspect``)."""
    segm, backbone = weights.segm_state, weights.backbone_state
    lines = [f"segmentation network: {len(segm)} tensors, {count_parameters(segm):,} parameters",
             f"DCF backbone: {len(backbone)} tensors, {count_parameters(backbone):,} parameters"]
    lines += _mixer_line(segm)
    cmp = compare_backbones(weights)
    lines.append("segmentation backbone conv weights vs DCF backbone: "
                 + ("identical" if cmp["conv_weights_equal"] else "differ"))
    lines.append("segmentation backbone BN statistics vs DCF backbone: "
                 + ("identical (unexpected for the real D3S, whose segmentation training re-estimated them)"
                    if cmp["bn_stats_equal"] else "differ (as expected for D3S)"))
    return lines


def describe_checkpoint(path: Path) -> List[str]:
    """Top-level structure of a pickled checkpoint (read with the restricted unpickler)."""
    obj = torch_load_restricted(path)
    lines = [f"file: {path}", "kind: PyTorch checkpoint (read without executing pickled code)"]
    if isinstance(obj, Mapping) and not all(isinstance(v, torch.Tensor) for v in obj.values()):
        lines.append("top-level keys: " + ", ".join(map(str, obj.keys())))
        for key in ("epoch", "actor_type", "net_type", "format"):
            if key in obj:
                lines.append(f"{key}: {obj[key]}")
        constructor = obj.get("constructor")
        if isinstance(constructor, InertObject) and isinstance(constructor.state, Mapping):
            lines.append("constructor: " + ", ".join(f"{k}={v!r}" for k, v in constructor.state.items()))
    state = strip_module_prefix(state_dict_of(obj, str(path)))
    lines.append(f"state dict: {len(state)} tensors")
    return lines + _mixer_line(state)
