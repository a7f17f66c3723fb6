"""Run configuration: what data, which model, how to train, what loss. Frozen dataclasses, validated where they are
made, and the schema of `ram train`'s flags (ram.flags). The tasks register here what their configs need
(`register_task`), and what each kind of model is lives in one table (`KINDS`).

A run is fully described by a `RunConfig`; it is written next to every run and into every checkpoint, so a model is
rebuilt from its checkpoint and never from the command line.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import typing
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal

import tyro


class ConfigError(ValueError):
    """A bad setting. The message names the field and the value."""


def _require(ok: bool, name: str, value: Any, why: str) -> None:
    if not ok:
        raise ConfigError(f"{name} = {value!r}: {why}")


@functools.cache
def _hints(cls: type) -> dict[str, tuple[str, Any]]:
    """Each field's name as users know it (its flag's, `tyro.conf.arg(name=...)`: model, not kind) and its type,
    without tyro's markers."""
    hints = {}
    for name, kind in typing.get_type_hints(cls, include_extras=True).items():
        known = name
        if typing.get_origin(kind) is Annotated:
            known = next((m.name for m in kind.__metadata__ if isinstance(getattr(m, "name", None), str)), name)
            kind = typing.get_args(kind)[0]
        hints[name] = known, kind
    return hints


def _check_types(cfg: Any) -> None:
    """Every field holds its declared type, and a Literal field one of its values: a config read from JSON may hold
    anything, and a string where a number belongs would otherwise surface as a TypeError deep inside training."""
    for f in dataclasses.fields(cfg):
        (name, kind), value = _hints(type(cfg))[f.name], getattr(cfg, f.name)
        if typing.get_origin(kind) is Literal:
            allowed = typing.get_args(kind)
            quoted = [repr(v) for v in allowed]
            either = f"{', '.join(quoted[:-1])} or {quoted[-1]}" if len(quoted) > 1 else quoted[0]
            _require(value in allowed, name, value, f"must be {either}")
        elif kind is int:
            _require(isinstance(value, int) and not isinstance(value, bool), name, value, "must be an integer")
        elif kind is float:
            _require(isinstance(value, (int, float)) and not isinstance(value, bool), name, value, "must be a number")
        elif kind is str:
            _require(isinstance(value, str), name, value, "must be a string")
        elif kind is bool:
            _require(isinstance(value, bool), name, value, "must be true or false")
        elif kind == tuple[str, ...]:
            _require(isinstance(value, tuple) and all(isinstance(v, str) for v in value), name, value,
                     "must be a tuple of strings")
        elif kind == tuple[int, ...]:
            _require(isinstance(value, tuple) and all(isinstance(v, int) and not isinstance(v, bool) for v in value),
                     name, value, "must be a tuple of integers")


TASKS: dict[str, Any] = {}
"""Each dataset name -> the task class that learns it, an implementation of the one protocol `ram.tasks.Task`. Filled
by `register_task` as ram.tasks is imported (ram's __init__ imports it), so the config knows every task without
importing one. The config asks a task only for its static part: `datasets`, its section `Config` (a `TaskConfig`),
`classifies`, `check_run`, `labels` and `title`."""


def register_task(task: type) -> type:
    """Class decorator: the task serves `task.datasets`, with the settings of its section `task.Config`. A new task is
    one module with one such class."""
    if not (isinstance(getattr(task, "Config", None), type) and issubclass(task.Config, TaskConfig)):
        raise ValueError(f"task {task.__name__} has no Config, the TaskConfig section of its settings")
    for name in task.datasets:
        if name in TASKS and TASKS[name] is not task:
            raise ValueError(f"dataset {name!r} is served by {TASKS[name].__name__} already")
        TASKS[name] = task
    return task


def task_of(dataset: str) -> Any:
    """The task class (a `ram.tasks.Task`) that learns `dataset`; a ConfigError naming the known ones if none."""
    if dataset not in TASKS:
        _require(False, "dataset", dataset, f"must be one of {', '.join(sorted(TASKS))}")
    return TASKS[dataset]


def _registry(kind: str, names: str) -> tuple[dict[str, Any], Any]:
    """A registry of a seam's variants by name, and the class decorator that fills it (`register(name)`).

    Registering rebinds this module's `names` (the annotation of the config field that names a variant, a string
    under PEP 563, read when `_check_types` runs and when tyro builds the command line) to a Literal of every
    registered name, so the field's choices, help and refusals are the registry's, written once."""
    table: dict[str, Any] = {}

    def register(name: str):
        def add(variant: type) -> type:
            if name in table and table[name] is not variant:
                raise ValueError(f"{kind} {name!r} is {table[name].__name__} already")
            table[name] = variant
            globals()[names] = Literal[tuple(table)]
            _hints.cache_clear()
            return variant
        return add

    return table, register


