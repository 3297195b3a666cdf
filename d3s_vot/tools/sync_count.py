"""Host synchronisations and device operations of the tracker's CUDA code path, counted on any machine.

``python -m d3s_vot.bench --count-syncs`` reports, per initialisation, per plain frame and per
filter-update frame:

* **host syncs**: the points where a CUDA run makes the host wait for the GPU -- a tensor value
  read into Python (``.item()``, ``float(t)``, ``bool(t)``: ATen's ``_local_scalar_dense``), an op
  that needs its result's size or an error flag on the host (``nonzero``, ``masked_select``, the
  eigensolver's error check, ...), and a blocking copy between host and device. Each with the
  source line that caused it.
* **ATen ops**: the non-view operations launched on the device (each a kernel launch or more on
  CUDA), split into the networks' (anything called from ``d3s_vot/model``, and each CUDA-graph replay
  of :mod:`d3s_vot.tracker.cuda_graphs`: one launch for a whole trunk or the head) and the tracker's own.

How, without a GPU: a ``TorchDispatchMode`` sees every ATen operation, and the tracker routes
every host <-> device transfer through :mod:`d3s_vot.tracker.transfers`, which tells this counter
what a CUDA run would do there (an asynchronous pinned upload, a blocking download, a value read).
Work the tracker does on host tensors on purpose is marked there too and not counted. The counting
tracker runs the CUDA code path: the GPU forms of the tracker's own steps
(:func:`d3s_vot.tracker.transfers.as_gpu_code_path`), no CPU-only fused trunk kernels (``fused_cpu_trunks=False``) and
NCHW trunks (``channels_last=False``), so that the segmentation head takes its general form (its
batch-1 channels-last rewrite is CPU-only); on CUDA a channels-last tracker adds one layout copy per
frame (the DCF trunk's output) to the op count, inside the DCF features' graph. With ``cuda_graphs``
(the default) the per-frame network calls take the graph path, an eager run standing for each replay;
a sync inside one is reported as such (on CUDA it would break the recording).

On CUDA the same run also arms ``torch.cuda.set_sync_debug_mode("warn")`` and counts the warnings
CUDA itself raises, to confirm the counts (``confirmed_by_cuda``).
"""
from __future__ import annotations

import collections
import dataclasses
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from d3s_vot.tracker import cuda_graphs, transfers
from d3s_vot.tracker.stages import StageLog

_PACKAGE = str(Path(__file__).resolve().parents[1])           # .../d3s_vot
_MODEL = str(Path(_PACKAGE) / "model")
_SKIP = (str(Path(transfers.__file__).resolve()), str(Path(cuda_graphs.__file__).resolve()),
         str(Path(__file__).resolve()))
_TORCH = str(Path(torch.__file__).resolve().parent)

#: ATen ops that make CUDA wait for the device: results whose size depends on the data, or an error
#: flag checked on the host (``_local_scalar_dense`` is the value read behind item()/float()/bool()).
SYNCING_OPS = frozenset({"_local_scalar_dense", "nonzero", "masked_select", "_unique2", "unique_dim",
                         "unique_consecutive", "repeat_interleave", "_linalg_eigh", "linalg_eigh",
                         "_linalg_svd", "linalg_inv_ex", "linalg_solve_ex", "equal"})

#: targets of the issue (host syncs per call) and of the tracker's own ops per plain frame
SYNC_BUDGET = {"plain_frame": 2, "update_frame": 3, "init": 15}
TRACKER_OP_BUDGET = 150
#: the issue's target for a whole plain frame, networks included: met with the networks as three CUDA-graph
#: replays (``cuda_graphs``, the default); launched op by op the two trunks and the head alone are ~244
FRAME_OP_BUDGET = 150
#: the op name a CUDA-graph replay is counted under
GRAPH_REPLAY_OP = "cuda_graph_replay"


def _call_site() -> Tuple[str, bool]:
    """('d3s_vot/tracker/localize.py:71', from the networks?) of the innermost package frame that is
    not this counter or the transfer helpers."""
    frame = sys._getframe(2)
    site = outside = None
    network = False
    while frame is not None:
        name = frame.f_code.co_filename
        if name.startswith(_PACKAGE) and name not in _SKIP:
            if site is None:
                site = f"d3s_vot{name[len(_PACKAGE):]}:{frame.f_lineno}"
            if name.startswith(_MODEL):
                network = True
                break
        elif outside is None and name not in _SKIP and not name.startswith(_TORCH) and "contextlib" not in name:
            outside = f"{Path(name).name}:{frame.f_lineno}"        # a caller outside the package (tests)
        frame = frame.f_back
    return site or outside or "?", network


