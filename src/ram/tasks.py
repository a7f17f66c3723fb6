"""What `fit` trains on. A task brings its batches, its loss and its numbers; the loop, the run folder, resume, the
NaN stop, progress, metrics and DDP are written once, in ram.train.

- `Classification`: images and labels (the MNIST family); the hybrid loss; error in %: one episode along the policy
  means (the headline, and what chooses the best weights), and the average of M sampled episodes beside it.
- `CatchGame`: batches of games of Catch played in `ram.envs.CatchBatch`; REINFORCE on the end-of-game reward;
  the catch rate in %.

(How digits are placed on a canvas is ram.data.tasks; this module is about what is learned from them.)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, NamedTuple, Protocol

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .config import RunConfig, TrainConfig
from .data import TEST, TRAIN, VAL, Split, TaskData, to_float
from .data.tasks import generator
from .envs import CatchBatch
from .losses import Losses, game, hybrid


class Task(Protocol):
    def batches_per_epoch(self, batch_size: int) -> int: ...

    def train_batches(self, epoch: int, batch_size: int, *, start: int = 0,
                      shard: tuple[int, int] = (0, 1)) -> Iterator[Any]:
        """The epoch's batches from batch `start` on; a data-parallel rank takes every world-th one."""

    def episodes(self, batch: Any) -> int:
        """Images or games in a batch, for the img/s column."""

    def loss(self, model: torch.nn.Module, batch: Any, device: torch.device) -> Losses: ...

    def validate(self, model: torch.nn.Module, device: torch.device) -> dict[str, Any]:
        """Numbers on the validation split; "error" (%, lower is better) chooses the best weights."""

    def report(self, model: torch.nn.Module, *, split: str = "test", seed: int = 0, device=None,
               progress: bool = False, **options) -> dict[str, Any]:
        """The reported numbers, as `ram eval --json` prints them."""


def _autocast(device: torch.device, precision: str):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def _float32(episode):
    """The losses run in float32 whatever the loop computed in."""
    return type(episode)(*(t.float() if t.is_floating_point() else t for t in episode))


# Classification ------------------------------------------------------------------------------------------------------

# Sampled episodes predict() runs at once: 100 copies of 1,000 100x100 images ran out of 24 GB.
MAX_EPISODES = 10_000


