"""``python -m d3s_vot.train``: train the D3S segmentation head, or export a checkpoint.

    python -m d3s_vot.train --data YTVOS_TRAIN --out RUN_DIR [--preset paper|smoke] [--resume] ...
    torchrun --nproc-per-node N -m d3s_vot.train --data ... --out ...
    python -m d3s_vot.train export RUN_DIR/checkpoint-epoch0040.pth d3s.safetensors
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional

from d3s_vot.common.cli import CliArgumentParser, UsageError, run_cli

from .checkpoint import CheckpointError, export_weights, latest_checkpoint, read_checkpoint_config
from .config import PRESETS, TrainConfig, preset

# CLI flag -> TrainConfig field for the recipe overrides (all optional; default: the preset's value)
OVERRIDES = {
    "epochs": int, "iterations": int, "batch_size": int, "lr": float, "lr_step_epochs": int, "seed": int,
    "val_pairs": int,
    "val_every": int, "max_gap": int, "box_mask_prob": float, "backbone_bn_mode": str,
}


def build_parser() -> argparse.ArgumentParser:
    parser = CliArgumentParser(
        prog="python -m d3s_vot.train",
        description="Train the D3S segmentation head on YouTube-VOS (see docs/training.md). "
                    "Also: 'python -m d3s_vot.train export CHECKPOINT OUT.safetensors'.")
    parser.add_argument("--data", required=True, type=Path, metavar="YTVOS_ROOT",
                        help="YouTube-VOS 2018 train folder (meta.json, JPEGImages/, Annotations/)")
    parser.add_argument("--out", required=True, type=Path, metavar="RUN_DIR", help="checkpoints and history.json")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="paper",
                        help="recipe: 'paper' (default; 40 x 1000 x 64) or 'smoke' (minutes on a CPU)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the newest checkpoint in RUN_DIR (exactly; only --epochs may change)")
    recipe = parser.add_argument_group("recipe overrides (default: the preset's values)")
    for name, kind in OVERRIDES.items():
        flag = "--" + name.replace("_", "-")
        if name == "backbone_bn_mode":
            recipe.add_argument(flag, choices=("train", "frozen"), default=None,
                                help="'train': re-estimate the backbone's BN statistics (original); "
                                     "'frozen': keep the ImageNet ones")
        else:
            recipe.add_argument(flag, type=kind, default=None, metavar=name.upper().replace("_", "-"))
    recipe.add_argument("--no-amp", dest="amp", action="store_false", default=None,
                        help="disable mixed precision on CUDA")
    data = parser.add_argument_group("data")
    data.add_argument("--train-list", type=Path, help="'<video>-<object>' per line (default: all objects)")
    data.add_argument("--val-list", type=Path, help="held-out '<video>-<object>' list used for validation")
    backbone = parser.add_mutually_exclusive_group()
    backbone.add_argument("--backbone-weights", type=Path, metavar="RESNET50_PTH",
                          help="torchvision's resnet50-0676ba61.pth (default: the torch hub cache)")
    backbone.add_argument("--random-backbone", type=int, metavar="SEED",
                          help="untrained ResNet-50 from SEED (tests and smoke runs only)")
    run = parser.add_argument_group("run")
    run.add_argument("--device", help="cpu, cuda, cuda:N (default: cuda if available)")
    run.add_argument("--workers", type=int, default=2, help="data loader worker processes (default 2)")
    run.add_argument("--keep-last", type=int, default=0, help="keep only the N newest checkpoints (default: all)")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    run.add_argument("--no-tensorboard", action="store_true", help="no TensorBoard logs even if installed")
    return parser


def resolve_config(args: argparse.Namespace) -> TrainConfig:
    """The preset (or, with --resume, the checkpoint's config) plus the explicitly given overrides."""
    if args.resume:
        newest = latest_checkpoint(args.out) if args.out.is_dir() else None
        if newest is None:
            raise CheckpointError(f"--resume: no checkpoint-epochNNNN.pth in {args.out} to resume from")
        base = TrainConfig.from_dict(read_checkpoint_config(newest))
    else:
        base = preset(args.preset)
    changes = {name: getattr(args, name) for name in list(OVERRIDES) + ["amp"] if getattr(args, name) is not None}
    return base.replace(**changes)


def export_main(argv: list[str]) -> int:
    parser = CliArgumentParser(prog="python -m d3s_vot.train export",
                                     description="Write the tracker's single-file weights from a training checkpoint.")
    parser.add_argument("checkpoint", type=Path, help="RUN_DIR/checkpoint-epochNNNN.pth")
    parser.add_argument("out", type=Path, help="output .safetensors file (e.g. d3s.safetensors)")
    args = parser.parse_args(argv)
    path = export_weights(args.checkpoint, args.out)
    print(f"wrote {path}")
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "export":
        return run_cli(export_main, argv[1:])
    return run_cli(_train, argv, interrupted="interrupted: the last saved checkpoint is kept; run the same "
                                             "command with --resume to continue")


def _train(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from .loop import RunOptions, train   # heavy imports only when training

    try:
        config = resolve_config(args)
    except ValueError as exc:   # an invalid recipe value
        raise UsageError(str(exc)) from None
    options = RunOptions(data_root=args.data, out_dir=args.out, train_list=args.train_list,
                         val_list=args.val_list, backbone_weights=args.backbone_weights,
                         random_backbone=args.random_backbone, resume=args.resume, device=args.device,
                         num_workers=args.workers, progress=not args.no_progress, keep_last=args.keep_last,
                         tensorboard=not args.no_tensorboard)
    train(config, options)
    return 0


if __name__ == "__main__":
    sys.exit(main())
