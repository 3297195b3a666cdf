"""Host synchronisations and ATen ops of the tracker's CUDA code path (d3s_vot.tools.sync_count), counted on
the CPU through ``python -m d3s_vot.bench --count-syncs``.

The sync sites are pinned exactly (kind and file): a new ``.item()``, ``float(tensor)``, ``.cpu()`` or
blocking copy anywhere in ``initialize`` or ``track`` fails here. Budgets of the speed issue: <= 2 host
syncs per plain frame, <= 3 per filter-update frame, <= 15 per initialisation, and <= 150 ATen ops
per plain frame, networks included: the two ResNet-50 trunks and the segmentation head are three
CUDA-graph replays (d3s_vot.tracker.cuda_graphs; launched op by op they would be ~245 ops).
"""
from __future__ import annotations

import json
import re

import pytest
import torch

from d3s_vot.tools import speed_bench as bench
from d3s_vot.tools.sync_count import SyncCounter, count_call
from d3s_vot.tracker import transfers

# kind at file (line numbers move with edits; the test compares without them)
INIT_SYNCS = {"_linalg_eigh at d3s_vot/tracker/dcf.py": 1,            # the PCA's eigensolver checks its status
              "download at d3s_vot/tracker/augment.py": 1,            # the patch for OpenCV's rotations
              "download at d3s_vot/tracker/segmentation.py": 1}       # the first-frame probability map
FRAME_SYNCS = {"read at d3s_vot/tracker/localize.py": 1,             # both DCF peaks, one read
               "download at d3s_vot/tracker/segmentation.py": 1}      # the probability map (contours, mask)


def _without_lines(sites):
    out = {}
    for site, n in sites.items():
        key = re.sub(r":\d+$", "", site)
        out[key] = out.get(key, 0) + n
    return out


@pytest.fixture(scope="module")
def counts(tmp_path_factory):
    """One counted run: 320x240, 3 tracked frames, the filter updated every 2nd frame (frame 3)."""
    out = tmp_path_factory.mktemp("counts") / "counts.json"
    code = bench.main(["--count-syncs", "--sizes", "320x240", "--frames", "3", "--param", "train_skipping=2",
                       "--threads", "2", "--json", str(out), "--no-progress"])
    assert code == 0
    return json.loads(out.read_text())


@pytest.mark.slow
def test_sync_sites_are_the_two_the_algorithm_needs(counts):
    assert counts["cuda_code_path"] is True and counts["fused_cpu_trunks"] is False
    assert counts["memory_format"] == "nchw"          # the segmentation head's general (CUDA) form
    init, plain, update = counts["init"], counts["plain_frame"], counts["update_frame"]
    assert _without_lines(init["sync_sites"]) == INIT_SYNCS and init["host_syncs"] == 3
    assert plain["frame"] == 2 and plain["frames"] == 2 and plain["segmented"] is True
    assert update["frame"] == 3 and update["frames"] == 1
    for frame in (plain, update):
        assert _without_lines(frame["sync_sites"]) == FRAME_SYNCS and frame["host_syncs"] == 2
        assert frame["host_syncs_range"] == [2, 2]
        assert frame["cuda_sync_warnings"] is None                 # only CUDA runs confirm
    assert plain["host_syncs"] <= 2 and update["host_syncs"] <= 3 and init["host_syncs"] <= 15
    assert counts["within_budget"] is True


@pytest.mark.slow
def test_op_counts(counts):
    plain, update, init = counts["plain_frame"], counts["update_frame"], counts["init"]
    assert plain["tracker_ops_max"] <= 150 and plain["aten_ops"] == plain["network_ops"] + plain["tracker_ops"]
    # the networks do the same work on every segmented frame; the filter update is the tracker's
    assert update["network_ops"] == plain["network_ops"] and update["tracker_ops"] > plain["tracker_ops"]
    # the DCF features, the segmentation trunk and the head: one replay each, nothing else in the networks
    assert counts["cuda_graphs"] is True and counts["graph_fallbacks"] == {}
    assert [name.split("(")[0] for name in counts["graphs_recorded"]] == ["dcf_features", "segm_trunk", "segm_head"]
    assert plain["network_ops"] == plain["graph_replays"] == 3
    assert plain["aten_ops_range"][1] <= 150 and counts["frame_ops_within_budget"] is True
    # before this work: 750 ops on an update frame (288 of them the correlation's shift loops), 9,400 at init
    assert update["aten_ops"] < 600 and init["aten_ops"] < 5000
    # back to the host: the float32 probability map (384 x 384) and the two peaks (6 float64 values)
    assert plain["download_bytes"] == 384 * 384 * 4 + 6 * 8 and plain["uploads"] >= 4


