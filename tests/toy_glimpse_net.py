"""A fourth glimpse net, written as one module and one registered class (tests/test_new_glimpse_net.py trains,
evaluates and draws it): what enters the core is each glimpse's mean brightness per scale and the location.

It reads S numbers of a glimpse (the mean of each scale's patch) and the location (x, y), and a Linear makes them the
core's input: much less than the paper's glimpse network sees, so it shows the seam, not a better model.
"""

from __future__ import annotations

import torch
from torch import nn

from ram.config import ModelConfig, register_glimpse_net


@register_glimpse_net("brightness")
class Brightness(nn.Module):
    fuses = False
    """`ram.fused`'s loop runs the paper's glimpse network only."""

    def __init__(self, *, scales: int, values: int, out_size: int):
        super().__init__()
        self.scales, self.out_size = scales, out_size
        self.values = values  # per scale: channels x patch x patch
        self.linear = nn.Linear(scales + 2, out_size)

    @classmethod
    def from_config(cls, cfg: ModelConfig) -> "Brightness":
        return cls(scales=cfg.scales, values=cfg.glimpse_pixels // cfg.scales, out_size=cfg.glimpse_size)

    def forward(self, patches: torch.Tensor, locations: torch.Tensor) -> torch.Tensor:
        """patches [B, S*C*g*g], locations [B, 2] -> [B, out_size]."""
        means = patches.view(patches.shape[0], self.scales, self.values).mean(-1)  # [B, S]
        return torch.relu(self.linear(torch.cat((means, locations), dim=1)))
