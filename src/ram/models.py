"""Every model kind by name: RAM and the comparison models (`ModelConfig.kind`; what each kind is, `config.KINDS`),
and `evaluating`, how any of them is run for a number or a picture in the middle of training."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from torch import nn

from .baselines import ConvNet, FullyConnected, RandomAgent, RandomGlimpses, WholeScreen
from .config import ModelConfig, PolicyConfig, RunConfig
from .dram import DRAM
from .model import RAM
from .multihead import MultiHeadConvNet

MODELS: dict[str, Callable[..., nn.Module]] = {"ram": RAM, "fc": FullyConnected, "convnet": ConvNet,
                                               "random-glimpses": RandomGlimpses, "screen": WholeScreen,
                                               "random-agent": RandomAgent, "dram": DRAM.from_config,
                                               "multihead": MultiHeadConvNet.from_config}
"""Each kind's network by name: called with (model section, policy section, baseline=)."""


def build_model(cfg: ModelConfig, policy: PolicyConfig | None = None, *, baseline: str = "state") -> nn.Module:
    """The model named by cfg.kind, looking where `policy` says (default: RAM's Gaussian policy) with the reward
    baseline `baseline` (`LossConfig.baseline`). Every model returns an `Episode`."""
    return MODELS[cfg.kind](cfg, policy, baseline=baseline)


def model_of(cfg: RunConfig) -> nn.Module:
    """The model a run trains: its model section, steered by its policy section, with its loss's baseline."""
    return build_model(cfg.model, cfg.policy, baseline=cfg.loss.baseline)


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
