"""Named experiments. Each is a complete RunConfig; command-line flags override single fields.

A preset is the recipe of its rows of the paper's tables (`ram reproduce`): the shipped weights of every row were
trained with the config `ram train --preset NAME --glimpses G` gives (the manifest holds each one's config), plus the
row's own flags where it has any (`ram.results.ROWS`; `ram reproduce ROW --dry-run` prints them: a longer schedule,
bf16 and a glimpse network twice the paper's width, `ram.results.WIDE`, or an LSTM core). How each recipe was found is
in results/NOTES.md (the location std of 0.2 on the 60x60 and 100x100 canvases among them).

auto is the mnist recipe, whose patch size, scales, glimpses, location std and epochs `ram.auto` derives from the
images given with --data PATH (it trains on nothing else); those values here are only the flags' placeholders, and
so is its task section, your own images', whose folder, classes and size --data PATH gives.

mnist-saccade is seed 000's model (a 4x4 patch, saccades on a lattice, an initial-location network, an LSTM of 512)
with its reward and baseline (the probability of a right guess, the batch's mean reward, REINFORCE reaching the
LSTM) but this project's recipe: REINFORCE averaged over the batch at 1e-3 where seed 000 sums it, the lattice
location fed to the core beside the patch, training digits shifted by up to 2 pixels, dropout 0.5 on the state the
classifier reads (without the last two it memorises its training set), 30 epochs at batch 32 on a cosine schedule.
mnist-saccade-000 is seed 000's recipe as written (`seed_000`). catch is seed 002's agent (6x6 glimpses, 3 scales,
LSTM of 256, std 0.25) with what makes it learn here: the location policy off the core's gradient, a learned
baseline of the state whose regression trains the core, every decision reinforced, REINFORCE at 0.1 and an entropy
bonus, Adam at 1e-3 on a cosine schedule. catch-002 is seed 002's agent and loss as written (`seed_002`).
"""

from __future__ import annotations

import dataclasses

from .config import ConfigError, LossConfig, ModelConfig, NetConfig, PolicyConfig, RunConfig, TaskConfig, TrainConfig
from .dram import DramConfig
from .tasks.multi import MultiDigitConfig
from .tasks.strings import HouseNumbersConfig, NumbersConfig
from .policies import GaussianConfig, SaccadeConfig
from .tasks import CatchConfig, DigitsConfig, ImagesConfig

MNIST_MEAN = 0.1306604762738429
MNIST_STD = 0.30810780713141817
"""The mean and standard deviation (n - 1 in the denominator, as Torch's std()) of the 60,000 MNIST training
images' pixels in [0, 1], by which seed 000 standardises its inputs (tests/test_seeds.py recomputes them)."""

SEED_000 = dict(
    task=DigitsConfig(dataset="mnist", canvas=28, val_size=1000),
    model=ModelConfig(glimpses=20, patch_size=4, scales=1, glimpse_net="pixels", core="lstm", hidden=512,
                      reinforce_core=True, pixel_mean=MNIST_MEAN, pixel_std=MNIST_STD),
    policy=SaccadeConfig(saccade_step=2, init_downsample=4, dropout=0.7, elu_logits=True, policy_hidden=512),
    train=TrainConfig(epochs=10, batch_size=100, lr=1e-3, lr_min=1e-3, schedule="constant", keep="last"),
    loss=LossConfig(reward="prob", rl_weight=1e-3, rl_reduction="sum", baseline="batch"),
)
"""Seed 000's main.lua as written: the patch alone into the LSTM, REINFORCE summed over the batch at 1e-3 with the
batch's mean reward as baseline, an ELU before each softmax, standardised pixels, Adam at a constant 1e-3, 10 epochs
at batch 100, the last weights tested. Seed 000 trains on all 60,000 training images; here 59,000, as 1,000 are held
out to validate each epoch (which chooses nothing: keep="last"). What cannot be reproduced is in its row's note
(`ram.results`)."""

