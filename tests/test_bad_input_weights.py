"""Bad weight files never cost a traceback: each gives one WeightsError line naming the file (CLI: exit 2).

A valid pack is made once from ``random_weights(0)``; the bad files are damaged copies of it, and
other files that are no weights at all (empty, zeros, random bytes, a pickle of a list, a directory,
a named pipe). ``verify`` keeps its own contract: a file it can open but whose content fails the
check is ``FAILED ...`` with exit 1; a path that is no readable file is an ``error:`` with exit 2.
"""
from __future__ import annotations

import os
import pickle
import random
import subprocess
import sys

import pytest
import torch

from d3s_vot.weights import (WeightsError, load_backbone_checkpoint, load_pack, load_segm_checkpoint, load_weights,
                             random_weights, save_pack)
from d3s_vot.weights.cli import main


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    """{name: path} of one valid pack and the bad files; also the pack's header length and size."""
    d = tmp_path_factory.mktemp("bad_weights")
    good = d / "good.safetensors"
    save_pack(random_weights(0), good)
    data = good.read_bytes()
    header_len = int.from_bytes(data[:8], "little")
    files = {"good": good, "dir": d / "a_directory", "fifo": d / "a_fifo"}
    files["dir"].mkdir()
    os.mkfifo(files["fifo"])

    def write(name, content):
        files[name] = d / name
        files[name].write_bytes(content)

    write("trunc5.safetensors", data[:5])
    write("trunc100.safetensors", data[:100])
    write("trunc_data.safetensors", data[:8 + header_len + 10])
    flipped = bytearray(data)
    flipped[9] = ord("!")  # the header's JSON no longer starts with a key
    write("bad_json.safetensors", bytes(flipped))
    flipped = bytearray(data)
    flipped[20:30] = b"\xff" * 10
    write("bad_utf8.safetensors", bytes(flipped))
    write("zeros.bin", bytes(4096))
    write("random.bin", bytes([7]) + random.Random(0).randbytes(4095))
    write("empty.bin", b"")
    write("plain.pkl", pickle.dumps({"x": "y"}))
    files["list.pth"] = d / "list.pth"
    torch.save([1, 2, 3], files["list.pth"])
    files["regular_file"] = d / "regular_file"
    files["regular_file"].write_text("not a folder")
    return files, header_len, len(data)


def run_cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


NO_STATE = ("no state dict found (expected a dict of tensors, or a checkpoint with a 'net' entry like the authors' "
            "SegmNet.pth.tar)")


def expected_messages(files, header_len, size):
    return {
        "trunc5.safetensors": "the file is only 5 bytes long, too short to be a weights file",
        "trunc100.safetensors": f"truncated safetensors file: its header says the header alone is {8 + header_len} "
                                "bytes, the file has 100",
        "trunc_data.safetensors": f"truncated safetensors file: its header describes {size} bytes, "
                                  f"the file has {8 + header_len + 10}",
        "bad_json.safetensors": "not a readable safetensors file (Error while deserializing header: invalid JSON in "
                                "header: key must be a string at line 1 column 2)",
        "bad_utf8.safetensors": "not a readable safetensors file (Error while deserializing header: invalid UTF-8 in "
                                "header: invalid utf-8 sequence of 1 bytes from index 12)",
        "zeros.bin": "the file is all zero bytes (4096 bytes), not a weights file",
        "random.bin": "cannot read it as a PyTorch checkpoint (UnpicklingError: invalid load key, '\\x07'.)",
        "empty.bin": "the file is empty (0 bytes), not a weights file",
        "plain.pkl": "cannot read it as a PyTorch checkpoint (RuntimeError: Invalid magic number; corrupt file?)",
        "list.pth": NO_STATE,
    }


CONTENT_CASES = ["trunc5.safetensors", "trunc100.safetensors", "trunc_data.safetensors", "bad_json.safetensors",
                 "bad_utf8.safetensors", "zeros.bin", "random.bin", "empty.bin", "plain.pkl", "list.pth"]


# ---------------------------------------------------------------------------------------------
# the loaders
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", CONTENT_CASES)
def test_load_weights_bad_content(bad, name):
    files, header_len, size = bad
    with pytest.raises(WeightsError) as info:
        load_weights(files[name])
    assert str(info.value) == f"{files[name]}: {expected_messages(files, header_len, size)[name]}"


@pytest.mark.parametrize("name, kind", [("dir", "a directory"), ("fifo", "a named pipe")])
@pytest.mark.parametrize("loader", [load_weights, load_pack, load_segm_checkpoint, load_backbone_checkpoint])
def test_every_loader_refuses_a_path_that_is_no_file(bad, name, kind, loader):
    files, _, _ = bad
    with pytest.raises(WeightsError) as info:
        loader(files[name])
    assert str(info.value) == f"{files[name]} is {kind}, not a weights file"


@pytest.mark.parametrize("loader", [load_pack, load_segm_checkpoint, load_backbone_checkpoint])
@pytest.mark.parametrize("name", ["trunc5.safetensors", "trunc100.safetensors", "zeros.bin", "empty.bin"])
def test_every_loader_explains_damaged_bytes(bad, loader, name):
    files, header_len, size = bad
    with pytest.raises(WeightsError) as info:
        loader(files[name])
    assert str(info.value) == f"{files[name]}: {expected_messages(files, header_len, size)[name]}"


