"""The one reader of this package's training-checkpoint format (``d3s_vot.train/1``).

The trainer (:mod:`d3s_vot.train.checkpoint`) writes the files and imports its format constant,
detection and weights extraction from here; :func:`~d3s_vot.weights.load_weights` uses the same
functions on the object it has already unpickled, so a checkpoint is read once and recognised by
one rule. Nothing here imports the trainer: the dependency runs train -> weights only.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional

from .container import D3SWeights
from .errors import WeightsError
from .files import PathLike
from .state import checked_weights

#: The ``format`` entry of the checkpoints this version writes and reads.
TRAIN_FORMAT = "d3s_vot.train/1"
#: What every version of the format starts with (a newer file is recognised, then refused clearly).
TRAIN_FORMAT_PREFIX = "d3s_vot.train/"


def training_checkpoint_format(obj: Any) -> Optional[str]:
    """The ``format`` of a loaded checkpoint written by ``d3s_vot.train`` (any version), else None."""
    if isinstance(obj, Mapping):
        fmt = obj.get("format")
        if isinstance(fmt, str) and fmt.startswith(TRAIN_FORMAT_PREFIX):
            return fmt
    return None


def is_training_checkpoint(obj: Any) -> bool:
    """Whether a loaded object is a training checkpoint this version reads (``format`` is :data:`TRAIN_FORMAT`)."""
    return training_checkpoint_format(obj) == TRAIN_FORMAT


def stored_weights(data: Mapping[str, Any], checkpoint_name: str) -> D3SWeights:
    """The tracker weights as stored in a loaded training checkpoint, not checked.

    ``segm_state`` is ``net`` (the trained segmentation net, its backbone BN statistics as
    re-estimated in training), ``backbone_state`` the ImageNet ResNet-50 the run started from (the
    DCF backbone); metadata: the checkpoint's own plus ``source``, ``checkpoint`` (the file name) and
    ``epoch``. A missing entry raises ``KeyError`` naming it.
    """
    metadata = {str(k): str(v) for k, v in data.get("metadata", {}).items()}
    metadata.update({"source": "d3s_vot.train", "checkpoint": checkpoint_name, "epoch": str(data["epoch"])})
    return D3SWeights(segm_state=dict(data["net"]), backbone_state=dict(data["backbone_state"]),
                      metadata=metadata)


def weights_from_training_checkpoint(data: Any, path: PathLike) -> D3SWeights:
    """Checked tracker weights of the training checkpoint ``data``, already loaded from ``path``.

    Raises :class:`WeightsError` for another format version, a missing entry, or wrong keys/shapes.
    """
    path = Path(path)
    fmt = training_checkpoint_format(data)
    if fmt != TRAIN_FORMAT:
        raise WeightsError(f"{path}: training checkpoint format {fmt!r} is not supported "
                           f"(this version of d3s_vot reads {TRAIN_FORMAT!r})")
    try:
        weights = stored_weights(data, path.name)
    except KeyError as exc:
        raise WeightsError(f"{path}: incomplete training checkpoint, no entry {exc}") from None
    return checked_weights(weights.segm_state, weights.backbone_state, f"{path} [net]", f"{path} [backbone_state]",
                           {**weights.metadata, "loaded_from": str(path)})
