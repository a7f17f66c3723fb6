"""Pictures of Catch: the games an agent played (`ram.envs.Recording`, from `ram.tasks.catch.play`) as a GIF of the
screens in a grid, a frame per step, and a still per game with its gaze track."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from matplotlib.figure import Figure
from PIL import Image, ImageDraw

from ..envs import MOVES, Recording
from ..sensor import boxes
from .common import DPI, PATH, _font, _frame, _hue, _order_bar, _order_colours, _RIM, _rgb255, _write_gif, save

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
