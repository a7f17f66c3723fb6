"""More than one object: the MNIST tasks of Ba, Mnih & Kavukcuoglu 2015 on canvases of two digits (`ram.data.multi`),
learned by a model that emits a sequence of labels (`ram.dram.DRAM`).

- `MnistPairs` (mnist-pairs): name both digits. The model emits the digits in reading order (by left edge, then top),
  K = 2 labels of 10 classes; an answer is right when it names the two digits in either order.
- `MnistAddition` (mnist-addition): name their sum. The model emits one label of 19 classes (0..18) after all its
  glimpses, K = 1, as the paper's DRAM does (a 19-way prediction of the sum).

Both: freshly drawn training canvases, `losses.sequence_hybrid` with M Monte-Carlo copies of each canvas, and error in
%: one episode along the emission network's means (the headline, and what chooses the best weights), and the
average of M sampled episodes beside it.

The runtime part of the `ram.tasks.Task` protocol only: the tasks are not registered yet (that needs their config
section), and take what they need as keyword arguments.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..config import ConfigError
from ..data import Digits, mnist, to_float
from ..data.multi import ADDITION, PAIRS, Canvases, Layout, MultiDigitData
from ..losses import Losses, LossSpec, sequence_hybrid
from ..models import evaluating
from .classify import MAX_EPISODES, ONE_EPISODE
from .common import autocast, float32, seeded


@torch.no_grad()
def predict_labels(
    model: torch.nn.Module, images: torch.Tensor, *, mc_samples: int = 0, max_episodes: int = MAX_EPISODES
) -> torch.Tensor:
    """Probabilities of each emitted label, [B, K, classes], for float images [B, C, H, W].

    mc_samples = 0 follows the means (deterministic); M > 0 averages each output's class probabilities over M sampled
    episodes of each image, in groups of at most max_episodes episodes.
    """
    if mc_samples <= 0:
        return F.softmax(model(images, sample=False).logits, dim=-1)
    B = images.shape[0]
    per_group = max(1, max_episodes // B)
    probs = []
    for start in range(0, mc_samples, per_group):
        copies = min(per_group, mc_samples - start)
        logits = model(images.repeat(copies, 1, 1, 1), sample=True).logits  # [copies * B, K, classes]
        probs.append(F.softmax(logits, dim=-1).view(copies, B, *logits.shape[1:]))
    return torch.cat(probs).mean(0)


def either_order(predicted: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """How right the first two emitted labels are as a pair of digits, per canvas: predicted, labels int64 [B, >=2].

    right: 1 where they are the two digits in either order. digits: the share of the two digits they name (the
    larger of the two orders' matches, over 2). in_order: 1 where they are the digits in the order trained on.
    """
    p, y = predicted[:, :2], labels[:, :2]
    straight = (p == y).sum(1)
    swapped = (p == y.flip(1)).sum(1)
    return {"right": ((straight == 2) | (swapped == 2)).float(),
            "digits": torch.maximum(straight, swapped).float() / 2,
            "in_order": (straight == 2).float()}


ERRORS = {"right": "error", "digits": "digit_error", "in_order": "error_in_order"}
"""The error in % each share of `score` is reported as."""


class MultiDigitTask:
    """Canvases of several digits, answered by a sequence of labels. A subclass says what the answer is (`targets`),
    how many labels of how many classes the model emits for it (`outputs`, `classes`) and how an answer is scored
    (`score`)."""

    name: str
    """The dataset it will be registered for."""
    layout: Layout
    outputs: int
    """Labels the model emits per canvas (DRAM's `outputs`)."""
    classes: int
    """Classes of each label (DRAM's `classes`)."""

    def __init__(
        self,
        *,
        digits: Digits | None = None,
        layout: Layout | None = None,
        seed: int = 0,
        val_size: int = 10_000,
        train_size: int = 0,
        eval_batch_size: int = 1000,
        eval_mc_samples: int = 10,
        loss_spec: LossSpec = LossSpec(),
        precision: str = "fp32",
        progress: bool = True,
    ):
        """digits: MNIST, read when None. layout: the task's own when None. seed: the run's, for training batches and
        the validation canvases. val_size, train_size: `MultiDigitData`'s split. eval_batch_size: canvases per
        evaluation batch. eval_mc_samples: sampled episodes averaged in `report` (0: none). loss_spec: the loss, its
        mc_samples the copies of each training canvas. precision: the training arithmetic (`tasks.common.autocast`).
        """
        digits = digits if digits is not None else mnist.load("mnist", progress=progress)
        self.data = MultiDigitData(digits, seed=seed, layout=layout or self.layout, val_size=val_size,
                                   train_size=train_size)
        self.eval_batch_size, self.eval_mc_samples = eval_batch_size, eval_mc_samples
        self.loss_spec, self.precision = loss_spec, precision

    # What the answer is --------------------------------------------------------------------------------------------
    def targets(self, canvases: Canvases) -> torch.Tensor:
        """int64 [B, L]: what the model is taught to emit, in `data.multi`'s label layout."""
        raise NotImplementedError

    def score(self, predicted: torch.Tensor, canvases: Canvases) -> dict[str, torch.Tensor]:
        """Per canvas, float [B] shares of the answer that are right (the keys of `ERRORS`; "right" at least), for
        the emitted labels predicted int64 [B, K]."""
        raise NotImplementedError

    # Training ------------------------------------------------------------------------------------------------------
    def batches_per_epoch(self, batch_size: int) -> int:
        return self.data.batches_per_epoch(batch_size)

    def train_batches(self, epoch: int, batch_size: int, *, start: int = 0,
                      shard: tuple[int, int] = (0, 1)) -> Iterator[Canvases]:
        return self.data.train_batches(epoch, batch_size, start=start, shard=shard)

    def episodes(self, batch: Canvases) -> int:
        return batch.images.shape[0]

    def loss(self, model: torch.nn.Module, batch: Canvases, device: torch.device) -> Losses:
        """`sequence_hybrid` on M = loss_spec.mc_samples sampled episodes of each canvas (copy k of canvas i at
        k * B + i)."""
        images, labels = to_float(batch.images).to(device), self.targets(batch).to(device)
        copies = self.loss_spec.mc_samples
        if copies > 1:
            images, labels = images.repeat(copies, 1, 1, 1), labels.repeat(copies, 1)
        with autocast(images.device, self.precision):
            episode = model(images, sample=True)
        return sequence_hybrid(float32(episode), labels, self.loss_spec)

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, canvases: Canvases, *, mc_samples: int = 0, device=None,
                 batch_size: int | None = None, progress: bool = False) -> dict[str, Any]:
        """The errors (%) of `ERRORS` on canvases, and "n"; mc_samples as in `predict_labels`."""
        device = device or next(model.parameters()).device
        batch_size = batch_size or self.eval_batch_size
        n = canvases.images.shape[0]
        right: dict[str, float] = {}
        with evaluating(model):
            for i in tqdm(range(0, n, batch_size), desc="eval", leave=False, disable=not progress):
                part = Canvases(*(t[i : i + batch_size] for t in canvases))
                probs = predict_labels(model, to_float(part.images).to(device), mc_samples=mc_samples)
                for key, share in self.score(probs.argmax(-1).cpu(), part).items():
                    right[key] = right.get(key, 0.0) + share.sum().item()
        return {**{ERRORS[k]: round(100.0 * (1 - v / n), 4) for k, v in right.items()}, "n": n}

    def validate(self, model: torch.nn.Module, device: torch.device) -> dict[str, Any]:
        return self.evaluate(model, self.data.val(), device=device)

    def warm_batches(self, batch_size: int) -> list[Canvases]:
        """The first batch, and one of the size of each epoch's ragged last batch."""
        first = next(self.train_batches(0, batch_size))
        ragged = self.data.train.images.shape[0] % batch_size
        return [first, *([Canvases(*(t[:ragged] for t in first))] if ragged else [])]

    def probe(self, model: torch.nn.Module, batch_size: int, device: torch.device) -> Callable[[], int]:
        images = to_float(self.data.val().images[:batch_size]).to(device)

        def step() -> int:
            predict_labels(model, images).sum().item()
            return images.shape[0]

        return step

    # Reporting -----------------------------------------------------------------------------------------------------
    def check_report(self, *, mc_samples: int | None = None, episodes: int | None = None, split: str = "test") -> None:
        if episodes is not None:
            raise ConfigError(f"episodes = {episodes}: only a game is played for a number of episodes; "
                              f"{self.name} is evaluated on its whole {split} set")

    def report(self, model: torch.nn.Module, *, split: str = "test", seed: int = 0, device=None,
               progress: bool = False, mc_samples: int | None = None, episodes: int | None = None,
               batch_size: int | None = None) -> dict[str, Any]:
        """The errors of one episode along the means (the headline "error"), and with M = mc_samples > 0 those of
        M seeded sampled episodes averaged ("error_averaged", ...)."""
        mc_samples = self.eval_mc_samples if mc_samples is None else mc_samples
        canvases = self.data.test(seed) if split == "test" else self.data.val()
        one = self.evaluate(model, canvases, device=device, batch_size=batch_size, progress=progress)
        report = {**one, "protocol": ONE_EPISODE, "mc_samples": mc_samples}
        if mc_samples > 0:
            with seeded(seed):  # the same sampled episodes on every run of the same command
                averaged = self.evaluate(model, canvases, mc_samples=mc_samples, device=device, batch_size=batch_size,
                                         progress=progress)
            report |= {f"{k}_averaged": v for k, v in averaged.items() if k != "n"}
            report["averaged_protocol"] = f"each label's probabilities over {mc_samples} sampled episodes averaged"
        return report

    def summary(self, metrics: dict[str, Any], *, split: str, seed: int) -> str:
        line = (f"{self.name}: {split} error {metrics['error']:.2f}% ({metrics['n']} canvases, seed {seed}, "
                f"{metrics['protocol']})")
        if "digit_error" in metrics:
            line += f", {metrics['digit_error']:.2f}% of the digits"
        if "error_averaged" in metrics:
            line += f"; {metrics['averaged_protocol']}: {metrics['error_averaged']:.2f}%"
        return line

    def headline(self, metrics: dict[str, Any]) -> str:
        return f"test error {metrics['error']:.2f}% on {metrics['n']} canvases"


class MnistPairs(MultiDigitTask):
    """Name both digits, in either order. Taught in reading order, so the glimpses have one order to learn."""

    name = "mnist-pairs"
    layout = PAIRS
    outputs = 2
    classes = 10

    def targets(self, canvases: Canvases) -> torch.Tensor:
        return canvases.labels  # [B, 3]: the digits in reading order, EOS

    def score(self, predicted: torch.Tensor, canvases: Canvases) -> dict[str, torch.Tensor]:
        return either_order(predicted, canvases.labels)


class MnistAddition(MultiDigitTask):
    """Name the sum of the two digits: one label of 19 classes after all the glimpses."""

    name = "mnist-addition"
    layout = ADDITION
    outputs = 1
    classes = 19

    def targets(self, canvases: Canvases) -> torch.Tensor:
        return canvases.sums[:, None]  # [B, 1]

    def score(self, predicted: torch.Tensor, canvases: Canvases) -> dict[str, torch.Tensor]:
        return {"right": (predicted[:, 0] == canvases.sums).float()}
