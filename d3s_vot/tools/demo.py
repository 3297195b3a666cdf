"""Offline demo: D3S through the real VOT toolkit and the GOT-10k toolkit on synthetic data, on a CPU.

    python -m d3s_vot.demo [--out DIR] [--weights PACK] [--sequences N] [--frames F] [--device cpu|cuda]
                           [--threads N] [--keep]

What it does, all offline (``make demo`` runs it with the defaults):

1. writes a VOT workspace ``DIR/vot_workspace``: synthetic sequences in the VOT layout, a small stack shaped
   like ``vot2018/shortterm`` (``baseline``: supervised, 15 repetitions that the deterministic tracker ends
   after 3, re-initialisation 5 frames after a failure; ``unsupervised``) with an EAO interval that fits the
   short sequences, and a ``trackers.ini`` with a ``D3S`` entry (``protocol = traxpython``,
   ``command = d3s_vot.vot_tracker``);
2. runs ``vot evaluate`` and ``vot analysis`` (the toolkit's own processes, talking TraX to D3S);
3. prints EAO, accuracy, failures and unsupervised AO, and the legacy (Matlab) EAO of the published tables;
4. evaluates on a synthetic GOT-10k ``val`` split with the official ``got10k`` toolkit's scoring and prints
   AO / SR0.5 / SR0.75 / FPS;
5. writes ``DIR/demo_results.json`` and a comparison report ``DIR/report.md`` / ``DIR/report.html``.

Weights: ``--weights``, else what ``load_weights()`` finds (``$D3S_WEIGHTS``, ``~/.cache/d3s_vot/``), else
random untrained weights: then the numbers only show that the pipeline works (the output says so).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from d3s_vot.common.io_utils import atomic_write_text
from d3s_vot.common.cli import CliArgumentParser, UserError, run_cli

TRACKER = "D3S"
MARKER = ".d3s_demo"            # marks DIR as the demo's own folder (the only kind it ever empties)
SETTINGS_FILE = "demo_settings.json"
RESULTS_FILE = "demo_results.json"
DEMO_PARTS = ("vot_workspace", "got10k_data", "got10k_results", "got10k_reports", "logs", "got10k.json",
              RESULTS_FILE, SETTINGS_FILE, "report.md", "report.html")
SUCCESS_LINE = "Evaluation concluded successfuly"   # the toolkit's spelling; its exit code is 0 either way
TRACKER_TIMEOUT_S = 900
SCENE_SIZE = (320, 240)
RANDOM_SEED = 0

STACK_YAML = """\
title: d3s_vot demo, a small vot2018/shortterm-like stack for {frames}-frame synthetic sequences
experiments:
  baseline:
    type: supervised
    repetitions: 15
    skip_initialize: 5
    analyses:
      - type: supervised_average_ar
        sensitivity: 30
      - type: supervised_eao_score
        low: {low}
        high: {high}
      - type: supervised_eao_curve
  unsupervised:
    type: unsupervised
    repetitions: 1
    analyses:
      - type: average_accuracy
