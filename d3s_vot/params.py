"""All tracker parameters in one frozen dataclass.

The defaults are the original D3S defaults (one parameter set for VOT, GOT-10k, TrackingNet); the
VOS overrides for mask initialisation are applied by the tracker at run time, not stored here.
Override fields with :func:`dataclasses.replace` or :meth:`D3SParams.with_overrides`.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Dict, Iterable, Mapping, Tuple


@dataclass(frozen=True)
class D3SParams:
    # --- DCF sampling -----------------------------------------------------------------------------
    search_area_scale: float = 4.5          # DCF sample side = 4.5 * sqrt(w * h)
    image_sample_size: int = 256            # DCF sample side in pixels (feature grid 16x16)
    feature_stride: int = 16                # ResNet-50 layer3 stride
    # --- optimisation -----------------------------------------------------------------------------
    init_gn_iter: int = 6                   # Gauss-Newton steps at init (joint filter + projection)
    init_cg_iter: int = 60                  # CG iterations at init in total (init_cg_iter // init_gn_iter per step)
    cg_iter: int = 5                        # CG iterations per regular filter update
    post_init_cg_iter: int = 0
    learning_rate: float = 0.0075
    output_sigma_factor: float = 0.25
    kernel_size: int = 4
    compressed_dim: int = 64
    filter_reg: float = 0.1
    projection_reg: float = 1e-4
    response_activation_alpha: float = 0.05  # 'mlu' activation used in the loss
    # --- sample memory ----------------------------------------------------------------------------
    sample_memory_size: int = 250
    train_skipping: int = 10
    # --- augmentation of the first frame ---------------------------------------------------------
    use_augmentation: bool = True
    augmentation_expansion_factor: float = 2.0
    aug_relative_shifts: Tuple[Tuple[float, float], ...] = (
        (0.25, 0.25), (-0.25, 0.25), (0.25, -0.25), (-0.25, -0.25),
        (0.75, 0.75), (-0.75, 0.75), (0.75, -0.75), (-0.75, -0.75))
    aug_fliplr: bool = True
    aug_blurs: Tuple[Tuple[float, float], ...] = ((2, 0.2), (0.2, 2), (3, 1), (1, 3), (2, 2))
    aug_rotations: Tuple[float, ...] = (5, -5, 10, -10, 20, -20, 30, -30, 45, -45, -60, 60)
    # --- localisation -----------------------------------------------------------------------------
    window_output: bool = True
    advanced_localization: bool = True
    target_not_found_threshold: float = -1.0
    distractor_threshold: float = 100.0
    hard_negative_threshold: float = 0.3
    target_neighborhood_scale: float = 2.2
    displacement_scale: float = 0.7
    hard_negative_learning_rate: float = 0.02
    hard_negative_cg_iter: int = 5
    # --- VOT polygon -> box -----------------------------------------------------------------------
    vot_anno_conversion_type: str = "preserve_area"
    # --- segmentation -----------------------------------------------------------------------------
    use_segmentation: bool = True
    segm_search_area_factor: float = 4.0
    segm_feature_sz: int = 24
    segm_output_sz: int = 384
    segm_scale_estimation: bool = True
    segm_optimize_polygon: bool = True
    tracking_uncertainty_thr: float = 3.0
    response_budget_sz: int = 25
    uncertainty_segm_scale_thr: float = 3.5
    uncertainty_segment_thr: float = 10.0
    segm_pixels_ratio: float = 2.0
    consider_segm_pixels_ratio: float = 1.0
    mask_pixels_budget_sz: int = 25
    segm_min_scale: float = 0.2
    max_rel_scale_ch_thr: float = 0.75
    min_scale_change_factor: float = 0.95
    max_scale_change_factor: float = 1.05
    init_segm_mask_thr: float = 0.5
    segm_mask_thr: float = 0.5
    # VOS (mask initialisation) overrides, applied at initialize() when a mask is given
    vos_min_scale_change_factor: float = 0.9
    vos_max_scale_change_factor: float = 1.1
    vos_segm_mask_thr: float = 0.2
    # --- execution --------------------------------------------------------------------------------
    deterministic: bool = True              # bit-identical outputs run to run (False: fastest CUDA kernels, TF32)
    dcf_float64: bool = True                # solve the (ill-conditioned) DCF problems in float64 in any dtype
    channels_last: bool = True              # NHWC trunks in float32 (~25% faster on CPU/GPU; float64 stays NCHW)
    fold_batchnorm: bool = True             # fold BatchNorm into the convolutions (float32; float64 stays unfolded)
    fused_cpu_trunks: bool = True           # folded trunks on CPU: oneDNN conv+ReLU(+add) calls, prepacked weights

    def fast_mode(self) -> "D3SParams":
        """This parameter set with :data:`FAST_MODE` applied (see docs/speed.md)."""
        return self.with_overrides(FAST_MODE)

    def with_overrides(self, overrides: Mapping[str, Any]) -> "D3SParams":
        """Return a copy with fields replaced; values given as strings are parsed to the field's type."""
        fields = {f.name: f for f in dataclasses.fields(self)}
        parsed = {}
        for name, value in overrides.items():
            if name not in fields:
                raise ValueError(f"unknown D3SParams field {name!r}; known fields: {', '.join(sorted(fields))}")
            parsed[name] = _parse_value(name, value, getattr(self, name)) if isinstance(value, str) else value
        return dataclasses.replace(self, **parsed)


