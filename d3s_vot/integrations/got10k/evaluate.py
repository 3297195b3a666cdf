"""Evaluate D3S (or a baseline) on GOT-10k val/test with the official got10k==0.1.3 toolkit.

    python -m d3s_vot.got10k_eval --root GOT10K --subset val --result-dir results --report-dir reports \\
        --weights d3s.safetensors [--workers N] [--json val.json]
    torchrun --nproc-per-node N -m d3s_vot.got10k_eval ...     # shard over processes/GPUs

Sequences are tracked by our own loop (sharded, resumable, atomic result files in the toolkit's
layout ``<result-dir>/GOT-10k/<tracker>/<SEQ>/<SEQ>_001.txt`` + ``_time.txt``); on ``val`` the
toolkit's ``ExperimentGOT10k.report`` computes AO / SR0.5 and the success plot, SR0.75 is its
``succ_curve[75]``. On ``test`` the ground truth is withheld: we write the server zip
``<result-dir>/GOT-10k/<tracker>.zip`` and scoring happens on the server.
"""
from __future__ import annotations

import argparse
import io
import os
import re
import sys
import zipfile
from pathlib import Path
from typing import List, Optional, Sequence

from d3s_vot.integrations.box_runner.boxio import BenchmarkError
from d3s_vot.integrations.box_runner.cli import add_tracker_arguments, run_main, tracker_spec, write_json
from d3s_vot.integrations.box_runner.fps import read_time_file, summarize_times
from d3s_vot.integrations.got10k.dataset import Got10kSequence, load_subset
from d3s_vot.integrations.box_runner.runner import SequenceJob, check_records
from d3s_vot.integrations.box_runner.trackers import oracle_files
from d3s_vot.integrations.box_runner.sharding import DistContext, run_sharded
from d3s_vot.common.io_utils import atomic_write_bytes
from d3s_vot.common.cli import CliArgumentParser

