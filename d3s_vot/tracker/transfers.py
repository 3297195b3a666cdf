"""Every host <-> device transfer and every tensor -> Python read of the tracker, in one place.

On CUDA these are the points where the host may wait for the GPU (a *host synchronisation*): a
blocking copy, or a read of a tensor's value into Python. Routing them through these helpers keeps
them few, explicit and countable:

* :func:`upload` copies host data to the device. On CUDA it stages the data in pinned (page-locked)
  memory and copies it asynchronously: no synchronisation (the caching host allocator keeps the
  pinned block alive until the copy has run). On the CPU it is (almost) free.
* :func:`download` brings a device tensor to the host as a numpy array: one synchronisation.
* :func:`read_values` reads a small device tensor into Python floats: one synchronisation for all of
  them.
* :func:`host_side` marks work done on host tensors on purpose (e.g. the sample-memory weights): on
  CUDA it launches nothing on the device.
* :func:`graph_replay` marks a CUDA-graph replay (:mod:`d3s_vot.tracker.cuda_graphs`): one launch
  on the device, however many operations the graph holds.
* :func:`gpu_code_path` says whether to take the forms written for a GPU (e.g. one ``fold`` instead of
  16 slice additions), which a counter can select on the CPU with :func:`as_gpu_code_path`.

A recorder counts each upload and download as one device operation (the copy) and ignores the
operations inside the helpers themselves.

A *transfer recorder* (:class:`TransferRecorder`, set with :func:`recording`) is told about each of
them, with what a CUDA run would do; the sync and op counter of the bench
(:mod:`d3s_vot.tools.sync_count`) uses it to count, on a CPU-only machine, the synchronisations of the
CUDA code path. Without a recorder (the default) the helpers only do their job.
"""
from __future__ import annotations

import contextlib
import contextvars
from typing import Callable, ContextManager, Iterator, List, Optional, Protocol, Sequence, Union

import numpy as np
import torch

#: the kinds of events a recorder receives
UPLOAD_ASYNC = "upload"           # host -> device from pinned memory: no synchronisation on CUDA
DOWNLOAD = "download"             # device -> host copy: the host waits (one synchronisation)
READ = "read"                     # device values into Python: the host waits (one synchronisation)
HOST_SIDE = "host_side"           # host-tensor work: nothing runs on the device


class TransferRecorder(Protocol):
    """Receives the tracker's transfers: ``kind`` (one of the constants above) and the bytes moved;
    ``entering`` / leaving a :func:`host_side` block and a :func:`graph_replay` block."""

    def transfer(self, kind: str, nbytes: int) -> None:
        ...

    def host_side(self, entering: bool) -> None:
        ...

    def graph_replay(self, entering: bool) -> None:
        ...


_RECORDER: contextvars.ContextVar[Optional[TransferRecorder]] = contextvars.ContextVar(
    "d3s_vot_transfer_recorder", default=None)


@contextlib.contextmanager
def recording(recorder: Optional[TransferRecorder]) -> Iterator[Optional[TransferRecorder]]:
    """Report the transfers made inside the ``with`` block (in this thread/context) to ``recorder``."""
    token = _RECORDER.set(recorder)
    try:
        yield recorder
    finally:
        _RECORDER.reset(token)


def _note(kind: str, nbytes: int) -> None:
    recorder = _RECORDER.get()
    if recorder is not None:
        recorder.transfer(kind, nbytes)


@contextlib.contextmanager
def _recorded_block(tell: Callable[[TransferRecorder, bool], None]) -> Iterator[None]:
    """A block whose entering and leaving the recorder (if any) is told of through ``tell``."""
    recorder = _RECORDER.get()
    if recorder is None:
        yield
        return
    tell(recorder, True)
    try:
        yield
    finally:
        tell(recorder, False)


def host_side() -> ContextManager[None]:
    """Work on host (CPU) tensors that stays on the host on every device: a recorder does not count
    its operations as device work."""
    return _recorded_block(lambda recorder, entering: recorder.host_side(entering))


def graph_replay() -> ContextManager[None]:
    """One CUDA-graph replay, or its eager stand-in in a CPU counting run: a recorder counts one launch
    for the block, not the operations inside it."""
    return _recorded_block(lambda recorder, entering: recorder.graph_replay(entering))


def _on_device(device: torch.device) -> bool:
    return device.type != "cpu"


_GPU_CODE_PATH: contextvars.ContextVar[bool] = contextvars.ContextVar("d3s_vot_gpu_code_path", default=False)


def gpu_code_path(device: torch.device) -> bool:
    """Whether to take the forms written for a GPU (fewer, larger operations where the CPU prefers
    many small ones; the results are the same): on a device, and on the CPU inside
    :func:`as_gpu_code_path` (the sync and op counter's runs)."""
    return _on_device(device) or _GPU_CODE_PATH.get()


@contextlib.contextmanager
def as_gpu_code_path() -> Iterator[None]:
    """Take the GPU code path on the CPU too, inside the ``with`` block (for counting it)."""
    token = _GPU_CODE_PATH.set(True)
    try:
        yield
    finally:
        _GPU_CODE_PATH.reset(token)


HostData = Union[np.ndarray, torch.Tensor]


def upload(data: HostData, device: torch.device, dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """``data`` (a numpy array or a CPU tensor) on ``device``, converted to ``dtype`` there (None:
    kept). CUDA: an asynchronous copy from pinned memory. The result never shares memory with
    ``data`` on a device; on the CPU it may (callers must not modify ``data`` afterwards)."""
    if isinstance(data, np.ndarray):
        # torch cannot wrap a read-only array (e.g. a memory-mapped frame) without a warning: copy it
        data = np.ascontiguousarray(data) if data.flags.writeable else np.array(data, order="C")
        tensor = torch.from_numpy(data)
    else:
        tensor = data
    _note(UPLOAD_ASYNC, tensor.numel() * tensor.element_size())
    if _on_device(device):
        with host_side():
            tensor = tensor.pin_memory().to(device, non_blocking=True)
    return tensor if dtype is None else tensor.to(dtype)


def upload_many(arrays: Sequence[HostData], device: torch.device, dtype: Optional[torch.dtype] = None
                ) -> torch.Tensor:
    """Equal-shaped host arrays stacked into one tensor on ``device``: one asynchronous copy."""
    stacked = np.stack([np.asarray(a) for a in arrays]) if isinstance(arrays[0], np.ndarray) \
        else torch.stack(list(arrays))
    return upload(stacked, device, dtype)


def download(tensor: torch.Tensor) -> np.ndarray:
    """A device tensor as a host numpy array (one synchronisation on CUDA; on the CPU the array may
    share the tensor's memory, except on the GPU code path, where it is a copy as on CUDA)."""
    _note(DOWNLOAD, tensor.numel() * tensor.element_size())
    with host_side():
        array = tensor.detach().cpu().numpy()
        return array.copy() if not _on_device(tensor.device) and _GPU_CODE_PATH.get() else array


def read_values(tensor: torch.Tensor) -> List[float]:
    """The values of a small 1-D device tensor as Python floats, read at once (one synchronisation)."""
    _note(READ, tensor.numel() * tensor.element_size())
    with host_side():
        return [float(v) for v in tensor.detach().cpu().tolist()]
