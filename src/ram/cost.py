"""What one image costs a model: its parameters, and the FLOPs of one inference episode along the policy means.

FLOPs are counted by torch's `FlopCounterMode`, which counts matrix products and convolutions only
(aten.mm/addmm/bmm/convolution, 2 FLOPs per multiply-add, a Linear's bias add not included). Element-wise ops (ReLU,
tanh, an LSTM's gates) and the sensor's 2x2-mean pyramid are not counted; cropping and gathering patches is copying,
not arithmetic. FLOPs do not depend on weight values, so a model built from a config with any weights counts the
same as its trained copy.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .config import RunConfig
from .model import RAM
from .models import model_of


def count_flops(model: nn.Module, canvas: int, *, fused: bool = False, batch: int = 2) -> dict[str, int]:
    """FLOPs per image of one episode along the policy means, by aten op, as FlopCounterMode counts them.
    fused=False runs a RAM's plain loop, the maths as written; the fused loop skips the products with the zero
    initial state."""
    images = torch.rand(batch, model.cfg.channels, canvas, canvas, generator=torch.Generator().manual_seed(0))
    was = getattr(model, "fused", None)
    if isinstance(model, RAM):
        model.fused = fused
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(images, sample=False)
    finally:
        if was is not None:
            model.fused = was
    counts = counter.get_flop_counts()["Global"]
    return {str(op).removeprefix("aten."): n // batch for op, n in counts.items()}


def params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def of_run(cfg: RunConfig) -> tuple[int, float]:
    """(parameters, MFLOPs per image) of the model a run trains, built from its config."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = model_of(cfg).eval()
    return params(model), sum(count_flops(model, cfg.model.image_size).values()) / 1e6
