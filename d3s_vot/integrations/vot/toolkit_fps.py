"""Tracking speed from a VOT workspace's timing files: ``python -m d3s_vot.vot_speed WORKSPACE [TRACKER]``.

The Python VOT toolkit records per-frame wall-clock seconds (request sent -> reply received, so image
reading and IPC included) in ``results/<tracker>/<experiment>/<seq>/<seq>_<rep>_time.value`` but has no
speed analysis. This tool computes FPS = tracked frames / their total time, per sequence and per
experiment (all sequences pooled), counting separately:

* initialisation frames: the trajectory holds the init marker ``1`` there (their time is the init time);
* skipped frames after a failure: blank lines (no time);
* realtime-dropped frames: time ``0`` (the toolkit re-used the previous output without asking the tracker).

The hardware line describes the machine running this command (CPU model, GPU name, torch version): run it
where the evaluation ran.
"""

from __future__ import annotations

import json
import platform
import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from d3s_vot.common.cli import CliArgumentParser, UserError, run_cli


class SpeedError(UserError):
    """Bad input: reported as one ``error:`` line naming the file."""


@dataclass
class FrameTimes:
    """Pooled timing counts of some frames."""

    tracked_frames: int = 0
    tracked_seconds: float = 0.0
    init_frames: int = 0
    init_seconds: float = 0.0
    skipped_frames: int = 0
    dropped_frames: int = 0

    def add(self, other: "FrameTimes") -> None:
        for name in asdict(self):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @property
    def fps(self) -> float | None:
        return self.tracked_frames / self.tracked_seconds if self.tracked_seconds > 0 else None

    @property
    def mean_init_seconds(self) -> float | None:
        return self.init_seconds / self.init_frames if self.init_frames else None

    def to_dict(self) -> dict:
        return {**asdict(self), "fps": self.fps, "mean_init_seconds": self.mean_init_seconds}


@dataclass
class ExperimentSpeed:
    name: str
    sequences: dict[str, FrameTimes] = field(default_factory=dict)
    total: FrameTimes = field(default_factory=FrameTimes)


_TIME_FILE = re.compile(r"^(?P<seq>.+)_(?P<rep>\d{3})_time\.value$")


def _init_frames(trajectory_path: Path | None, length: int) -> list[bool]:
    """Which frames hold the init marker; without a trajectory file, frame 0 only."""
    if trajectory_path is None:
        return [i == 0 for i in range(length)]
    if trajectory_path.suffix == ".txt":
        lines = trajectory_path.read_text().splitlines()
        return [line.strip() == "1" for line in lines] + [False] * max(0, length - len(lines))
    try:
        from vot.region import Special
        from vot.region.io import read_trajectory
    except ImportError:
        raise SpeedError(f"{trajectory_path} is binary; reading it needs vot-toolkit (pip install 'd3s_vot[vot]') "
                         "or results written with VOT_RESULTS_BINARY=0") from None
    regions = read_trajectory(str(trajectory_path))
    flags = [isinstance(r, Special) and r.code == 1 for r in regions]
    return flags + [False] * max(0, length - len(flags))


def file_times(time_file: Path, trajectory_file: Path | None) -> FrameTimes:
    """Timing counts of one repetition (see module docstring for the frame kinds)."""
    times = FrameTimes()
    lines = time_file.read_text().splitlines()
    is_init = _init_frames(trajectory_file, len(lines))
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text:
            times.skipped_frames += 1
            continue
        try:
            seconds = float(text)
        except ValueError:
            raise SpeedError(f"{time_file}:{number}: not a number: {text!r}") from None
        if is_init[number - 1]:
            times.init_frames += 1
            times.init_seconds += seconds
        elif seconds == 0.0:
            times.dropped_frames += 1
        else:
            times.tracked_frames += 1
            times.tracked_seconds += seconds
    return times


def tracker_speed(results_dir: Path) -> list[ExperimentSpeed]:
    """Speed per experiment and sequence for one tracker's ``results/<tracker>`` directory."""
    experiments = []
    for exp_dir in sorted(p for p in results_dir.iterdir() if p.is_dir()):
        experiment = ExperimentSpeed(exp_dir.name)
        for seq_dir in sorted(p for p in exp_dir.iterdir() if p.is_dir()):
            seq_times = FrameTimes()
            for time_file in sorted(seq_dir.glob("*_time.value")):
                match = _TIME_FILE.match(time_file.name)
                if not match:
                    continue
                stem = f"{match['seq']}_{match['rep']}"
                trajectory = next((seq_dir / f"{stem}{s}" for s in (".txt", ".bin") if (seq_dir / f"{stem}{s}").is_file()),
                                  None)
                seq_times.add(file_times(time_file, trajectory))
            if seq_times.tracked_frames or seq_times.init_frames:
                experiment.sequences[seq_dir.name] = seq_times
                experiment.total.add(seq_times)
        if experiment.sequences:
            experiments.append(experiment)
    return experiments


def hardware() -> dict:
    """CPU model, GPU name (if torch sees one) and torch version of this machine."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "gpu": None, "torch": None, "python": platform.python_version()}
    try:
        import torch

        info["torch"] = torch.__version__
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return info


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def render_text(report: dict) -> str:
    hw = report["hardware"]
    lines = [f"hardware: CPU {hw['cpu']}; GPU {hw['gpu'] or 'none'}; torch {hw['torch'] or 'n/a'}"]
    for tracker, experiments in report["trackers"].items():
        for exp_name, exp in experiments.items():
            lines.append(f"\n{tracker} / {exp_name}")
            lines.append(f"  {'sequence':<28} {'frames':>7} {'fps':>8} {'inits':>6} {'init s':>7} {'skipped':>8} {'dropped':>8}")
            rows = list(exp["sequences"].items()) + [("ALL", exp["total"])]
            for name, t in rows:
                lines.append(f"  {name:<28} {t['tracked_frames']:>7} {_fmt(t['fps'], '8.2f')} {t['init_frames']:>6} "
                             f"{_fmt(t['mean_init_seconds'], '7.3f')} {t['skipped_frames']:>8} {t['dropped_frames']:>8}")
    return "\n".join(lines)


def speed_report(workspace: str | Path, trackers: list[str] | None = None, with_hardware: bool = True) -> dict:
    results = Path(workspace) / "results"
    if not results.is_dir():
        raise SpeedError(f"{results} not found (is {workspace} a VOT workspace with results?)")
    names = trackers or sorted(p.name for p in results.iterdir() if p.is_dir())
    report = {"hardware": None, "trackers": {}}
    for name in names:
        tracker_dir = results / name
        if not tracker_dir.is_dir():
            raise SpeedError(f"no results for tracker {name!r} in {results}")
        report["trackers"][name] = {
            e.name: {"sequences": {s: t.to_dict() for s, t in e.sequences.items()}, "total": e.total.to_dict()}
            for e in tracker_speed(tracker_dir)
        }
    if with_hardware:  # last: importing torch is slow and pointless when the results are unreadable
        report["hardware"] = hardware()
    return report


def main(argv: list[str] | None = None) -> int:
    return run_cli(main_body, argv)


def main_body(argv: list[str] | None) -> int:
    parser = CliArgumentParser(prog="python -m d3s_vot.vot_speed", description=__doc__.splitlines()[0])
    parser.add_argument("workspace", help="VOT workspace directory")
    parser.add_argument("trackers", nargs="*", metavar="TRACKER", help="tracker identifiers (default: all)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    report = speed_report(args.workspace, args.trackers or None)
    print(json.dumps(report, indent=2) if args.json else render_text(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
