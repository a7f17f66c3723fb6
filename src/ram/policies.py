"""Policies: distributions over the agent's next decision, given the core state.

A policy module returns a distribution object with `sample()`, `mode()` (the deterministic choice), `log_prob(value)`
and `entropy()`. Location policies' distributions also map their value to the glimpse location, `location(value)`
as (x, y) in [-1, 1], so the episode loop treats every location policy alike:

    decision = policy.first(images, h0)             # where the first glimpse goes
    for t: value = decision.sample(); loc = decision.location(value); ...; decision = policy(h_t, loc)

- `GaussianPolicy`: RAM's, any point of the image.
- `SaccadePolicy`: seed 000's hard attention, one step in one of 8 directions on a lattice of windows, the first
  window chosen by an initial-location network on a downsized image.
- `CategoricalPolicy`: a softmax over a few moves (Catch's left, stay, right).

What the rest of the house needs to know of a location policy is asked of it, never of its class: `fuses` (whether
`ram.fused`'s loop runs it, through `fused_weights`), `lattice` (the windows a discrete policy lands on, None for any
point). Each policy also owns its settings: its config section is its `Config` (a `ram.config.PolicyConfig`), which
checks them against the model they steer; `POLICIES` (`ram.config.register_policy`) finds the policy a run's
`PolicyConfig.kind` names, and `from_config(model, policy)` builds it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
import tyro
from torch import nn

from .config import (POLICIES, ModelConfig, PolicyConfig, _require, register_policy,  # noqa: F401  (POLICIES: found here too)
                     require_positive)


class Gaussian:
    """N(mean, std^2 I) over (x, y); a value is an unclamped sample, its location the sample clamped to the image, or
    with squash its tanh (seed 002)."""

    def __init__(self, mean: torch.Tensor, std: float, *, squash: bool = False):
        self.centre, self.std, self.squash = mean, std, squash  # centre [B, 2]: the normal's mean
        self._log_norm = 2 * (math.log(std) + 0.5 * math.log(2 * math.pi))  # for the two independent dims

    @property
    def mean(self) -> torch.Tensor:
        """[B, 2] the location of the mode: the normal's mean, or its tanh with squash."""
        return torch.tanh(self.centre) if self.squash else self.centre

    def sample(self) -> torch.Tensor:
        # randn_like, one draw per step: ram.fused draws its noise the same way, so both loops see the same samples.
        return (self.centre + self.std * torch.randn_like(self.centre)).detach()

    def mode(self) -> torch.Tensor:
        return self.centre.detach()

    def log_prob(self, raw: torch.Tensor) -> torch.Tensor:
        """[B, 2] -> [B]."""
        return -((raw - self.centre) ** 2).sum(-1) / (2 * self.std**2) - self._log_norm

    def entropy(self) -> torch.Tensor:
        return self.centre.new_full(self.centre.shape[:-1], self._log_norm + 1.0)

    def location(self, raw: torch.Tensor) -> torch.Tensor:
        return torch.tanh(raw) if self.squash else raw.clamp(-1.0, 1.0)


class UniformLocation:
    """A location drawn uniformly over the image and not decided by the agent (seed 002's first glimpse): its
    log-probability and entropy are 0, so nothing is reinforced or rewarded for it. Its mode is the centre, the
    uniform's mean, so an episode along the policies' modes stays deterministic."""

    def __init__(self, h: torch.Tensor):
        self.mean = h.new_zeros(h.shape[0], 2)  # [B, 2] the centre

    def sample(self) -> torch.Tensor:
        return torch.rand_like(self.mean) * 2 - 1

    def mode(self) -> torch.Tensor:
        return self.mean

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return value.new_zeros(value.shape[0])

    def entropy(self) -> torch.Tensor:
        return self.mean.new_zeros(self.mean.shape[0])

    def location(self, value: torch.Tensor) -> torch.Tensor:
        return value


def pooled_image(images: torch.Tensor, downsample: int) -> torch.Tensor:
    """What an initial-location network reads: images [B, C, H, W] max-pooled by `downsample`."""
    return F.max_pool2d(images, downsample)


