"""Checkpoints that load without executing code, written so that a crash never leaves half a file.

- A training state (model, optimiser, step, RNG states...) is a `torch.save` of tensors and plain data, read back with
  `weights_only=True`: a file holding any other Python object is refused before any of it runs. The CRC-32 of every
  member of its zip archive is checked first, as torch.load does not, so a flipped bit is not trained on.
- A model for sharing is `model.safetensors` plus `config.json`. Its metadata holds the SHA-256 of its tensors, checked
  on load; safetensors holds no code, so a hostile or garbage file can only fail to parse.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import io
import json
import os
import pickle
import re
import shutil
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load, save

from .config import RunConfig, network


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, corrupt, hostile or does not fit the run."""


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()  # what open() would give; mkstemp makes files only their owner can read


def atomic_write(path: Path, data: bytes | Sequence[bytes | memoryview]) -> None:
    """Write bytes to path through a temp file in the same folder, fsync, then os.replace.

    data may be several buffers written one after another (an .npy header, then the memory of a large array), so
    that they are not first copied into one bytes object."""
    path = Path(path)
    chunks = [data] if isinstance(data, (bytes, bytearray, memoryview)) else data
    size = sum(memoryview(c).nbytes for c in chunks)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise _disk_error(e, path, size) from None
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, _FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise _disk_error(e, path, size) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # make the rename itself survive a power cut, not only a killed process
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass  # some platforms cannot open or fsync a folder; the rename is atomic all the same


class DiskFull(CheckpointError):
    """A write the disk (or the user's quota) has no room for."""


def _disk_error(e: OSError, path: Path, size: int) -> OSError | DiskFull:
    """A full disk as one DiskFull naming the folder, the file and the bytes it needed (the file as it was before
    is kept: it is replaced only by a whole new one); any other OSError as it is."""
    if e.errno not in (errno.ENOSPC, errno.EDQUOT):
        return e
    try:
        free = f", {shutil.disk_usage(path.parent).free:,} are free there"
    except OSError:
        free = ""
    return DiskFull(f"{path.parent}: no space left on the disk ({os.strerror(e.errno)}): writing {path.name} needs "
                    f"{size:,} bytes{free}; {path.name} is as it was before. Free some space and run again")


_NUMBER = r"-?[0-9][0-9.eE+-]*"
_NUMBER_LIST = re.compile(rf"\[\n\s*{_NUMBER}(?:,\n\s*{_NUMBER})*\n\s*\]")


def json_text(obj: Any, *, sort_keys: bool = False) -> str:
    """Indented JSON, each list of numbers (a validation-curve point, [epoch, error, seconds]) on one line rather than
    one number per line: the same values in a quarter of the lines. Only lists that `json.dumps` spread over several
    lines are packed, and it never puts a newline inside a string, so no string's text changes."""
    text = json.dumps(obj, indent=2, sort_keys=sort_keys)
    return _NUMBER_LIST.sub(lambda m: "[" + ", ".join(v.strip() for v in m.group()[1:-1].split(",")) + "]", text) + "\n"


def remove_stale_temps(folder: Path) -> list[Path]:
    """Delete the temp files of writes that a killed process never finished. Only for a folder no one else writes."""
    stale = sorted(Path(folder).glob(".*.tmp"))
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def save_state(path: Path, state: dict[str, Any]) -> None:
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write(path, buf.getvalue())


def load_state(path: Path, *, required: tuple[str, ...] = ()) -> dict[str, Any]:
    """A dict written by save_state, holding at least the `required` keys. Never runs code from the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                bad = archive.testzip()
            if bad is not None:
                raise CheckpointError(f"checkpoint {path} is corrupt: {bad} fails its CRC-32 check")
        state = torch.load(path, map_location="cpu", weights_only=True)
    except CheckpointError:
        raise
    except pickle.UnpicklingError as e:
        reason = _unpickling_reason(e)
        if "GLOBAL" not in reason.upper():  # garbage that is not even a pickle, rather than a pickle with code
            raise CheckpointError(f"checkpoint {path} is unreadable or truncated: {reason}") from None
        raise CheckpointError(
            f"checkpoint {path} refused: it holds Python objects other than tensors and plain data, "
            f"and loading it could run code ({reason})"
        ) from None
    except Exception as e:  # noqa: BLE001 - a damaged file can break the reader in any way; none of it is a bug here
        raise CheckpointError(f"checkpoint {path} is unreadable or truncated: {type(e).__name__}: {e}") from None
    missing = [k for k in required if k not in state] if isinstance(state, dict) else list(required)
    if not isinstance(state, dict) or missing:
        raise CheckpointError(f"checkpoint {path} is not a training state written by ram train (missing {missing})")
    return state


def _unpickling_reason(e: Exception) -> str:
    """The line of torch's weights_only error that names the refused global, without its advice to load unsafely."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    useful = [line for line in lines if "GLOBAL" in line.upper() or "Unsupported" in line]
    return (useful or lines[-1:] or [type(e).__name__])[0]


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def tensors_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 of named tensors (names, dtypes, shapes and bytes, in name order), whatever the file layout."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


