"""The auto recipe: a glimpse and a schedule derived from your images (`ram train --data PATH`, or `--preset auto`).

The mnist preset was made for 28x28 digits: one 8x8 scale reads a 40x40 scene through a keyhole. So for your own
images the glimpse follows their side S and the schedule their number N (the training images left after validation),
by this rule:

- patch_size p: S / 5 rounded, within 4..12 (and at most S). Small enough that a glimpse is a detail, large enough to
  hold one; 12 is what the paper reads its 60x60 and 100x100 canvases with.
- scales: as many as fit, 1 + floor(log2(S / p)) (at most 8), so the coarsest, p * 2**(scales - 1) pixels, sees more
  than half of the side, most often three quarters or more: the first glimpse already sees where the object is.
- glimpses: ceil(S / p) + 2, within 4..8: as many as the finest patch needs to cross the image, and two more to look
  around (the paper's best: 7 on 28x28, 8 on 100x100).
- std: 0.1 up to 32 pixels, 0.2 above: what the MNIST recipes found (0.1 on 28x28; 0.2 on 60x60 and 100x100).
- epochs: 2,560,000 / N (20,000 steps of 128) rounded up, within 10..500: the run shows about 2.56 million images
  whatever N is, a small set many times over (at most 500; a set under 5,120 images gets fewer steps), a large one
  at least 10 times.
- val_every: the steps of a fiftieth of the run, so that it is validated about 50 times (0, after every epoch, when
  that is less than two epochs): a set of a few hundred images has epochs of a few steps, each not worth a
  validation.
- patience: 10 validations, a fifth of the run: a run whose validation error has not improved for that long stops and
  tests its best weights.
- The validation images are a sixth of the training images, at most 10,000 (`ram.tasks.images.default_val_size`).

A field given explicitly (a flag, or a keyword of `ram.flags.recipe`) is kept, and the rule works around it: a given
patch size gets the scales and glimpses that suit it, given scales get a patch that fits them. Everything else is the
mnist preset's recipe (Adam at 1e-3, cosine to 1e-5, batch 128, the paper's network).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, NamedTuple

from .config import RunConfig

PRESET = "auto"
"""The preset name of this recipe (ram.presets holds its base: the mnist recipe)."""
DERIVED = ("patch_size", "scales", "glimpses", "std", "epochs", "val_every", "patience")
"""The fields the rule chooses (all in the model and train sections)."""

IMAGES_SEEN = 2_560_000
"""Training images the schedule aims to show, repeats included: 20,000 steps of 128."""
EPOCHS = (10, 500)
PATCH = (4, 12)
GLIMPSES = (4, 8)
FINE_STD, COARSE_STD, FINE_UP_TO = 0.1, 0.2, 32
VALIDATIONS = 50
"""About this many validations a run (val_every)."""
PATIENCE = 10
"""Validations without a better error before a run stops: a fifth of VALIDATIONS."""


class Choice(NamedTuple):
    """One field's value, and why it is that (for the lines `ram train` prints)."""

    value: Any
    why: str
    given: bool = False


def _clamp(x: int, bounds: tuple[int, int]) -> int:
    return max(bounds[0], min(bounds[1], x))


def _most_scales(size: int, patch: int) -> int:
    """The most scales of `patch` that fit in `size` (at least 1: a patch larger than the image is refused later,
    naming it)."""
    return min(8, 1 + max(0, math.floor(math.log2(size / patch))))


