"""What `fit` trains on: one module per task behind one protocol, and the registry that finds a config's task.

- `classify.Classification`: images and labels (MNIST, Fashion-MNIST); the hybrid loss; error in %.
- `images.OwnImages`: your own images (`ram train --data PATH`), classified as MNIST is; it owns the look at the folder.
- `multi`, `strings`: several objects (pairs, sums; strings of any length such as house numbers) read by a model that
  emits labels in turn.
- `catch.CatchGame`: batches of games of Catch played in `ram.envs.CatchBatch`; REINFORCE on the end-of-game reward;
  the catch rate in %.

A task is a class decorated with `ram.config.register_task` that names the datasets it serves, carries its settings
as its `Config` (a section of the run config, `ram.config.TaskConfig`) and implements `Task`: its batches, loss,
validation and report; the checks its run needs; the lines the CLI prints; its pictures; its benchmark probe; and how
its episodes are seeded. The trainer, the CLI, viz, bench and the page call the protocol
and never ask which task it is. Adding a task is one module like `catch.py` and one import line below (the
README's "Adding a task").

(How digits are placed on a canvas is ram.data.tasks; this package is about what is learned from them.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import torch

from ..config import Kind, RunConfig, TaskConfig, task_of
from ..losses import Losses
from .common import seeded


class Task(Protocol):
    """The one protocol of a task. Its static part (the datasets, its section, the checks, the labels, the title) is
    what the config asks of it through the registry (`ram.config.task_of`); the rest is what training, reporting and
    the pictures ask of a task made for a run."""

    datasets: tuple[str, ...]
    """The values of `TaskConfig.dataset` this task learns."""
    Config: type[TaskConfig]
    """Its settings, the task section of a run (`RunConfig.task`): a frozen dataclass derived from `TaskConfig`,
    whose fields are `ram train`'s flags for a run of this task (and of no other), and whose `validate()` checks
    them."""
    classifies: bool
    """It labels still images (`ram.load(...).predict` and the page's drawing pad can use it)."""

    def __init__(self, cfg: RunConfig, *, data: Any = None, progress: bool = True):
        """data: what the task reads, when the caller has it already (a classification's `ram.data.TaskData`, the
        `Source` that `ram train --data PATH` found); None reads what cfg names."""

    # The config (static: the config is checked before a task is made) ----------------------------------------------
    @staticmethod
    def check_run(cfg: RunConfig) -> None:
        """ConfigError for a model or recipe this task cannot train (refused, never silently ignored)."""

    # Optional: `configure(cfg, path, *, val_size, progress) -> (cfg, data, lines)`, for a task whose data is a folder
    # of its own format that `ram train --data DIR` names (svhn): the folder is looked at once, its findings written
    # into the config, `data` handed to the task, and `lines` (what was found) printed before training starts.
    # Without it, --data DIR is your own images to classify (`images`).

    # Optional: `answers(task, kind) -> dict`, the settings a model of that kind (`ram.config.Kind`) takes from the
    # task when `ram train --model KIND` changes the preset's model (`flags.with_model`): the multi-digit tasks
    # answer a sequence model with K labels of 10 classes and any other with one of 55 pairs or 19 sums.

    # Optional, for the page (`ram.serve`) to read a person's drawing: `drawings(task) -> range`, how many digits a
    # person may draw for one image (range(1, 2) for a digit, range(2, 3) for a pair, range(1, 6) for a string of 1 to 5
    # digits; the page gives one drawing box per digit, drawings[-1] of them); `place_drawn(digits, task, *, pool,
    # gen)`, those digits (uint8 [k, 28, 28], k in drawings, in reading order) on one of its canvases as its test images
    # are made; `clutter_pool(task)`, the digits that clutter is cut from when they are in the data cache already, else
    # None. A task without them reads images of its own size only.

    @staticmethod
    def labels(task: TaskConfig, kind: Kind) -> tuple[str, ...]:
        """The name of each class a model of that kind (`ram.config.Kind`) answers, by label (`RunConfig.labels`);
        () where a label is its number, or for a task without classes. The kind matters where `answers` does: a
        model that names a pair at once answers one of 55 classes, each a pair of digits."""

    @staticmethod
    def title(task: TaskConfig) -> str:
        """What the inputs are, in a word (results' "task" field)."""

    @staticmethod
    def about(cfg: RunConfig) -> str:
        """A model of this task in a few words (the page's model list)."""

    # Training ----------------------------------------------------------------------------------------------------------
    def batches_per_epoch(self, batch_size: int) -> int: ...

    def train_batches(self, epoch: int, batch_size: int, *, start: int = 0,
                      shard: tuple[int, int] = (0, 1)) -> Iterator[Any]:
        """The epoch's batches from batch `start` on; a data-parallel rank takes every world-th one. Seeded by
        (seed, epoch, batch), so a run resumed mid-epoch sees what it would have seen."""

    def episodes(self, batch: Any) -> int:
        """Images or games in a batch, for the img/s column."""

    def loss(self, model: torch.nn.Module, batch: Any, device: torch.device) -> Losses: ...

    def validate(self, model: torch.nn.Module, device: torch.device) -> dict[str, Any]:
        """Numbers on the validation split; "error" (%, lower is better) chooses the best weights."""

    # Reporting ---------------------------------------------------------------------------------------------------------
    def check_report(self, *, mc_samples: int | None, episodes: int | None, split: str) -> None:
        """ConfigError for an option of `ram eval` this task has no use for."""

    def report(self, model: torch.nn.Module, *, split: str = "test", seed: int = 0, device=None,
               progress: bool = False, mc_samples: int | None = None, episodes: int | None = None,
               batch_size: int | None = None) -> dict[str, Any]:
        """The reported numbers, as `ram eval --json` prints them."""

    def summary(self, metrics: dict[str, Any], *, split: str, seed: int) -> str:
        """The line `ram eval` prints for a report."""

    def headline(self, metrics: dict[str, Any]) -> str:
        """The report in a few words, for the end of `ram train`."""

    # Pictures and benchmarks ---------------------------------------------------------------------------------------------
    def draw(self, model: torch.nn.Module, out: Path, *, n: int | None, seed: int, split: str) -> list[Path]:
        """`ram viz`: the task's pictures of a model into the folder out; the paths written."""

    def end_pictures(self, model: torch.nn.Module, out: Path) -> None:
        """The pictures a finished run folder gets beside curves.png."""

    def val_figure(self, model: torch.nn.Module, n: int):
        """A matplotlib Figure of the model on n validation inputs for TensorBoard, or None."""

    def warm_batches(self, batch_size: int) -> list[Any]:
        """Training batches of every shape an epoch has, to compile before timing (`ram bench`)."""

    def probe(self, model: torch.nn.Module, batch_size: int, device: torch.device) -> Callable[[], int]:
        """One evaluation step on `batch_size` inputs, as evaluation runs it; returns the inputs it took."""


# The tasks register themselves (ram.config.register_task) as they are imported.
from . import catch, classify, images, multi, strings  # noqa: E402
from .catch import CatchConfig, CatchGame, catch_games, catch_rate  # noqa: E402
from .classify import (  # noqa: E402
    Classification,
    ClassifyConfig,
    DigitsConfig,
    classification_loss,
    evaluate,
    predict,
    test_report,
)
from .images import ImagesConfig, OwnImages  # noqa: E402


def make_task(cfg: RunConfig, *, data: Any = None, progress: bool = True) -> Task:
    """The task of cfg.task.dataset, ready to train or report; data: what it reads, when the caller has it (`Task`)."""
    return task_of(cfg.task.dataset)(cfg, data=data, progress=progress)


__all__ = ["CatchConfig", "CatchGame", "Classification", "ClassifyConfig", "DigitsConfig", "ImagesConfig", "OwnImages",
           "catch_games", "Task", "catch", "catch_rate", "classification_loss", "classify", "evaluate", "images",
           "make_task", "predict", "seeded", "test_report"]
