"""Every ``python -m d3s_vot.*`` command answers a user error with one ``error:`` line and exit code 2.

The table below has one bad invocation per command; a command added to the package without a row here
fails ``test_every_command_has_a_case``. The TraX entries (``vot_tracker``, ``vot_reference_trackers``)
answer with exit code 1, the code the VOT toolkit expects from a tracker that gives up.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import d3s_vot
from d3s_vot.common.cli import CliArgumentParser, UsageError, UserError, error_line, run_cli

PACKAGE_DIR = Path(d3s_vot.__file__).resolve().parent
MISSING = "/nonexistent/d3s-cli-probe"

# module -> (arguments, extra environment, exit code, the exact stderr line or its start when it ends in "...")
CASES = {
    "bench": (["--sizes", "0"], {}, 2, "error: --sizes: '0' is not WIDTHxHEIGHT (e.g. 640x480,1280x720)"),
    "davis_eval": (["--root", MISSING, "--year", "2017", "--results", "r"], {}, 2,
                   f"error: DAVIS root {MISSING} does not exist; get DAVIS from ..."),
    "demo": (["--frames", "5"], {}, 2,
             "error: --frames must be between 10 and 2000, got 5 (see python -m d3s_vot.demo --help)"),
    "got10k_eval": (["--root", MISSING, "--result-dir", "r"], {}, 2,
                    f"error: GOT-10k root {MISSING} does not exist; get GOT-10k from ..."),
    "legacy_eao": ([MISSING, "D3S"], {}, 2, f"error: workspace {MISSING} does not exist"),
    "report": (["--vot-workspace", MISSING], {}, 2, f"error: VOT workspace {MISSING} does not exist"),
    "synthetic": (["got10k", "/dev/null/x"], {}, 2, "error: /dev/null/x/val: Not a directory"),
    "track": ([MISSING, "--out", "out.txt"], {}, 2, f"error: {MISSING}: no such directory"),
    "trackingnet_eval": (["score"], {}, 2,
                         "error: the following arguments are required: --results, --annotations "
                         "(see python -m d3s_vot.trackingnet_eval score --help)"),
    "train": (["export", MISSING, "x.safetensors"], {}, 2, f"error: checkpoint {MISSING} does not exist"),
    "vot_reference_trackers": ([], {"D3S_REFERENCE_TRACKER": "bogus"}, 1,
                               "error: D3S_REFERENCE_TRACKER='bogus' is not one of oracle, static"),
    "vot_speed": ([MISSING], {}, 2, f"error: {MISSING}/results not found (is {MISSING} a VOT workspace with results?)"),
    "vot_tracker": ([], {"D3S_WEIGHTS": MISSING}, 1, f"error: weights file not found: {MISSING} (SegmNet.pth.tar is ..."),
    "weights": (["inspect", MISSING], {}, 2,
                f"error: weights file not found: {MISSING} (give the path of a d3s.safetensors pack or a checkpoint)"),
}


def runnable_modules():
    """The package's ``python -m`` commands: top-level modules with a ``__main__`` block, packages with
    a ``__main__.py``."""
    found = {p.stem for p in PACKAGE_DIR.glob("*.py") if 'if __name__ == "__main__"' in p.read_text()}
    found |= {p.parent.name for p in PACKAGE_DIR.glob("*/__main__.py")}
    return found


def test_every_command_has_a_case():
    assert runnable_modules() == set(CASES)


@pytest.mark.parametrize("module", sorted(CASES))
def test_user_error_is_one_line(module, tmp_path):
    args, env, code, expected = CASES[module]
    environ = {k: v for k, v in os.environ.items() if not k.startswith("D3S_")}
    proc = subprocess.run([sys.executable, "-m", f"d3s_vot.{module}", *args], cwd=tmp_path, capture_output=True,
                          text=True, env={**environ, **env}, timeout=300)
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    if expected.endswith("..."):
        assert lines[0].startswith(expected[:-3]), lines[0]
    else:
        assert lines[0] == expected


# --- the shared error path itself --------------------------------------------------------------------

def _raise(exc):
    def body(argv):
        raise exc
    return body


def test_run_cli_user_error_types(capsys):
    assert run_cli(_raise(UserError("bad\n  input")), []) == 2
    assert capsys.readouterr().err == "error: bad input\n"
    assert run_cli(_raise(UsageError("--x must be > 0")), []) == 2
    assert capsys.readouterr().err == "error: --x must be > 0\n"
    assert run_cli(_raise(FileNotFoundError(2, "No such file or directory", "/a/b")), []) == 2
    assert capsys.readouterr().err == "error: /a/b: No such file or directory\n"
    assert run_cli(_raise(ValueError("v")), [], user_errors=(ValueError,)) == 2
    assert capsys.readouterr().err == "error: v\n"


def test_run_cli_interrupt_and_bugs(capsys):
    assert run_cli(_raise(KeyboardInterrupt()), [], interrupted="interrupted: kept 3") == 130
    assert capsys.readouterr().err == "interrupted: kept 3\n"
    with pytest.raises(ZeroDivisionError):       # a bug keeps its traceback
        run_cli(_raise(ZeroDivisionError()), [])
    with pytest.raises(ValueError):              # ValueError is a user error only where a command says so
        run_cli(_raise(ValueError("v")), [])
    assert run_cli(lambda argv: 7, ["a"]) == 7


def test_error_line_of_os_error_without_file():
    assert error_line(OSError("disk full")) == "error: disk full"
    assert error_line(PermissionError(13, "Permission denied", "/x")) == "error: /x: Permission denied"


def test_parser_usage_error_is_one_line(capsys):
    parser = CliArgumentParser(prog="prog")
    parser.add_argument("--n", type=int, required=True)
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(["--n", "x"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "error: argument --n: invalid int value: 'x' (see prog --help)\n"


def test_package_errors_are_user_errors():
    from d3s_vot.common.distributed import TorchrunEnvError
    from d3s_vot.common.io_utils import InputError
    from d3s_vot.devices import DeviceError
    from d3s_vot.factory import TrackerBuildError
    from d3s_vot.integrations.box_runner.boxio import BenchmarkError
    from d3s_vot.integrations.vot.legacy_eao import LegacyEAOError
    from d3s_vot.integrations.vot.toolkit_fps import SpeedError
    from d3s_vot.tools.demo import DemoError
    from d3s_vot.tools.report import ReportError
    from d3s_vot.train.checkpoint import CheckpointError
    from d3s_vot.train.loop import TrainingError
    from d3s_vot.train.ytvos import DatasetError
    from d3s_vot.weights import WeightsError

    for cls in (TorchrunEnvError, InputError, DeviceError, TrackerBuildError, BenchmarkError, SpeedError, DemoError,
                ReportError, CheckpointError, TrainingError, DatasetError, WeightsError, LegacyEAOError):
        assert issubclass(cls, UserError), cls
    # the ValueError-derived ones stay ValueErrors for API callers
    assert issubclass(TrackerBuildError, ValueError) and issubclass(DeviceError, ValueError)


def test_closed_output_pipe_is_quiet(tmp_path):
    """``python -m d3s_vot.synthetic ... | head -c 0``-style readers that leave early: no traceback."""
    code = ("import sys\nfrom d3s_vot.common.cli import run_cli\n"
            "def body(argv):\n    for _ in range(100000):\n        print('x' * 100)\n    return 0\n"
            "sys.exit(run_cli(body, []))\n")
    proc = subprocess.run(f'"{sys.executable}" -c "{code}" | head -c 10 > /dev/null; exit ${{PIPESTATUS[0]}}',
                          shell=True, executable="/bin/bash", capture_output=True, text=True, timeout=60)
    assert proc.returncode == 141 and proc.stderr == ""
