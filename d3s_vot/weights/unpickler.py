"""A pickle reader for other people's checkpoints that rebuilds tensors and never runs their code.

The authors' ``SegmNet.pth.tar`` pickles objects of their training framework (``ltr``); a normal
unpickle would import that framework and could run arbitrary code. Here only tensor helpers and
plain containers are allowed, framework objects become inert stand-ins, and everything else is
refused with a :class:`WeightsError`.
"""
from __future__ import annotations

import _compat_pickle
import codecs
import collections
import pickle
import types
from pathlib import Path
from typing import Any, Dict, Iterable, Tuple

import torch

from .errors import WeightsError, content_problem, one_line
from .files import PathLike

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
        ("_codecs", "encode"): codecs.encode,
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


def torch_load_restricted(path: PathLike) -> Any:
    """``torch.load`` (zip or legacy format) with the restricted unpickler, to CPU."""
    from safetensors import SafetensorError       # newer torch.load hands some files to safetensors

    path = Path(path)
    try:
        return torch.load(str(path), map_location="cpu", pickle_module=restricted_pickle, weights_only=False)
    except UnsafePickleError as exc:
        raise WeightsError(f"{path}: {one_line(exc)}; not loading it (it could run code on this machine)") from None
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, KeyError, TypeError, AttributeError,
            OSError, SafetensorError) as exc:
        problem = content_problem(path) or f"cannot read it as a PyTorch checkpoint ({type(exc).__name__}: {exc})"
        raise WeightsError(f"{path}: {one_line(problem)}") from None
