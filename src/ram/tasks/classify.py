"""Classification of still images: MNIST on its canvases and Fashion-MNIST (your own images, `ram train --data`, are a
task of their own built on this one: `ram.tasks.images`).

Freshly placed training batches, the hybrid loss with M Monte-Carlo copies of each image, and error in %: one
episode along the policy means (the headline, and what chooses the best weights), and the average of M sampled
episodes beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import tyro
from tqdm.auto import tqdm

from ..config import (
    ConfigError,
    Kind,
    RunConfig,
    TaskConfig,
    _require,
    register_task,
)
from ..data import Split, TaskData, mnist, place, to_float
from ..losses import Losses, LossSpec, hybrid
from ..models import evaluating
from .common import autocast, float32, seeded

FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot")
"""Fashion-MNIST's labels 0..9, by name."""

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
    correct = 0
    n = split.images.shape[0]
    with evaluating(model):
        for i in tqdm(range(0, n, batch_size), desc="eval", leave=False, disable=not progress):
            images = to_float(split.images[i : i + batch_size]).to(device)
            probs = predict(model, images, mc_samples=mc_samples)
            correct += (probs.argmax(1).cpu() == split.labels[i : i + batch_size]).sum().item()
    accuracy = 100.0 * correct / n
    return {"error": round(100.0 - accuracy, 4), "accuracy": round(accuracy, 4), "n": n}


ONE_EPISODE = "one episode along the policy means"
WHOLE_IMAGE = "the whole image read once"
"""The protocol of a model without glimpses (fc, convnet)."""


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


def classification_loss(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, spec: LossSpec, *,
                        precision: str = "fp32") -> Losses:
    """The hybrid loss of a batch with M = spec.mc_samples Monte-Carlo copies of each image, the model run in the
    recipe's precision; with means_weight or distill_weight, one more episode of each image along the policy means."""
    one = images
    if spec.mc_samples > 1:
        images, labels = images.repeat(spec.mc_samples, 1, 1, 1), labels.repeat(spec.mc_samples)
    with autocast(images.device, precision):
        episode = model(images, sample=True)
    means_logits = None
    if spec.means_weight > 0 or spec.distill_weight > 0:
        with autocast(images.device, precision):
            means_logits = model(one, sample=False).logits.float()
    return hybrid(float32(episode), labels, spec, means_logits=means_logits)


@dataclass(frozen=True, kw_only=True)
class ClassifyConfig(TaskConfig):
    """What classifying a labelled set of still images takes, whichever images they are: how the training set is
    split, and how training images are moved and distorted (`DigitsConfig` and `ram.tasks.images.ImagesConfig` add
    where the images come from)."""

    shift: int = 0
    """Training images only: each batch moves every image by a fresh random whole number of pixels in [-shift, shift]
    along each axis, filling with black (augmentation; validation and test images stay where they are)."""
    rotate: float = 0.0
    """Training images only: each batch turns every image about its centre by a fresh random angle in [-rotate,
    rotate] degrees (bilinear, black filled in), after the shift."""
    scale: float = 0.0
    """Training images only: each batch resizes every image about its centre by a fresh random factor in
    [1 - scale, 1 + scale], with the rotation."""
    val_size: tyro.conf.Suppress[int] = 10_000
    """Validation images taken from the end of the training set; the test set is only for final numbers."""
    train_size: int = 0
    """Train on the first N training images only; 0 uses all of them. For smoke tests and quick experiments."""

    def validate(self) -> None:
        super().validate()
        _require(self.shift >= 0, "shift", self.shift, "must be >= 0")
        _require(self.shift == 0 or self.shift < self.canvas, "shift", self.shift,
                 f"must be smaller than the canvas {self.canvas}")
        _require(0 <= self.rotate <= 180, "rotate", self.rotate, "must be in [0, 180] degrees")
        _require(0 <= self.scale < 1, "scale", self.scale, "must be in [0, 1)")

    @property
    def clutter(self) -> dict[str, int]:
        """The clutter `ram.data.tasks.place` adds to each image, as its keywords: none."""
        return {}


