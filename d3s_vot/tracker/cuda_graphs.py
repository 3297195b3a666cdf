"""CUDA-graph replays of the tracker's per-frame network calls: one launch instead of ~245.

A tracked frame runs three static-shape network calls: the DCF features (normalisation, ResNet-50
to layer3, RMS scaling), the segmentation trunk (the crop's normalisation table and ResNet-50 taps)
and the segmentation head (GIM, refinement, softmax). Launched op by op they are ~245 kernel launches,
more host-side dispatch time than the GPU needs to run them. Recorded once as CUDA graphs, each is
one ``replay()`` per frame: the inputs are copied into the graph's own buffers, the graph runs, and
its outputs are the graph's buffers (valid until that graph's next replay; callers clone what they keep).

Recording happens on the first call of each (name, input shapes): the calls are warmed up on a side
stream, recorded, replayed once and compared with the last eager run (bit for bit in deterministic
mode). A call whose recording fails or disagrees stays eager for the tracker's lifetime, and the
reason is kept in :attr:`GraphedCalls.eager_fallbacks`. The tracker records its graphs during
``initialize``, so that frames only replay.

On the CPU the calls run as they are; inside :func:`d3s_vot.tracker.transfers.as_gpu_code_path`
(the sync and op counter) they take the graph path with eager runs in place of the replays, which
:func:`d3s_vot.tracker.transfers.graph_replay` tells the counter to count as one launch.
"""
from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch

from . import transfers

#: eager warm-up runs before recording (cuDNN picks its kernels, the caching allocator settles)
WARMUP_RUNS = 2


@dataclass
class _Graph:
    inputs: List[torch.Tensor]                  # the graph's input buffers (contiguous)
    outputs: Any                                # its output buffers (None until an emulated graph's first run)
    graph: Optional["torch.cuda.CUDAGraph"]     # None: emulated (CPU counting runs)


Key = Tuple[Any, ...]


def _key(name: str, inputs: Sequence[torch.Tensor]) -> Key:
    return (name,) + tuple((tuple(x.shape), x.dtype) for x in inputs)


def describe_key(key: Key) -> str:
    """'segm_trunk(384x384x3 uint8)' for reports."""
    shapes = ", ".join("x".join(map(str, shape)) + " " + str(dtype).replace("torch.", "") for shape, dtype in key[1:])
    return f"{key[0]}({shapes})"


def _tensors(outputs: Any) -> List[torch.Tensor]:
    if isinstance(outputs, torch.Tensor):
        return [outputs]
    if isinstance(outputs, dict):
        return [t for value in outputs.values() for t in _tensors(value)]
    if isinstance(outputs, (list, tuple)):
        return [t for value in outputs for t in _tensors(value)]
    raise TypeError(f"a graphed call must return tensors (in lists, tuples or dicts), got {type(outputs).__name__}")


def _into_buffers(buffers: Any, fresh: Any) -> Any:
    """An emulated replay's outputs written into the previous ones, as a CUDA graph overwrites its
    output buffers (so that a CPU run catches a caller keeping them without :meth:`GraphedCalls.keep`)."""
    if buffers is None:
        return fresh
    for buffer, value in zip(_tensors(buffers), _tensors(fresh)):
        buffer.copy_(value)
    return buffers


def replay_difference(replayed: Any, eager: Any, exact: bool) -> Optional[str]:
    """None when a replay's outputs match the eager run's (``exact``: bit for bit; otherwise within
    1e-3 of the largest magnitude, for the nondeterministic fast kernels), else what differs."""
    got, want = _tensors(replayed), _tensors(eager)
    if len(got) != len(want):
        return f"{len(got)} outputs replayed, {len(want)} eager"
    for i, (a, b) in enumerate(zip(got, want)):
        if a.shape != b.shape or a.dtype != b.dtype:
            return f"output {i}: {tuple(a.shape)} {a.dtype} replayed, {tuple(b.shape)} {b.dtype} eager"
        if exact:
            if not torch.equal(a, b):
                return f"output {i} differs from the eager run (deterministic mode needs bit-identical replays)"
        else:
            scale = float(b.abs().max()) if b.numel() else 0.0
            err = float((a.double() - b.double()).abs().max()) if b.numel() else 0.0
            if not err <= 1e-3 * max(scale, 1e-30):
                return f"output {i} differs from the eager run by {err:.3g} (largest value {scale:.3g})"
    return None


