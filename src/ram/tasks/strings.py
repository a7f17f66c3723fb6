"""Strings of any length read in turn: the DRAM paper's house numbers (Ba, Mnih & Kavukcuoglu 2015, section 4.2).

- `MnistNumbers` (mnist-numbers): strings of 1 to 5 MNIST digits in a row, with random spacing, size and vertical
  offset, cropped as the paper cropped SVHN (`ram.data.numbers`): the stand-in these machines can make.
- `HouseNumbers` (svhn): a folder a user has, `ram train --preset svhn --data DIR`: SVHN's own format 1 (DIR/train
  and DIR/test, each its PNGs and digitStruct.mat), or any folder of images with a labels.csv in each of train/ and
  test/ (`ram.data.strings`). DIR/extra, when there, trains too (SVHN's 202k easier strings, which Goodfellow et al.
  2014 and the DRAM paper trained on; `--extra False` leaves it out); validation strings are the last of train/ only.
  Strings longer than the model's `longest` are left out (SVHN's training set has one of 6 digits; Goodfellow et
  al. left such strings out too), and the run's first lines say how many strings each folder gave and how many were
  left out.

The answer is the string, then an end-of-sequence label (EOS, the class after the last name): a model emits
`longest` + 1 labels, and those after the EOS it is taught are PAD, ignored by the loss. A string is right when every
label up to and including its EOS is ("error", the paper's measure: a wrong length is wrong); "digit_error" is the
share of all the test strings' digits not read at their place, "length_error" that of strings read at a wrong length.
Only a model that emits labels in turn reads a string (`Kind.sequence`: DRAM, and the multi-head convnet of
`ram.multihead`, whose length head and digit heads are read as such a sequence). Everything else (the loss, the
reports, the pictures) is `ram.tasks.multi.MultiDigitTask`'s.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
import tyro

from ..config import KINDS, ConfigError, Kind, RunConfig, TaskConfig, _require, register_task
from ..data import DataError, Digits, mnist
from ..data.multi import EOS, PAD
from ..data.numbers import NumberData, Shape, place_strings
from ..data.strings import CROP, StringFile, StringImages, Strings, pack_strings, read_folder, squares
from .multi import MultiDigitTask

DIGITS = tuple(str(d) for d in range(10))


@dataclass(frozen=True, kw_only=True)
class NumbersConfig(TaskConfig):
    """House numbers made of MNIST digits: strings of shortest..longest digits in a row, drawn afresh for every
    training batch from the training digits, once for validation and test (`ram.data.numbers`)."""

    dataset: tyro.conf.Suppress[str] = "mnist-numbers"
    canvas: tyro.conf.Suppress[int] = CROP
    longest: tyro.conf.Suppress[int] = 5
    """Most digits in a string; the model emits this many labels and an EOS."""
    shortest: int = 1
    """Fewest digits in a string (each length from shortest to longest equally likely)."""
    min_size: int = 20
    """Smallest side, in pixels, a 28x28 digit is resized to before the string is cropped (each digit its own)."""
    max_offset: int = 4
    """Largest move of a digit up or down from the row's middle, in pixels before the crop."""
    min_gap: int = -6
    """Smallest gap between the slots of two digits in a row (negative: closer; their blank margins overlap)."""
    max_gap: int = 4
    """Largest gap between the slots of two digits in a row."""
    val_size: tyro.conf.Suppress[int] = 10_000
    """Digits taken from the end of MNIST's training set to make the validation strings."""
    train_size: int = 0
    """Make training strings of the first N training digits only; 0 uses all of them. For smoke tests."""

    @property
    def shape(self) -> Shape:
        return Shape(shortest=self.shortest, longest=self.longest, min_size=self.min_size,
                     max_offset=self.max_offset, min_gap=self.min_gap, max_gap=self.max_gap)

    def validate(self) -> None:
        super().validate()
        try:
            self.shape.validate()
        except ValueError as e:
            raise ConfigError(str(e)) from None
        _require(self.canvas == CROP, "canvas", self.canvas, f"strings are cropped to {CROP}x{CROP}")
        _require(0 < self.val_size < 60_000, "val_size", self.val_size, "must be in 1..59999")
        n_train = 60_000 - self.val_size
        _require(0 <= self.train_size <= n_train, "train_size", self.train_size,
                 f"must be in 0..{n_train} (0 = all {n_train} training digits left by val_size {self.val_size})")