SEED_002 = dict(
    task=CatchConfig(canvas=24),
    model=ModelConfig(classes=0, actions=3, glimpses=23, patch_size=6, scales=3, pool="max", pad="edge", core="lstm",
                      hidden=256, reinforce_core=True),
    policy=GaussianConfig(std=0.25, squash="sample", first_glimpse="random"),
    train=TrainConfig(epochs=32, batch_size=64, lr=0.99e-4, lr_min=1e-7, schedule="exponential", lr_decay=0.99,
                      eval_mc_samples=0, keep="last"),
    loss=LossConfig(rl_weight=1.0, rl_reduction="sum", discount=0.0, baseline="scalar"),
)
"""Seed 002's RAM_catch.py as written: a random first glimpse, the location tanh of a Gaussian sample, a max-pooled
retina padded by repeating the border, REINFORCE on the last step's decisions only (gamma 0) and a learned scalar
baseline, both summed over the batch, reaching the LSTM from the moves and the locations alike; Adam at 1e-4 times
0.99 per epoch from its first epoch on (so 0.99e-4 in epoch 0), floored at 1e-7; 22,400 games an epoch. 32 epochs
(0.72M games) is where the first catch agent was stopped once it held 95% along its modes, and where the two are set
side by side (the catch agent now trains on to 80); seed 002 played 700 epochs (15.7M)."""


def _preset(name: str, task: TaskConfig, model: NetConfig, train: TrainConfig, about: str,
            loss: LossConfig = LossConfig(), policy: PolicyConfig = GaussianConfig()):
    model = dataclasses.replace(model, image_size=task.canvas)
    return name, (RunConfig(preset=name, task=task, model=model, policy=policy, train=train, loss=loss), about)


def _dram(name: str, task: TaskConfig, model: NetConfig, about: str):
    """A DRAM preset: 100 epochs of Adam at 1e-3 (cosine to 1e-5), the location policy's std 0.2."""
    return _preset(name, task, model, TrainConfig(precision="auto", epochs=100, lr=1e-3, lr_min=1e-5), about,
                   policy=GaussianConfig(std=0.2))


