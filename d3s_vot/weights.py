"""Network weights for D3S: load the authors' files safely, pack them into one checked file.

D3S runs two ResNet-50s (see ``docs/weights.md``): the segmentation network of the authors'
``SegmNet.pth.tar`` (its own backbone, whose BatchNorm statistics were re-estimated in training) and
torchvision's ImageNet ResNet-50 for the DCF. The authors' file is a pickle of their training
framework, so it is read with a restricted unpickler that never imports or runs the framework's
code; the result is stored as one ``d3s.safetensors`` pack (plain tensors, provenance and a
content hash) that later loads without pickle at all. Nothing is ever downloaded.

Command line: ``python -m d3s_vot.weights pack|inspect|verify`` (``--help`` for details).
"""
from __future__ import annotations

import _compat_pickle
import argparse
import collections
import hashlib
import math
import os
import pickle
import re
import sys
import types
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple, Union

import numpy as np
import torch

PathLike = Union[str, os.PathLike]

PACK_FORMAT = "d3s_vot.pack/1"
PACK_NAME = "d3s.safetensors"
SEGM_FILE_NAME = "SegmNet.pth.tar"
BACKBONE_FILE_NAMES = ("resnet50-0676ba61.pth", "resnet50-19c8e357.pth")
DEFAULT_CACHE_DIR = Path("~/.cache/d3s_vot").expanduser()
WEIGHTS_ENV = "D3S_WEIGHTS"
TRAIN_FORMAT_PREFIX = "d3s_vot.train/"

SEGM_PREFIX = "segm/"
BACKBONE_PREFIX = "backbone/"
MIXER_KEY = "segm_predictor.mixer.0.weight"
RANDOM_NOTE = "random weights: for tests and demos only; tracking quality is meaningless"

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


class WeightsError(Exception):
    """A user-facing problem with weight files (missing, unsafe, wrong network); the message says what to do."""


@dataclass(frozen=True)
class D3SWeights:
    """Everything the tracker needs, as CPU tensors.

    segm_state: :class:`d3s_vot.model.SegmNet` state dict (the authors' checkpoint keys).
    backbone_state: the DCF's ResNet-50 (:class:`d3s_vot.model.ResNet50Trunk`, torchvision keys).
    metadata: provenance (source files, sha256s, format version, notes), all strings.
    """

    segm_state: Dict[str, torch.Tensor]
    backbone_state: Dict[str, torch.Tensor]
    metadata: Dict[str, str] = field(default_factory=dict)


def default_cache_dir() -> Path:
    """``~/.cache/d3s_vot``, evaluated now (so a changed ``HOME`` is honoured)."""
    return Path("~/.cache/d3s_vot").expanduser()


# ----------------------------------------------------------------------------------------------
# Expected layouts
# ----------------------------------------------------------------------------------------------

def expected_segm_shapes() -> Dict[str, Tuple[int, ...]]:
    """Key -> shape of :class:`SegmNet`'s state dict (built on the meta device: no memory, no init cost)."""
    from d3s_vot.model import SegmNet
    with torch.device("meta"):
        net = SegmNet()
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


def expected_backbone_shapes() -> Dict[str, Tuple[int, ...]]:
    """Key -> shape of torchvision's ResNet-50 state dict (the DCF backbone)."""
    from d3s_vot.model import ResNet50Trunk
    with torch.device("meta"):
        net = ResNet50Trunk()
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


def _is_counter(key: str) -> bool:
    return key.endswith("num_batches_tracked")


def _few(items: Iterable[str], n: int = 5) -> str:
    items = list(items)
    text = ", ".join(items[:n])
    return text + (f" (and {len(items) - n} more)" if len(items) > n else "")


def _strip_module_prefix(state: Mapping[str, Any]) -> Dict[str, Any]:
    """Remove the ``module.`` prefix that DataParallel/DDP put on every key."""
    if state and all(k.startswith("module.") for k in state):
        return {k[len("module."):]: v for k, v in state.items()}
    return dict(state)