@dataclass(frozen=True, kw_only=True)
class HouseNumbersConfig(TaskConfig):
    """Strings read from a folder you have (`ram train --preset svhn --data DIR`): DIR/train and DIR/test, each
    SVHN's PNGs and digitStruct.mat, or images and a labels.csv, and DIR/extra, when there, to train on too. Each
    image is cut to the box around its digits enlarged by 30% (the whole image with labels.csv), resized to 64x64
    (once: the squares are kept in the data cache), and cropped to 54x54: at random for every training batch, at the
    centre for validation and test."""

    dataset: tyro.conf.Suppress[str] = "svhn"
    canvas: tyro.conf.Suppress[int] = CROP
    source: tyro.conf.Suppress[str] = ""
    """The folder given to `ram train --data`."""
    class_names: tyro.conf.Suppress[tuple[str, ...]] = DIGITS
    """The name of each label (the digits for SVHN; a labels.csv's names, sorted); EOS is the class after them."""
    longest: tyro.conf.Suppress[int] = 5
    """Most labels in a string the model emits (and an EOS); longer strings are left out."""
    val_size: tyro.conf.Suppress[int] = 1
    """Images taken from the end of the training set to validate (`ram train --val-size`; default a tenth)."""
    train_size: int = 0
    """Train on the first N training images only (train/'s, then extra/'s); 0 uses all of them. For smoke tests."""
    extra: bool = True
    """Train on DIR/extra too when the folder has one (SVHN's 202k easier strings, as Goodfellow et al. 2014 and the
    DRAM paper did); validation strings still come from train/ only. False leaves it out."""

    def validate(self) -> None:
        super().validate()
        _require(self.source != "", "source", self.source,
                 "give --data DIR: a folder whose train/ and test/ hold SVHN's PNGs and digitStruct.mat, or images "
                 "and a labels.csv")
        _require(len(self.class_names) >= 1 and len(set(self.class_names)) == len(self.class_names), "class_names",
                 self.class_names, "must be one or more distinct names")
        _require(self.canvas == CROP, "canvas", self.canvas, f"strings are cropped to {CROP}x{CROP}")
        _require(1 <= self.longest <= 32, "longest", self.longest, "must be in 1..32")
        _require(self.val_size >= 1, "val_size", self.val_size, "must be >= 1")
        _require(self.train_size >= 0, "train_size", self.train_size, "must be >= 0")


def string_score(predicted: torch.Tensor, labels: torch.Tensor, eos: int) -> dict[str, Any]:
    """How right the emitted labels predicted int64 [B, K] are as strings, for labels [B, >=K] (digits, eos, PAD).

    right [B]: every label up to and including the EOS is. digits: (right digits at their place [B], digits [B]).
    length [B]: the first EOS emitted is where the string ends (no EOS: K labels long). "long{n}" for each length n
    of the strings given: (right [B] where the string is n labels long, strings of n labels [B])."""
    K = predicted.shape[1]
    y = labels[:, :K]
    real = y != PAD
    right = ((predicted == y) | ~real).all(1).float()
    digits = real & (y != eos)
    said = predicted == eos
    length = torch.where(said.any(1), said.int().argmax(1), K)
    true_length = digits.sum(1)
    by_length = {f"long{n}": (right * (true_length == n), (true_length == n).float())
                 for n in true_length.unique().tolist()}
    return {"right": right, "digits": (((predicted == y) & digits).sum(1).float(), true_length.float()),
            "length": (length == true_length).float(), **by_length}


class StringTask(MultiDigitTask):
    """A string of labels, then EOS, read by a model that emits `longest` + 1 labels of len(names) + 1 classes."""

    objects_word = "strings"
    inputs = "strings"
    headline_parts = True

    @staticmethod
    def names(t: TaskConfig) -> tuple[str, ...]:
        """The name of each label but EOS."""
        raise NotImplementedError

    @classmethod
    def check_run(cls, cfg: RunConfig) -> None:
        m, t = cfg.model, cfg.task
        readers = ", ".join(name for name, kind in KINDS.items() if kind.sequence)
        _require(m.about.sequence, "model", m.kind,
                 f"{t.dataset} is answered by a string of any length: a model that emits labels in turn ({readers})")
        _require(m.actions == 0, "actions", m.actions, f"{t.dataset} takes no actions")
        answers = cls.answers(t, m.about)
        _require(m.classes == answers["classes"], "classes", m.classes,
                 f"{t.dataset}'s labels have {answers['classes']} classes ({len(cls.names(t))} and EOS)")
        _require(m.outputs == answers["outputs"], "outputs", m.outputs,
                 f"{t.dataset} is read as up to {t.longest} labels and an EOS")

    @classmethod
    def answers(cls, t: TaskConfig, kind: Kind) -> dict[str, int]:
        return {"classes": len(cls.names(t)) + 1, "outputs": t.longest + 1} if kind.sequence else {}

    @classmethod
    def labels(cls, t: TaskConfig, kind: Kind) -> tuple[str, ...]:
        return (*cls.names(t), "EOS")

    @property
    def eos(self) -> int:
        return len(self.names(self.cfg.task))

    def spell(self, row: list[int]) -> str:
        """The labels up to the first EOS as text: digits run together ("314"), other names spaced."""
        names = self.names(self.cfg.task)
        said = [names[c] for c in row[: row.index(self.eos)] if 0 <= c < self.eos] if self.eos in row else [
            names[c] for c in row if 0 <= c < self.eos]
        return ("" if all(len(n) == 1 for n in names) else " ").join(said)

    def truth(self, strings: Strings) -> list[str]:
        return [self.spell(row) for row in strings.labels.tolist()]

    def targets(self, strings: Strings) -> torch.Tensor:
        return strings.labels  # [B, longest + 1]: the string, EOS, PAD

    def score(self, predicted: torch.Tensor, strings: Strings) -> dict[str, Any]:
        return string_score(predicted, strings.labels, self.eos)

    def _texts(self) -> dict[str, Any]:
        return {"answered": lambda p: [self.spell(row) for row in p.tolist()], "truth": self.truth,
                "right": lambda p, c: self.score(p, c)["right"].bool()}