PolicyName = str
"""The registered policies' names as a Literal once there are any (`_registry`): `ram train --policy`'s choices."""
POLICIES, register_policy = _registry("policy", "PolicyName")
"""Each location policy by its name (`PolicyConfig.kind`, `ram train --policy`), filled by `@register_policy(name)`
as ram.policies is imported. A policy class carries its config section as `Config` (a `PolicyConfig`), and the model
builds it with `from_config(model, policy)` (`ram.policies` says what else)."""

GlimpseNetName = str
"""`ModelConfig.glimpse_net`'s type: a Literal of the registered glimpse nets' names (`_registry`)."""
GLIMPSE_NETS, register_glimpse_net = _registry("glimpse_net", "GlimpseNetName")
"""What enters the core, by `ModelConfig.glimpse_net`, filled by `@register_glimpse_net(name)` as ram.nets is
imported: `from_config(cfg)` builds one, forward(patches [B, P], locations [B, 2]) -> [B, out_size]."""


@dataclass(frozen=True)
class Kind:
    """What a model kind is, asked in one place (`ModelConfig.about`) rather than listed in every file."""

    glimpses: bool
    """It reads the image through the glimpse loop, one glimpse a step (its episodes have T locations)."""
    drawn: bool
    """Where it looks is worth drawing: its glimpses go where a policy (learned or random) puts them."""
    classifies: bool
    """It classifies images."""
    plays: bool
    """It plays a game (an action head)."""
    compared: bool
    """One of the comparison models (`ram.baselines`), not RAM itself: a run of it is named after it too
    (runs/mnist-fc-s0, beside RAM's runs/mnist-g6-s0)."""
    sequence: bool = False
    """It emits a sequence of labels, one after each group of glimpses (DRAM), rather than one answer at the end."""
    section: Any = None
    """The class of its model section, a `NetConfig`: None for `ModelConfig`, RAM's, which its comparison models
    share. A model of another shape brings its own (`register_model_kind`)."""

    @property
    def settings(self) -> type:
        return self.section or ModelConfig


KINDS: dict[str, Kind] = {
    "ram": Kind(glimpses=True, drawn=True, classifies=True, plays=True, compared=False),
    "fc": Kind(glimpses=False, drawn=False, classifies=True, plays=False, compared=True),
    "convnet": Kind(glimpses=False, drawn=False, classifies=True, plays=False, compared=True),
    "random-glimpses": Kind(glimpses=True, drawn=True, classifies=True, plays=False, compared=True),
    "screen": Kind(glimpses=True, drawn=False, classifies=False, plays=True, compared=True),
    "random-agent": Kind(glimpses=False, drawn=False, classifies=False, plays=True, compared=True),
}
ModelKind = Literal["ram", "fc", "convnet", "random-glimpses", "screen", "random-agent"]
"""The kinds by name, for the command line's choices (the names of KINDS, rebound by `register_model_kind`)."""


def register_model_kind(name: str, kind: Kind) -> None:
    """A new kind of model, `--model name`: what it is, and the section its settings are (`Kind.section`). Its
    module registers the network itself with `ram.models.MODELS`."""
    global ModelKind
    if name in KINDS and KINDS[name] != kind:
        raise ValueError(f"model kind {name!r} is registered already")
    KINDS[name] = kind
    ModelKind = Literal[tuple(KINDS)]
    _hints.cache_clear()


@dataclass(frozen=True, kw_only=True)
class TaskConfig:
    """What the model sees: the settings of one task. Each task declares its own section, a subclass of this one that
    it registers as its `Config` (`register_task`): `ram.tasks.classify.DigitsConfig` places MNIST and Fashion-MNIST
    digits on a canvas, `ram.tasks.images.ImagesConfig` reads your own images, `ram.tasks.catch.CatchConfig` plays
    the game. A run holds the settings of its own task and no other's. `dataset` names what is learned, and is
    written beside the settings so that a stored config reads back as the same section."""

    dataset: tyro.conf.Suppress[str] = ""
    """What is learned, by the name a task registers (`register_task`): mnist and fashion are digits on a canvas;
    images are your own (`ram train --data PATH`); catch is the paper's game (`ram.envs.Catch`)."""
    canvas: tyro.conf.Suppress[int] = 28
    """Side of the square image the model reads, which its image_size must match."""

    def validate(self) -> None:
        """This task's settings; each task's section adds its own checks."""
        _check_types(self)
        task = task_of(self.dataset)
        _require(type(self) is task.Config, "dataset", self.dataset,
                 f"its settings are a {task.Config.__name__}, not a {type(self).__name__}")

    @staticmethod
    def of(d: dict) -> "TaskConfig":
        """The section a stored dict holds (`dataset` picks the task): a ConfigError naming an unknown one. JSON holds
        a tuple as a list: it is read back as a tuple."""
        cls = task_of(d.get("dataset")).Config
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    def for_dataset(self, dataset: str) -> "TaskConfig":
        """This section for the task that learns `dataset`: renamed when that task's section is this one's (mnist and
        fashion), else that task's section holding every setting of this one it has too (a preset's shift and
        train_size go with it to your own images), and its defaults for the rest."""
        cls = task_of(dataset).Config
        shared = _field_names(cls) & _field_names(type(self)) - {"dataset"}
        return cls(**{name: getattr(self, name) for name in shared}, dataset=dataset)

    @property
    def classifies(self) -> bool:
        """Classification of images (a label per image), rather than a game with a reward at its end."""
        return task_of(self.dataset).classifies

    @property
    def name(self) -> str:
        """What the images are, in a word: centred, translated, cluttered, images, catch."""
        return task_of(self.dataset).title(self)


