"""D3SParams checks every field at construction: one-line ``ValueError`` naming field, value and range."""
from __future__ import annotations

import dataclasses
import math

import pytest

from d3s_vot.factory import TrackerBuildError, TrackerSpec, check_spec
from d3s_vot.params import FAST_MODE, RULES, D3SParams, first_frame_samples

NAN, INF = float("nan"), float("inf")


def message(**changes) -> str:
    with pytest.raises(ValueError) as info:
        D3SParams(**changes)
    return str(info.value)


def test_every_field_has_a_rule():
    assert set(RULES) == {f.name for f in dataclasses.fields(D3SParams)}


def test_defaults_fast_mode_and_the_repos_overrides_pass():
    p = D3SParams()
    assert p.fast_mode() == dataclasses.replace(p, **FAST_MODE)
    # values used by tests, entry points and docs
    D3SParams(post_init_cg_iter=2)
    D3SParams(use_augmentation=False, init_cg_iter=12)
    D3SParams(cg_iter=3, learning_rate=0.01)
    D3SParams(init_gn_iter=1, init_cg_iter=2, cg_iter=1, hard_negative_cg_iter=1)
    D3SParams(init_gn_iter=0, cg_iter=0, post_init_cg_iter=0, hard_negative_cg_iter=0)
    D3SParams(fold_batchnorm=False, fused_cpu_trunks=False, channels_last=False)
    D3SParams(learning_rate=1, hard_negative_learning_rate=0, segm_mask_thr=1)    # ints for floats
    D3SParams(target_not_found_threshold=-5.0, image_sample_size=16, segm_output_sz=32)
    D3SParams(min_scale_change_factor=1.0, max_scale_change_factor=1.0)
    D3SParams(use_augmentation=False, sample_memory_size=1)
    D3SParams(aug_relative_shifts=(), aug_blurs=(), aug_rotations=(), sample_memory_size=2)