def _pooled_size(model: ModelConfig, downsample: int) -> int:
    """Inputs of an initial-location network: the pooled image's channels x side x side."""
    return model.channels * (model.image_size // downsample) ** 2


def _check_downsample(model: ModelConfig, downsample: int) -> None:
    _require(downsample <= model.image_size, "init_downsample", downsample,
             f"must be at most the image side {model.image_size}")


@dataclass(frozen=True, kw_only=True)
class GaussianConfig(PolicyConfig):
    """RAM's location policy: any point of the image, from a Gaussian of fixed std around a learned mean."""

    kind: tyro.conf.Suppress[str] = "gaussian"
    std: float = 0.1
    """Standard deviation of the Gaussian location policy, in units of half the image side."""
    squash: Literal["mean", "sample"] = "mean"
    """How tanh keeps a location on the image. mean: N(tanh(W h), std^2), the sample clamped to the image (this
    project's RAM). sample: tanh of a sample of N(W h, std^2), its log-probability that of the sample before the tanh
    (seed 002)."""
    first_glimpse: Literal["learned", "random", "context"] = "learned"
    """Where the first glimpse goes. learned: the policy on the zero state, so it is reinforced too. random: uniform
    over the image, drawn and not decided, so nothing is reinforced for it (seeds 001 and 002); along the policies'
    means it is the centre, the uniform's mean, so that one episode along the means is deterministic. context: the
    image decides it. An initial-location network, as seed 000's, reads the image max-pooled init_downsample times
    (ReLU layer of policy_hidden units) and adds its output to the zero-state policy's, so that the mean is
    tanh(b + c(image)); reinforced like every other location. Its last layer starts at zero, so a model started
    (`init`) from a learned-first-glimpse one starts exactly where that one looked."""
    init_downsample: int = 4
    """With a context first glimpse: the initial-location network reads the image max-pooled by this factor
    (28x28 -> 7x7)."""
    policy_hidden: int = 512
    """With a context first glimpse: units of the initial-location network's hidden ReLU layer."""
    dropout: float = 0.0
    """With a context first glimpse: probability of dropping a unit at the input of the initial-location network.
    Off in eval()."""

    def validate(self, model: ModelConfig) -> None:
        """Any size and scale; a context first glimpse moves the mean, so it needs the mean squashed."""
        super().validate(model)
        _require(math.isfinite(self.std) and self.std > 0, "std", self.std, "must be a positive number")
        _require(0 <= self.dropout < 1, "dropout", self.dropout, "must be in [0, 1)")
        require_positive(self, "init_downsample", "policy_hidden")
        if self.first_glimpse == "context":
            _require(self.squash == "mean", "first_glimpse", self.first_glimpse, "needs squash 'mean': the image "
                     "moves the mean of the first location, which squash 'sample' does not have on the image")
            _check_downsample(model, self.init_downsample)

    def describe(self) -> str:
        return f"std {self.std}" + (", first glimpse from the image" if self.first_glimpse == "context" else "")


@dataclass(frozen=True, kw_only=True)
class SaccadeConfig(PolicyConfig):
    """Seed 000's hard attention: one step in one of 8 directions on a lattice of patch_size windows at a stride of
    saccade_step, the first window chosen by an initial-location network on the image max-pooled init_downsample
    times."""

    kind: tyro.conf.Suppress[str] = "saccade"
    noun = "saccades"
    saccade_step: int = 2
    """Pixels per move, which is also the lattice's stride."""
    init_downsample: int = 4
    """The initial-location network reads the image max-pooled by this factor (28x28 -> 7x7)."""
    policy_hidden: int = 512
    """Units of the move network's hidden ELU layer (seed 000: 512)."""
    dropout: float = 0.0
    """Probability of dropping a unit at the input of the initial-location network and after the move network's
    hidden layer (seed 000: 0.7). Off in eval()."""
    elu_logits: bool = False
    """An ELU on the logits of the move and initial-location softmaxes, as seed 000 has before each of its three (a
    logit is then at least -1)."""

    def validate(self, model: ModelConfig) -> None:
        """One scale, and moves and a pooled image that fit the image."""
        super().validate(model)
        _require(0 <= self.dropout < 1, "dropout", self.dropout, "must be in [0, 1)")
        require_positive(self, "saccade_step", "init_downsample", "policy_hidden")
        _require(model.scales == 1, "scales", model.scales, "the saccade policy reads one scale")
        _require(self.saccade_step <= max(1, model.image_size - model.patch_size), "saccade_step", self.saccade_step,
                 f"must be at most {model.image_size - model.patch_size}, a move that keeps a "
                 f"{model.patch_size}x{model.patch_size} window on the {model.image_size}x{model.image_size} image")
        _check_downsample(model, self.init_downsample)

    def describe(self) -> str:
        return f"saccades of {self.saccade_step} px"


@register_policy("gaussian")
class GaussianPolicy(nn.Module):
    """pi(l | h) = N(tanh(W h + b), std^2 I) over (x, y), the sample clamped to the image [-1, 1].

    The std is fixed (the paper's choice); only the mean is learned, by REINFORCE alone. tanh keeps the mean on the
    image, so a policy that drifts cannot park every glimpse in a corner outside it. With squash "sample" the
    location is instead tanh of a sample of N(W h + b, std^2 I) (seed 002); with first_glimpse "random" the first
    location is drawn uniformly (`UniformLocation`) rather than decided on the zero state; with "context" an
    initial-location network on the downsized image adds to b for the first one, N(tanh(b + c(image)), std^2 I).
    """

    Config = GaussianConfig
    lattice = None
    """Any point of the image: no lattice of windows."""

    def __init__(self, *, hidden_size: int, std: float, squash: str = "mean", first: str = "learned",
                 context: nn.Module | None = None, downsample: int = 4):
        super().__init__()
        self.std, self.squash, self.first_glimpse, self.downsample = std, squash, first, downsample
        self.mean = nn.Linear(hidden_size, 2)
        if context is not None:
            self.context = context

    @property
    def fuses(self) -> bool:
        """`ram.fused` runs this policy inside its loop (`fused_weights`, `first_mean`): RAM's own, a first location
        that is decided (on the zero state or the image) and the tanh on the mean."""
        return self.squash == "mean" and self.first_glimpse in ("learned", "context")

    @classmethod
    def from_config(cls, model: ModelConfig, policy: GaussianConfig) -> "GaussianPolicy":
        context = None
        if policy.first_glimpse == "context":
            context = nn.Sequential(nn.Flatten(), nn.Dropout(policy.dropout),
                                    nn.Linear(_pooled_size(model, policy.init_downsample), policy.policy_hidden),
                                    nn.ReLU(), nn.Linear(policy.policy_hidden, 2))
            nn.init.zeros_(context[-1].weight)  # starts at the zero-state policy's location: c(image) = 0
            nn.init.zeros_(context[-1].bias)
        return cls(hidden_size=model.hidden, std=policy.std, squash=policy.squash, first=policy.first_glimpse,
                   context=context, downsample=policy.init_downsample)

    def fused_weights(self) -> tuple[torch.Tensor, torch.Tensor, float]:
        """(W [2, hidden], b [2], std): the mean is tanh(W h + b), the sample the mean plus std times a normal draw."""
        return self.mean.weight, self.mean.bias, self.std

    def distribution(self, mean: torch.Tensor) -> Gaussian:
        """The distribution of given means [..., 2] (the fused loop's)."""
        return Gaussian(mean, self.std)

    def forward(self, h: torch.Tensor, previous: torch.Tensor | None = None) -> Gaussian:
        """h [B, hidden] -> the distribution of the next location (the previous one does not matter)."""
        if self.squash == "sample":
            return Gaussian(self.mean(h), self.std, squash=True)
        return Gaussian(torch.tanh(self.mean(h)), self.std)

    def first_mean(self, images: torch.Tensor) -> torch.Tensor | None:
        """images [B, C, H, W] -> the first location's mean [B, 2] when the image decides it, tanh(b + c(image));
        None when it is the policy on the zero state, tanh(b), which the fused loop computes itself."""
        if self.first_glimpse != "context":
            return None
        return torch.tanh(self.mean.bias + self.context(pooled_image(images, self.downsample)))

    def first(self, images: torch.Tensor, h: torch.Tensor) -> Gaussian | UniformLocation:
        """The first location: from the policy on the initial (zero) state, so it is learned too; from the image
        as well (context); or drawn at random."""
        if self.first_glimpse == "random":
            return UniformLocation(h)
        if self.first_glimpse == "context":
            return Gaussian(self.first_mean(images), self.std)
        return self(h)



class Lattice:
    """The windows a saccade can land on: patch x patch windows at a stride of `step` pixels on a side x side image.

    Window (row, col) covers rows step*row ... step*row + patch - 1 and likewise the columns; there are
    n = (side - patch) // step + 1 positions along each axis (13 for 4x4 windows at stride 2 on 28x28). Its location
    is the one whose sensor patch is exactly that window: the sensor centres a patch on pixel c and reads
    c - patch//2 ... c - patch//2 + patch - 1 (see ram.sensor), so c = step*index + patch//2.
    """

    def __init__(self, *, side: int, patch: int, step: int):
        self.side, self.patch, self.step = side, patch, step
        self.n = (side - patch) // step + 1

    def location(self, index: torch.Tensor) -> torch.Tensor:
        """(row, col) [B, 2] integer -> (x, y) [B, 2] in [-1, 1]."""
        centre = (index.flip(-1) * self.step + self.patch // 2).float()
        return centre * (2.0 / self.side) - 1.0

    def index(self, location: torch.Tensor) -> torch.Tensor:
        """The inverse of `location`: (x, y) [B, 2] on the lattice -> (row, col) [B, 2] int64."""
        centre = (location + 1.0) * (self.side / 2)
        return torch.round((centre - self.patch // 2) / self.step).long().flip(-1).clamp(0, self.n - 1)


# (d_row, d_col) of the 8 saccades, in seed 000's order: up, up-right, right, down-right, down, down-left, left, up-left.
MOVES = torch.tensor([(-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1)])


class Categorical:
    """A softmax over the last axis of logits [B, ..., K]; independent axes (e.g. a row and a column) sum their
    log-probs and entropies. A value is the chosen index, [B, ...]."""

    def __init__(self, logits: torch.Tensor):
        self.logits = logits.log_softmax(-1)

    def sample(self) -> torch.Tensor:
        shape = self.logits.shape
        flat = torch.multinomial(self.logits.detach().exp().reshape(-1, shape[-1]), 1)
        return flat.view(shape[:-1])

    def mode(self) -> torch.Tensor:
        return self.logits.detach().argmax(-1)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        lp = self.logits.gather(-1, value.unsqueeze(-1)).squeeze(-1)
        return lp.reshape(lp.shape[0], -1).sum(1)

    def entropy(self) -> torch.Tensor:
        h = -(self.logits.exp() * self.logits).sum(-1)
        return h.reshape(h.shape[0], -1).sum(1)


class Saccade(Categorical):
    """One of the 8 moves from the current window; a move off the lattice stops at its border."""

    def __init__(self, logits: torch.Tensor, origin: torch.Tensor, lattice: Lattice):
        super().__init__(logits)  # [B, 8]
        self.origin, self.lattice = origin, lattice  # origin [B, 2] (row, col)

    def location(self, move: torch.Tensor) -> torch.Tensor:
        index = (self.origin + MOVES.to(move.device)[move]).clamp(0, self.lattice.n - 1)
        return self.lattice.location(index)

    @property
    def mean(self) -> torch.Tensor:
        """The location of the most likely move, what evaluation follows."""
        return self.location(self.mode())


class InitialWindow(Categorical):
    """Two independent softmaxes over the lattice's rows and columns; a value is (row, col) [B, 2]."""

    def __init__(self, logits: torch.Tensor, lattice: Lattice):
        super().__init__(logits)  # [B, 2, n]
        self.lattice = lattice

    def location(self, index: torch.Tensor) -> torch.Tensor:
        return self.lattice.location(index)

    @property
    def mean(self) -> torch.Tensor:
        """The location of the most likely window, what evaluation follows."""
        return self.location(self.mode())


@register_policy("saccade")
class SaccadePolicy(nn.Module):
    """Seed 000's hard attention: discrete saccades on a lattice, and an initial-location network.

    - moves: Linear(hidden, policy_hidden) -> ELU -> dropout -> Linear(policy_hidden, 8) on the core state.
    - initial: the image max-pooled by `downsample`, flattened, through dropout, into two Linears, one softmax over
      the lattice's rows and one over its columns.
    - elu_logits: an ELU on the logits before each softmax (seed 000).
    """

    fuses = False
    Config = SaccadeConfig

    def __init__(self, *, hidden_size: int, policy_hidden: int, image_size: int, channels: int, patch: int, step: int,
                 downsample: int, dropout: float, elu_logits: bool = False):
        super().__init__()
        self.lattice = Lattice(side=image_size, patch=patch, step=step)
        self.downsample = downsample
        # Seed 000 puts an ELU on the logits of each softmax; it holds no weights, so checkpoints are the same.
        logits = (nn.ELU(),) if elu_logits else ()
        self.moves = nn.Sequential(nn.Linear(hidden_size, policy_hidden), nn.ELU(), nn.Dropout(dropout),
                                   nn.Linear(policy_hidden, len(MOVES)), *logits)
        pooled = channels * (image_size // downsample) ** 2
        self.initial = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(pooled, 2 * self.lattice.n),
                                     *logits)

    @classmethod
    def from_config(cls, model: ModelConfig, policy: SaccadeConfig) -> "SaccadePolicy":
        return cls(hidden_size=model.hidden, policy_hidden=policy.policy_hidden, image_size=model.image_size,
                   channels=model.channels, patch=model.patch_size, step=policy.saccade_step,
                   downsample=policy.init_downsample, dropout=policy.dropout, elu_logits=policy.elu_logits)

    def forward(self, h: torch.Tensor, previous: torch.Tensor) -> Saccade:
        """h [B, hidden], previous location [B, 2] on the lattice -> the distribution of the next move."""
        return Saccade(self.moves(h), self.lattice.index(previous), self.lattice)

    def first(self, images: torch.Tensor, h: torch.Tensor) -> InitialWindow:
        """images [B, C, H, W] -> the distribution of the first window."""
        pooled = pooled_image(images, self.downsample)
        return InitialWindow(self.initial(pooled).view(-1, 2, self.lattice.n), self.lattice)


class CategoricalPolicy(nn.Module):
    """pi(a | h) = softmax(W h + b) over `n` moves (Catch: left, stay, right)."""

    def __init__(self, *, hidden_size: int, n: int):
        super().__init__()
        self.logits = nn.Linear(hidden_size, n)

    def forward(self, h: torch.Tensor) -> Categorical:
        return Categorical(self.logits(h))