@dataclass(frozen=True, kw_only=True)
class NetConfig:
    """The model section: what every kind of model has (what it reads and what it answers). Each kind's own section
    derives from it: `GlimpseConfig` adds the glimpse sensor, and `ModelConfig` (RAM and the comparison models that
    take glimpses) and DRAM's `ram.dram.DramConfig` derive from that; `WholeImageConfig` is fc's and convnet's. A
    model of another shape registers its own with its kind (`register_model_kind`), so a run holds the settings of its
    own model and no other's."""

    kind: Annotated[ModelKind, tyro.conf.arg(name="model")] = "ram"
    """ram, or a baseline: fc, convnet and random-glimpses classify; screen (a glimpse of the whole frame every step)
    and random-agent (uniform moves) play Catch. dram: several objects (the Deep Recurrent Attention Model); multihead:
    strings of digits read whole (Goodfellow et al.'s multi-head convnet)."""
    image_size: tyro.conf.Suppress[int] = 28
    """Side of the square images (the task's canvas)."""
    channels: tyro.conf.Suppress[int] = 1
    classes: tyro.conf.Suppress[int] = 10
    actions: tyro.conf.Suppress[int] = 0
    """Moves the agent makes after each glimpse, from a softmax head on the core state (Catch: 3, left, stay,
    right); 0 for classification."""

    @property
    def about(self) -> Kind:
        """What this kind of model is (`KINDS`): whether it takes glimpses, classifies, plays."""
        return KINDS[self.kind]

    def require_drawn(self, field: str, value: Any) -> None:
        """Refuse a picture of a model whose gaze is not worth drawing (`Kind.drawn`): the one ConfigError every
        picture asks for, naming the setting that asked for it (`field = value`)."""
        if not self.about.drawn:
            seen = "image" if self.classes else "screen"
            raise ConfigError(f"{field} = {value!r}: a {self.kind} model reads the whole {seen} and takes no glimpses, "
                              "so there is nothing to draw; pictures need a ram or random-glimpses model")

    def looks(self, noun: str = "glimpses") -> str:
        """How it reads an image, in a few words: "6 glimpses" (noun: its policy's), or "the whole image"."""
        return "the whole image"

    def validate(self) -> None:
        """The settings every model has; a section of its own checks its own after these (calling this first)."""
        _check_types(self)
        _require(self.kind in KINDS, "model", self.kind, f"must be one of {', '.join(KINDS)}")
        _require(type(self) is KINDS[self.kind].settings, "model", self.kind,
                 f"its settings are a {KINDS[self.kind].settings.__name__}, not a {type(self).__name__}")
        for name in ("channels", "image_size"):
            _require(getattr(self, name) >= 1, name, getattr(self, name), "must be >= 1")
        _require(self.actions >= 0, "actions", self.actions, "must be >= 0")
        _require(self.classes >= 0, "classes", self.classes, "must be >= 0")
        _require(self.classes > 0 or self.actions > 0, "classes", self.classes,
                 "a model with no classes must have actions to take")
        # A config read from a file may hold any number, and hidden = 10**6 asks for terabytes before anything says so.
        for name, most in MODEL_LIMITS.items():
            if hasattr(self, name):
                _require(getattr(self, name) <= most, name, getattr(self, name), f"must be <= {most:,}")

    @staticmethod
    def of(d: dict) -> "NetConfig":
        """The section a stored dict holds (its `kind` picks the class): a ConfigError naming an unknown kind."""
        kind = d.get("kind", "ram")
        _require(kind in KINDS, "model", kind, f"must be one of {', '.join(KINDS)}")
        return KINDS[kind].settings(**_tuples(KINDS[kind].settings, d))


@dataclass(frozen=True, kw_only=True)
class WholeImageConfig(NetConfig):
    """fc and convnet, the paper's comparison models that read the whole image at once: no glimpse, no policy. Their
    layers are the paper's (`ram.baselines`), so the section holds only what the data gives."""

    kind: Annotated[ModelKind, tyro.conf.arg(name="model")] = "convnet"


