"""Training of the D3S segmentation head on YouTube-VOS (``python -m d3s_vot.train``).

See ``docs/training.md``. The checkpoint format is described in :mod:`d3s_vot.train.checkpoint`;
:func:`load_checkpoint_weights` turns a checkpoint into tracker weights.
"""
from .checkpoint import FORMAT, CheckpointError, export_weights, load_checkpoint, load_checkpoint_weights
from .config import PRESETS, TrainConfig, preset

__all__ = ["FORMAT", "PRESETS", "CheckpointError", "TrainConfig", "export_weights", "load_checkpoint",
           "load_checkpoint_weights", "preset"]
