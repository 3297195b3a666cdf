"""Process-level CPU settings that the command-line entry points apply before building a tracker.

glibc's malloc serves every block over 32 MiB with a fresh ``mmap`` and gives it back to the kernel
on free. The first-frame batch (27 samples through ResNet-50) allocates about 2 GiB of such blocks,
so each initialisation pays hundreds of thousands of page faults (and zeroes every page): measured
here, the 27-sample trunk batch takes ~1.9 s that way and ~1.2 s with the blocks kept in the heap.
:func:`tune_cpu_allocator` keeps them in the heap (``M_MMAP_MAX=0``) and stops glibc from trimming
the heap after each frame. The price: the process keeps its peak heap (about 2 GiB) until it exits.

Library code never calls this by itself: it changes the whole process. Entry points call it unless
``D3S_MALLOC_TUNING=0`` is set.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from typing import Optional

ENV_SWITCH = "D3S_MALLOC_TUNING"
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


def tune_cpu_allocator() -> bool:
    """Keep large allocations in glibc's heap; returns True if the setting is in effect.

    A no-op (False) outside Linux/glibc, or with ``D3S_MALLOC_TUNING=0``. Safe to call repeatedly.
    """
    if os.environ.get(ENV_SWITCH, "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):          # musl and other libcs have no mallopt
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return mallopt(_M_MMAP_MAX, 0) == 1 and mallopt(_M_TRIM_THRESHOLD, 2 ** 31 - 1) == 1


def configure_process(threads: Optional[int] = None) -> bool:
    """What an entry point sets before building a tracker: the allocator (see
    :func:`tune_cpu_allocator`) and, when given, torch's intra-op thread count (CPU results are
    bit-identical only at equal thread counts). Returns whether the allocator setting is in effect."""
    tuned = tune_cpu_allocator()
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    return tuned
