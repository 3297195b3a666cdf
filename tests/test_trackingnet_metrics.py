"""The TrackingNet devkit metrics, checked on cases computed by hand from the devkit's definitions."""
from __future__ import annotations

import zipfile

import numpy as np
import pytest

from d3s_vot.integrations.box_runner.boxio import BenchmarkError
from d3s_vot.integrations.trackingnet.metrics import (NORM_PRECISION_X, PRECISION_X, SUCCESS_X, area_under,
                                                    score, score_files, sequence_curves)

GT = np.array([[0, 0, 10, 10], [0, 0, 10, 10]], dtype=float)


def score_one(gt, pred):
    """Score one sequence 'a' against an in-memory prediction (None = no file)."""
    subs = {} if pred is None else {"a.txt": np.asarray(pred, dtype=float)}
    return score({"a": np.asarray(gt, dtype=float)}, list(subs), subs.__getitem__)


def test_thresholds_are_the_devkits():
    assert SUCCESS_X.tolist() == pytest.approx([i / 20 for i in range(21)], abs=1e-15)
    assert SUCCESS_X[0] == 0 and SUCCESS_X[-1] == 1
    assert PRECISION_X[[0, 1, 2, 8, 20]].tolist() == [0.0, 2.5, 5.0, 20.0, 50.0]
    assert NORM_PRECISION_X[-1] == 0.5 and len(NORM_PRECISION_X) == 21


def test_oracle_scores_100():
    gt = np.array([[3.2, 4.7, 20.1, 10.9], [5, 6, 21, 11], [7.5, 8.5, 19.5, 12.5]])
    result = score_one(gt, gt)
    assert (result.success, result.precision, result.norm_precision, result.coverage) == (100, 100, 100, 100)


def test_shifted_box_by_hand():
    # frame 1: x shifted by 5 px. Inclusive pixels: overlap 5x10 = 50, union 150 -> IoU 1/3;
    # centre distance 5 px; normalized distance 5/10 = 0.5.
    result = score_one(GT, [[0, 0, 10, 10], [5, 0, 10, 10]])
    # success: 1.0 for t <= 0.30 (7 points), then 0.5 -> 6*.05 + .75*.05 + 13*.5*.05 = 0.6625
    assert result.success_curve == [1.0] * 7 + [0.5] * 14
    assert result.success == pytest.approx(66.25, abs=1e-12)
    # precision: d=5 fails at 0 and 2.5 px -> .5*.05 + .75*.05 + 18*.05 = 0.9625
    assert result.precision_curve == [0.5, 0.5] + [1.0] * 19
    assert result.precision == pytest.approx(96.25, abs=1e-12)
    # normalized: 0.5 <= t only at the last threshold -> 19*.5*.05 + .75*.05 = 0.5125
    assert result.norm_precision_curve == [0.5] * 20 + [1.0]
    assert result.norm_precision == pytest.approx(51.25, abs=1e-12)
    assert result.coverage == 100


def test_frame_zero_is_replaced_by_ground_truth():
    garbage = score_one(GT, [[100, 100, 1, 1], [5, 0, 10, 10]])
    nan_row = score_one(GT, [[np.nan] * 4, [5, 0, 10, 10]])
    assert garbage.success == nan_row.success == pytest.approx(66.25, abs=1e-12)
    assert garbage.precision == nan_row.precision == pytest.approx(96.25, abs=1e-12)


def test_rounding_is_half_to_even():
    # 0.5 -> 0 (identical box); half-up would give 1 (IoU 90/110)
    assert score_one(GT, [[0, 0, 10, 10], [0.5, 0, 10, 10]]).success == 100
    # 2.5 -> 2: IoU 80/120 = 0.667 passes t = 0.55 (half-up: 3 -> 70/130 = 0.538 fails);
    # centre distance 2 px passes 2.5 px (half-up: 3 px fails)
    result = score_one(GT, [[0, 0, 10, 10], [2.5, 0, 10, 10]])
    assert result.success_curve[11] == 1.0 and result.success_curve[14] == 0.5
    assert result.precision_curve[1] == 1.0
    # the ground truth is rounded too: 9.5 -> 10 wide
    assert score_one([[0, 0, 9.5, 10], [0, 0, 9.5, 10]], [[0, 0, 10, 10], [0, 0, 10, 10]]).success == 100


def test_missing_rows_fail_and_extra_rows_are_ignored():
    gt = np.array([[0, 0, 10, 10]] * 4, dtype=float)
    short = score_one(gt, gt[:2])
    assert (short.success, short.precision, short.norm_precision) == (50, 50, 50)
    assert short.coverage == 50
    extra = score_one(gt, np.vstack([gt, [[500, 500, 3, 3]] * 2]))
    assert (extra.success, extra.precision, extra.norm_precision, extra.coverage) == (100, 100, 100, 100)


