"""What every picture shares: the colours of right, wrong and unknown, the glimpse-order colormap, frames, fonts, and
writing a figure or a GIF atomically."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib
import numpy as np
import torch
from matplotlib import patheffects
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from PIL import Image, ImageFont

from ..checkpoint import atomic_write

RIGHT = (0.13, 0.75, 0.22)  # boxes, titles and frames of a right guess
WRONG = (0.9, 0.12, 0.12)  # ... and of a wrong one
UNKNOWN = (0.2, 0.45, 0.9)  # ... and of an image whose label nobody gave
PATH = (0.25, 0.8, 1.0)  # the line joining the glimpses and the step numbers: neither green nor red
DPI = 100
ORDER = "plasma"  # colormap of glimpse order, first (dark violet) to last (yellow): saccade windows, Catch's gaze

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


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the small bitmap font
        return ImageFont.load_default()


def _rgb255(colour) -> tuple[int, int, int]:
    return tuple(round(255 * c) for c in colour)


def _write_gif(shots: list[Image.Image], path: Path, *, step_ms: int, hold_ms: int) -> Path:
    """A looping GIF (Pillow), written atomically: step_ms per frame, the last frame held for hold_ms."""
    durations = [step_ms] * (len(shots) - 1) + [hold_ms]
    buf = io.BytesIO()
    shots[0].save(buf, format="GIF", save_all=True, append_images=shots[1:], duration=durations, loop=0,
                  disposal=1)
    atomic_write(Path(path), buf.getvalue())
    return Path(path)


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