@dataclass
class CallCount:
    """What one tracker call (an initialize or a track) did."""
    syncs: List[Tuple[str, str]] = field(default_factory=list)        # (kind, source line)
    network_ops: int = 0
    tracker_ops: int = 0
    uploads: int = 0
    upload_bytes: int = 0
    download_bytes: int = 0
    ops_by_name: collections.Counter = field(default_factory=collections.Counter)
    cuda_sync_warnings: Optional[int] = None                            # CUDA runs only

    @property
    def graph_replays(self) -> int:
        """CUDA-graph replays (each counted as one network op)."""
        return self.ops_by_name[GRAPH_REPLAY_OP]

    @property
    def ops(self) -> int:
        return self.network_ops + self.tracker_ops

    def summary(self) -> Dict[str, Any]:
        sites = collections.Counter(f"{kind} at {site}" for kind, site in self.syncs)
        return {"host_syncs": len(self.syncs), "sync_sites": dict(sorted(sites.items())),
                "aten_ops": self.ops, "network_ops": self.network_ops, "tracker_ops": self.tracker_ops,
                "uploads": self.uploads, "upload_bytes": self.upload_bytes, "download_bytes": self.download_bytes,
                "graph_replays": self.graph_replays, "cuda_sync_warnings": self.cuda_sync_warnings}


class SyncCounter(TorchDispatchMode):
    """Counts one call's syncs and ops (see the module docstring); also a transfer recorder."""

    def __init__(self) -> None:
        super().__init__()
        self.count = CallCount()
        self._host_depth = 0
        self._graph_depth = 0

    # -- transfer recorder (d3s_vot.tracker.transfers) --------------------------------------------
    def transfer(self, kind: str, nbytes: int) -> None:
        site, network = _call_site()
        if kind == transfers.UPLOAD_ASYNC:
            self.count.uploads += 1
            self.count.upload_bytes += nbytes
        else:
            self.count.syncs.append((kind, site))
            self.count.download_bytes += nbytes
        self._add_op("copy" if kind != transfers.READ else "copy (read)", network)

    def host_side(self, entering: bool) -> None:
        self._host_depth += 1 if entering else -1

    def graph_replay(self, entering: bool) -> None:
        """A CUDA-graph replay: one launch for the networks, whatever the graph runs."""
        if entering:
            self._add_op(GRAPH_REPLAY_OP, network=True)
        self._graph_depth += 1 if entering else -1

    # -- dispatch mode ------------------------------------------------------------------------------
    def _add_op(self, name: str, network: bool) -> None:
        self.count.ops_by_name[name] += 1
        if network:
            self.count.network_ops += 1
        else:
            self.count.tracker_ops += 1

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self._host_depth:
            return func(*args, **kwargs)
        name = func.overloadpacket.__name__
        site, network = _call_site()
        if self._graph_depth:
            # inside a graph nothing is launched on its own; a sync there would break the recording on CUDA
            if name in SYNCING_OPS or _blocking_cross_device_copy(name, args, kwargs):
                self.count.syncs.append((f"{name} inside a CUDA graph", site))
            return func(*args, **kwargs)
        if name in SYNCING_OPS:
            self.count.syncs.append(("scalar read" if name == "_local_scalar_dense" else name, site))
        elif _blocking_cross_device_copy(name, args, kwargs):
            self.count.syncs.append(("unrouted copy", site))
        if not func.is_view:
            self._add_op(name, network)
        return func(*args, **kwargs)


def _device_of(value: Any) -> Optional[torch.device]:
    return value.device if isinstance(value, torch.Tensor) else None


def _blocking_cross_device_copy(name: str, args, kwargs) -> bool:
    """A copy between host and device outside the transfer helpers (visible on CUDA only)."""
    if name == "_to_copy" and args:
        target = kwargs.get("device")
        source = _device_of(args[0])
        return target is not None and source is not None and torch.device(target).type != source.type \
            and not kwargs.get("non_blocking", False)
    if name == "copy_" and len(args) >= 2:
        a, b = _device_of(args[0]), _device_of(args[1])
        return a is not None and b is not None and a.type != b.type and not (len(args) > 2 and args[2])
    return False


