"""Pictures of a classifier's glimpses: where it looks, what it sees, what it guesses.

`trace` runs a model once on a batch, and every picture of that batch is drawn from the one `Trace`, so the pictures
agree with each other.

Geometry follows ram.sensor. Scale k of a glimpse at (x, y) is the square of side s = patch_size * 2**k whose top-left
pixel is (round(u) - s // 2, round(v) - s // 2), with (u, v) = ((x + 1) / 2 * W, (y + 1) / 2 * H). Images are drawn
with pixel j spanning [j, j + 1) (`extent=(0, W, H, 0)`), so that square is exactly the rectangle (x0, y0, s, s).
A saccade model's glimpse is one window of its lattice (`windows`), the same square.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from PIL import Image, ImageDraw

from .. import sensor
from ..config import ConfigError
from ..data import Split, to_float
from ..models import evaluating
from ..policies import Lattice
from ..sensor import boxes
from .common import (
    DPI,
    PATH,
    _font,
    _frame,
    _hue,
    _order_bar,
    _order_colours,
    _RIM,
    _rgb,
    _rgb255,
    _write_gif,
    save,
)

GIF_HEADER = 46  # pixels of text above each image in a GIF frame


class Trace(NamedTuple):
    """What a model did on a batch, on the CPU, ready to draw. B images, T glimpses, K classes."""

    images: torch.Tensor  # float [B, C, H, W] in [0, 1]
    labels: torch.Tensor  # int64 [B]
    locations: torch.Tensor  # [B, T, 2] (x, y) in [-1, 1], where each glimpse was read
    probs: torch.Tensor  # [B, T, K] the class probabilities after each glimpse
    patch_size: int
    scales: int
    lattice: Lattice | None = None  # a saccade model's windows (ram.policies.Lattice); None for any point
    classes: tuple[str, ...] = ()  # the name of each class, by label; () draws the label numbers

    def name(self, label: int) -> str:
        """A class's name ("Sandal"), or its number when the trace has no names."""
        return self.classes[label] if self.classes else str(label)

    @property
    def preds(self) -> torch.Tensor:
        """[B] the final guess."""
        return self.probs[:, -1].argmax(-1)

    @property
    def correct(self) -> torch.Tensor:
        """[B] bool: the final guess is the label."""
        return self.preds == self.labels

    def verdict(self, i: int, guess: int | None = None) -> bool | None:
        """Whether image i's guess (the final one by default) is right; None for an image of unknown label (-1)."""
        if int(self.labels[i]) < 0:
            return None
        return (int(self.preds[i]) if guess is None else guess) == int(self.labels[i])

    def only(self, i: int) -> "Trace":
        """Image i's part of the trace, to draw it alone."""
        one = slice(i, i + 1)
        return self._replace(images=self.images[one], labels=self.labels[one], locations=self.locations[one],
                             probs=self.probs[one])

    def title(self, i: int) -> str:
        known = int(self.labels[i]) >= 0
        return f"pred {self.name(int(self.preds[i]))}" + (f" / true {self.name(int(self.labels[i]))}" if known else "")


@torch.no_grad()
def trace(model, images, labels=None, classes: Sequence[str] = ()) -> Trace:
    """Run a glimpse model on images following its policy means.

    model: a network (images uint8 [B, H, W] or float [B, C, H, W]) or a `ram.load(...)` model (images in any form
    its predict() takes: numpy arrays, PIL images, tensors). labels: [B], or None for images nobody labelled (their
    pictures are drawn in blue, not green or red). classes: the name of each label for the titles (a `ram.load`
    model brings its own). The model is run in eval mode with sample=False, so the picture
    shows the deterministic policy; its mode is restored afterwards (this is called from training hooks).

        model = ram.load("mnist-g6"); ram.viz.save(ram.viz.tracks(ram.viz.trace(model, my_images)), "tracks.png")
    """
    from ..api import Model

    if isinstance(model, Model):
        images, model, classes = model.images(images), model.module, classes or model.classes
    model.cfg.require_drawn("model", model.cfg.kind)
    floats = to_float(images) if images.dtype == torch.uint8 else images.float()
    device = next(model.parameters()).device
    with evaluating(model):
        ep = model(floats.to(device), sample=False)
    labels = torch.full((floats.shape[0],), -1) if labels is None else torch.as_tensor(labels)
    return Trace(
        images=floats.cpu(),
        labels=labels.long().cpu(),
        locations=ep.locations.float().cpu(),
        probs=F.softmax(ep.step_logits.float(), dim=-1).cpu(),
        patch_size=model.cfg.patch_size,
        scales=model.cfg.scales,
        lattice=model.policy.lattice,
        classes=tuple(classes),
    )


