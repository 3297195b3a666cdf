"""The one-script GPU check (d3s_vot.tools.gpu_check, scripts/gpu_check.sh): its ``--device cpu`` dry run
produces every section and every JSON key the GPU run produces, so the script cannot rot between GPU runs.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO_ROOT, test_device_name
from d3s_vot.tools import gpu_check


def _run(out, parity, *extra):
    return subprocess.run([sys.executable, "-m", "d3s_vot.tools.gpu_check", "--out", str(out), "--parity",
                           str(parity), *extra], capture_output=True, text=True, timeout=1200,
                          env={**os.environ, "OMP_NUM_THREADS": "2"})


def _assert_schema(report):
    assert tuple(report) == gpu_check.REPORT_KEYS
    for name in gpu_check.SECTIONS:
        assert report[name] is not None, (name, report["errors"].get(name))
        assert set(report[name]) == set(gpu_check.SECTION_KEYS[name]), name
        assert report["sections"][name]["status"] == "ok"
    assert report["errors"] == {}


@pytest.mark.slow
def test_cpu_dry_run_writes_every_key(tmp_path, parity_path):
    out = tmp_path / "check"
    proc = _run(out, parity_path, "--device", "cpu")
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "gpu_check.json").read_text())
    _assert_schema(report)
    assert report["device"] == "cpu" and report["dry_run"] is True
    assert not list(out.glob(".gpu_check.json.*")), "the atomic write left a temporary file"
    assert set(report["smoke"]["modes"]) == set(gpu_check.SMOKE_MODES)
    assert all(mode["finite"] and len(mode["boxes"]) == 2 for mode in report["smoke"]["modes"].values())
    assert report["smoke"]["deterministic_rerun_identical"] is True
    # the CPU records no CUDA graph (the counter emulates them on the CUDA code path)
    assert all(mode["graphs_recorded"] == [] and mode["graph_fallbacks"] == {}
               for mode in report["smoke"]["modes"].values())
    counts = report["sync_counts"]
    assert counts["within_budget"] is True and counts["confirmed_by_cuda"] is None
    assert counts["frame_ops_within_budget"] is True and counts["cuda_graphs"] is True
    assert len(counts["graphs_recorded"]) == 3 and counts["graph_fallbacks"] == {}
    assert counts["plain_frame"]["host_syncs"] <= 2 and counts["init"]["host_syncs"] <= 15
    assert report["bench"]["sizes"] == ["160x120"]
    assert report["bench"]["default"]["dcf_dtype"] == "float64" and report["bench"]["fast"]["dcf_dtype"] == "float32"
    parity = report["parity"]
    assert parity["frames"] == 2 and set(parity["float64"]) == {"poly"}      # the GPU run: rect and poly
    for mode in ("poly",):
        assert parity["float64"][mode]["within_tolerance"] is True, parity["float64"][mode]
        assert parity["float32_iou"][mode]["min"] > 0.99          # frames 2-3 follow the float64 trajectory
    assert report["training"]["amp"] is False and report["training"]["loss"] > 0     # AMP is CUDA-only
    log = (out / "gpu_check.log").read_text()
    assert all(f"== {name}" in log for name in gpu_check.SECTIONS) and "0 section(s) failed" in log


def test_bad_arguments(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "d3s_vot.tools.gpu_check", "--out", str(tmp_path), "--device", "cpu",
                           "--sections", "smoke,nope"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("error: --sections: unknown section(s) nope; choose from "
                                   "environment,smoke,sync_counts,bench,parity,training".replace(",", ", "))


def test_script_names_a_missing_interpreter(tmp_path):
    proc = subprocess.run(["bash", str(REPO_ROOT / "scripts" / "gpu_check.sh"), str(tmp_path / "o"), "--device", "cpu"],
                          capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHON": "/bin/false"})
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("error: /bin/false cannot import torch, cv2 and numpy; set PYTHON to an "
                                   "interpreter that has them")
    assert not (tmp_path / "o").exists()


@pytest.mark.cuda
def test_gpu_sync_counts_are_confirmed_by_cuda(tmp_path, parity_path):
    out = tmp_path / "check"
    proc = _run(out, parity_path, "--device", test_device_name(), "--sections", "environment,sync_counts")
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "gpu_check.json").read_text())
    assert report["environment"]["gpu"] and report["sync_counts"]["confirmed_by_cuda"] is True
    assert report["sync_counts"]["within_budget"] is True
    assert report["sync_counts"]["frame_ops_within_budget"] is True and report["sync_counts"]["graph_fallbacks"] == {}
