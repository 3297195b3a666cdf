"""Small file helpers shared by the command-line tools: frame folders, region text, atomic writes.

Everything that reads user files raises :class:`InputError` with the file (and line) named, so a
CLI can print one ``error: ...`` line instead of a traceback.
"""
from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Union

import numpy as np

from d3s_vot.common.cli import UserError

PathLike = Union[str, os.PathLike]

FRAME_EXTENSIONS = (".jpg", ".jpeg", ".png")


class InputError(UserError):
    """A problem with the user's input (missing folder, malformed line): printed as ``error: <message>``."""


# ----------------------------------------------------------------------------------------------
# Atomic writes
# ----------------------------------------------------------------------------------------------

def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write ``data`` to a temporary file in the same folder, then move it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)  # mkstemp creates private files
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


# ----------------------------------------------------------------------------------------------
# Frame folders
# ----------------------------------------------------------------------------------------------

def natural_key(name: str) -> list:
    """Sort key treating digit runs as numbers: ``2.jpg`` < ``10.jpg`` (TrackingNet frames are not zero-padded)."""
    return [(0, int(part), part) if part.isdigit() else (1, 0, part.lower())
            for part in re.split(r"(\d+)", name) if part]


def list_frames(folder: PathLike) -> List[Path]:
    """The ``.jpg``/``.jpeg``/``.png`` files of ``folder`` in natural order (hidden files skipped).

    A frame name that is a dangling symbolic link or an empty (0-byte) file is an :class:`InputError`
    naming it, so that a sequence with a missing frame is refused before any work instead of being
    tracked with one frame fewer.
    """
    folder = Path(folder)
    frames = []
    for p in folder.iterdir():
        if p.suffix.lower() not in FRAME_EXTENSIONS or p.name.startswith("."):
            continue
        if p.is_symlink() and not p.exists():
            raise InputError(f"{p}: broken symbolic link (its target {os.readlink(p)} does not exist)")
        if not p.is_file():
            continue
        if p.stat().st_size == 0:
            raise InputError(f"{p}: empty file (0 bytes), not an image")
        frames.append(p)
    return sorted(frames, key=lambda p: natural_key(p.name))


@dataclass(frozen=True)
class SequenceFiles:
    """Where a sequence's frames and (optional) ground truth are."""

    frames: List[Path]
    groundtruth: Optional[Path]


def find_sequence(seq_dir: PathLike) -> SequenceFiles:
    """Frames of a VOT sequence (``color/``), a GOT-10k sequence or a plain folder, and its ``groundtruth.txt``."""
    seq_dir = Path(seq_dir)
    if not seq_dir.exists():
        raise InputError(f"{seq_dir}: no such directory")
    if not seq_dir.is_dir():
        raise InputError(f"{seq_dir}: not a directory")
    frames_dir = seq_dir / "color" if (seq_dir / "color").is_dir() else seq_dir
    frames = list_frames(frames_dir)
    if not frames:
        raise InputError(f"{frames_dir}: no frames found (expected {', '.join(FRAME_EXTENSIONS)} files, "
                         "or a VOT sequence with a color/ folder)")
    groundtruth = seq_dir / "groundtruth.txt"
    return SequenceFiles(frames, groundtruth if groundtruth.is_file() else None)


def jpeg_has_end_marker(data: bytes, window: int = 1024) -> bool:
    """Whether JPEG bytes contain the end-of-image marker ``FF D9`` in their last ``window`` bytes.

    A whole file ends with it (some writers pad or append a little data after it, hence the window);
    a truncated one does not, as ``FF D9`` cannot occur inside the compressed data.
    """
    return b"\xff\xd9" in data[-window:]


def read_frame(path: PathLike) -> np.ndarray:
    """An image file as ``H x W x 3`` uint8 RGB.

    Grayscale becomes 3 equal channels, an alpha channel is dropped, and 16-bit images are scaled
    to 8 bits (``round(v / 257)``, so 65535 -> 255).
    """
    import cv2

    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read the image ({exc.strerror or exc})") from None
    if not data:
        raise InputError(f"{path}: empty file (0 bytes), not an image")
    if data[:2] == b"\xff\xd8" and not jpeg_has_end_marker(data):
        # libjpeg decodes a truncated file partially (grey bottom rows) with only a warning
        raise InputError(f"{path}: truncated JPEG (no end-of-image marker FF D9 at the end of the file)")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise InputError(f"{path}: cannot read the image (missing, damaged or not a JPEG/PNG file)")
    if image.dtype == np.uint16:
        image = np.round(image.astype(np.float64) / 257.0).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise InputError(f"{path}: unsupported pixel type {image.dtype} (expected 8- or 16-bit)")
    if image.ndim == 2:
        return np.ascontiguousarray(np.repeat(image[:, :, None], 3, axis=2))
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    raise InputError(f"{path}: unsupported image layout {image.shape}")


# ----------------------------------------------------------------------------------------------
# Region text (VOT / GOT-10k ground truth lines, command-line boxes)
# ----------------------------------------------------------------------------------------------

def parse_numbers(text: str, source: str) -> np.ndarray:
    """Comma- or whitespace-separated finite numbers."""
    parts = [p for p in re.split(r"[,\s]+", text.strip()) if p]
    try:
        values = np.array([float(p) for p in parts], dtype=np.float64)
    except ValueError:
        raise InputError(f"{source}: not a list of numbers: {text.strip()!r}") from None
    if not np.all(np.isfinite(values)):
        raise InputError(f"{source}: non-finite value in {text.strip()!r}")
    return values


def parse_region_text(text: str, source: str, counts: Sequence[int] = (4, 8)) -> np.ndarray:
    """One region: 4 numbers ``x,y,w,h`` (0-based box) or 8 numbers ``x1,y1,...,x4,y4`` (polygon)."""
    if text.strip().startswith("m"):
        raise InputError(f"{source}: a mask region ({text.strip()[:20]}...) cannot initialise this tool; "
                         "give a box with --init x,y,w,h or a polygon with --init-polygon")
    values = parse_numbers(text, source)
    if len(values) not in counts:
        wanted = " or ".join(str(c) for c in counts)
        raise InputError(f"{source}: expected {wanted} numbers, got {len(values)} in {text.strip()!r}")
    if len(values) == 4 and (values[2] <= 0 or values[3] <= 0):
        raise InputError(f"{source}: box width and height must be positive, got {text.strip()!r}")
    return values


def read_first_region(path: PathLike) -> np.ndarray:
    """The first non-empty line of a ground-truth file as a region (4 or 8 numbers)."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except (UnicodeDecodeError, OSError) as exc:
        raise InputError(f"{path}: cannot read it as text ({exc})") from None
    for number, line in enumerate(lines, start=1):
        if line.strip():
            return parse_region_text(line, f"{path}, line {number}")
    raise InputError(f"{path}: empty file, no initial region")


def format_region(values: Sequence[float], decimals: int = 4) -> str:
    """Comma-separated numbers, fixed decimals (the VOT/GOT-10k text format)."""
    return ",".join(f"{float(v):.{decimals}f}" for v in values)
