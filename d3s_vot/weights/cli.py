"""The command line ``python -m d3s_vot.weights pack|inspect|verify`` (console script ``d3s-weights``).

Only argument parsing and printing live here; every command calls the package's functions, and a
:class:`WeightsError` becomes one ``error:`` line and exit code 2.
"""
from __future__ import annotations

import argparse
import re
from typing import List, Optional

from .errors import WeightsError, require_file
from .files import PACK_NAME, default_cache_dir
from .lookup import load_files
from .pack import (PACK_FORMAT, check_pack, file_sha256, is_safetensors, read_safetensors, save_pack,
                   writable_path)
from .random_init import random_weights
from .summary import describe, describe_checkpoint
from d3s_vot.common.cli import run_cli


def _cmd_pack(args: argparse.Namespace) -> int:
    out = writable_path(args.out if args.out else default_cache_dir() / PACK_NAME)  # before reading any input
    if args.random_seed is not None:
        if args.segm or args.backbone:
            raise WeightsError("--random-seed cannot be combined with --segm/--backbone")
        weights = random_weights(args.random_seed)
    elif args.segm is None:
        raise WeightsError("give --segm SegmNet.pth.tar (and --backbone resnet50-0676ba61.pth), or --random-seed")
    else:
        weights = load_files(args.segm, args.backbone)
    digest = save_pack(weights, out)
    print(f"wrote {out}")
    print(f"sha256 {digest}")
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    path = require_file(args.path, "weights file", "give the path of a d3s.safetensors pack or a checkpoint")
    if not is_safetensors(path):
        print("\n".join(describe_checkpoint(path)))
        return 0
    result = check_pack(path)
    _, metadata = read_safetensors(path)
    print(f"file: {path}")
    print(f"format: {metadata.get('format', '(none)')}")
    for key in sorted(metadata):
        if key != "format":
            print(f"metadata {key}: {metadata[key]}")
    if result.weights is not None:
        print("\n".join(describe(result.weights)))
    for problem in result.problems:
        print(f"problem: {problem}")
    print(f"sha256 {file_sha256(path)}")
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    path = require_file(args.path, "weights pack", "give the path of a d3s.safetensors pack")
    expected = args.sha256.lower().strip() if args.sha256 else None
    if expected is not None and not re.fullmatch(r"[0-9a-f]{64}", expected):
        raise WeightsError(f"--sha256 must be 64 hexadecimal digits, got {args.sha256!r}")
    try:
        problems = check_pack(path).problems
    except WeightsError as exc:
        problems = [str(exc).removeprefix(f"{path}: ")]
    digest = file_sha256(path)
    if expected is not None and digest != expected:
        problems.append(f"file sha256 is {digest}, expected {expected}")
    if problems:
        print(f"FAILED {path}: " + "; ".join(problems))
        return 1
    print(f"OK {path}: format {PACK_FORMAT}, content hash matches, all keys and shapes correct, sha256 {digest}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from d3s_vot.common.cli import CliArgumentParser

    parser = CliArgumentParser(prog="python -m d3s_vot.weights",
                               description="Pack, inspect and verify D3S weights (see docs/weights.md).")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=CliArgumentParser)
    pack = sub.add_parser("pack", help="convert SegmNet.pth.tar + torchvision ResNet-50 into one d3s.safetensors")
    pack.add_argument("--segm", help="the authors' SegmNet.pth.tar (or a plain SegmNet state dict)")
    pack.add_argument("--backbone", help="torchvision resnet50-0676ba61.pth (default: looked up in "
                      "~/.cache/d3s_vot and torch hub's checkpoints folder)")
    pack.add_argument("--random-seed", type=int, help="pack random_weights(SEED) instead (tests and demos)")
    pack.add_argument("--out", help=f"output file (default ~/.cache/d3s_vot/{PACK_NAME})")
    pack.set_defaults(func=_cmd_pack)
    inspect = sub.add_parser("inspect", help="print the format, provenance and a summary of a pack or checkpoint")
    inspect.add_argument("path")
    inspect.set_defaults(func=_cmd_inspect)
    verify = sub.add_parser("verify", help="check a pack's integrity (exit 0 OK, 1 failed)")
    verify.add_argument("path")
    verify.add_argument("--sha256", help="also require this sha256 of the whole file")
    verify.set_defaults(func=_cmd_verify)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    return run_cli(_run_command, argv)


def _run_command(argv: Optional[List[str]]) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)
