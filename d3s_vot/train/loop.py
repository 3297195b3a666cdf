"""The training loop: frozen ImageNet ResNet-50, head trained with BCE, Adam, per-epoch checkpoints.

Single process by default; under ``torchrun`` (``WORLD_SIZE`` > 1) it runs DistributedDataParallel
with the global batch split across ranks (gloo on CPU, nccl on CUDA) and only rank 0 writes files.
On CPU a resumed run reproduces the uninterrupted one bit for bit: the data depend only on
(seed, epoch, sample index) and the checkpoint holds the net, optimiser, AMP scaler and RNG states.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm import tqdm

from d3s_vot.devices import DeviceError, resolve_device
from d3s_vot.common.distributed import DistContext
from d3s_vot.model import SegmNet

from .checkpoint import (FORMAT, atomic_torch_save, checkpoint_name, latest_checkpoint, load_checkpoint,
                         prune_checkpoints)
from .config import TrainConfig
from .sampling import TRAIN_STREAM, VAL_STREAM, EpochBatches, PairDataset
from .ytvos import YouTubeVOS, parse_list_file
from d3s_vot.common.cli import UserError

IMAGENET_RESNET50_FILE = "resnet50-0676ba61.pth"


class TrainingError(UserError):
    """A user-facing problem (missing file, inconsistent resume); the CLI prints it as one line."""


@dataclass(frozen=True)
class RunOptions:
    """Where and how to run; none of these change the numbers a run produces."""

    data_root: Path
    out_dir: Path
    train_list: Optional[Path] = None      # default: every object in meta.json (minus the val list)
    val_list: Optional[Path] = None        # held-out sequences; no validation without it
    backbone_weights: Optional[Path] = None
    random_backbone: Optional[int] = None  # seed of an untrained ResNet-50 (tests, demos)
    resume: bool = False
    device: Optional[str] = None           # default: cuda (rank's local GPU) if available, else cpu
    num_workers: int = 2
    progress: bool = True
    keep_last: int = 0                     # checkpoints to keep (0 = all)
    tensorboard: bool = True               # used only when the tensorboard package is installed


@dataclass
class EpochStats:
    loss_sum: float = 0.0
    iou_sum: float = 0.0
    count: int = 0
    skipped: int = 0

    def add(self, loss: float, ious: torch.Tensor, skipped: int) -> None:
        self.loss_sum += loss * len(ious)
        self.iou_sum += float(ious.sum())
        self.count += len(ious)
        self.skipped += skipped

    def reduce(self, ctx: DistContext, device: torch.device) -> "EpochStats":
        if not ctx.enabled:
            return self
        values = torch.tensor([self.loss_sum, self.iou_sum, self.count, self.skipped], dtype=torch.float64,
                              device=device)
        dist.all_reduce(values)
        return EpochStats(float(values[0]), float(values[1]), int(values[2]), int(values[3]))

    @property
    def loss(self) -> float:
        return self.loss_sum / max(self.count, 1)

    @property
    def iou(self) -> float:
        return self.iou_sum / max(self.count, 1)


# --- setup ----------------------------------------------------------------------------------------
def init_distributed(device_hint: Optional[str]) -> DistContext:
    ctx = DistContext.from_env()
    if not ctx.enabled:
        return ctx
    use_cuda = torch.cuda.is_available() and (device_hint is None or device_hint.startswith("cuda"))
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return ctx


def pick_device(requested: Optional[str], ctx: DistContext) -> torch.device:
    """The training device (:func:`d3s_vot.devices.resolve_device`: a bare ``cuda`` is this rank's GPU)."""
    try:
        device = resolve_device(requested, rank=ctx.local_rank)
    except DeviceError as exc:
        raise TrainingError(str(exc)) from None
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device


def default_backbone_path() -> Path:
    """Where torchvision caches ``ResNet50_Weights.IMAGENET1K_V1`` (looked up, never downloaded)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / IMAGENET_RESNET50_FILE


def random_backbone_state(seed: int) -> dict[str, torch.Tensor]:
    """The untrained DCF ResNet-50 of :func:`d3s_vot.weights.random_weights` (tests and demos only)."""
    from d3s_vot.weights import random_weights

    return dict(random_weights(seed).backbone_state)


def load_backbone_state(options: RunOptions) -> tuple[dict[str, torch.Tensor], str]:
    """The ImageNet ResNet-50 state dict (torchvision keys) and a description of where it came from."""
    if options.random_backbone is not None:
        return random_backbone_state(options.random_backbone), f"random:{options.random_backbone}"
    path = options.backbone_weights or default_backbone_path()
    if not Path(path).is_file():
        raise TrainingError(
            f"ImageNet ResNet-50 weights not found at {path}: training needs torchvision's "
            f"{IMAGENET_RESNET50_FILE} (ResNet50_Weights.IMAGENET1K_V1, "
            f"https://download.pytorch.org/models/{IMAGENET_RESNET50_FILE}); download it once and pass "
            "--backbone-weights PATH (or --random-backbone SEED for a smoke test)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise TrainingError(f"{path}: cannot read ResNet-50 weights ({type(exc).__name__})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    from torchvision.models import resnet50

    expected = resnet50().state_dict()
    if not isinstance(state, dict) or set(expected) - set(state):
        raise TrainingError(f"{path}: not a torchvision ResNet-50 state dict (keys like 'conv1.weight', "
                            "'layer3.0.conv1.weight' are missing)")
    for key, value in expected.items():
        if tuple(state[key].shape) != tuple(value.shape):
            raise TrainingError(f"{path}: {key} has shape {tuple(state[key].shape)}, "
                                f"expected {tuple(value.shape)}")
    return {k: state[k].clone() for k in expected}, str(path)


def build_net(backbone_state: dict[str, torch.Tensor], seed: int) -> SegmNet:
    """SegmNet with the given backbone, head initialised from ``seed``, backbone frozen."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = SegmNet()
    net.feature_extractor.load_state_dict(backbone_state)
    for parameter in net.feature_extractor.parameters():
        parameter.requires_grad_(False)
    return net


def set_train_mode(net: torch.nn.Module, bn_mode: str) -> None:
    """Head in train mode; backbone BN in train mode ("train", as the original) or eval ("frozen")."""
    net.train()
    if bn_mode == "frozen":
        net.feature_extractor.eval()


def load_sequences(options: RunOptions) -> tuple[YouTubeVOS, Optional[YouTubeVOS]]:
    """Training and (optional) validation sequences; the validation ones are excluded from training."""
    val_entries = parse_list_file(options.val_list) if options.val_list else None
    if options.train_list:
        train = YouTubeVOS(options.data_root, parse_list_file(options.train_list), str(options.train_list))
    else:
        held_out = set(val_entries or ())
        all_vos = YouTubeVOS(options.data_root)
        entries = [(s.video, s.object_id) for s in all_vos.sequences if (s.video, s.object_id) not in held_out]
        train = YouTubeVOS(options.data_root, entries)
    val = YouTubeVOS(options.data_root, val_entries, str(options.val_list)) if val_entries else None
    return train, val


# --- one step -------------------------------------------------------------------------------------
def segmentation_loss(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """BCE-with-logits (mean) against [mask, 1 - mask]; channel 0 is the foreground."""
    target = torch.cat([mask, 1.0 - mask], dim=1)
    return F.binary_cross_entropy_with_logits(logits.float(), target)


def mask_iou(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-sample IoU of (softmax foreground > 0.5) with (mask > 0.5); 1 when both are empty."""
    pred = logits[:, 0] > logits[:, 1]
    gt = mask[:, 0] > 0.5
    inter = (pred & gt).flatten(1).sum(1).double()
    union = (pred | gt).flatten(1).sum(1).double()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union)).cpu()


def _to_device(batch: dict, device: torch.device) -> dict:
    return {k: (v.to(device, non_blocking=True) if torch.is_tensor(v) and v.dim() > 1 else v)
            for k, v in batch.items()}


def _autocast(device: torch.device, enabled: bool):
    return torch.autocast(device_type="cuda", dtype=torch.float16) if enabled and device.type == "cuda" \
        else nullcontext()


def _loader(dataset: PairDataset, sampler: EpochBatches, options: RunOptions, device: torch.device):
    return torch.utils.data.DataLoader(dataset, batch_sampler=sampler, num_workers=options.num_workers,
                                       pin_memory=device.type == "cuda")


@torch.no_grad()
def validate(net: SegmNet, dataset: PairDataset, config: TrainConfig, options: RunOptions,
             device: torch.device, use_amp: bool) -> EpochStats:
    """Loss and IoU on the fixed validation pairs (net in eval mode, as the original)."""
    was_training = net.training
    net.eval()
    stats = EpochStats()
    iterations = math.ceil(config.val_pairs / config.batch_size)
    sampler = EpochBatches(0, iterations, config.batch_size)
    seen = 0
    for batch in tqdm(_loader(dataset, sampler, options, device), desc="validation", leave=False,
                      disable=not options.progress, file=sys.stderr):
        take = min(config.batch_size, config.val_pairs - seen)
        batch = {k: v[:take] for k, v in _to_device(batch, device).items() if torch.is_tensor(v)}
        with _autocast(device, use_amp):
            logits = net(batch["train_image"], batch["test_image"], batch["train_mask"], batch["test_dist"])
        stats.add(float(segmentation_loss(logits, batch["test_mask"])), mask_iou(logits, batch["test_mask"]),
                  int(batch["skipped"].sum()))
        seen += take
    net.train(was_training)
    return stats


# --- checkpoints ----------------------------------------------------------------------------------
def _rng_states() -> dict[str, Any]:
    states: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _restore_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    if torch.cuda.is_available() and states.get("cuda"):
        torch.cuda.set_rng_state_all(states["cuda"])


def check_resume_config(saved: TrainConfig, requested: TrainConfig) -> None:
    """A resumed run may only change the number of epochs."""
    differences = [f"{name}: checkpoint {value!r}, requested {getattr(requested, name)!r}"
                   for name, value in saved.to_dict().items()
                   if name != "epochs" and getattr(requested, name) != value]
    if differences:
        raise TrainingError("--resume must keep the checkpoint's training config (only --epochs may change); "
                            "differences: " + "; ".join(differences))


def _write_history(out_dir: Path, history: list[dict]) -> None:
    path = out_dir / "history.json"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(history, indent=1) + "\n")
    os.replace(tmp, path)


def _open_tensorboard(options: RunOptions):
    if not options.tensorboard:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:   # tensorboard not installed: silently skip
        return None
    return SummaryWriter(str(options.out_dir / "tensorboard"))


# --- the loop -------------------------------------------------------------------------------------
def train(config: TrainConfig, options: RunOptions) -> list[dict]:
    """Run (or resume) training; returns the per-epoch history. Files go to ``options.out_dir``."""
    ctx = init_distributed(options.device)
    try:
        return _train(config, options, ctx)
    finally:
        if ctx.enabled and dist.is_initialized():
            dist.destroy_process_group()


def _train(config: TrainConfig, options: RunOptions, ctx: DistContext) -> list[dict]:
    device = pick_device(options.device, ctx)
    if config.batch_size % ctx.world_size:
        raise TrainingError(f"batch size {config.batch_size} is not divisible by the {ctx.world_size} processes")
    out_dir = Path(options.out_dir)
    existing = latest_checkpoint(out_dir) if out_dir.is_dir() else None
    checkpoint = None
    if options.resume:
        if existing is None:
            raise TrainingError(f"--resume: no checkpoint-epochNNNN.pth in {out_dir} to resume from")
        checkpoint = load_checkpoint(existing)
        check_resume_config(TrainConfig.from_dict(checkpoint["config"]), config)
    elif existing is not None:
        raise TrainingError(f"{out_dir} already holds checkpoints ({existing.name}); pass --resume to continue "
                            "or choose another --out")

    train_vos, val_vos = load_sequences(options)
    train_set = PairDataset(train_vos, config, TRAIN_STREAM, augment=True)
    val_set = PairDataset(val_vos, config, VAL_STREAM, augment=False) if val_vos and config.val_pairs else None

    if checkpoint is not None:
        backbone_state, backbone_source = checkpoint["backbone_state"], checkpoint["metadata"]["backbone"]
    else:
        backbone_state, backbone_source = load_backbone_state(options)
    net = build_net(backbone_state, config.seed)
    if checkpoint is not None:
        net.load_state_dict(checkpoint["net"])
    net.to(device)
    use_amp = config.amp and device.type == "cuda"
    optimizer = torch.optim.Adam(net.segm_predictor.parameters(), lr=config.lr)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    start_epoch, iteration, history = 1, 0, []
    if checkpoint is not None:
        optimizer.load_state_dict(checkpoint["optimizer"])
        if use_amp and checkpoint.get("scaler"):
            scaler.load_state_dict(checkpoint["scaler"])
        _restore_rng_states(checkpoint["rng_states"])
        start_epoch, iteration = checkpoint["epoch"] + 1, checkpoint["iteration"]
        history = [h for h in checkpoint.get("history", []) if h["epoch"] < start_epoch]

    model: torch.nn.Module = net
    if ctx.enabled:
        model = torch.nn.parallel.DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None)
    writer = _open_tensorboard(options) if ctx.is_main else None
    if ctx.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
    progress = options.progress and ctx.is_main

    for epoch in range(start_epoch, config.epochs + 1):
        started = time.monotonic()
        lr = config.lr_for_epoch(epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        set_train_mode(net, config.backbone_bn_mode)
        sampler = EpochBatches(epoch, config.iterations, config.batch_size, ctx.rank, ctx.world_size)
        stats = EpochStats()
        bar = tqdm(_loader(train_set, sampler, options, device), total=len(sampler), file=sys.stderr,
                   desc=f"epoch {epoch}/{config.epochs}", disable=not progress, dynamic_ncols=True)
        for batch in bar:
            batch = _to_device(batch, device)
            with _autocast(device, use_amp):
                logits = model(batch["train_image"], batch["test_image"], batch["train_mask"], batch["test_dist"])
            loss = segmentation_loss(logits, batch["test_mask"])
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            iteration += 1
            ious = mask_iou(logits.detach(), batch["test_mask"])
            stats.add(float(loss.detach()), ious, int(batch["skipped"].sum()))
            bar.set_postfix(loss=f"{stats.loss:.4f}", iou=f"{stats.iou:.3f}")
            if writer is not None:
                writer.add_scalar("train/loss_step", float(loss), iteration)
        stats = stats.reduce(ctx, device)
        record: dict[str, Any] = {"epoch": epoch, "lr": lr, "iteration": iteration, "train_loss": stats.loss,
                                  "train_iou": stats.iou, "skipped_frames": stats.skipped}
        if val_set is not None and ctx.is_main and (epoch % config.val_every == 0 or epoch == config.epochs):
            val = validate(net, val_set, config, options, device, use_amp)
            record.update(val_loss=val.loss, val_iou=val.iou)
            record["skipped_frames"] += val.skipped
        record["seconds"] = round(time.monotonic() - started, 3)
        history.append(record)
        if ctx.is_main:
            _save(out_dir, epoch, iteration, net, backbone_state, backbone_source, optimizer, scaler, use_amp,
                  config, ctx, history, lr, options.keep_last)
            _write_history(out_dir, history)
            _report(record, config, writer)
        if ctx.enabled:
            dist.barrier()
    if writer is not None:
        writer.close()
    return history


def _save(out_dir: Path, epoch: int, iteration: int, net: SegmNet, backbone_state: dict, backbone_source: str,
          optimizer: torch.optim.Optimizer, scaler, use_amp: bool, config: TrainConfig, ctx: DistContext,
          history: list[dict], lr: float, keep_last: int) -> None:
    net_state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    state = {
        "format": FORMAT,
        "net": net_state,
        "backbone_state": _share_unchanged(backbone_state, net_state),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict() if use_amp else None,
        "scheduler": {"epoch": epoch, "lr": lr},
        "epoch": epoch,
        "iteration": iteration,
        "sampler_state": {"epoch": epoch, "seed": config.seed},
        "rng_states": _rng_states(),
        "config": config.to_dict(),
        "metadata": {"backbone": backbone_source, "world_size": str(ctx.world_size),
                     "backbone_bn_mode": config.backbone_bn_mode, "torch": str(torch.__version__)},
        "history": history,
    }
    atomic_torch_save(state, out_dir / checkpoint_name(epoch))
    prune_checkpoints(out_dir, keep_last)


def _share_unchanged(backbone_state: dict, net_state: dict) -> dict:
    """The backbone state, reusing the net's tensors where they are unchanged (the frozen convs), so
    ``torch.save`` stores them once: only the re-estimated BN statistics are kept twice."""
    shared = {}
    for key, value in backbone_state.items():
        value = value.detach().cpu()
        twin = net_state.get(f"feature_extractor.{key}")
        same = twin is not None and twin.dtype == value.dtype and twin.shape == value.shape and torch.equal(twin, value)
        shared[key] = twin if same else value
    return shared


def _report(record: dict, config: TrainConfig, writer) -> None:
    text = (f"epoch {record['epoch']}/{config.epochs}  lr {record['lr']:.1e}  loss {record['train_loss']:.4f}  "
            f"iou {record['train_iou']:.3f}")
    if "val_loss" in record:
        text += f"  val_loss {record['val_loss']:.4f}  val_iou {record['val_iou']:.3f}"
    text += f"  ({record['seconds']:.1f} s, {record['skipped_frames']} skipped frames)"
    print(text, flush=True)
    if writer is not None:
        for key in ("train_loss", "train_iou", "val_loss", "val_iou", "lr"):
            if key in record:
                writer.add_scalar(key.replace("_", "/", 1), record[key], record["epoch"])
