"""All tracker parameters in one frozen dataclass.

The defaults are the original D3S defaults (one parameter set for VOT, GOT-10k, TrackingNet); the
VOS overrides for mask initialisation are applied by the tracker at run time, not stored here.
Override fields with :func:`dataclasses.replace` or :meth:`D3SParams.with_overrides`. Every
construction checks every field against :data:`RULES` (and the rules between fields): a bad value
raises a one-line ``ValueError`` such as ``D3SParams.cg_iter = -5: must be an integer >= 0``.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
import re
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Callable, Dict, Iterable, Mapping, Optional, Tuple


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
    bf16_trunks: bool = False               # CUDA only: the two ResNet trunks under bfloat16 autocast (fast mode)
    compile_trunks: bool = False            # CUDA only: torch.compile(mode="reduce-overhead"), CUDA graphs, for the trunks
    cuda_graphs: bool = True                # CUDA only: each frame's three network calls replayed as CUDA graphs

    def __post_init__(self) -> None:
        """Check every field against :data:`RULES`, then the cross-field rules; a bad value raises
        ``ValueError("D3SParams.NAME = VALUE: must be ...")`` here, not deep inside a tracker."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            rule = RULES[f.name]
            if not rule.check(value):
                raise ValueError(_bad(f.name, value, rule.text))
        for name, check in _CROSS_RULES:
            text = check(self)
            if text is not None:
                raise ValueError(_bad(name, getattr(self, name), text))

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


# --- validation --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Rule:
    """One field's allowed values: ``check(value)`` is true for them, ``text`` says what they are
    (the end of the error message, after ``must be``)."""
    check: Callable[[Any], bool]
    text: str


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    """A finite real number; ints (not bools) count, NaN and infinities do not."""
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        return False
    return isinstance(v, numbers.Integral) or math.isfinite(v)


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(x)


def _boolean() -> Rule:
    return Rule(lambda v: isinstance(v, bool), "a bool (True or False)")


def _integer(lo: int, hi: Optional[int] = None) -> Rule:
    if hi is None:
        return Rule(lambda v: _is_int(v) and v >= lo, f"an integer >= {lo}")
    return Rule(lambda v: _is_int(v) and lo <= v <= hi, f"an integer in [{lo}, {hi}]")


def _number(lo: Optional[float] = None, hi: Optional[float] = None, lo_open: bool = False) -> Rule:
    """A finite real number (an int is fine) within the bounds; ``lo_open``: ``> lo`` instead of ``>= lo``."""
    def check(v: Any) -> bool:
        return (_is_real(v) and (lo is None or (v > lo if lo_open else v >= lo))
                and (hi is None or v <= hi))
    if lo is not None and hi is not None:
        text = f"a finite number in {'(' if lo_open else '['}{_fmt(lo)}, {_fmt(hi)}]"
    elif lo is not None:
        text = f"a finite number {'>' if lo_open else '>='} {_fmt(lo)}"
    else:
        text = "a finite number"
    return Rule(check, text)


def _one_of(*choices: str) -> Rule:
    return Rule(lambda v: isinstance(v, str) and v in choices, "one of " + ", ".join(map(repr, choices)))


def _tuple_of(item: Callable[[Any], bool], text: str) -> Rule:
    return Rule(lambda v: isinstance(v, tuple) and all(item(x) for x in v), text)


