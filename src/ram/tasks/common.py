"""What every task's loss and report share: the training arithmetic, and seeded sampling."""

from __future__ import annotations

import torch

from ..data.tasks import seeded
from ..speed import resolve_precision

__all__ = ["autocast", "float32", "seeded"]


def autocast(device: torch.device, precision: str):
    """The recipe's training arithmetic on this device (`resolve_precision`): bf16 under torch.autocast, else the
    model's own."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=resolve_precision(precision, device) == "bf16")


def float32(episode):
    """The losses run in float32 whatever the loop computed in."""
    return type(episode)(*(t.float() if t.is_floating_point() else t for t in episode))
