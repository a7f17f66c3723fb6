"""The paper's tables, the rows this project reproduces, and the README table generated from results/*.json.

The paper's numbers circulate in two versions: set A (arXiv v1, quoted by most repositories) and set B (the NIPS
version). Test error in %; None where a version gives no number. Beside them, the founding projects' own numbers for
the rows they report (`Row.seed_repo`, their protocols in `SEEDS`).

Results files: results/NAME.json is `ram eval --json` of a row's shipped weights (or of its one run);
results/seeds/NAME-sS.json is that of the row's run with training seed S (`ram reproduce NAME --seeds N`). A row with
two or more seed files shows their mean ± standard deviation, and its shipped weights are the median seed's
(`median_seed`).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
import shlex
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from . import cost, flags, presets
from .config import KINDS, ConfigError, ModelConfig, RunConfig, _hints


Settings = Mapping[str, Any]
"""Config fields by name ({"glimpses": 8, "core": "lstm"}), each found in the section that declares it, as
`flags.recipe` takes them: what a row, or a later phase of one, sets over its preset. A row's or a phase's may also
name the preset that phase trains on ({"preset": "mnist-cluttered", ...}), as `flags.recipe`'s first argument does
(`_trains_on`)."""


class Sci(float):
    """A number its flag writes in scientific notation, "3e-4" where str() writes 0.0003: the later phases' commands
    spell their learning rates so."""

    def __str__(self) -> str:
        mantissa, exponent = f"{self:e}".split("e")
        return f"{float(mantissa):g}e{int(exponent)}"


def _owner(cfg: RunConfig, name: str):
    """The section of cfg (task, model, train, loss) that declares the field `name`."""
    sections = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)
                if dataclasses.is_dataclass(getattr(cfg, f.name))}
    for section in sections.values():
        if name in {f.name for f in dataclasses.fields(section)}:
            return section
    raise ConfigError(f"{name}: not a field of the {', '.join(sections)} config")


def _sections(preset: str, settings: Settings) -> RunConfig:
    """The preset's config with the model section of the kind the settings name (`--model`), whose fields they may
    set: where each of their names is found."""
    base = presets.get(preset)
    return flags.with_model(base, settings.get("kind", base.model.kind))


def flag_args(settings: Settings, cfg: RunConfig | None = None) -> list[str]:
    """The `ram train` flags that set these fields over a preset (cfg: its `_sections`; default the RAM sections), in
    their order: `--flag value` for each, the flag the field's name as users know it (`--model` for kind,
    `--what-size` for what_size), the value as str() writes it (a tuple's items one by one: `--conv-channels 64 64
    64`). What `flags.recipe` takes as keywords, this writes as a command line."""
    cfg = RunConfig() if cfg is None else cfg
    out = []
    for name, value in settings.items():
        flag = _hints(type(_owner(cfg, name)))[name][0]
        out += [f"--{flag.replace('_', '-')}", *(map(str, value) if isinstance(value, tuple) else [str(value)])]
    return out


def _typed(value: Any, like: Any) -> Any:
    """value in the type of the field's value `like`: 1 as 1.0 for a weight (the flag's parse gives a float too),
    and a plain float for a `Sci`."""
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    return float(value) if numeric and isinstance(like, float) else value


def _trains_on(preset: str, settings: Settings) -> tuple[str, dict[str, Any]]:
    """The preset a phase trains on, the one its settings name, else `preset` (the phase before's), and its settings
    without that name: the config fields it sets over that preset."""
    return settings.get("preset", preset), {name: value for name, value in settings.items() if name != "preset"}


def build(preset: str, settings: Settings, data: str = "") -> RunConfig:
    """The validated config of a preset with these fields set, trained on the images in `data` if given (which
    are read: their size, channels and classes belong to the config)."""
    base = _sections(preset, settings)
    fields = {name: _typed(value, getattr(_owner(base, name), name)) for name, value in settings.items()}
    return flags.recipe(preset, data=data or None, **fields).config()


class Phase(NamedTuple):
    """One `ram train` run of a row."""

    preset: str
    """The preset it trains on: the one it names, else the phase before's; the first phase's default is the row's."""
    settings: tuple[Settings, ...]
    """What it sets over the preset, in order, a later one winning as a later flag does: the row's own fields (and
    the training seed), each later phase's changes up to this one, and the weights it starts from (init)."""
    out: str
    """Its run folder."""

    def merged(self) -> dict[str, Any]:
        """Its settings as one: the last value of each field."""
        return {name: value for own in self.settings for name, value in own.items()}


@dataclass(frozen=True)
class Row:
    name: str
    preset: str
    """The task of its shipped weights, which its last phase trains on, and the tables group it by (TASK_TITLES)."""
    overrides: Settings = field(default_factory=dict)
    """The config fields the row sets over its preset's, by name: its `ram train` flags, in the order its command
    gives them (`flag_args`). The precision its weights were trained in is always among them (the presets' auto picks
    one by the machine). A "preset" among them trains the first phase on that preset instead (a row of several
    phases that starts on another task)."""
    paper_a: float | None = None
    paper_b: float | None = None
    note: str = ""
    seed_repo: tuple[tuple[str, float], ...] = ()
    """The founding projects' own test errors (%) for the row, as (seed, error) for each that reports it, from their
    READMEs (../shared/seeds/); how each measured them is in `SEEDS`."""
    data: str = ""
    """The folder of images the row trains on (`ram train --data`); "" for the preset's dataset."""
    export: str = ""
    """The built-in dataset `ram export-folder` writes into `data` when it is missing (a worked example of --data)."""
    title: str = ""
    """The task column; "" takes the preset's (TASK_TITLES)."""
    then: tuple[Settings, ...] = ()
    """Later phases, in order: each the fields that change from the phase before, for a run that starts from the
    phase before's weights (init), and the preset it trains on where that changes ("preset"); () trains in one
    phase."""
    script: tuple[str, ...] = ()
    """A row trained by a script of its own rather than `ram train` (an outside library's agent, named by its
    overrides' kind): the command that trains it and writes the results file given with `--out-file`, which
    `ram reproduce` runs; () for `ram train`."""
    paper: str = "ram"
    """The paper whose numbers paper_a and paper_b are (`PAPERS`): Mnih et al.'s two versions (A, B), or the DRAM
    paper's one number (B)."""
    paper_data: str = ""
    """The data the paper measured its number on, where that is not the row's own ("SVHN" beside the MNIST strings
    that stand in for it); "" where it is the same task."""

    def __post_init__(self) -> None:
        if (last := self.phases()[-1].preset) != self.preset:
            raise ConfigError(f"row {self.name}: its last phase trains on preset {last!r}, not the row's "
                              f"{self.preset!r} (the task of its weights); give that phase \"preset\": "
                              f"{self.preset!r}")

    @property
    def paper_cell(self) -> str:
        """The paper's number as the DRAM tables show it: "5.00", or "4.11 (SVHN)" when measured on other data."""
        return _fmt(self.target) + (f" ({self.paper_data})" if self.paper_data and self.target is not None else "")

    @property
    def target(self) -> float | None:
        """The paper's number the row is measured against: B (the NIPS version), else A; None for a row it lacks."""
        return self.paper_b if self.paper_b is not None else self.paper_a

    def setting(self, name: str) -> Any:
        """A field's value in the row's first phase, its own or its preset's, without reading a --data folder."""
        preset, own = _trains_on(self.preset, self.overrides)
        if name in own:
            return own[name]
        return getattr(_owner(_sections(preset, own), name), name)

    @property
    def model(self) -> str:
        """The kind of model (`--model`): ram or a baseline."""
        return self.setting("kind")

    @property
    def glimpses(self) -> int:
        """Its weights' glimpses: those of the last phase that changes them, else the first phase's."""
        later = [then["glimpses"] for then in self.then if "glimpses" in then]
        return later[-1] if later else self.setting("glimpses")

    def phases(self, out_root: str = "runs", seed: int | None = None) -> list[Phase]:
        """Each phase of training; the last one's folder holds the row's weights. With a seed, every phase trains
        with it into folders suffixed -s{seed}."""
        out = f"{out_root}/{self.name}" + ("" if seed is None else f"-s{seed}")
        preset, own = _trains_on(self.preset, self.overrides)
        settings = (own, *([] if seed is None else [{"seed": seed}]))
        phases = [Phase(preset, settings, f"{out}-phase1")]
        for i, then in enumerate(self.then, 2):
            preset, then = _trains_on(preset, then)
            settings = (*settings, then)
            phases.append(Phase(preset, (*settings, {"init": phases[-1].out}), f"{out}-phase{i}"))
        return [*phases[:-1], phases[-1]._replace(out=out)]

    def args(self, phase: Phase) -> list[str]:
        """The `ram train` arguments of one of the row's phases (the run folder aside)."""
        data = ["--data", self.data] if self.data else []
        merged = phase.merged()
        return ["--preset", phase.preset, *data, *flag_args(merged, _sections(phase.preset, merged))]

    def train_args(self) -> list[str]:
        """The `ram train` arguments of the row's first phase."""
        return self.args(self.phases()[0])

    def configs(self, seed: int | None = None) -> list[RunConfig]:
        """The config `ram train` builds for each phase (of training seed `seed`: `ram reproduce --seeds`)."""
        return [build(phase.preset, phase.merged(), self.data) for phase in self.phases(seed=seed)]

    def config(self, seed: int | None = None) -> RunConfig:
        """The last phase's config: the one the row's shipped weights must carry (those of its median seed, where
        it was trained with several)."""
        return self.configs(seed)[-1]


PAPERS = {
    "ram": "Mnih, Heess, Graves and Kavukcuoglu, \"Recurrent Models of Visual Attention\" (NIPS 2014)",
    "dram": "Ba, Mnih and Kavukcuoglu, \"Multiple Object Recognition with Visual Attention\" (ICLR 2015)",
}
"""The papers whose numbers the rows stand beside, by `Row.paper`."""
DRAM_PAPER_NOTE = (
    "the DRAM paper's numbers as the issue that asked for these rows quotes them (RAM 9, DRAM without its context "
    "network 7, DRAM 5 on pairs; a 64-64-64-512 convnet 3.2 and DRAM 2.5 on sums){svhn}: its PDF could not be reached "
    "from the machine these rows were trained on"
)
SVHN_NOTE = (
    ", and on the strings of MNIST digits, a stand-in for its SVHN house numbers, its whole-sequence errors on 54x54 "
    "SVHN crops as second-hand sources give them (a single DRAM 5.1 at 0.2 GFLOPs an image, its 10-layer convnet 4.11 "
    "at 2.1 GFLOPs)"
)
"""DRAM_PAPER_NOTE's words on the SVHN numbers, where a row of strings is shown."""

BASELINE_EPOCHS = 30  # the baselines' first, short schedule; rows retrained on RAM's schedule say so with epochs=


def _base(name: str, preset: str, kind: str, a: float | None, b: float | None, note: str, glimpses: int = 0,
          epochs: int = BASELINE_EPOCHS) -> Row:
    own = {"kind": kind, **({"glimpses": glimpses} if glimpses else {}), "epochs": epochs, "precision": "fp32"}
    return Row(name, preset, own, a, b, note)


WIDE = {"precision": "bf16", "what_size": 256, "glimpse_size": 512}
"""The 60x60 and 100x100 RAM rows' recipe: the glimpse network twice the paper's width, in bf16."""
CLUTTERED_G6_100 = {"preset": "mnist-cluttered", "glimpses": 6, "epochs": 100, **WIDE, "core": "lstm",
                    "means_weight": 1.0}
"""The first phase of every 60x60 row but cluttered g6 itself: cluttered g6's recipe on a 100-epoch schedule, which
reaches its paper number (4.08) on validation by about epoch 80 where the 250-epoch one needs 114. `ram reproduce
all` trains it once for the five rows."""
PAIRS_200 = {"precision": "bf16", "epochs": 200, "means_weight": 1}
"""The pairs DRAM row's first phase, 200 epochs along the means too; the sums row begins with it as well, so `ram
reproduce all` trains it once for both."""


def _ram(task: str, g: int, a: float | None, b: float | None, note: str = "", *,
         seed_repo: tuple[tuple[str, float], ...] = (), then: tuple[Settings, ...] = (), **overrides) -> Row:
    """The RAM row of `g` glimpses on a preset's task; its other keywords are the config fields it sets, in the
    order its command gives them (a "preset" among them: the first phase's, where it trains on another task)."""
    return Row(f"{task}-g{g}", task, {"glimpses": g, **overrides}, a, b, note, seed_repo=seed_repo, then=then)


def _on_60(task: str, g: int, a: float | None, b: float | None, *, seed_repo: tuple[tuple[str, float], ...]) -> Row:
    """A 60x60 row trained from scratch in two phases: CLUTTERED_G6_100, then 40 epochs of its own task with its own
    glimpses at lr 3e-4 cosine to 1e-6 from those weights, along the means too as the first phase."""
    second = {"preset": task, "glimpses": g, "epochs": 40, "lr": Sci(3e-4), "lr_min": Sci(1e-6)}
    return _ram(task, g, a, b, seed_repo=seed_repo, **CLUTTERED_G6_100, then=(second,))


SEEDS: dict[str, str] = {
    "000": "seed 000 (Lua/Torch, hard attention) reports 95.56% test accuracy (97.48% on its training images) with 20 "
           "saccades of a 4x4 patch after 10 epochs at batch 100 (6,000 Adam steps at a constant 1e-3) on all 60,000 "
           "training images; its main.lua tests the last weights, one episode per image along the argmax of both "
           "softmaxes (its MultinomialAction in evaluate mode), each test batch's LSTM starting from the final state "
           "of the last training batch",
    "001": "seed 001 (TensorFlow) reports errors after training \"without any extensive hyperparameter search\", the "
           "4-glimpse 28x28 model in \"roughly 100 epochs\"; at inference its locations are not sampled (one episode "
           "along the means, from a random first glimpse); its result folders name batch 128, 10 Monte-Carlo copies, "
           "std 0.09 and lr decay 0.97 to at least 1e-4; its translated row is 12x12, 3 scales (3.65% with 8x8). Its "
           "README does not say on which split or after which epoch",
    "002": "seed 002 (PyTorch) reports accuracy on MNIST's test set printed after each epoch, one episode per image "
           "with sampled locations (its location network samples in eval() too) from a random first glimpse, after "
           "100 epochs on 28x28 (Adam at 1e-3 times 0.95 per epoch) or 200 on 60x60 (1e-4 times 0.975), batch 128, "
           "std 0.25; not which epoch's number. For Catch it reports \"~89%\": the share of its training games caught "
           "with sampled moves and glimpses after 700 epochs of 22,400 games (15.7M); it has no evaluation loop",
}
"""Each founding project's protocol, as far as its README or code states it (the table's footnote)."""


def _error(accuracy: float) -> float:
    """A founding project's accuracy (%) as the table's error (%)."""
    return round(100 - accuracy, 2)


ALONG_THE_MODES = {"means_weight": 1, "lr": Sci(1e-4), "lr_min": Sci(1e-6), "epochs": 3}
"""The saccade row's second phase: 3 epochs at a low lr that also train the reader on the path of the policies' modes,
the one episode it is tested on."""


def narrowed(epochs: int) -> dict[str, Any]:
    """A second phase of `epochs` along the means too at lr 3e-4, with the location policy narrowed to std 0.1."""
    return {"epochs": epochs, "lr": Sci(3e-4), "lr_min": Sci(1e-6), "means_weight": 1, "std": 0.1}


NARROWED = narrowed(40)
"""A second phase of 40 epochs along the means too with the location policy narrowed from the preset's std 0.2 to
0.1."""
DISTILLED = {**narrowed(80), "mc_samples": 2, "distill_weight": 1}
"""The 100x100 g8 row's second phase: NARROWED for 80 epochs, with the path along the means also taught the averaged
class probabilities of 2 sampled episodes."""
POLISHED = {"epochs": 40, "lr": Sci(1e-4)}
"""The 100x100 g8 row's third phase: 40 more epochs of DISTILLED from its weights, at a third of its lr."""


def from_the_image(epochs: int) -> dict[str, Any]:
    """A later phase of `epochs` with the first glimpse decided by the image (`--first-glimpse context`), the rest
    of the recipe as the phase before."""
    return {"first_glimpse": "context", "epochs": epochs}


CONTEXT_G8 = {**from_the_image(40), "lr": Sci(3e-4)}
"""The 100x100 g8 row's fourth phase: 40 epochs at POLISHED's length and DISTILLED's lr with an initial-location
network on the 25x25 max-pooled image deciding the first glimpse."""
SEED_000_NOTE = (
    "as written but for: 59,000 training images, 1,000 held out to watch the run (seed 000 trains on all 60,000: "
    "5,900 steps against its 6,000); batches drawn afresh each epoch (seed 000 reads the training set in one fixed "
    "order); every episode starts from a zero LSTM state (seed 000 starts each batch from the previous batch's final "
    "state and tests from the last training batch's, so a digit's class depends on the batch slot it sits in, which "
    "a model of one image cannot reproduce); PyTorch's LSTM initialisation (its input weights uniform in ±1/√512 "
    "where seed 000's Torch Linear draws them in ±1/√16)"
)
SEED_002_NOTE = (
    "as written but for: the last step's reinforced location is that of the last glimpse (seed 002 also samples and "
    "reinforces a location after its last glimpse, which no glimpse uses: a gradient of pure noise); the scalar "
    "baseline starts at 0 (seed 002 sets it to its first batch's mean reward); the sensor centres a glimpse on the "
    "nearest pixel (seed 002 truncates); the catch rate is measured on 1000 test games besides the training games"
)


ROWS: list[Row] = [
    _ram("mnist", 2, 6.27, 3.79, precision="fp32", seed_repo=(("001", 7.17), ("002", _error(89.54)))),
    _ram("mnist", 3, None, 1.51, epochs=200, precision="fp32", means_weight=1.0, seed_repo=(("002", _error(94.48)),)),
    _ram("mnist", 4, 1.73, 1.54, epochs=200, precision="fp32", means_weight=1.0,
         seed_repo=(("001", 1.89), ("002", _error(96.82)))),
    _ram("mnist", 5, None, 1.34, precision="fp32", seed_repo=(("002", _error(97.09)),)),
    _ram("mnist", 6, 1.29, 1.12, precision="bf16", seed_repo=(("001", 1.57), ("002", _error(97.54)))),
    _ram("mnist", 7, None, 1.07, epochs=200, precision="bf16", seed_repo=(("002", _error(97.57)),)),
    _base("mnist-fc", "mnist", "fc", 1.35, 1.69, "FC, 2 layers of 256"),
    _base("mnist-convnet", "mnist", "convnet", None, 1.21, "convnet, 2 layers"),
    _on_60("mnist-translated", 4, 2.29, 1.54, seed_repo=(("001", 3.32), ("002", _error(89.35)))),
    _on_60("mnist-translated", 6, 1.86, 1.22, seed_repo=(("002", _error(91.74)),)),
    _on_60("mnist-translated", 8, 1.84, 1.20, seed_repo=(("002", _error(92.61)),)),
    _base("mnist-translated-fc", "mnist-translated", "fc", 2.63, 2.63, "FC, 2 layers of 256"),
    _base("mnist-translated-convnet", "mnist-translated", "convnet", 1.62, 1.62, "convnet, 2 layers", epochs=250),
    _on_60("mnist-cluttered", 4, None, 4.96, seed_repo=(("002", _error(83.00)),)),
    _ram("mnist-cluttered", 6, None, 4.08, **WIDE, core="lstm", means_weight=1.0,
         seed_repo=(("002", _error(85.50)),)),
    _on_60("mnist-cluttered", 8, 5.23, 4.04, seed_repo=(("002", _error(85.46)),)),
    _base("mnist-cluttered-random-g8", "mnist-cluttered", "random-glimpses", 14.4, 14.4, "8 random glimpses",
          glimpses=8),
    _base("mnist-cluttered-fc", "mnist-cluttered", "fc", 11.96, 11.96, "FC, 2 layers of 256"),
    _base("mnist-cluttered-convnet", "mnist-cluttered", "convnet", 8.09, 8.09, "convnet, 2 layers", epochs=250),
    _ram("mnist-cluttered-100", 4, 14.95, 9.4, "B is read off a figure: about 9.4", epochs=60, **WIDE, core="lstm",
         means_weight=1.0, lr=3e-4, lr_min=1e-6, std=0.1, init="mnist-cluttered-100-g8", mc_samples=2,
         distill_weight=1, first_glimpse="context"),
    _ram("mnist-cluttered-100", 6, 11.58, None, epochs=40, **WIDE, core="lstm", means_weight=1.0, lr=3e-4,
         lr_min=1e-6, std=0.1, init="mnist-cluttered-100-g8", first_glimpse="context"),
    _ram("mnist-cluttered-100", 8, None, 8.1, "B is read off a figure: about 8.1", epochs=400, **WIDE, core="lstm",
         then=(DISTILLED, POLISHED, CONTEXT_G8)),
    _base("mnist-cluttered-100-convnet", "mnist-cluttered-100", "convnet", None, 15.0, "convnet: about 14-16"),
    Row("mnist-saccade-g10", "mnist-saccade", {"glimpses": 10, "epochs": 10, "precision": "fp32"}),
    Row("mnist-saccade", "mnist-saccade", {"glimpses": 20, "precision": "fp32"}, seed_repo=(("000", _error(95.56)),),
        then=(ALONG_THE_MODES,)),
    Row("mnist-saccade-000", "mnist-saccade-000", {"glimpses": 20, "precision": "fp32"},
        seed_repo=(("000", _error(95.56)),), note=SEED_000_NOTE),
    Row("mnist-saccade-g30", "mnist-saccade", {"glimpses": 30, "epochs": 10, "precision": "fp32"}),
    Row("catch", "catch", {"glimpses": 23, "precision": "fp32"}, seed_repo=(("002", _error(89.0)),)),
    Row("catch-002", "catch-002", {"glimpses": 23, "precision": "fp32"}, seed_repo=(("002", _error(89.0)),),
        note=SEED_002_NOTE),
    Row("catch-screen", "catch", {"kind": "screen", "glimpses": 23, "epochs": 30, "precision": "fp32"},
        note="the whole screen every step, same core and move head"),
    Row("catch-random", "catch", {"kind": "random-agent", "glimpses": 23, "epochs": 1, "precision": "fp32"},
        note="random moves"),
    Row("catch-sb3-ppo", "catch", {"kind": "sb3-ppo"}, script=("python", "examples/catch_sb3.py"),
        note="stable-baselines3 PPO, MlpPolicy on the whole screen, SB3's defaults"),
    Row("fashion-g6", "mnist", {"glimpses": 6, "precision": "fp32"}, data="data/fashion-images", export="fashion",
        title="28x28 Fashion-MNIST from a folder of PNGs (`--data`)"),
    Row("mnist-pairs", "mnist-pairs", PAIRS_200, None, 5.0, paper="dram", then=(NARROWED,)),
    Row("mnist-pairs-no-context", "mnist-pairs", {"context": False, "precision": "bf16"}, None, 7.0, paper="dram",
        then=(NARROWED,)),
    Row("mnist-pairs-ram", "mnist-pairs", {"kind": "ram", "glimpses": 8, "patch_size": 12, "scales": 4,
                                           "core": "lstm", **WIDE, "means_weight": 1.0, "first_glimpse": "context",
                                           "init": "mnist-cluttered-100-g8", "epochs": 60, "lr": Sci(5e-4),
                                           "lr_min": Sci(1e-6)},
        None, 9.0, paper="dram"),
    Row("mnist-pairs-convnet", "mnist-pairs", {"kind": "convnet", "precision": "bf16"}, note="convnet, 2 layers",
        paper="dram"),
    Row("mnist-addition", "mnist-addition", {"preset": "mnist-pairs", **PAIRS_200}, None, 2.5,
        paper="dram", then=({"preset": "mnist-addition", "epochs": 100}, NARROWED),
        note="on sums its answer layer starts fresh; the rest had learned the digits from the pairs' labels, which "
             "name each digit of the training canvases: more than their sums tell. From scratch DRAM stayed at "
             "chance on sums (results/NOTES.md)"),
    Row("mnist-addition-convnet", "mnist-addition", {"kind": "convnet", "conv_channels": (64, 64, 64), "hidden": 512,
                                                     "epochs": BASELINE_EPOCHS, "precision": "bf16"}, None, 3.2,
        note="convnet of 64, 64 and 64 filters and 512 units, the DRAM paper's sizes", paper="dram"),
    Row("mnist-numbers", "mnist-numbers", {"precision": "bf16"}, None, 5.1, paper="dram", paper_data="SVHN",
        then=(NARROWED,)),
    Row("mnist-numbers-multihead", "mnist-numbers", {"kind": "multihead", "epochs": BASELINE_EPOCHS,
                                                     "eval_mc_samples": 0, "precision": "bf16"}, None, 4.11,
        note="multi-head convnet (Goodfellow et al. 2014's design at a CPU's size): a length head and five digit "
             "heads on convolutions of 32, 48, 64 and 96 filters and 512 units", paper="dram", paper_data="SVHN"),
]
BY_NAME = {r.name: r for r in ROWS}

TASK_TITLES = {
    "mnist": "28x28 MNIST",
    "mnist-saccade": "28x28 MNIST, hard attention",
    "mnist-saccade-000": "28x28 MNIST, hard attention",
    "catch": "Catch, 24x24 (% of balls missed)",
    "catch-002": "Catch, 24x24 (% of balls missed)",
    "mnist-translated": "60x60 translated MNIST",
    "mnist-cluttered": "60x60 cluttered MNIST (4 pieces)",
    "mnist-cluttered-100": "100x100 cluttered MNIST (8 pieces)",
    "mnist-pairs": "MNIST pairs, 100x100 cluttered: both digits, either order",
    "mnist-addition": "MNIST addition, 100x100 cluttered: the sum of two digits",
    "mnist-numbers": "House numbers of 1-5 MNIST digits, 54x54 (a stand-in for SVHN): the whole string",
}
ONE_ANSWER = {"mnist-pairs": "one of 55 pairs", "mnist-addition": "one of 19 sums"}
"""What a model that answers once (not DRAM's labels in turn) names on a multi-digit task."""


def load_results(folder: Path) -> dict[str, dict]:
    """results/ROW.json files, each the output of `ram eval --json`, keyed by row name."""
    out = {}
    for path in sorted(Path(folder).glob("*.json")):
        out[path.stem] = json.loads(path.read_text())
    return out


SEED_FILE = re.compile(r"^(?P<row>.+)-s(?P<seed>\d+)$")


def load_seeds(folder: Path) -> dict[str, list[dict]]:
    """results/seeds/ROW-sS.json files, each `ram eval --json` of the row's run with training seed S, keyed by row
    name; each result gains "train_seed": S. Sorted by seed."""
    out: dict[str, list[dict]] = {}
    for path in Path(folder, "seeds").glob("*.json"):
        match = SEED_FILE.match(path.stem)
        if match is None:
            raise ValueError(f"{path}: not a seed's results file, which is named ROW-sS.json (e.g. mnist-g2-s1.json)")
        result = {**json.loads(path.read_text()), "train_seed": int(match["seed"])}
        out.setdefault(match["row"], []).append(result)
    return {row: sorted(runs, key=lambda r: r["train_seed"]) for row, runs in out.items()}


def median_seed(runs: list[dict]) -> dict:
    """The run of median test error (one episode), the one whose weights are shipped; of an even number, the lower
    of the two middle ones. Ties go to the lower seed."""
    ranked = sorted(runs, key=lambda r: (r["error"], r["train_seed"]))
    return ranked[(len(ranked) - 1) // 2]


def _spread(values: list[float]) -> str:
    """"1.23 ± 0.05": mean ± standard deviation (n - 1 in the denominator)."""
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def _fmt(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"


def _vector_unit(machine: dict | None) -> str | None:
    """The CPU's fastest vector unit by its flags ("AMX"), or None where a run did not record its machine."""
    flags = (machine or {}).get("cpu_flags")
    if flags is None:
        return None
    return next((name for flag, name in (("amx_bf16", "AMX"), ("avx512_bf16", "AVX512-BF16"), ("avx512f", "AVX-512"),
                                         ("avx2", "AVX2")) if flag in flags), "a CPU without AVX2")


def _train_time(r: dict) -> str:
    """The training wall time, and where the results file says so, the arithmetic and the CPU's fastest vector unit
    it ran on ("110 min, bf16 on AMX"): a number a reader can compare with their own machine. A row whose phases ran
    on different CPUs, or some on a CPU no one recorded, gives each CPU's share ("331 min, bf16: 110 on a CPU not
    recorded, 112 on AMX, 109 on AVX512-BF16"); a row that recorded no CPU at all gives the time alone."""
    time = _duration(r.get("train_seconds"))
    phases = r.get("phases") or [{"train_seconds": r.get("train_seconds")}]
    shares: dict[str | None, float] = {}
    for i, p in enumerate(phases):  # the results file's own machine is its last phase's
        unit = _vector_unit(p.get("machine") or (r.get("machine") if i == len(phases) - 1 else None))
        shares[unit] = shares.get(unit, 0.0) + (p.get("train_seconds") or 0.0)
    if set(shares) == {None}:
        return time
    precision = r.get("precision", "?")
    if len(shares) == 1:
        return f"{time}, {precision} on {next(iter(shares))}"
    parts = [f"{_duration(s).removesuffix(' min')} on {unit or 'a CPU not recorded'}" for unit, s in shares.items()]
    return f"{time}, {precision}: {', '.join(parts)}"


def first_reached(curve: list[list[float]], target: float) -> tuple[int, float] | None:
    """(epoch, training seconds) of the first epoch of a validation curve (`ram.hub.val_curve`) whose validation
    error is at or below target, or None."""
    return next(((int(epoch), seconds) for epoch, error, seconds in curve if error <= target), None)


def _reached(row: Row, r: dict) -> str:
    """When validation first reached the row's paper number (B, else A): "; paper's 3.79 at 12 (2 min)". Counted
    from the start of training: a later phase's curve starts after its earlier phases' epochs and seconds. The
    earlier phases' own curves count for a row trained in several phases, not for one started from another row's
    weights (which reached the number with another model), nor those of a phase on another task (whose validation
    images are not this task's). Empty without a curve or a paper number."""
    target = row.target
    if target is None or not r.get("val_curve"):
        return ""
    *before, _ = r.get("phases", [{}])
    elsewhere = {i for i, phase in enumerate(row.phases()[:-1]) if phase.preset != row.preset}
    own = not row.setting("init")
    curves = [p.get("val_curve", []) if own and i not in elsewhere else [] for i, p in enumerate(before)]
    curves.append(r["val_curve"])
    for i, curve in enumerate(curves):
        if hit := first_reached(curve, target):
            epoch = hit[0] + sum(p["epochs"] or 0 for p in before[:i])
            seconds = hit[1] + sum(p["train_seconds"] or 0 for p in before[:i])
            return f"; val. at paper's {target:.2f} by epoch {epoch} ({_duration(seconds)})"
    return f"; val. never at paper's {target:.2f}"


def _epochs(r: dict) -> str:
    """Epochs trained; "37 of 40" for a run stopped before its schedule ended; "250 + 20" for two phases; "50,000
    games" for an agent trained outside `ram train`, which counts games, not epochs."""
    if "phases" in r:
        return " + ".join(str(p["epochs"]) for p in r["phases"])
    if "epochs" not in r:
        return f"{r['train_games']:,} games" if "train_games" in r else "–"
    planned = r.get("planned_epochs")
    return f"{r['epochs']} of {planned}" if planned and planned != r["epochs"] else str(r["epochs"])


def _seed_repo(row: Row) -> str:
    """"1.89 (001) / 3.18 (002)": each founding project's error for the row, marked by its number."""
    return " / ".join(f"{error:.2f} ({seed})" for seed, error in row.seed_repo) or "–"


AS_WRITTEN = {
    "mnist-saccade-000": "seed 000's recipe as written: {g} moves of a 4x4 patch, the patch alone into an LSTM of 512, "
                         "REINFORCE summed over the batch",
    "catch-002": "seed 002's agent and loss as written: {g} glimpses and moves, LSTM core, a random first glimpse, "
                 "only the last step reinforced",
}
"""The model column of the rows that follow a founding project's recipe as written (their presets are it)."""


def _model(row: Row) -> str:
    """The model column: RAM with what its row changed, the saccade variant, a founding recipe as written, DRAM, or a
    baseline's note; on a multi-digit task, what a model that answers once names."""
    if row.model == "dram":
        return _dram(row) + _started_from(row) + _later_phases(row, "means")
    return _what(row) + (f", naming {ONE_ANSWER[row.preset]}" if row.preset in ONE_ANSWER else "")


def _what(row: Row) -> str:
    """`_model` of a model that answers once."""
    if row.model != "ram":
        return row.note or row.model
    if row.preset in AS_WRITTEN:
        return AS_WRITTEN[row.preset].format(g=row.glimpses)
    if row.preset == "mnist-saccade":
        return f"seed 000's saccades: {row.glimpses} moves of a 4x4 patch, LSTM of 512{_later_phases(row, 'modes')}"
    if row.preset == "catch":
        return f"RAM, {row.glimpses} glimpses and moves, LSTM core"
    return f"RAM, {row.glimpses} glimpses{_architecture(row)}{_started_from(row)}{_later_phases(row, 'means')}"


def _dram(row: Row) -> str:
    """"DRAM, 4 glimpses" (", without its context network" where the row drops it)."""
    return f"DRAM, {row.glimpses} glimpses" + ("" if row.setting("context") else ", without its context network")


def _started_from(row: Row) -> str:
    """", started from `mnist-cluttered-100-g8`'s weights, 40 epochs at lr 0.0003" for a row that trains on from
    another row's shipped weights (" and std 0.1" after the lr where it also narrows the location policy; the other
    row's task where it is not the first phase's, "…'s weights, trained on 60x60 cluttered MNIST (4 pieces), then 40
    epochs…"); ", trained first on 60x60 cluttered MNIST (4 pieces) for 100 epochs" for a row whose first phase
    trains from scratch on another task than its weights' (", trained first with 6 glimpses…" where with other
    glimpses; its later phases say the rest, `_later_phases`); "" for one trained from scratch as its weights are."""
    init, std = row.setting("init"), row.overrides.get("std")  # std: where the row narrows the preset's
    task, glimpses = row.phases()[0].preset, row.setting("glimpses")
    if not init and task == row.preset and glimpses == row.glimpses:
        return ""
    train = row.configs()[0].train  # the first phase's: later ones say their own (`_later_phases`)
    if not init:
        other = f" with {glimpses} glimpses" if glimpses != row.glimpses else ""
        return f", trained first{other}{_on(task, row.preset)} for {train.epochs} epochs"
    std = f" and std {std:g}" if std else ""
    start = BY_NAME.get(init)
    then = f", trained{_on(start.preset, task)}, then" if start and start.preset != task else ","
    on = _on(task, row.preset)
    return f", started from `{init}`'s weights{then} {train.epochs} epochs{on} at lr {train.lr:g}{std}"


def _on(preset: str, task: str) -> str:
    """" on 60x60 cluttered MNIST (4 pieces)": the task a phase trained on, where it is not `task`'s; "" where it
    is."""
    return f" on {TASK_TITLES[preset]}" if preset != task else ""


def _later_phases(row: Row, path: str) -> str:
    """", then 3 epochs at lr 0.0001 along its modes too" for each later phase of a row trained in several (" and std
    0.1" after the lr where a phase narrows the location policy, ", taught the average of 2 sampled episodes" at the
    end where it starts to distil them into the path along the means, ", its first glimpse decided by the image" where
    it adds the context network; " on 60x60 cluttered MNIST (4 pieces)" after the epochs for one that trains on
    another task than the row's weights); "" for one."""
    if not row.then:  # one phase: nothing to say, and no config to build (which would read a --data folder)
        return ""
    configs = row.configs()
    return "".join(_then(before, after, path, row.preset) for before, after in zip(configs, configs[1:]))


_FROM_THE_IMAGE = ", its first glimpse decided by the image"
"""What the table says of a row, or a later phase, whose first glimpse the image decides (`--first-glimpse context`)."""


def _then(before: RunConfig, after: RunConfig, path: str, task: str) -> str:
    """What one phase changed from the one before, in `_later_phases`' words (task: the row's preset)."""
    std = getattr(after.policy, "std", None)
    std = f" and std {std:g}" if std != getattr(before.policy, "std", None) else ""
    along = f" along its {path} too" if after.loss.means_weight and not before.loss.means_weight else ""
    taught = _taught(after) if not before.loss.distill_weight else ""
    first = _FROM_THE_IMAGE if _context(after) and not _context(before) else ""
    on = _on(after.preset, task)
    glimpses = getattr(after.model, "glimpses", None)
    glimpses = f" with {glimpses} glimpses" if glimpses != getattr(before.model, "glimpses", None) else ""
    return f", then {after.train.epochs} epochs{glimpses}{on} at lr {after.train.lr:g}{std}{along}{taught}{first}"


def _context(cfg: RunConfig) -> bool:
    """The image decides the first glimpse (`--first-glimpse context`)."""
    return getattr(cfg.policy, "first_glimpse", None) == "context"


def _taught(cfg: RunConfig) -> str:
    """", taught the average of 2 sampled episodes" for training that distils sampled episodes into the path along
    the means (--distill-weight); "" for training without a teacher."""
    return f", taught the average of {cfg.train.mc_samples} sampled episodes" if cfg.loss.distill_weight else ""


def _architecture(row: Row) -> str:
    """What a row changed in the paper's network: ", glimpse net 256/512" for a glimpse network wider than the paper's
    h_g 128 and g 256, ", LSTM core" for another core than its ReLU RNN, ", trained along its means too" for the
    one-episode recipe (--means-weight) and ", taught the average of 2 sampled episodes" where sampled episodes teach
    that path (the row's distill), ", its first glimpse decided by the image" for the context first glimpse; "" for
    the paper's own."""
    paper, own = ModelConfig(), row.overrides
    out = ""
    if own.get("what_size") or own.get("glimpse_size"):
        what, glimpse = own.get("what_size") or paper.what_size, own.get("glimpse_size") or paper.glimpse_size
        out += f", glimpse net {what}/{glimpse}"
    if own.get("core") and own["core"] != paper.core:
        out += f", {own['core'].upper()} core"
    if own.get("means_weight"):
        out += ", trained along its means too"
    out += _taught(row.configs()[0]) if own.get("distill_weight") else ""
    return out + (_FROM_THE_IMAGE if own.get("first_glimpse") == "context" else "")


def table(results: dict[str, dict], seeds: dict[str, list[dict]] | None = None) -> str:
    """A Markdown table: one line per row that has a result, beside paper A and B and the founding projects; below
    it, what each founding project's number measured and the rows' own notes.

    "one episode" is the headline, the paper's protocol and cost: one episode of T glimpses per image along the
    policy means (`ram eval`'s "error"). The next column averages the class probabilities of M sampled episodes, M x T
    glimpses ("error_averaged"; "–" for the baselines without a policy). A row with runs of several training seeds
    (`seeds`, from `load_seeds`) shows their mean ± standard deviation in both; its epochs and time are its shipped
    run's (results/NAME.json, else the median seed's). "seed repo" is each founding project's own number for the row.
    A Catch row's headline (balls missed along the policies' modes) has the rate with sampled moves beside it
    ("sampled").
    """
    lines = [
        "| task | model | this project, one episode | 10 episodes averaged (10×T glimpses) | paper A | paper B | "
        "seed repo | epochs | train time |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    shown = [(row, r, runs) for row, r, runs in _rows(results, seeds or {}) if row.paper == "ram"]
    lines += [_line(row, r, runs, _fmt(row.paper_a), _fmt(row.paper_b), _seed_repo(row)) for row, r, runs in shown]
    return "\n".join(lines) + _footnotes([row for row, _, _ in shown]) + _dram_table(results, seeds or {})


def _line(row: Row, r: dict, runs: list[dict], *papers: str) -> str:
    """A row of the full table: task, model, this project's two errors, the paper's cells, epochs and time."""
    headline, second = _errors(row, r, runs)
    cells = [row.title or TASK_TITLES[row.preset], f"{_model(row)}{_shipped(r)}", headline, second, *papers,
             f"{_epochs(r)}{_reached(row, r)}", _train_time(r)]
    return f"| {' | '.join(cells)} |"


def _shipped(r: dict) -> str:
    """" (`mnist-g6`)": the name a row's weights ship as, where they do."""
    return f" (`{r['pretrained']}`)" if r.get("pretrained") else ""


def _dram_table(results: dict[str, dict], seeds: dict[str, list[dict]]) -> str:
    """The rows beside the DRAM paper, under their own heading and paper column, with the share of digits named
    wrong where a model names digits; "" when none has a result."""
    shown = [(row, r, runs) for row, r, runs in _rows(results, seeds) if row.paper == "dram"]
    if not shown:
        return ""
    lines = [
        f"\n\n**More than one object**, beside {PAPERS['dram']}:\n",
        "| task | model | this project, one episode | 10 episodes averaged | digits named wrong, one episode | "
        "MFLOPs an image | paper | epochs | train time |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [_line(row, r, runs, _fmt(r.get("digit_error")), f"{mflops(row):.1f}", row.paper_cell)
              for row, r, runs in shown]
    notes = [f"- `{row.name}`: {row.note}." for row, _, _ in shown if row.note and not _whole_image(row)]
    svhn = SVHN_NOTE if any(row.paper_data == "SVHN" for row, _, _ in shown) else ""
    return ("\n".join(lines) + f"\n\nThe paper column gives {DRAM_PAPER_NOTE.format(svhn=svhn)}."
            + ("\n\nRow notes:\n" + "\n".join(notes) if notes else ""))


def _whole_image(row: Row) -> bool:
    """A classifier that reads the whole image in one pass: it has no episodes to average, and its note is its model
    column. A row trained by a script of its own plays (`Row.script`)."""
    kind = KINDS.get(row.model)
    return kind is not None and kind.classifies and not kind.glimpses


def mflops(row: Row) -> float:
    """MFLOPs per image of one episode of the row's model along the policy means (`ram.cost`), built from its last
    phase's config: FLOPs do not depend on the weights."""
    return _mflops(row.name)


@functools.cache
def _mflops(name: str) -> float:
    return cost.of_run(BY_NAME[name].config())[1]


def _footnotes(rows: list[Row]) -> str:
    """What each founding project in the "seed repo" column measured, and the shown rows' own notes (RAM rows: a
    baseline's note is its model column)."""
    cited = sorted({seed for row in rows for seed, _ in row.seed_repo})
    notes = [row for row in rows if row.model == "ram" and row.note]
    out = ""
    if cited:
        out += ("\n\n\"seed repo\" is each founding project's own test error (%) for the row, marked by its number "
                "(100 minus an accuracy it reports):\n" + "\n".join(f"- {SEEDS[seed]}." for seed in cited))
    if notes:
        out += "\n\nRow notes:\n" + "\n".join(f"- `{row.name}`: {row.note}." for row in notes)
    return out


SHORT = {
    "fc": "FC, 2 layers of 256",
    "convnet": "convnet, 2 layers",
    "screen": "the whole screen every step",
    "random-agent": "random moves",
    "sb3-ppo": "stable-baselines3 PPO on the screen",
    "multihead": "multi-head convnet",
}
"""The compact table's model column for the models without a policy of their own."""


def short_model(row: Row) -> str:
    """The compact table's model column, at most 8 words with the shipped name: what the model is, not its recipe
    (which the full table gives)."""
    if row.model == "random-glimpses":
        return f"{row.glimpses} random glimpses"
    if row.model == "dram":
        first = row.phases()[0].preset  # a task it learned first, which taught it more than its own labels do
        return _dram(row) + (f", trained first on {first}" if first != row.preset else "")
    if row.preset in ONE_ANSWER:
        return f"{'RAM' if row.model == 'ram' else SHORT[row.model].split(',')[0]}, {ONE_ANSWER[row.preset]}"
    if row.model != "ram":
        return SHORT[row.model]
    if row.preset in AS_WRITTEN:
        return f"seed {'000' if 'saccade' in row.preset else '002'}'s recipe as written"
    if row.preset == "mnist-saccade":
        return f"{row.glimpses} saccades of a 4x4 patch"
    if row.preset == "catch":
        return f"RAM, {row.glimpses} glimpses and moves"
    core = ", LSTM core" if row.overrides.get("core") == "lstm" else ""
    return f"RAM, {row.glimpses} glimpses{core}"


def _rows(results: dict[str, dict], seeds: dict[str, list[dict]]):
    """(row, its result, its seeds' results) of every row that has a result: results/NAME.json, else the median
    seed's."""
    for row in ROWS:
        runs = seeds.get(row.name, [])
        r = results.get(row.name) or (median_seed(runs) if runs else None)
        if r is not None:
            yield row, r, runs


def _errors(row: Row, r: dict, runs: list[dict]) -> tuple[str, str]:
    """The one-episode cell (bold, "± sd (3 seeds)" over several seeds, a Catch row's sampled rate beside it) and the
    10-averaged cell ("–" for a model without a policy)."""
    for run in (r, *runs):
        if not _whole_image(row) and run.get("error_averaged") is not None and run.get("mc_samples") != 10:
            raise ValueError(f"results for {row.name}: averaged over {run.get('mc_samples')} episodes, the column "
                             "says 10")
    averaged = None if _whole_image(row) else r.get("error_averaged")
    sampled = f" (sampled: {100 - r['catch_rate_sampled']:.2f})" if "catch_rate_sampled" in r else ""
    headline, second = f"**{r['error']:.2f}**{sampled}", _fmt(averaged)
    if len(runs) >= 2:
        if sampled:
            sampled = f" (sampled: {_spread([100 - run['catch_rate_sampled'] for run in runs])})"
        headline = f"**{_spread([run['error'] for run in runs])}**{sampled} ({len(runs)} seeds)"
        if averaged is not None:
            second = _spread([run["error_averaged"] for run in runs])
    return headline, second


def compact_table(results: dict[str, dict], seeds: dict[str, list[dict]] | None = None) -> str:
    """The README's table: a row per model with a result, its task named once, the model in a few words, this project's
    errors at one episode and 10 averaged, the paper's (A / B) and the founding projects' numbers. Recipes, epochs and
    times are in the full `table`."""
    lines = ["| task | model | one episode | 10 averaged | paper A / B | seed repos |", "|---|---|---|---|---|---|"]
    more = ["", "More than one object, beside Ba, Mnih and Kavukcuoglu 2015:", "",
            "| task | model | one episode | 10 averaged | paper |", "|---|---|---|---|---|"]
    task = None
    for row, r, runs in _rows(results, seeds or {}):
        title = row.title or TASK_TITLES[row.preset]
        shown, task = ("" if title == task else title), title
        headline, second = _errors(row, r, runs)
        if row.paper == "dram":
            more.append(f"| {shown} | {short_model(row)}{_shipped(r)} | {headline} | {second} | {row.paper_cell} |")
        else:
            lines.append(f"| {shown} | {short_model(row)}{_shipped(r)} | {headline} | {second} | "
                         f"{_fmt(row.paper_a)} / {_fmt(row.paper_b)} | {_seed_repo(row)} |")
    return "\n".join(lines + (more if len(more) > 5 else []))


def recipes(results: dict[str, dict], seeds: dict[str, list[dict]] | None = None) -> str:
    """The commands that retrain every row with a result and write its results file (`ram reproduce NAME` runs
    them; `--dry-run` prints them), each row under a comment with its training time, as a shell block."""
    out = []
    for row, r, _ in _rows(results, seeds or {}):
        epochs = _epochs(r)
        out.append(f"# {row.name}: {epochs}{'' if epochs.endswith('games') else ' epochs'}, {_train_time(r)}")
        out += [shlex.join(command) for command in reproduce_commands(row, fresh=True)]
    return "\n".join(out)


START, END = "<!-- results:start -->", "<!-- results:end -->"
ILLUSTRATIVE = "<!-- illustrative: {why} -->"
"""Marks the code block under it as one the docs' snippet test does not run, and says why."""


def _replace(path: Path, block: str) -> bool:
    """Rewrite what lies between the markers of path with block; returns whether the file changed."""
    text = path.read_text()
    new = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: f"{START}\n{block}\n{END}", text, flags=re.S)
    if new != text:
        path.write_text(new)
    return new != text


def update_readme(readme: Path, results_dir: Path) -> bool:
    """Rewrite the README's compact table between the markers; returns whether the file changed."""
    return _replace(readme, compact_table(load_results(results_dir), load_seeds(results_dir)))


def page(results: dict[str, dict], seeds: dict[str, list[dict]] | None = None) -> str:
    """The docs' results page between its markers: the full table with its notes, then every row's commands."""
    why = "each row trains for minutes to hours; tests/test_results.py checks these commands"
    return (f"{table(results, seeds)}\n\n## Every row's commands\n\n{ILLUSTRATIVE.format(why=why)}\n"
            f"```bash\n{recipes(results, seeds)}\n```")


def update_page(path: Path, results_dir: Path) -> bool:
    """Rewrite the docs' results page (the full table, every row's commands) between the markers."""
    return _replace(path, page(load_results(results_dir), load_seeds(results_dir)))


def reproduce_commands(row: Row, *, out_root: str = "runs", results_root: str = "results",
                       precision: str | None = None, seed: int | None = None, fresh: bool = False,
                       trained: dict[tuple[str, ...], str] | None = None) -> list[list[str]]:
    """The commands that retrain the row and write its results file; precision overrides the row's arithmetic (fp32
    on a CPU that only emulates bf16). With a training seed S, the run folders are suffixed -sS and the results go to
    results/seeds/NAME-sS.json (`load_seeds`). fresh: as on a fresh clone, whatever this folder holds (a row's
    `--data` folder is written first). trained: the run folder of each `ram train` given before in the same
    invocation, by its arguments, which this adds to: a phase the same as one of them (the first phase several rows
    share) is not trained again, and the phase after it starts from that folder."""
    if row.script:
        return [[*row.script, "--out-file", f"{results_root}/{row.name}.json"]]
    trained = {} if trained is None else trained
    train, moved = [], {}  # moved: a phase's own folder -> the folder where the same phase was trained before
    for phase in row.phases(out_root, seed):
        settings = [{**own, "init": moved.get(own["init"], own["init"])} if "init" in own else own
                    for own in phase.settings]
        if precision is not None:  # over every setting of the row's, as --precision ends a command
            settings = [{k: v for k, v in own.items() if k != "precision"} for own in settings] + [
                {"precision": precision}]
        args = tuple(row.args(phase._replace(settings=tuple(settings))))
        if args in trained:
            moved[phase.out] = trained[args]
        else:
            trained[args] = phase.out
            train.append(["ram", "train", *args, "--out", phase.out])
    out = moved.get(phase.out, phase.out)
    if row.export and (fresh or not Path(row.data).exists()):
        train.insert(0, ["ram", "export-folder", "--dataset", row.export, "--out", row.data])
    results = f"{results_root}/{row.name}.json" if seed is None else f"{results_root}/seeds/{row.name}-s{seed}.json"
    return [*train, ["ram", "eval", "--checkpoint", out, "--json", "--out-file", results]]
