"""Your own images (`ram train --data PATH`): a folder of class folders or an .npz, classified as MNIST is.

The task owns the look at PATH. `configure` writes what `ram.data.images.inspect` found (classes, image size,
channels, counts) into the run config and hands the same `Source` on; `fit(cfg, out, data=source)` gives it to the
task, which reads its images from it, so the folder is listed once per run. Only a task made from a config alone (a
run folder evaluated, drawn or resumed) looks at the folder itself, and then checks that it still holds the classes
the run was made with.

Everything else (the batches, the hybrid loss, evaluation, the report, the pictures) is classification's
(`ram.tasks.classify.Classification`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import tyro

from ..config import ConfigError, Kind, RunConfig, _require, register_task
from ..data import DataError, TaskData
from ..data.images import Source, inspect, load, with_channels
from .classify import Classification, ClassifyConfig

__all__ = ["ImagesConfig", "OwnImages", "configure", "default_val_size", "opened"]


@dataclass(frozen=True, kw_only=True)
class ImagesConfig(ClassifyConfig):
    """Your own images, from the folder or .npz `ram train --data PATH` names: their classes, their size (the
    canvas) and the validation images are found there (`configure`), and they are moved and distorted as digits
    are."""

    dataset: tyro.conf.Suppress[str] = "images"
    source: tyro.conf.Suppress[str] = ""
    """The folder or .npz file they are read from (`ram.data.images`), as given to `ram train --data`."""
    class_names: tyro.conf.Suppress[tuple[str, ...]] = ()
    """The name of each label, from the folder names or the .npz."""
    test_fraction: float = 0.2
    """In a folder with no train/ and test/: the share of each class held out for testing, drawn with a fixed seed
    (the same images for every run on the same folder)."""

    def validate(self) -> None:
        """How many images there are is checked when they are read (`ram.data.images`)."""
        super().validate()
        _require(self.source != "", "source", self.source, "must name a folder or an .npz (`ram train --data PATH`)")
        _require(len(self.class_names) >= 2, "class_names", self.class_names, "a classifier needs at least 2")
        _require(len(set(self.class_names)) == len(self.class_names), "class_names", self.class_names,
                 "must be distinct")
        _require(self.canvas >= 1, "canvas", self.canvas, "must be >= 1")
        _require(self.val_size >= 1, "val_size", self.val_size, "must be >= 1")
        _require(self.train_size >= 0, "train_size", self.train_size, "must be >= 0")
        _require(0 < self.test_fraction < 1, "test_fraction", self.test_fraction, "must be in (0, 1)")


def default_val_size(n: int) -> int:
    """The validation images taken from n training images when --val-size is not given: a sixth, at most 10,000
    (MNIST's 10,000 of 60,000)."""
    return min(10_000, n // 6)


def configure(cfg: RunConfig, source: Source, *, val_size: int | None = None,
              progress: bool = True) -> tuple[RunConfig, Source]:
    """`cfg`'s recipe trained on `source`: its classes, channels and image size in the config, validated; and the
    source with its channels, for the task to read its images from.

    val_size: validation images taken from the end of the training set; None takes `default_val_size`. A glimpse
    larger than the images is an error naming both and where the size came from, raised before any image but the
    first is read.
    """
    n = source.n_train
    val = val_size if val_size is not None else default_val_size(n)
    if not 1 <= val < n:
        raise ConfigError(f"val_size = {val}: must be in 1..{n - 1}, the {n} training images of {source.path} less at "
                          f"least one to train on" + ("" if val_size is not None else " (give --val-size)"))
    task = dataclasses.replace(cfg.task.for_dataset("images"), source=str(source.path), canvas=source.size,
                               class_names=source.classes, val_size=val)
    model = dataclasses.replace(cfg.model, image_size=source.size, channels=source.channels or 1,
                                classes=len(source.classes))
    try:  # the glimpses fit, before the headers are read
        cfg = dataclasses.replace(cfg, task=task, model=model).validate()
    except ConfigError as e:
        raise ConfigError(f"{e} (image_size = {source.size}: {source.size_from})") from None
    source = with_channels(source, progress=progress)
    # Grey (1) or RGB (3), which every check just passed takes alike (`OwnImages.check_run`): not validated again.
    return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, channels=source.channels)), source


def opened(task: ImagesConfig) -> Source:
    """The images a run config names, as its folder (or .npz) holds them now; it must still hold its classes."""
    source = inspect(task.source, size=task.canvas, test_fraction=task.test_fraction)
    if source.classes != task.class_names:
        raise DataError(f"data = {task.source!r} now holds the classes {', '.join(source.classes)}; the run was made "
                        f"with {', '.join(task.class_names)}")
    return source


@register_task
class OwnImages(Classification):
    """Classification of your own images: their class names, grey or RGB, any size; the rest as MNIST's."""

    datasets = ("images",)
    Config = ImagesConfig

    def __init__(self, cfg: RunConfig, *, data: TaskData | Source | None = None, progress: bool = True):
        """data: the images already read (a TaskData), or the source `configure` found them in; None looks at the
        folder the config names (`opened`)."""
        if not isinstance(data, TaskData):
            source = data if data is not None else opened(cfg.task)
            data = TaskData(cfg.task, seed=cfg.train.seed, digits=load(source, progress=progress))
        super().__init__(cfg, data=data, progress=progress)

    @staticmethod
    def check_run(cfg: RunConfig) -> None:
        """Grey or RGB, and every glimpse scale within the image, before any image is decoded."""
        m, t = cfg.model, cfg.task
        _require(m.channels in (1, 3), "channels", m.channels, "your images are grey (1) or RGB (3)")
        if m.about.glimpses:
            largest = m.patch_size * 2 ** (m.scales - 1)
            _require(largest <= t.canvas, "patch_size", m.patch_size,
                     f"with scales = {m.scales}, the largest glimpse patch_size * 2**(scales - 1) = {largest} is "
                     f"larger than the {t.canvas}x{t.canvas} images: use a smaller --patch-size or fewer "
                     "--scales, or a larger --image-size")
        Classification.check_classifier(cfg)

    @staticmethod
    def labels(t: ImagesConfig, kind: Kind) -> tuple[str, ...]:
        return t.class_names

    @staticmethod
    def title(t: ImagesConfig) -> str:
        return "images"

    @staticmethod
    def about(cfg: RunConfig) -> str:
        """The folder's or .npz's name, not its path."""
        m, t = cfg.model, cfg.task
        return (f"{Path(t.source).stem} ({len(t.class_names)} classes) {t.canvas}x{t.canvas}, "
                f"{m.looks(cfg.policy.noun)}")
