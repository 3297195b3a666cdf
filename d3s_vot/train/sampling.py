"""Train/test frame-pair sampling, reproducible per sample.

Every sample draws its randomness from its own generator seeded by (seed, stream, epoch, index), so
the data of a run depends neither on the number of loader workers nor on the number of DDP ranks, and
resuming at an epoch boundary reproduces the uninterrupted run exactly (the sampler state is just the
epoch number).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .config import TrainConfig
from .processing import process_pair
from .ytvos import CorruptFrameError, DatasetError, VOSSequence, YouTubeVOS, warn_skipped

TRAIN_STREAM = 0
VAL_STREAM = 1
MAX_ATTEMPTS = 100   # unreadable frames are skipped by re-drawing the pair, at most this often


@dataclass(frozen=True)
class PairChoice:
    sequence: int
    train_frame: int
    test_frame: int


def sample_rng(seed: int, stream: int, epoch: int, index: int, attempt: int = 0) -> np.random.Generator:
    """The generator of one sample (and one retry after a skipped frame)."""
    return np.random.default_rng([seed, stream, epoch, index, attempt])


def eligible_sequences(sequences: list[VOSSequence], config: TrainConfig) -> list[int]:
    """Indices of sequences long enough and visible often enough to be sampled."""
    return [i for i, s in enumerate(sequences)
            if len(s.frames) >= config.min_frames and int(s.visible.sum()) >= config.min_visible]


def choose_pair(rng: np.random.Generator, sequences: list[VOSSequence], eligible: list[int],
                config: TrainConfig) -> PairChoice:
    """A random eligible sequence, a random visible train frame, a visible test frame near it.

    The test frame is drawn uniformly among the visible frames within +-max_gap indices of the train
    frame (possibly the train frame itself); the window grows by gap_increase until one exists.
    """
    seq_index = eligible[int(rng.integers(len(eligible)))]
    visible = np.flatnonzero(sequences[seq_index].visible)
    train_frame = int(visible[int(rng.integers(len(visible)))])
    gap = config.max_gap
    while True:
        near = visible[(visible >= train_frame - gap) & (visible <= train_frame + gap)]
        if len(near):
            break
        gap += config.gap_increase
    test_frame = int(near[int(rng.integers(len(near)))])
    return PairChoice(seq_index, train_frame, test_frame)


class PairDataset(torch.utils.data.Dataset):
    """Map-style dataset indexed by ``(epoch, index)`` keys, yielding one processed pair each."""

    def __init__(self, vos: YouTubeVOS, config: TrainConfig, stream: int = TRAIN_STREAM, augment: bool = True):
        self.vos = vos
        self.config = config
        self.stream = stream
        self.augment = augment
        self.eligible = eligible_sequences(vos.sequences, config)
        if not self.eligible:
            raise DatasetError(
                f"{vos.root}: no sequence has >= {config.min_frames} frames and >= {config.min_visible} "
                f"visible frames (of {len(vos.sequences)} listed)")

    def __len__(self) -> int:   # keys are (epoch, index); the length is not meaningful
        return len(self.eligible)

    def __getitem__(self, key: tuple[int, int]) -> dict:
        epoch, index = key
        skipped = 0
        for attempt in range(MAX_ATTEMPTS):
            rng = sample_rng(self.config.seed, self.stream, epoch, index, attempt)
            choice = choose_pair(rng, self.vos.sequences, self.eligible, self.config)
            sequence = self.vos.sequences[choice.sequence]
            try:
                train = self.vos.load_frame(sequence, choice.train_frame)
                test = self.vos.load_frame(sequence, choice.test_frame)
            except CorruptFrameError as exc:
                warn_skipped(str(exc))
                skipped += 1
                continue
            sample = process_pair(train.image, train.mask, train.box, test.image, test.mask, test.box,
                                  rng, self.config, augment=self.augment)
            out = {k: torch.from_numpy(v) for k, v in sample.as_dict().items()}
            out["skipped"] = skipped
            return out
        raise DatasetError(f"{self.vos.root}: {MAX_ATTEMPTS} consecutive unreadable frames; "
                           "the dataset looks corrupt")


class EpochBatches(torch.utils.data.Sampler):
    """Batches of ``(epoch, global_index)`` keys for one rank: iteration ``it`` of the global batch
    ``B`` holds indices ``it*B .. it*B+B-1``; rank ``r`` of ``R`` takes its contiguous ``B/R`` share."""

    def __init__(self, epoch: int, iterations: int, global_batch: int, rank: int = 0, world_size: int = 1,
                 start_iteration: int = 0):
        if global_batch % world_size:
            raise ValueError(f"batch size {global_batch} is not divisible by the {world_size} processes")
        self.epoch, self.iterations, self.global_batch = epoch, iterations, global_batch
        self.local = global_batch // world_size
        self.rank, self.start = rank, start_iteration

    def __len__(self) -> int:
        return self.iterations - self.start

    def __iter__(self):
        for it in range(self.start, self.iterations):
            first = it * self.global_batch + self.rank * self.local
            yield [(self.epoch, first + i) for i in range(self.local)]