@pytest.mark.parametrize("changes, expected", [
    # iteration counts: integers >= 0, bools are not integers
    ({"cg_iter": -5}, "D3SParams.cg_iter = -5: must be an integer >= 0"),
    ({"cg_iter": True}, "D3SParams.cg_iter = True: must be an integer >= 0"),
    ({"cg_iter": 1.5}, "D3SParams.cg_iter = 1.5: must be an integer >= 0"),
    ({"init_gn_iter": -1}, "D3SParams.init_gn_iter = -1: must be an integer >= 0"),
    ({"init_cg_iter": "60"}, "D3SParams.init_cg_iter = '60': must be an integer >= 0"),
    ({"post_init_cg_iter": False}, "D3SParams.post_init_cg_iter = False: must be an integer >= 0"),
    ({"hard_negative_cg_iter": -2}, "D3SParams.hard_negative_cg_iter = -2: must be an integer >= 0"),
    # counts: integers >= 1
    ({"image_sample_size": 0}, "D3SParams.image_sample_size = 0: must be an integer >= 1"),
    ({"feature_stride": 0}, "D3SParams.feature_stride = 0: must be an integer >= 1"),
    ({"kernel_size": 0}, "D3SParams.kernel_size = 0: must be an integer >= 1"),
    ({"train_skipping": 0}, "D3SParams.train_skipping = 0: must be an integer >= 1"),
    ({"sample_memory_size": 0}, "D3SParams.sample_memory_size = 0: must be an integer >= 1"),
    ({"response_budget_sz": 0}, "D3SParams.response_budget_sz = 0: must be an integer >= 1"),
    ({"mask_pixels_budget_sz": -1}, "D3SParams.mask_pixels_budget_sz = -1: must be an integer >= 1"),
    ({"segm_feature_sz": True}, "D3SParams.segm_feature_sz = True: must be an integer >= 1"),
    ({"compressed_dim": 0}, "D3SParams.compressed_dim = 0: must be an integer in [1, 1024]"),
    ({"compressed_dim": 2048}, "D3SParams.compressed_dim = 2048: must be an integer in [1, 1024]"),
    ({"segm_output_sz": 100},
     "D3SParams.segm_output_sz = 100: must be an integer multiple of 16, >= 32 "
     "(the segmentation network's layer3 stride)"),
    ({"segm_output_sz": 16},
     "D3SParams.segm_output_sz = 16: must be an integer multiple of 16, >= 32 "
     "(the segmentation network's layer3 stride)"),
    # probabilities
    ({"learning_rate": INF}, "D3SParams.learning_rate = inf: must be a finite number in [0, 1]"),
    ({"learning_rate": 1e999}, "D3SParams.learning_rate = inf: must be a finite number in [0, 1]"),
    ({"learning_rate": NAN}, "D3SParams.learning_rate = nan: must be a finite number in [0, 1]"),
    ({"learning_rate": 1.5}, "D3SParams.learning_rate = 1.5: must be a finite number in [0, 1]"),
    ({"hard_negative_learning_rate": -0.1},
     "D3SParams.hard_negative_learning_rate = -0.1: must be a finite number in [0, 1]"),
    ({"segm_mask_thr": 2}, "D3SParams.segm_mask_thr = 2: must be a finite number in [0, 1]"),
    ({"init_segm_mask_thr": True}, "D3SParams.init_segm_mask_thr = True: must be a finite number in [0, 1]"),
    ({"vos_segm_mask_thr": -INF}, "D3SParams.vos_segm_mask_thr = -inf: must be a finite number in [0, 1]"),
    ({"hard_negative_threshold": 1.01}, "D3SParams.hard_negative_threshold = 1.01: must be a finite number in [0, 1]"),
    # positive and non-negative numbers
    ({"search_area_scale": 0}, "D3SParams.search_area_scale = 0: must be a finite number > 0"),
    ({"search_area_scale": NAN}, "D3SParams.search_area_scale = nan: must be a finite number > 0"),
    ({"segm_search_area_factor": -4.0}, "D3SParams.segm_search_area_factor = -4.0: must be a finite number > 0"),
    ({"output_sigma_factor": 0.0}, "D3SParams.output_sigma_factor = 0.0: must be a finite number > 0"),
    ({"filter_reg": 0}, "D3SParams.filter_reg = 0: must be a finite number > 0"),
    ({"projection_reg": -1e-4}, "D3SParams.projection_reg = -0.0001: must be a finite number > 0"),
    ({"response_activation_alpha": 0}, "D3SParams.response_activation_alpha = 0: must be a finite number > 0"),
    ({"target_neighborhood_scale": INF}, "D3SParams.target_neighborhood_scale = inf: must be a finite number > 0"),
    ({"augmentation_expansion_factor": 0.5},
     "D3SParams.augmentation_expansion_factor = 0.5: must be a finite number >= 1"),
    ({"displacement_scale": -0.7}, "D3SParams.displacement_scale = -0.7: must be a finite number >= 0"),
    ({"distractor_threshold": -1}, "D3SParams.distractor_threshold = -1: must be a finite number >= 0"),
    ({"tracking_uncertainty_thr": NAN}, "D3SParams.tracking_uncertainty_thr = nan: must be a finite number >= 0"),
    ({"segm_min_scale": -0.2}, "D3SParams.segm_min_scale = -0.2: must be a finite number >= 0"),
    ({"max_scale_change_factor": 0}, "D3SParams.max_scale_change_factor = 0: must be a finite number > 0"),
    ({"target_not_found_threshold": -INF}, "D3SParams.target_not_found_threshold = -inf: must be a finite number"),
    ({"target_not_found_threshold": "low"}, "D3SParams.target_not_found_threshold = 'low': must be a finite number"),
    # bools and choices
    ({"use_segmentation": 1}, "D3SParams.use_segmentation = 1: must be a bool (True or False)"),
    ({"deterministic": "false"}, "D3SParams.deterministic = 'false': must be a bool (True or False)"),
    ({"aug_fliplr": None}, "D3SParams.aug_fliplr = None: must be a bool (True or False)"),
    ({"cuda_graphs": 3}, "D3SParams.cuda_graphs = 3: must be a bool (True or False)"),
    ({"vot_anno_conversion_type": "union"},
     "D3SParams.vot_anno_conversion_type = 'union': must be one of 'preserve_area'"),
    # tuples
    ({"aug_relative_shifts": ((0.25, 0.25, 0.25),)},
     "D3SParams.aug_relative_shifts = ((0.25, 0.25, 0.25),): must be a tuple of (dy, dx) pairs of finite numbers"),
    ({"aug_relative_shifts": (0.25, 0.25)},
     "D3SParams.aug_relative_shifts = (0.25, 0.25): must be a tuple of (dy, dx) pairs of finite numbers"),
    ({"aug_relative_shifts": ((NAN, 0.0),)},
     "D3SParams.aug_relative_shifts = ((nan, 0.0),): must be a tuple of (dy, dx) pairs of finite numbers"),
    ({"aug_relative_shifts": [(0.25, 0.25)]},
     "D3SParams.aug_relative_shifts = [(0.25, 0.25)]: must be a tuple of (dy, dx) pairs of finite numbers"),
    ({"aug_blurs": ((2, 0),)},
     "D3SParams.aug_blurs = ((2, 0),): must be a tuple of (sigma_y, sigma_x) pairs of finite numbers > 0"),
    ({"aug_blurs": ((2,),)},
     "D3SParams.aug_blurs = ((2,),): must be a tuple of (sigma_y, sigma_x) pairs of finite numbers > 0"),
    ({"aug_rotations": (5, INF)}, "D3SParams.aug_rotations = (5, inf): must be a tuple of finite numbers (degrees)"),
    ({"aug_rotations": ((5, 5),)},
     "D3SParams.aug_rotations = ((5, 5),): must be a tuple of finite numbers (degrees)"),
    # rules between fields
    ({"min_scale_change_factor": 1.2},
     "D3SParams.min_scale_change_factor = 1.2: must be <= max_scale_change_factor (1.05)"),
    ({"vos_min_scale_change_factor": 0.9, "vos_max_scale_change_factor": 0.8},
     "D3SParams.vos_min_scale_change_factor = 0.9: must be <= vos_max_scale_change_factor (0.8)"),
    ({"image_sample_size": 8}, "D3SParams.image_sample_size = 8: must be an integer >= feature_stride (16)"),
    ({"sample_memory_size": 26},
     "D3SParams.sample_memory_size = 26: must be an integer >= 27 (the first frame's samples: "
     "identity + augmentations)"),
    ({"use_augmentation": True, "aug_rotations": (), "sample_memory_size": 14},
     "D3SParams.sample_memory_size = 14: must be an integer >= 15 (the first frame's samples: "
     "identity + augmentations)"),
])
def test_bad_value_message(changes, expected):
    got = message(**changes)
    assert got == expected and "\n" not in got