RECORD_FORMAT = "%.3f"        # what ExperimentGOT10k._record writes
SUBMIT_URL = "http://got-10k.aitestunion.com/submit_instructions"
ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def build_parser() -> argparse.ArgumentParser:
    parser = CliArgumentParser(prog="python -m d3s_vot.got10k_eval", description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", required=True, help="GOT-10k root (holds val/ and test/)")
    parser.add_argument("--subset", choices=("val", "test"), default="val")
    parser.add_argument("--result-dir", required=True, help="tracking results go to RESULT_DIR/GOT-10k/<tracker>")
    parser.add_argument("--report-dir", default="reports",
                        help="val reports go to REPORT_DIR/GOT-10k/<tracker> (default ./reports)")
    add_tracker_arguments(parser)
    return parser


def tracker_result_dir(result_dir: str, name: str) -> Path:
    return Path(os.path.abspath(result_dir)) / "GOT-10k" / name


def make_jobs(sequences: Sequence[Got10kSequence], result_dir: Path) -> List[SequenceJob]:
    return [SequenceJob(name=s.name, frame_files=s.frame_files, init_box=s.init_box,
                        record_path=str(result_dir / s.name / f"{s.name}_001.txt"),
                        time_path=str(result_dir / s.name / f"{s.name}_time.txt"),
                        box_format=RECORD_FORMAT)
            for s in sequences]


def speed_summary(jobs: Sequence[SequenceJob]):
    return summarize_times([read_time_file(job.time_path) for job in jobs])


def toolkit_report(root: str, result_dir: str, report_dir: str, name: str) -> dict:
    """Run ``ExperimentGOT10k.report`` on val (absolute dirs: toolkit bug #2) and return its entry."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    try:
        import matplotlib
        import matplotlib.pyplot as plt
        from got10k.experiments import ExperimentGOT10k
    except ImportError as exc:
        raise BenchmarkError(f"the GOT-10k toolkit is not installed ({exc}); "
                             "pip install 'd3s_vot[got10k]' (got10k==0.1.3, six, matplotlib)") from None
    experiment = ExperimentGOT10k(os.path.abspath(root), subset="val", result_dir=os.path.abspath(result_dir),
                                  report_dir=os.path.abspath(report_dir))
    cwd = os.getcwd()
    with matplotlib.rc_context():    # the toolkit's plot changes global font sizes
        try:
            performance = experiment.report([name])
        finally:
            os.chdir(cwd)
            plt.close("all")
    return performance[name]


def pack_submission(sequences: Sequence[Got10kSequence], result_dir: Path) -> Path:
    """Write ``<result-dir>/GOT-10k/<tracker>.zip``: ``<SEQ>/<SEQ>_001.txt`` and ``<SEQ>/<SEQ>_time.txt``.

    Same members as the toolkit's ``report()`` on test (a zip made from inside the tracker folder),
    without its ``os.chdir``; entries sorted with fixed dates so the zip is reproducible.
    """
    pattern = re.compile(r"^(.+)_(\d{3}|time)\.txt$")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for seq in sorted(sequences, key=lambda s: s.name):
            seq_dir = result_dir / seq.name
            for path in sorted(seq_dir.iterdir()):
                match = pattern.match(path.name)
                if not match or match.group(1) != seq.name:
                    continue
                info = zipfile.ZipInfo(f"{seq.name}/{path.name}", date_time=ZIP_DATE)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                archive.writestr(info, path.read_bytes())
    zip_path = result_dir.parent / f"{result_dir.name}.zip"
    atomic_write_bytes(zip_path, buffer.getvalue())
    return zip_path


def print_table(lines: List[tuple]) -> None:
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        print(f"  {key:<{width}}  {value}")


def main_body(argv: Optional[List[str]]) -> int:
    args = build_parser().parse_args(argv)
    ctx = DistContext.from_env()
    sequences = load_subset(args.root, args.subset)
    oracle = None
    if args.tracker == "oracle":
        oracle = oracle_files(((s.name, s.groundtruth_file, s.has_full_groundtruth) for s in sequences), args.oracle_gt)
    spec = tracker_spec(args, oracle)
    name = args.tracker_name or spec.default_name()
    result_dir = tracker_result_dir(args.result_dir, name)
    jobs = make_jobs(sequences, result_dir)

    if not run_sharded(spec, jobs, ctx, workers=args.workers, wait_timeout=args.wait_timeout,
                       progress=not args.no_progress, desc=f"GOT-10k {args.subset} {name}"):
        return 0
    check_records(jobs)

    speed = speed_summary(jobs)
    payload = {"benchmark": "GOT-10k", "subset": args.subset, "tracker": name, "tracker_kind": spec.kind,
               "sequences": len(jobs), "tracked_frames": speed.tracked_frames, "result_dir": str(result_dir),
               "fps": speed.fps, "fps_toolkit": speed.toolkit_fps, "init_seconds_mean": speed.init_seconds_mean}
    print(f"\nGOT-10k {args.subset}: {name} on {len(jobs)} sequences")
    if args.subset == "val":
        perf = toolkit_report(args.root, args.result_dir, args.report_dir, name)
        overall = perf["overall"]
        ao, sr50, sr75 = float(overall["ao"]), float(overall["sr"]), float(overall["succ_curve"][75])
        report_dir = Path(os.path.abspath(args.report_dir)) / "GOT-10k" / name
        payload.update({"ao": ao, "sr50": sr50, "sr75": sr75, "fps_toolkit": float(overall["speed_fps"]),
                        "performance_json": str(report_dir / "performance.json"),
                        "success_plot": str(report_dir / "success_plot.png"),
                        "seq_wise": {k: {kk: int(vv) if kk == "length" else float(vv) for kk, vv in v.items()}
                                     for k, v in perf["seq_wise"].items()}})
        print_table([("AO", f"{ao:.4f}"), ("SR0.50", f"{sr50:.4f}"), ("SR0.75", f"{sr75:.4f}"),
                     ("FPS", f"{speed.fps:.2f}  (tracked frames / their total time; init "
                             f"{speed.init_seconds_mean:.3f} s per sequence, not included)"),
                     ("FPS (toolkit)", f"{float(overall['speed_fps']):.2f}  (mean of per-frame 1/t, init frame "
                                       "included: not comparable)")])
        print(f"  report: {report_dir}/performance.json, success plot: {report_dir}/success_plot.png")
    else:
        zip_path = pack_submission(sequences, result_dir)
        payload.update({"submission_zip": str(zip_path)})
        print_table([("FPS", f"{speed.fps:.2f}  (tracked frames / their total time; init "
                             f"{speed.init_seconds_mean:.3f} s per sequence, not included)"),
                     ("FPS (toolkit)", f"{speed.toolkit_fps:.2f}  (mean of per-frame 1/t, init included)")])
        print(f"  submission zip: {zip_path}")
        print("  NOTE: the GOT-10k test ground truth is withheld; no metrics are computed here. Upload the zip "
              f"to the evaluation server ({SUBMIT_URL}); scoring happens on the server.")
    write_json(args.json, payload)
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    return run_main(main_body, argv)


if __name__ == "__main__":
    sys.exit(main())
