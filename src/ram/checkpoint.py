"""Checkpoints that load without executing code, written so that a crash never leaves half a file.

- A training state (model, optimiser, step, RNG states...) is a `torch.save` of tensors and plain data, read back with
  `weights_only=True`: a file holding any other Python object is refused before any of it runs.
- A model for sharing is `model.safetensors` plus `config.json`.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from .config import ConfigError, RunConfig


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, corrupt, hostile or does not fit the run."""


def atomic_write(path: Path, data: bytes) -> None:
    """Write bytes to path through a temp file in the same folder, fsync, then os.replace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_state(path: Path, state: dict[str, Any]) -> None:
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write(path, buf.getvalue())


def load_state(path: Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"checkpoint {path} refused: it holds Python objects other than tensors and plain data, "
            f"and loading it could run code ({first})"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise CheckpointError(f"checkpoint {path} is unreadable or truncated: {e}") from None


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def export_model(folder: Path, model: torch.nn.Module, cfg: RunConfig, *, name: str = "model") -> Path:
    """Write {name}.safetensors (the weights) and config.json (how to rebuild the model)."""
    folder = Path(folder)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write(folder / f"{name}.safetensors", save(tensors, metadata={"preset": cfg.preset}))
    atomic_write(folder / "config.json", json.dumps(cfg.to_dict(), indent=2).encode())
    return folder / f"{name}.safetensors"


def read_config(folder: Path) -> RunConfig:
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise CheckpointError(f"checkpoint folder {folder} has no config.json")
    try:
        return RunConfig.from_dict(json.loads(path.read_text()))
    except (json.JSONDecodeError, ConfigError) as e:
        raise CheckpointError(f"{path} is not a valid run config: {e}") from None


def load_weights(model: torch.nn.Module, path: Path) -> None:
    """Load safetensors weights, with a clear error when they do not fit the model."""
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"weights {path} are unreadable: {e}") from None
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    wrong = [k for k in expected if k in tensors and tensors[k].shape != expected[k].shape]
    if missing or unexpected or wrong:
        detail = "; ".join(
            f"{what}: {', '.join(keys[:4])}"
            for what, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong))
            if keys
        )
        raise CheckpointError(f"weights {path} do not fit this model ({detail})")
    model.load_state_dict(tensors)
