"""Weights: safe loading of the authors' checkpoint, torchvision files, the pack format and its CLI."""
from __future__ import annotations

import collections
import importlib.util
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch

from d3s_vot import weights as W
from d3s_vot.weights import D3SWeights, WeightsError, load_weights, random_weights, save_pack

# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------

FAKE_LTR_CLASSES = (
    ("ltr.admin.model_constructor", "NetConstructor"),
    ("ltr.admin.stats", "AverageMeter"),
    ("ltr.admin.stats", "StatValue"),
    ("ltr.admin.settings", "Settings"),
    ("ltr.admin.local", "EnvironmentSettings"),
)


def _register_fake_ltr():
    """Create importable fake ``ltr.*`` classes (only while saving); return {name: class} and the module names."""
    added, classes = [], {}
    for module_name, class_name in FAKE_LTR_CLASSES:
        parts = module_name.split(".")
        for i in range(1, len(parts) + 1):
            name = ".".join(parts[:i])
            if name not in sys.modules:
                sys.modules[name] = types.ModuleType(name)
                added.append(name)
            if i > 1:
                setattr(sys.modules[".".join(parts[:i - 1])], parts[i - 1], sys.modules[name])
        cls = type(class_name, (), {"__module__": module_name, "__qualname__": class_name})
        setattr(sys.modules[module_name], class_name, cls)
        classes[class_name] = cls
    return classes, added


def write_authors_style_checkpoint(path: Path, net_state, legacy: bool) -> None:
    """A file laid out like the authors' SegmNet.pth.tar (ltr trainer dict with pickled ltr objects)."""
    classes, added = _register_fake_ltr()
    try:
        constructor = classes["NetConstructor"]()
        constructor.fun_name, constructor.fun_module = "segm_resnet50", "ltr.models.segm.segm"
        constructor.args = ()
        constructor.kwds = {"backbone_pretrained": True, "topk_pos": 3, "topk_neg": 3, "mixer_channels": 3}
        settings = classes["Settings"]()
        settings.env = classes["EnvironmentSettings"]()
        settings.env.workspace_dir = "/home/author/workspace"
        settings.device = torch.device("cpu")
        settings.normalize_mean = [0.485, 0.456, 0.406]
        meter = classes["AverageMeter"]()
        meter.avg, meter.count = 0.25, 10
        checkpoint = {
            "epoch": 40, "actor_type": "SegmActor", "net_type": "SegmNet",
            "net": collections.OrderedDict(net_state), "net_info": None, "constructor": constructor,
            "optimizer": {"state": {0: {"step": 7, "exp_avg": torch.ones(3)}},
                          "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "params": [0]}]},
            "stats": collections.OrderedDict(train=collections.OrderedDict(Loss=meter, Time=classes["StatValue"]())),
            "settings": settings,
        }
        torch.save(checkpoint, str(path), _use_new_zipfile_serialization=not legacy)
    finally:
        for name in added:
            del sys.modules[name]


def assert_states_equal(a, b):
    assert list(a) == list(b)
    for key in a:
        assert a[key].dtype == b[key].dtype, key
        assert torch.equal(a[key], b[key]), key


def cli(*argv):
    return W.main([str(a) for a in argv])


@pytest.fixture(scope="module")
def rand0() -> D3SWeights:
    return random_weights(0)


@pytest.fixture(scope="module")
def files(tmp_path_factory, rand0):
    """The original-style files written once: authors' checkpoints (zip, legacy), backbone, pack."""
    d = tmp_path_factory.mktemp("weights")
    paths = {"zip": d / "SegmNet_zip.pth.tar", "legacy": d / "SegmNet_legacy.pth.tar",
             "backbone": d / "resnet50-0676ba61.pth", "pack": d / "d3s.safetensors"}
    write_authors_style_checkpoint(paths["zip"], rand0.segm_state, legacy=False)
    write_authors_style_checkpoint(paths["legacy"], rand0.segm_state, legacy=True)
    torch.save(collections.OrderedDict(rand0.backbone_state), str(paths["backbone"]))
    paths["pack_sha256"] = save_pack(rand0, paths["pack"])
    return paths


# ---------------------------------------------------------------------------------------------
# random weights
# ---------------------------------------------------------------------------------------------

def test_random_weights_match_parity_generator_bit_for_bit(rand0, make_weights):
    # expected fingerprints are documented in shared/parity/README.md §1
    assert make_weights.fingerprint(rand0.segm_state) == (411, "bb015818a1c13b67")
    assert make_weights.fingerprint(rand0.backbone_state) == (320, "24fb27619126e443")


def test_random_weights_layout_and_provenance(rand0):
    assert list(rand0.segm_state) == list(W.expected_segm_shapes())
    assert list(rand0.backbone_state) == list(W.expected_backbone_shapes())
    assert W.compare_backbones(rand0) == {"conv_weights_equal": True, "bn_stats_equal": False}
    assert "tests and demos only" in rand0.metadata["notes"]
    other = random_weights(1)
    assert not torch.equal(other.backbone_state["conv1.weight"], rand0.backbone_state["conv1.weight"])


def test_expected_backbone_layout_is_torchvision_resnet50():
    import torchvision
    with torch.device("meta"):
        reference = torchvision.models.resnet50().state_dict()
    assert W.expected_backbone_shapes() == {k: tuple(v.shape) for k, v in reference.items()}
    segm = W.expected_segm_shapes()
    assert len(segm) == 411 and sum(k.startswith("segm_predictor.") for k in segm) == 91
    assert segm[W.MIXER_KEY] == (64, 3, 3, 3)


# ---------------------------------------------------------------------------------------------
# the authors' checkpoint, read without ltr and without running pickled code
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["zip", "legacy"])
def test_authors_checkpoint_loads_without_ltr(files, rand0, kind):
    assert "ltr" not in sys.modules and importlib.util.find_spec("ltr") is None
    state = W.load_segm_checkpoint(files[kind])
    assert_states_equal(state, rand0.segm_state)
    assert "ltr" not in sys.modules
    raw = W.torch_load_restricted(files[kind])
    assert raw["epoch"] == 40 and raw["settings"].state["device"] == torch.device("cpu")
    assert isinstance(raw["constructor"], W.InertObject)
    assert type(raw["constructor"]).__module__ == "ltr.admin.model_constructor"
    assert raw["constructor"].state["kwds"]["mixer_channels"] == 3