def test_load_pack_of_a_pytorch_checkpoint(bad):
    files, _, _ = bad
    with pytest.raises(WeightsError) as info:
        load_pack(files["list.pth"])
    assert str(info.value) == (f"{files['list.pth']}: not a safetensors file: it looks like a PyTorch checkpoint "
                               "(load it with load_weights, or convert it with: python -m d3s_vot.weights pack)")


def test_env_var_pointing_to_a_directory(bad, monkeypatch):
    files, _, _ = bad
    monkeypatch.setenv("D3S_WEIGHTS", str(files["dir"]))
    with pytest.raises(WeightsError) as info:
        load_weights()
    assert str(info.value) == f"{files['dir']} is a directory, not a weights file"


# ---------------------------------------------------------------------------------------------
# the command line, in-process
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", CONTENT_CASES)
def test_inspect_bad_content(bad, capsys, name):
    files, header_len, size = bad
    code, out, err = run_cli(capsys, "inspect", files[name])
    assert (code, out) == (2, "")
    assert err == f"error: {files[name]}: {expected_messages(files, header_len, size)[name]}\n"


@pytest.mark.parametrize("command", ["inspect", "verify"])
@pytest.mark.parametrize("name, kind", [("dir", "a directory"), ("fifo", "a named pipe")])
def test_inspect_and_verify_a_path_that_is_no_file(bad, capsys, command, name, kind):
    files, _, _ = bad
    assert run_cli(capsys, command, files[name]) == (2, "", f"error: {files[name]} is {kind}, not a weights file\n")


@pytest.mark.parametrize("name", ["trunc5.safetensors", "trunc100.safetensors", "trunc_data.safetensors",
                                  "bad_json.safetensors", "zeros.bin", "empty.bin"])
def test_verify_bad_content_fails(bad, capsys, name):
    files, header_len, size = bad
    code, out, err = run_cli(capsys, "verify", files[name])
    assert (code, err) == (1, "")
    assert out == f"FAILED {files[name]}: {expected_messages(files, header_len, size)[name]}\n"


@pytest.mark.parametrize("segm, backbone, culprit, message", [
    ("dir", "good", "dir", "{} is a directory, not a weights file"),
    ("fifo", "good", "fifo", "{} is a named pipe, not a weights file"),
    ("zeros.bin", "good", "zeros.bin", "{}: the file is all zero bytes (4096 bytes), not a weights file"),
    ("list.pth", "good", "list.pth", "{}: " + NO_STATE),
    ("empty.bin", "good", "empty.bin", "{}: the file is empty (0 bytes), not a weights file"),
    ("good", "dir", "dir", "{} is a directory, not a weights file"),
    ("good", "trunc5.safetensors", "trunc5.safetensors",
     "{}: the file is only 5 bytes long, too short to be a weights file"),
])
def test_pack_bad_inputs(bad, capsys, tmp_path, segm, backbone, culprit, message):
    files, _, _ = bad
    out_file = tmp_path / "out.safetensors"
    code, out, err = run_cli(capsys, "pack", "--segm", files[segm], "--backbone", files[backbone], "--out", out_file)
    assert (code, out, err) == (2, "", f"error: {message.format(files[culprit])}\n")
    assert not out_file.exists()


def test_pack_out_under_a_regular_file_fails_before_reading_inputs(bad, capsys):
    files, _, _ = bad
    out_file = files["regular_file"] / "d3s.safetensors"
    # the inputs do not exist: the output is checked first
    code, out, err = run_cli(capsys, "pack", "--segm", files["dir"] / "missing", "--out", out_file)
    assert (code, out, err) == (2, "", f"error: cannot write {out_file}: {files['regular_file']} is not a directory\n")
    code, out, err = run_cli(capsys, "pack", "--random-seed", "0", "--out", out_file / "deeper.safetensors")
    assert (code, out) == (2, "")
    assert err == f"error: cannot write {out_file / 'deeper.safetensors'}: {files['regular_file']} is not a directory\n"


def test_pack_out_is_a_directory(bad, capsys):
    files, _, _ = bad
    code, out, err = run_cli(capsys, "pack", "--random-seed", "0", "--out", files["dir"])
    assert (code, out, err) == (2, "", f"error: cannot write {files['dir']}: it is a directory\n")


# ---------------------------------------------------------------------------------------------
# the command line as a real process
# ---------------------------------------------------------------------------------------------

def run_process(*args):
    proc = subprocess.run([sys.executable, "-m", "d3s_vot.weights", *map(str, args)], capture_output=True, text=True,
                          timeout=300)
    assert "Traceback" not in proc.stderr
    return proc.returncode, proc.stdout, proc.stderr


def test_process_inspect_truncated_pack(bad):
    files, _, _ = bad
    assert run_process("inspect", files["trunc5.safetensors"]) == (
        2, "", f"error: {files['trunc5.safetensors']}: the file is only 5 bytes long, too short to be a weights file\n")


def test_process_verify_directory(bad):
    files, _, _ = bad
    assert run_process("verify", files["dir"]) == (2, "", f"error: {files['dir']} is a directory, not a weights file\n")


def test_process_pack_unwritable_out(bad):
    files, _, _ = bad
    out_file = files["regular_file"] / "d3s.safetensors"
    assert run_process("pack", "--segm", files["good"], "--backbone", files["good"], "--out", out_file) == (
        2, "", f"error: cannot write {out_file}: {files['regular_file']} is not a directory\n")
