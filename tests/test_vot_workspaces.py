"""The shipped registry (trackers.ini) and the workspaces resolve in the VOT toolkit as documented."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from d3s_vot.synthetic.vot import write_vot

REPO = Path(__file__).resolve().parents[1]
WORKSPACES = {"workspace_vot2016": "vot2016/rgb", "workspace_vot2018": "vot2018/shortterm",
              "workspace_vot2020": "vot2020/shortterm", "workspace_vot2022": "vot2022/shortterm",
              "workspace_vots2023": "vots2023"}


def test_registry_entries():
    ini = configparser.ConfigParser()
    ini.read(REPO / "trackers.ini")
    assert ini.sections() == ["D3S", "D3S_mask"]
    for name, output in (("D3S", "polygon"), ("D3S_mask", "mask")):
        entry = ini[name]
        assert entry["protocol"] == "traxpython" and entry["command"] == "d3s_vot.vot_tracker"
        assert int(entry["timeout"]) >= 120 and entry["env_d3s_output"] == output
        assert (REPO / entry["paths"]).resolve() == REPO


@pytest.mark.parametrize("workspace, stack", sorted(WORKSPACES.items()))
def test_workspace_config(workspace, stack):
    from vot.stack import resolve_stack

    config = yaml.safe_load((REPO / workspace / "config.yaml").read_text())
    assert config == {"registry": ["../trackers.ini"], "stack": stack}
    assert (REPO / workspace / config["registry"][0]).resolve() == REPO / "trackers.ini"
    assert resolve_stack(stack) is not None
    ignored = (REPO / workspace / ".gitignore").read_text().split()
    assert {"/sequences/", "/results/", "/cache/", "/analysis/", "/logs/"} <= set(ignored)


def test_workspace_finds_the_registered_tracker(tmp_path):
    """From any current directory, `vot` resolves D3S through config.yaml's ../trackers.ini."""
    shutil.copy(REPO / "trackers.ini", tmp_path / "trackers.ini")
    ws = tmp_path / "workspace_vot2018"
    shutil.copytree(REPO / "workspace_vot2018", ws)
    write_vot(ws / "sequences", num_sequences=1, num_frames=3)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    vot = shutil.which("vot", path=str(Path(sys.executable).parent)) or "vot"
    env = {**os.environ, "VOT_PERSISTENT_CACHE": "0"}
    run = lambda name: subprocess.run([vot, "analysis", "--workspace", str(ws), name], cwd=elsewhere, env=env,
                                      capture_output=True, text=True, timeout=120)
    found = run("D3S")
    assert "Missing results" in found.stdout + found.stderr  # resolved, just not evaluated
    missing = run("NoSuch")
    assert "Unable to resolve tracker reference: NoSuch" in missing.stdout + missing.stderr