class _CudaSyncWarnings:
    """``torch.cuda.set_sync_debug_mode('warn')`` for one call, counting the warnings it raises."""

    def __init__(self, device: torch.device):
        self.enabled = device.type == "cuda"
        self.count = 0

    def __enter__(self) -> "_CudaSyncWarnings":
        if self.enabled:
            self._catch = warnings.catch_warnings(record=True)
            self._records = self._catch.__enter__()
            warnings.simplefilter("always")
            torch.cuda.synchronize()
            torch.cuda.set_sync_debug_mode("warn")
        return self

    def __exit__(self, *exc) -> None:
        if self.enabled:
            torch.cuda.set_sync_debug_mode("default")
            self.count = sum("synchroniz" in str(w.message) for w in self._records)
            self._catch.__exit__(*exc)


def count_call(tracker, call) -> Tuple[CallCount, List[str], Any]:
    """(counts, stage names, result) of ``call()`` (one tracker call) under the counter."""
    counter = SyncCounter()
    log = StageLog()
    cuda = _CudaSyncWarnings(tracker.device)
    with tracker.record_stages(log), transfers.recording(counter), transfers.as_gpu_code_path(), cuda, counter:
        result = call()
    if cuda.enabled:
        counter.count.cuda_sync_warnings = cuda.count
    return counter.count, log.names(), result


#: the parameters a CPU counting run overrides so that it takes the CUDA code path
COUNTING_OVERRIDES = {"fused_cpu_trunks": "false", "channels_last": "false"}


def count_sequence(tracker, seq, frames: int) -> Dict[str, Any]:
    """Counts of one ``initialize`` on the sequence's first polygon and of ``frames`` tracked frames,
    grouped as init / plain frames / filter-update frames (the frames whose call ran the
    ``filter_update`` stage). Per kind: the frame with the most syncs (its sync sites and ops) and
    the range over the frames of that kind."""
    # the counted initialisation is the tracker's second: the first records the CUDA graphs (and on CUDA
    # autotunes cuDNN), once per tracker
    with transfers.as_gpu_code_path():
        tracker.initialize(seq.frames[0], seq.polygons[0])
    init, _, _ = count_call(tracker, lambda: tracker.initialize(seq.frames[0], seq.polygons[0]))
    kinds: Dict[str, List[Tuple[int, CallCount, bool]]] = {"plain_frame": [], "update_frame": []}
    for i, image in enumerate(seq.frames[1:frames + 1]):
        count, stages, _ = count_call(tracker, lambda image=image: tracker.track(image))
        kind = "update_frame" if "filter_update" in stages else "plain_frame"
        kinds[kind].append((i + 2, count, "segm_head" in stages))
    report: Dict[str, Any] = {"init": {**init.summary(), "budget": SYNC_BUDGET["init"]}}
    for kind, calls in kinds.items():
        if not calls:
            report[kind] = None
            continue
        frame_num, worst, segmented = max(calls, key=lambda c: (len(c[1].syncs), c[1].ops))
        report[kind] = {**worst.summary(), "frame": frame_num, "segmented": segmented, "frames": len(calls),
                        "host_syncs_range": [min(len(c.syncs) for _, c, _ in calls),
                                             max(len(c.syncs) for _, c, _ in calls)],
                        "aten_ops_range": [min(c.ops for _, c, _ in calls), max(c.ops for _, c, _ in calls)],
                        "tracker_ops_max": max(c.tracker_ops for _, c, _ in calls),
                        "budget": SYNC_BUDGET[kind]}
    report["within_budget"] = all(report[k] is None or report[k]["host_syncs"] <= SYNC_BUDGET[k]
                                  for k in SYNC_BUDGET) and \
        (report["plain_frame"] is None or report["plain_frame"]["tracker_ops_max"] <= TRACKER_OP_BUDGET)
    report["tracker_op_budget"] = TRACKER_OP_BUDGET
    report["frame_op_budget"] = FRAME_OP_BUDGET
    report["frame_ops_within_budget"] = report["plain_frame"] is None or \
        report["plain_frame"]["aten_ops_range"][1] <= FRAME_OP_BUDGET
    return report


