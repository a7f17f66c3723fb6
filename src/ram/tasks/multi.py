"""More than one object: the MNIST tasks of Ba, Mnih & Kavukcuoglu 2015 on canvases of two digits (`ram.data.multi`),
learned by a model that emits a sequence of labels (`ram.dram.DRAM`).

- `MnistPairs` (mnist-pairs): name both digits. The model emits the digits in reading order (by left edge, then top),
  K = 2 labels of 10 classes; an answer is right when it names the two digits in either order.
- `MnistAddition` (mnist-addition): name their sum. The model emits one label of 19 classes (0..18) after all its
  glimpses, K = 1, as the paper's DRAM does (a 19-way prediction of the sum).

Both: freshly drawn training canvases, `losses.sequence_hybrid` with M Monte-Carlo copies of each canvas, and error in
%: one episode along the emission network's means (the headline, and what chooses the best weights), and the
average of M sampled episodes beside it.

A model that emits one answer (RAM, convnet: `Kind.sequence` false) learns the same canvases as a classification:
the pair as one of the 55 unordered pairs (`data.multi.pair_class`), the sum as one of 19 classes. Its rows are the
paper's comparisons.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
import tyro
from tqdm.auto import tqdm

from ..config import ConfigError, Kind, RunConfig, TaskConfig, _require, register_task
from ..data import Digits, mnist, to_float
from ..data.multi import ADDITION, PAIRS, Canvases, Layout, MultiDigitData, pair_class, place_apart
from ..losses import Losses, LossSpec, sequence_hybrid
from ..models import evaluating
from .classify import MAX_EPISODES, ONE_EPISODE, WHOLE_IMAGE, classification_loss
from .common import autocast, float32, seeded


DIGITS = "mnist"
"""The digits every canvas is made of."""


@dataclass(frozen=True, kw_only=True)
class MultiDigitConfig(TaskConfig):
    """Canvases of several MNIST digits at random, non-overlapping places, with pieces of other digits as clutter:
    drawn afresh for every training batch from the training digits, once for validation and test."""

    dataset: tyro.conf.Suppress[str] = "mnist-pairs"
    """mnist-pairs or mnist-addition."""
    canvas: tyro.conf.Suppress[int] = 100
    pieces: int = 8
    """Clutter: random crops of other digits of the same split (piece_size x piece_size) added to each canvas."""
    piece_size: int = 8
    """Side of each piece of clutter."""
    val_size: tyro.conf.Suppress[int] = 10_000
    """Digits taken from the end of MNIST's training set to make the validation canvases."""
    train_size: int = 0
    """Make training canvases of the first N training digits only; 0 uses all of them. For smoke tests."""

    def validate(self) -> None:
        super().validate()
        Layout(objects=2, canvas=self.canvas, pieces=self.pieces, piece_size=self.piece_size).validate()
        _require(0 < self.val_size < 60_000, "val_size", self.val_size, "must be in 1..59999")
        n_train = 60_000 - self.val_size
        _require(0 <= self.train_size <= n_train, "train_size", self.train_size,
                 f"must be in 0..{n_train} (0 = all {n_train} training digits left by val_size {self.val_size})")


