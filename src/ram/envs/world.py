"""The world protocol the episode loop plays in (`RAM.play`), its two worlds, and a recorder of what it showed.

A world shows a frame and takes moves. A still image is a world that never changes (`Still`, classification); a
batch of games of Catch (`CatchBatch`) is one that moves after every step. `Recorder` wraps either and keeps every
frame it showed, which is what the pictures of a game and the page's replay are drawn from.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

import torch


class World(Protocol):
    def observe(self) -> torch.Tensor:
        """The current frame, float [B, C, H, W] in [0, 1]."""

    def act(self, moves: torch.Tensor) -> None:
        """Make one move per episode, int64 [B]; the next observe() shows its result."""


class Still:
    """A world that does not change while the model looks at it: the images of a classification task."""

    def __init__(self, images: torch.Tensor):
        self.images = images  # [B, C, H, W]

    def observe(self) -> torch.Tensor:
        return self.images

    def act(self, moves: torch.Tensor) -> None:
        raise TypeError("a still image takes no moves: this model has an action head but its world is an image")


class Recording(NamedTuple):
    """Episodes an agent played, on the CPU, ready to draw. B games, T glimpses, each followed by a move."""

    frames: torch.Tensor  # float [B, T + 1, 1, H, W]: the screen before each glimpse, then the final one
    locations: torch.Tensor  # [B, T, 2] (x, y) in [-1, 1], where each glimpse was read
    moves: torch.Tensor  # int64 [B, T] the move made after each glimpse (Catch: 0 left, 1 stay, 2 right)
    caught: torch.Tensor  # bool [B] the episode ended with a reward
    patch_size: int
    scales: int


class Recorder:
    """A world that keeps every frame it shows the episode loop: the screens the agent saw, in order."""

    def __init__(self, world):
        self.world = world
        self.frames: list[torch.Tensor] = []  # each [B, C, H, W]

    def observe(self) -> torch.Tensor:
        frame = self.world.observe()
        self.frames.append(frame)
        return frame

    def act(self, moves: torch.Tensor) -> None:
        self.world.act(moves)

    def recording(self, episode, *, patch_size: int, scales: int) -> Recording:
        """The frames kept, with an episode's (`ram.model.Episode`) locations and moves and the world's rewards."""
        return Recording(
            frames=torch.stack(self.frames, dim=1).float().cpu(),
            locations=episode.locations.float().cpu(),
            moves=episode.moves.cpu(),
            caught=(self.world.reward > 0).cpu(),
            patch_size=patch_size,
            scales=scales,
        )
