"""Location policies: where to look next, given the core state."""

from __future__ import annotations

import math

import torch
from torch import nn


class GaussianPolicy(nn.Module):
    """pi(l | h) = N(tanh(W h + b), std^2 I) over (x, y), the sample clamped to the image [-1, 1].

    The std is fixed (the paper's choice); only the mean is learned, by REINFORCE alone. tanh keeps the mean on the
    image, so a policy that drifts cannot park every glimpse in a corner outside it.
    """

    def __init__(self, *, hidden_size: int, std: float):
        super().__init__()
        self.std = std
        self.mean = nn.Linear(hidden_size, 2)
        self._log_norm = 2 * (math.log(std) + 0.5 * math.log(2 * math.pi))  # for the two independent dims

    def forward(self, h: torch.Tensor, *, sample: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """h [B, hidden] -> (location [B, 2], log_prob [B], mean [B, 2]).

        With sample=False the location is the mean (deterministic evaluation) and log_prob is that of the mean.
        The location is detached: nothing downstream of the sensor may push gradients into the policy.
        """
        mean = torch.tanh(self.mean(h))
        if sample:
            raw = (mean + self.std * torch.randn_like(mean)).detach()
        else:
            raw = mean.detach()
        return raw.clamp(-1.0, 1.0), self.log_prob(raw, mean), mean

    def log_prob(self, raw: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
        """log N(raw; mean, std^2 I) of unclamped samples [..., 2] -> [...]."""
        return -((raw - mean) ** 2).sum(-1) / (2 * self.std**2) - self._log_norm
