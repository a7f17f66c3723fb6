"""A trained model from Python: `ram.load(name_or_run_folder)`, then `predict(images)` and `glimpses(images)`.

    import ram
    model = ram.load("mnist-g6")                     # a shipped model, or a run folder written by `ram train`
    out = model.predict(images)                      # numpy arrays, PIL images or tensors; one image or a batch
    out.labels, out.probs, out.step_probs, out.locations, out.pixels

Images are checked before anything runs: their size and channels must be the model's, and the error says what was
expected. The model runs on the CPU, in eval mode.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from . import sensor
from .config import ConfigError, RunConfig
from .data.mnist import BUILT_IN
from .data.tasks import seeded
from .hub import load_named


DARK_ON_LIGHT = ("a light background (dark ink on paper?), and this model was trained on light ink on black: invert "
                 "(255 - image) for a meaningful answer")


END = "EOS"
"""The name of the class that ends a string of labels (`ram.tasks.strings`)."""


class Prediction(NamedTuple):
    """What the model did on B images with T glimpses and K classes. With mc_samples = M > 0, probs is the mean of
    M sampled episodes and the per-step fields are the first episode's; with 0, everything follows the policy means."""

    labels: torch.Tensor  # int64 [B] the predicted class; [B, L] for a model that emits L labels in turn (DRAM)
    probs: torch.Tensor  # [B, K] the class probabilities; [B, L, K] each emitted label's
    step_probs: torch.Tensor  # [B, T, K] the class probabilities after each glimpse
    locations: torch.Tensor  # [B, T, 2] each glimpse's centre as (x, y) in [-1, 1], (-1, -1) the top-left corner
    pixels: torch.Tensor  # [B, T, 2] the same centre in pixels, (column, row) from the top-left corner
    output_of: torch.Tensor  # int64 [B, T] the emitted label each glimpse leads to (all 0 when one label is emitted)
    classes: tuple[str, ...] = ()  # the name of each class, by label (`Model.classes`)

    @property
    def names(self) -> list[str]:
        """The predicted classes' names (MNIST: the digits; your own images: their folder names); the labels a
        model emitted in turn, space-separated (a pair of digits: "7 3"), a string up to its end ("3 1 4")."""
        name = lambda label: self.classes[int(label)] if self.classes else str(int(label))  # noqa: E731
        if self.labels.dim() == 2:
            return [" ".join(map(name, row[: n - (row[n - 1] == self._end)])) for row, n in
                    zip(self.labels.tolist(), self.read)]
        return [name(label) for label in self.labels]

    @property
    def read(self) -> list[int]:
        """How many of each image's emitted labels are read: up to and with its first end-of-sequence label (a class
        named EOS), else all of them."""
        return [row.index(self._end) + 1 if self._end in row else len(row) for row in self.labels.tolist()]

    @property
    def _end(self) -> int:
        """The end-of-sequence label, -1 where no class is one."""
        return self.classes.index(END) if END in self.classes else -1

    @property
    def sequence(self) -> bool:
        """The model emitted several labels per image (`labels` is [B, L])."""
        return self.labels.dim() == 2


