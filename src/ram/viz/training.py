"""Pictures of a training run: curves.png of any run, a Catch run's learning curve against games and minutes, and the
`fit` hooks that draw them (and TensorBoard's) as a run goes."""

from __future__ import annotations

import csv
import math
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from ..config import ConfigError
from .common import DPI, save, to_array

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
    # Named in the legend, not beside the point: the minimum sits at the bottom of the axes, often at its first or
    # last epoch, where a label runs off the plot or into the axis labels.
    ax_err.plot(epoch[best], val[best], "o", color="black", markersize=4,
                label=f"best {val[best]:.2f}% (epoch {int(epoch[best])})")
    errors = np.concatenate([train, val])
    # Log where the errors span a decade (90% down to 1%), so the last epochs' gains still show; within less than a
    # decade a log axis may hold no labelled tick at all (85..95% falls between 50 and 100).
    if (errors > 0).all() and errors.max() >= 10 * errors.min():
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
        # A falling entropy is a policy that explores less. A categorical's (saccades, Catch's moves) is >= 0, and
        # near 0 it always makes the same choice; a Gaussian's is differential, negative at RAM's std (2-D, std 0.1:
        # -1.77 nats), so 0 is the axis' floor only when no value lies below it.
        entropy = column("entropy")
        ax_ent = ax_rew.twinx()
        ax_ent.plot(epoch, entropy, color="tab:purple", linewidth=1.2, linestyle="--")
        ax_ent.set_ylabel("policy entropy per decision (dashed)", fontsize=8, color="tab:purple")
        if (entropy >= 0).all():
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