@dataclass(frozen=True, kw_only=True)
class ConvNetConfig(WholeImageConfig):
    """The convnet's widths. The defaults are the paper's comparison convnet (8 and 16 filters, 256 units); the DRAM
    paper's sums convnet is 64 64 64 and 512."""

    conv_channels: tuple[int, ...] = (8, 16)
    """Filters of each convolutional layer: the first 10x10 at stride 5 on a canvas of 60 pixels or more (5x5 at
    stride 1 on a smaller one), the second 5x5 at stride 2, any later one 3x3 at stride 1, padded to keep its size."""
    hidden: int = 256
    """Units of the fully connected layer between the convolutions and the classes."""

    def validate(self) -> None:
        super().validate()
        _require(len(self.conv_channels) >= 1 and all(c >= 1 for c in self.conv_channels), "conv_channels",
                 self.conv_channels, "must be one or more positive filter counts")
        _require(len(self.conv_channels) <= 16 and max(self.conv_channels) <= 4096, "conv_channels",
                 self.conv_channels, "must be at most 16 layers of at most 4,096 filters")
        _require(self.hidden >= 1, "hidden", self.hidden, "must be >= 1")


@dataclass(frozen=True, kw_only=True)
class GlimpseConfig(NetConfig):
    """A model that reads the image through glimpses: the sensor's settings."""

    glimpses: int = 6
    """Glimpses per episode, T: the steps of the glimpse loop."""
    patch_size: int = 8
    """Side in pixels of the finest patch of a glimpse, the size every scale is brought down to."""
    scales: int = 1
    """Patches per glimpse, centred on the same point, each twice the side of the one before."""
    pool: Literal["mean", "max"] = "mean"
    """How the sensor brings a coarse scale down to patch_size: the mean of each block (the paper's band-limited
    retina) or its max (seed 002's Catch retina, which keeps a one-pixel ball bright at every scale)."""
    pad: Literal["zeros", "edge"] = "zeros"
    """What the sensor reads beyond the image's border: zeros (black), or edge, the nearest border pixel repeated
    (seed 002's retina pads by replication: a paddle in the bottom row then fills the rows below the screen too)."""
    pixel_mean: float = 0.0
    """The network reads each pixel x of an image in [0, 1] as (x - pixel_mean) / pixel_std, in the sensor's patches
    and the initial-location network's pooled image (seed 000 standardises by its training set's mean and std); 0 and
    1 read the image as it is. The pictures and `glimpses()` show the image itself."""
    pixel_std: float = 1.0
    """See pixel_mean."""

    def looks(self, noun: str = "glimpses") -> str:
        return f"{self.glimpses} {noun}"

    @property
    def glimpse_pixels(self) -> int:
        """Values the sensor reads per glimpse: scales x channels x patch x patch."""
        return self.scales * self.channels * self.patch_size**2

    def validate(self) -> None:
        super().validate()
        _require(self.glimpses >= 1, "glimpses", self.glimpses, "must be >= 1")
        _require(self.patch_size >= 1, "patch_size", self.patch_size, "must be >= 1")
        _require(
            self.patch_size <= self.image_size,
            "patch_size",
            self.patch_size,
            f"is larger than the {self.image_size}x{self.image_size} image",
        )
        _require(1 <= self.scales <= 8, "scales", self.scales, "must be in 1..8")
        _require(0 <= self.pixel_mean <= 1, "pixel_mean", self.pixel_mean,
                 "must be in [0, 1], the range of the pixels it is the mean of")
        _require(math.isfinite(self.pixel_std) and self.pixel_std > 0, "pixel_std", self.pixel_std,
                 "must be a positive number")


@dataclass(frozen=True, kw_only=True)
class ModelConfig(GlimpseConfig):
    """RAM's network, and the comparison models' that take glimpses (random-glimpses, screen, random-agent). Sizes
    default to the paper's classification RAM.

    The variants are settings, not forks: `glimpse_net="pixels"` with a saccade policy (the policy section) is the
    hard-attention model of seed 000 (discrete moves on a lattice, an initial-location network, the raw patch into
    the core), and `actions=3` adds the move head that plays Catch.
    """

    what_size: int = 128
    """h_g: the glimpse-content half of the glimpse net."""
    where_size: int = 128
    """h_l: the location half of the glimpse net."""
    glimpse_size: int = 256
    """g: the merged glimpse feature fed to the core."""
    core: Literal["rnn", "lstm", "gru"] = "rnn"
    hidden: int = 256
    state_dropout: float = 0.0
    """Probability of dropping a unit of the core state where the classifier reads it (the policies and baseline
    read it whole). Off in eval()."""
    glimpse_net: GlimpseNetName = "ram"
    """What enters the core. ram: the paper's glimpse network of patches and location. pixels: the raw patches,
    flattened (seed 000). pixels+where: the raw patches and the location (x, y)."""
    reinforce_core: bool = False
    """The reinforcement-learning losses also train the core and glimpse net: the policies and the baseline read the
    core state undetached, so REINFORCE and the baseline's regression reach it. Off is RAM's stop-gradient; a game
    without a classification loss (Catch) needs it on."""
    detach_location: bool = False
    """With reinforce_core, the location policy still reads a detached state: the core then learns from the moves'
    REINFORCE and the baseline's regression, not from the locations', whose gradient (scaled by 1/std^2) is large
    and noisy (Catch needs it: results/NOTES.md)."""

    def validate(self) -> None:
        super().validate()
        for name in ("what_size", "where_size", "glimpse_size", "hidden"):
            _require(getattr(self, name) >= 1, name, getattr(self, name), "must be >= 1")
        _require(0 <= self.state_dropout < 1, "state_dropout", self.state_dropout, "must be in [0, 1)")
        _require(self.state_dropout == 0 or self.classes > 0, "state_dropout", self.state_dropout,
                 "drops the state a classifier reads; a model with no classes (Catch) has none")


