"""Pictures of what a model does: where it looks, what it sees, what it guesses, and how its training went.

Every function returns a matplotlib `Figure` or writes a file. Nothing opens a window: figures are made with
`matplotlib.figure.Figure` and rendered by Agg, so pyplot's global state is never touched. `trace` runs a model
once on a batch, and every picture of that batch is drawn from the one `Trace`, so the pictures agree with each other.

Geometry follows ram.sensor. Scale k of a glimpse at (x, y) is the square of side s = patch_size * 2**k whose top-left
pixel is (round(u) - s // 2, round(v) - s // 2), with (u, v) = ((x + 1) / 2 * W, (y + 1) / 2 * H). Images are drawn
with pixel j spanning [j, j + 1) (`extent=(0, W, H, 0)`), so that square is exactly the rectangle (x0, y0, s, s).
A saccade model's glimpse is one window of its lattice (`windows`), the same square. A game of Catch is drawn from
the `ram.envs.Recording` of the games its agent played (`ram.tasks.catch.play`), as a GIF of the screens and a still
per game. Which pictures a task's run gets is the task's to say (`ram.tasks`); this module only draws.
"""

from __future__ import annotations

import csv
import io
import math
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import matplotlib
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib import patheffects
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import FuncFormatter, MaxNLocator
from PIL import Image, ImageDraw, ImageFont

from . import sensor
from .checkpoint import atomic_write
from .config import ConfigError
from .data import Split, to_float
from .envs import MOVES, Recording
from .policies import Lattice
from .sensor import boxes

RIGHT = (0.13, 0.75, 0.22)  # boxes, titles and frames of a right guess
WRONG = (0.9, 0.12, 0.12)  # ... and of a wrong one
UNKNOWN = (0.2, 0.45, 0.9)  # ... and of an image whose label nobody gave
PATH = (0.25, 0.8, 1.0)  # the line joining the glimpses and the step numbers: neither green nor red
DPI = 100
GIF_HEADER = 46  # pixels of text above each image in a GIF frame
ORDER = "plasma"  # colormap of glimpse order, first (dark violet) to last (yellow): saccade windows, Catch's gaze


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
    from .api import Model

    if isinstance(model, Model):
        images, model, classes = model.images(images), model.module, classes or model.classes
    if not model.cfg.about.drawn:
        raise ConfigError(
            f"model = {model.cfg.kind!r}: it reads the whole image and takes no glimpses, so there is nothing to draw; "
            "pictures need a ram or random-glimpses model"
        )
    floats = to_float(images) if images.dtype == torch.uint8 else images.float()
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        ep = model(floats.to(device), sample=False)
    finally:
        model.train(was_training)
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


def _rgb(image: torch.Tensor) -> np.ndarray:
    """float [C, H, W] in [0, 1] -> float [H, W, 3]."""
    image = image.clamp(0, 1)
    if image.shape[0] == 1:
        image = image.expand(3, -1, -1)
    return image[:3].permute(1, 2, 0).numpy()


def _hue(right: bool | None) -> tuple[float, float, float]:
    """Green for a right guess, red for a wrong one, blue where the label is unknown (a user's own images)."""
    return UNKNOWN if right is None else RIGHT if right else WRONG


def _frame(ax, colour, width: float = 3.0) -> None:
    """A coloured border around an axes: right or wrong, readable at a glance."""
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_edgecolor(colour)
        spine.set_linewidth(width)


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


def _order_colours(T: int) -> np.ndarray:
    """[T, 4] RGBA of glimpses 1..T on the ORDER colormap."""
    return matplotlib.colormaps[ORDER](np.linspace(0, 1, T))