@dataclass(frozen=True, kw_only=True)
class DigitsConfig(ClassifyConfig):
    """MNIST or Fashion-MNIST, each 28x28 digit on the canvas: as it is on a canvas of 28 (the plain dataset), at a
    random place on a larger one, with pieces of other digits as clutter."""

    dataset: tyro.conf.Suppress[str] = "mnist"
    """mnist or fashion."""
    pieces: int = 0
    """Clutter: random crops of other training digits (piece_size x piece_size, 8x8 in the paper) added to each
    image."""
    piece_size: int = 8
    """Side of each piece of clutter."""

    def validate(self) -> None:
        super().validate()
        _require(self.canvas >= 28, "canvas", self.canvas, "must be at least 28, the digit size")
        _require(self.pieces >= 0, "pieces", self.pieces, "must be >= 0")
        _require(1 <= self.piece_size <= 28, "piece_size", self.piece_size, "must be in 1..28")
        _require(self.piece_size <= self.canvas, "piece_size", self.piece_size,
                 f"is larger than the canvas {self.canvas}")
        _require(0 < self.val_size < 60_000, "val_size", self.val_size, "must be in 1..59999")
        n_train = 60_000 - self.val_size
        _require(0 <= self.train_size <= n_train, "train_size", self.train_size,
                 f"must be in 0..{n_train} (0 = all {n_train} training images left by val_size {self.val_size})")

    @property
    def clutter(self) -> dict[str, int]:
        """pieces crops of piece_size x piece_size from other training digits, added to each image."""
        return {"pieces": self.pieces, "piece_size": self.piece_size}


def class_names(dataset: str) -> tuple[str, ...]:
    """The name of each class of a built-in dataset, by label: Fashion-MNIST's names, MNIST's digits."""
    return FASHION_CLASSES if dataset == "fashion" else tuple(str(d) for d in range(10))