def derive(*, size: int, train_images: int, given: Mapping[str, Any] | None = None,
           batch_size: int = 128) -> dict[str, Choice]:
    """The rule's choice for each field of DERIVED, for images of side `size` and `train_images` to train on in
    batches of batch_size. given: fields set explicitly, by name; each is kept as it is."""
    given = {k: v for k, v in (given or {}).items() if k in DERIVED}
    out: dict[str, Choice] = {}

    def keep(name: str) -> bool:
        if name in given:
            out[name] = Choice(given[name], "yours", given=True)
        return name in given

    if not keep("patch_size"):
        p = min(size, _clamp(round(size / 5), PATCH))
        why = f"a fifth of the {size}-pixel side, within {PATCH[0]}..{PATCH[1]}"
        if "scales" in given and p * 2 ** (given["scales"] - 1) > size:
            p, why = max(1, size // 2 ** (given["scales"] - 1)), f"the largest whose {given['scales']} scales fit"
        out["patch_size"] = Choice(p, why)
    p = out["patch_size"].value
    if not keep("scales"):
        k = _most_scales(size, p)
        sides = [p * 2**i for i in range(k)]
        out["scales"] = Choice(k, f"{', '.join(map(str, sides))} pixels: the coarsest sees "
                                  f"{100 * sides[-1] / size:.0f}% of the side")
    if not keep("glimpses"):
        across = math.ceil(size / p)
        out["glimpses"] = Choice(_clamp(across + 2, GLIMPSES), f"{across} patches of {p} cross the image, and 2 more "
                                                               f"to look around, within {GLIMPSES[0]}..{GLIMPSES[1]}")
    if not keep("std"):
        std = FINE_STD if size <= FINE_UP_TO else COARSE_STD
        out["std"] = Choice(std, f"{std * size / 2:.1f} pixels; {FINE_STD} up to {FINE_UP_TO} pixels, {COARSE_STD} "
                                 "above (the MNIST recipes')")
    if not keep("epochs"):
        epochs = _clamp(math.ceil(IMAGES_SEEN / max(train_images, 1)), EPOCHS)
        out["epochs"] = Choice(epochs, f"{IMAGES_SEEN:,} images seen / {train_images:,} to train on, within "
                                       f"{EPOCHS[0]}..{EPOCHS[1]}")
    if not keep("val_every"):
        per_epoch = -(-max(train_images, 1) // batch_size)
        steps = out["epochs"].value * per_epoch
        every = steps // VALIDATIONS if steps // VALIDATIONS >= 2 * per_epoch else 0
        out["val_every"] = Choice(every, f"validated: {steps:,} steps / {VALIDATIONS} validations" if every else
                                  f"validated: two epochs are more than a {VALIDATIONS}th of the run")
    if not keep("patience"):
        out["patience"] = Choice(PATIENCE, f"stop when {PATIENCE} validations in a row bring no better error")
    return out


def apply(cfg: RunConfig, choices: Mapping[str, Choice]) -> RunConfig:
    """cfg with the chosen values in their sections."""
    sections = {}
    for section in ("model", "policy", "train", "loss"):
        part = getattr(cfg, section)
        names = {f.name for f in dataclasses.fields(part)}
        sections[section] = dataclasses.replace(part, **{k: c.value for k, c in choices.items() if k in names})
    return dataclasses.replace(cfg, **sections)


def train_images(total: int, val_size: int, train_size: int) -> int:
    """The images a run trains on: those left after the validation split, the first train_size of them if set."""
    left = total - val_size
    return min(train_size, left) if train_size else left


def explain(cfg: RunConfig, choices: Mapping[str, Choice], *, size_from: str, total: int, val_given: bool) -> list[str]:
    """The lines `ram train` prints before training: what the rule chose for cfg and why, each with its flag.
    size_from: where the image size came from; total: the training images before the validation split."""
    m, t = cfg.model, cfg.task
    colour = "RGB" if m.channels == 3 else "grey"
    lines = [f"recipe auto: {len(t.class_names)} classes of {t.canvas}x{t.canvas} {colour} images (the size is "
             f"{size_from}), {train_images(total, t.val_size, t.train_size):,} to train on, {t.val_size:,} to "
             "validate"]

    def line(text: str, flag: str, why: str) -> None:
        lines.append(f"  {text:<20} {flag:<13} {why}")

    def chosen(text: str, name: str) -> None:
        c = choices[name]
        line(text, f"--{name.replace('_', '-')}", "yours" if c.given else c.why)

    if m.about.glimpses:  # a whole-image baseline (convnet, fc) has no glimpse to choose
        chosen(f"{m.patch_size}x{m.patch_size} patch", "patch_size")
        chosen(f"{m.scales} scale{'s' if m.scales > 1 else ''}", "scales")
        chosen(f"{m.glimpses} glimpses", "glimpses")
        chosen(f"location std {cfg.policy.std:g}", "std")
    chosen(f"{cfg.train.epochs} epoch{'s' if cfg.train.epochs > 1 else ''}", "epochs")
    chosen(f"every {cfg.train.val_every} steps" if cfg.train.val_every else "every epoch", "val_every")
    chosen(f"patience {cfg.train.patience}", "patience")
    line(f"{t.val_size:,} to validate", "--val-size",
         "yours" if val_given else f"a sixth of the {total:,} training images, at most 10,000")
    lines.append("  A flag overrides its line; the rest is the mnist preset's recipe (ram train --preset auto --help).")
    return lines