#: Fast mode, off by default: the DCF problems are solved in the trackers' dtype (float32: about 2x
#: faster joint Gauss-Newton and filter updates) and CUDA may use its fastest nondeterministic
#: kernels (TF32, autotuned cuDNN). Same algorithm, but it leaves the float64 reference
#: trajectory within a few frames; docs/speed.md has its measured speed-up and its IoU
#: against the default mode (``python -m d3s_vot.bench --compare-fast``).
FAST_MODE: Mapping[str, Any] = MappingProxyType({"dcf_float64": False, "deterministic": False})


def _parse_value(name: str, text: str, current: Any) -> Any:
    import ast
    if isinstance(current, bool):
        low = text.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"parameter {name}: expected a boolean, got {text!r}")
    if isinstance(current, str):
        return text
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
        raise ValueError(f"parameter {name}: cannot parse {text!r} as {type(current).__name__}") from None
    if isinstance(current, int) and not isinstance(value, bool) and isinstance(value, int):
        return value
    if isinstance(current, float) and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(current, tuple) and isinstance(value, (tuple, list)):
        return tuple(tuple(v) if isinstance(v, list) else v for v in value)
    raise ValueError(f"parameter {name}: expected {type(current).__name__}, got {text!r}")


_NAME = re.compile(r"[A-Za-z_]\w*")
_LIST_SPLIT = re.compile(r",(?=\s*[A-Za-z_]\w*\s*=)")


def parse_assignments(items: Iterable[str], source: str = "--param") -> Dict[str, str]:
    """``["a=1", "b=(1, 2)"]`` -> ``{"a": "1", "b": "(1, 2)"}``: the one ``NAME=VALUE`` reader of every
    entry point (``--param`` options, ``D3S_PARAMS``). Values stay strings (``with_overrides`` parses
    them to the field's type); ``source`` names the option in the ``ValueError`` message."""
    overrides: Dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not _NAME.fullmatch(name.strip()):
            raise ValueError(f"{source} {item.strip()!r}: expected NAME=VALUE")
        overrides[name.strip()] = value.strip()
    return overrides


def parse_assignment_list(text: str, source: str = "D3S_PARAMS") -> Dict[str, str]:
    """``"a=1,b=(1, 2)"`` -> ``{"a": "1", "b": "(1, 2)"}``; a comma starts a new item only when a
    ``NAME=`` follows, so commas inside values are kept."""
    text = text.strip()
    return parse_assignments(_LIST_SPLIT.split(text), source) if text else {}