class Model:
    """A trained classifier with its preprocessing: images of image_size x image_size, `channels` channels, in
    [0, 1] (uint8 images are divided by 255)."""

    def __init__(self, module: torch.nn.Module, cfg: RunConfig, source: str):
        if not cfg.task.classifies:
            raise ConfigError(f"{source}: a {cfg.task.dataset} agent plays games and classifies no images; evaluate it "
                              "with `ram eval` and draw it with `ram viz`")
        self.module, self.cfg, self.source = module.eval(), cfg, source

    @property
    def image_size(self) -> int:
        return self.cfg.model.image_size

    @property
    def classes(self) -> tuple[str, ...]:
        """The name of each class, by label: MNIST's digits, Fashion-MNIST's names, or your folders' names."""
        return self.cfg.labels

    def __repr__(self) -> str:
        m = self.cfg.model
        sensor = f" of {m.patch_size}x{m.patch_size}, {m.scales} scale(s)" if m.about.glimpses else ""
        return f"ram.Model({self.source!r}: {m.kind}, {m.looks()}{sensor}, {self.image_size}x{self.image_size} images)"

    def images(self, images: Any) -> torch.Tensor:
        """Anything `predict` accepts -> float32 [B, C, H, W] in [0, 1]; a ValueError that says what was expected."""
        return as_batch(images, size=self.image_size, channels=self.cfg.model.channels)

    @torch.no_grad()
    def predict(self, images: Any, *, mc_samples: int = 0, seed: int = 0) -> Prediction:
        """Class probabilities, the predicted labels, and where the model looked. mc_samples = 0 follows the policy
        means; M > 0 averages M sampled episodes (drawn from `seed`, so the same call gives the same answer)."""
        if isinstance(mc_samples, bool) or not isinstance(mc_samples, int) or mc_samples < 0:
            raise ValueError(f"mc_samples = {mc_samples!r}: must be an integer >= 0")
        x = self.images(images)
        light = self.light_background(x)
        if light.any():
            warnings.warn(f"{int(light.sum())} of {len(x)} image(s) ({', '.join(map(str, light.nonzero()[:, 0].tolist()[:5]))}"
                          f"{', ...' if light.sum() > 5 else ''}) have {DARK_ON_LIGHT}", stacklevel=2)
        with seeded(seed):
            episodes = [self.module(x, sample=False)] if mc_samples == 0 else [
                self.module(x, sample=True) for _ in range(mc_samples)]
        first = episodes[0]
        probs = torch.stack([F.softmax(ep.logits, dim=-1) for ep in episodes]).mean(0)
        # A model that emits one label (RAM's `Episode`) has no output_of: every glimpse leads to that label.
        output_of = getattr(first, "output_of", None)
        if output_of is None:
            output_of = torch.zeros(first.locations.shape[:2], dtype=torch.int64)
        return Prediction(labels=probs.argmax(-1), probs=probs, step_probs=F.softmax(first.step_logits, dim=-1),
                          locations=first.locations, pixels=(first.locations + 1) * (self.image_size / 2),
                          output_of=output_of, classes=self.classes)

    def light_background(self, images: Any) -> torch.Tensor:
        """bool [B]: which images have a light border (dark ink on paper) where the model was trained on light on
        black (MNIST, Fashion-MNIST). Such a model reads them confidently and wrongly: a black 3 on white reads as an
        8. All False for a model trained on your own images, whose background may be anything."""
        x = self.images(images)
        if self.cfg.task.dataset not in BUILT_IN:  # light ink on black
            return torch.zeros(len(x), dtype=torch.bool)
        border = torch.cat([x[..., 0, :], x[..., -1, :], x[..., :, 0], x[..., :, -1]], dim=-1)  # [B, C, 4 * side]
        return border.mean(dim=(1, 2)) > 0.5

    @torch.no_grad()
    def glimpses(self, images: Any) -> torch.Tensor:
        """What the sensor read at each step, following the policy means: [B, T, scales, C, size, size]."""
        x = self.images(images)
        ep = self.module(x, sample=False)
        m = self.cfg.model
        reads = [sensor.glimpse(x, ep.locations[:, t], m.patch_size, m.scales, pool=m.pool, pad=m.pad)
                 for t in range(ep.locations.shape[1])]
        return torch.stack(reads, dim=1)


def load(name_or_folder: str | Path) -> Model:
    """A shipped model by name (`ram eval --pretrained NAME`) or a run folder written by `ram train`."""
    module, cfg = load_named(name_or_folder)
    return Model(module, cfg, str(name_or_folder))


def as_batch(images: Any, *, size: int, channels: int) -> torch.Tensor:
    """One image or a batch, as a PIL image, a list of them, a numpy array or a tensor, uint8 (0-255) or float
    (0-1), laid out [H, W], [H, W, C] (numpy, PIL) or [C, H, W] (tensors), with a leading batch axis or not ->
    float32 [B, C, H, W] in [0, 1]."""
    expected = (f"{size}x{size} images with {channels} channel(s): a PIL image, a numpy array [H, W] / [B, H, W] / "
                f"[B, H, W, C] or a tensor [H, W] / [C, H, W] / [B, C, H, W], uint8 or float in [0, 1]")
    if isinstance(images, (list, tuple)):
        if not images:
            raise ValueError(f"images: an empty list; expected {expected}")
        return torch.cat([as_batch(image, size=size, channels=channels) for image in images])
    if type(images).__module__.startswith("PIL."):
        images = np.asarray(images.convert("L" if channels == 1 else "RGB"))
    if isinstance(images, np.ndarray):
        if images.ndim == 3 and images.shape[-1] in (1, 3) and images.shape[-1] != images.shape[-2]:
            images = images[None]
        if images.ndim == 4 and images.shape[-1] in (1, 3):  # channels last, as numpy and PIL lay them out
            images = np.moveaxis(images, -1, 1)
        images = torch.from_numpy(np.array(images))  # a copy: PIL arrays are read-only
    if not isinstance(images, torch.Tensor):
        raise ValueError(f"images: got a {type(images).__name__}; expected {expected}")
    x = images.detach().cpu()
    if x.dtype == torch.uint8:
        x = x.float() / 255
    elif x.is_floating_point():
        x = x.float()
        if x.numel() and (x.min() < 0 or x.max() > 1 or not torch.isfinite(x).all()):
            raise ValueError(f"images: float values in [{x.min():.3g}, {x.max():.3g}]; expected {expected}")
    else:
        raise ValueError(f"images: dtype {images.dtype}; expected {expected}")
    if x.dim() == 2:
        x = x[None, None]
    elif x.dim() == 3:
        x = x[:, None] if channels == 1 and x.shape[0] != 1 else x[None]
    if x.dim() != 4 or x.shape[1:] != (channels, size, size):
        raise ValueError(f"images: shape {tuple(images.shape)}; expected {expected}")
    # The sensor reads the batch as one flat buffer: a channels-last layout (a permuted [B, H, W, C] tensor, numpy's
    # stack of transposed images) ended in a RuntimeError from view().
    return x.contiguous()
