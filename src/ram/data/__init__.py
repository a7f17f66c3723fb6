"""Data for a task: the digits (or your own images, `ram.data.images`), a validation split from train, the test set,
and freshly placed training batches.

Training draws new placements (and, with `ClassifyConfig.shift`, `rotate` and `scale`, new shifts and distortions) for
every batch, from a generator seeded by (seed, epoch, batch), so a run resumed mid-epoch sees the same images it would
have seen. Validation and test images are fixed functions of a seed: the test set of translated and cluttered tasks
is redrawn by `ram eval --seed S`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, NamedTuple

import torch

from ..config import ConfigError
from . import mnist
from .mnist import DataError, Digits, data_dir, load
from .tasks import TEST, TRAIN, VAL, epoch_batches, generator, place, shift, warp

if TYPE_CHECKING:  # the task sections import this package
    from ..tasks.classify import ClassifyConfig

__all__ = ["DataError", "Digits", "Split", "TaskData", "data_dir", "load", "place", "to_float"]



class Split(NamedTuple):
    images: torch.Tensor  # uint8 [N, H, W] (MNIST) or [N, C, H, W] (your own images, C = 1 or 3)
    labels: torch.Tensor  # int64 [N]


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 [B, H, W] or [B, C, H, W] -> float32 [B, C, H, W] in [0, 1] (C = 1 for [B, H, W])."""
    return (images[:, None] if images.dim() == 3 else images).float().div_(255.0)


class TaskData:
    """A task's images placed as its config says (the section of a classification: digits, or your own images).
    digits: the images to place; None reads MNIST or Fashion-MNIST, as task.dataset names it (your own images are read
    by their task, `ram.tasks.images`, which passes them here)."""

    def __init__(self, task: ClassifyConfig, *, seed: int, progress: bool = True, digits: Digits | None = None):
        task.validate()
        self.task = task
        self.seed = seed
        d = digits if digits is not None else mnist.load(task.dataset, progress=progress)
        n_train = d.train_images.shape[0] - task.val_size
        if n_train < 1:
            raise ConfigError(f"val_size = {task.val_size}: leaves none of the {d.train_images.shape[0]} training "
                              f"images of {getattr(task, 'source', '') or task.dataset} to train on")
        self._val_digits = Split(d.train_images[n_train:], d.train_labels[n_train:])
        n_train = min(task.train_size, n_train) if task.train_size else n_train
        self.train = Split(d.train_images[:n_train], d.train_labels[:n_train])
        self._test_digits = Split(d.test_images, d.test_labels)
        self._cache: dict[tuple[int, int], Split] = {}

    def _place(self, digits: torch.Tensor, gen: torch.Generator, pool_index: torch.Tensor | None) -> torch.Tensor:
        t = self.task
        return place(digits, canvas=t.canvas, **t.clutter, pool=self.train.images, pool_index=pool_index, gen=gen)

    def _fixed(self, stream: int, digits: Split, seed: int) -> Split:
        key = (stream, seed)
        if key not in self._cache:
            self._cache[key] = Split(self._place(digits.images, generator(seed, stream), None), digits.labels)
        return self._cache[key]

    def val(self) -> Split:
        """The validation split, placed with the run's seed."""
        return self._fixed(VAL, self._val_digits, self.seed)

    def test(self, seed: int = 0) -> Split:
        """The test set. Seed 0 is the standard one every reported number uses."""
        return self._fixed(TEST, self._test_digits, seed)

    def batches_per_epoch(self, batch_size: int) -> int:
        return -(-self.train.images.shape[0] // batch_size)

    def train_batches(
        self, epoch: int, batch_size: int, *, start: int = 0, shard: tuple[int, int] = (0, 1)
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (float images [B, 1, H, W], labels [B]) for one epoch, from batch `start` on.

        shard = (rank, world): each data-parallel rank takes every world-th batch of the same permutation.
        """
        n = self.train.images.shape[0]
        for b, idx in epoch_batches(n, batch_size, seed=self.seed, epoch=epoch, start=start, shard=shard):
            gen = generator(self.seed, TRAIN, epoch, b)
            images = shift(self._place(self.train.images[idx], gen, idx), self.task.shift, gen=gen)
            yield warp(to_float(images), self.task.rotate, self.task.scale, gen=gen), self.train.labels[idx]