def test_replace_validates_too():
    with pytest.raises(ValueError, match=r"^D3SParams\.cg_iter = -5: must be an integer >= 0$"):
        dataclasses.replace(D3SParams(), cg_iter=-5)


def test_first_frame_samples():
    assert first_frame_samples(D3SParams()) == 27
    assert first_frame_samples(D3SParams(use_augmentation=False)) == 1
    assert first_frame_samples(D3SParams(aug_fliplr=False)) == 26


@pytest.mark.parametrize("overrides, expected", [
    ({"image_sample_size": "0"}, "D3SParams.image_sample_size = 0: must be an integer >= 1"),
    ({"cg_iter": "-5"}, "D3SParams.cg_iter = -5: must be an integer >= 0"),
    ({"learning_rate": "1e999"}, "D3SParams.learning_rate = inf: must be a finite number in [0, 1]"),
    ({"aug_blurs": "((1, -1),)"},
     "D3SParams.aug_blurs = ((1, -1),): must be a tuple of (sigma_y, sigma_x) pairs of finite numbers > 0"),
    ({"min_scale_change_factor": "1.1", "max_scale_change_factor": "1.0"},
     "D3SParams.min_scale_change_factor = 1.1: must be <= max_scale_change_factor (1.0)"),
    ({"cg_iter": -5}, "D3SParams.cg_iter = -5: must be an integer >= 0"),           # not a string
])
def test_with_overrides_reports_the_range(overrides, expected):
    with pytest.raises(ValueError) as info:
        D3SParams().with_overrides(overrides)
    assert str(info.value) == expected


def test_with_overrides_keeps_its_parse_messages():
    with pytest.raises(ValueError, match=r"^unknown D3SParams field 'nope'; known fields: "):
        D3SParams().with_overrides({"nope": "1"})
    with pytest.raises(ValueError, match=r"^parameter cg_iter: cannot parse 'many' as int$"):
        D3SParams().with_overrides({"cg_iter": "many"})
    ok = D3SParams().with_overrides({"learning_rate": "1", "use_segmentation": "off", "aug_rotations": "[5, -5]"})
    assert ok.learning_rate == 1.0 and ok.use_segmentation is False and ok.aug_rotations == (5, -5)
    assert math.isclose(D3SParams().with_overrides({"filter_reg": "1e-2"}).filter_reg, 0.01)


def test_check_spec_reports_the_range():
    with pytest.raises(TrackerBuildError) as info:
        check_spec(TrackerSpec(params={"cg_iter": "-5"}))
    assert str(info.value) == "D3SParams.cg_iter = -5: must be an integer >= 0"


@pytest.mark.parametrize("overrides", [{}, {"aug_fliplr": False, "aug_blurs": ()}, {"use_augmentation": False},
                                       {"aug_rotations": (5.0,)}])
def test_first_frame_samples_counts_the_augmentations_the_tracker_builds(overrides):
    from d3s_vot.tracker.augment import build_augmentations

    p = D3SParams(**overrides)
    built = len(build_augmentations(p.image_sample_size, p.aug_relative_shifts, p.aug_fliplr, p.aug_blurs,
                                    p.aug_rotations)) if p.use_augmentation else 1
    assert first_frame_samples(p) == built
