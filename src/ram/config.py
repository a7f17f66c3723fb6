"""Run configuration: what data, which model, how to train. Frozen dataclasses, validated where they are made.

A run is fully described by a `RunConfig`; it is written next to every run and into every checkpoint, so a model is
rebuilt from its checkpoint and never from the command line.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Literal


class ConfigError(ValueError):
    """A bad setting. The message names the field and the value."""


def _require(ok: bool, name: str, value: Any, why: str) -> None:
    if not ok:
        raise ConfigError(f"{name} = {value!r}: {why}")


@dataclass(frozen=True, kw_only=True)
class TaskConfig:
    """The images: a dataset and how digits are placed on the canvas."""

    dataset: Literal["mnist", "fashion"] = "mnist"
    canvas: int = 28
    """Side of the square image. 28 is the plain dataset; larger canvases place the digit at random."""
    pieces: int = 0
    """Clutter: random 8x8 crops of other training digits added to each image."""
    piece_size: int = 8
    val_size: int = 10_000
    """Validation images taken from the end of the 60k training set; the test set is only for final numbers."""

    def validate(self) -> None:
        _require(self.dataset in ("mnist", "fashion"), "dataset", self.dataset, "must be 'mnist' or 'fashion'")
        _require(self.canvas >= 28, "canvas", self.canvas, "must be at least 28, the digit size")
        _require(self.pieces >= 0, "pieces", self.pieces, "must be >= 0")
        _require(1 <= self.piece_size <= 28, "piece_size", self.piece_size, "must be in 1..28")
        _require(self.piece_size <= self.canvas, "piece_size", self.piece_size, f"is larger than the canvas {self.canvas}")
        _require(0 < self.val_size < 60_000, "val_size", self.val_size, "must be in 1..59999")

    @property
    def name(self) -> str:
        if self.canvas == 28 and self.pieces == 0:
            return "centred"
        return "cluttered" if self.pieces else "translated"


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """The network. Sizes default to the paper's classification RAM."""

    kind: Literal["ram", "fc", "convnet", "random-glimpses"] = "ram"
    image_size: int = 28
    channels: int = 1
    classes: int = 10
    glimpses: int = 6
    patch_size: int = 8
    scales: int = 1
    what_size: int = 128
    """h_g: the glimpse-content half of the glimpse net."""
    where_size: int = 128
    """h_l: the location half of the glimpse net."""
    glimpse_size: int = 256
    """g: the merged glimpse feature fed to the core."""
    core: Literal["rnn", "lstm", "gru"] = "rnn"
    hidden: int = 256
    std: float = 0.1
    """Standard deviation of the Gaussian location policy, in units of half the image side."""

    def validate(self) -> None:
        kinds = ("ram", "fc", "convnet", "random-glimpses")
        _require(self.kind in kinds, "model", self.kind, f"must be one of {', '.join(kinds)}")
        _require(self.glimpses >= 1, "glimpses", self.glimpses, "must be >= 1")
        _require(self.patch_size >= 1, "patch_size", self.patch_size, "must be >= 1")
        _require(
            self.patch_size <= self.image_size,
            "patch_size",
            self.patch_size,
            f"is larger than the {self.image_size}x{self.image_size} image",
        )
        _require(1 <= self.scales <= 8, "scales", self.scales, "must be in 1..8")
        _require(self.core in ("rnn", "lstm", "gru"), "core", self.core, "must be one of rnn, lstm, gru")
        _require(math.isfinite(self.std) and self.std > 0, "std", self.std, "must be a positive number")
        for name in ("what_size", "where_size", "glimpse_size", "hidden", "classes", "channels", "image_size"):
            _require(getattr(self, name) >= 1, name, getattr(self, name), "must be >= 1")


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """The recipe."""

    epochs: int = 100
    batch_size: int = 128
    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float = 1e-3
    lr_min: float = 1e-5
    """Final learning rate of the cosine schedule."""
    schedule: Literal["cosine", "constant"] = "cosine"
    momentum: float = 0.9
    """SGD only."""
    clip_grad: float = 0.0
    """Clip the global gradient norm to this; 0 turns clipping off."""
    mc_samples: int = 1
    """M: Monte-Carlo copies of each image per training step, and episodes averaged at evaluation."""
    rl_weight: float = 1.0
    """Weight of the REINFORCE term in the hybrid loss."""
    seed: int = 0
    eval_batch_size: int = 1000

    def validate(self) -> None:
        _require(self.epochs >= 1, "epochs", self.epochs, "must be >= 1")
        _require(self.batch_size >= 1, "batch_size", self.batch_size, "must be >= 1")
        _require(self.optimizer in ("adam", "sgd"), "optimizer", self.optimizer, "must be 'adam' or 'sgd'")
        _require(math.isfinite(self.lr) and self.lr > 0, "lr", self.lr, "must be a positive number")
        _require(math.isfinite(self.lr_min) and 0 <= self.lr_min <= self.lr, "lr_min", self.lr_min, "must be in [0, lr]")
        _require(self.schedule in ("cosine", "constant"), "schedule", self.schedule, "must be 'cosine' or 'constant'")
        _require(0 <= self.momentum < 1, "momentum", self.momentum, "must be in [0, 1)")
        _require(math.isfinite(self.clip_grad) and self.clip_grad >= 0, "clip_grad", self.clip_grad, "must be >= 0")
        _require(self.mc_samples >= 1, "mc_samples", self.mc_samples, "must be >= 1")
        _require(math.isfinite(self.rl_weight) and self.rl_weight >= 0, "rl_weight", self.rl_weight, "must be >= 0")
        _require(self.seed >= 0, "seed", self.seed, "must be >= 0")
        _require(self.eval_batch_size >= 1, "eval_batch_size", self.eval_batch_size, "must be >= 1")


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    preset: str = "mnist"
    task: TaskConfig = field(default_factory=TaskConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def validate(self) -> "RunConfig":
        self.task.validate()
        self.model.validate()
        self.train.validate()
        _require(
            self.model.image_size == self.task.canvas,
            "image_size",
            self.model.image_size,
            f"does not match the {self.task.canvas}x{self.task.canvas} images of the task",
        )
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        try:
            return cls(
                preset=d["preset"],
                task=TaskConfig(**d["task"]),
                model=ModelConfig(**d["model"]),
                train=TrainConfig(**d["train"]),
            )
        except (KeyError, TypeError) as e:
            raise ConfigError(f"config: not a recurrent-attention run config ({e})") from None