@register_task
class MnistNumbers(StringTask):
    name = "mnist-numbers"
    datasets = (name,)
    Config = NumbersConfig

    def __init__(self, cfg: RunConfig, *, data: Digits | None = None, progress: bool = True):
        """data: the MNIST digits the strings are made of, read when None."""
        self._setup(cfg)
        t = cfg.task
        digits = data if data is not None else mnist.load("mnist", progress=progress)
        self.data = NumberData(digits, seed=cfg.train.seed, shape=t.shape, val_size=t.val_size,
                               train_size=t.train_size)

    @staticmethod
    def names(t: TaskConfig) -> tuple[str, ...]:
        return DIGITS

    @classmethod
    def check_run(cls, cfg: RunConfig) -> None:
        _require(cfg.model.channels == 1, "channels", cfg.model.channels, f"{cls.name} strings are grey")
        super().check_run(cfg)

    @classmethod
    def title(cls, t: TaskConfig) -> str:
        return f"strings of {t.shortest}-{t.longest} digits on {t.canvas}x{t.canvas}"

    # A person's drawing (the page) ---------------------------------------------------------------------------------
    @staticmethod
    def drawings(t: NumbersConfig) -> range:
        """Digits a person may write for one string: as many as its strings hold."""
        return range(t.shortest, t.longest + 1)

    @staticmethod
    def place_drawn(digits: torch.Tensor, t: NumbersConfig, *, pool: torch.Tensor | None,
                    gen: torch.Generator) -> torch.Tensor:
        """Drawn digits uint8 [k, 28, 28] in reading order, laid out in a row and cropped as the test strings are
        (`data.numbers.place_strings`), uint8 [54, 54]. pool: unused, as strings have no clutter."""
        return place_strings(digits[None], shape=t.shape, gen=gen)[0]

    @staticmethod
    def clutter_pool(t: NumbersConfig) -> None:
        """None: strings have no clutter."""
        return None


class Folder(NamedTuple):
    """One split folder of strings as `look` found it."""

    path: Path
    entries: list[StringFile]  # its strings of at most `longest` labels, in its label file's order
    left_out: int  # its strings of more labels than that


class Found(NamedTuple):
    """What a look at a folder of strings found (`HouseNumbers.configure`), for the task to read its images from."""

    train: Folder
    extra: Folder | None  # DIR/extra, when it is there and the task reads it
    test: Folder
    names: tuple[str, ...]
    channels: int

    def lines(self, t: HouseNumbersConfig) -> list[str]:
        """What a run of the task section t says first: how many strings each folder gave to training, validation
        and test, and how many were left out for their length."""
        root = self.train.path.parent
        n_train = len(self.train.entries) - t.val_size
        if self.extra is not None:
            trained = f"{n_train:,} from train/ and {len(self.extra.entries):,} from extra/"
            n_train += len(self.extra.entries)
        else:
            why = "--extra False" if (root / "extra").is_dir() and not t.extra else "no extra/ folder"
            trained = f"{n_train:,} from train/ ({why})"
        if 0 < t.train_size < n_train:
            trained += f", the first {t.train_size:,} of them (--train-size)"
        folders = [f for f in (self.train, self.extra, self.test) if f is not None]
        left = sum(f.left_out for f in folders)
        where = ", ".join(f"{f.left_out:,} in {f.path.name}/" for f in folders if f.left_out)
        return [f"svhn: {root}: training strings {trained}; validation {t.val_size:,} (the last of train/); "
                f"test {len(self.test.entries):,} (test/)",
                f"svhn: {left:,} string{'s' * (left != 1)} of more than {t.longest} labels left out"
                + (f" ({where})" if where else "")]