PRESETS: dict[str, tuple[RunConfig, str]] = dict(
    [
        _preset(
            "mnist",
            DigitsConfig(dataset="mnist", canvas=28),
            ModelConfig(glimpses=6, patch_size=8, scales=1),
            TrainConfig(precision="auto", epochs=100, lr=1e-3, lr_min=1e-5),
            "28x28 centred MNIST, 8x8 glimpses, 1 scale, 6 glimpses",
        ),
        _preset(
            "mnist-translated",
            DigitsConfig(dataset="mnist", canvas=60),
            ModelConfig(glimpses=6, patch_size=12, scales=3),
            TrainConfig(precision="auto", epochs=250, lr=1e-3, lr_min=1e-5),
            "60x60 translated MNIST, 12x12 glimpses, 3 scales, 6 glimpses",
            policy=GaussianConfig(std=0.2),
        ),
        _preset(
            "mnist-cluttered",
            DigitsConfig(dataset="mnist", canvas=60, pieces=4),
            ModelConfig(glimpses=8, patch_size=12, scales=3),
            TrainConfig(precision="auto", epochs=250, lr=1e-3, lr_min=1e-5),
            "60x60 cluttered MNIST (4 pieces of 8x8), 12x12 glimpses, 3 scales, 8 glimpses",
            policy=GaussianConfig(std=0.2),
        ),
        _preset(
            "mnist-cluttered-100",
            DigitsConfig(dataset="mnist", canvas=100, pieces=8),
            ModelConfig(glimpses=8, patch_size=12, scales=4),
            TrainConfig(precision="auto", epochs=160, lr=1e-3, lr_min=1e-5),
            "100x100 cluttered MNIST (8 pieces of 8x8), 12x12 glimpses, 4 scales, 8 glimpses",
            policy=GaussianConfig(std=0.2),
        ),
        _preset(
            "mnist-saccade",
            DigitsConfig(dataset="mnist", canvas=28, shift=2),
            ModelConfig(glimpses=20, patch_size=4, scales=1, state_dropout=0.5, glimpse_net="pixels+where",
                        core="lstm", hidden=512, reinforce_core=True),
            TrainConfig(precision="auto", epochs=30, batch_size=32, lr=1e-3, lr_min=1e-5),
            "28x28 MNIST, seed 000's hard attention: one 4x4 patch, 20 saccades of 2 pixels in 8 directions",
            loss=LossConfig(reward="prob", rl_weight=1e-3, baseline="batch"),
            policy=SaccadeConfig(saccade_step=2, init_downsample=4, dropout=0.7, policy_hidden=512),
        ),
        _preset(
            "mnist-saccade-000",
            **SEED_000,
            about="28x28 MNIST, seed 000's hard attention as written: its model, loss and schedule",
        ),
        _preset(
            "catch",
            CatchConfig(canvas=24),
            ModelConfig(classes=0, actions=3, glimpses=23, patch_size=6, scales=3, pool="max", core="lstm", hidden=256,
                        reinforce_core=True, detach_location=True),
            TrainConfig(precision="auto", epochs=80, batch_size=64, lr=1e-3, lr_min=1e-5, eval_mc_samples=0),
            "Catch on a 24x24 screen: 6x6 glimpses, 3 scales, an LSTM of 256, a move after every glimpse",
            loss=LossConfig(rl_weight=0.1, entropy_weight=0.01, baseline="state"),
            policy=GaussianConfig(std=0.25),
        ),
        _preset(
            "auto",
            ImagesConfig(canvas=28),
            ModelConfig(glimpses=6, patch_size=8, scales=1),
            TrainConfig(precision="auto", epochs=100, lr=1e-3, lr_min=1e-5),
            "your own images (--data PATH, the default there): the mnist recipe with the glimpse, std and epochs "
            "derived from the images' size and number (ram.auto)",
        ),
        _preset(
            "catch-002",
            **SEED_002,
            about="Catch on a 24x24 screen, seed 002's agent and loss as written",
        ),
        _dram(
            "mnist-pairs",
            MultiDigitConfig(dataset="mnist-pairs", canvas=100, pieces=8),
            DramConfig(glimpses=4, scales=3, outputs=2, classes=10),
            "two MNIST digits on a 100x100 cluttered canvas, named in either order: DRAM, 2 glimpses of 3 scales per digit",
        ),
        _dram(
            "mnist-addition",
            MultiDigitConfig(dataset="mnist-addition", canvas=100, pieces=8),
            DramConfig(glimpses=4, scales=3, outputs=1, classes=19),
            "the sum of two MNIST digits on a 100x100 cluttered canvas: DRAM, 4 glimpses, one of 19 answers",
        ),
        _dram(
            "mnist-numbers",
            NumbersConfig(),
            DramConfig(glimpses=12, scales=3, outputs=6, classes=11),
            "house numbers of 1-5 MNIST digits, 54x54 crops as SVHN's: DRAM, 2 glimpses of 3 scales per label, "
            "then EOS (--model multihead: the multi-head convnet)",
        ),
        _dram(
            "svhn",
            HouseNumbersConfig(),
            DramConfig(channels=3, glimpses=12, scales=3, outputs=6, classes=11),
            "house numbers from a folder you have (--data DIR: SVHN's format 1, or images and labels.csv), 54x54 "
            "crops: DRAM, 2 glimpses of 3 scales per label, then EOS",
        ),
        _preset(
            "fashion",
            DigitsConfig(dataset="fashion", canvas=28),
            ModelConfig(glimpses=6, patch_size=8, scales=1),
            TrainConfig(precision="auto", epochs=100, lr=1e-3, lr_min=1e-5),
            "28x28 Fashion-MNIST, 8x8 glimpses, 1 scale, 6 glimpses",
        ),
    ]
)


def get(name: str) -> RunConfig:
    if name not in PRESETS:
        raise ConfigError(f"preset = {name!r}: unknown; valid presets are {', '.join(PRESETS)}")
    return PRESETS[name][0]


def resolve(name: str, *, task: dict | None = None, model: dict | None = None, policy: dict | None = None,
            train: dict | None = None, loss: dict | None = None) -> RunConfig:
    """A preset with overrides (None values are ignored) of its sections' settings, validated. A setting its section
    lacks (another task's) is a ConfigError naming it."""
    cfg = get(name)
    parts = {}
    for section, overrides in (("task", task), ("model", model), ("policy", policy), ("train", train),
                               ("loss", loss)):
        overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
        part = getattr(cfg, section)
        for key in overrides.keys() - {f.name for f in dataclasses.fields(part)}:
            raise ConfigError(f"{key} = {overrides[key]!r}: not a setting of preset {name}'s {section} section "
                              f"({type(part).__name__})")
        parts[section] = dataclasses.replace(part, **overrides)
    return dataclasses.replace(cfg, **parts).validate()
