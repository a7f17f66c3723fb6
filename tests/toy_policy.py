"""A third location policy, written as one module and one registered class (tests/test_third_policy.py trains,
evaluates and draws it): a fixed grid.

Glimpse t reads cell t (mod 4) of a 2x2 raster over the image, row by row, whatever the state: nothing is decided,
so nothing is reinforced (log-probability and entropy 0). It shows what the policy seam asks of a policy: its own
settings (`Config`, a `PolicyConfig` that checks them and describes the policy), build (`from_config`), a
distribution for the first location (`first`) and for each next one (`forward`), and whether it lands on a lattice
or runs in the fused loop (`lattice`, `fuses`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import tyro
from torch import nn

from ram.config import ModelConfig, PolicyConfig, _require, register_policy


@dataclass(frozen=True, kw_only=True)
class GridConfig(PolicyConfig):
    """A fixed grid of cells x cells glimpses, row by row."""

    kind: tyro.conf.Suppress[str] = "grid"
    cells: int = 2
    """Cells along each side of the grid."""

    def validate(self, model: ModelConfig) -> None:
        super().validate(model)
        _require(1 <= self.cells <= model.image_size, "cells", self.cells,
                 f"must be in 1..{model.image_size}, the image side")

    def describe(self) -> str:
        return f"a fixed {self.cells}x{self.cells} grid"


class Fixed:
    """The one location a fixed policy goes to: [B, 2] (x, y)."""

    def __init__(self, location: torch.Tensor):
        self.mean = location

    def sample(self) -> torch.Tensor:
        return self.mean

    mode = sample

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return value.new_zeros(value.shape[0])

    def entropy(self) -> torch.Tensor:
        return self.mean.new_zeros(self.mean.shape[0])

    def location(self, value: torch.Tensor) -> torch.Tensor:
        return value


@register_policy("grid")
class GridPolicy(nn.Module):
    Config = GridConfig
    lattice = None
    """Any point of the image (the pictures draw tracks, not windows)."""
    fuses = False
    """`ram.fused`'s loop runs the Gaussian policy only."""

    def __init__(self, *, cells: int):
        """cells x cells centres of equal squares, as (x, y) in [-1, 1], row by row."""
        super().__init__()
        centres = (torch.arange(cells) + 0.5) * (2.0 / cells) - 1.0
        y, x = torch.meshgrid(centres, centres, indexing="ij")
        self.register_buffer("cells", torch.stack((x.flatten(), y.flatten()), dim=1), persistent=False)  # [n*n, 2]

    @classmethod
    def from_config(cls, model: ModelConfig, policy: GridConfig) -> "GridPolicy":
        return cls(cells=policy.cells)

    def forward(self, h: torch.Tensor, previous: torch.Tensor) -> Fixed:
        """The cell after the one nearest `previous` [B, 2]."""
        nearest = torch.cdist(previous, self.cells.to(previous.dtype)).argmin(1)
        return Fixed(self.cells.to(h.dtype)[(nearest + 1) % len(self.cells)])

    def first(self, images: torch.Tensor, h: torch.Tensor) -> Fixed:
        return Fixed(self.cells.to(h.dtype)[:1].expand(h.shape[0], 2))