KINDS["fc"] = dataclasses.replace(KINDS["fc"], section=WholeImageConfig)
KINDS["convnet"] = dataclasses.replace(KINDS["convnet"], section=ConvNetConfig)

MODEL_LIMITS = {"glimpses": 1000, "image_size": 4096, "channels": 4, "classes": 100_000, "actions": 1000,
                "hidden": 16384, "what_size": 16384, "where_size": 16384, "glimpse_size": 16384}
"""The largest value of a model section's size: far above any model here (hidden 512, 100x100 images, 8 glimpses), far
below what would exhaust a machine's memory building it."""


@dataclass(frozen=True, kw_only=True)
class PolicyConfig:
    """Where the model looks next: the settings of one location policy. Each policy declares its own section, a
    subclass of this one that it registers as its `Config` (`ram.policies`: `GaussianPolicy.Config` is RAM's,
    `SaccadePolicy.Config` seed 000's), so a run holds the settings of its own policy and no other's. `kind` names
    the policy (`ram train --policy`), and is written beside its settings so that a stored config reads back as the
    same section."""

    kind: tyro.conf.Suppress[str] = ""
    noun: ClassVar[str] = "glimpses"
    """What its decisions are called, in the lines the CLI and the page print."""

    def validate(self, model: ModelConfig) -> None:
        """This policy's settings, and what they ask of the model they steer (its image and patch)."""
        _check_types(self)
        _require(self.kind in POLICIES, "policy", self.kind, f"must be one of {', '.join(sorted(POLICIES))}")
        _require(type(self) is POLICIES[self.kind].Config, "policy", self.kind,
                 f"its settings are a {POLICIES[self.kind].Config.__name__}, not a {type(self).__name__}")

    def describe(self) -> str:
        """A few words on the policy for `ram presets`."""
        return self.kind

    @staticmethod
    def of(d: dict) -> "PolicyConfig":
        """The section a stored dict holds (`kind` picks the policy): a ConfigError naming an unknown one."""
        kind = d.get("kind")
        _require(kind in POLICIES, "policy", kind, f"must be one of {', '.join(sorted(POLICIES))}")
        return POLICIES[kind].Config(**_tuples(POLICIES[kind].Config, d))


def _tuples(cls: type, d: dict) -> dict:
    """d with the lists JSON made of cls's tuple fields turned back into tuples (a wrong value is left for
    `_check_types` to name)."""
    hints = _hints(cls)
    return {k: tuple(v) if isinstance(v, list) and k in hints and typing.get_origin(hints[k][1]) is tuple else v
            for k, v in d.items()}