def test_missing_file_counts_as_zero_boxes():
    # 4 frames, gt at (10,10,10,10); frame 0 -> gt; frames 1-3 -> 0,0,0,0:
    # IoU 0 (passes only t = 0): curve [1, .25 x 20] -> (1.25/2)*.05 + 19*.25*.05 = 0.26875
    # centre (0.5, 0.5) vs (15.5, 15.5): 21.21 px, passes from 22.5 px (index 9):
    #   8*.25*.05 + (1.25/2)*.05 + 11*.05 = 0.68125;  normalized 2.12 never passes -> 0.25
    gt = np.array([[10, 10, 10, 10]] * 4, dtype=float)
    result = score_one(gt, None)
    assert result.missing == ["a"]
    assert result.success == pytest.approx(26.875, abs=1e-12)
    assert result.precision == pytest.approx(68.125, abs=1e-12)
    assert result.norm_precision == pytest.approx(25.0, abs=1e-12)
    assert result.coverage == 25


def test_sequences_weigh_equally_and_coverage_pools_frames():
    gt_a = np.array([[0, 0, 10, 10]] * 2, dtype=float)
    gt_b = np.array([[10, 10, 10, 10]] * 4, dtype=float)
    subs = {"res/a.txt": gt_a}
    result = score({"a": gt_a, "b": gt_b}, list(subs), subs.__getitem__)
    assert result.success == pytest.approx((100 + 26.875) / 2, abs=1e-12)
    assert result.coverage == pytest.approx(100 * 3 / 6, abs=1e-12)     # frames pooled, not (100+25)/2
    assert result.per_sequence["a"]["success"] == 100
    assert result.per_sequence["b"]["success"] == pytest.approx(26.875, abs=1e-12)
    assert result.missing == ["b"]


def test_ambiguous_match_counts_as_zero_boxes():
    gt = np.array([[10, 10, 10, 10]] * 4, dtype=float)
    subs = {"a.txt": gt, "old/a.txt": gt}
    result = score({"a": gt}, list(subs), subs.__getitem__)
    assert result.ambiguous == ["a"] and result.success == pytest.approx(26.875, abs=1e-12)


def test_area_under_is_trapezoid_times_100():
    assert area_under(np.ones(21)) == 100
    assert area_under(np.linspace(0, 1, 21)) == pytest.approx(50, abs=1e-12)


def test_sequence_curves_denominator_is_all_gt_frames():
    curves = sequence_curves(np.array([[0, 0, 4, 4]] * 5, dtype=float), np.array([[0, 0, 4, 4]]))
    assert curves.frames == 5 and curves.success[5] == pytest.approx(1 / 5)


def test_score_files_reads_zip_and_folder(tmp_path):
    anno = tmp_path / "anno"
    anno.mkdir()
    (anno / "a.txt").write_text("0,0,10,10\n0,0,10,10\n")
    (anno / "b.txt").write_text("10,10,10,10\n10,10,10,10\n10,10,10,10\n10,10,10,10\n")
    results = tmp_path / "results"
    results.mkdir()
    (results / "a.txt").write_text("0.00,0.00,10.00,10.00\n5.00,0.00,10.00,10.00\n")
    from_dir = score_files(str(results), [str(anno)])
    with zipfile.ZipFile(tmp_path / "subm.zip", "w") as archive:
        archive.writestr("a.txt", (results / "a.txt").read_text())
        archive.writestr("__MACOSX/b.txt", "garbage")
    from_zip = score_files(str(tmp_path / "subm.zip"), [str(anno)])
    assert from_dir.success == from_zip.success == pytest.approx((66.25 + 26.875) / 2, abs=1e-12)
    assert from_zip.missing == ["b"]


def test_malformed_lines_name_file_and_line(tmp_path):
    anno = tmp_path / "anno"
    anno.mkdir()
    (anno / "a.txt").write_text("0,0,10,10\n0,0,10\n")
    with pytest.raises(BenchmarkError, match=r"a\.txt, line 2: expected 4 comma-separated numbers"):
        score_files(str(tmp_path), [str(anno)])
    (anno / "a.txt").write_text("0,0,10,10\n")
    res = tmp_path / "res"
    res.mkdir()
    (res / "a.txt").write_text("1,2,3,4\n1,2,x,4\n")
    with pytest.raises(BenchmarkError, match=r"res/a\.txt, line 2: not a number"):
        score_files(str(res), [str(anno)])