def look(root: str | Path, *, longest: int, extra: bool = True, progress: bool = False) -> Found:
    """The label files of root/train, root/test and (when `extra` and it is there) root/extra read and checked (each
    named file present, each label known), before any image is decoded. DataError naming the file and the entry at
    fault."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data = {str(root)!r}: no such folder")
    splits = ["train", "test"] + (["extra"] if extra and (root / "extra").is_dir() else [])
    read = {}
    for split in splits:
        if not (root / split).is_dir():
            raise DataError(f"data = {str(root)!r}: has no {split}/ folder (SVHN's train/ and test/, each its PNGs "
                            "and digitStruct.mat, or images and a labels.csv)")
        read[split] = read_folder(root / split, progress=progress)
    trained = [e for split in ("train", "extra") if split in read for e in read[split][1]]
    if read["train"][0].name == "digitStruct.mat":
        names = DIGITS
    else:
        names = tuple(sorted({label for e in trained for label in e.labels}))
    for split, (file, entries) in read.items():
        for i, e in enumerate(entries, start=1):
            unknown = [label for label in e.labels if label not in names]
            if unknown:
                raise DataError(f"{file}: entry {i} ({e.name}): label {unknown[0]!r} is in no training string")
    folders = {}
    for split, (file, entries) in read.items():
        kept = [e for e in entries if len(e.labels) <= longest]
        folders[split] = Folder(file.parent, kept, len(entries) - len(kept))
    if not folders["train"].entries or not folders["test"].entries:
        raise DataError(f"data = {str(root)!r}: no string of at most {longest} labels in train/ or test/")
    from PIL import Image

    with Image.open(folders["train"].path / folders["train"].entries[0].name) as im:
        channels = 1 if im.mode in ("1", "L", "I;16", "I", "F") else 3
    return Found(folders["train"], folders.get("extra"), folders["test"], names, channels)


def _strings(folder: Folder, names: tuple[str, ...], *, longest: int, channels: int, progress: bool) -> Strings:
    index = {n: i for i, n in enumerate(names)}
    labels = pack_strings([[index[label] for label in e.labels] for e in folder.entries], width=longest + 1,
                          eos=len(names))
    return Strings(squares(folder.path, folder.entries, channels=channels, progress=progress), labels,
                   torch.arange(len(folder.entries))[:, None])


@register_task
class HouseNumbers(StringTask):
    name = "svhn"
    datasets = (name,)
    Config = HouseNumbersConfig

    def __init__(self, cfg: RunConfig, *, data: Found | None = None, progress: bool = True):
        """data: what `configure` found in the folder; None looks at the folder the config names."""
        self._setup(cfg)
        t = cfg.task
        found = data if data is not None else look(t.source, longest=t.longest, extra=t.extra, progress=progress)
        if found.names != t.class_names:
            raise DataError(f"data = {t.source!r} now holds the labels {', '.join(found.names)}; the run was made "
                            f"with {', '.join(t.class_names)}")
        read = dict(names=found.names, longest=t.longest, channels=cfg.model.channels, progress=progress)
        extra = _strings(found.extra, **read) if found.extra is not None else None
        self.data = StringImages(_strings(found.train, **read), _strings(found.test, **read), extra=extra,
                                 seed=cfg.train.seed, val_size=t.val_size, train_size=t.train_size)

    @staticmethod
    def configure(cfg: RunConfig, path: str, *, val_size: int | None = None,
                  progress: bool = True) -> tuple[RunConfig, Found, list[str]]:
        """cfg trained on the folder `path`: its label names, channels and validation images in the config,
        validated; what was found there for the task; and the lines saying how many strings each folder gave.
        val_size None takes a tenth of train/'s strings."""
        t = cfg.task
        found = look(path, longest=t.longest, extra=t.extra, progress=progress)
        n = len(found.train.entries)
        val = val_size if val_size is not None else max(1, n // 10)
        if not 1 <= val < n:
            raise ConfigError(f"val_size = {val}: must be in 1..{n - 1}, the {n} strings of {path}/train less at "
                              "least one to train on")
        task = dataclasses.replace(t, source=str(Path(path)), class_names=found.names, val_size=val)
        model = dataclasses.replace(cfg.model, channels=found.channels, classes=len(found.names) + 1)
        return dataclasses.replace(cfg, task=task, model=model).validate(), found, found.lines(task)

    @staticmethod
    def names(t: TaskConfig) -> tuple[str, ...]:
        return t.class_names

    @classmethod
    def check_run(cls, cfg: RunConfig) -> None:
        _require(cfg.model.channels in (1, 3), "channels", cfg.model.channels, "images are grey (1) or RGB (3)")
        super().check_run(cfg)

    @classmethod
    def title(cls, t: TaskConfig) -> str:
        return f"strings of {Path(t.source).name or t.source}, {t.canvas}x{t.canvas}"


__all__ = ["EOS", "HouseNumbers", "HouseNumbersConfig", "MnistNumbers", "NumbersConfig", "StringTask", "look",
           "string_score"]