class GraphedCalls:
    """The tracker's graphed network calls (shared by a tracker's forks, like the networks).

    ``enabled``: the ``cuda_graphs`` parameter; graphs are recorded on CUDA devices only.
    ``exact``: replays must equal the eager run bit for bit (the deterministic mode)."""

    def __init__(self, device: torch.device, enabled: bool, exact: bool = True):
        self.device = device
        self.enabled = bool(enabled)
        self.exact = exact
        self._graphs: Dict[Key, _Graph] = {}
        self.eager_fallbacks: Dict[str, str] = {}

    @property
    def active(self) -> bool:
        """Whether calls take the graph path: on CUDA, and on the CPU in counting runs (emulated)."""
        return self.enabled and transfers.gpu_code_path(self.device)

    def recorded(self) -> List[str]:
        """The recorded graphs (emulated ones included), as :func:`describe_key` names."""
        return [describe_key(key) for key in self._graphs]

    def __call__(self, name: str, fn: Callable[..., Any], *inputs: torch.Tensor) -> Any:
        """``fn(*inputs)``: replayed from its graph when graphs are active (the outputs are then the
        graph's buffers: valid until the next call of ``name`` with these shapes)."""
        if not self.active:
            return fn(*inputs)
        key = _key(name, inputs)
        graph = self._graphs.get(key)
        if graph is None:
            graph = self._record(key, fn, inputs)
            if graph is None:
                return fn(*inputs)
        for buffer, x in zip(graph.inputs, inputs):
            buffer.copy_(x)
        with transfers.graph_replay(), self._on_device():
            if graph.graph is None:
                graph.outputs = _into_buffers(graph.outputs, fn(*graph.inputs))
            else:
                graph.graph.replay()
        return graph.outputs

    def prepare(self, name: str, fn: Callable[..., Any], *inputs: torch.Tensor) -> None:
        """Record ``fn``'s graph for inputs shaped like ``inputs`` now (at initialisation), so that the
        first frame only replays. Nothing happens when graphs are off or already recorded."""
        if not self.active:
            return
        key = _key(name, inputs)
        if key not in self._graphs:
            self._record(key, fn, inputs)

    def keep(self, outputs: Any) -> Any:
        """Copies of a graphed call's output tensors, for keeping past the next replay (unchanged
        when graphs are off)."""
        if not self.active:
            return outputs
        if isinstance(outputs, torch.Tensor):
            return outputs.clone()
        if isinstance(outputs, dict):
            return {k: self.keep(v) for k, v in outputs.items()}
        return type(outputs)(self.keep(v) for v in outputs)

    # ----------------------------------------------------------------------------------------------
    def _on_device(self):
        return torch.cuda.device(self.device) if self.device.type == "cuda" else contextlib.nullcontext()

    def _record(self, key: Key, fn: Callable[..., Any], inputs: Sequence[torch.Tensor]) -> Optional[_Graph]:
        if describe_key(key) in self.eager_fallbacks:
            return None
        buffers = [torch.empty(x.shape, dtype=x.dtype, device=x.device) for x in inputs]
        for buffer, x in zip(buffers, inputs):
            buffer.copy_(x)
        if self.device.type != "cuda":
            graph = _Graph(buffers, None, None)             # emulated: the counter's CPU runs
        else:
            try:
                graph = self._capture(fn, buffers)
            except Exception as error:                      # any failure leaves this call eager
                reason = f"{type(error).__name__}: {error}".splitlines()[0]
                self.eager_fallbacks[describe_key(key)] = reason
                warnings.warn(f"d3s_vot: {describe_key(key)} runs without a CUDA graph: {reason}", RuntimeWarning,
                              stacklevel=3)
                return None
        self._graphs[key] = graph
        return graph

    def _capture(self, fn: Callable[..., Any], buffers: List[torch.Tensor]) -> _Graph:
        with self._on_device():
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                for _ in range(WARMUP_RUNS):
                    eager = fn(*buffers)
            torch.cuda.current_stream(self.device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                outputs = fn(*buffers)
            graph.replay()
            difference = replay_difference(outputs, eager, self.exact)
        if difference is not None:
            raise RuntimeError(difference)
        return _Graph(buffers, outputs, graph)