@torch.no_grad()
def predict(
    model: torch.nn.Module, images: torch.Tensor, *, mc_samples: int = 0, max_episodes: int = MAX_EPISODES
) -> torch.Tensor:
    """Class probabilities [B, classes] for float images [B, C, H, W].

    mc_samples = 0 follows the policy means (deterministic); M > 0 averages the class probabilities of M sampled
    episodes of each image. The M copies run in groups of at most max_episodes episodes (one group when B * M fits).
    """
    if mc_samples <= 0:
        return F.softmax(model(images, sample=False).logits, dim=1)
    B = images.shape[0]
    per_group = max(1, max_episodes // B)
    probs = []
    for start in range(0, mc_samples, per_group):
        copies = min(per_group, mc_samples - start)
        logits = model(images.repeat(copies, 1, 1, 1), sample=True).logits
        probs.append(F.softmax(logits, dim=1).view(copies, B, -1))
    return torch.cat(probs).mean(0)


@torch.no_grad()
def evaluate(
    model: torch.nn.Module, split: Split, *, batch_size: int = 1000, mc_samples: int = 0, device=None,
    progress: bool = False,
) -> dict[str, Any]:
    """Error and accuracy (%) of a model on a split."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    correct = 0
    n = split.images.shape[0]
    for i in tqdm(range(0, n, batch_size), desc="eval", leave=False, disable=not progress):
        images = to_float(split.images[i : i + batch_size]).to(device)
        probs = predict(model, images, mc_samples=mc_samples)
        correct += (probs.argmax(1).cpu() == split.labels[i : i + batch_size]).sum().item()
    model.train(was_training)
    accuracy = 100.0 * correct / n
    return {"error": round(100.0 - accuracy, 4), "accuracy": round(accuracy, 4), "n": n}


ONE_EPISODE = "one episode along the policy means"


def test_report(
    model: torch.nn.Module, split: Split, *, mc_samples: int, seed: int, batch_size: int = 1000, device=None,
    progress: bool = False,
) -> dict[str, Any]:
    """The reported numbers. The headline "error" is the paper's protocol and cost: one episode of T glimpses per
    image, along the policy means (the protocol validation chooses the best weights by). With mc_samples M > 0,
    "error_averaged" is the error of the class probabilities of M seeded sampled episodes averaged: M x T glimpses."""
    one = evaluate(model, split, batch_size=batch_size, device=device, progress=progress)
    report = {**one, "protocol": ONE_EPISODE, "mc_samples": mc_samples}
    if mc_samples > 0:
        with seeded(seed):  # the same sampled episodes on every run of the same command
            averaged = evaluate(model, split, batch_size=batch_size, mc_samples=mc_samples, device=device,
                                progress=progress)
        report |= {"error_averaged": averaged["error"],
                   "averaged_protocol": f"class probabilities of {mc_samples} sampled episodes averaged"}
    return report


def classification_loss(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, tc: TrainConfig, *,
                        baseline: str = "state") -> Losses:
    """The hybrid loss of a batch with M Monte-Carlo copies of each image, in the recipe's precision; with
    means_weight, plus the cross-entropy of one episode of each image along the policy means."""
    one, one_labels = images, labels
    if tc.mc_samples > 1:
        images, labels = images.repeat(tc.mc_samples, 1, 1, 1), labels.repeat(tc.mc_samples)
    with _autocast(images.device, tc.precision):
        episode = model(images, sample=True)
    losses = hybrid(_float32(episode), labels, rl_weight=tc.rl_weight, reward_kind=tc.reward, baseline=baseline,
                    entropy_weight=tc.entropy_weight, step_weight=tc.step_weight)
    if tc.means_weight > 0:
        with _autocast(images.device, tc.precision):
            along = model(one, sample=False).logits.float()
        means = tc.means_weight * F.cross_entropy(along, one_labels)
        losses = losses._replace(total=losses.total + means, classify=losses.classify + means)
    return losses


@contextlib.contextmanager
def seeded(seed: int):
    """torch's global generator seeded for a block, and the caller's stream given back afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


class Classification:
    """Images and labels: freshly placed training batches, the hybrid loss with M Monte-Carlo copies, error in %."""

    def __init__(self, cfg: RunConfig, *, data: TaskData | None = None, progress: bool = True):
        self.cfg = cfg
        self.data = data or TaskData(cfg.task, seed=cfg.train.seed, progress=progress)

    def batches_per_epoch(self, batch_size: int) -> int:
        return self.data.batches_per_epoch(batch_size)

    def train_batches(self, epoch, batch_size, *, start=0, shard=(0, 1)):
        return self.data.train_batches(epoch, batch_size, start=start, shard=shard)

    def episodes(self, batch) -> int:
        return batch[0].shape[0]

    def loss(self, model: torch.nn.Module, batch, device: torch.device) -> Losses:
        images, labels = (t.to(device) for t in batch)
        return classification_loss(model, images, labels, self.cfg.train, baseline=self.cfg.model.baseline)

    def validate(self, model: torch.nn.Module, device: torch.device) -> dict[str, Any]:
        return evaluate(model, self.data.val(), batch_size=self.cfg.train.eval_batch_size, device=device)

    def report(self, model, *, split="test", seed=0, device=None, progress=False, mc_samples=None, batch_size=None,
               **_) -> dict[str, Any]:
        tc = self.cfg.train
        mc_samples = tc.eval_mc_samples if mc_samples is None else mc_samples
        images = self.data.test(seed) if split == "test" else self.data.val()
        return test_report(model, images, mc_samples=mc_samples, seed=seed, batch_size=batch_size or tc.eval_batch_size,
                           device=device, progress=progress)


# Catch ---------------------------------------------------------------------------------------------------------------

class Games(NamedTuple):
    """A batch of games: how many, and the generator their starts are drawn from."""

    n: int
    generator: torch.Generator


def catch_games(*, games: int, size: int, seed: int, stream: int, batch_size: int = 1000,
                device=None) -> Iterator[CatchBatch]:
    """`games` games whose starts are fixed by (seed, stream, batch_size), batch_size at a time, each batch started
    and ready to play: the same games for every agent that plays them (the RAM agents here, an outside library's in
    examples/catch_sb3.py)."""
    for b, first in enumerate(range(0, games, batch_size)):
        world = CatchBatch(min(batch_size, games - first), size=size, generator=generator(seed, stream, b),
                           device=device)
        world.reset()
        yield world


@torch.no_grad()
def catch_rate(model: torch.nn.Module, *, games: int, size: int, seed: int, stream: int, sample: bool,
               batch_size: int = 1000, device=None, progress: bool = False) -> dict[str, Any]:
    """Balls caught (%) in `games` games whose starts are fixed by (seed, stream); sample=False takes every policy's
    mode. The sampled moves and locations come from torch's global generator."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    caught = 0
    worlds = catch_games(games=games, size=size, seed=seed, stream=stream, batch_size=batch_size, device=device)
    for world in tqdm(worlds, total=-(-games // batch_size), desc="games", leave=False, disable=not progress):
        model(world, sample=sample)
        caught += int(world.reward.sum().item())
    model.train(was_training)
    rate = 100.0 * caught / games
    return {"catch_rate": round(rate, 4), "error": round(100.0 - rate, 4), "n": games}


class CatchGame:
    """The paper's game: each batch is `batch_size` new games, played to the end with sampled moves and glimpses;
    every decision is reinforced with the end-of-game reward. Validation plays the same val_games games along the
    policies' modes after every epoch."""

    def __init__(self, cfg: RunConfig, **_):
        self.cfg = cfg

    def batches_per_epoch(self, batch_size: int) -> int:
        return -(-self.cfg.task.epoch_games // batch_size)

    def train_batches(self, epoch, batch_size, *, start=0, shard=(0, 1)):
        rank, world = shard
        total = self.batches_per_epoch(batch_size)
        last = total - total % world if world > 1 else total  # ranks must take equally many steps
        for b in range(start, last):
            if b % world == rank:
                n = min(batch_size, self.cfg.task.epoch_games - b * batch_size)
                yield Games(n, generator(self.cfg.train.seed, TRAIN, epoch, b))

    def episodes(self, batch: Games) -> int:
        return batch.n

    def loss(self, model: torch.nn.Module, batch: Games, device: torch.device) -> Losses:
        tc = self.cfg.train
        world = CatchBatch(batch.n, size=self.cfg.task.canvas, generator=batch.generator, device=device)
        world.reset()
        with _autocast(device, tc.precision):
            episode = model(world, sample=True)
        return game(_float32(episode), world.reward, rl_weight=tc.rl_weight, baseline=self.cfg.model.baseline,
                    entropy_weight=tc.entropy_weight)

    def validate(self, model: torch.nn.Module, device: torch.device) -> dict[str, Any]:
        return catch_rate(model, games=self.cfg.task.val_games, size=self.cfg.task.canvas, seed=self.cfg.train.seed,
                          stream=VAL, sample=False, batch_size=self.cfg.train.eval_batch_size, device=device)

    def report(self, model, *, split="test", seed=0, device=None, progress=False, episodes=1000, batch_size=None,
               **_) -> dict[str, Any]:
        """The catch rate along the policies' modes (the headline), and with sampled moves and glimpses."""
        common = dict(games=episodes, size=self.cfg.task.canvas, seed=seed, stream=TEST if split == "test" else VAL,
                      batch_size=batch_size or self.cfg.train.eval_batch_size, device=device, progress=progress)
        modes = catch_rate(model, sample=False, **common)
        with seeded(seed):
            sampled = catch_rate(model, sample=True, **common)
        return {**modes, "protocol": "one game per ball along the policies' modes",
                "catch_rate_sampled": sampled["catch_rate"]}


def make_task(cfg: RunConfig, *, data: TaskData | None = None, progress: bool = True) -> Task:
    if cfg.task.classifies:
        return Classification(cfg, data=data, progress=progress)
    return CatchGame(cfg)