@register_task
class Classification:
    """Images and labels: freshly placed training batches, the hybrid loss with M Monte-Carlo copies, error in %."""

    datasets = ("mnist", "fashion")
    Config = DigitsConfig
    classifies = True

    def __init__(self, cfg: RunConfig, *, data: TaskData | None = None, progress: bool = True):
        self.cfg = cfg
        self.data = data or TaskData(cfg.task, seed=cfg.train.seed, progress=progress)
        self.loss_spec = LossSpec.of(cfg)

    # The config ------------------------------------------------------------------------------------------------------
    @staticmethod
    def check_run(cfg: RunConfig) -> None:
        _require(cfg.model.channels == 1, "channels", cfg.model.channels, f"{cfg.task.dataset} images are grey")
        Classification.check_classifier(cfg)

    @staticmethod
    def check_classifier(cfg: RunConfig) -> None:
        """What every classification task asks of its model, after the checks of its own images: a classifier with
        one output per class and no actions."""
        m, t = cfg.model, cfg.task
        _require(m.about.classifies, "model", m.kind, "is a Catch baseline; classifiers are "
                 "ram, fc, convnet, random-glimpses")
        _require(not m.about.sequence, "model", m.kind, f"emits a sequence of labels, and {t.dataset} has one label "
                 "an image; its tasks are mnist-pairs and mnist-addition (ram train --preset mnist-pairs)")
        n = len(cfg.labels)
        _require(m.classes == n, "classes", m.classes, f"{t.dataset} has {n} classes")
        _require(m.actions == 0, "actions", m.actions, f"{t.dataset} is classified, not played: it takes no actions")

    @staticmethod
    def labels(t: DigitsConfig, kind: Kind) -> tuple[str, ...]:
        return class_names(t.dataset)

    @staticmethod
    def title(t: DigitsConfig) -> str:
        if t.canvas == 28 and t.pieces == 0:
            return "centred"
        return "cluttered" if t.pieces else "translated"

    @staticmethod
    def about(cfg: RunConfig) -> str:
        m, t = cfg.model, cfg.task
        looks = m.looks(cfg.policy.noun)
        placing = t.name if t.name == "centred" else f"{t.name} {t.canvas}x{t.canvas}"
        return f"{t.dataset} {placing}, {looks}"

    # A person's drawing (the page) ---------------------------------------------------------------------------------
    @staticmethod
    def drawings(t: DigitsConfig) -> range:
        """Digits a person draws for one image: one."""
        return range(1, 2)

    @staticmethod
    def place_drawn(digits: torch.Tensor, t: DigitsConfig, *, pool: torch.Tensor | None,
                    gen: torch.Generator) -> torch.Tensor:
        """A drawn digit uint8 [1, 28, 28] on the task's canvas as its test digits are placed, uint8 [canvas,
        canvas]. pool: uint8 [M, 28, 28], the digits clutter is cut from (None: the drawn digit)."""
        return place(digits, canvas=t.canvas, **t.clutter, pool=pool, gen=gen)[0]

    @staticmethod
    def clutter_pool(t: DigitsConfig) -> torch.Tensor | None:
        """The training digits its clutter is cut from, uint8 [M, 28, 28], when they are in the data cache already
        (reading them writes nothing); None when they are not, or the task has no clutter."""
        if not t.pieces or not mnist.cached(t.dataset):
            return None
        return TaskData(t, seed=0, progress=False).train.images

    # Training --------------------------------------------------------------------------------------------------------
    def batches_per_epoch(self, batch_size: int) -> int:
        return self.data.batches_per_epoch(batch_size)

    def train_batches(self, epoch, batch_size, *, start=0, shard=(0, 1)):
        return self.data.train_batches(epoch, batch_size, start=start, shard=shard)

    def episodes(self, batch) -> int:
        return batch[0].shape[0]

    def loss(self, model: torch.nn.Module, batch, device: torch.device) -> Losses:
        images, labels = (t.to(device) for t in batch)
        return classification_loss(model, images, labels, self.loss_spec, precision=self.cfg.train.precision)

    def validate(self, model: torch.nn.Module, device: torch.device) -> dict[str, Any]:
        return evaluate(model, self.data.val(), batch_size=self.cfg.train.eval_batch_size, device=device)

    # Reporting -------------------------------------------------------------------------------------------------------
    def check_report(self, *, mc_samples=None, episodes=None, split="test") -> None:
        if episodes is not None:
            raise ConfigError(f"episodes = {episodes}: only a game is played for a number of episodes; "
                              f"{self.cfg.preset} is evaluated on its whole {split} set")

    def report(self, model, *, split="test", seed=0, device=None, progress=False, mc_samples=None, episodes=None,
               batch_size=None) -> dict[str, Any]:
        tc = self.cfg.train
        mc_samples = tc.eval_mc_samples if mc_samples is None else mc_samples
        if not self.cfg.model.about.glimpses:  # no episodes to sample: each would be the same pass
            mc_samples = 0
        images = self.data.test(seed) if split == "test" else self.data.val()
        report = test_report(model, images, mc_samples=mc_samples, seed=seed,
                             batch_size=batch_size or tc.eval_batch_size, device=device, progress=progress)
        if not self.cfg.model.about.glimpses:  # fc, convnet: no policy, no episodes
            report["protocol"] = WHOLE_IMAGE
        return report

    def summary(self, metrics, *, split, seed) -> str:
        m = self.cfg.model
        glimpses = f" g{m.glimpses}" if m.about.glimpses else ""
        line = (f"{self.cfg.preset} {m.kind}{glimpses}: {split} error {metrics['error']:.2f}% "
                f"({metrics['n']} images, seed {seed}, {metrics['protocol']})")
        if "error_averaged" in metrics:
            line += f"; {metrics['averaged_protocol']}: {metrics['error_averaged']:.2f}%"
        return line

    def headline(self, metrics) -> str:
        return f"test error {metrics['error']:.2f}% on {metrics['n']} images"

    # Pictures and benchmarks -----------------------------------------------------------------------------------------
    def draw(self, model, out: Path, *, n=None, seed=0, split="test") -> list[Path]:
        from .. import viz

        images = self.data.test(seed) if split == "test" else self.data.val()
        return viz.render(model, images, out, n=n or 16, seed=seed, classes=self.cfg.labels)

    def end_pictures(self, model, out: Path) -> None:
        """tracks.png of the best model on 16 test images (a saccade model's saccades.png too)."""
        if not self.cfg.model.about.drawn:
            return
        from .. import viz

        test = self.data.test(0)
        t = viz.trace(model, test.images[:16], test.labels[:16], self.cfg.labels)
        viz.save(viz.tracks(t), Path(out) / "tracks.png")
        if t.lattice is not None:
            viz.save(viz.saccades(t), Path(out) / "saccades.png")

    def val_figure(self, model, n: int):
        if not self.cfg.model.about.drawn:
            return None
        from .. import viz

        val = self.data.val()  # validation images: the test set is kept for final numbers
        return viz.tracks(viz.trace(model, val.images[:n], val.labels[:n]), n=n, cols=n // 2 or 1)

    def warm_batches(self, batch_size: int) -> list[Any]:
        """The first batch, and a batch of the size each epoch's ragged last batch has."""
        first = next(self.train_batches(0, batch_size))
        ragged = self.data.train.images.shape[0] % batch_size
        return [first, *([(first[0][:ragged], first[1][:ragged])] if ragged else [])]

    def probe(self, model, batch_size: int, device: torch.device):
        images = to_float(self.data.val().images[:batch_size]).to(device)

        def step() -> int:
            predict(model, images).sum().item()
            return images.shape[0]

        return step
