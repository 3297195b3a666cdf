"""The one exception of the weights package and the texts that tell a user where to get the files.

Every user-facing problem (missing file, unsafe pickle, wrong network) is a :class:`WeightsError`
whose message says what to do; the "where to get them" texts live here so that all messages match.
"""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Optional

from .files import SEGM_FILE_NAME, PathLike
from d3s_vot.common.cli import UserError, one_line  # noqa: F401 (one_line: re-exported)

D3S_URL = "https://github.com/alanlukezic/d3s"
WHERE_SEGM = (f"{SEGM_FILE_NAME} is the authors' pre-trained segmentation network: follow the "
              f"'Download the pre-trained network' link in the README of {D3S_URL}")
WHERE_BACKBONE = ("the DCF backbone is torchvision's ResNet-50 ResNet50_Weights.IMAGENET1K_V1 "
                  "(resnet50-0676ba61.pth): on a machine with internet run "
                  "python -c \"import torchvision; torchvision.models.resnet50(weights='IMAGENET1K_V1')\" "
                  "and copy ~/.cache/torch/hub/checkpoints/resnet50-0676ba61.pth")
HOW_TO_PACK = ("then pack both once: python -m d3s_vot.weights pack --segm SegmNet.pth.tar "
               "--backbone resnet50-0676ba61.pth --out ~/.cache/d3s_vot/d3s.safetensors "
               "(see docs/weights.md)")


class WeightsError(UserError):
    """A user-facing problem with weight files (missing, unsafe, wrong network); the message says what to do."""


def _not_regular_kind(mode: int) -> str:
    for test, kind in ((stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return kind
    return "not a regular file"


def require_file(path: PathLike, what: str, where: str) -> Path:
    """``path`` (``~`` expanded) when it is a readable regular file; else a one-line :class:`WeightsError`.

    A missing path names ``what`` and ``where`` (where to get the file); a directory, a named pipe or
    another non-regular file, and a file that cannot be opened get their own message. Nothing is read.
    """
    path = Path(path).expanduser()
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise WeightsError(f"{what} not found: {path} ({where})") from None
    except OSError as exc:
        raise WeightsError(f"{path}: cannot access it ({one_line(exc.strerror or exc)})") from None
    if stat.S_ISDIR(mode):
        raise WeightsError(f"{path} is a directory, not a weights file")
    if not stat.S_ISREG(mode):
        raise WeightsError(f"{path} is {_not_regular_kind(mode)}, not a weights file")
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise WeightsError(f"{path}: cannot open it ({one_line(exc.strerror or exc)})") from None
    return path


_SNIFF_BYTES = 1 << 16


def _all_zero(path: Path) -> bool:
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            if block.count(0) != len(block):
                return False
    return True


def _safetensors_truncation(path: Path, head: bytes, size: int) -> Optional[str]:
    """What is missing from a file whose first bytes are a safetensors header, or None when nothing is."""
    header_len = int.from_bytes(head[:8], "little")
    if 8 + header_len > size:
        return (f"truncated safetensors file: its header says the header alone is {8 + header_len} bytes, "
                f"the file has {size}")
    try:
        with open(path, "rb") as handle:
            handle.seek(8)
            header = json.loads(handle.read(header_len).decode("utf-8"))
        end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
    except Exception:  # a damaged header: the reader's own message says what is wrong with it
        return None
    if 8 + header_len + end > size:
        return f"truncated safetensors file: its header describes {8 + header_len + end} bytes, the file has {size}"
    return None


def content_problem(path: PathLike) -> Optional[str]:
    """Why the bytes of ``path`` cannot be weights, when that is plain from the bytes alone; else None.

    Used by the readers when reading failed, to replace the library's error with a clearer one:
    an empty file, a file of zero bytes, a file too short for any format, a truncated safetensors file.
    """
    path = Path(path)
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as handle:
            head = handle.read(_SNIFF_BYTES)
        if size == 0:
            return "the file is empty (0 bytes), not a weights file"
        if head.count(0) == len(head) and _all_zero(path):
            return f"the file is all zero bytes ({size} bytes), not a weights file"
    except OSError as exc:
        return f"cannot read it ({one_line(exc.strerror or exc)})"
    if size < 9:
        return f"the file is only {size} bytes long, too short to be a weights file"
    if head[8:9] == b"{":
        return _safetensors_truncation(path, head, size)
    return None
