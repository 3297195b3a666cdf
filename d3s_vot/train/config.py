"""Typed training configuration with the paper recipe as default and a CPU smoke preset.

Everything that changes the numbers a run produces lives in :class:`TrainConfig` (it is stored in every
checkpoint and a resumed run uses it). Things that do not change the results (paths, worker count,
progress bars) are command-line options of :mod:`d3s_vot.train.__main__` only.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

BN_MODES = ("train", "frozen")


@dataclass(frozen=True)
class TrainConfig:
    """The D3S segmentation-head training recipe (defaults: the paper's ``segm_default``)."""

    # --- schedule ---------------------------------------------------------------------------------
    epochs: int = 40
    iterations: int = 1000            # optimiser steps per epoch
    batch_size: int = 64              # global batch, split evenly across DDP ranks
    lr: float = 1e-3                  # Adam, head parameters only, no weight decay
    lr_step_epochs: int = 15          # lr = lr * gamma ** (epoch // step): 1e-3, 2e-4 from 15, 4e-5 from 30
    lr_gamma: float = 0.2
    seed: int = 0
    # --- validation -------------------------------------------------------------------------------
    val_pairs: int = 640              # pairs per validation (only with a validation list)
    val_every: int = 10               # validate after every N-th epoch (and after the last one)
    # --- pair sampling ----------------------------------------------------------------------------
    max_gap: int = 50                 # test frame within +-max_gap frame indices of the train frame
    gap_increase: int = 5             # window widening when no visible frame is found
    min_frames: int = 20              # sequences shorter than this are never sampled
    min_visible: int = 5              # ... nor those with fewer visible frames
    # --- crops ------------------------------------------------------------------------------------
    search_area_factor: float = 4.0
    output_size: int = 384            # fixed by the network (24x24 GIM grid at stride 16)
    scale_jitter: float = 0.25        # test box size *= exp(N(0,1) * scale_jitter) per axis
    center_jitter: float = 1.5        # test box centre += U(-.5,.5) * center_jitter * sqrt(area)
    dist_jitter: float = 0.125        # distance-map centre += U(-1,1) * dist_jitter * (w, h)
    box_mask_prob: float = 0.005      # train mask replaced by its box mask, test sample by the train one
    brightness_jitter: float = 0.2    # each image * U(1 - b, 1 + b)
    # --- model ------------------------------------------------------------------------------------
    backbone_bn_mode: str = "train"   # "train": re-estimate backbone BN stats (original); "frozen": keep ImageNet
    amp: bool = True                  # mixed precision (CUDA only; ignored on CPU)

    def __post_init__(self) -> None:
        positive = ("epochs", "iterations", "batch_size", "val_every", "output_size", "min_frames")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.backbone_bn_mode not in BN_MODES:
            raise ValueError(f"backbone_bn_mode must be one of {BN_MODES}, got {self.backbone_bn_mode!r}")
        if self.lr <= 0 or self.lr_step_epochs < 1 or self.lr_gamma <= 0:
            raise ValueError("lr and lr_gamma must be > 0 and lr_step_epochs >= 1")
        if not 0.0 <= self.box_mask_prob <= 1.0:
            raise ValueError(f"box_mask_prob must be in [0, 1], got {self.box_mask_prob}")
        if self.val_pairs < 0 or self.max_gap < 0 or self.gap_increase < 1 or self.min_visible < 1:
            raise ValueError("val_pairs and max_gap must be >= 0, gap_increase and min_visible >= 1")

    def lr_for_epoch(self, epoch: int) -> float:
        """Learning rate of 1-based ``epoch`` (the original stepped StepLR at the start of each epoch)."""
        return self.lr * self.lr_gamma ** (epoch // self.lr_step_epochs)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown training config field(s): {', '.join(unknown)}")
        return cls(**dict(values))

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)


PRESETS: dict[str, TrainConfig] = {
    # The published recipe: about 16 h on one V100 for the authors' run.
    "paper": TrainConfig(),
    # A few minutes on a CPU with synthetic data: same network and crops, tiny batches and epochs, a
    # higher learning rate so that the loss visibly falls within 60 steps (lr 5e-3, then 1e-3 from epoch 2).
    "smoke": TrainConfig(epochs=3, iterations=20, batch_size=4, lr=5e-3, lr_step_epochs=2,
                         val_pairs=8, val_every=1, min_frames=8, min_visible=3),
}


def preset(name: str) -> TrainConfig:
    """The named preset (``paper`` or ``smoke``)."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None
