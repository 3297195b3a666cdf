"""Which file to load when, and loading it: ``load_weights`` and its search order (never downloads).

The search order (``$D3S_WEIGHTS``, the cache's pack, the cache's ``SegmNet.pth.tar`` + a ResNet-50
file) is written once, in :func:`_search`; :func:`locate_weights` exposes it so that callers such as
the demo can name the file without re-implementing the order.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch

from .authors import load_backbone_checkpoint, load_segm_checkpoint, segm_state_of
from .container import D3SWeights
from .errors import HOW_TO_PACK, WHERE_BACKBONE, WHERE_SEGM, WeightsError, require_file
from .files import (BACKBONE_FILE_NAMES, PACK_NAME, SEGM_FILE_NAME, WEIGHTS_ENV, PathLike,
                    cache_dir_or_default)
from .pack import PACK_FORMAT, file_sha256, is_safetensors, load_pack
from .train_checkpoint import training_checkpoint_format, weights_from_training_checkpoint
from .unpickler import torch_load_restricted

# which rule of the search order found the file (see _search)
_FROM_ENV = "env"
_CACHED_PACK = "pack"
_CACHED_SEGM = "segm"


# ----------------------------------------------------------------------------------------------
# The DCF backbone file in the caches
# ----------------------------------------------------------------------------------------------

def _backbone_candidates(cache_dir: Path) -> List[Path]:
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    return [d / name for d in (cache_dir, hub) for name in BACKBONE_FILE_NAMES]


def find_backbone_file(cache_dir: Optional[PathLike] = None) -> Optional[Path]:
    """The first torchvision ResNet-50 file in the D3S cache dir or torch hub's checkpoint dir."""
    cache = cache_dir_or_default(cache_dir)
    return next((p for p in _backbone_candidates(cache) if p.is_file()), None)


# ----------------------------------------------------------------------------------------------
# Loading given files
# ----------------------------------------------------------------------------------------------

def _provenance(segm_path: Path, backbone_path: Path) -> Dict[str, str]:
    return {
        "format": PACK_FORMAT,
        "segm_source": segm_path.name,
        "segm_sha256": file_sha256(segm_path),
        "backbone_source": backbone_path.name,
        "backbone_sha256": file_sha256(backbone_path),
    }


def load_files(segm: PathLike, backbone: Optional[PathLike] = None, *,
               cache_dir: Optional[PathLike] = None) -> D3SWeights:
    """Weights from the original files; without ``backbone`` the ResNet-50 file is looked up in the caches."""
    segm_path = Path(segm).expanduser()
    return _with_backbone(segm_path, load_segm_checkpoint(segm_path), backbone, cache_dir)


def _with_backbone(segm_path: Path, segm_state: Dict[str, torch.Tensor], backbone: Optional[PathLike],
                   cache_dir: Optional[PathLike]) -> D3SWeights:
    if backbone is None:
        cache = cache_dir_or_default(cache_dir)
        found = find_backbone_file(cache)
        if found is None:
            looked = ", ".join(str(p) for p in _backbone_candidates(cache))
            raise WeightsError(f"DCF backbone weights not found (looked for {looked}); {WHERE_BACKBONE}, "
                               "or pass its path (--backbone / backbone=)")
        backbone = found
    backbone_path = Path(backbone).expanduser()
    backbone_state = load_backbone_checkpoint(backbone_path)
    return D3SWeights(segm_state, backbone_state, _provenance(segm_path, backbone_path))


def _load_path(path: Path, backbone: Optional[PathLike], cache_dir: Optional[PathLike]) -> D3SWeights:
    """One file: a pack, a training checkpoint of this package, or a SegmNet checkpoint (+ backbone)."""
    require_file(path, "weights file", f"{WHERE_SEGM}; {WHERE_BACKBONE}; {HOW_TO_PACK}")
    if is_safetensors(path):
        if backbone is not None:
            raise WeightsError(f"{path} is a weights pack, it already contains the DCF backbone: "
                               "do not pass a backbone file with it")
        return load_pack(path)
    obj = torch_load_restricted(path)  # the only unpickling of the file
    if training_checkpoint_format(obj) is not None:
        return weights_from_training_checkpoint(obj, path)
    return _with_backbone(path, segm_state_of(obj, str(path)), backbone, cache_dir)


