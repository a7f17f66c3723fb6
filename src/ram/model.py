"""The Recurrent Attention Model: runs an episode of T glimpses and returns everything the losses and pictures need."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from . import fused, sensor
from .config import ModelConfig, PolicyConfig
from .envs.world import Still, World
from .nets import BASELINES, GLIMPSE_NETS, make_core
from .policies import POLICIES, CategoricalPolicy


class Episode(NamedTuple):
    """One forward pass. B is the batch, T the number of glimpses. Every field is there for every model; what a
    model does not do has a zero-sized axis (a game has no classes, a classifier makes no moves)."""

    logits: torch.Tensor  # [B, classes] from the last core state: the classification
    step_logits: torch.Tensor  # [B, T, classes] the classifier applied after every glimpse (for pictures)
    log_probs: torch.Tensor  # [B, T] log pi of the decisions taken at step t: the location l_t, and the move a_t
    baselines: torch.Tensor  # [B, T] b(h_{t-1}), the expected reward before choosing l_t
    locations: torch.Tensor  # [B, T, 2] where each glimpse was read, (x, y) in [-1, 1]
    means: torch.Tensor  # [B, T, 2] the location policy's means (for discrete policies, the location of the mode)
    moves: torch.Tensor  # [B, T] int64 the move made after each glimpse (Catch), [B, 0] for a classifier
    entropies: torch.Tensor  # [B, T] entropy of the policies' distributions at step t (location and move)


class RAM(nn.Module):
    """Mnih et al. 2014, and the variants its settings name (`ModelConfig`).

    The episode loop (`play`) reads a world: each step it takes a glimpse of the world's current frame where the
    location policy says, updates the core, and, for a model with an action head, makes a move in the world. The
    classification of still images is `forward`.
    """

    answer_layer = "classifier"
    """The layer that gives the class logits: one whose shape another task's classes change (`train._initial_weights`
    starts it fresh)."""

    def __init__(self, cfg: ModelConfig, policy: PolicyConfig | None = None, *, baseline: str = "state"):
        """cfg: the network; policy: where it looks (default: RAM's Gaussian policy with its defaults); baseline: the
        reward baseline of the loss (`LossConfig.baseline`), which for state and scalar is a head of the model."""
        super().__init__()
        policy = POLICIES["gaussian"].Config() if policy is None else policy
        cfg.validate()
        policy.validate(cfg)
        self.cfg, self.policy_cfg = cfg, policy
        # Built in this order, so that a seed draws the same initial weights as ever.
        self.glimpse_net = GLIMPSE_NETS[cfg.glimpse_net].from_config(cfg)
        self.core = make_core(cfg.core, input_size=self.glimpse_net.out_size, hidden_size=cfg.hidden)
        self.policy = POLICIES[policy.kind].from_config(cfg, policy)
        baseline = BASELINES[baseline]
        self.baseline = baseline.from_config(cfg) if baseline is not None else None
        self.classifier = nn.Linear(cfg.hidden, cfg.classes) if cfg.classes else None
        self.drop_state = nn.Dropout(cfg.state_dropout)  # where the classifier reads the core state
        self.act = CategoricalPolicy(hidden_size=cfg.hidden, n=cfg.actions) if cfg.actions else None

    fused = True
    """Run the glimpse loop of an RNN- or LSTM-core, Gaussian-policy RAM as `ram.fused`'s one Function with a
    hand-written backward (on a CPU 2-3x faster for the RNN; about 1.1x for the LSTM, whose gate matmuls dominate).
    False runs the plain autograd loop below, the reference it is tested against."""

    @property
    def fusable(self) -> bool:
        """Whether `ram.fused`'s loop computes this model. Each part it runs says so of itself (`fuses`: the glimpse
        net, the core, the location policy, the learned baseline; a baseline made of the rewards has no head for the
        loop's heads to read); the rest is the loop's own shape: a classifier with no move head, whose policy and
        baseline read the detached state, through the sensor's default mean pooling and zero padding."""
        cfg = self.cfg
        parts = (self.glimpse_net, self.core, self.policy, self.baseline)
        return (all(part is not None and part.fuses for part in parts) and self.act is None
                and self.classifier is not None and not cfg.reinforce_core and cfg.pool == "mean" and cfg.pad == "zeros")

    @property
    def uses_fused_loop(self) -> bool:
        """The fused loop runs: it can (`fusable`) and it is on (`fused`)."""
        return self.fused and self.fusable

    def matmul_shape(self) -> tuple[int, int]:
        """(inner, columns) of the matmul that dominates a step: the core's [g_t, h_{t-1}] @ W (`ram bench`)."""
        return self.glimpse_net.out_size + self.cfg.hidden, self.cfg.hidden

    def forward(self, inputs, *, sample: bool = True) -> Episode:
        """inputs: images [B, C, H, W] in [0, 1], or a world to play in (see `play`). sample=False follows the
        policies' means (deterministic evaluation). Games go through forward too, so DistributedDataParallel, which
        hooks forward only, sees them."""
        if not torch.is_tensor(inputs):
            return self.play(inputs, sample=sample)
        # Anomaly mode runs the plain loop, so that a NaN is traced to the op that made it.
        if self.uses_fused_loop and not torch.is_anomaly_enabled():
            return self._fused(self.standardise(inputs), sample)
        return self.play(Still(inputs), sample=sample)

    def standardise(self, frame: torch.Tensor) -> torch.Tensor:
        """Pixels as the network reads them, (x - pixel_mean) / pixel_std; the frame itself with the defaults."""
        cfg = self.cfg
        if cfg.pixel_mean == 0.0 and cfg.pixel_std == 1.0:
            return frame
        return (frame - cfg.pixel_mean) / cfg.pixel_std

    def _decide(self, h: torch.Tensor) -> torch.Tensor:
        """The state the policies and the baseline read. Detached, REINFORCE trains only the policies and the
        regression only the baseline (RAM); with reinforce_core both also reach the core and the glimpse net, as in an
        actor-critic's shared trunk."""
        return h if self.cfg.reinforce_core else h.detach()

    def play(self, world: World, *, sample: bool = True) -> Episode:
        """One episode of T glimpses in `world` (`observe() -> frame [B, C, H, W]`, `act(moves [B])`).
        sample=False takes every policy's mode (deterministic evaluation)."""
        cfg = self.cfg
        frame = self.standardise(world.observe())
        B, _, H, W = frame.shape
        state = self.core.initial(B, frame.device, frame.dtype)
        h = frame.new_zeros(B, cfg.hidden)
        decision = self.policy.first(frame, h)
        padded_frame = None
        hs, log_probs, entropies, baselines, locations, means, moves = [], [], [], [], [], [], []
        for t in range(cfg.glimpses):
            value = decision.sample() if sample else decision.mode()
            loc = decision.location(value)
            log_prob = decision.log_prob(value)
            entropy = decision.entropy()
            means.append(decision.mean)
            # The baseline reads the state the policies read: detached in RAM, where its regression must not reach into
            # the core; with reinforce_core its regression also teaches the core what predicts the reward.
            baselines.append(self.baseline(self._decide(h)).squeeze(1) if self.baseline is not None else h.new_zeros(B))
            if frame is not padded_frame:  # pad once for a still image, once a step for a game
                padded, pad = sensor.pad_images(frame, size=cfg.patch_size, scales=cfg.scales, locations_in_range=True,
                                                mode=cfg.pad)
                padded_frame = frame
            patches = sensor.read(
                padded, pad, loc, size=cfg.patch_size, scales=cfg.scales, height=H, width=W, pool=cfg.pool
            ).flatten(1)
            h, state = self.core(self.glimpse_net(patches, loc), state)
            if self.act is not None:
                choice = self.act(self._decide(h))
                move = choice.sample() if sample else choice.mode()
                log_prob = log_prob + choice.log_prob(move)
                entropy = entropy + choice.entropy()
                world.act(move)
                frame = self.standardise(world.observe())
                moves.append(move)
            if t + 1 < cfg.glimpses:
                decision = self.policy(h.detach() if cfg.detach_location else self._decide(h), loc)
            hs.append(h)
            log_probs.append(log_prob)
            entropies.append(entropy)
            locations.append(loc)
        hs = torch.stack(hs, dim=1)  # [B, T, hidden]
        step_logits = (self.classifier(self.drop_state(hs)) if self.classifier is not None
                       else hs.new_zeros(B, cfg.glimpses, 0))
        return Episode(
            logits=step_logits[:, -1],
            step_logits=step_logits,
            log_probs=torch.stack(log_probs, dim=1),
            baselines=torch.stack(baselines, dim=1),
            locations=torch.stack(locations, dim=1),
            means=torch.stack(means, dim=1),
            moves=torch.stack(moves, dim=1) if moves else torch.zeros(B, 0, dtype=torch.long, device=frame.device),
            entropies=torch.stack(entropies, dim=1),
        )

    def _fused(self, images: torch.Tensor, sample: bool) -> Episode:
        cfg = self.cfg
        B = images.shape[0]
        padded, pad = sensor.pad_images(images, size=cfg.patch_size, scales=cfg.scales, locations_in_range=True)
        loop = fused.episode_loop(self, padded, pad, sample=sample, first=self.policy.first_mean(images))  # [T, B, ...]
        with torch.autocast(images.device.type, enabled=False):  # under autocast only the loop's matmuls are bf16
            return self._heads(loop, B)

    def _heads(self, loop: fused.Loop, B: int) -> Episode:
        cfg = self.cfg
        # The heads that do not feed the loop run once on all T*B states. The baseline reads the detached state
        # before each glimpse; before the first it is zero, so b(h) is the bias.
        before = self.baseline(loop.hs[:-1].detach()).squeeze(-1)  # [T-1, B]
        baselines = torch.cat((self.baseline.bias.expand(1, B), before))
        # classifier(hs) as W hs^T: MKL is 2x faster with 10 rows than with 10 columns.
        hs = self.drop_state(loop.hs).reshape(-1, cfg.hidden)
        step_logits = torch.addmm(self.classifier.bias[:, None], self.classifier.weight, hs.t()).t()
        step_logits = step_logits.view(-1, B, cfg.classes)  # [T, B, classes]
        return Episode(
            logits=step_logits[-1],
            step_logits=step_logits.transpose(0, 1),
            log_probs=self.policy.distribution(loop.means).log_prob(loop.raws).t(),
            baselines=baselines.t(),
            locations=loop.locations.transpose(0, 1),
            means=loop.means.transpose(0, 1),
            moves=torch.zeros(B, 0, dtype=torch.long, device=loop.hs.device),
            entropies=self.policy.distribution(loop.means).entropy().t(),  # fixed std: a constant
        )

