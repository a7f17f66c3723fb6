"""The hybrid loss, as pure functions of an Episode.

- Cross-entropy trains the classifier, core and glimpse net (the locations reaching the sensor are detached samples).
- REINFORCE with reward 1 for a correct final guess, minus the baseline, trains only the location policy: the policy
  reads a detached state, and the advantage is detached.
- The baseline learns by regression onto the reward, from a detached state.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from .model import Episode


class Losses(NamedTuple):
    total: torch.Tensor
    classify: torch.Tensor
    reinforce: torch.Tensor
    baseline: torch.Tensor
    reward: torch.Tensor  # [B] 1 where the final guess is right


def reward(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """[B, classes], [B] -> [B] float: 1 for a correct final guess, else 0."""
    return (logits.argmax(1) == labels).float()


def reinforce(log_probs: torch.Tensor, baselines: torch.Tensor, rewards: torch.Tensor) -> torch.Tensor:
    """-E[sum_t log pi(l_t) (R - b_t)] with the advantage held constant. [B, T], [B, T], [B] -> scalar."""
    advantage = (rewards[:, None] - baselines).detach()
    return -(log_probs * advantage).sum(1).mean()


def hybrid(episode: Episode, labels: torch.Tensor, *, rl_weight: float = 1.0) -> Losses:
    classify = F.cross_entropy(episode.logits, labels)
    r = reward(episode.logits, labels)
    rl = reinforce(episode.log_probs, episode.baselines, r)
    if episode.baselines.numel():
        base = F.mse_loss(episode.baselines, r[:, None].expand_as(episode.baselines))
    else:  # a model that takes no decisions (fc, convnet) has no baseline to fit
        base = classify.new_zeros(())
    return Losses(total=classify + rl_weight * rl + base, classify=classify, reinforce=rl, baseline=base, reward=r)
