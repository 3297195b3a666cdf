"""CUDA-graph replays of the per-frame network calls (d3s_vot.tracker.cuda_graphs).

On the CPU the graph path runs emulated inside ``as_gpu_code_path`` (the sync and op counter's runs):
the same input buffers, copies and outputs as on CUDA, with an eager run in place of each replay. These
tests pin that plumbing (fresh values every call, one recording per shape, graphs recorded at
initialisation, results bit-identical to the eager tracker) and the fallback when recording fails;
the recording itself is checked on a GPU (``@pytest.mark.cuda``, ``make gpu-check``).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from d3s_vot.factory import TrackerSpec, build_tracker
from d3s_vot.synthetic.scene import SceneConfig, generate_sequence
from d3s_vot.tools.sync_count import COUNTING_OVERRIDES, SyncCounter
from d3s_vot.tracker import transfers
from d3s_vot.tracker.cuda_graphs import GraphedCalls, replay_difference

CPU = torch.device("cpu")


def _affine(x: torch.Tensor, y: torch.Tensor):
    return {"sum": x * 2 + y, "pair": [x.exp(), y - 1]}


def test_off_the_gpu_code_path_calls_run_as_they_are():
    calls = GraphedCalls(CPU, enabled=True)
    x = torch.ones(3)
    assert not calls.active
    out = calls("f", lambda t: t, x)
    assert out is x and calls.recorded() == []
    kept = calls.keep([x])
    assert kept[0] is x                                     # nothing to copy when graphs are off


def test_emulated_graph_path_gives_each_call_its_own_values():
    calls = GraphedCalls(CPU, enabled=True)
    x, y = torch.arange(4.0), torch.ones(4)
    with transfers.as_gpu_code_path():
        assert calls.active
        first = calls("affine", _affine, x, y)
        assert torch.equal(first["sum"], x * 2 + y) and torch.equal(first["pair"][1], y - 1)
        kept = calls.keep(first)
        second = calls("affine", _affine, x + 10, y)
        assert torch.equal(second["sum"], (x + 10) * 2 + y)
        assert second["sum"] is first["sum"]                     # the graph's output buffers, as on CUDA
        assert torch.equal(kept["sum"], x * 2 + y)               # the kept copy is not overwritten
        calls("affine", _affine, torch.zeros(2, 2), torch.zeros(2, 2))
        calls.prepare("affine", _affine, x, y)                  # already recorded: nothing happens
    assert calls.recorded() == ["affine(4 float32, 4 float32)", "affine(2x2 float32, 2x2 float32)"]
    assert calls.eager_fallbacks == {}


def test_disabled_graphs_stay_eager_on_the_gpu_code_path():
    calls = GraphedCalls(CPU, enabled=False)
    with transfers.as_gpu_code_path():
        assert not calls.active
        calls("f", _affine, torch.ones(2), torch.ones(2))
    assert calls.recorded() == []


def test_the_counter_counts_a_replay_as_one_launch_and_flags_a_sync_inside():
    calls = GraphedCalls(CPU, enabled=True)
    x, y = torch.arange(4.0), torch.ones(4)

    def reads_a_value(t):
        return t * float(t.sum())                               # .item() behind float(): a sync

    with transfers.as_gpu_code_path():
        calls("affine", _affine, x, y)                          # recorded outside the counter
        counter = SyncCounter()
        with transfers.recording(counter), counter:
            calls("affine", _affine, x, y)
    # two copies into the graph's input buffers, one replay; none of the four ops inside the graph
    assert counter.count.graph_replays == 1 and counter.count.network_ops == 1
    assert counter.count.ops_by_name == {"copy_": 2, "cuda_graph_replay": 1}
    assert counter.count.syncs == []

    with transfers.as_gpu_code_path():
        counter = SyncCounter()
        with transfers.recording(counter), counter:
            calls("reads", reads_a_value, x)
    assert [kind for kind, _ in counter.count.syncs] == ["_local_scalar_dense inside a CUDA graph"]
    assert counter.count.syncs[0][1].startswith("test_cuda_graphs.py:")


def test_a_failed_recording_leaves_the_call_eager_with_one_warning():
    """A CUDA tracker whose recording fails (here: CUDA tensors asked of a machine without a usable
    GPU, or CPU inputs) keeps running eagerly and says why once."""
    calls = GraphedCalls(torch.device("cuda"), enabled=True)
    x, y = torch.arange(4.0), torch.ones(4)
    with pytest.warns(RuntimeWarning, match=r"^d3s_vot: affine\(4 float32, 4 float32\) runs without a CUDA graph: "):
        out = calls("affine", _affine, x, y)
    assert torch.equal(out["sum"], x * 2 + y)
    assert list(calls.eager_fallbacks) == ["affine(4 float32, 4 float32)"] and calls.recorded() == []
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")                          # no second warning, no second attempt
        assert torch.equal(calls("affine", _affine, x, y)["sum"], x * 2 + y)


def test_replay_difference():
    a = torch.tensor([1.0, 2.0])
    assert replay_difference([a], [a.clone()], exact=True) is None
    near = a + torch.tensor([0.0, 1e-6])
    assert replay_difference([near], [a], exact=True) == \
        "output 0 differs from the eager run (deterministic mode needs bit-identical replays)"
    assert replay_difference([near], [a], exact=False) is None
    assert replay_difference([a + 0.1], [a], exact=False) == "output 0 differs from the eager run by 0.1 (largest value 2)"
    assert replay_difference([a, a], [a], exact=True) == "2 outputs replayed, 1 eager"
    assert replay_difference([a.double()], [a], exact=True) == \
        "output 0: (2,) torch.float64 replayed, (2,) torch.float32 eager"


def _tracker(**params):
    return build_tracker(TrackerSpec(random_weights_seed=3, device="cpu", params={**COUNTING_OVERRIDES, **params}))


def _run(tracker, seq, region, frames):
    tracker.initialize(seq.frames[0], region)
    recorded_at_init = tracker.graphs.recorded()
    results = []
    for image in seq.frames[1:frames + 1]:
        results.append((tracker.track(image), tracker.debug["segm_prob"]))
    return recorded_at_init, results


@pytest.mark.parametrize("init", ["polygon", "mask"])
def test_the_graph_path_tracks_bit_identically_and_records_at_initialisation(init):
    """The CUDA code path with its graph plumbing (emulated) against the same tracker without graphs:
    the same boxes, masks and scores bit for bit, and all three graphs recorded by ``initialize``."""
    seq = generate_sequence(seed=4, num_frames=5, config=SceneConfig(width=320, height=240))
    region = seq.polygons[0] if init == "polygon" else seq.masks[0]
    graphed, eager = _tracker(), _tracker(cuda_graphs="false")
    with transfers.as_gpu_code_path():
        recorded, with_graphs = _run(graphed, seq, region, 4)
        assert graphed.graphs.recorded() == recorded        # frames only replay
        none, without = _run(eager, seq, region, 4)
    assert none == []
    assert [name.split("(")[0] for name in recorded] == ["dcf_features", "segm_trunk", "segm_head"]
    assert all(prob is not None for _, prob in with_graphs)           # the head ran on every frame
    for (a, prob_a), (b, prob_b) in zip(with_graphs, without):
        assert np.array_equal(prob_a, prob_b) and np.array_equal(a.box, b.box) and np.array_equal(a.mask, b.mask)
        assert a.score == b.score and a.segmentation_used == b.segmentation_used


def test_forks_share_the_graphs():
    tracker = _tracker()
    assert tracker.fork().graphs is tracker.graphs


def test_compiled_trunks_record_their_own_graphs():
    assert _tracker(compile_trunks="true").graphs.enabled is False
    assert _tracker().graphs.enabled is True


@pytest.mark.cuda
def test_cuda_recording_replays_the_eager_results(test_device):
    """On a GPU: the three graphs are recorded at initialisation (no fallback), and tracking with them
    is bit-identical to tracking without them in deterministic mode."""
    seq = generate_sequence(seed=4, num_frames=5, config=SceneConfig(width=320, height=240))
    spec = dict(random_weights_seed=3, device=test_device)
    graphed = build_tracker(TrackerSpec(**spec))
    eager = build_tracker(TrackerSpec(**spec, params={"cuda_graphs": "false"}))
    recorded, with_graphs = _run(graphed, seq, seq.polygons[0], 4)
    _, without = _run(eager, seq, seq.polygons[0], 4)
    assert graphed.graphs.eager_fallbacks == {}
    assert [name.split("(")[0] for name in recorded] == ["dcf_features", "segm_trunk", "segm_head"]
    for (a, prob_a), (b, prob_b) in zip(with_graphs, without):
        assert np.array_equal(prob_a, prob_b) and np.array_equal(a.box, b.box) and np.array_equal(a.mask, b.mask)