def windows(locations: torch.Tensor, lattice: Lattice) -> torch.Tensor:
    """The lattice windows a saccade model read: locations [..., 2] on the lattice -> int64 [..., 3] as (x0, y0, side).

    Window (row, col) = lattice.index(location) covers the pixels step * row ... step * row + patch - 1 and likewise
    the columns: the one square `boxes` gives for the sensor's single scale there (tests hold the three together).
    """
    row, col = lattice.index(locations).unbind(-1)
    return torch.stack([col * lattice.step, row * lattice.step, torch.full_like(row, lattice.patch)], dim=-1)


def _pixels(t: Trace, locations: torch.Tensor) -> torch.Tensor:
    """(u, v) pixel coordinates of locations [..., 2]."""
    H, W = t.images.shape[-2:]
    return (locations + 1) / 2 * torch.tensor([W, H], dtype=locations.dtype)



def _draw_track(ax, t: Trace, i: int) -> None:
    """Image i with the boxes of every scale of every glimpse, the path between them and the step numbers."""
    H, W = t.images.shape[-2:]
    T = t.locations.shape[1]
    colour = _hue(t.verdict(i))
    ax.imshow(_rgb(t.images[i]), extent=(0, W, H, 0), interpolation="nearest", vmin=0, vmax=1)
    sq = boxes(t.locations[i], patch_size=t.patch_size, scales=t.scales, height=H, width=W)  # [T, S, 3]
    for step in range(T):
        # Later glimpses are drawn stronger, so the order still reads where boxes overlap.
        alpha = 0.45 + 0.55 * (step + 1) / T
        for k in range(t.scales):
            x0, y0, s = sq[step, k].tolist()
            finest = k == 0
            ax.add_patch(Rectangle((x0, y0), s, s, fill=False, edgecolor=colour,
                                   alpha=alpha if finest else alpha * 0.55, linewidth=2.4 if finest else 1.0,
                                   linestyle="-" if finest else (0, (4, 2))))
    uv = _pixels(t, t.locations[i]).numpy()
    ax.plot(uv[:, 0], uv[:, 1], "-", color=PATH, linewidth=1.3, alpha=0.9)
    for step, (u, v) in enumerate(uv):
        ax.text(u, v, str(step + 1), ha="center", va="center", fontsize=7, fontweight="bold", color="black",
                bbox=dict(boxstyle="circle,pad=0.18", facecolor=PATH, edgecolor="none", alpha=0.95))
    ax.set_xlim(0, W)
    ax.set_ylim(H, 0)


def tracks(t: Trace, *, n: int = 16, cols: int | None = None) -> Figure:
    """A grid of the first n images, each with its glimpse path, the boxes of every scale and numbered steps.

    Boxes, title and frame are green where the final guess is right and red where it is wrong. The finest scale is
    the thick solid box; coarser scales are thin dashed ones.
    """
    return _grid(t, n, cols, _draw_track)


def _grid(t: Trace, n: int, cols: int | None, draw, *, bar: float = 0.0) -> Figure:
    """The first n images of a trace in a grid, each drawn by draw(ax, t, i), then framed and titled green or red by
    the final guess. bar: inches left free under the grid."""
    n = min(n, t.images.shape[0])
    if n < 1:
        raise ValueError(f"n = {n}: must be >= 1")
    cols = cols or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(2.3 * cols, 2.5 * rows + bar), dpi=DPI)
    for i in range(n):
        ax = fig.add_subplot(rows, cols, i + 1)
        draw(ax, t, i)
        colour = _hue(t.verdict(i))
        _frame(ax, colour)
        title = t.title(i)
        ax.set_title(title, color=colour, fontsize=10 if len(title) <= 22 else 8, fontweight="bold")
    height = fig.get_size_inches()[1]
    fig.subplots_adjust(left=0.02, right=0.98, bottom=(bar + 0.05) / height if bar else 0.02, top=1 - 0.35 / height,
                        wspace=0.08, hspace=0.3)
    return fig



