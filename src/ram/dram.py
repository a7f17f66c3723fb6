"""The Deep Recurrent Attention Model (DRAM; Ba, Mnih & Kavukcuoglu 2015, "Multiple Object Recognition with Visual
Attention", arXiv 1412.7755): glimpses, two stacked LSTM layers, and a sequence of labels.

One episode of an image, K outputs of N glimpses each (T = K * N glimpses):

    r2_0 = context(coarse image) (or 0), r1_0 = 0
    for t in 0 .. T-1:
        l_t ~ N(emission(r2_t), std^2)          the emission network reads the upper layer
        b_t = baseline(r2_t)                    the expected return of glimpse t, before it is taken
        g_t = what(rho(x, l_t)) * where(l_t)    the multi-scale sensor (`ram.sensor`), "what times where"
        r1_{t+1} = LSTM1(g_t, r1_t)             the lower layer reads the glimpse
        r2_{t+1} = LSTM2(r1_{t+1}, r2_t)        the upper layer reads the lower
        after glimpses N, 2N, ..., KN: output k = classifier(r1)

The output is a sequence of K labels, not a single class, so that strings of any length ended by EOS
(`ram.data.multi`) need no other model: K is then the longest string plus one, and the classes include EOS.

Stop-gradients (the two layers split the work of RAM's one core):
- Cross-entropy trains the classifier, the lower layer and the glimpse network. It never reaches the upper layer or
  the context network: nothing the classifier reads depends on r2, and r1 never reads r2.
- REINFORCE trains the location pathway: the emission head, the upper layer and the context network. The upper layer
  reads r1 detached, and the locations reaching the sensor are detached samples, so REINFORCE never reaches the
  glimpse network, the lower layer or the classifier. (Detaching r2 itself where the emission reads it, as RAM detaches
  its core, would leave the upper layer and the context network with no gradient at all: nothing else reads them.)
- The baseline learns by regression from r2 detached, so its fit reaches only its own weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, NamedTuple

import torch
import tyro
from torch import nn

from . import sensor
from .config import GlimpseConfig, Kind, PolicyConfig, _require, register_model_kind, require_positive
from .dram_nets import KERNELS, ClassifierHead, ContextNet, ConvGlimpseNet, StackedLSTM, StackedState
from .nets import StateBaseline
from .policies import GaussianConfig, GaussianPolicy


@dataclass(frozen=True, kw_only=True)
class DramConfig(GlimpseConfig):
    """DRAM's network (`--model dram`): a convolutional glimpse network ("what" times "where"), two stacked LSTM
    layers, a context network over the coarse whole image, and `outputs` labels emitted in turn. glimpses is the
    episode's T, outputs x glimpses per output. Its location policy is the policy section's Gaussian (its std)."""

    kind: Annotated[str, tyro.conf.arg(name="model")] = "dram"
    image_size: tyro.conf.Suppress[int] = 100
    glimpses: int = 4
    """Glimpses per episode, T: glimpses / outputs of them before each label is emitted."""
    patch_size: int = 12
    """Side in pixels of the finest patch of a glimpse, the size every scale is brought down to (at least 9, what
    the glimpse network's 5x5, 3x3, 3x3 convolutions leave a pixel of)."""
    scales: int = 2
    """Patches per glimpse, each twice the side of the one before (the paper's two concentric crops: 2)."""
    outputs: tyro.conf.Suppress[int] = 2
    """Labels emitted per image, K (the task's: 2 for a pair, 1 for a sum)."""
    conv_channels: tuple[int, ...] = (32, 32, 64)
    """Filters of the glimpse network's three convolutions (5x5, 3x3, 3x3, no padding)."""
    glimpse_features: int = 256
    """Width of the glimpse vector what(x) * where(l), the lower LSTM layer's input."""
    hidden: int = 256
    """Units of each of the two LSTM layers, r1 (read by the classifier) and r2 (read by the emission network)."""
    classifier_hidden: int = 256
    """Units of the classification network's one hidden layer."""
    context: bool = True
    """A context network over the coarse whole image sets r2's initial state; False starts r2 at zero (the paper's
    "DRAM without context")."""
    coarse: int = 16
    """Side the whole image is averaged down to for the context network."""
    context_channels: tuple[int, ...] = (16, 16, 32)
    """Filters of the context network's three convolutions (5x5, 3x3, 3x3, no padding)."""

    def validate(self) -> None:
        super().validate()
        require_positive(self, "glimpse_features", "hidden", "classifier_hidden", "outputs")
        _require(self.glimpses % self.outputs == 0, "glimpses", self.glimpses,
                 f"must be a multiple of the {self.outputs} labels emitted, the same glimpses before each")
        smallest = sum(k - 1 for k in KERNELS) + 1
        _require(self.patch_size >= smallest, "patch_size", self.patch_size,
                 f"must be at least {smallest} for the glimpse network's "
                 f"{'x'.join(map(str, KERNELS))} convolutions")
        for name in ("conv_channels", "context_channels"):
            value = getattr(self, name)
            _require(len(value) == len(KERNELS) and all(1 <= c <= 4096 for c in value), name, value,
                     f"must be {len(KERNELS)} numbers of filters in 1..4096")
        _require(not self.context or self.coarse >= smallest, "coarse", self.coarse,
                 f"must be at least {smallest} for the context network's convolutions")
        _require(self.coarse <= self.image_size, "coarse", self.coarse,
                 f"is larger than the {self.image_size}x{self.image_size} image")
        _require(self.actions == 0, "actions", self.actions, "DRAM emits labels; it makes no moves")
        _require(self.classes >= 2, "classes", self.classes, "a label needs at least 2 classes")


class SequenceEpisode(NamedTuple):
    """One forward pass of DRAM. B is the batch, K the outputs, N the glimpses per output, T = K * N the glimpses.
    The fields that mean what they mean in `ram.model.Episode` have its names."""

    logits: torch.Tensor  # [B, K, classes] the labels emitted after glimpses N, 2N, ..., KN, in order
    step_logits: torch.Tensor  # [B, T, classes] the classifier applied after every glimpse (for pictures)
    log_probs: torch.Tensor  # [B, T] log pi(l_t) of each glimpse's location
    baselines: torch.Tensor  # [B, T] b(r2_t), the expected return before choosing l_t
    locations: torch.Tensor  # [B, T, 2] where each glimpse was read, (x, y) in [-1, 1]
    means: torch.Tensor  # [B, T, 2] the emission network's means
    entropies: torch.Tensor  # [B, T] entropy of the location's distribution at step t
    output_of: torch.Tensor  # [B, T] int64 the output glimpse t leads to: t // N


def _positive(value: int, field: str) -> None:
    if value < 1:
        raise ValueError(f"{field} = {value}: must be at least 1")


class DRAM(nn.Module):
    """DRAM with the paper's parts (`ram.dram_nets`), the project's sensor, Gaussian location policy and baseline."""

    answer_layer = "classifier.out"
    """The layer that gives each label's logits (as `RAM.answer_layer`)."""

    def __init__(
        self,
        *,
        image_size: int = 100,
        channels: int = 1,
        patch_size: int = 12,
        scales: int = 3,
        conv_channels: tuple[int, int, int] = (32, 32, 64),
        glimpse_features: int = 256,
        hidden: int = 256,
        classifier_hidden: int = 256,
        outputs: int = 2,
        glimpses_per_output: int = 2,
        classes: int = 10,
        context: bool = True,
        coarse: int = 16,
        context_channels: tuple[int, int, int] = (16, 16, 32),
        std: float = 0.2,
    ):
        """
        image_size: side of the square images read, in pixels.
        channels: channels of the images (1: grey).
        patch_size: side of the finest glimpse patch, in pixels; scale k covers 2**k times that, pooled to this side.
        scales: concentric patches per glimpse, each twice as wide (the paper's two crops: 2; 3 learns pairs sooner).
        conv_channels: filters of the glimpse network's three convolutions (5x5, 3x3, 3x3, no padding).
        glimpse_features: width of the glimpse vector what(x) * where(l), the lower LSTM layer's input.
        hidden: units of each of the two LSTM layers, r1 and r2.
        classifier_hidden: units of the classification network's one hidden layer.
        outputs: labels emitted per image (K): 2 for a pair of digits, 1 for a sum, a string's longest length + 1.
        glimpses_per_output: glimpses before each label is emitted (N); an episode has K * N.
        classes: classes of each label (10 digits; 11 with EOS; 19 sums).
        context: a context network over the coarse whole image sets r2's initial state; False starts r2 at zero.
        coarse: side the whole image is averaged down to for the context network.
        context_channels: filters of the context network's three convolutions (5x5, 3x3, 3x3, no padding).
        std: standard deviation of the Gaussian location policy, in half-widths of the image ([-1, 1] spans it).
        """
        super().__init__()
        for value, field in ((image_size, "image_size"), (channels, "channels"), (scales, "scales"),
                             (glimpse_features, "glimpse_features"), (hidden, "hidden"),
                             (classifier_hidden, "classifier_hidden"), (outputs, "outputs"),
                             (glimpses_per_output, "glimpses_per_output")):
            _positive(value, field)
        if classes < 2:
            raise ValueError(f"classes = {classes}: a label needs at least 2 classes")
        if not std > 0:
            raise ValueError(f"std = {std}: must be > 0")
        smallest = sum(k - 1 for k in KERNELS) + 1  # what the glimpse network's convolutions leave one pixel of
        if patch_size < smallest:
            raise ValueError(f"patch_size {patch_size} is too small for the glimpse network's "
                             f"{'x'.join(map(str, KERNELS))} convolutions: it must be at least {smallest}")
        if context and coarse > image_size:
            raise ValueError(f"coarse {coarse} is larger than the {image_size}x{image_size} image")
        self.image_size, self.channels = image_size, channels
        self.patch_size, self.scales = patch_size, scales
        self.outputs, self.glimpses_per_output, self.classes = outputs, glimpses_per_output, classes
        self.glimpse_net = ConvGlimpseNet(glimpse_size=patch_size, scales=scales, image_channels=channels,
                                          channels=tuple(conv_channels), out_size=glimpse_features)
        self.core = StackedLSTM(input_size=glimpse_features, hidden_size=hidden)
        self.context_net = (ContextNet(coarse=coarse, image_channels=channels, channels=tuple(context_channels),
                                       out_size=hidden) if context else None)
        self.emission = GaussianPolicy(hidden_size=hidden, std=std)
        self.baseline = StateBaseline(hidden_size=hidden)
        self.classifier = ClassifierHead(in_size=hidden, hidden_size=classifier_hidden, classes=classes)
        self._init_convs()

    @classmethod
    def from_config(cls, cfg: DramConfig, policy: PolicyConfig | None = None, *, baseline: str = "state") -> "DRAM":
        """The DRAM a run's model section describes, its locations from the policy section's Gaussian (its std), its
        baseline b(r2) learned ("state") or made of the rewards (the loss's batch or copies)."""
        policy = GaussianConfig() if policy is None else policy
        cfg.validate()
        _require(isinstance(policy, GaussianConfig) and policy.squash == "mean" and policy.first_glimpse == "learned",
                 "policy", policy.describe(), "DRAM places its glimpses with a Gaussian of squash 'mean' read from r2, "
                 "its first from r2's initial state (the context network's): first_glimpse 'learned'")
        _require(baseline in ("state", "batch", "copies"), "baseline", baseline,
                 "DRAM's baseline is b(r2) ('state'), or one made of the rewards ('batch', 'copies')")
        model = cls(image_size=cfg.image_size, channels=cfg.channels, patch_size=cfg.patch_size, scales=cfg.scales,
                    conv_channels=cfg.conv_channels, glimpse_features=cfg.glimpse_features, hidden=cfg.hidden,
                    classifier_hidden=cfg.classifier_hidden, outputs=cfg.outputs,
                    glimpses_per_output=cfg.glimpses // cfg.outputs, classes=cfg.classes, context=cfg.context,
                    coarse=cfg.coarse, context_channels=cfg.context_channels, std=policy.std)
        model.cfg, model.policy_cfg = cfg, policy
        model.pool, model.pad, model.pixel_mean, model.pixel_std = cfg.pool, cfg.pad, cfg.pixel_mean, cfg.pixel_std
        return model

    pool, pad = "mean", "zeros"
    """How the sensor brings a coarse scale down, and what it reads beyond the border (`GlimpseConfig`'s)."""
    pixel_mean, pixel_std = 0.0, 1.0
    """The network reads each pixel x as (x - pixel_mean) / pixel_std (`GlimpseConfig`'s)."""

    def _init_convs(self) -> None:
        """He initialisation of the convolutions and the linear layer after them, in the glimpse and context networks.

        They are ReLU layers, which PyTorch's default initialisation shrinks a signal through by about 3x each: "what"
        then varies across glimpses by about 1% of a pixel's range, g = what * where barely reaches the LSTM, and
        training sits at chance for long. The paper's initialisation was not found. The "where" layer keeps its
        default, bias included: with no bias, where(l) would be zero at the centre of the image.
        """
        nets = [self.glimpse_net.convs, self.glimpse_net.what]
        if self.context_net is not None:
            nets += [self.context_net.convs, self.context_net.out]
        for net in nets:
            for layer in net.modules():
                if isinstance(layer, (nn.Conv2d, nn.Linear)):
                    nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
                    nn.init.zeros_(layer.bias)

    def matmul_shape(self) -> tuple[int, int]:
        """(inner, columns) of the lower LSTM layer's [g_t, r1_{t-1}] @ W, the step's largest matmul (`ram bench`)."""
        return self.core.lower.weight_ih.shape[1] + self.core.lower.hidden_size, self.core.lower.hidden_size

    @property
    def glimpses(self) -> int:
        """T = K * N, the glimpses of one episode."""
        return self.outputs * self.glimpses_per_output

    def _check(self, images: torch.Tensor) -> None:
        want = (self.channels, self.image_size, self.image_size)
        if images.dim() != 4 or tuple(images.shape[1:]) != want:
            raise ValueError(f"images must be [B, {', '.join(map(str, want))}] (channels, image_size, image_size), "
                             f"got {tuple(images.shape)}")

    def forward(self, images: torch.Tensor, *, sample: bool = True) -> SequenceEpisode:
        """images [B, channels, image_size, image_size] in [0, 1] -> one episode. sample=False follows the emission
        network's means (deterministic evaluation)."""
        self._check(images)
        images = (images - self.pixel_mean) / self.pixel_std if (self.pixel_mean, self.pixel_std) != (0, 1) else images
        B, _, H, W = images.shape
        context = self.context_net(images) if self.context_net is not None else None  # [B, hidden] or None
        state = self.core.initial(B, images.device, images.dtype, context=context)
        padded, pad = sensor.pad_images(images, size=self.patch_size, scales=self.scales, locations_in_range=True,
                                        mode=self.pad)
        rows = sensor.row_offsets(padded, self.patch_size * 2 ** (self.scales - 1))
        r1s, log_probs, entropies, baselines, locations, means = [], [], [], [], [], []
        for _ in range(self.glimpses):
            # The emission reads r2 with its graph: REINFORCE trains the upper layer and the context through it.
            decision = self.emission(state.h2)
            value = decision.sample() if sample else decision.mode()  # detached either way
            loc = decision.location(value)  # [B, 2] clamped to the image
            log_probs.append(decision.log_prob(value))
            entropies.append(decision.entropy())
            means.append(decision.mean)
            baselines.append(self.baseline(state.h2.detach()).squeeze(1))
            patches = sensor.read(padded, pad, loc, size=self.patch_size, scales=self.scales, height=H, width=W,
                                  rows=rows, pool=self.pool).flatten(1)  # [B, scales * channels * patch**2]
            state = self._step(self.glimpse_net(patches, loc), state)
            r1s.append(state.h1)
            locations.append(loc)
        step_logits = self.classifier(torch.stack(r1s, dim=1))  # [B, T, classes]
        N = self.glimpses_per_output
        return SequenceEpisode(
            logits=step_logits[:, N - 1 :: N],
            step_logits=step_logits,
            log_probs=torch.stack(log_probs, dim=1),
            baselines=torch.stack(baselines, dim=1),
            locations=torch.stack(locations, dim=1),
            means=torch.stack(means, dim=1),
            entropies=torch.stack(entropies, dim=1),
            output_of=(torch.arange(self.glimpses, device=images.device) // N).expand(B, -1),
        )

    def _step(self, g: torch.Tensor, state: StackedState) -> StackedState:
        """The two layers on one glimpse vector g [B, glimpse_features]. The upper layer reads r1 detached: the
        location pathway's REINFORCE gradient stops there, and the cross-entropy cannot reach r2 anyway."""
        h1, c1 = self.core.lower(g, (state.h1, state.c1))
        h2, c2 = self.core.upper(h1.detach(), (state.h2, state.c2))
        return StackedState(h1, c1, h2, c2)


register_model_kind("dram", Kind(glimpses=True, drawn=True, classifies=True, plays=False, compared=False,
                                 sequence=True, section=DramConfig))
