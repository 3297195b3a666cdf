"""Reading and writing ``x,y,w,h`` box files strictly, and writing any file atomically.

Benchmarks fail in confusing ways on one malformed line deep in a data set, so every parser here
names the file and the 1-based line. Result files are written to a temporary file in the same
folder and moved into place, so an interrupted run never leaves a half-written result behind.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Iterable, Sequence, Union

import numpy as np
from d3s_vot.common.cli import UserError

PathLike = Union[str, os.PathLike]


class BenchmarkError(UserError):
    """A user-facing problem (missing data set, malformed file): the CLIs print it as ``error: ...``."""


def parse_box_lines(lines: Iterable[str], source: str, *, allow_nan: bool = False) -> np.ndarray:
    """Parse ``x,y,w,h`` lines (comma-separated; blank lines skipped) into an ``(N, 4)`` float64 array."""
    rows = []
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text:
            continue
        parts = text.split(",")
        if len(parts) != 4:
            raise BenchmarkError(
                f"{source}, line {number}: expected 4 comma-separated numbers x,y,w,h, got {text!r}")
        try:
            values = [float(p) for p in parts]
        except ValueError:
            raise BenchmarkError(f"{source}, line {number}: not a number in {text!r}") from None
        if not allow_nan and not all(math.isfinite(v) for v in values):
            raise BenchmarkError(f"{source}, line {number}: non-finite value in {text!r}")
        rows.append(values)
    return np.asarray(rows, dtype=np.float64).reshape(-1, 4)


def read_boxes(path: PathLike, *, allow_nan: bool = False) -> np.ndarray:
    """Read a box file; a missing file or a malformed line raises :class:`BenchmarkError`."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise BenchmarkError(f"{path}: file not found") from None
    except UnicodeDecodeError:
        raise BenchmarkError(f"{path}: not a text file") from None
    return parse_box_lines(text.splitlines(), str(path), allow_nan=allow_nan)


def format_rows(values: np.ndarray, fmt: str) -> str:
    """Format a 1-D or 2-D array like ``np.savetxt(fmt=fmt, delimiter=',')`` (one row per line)."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    return "".join(",".join(fmt % v for v in row) + "\n" for row in values)


def check_boxes_shape(boxes: Sequence, source: str) -> np.ndarray:
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.shape != (4,):
        raise BenchmarkError(f"{source}: expected 4 numbers x,y,w,h, got shape {arr.shape}")
    return arr
