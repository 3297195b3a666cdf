"""Names and places of weight files: what the files are called and where the package looks for them.

Kept apart (and free of torch) so that every other module, and callers such as the demo, agree on
one set of names.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union

PathLike = Union[str, os.PathLike]

PACK_NAME = "d3s.safetensors"
SEGM_FILE_NAME = "SegmNet.pth.tar"
BACKBONE_FILE_NAMES = ("resnet50-0676ba61.pth", "resnet50-19c8e357.pth")
DEFAULT_CACHE_DIR = Path("~/.cache/d3s_vot").expanduser()
WEIGHTS_ENV = "D3S_WEIGHTS"


def default_cache_dir() -> Path:
    """``~/.cache/d3s_vot``, evaluated now (so a changed ``HOME`` is honoured)."""
    return Path("~/.cache/d3s_vot").expanduser()


def cache_dir_or_default(cache_dir: Optional[PathLike]) -> Path:
    """``cache_dir`` (``~`` expanded), or :func:`default_cache_dir` when it is None."""
    return Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
