"""Every model kind by name: RAM and the comparison models (`ModelConfig.kind`; what each kind is, `config.KINDS`),
and `evaluating`, how any of them is run for a number or a picture in the middle of training."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn

from .baselines import ConvNet, FullyConnected, RandomAgent, RandomGlimpses, WholeScreen
from .config import ModelConfig
from .model import RAM

MODELS: dict[str, type[nn.Module]] = {"ram": RAM, "fc": FullyConnected, "convnet": ConvNet,
                                      "random-glimpses": RandomGlimpses, "screen": WholeScreen,
                                      "random-agent": RandomAgent}


def build_model(cfg: ModelConfig) -> nn.Module:
    """The model named by cfg.kind. Every model returns an `Episode`."""
    return MODELS[cfg.kind](cfg)


@contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """The model in eval mode for the block, its own mode restored after it, also on an error: evaluation and
    pictures run from inside training, which must go on training."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)
