"""Every model kind by name: RAM and the comparison models (`ModelConfig.kind`; what each kind is, `config.KINDS`)."""

from __future__ import annotations

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