@pytest.mark.parametrize("legacy", [False, True])
def test_pickle_that_would_run_code_is_refused(tmp_path, legacy):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pth.tar"
    torch.save({"net": {}, "payload": Evil()}, str(path), _use_new_zipfile_serialization=not legacy)
    with pytest.raises(WeightsError, match=r"refusing to unpickle the global posix\.system"):
        W.load_segm_checkpoint(path)
    assert not marker.exists()


def test_builtin_eval_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (eval, ("1+1",))

    path = tmp_path / "evil.pth"
    torch.save({"x": Evil()}, str(path))
    with pytest.raises(WeightsError, match=r"builtins\.eval.*could run code"):
        W.torch_load_restricted(path)


def test_plain_state_dict_and_ddp_prefix_accepted(tmp_path, rand0):
    plain = tmp_path / "segm.pth"
    torch.save({"module." + k: v for k, v in rand0.segm_state.items()}, str(plain))
    assert_states_equal(W.load_segm_checkpoint(plain), rand0.segm_state)


def test_mixer_without_distance_map_is_rejected(tmp_path, rand0):
    state = dict(rand0.segm_state)
    state[W.MIXER_KEY] = torch.zeros(64, 2, 3, 3)
    path = tmp_path / "segm_nodist.pth"
    torch.save(state, str(path))
    with pytest.raises(WeightsError, match="2 input channels: this segmentation network was trained without "
                                           "the distance map"):
        W.load_segm_checkpoint(path)


def test_wrong_shapes_and_missing_keys_are_listed(rand0):
    state = dict(rand0.segm_state)
    state["segm_predictor.f2.0.weight"] = torch.zeros(32, 256, 3, 3)
    with pytest.raises(WeightsError, match=r"segm_predictor\.f2\.0\.weight \(32, 256, 3, 3\) "
                                           r"\(expected \(32, 512, 3, 3\)\)"):
        W.check_segm_state(state, "x")
    state = {k: v for k, v in rand0.segm_state.items() if not k.startswith("segm_predictor.s0.")}
    with pytest.raises(WeightsError, match=r"x: not a D3S segmentation network \(SegmNet\) state dict: "
                                           r"6 missing keys, e.g. segm_predictor\.s0\.0\.weight"):
        W.check_segm_state(state, "x")


def test_missing_num_batches_tracked_filled_with_zero(rand0):
    state = {k: v for k, v in rand0.segm_state.items() if not k.endswith("num_batches_tracked")}
    out = W.check_segm_state(state, "old")
    assert out["segm_predictor.mixer.1.num_batches_tracked"].dtype == torch.int64
    assert int(out["segm_predictor.mixer.1.num_batches_tracked"]) == 0


# ---------------------------------------------------------------------------------------------
# torchvision backbone files
# ---------------------------------------------------------------------------------------------

def test_torchvision_backbone_file(files, rand0, tmp_path):
    assert_states_equal(W.load_backbone_checkpoint(files["backbone"]), rand0.backbone_state)
    with pytest.raises(WeightsError, match="not a torchvision ResNet-50 state dict: .*unexpected keys"):
        W.load_backbone_checkpoint(files["legacy"])  # the segmentation network is not a backbone
    with pytest.raises(WeightsError, match="DCF backbone weights .ResNet-50. not found: .*IMAGENET1K_V1"):
        W.load_backbone_checkpoint(tmp_path / "resnet50-0676ba61.pth")


