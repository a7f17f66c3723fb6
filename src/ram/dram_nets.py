"""The networks of the Deep Recurrent Attention Model (DRAM; Ba, Mnih & Kavukcuoglu 2015, arXiv 1412.7755), one small
nn.Module each, not yet wired into a model.

- `ConvGlimpseNet`: three convolutions on the glimpse and a linear layer ("what"), a linear layer on the location
  ("where"), multiplied element-wise: g = what(x) * where(l). Same call as `nets.GlimpseNet`: (patches, locations).
- `StackedLSTM`: two LSTM layers. The lower one, r1, reads the glimpse and feeds the classifier; the upper one, r2,
  reads r1 and feeds the emission (next location) and baseline networks.
- `ContextNet`: three convolutions and a linear layer over a downsampled copy of the whole image, giving r2's initial
  state. r1 starts at zero and never reads r2, so the context can steer the glimpses but cannot reach the classifier.
- `ClassifierHead`: one hidden layer on r1, then the logits.

Sizes the paper gives for its SVHN model, as read second-hand (notes of issue 58): convolutions of 5x5, 3x3 and 3x3
with 64, 64 and 128 filters, no pooling; LSTM layers of 512 units. The MNIST sizes, the context network's, the
activations and padding were not found: here the convolutions have no padding, every hidden layer is a ReLU, and the
context vector is r2's initial hidden state (its cell starts at zero).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

KERNELS = (5, 3, 3)  # the paper's three convolutions, in order


def _conv_stack(in_channels: int, channels: tuple[int, int, int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for k, c in zip(KERNELS, channels):
        layers += [nn.Conv2d(in_channels, c, kernel_size=k), nn.ReLU()]
        in_channels = c
    return nn.Sequential(*layers, nn.Flatten())


def _conv_side(side: int, *, field: str) -> int:
    """Side of the last feature map of `_conv_stack` (no padding) on a side x side input."""
    out = side - sum(k - 1 for k in KERNELS)
    if out < 1:
        raise ValueError(f"{field} {side} is too small for the {'x'.join(map(str, KERNELS))} convolutions: "
                         f"it must be at least {side - out + 1}")
    return out


def _check_channels(channels: tuple[int, ...], *, field: str) -> tuple[int, int, int]:
    if len(channels) != len(KERNELS) or min(channels) < 1:
        raise ValueError(f"{field} {channels} must be {len(KERNELS)} positive numbers of filters")
    return tuple(channels)  # type: ignore[return-value]


class ConvGlimpseNet(nn.Module):
    """g = ReLU(W_what conv(x)) * ReLU(W_where l): "what" times "where", as in DRAM.

    patches: [B, scales * image_channels * glimpse_size**2], the sensor's [B, scales, C, g, g] flattened (the call of
    `nets.GlimpseNet`); the scales become the convolutions' input channels. locations: [B, 2]. Returns [B, out_size].
    """

    def __init__(
        self,
        *,
        glimpse_size: int,
        scales: int,
        image_channels: int,
        channels: tuple[int, int, int],
        out_size: int,
    ):
        super().__init__()
        self.in_channels = scales * image_channels
        self.glimpse_size = glimpse_size
        side = _conv_side(glimpse_size, field="glimpse_size")
        self.convs = _conv_stack(self.in_channels, _check_channels(channels, field="channels"))
        self.what = nn.Linear(channels[-1] * side * side, out_size)
        self.where = nn.Linear(2, out_size)

    def forward(self, patches: torch.Tensor, locations: torch.Tensor) -> torch.Tensor:
        x = patches.view(-1, self.in_channels, self.glimpse_size, self.glimpse_size)  # [B, S*C, g, g]
        what = torch.relu(self.what(self.convs(x)))  # [B, out]
        where = torch.relu(self.where(locations))  # [B, out]
        return what * where


class ContextNet(nn.Module):
    """The whole image, downsampled to coarse x coarse by averaging, through three convolutions and a linear layer.

    images: [B, image_channels, H, W] -> [B, out_size], r2's initial hidden state.
    """

    def __init__(self, *, coarse: int, image_channels: int, channels: tuple[int, int, int], out_size: int):
        super().__init__()
        self.coarse = coarse
        side = _conv_side(coarse, field="coarse")
        self.convs = _conv_stack(image_channels, _check_channels(channels, field="channels"))
        self.out = nn.Linear(channels[-1] * side * side, out_size)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        coarse = nn.functional.adaptive_avg_pool2d(images, self.coarse)  # [B, C, coarse, coarse]
        return torch.relu(self.out(self.convs(coarse)))


class StackedState(NamedTuple):
    h1: torch.Tensor  # [B, hidden] r1, the lower layer's output
    c1: torch.Tensor  # [B, hidden]
    h2: torch.Tensor  # [B, hidden] r2, the upper layer's output
    c2: torch.Tensor  # [B, hidden]


class StackedLSTM(nn.Module):
    """r1_n = LSTM1(g_n, r1_{n-1}), r2_n = LSTM2(r1_n, r2_{n-1}).

    forward(g [B, input_size], state) -> (r1 [B, hidden], r2 [B, hidden], state). `initial` starts r1 at zero and r2
    at the context vector when one is given, so r1 (and the classifier reading it) never depends on the context.
    """

    def __init__(self, *, input_size: int, hidden_size: int):
        super().__init__()
        self.hidden_size = hidden_size
        self.lower = nn.LSTMCell(input_size, hidden_size)
        self.upper = nn.LSTMCell(hidden_size, hidden_size)

    def initial(
        self, batch: int, device: torch.device, dtype: torch.dtype | None = None, *, context: torch.Tensor | None = None
    ) -> StackedState:
        zeros = torch.zeros(batch, self.hidden_size, device=device, dtype=dtype)
        if context is not None and context.shape != (batch, self.hidden_size):
            raise ValueError(f"context must be [{batch}, {self.hidden_size}] (r2's initial state), got "
                             f"{tuple(context.shape)}")
        return StackedState(zeros, zeros, zeros if context is None else context, zeros)

    def forward(self, g: torch.Tensor, state: StackedState) -> tuple[torch.Tensor, torch.Tensor, StackedState]:
        h1, c1 = self.lower(g, (state.h1, state.c1))
        h2, c2 = self.upper(h1, (state.h2, state.c2))
        return h1, h2, StackedState(h1, c1, h2, c2)


class ClassifierHead(nn.Module):
    """logits = W_o ReLU(W_h r1): one hidden layer, then one logit per class. r1 [B, in_size] -> [B, classes]."""

    def __init__(self, *, in_size: int, hidden_size: int, classes: int):
        super().__init__()
        self.hidden = nn.Linear(in_size, hidden_size)
        self.out = nn.Linear(hidden_size, classes)

    def forward(self, r1: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.hidden(r1)))