def export_model(folder: Path, model: torch.nn.Module, cfg: RunConfig, *, name: str = "model") -> Path:
    """Write {name}.safetensors (the weights) and config.json (how to rebuild the model)."""
    folder = Path(folder)
    atomic_write(folder / f"{name}.safetensors", weights_bytes(model, cfg))
    atomic_write(folder / "config.json", json.dumps(cfg.to_dict(), indent=2).encode())
    return folder / f"{name}.safetensors"


def weights_bytes(model: torch.nn.Module, cfg: RunConfig) -> bytes:
    """A model's weights as a safetensors file, with the SHA-256 of its tensors and the preset in its metadata."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    # The model's config too: a config.json edited or copied from another run would otherwise rebuild another model
    # around these weights (a g2 config over g6 weights has the same shapes, and evaluated to 49.86%).
    return save(tensors, metadata={"preset": cfg.preset, "sha256": tensors_sha256(tensors),
                                   "model": json.dumps(network(cfg), sort_keys=True)})


def read_config(folder: Path) -> RunConfig:
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise CheckpointError(f"checkpoint folder {folder} has no config.json")
    try:
        return RunConfig.from_dict(json.loads(path.read_text()))
    except (ValueError, OSError) as e:  # ConfigError, JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise CheckpointError(f"{path} is not a valid run config: {e}") from None
    except RecursionError:  # the JSON parser recurses once per level: 100,000 "[" exhaust Python's stack
        raise CheckpointError(f"{path} is not a valid run config: its JSON is nested too deep") from None


def _check_saved_with(saved: str, cfg: RunConfig, path: Path) -> None:
    """A CheckpointError naming the differences if the model config a weights file was saved with (its metadata's
    JSON) is not cfg's."""
    try:
        theirs = json.loads(saved)
        ok = isinstance(theirs, dict)
    except ValueError:
        ok = False
    if not ok:
        raise CheckpointError(f"weights {path}: the model config in their metadata is not JSON; the file is damaged")
    mine = network(cfg)
    # Fields added since the file was written are absent from it, and take their defaults: not a difference.
    differ = [f"model.{k}: {v!r} in the weights, {mine[k]!r} in the config" for k, v in theirs.items()
              if k in mine and _plain(v) != _plain(mine[k])]
    if differ:
        raise CheckpointError(f"weights {path} were saved with another model config than the one given "
                              f"({'; '.join(differ[:4])}); its config.json was edited or comes from another run")


def _plain(value):
    """A config value as JSON gives it back (tuples become lists)."""
    return json.loads(json.dumps(value))


def _read_weights(path: Path, data: bytes | None) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    try:
        raw = Path(path).read_bytes() if data is None else data
        tensors = load(raw)
        metadata = json.loads(raw[8 : 8 + int.from_bytes(raw[:8], "little")]).get("__metadata__") or {}
    except OSError as e:
        raise CheckpointError(f"weights {path} cannot be read: {e}") from None
    except (SafetensorError, ValueError) as e:
        raise CheckpointError(f"weights {path} are not a valid safetensors file: {e}") from None
    expected = metadata.get("sha256")
    if expected is not None and (actual := tensors_sha256(tensors)) != expected:
        raise CheckpointError(f"weights {path} are corrupt: their tensors hash to SHA-256 {actual}, "
                              f"the file's metadata says {expected}")
    bad = [k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"weights {path} hold NaN or infinite values ({', '.join(bad[:4])})")
    return tensors, metadata


def load_weights(model: torch.nn.Module, path: Path, *, data: bytes | None = None,
                 cfg: RunConfig | None = None) -> None:
    """Load safetensors weights, with a clear error when they do not fit the model, or, given the config the model
    was built from, when the file says it was saved with another model config (files written before the model config
    was kept in them are not checked)."""
    tensors, metadata = _read_weights(path, data)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    wrong = [f"{k} {list(tensors[k].shape)} in the file, {list(v.shape)} in the model"
             for k, v in expected.items() if k in tensors and tensors[k].shape != v.shape]
    if missing or unexpected or wrong:
        detail = "; ".join(
            f"{what}: {', '.join(keys[:4])}"
            for what, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong))
            if keys
        )
        made_by = f" (saved by a {metadata['preset']!r} run)" if "preset" in metadata else ""
        raise CheckpointError(f"weights {path}{made_by} do not fit this model ({detail})")
    if cfg is not None and "model" in metadata:
        _check_saved_with(metadata["model"], cfg, path)
    model.load_state_dict(tensors)
