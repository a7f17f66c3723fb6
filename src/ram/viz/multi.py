"""More than one object: where a multi-object model looked on each canvas, and what it answered.

Each glimpse is a square of the finest patch at its location, numbered in order and coloured by the label it leads
to (DRAM's outputs in turn: the glimpses before the first label in one colour, those before the second in the next).
Under each canvas, the labels it emitted beside the true ones, green when the answer is right, red when not.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import matplotlib
import torch
from matplotlib.figure import Figure
from matplotlib.colors import to_hex
from matplotlib.patches import Rectangle

from ..data import to_float
from ..models import evaluating
from .common import DPI, _frame, _hue, _rgb, save

OUTPUT_COLOURS = "tab10"
"""The colormap of the outputs: glimpses leading to label k are drawn in its colour k."""


def output_colours(k: int) -> list[str]:
    """The colours of outputs 0..k-1 as "#rrggbb", as the glimpses leading to them are drawn here (for the page)."""
    colours = matplotlib.colormaps[OUTPUT_COLOURS]
    return [to_hex(colours(i % 10)) for i in range(k)]


@torch.no_grad()
def sequence_glimpses(model: torch.nn.Module, canvases, *, answered: Callable, truth: Callable, right: Callable,
                      n: int = 16, cols: int = 4) -> Figure:
    """A grid of n canvases (`ram.data.multi.Canvases`) with the glimpses of one episode along the means.

    answered(predicted [B, K]) -> a string per canvas for the emitted labels; truth(canvases) -> a string per canvas;
    right(predicted, canvases) -> bool [B]. A model that answers once (RAM, convnet with one class) emits K = 1."""
    n = min(n, canvases.images.shape[0])
    canvases = type(canvases)(*(t[:n] for t in canvases))
    images = to_float(canvases.images)
    with evaluating(model):
        episode = model(images.to(next(model.parameters()).device), sample=False)
    logits = episode.logits if episode.logits.dim() == 3 else episode.logits[:, None]
    predicted = logits.argmax(-1).cpu()
    said, true, ok = answered(predicted), truth(canvases), right(predicted, canvases)
    locations = episode.locations.float().cpu()
    T = locations.shape[1]
    output_of = getattr(episode, "output_of", None)
    output_of = output_of.cpu() if output_of is not None else torch.zeros(n, T, dtype=torch.long)
    colours = matplotlib.colormaps[OUTPUT_COLOURS]
    side = images.shape[-1]
    patch = getattr(model, "patch_size", None) or model.cfg.patch_size
    rows = (n + cols - 1) // cols
    fig = Figure(figsize=(2.4 * cols, 2.75 * rows), dpi=DPI)
    for i in range(n):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.imshow(_rgb(images[i]), interpolation="nearest")
        centres = (locations[i] + 1) / 2 * side  # [T, 2] pixel (u, v)
        for t in range(T):
            u, v = centres[t].tolist()
            colour = colours(int(output_of[i, t]) % 10)
            ax.add_patch(Rectangle((u - patch / 2, v - patch / 2), patch, patch, fill=False, lw=1.6, ec=colour))
            ax.text(u, v, str(t + 1), color=colour, fontsize=7, ha="center", va="center", weight="bold")
        ax.plot(centres[:, 0], centres[:, 1], color=(1, 1, 1, 0.5), lw=0.8)
        ax.set_xlabel(f"{said[i]}  (true {true[i]})", color=_hue(bool(ok[i])), fontsize=9)
        _frame(ax, _hue(bool(ok[i])), width=2.0)
    fig.tight_layout()
    return fig


def render_sequence(model: torch.nn.Module, canvases, out: Path, **kw) -> list[Path]:
    """glimpses.png of `sequence_glimpses` in the folder out."""
    return [save(sequence_glimpses(model, canvases, **kw), Path(out) / "glimpses.png")]
