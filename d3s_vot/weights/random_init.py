"""Deterministic untrained weights, for tests and demos that must run offline without the real files.

The rule is the documented one of the parity fixtures' ``make_weights.py`` (bit for bit), so the
numbers here must not change; tracking with these weights is meaningless.
"""
from __future__ import annotations

import math
import zlib
from typing import Dict, Mapping, Tuple

import numpy as np
import torch

from .container import D3SWeights
from .pack import PACK_FORMAT
from .state import MIXER_KEY, expected_backbone_shapes, expected_segm_shapes

RANDOM_NOTE = "random weights: for tests and demos only; tracking quality is meaningless"


def _uniform(seed: int, seed_name: str, shape: Tuple[int, ...], lo: float, hi: float) -> np.ndarray:
    """float64 U(lo, hi) from a PCG64 stream keyed by (seed, crc32(seed_name)): stable across numpy versions."""
    n = int(np.prod(shape)) if shape else 1
    bits = np.random.PCG64(np.random.SeedSequence([int(seed), zlib.crc32(seed_name.encode("utf-8"))]))
    raw = np.asarray(bits.random_raw(n), dtype=np.uint64) if n else np.zeros(0, np.uint64)
    raw >>= np.uint64(11)
    u = raw.astype(np.float64)
    u *= 2.0 ** -53
    u *= hi - lo
    u += lo
    return u.reshape(shape)


def _f32(values: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(values.astype(np.float32)))


def _random_resnet(seed: int, shapes: Mapping[str, Tuple[int, ...]], stats_ns: str,
                   shared: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """ResNet-50 tensors; conv/fc weights and BN affine are cached in ``shared`` (same in both backbones)."""
    out: Dict[str, torch.Tensor] = {}
    for key, shape in shapes.items():
        module, _, leaf = key.rpartition(".")
        if leaf == "num_batches_tracked":
            out[key] = torch.tensor(0, dtype=torch.int64)
        elif leaf in ("running_mean", "running_var"):
            lo, hi = (-0.1, 0.1) if leaf == "running_mean" else (0.5, 1.5)
            out[key] = _f32(_uniform(seed, f"{stats_ns}/{key}", shape, lo, hi))
        else:
            if key not in shared:
                if len(shape) == 4:
                    gain = 0.2 if module.endswith(".conv3") else 1.0
                    a = gain * math.sqrt(6.0 / int(np.prod(shape[1:])))
                    lo, hi = -a, a
                elif module == "fc":
                    a = math.sqrt(1 / 2048.0) if leaf == "weight" else 0.01
                    lo, hi = -a, a
                else:  # BatchNorm affine
                    lo, hi = (0.5, 1.5) if leaf == "weight" else (-0.1, 0.1)
                shared[key] = _f32(_uniform(seed, key, shape, lo, hi))
            out[key] = shared[key].clone()
    return out


def _random_head(seed: int, shapes: Mapping[str, Tuple[int, ...]]) -> Dict[str, torch.Tensor]:
    out: Dict[str, torch.Tensor] = {}
    for key, shape in shapes.items():
        leaf = key.rpartition(".")[2]
        if leaf == "num_batches_tracked":
            out[key] = torch.tensor(0, dtype=torch.int64)
            continue
        if len(shape) == 4:
            a = math.sqrt(6.0 / int(np.prod(shape[1:])))
            values = _uniform(seed, key, shape, -a, a)
            if key == MIXER_KEY:
                values[:, 2] *= 0.01  # the distance-map channel holds values up to ~271
        elif key.endswith(".0.bias"):
            values = _uniform(seed, key, shape, -0.1, 0.1)
        else:
            lo, hi = {"weight": (0.5, 1.5), "bias": (-0.1, 0.1), "running_mean": (-0.1, 0.1),
                      "running_var": (0.5, 1.5)}[leaf]
            values = _uniform(seed, key, shape, lo, hi)
        out[key] = _f32(values)
    return out


def random_weights(seed: int = 0) -> D3SWeights:
    """Deterministic untrained weights (offline, about a second), for tests and demos only.

    Follows the documented rule of the parity fixtures' ``make_weights.py`` (Kaiming-uniform convs,
    gain 0.2 on each residual branch's last conv, BN affine U(0.5, 1.5) / U(-0.1, 0.1)), so
    ``random_weights(s)`` equals its ``segm_state(s)`` and ``dcf_backbone_state(s)`` bit for bit. As in
    the real D3S, both backbones share conv weights and differ in their BN running statistics.
    """
    segm_shapes = expected_segm_shapes()
    trunk = {k[len("feature_extractor."):]: s for k, s in segm_shapes.items() if k.startswith("feature_extractor.")}
    shared: Dict[str, torch.Tensor] = {}
    backbone = _random_resnet(seed, expected_backbone_shapes(), "dcf", shared)
    segm = {"feature_extractor." + k: v for k, v in _random_resnet(seed, trunk, "segm", shared).items()}
    segm.update(_random_head(seed, {k: s for k, s in segm_shapes.items() if k.startswith("segm_predictor.")}))
    segm = {k: segm[k] for k in segm_shapes}
    metadata = {"format": PACK_FORMAT, "segm_source": f"random_weights(seed={seed})",
                "backbone_source": f"random_weights(seed={seed})", "notes": RANDOM_NOTE}
    return D3SWeights(segm, backbone, metadata)