def require_positive(cfg: Any, *names: str, most: int = 16384) -> None:
    """Each named integer setting of cfg is in 1..most (a size read from a file may hold any number)."""
    for name in names:
        _require(1 <= getattr(cfg, name) <= most, name, getattr(cfg, name), f"must be in 1..{most:,}")


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """The recipe."""

    epochs: int = 100
    batch_size: int = 128
    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float = 1e-3
    lr_min: float = 1e-5
    """Final learning rate of the cosine schedule; the floor of the exponential one."""
    schedule: Literal["cosine", "constant", "exponential", "plateau"] = "cosine"
    """cosine: from lr to lr_min over the run, step by step. constant: lr throughout. exponential: lr * lr_decay**e
    in epoch e (from 0), never below lr_min (seed 002). plateau: lr until `patience` validations in a row bring no
    better error, then lr * lr_decay, and so on down to lr_min; the run stops when a plateau comes at lr_min."""
    lr_decay: float = 0.99
    """The exponential schedule's factor per epoch; the plateau schedule's at each plateau (0.1: ten times lower)."""
    momentum: float = 0.9
    """SGD only."""
    clip_grad: float = 0.0
    """Clip the global gradient norm to this; 0 turns clipping off."""
    mc_samples: int = 1
    """M: Monte-Carlo copies of each image per training step, and episodes averaged at evaluation."""
    ema: float = 0.0
    """Decay of an exponential moving average of the weights, updated after every step (Polyak averaging). The
    average, not the last step's weights, is validated, kept as the best weights and tested: it smooths the
    step-to-step jitter of a policy trained on a noisy reward. 0: off."""
    precision: Literal["auto", "fp32", "bf16"] = "fp32"
    """Training arithmetic (auto in the presets, so `ram train`'s default). auto: bf16 where the CPU or GPU computes
    it natively (AVX512-BF16 or AMX; a GPU that supports it), else fp32; the run folder records which one ran. bf16:
    mixed precision under torch.autocast. In RAM's fused loop the glimpse network and
    the core run in bfloat16, while the weights, optimiser state, sensor, policy, heads and losses stay float32; other
    models run autocast's bf16 ops. Evaluation is always float32."""
    seed: int = 0
    keep: Literal["best", "last"] = "best"
    """The weights the run keeps (model.safetensors) and tests: those of the epoch with the best validation error,
    or the last epoch's (seeds 000 and 002 test, or report, the weights they end with)."""
    init: str = ""
    """Start from these weights, not random ones: a shipped model's name or a run folder whose network has the same
    shapes (a second phase of training, e.g. with a narrower location std). Empty: random initial weights."""
    eval_batch_size: int = 1000
    eval_mc_samples: int = 10
    """Episodes averaged per test image in the reported test error (`ram eval` default); 0 follows the policy means."""
    val_every: int = 0
    """Validate after the epoch in which every val_every-th training step falls, rather than after every epoch (the
    last epoch is always validated); 0: after every epoch. An epoch of a few hundred images is a few steps, and
    validating each one costs more than its training; a metrics row then sums the epochs since the last validation."""
    patience: int = 0
    """Stop when this many validations in a row have not improved on the best validation error, and test the best
    weights; 0: train every epoch."""

    def validate(self) -> None:
        _check_types(self)
        _require(self.epochs >= 1, "epochs", self.epochs, "must be >= 1")
        _require(self.batch_size >= 1, "batch_size", self.batch_size, "must be >= 1")
        _require(math.isfinite(self.lr) and self.lr > 0, "lr", self.lr, "must be a positive number")
        _require(math.isfinite(self.lr_min) and 0 <= self.lr_min <= self.lr, "lr_min", self.lr_min, "must be in [0, lr]")
        _require(math.isfinite(self.lr_decay) and 0 < self.lr_decay <= 1, "lr_decay", self.lr_decay,
                 "must be in (0, 1]")
        _require(0 <= self.momentum < 1, "momentum", self.momentum, "must be in [0, 1)")
        _require(math.isfinite(self.clip_grad) and self.clip_grad >= 0, "clip_grad", self.clip_grad, "must be >= 0")
        _require(self.mc_samples >= 1, "mc_samples", self.mc_samples, "must be >= 1")
        _require(math.isfinite(self.ema) and 0 <= self.ema < 1, "ema", self.ema, "must be in [0, 1)")
        _require(0 <= self.seed < 2**63, "seed", self.seed, "must be in 0..2**63-1")
        _require(self.eval_batch_size >= 1, "eval_batch_size", self.eval_batch_size, "must be >= 1")
        _require(self.eval_mc_samples >= 0, "eval_mc_samples", self.eval_mc_samples, "must be >= 0")
        _require(self.val_every >= 0, "val_every", self.val_every, "must be >= 0 (0: after every epoch)")
        _require(self.patience >= 0, "patience", self.patience, "must be >= 0 (0: never stop early)")
        if self.schedule == "plateau":
            _require(self.patience >= 1, "patience", self.patience,
                     "must be >= 1 with schedule plateau: the validations without a better error that make a plateau")
            _require(self.lr_decay < 1, "lr_decay", self.lr_decay,
                     "must be below 1 with schedule plateau: the factor the lr falls by at each plateau")


