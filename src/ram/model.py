"""The Recurrent Attention Model: runs an episode of T glimpses and returns everything the losses and pictures need."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from . import fused, sensor
from .config import ModelConfig
from .nets import GlimpseNet, make_core
from .policies import GaussianPolicy


class Episode(NamedTuple):
    """One forward pass. B is the batch, T the number of glimpses."""

    logits: torch.Tensor  # [B, classes] from the last core state: the classification
    step_logits: torch.Tensor  # [B, T, classes] the classifier applied after every glimpse (for pictures)
    log_probs: torch.Tensor  # [B, T] log pi(l_t | h_t) of the locations taken
    baselines: torch.Tensor  # [B, T] b(h_t), the expected reward before choosing l_t
    locations: torch.Tensor  # [B, T, 2] where each glimpse was read, (x, y) in [-1, 1]
    means: torch.Tensor  # [B, T, 2] the policy means


class RAM(nn.Module):
    """Mnih et al. 2014. The first location comes from the policy on the zero state, so it is learned too."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        pixels = cfg.scales * cfg.channels * cfg.patch_size**2
        self.glimpse_net = GlimpseNet(
            glimpse_pixels=pixels, what_size=cfg.what_size, where_size=cfg.where_size, out_size=cfg.glimpse_size
        )
        self.core = make_core(cfg.core, input_size=cfg.glimpse_size, hidden_size=cfg.hidden)
        self.policy = GaussianPolicy(hidden_size=cfg.hidden, std=cfg.std)
        self.baseline = nn.Linear(cfg.hidden, 1)
        self.classifier = nn.Linear(cfg.hidden, cfg.classes)

    fused = True
    """Run the glimpse loop of an RNN- or LSTM-core, Gaussian-policy RAM as `ram.fused`'s one Function with a
    hand-written backward (on a CPU 2-3x faster for the RNN; about 1.1x for the LSTM, whose gate matmuls dominate).
    False runs the plain autograd loop below, the reference it is tested against."""

    @property
    def uses_fused_loop(self) -> bool:
        """The fused loop covers the paper's model (ReLU RNN core, Gaussian policy) and the same with an LSTM core:
        the cores that say how it runs them (`fused_cell`)."""
        return self.fused and hasattr(self.core, "fused_cell") and type(self.policy) is GaussianPolicy

    def forward(self, images: torch.Tensor, *, sample: bool = True) -> Episode:
        """images [B, C, H, W] in [0, 1]. sample=False follows the policy means (deterministic evaluation)."""
        # Anomaly mode runs the plain loop, so that a NaN is traced to the op that made it.
        if self.uses_fused_loop and not torch.is_anomaly_enabled():
            return self._fused(images, sample)
        cfg = self.cfg
        B, _, H, W = images.shape
        padded, pad = sensor.pad_images(images, size=cfg.patch_size, scales=cfg.scales, locations_in_range=True)
        state = self.core.initial(B, images.device, images.dtype)
        h = images.new_zeros(B, cfg.hidden)
        hs, log_probs, baselines, locations, means = [], [], [], [], []
        for _ in range(cfg.glimpses):
            # The policy and the baseline see a detached state: REINFORCE trains only the policy, and the baseline
            # regression must not reach into the core.
            loc, log_prob, mean = self.policy(h.detach(), sample=sample)
            baselines.append(self.baseline(h.detach()).squeeze(1))
            patches = sensor.read(
                padded, pad, loc, size=cfg.patch_size, scales=cfg.scales, height=H, width=W
            ).flatten(1)
            h, state = self.core(self.glimpse_net(patches, loc), state)
            hs.append(h)
            log_probs.append(log_prob)
            locations.append(loc)
            means.append(mean)
        step_logits = self.classifier(torch.stack(hs, dim=1))  # [B, T, classes]
        return Episode(
            logits=step_logits[:, -1],
            step_logits=step_logits,
            log_probs=torch.stack(log_probs, dim=1),
            baselines=torch.stack(baselines, dim=1),
            locations=torch.stack(locations, dim=1),
            means=torch.stack(means, dim=1),
        )

    def _fused(self, images: torch.Tensor, sample: bool) -> Episode:
        cfg = self.cfg
        B = images.shape[0]
        padded, pad = sensor.pad_images(images, size=cfg.patch_size, scales=cfg.scales, locations_in_range=True)
        loop = fused.episode_loop(self, padded, pad, sample=sample)  # time-major [T, B, ...]
        with torch.autocast(images.device.type, enabled=False):  # under autocast only the loop's matmuls are bf16
            return self._heads(loop, B)

    def _heads(self, loop: fused.Loop, B: int) -> Episode:
        cfg = self.cfg
        # The heads that do not feed the loop run once on all T*B states. The baseline reads the detached state
        # before each glimpse; before the first it is zero, so b(h) is the bias.
        before = self.baseline(loop.hs[:-1].detach()).squeeze(-1)  # [T-1, B]
        baselines = torch.cat((self.baseline.bias.expand(1, B), before))
        # classifier(hs) as W hs^T: MKL is 2x faster with 10 rows than with 10 columns.
        hs = loop.hs.reshape(-1, cfg.hidden)
        step_logits = torch.addmm(self.classifier.bias[:, None], self.classifier.weight, hs.t()).t()
        step_logits = step_logits.view(-1, B, cfg.classes)  # [T, B, classes]
        return Episode(
            logits=step_logits[-1],
            step_logits=step_logits.transpose(0, 1),
            log_probs=self.policy.log_prob(loop.raws, loop.means).t(),
            baselines=baselines.t(),
            locations=loop.locations.transpose(0, 1),
            means=loop.means.transpose(0, 1),
        )


def build_model(cfg: ModelConfig) -> nn.Module:
    """The model named by cfg.kind. Every model returns an `Episode`."""
    if cfg.kind == "ram":
        return RAM(cfg)
    from . import baselines  # the paper's comparison models

    return baselines.build(cfg)
