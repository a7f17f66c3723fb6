"""The paper's game of Catch (`ram.envs.CatchBatch`): each batch is `batch_size` new games, played to the end with
sampled moves and glimpses; every decision is reinforced with the end-of-game reward; the catch rate in %.

Every game's start is seeded here, in one place: training, validation and test games by (seed, stream, batch)
(`Games` and `catch_games`), and the games `ram viz` draws and the page replays by one seed (`drawn_games`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
import tyro
from tqdm.auto import tqdm

from ..config import ConfigError, Kind, RunConfig, TaskConfig, _require, register_task
from ..data import TEST, TRAIN, VAL
from ..data.tasks import generator
from ..envs import CatchBatch, Recorder, Recording
from ..losses import Losses, LossSpec, game
from ..models import evaluating
from .common import autocast, float32, seeded


class Games(NamedTuple):
    """A batch of games: how many, and the generator their starts are drawn from."""

    n: int
    generator: torch.Generator


def catch_games(*, games: int, size: int, seed: int, stream: int, batch_size: int = 1000,
                device=None) -> Iterator[CatchBatch]:
    """`games` games whose starts are fixed by (seed, stream, batch_size), batch_size at a time, each batch started
    and ready to play: the same games for every agent that plays them (the RAM agents here, an outside library's in
    examples/catch_sb3.py)."""
    for b, first in enumerate(range(0, games, batch_size)):
        world = CatchBatch(min(batch_size, games - first), size=size, generator=generator(seed, stream, b),
                           device=device)
        world.reset()
        yield world


def drawn_games(n: int, *, size: int, seed: int, device=None) -> CatchBatch:
    """The n games `ram viz --seed S` draws and the page replays (its game S is drawn_games(1, seed=S)'s)."""
    world = CatchBatch(n, size=size, generator=torch.Generator().manual_seed(seed), device=device)
    world.reset()
    return world


@torch.no_grad()
def catch_rate(model: torch.nn.Module, *, games: int, size: int, seed: int, stream: int, sample: bool,
               batch_size: int = 1000, device=None, progress: bool = False) -> dict[str, Any]:
    """Balls caught (%) in `games` games whose starts are fixed by (seed, stream); sample=False takes every policy's
    mode. The sampled moves and locations come from torch's global generator."""
    device = device or next(model.parameters()).device
    caught = 0
    worlds = catch_games(games=games, size=size, seed=seed, stream=stream, batch_size=batch_size, device=device)
    with evaluating(model):
        for world in tqdm(worlds, total=-(-games // batch_size), desc="games", leave=False, disable=not progress):
            model(world, sample=sample)
            caught += int(world.reward.sum().item())
    rate = 100.0 * caught / games
    return {"catch_rate": round(rate, 4), "error": round(100.0 - rate, 4), "n": games}


@torch.no_grad()
def play(model: torch.nn.Module, cfg: RunConfig, *, n: int = 4, seed: int = 0, sample: bool = False) -> Recording:
    """Play the n games `drawn_games` starts from `seed` on cfg.task.canvas, recording every frame, following every
    policy's mode (sample=True: sampling glimpses and moves from torch's global generator). The model runs in eval
    mode and its mode is restored."""
    cfg.model.require_drawn("model", cfg.model.kind)
    if n < 1:
        raise ConfigError(f"games = {n}: must be >= 1")
    world = drawn_games(n, size=cfg.task.canvas, seed=seed, device=next(model.parameters()).device)
    recorder = Recorder(world)
    with evaluating(model):
        ep = model.play(recorder, sample=sample)
    return recorder.recording(ep, patch_size=model.cfg.patch_size, scales=model.cfg.scales)


@dataclass(frozen=True, kw_only=True)
class CatchConfig(TaskConfig):
    """The paper's game of Catch on a canvas x canvas screen: how many games an epoch trains on and validates on."""

    dataset: tyro.conf.Suppress[str] = "catch"
    canvas: tyro.conf.Suppress[int] = 24
    """Side of the screen (24 in the paper): a game lasts canvas - 1 steps."""
    epoch_games: int = 22_400
    """Games played per epoch (seed 002: 350 batches of 64)."""
    val_games: int = 1000
    """Games played along the policies' modes after each epoch, the same games every time."""

    def validate(self) -> None:
        super().validate()
        _require(self.canvas >= 4, "canvas", self.canvas, "must be at least 4, the screen of a game of Catch")
        _require(self.epoch_games >= 1, "epoch_games", self.epoch_games, "must be >= 1")
        _require(self.val_games >= 1, "val_games", self.val_games, "must be >= 1")


@register_task
class CatchGame:
    """The paper's game: each batch is `batch_size` new games, played to the end with sampled moves and glimpses;
    every decision is reinforced with the end-of-game reward. Validation plays the same val_games games along the
    policies' modes after every epoch."""

    datasets = ("catch",)
    Config = CatchConfig
    classifies = False

    def __init__(self, cfg: RunConfig, **_):
        self.cfg = cfg
        self.loss_spec = LossSpec.of(cfg)

    # The config ------------------------------------------------------------------------------------------------------
    @staticmethod
    def check_run(cfg: RunConfig) -> None:
        m, t, tc, lc = cfg.model, cfg.task, cfg.train, cfg.loss
        _require(m.channels == 1, "channels", m.channels, f"{t.dataset} images are grey")
        _require(m.about.plays, "model", m.kind, "cannot play catch; players are ram, screen, random-agent")
        _require(m.classes == 0, "classes", m.classes, "catch has no classes")
        _require(m.actions == 3, "actions", m.actions, "catch has 3 moves: left, stay, right")
        _require(m.glimpses == t.canvas - 1, "glimpses", m.glimpses,
                 f"a game on a {t.canvas}x{t.canvas} screen lasts {t.canvas - 1} steps, one glimpse and one move each")
        _require(m.reinforce_core, "reinforce_core", False,
                 "catch has no classification loss: the core learns only from REINFORCE, so it must be on")
        # The settings of the classification loss have nothing to act on in a game: refuse them, not ignore them.
        _require(lc.means_weight == 0, "means_weight", lc.means_weight,
                 "catch has no classification loss for the means copy to add to")
        _require(lc.distill_weight == 0, "distill_weight", lc.distill_weight,
                 "catch has no class probabilities to distil")
        _require(lc.step_weight == 0, "step_weight", lc.step_weight,
                 "catch has no guess after each glimpse to add a loss on")
        _require(lc.reward == "correct", "reward", lc.reward, "catch's reward is the game's: 1 for a caught ball, else 0")
        _require(tc.mc_samples == 1, "mc_samples", tc.mc_samples,
                 "catch plays each batch's games once: every game is a new start, so there are no copies to average")

    @staticmethod
    def labels(t: CatchConfig, kind: Kind) -> tuple[str, ...]:
        return ()

    @staticmethod
    def title(t: CatchConfig) -> str:
        return "catch"

    @staticmethod
    def about(cfg: RunConfig) -> str:
        return f"Catch on a {cfg.task.canvas}x{cfg.task.canvas} screen, {cfg.model.glimpses} glimpses"

    # Training --------------------------------------------------------------------------------------------------------
    def batches_per_epoch(self, batch_size: int) -> int:
        return -(-self.cfg.task.epoch_games // batch_size)

    def train_batches(self, epoch, batch_size, *, start=0, shard=(0, 1)):
        rank, world = shard
        total = self.batches_per_epoch(batch_size)
        last = total - total % world if world > 1 else total  # ranks must take equally many steps
        for b in range(start, last):
            if b % world == rank:
                n = min(batch_size, self.cfg.task.epoch_games - b * batch_size)
                yield Games(n, generator(self.cfg.train.seed, TRAIN, epoch, b))

    def episodes(self, batch: Games) -> int:
        return batch.n

    def loss(self, model: torch.nn.Module, batch: Games, device: torch.device) -> Losses:
        tc = self.cfg.train
        world = CatchBatch(batch.n, size=self.cfg.task.canvas, generator=batch.generator, device=device)
        world.reset()
        with autocast(device, tc.precision):
            episode = model(world, sample=True)
        return game(float32(episode), world.reward, self.loss_spec)

    def validate(self, model: torch.nn.Module, device: torch.device) -> dict[str, Any]:
        return catch_rate(model, games=self.cfg.task.val_games, size=self.cfg.task.canvas, seed=self.cfg.train.seed,
                          stream=VAL, sample=False, batch_size=self.cfg.train.eval_batch_size, device=device)

    # Reporting -------------------------------------------------------------------------------------------------------
    def check_report(self, *, mc_samples=None, episodes=None, split="test") -> None:
        if mc_samples is not None:
            raise ConfigError(f"mc_samples = {mc_samples}: Catch reports the catch rate along the policies' modes "
                              "and with sampled moves; set the number of games with --episodes")

    def report(self, model, *, split="test", seed=0, device=None, progress=False, mc_samples=None, episodes=None,
               batch_size=None) -> dict[str, Any]:
        """The catch rate along the policies' modes (the headline), and with sampled moves and glimpses."""
        common = dict(games=episodes or 1000, size=self.cfg.task.canvas, seed=seed,
                      stream=TEST if split == "test" else VAL, batch_size=batch_size or self.cfg.train.eval_batch_size,
                      device=device, progress=progress)
        modes = catch_rate(model, sample=False, **common)
        with seeded(seed):
            sampled = catch_rate(model, sample=True, **common)
        return {**modes, "protocol": "one game per ball along the policies' modes",
                "catch_rate_sampled": sampled["catch_rate"]}

    def summary(self, metrics, *, split, seed) -> str:
        return (f"{self.cfg.preset} {self.cfg.model.kind}: caught {metrics['catch_rate']:.2f}% of {metrics['n']} "
                f"balls ({split} games, seed {seed}, policies' modes); with sampled moves and glimpses: "
                f"{metrics['catch_rate_sampled']:.2f}%")

    def headline(self, metrics) -> str:
        return f"caught {metrics['catch_rate']:.2f}% of {metrics['n']} balls"

    # Pictures and benchmarks -----------------------------------------------------------------------------------------
    def draw(self, model, out: Path, *, n=None, seed=0, split="test") -> list[Path]:
        """catch.gif and catch-I.png of n games (4 by default) from `seed` (a game has no data set to split)."""
        from .. import viz

        return viz.render_catch(play(model, self.cfg, n=n or 4, seed=seed), out)

    def end_pictures(self, model, out: Path) -> None:
        """The learning curve against games and minutes, and 4 games drawn."""
        from .. import viz
        from ..checkpoint import atomic_write

        out = Path(out)
        if (out / "metrics.csv").is_file():
            figure, numbers = viz.learning_curve(out / "metrics.csv", batch_size=self.cfg.train.batch_size)
            viz.save(figure, out / "learning-curve.png")
            atomic_write(out / "learning-curve.csv", numbers.encode())
        if self.cfg.model.about.drawn:
            self.draw(model, out)

    def val_figure(self, model, n: int):
        return None

    def warm_batches(self, batch_size: int) -> list[Any]:
        return [next(self.train_batches(0, batch_size))]

    def probe(self, model, batch_size: int, device: torch.device):
        def step() -> int:
            catch_rate(model, games=batch_size, size=self.cfg.task.canvas, seed=0, stream=0, sample=False,
                       batch_size=batch_size, device=device)
            return batch_size

        return step
