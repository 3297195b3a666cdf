"""Helpers several test modules share (imported as ``support``: pytest puts this folder on the path).

``TraxSession``: a tracker process behind a vot-trax client, as the VOT toolkit drives it, every wait
bounded so that a hang fails the test. ``run_track_cli``: ``python -m d3s_vot.track`` in-process.
``vot``/``analysis``: the real toolkit's CLI on a workspace; ``MASK_TRACKERS_INI``: the mask-output
reference trackers and D3S of the VOT2020 and VOTS end-to-end tests.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REFERENCE_TRACKERS = "d3s_vot.vot_reference_trackers"


def clean_env(**extra):
    """The environment without the caller's ``D3S_*`` settings, TraX mode on, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("D3S_")}
    env.update(TRAX="1", **extra)
    return env


class TraxSession:
    """A TraX tracker process (default: the static reference tracker) behind a trax client."""

    def __init__(self, module=REFERENCE_TRACKERS, timeout=120, **env):
        from trax.client import Client

        defaults = {"D3S_REFERENCE_TRACKER": "static"} if module == REFERENCE_TRACKERS else {}
        self.process = subprocess.Popen([sys.executable, "-m", module], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, env=clean_env(**{**defaults, **env}))
        self.client = Client(stream=(self.process.stdin.fileno(), self.process.stdout.fileno()), timeout=timeout,
                             log=lambda *a: None)

    def init(self, path, region):
        from trax.image import FileImage

        return self.client.initialize({"color": FileImage.create(path)}, [(region, {})], {})[0]

    def frame(self, path):
        from trax.image import FileImage

        return self.client.frame({"color": FileImage.create(path)}, {}, [])[0]

    def finish(self, timeout=30):
        """Exit code and stderr of the tracker process (it must end by itself: no hang, no orphan)."""
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            pytest.fail("the tracker process hung")
        return code, self.process.stderr.read().decode()


def run_track_cli(capsys, *argv):
    """(exit code, stdout, stderr) of ``d3s_vot.tools.track.main`` (argparse usage errors included)."""
    from d3s_vot.tools import track

    try:
        code = track.main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --- the real VOT toolkit ----------------------------------------------------------------------------

def vot_command() -> list[str]:
    exe = shutil.which("vot", path=str(Path(sys.executable).parent)) or shutil.which("vot")
    return [exe] if exe else [sys.executable, "-m", "vot"]


def vot(*args: str, cwd: Path) -> str:
    """Run ``vot ARGS`` (text result files, no cache) and return its whole output: the toolkit exits 0
    even when the tracker crashed, so callers check the output."""
    env = {**os.environ, "VOT_RESULTS_BINARY": "0", "VOT_PERSISTENT_CACHE": "0"}
    out = subprocess.run(vot_command() + list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    return out.stdout + out.stderr


def analysis(ws: Path, name: str, *trackers: str) -> dict:
    """``vot analysis --format json`` -> ``{(tracker, experiment, analysis type): value}``."""
    log = vot("analysis", "--workspace", str(ws), "--name", name, "--format", "json", *trackers, cwd=ws)
    path = ws / "analysis" / f"{name}.json"
    assert path.is_file(), log
    doc = json.loads(path.read_text())
    out = {}
    for experiment, block in doc["results"].items():
        kinds = [a["type"] if isinstance(a, dict) else a for a in block["parameters"]["analyses"]]
        for kind, values in zip(kinds, block["results"]):
            for tracker, value in zip(doc["trackers"], values):
                out[(tracker, experiment, kind.rsplit(".", 1)[-1])] = value
    return out


#: oracle, static and random-weights D3S with mask output (``{ws}``: the workspace, for the init logs)
MASK_TRACKERS_INI = """\
[oracle]
protocol = traxpython
command = d3s_vot.vot_reference_trackers
env_D3S_REFERENCE_TRACKER = oracle
env_D3S_OUTPUT = mask

[static]
protocol = traxpython
command = d3s_vot.vot_reference_trackers
env_D3S_REFERENCE_TRACKER = static
env_D3S_OUTPUT = mask
env_D3S_INIT_LOG = {ws}/static_inits.log

[D3S_mask]
protocol = traxpython
command = d3s_vot.vot_tracker
timeout = 300
env_D3S_RANDOM_WEIGHTS = 0
env_D3S_DEVICE = cpu
env_D3S_OUTPUT = mask
env_D3S_PARAMS = use_augmentation=False,init_cg_iter=12
env_D3S_INIT_LOG = {ws}/d3s_inits.log
"""