def _pair(item: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda x: isinstance(x, tuple) and len(x) == 2 and all(item(c) for c in x)


_PROBABILITY = _number(0, 1)
_POSITIVE = _number(0, lo_open=True)
_NON_NEGATIVE = _number(0)
_COUNT = _integer(1)
_ITERATIONS = _integer(0)

#: Channels of the DCF features (ResNet-50 layer3): the PCA projection keeps at most this many.
DCF_FEATURE_CHANNELS = 1024

#: Every field's rule. Counts that divide, index or size something are >= 1; iteration counts may
#: be 0 (the tracker skips the step); learning rates and mask thresholds are probabilities.
RULES: Mapping[str, Rule] = MappingProxyType({
    # DCF sampling
    "search_area_scale": _POSITIVE,
    "image_sample_size": _COUNT,                     # and >= feature_stride (cross rule)
    "feature_stride": _COUNT,
    # optimisation
    "init_gn_iter": _ITERATIONS,                     # 0: no joint Gauss-Newton at init
    "init_cg_iter": _ITERATIONS,
    "cg_iter": _ITERATIONS,
    "post_init_cg_iter": _ITERATIONS,
    "learning_rate": _PROBABILITY,                   # sample weight; the memory divides by 1 - lr
    "output_sigma_factor": _POSITIVE,                # Gaussian label width (divides)
    "kernel_size": _COUNT,
    "compressed_dim": _integer(1, DCF_FEATURE_CHANNELS),
    "filter_reg": _POSITIVE,                         # CG preconditioner (divides)
    "projection_reg": _POSITIVE,                     # CG preconditioner (divides)
    "response_activation_alpha": _POSITIVE,          # mlu: leaky_relu slope 1 / alpha
    # sample memory
    "sample_memory_size": _COUNT,                    # and holds every first-frame sample (cross rule)
    "train_skipping": _COUNT,                        # frame_num % train_skipping
    # augmentation
    "use_augmentation": _boolean(),
    "augmentation_expansion_factor": _number(1),
    "aug_relative_shifts": _tuple_of(_pair(_is_real), "a tuple of (dy, dx) pairs of finite numbers"),
    "aug_fliplr": _boolean(),
    "aug_blurs": _tuple_of(_pair(lambda s: _is_real(s) and s > 0),
                           "a tuple of (sigma_y, sigma_x) pairs of finite numbers > 0"),
    "aug_rotations": _tuple_of(_is_real, "a tuple of finite numbers (degrees)"),
    # localisation
    "window_output": _boolean(),
    "advanced_localization": _boolean(),
    "target_not_found_threshold": _number(),         # default -1 (any score counts as found)
    "distractor_threshold": _NON_NEGATIVE,
    "hard_negative_threshold": _PROBABILITY,
    "target_neighborhood_scale": _POSITIVE,
    "displacement_scale": _NON_NEGATIVE,
    "hard_negative_learning_rate": _PROBABILITY,
    "hard_negative_cg_iter": _ITERATIONS,
    # VOT polygon -> box (regions.py implements 'preserve_area' only)
    "vot_anno_conversion_type": _one_of("preserve_area"),
    # segmentation
    "use_segmentation": _boolean(),
    "segm_search_area_factor": _POSITIVE,
    "segm_feature_sz": _COUNT,
    "segm_output_sz": Rule(lambda v: _is_int(v) and v >= 32 and v % 16 == 0,
                           "an integer multiple of 16, >= 32 (the segmentation network's layer3 stride)"),
    "segm_scale_estimation": _boolean(),
    "segm_optimize_polygon": _boolean(),
    "tracking_uncertainty_thr": _NON_NEGATIVE,
    "response_budget_sz": _COUNT,                    # 0 would empty the score history (mean of nothing)
    "uncertainty_segm_scale_thr": _NON_NEGATIVE,
    "uncertainty_segment_thr": _NON_NEGATIVE,
    "segm_pixels_ratio": _NON_NEGATIVE,
    "consider_segm_pixels_ratio": _NON_NEGATIVE,
    "mask_pixels_budget_sz": _COUNT,                 # 0 would empty the mask-size history
    "segm_min_scale": _NON_NEGATIVE,
    "max_rel_scale_ch_thr": _NON_NEGATIVE,
    "min_scale_change_factor": _POSITIVE,            # and <= max_scale_change_factor (cross rule)
    "max_scale_change_factor": _POSITIVE,
    "init_segm_mask_thr": _PROBABILITY,
    "segm_mask_thr": _PROBABILITY,
    "vos_min_scale_change_factor": _POSITIVE,        # and <= vos_max_scale_change_factor (cross rule)
    "vos_max_scale_change_factor": _POSITIVE,
    "vos_segm_mask_thr": _PROBABILITY,
    # execution
    "deterministic": _boolean(),
    "dcf_float64": _boolean(),
    "channels_last": _boolean(),
    "fold_batchnorm": _boolean(),
    "fused_cpu_trunks": _boolean(),
    "bf16_trunks": _boolean(),
    "compile_trunks": _boolean(),
    "cuda_graphs": _boolean(),
})


def first_frame_samples(p: "D3SParams") -> int:
    """How many samples the first frame puts in the DCF memory (identity + augmentations)."""
    if not p.use_augmentation:
        return 1
    return 1 + len(p.aug_relative_shifts) + int(p.aug_fliplr) + len(p.aug_blurs) + len(p.aug_rotations)


def _at_most(name: str, other: str) -> Tuple[str, Callable[["D3SParams"], Optional[str]]]:
    def check(p: "D3SParams") -> Optional[str]:
        return None if getattr(p, name) <= getattr(p, other) else f"<= {other} ({getattr(p, other)!r})"
    return name, check


def _sample_fits_stride(p: "D3SParams") -> Optional[str]:
    if p.image_sample_size >= p.feature_stride:
        return None
    return f"an integer >= feature_stride ({p.feature_stride!r})"


def _memory_holds_first_frame(p: "D3SParams") -> Optional[str]:
    n = first_frame_samples(p)
    if p.sample_memory_size >= n:
        return None
    return f"an integer >= {n} (the first frame's samples: identity + augmentations)"


#: Rules between fields, checked after every field passed its own: (field named in the message,
#: check returning None when fine, else the end of the message).
_CROSS_RULES: Tuple[Tuple[str, Callable[["D3SParams"], Optional[str]]], ...] = (
    ("image_sample_size", _sample_fits_stride),
    ("sample_memory_size", _memory_holds_first_frame),
    _at_most("min_scale_change_factor", "max_scale_change_factor"),
    _at_most("vos_min_scale_change_factor", "vos_max_scale_change_factor"),
)


def _bad(name: str, value: Any, text: str) -> str:
    return f"D3SParams.{name} = {value!r}: must be {text}"


#: Fast mode, off by default: the DCF problems are solved in the trackers' dtype (float32: about 2x
#: faster joint Gauss-Newton and filter updates), and on CUDA the trunks' convolutions may use the
#: fastest nondeterministic kernels (TF32, autotuned cuDNN; the DCF's products stay out of TF32) and
#: run in bfloat16. Same algorithm, but it leaves the float64 reference trajectory within a few
#: frames; docs/speed.md has its measured speed-up and its IoU against the default mode
#: (``python -m d3s_vot.bench --compare-fast``). ``compile_trunks`` stays opt-in (its compilation
#: takes minutes).
FAST_MODE: Mapping[str, Any] = MappingProxyType({"dcf_float64": False, "deterministic": False, "bf16_trunks": True})


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
