"""Command-line options shared by the GOT-10k and TrackingNet runners, and their error handling."""
from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Callable, Dict, List, Optional

from d3s_vot.common.io_utils import atomic_write_text
from d3s_vot.integrations.box_runner.boxio import BenchmarkError
from d3s_vot.factory import TrackerBuildError, TrackerSpec, check_spec
from d3s_vot.params import parse_assignments
from d3s_vot.integrations.box_runner.trackers import TRACKER_KINDS, RunnerTrackerSpec
from d3s_vot.common.cli import run_cli

DEFAULT_WAIT_S = 7 * 24 * 3600.0


def add_tracker_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("tracker")
    group.add_argument("--tracker", choices=TRACKER_KINDS, default="d3s",
                       help="d3s (default), or a baseline: oracle (replays the ground truth; all metrics "
                            "perfect) or static (repeats the initial box)")
    source = group.add_mutually_exclusive_group()
    source.add_argument("--weights", metavar="PACK",
                        help="D3S weights file (default: $D3S_WEIGHTS, then ~/.cache/d3s_vot/d3s.safetensors)")
    source.add_argument("--random-weights", metavar="SEED", type=int,
                        help="random, untrained D3S weights (tests and demos only: the numbers mean nothing)")
    group.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    group.add_argument("--dtype", default="float32", help="torch dtype of the network (default float32)")
    group.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                       help="override a D3SParams field (repeatable)")
    group.add_argument("--oracle-gt", metavar="DIR",
                       help="oracle only: folder of full ground truth <sequence>.txt files (needed for "
                            "splits whose ground truth is withheld)")
    group.add_argument("--tracker-name",
                       help="result folder name (default from the tracker and its settings; results "
                            "already there are reused, so change it when the tracker changes)")
    run = parser.add_argument_group("execution")
    run.add_argument("--workers", type=int, default=1, metavar="N",
                     help="tracking processes on this machine (spawn pool; default 1)")
    run.add_argument("--threads", type=int, metavar="N",
                     help="torch threads per tracking process (default: all cores, or cores / workers); "
                          "CPU results are bit-identical only at equal thread counts")
    run.add_argument("--wait-timeout", type=float, default=DEFAULT_WAIT_S, metavar="S",
                     help="under torchrun: how long rank 0 waits for the other ranks (seconds)")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    run.add_argument("--json", metavar="OUT", help="also write the results as JSON to this file")


def tracker_spec(args: argparse.Namespace, oracle_gt: Optional[Dict[str, str]] = None) -> RunnerTrackerSpec:
    """Build the spec from the parsed options (``oracle_gt``: sequence -> ground-truth file)."""
    if args.tracker != "d3s" and (args.weights or args.random_weights is not None or args.param):
        raise BenchmarkError("--weights, --random-weights and --param only apply to --tracker d3s")
    if args.tracker != "oracle" and args.oracle_gt:
        raise BenchmarkError("--oracle-gt only applies to --tracker oracle")
    if args.workers < 1:
        raise BenchmarkError(f"--workers must be at least 1, got {args.workers}")
    if args.threads is not None and args.threads < 1:
        raise BenchmarkError(f"--threads must be at least 1, got {args.threads}")
    try:
        overrides = parse_assignments(args.param, "--param")
    except ValueError as exc:
        raise BenchmarkError(str(exc)) from None
    d3s = TrackerSpec(weights=args.weights, random_weights_seed=args.random_weights, device=args.device,
                      dtype=args.dtype, params=overrides)
    spec = RunnerTrackerSpec(kind=args.tracker, d3s=d3s, oracle_gt=tuple(sorted((oracle_gt or {}).items())),
                             threads=args.threads)
    if spec.kind == "d3s":
        # fail early, before any worker starts, on a bad --param, --dtype or --device
        try:
            check_spec(d3s)
        except TrackerBuildError as exc:
            raise BenchmarkError(exc.cli_message()) from None
    if d3s.uses_random_weights:
        print(f"WARNING: --random-weights {d3s.random_weights_seed}: D3S runs with RANDOM, UNTRAINED weights; "
              "the results are only good for testing the pipeline, not as D3S numbers", file=sys.stderr)
    return spec


def write_json(path: Optional[str], payload: dict) -> None:
    if path:
        atomic_write_text(path, json.dumps(_finite(payload), indent=2, sort_keys=False) + "\n")


def _finite(value):
    """JSON has no NaN: write null instead."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def run_main(main: Callable[[List[str]], int], argv: Optional[List[str]]) -> int:
    """Run a CLI body; user errors become one ``error: ...`` line and exit code 2."""
    return run_cli(main, argv,
                   interrupted="interrupted: finished sequences are kept; run the same command again to resume")
