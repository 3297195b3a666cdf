"""Helpers several test modules share (imported as ``support``: pytest puts this folder on the path).

``TraxSession``: a tracker process behind a vot-trax client, as the VOT toolkit drives it, every wait
bounded so that a hang fails the test. ``run_track_cli``: ``python -m d3s_vot.track`` in-process.
"""
from __future__ import annotations

import os
import subprocess
import sys

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