"""


class DemoError(UserError):
    """Something the user must fix (missing toolkit, bad option, unusable output folder): one ``error:`` line."""


@dataclass(frozen=True)
class DemoConfig:
    out_dir: Path
    weights: Optional[str] = None
    sequences: int = 2
    frames: int = 60
    got10k_frames: int = 40
    device: Optional[str] = None
    threads: int = 1
    keep: bool = False

    def settings(self, weights: "WeightsChoice") -> Dict[str, Any]:
        """What the data and results depend on (a resumed run must match it)."""
        return {"sequences": self.sequences, "frames": self.frames, "got10k_frames": self.got10k_frames,
                "device": self.device, "threads": self.threads, "size": list(SCENE_SIZE),
                "weights": str(weights.path) if weights.path else f"random:{RANDOM_SEED}"}


@dataclass(frozen=True)
class WeightsChoice:
    """The weights file the demo uses, or None for random weights (``notice`` then says so)."""

    path: Optional[Path]
    notice: str


@dataclass
class StageClock:
    """Prints ``[k/n] title ... done (s)`` per stage and keeps the durations."""

    total: int
    seconds: Dict[str, float] = field(default_factory=dict)
    count: int = 0

    def run(self, key: str, title: str, action: Callable[[], Any]) -> Any:
        self.count += 1
        print(f"\n[{self.count}/{self.total}] {title}", flush=True)
        start = time.perf_counter()
        result = action()
        self.seconds[key] = time.perf_counter() - start
        print(f"[{self.count}/{self.total}] done in {format_duration(self.seconds[key])}", flush=True)
        return result


def format_duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{seconds:.1f} s"


def eao_interval(frames: int) -> tuple[int, int]:
    """EAO interval for ``frames``-frame sequences: the middle two thirds (vot2018 uses 100..356 on sequences
    of ~356 frames); always inside the sequence so the legacy EAO is finite."""
    low = max(2, frames // 6)
    return low, max(low, frames - frames // 6)


def got10k_frames_for(frames: int) -> int:
    """GOT-10k sequences are two thirds as long as the VOT ones (60 -> 40), at least 5 frames."""
    return max(5, round(frames * 2 / 3))


# --- preconditions -------------------------------------------------------------------------------------


def check_toolkits() -> List[str]:
    """The ``vot`` command line (as a list); DemoError naming the pip extra when a toolkit is missing."""
    if importlib.util.find_spec("vot") is None or importlib.util.find_spec("trax") is None:
        raise DemoError("the VOT toolkit is not installed: pip install -e .[vot] "
                        "(vot-toolkit==0.7.4, attributee==0.1.9, vot-trax; see docs/vot.md)")
    if importlib.util.find_spec("got10k") is None:
        raise DemoError("the GOT-10k toolkit is not installed: pip install -e .[got10k] (got10k==0.1.3, six, matplotlib)")
    exe = shutil.which("vot", path=str(Path(sys.executable).parent)) or shutil.which("vot")
    return [exe] if exe else [sys.executable, "-m", "vot"]


def resolve_weights(explicit: Optional[str]) -> WeightsChoice:
    """``--weights``, else the file ``load_weights()`` would use, else random weights.

    A file that is found but cannot be loaded is an error (no silent fallback to random weights).
    """
    from d3s_vot.factory import TrackerBuildError, TrackerSpec, load_spec_weights
    from d3s_vot.weights import PACK_NAME, SEGM_FILE_NAME, WEIGHTS_ENV, default_cache_dir, locate_weights

    if explicit:
        candidate = Path(explicit).expanduser()
        if not candidate.is_file():
            raise DemoError(f"--weights {explicit}: no such file (see docs/weights.md)")
    else:
        candidate = locate_weights()  # $D3S_WEIGHTS (as set, even if missing), else the cache's files
        if candidate is None:
            cache = default_cache_dir()
            looked = f"${WEIGHTS_ENV} (not set), {cache / PACK_NAME}, {cache / SEGM_FILE_NAME} (+ ResNet-50)"
            return WeightsChoice(None, f"no D3S weights found (looked in {looked}); using random weights: these "
                                       "numbers demonstrate the pipeline, not D3S's accuracy; see docs/weights.md")
    try:
        load_spec_weights(TrackerSpec(weights=str(candidate)))      # what the demo's trackers will load
    except TrackerBuildError as exc:
        raise DemoError(f"cannot use the weights {candidate}: {exc}") from None
    candidate = candidate.resolve()
    return WeightsChoice(candidate, f"using the D3S weights {candidate}")


def prepare_out_dir(config: DemoConfig, weights: WeightsChoice) -> None:
    """Create DIR, or (re)use it when it is the demo's own; without --keep, earlier demo outputs are removed."""
    out = config.out_dir
    if out.exists() and not out.is_dir():
        raise DemoError(f"--out {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise DemoError(f"--out {out} is not empty and was not made by the demo; choose a new or empty folder")
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("made by python -m d3s_vot.demo; may be deleted\n")
    settings_path = out / SETTINGS_FILE
    if config.keep and settings_path.is_file():
        previous = json.loads(settings_path.read_text())
        if previous != config.settings(weights):
            raise DemoError(f"--keep: {out} holds results made with other settings {previous}; "
                            "run without --keep to start afresh")
    if not config.keep:
        for name in DEMO_PARTS:
            path = out / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    atomic_write_text(settings_path, json.dumps(config.settings(weights), indent=2) + "\n")


# --- VOT -----------------------------------------------------------------------------------------------


def _ini_value(value: str) -> str:
    return value.replace("%", "%%")  # configparser interpolation


def trackers_ini(weights: WeightsChoice, device: Optional[str], threads: int) -> str:
    lines = [f"[{TRACKER}]", f"label = {TRACKER}", "protocol = traxpython", "command = d3s_vot.vot_tracker",
             "; CPU initialisation can take long on a busy machine: generous per-request timeout",
             f"timeout = {TRACKER_TIMEOUT_S}", "env_D3S_OUTPUT = polygon"]
    if weights.path is None:
        lines.append(f"env_D3S_RANDOM_WEIGHTS = {RANDOM_SEED}")
    else:
        lines.append(f"env_D3S_WEIGHTS = {_ini_value(str(weights.path))}")
    if device:
        lines.append(f"env_D3S_DEVICE = {device}")
    lines.append(f"env_OMP_NUM_THREADS = {threads}")
    return "\n".join(lines) + "\n"


def write_vot_workspace(config: DemoConfig, weights: WeightsChoice) -> Path:
    from d3s_vot.synthetic.scene import SceneConfig
    from d3s_vot.synthetic.vot import write_vot

    ws = config.out_dir / "vot_workspace"
    sequences = ws / "sequences"
    if not (config.keep and (sequences / "list.txt").is_file()):
        write_vot(sequences, num_sequences=config.sequences, num_frames=config.frames, seed=0,
                  config=SceneConfig(width=SCENE_SIZE[0], height=SCENE_SIZE[1]), overwrite=True, progress=True)
    low, high = eao_interval(config.frames)
    atomic_write_text(ws / "stack.yaml", STACK_YAML.format(frames=config.frames, low=low, high=high))
    atomic_write_text(ws / "config.yaml", "registry:\n- ./trackers.ini\nstack: ./stack.yaml\n")
    atomic_write_text(ws / "trackers.ini", trackers_ini(weights, config.device, config.threads))
    return ws


def run_logged(command: List[str], log_path: Path, cwd: Path, env: Dict[str, str]) -> str:
    """Run ``command``, echoing its output live and saving it to ``log_path``; return the output text."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    chunks: List[bytes] = []
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert process.stdout is not None
        try:
            while True:
                chunk = os.read(process.stdout.fileno(), 4096)
                if not chunk:
                    break
                chunks.append(chunk)
                log.write(chunk)
                log.flush()
                _echo(chunk)
        finally:
            process.wait()
    return b"".join(chunks).decode("utf-8", errors="replace")


def _echo(chunk: bytes) -> None:
    binary = getattr(sys.stdout, "buffer", None)
    if binary is not None:
        sys.stdout.flush()
        binary.write(chunk)
        binary.flush()
    else:
        sys.stdout.write(chunk.decode("utf-8", errors="replace"))
        sys.stdout.flush()


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join("  | " + line for line in text.replace("\r", "\n").splitlines()[-lines:])


def vot_env() -> Dict[str, str]:
    # text result files (readable, and what the report tools prefer); no stale analysis cache
    return {**os.environ, "VOT_RESULTS_BINARY": "0", "VOT_PERSISTENT_CACHE": "0"}


def vot_evaluate(vot: List[str], ws: Path, logs: Path) -> None:
    log = logs / "vot_evaluate.log"
    output = run_logged(vot + ["evaluate", "--workspace", str(ws), TRACKER], log, ws, vot_env())
    if SUCCESS_LINE not in output:
        print(_tail(output), file=sys.stderr)
        raise DemoError(f"vot evaluate did not finish (no '{SUCCESS_LINE}' in its output; the toolkit's exit "
                        f"code is 0 even then): read {log} and the tracker logs in {ws / 'logs'}")


def vot_analysis(vot: List[str], ws: Path, logs: Path) -> Dict[tuple, Any]:
    from d3s_vot.tools.report import parse_vot_analysis

    log = logs / "vot_analysis.log"
    target = ws / "analysis" / "demo.json"
    if target.exists():
        target.unlink()
    output = run_logged(vot + ["analysis", "--workspace", str(ws), "--format", "json", "--name", "demo", TRACKER],
                        log, ws, vot_env())
    if not target.is_file():
        print(_tail(output), file=sys.stderr)
        raise DemoError(f"vot analysis wrote no {target}: read {log}")
    values = parse_vot_analysis(json.loads(target.read_text()), TRACKER, str(target))
    if values is None:
        raise DemoError(f"{target} holds no results for {TRACKER}: read {log}")
    return values


def vot_summary(ws: Path, values: Dict[tuple, Any], frames: int) -> Dict[str, Any]:
    """The VOT numbers the demo prints: the toolkit's, plus legacy EAO, failure rate and FPS computed here."""
    from d3s_vot.integrations.vot.legacy_eao import LegacyEAOError, workspace_legacy_eao
    from d3s_vot.tools.report import failure_rate
    from d3s_vot.integrations.vot.toolkit_fps import SpeedError, speed_report

    low, high = eao_interval(frames)
    try:
        accuracy, failures, _, _ = values[("baseline", "AverageAccuracyRobustness")]
        eao = values[("baseline", "EAOScore")][0]
        ao = values[("unsupervised", "AverageAccuracy")][0]
    except (KeyError, TypeError, ValueError) as exc:
        raise DemoError(f"{ws / 'analysis' / 'demo.json'}: missing analysis {exc}") from None
    try:
        legacy = workspace_legacy_eao(ws, TRACKER, low=low, high=high)
        rate = failure_rate(ws, TRACKER)
        speed = speed_report(ws, [TRACKER], with_hardware=False)["trackers"][TRACKER]
    except (LegacyEAOError, SpeedError) as exc:
        raise DemoError(str(exc)) from None
    return {
        "eao_interval": [low, high],
        "eao": _number(eao),
        "legacy_eao": _number(legacy.score),
        "accuracy": _number(accuracy),
        "failures_per_sequence": _number(failures),
        "failures_per_100_frames": _number(rate),
        "unsupervised_ao": _number(ao),
        "fps": _number(speed["baseline"]["total"]["fps"]) if "baseline" in speed else None,
        "init_seconds_mean": _number(speed["baseline"]["total"]["mean_init_seconds"]) if "baseline" in speed else None,
        "workspace": str(ws),
    }


def _number(value: Any) -> Optional[float]:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


# --- GOT-10k -------------------------------------------------------------------------------------------


def run_got10k(config: DemoConfig, weights: WeightsChoice) -> Dict[str, Any]:
    from d3s_vot.integrations.got10k import evaluate as got10k_eval
    from d3s_vot.synthetic.got10k import write_got10k

    data = config.out_dir / "got10k_data"
    if not (config.keep and (data / "val" / "list.txt").is_file()):
        write_got10k(data, subset="val", sequences=config.sequences, frames=config.got10k_frames,
                     width=SCENE_SIZE[0], height=SCENE_SIZE[1], seed=0, progress=True)
    json_path = config.out_dir / "got10k.json"
    argv = ["--root", str(data), "--subset", "val", "--result-dir", str(config.out_dir / "got10k_results"),
            "--report-dir", str(config.out_dir / "got10k_reports"), "--tracker-name", TRACKER,
            "--json", str(json_path), "--threads", str(config.threads)]
    argv += ["--random-weights", str(RANDOM_SEED)] if weights.path is None else ["--weights", str(weights.path)]
    if config.device:
        argv += ["--device", config.device]
    if got10k_eval.main(argv) != 0:
        raise DemoError("the GOT-10k evaluation failed (see the message above)")
    payload = json.loads(json_path.read_text())
    return {key: payload.get(key) for key in ("ao", "sr50", "sr75", "fps", "init_seconds_mean", "sequences",
                                              "tracked_frames", "performance_json")}


# --- output --------------------------------------------------------------------------------------------


def _fmt(value: Optional[float], digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def summary_text(config: DemoConfig, weights: WeightsChoice, vot: Dict[str, Any], got: Dict[str, Any],
                 total_seconds: float) -> str:
    low, high = vot["eao_interval"]
    banner = "RANDOM WEIGHTS: pipeline demonstration, not D3S's accuracy" if weights.path is None else \
        f"weights {weights.path}"
    vot_rows = [
        (f"EAO (Python toolkit, interval {low}..{high})", _fmt(vot["eao"])),
        ("EAO (legacy Matlab definition)", _fmt(vot["legacy_eao"])),
        ("Accuracy", _fmt(vot["accuracy"])),
        ("Robustness: failures per sequence", f"{_fmt(vot['failures_per_sequence'], 2)}  "
                                              f"({_fmt(vot['failures_per_100_frames'], 2)} per 100 frames)"),
        ("Unsupervised AO", _fmt(vot["unsupervised_ao"])),
        ("FPS (baseline)", _fmt(vot["fps"], 2)),
    ]
    width = max(len(name) for name, _ in vot_rows)
    lines = [
        "", "=" * 78, f"D3S demo results ({banner})", "=" * 78,
        f"VOT, synthetic, vot2018/shortterm-like stack ({config.sequences} sequences x {config.frames} frames)",
        *(f"  {name:<{width}}  {value}" for name, value in vot_rows),
        f"GOT-10k val, synthetic ({config.sequences} sequences x {config.got10k_frames} frames)",
        f"  {'AO':>8} {'SR0.5':>8} {'SR0.75':>8} {'FPS':>8}",
        f"  {_fmt(got.get('ao')):>8} {_fmt(got.get('sr50')):>8} {_fmt(got.get('sr75')):>8} "
        f"{_fmt(got.get('fps'), 2):>8}",
        "",
        "For orientation, D3S with the authors' weights on the real datasets (paper): VOT2018 EAO 0.489, "
        "A 0.640, R 0.150; GOT-10k test AO 59.7 (docs/reproduction.md).",
    ]
    if weights.path is None:
        lines.append(f"NOTE: {weights.notice}")
    lines += [f"Results: {config.out_dir / RESULTS_FILE}, report: {config.out_dir / 'report.md'}",
              f"Total time: {format_duration(total_seconds)}"]
    return "\n".join(lines)


def run_demo(config: DemoConfig) -> Dict[str, Any]:
    """Run every stage; returns what is written to ``DIR/demo_results.json``."""
    start = time.perf_counter()
    vot = check_toolkits()
    weights = resolve_weights(config.weights)
    print(("WARNING: " if weights.path is None else "") + weights.notice, flush=True)
    prepare_out_dir(config, weights)
    logs = config.out_dir / "logs"
    clock = StageClock(total=5)
    ws = clock.run("workspace", "writing the synthetic VOT workspace", lambda: write_vot_workspace(config, weights))
    clock.run("vot_evaluate", f"vot evaluate {TRACKER}: baseline (3 identical repetitions), unsupervised "
              f"(log: {logs / 'vot_evaluate.log'})", lambda: vot_evaluate(vot, ws, logs))
    vot_numbers = clock.run("vot_analysis", "vot analysis, legacy EAO, speed",
                            lambda: vot_summary(ws, vot_analysis(vot, ws, logs), config.frames))
    got = clock.run("got10k", "GOT-10k val (synthetic) scored by the got10k toolkit",
                    lambda: run_got10k(config, weights))
    clock.run("report", "comparison report", lambda: write_report(config))
    total = time.perf_counter() - start
    results = {
        "weights": {"path": None if weights.path is None else str(weights.path),
                    "random": weights.path is None, "notice": weights.notice},
        "settings": config.settings(weights),
        "vot": vot_numbers,
        "got10k": got,
        "stage_seconds": clock.seconds,
        "total_seconds": total,
    }
    atomic_write_text(config.out_dir / RESULTS_FILE, json.dumps(results, indent=2) + "\n")
    print(summary_text(config, weights, vot_numbers, got, total), flush=True)
    return results


def write_report(config: DemoConfig) -> None:
    from d3s_vot.tools.report import ReportError, build_report, render_html, render_markdown

    try:
        report = build_report([config.out_dir / "vot_workspace"], config.out_dir / "got10k.json", None, TRACKER)
    except ReportError as exc:
        raise DemoError(f"report: {exc}") from None
    for section in report.sections:
        section.notes.insert(0, "demo: synthetic data, so the columns of published numbers only show the report's "
                                "format, not a comparison")
    atomic_write_text(config.out_dir / "report.md", render_markdown(report))
    atomic_write_text(config.out_dir / "report.html", render_html(report))


def build_parser() -> argparse.ArgumentParser:
    parser = CliArgumentParser(prog="python -m d3s_vot.demo", description=__doc__.split("\n\n")[0],
                               formatter_class=argparse.RawDescriptionHelpFormatter,
                               epilog=__doc__.split("\n\n", 2)[2])
    parser.add_argument("--out", default="demo_out", metavar="DIR", help="output folder (default ./demo_out)")
    parser.add_argument("--weights", metavar="PACK",
                        help="D3S weights (default: $D3S_WEIGHTS, then ~/.cache/d3s_vot/; else random weights)")
    parser.add_argument("--sequences", type=int, default=2, metavar="N",
                        help="synthetic sequences per benchmark (default 2)")
    parser.add_argument("--frames", type=int, default=60, metavar="F",
                        help="frames per VOT sequence (default 60; GOT-10k sequences get 2/3 of it)")
    parser.add_argument("--device", choices=("cpu", "cuda"), help="torch device (default: cuda if available)")
    parser.add_argument("--threads", type=int, default=1, metavar="N",
                        help="CPU threads per tracking process (default 1: on a shared or busy CPU, more "
                             "threads than free cores make torch many times slower)")
    parser.add_argument("--keep", action="store_true",
                        help="keep DIR's earlier demo results and compute only what is missing (resume an "
                             "interrupted demo); by default they are replaced")
    return parser


def parse_config(argv: Optional[List[str]]) -> DemoConfig:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not 1 <= args.sequences <= 50:
        parser.error(f"--sequences must be between 1 and 50, got {args.sequences}")
    if not 10 <= args.frames <= 2000:
        parser.error(f"--frames must be between 10 and 2000, got {args.frames}")
    if args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    return DemoConfig(Path(args.out).expanduser().absolute(), args.weights, args.sequences, args.frames,
                      got10k_frames_for(args.frames), args.device, args.threads, args.keep)


def main(argv: Optional[List[str]] = None) -> int:
    return run_cli(_demo, argv, interrupted="\ninterrupted: run the same command with --keep to resume")


def _demo(argv: Optional[List[str]]) -> int:
    config = parse_config(argv)
    if config.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise DemoError("--device cuda: torch sees no CUDA device (use --device cpu)")
    run_demo(config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