@dataclass(frozen=True, kw_only=True)
class LossConfig:
    """The loss: which reward, which baseline, and how the terms are weighted. The defaults are RAM's: reward 1 for a
    right guess, REINFORCE at weight 1 with a learned baseline b(h_t), means over the batch. `ram.losses` reads it
    whole (`losses.LossSpec`)."""

    rl_weight: float = 1.0
    """Weight of the REINFORCE term in the hybrid loss."""
    rl_reduction: Literal["mean", "sum"] = "mean"
    """How REINFORCE and the baseline's regression combine the batch's episodes: their mean (this project), or their
    sum (seeds 000 and 002), which makes the term's size grow with the batch: at batch 100 and rl_weight 1e-3, seed
    000's policy gradient is 100 times the mean's, beside a cross-entropy that is a mean."""
    discount: float = 1.0
    """The advantage of the decisions of step t of T is scaled by discount**(T-1-t): 1 reinforces every decision
    with the end-of-episode reward (RAM), 0 only the last step's (seed 002's Catch, whose gamma is 0)."""
    means_weight: float = 0.0
    """Weight of a cross-entropy on one more episode of each image, along the policy means: trains the classifier,
    core and glimpse net on the path the one-episode protocol reads (the policy still learns from REINFORCE on the
    sampled episodes only: the means are detached). 0: off."""
    distill_weight: float = 0.0
    """Weight of a distillation loss: the episode along the policy means is taught the class probabilities of the
    sampled episodes of the same image, averaged over the mc_samples copies and held constant (the teacher), by
    cross-entropy against those soft targets. It aims the one-episode protocol at what M averaged episodes know,
    beside means_weight's hard labels. Needs mc_samples >= 2 (one sampled episode is too noisy a teacher). 0: off."""
    step_weight: float = 0.0
    """Weight of the mean cross-entropy of the classifier's guesses after glimpses 1..T-1, beside the final guess's:
    every step's state is taught to hold what it has read so far. 0: off (RAM trains on the final guess only)."""
    entropy_weight: float = 0.0
    """Bonus for the entropy of the policies' choices, added to the REINFORCE term: keeps a policy trained with Adam
    on a noisy reward from collapsing onto one move before it has learned anything (Catch)."""
    baseline: Literal["state", "scalar", "batch", "copies"] = "state"
    """The reward baseline. state: RAM's b(h_t), learned by regression from a detached state. scalar: one learned
    number (seed 002). batch: the batch's mean reward (seed 000). copies: the mean reward of the other Monte-Carlo
    copies of the same image or game (needs mc_samples > 1). batch and copies have nothing to learn. state and scalar
    are a head of the model, so they are in its weights."""
    reward: Literal["correct", "prob"] = "correct"
    """Classification reward. correct: RAM's 1 for a right final guess, else 0. prob: seed 000's probability of the
    predicted class when it is right, else 0."""

    def validate(self) -> None:
        _check_types(self)
        _require(math.isfinite(self.rl_weight) and self.rl_weight >= 0, "rl_weight", self.rl_weight, "must be >= 0")
        _require(math.isfinite(self.discount) and 0 <= self.discount <= 1, "discount", self.discount,
                 "must be in [0, 1]")
        _require(math.isfinite(self.means_weight) and self.means_weight >= 0, "means_weight", self.means_weight,
                 "must be >= 0")
        _require(math.isfinite(self.step_weight) and self.step_weight >= 0, "step_weight", self.step_weight,
                 "must be >= 0")
        _require(math.isfinite(self.distill_weight) and self.distill_weight >= 0, "distill_weight",
                 self.distill_weight, "must be >= 0")
        _require(math.isfinite(self.entropy_weight) and self.entropy_weight >= 0, "entropy_weight",
                 self.entropy_weight, "must be >= 0")


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    preset: tyro.conf.Suppress[str] = "mnist"
    task: TaskConfig = field(default_factory=lambda: TASKS["mnist"].Config())
    model: NetConfig = field(default_factory=ModelConfig)
    policy: PolicyConfig = field(default_factory=lambda: POLICIES["gaussian"].Config())
    train: TrainConfig = field(default_factory=TrainConfig)
    loss: LossConfig = field(default_factory=LossConfig)

    def validate(self) -> "RunConfig":
        _require(isinstance(self.preset, str) and self.preset != "", "preset", self.preset, "must be a name")
        for name, kind in SECTIONS.items():
            _require(isinstance(getattr(self, name), kind), name, getattr(self, name), f"must be a {kind.__name__}")
        self.task.validate()
        self.model.validate()
        self.policy.validate(self.model)
        self.train.validate()
        self.loss.validate()
        _require(self.loss.distill_weight == 0 or self.train.mc_samples >= 2, "distill_weight",
                 self.loss.distill_weight, "distils the average of the sampled copies, and mc_samples = "
                 f"{self.train.mc_samples} gives one: set mc_samples >= 2")
        _require(
            self.model.image_size == self.task.canvas,
            "image_size",
            self.model.image_size,
            f"does not match the {self.task.canvas}x{self.task.canvas} images of the task",
        )
        if self.loss.baseline == "copies":
            _require(self.train.mc_samples > 1, "baseline", "copies",
                     f"is the mean reward of the other Monte-Carlo copies; mc_samples = {self.train.mc_samples} "
                     "leaves none (set mc_samples >= 2)")
        task_of(self.task.dataset).check_run(self)
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def labels(self) -> tuple[str, ...]:
        """The name of each class the model answers, by label (your images' class names, Fashion-MNIST's, MNIST's
        digits, a pair's two digits for a model that names one of 55 pairs); () where a label is its number, or
        there are no classes. The task's, for a model of this kind (its answer may depend on the kind)."""
        return task_of(self.task.dataset).labels(self.task, self.model.about)

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        """The validated config of a to_dict() result, written by this code or an older one (`migrate`); fields added
        since it was written take their defaults."""
        try:
            d = migrate(d)
            cfg = cls(
                preset=d["preset"],
                task=TaskConfig.of(d["task"]) if isinstance(d["task"], dict) else d["task"],
                model=NetConfig.of(d["model"]) if isinstance(d["model"], dict) else d["model"],
                policy=PolicyConfig.of(d["policy"]) if isinstance(d["policy"], dict) else d["policy"],
                train=TrainConfig(**d["train"]),
                loss=LossConfig(**d["loss"]),
            )
        except (KeyError, TypeError) as e:
            raise ConfigError(f"config: not a recurrent-attention run config ({e})") from None
        return cfg.validate()

    def differences(self, other: "RunConfig") -> list[str]:
        """'section.field: mine -> other' for each field that differs; a field only one of them has (two policies'
        settings) is 'unset' in the other."""
        a, b = self.to_dict(), other.to_dict()
        out = [f"preset: {a['preset']!r} -> {b['preset']!r}"] if a["preset"] != b["preset"] else []
        for section in SECTIONS:
            mine, theirs = a[section], b[section]
            for k in {**mine, **theirs}:
                if mine.get(k, _UNSET) != theirs.get(k, _UNSET):
                    out.append(f"{section}.{k}: {mine.get(k, _UNSET)!r} -> {theirs.get(k, _UNSET)!r}")
        return out


