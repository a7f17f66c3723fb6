"""A third task, written as docs/extending.md says (and shows, this file being its example): one module, one
registered class.

Where is the square? A 12x12 black image holds one 3x3 white square in one of its four quadrants; the label is the
quadrant. It reuses the classification losses and evaluation, but owns its settings, data, checks, lines and seeding.
"""

from dataclasses import dataclass

import torch
import tyro

from ram.config import ConfigError, Kind, RunConfig, TaskConfig, _require, register_task
from ram.data import Split, to_float
from ram.data.tasks import generator
from ram.losses import LossSpec
from ram.tasks.classify import classification_loss, evaluate, test_report

SIDE, SQUARE = 12, 3
QUADRANTS = ("top-left", "top-right", "bottom-left", "bottom-right")


def squares(n: int, gen: torch.Generator) -> Split:
    """n images uint8 [n, SIDE, SIDE] and their quadrants [n]."""
    labels = torch.randint(0, 4, (n,), generator=gen)
    half = SIDE // 2
    top = (labels // 2) * half + torch.randint(0, half - SQUARE + 1, (n,), generator=gen)
    left = (labels % 2) * half + torch.randint(0, half - SQUARE + 1, (n,), generator=gen)
    images = torch.zeros(n, SIDE, SIDE, dtype=torch.uint8)
    for i in range(n):
        images[i, top[i] : top[i] + SQUARE, left[i] : left[i] + SQUARE] = 255
    return Split(images, labels)


@dataclass(frozen=True, kw_only=True)
class SquaresConfig(TaskConfig):
    """The settings of the squares task: its section of the run config, and its flags (`--train-size`)."""

    dataset: tyro.conf.Suppress[str] = "squares"
    canvas: tyro.conf.Suppress[int] = SIDE
    train_size: int = 512
    """Training images drawn each epoch."""

    def validate(self) -> None:
        super().validate()
        _require(self.canvas == SIDE, "canvas", self.canvas, f"the squares are drawn on {SIDE}x{SIDE} images")
        _require(self.train_size >= 1, "train_size", self.train_size, "must be >= 1")


@register_task
class Squares:
    datasets = ("squares",)
    Config = SquaresConfig
    classifies = True

    def __init__(self, cfg: RunConfig, **_):
        self.cfg = cfg
        self.loss_spec = LossSpec.of(cfg)

    @staticmethod
    def check_run(cfg: RunConfig) -> None:
        _require(cfg.model.about.classifies, "model", cfg.model.kind, "must classify")
        _require(cfg.model.classes == 4, "classes", cfg.model.classes, "there are 4 quadrants")

    @staticmethod
    def labels(t: SquaresConfig, kind: Kind) -> tuple[str, ...]:
        return QUADRANTS

    @staticmethod
    def title(t: SquaresConfig) -> str:
        return "squares"

    @staticmethod
    def about(cfg: RunConfig) -> str:
        return f"squares, {cfg.model.glimpses} glimpses"

    def batches_per_epoch(self, batch_size: int) -> int:
        return -(-self.cfg.task.train_size // batch_size)

    def train_batches(self, epoch, batch_size, *, start=0, shard=(0, 1)):
        for b in range(start, self.batches_per_epoch(batch_size)):
            if b % shard[1] == shard[0]:
                images, labels = squares(batch_size, generator(self.cfg.train.seed, 1, epoch, b))
                yield to_float(images), labels

    def episodes(self, batch) -> int:
        return batch[0].shape[0]

    def loss(self, model, batch, device):
        images, labels = (t.to(device) for t in batch)
        return classification_loss(model, images, labels, self.loss_spec, precision=self.cfg.train.precision)

    def validate(self, model, device):
        return evaluate(model, squares(200, generator(self.cfg.train.seed, 2)), device=device)

    def check_report(self, *, mc_samples=None, episodes=None, split="test") -> None:
        if episodes is not None:
            raise ConfigError(f"episodes = {episodes}: the squares are images, not games")

    def report(self, model, *, split="test", seed=0, device=None, progress=False, mc_samples=None, episodes=None,
               batch_size=None):
        images = squares(200, generator(seed, 3 if split == "test" else 2))
        return test_report(model, images, mc_samples=mc_samples or 0, seed=seed, device=device)

    def summary(self, metrics, *, split, seed) -> str:
        return f"squares: {split} error {metrics['error']:.2f}% on {metrics['n']} images"

    def headline(self, metrics) -> str:
        return f"squares found in {100 - metrics['error']:.1f}% of {metrics['n']} images"

    def draw(self, model, out, *, n=None, seed=0, split="test"):
        from ram import viz

        return viz.render(model, squares(n or 4, generator(seed, 3)), out, n=n or 4, classes=QUADRANTS)

    def end_pictures(self, model, out) -> None:
        pass

    def val_figure(self, model, n: int):
        return None

    def warm_batches(self, batch_size: int):
        return [next(self.train_batches(0, batch_size))]

    def probe(self, model, batch_size: int, device):
        images = to_float(squares(batch_size, generator(0)).images).to(device)
        return lambda: model(images, sample=False).logits.shape[0]