def run_count(spec, width: int = 640, height: int = 480, frames: int = 11, seed: int = 0,
              weights: Any = None) -> Dict[str, Any]:
    """Build the counting tracker from ``spec`` (a :class:`d3s_vot.factory.TrackerSpec`; on the CPU
    with :data:`COUNTING_OVERRIDES`, the CUDA code path) and count a synthetic sequence of ``frames``
    tracked frames (11: frame 11 is the first regular filter update)."""
    from d3s_vot.factory import build_tracker, tracker_device
    from d3s_vot.synthetic.scene import SceneConfig, generate_sequence

    if tracker_device(spec).type == "cpu":
        spec = dataclasses.replace(spec, params={**dict(spec.params), **COUNTING_OVERRIDES})
    tracker = build_tracker(spec, weights)
    seq = generate_sequence(seed=seed, num_frames=frames + 1, config=SceneConfig(width=width, height=height))
    report = count_sequence(tracker, seq, frames)
    report.update(device=str(tracker.device), size=f"{width}x{height}", tracked_frames=frames,
                  cuda_code_path=True, fused_cpu_trunks=bool(tracker.fused), cuda_graphs=tracker.graphs.enabled,
                  graphs_recorded=tracker.graphs.recorded(), graph_fallbacks=dict(tracker.graphs.eager_fallbacks),
                  memory_format="channels_last" if tracker.memory_format == torch.channels_last else "nchw")
    return report


def render_counts(report: Dict[str, Any]) -> str:
    """The counts as text: per kind of call the syncs (with their source lines) and the ops."""
    graphs = "networks as CUDA-graph replays" if report["cuda_graphs"] else "networks launched op by op"
    lines = [f"host syncs and ATen ops of the CUDA code path ({report['device']}, {report['size']}, "
             f"{report['tracked_frames']} tracked frames, trunks {report['memory_format']}, no CPU-only kernels, "
             f"{graphs}; the tracker's second initialisation):"]
    for kind, label in (("init", "initialisation"), ("plain_frame", "plain frame"), ("update_frame", "update frame")):
        r = report.get(kind)
        if r is None:
            lines.append(f"  {label}: none in this run")
            continue
        where = f" (frame {r['frame']}{', segmented' if r['segmented'] else ''}; {r['frames']} such frames, " \
                f"syncs {r['host_syncs_range'][0]}-{r['host_syncs_range'][1]})" if kind != "init" else ""
        cuda = "" if r["cuda_sync_warnings"] is None else f", CUDA's sync debug mode saw {r['cuda_sync_warnings']}"
        lines.append(f"  {label}{where}: {r['host_syncs']} host syncs (budget {r['budget']}){cuda}; "
                     f"{r['aten_ops']} ATen ops ({_network_ops(r)}, {r['tracker_ops']} the tracker's); "
                     f"{r['uploads']} async uploads ({r['upload_bytes'] / 1e6:.2f} MB), "
                     f"{r['download_bytes'] / 1e6:.2f} MB downloaded")
        for site, n in r["sync_sites"].items():
            lines.append(f"      {n} x {site}")
    lines.append(f"  within the budgets (syncs; the tracker's own ops <= {report['tracker_op_budget']} per plain "
                 f"frame): {'yes' if report['within_budget'] else 'NO'}")
    plain = report.get("plain_frame")
    if plain is not None:
        if report["frame_ops_within_budget"]:
            verdict = "yes"
        elif report["cuda_graphs"]:
            verdict = "NO"
        else:
            verdict = f"NO ({plain['network_ops']} are the networks' own launches: cuda_graphs=true replays them)"
        lines.append(f"  whole plain frame <= {report['frame_op_budget']} ATen ops: {verdict}")
    for name, reason in report.get("graph_fallbacks", {}).items():
        lines.append(f"  without a CUDA graph: {name}: {reason}")
    return "\n".join(lines)


def _network_ops(r: Dict[str, Any]) -> str:
    if r["graph_replays"]:
        return f"{r['network_ops']} for the networks: {r['graph_replays']} CUDA-graph replays"
    return f"{r['network_ops']} in the networks"
