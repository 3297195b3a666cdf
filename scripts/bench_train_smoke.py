"""Benchmark (not a test): train the smoke preset on synthetic YouTube-VOS, compare mask IoU.

Writes synthetic training videos, runs ``--preset smoke`` training, then segments held-out synthetic
sequences the way the tracker does (first-frame crop and mask as the reference, each later frame cropped
around its ground-truth box, distance map from the crop centre, net in eval mode) with the trained head
and with the untrained head it started from, and prints the mean mask IoU of both.

    python scripts/bench_train_smoke.py [--work-dir DIR] [--backbone-weights resnet50-0676ba61.pth]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from d3s_vot.synthetic.scene import SceneConfig, generate_sequence
from d3s_vot.synthetic.ytvos import write_ytvos
from d3s_vot.train.checkpoint import latest_checkpoint, load_checkpoint
from d3s_vot.train.config import PRESETS
from d3s_vot.train.loop import RunOptions, TrainingError, build_net, load_backbone_state, train
from d3s_vot.train.processing import crop_and_resize, distance_map, normalise


@torch.no_grad()
def sequence_iou(net, seq, size: int = 384, factor: float = 4.0) -> list[float]:
    """Mask IoU (crop resolution) of every later visible frame of ``seq`` against the first frame."""
    net.eval()
    first_img, _ = crop_and_resize(seq.frames[0], seq.boxes[0], factor, size)
    first_mask, _ = crop_and_resize(seq.masks[0].astype(np.float32), seq.boxes[0], factor, size, zero_pad=True)
    train_img = torch.from_numpy(normalise(first_img))[None]
    train_mask = torch.from_numpy(first_mask)[None, None]
    dist = torch.from_numpy(distance_map(np.array([(size - 1) / 2, (size - 1) / 2]), size))[None, None]
    ious = []
    for t in range(1, len(seq.frames)):
        if np.isnan(seq.boxes[t][0]):
            continue
        img, _ = crop_and_resize(seq.frames[t], seq.boxes[t], factor, size)
        gt, _ = crop_and_resize(seq.masks[t].astype(np.float32), seq.boxes[t], factor, size, zero_pad=True)
        logits = net(train_img, torch.from_numpy(normalise(img))[None], train_mask, dist)
        pred = (logits[0, 0] > logits[0, 1]).numpy()
        truth = gt > 0.5
        union = np.logical_or(pred, truth).sum()
        ious.append(float(np.logical_and(pred, truth).sum() / union) if union else 1.0)
    return ious


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", type=Path, help="where data and the run go (default: a temporary folder)")
    parser.add_argument("--videos", type=int, default=8, help="synthetic training videos (default 8)")
    parser.add_argument("--frames", type=int, default=24, help="frames per video (default 24)")
    parser.add_argument("--test-sequences", type=int, default=3, help="held-out test sequences (default 3)")
    parser.add_argument("--test-frames", type=int, default=20, help="frames per test sequence (default 20)")
    parser.add_argument("--backbone-weights", type=Path, help="resnet50-0676ba61.pth (default: random backbone)")
    parser.add_argument("--epochs", type=int, help="override the smoke preset's epochs (quick checks)")
    parser.add_argument("--iterations", type=int, help="override the smoke preset's iterations per epoch")
    parser.add_argument("--workers", type=int, default=2, help="data loader workers (default 2)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="d3s-bench-train-") as tmp:
        work = args.work_dir or Path(tmp)
        data, run = work / "ytvos", work / "run"
        scene = SceneConfig(width=320, height=240)
        write_ytvos(data, args.videos, args.frames, seed=0, config=scene, val_videos=1)
        options = RunOptions(data_root=data, out_dir=run, train_list=data / "vos-list-train.txt",
                             val_list=data / "vos-list-val.txt", backbone_weights=args.backbone_weights,
                             random_backbone=None if args.backbone_weights else 0, num_workers=args.workers)
        config = PRESETS["smoke"].replace(**{k: v for k, v in (("epochs", args.epochs),
                                                                 ("iterations", args.iterations)) if v})
        try:
            backbone, source = load_backbone_state(options)
        except TrainingError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        started = time.monotonic()
        history = train(config, options)
        seconds = time.monotonic() - started
        untrained = build_net(backbone, config.seed)
        trained = build_net(backbone, config.seed)
        trained.load_state_dict(load_checkpoint(latest_checkpoint(run))["net"])
        tests = [generate_sequence(seed=10_000 + i, num_frames=args.test_frames, config=scene)
                 for i in range(args.test_sequences)]
        before = [np.mean(sequence_iou(untrained, s)) for s in tests]
        after = [np.mean(sequence_iou(trained, s)) for s in tests]
    print(f"smoke training: {config.epochs} epochs x {config.iterations} iterations x batch {config.batch_size}, "
          f"backbone {source}, {seconds:.0f} s on {torch.get_num_threads()} threads")
    print("train loss per epoch: " + ", ".join(f"{h['train_loss']:.4f}" for h in history))
    print(f"{'sequence':>10} {'untrained IoU':>14} {'trained IoU':>12}")
    for i, (b, a) in enumerate(zip(before, after)):
        print(f"{10_000 + i:>10} {b:>14.3f} {a:>12.3f}")
    print(f"{'mean':>10} {np.mean(before):>14.3f} {np.mean(after):>12.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
