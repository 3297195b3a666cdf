"""The speed benchmark (python -m d3s_vot.bench): an end-to-end --quick run and its argument errors.

No timing is asserted (the machine is shared); the tests check the report's structure, that the
numbers are consistent with each other, and the CLI's error contract.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from d3s_vot import bench
from d3s_vot.params import FAST_MODE, D3SParams

FRAME_STAGES = ("image_to_tensor", "dcf_crop", "dcf_trunk", "dcf_project_correlate_upsample_localize", "segm_crop",
                "segm_trunk", "segm_head", "mask_to_box", "full_image_mask", "memory_update",
                "filter_cg_sequence_memory", "filter_cg_full_memory")
INIT_STAGES = ("image_to_tensor", "augmentation", "trunk_batch", "pca", "joint_gauss_newton", "memory_init",
               "segmentation_init")


def _positive_finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


@pytest.mark.slow
def test_quick_run_end_to_end(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, "-m", "d3s_vot.bench", "--quick", "--frames", "3", "--sizes", "640x480",
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
    assert size["size"] == "640x480" and size["frames"] == 3
    for key in ("frame_ratio", "init_ratio", "frame_mean_ms", "frame_median_ms", "init_ms", "fps", "peak_memory_mib"):
        assert _positive_finite(size[key]), key
    # each size's ratios divide by the bound rounds run during its own timings: one round of the init passes
    # before each timed initialize (1 with --quick), one of the frame passes after each of the 3 frames
    sb = size["bounds"]
    assert size["bound_rounds"] == {"frame": 3, "init": 1}
    assert size["frame_ratio"] == pytest.approx(size["frame_mean_ms"] / sb["frame_bound_ms"])
    assert size["init_ratio"] == pytest.approx(size["init_ms"] / sb["init_bound_ms"])
    assert size["frame_ratio_own_trunks"] == pytest.approx(size["frame_mean_ms"] / sb["tracker_frame_trunks_ms"])
    assert size["init_ratio_own_trunks"] == pytest.approx(size["init_ms"] / sb["tracker_init_trunks_ms"])
    assert all(_positive_finite(v) for v in sb.values())
    assert "ratios per size divide by the bounds of the rounds run during that size's timings" in proc.stdout
    assert f"frame bound {sb['frame_bound_ms']:.1f} ms (own {sb['tracker_frame_trunks_ms']:.1f}, 3 rounds)" \
        in proc.stdout
    assert size["cg_frames"] == 0 and size["cg_frame_mean_ms"] is None   # frames 2..4: no CG frame (every 10th)
    assert tuple(size["frame_stages_ms"]) == FRAME_STAGES
    assert tuple(size["init_stages_ms"]) == INIT_STAGES
    assert all(_positive_finite(v) for v in size["frame_stages_ms"].values())
    assert all(_positive_finite(v) for v in size["init_stages_ms"].values())
    per_frame = [v for k, v in size["frame_stages_ms"].items() if not k.startswith("filter_cg")]
    assert size["per_frame_stage_sum_ms"] == pytest.approx(sum(per_frame))
    assert size["init_stage_sum_ms"] == pytest.approx(sum(size["init_stages_ms"].values()))
    assert size["memory_active"] == 27 + 3 and size["full_memory_size"] == 250
    assert size["mask_to_box_fitted"] is True      # the ground-truth mask gives a real box fit
    assert size["init_samples"] == 27

    # compute floors: this machine's matrix-product peak in both dtypes the tracker uses, the DCF stages'
    # counted work, and the init floor as the tracker's own trunks plus the PCA and Gauss-Newton floors
    peaks = report["matmul_peak_gflops"]
    assert set(peaks) == {"float32", "float64"} and all(_positive_finite(v) for v in peaks.values())
    assert set(size["floors_ms"]) == {"pca", "joint_gauss_newton", "filter_cg_sequence_memory",
                                      "filter_cg_full_memory"}
    gn_flops = size["init_flops"]["joint_gauss_newton"]
    assert gn_flops == 31_306_285_056       # 6 GN x 10 CG iterations on 27 x 1024 x 16 x 16 features (test_speed_floor)
    assert size["floors_ms"]["joint_gauss_newton"] == pytest.approx(gn_flops / (peaks["float64"] * 1e6))
    assert size["floors_ms"]["pca"] == pytest.approx(size["init_flops"]["pca"] / (peaks["float32"] * 1e6))
    assert size["cg_flops"]["filter_cg_full_memory"] == 12 * 2 * 16 * 64 * 250 * 256
    assert size["init_floor_ms"] == pytest.approx(sb["tracker_init_trunks_ms"] + size["floors_ms"]["pca"]
                                                  + size["floors_ms"]["joint_gauss_newton"])
    assert size["init_floor_ratio"] == pytest.approx(size["init_floor_ms"] / sb["init_bound_ms"])
    assert "compute floors" in proc.stdout and f"{size['init_floor_ratio']:.2f}x the init bound" in proc.stdout


def test_timer_counts_warmup_and_repeats():
    calls, setups = [], []
    timer = bench.Timer(warmup=2, repeats=3, device=torch.device("cpu"))
    ms, result = timer.measure(lambda arg: calls.append(arg) or len(calls), setup=lambda: setups.append(1) or len(setups))
    assert calls == [1, 2, 3, 4, 5] and len(setups) == 5 and result == 5
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
    (["--weights", "/nonexistent/d3s.safetensors"], "error: weights file /nonexistent/d3s.safetensors not found"),
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
    (row,) = bench.compare_fast_mode(random_weights(0), D3SParams(), cfg, progress=False)
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


def _minimal_report():
    stages = {k: 1.0 for k in FRAME_STAGES}
    size = {"size": "320x240", "frames": 3, "frame_mean_ms": 2.0, "frame_ratio": 1.0, "frame_ratio_own_trunks": 1.0,
            "fps": 500.0, "cg_frame_mean_ms": None, "init_ms": 3.0, "init_ratio": 1.0, "init_ratio_own_trunks": 1.0,
            "peak_memory_mib": 1.0, "frame_stages_ms": stages, "per_frame_stage_sum_ms": 10.0,
            "plain_frame_mean_ms": 2.0, "memory_active": 30, "full_memory_size": 250,
            "init_stages_ms": {k: 1.0 for k in INIT_STAGES}, "init_stage_sum_ms": 7.0,
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
            "fast_mode": True}


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


def test_timed_run_calls_between_around_the_timed_calls():
    log = []

    class FakeTracker:
        def initialize(self, image, region):
            log.append("init")

        def track(self, image):
            log.append("track")
            return image

    class Seq:
        frames = [0, 1, 2]
        polygons = [None]
    init_ms, frame_ms, results = bench._timed_run(FakeTracker(), Seq(), bench.Timer(0, 1, torch.device("cpu")), 2,
                                                  between=lambda kind, i: log.append(f"{kind}{i}"))
    assert log == ["init0", "init", "init1", "init", "track", "frame0", "track", "frame1"]
    assert results == [1, 2] and len(frame_ms) == 2 and init_ms >= 0
