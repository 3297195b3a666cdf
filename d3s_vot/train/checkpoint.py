"""The training checkpoint format ``d3s_vot.train/1`` and its conversion to tracker weights.

One ``torch.save`` dict per epoch, loadable with ``torch.load(..., weights_only=True)`` (only tensors
and plain Python values inside). Keys:

==================  =================================================================================
``format``          ``"d3s_vot.train/1"``
``net``             state dict of :class:`d3s_vot.model.SegmNet` (``feature_extractor.*`` with the BN
                    statistics re-estimated in training, ``segm_predictor.*``): the tracker's segm net
``backbone_state``  the ImageNet ResNet-50 state dict (torchvision keys) the run started from: the
                    tracker's DCF backbone, unchanged by training
``optimizer``       Adam state dict (head parameters only)
``scaler``          ``torch.amp.GradScaler`` state dict, or ``None`` without AMP
``scheduler``       ``{"epoch": e, "lr": lr}``: the step schedule is a function of the epoch
``epoch``           last completed epoch (1-based); a resumed run continues with ``epoch + 1``
``iteration``       optimiser steps done in total
``sampler_state``   ``{"epoch": e, "seed": s}``: per-sample generators make this the whole state
``rng_states``      ``{"torch": ByteTensor, "cuda": [ByteTensor, ...]}``
``config``          :meth:`TrainConfig.to_dict`
``metadata``        strings: backbone source, world size, package version ...
``history``         list of per-epoch stats dicts
==================  =================================================================================
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

# the format is read by d3s_vot.weights (load_weights accepts checkpoints): its constant, detection and
# weights extraction live there, and this module imports them (never the other way round)
from d3s_vot.weights import D3SWeights, save_pack
from d3s_vot.weights.train_checkpoint import TRAIN_FORMAT as FORMAT
from d3s_vot.weights.train_checkpoint import is_training_checkpoint, weights_from_training_checkpoint
from d3s_vot.common.cli import UserError

CHECKPOINT_GLOB = "checkpoint-epoch*.pth"


class CheckpointError(UserError):
    """A file that is not a readable ``d3s_vot.train`` checkpoint."""


def checkpoint_name(epoch: int) -> str:
    return f"checkpoint-epoch{epoch:04d}.pth"


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` to a temporary file next to ``path``, then rename over it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)   # mkstemp makes it private
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load and check a training checkpoint (safe ``weights_only`` unpickling)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for foreign/corrupt files
        raise CheckpointError(f"{path} is not a readable d3s_vot training checkpoint ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    if not is_training_checkpoint(data):
        raise CheckpointError(f"{path} is not a d3s_vot training checkpoint (no format '{FORMAT}')")
    return data


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The checkpoint of the highest epoch in ``run_dir`` (None when there is none)."""
    found = sorted(Path(run_dir).glob(CHECKPOINT_GLOB))
    return found[-1] if found else None


def prune_checkpoints(run_dir: str | Path, keep_last: int) -> None:
    """Delete all but the ``keep_last`` newest checkpoints (0 keeps everything)."""
    if keep_last <= 0:
        return
    for old in sorted(Path(run_dir).glob(CHECKPOINT_GLOB))[:-keep_last]:
        old.unlink(missing_ok=True)


def load_checkpoint_weights(path: str | Path) -> D3SWeights:
    """The tracker weights (:class:`d3s_vot.weights.D3SWeights`) in a training checkpoint.

    ``segm_state`` is the trained segmentation net (its backbone BN statistics as re-estimated during
    training), ``backbone_state`` the ImageNet ResNet-50 used as the DCF backbone (see
    :func:`d3s_vot.weights.train_checkpoint.stored_weights`), checked like every loaded weights file: an
    incomplete checkpoint or one with wrong keys/shapes raises ``WeightsError``.
    """
    return weights_from_training_checkpoint(load_checkpoint(path), path)


def export_weights(checkpoint_path: str | Path, out_path: str | Path) -> Path:
    """Write the single-file weights pack (``d3s.safetensors``) of a training checkpoint."""
    weights = load_checkpoint_weights(checkpoint_path)
    save_pack(weights, out_path)
    return Path(out_path)


def read_checkpoint_config(path: str | Path) -> dict:
    """The ``config`` dict of a checkpoint, without reading its tensors (memory-mapped load)."""
    path = Path(path)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:
        raise CheckpointError(f"{path} is not a readable d3s_vot training checkpoint ({type(exc).__name__})") from None
    if not is_training_checkpoint(data):
        raise CheckpointError(f"{path} is not a d3s_vot training checkpoint (no format '{FORMAT}')")
    return dict(data["config"])
