"""Sharding and resuming: --workers N, torchrun ranks, polling ranks, interrupted runs."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from d3s_vot.integrations.box_runner.sharding import DistContext, shard
from d3s_vot.common.distributed import TorchrunEnvError
from d3s_vot.integrations.got10k.evaluate import main as got10k_main
from d3s_vot.synthetic.got10k import write_got10k
from d3s_vot.synthetic.trackingnet import write_trackingnet
from d3s_vot.integrations.trackingnet.evaluate import main as trackingnet_main

SEQS = 5


@pytest.fixture(scope="module")
def got10k_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("got10k")
    write_got10k(root, subset="val", sequences=SEQS, frames=8, width=96, height=72, seed=11)
    return root


def got10k_args(root, out, *extra):
    return ["--root", str(root), "--subset", "val", "--result-dir", str(out / "results"),
            "--report-dir", str(out / "reports"), "--no-progress", "--json", str(out / "out.json"), *extra]


def metrics(out):
    data = json.loads((out / "out.json").read_text())
    return {k: data[k] for k in ("ao", "sr50", "sr75", "sequences", "tracked_frames")}


def records(out, name):
    return {p.name: p.read_bytes() for p in sorted((out / "results" / "GOT-10k" / name).glob("*/*_001.txt"))}


def test_shard_is_round_robin():
    items = list(range(7))
    assert shard(items, 0, 3) == [0, 3, 6] and shard(items, 1, 3) == [1, 4] and shard(items, 2, 3) == [2, 5]
    assert sorted(sum((shard(items, r, 3) for r in range(3)), [])) == items


def test_dist_context_from_env():
    assert DistContext.from_env({}) == DistContext(0, 1, 0)
    ctx = DistContext.from_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"})
    assert (ctx.rank, ctx.world_size, ctx.local_rank, ctx.is_main) == (3, 4, 1, False)
    with pytest.raises(TorchrunEnvError, match="RANK='x' is not an integer"):
        DistContext.from_env({"RANK": "x"})
    with pytest.raises(TorchrunEnvError, match="RANK=4 WORLD_SIZE=4"):
        DistContext.from_env({"RANK": "4", "WORLD_SIZE": "4"})


@pytest.mark.parametrize("tracker", ["static", "oracle"])
def test_two_workers_give_the_one_process_numbers(got10k_root, tmp_path, tracker):
    one, two = tmp_path / "one", tmp_path / "two"
    assert got10k_main(got10k_args(got10k_root, one, "--tracker", tracker)) == 0
    assert got10k_main(got10k_args(got10k_root, two, "--tracker", tracker, "--workers", "2")) == 0
    assert metrics(one) == metrics(two)
    name = tracker.capitalize()
    assert records(one, name) == records(two, name) and len(records(one, name)) == SEQS


def test_trackingnet_two_workers(tmp_path):
    write_trackingnet(tmp_path / "data", chunks=("TRAIN_0",), sequences=3, frames=8, width=96, height=72)
    outs = []
    for sub, extra in (("one", []), ("two", ["--workers", "2"])):
        assert trackingnet_main(["run", "--root", str(tmp_path / "data"), "--chunks", "TRAIN_0", "--tracker", "static",
                                 "--result-dir", str(tmp_path / sub), "--no-progress",
                                 "--json", str(tmp_path / f"{sub}.json"), *extra]) == 0
        outs.append(json.loads((tmp_path / f"{sub}.json").read_text())["scores"])
    assert outs[0] == outs[1]


def test_interrupted_run_resumes_without_redoing_finished_sequences(got10k_root, tmp_path):
    # an oracle whose ground truth for sequence 3 is too short fails there, like a crash mid-run
    oracle = tmp_path / "oracle_gt"
    oracle.mkdir()
    names = (got10k_root / "val" / "list.txt").read_text().split()
    for name in names:
        shutil.copy(got10k_root / "val" / name / "groundtruth.txt", oracle / f"{name}.txt")
    good = (oracle / f"{names[2]}.txt").read_text()
    (oracle / f"{names[2]}.txt").write_text("".join(good.splitlines(keepends=True)[:3]))
    args = got10k_args(got10k_root, tmp_path, "--tracker", "oracle", "--oracle-gt", str(oracle))
    assert got10k_main(args) == 2
    result_dir = tmp_path / "results" / "GOT-10k" / "Oracle"
    done = sorted(p.name for p in result_dir.glob("*/*_001.txt"))
    assert done == [f"{n}_001.txt" for n in names[:2]]
    assert not list(result_dir.rglob("*.tmp")) and not (result_dir / names[2]).exists()
    stamps = {p: p.stat().st_mtime_ns for p in result_dir.rglob("*.txt")}
    (oracle / f"{names[2]}.txt").write_text(good)
    assert got10k_main(args) == 0
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())        # finished ones untouched
    assert metrics(tmp_path)["ao"] == 1.0 and len(list(result_dir.glob("*/*_001.txt"))) == SEQS


def test_stale_record_with_wrong_length_is_a_clear_error(got10k_root, tmp_path, capsys):
    args = got10k_args(got10k_root, tmp_path, "--tracker", "static")
    assert got10k_main(args) == 0
    name = (got10k_root / "val" / "list.txt").read_text().split()[0]
    record = tmp_path / "results" / "GOT-10k" / "Static" / name / f"{name}_001.txt"
    record.write_text("".join(record.read_text().splitlines(keepends=True)[:5]))
    assert got10k_main(args) == 2
    assert f"error: {record}: 5 boxes for 8 frames" in capsys.readouterr().err


def cli(module, args, env_extra=None):
    env = dict(os.environ, **(env_extra or {}))
    return [sys.executable, "-m", module, *args], env


def test_ranks_without_torchrun_poll_for_each_other(got10k_root, tmp_path):
    """RANK/WORLD_SIZE without a rendezvous: rank 0 waits by polling for rank 1's result files."""
    reference = tmp_path / "ref"
    assert got10k_main(got10k_args(got10k_root, reference, "--tracker", "static")) == 0
    out = tmp_path / "ranks"
    procs = []
    for rank in (0, 1):
        env = {k: v for k, v in os.environ.items() if k not in ("MASTER_ADDR", "MASTER_PORT")}
        env.update(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank))
        procs.append(subprocess.Popen([sys.executable, "-m", "d3s_vot.got10k_eval",
                                       *got10k_args(got10k_root, out, "--tracker", "static")],
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert metrics(out) == metrics(reference)
    assert "AO" in outputs[0][0] and "AO" not in outputs[1][0]         # only rank 0 reports


def test_torchrun_two_processes_with_gloo(got10k_root, tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    reference = tmp_path / "ref"
    assert got10k_main(got10k_args(got10k_root, reference, "--tracker", "static")) == 0
    out = tmp_path / "torchrun"
    result = subprocess.run([str(torchrun), "--standalone", "--nproc-per-node", "2", "-m", "d3s_vot.got10k_eval",
                             *got10k_args(got10k_root, out, "--tracker", "static")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert metrics(out) == metrics(reference)
    assert records(out, "Static") == records(reference, "Static")


@pytest.mark.slow
def test_d3s_two_workers_equal_one_process(tmp_path):
    """The real tracker (random weights) gives the same boxes in 2 workers as in 1 process at equal
    torch thread counts (on CPU the summation order changes the last bits): 2 sequences x 5 frames."""
    import torch
    write_got10k(tmp_path / "data", subset="val", sequences=2, frames=5, width=128, height=96, seed=4)
    one, two = tmp_path / "one", tmp_path / "two"
    common = ["--random-weights", "0", "--device", "cpu", "--threads", "1"]
    threads = torch.get_num_threads()
    try:
        assert got10k_main(got10k_args(tmp_path / "data", one, *common)) == 0
    finally:
        torch.set_num_threads(threads)
    assert got10k_main(got10k_args(tmp_path / "data", two, *common, "--workers", "2")) == 0
    assert metrics(one) == metrics(two)
    assert records(one, "D3S_random0") == records(two, "D3S_random0")
