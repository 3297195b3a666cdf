"""The one place that turns a requested device name into a ``torch.device``.

Every entry point (the tracker, the factory, the benchmark runners, training) resolves devices here,
so ``None`` means the same everywhere (CUDA when present, else the CPU), a bare ``cuda`` under
``torchrun`` means the process's own GPU (``cuda:$LOCAL_RANK``), and an unusable request fails with
one line saying what to use instead.
"""
from __future__ import annotations

import os
from typing import Mapping, Optional, Union

import torch
from d3s_vot.common.cli import UserError

DeviceLike = Union[str, torch.device, None]


class DeviceError(UserError, RuntimeError, ValueError):
    """A device that does not exist on this machine (or a name torch does not know)."""


def local_rank(environ: Optional[Mapping[str, str]] = None) -> Optional[int]:
    """``$LOCAL_RANK`` as set by ``torchrun`` (None outside it)."""
    value = (os.environ if environ is None else environ).get("LOCAL_RANK")
    return int(value) if value is not None and value.strip().isdigit() else None


def resolve_device(requested: DeviceLike = None, *, rank: Optional[int] = None) -> torch.device:
    """``None`` -> ``cuda`` if available else ``cpu``; ``cuda`` without an index -> ``cuda:rank`` when
    ``rank`` is given (the caller passes :func:`local_rank` under torchrun). Raises :class:`DeviceError`."""
    if requested is None:
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(requested)
    except (RuntimeError, TypeError, ValueError):
        raise DeviceError(f"device {str(requested)!r} is not a torch device name (use cpu, cuda or cuda:N)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device {str(requested)!r} requested but CUDA is not available; "
                              "use device 'cpu' (or None: CUDA when present)")
        if device.index is None and rank is not None:
            device = torch.device("cuda", rank)
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise DeviceError(f"device {str(device)!r} requested but this machine has {count} CUDA device(s) "
                              f"(cuda:0..cuda:{count - 1})")
    elif device.type != "cpu":
        raise DeviceError(f"device {str(requested)!r} is not supported (use cpu, cuda or cuda:N)")
    return device


def synchronize(device: torch.device) -> None:
    """Wait for ``device``'s queued work (a no-op on the CPU), so wall-clock timings are honest."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
