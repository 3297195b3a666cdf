"""Run D3S (or a baseline) on TrackingNet, pack the submission zip, and score with the devkit metrics.

    python -m d3s_vot.trackingnet_eval run --root TRACKINGNET --chunks TEST --result-dir results \\
        --weights d3s.safetensors --zip d3s_trackingnet.zip          # then upload the zip (EvalAI)
    python -m d3s_vot.trackingnet_eval run --root TRACKINGNET --chunks TRAIN_0 --result-dir results ...
                                                                       # local scores (full annotations)
    python -m d3s_vot.trackingnet_eval score --results results/D3S --annotations TRACKINGNET/TRAIN_0/anno
    torchrun --nproc-per-node N -m d3s_vot.trackingnet_eval run ...   # shard over processes/GPUs

Results: ``<result-dir>/<tracker>/<seq>.txt`` (``x,y,w,h`` per frame incl. frame 0, ``%.2f``,
comma-separated: the server's format) and ``<result-dir>/<tracker>/times/<seq>_time.txt``.
"""
from __future__ import annotations

import argparse
import io
import os
import sys
import zipfile
from pathlib import Path
from typing import List, Optional, Sequence

from d3s_vot.integrations.box_runner.boxio import read_boxes
from d3s_vot.integrations.box_runner.cli import add_tracker_arguments, run_main, tracker_spec, write_json
from d3s_vot.integrations.box_runner.fps import read_time_file, summarize_times
from d3s_vot.integrations.box_runner.runner import SequenceJob, check_records
from d3s_vot.integrations.box_runner.trackers import oracle_files
from d3s_vot.integrations.box_runner.sharding import DistContext, run_sharded
from d3s_vot.integrations.trackingnet.dataset import TrackingNetSequence, load_chunks, parse_chunks
from d3s_vot.integrations.trackingnet.metrics import TrackingNetScores, score, score_files
from d3s_vot.common.io_utils import atomic_write_bytes
from d3s_vot.common.cli import CliArgumentParser

RECORD_FORMAT = "%.2f"
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
SERVER = "https://eval.ai/web/challenges/challenge-page/1805"


def build_parser() -> argparse.ArgumentParser:
    parser = CliArgumentParser(prog="python -m d3s_vot.trackingnet_eval", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=CliArgumentParser)
    run = sub.add_parser("run", help="track the sequences of some chunks (resumable); pack and/or score")
    run.add_argument("--root", required=True, help="TrackingNet root (holds TEST/ and TRAIN_k/)")
    run.add_argument("--chunks", required=True, metavar="LIST", help="comma-separated, e.g. TEST or TRAIN_0,TRAIN_1")
    run.add_argument("--result-dir", required=True, help="results go to RESULT_DIR/<tracker>/<seq>.txt")
    run.add_argument("--zip", metavar="OUT.zip", help="also pack the results as a server submission zip")
    add_tracker_arguments(run)
    scorer = sub.add_parser("score", help="score existing result files with the official devkit metrics")
    scorer.add_argument("--results", required=True, metavar="DIR|ZIP", help="folder or zip of <seq>.txt results")
    scorer.add_argument("--annotations", required=True, nargs="+", metavar="DIR|ZIP",
                        help="folder(s) or zip(s) of full ground-truth <seq>.txt files, e.g. ROOT/TRAIN_0/anno")
    scorer.add_argument("--json", metavar="OUT", help="also write the scores as JSON to this file")
    return parser


def make_jobs(sequences: Sequence[TrackingNetSequence], result_dir: Path) -> List[SequenceJob]:
    return [SequenceJob(name=s.name, frame_files=s.frame_files, init_box=s.init_box,
                        record_path=str(result_dir / f"{s.name}.txt"),
                        time_path=str(result_dir / "times" / f"{s.name}_time.txt"),
                        box_format=RECORD_FORMAT)
            for s in sequences]