def conform_state(state: Mapping[str, Any], expected: Mapping[str, Tuple[int, ...]], what: str,
                  source: str) -> Dict[str, torch.Tensor]:
    """Check keys and shapes exactly; return float32 tensors (int64 BN counters), in ``expected``'s order.

    Missing ``num_batches_tracked`` counters (files from PyTorch < 0.4.1) are filled with 0.
    """
    state = _strip_module_prefix(state)
    not_tensors = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise WeightsError(f"{source}: not a {what} state dict: entries that are not tensors: {_few(not_tensors)}")
    missing = [k for k in expected if k not in state and not _is_counter(k)]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys, e.g. {_few(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys, e.g. {_few(unexpected)}")
        raise WeightsError(f"{source}: not a {what} state dict: " + "; ".join(parts))
    wrong = [f"{k} {tuple(state[k].shape)} (expected {shape})" for k, shape in expected.items()
             if k in state and tuple(state[k].shape) != shape]
    if wrong:
        raise WeightsError(f"{source}: {what} tensors with the wrong shape: {_few(wrong, 4)}")
    out: Dict[str, torch.Tensor] = {}
    for key in expected:
        if _is_counter(key):
            value = state.get(key, torch.tensor(0, dtype=torch.int64))
            out[key] = value.detach().to("cpu", torch.int64).clone()
            continue
        value = state[key]
        if not value.is_floating_point():
            raise WeightsError(f"{source}: {what} tensor {key} has dtype {value.dtype}, expected floating point")
        out[key] = value.detach().to("cpu", torch.float32).contiguous().clone()
    return out


def check_segm_state(state: Mapping[str, Any], source: str) -> Dict[str, torch.Tensor]:
    """Validate a SegmNet state dict (411 keys, exact shapes); reject the distance-map-less variant."""
    mixer = _strip_module_prefix(state).get(MIXER_KEY)
    if isinstance(mixer, torch.Tensor) and mixer.dim() == 4 and mixer.shape[1] == 2:
        raise WeightsError(
            f"{source}: {MIXER_KEY} has 2 input channels: this segmentation network was trained without "
            "the distance map, so it is not D3S's network (D3S's mixer takes 3 channels: foreground "
            "probability, foreground similarity, distance map)")
    return conform_state(state, expected_segm_shapes(), "D3S segmentation network (SegmNet)", source)


def check_backbone_state(state: Mapping[str, Any], source: str) -> Dict[str, torch.Tensor]:
    """Validate a torchvision ResNet-50 state dict."""
    return conform_state(state, expected_backbone_shapes(), "torchvision ResNet-50", source)


# ----------------------------------------------------------------------------------------------
# Restricted unpickling of the authors' training checkpoint
# ----------------------------------------------------------------------------------------------

#: Modules whose objects are replaced by inert stand-ins: the authors' training framework (its old
#: name ``dlframework`` included) and numpy scalars that may sit in the training statistics.
INERT_MODULE_ROOTS = ("ltr", "dlframework", "pytracking", "numpy")


class InertObject:
    """Stand-in for an object of the training framework: accepts any construction and state, runs nothing."""

    def __new__(cls, *args: Any, **kwargs: Any) -> "InertObject":
        obj = super().__new__(cls)
        object.__setattr__(obj, "_args", args)
        object.__setattr__(obj, "_kwargs", kwargs)
        object.__setattr__(obj, "_state", None)
        object.__setattr__(obj, "_items", {})
        object.__setattr__(obj, "_list", [])
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        object.__setattr__(self, "_state", state)

    def __setitem__(self, key: Any, value: Any) -> None:
        self._items[key] = value

    def __getitem__(self, key: Any) -> Any:
        return self._items[key]

    def append(self, value: Any) -> None:
        self._list.append(value)

    def extend(self, values: Iterable[Any]) -> None:
        self._list.extend(values)

    @property
    def state(self) -> Any:
        """What the pickle stored for the object (usually its ``__dict__``)."""
        return self._state

    def __repr__(self) -> str:
        return f"<inert {type(self).__module__}.{type(self).__qualname__}>"


def _allowed_globals() -> Dict[Tuple[str, str], Any]:
    """Globals a pickle of tensors and plain containers needs; nothing that can run arbitrary code."""
    allowed: Dict[Tuple[str, str], Any] = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch", "Size"): torch.Size,
        ("torch", "device"): torch.device,
        ("torch", "Tensor"): torch.Tensor,
        ("torch.nn.parameter", "Parameter"): torch.nn.Parameter,
        ("torch.serialization", "_get_layout"): torch.serialization._get_layout,
        ("torch._tensor", "_rebuild_from_type_v2"): torch._tensor._rebuild_from_type_v2,
        ("_codecs", "encode"): __import__("codecs").encode,
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
        ("builtins", "complex"): complex,
        ("builtins", "bytearray"): bytearray,
        ("builtins", "slice"): slice,
    }
    for name in ("_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_tensor_v3", "_rebuild_parameter",
                 "_rebuild_parameter_with_state", "_rebuild_sparse_tensor", "_rebuild_qtensor",
                 "_rebuild_device_tensor_from_numpy", "_rebuild_meta_tensor_no_storage"):
        if hasattr(torch._utils, name):
            allowed[("torch._utils", name)] = getattr(torch._utils, name)
    for dtype in {v for v in vars(torch).values() if isinstance(v, torch.dtype)}:
        allowed[("torch", str(dtype).split(".", 1)[1])] = dtype
    for name in dir(torch):
        if name.endswith("Storage"):
            allowed[("torch", name)] = getattr(torch, name)
    return allowed


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle references a global that is neither a tensor helper nor a training-framework object."""


class RestrictedUnpickler(pickle.Unpickler):
    """Rebuilds tensors and containers; training-framework objects become :class:`InertObject`s; refuses the rest."""

    def __init__(self, file: Any, **kwargs: Any) -> None:
        super().__init__(file, **kwargs)
        self._allowed = _allowed_globals()
        self._inert_classes: Dict[Tuple[str, str], type] = {}

    def find_class(self, module: str, name: str) -> Any:
        # protocol-2 pickles name Python 2 modules (``__builtin__``); map them as pickle itself would
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if (module, name) in self._allowed:
            return self._allowed[(module, name)]
        if module.split(".", 1)[0] in INERT_MODULE_ROOTS:
            key = (module, name)
            if key not in self._inert_classes:
                self._inert_classes[key] = type(name.split(".")[-1], (InertObject,),
                                                {"__module__": module, "__qualname__": name})
            return self._inert_classes[key]
        raise UnsafePickleError(f"refusing to unpickle the global {module}.{name}: it is neither a tensor "
                                "nor an object of the D3S training framework")


def _restricted_load(file: Any, **kwargs: Any) -> Any:
    return RestrictedUnpickler(file, **kwargs).load()


#: Module-like object for ``torch.load(pickle_module=...)``.
restricted_pickle = types.SimpleNamespace(__name__="d3s_vot.restricted_pickle", Unpickler=RestrictedUnpickler,
                                          load=_restricted_load, UnpicklingError=pickle.UnpicklingError)


def _require_file(path: PathLike, what: str, where: str) -> Path:
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsError(f"{what} not found: {path} ({where})")
    return path


def torch_load_restricted(path: PathLike) -> Any:
    """``torch.load`` (zip or legacy format) with the restricted unpickler, to CPU."""
    path = Path(path)
    try:
        return torch.load(str(path), map_location="cpu", pickle_module=restricted_pickle, weights_only=False)
    except UnsafePickleError as exc:
        raise WeightsError(f"{path}: {exc}; not loading it (it could run code on this machine)") from None
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, KeyError, TypeError, AttributeError,
            OSError) as exc:
        raise WeightsError(f"{path}: cannot read it as a PyTorch checkpoint ({type(exc).__name__}: {exc})") from None


def _state_dict_of(obj: Any, source: str) -> Mapping[str, Any]:
    """The state dict inside a loaded checkpoint: ``net`` (the authors' trainer), ``state_dict``, or itself."""
    if isinstance(obj, Mapping):
        for key in ("net", "state_dict", "model"):
            if isinstance(obj.get(key), Mapping):
                return obj[key]
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return obj
    raise WeightsError(f"{source}: no state dict found (expected a dict of tensors, or a checkpoint with a "
                       "'net' entry like the authors' SegmNet.pth.tar)")


def _pack_section(tensors: Dict[str, torch.Tensor], prefix: str) -> Dict[str, torch.Tensor]:
    """The ``prefix`` part of a pack (prefix removed); a safetensors file without sections as is."""
    if not any(k.startswith(prefix) for k in tensors):
        return tensors
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def _is_train_checkpoint(obj: Any) -> bool:
    return isinstance(obj, Mapping) and str(obj.get("format", "")).startswith(TRAIN_FORMAT_PREFIX)


def load_segm_checkpoint(path: PathLike) -> Dict[str, torch.Tensor]:
    """SegmNet state dict from the authors' ``SegmNet.pth.tar``, a plain state-dict file, or a safetensors file."""
    path = _require_file(path, "segmentation network weights", WHERE_SEGM)
    if _is_safetensors(path):
        return check_segm_state(_pack_section(_read_safetensors(path)[0], SEGM_PREFIX), str(path))
    obj = torch_load_restricted(path)
    return check_segm_state(_state_dict_of(obj, str(path)), str(path))


def load_backbone_checkpoint(path: PathLike) -> Dict[str, torch.Tensor]:
    """DCF backbone state dict from a torchvision ResNet-50 file (plain state dict, loaded with ``weights_only``)."""
    path = _require_file(path, "DCF backbone weights (ResNet-50)", WHERE_BACKBONE)
    if _is_safetensors(path):
        return check_backbone_state(_pack_section(_read_safetensors(path)[0], BACKBONE_PREFIX), str(path))
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception:  # not a plain state dict: fall back to the restricted unpickler (clear errors)
        obj = torch_load_restricted(path)
    return check_backbone_state(_state_dict_of(obj, str(path)), str(path))


# ----------------------------------------------------------------------------------------------
# Hashes and the pack format
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

    segm = check_segm_state(weights.segm_state, "weights to pack")
    backbone = check_backbone_state(weights.backbone_state, "weights to pack")
    tensors = pack_tensors(D3SWeights(segm, backbone))
    metadata = {str(k): str(v) for k, v in weights.metadata.items()}
    metadata.pop("loaded_from", None)
    metadata.update({
        "format": PACK_FORMAT,
        "content_sha256": content_sha256(tensors),
        "created_by": f"d3s_vot {_package_version()}",
        "torch_version": torch.__version__,
    })
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        save_file(tensors, str(tmp), metadata=metadata)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return file_sha256(path)


def _is_safetensors(path: Path) -> bool:
    """safetensors files start with an 8-byte little-endian header length followed by ``{``."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(9)
    except OSError:
        return False
    if len(head) < 9 or head[8:9] != b"{":
        return False
    return int.from_bytes(head[:8], "little") < os.path.getsize(path)


def _read_safetensors(path: Path) -> Tuple[Dict[str, torch.Tensor], Dict[str, str]]:
    from safetensors import safe_open
    try:
        tensors = {}
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = dict(handle.metadata() or {})
            for key in handle.keys():
                tensors[key] = handle.get_tensor(key)
    except Exception as exc:  # safetensors raises its own error types for damaged files
        raise WeightsError(f"{path}: not a readable safetensors file ({exc})") from None
    return tensors, metadata


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
    tensors, metadata = _read_safetensors(path)
    problems: List[str] = []
    if metadata.get("format") != PACK_FORMAT:
        problems.append(f"format is {metadata.get('format')!r}, expected {PACK_FORMAT!r}")
    stored = metadata.get("content_sha256", "")
    actual = content_sha256(tensors)
    if stored != actual:
        problems.append(f"content hash mismatch: stored {stored or '(none)'}, computed {actual} "
                        "(the file was modified or damaged)")
    segm = {k[len(SEGM_PREFIX):]: v for k, v in tensors.items() if k.startswith(SEGM_PREFIX)}
    backbone = {k[len(BACKBONE_PREFIX):]: v for k, v in tensors.items() if k.startswith(BACKBONE_PREFIX)}
    other = [k for k in tensors if not k.startswith((SEGM_PREFIX, BACKBONE_PREFIX))]
    if other:
        problems.append(f"unexpected tensors: {_few(other)}")
    weights = None
    try:
        weights = D3SWeights(check_segm_state(segm, f"{path} [{SEGM_PREFIX}*]"),
                             check_backbone_state(backbone, f"{path} [{BACKBONE_PREFIX}*]"),
                             {**metadata, "loaded_from": str(path)})
    except WeightsError as exc:
        problems.append(str(exc))
    return PackCheck(weights, problems, stored, actual)


def load_pack(path: PathLike, *, verify: bool = True) -> D3SWeights:
    """Load a ``d3s.safetensors`` pack; with ``verify`` also check its content hash."""
    path = _require_file(path, "weights pack", f"create it with: python -m d3s_vot.weights pack ... ({HOW_TO_PACK})")
    result = check_pack(path)
    problems = result.problems if verify else [p for p in result.problems if not p.startswith("content hash")]
    if problems or result.weights is None:
        raise WeightsError(f"{path}: not a valid D3S weights pack: " + "; ".join(problems))
    return result.weights


# ----------------------------------------------------------------------------------------------
# Resolution of what to load
# ----------------------------------------------------------------------------------------------

def _backbone_candidates(cache_dir: Path) -> List[Path]:
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    return [d / name for d in (cache_dir, hub) for name in BACKBONE_FILE_NAMES]


def find_backbone_file(cache_dir: Optional[PathLike] = None) -> Optional[Path]:
    """The first torchvision ResNet-50 file in the D3S cache dir or torch hub's checkpoint dir."""
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return next((p for p in _backbone_candidates(cache) if p.is_file()), None)


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
        cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        found = find_backbone_file(cache)
        if found is None:
            looked = ", ".join(str(p) for p in _backbone_candidates(cache))
            raise WeightsError(f"DCF backbone weights not found (looked for {looked}); {WHERE_BACKBONE}, "
                               "or pass its path (--backbone / backbone=)")
        backbone = found
    backbone_path = Path(backbone).expanduser()
    backbone_state = load_backbone_checkpoint(backbone_path)
    return D3SWeights(segm_state, backbone_state, _provenance(segm_path, backbone_path))


def _load_train_checkpoint(path: Path) -> D3SWeights:
    """Weights of a ``d3s_vot.train`` checkpoint (read by the trainer's own loader), checked like any other."""
    from d3s_vot.train import checkpoint as train_checkpoint

    errors = getattr(train_checkpoint, "CheckpointError", WeightsError)
    try:
        weights = train_checkpoint.load_checkpoint_weights(path)
    except KeyError as exc:
        raise WeightsError(f"{path}: incomplete training checkpoint, no entry {exc}") from None
    except errors as exc:
        raise WeightsError(f"{path}: {exc}") from None
    return D3SWeights(check_segm_state(weights.segm_state, f"{path} [net]"),
                      check_backbone_state(weights.backbone_state, f"{path} [backbone_state]"),
                      {**weights.metadata, "loaded_from": str(path)})


def _load_path(path: Path, backbone: Optional[PathLike], cache_dir: Optional[PathLike]) -> D3SWeights:
    """One file: a pack, a training checkpoint of this package, or a SegmNet checkpoint (+ backbone)."""
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path} ({WHERE_SEGM}; {WHERE_BACKBONE}; {HOW_TO_PACK})")
    if _is_safetensors(path):
        if backbone is not None:
            raise WeightsError(f"{path} is a weights pack, it already contains the DCF backbone: "
                               "do not pass a backbone file with it")
        return load_pack(path)
    obj = torch_load_restricted(path)
    if _is_train_checkpoint(obj):
        return _load_train_checkpoint(path)
    segm_state = check_segm_state(_state_dict_of(obj, str(path)), str(path))
    return _with_backbone(path, segm_state, backbone, cache_dir)


def load_weights(path: Optional[PathLike] = None, *, segm: Optional[PathLike] = None,
                 backbone: Optional[PathLike] = None, cache_dir: Optional[PathLike] = None) -> D3SWeights:
    """Load D3S's weights from disk (never downloads).

    ``path``: a ``d3s.safetensors`` pack, a training checkpoint of this package, or the authors'
    ``SegmNet.pth.tar`` (then the ResNet-50 comes from ``backbone`` or the caches). ``segm`` /
    ``backbone``: the two original files. Nothing given: ``$D3S_WEIGHTS``, then
    ``<cache_dir>/d3s.safetensors``, then ``<cache_dir>/SegmNet.pth.tar`` with
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
    env = os.environ.get(WEIGHTS_ENV)
    if env:
        env_path = Path(env).expanduser()
        if not env_path.is_file():
            raise WeightsError(f"${WEIGHTS_ENV} points to {env_path}, which does not exist")
        return _load_path(env_path, None, cache_dir)
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    if (cache / PACK_NAME).is_file():
        return load_pack(cache / PACK_NAME)
    if (cache / SEGM_FILE_NAME).is_file() and find_backbone_file(cache) is not None:
        return load_files(cache / SEGM_FILE_NAME, None, cache_dir=cache)
    looked = [f"${WEIGHTS_ENV} (not set)", str(cache / PACK_NAME), str(cache / SEGM_FILE_NAME)]
    looked += [str(p) for p in _backbone_candidates(cache)]
    raise WeightsError("D3S weights not found; looked for: " + ", ".join(looked) + f". Get them: {WHERE_SEGM}; "
                       f"{WHERE_BACKBONE}; {HOW_TO_PACK}. Or pass a file explicitly (--weights / load_weights(path)).")


# ----------------------------------------------------------------------------------------------
# Random weights (tests, demos)
# ----------------------------------------------------------------------------------------------

def _uniform(seed: int, seed_name: str, shape: Tuple[int, ...], lo: float, hi: float) -> np.ndarray:
    """float64 U(lo, hi) from a PCG64 stream keyed by (seed, crc32(seed_name)): stable across numpy versions."""
    n = int(np.prod(shape)) if shape else 1
    bits = np.random.PCG64(np.random.SeedSequence([int(seed), zlib.crc32(seed_name.encode("utf-8"))]))
    raw = np.asarray(bits.random_raw(n), dtype=np.uint64) if n else np.zeros(0, np.uint64)
    raw >>= np.uint64(11)
    u = raw.astype(np.float64)
    u *= 2.0 ** -53
    u *= hi - lo
    u += lo
    return u.reshape(shape)


def _f32(values: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(values.astype(np.float32)))


def _random_resnet(seed: int, shapes: Mapping[str, Tuple[int, ...]], stats_ns: str,
                   shared: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """ResNet-50 tensors; conv/fc weights and BN affine are cached in ``shared`` (same in both backbones)."""
    out: Dict[str, torch.Tensor] = {}
    for key, shape in shapes.items():
        module, _, leaf = key.rpartition(".")
        if leaf == "num_batches_tracked":
            out[key] = torch.tensor(0, dtype=torch.int64)
        elif leaf in ("running_mean", "running_var"):
            lo, hi = (-0.1, 0.1) if leaf == "running_mean" else (0.5, 1.5)
            out[key] = _f32(_uniform(seed, f"{stats_ns}/{key}", shape, lo, hi))
        else:
            if key not in shared:
                if len(shape) == 4:
                    gain = 0.2 if module.endswith(".conv3") else 1.0
                    a = gain * math.sqrt(6.0 / int(np.prod(shape[1:])))
                    lo, hi = -a, a
                elif module == "fc":
                    a = math.sqrt(1 / 2048.0) if leaf == "weight" else 0.01
                    lo, hi = -a, a
                else:  # BatchNorm affine
                    lo, hi = (0.5, 1.5) if leaf == "weight" else (-0.1, 0.1)
                shared[key] = _f32(_uniform(seed, key, shape, lo, hi))
            out[key] = shared[key].clone()
    return out


def _random_head(seed: int, shapes: Mapping[str, Tuple[int, ...]]) -> Dict[str, torch.Tensor]:
    out: Dict[str, torch.Tensor] = {}
    for key, shape in shapes.items():
        leaf = key.rpartition(".")[2]
        if leaf == "num_batches_tracked":
            out[key] = torch.tensor(0, dtype=torch.int64)
            continue
        if len(shape) == 4:
            a = math.sqrt(6.0 / int(np.prod(shape[1:])))
            values = _uniform(seed, key, shape, -a, a)
            if key == MIXER_KEY:
                values[:, 2] *= 0.01  # the distance-map channel holds values up to ~271
        elif key.endswith(".0.bias"):
            values = _uniform(seed, key, shape, -0.1, 0.1)
        else:
            lo, hi = {"weight": (0.5, 1.5), "bias": (-0.1, 0.1), "running_mean": (-0.1, 0.1),
                      "running_var": (0.5, 1.5)}[leaf]
            values = _uniform(seed, key, shape, lo, hi)
        out[key] = _f32(values)
    return out


def random_weights(seed: int = 0) -> D3SWeights:
    """Deterministic untrained weights (offline, about a second), for tests and demos only.

    Follows the documented rule of the parity fixtures' ``make_weights.py`` (Kaiming-uniform convs,
    gain 0.2 on each residual branch's last conv, BN affine U(0.5, 1.5) / U(-0.1, 0.1)), so
    ``random_weights(s)`` equals its ``segm_state(s)`` and ``dcf_backbone_state(s)`` bit for bit. As in
    the real D3S, both backbones share conv weights and differ in their BN running statistics.
    """
    segm_shapes = expected_segm_shapes()
    trunk = {k[len("feature_extractor."):]: s for k, s in segm_shapes.items() if k.startswith("feature_extractor.")}
    shared: Dict[str, torch.Tensor] = {}
    backbone = _random_resnet(seed, expected_backbone_shapes(), "dcf", shared)
    segm = {"feature_extractor." + k: v for k, v in _random_resnet(seed, trunk, "segm", shared).items()}
    segm.update(_random_head(seed, {k: s for k, s in segm_shapes.items() if k.startswith("segm_predictor.")}))
    segm = {k: segm[k] for k in segm_shapes}
    metadata = {"format": PACK_FORMAT, "segm_source": f"random_weights(seed={seed})",
                "backbone_source": f"random_weights(seed={seed})", "notes": RANDOM_NOTE}
    return D3SWeights(segm, backbone, metadata)


# ----------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------

def _params(state: Mapping[str, torch.Tensor]) -> int:
    return sum(v.numel() for k, v in state.items() if not _is_counter(k))


def compare_backbones(weights: D3SWeights) -> Dict[str, bool]:
    """Whether the segmentation backbone's conv weights / BN statistics equal the DCF backbone's."""
    segm = {k[len("feature_extractor."):]: v for k, v in weights.segm_state.items()
            if k.startswith("feature_extractor.")}
    backbone = weights.backbone_state

    def same(pred) -> bool:
        return all(torch.equal(segm[k], backbone[k]) for k in backbone if pred(k))

    return {
        "conv_weights_equal": same(lambda k: backbone[k].dim() == 4),
        "bn_stats_equal": same(lambda k: k.endswith(("running_mean", "running_var"))),
    }


def describe(weights: D3SWeights) -> List[str]:
    """Human-readable summary lines (used by ``inspect``)."""
    lines = [f"segmentation network: {len(weights.segm_state)} tensors, {_params(weights.segm_state):,} parameters",
             f"DCF backbone: {len(weights.backbone_state)} tensors, {_params(weights.backbone_state):,} parameters"]
    mixer = weights.segm_state.get(MIXER_KEY)
    if mixer is not None:
        lines.append(f"mixer input channels: {mixer.shape[1]} (D3S: 3)")
    cmp = compare_backbones(weights)
    lines.append("segmentation backbone conv weights vs DCF backbone: "
                 + ("identical" if cmp["conv_weights_equal"] else "differ"))
    lines.append("segmentation backbone BN statistics vs DCF backbone: "
                 + ("identical (unexpected for the real D3S, whose segmentation training re-estimated them)"
                    if cmp["bn_stats_equal"] else "differ (as expected for D3S)"))
    return lines


def _inspect_checkpoint(path: Path) -> List[str]:
    """Top-level structure of a pickled checkpoint (read with the restricted unpickler)."""
    obj = torch_load_restricted(path)
    lines = [f"file: {path}", "kind: PyTorch checkpoint (read without executing pickled code)"]
    if isinstance(obj, Mapping) and not all(isinstance(v, torch.Tensor) for v in obj.values()):
        lines.append("top-level keys: " + ", ".join(map(str, obj.keys())))
        for key in ("epoch", "actor_type", "net_type", "format"):
            if key in obj:
                lines.append(f"{key}: {obj[key]}")
        constructor = obj.get("constructor")
        if isinstance(constructor, InertObject) and isinstance(constructor.state, Mapping):
            lines.append("constructor: " + ", ".join(f"{k}={v!r}" for k, v in constructor.state.items()))
    state = _strip_module_prefix(_state_dict_of(obj, str(path)))
    lines.append(f"state dict: {len(state)} tensors")
    if MIXER_KEY in state:
        lines.append(f"mixer input channels: {state[MIXER_KEY].shape[1]} (D3S: 3)")
    return lines


def _cmd_pack(args: argparse.Namespace) -> int:
    if args.random_seed is not None:
        if args.segm or args.backbone:
            raise WeightsError("--random-seed cannot be combined with --segm/--backbone")
        weights = random_weights(args.random_seed)
    elif args.segm is None:
        raise WeightsError("give --segm SegmNet.pth.tar (and --backbone resnet50-0676ba61.pth), or --random-seed")
    else:
        weights = load_files(args.segm, args.backbone)
    out = Path(args.out).expanduser() if args.out else default_cache_dir() / PACK_NAME
    digest = save_pack(weights, out)
    print(f"wrote {out}")
    print(f"sha256 {digest}")
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    path = _require_file(args.path, "weights file", "give the path of a d3s.safetensors pack or a checkpoint")
    if not _is_safetensors(path):
        print("\n".join(_inspect_checkpoint(path)))
        return 0
    result = check_pack(path)
    _, metadata = _read_safetensors(path)
    print(f"file: {path}")
    print(f"format: {metadata.get('format', '(none)')}")
    for key in sorted(metadata):
        if key != "format":
            print(f"metadata {key}: {metadata[key]}")
    if result.weights is not None:
        print("\n".join(describe(result.weights)))
    for problem in result.problems:
        print(f"problem: {problem}")
    print(f"sha256 {file_sha256(path)}")
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    path = _require_file(args.path, "weights pack", "give the path of a d3s.safetensors pack")
    expected = args.sha256.lower().strip() if args.sha256 else None
    if expected is not None and not re.fullmatch(r"[0-9a-f]{64}", expected):
        raise WeightsError(f"--sha256 must be 64 hexadecimal digits, got {args.sha256!r}")
    try:
        problems = check_pack(path).problems
    except WeightsError as exc:
        problems = [str(exc).removeprefix(f"{path}: ")]
    digest = file_sha256(path)
    if expected is not None and digest != expected:
        problems.append(f"file sha256 is {digest}, expected {expected}")
    if problems:
        print(f"FAILED {path}: " + "; ".join(problems))
        return 1
    print(f"OK {path}: format {PACK_FORMAT}, content hash matches, all keys and shapes correct, sha256 {digest}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from d3s_vot.io_utils import CliArgumentParser

    parser = CliArgumentParser(prog="python -m d3s_vot.weights",
                               description="Pack, inspect and verify D3S weights (see docs/weights.md).")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=CliArgumentParser)
    pack = sub.add_parser("pack", help="convert SegmNet.pth.tar + torchvision ResNet-50 into one d3s.safetensors")
    pack.add_argument("--segm", help="the authors' SegmNet.pth.tar (or a plain SegmNet state dict)")
    pack.add_argument("--backbone", help="torchvision resnet50-0676ba61.pth (default: looked up in "
                      "~/.cache/d3s_vot and torch hub's checkpoints folder)")
    pack.add_argument("--random-seed", type=int, help="pack random_weights(SEED) instead (tests and demos)")
    pack.add_argument("--out", help=f"output file (default ~/.cache/d3s_vot/{PACK_NAME})")
    pack.set_defaults(func=_cmd_pack)
    inspect = sub.add_parser("inspect", help="print the format, provenance and a summary of a pack or checkpoint")
    inspect.add_argument("path")
    inspect.set_defaults(func=_cmd_inspect)
    verify = sub.add_parser("verify", help="check a pack's integrity (exit 0 OK, 1 failed)")
    verify.add_argument("path")
    verify.add_argument("--sha256", help="also require this sha256 of the whole file")
    verify.set_defaults(func=_cmd_verify)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except WeightsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