class _Unset:
    def __repr__(self) -> str:
        return "unset"


_UNSET = _Unset()


SECTIONS = {"task": TaskConfig, "model": NetConfig, "policy": PolicyConfig, "train": TrainConfig,
            "loss": LossConfig}
"""A RunConfig's sections by name, and the class each one's settings derive from (the task's, the model's and the
policy's own sections are subclasses). No setting's name is in two sections of one run."""


def network(cfg: RunConfig) -> dict:
    """The settings that shape a run's network, as one flat dict: the model section, its policy's (the policy's kind
    as "policy"), and the baseline, which may be a head of the model. It is what a weights file records in its
    metadata, in the layout weights files have always had, so that any of them is checked against the config it is
    loaded with (`ram.checkpoint`)."""
    policy = {("policy" if k == "kind" else k): v for k, v in dataclasses.asdict(cfg.policy).items()}
    return {**dataclasses.asdict(cfg.model), **policy, "baseline": cfg.loss.baseline}


def migrate(d: dict) -> dict:
    """A stored config (`RunConfig.to_dict()` as JSON: config.json, last.pt, a weight file's metadata, a results file)
    in the layout this code reads. Anything not a dict of dicts is returned as it is, for `from_dict` to refuse.

    - Configs written before the loss section had its fields in "train": they move to "loss".
    - Configs written before the policy section had one flat "model": its policy's settings (named by "policy") move
      to "policy", the baseline to "loss", and the settings of the policies it did not use are dropped (they held
      their defaults, or the config was refused).
    - Configs written before each task had its own section had one flat "task" (`FLAT_TASK`) holding the settings of
      every task: the settings of the tasks it did not learn (named by "dataset", mnist if none) are dropped. Its task
      never read them, and in every shipped config they held their defaults.
    - fc and convnet once had RAM's model section: the glimpse and core settings they never read are dropped."""
    if not isinstance(d, dict) or not isinstance(d.get("train"), dict) or not isinstance(d.get("model"), dict):
        return d
    task = d.get("task")
    if isinstance(task, dict) and task.get("dataset", "mnist") in TASKS:
        dataset = task.get("dataset", "mnist")
        dropped = (task.keys() & FLAT_TASK) - _field_names(TASKS[dataset].Config)
        if dropped or "dataset" not in task:
            d = {**d, "task": {"dataset": dataset, **{k: v for k, v in task.items() if k not in dropped}}}
    if "loss" not in d:
        names = {f.name for f in dataclasses.fields(LossConfig)}
        d = {**d, "train": {k: v for k, v in d["train"].items() if k not in names},
             "loss": {k: v for k, v in d["train"].items() if k in names}}
    if "policy" not in d and isinstance(d["loss"], dict):
        model, kind = d["model"], d["model"].get("policy", "gaussian")
        if kind not in POLICIES:
            return {**d, "policy": {"kind": kind}}  # refused by from_dict, naming it
        settings = {f.name for f in dataclasses.fields(POLICIES[kind].Config)} - {"kind"}
        moved = ({name for variant in POLICIES.values() for name in _field_names(variant.Config)} - {"kind"}
                 | {"policy", "baseline"})  # the model's kind stays: the policy's is named by "policy"
        policy = {"kind": kind, **{k: v for k, v in model.items() if k in settings}}
        loss = {**d["loss"], **({"baseline": model["baseline"]} if "baseline" in model else {})}
        d = {**d, "model": {k: v for k, v in model.items() if k not in moved}, "policy": policy, "loss": loss}
    model = d["model"]
    if model.get("kind") in KINDS:  # fc and convnet once had RAM's whole model section
        inert = _field_names(ModelConfig) - _field_names(KINDS[model["kind"]].settings)
        if inert & model.keys():  # then, a convnet's own settings were its defaults: RAM's hidden is not its own
            d = {**d, "model": {k: v for k, v in model.items() if k in _field_names(NetConfig) | {"kind"}}}
    return d


FLAT_TASK = frozenset({"dataset", "source", "class_names", "test_fraction", "canvas", "pieces", "piece_size", "shift",
                       "rotate", "scale", "val_size", "train_size", "epoch_games", "val_games"})
"""The settings of the one flat task section of configs written before each task had its own (`migrate`)."""


def _field_names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)} - {"kind"}