@torch.no_grad()
def predict_labels(
    model: torch.nn.Module, images: torch.Tensor, *, mc_samples: int = 0, max_episodes: int = MAX_EPISODES
) -> torch.Tensor:
    """Probabilities of each emitted label, [B, K, classes], for float images [B, C, H, W].

    mc_samples = 0 follows the means (deterministic); M > 0 averages each output's class probabilities over M sampled
    episodes of each image, in groups of at most max_episodes episodes.
    """
    if mc_samples <= 0:
        return F.softmax(_labels(model(images, sample=False).logits), dim=-1)
    B = images.shape[0]
    per_group = max(1, max_episodes // B)
    probs = []
    for start in range(0, mc_samples, per_group):
        copies = min(per_group, mc_samples - start)
        logits = _labels(model(images.repeat(copies, 1, 1, 1), sample=True).logits)  # [copies * B, K, classes]
        probs.append(F.softmax(logits, dim=-1).view(copies, B, *logits.shape[1:]))
    return torch.cat(probs).mean(0)


def _labels(logits: torch.Tensor) -> torch.Tensor:
    """Logits as a sequence of labels [B, K, classes]: a model with one answer ([B, classes]) emits K = 1."""
    return logits if logits.dim() == 3 else logits[:, None]


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


ERRORS = {"right": "error", "digits": "digit_error", "in_order": "error_in_order", "length": "length_error"}
"""The error in % each share of `score` is reported as; "long{n}", the strings of n labels, as "error_long{n}"."""


def error_name(share: str) -> str:
    """The key of the error (%) a share of `score` is reported as."""
    return ERRORS.get(share) or f"error_{share}"


class MultiDigitTask:
    """Canvases of several digits, answered by a sequence of labels. A subclass says what the answer is (`targets`),
    how many labels of how many classes the model emits for it (`outputs`, `classes`) and how an answer is scored
    (`score`)."""

    name: str
    """The dataset it is registered for."""
    layout: Layout
    """Its canvases by default (the task section's canvas, pieces and piece_size replace them)."""
    outputs: int
    """Labels a sequence model emits per canvas (DRAM's `outputs`)."""
    classes: int
    """Classes of each of those labels (DRAM's `classes`)."""
    answer_classes: int
    """Classes of the one answer of a model that emits one (RAM, convnet)."""
    answer_names: tuple[str, ...] = ()
    """The name of each of those classes (a pair's two digits); () where a class is its number (a sum)."""
    classifies = True
    Config = MultiDigitConfig

    def __init__(self, cfg: RunConfig, *, data: Digits | None = None, progress: bool = True):
        """data: the MNIST digits the canvases are made of, read when None."""
        self._setup(cfg)
        t = cfg.task
        digits = data if data is not None else mnist.load(DIGITS, progress=progress)
        layout = Layout(objects=self.layout.objects, canvas=t.canvas, pieces=t.pieces, piece_size=t.piece_size)
        self.data = MultiDigitData(digits, seed=cfg.train.seed, layout=layout, val_size=t.val_size,
                                   train_size=t.train_size)

    def _setup(self, cfg: RunConfig) -> None:
        """What every multi-object task keeps of its run: the config, the evaluation's sizes, the loss, whether the
        model emits labels in turn. (`self.data`, its canvases, is each task's own.)"""
        self.cfg = cfg
        tc = cfg.train
        self.eval_batch_size, self.eval_mc_samples = tc.eval_batch_size, tc.eval_mc_samples
        self.loss_spec, self.precision = LossSpec.of(cfg), tc.precision
        self.sequence = cfg.model.about.sequence

    # The config ------------------------------------------------------------------------------------------------------
    @classmethod
    def check_run(cls, cfg: RunConfig) -> None:
        m = cfg.model
        _require(m.channels == 1, "channels", m.channels, f"{cls.name} canvases are grey")
        _require(m.about.classifies, "model", m.kind, f"{cls.name} is classified, not played")
        _require(m.actions == 0, "actions", m.actions, f"{cls.name} takes no actions")
        if m.about.sequence:
            _require(m.classes == cls.classes, "classes", m.classes, f"{cls.name}'s labels have {cls.classes} classes")
            _require(getattr(m, "outputs", cls.outputs) == cls.outputs, "outputs", getattr(m, "outputs", None),
                     f"{cls.name} is answered by {cls.outputs} label(s)")
        else:
            _require(m.classes == cls.answer_classes, "classes", m.classes,
                     f"{cls.name} answered at once is one of {cls.answer_classes} classes")

    @classmethod
    def answers(cls, t: TaskConfig, kind: Kind) -> dict[str, int]:
        """What a model of this kind answers here, for `ram train --model KIND` (`flags.with_model`): a sequence
        model `outputs` labels of `classes`, any other one answer of `answer_classes` classes."""
        return {"classes": cls.classes, "outputs": cls.outputs} if kind.sequence else {"classes": cls.answer_classes}

    @classmethod
    def labels(cls, t: TaskConfig, kind: Kind) -> tuple[str, ...]:
        """A sequence model's labels are digits (or a sum), each named by its number; a model that answers once
        names its class by `answer_names`."""
        return () if kind.sequence else cls.answer_names

    @classmethod
    def title(cls, t: TaskConfig) -> str:
        return f"{cls.objects_word} on {t.canvas}x{t.canvas}" + (" cluttered" if t.pieces else "")

    @classmethod
    def about(cls, cfg: RunConfig) -> str:
        return f"{cls.name} {cfg.task.canvas}x{cfg.task.canvas}, {cfg.model.looks(cfg.policy.noun)}"

    # What the answer is --------------------------------------------------------------------------------------------
    def targets(self, canvases: Canvases) -> torch.Tensor:
        """int64 [B, L]: what the model is taught to emit, in `data.multi`'s label layout."""
        raise NotImplementedError

    def score(self, predicted: torch.Tensor, canvases: Canvases) -> dict[str, torch.Tensor]:
        """Per canvas, float [B] shares of the answer that are right (the keys of `ERRORS`; "right" at least), for
        the emitted labels predicted int64 [B, K]; or (right [B], out of [B]), counts pooled over the canvases (the
        digits of strings of different lengths)."""
        raise NotImplementedError

    # Training ------------------------------------------------------------------------------------------------------
    def batches_per_epoch(self, batch_size: int) -> int:
        return self.data.batches_per_epoch(batch_size)

    def train_batches(self, epoch: int, batch_size: int, *, start: int = 0,
                      shard: tuple[int, int] = (0, 1)) -> Iterator[Canvases]:
        return self.data.train_batches(epoch, batch_size, start=start, shard=shard)

    def episodes(self, batch: Canvases) -> int:
        return batch.images.shape[0]

    def answer(self, canvases: Canvases) -> torch.Tensor:
        """int64 [B]: the one class a model that answers once is taught."""
        raise NotImplementedError

    def loss(self, model: torch.nn.Module, batch: Canvases, device: torch.device) -> Losses:
        """`sequence_hybrid` on M = loss_spec.mc_samples sampled episodes of each canvas (copy k of canvas i at
        k * B + i); for a model that answers once, the classification's hybrid loss on `answer`."""
        if not self.sequence:
            return classification_loss(model, to_float(batch.images).to(device), self.answer(batch).to(device), self.loss_spec,
                                       precision=self.precision)
        images, labels = to_float(batch.images).to(device), self.targets(batch).to(device)
        one, copies = images, self.loss_spec.mc_samples
        if copies > 1:
            images, labels = images.repeat(copies, 1, 1, 1), labels.repeat(copies, 1)
        with autocast(images.device, self.precision):
            episode = model(images, sample=True)
        means_logits = None
        if self.loss_spec.means_weight > 0:
            with autocast(images.device, self.precision):
                means_logits = model(one, sample=False).logits.float()
        return sequence_hybrid(float32(episode), labels, self.loss_spec, means_logits)

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, canvases: Canvases, *, mc_samples: int = 0, device=None,
                 batch_size: int | None = None, progress: bool = False) -> dict[str, Any]:
        """The errors (%) of `ERRORS` on canvases, and "n"; mc_samples as in `predict_labels`."""
        device = device or next(model.parameters()).device
        batch_size = batch_size or self.eval_batch_size
        n = canvases.images.shape[0]
        right: dict[str, float] = {}
        out_of: dict[str, float] = {}  # what each share is a share of: the canvases, or the counts `score` gives
        with evaluating(model):
            for i in tqdm(range(0, n, batch_size), desc="eval", leave=False, disable=not progress):
                part = type(canvases)(*(t[i : i + batch_size] for t in canvases))
                probs = predict_labels(model, to_float(part.images).to(device), mc_samples=mc_samples)
                predicted = probs.argmax(-1).cpu()
                shares = self.score(predicted, part) if self.sequence else self.score_answer(predicted[:, 0], part)
                for key, share in shares.items():
                    share, of = share if isinstance(share, tuple) else (share, None)
                    right[key] = right.get(key, 0.0) + share.sum().item()
                    out_of[key] = out_of.get(key, 0) + (part.images.shape[0] if of is None else of.sum().item())
        return {**{error_name(k): round(100.0 * (1 - v / out_of[k]), 4) for k, v in right.items()}, "n": n}

    def validate(self, model: torch.nn.Module, device: torch.device) -> dict[str, Any]:
        return self.evaluate(model, self.data.val(), device=device)

    def warm_batches(self, batch_size: int) -> list[Canvases]:
        """The first batch, and one of the size of each epoch's ragged last batch."""
        first = next(self.train_batches(0, batch_size))
        ragged = self.data.train.images.shape[0] % batch_size
        return [first, *([type(first)(*(t[:ragged] for t in first))] if ragged else [])]

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
        if not self.cfg.model.about.glimpses:  # no episodes to sample: each would be the same pass
            mc_samples = 0
        canvases = self.data.test(seed) if split == "test" else self.data.val()
        one = self.evaluate(model, canvases, device=device, batch_size=batch_size, progress=progress)
        protocol = ONE_EPISODE if self.cfg.model.about.glimpses else WHOLE_IMAGE  # fc, convnet: no episodes
        report = {**one, "protocol": protocol, "mc_samples": mc_samples}
        if mc_samples > 0:
            with seeded(seed):  # the same sampled episodes on every run of the same command
                averaged = self.evaluate(model, canvases, mc_samples=mc_samples, device=device, batch_size=batch_size,
                                         progress=progress)
            report |= {f"{k}_averaged": v for k, v in averaged.items() if k != "n"}
            report["averaged_protocol"] = f"each label's probabilities over {mc_samples} sampled episodes averaged"
        return report

    # Pictures -------------------------------------------------------------------------------------------------------
    def _texts(self) -> dict[str, Any]:
        """How `viz.multi` writes this task's answers: emitted, true, and whether right."""
        if self.sequence:
            return {"answered": lambda p: [" ".join(map(str, row.tolist())) for row in p],
                    "truth": self.truth, "right": lambda p, c: self.score(p, c)["right"].bool()}
        return {"answered": lambda p: self.name_answers(p[:, 0]), "truth": self.truth,
                "right": lambda p, c: self.score_answer(p[:, 0], c)["right"].bool()}

    def draw(self, model: torch.nn.Module, out, *, n: int | None = None, seed: int = 0, split: str = "test"):
        from ..viz.multi import render_sequence

        canvases = self.data.test(seed) if split == "test" else self.data.val()
        return render_sequence(model, canvases, out, n=n or 16, **self._texts())

    def end_pictures(self, model: torch.nn.Module, out) -> None:
        """glimpses.png of the best model on 16 test canvases."""
        if self.cfg.model.about.drawn:
            self.draw(model, out)

    def val_figure(self, model: torch.nn.Module, n: int):
        if not self.cfg.model.about.drawn:
            return None
        from ..viz.multi import sequence_glimpses

        return sequence_glimpses(model, self.data.val(), n=n, cols=n // 2 or 1, **self._texts())

    inputs = "canvases"
    """What the reports call one input."""
    PARTS = (("digit_error", "of the digits"), ("length_error", "at a wrong length"))
    """The errors of an answer's parts a report gives after the whole answer's, where the task measures them."""

    def summary(self, metrics: dict[str, Any], *, split: str, seed: int) -> str:
        line = (f"{self.name}: {split} error {metrics['error']:.2f}% ({metrics['n']} {self.inputs}, seed {seed}, "
                f"{metrics['protocol']})")
        line += "".join(f", {metrics[key]:.2f}% {words}" for key, words in self.PARTS if key in metrics)
        by_length = sorted((int(key.removeprefix("error_long")), value) for key, value in metrics.items()
                           if key.startswith("error_long") and not key.endswith("_averaged"))
        if by_length:
            line += " (" + ", ".join(f"{value:.2f}% of {n}-label strings" for n, value in by_length) + ")"
        if "error_averaged" in metrics:
            line += f"; {metrics['averaged_protocol']}: {metrics['error_averaged']:.2f}%"
        return line

    headline_parts = False
    """The headline names the share of digits wrong too (a string's, whose whole is rarely right early on)."""

    def headline(self, metrics: dict[str, Any]) -> str:
        digits = f", {metrics['digit_error']:.2f}% of digits" if self.headline_parts else ""
        return f"test error {metrics['error']:.2f}% on {metrics['n']} {self.inputs}{digits}"


class PlacedApart:
    """A person's drawing on the page (`ram.serve`): the digits of a canvas of `layout`, placed apart with clutter as
    the task's test canvases are. A mixin of the canvas tasks, not of `MultiDigitTask`: the string tasks lay their
    digits out in a row (mnist-numbers) or read photographs only (svhn)."""

    layout: Layout

    @classmethod
    def drawings(cls, t: MultiDigitConfig) -> range:
        """Digits a person draws for one canvas: the layout's."""
        return range(cls.layout.objects, cls.layout.objects + 1)

    @classmethod
    def place_drawn(cls, digits: torch.Tensor, t: MultiDigitConfig, *, pool: torch.Tensor | None,
                    gen: torch.Generator) -> torch.Tensor:
        """Drawn digits uint8 [objects, 28, 28] on one canvas as its test canvases are made (`data.multi.place_apart`),
        uint8 [canvas, canvas]. pool: uint8 [M, 28, 28], the digits clutter is cut from (None: the drawn digits)."""
        layout = Layout(objects=cls.layout.objects, canvas=t.canvas, pieces=t.pieces, piece_size=t.piece_size)
        return place_apart(digits[None], layout=layout, pool=pool, gen=gen)[0]

    @staticmethod
    def clutter_pool(t: MultiDigitConfig) -> torch.Tensor | None:
        """The training digits its clutter is cut from, uint8 [M, 28, 28], when MNIST is in the data cache already
        (reading it writes nothing); None when it is not, or the task has no clutter."""
        if not t.pieces or not mnist.cached(DIGITS):
            return None
        digits = mnist.load(DIGITS, progress=False)
        return MultiDigitData(digits, seed=0, val_size=t.val_size, train_size=t.train_size).train.images


@register_task
class MnistPairs(PlacedApart, MultiDigitTask):
    """Name both digits, in either order. Taught in reading order, so the glimpses have one order to learn."""

    name = "mnist-pairs"
    datasets = (name,)
    objects_word = "pairs of digits"
    layout = PAIRS
    outputs = 2
    classes = 10
    answer_classes = 55
    answer_names = tuple(f"{a} {b}" for a in range(10) for b in range(a, 10))  # by `data.multi.pair_class`

    def answer(self, canvases: Canvases) -> torch.Tensor:
        return pair_class(canvases.labels[:, :2])

    @staticmethod
    def truth(canvases: Canvases) -> list[str]:
        return [f"{a} {b}" for a, b in canvases.labels[:, :2].tolist()]

    @classmethod
    def name_answers(cls, classes: torch.Tensor) -> list[str]:
        """The 55 pair classes as their two digits (`data.multi.pair_class` read backwards)."""
        return [cls.answer_names[c] for c in classes.tolist()]

    def score_answer(self, predicted: torch.Tensor, canvases: Canvases) -> dict[str, torch.Tensor]:
        return {"right": (predicted == self.answer(canvases)).float()}

    def targets(self, canvases: Canvases) -> torch.Tensor:
        return canvases.labels  # [B, 3]: the digits in reading order, EOS

    def score(self, predicted: torch.Tensor, canvases: Canvases) -> dict[str, torch.Tensor]:
        return either_order(predicted, canvases.labels)


@register_task
class MnistAddition(PlacedApart, MultiDigitTask):
    """Name the sum of the two digits: one label of 19 classes after all the glimpses."""

    name = "mnist-addition"
    datasets = (name,)
    objects_word = "sums of two digits"
    layout = ADDITION
    outputs = 1
    classes = 19
    answer_classes = 19

    def answer(self, canvases: Canvases) -> torch.Tensor:
        return canvases.sums

    @staticmethod
    def truth(canvases: Canvases) -> list[str]:
        return [str(v) for v in canvases.sums.tolist()]

    @staticmethod
    def name_answers(classes: torch.Tensor) -> list[str]:
        return [str(v) for v in classes.tolist()]

    def score_answer(self, predicted: torch.Tensor, canvases: Canvases) -> dict[str, torch.Tensor]:
        return {"right": (predicted == canvases.sums).float()}

    def targets(self, canvases: Canvases) -> torch.Tensor:
        return canvases.sums[:, None]  # [B, 1]

    def score(self, predicted: torch.Tensor, canvases: Canvases) -> dict[str, torch.Tensor]:
        return {"right": (predicted[:, 0] == canvases.sums).float()}