def _order_bar(fig: Figure, T: int, *, bottom_in: float) -> None:
    """A horizontal colour bar along the bottom of the figure that reads the order colours as glimpse numbers."""
    height = fig.get_size_inches()[1]
    cax = fig.add_axes((0.3, bottom_in / height, 0.4, 0.12 / height))
    bar = fig.colorbar(ScalarMappable(Normalize(0.5, T + 0.5), matplotlib.colormaps[ORDER].resampled(T)), cax=cax,
                       orientation="horizontal")
    bar.set_ticks(sorted({1, (T + 1) // 2, T}))
    bar.ax.tick_params(labelsize=8, length=2)
    bar.set_label("glimpse", fontsize=8, labelpad=1)


# Arrows and marks over the shaded windows: white with a dark rim reads on both the digit and the background.
_RIM = [patheffects.withStroke(linewidth=2.6, foreground="black")]


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


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the small bitmap font
        return ImageFont.load_default()


def _rgb255(colour) -> tuple[int, int, int]:
    return tuple(round(255 * c) for c in colour)


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


def _write_gif(shots: list[Image.Image], path: Path, *, step_ms: int, hold_ms: int) -> Path:
    """A looping GIF (Pillow), written atomically: step_ms per frame, the last frame held for hold_ms."""
    durations = [step_ms] * (len(shots) - 1) + [hold_ms]
    buf = io.BytesIO()
    shots[0].save(buf, format="GIF", save_all=True, append_images=shots[1:], duration=durations, loop=0,
                  disposal=1)
    atomic_write(Path(path), buf.getvalue())
    return Path(path)


def animate(t: Trace, path: Path, *, n: int = 4, zoom: int | None = None, step_ms: int = 700,
            hold_ms: int = 2500) -> Path:
    """Write `frames` as a looping GIF: step_ms per glimpse, the last frame held for hold_ms."""
    return _write_gif(frames(t, n=n, zoom=zoom), path, step_ms=step_ms, hold_ms=hold_ms)


# Catch ---------------------------------------------------------------------------------------------------------------

CATCH_HEADER, CATCH_FOOTER = 24, 34  # pixels of text above and below each game's screen in a GIF frame


def catch_frames(g: Recording, *, zoom: int = 8, cols: int = 4) -> list[Image.Image]:
    """T + 1 RGB frames with the games in a grid of `cols` columns, each screen upscaled `zoom` times.

    Frame t < T shows screen t with the boxes of every scale of glimpse t (finest thick) and, below it, the move the
    agent made after that glimpse, lit among left / stay / right. The last frame shows the final screen, outlined and
    labelled "caught" in green or "missed" in red. Game i's screen starts at x = 8 + (i % cols) * (W * zoom + 16),
    y = CATCH_HEADER + (i // cols) * (CATCH_HEADER + H * zoom + CATCH_FOOTER).
    """
    B, T1, _, H, W = g.frames.shape
    T = T1 - 1
    cols = min(cols, B)
    rows = math.ceil(B / cols)
    side_w, side_h = W * zoom, H * zoom
    cell_w, cell_h = side_w + 16, CATCH_HEADER + side_h + CATCH_FOOTER
    sq = boxes(g.locations, patch_size=g.patch_size, scales=g.scales, height=H, width=W) * zoom  # [B, T, S, 3]
    font, small = _font(15), _font(12)
    path = _rgb255(PATH)
    out = []
    for step in range(T1):
        frame = Image.new("RGB", (cols * cell_w, rows * cell_h), (24, 24, 24))
        draw = ImageDraw.Draw(frame)
        for i in range(B):
            left, top = 8 + (i % cols) * cell_w, (i // cols) * cell_h
            screen_top, foot = top + CATCH_HEADER, top + CATCH_HEADER + side_h
            when = f"step {step + 1}/{T}" if step < T else "end"
            draw.text((left, top + 4), f"game {i + 1}   {when}", fill=(230, 230, 230), font=small)
            grey = (g.frames[i, step, 0].clamp(0, 1) * 255).round().byte().numpy()
            # Drawn on the screen alone, so boxes reaching past its edge are cut there.
            panel = Image.fromarray(grey).convert("RGB").resize((side_w, side_h), Image.NEAREST)
            pen = ImageDraw.Draw(panel)
            if step < T:
                for k in reversed(range(g.scales)):  # coarsest first, so the finest stays on top
                    x0, y0, s = sq[i, step, k].tolist()
                    pen.rectangle((x0, y0, x0 + s - 1, y0 + s - 1), outline=path, width=3 if k == 0 else 1)
            frame.paste(panel, (left, screen_top))
            if step < T:
                # The screen's edge (the ball bounces there), then the move among the three.
                draw.rectangle((left - 1, screen_top - 1, left + side_w, foot), outline=(90, 90, 90))
                for m, name in enumerate(MOVES):
                    x = left + side_w * (2 * m + 1) / 6
                    if m == int(g.moves[i, step]):
                        draw.rounded_rectangle((x - 27, foot + 6, x + 27, foot + 28), radius=5, fill=path)
                    draw.text((x, foot + 17), name, font=font, anchor="mm",
                              fill=(0, 0, 0) if m == int(g.moves[i, step]) else (110, 110, 110))
            else:
                colour = _rgb255(_hue(bool(g.caught[i])))
                draw.rectangle((left - 3, screen_top - 3, left + side_w + 2, foot + 2), outline=colour, width=3)
                draw.text((left + side_w / 2, foot + 18), "caught" if g.caught[i] else "missed", font=_font(20),
                          anchor="mm", fill=colour)
        out.append(frame)
    return out


def catch_still(g: Recording, i: int, *, decay: float = 0.8) -> Figure:
    """Game i as seed 002 draws it: its screens weighted by recency, decay**age, and over them the gaze track, the
    glimpse centres joined in order, coloured first (dark violet) to last (yellow), the first ringed in cyan. The title
    says caught (green) or missed (red).

    The weighted screens are summed and cut at 1 rather than divided by the weights' sum: a pixel lit only in the final
    screen is then white and one lit k steps before it decay**k, so the ball's fall fades into the past at full
    contrast however long the paddle sat still (a still paddle saturates). A square-root scale keeps about 20 steps
    of the fall in view at decay 0.8.
    """
    _, T1, _, H, W = g.frames.shape
    T = T1 - 1
    weights = decay ** torch.arange(T, -1, -1, dtype=torch.float32)  # [T + 1], oldest first
    recency = (weights[:, None, None] * g.frames[i, :, 0]).sum(0).clamp(max=1)  # [H, W]
    fig = Figure(figsize=(3.4, 4.0), dpi=DPI)
    ax = fig.add_axes((0.05, 0.2, 0.9, 0.72))
    ax.imshow(recency.sqrt().numpy(), cmap="gray", vmin=0, vmax=1, extent=(0, W, H, 0), interpolation="nearest")
    uv = ((g.locations[i] + 1) / 2 * torch.tensor([W, H])).numpy()  # [T, 2]
    ax.plot(uv[:, 0], uv[:, 1], "-", color="white", linewidth=1.2, alpha=0.8, path_effects=_RIM)
    ax.scatter(uv[:, 0], uv[:, 1], c=_order_colours(T), s=22, edgecolors="black", linewidths=0.6, zorder=3,
               clip_on=False)
    ax.plot(*uv[0], "o", markersize=13, markerfacecolor="none", markeredgecolor=PATH, markeredgewidth=2.2, zorder=4,
            clip_on=False)
    ax.set_xlim(0, W)
    ax.set_ylim(H, 0)
    colour = _hue(bool(g.caught[i]))
    _frame(ax, colour)
    ax.set_title(f"game {i + 1}: {'caught' if g.caught[i] else 'missed'}", color=colour, fontsize=11,
                 fontweight="bold")
    _order_bar(fig, T, bottom_in=0.35)
    return fig


def render_catch(g: Recording, out: Path) -> list[Path]:
    """catch.gif (the games in a grid, a frame per step) and catch-I.png (one still per game) into the folder out."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    gif = _write_gif(catch_frames(g), out / "catch.gif", step_ms=300, hold_ms=2500)
    return [gif, *(save(catch_still(g, i), out / f"catch-{i}.png") for i in range(g.moves.shape[0]))]


def learning_curve(metrics: Path | str | Sequence[dict[str, Any]], *, batch_size: int) -> tuple[Figure, str]:
    """A Catch run's catch rate against games played and against training time: the figure, and its numbers as CSV
    (epoch, games, seconds, train catch rate with sampled moves, validation catch rate along the modes)."""
    rows = read_metrics(Path(metrics)) if isinstance(metrics, (str, Path)) else list(metrics)
    if not rows:
        raise ValueError("metrics: no rows yet (no epoch finished)")
    games = np.array([int(r["step"]) * batch_size for r in rows])
    seconds = np.cumsum([float(r["seconds"]) for r in rows])
    train = np.array([100.0 - float(r["train_error"]) for r in rows])
    val = np.array([100.0 - float(r["val_error"]) for r in rows])
    fig = Figure(figsize=(10, 3.6), dpi=DPI)
    for ax, x, label in zip(fig.subplots(1, 2), (games / 1e6, seconds / 60), ("games played (millions)", "minutes")):
        ax.plot(x, train, label="training games (sampled moves)", linewidth=1.4)
        ax.plot(x, val, label="validation games (modes)", linewidth=2.2)
        ax.set_xlabel(label)
        ax.set_ylabel("balls caught (%)")
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    lines = ["epoch,games,seconds,train_catch_rate,val_catch_rate"]
    lines += [f"{r['epoch']},{g},{s:.1f},{t:.3f},{v:.3f}" for r, g, s, t, v in zip(rows, games, seconds, train, val)]
    return fig, "\n".join(lines) + "\n"


def compare_learning_curves(runs: Sequence[tuple[str, Path | str]], *, batch_size: int) -> Figure:
    """Catch runs side by side against games played: the validation catch rate along the policies' modes, and the
    training games' rate with sampled moves (the rate seed 002 reports). runs: (label, metrics.csv) pairs; runs that
    share a label (seeds of one recipe) share a colour, and the label is named once."""
    fig = Figure(figsize=(10, 3.6), dpi=DPI)
    axes = fig.subplots(1, 2, sharey=True)
    colours: dict[str, Any] = {}
    for label, path in runs:
        rows = read_metrics(Path(path))
        if not rows:
            raise ValueError(f"{path}: no rows yet (no epoch finished)")
        games = np.array([int(r["step"]) * batch_size for r in rows]) / 1e6
        first = label not in colours
        colours.setdefault(label, f"C{len(colours)}")
        for ax, column in zip(axes, ("val_error", "train_error")):
            ax.plot(games, [100.0 - float(r[column]) for r in rows], color=colours[label], linewidth=1.6,
                    label=label if first else None)
    for ax, title in zip(axes, ("validation games, along the modes", "training games, sampled moves")):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("games played (millions)")
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    axes[0].set_ylabel("balls caught (%)")
    fig.tight_layout()
    return fig


def read_metrics(path: Path) -> list[dict[str, Any]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def curves(metrics: Path | str | Sequence[dict[str, Any]]) -> Figure:
    """What tells learning from stalling, against epoch: the cross-entropy (a game has none: no panel), the train and
    validation error, the mean reward (with the policies' entropy where the run logged it), and images per second.
    The hybrid total and its REINFORCE and baseline terms stay in metrics.csv: REINFORCE makes the total negative, and
    it says nothing to a reader.

    metrics: the rows of a run's metrics.csv (dicts; values may be strings) or the path of that file.
    """
    rows = read_metrics(Path(metrics)) if isinstance(metrics, (str, Path)) else list(metrics)
    if not rows:
        raise ValueError("metrics: no rows yet (no epoch finished)")

    def column(name: str) -> np.ndarray:
        return np.array([float(r[name]) for r in rows])

    def logged(name: str) -> bool:  # older runs lack a column; fc and convnet have no entropy, a game no cross-entropy
        return all(r.get(name) not in (None, "") for r in rows)

    epoch = column("epoch")
    cross_entropy = logged("classify")
    fig = Figure(figsize=(4.3 * (3 + cross_entropy), 3.6), dpi=DPI)
    axes = list(fig.subplots(1, 3 + cross_entropy))
    if cross_entropy:
        ax_ce = axes.pop(0)
        ax_ce.plot(epoch, column("classify"), color="tab:blue", linewidth=2.2)
        ax_ce.set_title("cross-entropy (training batches)")
        ax_ce.set_ylim(bottom=0)
    ax_err, ax_rew, ax_speed = axes
    train, val = column("train_error"), column("val_error")
    ax_err.plot(epoch, train, label="train (sampled)", linewidth=1.4)
    ax_err.plot(epoch, val, label="validation", linewidth=2.2)
    best = int(val.argmin())
    ax_err.plot(epoch[best], val[best], "o", color="black", markersize=4)
    ax_err.annotate(f"best {val[best]:.2f}% (epoch {int(epoch[best])})", (epoch[best], val[best]),
                    textcoords="offset points", xytext=(0, -6), ha="right", va="top", fontsize=8)  # below the minimum
    if (np.concatenate([train, val]) > 0).all():
        ax_err.set_yscale("log")
        # Plain numbers (0.5, 1, 2, 5, 10) instead of 5x10^-1: errors are read as percentages.
        ax_err.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax_err.yaxis.set_minor_formatter(FuncFormatter(
            lambda v, _: f"{v:g}" if v > 0 and round(v / 10 ** math.floor(math.log10(v))) in (2, 5) else ""))
    ax_err.set_title("error (%)")
    ax_err.legend(fontsize=8)
    ax_rew.plot(epoch, column("reward"), color="tab:green", linewidth=1.6)
    ax_rew.set_title("reward (mean, sampled episodes)")
    if logged("entropy"):
        # A policy whose entropy falls to ~0 early always makes the same choices: it has stopped exploring.
        ax_ent = ax_rew.twinx()
        ax_ent.plot(epoch, column("entropy"), color="tab:purple", linewidth=1.2, linestyle="--")
        ax_ent.set_ylabel("policy entropy per decision (dashed)", fontsize=8, color="tab:purple")
        ax_ent.set_ylim(bottom=0)
    ax_speed.plot(epoch, column("img_per_s"), color="tab:gray", linewidth=1.6)
    ax_speed.set_title("training speed (images/s)")
    ax_speed.set_ylim(bottom=0)
    for ax in fig.axes:
        if ax.get_title():  # not the entropy's twin, which shares its axes' x
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def save(fig: Figure, path: Path) -> Path:
    """Write a figure (format from the suffix) atomically: a reader never sees half a picture."""
    path = Path(path)
    buf = io.BytesIO()
    fig.savefig(buf, format=path.suffix.lstrip(".") or "png", dpi=fig.dpi, facecolor="white")
    atomic_write(path, buf.getvalue())
    return path


def to_array(fig: Figure) -> np.ndarray:
    """Render a figure with Agg: uint8 [H, W, 3]."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


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


CURVES_EVERY_S = 30.0


def run_pictures_hook(event: str, *, model: torch.nn.Module, task, row: dict[str, Any], out: Path, **_) -> None:
    """A `fit` hook. After an epoch: curves.png from metrics.csv, at most every CURVES_EVERY_S seconds (drawing
    takes a fraction of a second, a real cost next to short epochs). At the end: curves.png, and the task's own
    pictures of the best model (`Task.end_pictures`: a classifier's tracks.png, a Catch agent's games and learning
    curve). A failure to draw is a warning, never the end of a training run.
    """
    out = Path(out)
    curves_png = out / "curves.png"
    try:
        fresh = curves_png.is_file() and time.time() - curves_png.stat().st_mtime < CURVES_EVERY_S
        if (out / "metrics.csv").is_file() and (event == "end" or not fresh):
            save(curves(out / "metrics.csv"), curves_png)
        if event == "end":
            task.end_pictures(model, out)
    except Exception as e:  # noqa: BLE001 - pictures are extras; the weights and metrics are already saved
        warnings.warn(f"pictures for {out} ({event}) failed: {type(e).__name__}: {e}", RuntimeWarning, stacklevel=2)


SCALARS = (
    ("loss/total", "loss"), ("loss/classify", "classify"), ("loss/reinforce", "reinforce"),
    ("loss/baseline", "baseline"), ("reward/mean", "reward"), ("error/train", "train_error"),
    ("error/val", "val_error"), ("policy/entropy", "entropy"), ("perf/img_per_s", "img_per_s"), ("lr", "lr"),
)


def tensorboard_hook(out: Path, *, n: int = 8):
    """A `fit` hook that logs every epoch's scalars and the tracks of n validation images to out/tensorboard.

    TensorBoard is optional: it is imported here, when asked for, and its absence is a ConfigError raised before
    training starts. The writer itself is made at the first epoch.
    """
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError(
            "tensorboard: TensorBoard is not installed; pip install 'recurrent-attention[tensorboard]' "
            "(or drop --tensorboard)"
        ) from None
    writer = None

    def hook(event: str, *, model: torch.nn.Module, task, row: dict[str, Any], **_) -> None:
        nonlocal writer
        if writer is None:
            writer = SummaryWriter(log_dir=str(Path(out) / "tensorboard"))
        if event == "epoch":
            step = int(row["epoch"])
            for tag, key in SCALARS:
                if row.get(key) not in (None, ""):  # a model without decisions has no entropy
                    writer.add_scalar(tag, float(row[key]), step)
            try:
                fig = task.val_figure(model, n)  # None for a task with no picture of its validation inputs
                if fig is not None:
                    writer.add_image("pictures/tracks", to_array(fig), step, dataformats="HWC")
            except Exception as e:  # noqa: BLE001 - as in run_pictures_hook
                warnings.warn(f"tensorboard picture failed: {type(e).__name__}: {e}", RuntimeWarning, stacklevel=2)
            writer.flush()
        elif event == "end":
            writer.close()

    return hook