def _draw_saccades(ax, t: Trace, i: int) -> None:
    """Image i with its visited windows shaded by visit order, arrows from window to window, the first one ringed."""
    H, W = t.images.shape[-2:]
    ax.imshow(_rgb(t.images[i]), extent=(0, W, H, 0), interpolation="nearest", vmin=0, vmax=1)
    win = windows(t.locations[i], t.lattice)  # [T, 3]
    colours = _order_colours(len(win))
    # In visit order, so a window seen again takes its latest colour; half transparent, so the digit shows through.
    for (x0, y0, s), colour in zip(win.tolist(), colours):
        ax.add_patch(Rectangle((x0, y0), s, s, facecolor=colour, edgecolor="none", alpha=0.55))
    centres = (win[:, :2] + win[:, 2:] / 2).numpy()  # [T, 2] the window centres, where the sensor centred its patch
    for a, b in zip(centres[:-1], centres[1:]):
        if (a != b).any():  # a move against the border stays put: nothing to draw
            ax.annotate("", xy=b, xytext=a, arrowprops=dict(
                arrowstyle="-|>", color="white", linewidth=1.1, mutation_scale=7, shrinkA=1.5, shrinkB=1.5,
                path_effects=_RIM))
    x0, y0, s = win[0].tolist()
    ax.add_patch(Rectangle((x0, y0), s, s, fill=False, edgecolor=PATH, linewidth=2.4))
    ax.plot(*centres[0], "o", color=PATH, markersize=4, markeredgecolor="black", markeredgewidth=0.8)
    # A saccade off the lattice stops at its border, so the gaze can stay on one window for many glimpses (often a
    # corner it runs into): such a stay says how many glimpses it lasted.
    stays, counts = torch.unique_consecutive(win[:, :2], dim=0, return_counts=True)
    for (x0, y0), count in zip(stays.tolist(), counts.tolist()):
        if count > 1:
            below = y0 + s + 3 <= H  # else above the window, to stay on the image
            ax.text(x0 + s / 2, y0 + s + 0.2 if below else y0 - 0.2, f"x{count}", ha="center",
                    va="top" if below else "bottom", fontsize=7, fontweight="bold", color="white", path_effects=_RIM)
    ax.set_xlim(0, W)
    ax.set_ylim(H, 0)


def saccades(t: Trace, *, n: int = 16, cols: int | None = None) -> Figure:
    """A saccade model's runs as seed 000 draws them: for each of the first n images, the lattice windows it read
    shaded from first (dark violet) to last (yellow) over the image, the saccades as arrows between window centres,
    and the first window ringed in cyan. Title and frame are green where the final guess is right, red where wrong.
    """
    if t.lattice is None:
        raise ValueError("saccades: this trace has no lattice; draw a saccade model's (policy='saccade') trace")
    fig = _grid(t, n, cols, _draw_saccades, bar=0.65)  # room under the grid for the colour bar
    _order_bar(fig, t.locations.shape[1], bottom_in=0.38)
    return fig