# ---------------------------------------------------------------------------------------------
# pack format
# ---------------------------------------------------------------------------------------------

def test_pack_round_trip(files, rand0):
    assert files["pack_sha256"] == W.file_sha256(files["pack"])
    loaded = load_weights(files["pack"])
    assert_states_equal(loaded.segm_state, rand0.segm_state)
    assert_states_equal(loaded.backbone_state, rand0.backbone_state)
    assert loaded.metadata["format"] == "d3s_vot.pack/1"
    assert loaded.metadata["content_sha256"] == W.content_sha256(W.pack_tensors(rand0))
    assert loaded.metadata["notes"] == W.RANDOM_NOTE
    assert loaded.metadata["loaded_from"] == str(files["pack"])


def test_pack_from_authors_files_records_provenance(files, tmp_path, capsys):
    out = tmp_path / "sub" / "d3s.safetensors"
    assert cli("pack", "--segm", files["legacy"], "--backbone", files["backbone"], "--out", out) == 0
    printed = capsys.readouterr().out
    assert f"sha256 {W.file_sha256(out)}" in printed
    meta = load_weights(out).metadata
    assert meta["segm_source"] == "SegmNet_legacy.pth.tar"
    assert meta["segm_sha256"] == W.file_sha256(files["legacy"])
    assert meta["backbone_source"] == "resnet50-0676ba61.pth"
    assert meta["backbone_sha256"] == W.file_sha256(files["backbone"])
    assert [p.name for p in out.parent.iterdir()] == ["d3s.safetensors"]  # no temp file left


def test_inspect_pack(files, capsys):
    assert cli("inspect", files["pack"]) == 0
    out = capsys.readouterr().out
    assert "format: d3s_vot.pack/1" in out
    assert "segmentation network: 411 tensors" in out and "DCF backbone: 320 tensors" in out
    assert "mixer input channels: 3 (D3S: 3)" in out
    assert "segmentation backbone BN statistics vs DCF backbone: differ (as expected for D3S)" in out
    assert f"sha256 {files['pack_sha256']}" in out
    assert "problem:" not in out


def test_inspect_authors_checkpoint(files, capsys):
    assert cli("inspect", files["zip"]) == 0
    out = capsys.readouterr().out
    assert "top-level keys: epoch, actor_type, net_type, net, net_info, constructor, optimizer, stats, settings" in out
    assert "kwds={'backbone_pretrained': True, 'topk_pos': 3, 'topk_neg': 3, 'mixer_channels': 3}" in out
    assert "state dict: 411 tensors" in out


def test_verify_ok_and_sha256(files, capsys):
    assert cli("verify", files["pack"], "--sha256", files["pack_sha256"].upper()) == 0
    assert capsys.readouterr().out.startswith(f"OK {files['pack']}: format d3s_vot.pack/1")
    assert cli("verify", files["pack"], "--sha256", "0" * 64) == 1
    assert f"file sha256 is {files['pack_sha256']}, expected {'0' * 64}" in capsys.readouterr().out
    assert cli("verify", files["pack"], "--sha256", "abc") == 2
    assert "error: --sha256 must be 64 hexadecimal digits" in capsys.readouterr().err


