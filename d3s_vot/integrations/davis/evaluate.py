"""Run D3S (or a baseline) on DAVIS 2016/2017 and score it with the official J/F definitions.

    python -m d3s_vot.davis_eval --root DAVIS --year 2017 --split val --results results/davis2017 \\
        --weights d3s.safetensors [--workers N] [--json scores.json]
    torchrun --nproc-per-node N -m d3s_vot.davis_eval ...          # shard over processes/GPUs
    python -m d3s_vot.davis_eval --root DAVIS --year 2017 --results DIR --score-only   # any method's PNGs

``RESULTS`` gets ``<sequence>/<frame>.png`` (indexed PNGs, the object ids of the annotations; the
folder the official ``evaluation_method.py --results_path`` reads), ``timing/`` and ``run.json`` (which
tracker wrote it: a resumed run must match). The table lists every object (``<sequence>_<id>``, as the
official per-sequence CSV), every sequence and the overall J&F, J and F mean/recall/decay; the JSON
(``--json``, default ``RESULTS/scores.json``) has the same numbers and the per-frame values.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import List, Optional, Sequence

from d3s_vot.common.distributed import DistContext
from d3s_vot.common.cli import CliArgumentParser
from d3s_vot.integrations.box_runner.boxio import BenchmarkError
from d3s_vot.integrations.box_runner.cli import add_tracker_arguments, run_main, tracker_spec, write_json
from d3s_vot.integrations.box_runner.fps import read_time_file, summarize_times
from d3s_vot.integrations.box_runner.trackers import RunnerTrackerSpec
from d3s_vot.integrations.davis.dataset import YEARS, DavisSequence, load_split
from d3s_vot.integrations.davis.runner import DavisJob, check_run_identity, run_sharded
from d3s_vot.integrations.davis.scoring import MEASURES, ObjectScore, overall, per_sequence, score_results

COLUMNS = ("J&F-Mean",) + MEASURES


def build_parser() -> argparse.ArgumentParser:
    parser = CliArgumentParser(prog="python -m d3s_vot.davis_eval", description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", required=True, help="DAVIS root (holds JPEGImages/, Annotations/, ImageSets/)")
    parser.add_argument("--year", choices=YEARS, required=True,
                        help="2016: one object per sequence (all ids merged); 2017: every object id")
    parser.add_argument("--split", default="val", help="ImageSets/<year>/<split>.txt (default val)")
    parser.add_argument("--results", required=True, metavar="DIR", help="result folder: <sequence>/<frame>.png (official format), timing/, run.json, "
                             "scores.json; an existing one is resumed")
    parser.add_argument("--sequences", metavar="A,B,...", help="only these sequences of the split")
    parser.add_argument("--score-only", action="store_true",
                        help="do not track: score the PNGs already in --results (any method's)")
    # the shared tracker/execution options; --json OUT: the scores (default RESULTS/scores.json)
    add_tracker_arguments(parser)
    return parser


def davis_tracker_spec(args: argparse.Namespace) -> RunnerTrackerSpec:
    """The shared tracker options, less ``--oracle-gt`` (the DAVIS oracle replays the annotations)."""
    if args.oracle_gt:
        raise BenchmarkError("--oracle-gt does not apply to DAVIS: the oracle replays the annotations of --root")
    return tracker_spec(args)


def _number(value: float) -> str:
    return "   n/a" if not math.isfinite(value) else f"{value:6.3f}"


def format_table(title: str, rows: Sequence[tuple]) -> List[str]:
    """Aligned text rows ``name  J&F-Mean  J-Mean ...``."""
    width = max([len(title)] + [len(name) for name, _ in rows])
    lines = [f"  {title:<{width}}  " + "  ".join(f"{c:>8}" for c in COLUMNS)]
    for name, values in rows:
        lines.append(f"  {name:<{width}}  " + "  ".join(f"{_number(values[c]):>8}" for c in COLUMNS))
    return lines


def report_payload(args, sequences: Sequence[DavisSequence], scores: Sequence[ObjectScore], tracker: str,
                   speed) -> dict:
    payload = {"benchmark": f"DAVIS {args.year}", "year": args.year, "split": args.split, "tracker": tracker,
               "results": str(Path(args.results)), "sequences": len(sequences), "objects": len(scores),
               "scored_frames": "all but the first and the last of each sequence (official protocol)",
               "overall": overall(scores), "per_sequence": per_sequence(scores),
               "per_object": {s.name: {**s.summary(), "frames": list(s.frames), "J": list(s.j), "F": list(s.f)}
                              for s in scores}}
    if speed is not None:
        payload.update({"tracked_frames": speed.tracked_frames, "fps": speed.fps,
                        "init_seconds_mean": speed.init_seconds_mean})
    return payload


def main_body(argv: Optional[List[str]]) -> int:
    args = build_parser().parse_args(argv)
    only = [s for s in args.sequences.split(",") if s] if args.sequences else None
    sequences = load_split(args.root, args.year, args.split, only)
    results = Path(args.results)
    jobs = [DavisJob(s, str(results)) for s in sequences]
    speed, name = None, "results"
    if not args.score_only:
        ctx = DistContext.from_env()
        spec = davis_tracker_spec(args)
        name = args.tracker_name or spec.default_name()
        check_run_identity(results, {"tracker": name, "year": args.year, "split": args.split})
        if not run_sharded(spec, jobs, ctx, workers=args.workers, wait_timeout=args.wait_timeout,
                           progress=not args.no_progress, desc=f"DAVIS {args.year} {args.split} {name}"):
            return 0
        speed = summarize_times([read_time_file(job.time_path) for job in jobs])
    unannotated = [s.name for s in sequences if not s.fully_annotated]
    if unannotated:
        print(f"\nDAVIS {args.year} {args.split}: results in {results}; not scored: {', '.join(unannotated[:5])}"
              f"{' ...' if len(unannotated) > 5 else ''} have no annotations beyond the first frame "
              "(a test split is scored by the DAVIS server)")
        return 0
    scores = score_results(sequences, results, progress=not args.no_progress)
    payload = report_payload(args, sequences, scores, name, speed)
    print(f"\nDAVIS {args.year} {args.split}: {name} on {len(sequences)} sequences, {len(scores)} objects "
          f"({results})")
    if args.year == "2017":
        print("\n".join(format_table("object", [(s.name, s.summary()) for s in scores])))
    print("\n".join(format_table("sequence", list(payload["per_sequence"].items()))))
    print("\n".join(format_table("overall", [("all objects", payload["overall"])])))
    if speed is not None:
        print(f"  FPS {speed.fps:.2f} (tracked frames / their total time, all objects of a frame together; "
              f"init {speed.init_seconds_mean:.3f} s per sequence, not included)")
    json_path = args.json or str(results / "scores.json")
    write_json(json_path, payload)
    print(f"  scores: {json_path}")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    return run_main(main_body, argv)


if __name__ == "__main__":
    sys.exit(main())
