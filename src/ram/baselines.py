"""The paper's comparison models, behind the same interface as RAM (they return an `Episode`).

- fc: two fully connected hidden layers of 256 rectifier units over the whole image.
- convnet: two convolutional layers and a 256-unit fully connected layer over the whole image.
- random-glimpses: RAM with its glimpses at uniformly random locations, showing what learning where to look is worth.

For Catch, what the glimpses cost and what they buy:
- screen: RAM's glimpse network, core and move head fed the whole frame every step, trained the same way.
- random-agent: uniform moves, to show what a game is worth by chance.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from .config import ModelConfig, PolicyConfig
from .model import RAM, Episode
from .policies import Categorical


def _whole_image_episode(logits: torch.Tensor) -> Episode:
    B = logits.shape[0]
    empty = logits.new_zeros(B, 0)
    return Episode(
        logits=logits,
        step_logits=logits[:, None],
        log_probs=empty,
        baselines=empty,
        locations=logits.new_zeros(B, 0, 2),
        means=logits.new_zeros(B, 0, 2),
        moves=torch.zeros(B, 0, dtype=torch.long, device=logits.device),
        entropies=empty,
    )


class FullyConnected(nn.Module):
    answer_layer = "net.5"
    """The layer that gives the class logits (as `RAM.answer_layer`)."""

    def __init__(self, cfg: ModelConfig, policy: PolicyConfig | None = None, *, baseline: str = "state"):
        """A policy and a baseline are RAM's settings: a whole-image classifier decides nothing and has no head for
        them (they are taken, as by every model, and left alone)."""
        super().__init__()
        self.cfg = cfg
        n = cfg.channels * cfg.image_size**2
        self.net = nn.Sequential(
            nn.Flatten(), nn.Linear(n, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, cfg.classes)
        )

    def forward(self, images: torch.Tensor, *, sample: bool = True) -> Episode:
        return _whole_image_episode(self.net(images))

    def matmul_shape(self) -> tuple[int, int]:
        """The hidden layer's 256 x 256 (`ram bench`)."""
        return 256, 256


class ConvNet(nn.Module):
    answer_layer = "head.2"
    """The layer that gives the class logits (as `RAM.answer_layer`)."""

    def __init__(self, cfg: ModelConfig, policy: PolicyConfig | None = None, *, baseline: str = "state"):
        super().__init__()
        self.cfg = cfg
        # Large canvases get the paper's 10x10 stride-5 first layer; 28x28 digits get a 5x5 stride-1 one.
        k, s = (10, 5) if cfg.image_size >= 60 else (5, 1)
        # Under 9 pixels (scikit-learn's 8x8 digits) two unpadded 5x5 layers leave nothing: each is padded by 2.
        pad = 2 if cfg.image_size < 9 else 0
        shapes = [(k, s, pad), (5, 2, pad)] + [(3, 1, 1)] * (len(cfg.conv_channels) - 2)
        layers, before = [], cfg.channels
        for filters, (k, s, p) in zip(cfg.conv_channels, shapes):
            layers += [nn.Conv2d(before, filters, k, stride=s, padding=p), nn.ReLU()]
            before = filters
        self.features = nn.Sequential(*layers, nn.Flatten())
        with torch.no_grad():
            n = self.features(torch.zeros(1, cfg.channels, cfg.image_size, cfg.image_size)).shape[1]
        self.head = nn.Sequential(nn.Linear(n, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, cfg.classes))

    def forward(self, images: torch.Tensor, *, sample: bool = True) -> Episode:
        return _whole_image_episode(self.head(self.features(images)))

    def matmul_shape(self) -> tuple[int, int]:
        """The size of the fully connected layer's output, as for fc (`ram bench`)."""
        return self.cfg.hidden, self.cfg.hidden


class Uniform:
    """Locations uniform over the image. It has no mode: following it is sampling too, so the 'policy means' of
    this baseline are one episode of random glimpses."""

    def __init__(self, h: torch.Tensor):
        self.mean = torch.rand(h.shape[0], 2, device=h.device) * 2 - 1

    def sample(self) -> torch.Tensor:
        return self.mean

    mode = sample

    def log_prob(self, loc: torch.Tensor) -> torch.Tensor:
        return loc.new_zeros(loc.shape[0])

    def entropy(self) -> torch.Tensor:
        """Nothing to learn, so nothing to regularise: 0 (the continuous uniform's log 4 is a constant)."""
        return self.mean.new_zeros(self.mean.shape[0])

    def location(self, loc: torch.Tensor) -> torch.Tensor:
        return loc


class Centre(Uniform):
    """Always the centre of the frame, a glimpse of the whole screen when the patch is the screen's size."""

    def __init__(self, h: torch.Tensor):
        self.mean = h.new_zeros(h.shape[0], 2)


class Unlearned(nn.Module):
    """A location policy with nothing to learn: every decision is `kind(h)` (Uniform, Centre), whatever the state."""

    fuses = False
    lattice = None

    def __init__(self, kind: type):
        super().__init__()
        self.kind = kind

    def forward(self, h: torch.Tensor, previous: torch.Tensor | None = None):
        return self.kind(h)

    def first(self, images: torch.Tensor, h: torch.Tensor):
        return self.kind(h)


class RandomGlimpses(RAM):
    """RAM whose glimpses land at uniformly random locations: the paper's "random glimpses" baseline."""

    def __init__(self, cfg: ModelConfig, policy: PolicyConfig | None = None, *, baseline: str = "state"):
        super().__init__(cfg, policy, baseline=baseline)
        self.policy = Unlearned(Uniform)


class WholeScreen(RAM):
    """RAM that sees the whole frame every step: one patch the size of the screen, read at its centre, through the
    same glimpse network and core. Its own cfg is the config's with that patch (one scale of image_size pixels)."""

    def __init__(self, cfg: ModelConfig, policy: PolicyConfig | None = None, *, baseline: str = "state"):
        super().__init__(dataclasses.replace(cfg, patch_size=cfg.image_size, scales=1), policy, baseline=baseline)
        self.policy = Unlearned(Centre)


class AnyMove(Categorical):
    """Every move equally likely. It has no mode either: its 'mode' is a random move too, so the random agent plays
    at random along the modes as well (an argmax over equal logits would always move left)."""

    mode = Categorical.sample


class UniformMoves(nn.Module):
    def __init__(self, n: int):
        super().__init__()
        self.n = n

    def forward(self, h: torch.Tensor) -> AnyMove:
        return AnyMove(h.new_zeros(h.shape[0], self.n))


class RandomAgent(RandomGlimpses):
    """Uniform moves (and random glimpses it does not use): the chance level of a game."""

    def __init__(self, cfg: ModelConfig, policy: PolicyConfig | None = None, *, baseline: str = "state"):
        super().__init__(cfg, policy, baseline=baseline)
        self.act = UniformMoves(cfg.actions)