def glimpse_panels(t: Trace, *, n: int = 3) -> Figure:
    """For each of the first n images: the image with its track (a saccade model's as `saccades` draws it), then one
    column per glimpse showing each scale's patch as the model receives it (g x g, drawn with nearest-pixel
    upsampling) and the class probabilities after it.
    """
    n = min(n, t.images.shape[0])
    if n < 1:
        raise ValueError(f"n = {n}: must be >= 1")
    _, T, K = t.probs.shape
    S = t.scales
    # [T, n, S, C, g, g]: what the glimpse network was given at every step
    patches = torch.stack([
        sensor.glimpse(t.images[:n], t.locations[:n, step], t.patch_size, S) for step in range(T)
    ])
    cell = 1.25
    fig = Figure(figsize=(cell * (T + 2.1), n * cell * (S + 1.1) + 0.2), dpi=DPI)
    sub = fig.subfigures(n, 1, hspace=0.02)
    for i, sf in enumerate(np.atleast_1d(sub)):
        right = t.verdict(i)
        # Column 1 (empty) keeps the scale labels of the first patch column off the overview image.
        gs = sf.add_gridspec(S + 1, T + 2, width_ratios=[1.8, 0.3] + [1] * T, height_ratios=[1] * S + [1.1],
                             left=0.01, right=0.99, top=0.88, bottom=0.1, wspace=0.12, hspace=0.2)
        ax = sf.add_subplot(gs[:, 0])
        (_draw_track if t.lattice is None else _draw_saccades)(ax, t, i)
        _frame(ax, _hue(right))
        ax.set_title(t.title(i), color=_hue(right), fontsize=10, fontweight="bold")
        for step in range(T):
            for k in range(S):
                a = sf.add_subplot(gs[k, step + 2])
                a.imshow(_rgb(patches[step, i, k]), interpolation="nearest", vmin=0, vmax=1)
                a.set_xticks([])
                a.set_yticks([])
                if k == 0:
                    a.set_title(f"glimpse {step + 1}", fontsize=9)
                if step == 0:
                    side = t.patch_size * 2**k
                    a.set_ylabel(f"{side}x{side}", fontsize=8)
            p = t.probs[i, step]
            top = int(p.argmax())
            hit = t.verdict(i, top)
            a = sf.add_subplot(gs[S, step + 2])
            colours = ["0.75"] * K
            colours[top] = _hue(hit)
            a.bar(range(K), p.numpy(), color=colours, width=0.8)
            a.set_yticks([])
            a.set_xticks(range(K))
            a.set_xticklabels([str(c) for c in range(K)], fontsize=5)
            a.tick_params(length=0, pad=1)
            for side in ("top", "right", "left"):
                a.spines[side].set_visible(False)
            a.text(0.5, 0.97, f"{t.name(top)}: {float(p[top]):.0%}", transform=a.transAxes, ha="center", va="top",
                   fontsize=8, color=_hue(hit), fontweight="bold")
            a.set_ylim(0, 1.3)  # headroom for that label
    return fig



def _numbered_path(pen: ImageDraw.ImageDraw, pts: list[tuple[float, float]], font) -> None:
    """The glimpse centres so far joined by a line, each in a numbered circle, the current one filled."""
    path = _rgb255(PATH)
    if len(pts) > 1:
        pen.line(pts, fill=path, width=2)
    for j, (u, v) in enumerate(pts):
        r = 8
        current = j == len(pts) - 1
        pen.ellipse((u - r, v - r, u + r, v + r), fill=path if current else (24, 24, 24), outline=path, width=2)
        pen.text((u, v), str(j + 1), fill=(0, 0, 0) if current else path, font=font, anchor="mm")


def _window_trail(panel: Image.Image, rects: torch.Tensor, shades: Sequence[tuple[int, int, int]]) -> Image.Image:
    """A saccade model's path so far, as `saccades` draws it: the windows rects [k, 3] (x0, y0, side in panel pixels)
    filled in their visit-order shades at 55% (a later window over an earlier one, the image showing through), a
    white line on a dark rim between their centres, and the first window ringed in cyan."""
    overlay = panel.copy()
    pen = ImageDraw.Draw(overlay)
    for (x0, y0, s), shade in zip(rects.tolist(), shades):
        pen.rectangle((x0, y0, x0 + s - 1, y0 + s - 1), fill=shade)
    panel = Image.blend(panel, overlay, 0.55)
    pen = ImageDraw.Draw(panel)
    centres = [(x0 + s / 2, y0 + s / 2) for x0, y0, s in rects.tolist()]
    if len(centres) > 1:
        pen.line(centres, fill=(0, 0, 0), width=4)
        pen.line(centres, fill=(255, 255, 255), width=2)
    x0, y0, s = rects[0].tolist()
    pen.rectangle((x0, y0, x0 + s - 1, y0 + s - 1), outline=_rgb255(PATH), width=2)
    return panel


