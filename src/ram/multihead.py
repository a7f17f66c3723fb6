"""The convnet to beat on strings of digits: Goodfellow et al. 2014's multi-head design ("Multi-digit Number
Recognition from Street View Imagery using Deep Convolutional Neural Networks"), small enough for a 2-core CPU.

    features = ReLU(W_h flatten(convs(x)))     conv 5x5 (padded) -> ReLU -> max-pool 2x2 (stride 2), per layer
    P(L)      = softmax(W_L features)           the length head: 0 .. K-1 labels
    P(S_k)    = softmax(W_k features)           a digit head for each place k < K - 1 (digits only, no EOS)

Goodfellow's network has eight convolutional layers (48 to 192 filters, about 2 GFLOPs on 54x54, per the DRAM paper's
Table 5, read second-hand) and two fully connected layers of 3,072; here the layers are `conv_channels`, a few
tens of MFLOPs (`benchmarks/cost.py` counts them). Its length head has a class "more than 5"; here the longest string
the task gives is the last class.

It is read as the label sequence every multi-object model emits (`ram.dram.SequenceEpisode`): K labels of the task's
classes, the label names first and EOS last. Label k's log-probabilities are those of the string read left to right,

    log P(EOS at k | at least k labels)      = log P(L = k) - log P(L >= k)
    log P(digit d at k | at least k labels)  = log P(L > k) - log P(L >= k) + log P(S_k = d)

whose sum over a string's labels up to its EOS telescopes to log P(L) + sum_k log P(S_k): the sequence cross-entropy
of `losses.sequence_hybrid` (PAD ignored) is Goodfellow's loss, averaged over the labels rather than summed per image.
Its answer is read label by label, the k-th label the most likely one given the labels before it, as DRAM's is; not
Goodfellow's search over every length for the most likely whole string, which can differ when the length is unsure.
It takes no glimpses: its episode has T = 0 glimpses, so REINFORCE and the baseline have nothing to learn.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import torch
import tyro
from torch import nn

from .config import ConfigError, Kind, NetConfig, PolicyConfig, _require, register_model_kind
from .dram import SequenceEpisode

NEVER = -1e4
"""The logit of a label that cannot come (a digit after the longest string): exp(NEVER) is 0 in float32 and bf16."""


@dataclass(frozen=True, kw_only=True)
class MultiHeadConfig(NetConfig):
    """The multi-head convnet (`--model multihead`): convolutions, one fully connected layer, a length head and a
    digit head per place (Goodfellow et al. 2014's design). Reads strings of labels (mnist-numbers, svhn)."""

    kind: Annotated[str, tyro.conf.arg(name="model")] = "multihead"
    outputs: tyro.conf.Suppress[int] = 6
    """Labels of a string it emits, K: the longest string and its EOS (the task's)."""
    conv_channels: tuple[int, ...] = (32, 48, 64, 96)
    """Filters of each convolution (5x5, padded to keep the size), each followed by a 2x2 max-pool of stride 2."""
    hidden: int = 512
    """Units of the fully connected layer the heads read."""

    def validate(self) -> None:
        super().validate()
        _require(1 <= len(self.conv_channels) <= 8 and all(1 <= c <= 1024 for c in self.conv_channels),
                 "conv_channels", self.conv_channels, "must be 1 to 8 numbers of filters in 1..1024")
        _require(2 ** len(self.conv_channels) <= self.image_size, "conv_channels", self.conv_channels,
                 f"pools a {self.image_size}x{self.image_size} image {len(self.conv_channels)} times: at most "
                 f"{self.image_size.bit_length() - 1} layers")
        _require(1 <= self.hidden <= 16384, "hidden", self.hidden, "must be in 1..16,384")
        _require(2 <= self.outputs <= 33, "outputs", self.outputs, "must be in 2..33 (a string and its EOS)")
        _require(self.classes >= 2, "classes", self.classes, "a label needs at least 2 classes (a name and EOS)")
        _require(self.actions == 0, "actions", self.actions, "the multi-head convnet reads; it makes no moves")


class MultiHeadConvNet(nn.Module):
    """Convolutions, a fully connected layer, a length head and K - 1 digit heads, read as K labels in turn."""

    answer_layer = "digits"
    """The layer that gives the labels' logits (with the length head)."""

    def __init__(self, *, image_size: int, channels: int = 1, outputs: int = 6, classes: int = 11,
                 conv_channels: tuple[int, ...] = (32, 48, 64, 96), hidden: int = 512):
        """
        image_size: side of the square images read. channels: of the images (1 grey, 3 RGB).
        outputs: K, the labels emitted (the longest string and its EOS); lengths 0..K-1.
        classes: of each label: the names, then EOS last.
        conv_channels: filters of each 5x5 convolution, each followed by a 2x2 max-pool of stride 2.
        hidden: units of the fully connected layer.
        """
        super().__init__()
        if outputs < 2 or classes < 2:
            raise ValueError(f"outputs = {outputs}, classes = {classes}: need a string of one label and its EOS")
        self.image_size, self.channels, self.outputs, self.classes = image_size, channels, outputs, classes
        layers, before = [], channels
        for filters in conv_channels:
            layers += [nn.Conv2d(before, filters, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True)]
            before = filters
        self.features = nn.Sequential(*layers, nn.Flatten())
        with torch.no_grad():
            n = self.features(torch.zeros(1, channels, image_size, image_size)).shape[1]
        self.hidden = nn.Sequential(nn.Linear(n, hidden), nn.ReLU())
        self.length = nn.Linear(hidden, outputs)  # lengths 0..K-1
        self.digits = nn.Linear(hidden, (outputs - 1) * (classes - 1))  # K-1 places, each a name (no EOS)

    @classmethod
    def from_config(cls, cfg: MultiHeadConfig, policy: PolicyConfig | None = None, *,
                    baseline: str = "state") -> "MultiHeadConvNet":
        """The network a run's model section describes; it takes no glimpses, so the policy and baseline are
        unused."""
        cfg.validate()
        if baseline not in ("state", "batch", "copies", "scalar"):
            raise ConfigError(f"baseline = {baseline!r}: not a baseline")
        model = cls(image_size=cfg.image_size, channels=cfg.channels, outputs=cfg.outputs, classes=cfg.classes,
                    conv_channels=cfg.conv_channels, hidden=cfg.hidden)
        model.cfg = cfg
        return model

    def forward(self, images: torch.Tensor, *, sample: bool = True) -> SequenceEpisode:
        """images [B, channels, image_size, image_size] -> an episode of K labels and no glimpses (sample: unused,
        the network is the same either way)."""
        B, K, C = images.shape[0], self.outputs, self.classes
        h = self.hidden(self.features(images))  # [B, hidden]
        length = torch.log_softmax(self.length(h).float(), -1)  # [B, K] log P(L = k)
        digits = torch.log_softmax(self.digits(h).float().view(B, K - 1, C - 1), -1)  # [B, K-1, C-1] log P(S_k = d)
        at_least = length.flip(1).logcumsumexp(1).flip(1)  # [B, K] log P(L >= k)
        more = torch.cat([at_least[:, 1:], length.new_full((B, 1), NEVER)], 1)  # [B, K] log P(L > k); none past K-1
        names = more[:, :, None] - at_least[:, :, None] + torch.cat([digits, digits.new_zeros(B, 1, C - 1)], 1)
        logits = torch.cat([names, (length - at_least)[:, :, None]], -1)  # [B, K, C]: the names, then EOS
        none = logits.new_zeros(B, 0)
        return SequenceEpisode(logits=logits, step_logits=logits.new_zeros(B, 0, C), log_probs=none, baselines=none,
                               locations=logits.new_zeros(B, 0, 2), means=logits.new_zeros(B, 0, 2), entropies=none,
                               output_of=torch.zeros(B, 0, dtype=torch.int64, device=images.device))

    def matmul_shape(self) -> tuple[int, int]:
        """The fully connected layer's (inner, columns) (`ram bench`)."""
        return self.hidden[0].in_features, self.hidden[0].out_features


register_model_kind("multihead", Kind(glimpses=False, drawn=False, classifies=True, plays=False, compared=True,
                                      sequence=True, section=MultiHeadConfig))