def pack_submission(jobs: Sequence[SequenceJob], zip_path: str) -> Path:
    """The server's format: one ``<seq>.txt`` per sequence at the zip root (sorted, fixed dates)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for job in sorted(jobs, key=lambda j: j.name):
            info = zipfile.ZipInfo(f"{job.name}.txt", date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, Path(job.record_path).read_bytes())
    atomic_write_bytes(zip_path, buffer.getvalue())
    return Path(zip_path)


def print_scores(title: str, scores: TrackingNetScores, extra: Sequence[tuple] = ()) -> None:
    print(title)
    rows = [("Success (AUC)", f"{scores.success:.2f}"),
            ("Precision (AUC 0-50 px)", f"{scores.precision:.2f}"),
            ("Normalized precision", f"{scores.norm_precision:.2f}"),
            ("Coverage", f"{scores.coverage:.2f}"), *extra]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"  {key:<{width}}  {value}")
    if scores.missing:
        print(f"  WARNING: {len(scores.missing)} sequence(s) without a result file, scored as failures: "
              f"{', '.join(scores.missing[:5])}{' ...' if len(scores.missing) > 5 else ''}")
    if scores.ambiguous:
        print(f"  WARNING: {len(scores.ambiguous)} sequence(s) match several result files, scored as failures: "
              f"{', '.join(scores.ambiguous[:5])}{' ...' if len(scores.ambiguous) > 5 else ''}")


def run_command(args: argparse.Namespace) -> int:
    ctx = DistContext.from_env()
    chunks = parse_chunks(args.chunks)
    sequences = load_chunks(args.root, chunks)
    oracle = None
    if args.tracker == "oracle":
        oracle = oracle_files(((s.name, s.anno_file, s.has_full_annotation) for s in sequences), args.oracle_gt)
    spec = tracker_spec(args, oracle)
    name = args.tracker_name or spec.default_name()
    result_dir = Path(os.path.abspath(args.result_dir)) / name
    jobs = make_jobs(sequences, result_dir)

    if not run_sharded(spec, jobs, ctx, workers=args.workers, wait_timeout=args.wait_timeout,
                       progress=not args.no_progress, desc=f"TrackingNet {name}"):
        return 0
    check_records(jobs)

    speed = summarize_times([read_time_file(job.time_path) for job in jobs])
    speed_rows = [("FPS", f"{speed.fps:.2f}  (tracked frames / their total time; init "
                          f"{speed.init_seconds_mean:.3f} s per sequence, not included)")]
    payload = {"benchmark": "TrackingNet", "chunks": chunks, "tracker": name, "tracker_kind": spec.kind,
               "sequences": len(jobs), "tracked_frames": speed.tracked_frames, "result_dir": str(result_dir),
               "fps": speed.fps, "fps_toolkit": speed.toolkit_fps, "init_seconds_mean": speed.init_seconds_mean}
    if args.zip:
        zip_path = pack_submission(jobs, args.zip)
        payload["submission_zip"] = str(zip_path)
    scored = [s for s in sequences if s.has_full_annotation]
    withheld = sorted({s.chunk for s in sequences if not s.has_full_annotation})
    if scored:
        scored_chunks = sorted({s.chunk for s in scored})
        scores = score({s.name: s.anno for s in scored}, [f"{s.name}.txt" for s in scored],
                       lambda member: read_boxes(result_dir / member, allow_nan=True))
        payload.update({"scored_chunks": scored_chunks, "scores": scores.to_dict()})
        print_scores(f"\nTrackingNet {', '.join(scored_chunks)} (official devkit metrics, %): {name} on "
                     f"{len(scored)} sequences", scores, speed_rows)
    else:
        print(f"\nTrackingNet {', '.join(chunks)}: {name} on {len(jobs)} sequences")
        for key, value in speed_rows:
            print(f"  {key}  {value}")
    if withheld:
        print(f"  NOTE: the ground truth of {', '.join(withheld)} is withheld; no metrics for it here. Pack the "
              f"results with --zip and upload the zip to the evaluation server ({SERVER}); scoring happens there.")
    if args.zip:
        print(f"  submission zip: {payload['submission_zip']}")
    write_json(args.json, payload)
    return 0


def score_command(args: argparse.Namespace) -> int:
    scores = score_files(args.results, args.annotations)
    print_scores(f"TrackingNet (official devkit metrics, %): {args.results} on {scores.sequences} sequences", scores)
    single = [name for name, seq in scores.per_sequence.items() if seq["frames"] == 1]
    if single:
        print(f"  WARNING: {len(single)} annotation file(s) hold a single box (TEST annotations are only the first "
              "frame, which always counts as perfect): score against full annotations")
    write_json(args.json, {"benchmark": "TrackingNet", "results": str(args.results),
                           "annotations": [str(a) for a in args.annotations], "scores": scores.to_dict()})
    return 0


def main_body(argv: Optional[List[str]]) -> int:
    args = build_parser().parse_args(argv)
    return run_command(args) if args.command == "run" else score_command(args)


def main(argv: Optional[List[str]] = None) -> int:
    return run_main(main_body, argv)


if __name__ == "__main__":
    sys.exit(main())