# ----------------------------------------------------------------------------------------------
# The search order
# ----------------------------------------------------------------------------------------------

def _search(cache: Path) -> Optional[Tuple[str, Path]]:
    """The search order of :func:`load_weights`: (the rule that matched, the file), or None."""
    env = os.environ.get(WEIGHTS_ENV)
    if env:
        return _FROM_ENV, Path(env).expanduser()
    if (cache / PACK_NAME).is_file():
        return _CACHED_PACK, cache / PACK_NAME
    if (cache / SEGM_FILE_NAME).is_file() and find_backbone_file(cache) is not None:
        return _CACHED_SEGM, cache / SEGM_FILE_NAME
    return None


def locate_weights(cache_dir: Optional[PathLike] = None) -> Optional[Path]:
    """The file ``load_weights(cache_dir=cache_dir)`` would read, or None when none of its places has one.

    In order: ``$D3S_WEIGHTS``; ``<cache_dir>/d3s.safetensors``; ``<cache_dir>/SegmNet.pth.tar`` when a
    ResNet-50 file is found too (see :func:`find_backbone_file`). ``$D3S_WEIGHTS`` is returned as set
    (``~`` expanded) even when no such file exists: a set variable is never skipped in favour of the
    cache, so loading the returned path fails with a "not found" error instead. Nothing is read.
    """
    found = _search(cache_dir_or_default(cache_dir))
    return found[1] if found is not None else None


def load_weights(path: Optional[PathLike] = None, *, segm: Optional[PathLike] = None,
                 backbone: Optional[PathLike] = None, cache_dir: Optional[PathLike] = None) -> D3SWeights:
    """Load D3S's weights from disk (never downloads).

    ``path``: a ``d3s.safetensors`` pack, a training checkpoint of this package, or the authors'
    ``SegmNet.pth.tar`` (then the ResNet-50 comes from ``backbone`` or the caches). ``segm`` /
    ``backbone``: the two original files. Nothing given: the file :func:`locate_weights` names:
    ``$D3S_WEIGHTS``, then ``<cache_dir>/d3s.safetensors``, then ``<cache_dir>/SegmNet.pth.tar`` with
    ``resnet50-0676ba61.pth`` (or ``resnet50-19c8e357.pth``) from ``<cache_dir>`` or torch hub's
    checkpoint folder. ``cache_dir`` defaults to ``~/.cache/d3s_vot``. Raises :class:`WeightsError`.
    """
    if path is not None and segm is not None:
        raise WeightsError("give either a weights file (path) or the segmentation network file (segm), not both")
    if path is not None:
        return _load_path(Path(path).expanduser(), backbone, cache_dir)
    if segm is not None:
        return load_files(segm, backbone, cache_dir=cache_dir)
    if backbone is not None:
        raise WeightsError("a backbone file alone is not enough: also give the segmentation network "
                           f"({SEGM_FILE_NAME}; {WHERE_SEGM})")
    cache = cache_dir_or_default(cache_dir)
    found = _search(cache)
    if found is None:
        looked = [f"${WEIGHTS_ENV} (not set)", str(cache / PACK_NAME), str(cache / SEGM_FILE_NAME)]
        looked += [str(p) for p in _backbone_candidates(cache)]
        raise WeightsError("D3S weights not found; looked for: " + ", ".join(looked)
                           + f". Get them: {WHERE_SEGM}; {WHERE_BACKBONE}; {HOW_TO_PACK}. "
                           "Or pass a file explicitly (--weights / load_weights(path)).")
    rule, file = found
    if rule == _CACHED_PACK:
        return load_pack(file)
    if rule == _CACHED_SEGM:
        return load_files(file, None, cache_dir=cache)
    if not file.exists():
        raise WeightsError(f"${WEIGHTS_ENV} points to {file}, which does not exist")
    return _load_path(file, None, cache)
