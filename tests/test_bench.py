"""The speed benchmark (python -m d3s_vot.bench): an end-to-end --quick run, its argument errors, and the
tracker's stage hooks the bench reads its per-stage table from.

No timing is asserted (the machine is shared); the tests check the report's structure, that the
numbers are consistent with each other, that every stage the tracker names is reported, and the
CLI's error contract.
"""
from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from d3s_vot.tools import speed_bench as bench
from d3s_vot.params import FAST_MODE, D3SParams
from d3s_vot.tracker import D3STracker
from d3s_vot.tracker.stages import (FRAME_STAGES, INIT_STAGES, NULL_STAGE, SEGMENTATION_STAGES, StageHook,
                                    StageLog, StageTimer)

# what a default-parameter run reports: the post-init filter update is off by default
DEFAULT_INIT_STAGES = tuple(name for name in INIT_STAGES if name != "post_init_filter_update")
CG_UNIT_FLOPS = (2 + 2 * 5) * 2 * 16 * 64 * 256     # one filter CG's work per memory sample (test_speed_floor)


def _positive_finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


@pytest.mark.slow
def test_quick_run_end_to_end(tmp_path):
    out = tmp_path / "bench.json"
    # 10 frames: the 10th (frame_num 11) updates the filter, so its stage and its work are reported
    proc = subprocess.run([sys.executable, "-m", "d3s_vot.bench", "--quick", "--frames", "10", "--sizes", "640x480",
                           "--threads", "2", "--json", str(out), "--no-progress"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "frame bound" in proc.stdout and "init bound" in proc.stdout
    assert "random (untrained" in proc.stdout
    report = json.loads(out.read_text())
    assert not list(tmp_path.glob(".bench.json.*")), "the atomic write left a temporary file"

    assert report["device"] == "cpu" and report["dtype"] == "float32"
    assert report["weights"].startswith("random")
    hw = report["hardware"]
    assert hw["torch"] == torch.__version__ and hw["torch_threads"] == 2 and hw["cpu"]
    assert report["config"]["sizes"] == ["640x480"] and report["config"]["quick"] is True

    b = report["bounds"]
    assert b["init_samples"] == 27          # identity, 8 shifts, flip, 5 blurs, 12 rotations
    for key in ("dcf_trunk_256_ms", "segm_trunk_384_ms", "init_trunk_batch_256_ms", "frame_bound_ms", "init_bound_ms"):
        assert _positive_finite(b[key]), key
    assert set(b["per_layout_ms"]) == {"nchw", "channels_last"}
    for key in ("dcf_trunk_256", "segm_trunk_384", "init_trunk_batch_256"):
        # the bound takes the faster layout
        assert b[key + "_ms"] == min(t[key] for t in b["per_layout_ms"].values())
    assert b["frame_bound_ms"] == pytest.approx(b["dcf_trunk_256_ms"] + b["segm_trunk_384_ms"])
    assert b["init_bound_ms"] == pytest.approx(b["init_trunk_batch_256_ms"] + b["segm_trunk_384_ms"])
    # the tracker's own (BatchNorm-folded) trunks are timed separately from the bound
    assert b["tracker_trunks_folded"] is True and b["tracker_trunks_fused"] is True
    assert b["tracker_frame_trunks_ms"] == pytest.approx(b["tracker_trunks_ms"]["dcf_trunk_256"]
                                                         + b["tracker_trunks_ms"]["segm_trunk_384"])
    assert hw["malloc_tuned"] is True
    assert "large blocks kept in the heap (d3s_vot.runtime): yes" in proc.stdout

    (size,) = report["sizes"]
    assert size["size"] == "640x480" and size["frames"] == 10
    for key in ("frame_ratio", "init_ratio", "frame_mean_ms", "frame_median_ms", "init_ms", "fps", "peak_memory_mib"):
        assert _positive_finite(size[key]), key
    # each size's ratios divide by the bound rounds run during its own timings: one round of the init passes
    # before each timed initialize (1 with --quick), one of the frame passes after each of the 10 frames
    sb = size["bounds"]
    assert size["bound_rounds"] == {"frame": 10, "init": 1}
    assert size["frame_ratio"] == pytest.approx(size["frame_mean_ms"] / sb["frame_bound_ms"])
    assert size["init_ratio"] == pytest.approx(size["init_ms"] / sb["init_bound_ms"])
    assert size["frame_ratio_own_trunks"] == pytest.approx(size["frame_mean_ms"] / sb["tracker_frame_trunks_ms"])
    assert size["init_ratio_own_trunks"] == pytest.approx(size["init_ms"] / sb["tracker_init_trunks_ms"])
    assert all(_positive_finite(v) for v in sb.values())
    assert "ratios per size divide by the bounds of the rounds run during that size's timings" in proc.stdout
    assert f"frame bound {sb['frame_bound_ms']:.1f} ms (own {sb['tracker_frame_trunks_ms']:.1f}, 10 rounds)" \
        in proc.stdout
    assert report["stage_source"] == "timed run"          # on the CPU the stages come from the timed calls

    # per-stage medians from the tracker's own hooks, in the order the tracker runs them; frames 2..5
    # always segment and store a sample (the uncertainty is 0 there), frame 11 updates the filter
    assert tuple(size["frame_stages_ms"]) == FRAME_STAGES
    assert tuple(size["init_stages_ms"]) == DEFAULT_INIT_STAGES
    assert all(_positive_finite(v) for v in size["frame_stages_ms"].values())
    assert all(_positive_finite(v) for v in size["init_stages_ms"].values())
    counts = size["frame_stage_counts"]
    assert set(counts) == set(FRAME_STAGES) and set(size["init_stage_counts"]) == set(DEFAULT_INIT_STAGES)
    assert all(counts[name] == 10 for name in ("image_to_tensor", "dcf_crop", "dcf_trunk", "dcf_localize",
                                               "full_image_mask"))
    assert all(counts[name] == size["segmentation_frames"] for name in SEGMENTATION_STAGES)
    assert 4 <= size["segmentation_frames"] <= 10 and 4 <= counts["memory_update"] <= 10
    assert set(size["init_stage_counts"].values()) == {1}          # one timed initialize with --quick
    assert counts["filter_update"] == size["cg_frames"] >= 1 and _positive_finite(size["cg_frame_mean_ms"])
    per_frame = [v for k, v in size["frame_stages_ms"].items() if k != "filter_update"]
    assert size["per_frame_stage_sum_ms"] == pytest.approx(sum(per_frame))
    assert size["init_stage_sum_ms"] == pytest.approx(sum(size["init_stages_ms"].values()))
    assert 0.5 < size["frame_stage_coverage"] <= 1.0 and 0.5 < size["init_stage_coverage"] <= 1.0
    assert size["init_stage_sum_ms"] <= size["init_ms"]            # one initialize: its stages and the rest
    assert size["full_memory_size"] == 250 and _positive_finite(size["filter_cg_full_memory_ms"])
    assert b["init_samples"] == 27
    assert "per-stage medians at 640x480 from the tracker's stage hooks (timed run" in proc.stdout

    # compute floors: this machine's matrix-product peak in both dtypes the tracker uses, the DCF stages'
    # counted work, and the init floor as the tracker's own trunks plus the PCA and Gauss-Newton floors
    peaks = report["matmul_peak_gflops"]
    assert set(peaks) == {"float32", "float64"} and all(_positive_finite(v) for v in peaks.values())
    assert set(size["floors_ms"]) == {"pca", "joint_gauss_newton", "filter_update", "filter_cg_full_memory"}
    gn_flops = size["init_flops"]["joint_gauss_newton"]
    assert gn_flops == 31_306_285_056       # 6 GN x 10 CG iterations on 27 x 1024 x 16 x 16 features (test_speed_floor)
    assert size["floors_ms"]["joint_gauss_newton"] == pytest.approx(gn_flops / (peaks["float64"] * 1e6))
    assert size["floors_ms"]["pca"] == pytest.approx(size["init_flops"]["pca"] / (peaks["float32"] * 1e6))
    assert size["cg_flops"]["filter_cg_full_memory"] == 12 * 2 * 16 * 64 * 250 * 256
    # the filter update counted inside the tracker's own stage: 27 first-frame samples plus one per
    # memory update before it (all of frames 2..11 when no hard negative updated the filter earlier)
    update_flops = size["cg_flops"]["filter_update"]
    assert update_flops % CG_UNIT_FLOPS == 0 and 27 < update_flops // CG_UNIT_FLOPS <= 27 + 10
    if size["filter_update_counted_frame"] == 11:
        assert update_flops == CG_UNIT_FLOPS * (27 + counts["memory_update"])
    assert _positive_finite(size["filter_update_counted_ms"])
    assert size["floors_ms"]["filter_update"] == pytest.approx(update_flops / (peaks["float64"] * 1e6))
    assert size["init_floor_ms"] == pytest.approx(sb["tracker_init_trunks_ms"] + size["floors_ms"]["pca"]
                                                  + size["floors_ms"]["joint_gauss_newton"])
    assert size["init_floor_ratio"] == pytest.approx(size["init_floor_ms"] / sb["init_bound_ms"])
    assert "compute floors" in proc.stdout and f"{size['init_floor_ratio']:.2f}x the init bound" in proc.stdout
    assert f"filter_update (frame {size['filter_update_counted_frame']})" in proc.stdout


def test_timer_counts_warmup_and_repeats():
    calls = []
    timer = bench.Timer(warmup=2, repeats=3, device=torch.device("cpu"))
    ms, result = timer.measure(lambda: calls.append(1) or len(calls))
    assert len(calls) == 5 and result == 5
    assert ms >= 0
    _, result = timer.measure(lambda: "x", warmup=0, repeats=1)
    assert result == "x"


def test_parse_sizes():
    assert bench.parse_sizes("640x480, 1280X720") == ((640, 480), (1280, 720))
    for bad in ("640", "640x", "ax480", "640x480x3", "32x480"):
        with pytest.raises(bench.InputError, match="--sizes"):
            bench.parse_sizes(bad)


@pytest.mark.parametrize("argv, message", [
    (["--frames", "0"], "error: --frames must be at least 1, got 0"),
    (["--sizes", "640x"], "error: --sizes: '640x' is not WIDTHxHEIGHT"),
    (["--param", "no_such_field=1"], "error: unknown D3SParams field 'no_such_field'"),
    (["--param", "cg_iter"], "error: --param 'cg_iter': expected NAME=VALUE"),
    (["--weights", "/nonexistent/d3s.safetensors"], "error: weights file not found: /nonexistent/d3s.safetensors"),
    (["--json", "/nonexistent/dir/out.json"], "error: --json /nonexistent/dir/out.json: folder /nonexistent/dir does not exist"),
    (["--dtype", "float16"], "error: argument --dtype: invalid choice"),
])
def test_bad_arguments(argv, message, capsys):
    with pytest.raises(SystemExit) as exc_info:
        sys.exit(bench.main(argv + ["--no-progress"]))
    assert exc_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(message), err


def test_cuda_requested_without_cuda(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert bench.main(["--device", "cuda"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: --device cuda: CUDA is not available")


def test_bad_argument_from_the_command_line():
    proc = subprocess.run([sys.executable, "-m", "d3s_vot.bench", "--threads", "0"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: --threads must be at least 1, got 0"
    assert proc.stdout == ""


def test_box_iou():
    assert bench._box_iou(np.array([0, 0, 10, 10.0]), np.array([0, 0, 10, 10.0])) == 1.0
    assert bench._box_iou(np.array([0, 0, 10, 10.0]), np.array([5, 0, 10, 10.0])) == pytest.approx(50 / 150)
    assert bench._box_iou(np.array([0, 0, 10, 10.0]), np.array([20, 20, 5, 5.0])) == 0.0
    assert bench._box_iou(np.array([0, 0, np.nan, 10.0]), np.array([0, 0, 10, 10.0])) == 0.0


@pytest.mark.slow
def test_fast_mode_comparison_and_fast_run():
    from d3s_vot.weights import random_weights

    cfg = bench.BenchConfig(frames=3, sizes=((320, 240),), warmup=0, repeats=1, init_repeats=1)
    (row,) = bench.compare_fast_mode(random_weights(0), cfg, progress=False)
    assert row["size"] == "320x240" and row["frames"] == 3 and len(row["iou_per_frame"]) == 3
    for key in ("default_init_ms", "fast_init_ms", "default_frame_mean_ms", "fast_frame_mean_ms",
                "init_speedup", "frame_speedup"):
        assert _positive_finite(row[key]), key
    assert row["frame_speedup"] == pytest.approx(row["default_frame_mean_ms"] / row["fast_frame_mean_ms"])
    assert 0.0 <= row["iou_min"] <= row["iou_mean"] <= 1.0
    assert row["iou_per_frame"][0] > 0.9        # both modes start from the same box: first frame agrees
    text = bench.render_text({**_minimal_report(), "fast_mode_comparison": [row]})
    assert "default vs fast mode" in text and "320x240" in text


def test_render_compute_floors():
    """Each counted DCF stage with its work, measured time, achieved rate, floor and distance to it;
    then the init floor against the init bound."""
    lines = bench.render_text(_minimal_report()).splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("compute floors"))
    assert "float32 2.0, float64 1.0 GFLOP/s" in lines[start + 1]
    rows = [line.split() for line in lines[start + 3:start + 6]]
    assert rows[0] == ["320x240", "pca", "0.00", "1.0", "1.0", "0.5", "2.00"]
    assert rows[1] == ["joint_gauss_newton", "0.00", "1.0", "2.0", "0.3", "3.33"]
    assert rows[2] == ["filter_cg_full_memory", "0.00", "1.0", "4.0", "0.1", "8.00"]
    assert lines[start + 6].split() == ["init", "floor", "=", "own", "trunks", "2.0", "+", "PCA", "and",
                                        "Gauss-Newton", "floors", "0.8", "=", "2.8", "ms", "=", "1.40x", "the",
                                        "init", "bound", "(measured", "1.00x)"]


def test_add_floors():
    size = {"init_flops": {"pca": 4e9, "joint_gauss_newton": 6e9}, "cg_flops": {"filter_cg_full_memory": 3e9}}
    bounds = {"tracker_init_trunks_ms": 100.0, "init_bound_ms": 200.0}
    bench.add_floors(size, bounds, {"float32": 4.0, "float64": 2.0}, dcf_dtype="float64", dtype="float32")
    # PCA in the tracker's dtype, the Gauss-Newton and the CG in the DCF dtype
    assert size["floors_ms"] == {"pca": 1000.0, "joint_gauss_newton": 3000.0, "filter_cg_full_memory": 1500.0}
    assert size["init_floor_ms"] == 4100.0 and size["init_floor_ratio"] == 20.5


def test_render_stage_table():
    lines = bench.render_text(_minimal_report()).splitlines()
    start = lines.index("  frame:")
    assert lines[start - 1].startswith("per-stage medians at 320x240 from the tracker's stage hooks (timed run;")
    rows = [line.split() for line in lines[start + 1:start + len(FRAME_STAGES)]]
    assert [row[0] for row in rows] == [name for name in FRAME_STAGES if name != "filter_update"]
    assert rows[0] == ["image_to_tensor", "1.00", "10.0%", "3"]
    assert lines[start + len(FRAME_STAGES)].split()[:6] == ["sum", "(without", "filter_update)", "10.00", "vs",
                                                            "measured"]
    assert "the stages cover 90.0% of the frames' time" in lines[start + len(FRAME_STAGES)]
    assert lines[start + len(FRAME_STAGES) + 1].split() == ["filter_update", "(CG,", "update", "frames)", "1.00", "3"]
    init = lines.index("  init:")
    assert lines[init + 1].split() == ["image_to_tensor", "1.00", "12.5%", "1"]
    assert "the stages cover 80.0% of the initialisations' time" in lines[init + len(DEFAULT_INIT_STAGES) + 1]


def _minimal_report():
    stages = {k: 1.0 for k in FRAME_STAGES}
    size = {"size": "320x240", "frames": 3, "frame_mean_ms": 2.0, "frame_ratio": 1.0, "frame_ratio_own_trunks": 1.0,
            "fps": 500.0, "cg_frame_mean_ms": None, "init_ms": 3.0, "init_ratio": 1.0, "init_ratio_own_trunks": 1.0,
            "peak_memory_mib": 1.0, "frame_stages_ms": stages, "frame_stage_counts": {k: 3 for k in FRAME_STAGES},
            "per_frame_stage_sum_ms": 10.0, "frame_stage_coverage": 0.9, "init_stage_coverage": 0.8,
            "plain_frame_mean_ms": 2.0, "full_memory_size": 250, "filter_cg_full_memory_ms": 1.0,
            "init_stages_ms": {k: 1.0 for k in DEFAULT_INIT_STAGES},
            "init_stage_counts": {k: 1 for k in DEFAULT_INIT_STAGES}, "init_stage_sum_ms": 8.0,
            "init_flops": {"pca": 1e6, "joint_gauss_newton": 2e6}, "cg_flops": {"filter_cg_full_memory": 4e6},
            "floors_ms": {"pca": 0.5, "joint_gauss_newton": 0.3, "filter_cg_full_memory": 0.125},
            "init_floor_ms": 2.8, "init_floor_ratio": 1.4,
            "bounds": {"frame_bound_ms": 2.0, "init_bound_ms": 2.0, "tracker_frame_trunks_ms": 2.0,
                       "tracker_init_trunks_ms": 2.0}, "bound_rounds": {"frame": 10, "init": 3}}
    bounds = {"dcf_trunk_256_ms": 1.0, "dcf_trunk_256_layout": "nchw", "segm_trunk_384_ms": 1.0,
              "segm_trunk_384_layout": "nchw", "init_samples": 27, "init_trunk_batch_256_ms": 1.0,
              "init_trunk_batch_256_layout": "nchw", "frame_bound_ms": 2.0, "init_bound_ms": 2.0,
              "tracker_trunks_folded": True, "tracker_frame_trunks_ms": 2.0, "tracker_init_trunks_ms": 2.0}
    return {"date": "now", "device": "cpu", "hardware": {"cpu": "x", "torch": "t", "torch_threads": 1},
            "dtype": "float32", "dcf_dtype": "float64", "memory_format": "channels_last", "weights": "random",
            "bounds": bounds, "matmul_peak_gflops": {"float32": 2.0, "float64": 1.0}, "sizes": [size],
            "fast_mode": True, "stage_source": "timed run"}


def test_fast_mode_preset():
    fast = D3SParams().fast_mode()
    assert fast.dcf_float64 is False and fast.deterministic is False
    assert D3SParams().dcf_float64 is True and D3SParams().deterministic is True   # off by default
    with pytest.raises(TypeError):
        FAST_MODE["dcf_float64"] = True             # read-only
    assert bench.config_from_args(bench.build_parser().parse_args(["--fast", "--compare-fast"])).fast is True


def test_bound_rounds_are_kept_per_tag():
    calls = []

    def net(name):
        return lambda x, taps: calls.append((name, x.shape[0], x.shape[-1]))
    forms = {form: (net(form + "/dcf"), net(form + "/segm"), torch.contiguous_format)
             for form in ("nchw", "channels_last", "tracker")}
    rounds = bench.BoundRounds(forms, 2, torch.float32, bench.Timer(0, 1, torch.device("cpu")))
    rounds.run()                                        # untagged: a warm-up round, every pass of every form
    assert len(calls) == 9 and rounds.samples == {}
    assert ("tracker/dcf", 2, 256) in calls and ("tracker/segm", 1, 384) in calls
    rounds.run(bench.FRAME_PASSES, "640x480")
    rounds.run(bench.INIT_PASSES, "640x480")
    rounds.run(bench.FRAME_PASSES, "1280x720")
    assert rounds.rounds("640x480", "dcf_trunk_256") == 1 and rounds.rounds("640x480", "segm_trunk_384") == 2
    assert rounds.rounds("1280x720", "init_trunk_batch_256") == 0
    assert set(rounds.medians("640x480")["tracker"]) == set(bench.PASSES)
    assert set(rounds.medians("1280x720")["nchw"]) == set(bench.FRAME_PASSES)
    pooled = rounds.medians()
    assert len(rounds.samples["640x480"][("nchw", "segm_trunk_384")]) == 2 and set(pooled["nchw"]) == set(bench.PASSES)


class FakeTracker:
    """The tracker's call and stage-hook interface without networks: ``track`` reports two stages, the
    second only on odd frames."""

    stage_recorder = D3STracker.stage_recorder
    record_stages = D3STracker.record_stages

    def __init__(self, log):
        self.log = log
        self._stage = StageHook()

    def initialize(self, image, region):
        self.log.append("init")
        with self._stage("pca"):
            pass

    def track(self, image):
        self.log.append("track")
        with self._stage("dcf_trunk"):
            pass
        if image % 2:
            with self._stage("filter_update"):
                pass
        return image


class FakeSeq:
    frames = [0, 1, 2]
    polygons = [None]


def test_timed_run_calls_between_around_the_timed_calls():
    log = []
    run = bench._timed_run(FakeTracker(log), FakeSeq(), bench.Timer(0, 1, torch.device("cpu")), 2,
                           between=lambda kind, i: log.append(f"{kind}{i}"))
    assert log == ["init0", "init", "init1", "init", "track", "frame0", "track", "frame1"]
    assert run.results == [1, 2] and len(run.frame_ms) == 2 and len(run.init_ms) == 2 and min(run.init_ms) >= 0
    assert run.init_stages == [] and run.frame_stages == []      # no recorder: no stages


def test_timed_run_keeps_each_calls_stages():
    tracker = FakeTracker([])
    run = bench._timed_run(tracker, FakeSeq(), bench.Timer(0, 1, torch.device("cpu")), 2, recorder=StageLog())
    assert run.init_stages == [[("pca", None)], [("pca", None)]]
    assert run.frame_stages == [[("dcf_trunk", None), ("filter_update", None)], [("dcf_trunk", None)]]
    assert run.frames_with("filter_update") == [0] and run.frames_with("dcf_trunk") == [0, 1]
    assert tracker.stage_recorder is None                         # restored after the run
    timed = bench._timed_run(tracker, FakeSeq(), bench.Timer(0, 1, torch.device("cpu")), 1,
                             recorder=StageTimer("cpu"))
    assert [[name for name, _ in call] for call in timed.frame_stages] == [["dcf_trunk", "filter_update"],
                                                                          ["dcf_trunk"]]
    assert all(ms >= 0 for call in timed.frame_stages for _, ms in call)


def test_stage_medians_and_coverage():
    calls = [[("dcf_trunk", 3.0), ("filter_update", 10.0)], [("dcf_trunk", 1.0), ("extra", 2.0)],
             [("image_to_tensor", 0.5), ("dcf_trunk", 2.0)]]
    medians, counts = bench.stage_medians(calls, FRAME_STAGES)
    assert list(medians) == ["image_to_tensor", "dcf_trunk", "filter_update", "extra"]   # unknown names last
    assert medians == {"image_to_tensor": 0.5, "dcf_trunk": 2.0, "filter_update": 10.0, "extra": 2.0}
    assert counts == {"image_to_tensor": 1, "dcf_trunk": 3, "filter_update": 1, "extra": 1}
    assert bench.stage_coverage(calls, [20.0, 3.0, 2.5]) == pytest.approx(18.5 / 25.5)


def test_stage_recorders():
    hook = StageHook()
    assert hook("pca") is NULL_STAGE                             # no recorder: the shared null context
    timer = StageTimer("cpu")
    with timer.stage("a"):
        time.sleep(0.002)
    with pytest.raises(KeyError):
        with timer.stage("failed"):
            raise KeyError("x")
    with timer.stage("b"):
        pass
    records = timer.take()
    assert [name for name, _ in records] == ["a", "b"] and records[0][1] >= 2.0   # a failed stage is not kept
    assert timer.take() == []
    log = StageLog()
    assert log.stage("x") is NULL_STAGE and log.names() == ["x"]


def test_record_stages_restores_the_previous_recorder():
    tracker = FakeTracker([])
    outer, inner = StageLog(), StageLog()
    with tracker.record_stages(outer):
        with pytest.raises(RuntimeError):
            with tracker.record_stages(inner):
                tracker.initialize(None, None)
                raise RuntimeError
        assert tracker.stage_recorder is outer
        tracker.track(1)
    assert tracker.stage_recorder is None
    assert inner.names() == ["pca"] and outer.names() == ["dcf_trunk", "filter_update"]


def test_flop_counter_counts_only_the_chosen_stages():
    counter = bench.FlopCounter(("pca",))
    a, b = torch.ones(3, 5), torch.ones(5, 7)
    assert counter.stage("dcf_trunk") is NULL_STAGE
    with counter.stage("pca"):
        a @ b
    assert counter.flops == {"pca": 2 * 3 * 5 * 7}


def test_full_memory_cg_micro_benchmark():
    """The full-memory filter update on synthetic inputs of the tracker's shapes: the closed form of
    tests/test_speed_floor.py with 250 samples of 64 x 16 x 16 and 5 CG iterations."""
    fake = SimpleNamespace(params=D3SParams(), device=torch.device("cpu"), dcf_dtype=torch.float64)
    ms, flops = bench.full_memory_cg(fake, bench.Timer(0, 1, torch.device("cpu")))
    assert flops == 12 * 2 * 16 * 64 * 250 * 256 == CG_UNIT_FLOPS * 250 and ms > 0


# ------------------------------------------------------------------------------------------------
# The tracker's stage hooks on a real sequence
# ------------------------------------------------------------------------------------------------

STAGE_FRAMES = 11           # tracked frames: the 10th (frame_num 11) updates the filter


@pytest.fixture(scope="module")
def staged_runs():
    """One short polygon-mode sequence tracked twice by one tracker (random weights, default parameters
    plus the post-init filter update, so that every stage runs): without a recorder, then with a
    StageTimer. Each call's measured time and its stage records are kept."""
    from d3s_vot.synthetic.scene import SceneConfig, generate_sequence
    from d3s_vot.weights import random_weights

    seq = generate_sequence(seed=3, num_frames=STAGE_FRAMES + 1, config=SceneConfig(width=320, height=240))
    tracker = D3STracker(random_weights(0), D3SParams(post_init_cg_iter=2), device="cpu")
    plain = [tracker.initialize(seq.frames[0], seq.polygons[0])] + [tracker.track(f) for f in seq.frames[1:]]
    timer = StageTimer(tracker.device)
    calls = []
    with tracker.record_stages(timer):
        for i, frame in enumerate(seq.frames):
            start = time.perf_counter()
            result = tracker.initialize(frame, seq.polygons[0]) if i == 0 else tracker.track(frame)
            calls.append((1000.0 * (time.perf_counter() - start), timer.take(), result))
    assert tracker.stage_recorder is None
    return plain, calls


@pytest.mark.slow
def test_every_stage_is_reported_in_order(staged_runs):
    _, calls = staged_runs
    init, frames = calls[0], calls[1:]
    assert [name for name, _ in init[1]] == list(INIT_STAGES)
    seen = set()
    for _, stages, _ in frames:
        names = [name for name, _ in stages]
        positions = [FRAME_STAGES.index(name) for name in names]         # unknown name: ValueError
        assert positions == sorted(set(positions)), names              # in the tracker's order, once each
        assert names[:4] == list(FRAME_STAGES[:4]) and names[-1] == "full_image_mask"    # every frame
        segm = [name for name in names if name in SEGMENTATION_STAGES]
        assert segm in ([], list(SEGMENTATION_STAGES))                 # the segmentation runs whole or not
        seen.update(names)
    assert seen == set(FRAME_STAGES)
    assert "filter_update" in [name for name, _ in frames[9][1]]        # frame_num 11
    for call_ms, stages, _ in calls:
        assert 0 < sum(ms for _, ms in stages) <= call_ms
    assert sum(ms for _, stages, _ in calls for _, ms in stages) >= 0.8 * sum(call_ms for call_ms, _, _ in calls)


@pytest.mark.slow
def test_a_recorder_does_not_change_the_results(staged_runs):
    plain, calls = staged_runs
    recorded = [result for _, _, result in calls]
    assert plain[0] is None and recorded[0] is None
    for a, b in zip(plain[1:], recorded[1:]):
        for name in a.__dataclass_fields__:
            assert _same(getattr(a, name), getattr(b, name)), name


def _same(x, y) -> bool:
    """Equal values: arrays element for element, dataclasses (the result's CropMask) field by field."""
    if isinstance(x, np.ndarray):
        return isinstance(y, np.ndarray) and np.array_equal(x, y)
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return type(x) is type(y) and all(_same(getattr(x, f.name), getattr(y, f.name))
                                          for f in dataclasses.fields(x))
    return x == y


def test_bound_rounds_run_under_the_trackers_kernel_mode():
    """The bounds are timed under the tracker's own CUDA kernel settings (deterministic_mode), so that a
    bound and the tracker use the same cuDNN / TF32 choices."""
    import contextlib

    entered = []

    @contextlib.contextmanager
    def mode():
        entered.append(True)
        yield

    forms = {"nchw": (lambda x, taps: None, lambda x, taps: None, torch.contiguous_format)}
    rounds = bench.BoundRounds(forms, 1, torch.float32, bench.Timer(0, 1, torch.device("cpu")), kernel_mode=mode)
    rounds.run(bench.FRAME_PASSES, "a")
    rounds.run(bench.INIT_PASSES, "a")
    assert entered == [True, True]


@pytest.mark.cuda
def test_fast_mode_keeps_tf32_out_of_matrix_products():
    from conftest import test_device_name
    from d3s_vot.tracker.d3s import deterministic_mode

    device = torch.device(test_device_name())
    for enabled in (True, False):
        with deterministic_mode(enabled, device):
            assert torch.backends.cuda.matmul.allow_tf32 is False
            assert torch.backends.cudnn.allow_tf32 is (not enabled)
