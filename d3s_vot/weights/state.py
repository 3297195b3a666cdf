"""What a D3S state dict must look like, and the one check every loaded state dict goes through.

Whatever the source file (pack, the authors' checkpoint, torchvision's file, a training
checkpoint), its tensors are checked here against the model's exact keys and shapes, so a wrong or
damaged network is rejected with a message instead of failing later inside the tracker.
"""
from __future__ import annotations

from typing import Any, Dict, Iterable, Mapping, Tuple

import torch

from .container import D3SWeights
from .errors import WeightsError

MIXER_KEY = "segm_predictor.mixer.0.weight"


def expected_segm_shapes() -> Dict[str, Tuple[int, ...]]:
    """Key -> shape of :class:`SegmNet`'s state dict (built on the meta device: no memory, no init cost)."""
    from d3s_vot.model import SegmNet
    with torch.device("meta"):
        net = SegmNet()
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


def expected_backbone_shapes() -> Dict[str, Tuple[int, ...]]:
    """Key -> shape of torchvision's ResNet-50 state dict (the DCF backbone)."""
    from d3s_vot.model import ResNet50Trunk
    with torch.device("meta"):
        net = ResNet50Trunk()
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


def is_counter(key: str) -> bool:
    """BatchNorm's ``num_batches_tracked`` (an int64 counter, not a parameter)."""
    return key.endswith("num_batches_tracked")


def count_parameters(state: Mapping[str, torch.Tensor]) -> int:
    """Number of values in a state dict, BatchNorm counters excluded."""
    return sum(v.numel() for k, v in state.items() if not is_counter(k))


def few(items: Iterable[str], n: int = 5) -> str:
    """The first ``n`` items, comma-separated, and how many more there are (for error messages)."""
    items = list(items)
    text = ", ".join(items[:n])
    return text + (f" (and {len(items) - n} more)" if len(items) > n else "")


def strip_module_prefix(state: Mapping[str, Any]) -> Dict[str, Any]:
    """Remove the ``module.`` prefix that DataParallel/DDP put on every key."""
    if state and all(k.startswith("module.") for k in state):
        return {k[len("module."):]: v for k, v in state.items()}
    return dict(state)


def conform_state(state: Mapping[str, Any], expected: Mapping[str, Tuple[int, ...]], what: str,
                  source: str) -> Dict[str, torch.Tensor]:
    """Check keys and shapes exactly; return float32 tensors (int64 BN counters), in ``expected``'s order.

    Missing ``num_batches_tracked`` counters (files from PyTorch < 0.4.1) are filled with 0.
    """
    state = strip_module_prefix(state)
    not_tensors = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise WeightsError(f"{source}: not a {what} state dict: entries that are not tensors: {few(not_tensors)}")
    missing = [k for k in expected if k not in state and not is_counter(k)]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys, e.g. {few(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys, e.g. {few(unexpected)}")
        raise WeightsError(f"{source}: not a {what} state dict: " + "; ".join(parts))
    wrong = [f"{k} {tuple(state[k].shape)} (expected {shape})" for k, shape in expected.items()
             if k in state and tuple(state[k].shape) != shape]
    if wrong:
        raise WeightsError(f"{source}: {what} tensors with the wrong shape: {few(wrong, 4)}")
    out: Dict[str, torch.Tensor] = {}
    for key in expected:
        if is_counter(key):
            value = state.get(key, torch.tensor(0, dtype=torch.int64))
            out[key] = value.detach().to("cpu", torch.int64).clone()
            continue
        value = state[key]
        if not value.is_floating_point():
            raise WeightsError(f"{source}: {what} tensor {key} has dtype {value.dtype}, expected floating point")
        out[key] = value.detach().to("cpu", torch.float32).contiguous().clone()
    return out


def check_segm_state(state: Mapping[str, Any], source: str) -> Dict[str, torch.Tensor]:
    """Validate a SegmNet state dict (411 keys, exact shapes); reject the distance-map-less variant."""
    mixer = strip_module_prefix(state).get(MIXER_KEY)
    if isinstance(mixer, torch.Tensor) and mixer.dim() == 4 and mixer.shape[1] == 2:
        raise WeightsError(
            f"{source}: {MIXER_KEY} has 2 input channels: this segmentation network was trained without "
            "the distance map, so it is not D3S's network (D3S's mixer takes 3 channels: foreground "
            "probability, foreground similarity, distance map)")
    return conform_state(state, expected_segm_shapes(), "D3S segmentation network (SegmNet)", source)


def check_backbone_state(state: Mapping[str, Any], source: str) -> Dict[str, torch.Tensor]:
    """Validate a torchvision ResNet-50 state dict."""
    return conform_state(state, expected_backbone_shapes(), "torchvision ResNet-50", source)


def checked_weights(segm_state: Mapping[str, Any], backbone_state: Mapping[str, Any], segm_source: str,
                    backbone_source: str, metadata: Mapping[str, str]) -> D3SWeights:
    """Both state dicts checked (:class:`WeightsError` naming ``*_source``), as one :class:`D3SWeights`."""
    return D3SWeights(check_segm_state(segm_state, segm_source),
                      check_backbone_state(backbone_state, backbone_source), dict(metadata))
