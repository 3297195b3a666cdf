"""The ``d3s.safetensors`` pack: one pickle-free file with both networks, provenance and a content hash.

Writing, reading, checking and hashing the format live together so that the metadata keys
(``format``, ``content_sha256``, ``created_by``, ``torch_version``, provenance) and the hash rule are
defined once. safetensors is imported only when a file is actually read or written.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Tuple

import numpy as np
import torch

from .container import D3SWeights
from .errors import HOW_TO_PACK, WeightsError, content_problem, one_line, require_file
from .files import PathLike
from .state import checked_weights, few

PACK_FORMAT = "d3s_vot.pack/1"
SEGM_PREFIX = "segm/"
BACKBONE_PREFIX = "backbone/"


# ----------------------------------------------------------------------------------------------
# Hashes
# ----------------------------------------------------------------------------------------------

def file_sha256(path: PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def content_sha256(tensors: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over sorted keys, dtypes, shapes and little-endian bytes: independent of file layout."""
    digest = hashlib.sha256()
    for key in sorted(tensors):
        array = tensors[key].detach().cpu().contiguous().numpy()
        array = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
        digest.update(f"{key}|{array.dtype.str}|{tuple(array.shape)};".encode("utf-8"))
        digest.update(array.tobytes())
    return digest.hexdigest()


# ----------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------

def pack_tensors(weights: D3SWeights) -> Dict[str, torch.Tensor]:
    """The flat ``segm/<key>``, ``backbone/<key>`` tensor dict stored in a pack (own memory per tensor)."""
    tensors = {SEGM_PREFIX + k: v.detach().cpu().contiguous().clone() for k, v in weights.segm_state.items()}
    tensors.update({BACKBONE_PREFIX + k: v.detach().cpu().contiguous().clone()
                    for k, v in weights.backbone_state.items()})
    return tensors


def _package_version() -> str:
    try:
        from importlib.metadata import version
        return version("d3s_vot")
    except Exception:
        return "unknown"


def save_pack(weights: D3SWeights, path: PathLike) -> str:
    """Write ``weights`` as a ``d3s.safetensors`` pack (atomically); return the file's sha256."""
    from safetensors.torch import save_file

    checked = checked_weights(weights.segm_state, weights.backbone_state, "weights to pack", "weights to pack", {})
    tensors = pack_tensors(checked)
    metadata = {str(k): str(v) for k, v in weights.metadata.items()}
    metadata.pop("loaded_from", None)
    metadata.update({
        "format": PACK_FORMAT,
        "content_sha256": content_sha256(tensors),
        "created_by": f"d3s_vot {_package_version()}",
        "torch_version": torch.__version__,
    })
    path = writable_path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file(tensors, str(tmp), metadata=metadata)
        os.replace(tmp, path)
    except Exception as exc:  # OSError, or safetensors' own error type for a failed write
        raise WeightsError(f"cannot write {path} ({one_line(getattr(exc, 'strerror', None) or exc)})") from None
    finally:
        if tmp.is_file():
            tmp.unlink()
    return file_sha256(path)


def writable_path(path: PathLike) -> Path:
    """``path`` (``~`` expanded) when a file can be created there, as far as a cheap check can tell.

    :class:`WeightsError` when ``path`` is a directory or one of its parents is not a directory;
    nothing is created (permissions are left to the write itself).
    """
    path = Path(path).expanduser()
    if path.is_dir():
        raise WeightsError(f"cannot write {path}: it is a directory")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise WeightsError(f"cannot write {path}: {parent} is not a directory")
            break
    return path


# ----------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------

def is_safetensors(path: Path) -> bool:
    """safetensors files start with an 8-byte little-endian header length followed by ``{``."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(9)
    except OSError:
        return False
    if len(head) < 9 or head[8:9] != b"{":
        return False
    return int.from_bytes(head[:8], "little") < os.path.getsize(path)


def read_safetensors(path: Path) -> Tuple[Dict[str, torch.Tensor], Dict[str, str]]:
    """All tensors and the metadata of a safetensors file (:class:`WeightsError` for a damaged one)."""
    from safetensors import safe_open
    try:
        tensors = {}
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = dict(handle.metadata() or {})
            for key in handle.keys():
                tensors[key] = handle.get_tensor(key)
    except Exception as exc:  # safetensors raises its own error types for damaged files
        problem = content_problem(path) or _pickle_problem(path)
        raise WeightsError(f"{path}: {problem or f'not a readable safetensors file ({one_line(exc)})'}") from None
    return tensors, metadata


def _pickle_problem(path: Path) -> Optional[str]:
    """A message for a PyTorch checkpoint / pickle given where a safetensors file is needed, else None."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
    except OSError:
        return None
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":
        return ("not a safetensors file: it looks like a PyTorch checkpoint (load it with load_weights, "
                "or convert it with: python -m d3s_vot.weights pack)")
    return None


def _section(tensors: Dict[str, torch.Tensor], prefix: str) -> Dict[str, torch.Tensor]:
    """The tensors whose key starts with ``prefix``, prefix removed."""
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def pack_section(tensors: Dict[str, torch.Tensor], prefix: str) -> Dict[str, torch.Tensor]:
    """The ``prefix`` part of a pack (prefix removed); a safetensors file without sections as is."""
    if not any(k.startswith(prefix) for k in tensors):
        return tensors
    return _section(tensors, prefix)


@dataclass(frozen=True)
class PackCheck:
    """Result of :func:`check_pack`: the weights (when readable) and what is wrong with the file."""

    weights: Optional[D3SWeights]
    problems: List[str]
    stored_content_sha256: str
    actual_content_sha256: str


def check_pack(path: PathLike) -> PackCheck:
    """Read a pack and list every problem: format, content hash, keys and shapes (never raises for a bad pack)."""
    path = Path(path)
    tensors, metadata = read_safetensors(path)
    problems: List[str] = []
    if metadata.get("format") != PACK_FORMAT:
        problems.append(f"format is {metadata.get('format')!r}, expected {PACK_FORMAT!r}")
    stored = metadata.get("content_sha256", "")
    actual = content_sha256(tensors)
    if stored != actual:
        problems.append(f"content hash mismatch: stored {stored or '(none)'}, computed {actual} "
                        "(the file was modified or damaged)")
    other = [k for k in tensors if not k.startswith((SEGM_PREFIX, BACKBONE_PREFIX))]
    if other:
        problems.append(f"unexpected tensors: {few(other)}")
    weights = None
    try:
        weights = checked_weights(_section(tensors, SEGM_PREFIX), _section(tensors, BACKBONE_PREFIX),
                                  f"{path} [{SEGM_PREFIX}*]", f"{path} [{BACKBONE_PREFIX}*]",
                                  {**metadata, "loaded_from": str(path)})
    except WeightsError as exc:
        problems.append(str(exc))
    return PackCheck(weights, problems, stored, actual)


def load_pack(path: PathLike, *, verify: bool = True) -> D3SWeights:
    """Load a ``d3s.safetensors`` pack; with ``verify`` also check its content hash."""
    path = require_file(path, "weights pack", f"create it with: python -m d3s_vot.weights pack ... ({HOW_TO_PACK})")
    result = check_pack(path)
    problems = result.problems if verify else [p for p in result.problems if not p.startswith("content hash")]
    if problems or result.weights is None:
        raise WeightsError(f"{path}: not a valid D3S weights pack: " + "; ".join(problems))
    return result.weights