@pytest.mark.slow
def test_the_report_prints_every_sync_with_its_source_line(counts, capsys):
    text = bench.render_counts(counts)
    assert "plain frame (frame 2, segmented" in text and "2 host syncs (budget 2)" in text
    assert re.search(r"1 x read at d3s_vot/tracker/localize\.py:\d+", text)
    assert re.search(r"1 x _linalg_eigh at d3s_vot/tracker/dcf\.py:\d+", text)
    assert "within the budgets (syncs; the tracker's own ops <= 150 per plain frame): yes" in text
    assert "networks as CUDA-graph replays; the tracker's second initialisation" in text
    assert re.search(r"\d+ ATen ops \(3 for the networks: 3 CUDA-graph replays, \d+ the tracker's\)", text)
    assert counts["frame_op_budget"] == 150 and "whole plain frame <= 150 ATen ops: yes" in text
    # without the graphs the networks' own launches break the whole-frame budget, and the report says why
    eager = {**counts, "cuda_graphs": False, "frame_ops_within_budget": False,
             "graph_fallbacks": {"segm_head(...)": "RuntimeError: boom"},
             "plain_frame": {**counts["plain_frame"], "network_ops": 244, "graph_replays": 0}}
    text = bench.render_counts(eager)
    assert "networks launched op by op" in text and "(244 in the networks, " in text
    assert "whole plain frame <= 150 ATen ops: NO (244 are the networks' own launches: cuda_graphs=true replays them)" \
        in text
    assert "  without a CUDA graph: segm_head(...): RuntimeError: boom" in text


def test_counter_sees_scalar_reads_and_routed_transfers():
    """What the counter counts, on a fake tracker call: a value read outside the helpers, a routed
    download and read, an async upload, host-side work (not counted), and the op split."""
    class Fake:
        device = torch.device("cpu")
        stage_recorder = None

        def record_stages(self, recorder):
            import contextlib
            return contextlib.nullcontext()

    x, host = torch.arange(6.0), torch.ones(3)

    def call():
        y = x * 2                                           # one device op
        float(y.sum())                                      # a scalar read outside the helpers: a sync
        transfers.download(y)                               # a routed download: a sync
        transfers.read_values(y[:2])                        # a routed read: a sync
        transfers.upload(host, torch.device("cpu"))         # async upload: no sync
        with transfers.host_side():
            (x + 1).argmin().item()                         # host work: not counted at all

    count, _, _ = count_call(Fake(), call)
    kinds = [kind for kind, _ in count.syncs]
    assert kinds == ["scalar read", "download", "read"]
    assert all(site.startswith("test_sync_count.py:") for _, site in count.syncs)
    assert count.uploads == 1 and count.upload_bytes == 12 and count.download_bytes == 6 * 4 + 2 * 4
    # mul, sum, _local_scalar_dense, plus one copy per routed transfer (download, read, upload)
    assert count.tracker_ops == 6 and count.network_ops == 0
    assert SyncCounter().count.ops == 0


def test_count_syncs_flag_is_in_the_config():
    cfg = bench.config_from_args(bench.build_parser().parse_args(["--count-syncs"]))
    assert cfg.count_syncs is True and cfg.frames == bench.SYNC_COUNT_FRAMES == 11


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_gpu_code_path_correlation_is_bit_identical(dtype):
    """The correlation's GPU form (one fold / unfold) gives the CPU form's numbers bit for bit, forward
    and adjoint, on magnitudes spread over 16 decades (where the order of the additions shows)."""
    from d3s_vot.tracker.dcf import Correlator

    g = torch.Generator().manual_seed(0)
    for n, size, k in ((1, 16, 4), (27, 16, 4), (5, 9, 3), (4, 7, 5)):
        scale = 10.0 ** torch.randint(-8, 8, (n, 6, size, size), generator=g)
        samples = (torch.randn(n, 6, size, size, generator=g, dtype=torch.float64) * scale).to(dtype)
        f = torch.randn(1, 6, k, k, generator=g, dtype=torch.float64).to(dtype)
        v = (torch.randn(n, 1, size, size, generator=g, dtype=torch.float64) * scale[:, :1]).to(dtype)
        cpu = Correlator(samples, k)
        with transfers.as_gpu_code_path():
            gpu = Correlator(samples, k)
        assert gpu.batched and not cpu.batched
        assert torch.equal(cpu.forward(f), gpu.forward(f)) and torch.equal(cpu.adjoint(v), gpu.adjoint(v))
