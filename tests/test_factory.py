"""The one tracker factory (d3s_vot.factory) and the one device resolver (d3s_vot.devices)."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

import d3s_vot
from d3s_vot import D3SParams, TrackerBuildError, TrackerSpec, build_tracker
from d3s_vot.devices import DeviceError, local_rank, resolve_device
from d3s_vot.factory import check_spec, load_spec_weights
from d3s_vot.params import parse_assignment_list, parse_assignments


def test_the_spec_is_plain_and_picklable():
    spec = TrackerSpec(weights="w.safetensors", params={"cg_iter": "3"}, dtype=torch.float64)
    assert spec.params == (("cg_iter", "3"),) and spec.dtype == "float64"
    assert pickle.loads(pickle.dumps(spec)) == spec
    assert TrackerSpec(params=(("cg_iter", "3"),)) == TrackerSpec(params={"cg_iter": "3"})


def test_build_with_random_weights_applies_params_dtype_and_device():
    tracker = build_tracker(TrackerSpec(random_weights_seed=0, device="cpu", dtype="float64",
                                        params={"cg_iter": "3", "learning_rate": 0.01}))
    assert tracker.params == D3SParams(cg_iter=3, learning_rate=0.01)
    assert tracker.dtype == torch.float64 and tracker.device == torch.device("cpu")
    fast = build_tracker(TrackerSpec(device="cpu", fast_mode=True), weights=load_spec_weights(
        TrackerSpec(random_weights_seed=0)))
    assert fast.params == D3SParams().fast_mode()


@pytest.mark.parametrize("spec, message", [
    (TrackerSpec(dtype="float16"), "dtype 'float16' is not supported by D3S: use float32 or float64"),
    (TrackerSpec(params={"nope": "1"}), "unknown D3SParams field 'nope'; known fields: "),
    (TrackerSpec(params={"cg_iter": "many"}), "parameter cg_iter: cannot parse 'many' as int"),
    (TrackerSpec(device="tpu"), "device 'tpu' is not a torch device name (use cpu, cuda or cuda:N)"),
    (TrackerSpec(device="meta"), "device 'meta' is not supported (use cpu, cuda or cuda:N)"),
    (TrackerSpec(weights="a.safetensors", random_weights_seed=0),
     "weights and random_weights_seed exclude each other: give one source of weights"),
    (TrackerSpec(backbone_weights="r.pth"), "backbone_weights needs segm_weights"),
])
def test_bad_settings_fail_before_the_weights_are_read(spec, message, monkeypatch):
    monkeypatch.setattr(d3s_vot.factory, "load_spec_weights", lambda s: pytest.fail("weights read"))
    with pytest.raises(TrackerBuildError) as info:
        build_tracker(spec)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


@pytest.mark.parametrize("spec, setting, cli", [
    (TrackerSpec(dtype="float16"), "dtype", "--dtype: dtype 'float16' is not supported"),
    (TrackerSpec(params={"nope": "1"}), "params", "--param: unknown D3SParams field 'nope'"),
    (TrackerSpec(device="tpu"), "device", "--device: device 'tpu' is not a torch device name"),
    (TrackerSpec(weights="a", random_weights_seed=0), "weights", "weights and random_weights_seed exclude each other"),
])
def test_the_error_names_the_setting_for_the_command_lines(spec, setting, cli):
    with pytest.raises(TrackerBuildError) as info:
        check_spec(spec)
    assert info.value.setting == setting and info.value.cli_message().startswith(cli)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_one_line():
    with pytest.raises(TrackerBuildError, match=r"^device 'cuda' requested but CUDA is not available; use device "
                                                r"'cpu' \(or None: CUDA when present\)$"):
        check_spec(TrackerSpec(device="cuda"))


def test_missing_weights_are_a_build_error(tmp_path, monkeypatch):
    monkeypatch.setenv("D3S_WEIGHTS", str(tmp_path / "none.safetensors"))
    with pytest.raises(TrackerBuildError, match="none.safetensors"):
        build_tracker(TrackerSpec(device="cpu"))
    with pytest.raises(TrackerBuildError, match=r"^weights file not found: "):
        build_tracker(TrackerSpec(weights=str(tmp_path / "x.safetensors"), device="cpu"))


def test_a_damaged_weights_file_is_a_build_error(tmp_path):
    bad = tmp_path / "d3s.safetensors"
    bad.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}")
    with pytest.raises(TrackerBuildError) as info:
        build_tracker(TrackerSpec(weights=str(bad), device="cpu"))
    assert "d3s.safetensors" in str(info.value) and "\n" not in str(info.value)


def test_device_resolver():
    default = resolve_device(None)
    assert default.type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu", rank=3) == torch.device("cpu")          # the rank only picks a GPU
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(DeviceError):
        resolve_device("bogus")
    assert issubclass(DeviceError, RuntimeError) and issubclass(DeviceError, ValueError)
    assert local_rank({"LOCAL_RANK": "2"}) == 2 and local_rank({}) is None


def test_one_assignment_parser():
    assert parse_assignments(["a=1", " b = (1, 2) "]) == {"a": "1", "b": "(1, 2)"}
    assert parse_assignment_list("a=1, b_c=(1, 2),d = x") == {"a": "1", "b_c": "(1, 2)", "d": "x"}
    assert parse_assignment_list("  ") == {}
    for bad in ("cg_iter", "=3", "1x=3"):
        with pytest.raises(ValueError, match=rf"^--param {bad!r}: expected NAME=VALUE$".replace("(", r"\(")):
            parse_assignments([bad])


def test_the_factory_tracker_tracks_like_the_direct_constructor():
    from d3s_vot.synthetic.scene import SceneConfig, generate_sequence
    from d3s_vot.weights import random_weights

    seq = generate_sequence(seed=1, num_frames=3, config=SceneConfig(width=160, height=120))
    a = build_tracker(TrackerSpec(random_weights_seed=0, device="cpu"))
    b = d3s_vot.D3STracker(random_weights(0), params=D3SParams(), device="cpu")
    for t in (a, b):
        t.initialize(seq.frames[0], seq.polygons[0])
    for frame in seq.frames[1:]:
        np.testing.assert_array_equal(a.track(frame).box, b.track(frame).box)
