"""One way to build a D3S tracker, shared by every entry point.

:func:`build_tracker` is the only place that turns a :class:`TrackerSpec` (where the weights come
from, device, dtype, parameter overrides) into a :class:`~d3s_vot.tracker.D3STracker`: the TraX entry,
``track``, the GOT-10k/TrackingNet runners, the bench and the demo all call it, so a bad setting fails
the same way everywhere: one :class:`TrackerBuildError` with a one-line message, raised before the
(slow) weights are read when the cheap settings are wrong.

    from d3s_vot import TrackerSpec, build_tracker
    tracker = build_tracker(TrackerSpec(weights="d3s.safetensors", device="cuda", params={"cg_iter": "3"}))
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Tuple, Union

from .params import D3SParams
from d3s_vot.common.cli import UserError

DTYPES = ("float32", "float64")     # what D3STracker supports


OPTIONS = {"params": "--param", "dtype": "--dtype", "device": "--device"}   # the CLIs' names for the settings


class TrackerBuildError(UserError, ValueError):
    """A setting the user must fix; the message is one line. ``setting``: which one ('weights',
    'params', 'dtype' or 'device'), so a command line can name its own option."""

    def __init__(self, message: str, setting: str = "weights"):
        super().__init__(message)
        self.setting = setting

    def cli_message(self) -> str:
        """The message prefixed with the option that carries the setting (``--param: ...``)."""
        option = OPTIONS.get(self.setting)
        return f"{option}: {self}" if option else str(self)


def _as_pairs(params: Union[Mapping[str, Any], Tuple[Tuple[str, Any], ...], None]) -> Tuple[Tuple[str, Any], ...]:
    if not params:
        return ()
    items = params.items() if isinstance(params, Mapping) else params
    return tuple((str(name), value) for name, value in items)


@dataclass(frozen=True)
class TrackerSpec:
    """What to build. Plain values only: picklable, so ``spawn`` workers can build their own tracker.

    weights: a ``d3s.safetensors`` pack, a training checkpoint of this package or the authors'
        ``SegmNet.pth.tar`` (None: ``load_weights()``'s search: ``$D3S_WEIGHTS``, ``~/.cache/d3s_vot``).
    segm_weights, backbone_weights: the two original files instead of ``weights`` (the authors'
        ``SegmNet.pth.tar`` and the ImageNet ResNet-50; without the latter it is looked up in the caches).
    random_weights_seed: untrained random weights instead (tests and demos only).
    device: ``cpu``, ``cuda``, ``cuda:N`` or None (CUDA when present).
    dtype: ``float32`` or ``float64`` (the reference mode).
    params: :class:`D3SParams` overrides, a mapping or pairs; string values are parsed to the field's type.
    fast_mode: apply :data:`d3s_vot.params.FAST_MODE` on top of the overrides.
    """

    weights: Optional[str] = None
    segm_weights: Optional[str] = None
    backbone_weights: Optional[str] = None
    random_weights_seed: Optional[int] = None
    device: Optional[str] = None
    dtype: str = "float32"
    params: Tuple[Tuple[str, Any], ...] = field(default=())
    fast_mode: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", _as_pairs(self.params))
        for name in ("weights", "segm_weights", "backbone_weights"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, str(getattr(self, name)))
        if not isinstance(self.dtype, str):          # a torch.dtype
            object.__setattr__(self, "dtype", str(self.dtype).replace("torch.", ""))

    @property
    def uses_random_weights(self) -> bool:
        return self.random_weights_seed is not None


def tracker_params(spec: TrackerSpec) -> D3SParams:
    """The spec's :class:`D3SParams` (defaults, then the overrides, then fast mode)."""
    try:
        params = D3SParams().with_overrides(dict(spec.params))
        return params.fast_mode() if spec.fast_mode else params
    except (TypeError, ValueError) as exc:
        raise TrackerBuildError(str(exc), "params") from None


def tracker_dtype(spec: TrackerSpec):
    """The spec's torch dtype (float32 or float64)."""
    import torch

    if spec.dtype not in DTYPES:
        raise TrackerBuildError(f"dtype {spec.dtype!r} is not supported by D3S: use {' or '.join(DTYPES)}", "dtype")
    return getattr(torch, spec.dtype)


def tracker_device(spec: TrackerSpec):
    """The spec's torch device (see :func:`d3s_vot.devices.resolve_device`); a bare ``cuda`` under
    ``torchrun`` is the process's own GPU."""
    from .devices import DeviceError, local_rank, resolve_device

    try:
        return resolve_device(spec.device, rank=local_rank())
    except DeviceError as exc:
        raise TrackerBuildError(str(exc), "device") from None


def check_spec(spec: TrackerSpec) -> D3SParams:
    """Everything that can be checked without reading the weights; returns the parameters."""
    sources = [name for name, value in (("weights", spec.weights), ("segm_weights", spec.segm_weights),
                                        ("random_weights_seed", spec.random_weights_seed)) if value is not None]
    if len(sources) > 1:
        raise TrackerBuildError(f"{' and '.join(sources)} exclude each other: give one source of weights")
    if spec.backbone_weights and not spec.segm_weights:
        raise TrackerBuildError("backbone_weights needs segm_weights (the authors' SegmNet.pth.tar); "
                                "a pack given as weights already has the backbone")
    params = tracker_params(spec)
    tracker_dtype(spec)
    tracker_device(spec)
    return params


def load_spec_weights(spec: TrackerSpec):
    """The weights the spec names (never downloads); :class:`TrackerBuildError` when they cannot be read."""
    from .weights import WeightsError, load_weights, random_weights

    if spec.random_weights_seed is not None:
        return random_weights(spec.random_weights_seed)
    try:
        if spec.segm_weights:
            return load_weights(segm=spec.segm_weights, backbone=spec.backbone_weights)
        return load_weights(spec.weights) if spec.weights else load_weights()
    except WeightsError as exc:
        raise TrackerBuildError(str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - any reader's own error on a damaged file: one line, the file named
        where = spec.weights or spec.segm_weights or "the weights file"
        raise TrackerBuildError(f"cannot read {where}: {type(exc).__name__}: {exc}") from None


def build_tracker(spec: TrackerSpec = TrackerSpec(), weights: Any = None):
    """The D3S tracker a spec describes. ``weights``: already loaded weights to share (the spec's
    weights fields are then ignored). Raises :class:`TrackerBuildError`."""
    from .tracker import D3STracker

    params = check_spec(spec)
    if weights is None:
        weights = load_spec_weights(spec)
    return D3STracker(weights, params=params, device=tracker_device(spec), dtype=tracker_dtype(spec))