def frames(t: Trace, *, n: int = 4, zoom: int | None = None) -> list[Image.Image]:
    """One RGB frame per glimpse with the first n images side by side.

    Each image is upscaled `zoom` times (default: to about 300 pixels, 2..8 times) and shows the path so far with
    numbered steps, the boxes of every scale of the current glimpse (finest thick), and above it the current guess,
    green when it is right and red when it is wrong. A saccade model's path is drawn as `saccades` draws it instead:
    the windows read so far shaded in visit order, the first ringed in cyan. Image i's panel starts at
    x = i * (W * zoom + 8), and its image at y = GIF_HEADER.
    """
    n = min(n, t.images.shape[0])
    if n < 1:
        raise ValueError(f"n = {n}: must be >= 1")
    H, W = t.images.shape[-2:]
    T = t.locations.shape[1]
    z = zoom or max(2, min(8, round(300 / max(H, W))))
    gap = 8
    width, height = n * W * z + (n - 1) * gap, GIF_HEADER + H * z
    big = [Image.fromarray((_rgb(t.images[i]) * 255).round().astype(np.uint8)).resize((W * z, H * z), Image.NEAREST)
           for i in range(n)]
    sq = boxes(t.locations[:n], patch_size=t.patch_size, scales=t.scales, height=H, width=W) * z  # [n, T, S, 3]
    uv = (_pixels(t, t.locations[:n]) * z).numpy()  # [n, T, 2]
    if t.lattice is not None:
        win = windows(t.locations[:n], t.lattice) * z  # [n, T, 3], the squares sq holds for its one scale
        shades = [_rgb255(c[:3]) for c in _order_colours(T)]
    font, small = _font(15), _font(12)
    out = []
    for step in range(T):
        frame = Image.new("RGB", (width, height), (24, 24, 24))
        draw = ImageDraw.Draw(frame)
        for i in range(n):
            left = i * (W * z + gap)
            p = t.probs[i, step]
            guess = int(p.argmax())
            colour = _rgb255(_hue(t.verdict(i, guess)))
            truth = f"   true {t.name(int(t.labels[i]))}" if int(t.labels[i]) >= 0 else ""
            draw.text((left + 4, 3), f"glimpse {step + 1}/{T}{truth}", fill=(230, 230, 230), font=small)
            draw.text((left + 4, 21), f"guess {t.name(guess)}  ({float(p[guess]):.0%})", fill=colour, font=font)
            # Drawn on the image alone, so boxes reaching past its edge are cut there and never cover the text.
            panel = big[i].copy()
            if t.lattice is not None:  # under the current window's box
                panel = _window_trail(panel, win[i, : step + 1], shades[: step + 1])
            pen = ImageDraw.Draw(panel)
            for k in reversed(range(t.scales)):  # coarsest first, so the finest stays on top
                x0, y0, s = sq[i, step, k].tolist()
                pen.rectangle((x0, y0, x0 + s - 1, y0 + s - 1), outline=colour, width=3 if k == 0 else 1)
            if t.lattice is None:
                _numbered_path(pen, [(float(u), float(v)) for u, v in uv[i, : step + 1]], small)
            frame.paste(panel, (left, GIF_HEADER))
        out.append(frame)
    return out



def animate(t: Trace, path: Path, *, n: int = 4, zoom: int | None = None, step_ms: int = 700,
            hold_ms: int = 2500) -> Path:
    """Write `frames` as a looping GIF: step_ms per glimpse, the last frame held for hold_ms."""
    return _write_gif(frames(t, n=n, zoom=zoom), path, step_ms=step_ms, hold_ms=hold_ms)


def pick(split: Split, n: int, *, seed: int = 0) -> Split:
    """n images of a split: the first n for seed 0, else n drawn at random with that seed."""
    N = split.images.shape[0]
    n = min(n, N)
    index = torch.arange(n) if seed == 0 else torch.randperm(N, generator=torch.Generator().manual_seed(seed))[:n]
    return Split(split.images[index], split.labels[index])


def render(model: torch.nn.Module, split: Split, out: Path, *, n: int = 16, seed: int = 0,
           classes: Sequence[str] = ()) -> list[Path]:
    """tracks.png (n images), glimpses.png (the first 3) and glimpses.gif (the first 4) into the folder out; for a
    saccade model also saccades.png (the n images). classes: the name of each label, for the titles."""
    if n < 1:
        raise ConfigError(f"n = {n}: must be >= 1")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    images, labels = pick(split, max(n, 4), seed=seed)
    t = trace(model, images, labels, classes)
    return [
        save(tracks(t, n=n), out / "tracks.png"),
        *([save(saccades(t, n=n), out / "saccades.png")] if t.lattice is not None else []),
        save(glimpse_panels(t, n=3), out / "glimpses.png"),
        animate(t, out / "glimpses.gif", n=4),
    ]