def test_tampered_pack_fails_verify_and_load(files, tmp_path, capsys):
    tampered = tmp_path / "tampered.safetensors"
    data = bytearray(files["pack"].read_bytes())
    data[-1000] ^= 0x01  # one bit of one weight
    tampered.write_bytes(bytes(data))
    assert cli("verify", tampered) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"FAILED {tampered}: content hash mismatch")
    with pytest.raises(WeightsError, match="not a valid D3S weights pack: content hash mismatch"):
        load_weights(tampered)
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(bytes(data[: len(data) // 2]))
    assert cli("verify", truncated) == 1
    assert capsys.readouterr().out == (f"FAILED {truncated}: truncated safetensors file: its header describes "
                                       f"{len(data)} bytes, the file has {len(data) // 2}\n")


# ---------------------------------------------------------------------------------------------
# resolution order and error messages
# ---------------------------------------------------------------------------------------------

@pytest.fixture
def empty_home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("D3S_WEIGHTS", raising=False)
    monkeypatch.delenv("TORCH_HOME", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    return home


def test_nothing_found_says_where_to_get_the_files(empty_home):
    with pytest.raises(WeightsError) as info:
        load_weights()
    msg = str(info.value)
    assert msg.startswith("D3S weights not found; looked for: $D3S_WEIGHTS (not set), "
                          f"{empty_home}/.cache/d3s_vot/d3s.safetensors, {empty_home}/.cache/d3s_vot/SegmNet.pth.tar")
    assert f"{empty_home}/.cache/torch/hub/checkpoints/resnet50-0676ba61.pth" in msg
    assert "github.com/alanlukezic/d3s" in msg and "Download the pre-trained network" in msg
    assert "ResNet50_Weights.IMAGENET1K_V1" in msg
    assert "python -m d3s_vot.weights pack --segm SegmNet.pth.tar --backbone resnet50-0676ba61.pth" in msg


def test_env_var_wins(files, empty_home, monkeypatch):
    cache = empty_home / ".cache" / "d3s_vot"
    cache.mkdir(parents=True)
    (cache / "d3s.safetensors").write_bytes(b"not used")
    monkeypatch.setenv("D3S_WEIGHTS", str(files["pack"]))
    assert load_weights().metadata["loaded_from"] == str(files["pack"])
    monkeypatch.setenv("D3S_WEIGHTS", str(empty_home / "nope.safetensors"))
    with pytest.raises(WeightsError, match=r"\$D3S_WEIGHTS points to .*nope\.safetensors, which does not exist"):
        load_weights()


def test_cache_dir_pack_then_original_files(files, empty_home, rand0):
    cache = empty_home / ".cache" / "d3s_vot"
    cache.mkdir(parents=True)
    (cache / "SegmNet.pth.tar").symlink_to(files["zip"])
    with pytest.raises(WeightsError, match="D3S weights not found"):
        load_weights()  # the backbone is still missing
    hub = empty_home / ".cache" / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / "resnet50-19c8e357.pth").symlink_to(files["backbone"])
    weights = load_weights()  # original files: segm from our cache, backbone from torch hub's
    assert weights.metadata["segm_source"] == "SegmNet.pth.tar"
    assert weights.metadata["backbone_source"] == "resnet50-19c8e357.pth"
    assert_states_equal(weights.backbone_state, rand0.backbone_state)
    (cache / "d3s.safetensors").symlink_to(files["pack"])
    assert load_weights().metadata["loaded_from"] == str(cache / "d3s.safetensors")  # the pack comes first


def test_explicit_cache_dir_and_segm_path_with_cached_backbone(files, empty_home, tmp_path):
    cache = tmp_path / "mycache"
    cache.mkdir()
    (cache / "resnet50-0676ba61.pth").symlink_to(files["backbone"])
    weights = load_weights(files["legacy"], cache_dir=cache)
    assert weights.metadata["backbone_source"] == "resnet50-0676ba61.pth"
    weights = load_weights(segm=files["zip"], backbone=files["backbone"])
    assert weights.metadata["segm_source"] == "SegmNet_zip.pth.tar"
    with pytest.raises(WeightsError, match="a backbone file alone is not enough"):
        load_weights(backbone=files["backbone"])
    with pytest.raises(WeightsError, match=r"weights file not found: .*missing\.pth\.tar \(SegmNet\.pth\.tar is"):
        load_weights(tmp_path / "missing.pth.tar")


def test_training_checkpoint_is_loaded_through_the_trainer(tmp_path, rand0):
    # "epoch" in the metadata is set by d3s_vot.train.checkpoint.load_checkpoint_weights only
    path = tmp_path / "checkpoint-epoch0003.pth"
    torch.save({"format": "d3s_vot.train/1", "net": dict(rand0.segm_state), "backbone_state": dict(rand0.backbone_state),
                "epoch": 3, "metadata": {"backbone_source": "test"}}, str(path))
    loaded = load_weights(path)
    assert loaded.metadata["epoch"] == "3" and loaded.metadata["loaded_from"] == str(path)
    assert_states_equal(loaded.segm_state, rand0.segm_state)
    broken = tmp_path / "checkpoint-epoch0004.pth"
    torch.save({"format": "d3s_vot.train/1", "net": dict(rand0.segm_state), "epoch": 4}, str(broken))
    with pytest.raises(WeightsError, match="checkpoint-epoch0004.pth: incomplete training checkpoint, "
                                           "no entry 'backbone_state'"):
        load_weights(broken)


def test_cli_errors_are_one_line_without_traceback(tmp_path):
    missing = tmp_path / "SegmNet.pth.tar"
    proc = subprocess.run([sys.executable, "-m", "d3s_vot.weights", "pack", "--segm", str(missing),
                           "--backbone", str(tmp_path / "r.pth"), "--out", str(tmp_path / "o.safetensors")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"error: segmentation network weights not found: {missing} (SegmNet.pth.tar is "
                                  "the authors' pre-trained segmentation network")
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1
    proc = subprocess.run([sys.executable, "-m", "d3s_vot.weights", "frobnicate"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and proc.stderr.startswith("error: argument command: invalid choice: 'frobnicate'")
