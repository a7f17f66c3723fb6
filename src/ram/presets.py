"""Named experiments. Each is a complete RunConfig; command-line flags override single fields.

A preset is the recipe of its rows of the paper's tables (`ram reproduce`): the shipped weights of every row were
trained with the config `ram train --preset NAME --glimpses G` gives (the manifest holds each one's config), plus the
row's own flags where it has any (`ram.results.ROWS`; `ram reproduce ROW --dry-run` prints them: a longer schedule,
bf16 and a glimpse network twice the paper's width, `ram.results.WIDE`, or an LSTM core). How each recipe was found is
in results/NOTES.md (the location std of 0.2 on the 60x60 and 100x100 canvases among them).

auto is the mnist recipe, whose patch size, scales, glimpses, location std and epochs `ram.auto` derives from the
images given with --data PATH (it trains on nothing else); those values here are only the flags' placeholders.

mnist-saccade is seed 000's model and loss (prob reward, batch-mean baseline, REINFORCE at 1e-3 reaching the LSTM),
trained at batch 32 for 30 epochs with the lattice location fed to the core beside the patch, training digits shifted
by up to 2 pixels and dropout 0.5 on the state the classifier reads (without the last two it memorises its training
set). catch is seed 002's agent (6x6 glimpses, 3 scales, LSTM of 256, std 0.25) with what makes it learn: the
max-pooled retina, the location policy off the core's gradient, the baseline's regression training the core,
REINFORCE at 0.1 and an entropy bonus.
"""

from __future__ import annotations

import dataclasses

from .config import ConfigError, ModelConfig, RunConfig, TaskConfig, TrainConfig


def _preset(name: str, task: TaskConfig, model: ModelConfig, train: TrainConfig, about: str):
    """A preset trains in the machine's best arithmetic (precision auto): bf16 where it is native, else fp32."""
    model = dataclasses.replace(model, image_size=task.canvas)
    train = dataclasses.replace(train, precision="auto")
    return name, (RunConfig(preset=name, task=task, model=model, train=train), about)


PRESETS: dict[str, tuple[RunConfig, str]] = dict(
    [
        _preset(
            "mnist",
            TaskConfig(dataset="mnist", canvas=28),
            ModelConfig(glimpses=6, patch_size=8, scales=1, std=0.1),
            TrainConfig(epochs=100, lr=1e-3, lr_min=1e-5),
            "28x28 centred MNIST, 8x8 glimpses, 1 scale, 6 glimpses",
        ),
        _preset(
            "mnist-translated",
            TaskConfig(dataset="mnist", canvas=60),
            ModelConfig(glimpses=6, patch_size=12, scales=3, std=0.2),
            TrainConfig(epochs=250, lr=1e-3, lr_min=1e-5),
            "60x60 translated MNIST, 12x12 glimpses, 3 scales, 6 glimpses",
        ),
        _preset(
            "mnist-cluttered",
            TaskConfig(dataset="mnist", canvas=60, pieces=4),
            ModelConfig(glimpses=8, patch_size=12, scales=3, std=0.2),
            TrainConfig(epochs=250, lr=1e-3, lr_min=1e-5),
            "60x60 cluttered MNIST (4 pieces of 8x8), 12x12 glimpses, 3 scales, 8 glimpses",
        ),
        _preset(
            "mnist-cluttered-100",
            TaskConfig(dataset="mnist", canvas=100, pieces=8),
            ModelConfig(glimpses=8, patch_size=12, scales=4, std=0.2),
            TrainConfig(epochs=160, lr=1e-3, lr_min=1e-5),
            "100x100 cluttered MNIST (8 pieces of 8x8), 12x12 glimpses, 4 scales, 8 glimpses",
        ),
        _preset(
            "mnist-saccade",
            TaskConfig(dataset="mnist", canvas=28, shift=2),
            ModelConfig(glimpses=20, patch_size=4, scales=1, policy="saccade", saccade_step=2, init_downsample=4,
                        dropout=0.7, state_dropout=0.5, glimpse_net="pixels+where", core="lstm", hidden=512,
                        policy_hidden=512, baseline="batch", reinforce_core=True),
            TrainConfig(epochs=30, batch_size=32, lr=1e-3, lr_min=1e-5, reward="prob", rl_weight=1e-3),
            "28x28 MNIST, seed 000's hard attention: one 4x4 patch, 20 saccades of 2 pixels in 8 directions",
        ),
        _preset(
            "catch",
            TaskConfig(dataset="catch", canvas=24),
            ModelConfig(classes=0, actions=3, glimpses=23, patch_size=6, scales=3, pool="max", core="lstm", hidden=256,
                        std=0.25, reinforce_core=True, detach_location=True, baseline="state"),
            TrainConfig(epochs=80, batch_size=64, lr=1e-3, lr_min=1e-5, rl_weight=0.1, entropy_weight=0.01,
                        eval_mc_samples=0),
            "Catch on a 24x24 screen: 6x6 glimpses, 3 scales, an LSTM of 256, a move after every glimpse",
        ),
        _preset(
            "auto",
            TaskConfig(dataset="mnist", canvas=28),
            ModelConfig(glimpses=6, patch_size=8, scales=1, std=0.1),
            TrainConfig(epochs=100, lr=1e-3, lr_min=1e-5),
            "your own images (--data PATH, the default there): the mnist recipe with the glimpse, std and epochs "
            "derived from the images' size and number (ram.auto)",
        ),
        _preset(
            "fashion",
            TaskConfig(dataset="fashion", canvas=28),
            ModelConfig(glimpses=6, patch_size=8, scales=1, std=0.1),
            TrainConfig(epochs=100, lr=1e-3, lr_min=1e-5),
            "28x28 Fashion-MNIST, 8x8 glimpses, 1 scale, 6 glimpses",
        ),
    ]
)


def get(name: str) -> RunConfig:
    if name not in PRESETS:
        raise ConfigError(f"preset = {name!r}: unknown; valid presets are {', '.join(PRESETS)}")
    return PRESETS[name][0]


def resolve(name: str, *, task: dict | None = None, model: dict | None = None, train: dict | None = None) -> RunConfig:
    """A preset with overrides (None values are ignored), validated."""
    cfg = get(name)
    parts = {}
    for section, overrides in (("task", task), ("model", model), ("train", train)):
        overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
        parts[section] = dataclasses.replace(getattr(cfg, section), **overrides)
    return dataclasses.replace(cfg, **parts).validate()
