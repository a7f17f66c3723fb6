"""Load a model from a run folder or from the shipped pretrained weights (checked against their SHA-256)."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
from pathlib import Path

import torch
from safetensors import safe_open

from . import checkpoint as ckpt
from .config import ConfigError, RunConfig
from .models import model_of

PRETRAINED = Path(__file__).parent / "pretrained"


def manifest() -> dict[str, dict]:
    """name -> {"file", "sha256", "config", ...} for every shipped model."""
    path = PRETRAINED / "manifest.json"
    if not path.is_file():
        return {}
    try:
        entries = json.loads(path.read_text())
    except (ValueError, OSError) as e:
        raise ckpt.CheckpointError(f"{path} is unreadable: {e}; reinstall the package") from None
    ok = isinstance(entries, dict) and all(
        isinstance(e, dict) and isinstance(e.get("file"), str) and isinstance(e.get("sha256"), str) and "config" in e
        for e in entries.values()
    )
    if not ok:
        raise ckpt.CheckpointError(f"{path} is not a manifest of {{name: {{file, sha256, config}}}}; reinstall")
    return entries


def load_pretrained(name: str) -> tuple[torch.nn.Module, RunConfig]:
    entries = manifest()
    if name not in entries:
        raise ConfigError(f"pretrained = {name!r}: unknown; shipped models are {', '.join(entries) or 'none'}")
    entry = entries[name]
    path = PRETRAINED / entry["file"]
    if path.resolve().parent != PRETRAINED.resolve():
        raise ckpt.CheckpointError(f"pretrained {name}: file {entry['file']!r} is outside {PRETRAINED}")
    if not path.is_file():
        raise ckpt.CheckpointError(f"pretrained {name}: weights file {path} is missing from the installation")
    data = path.read_bytes()  # hash and load the same bytes, so the file cannot change in between
    digest = hashlib.sha256(data).hexdigest()
    if digest != entry["sha256"]:
        raise ckpt.CheckpointError(
            f"pretrained {name}: {path} has SHA-256 {digest}, the manifest says {entry['sha256']}; "
            "the file is corrupt or was replaced, reinstall the package"
        )
    try:
        cfg = RunConfig.from_dict(entry["config"])
    except ConfigError as e:
        raise ckpt.CheckpointError(f"pretrained {name}: the manifest's config is invalid: {e}") from None
    model = model_of(cfg)
    ckpt.load_weights(model, path, data=data, cfg=cfg)
    return model.eval(), cfg


def load_checkpoint(folder: Path) -> tuple[torch.nn.Module, RunConfig]:
    """The best weights of a run folder written by `ram train`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ckpt.CheckpointError(f"checkpoint = {str(folder)!r}: no such run folder")
    cfg = ckpt.read_config(folder)
    model = model_of(cfg)
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise ckpt.CheckpointError(f"checkpoint {folder} has no model.safetensors yet (no epoch finished)")
    ckpt.load_weights(model, weights, cfg=cfg)
    return model.eval(), cfg


def load_run(*, checkpoint: Path | None = None, pretrained: str | None = None) -> tuple[torch.nn.Module, RunConfig, str]:
    """Exactly one of checkpoint / pretrained. Returns (model in eval mode, its config, where it came from)."""
    if (checkpoint is None) == (pretrained is None):
        raise ConfigError("checkpoint/pretrained: give exactly one of --checkpoint DIR or --pretrained NAME")
    if pretrained is not None:
        model, cfg = load_pretrained(pretrained)
        return model, cfg, f"pretrained:{pretrained}"
    model, cfg = load_checkpoint(checkpoint)
    return model, cfg, str(checkpoint)


def load_named(name_or_folder: str | Path) -> tuple[torch.nn.Module, RunConfig]:
    """A run folder written by `ram train`, or else a shipped model by name: (model in eval mode, its config)."""
    if Path(name_or_folder).is_dir():
        return load_checkpoint(Path(name_or_folder))
    if str(name_or_folder) in manifest():
        return load_pretrained(str(name_or_folder))
    raise ConfigError(f"{str(name_or_folder)!r} is neither a run folder nor a shipped model; shipped models are "
                      f"{', '.join(manifest()) or 'none'}")


_RUN_INFO = ("epochs", "planned_epochs", "train_seconds", "phases", "machine", "val_curve")


def val_curve(folder: Path) -> list[list[float]]:
    """[epoch, validation error, training seconds up to its end] for each epoch in a run folder's metrics.csv, the
    seconds summed over every piece of a resumed run: when validation first reached a number (`ram.results`). [] for
    a folder without a readable metrics.csv."""
    path = Path(folder) / "metrics.csv"
    curve, elapsed = [], 0.0
    try:
        with path.open(newline="") as f:
            for row in csv.DictReader(f):
                elapsed = float(row["total_seconds"]) if row.get("total_seconds") else elapsed + float(row["seconds"])
                curve.append([int(row["epoch"]), float(row["val_error"]), round(elapsed, 1)])
    except (OSError, ValueError, KeyError, TypeError):
        return []  # extras only: a missing or damaged metrics.csv must not stop an evaluation
    return curve


def run_info(source_folder: Path | None = None, pretrained: str | None = None) -> dict:
    """Epochs, training wall time, machine and validation curve of a run, for results: from a run's test.json and
    metrics.csv, or the manifest."""
    if pretrained is not None:
        entry = manifest().get(pretrained, {})
        return {k: entry[k] for k in _RUN_INFO if entry.get(k) is not None} | {"pretrained": pretrained}
    if source_folder is None:
        return {}
    info = {"val_curve": curve} if (curve := val_curve(source_folder)) else {}
    path = Path(source_folder) / "test.json"
    if path.is_file():
        try:
            test = json.loads(path.read_text())
        except (ValueError, OSError):
            return info  # extras only: a damaged test.json must not stop an evaluation
        if isinstance(test, dict):
            info = {k: test[k] for k in _RUN_INFO if k in test} | info
    return info


def phase_of(run: dict) -> dict:
    """One phase's {epochs, train_seconds, machine} from a run's test.json or results: the machine only where the run
    recorded one (runs before it was recorded did not)."""
    phase = {"epochs": run.get("epochs"), "train_seconds": run.get("train_seconds")}
    return phase | {"machine": run["machine"]} if run.get("machine") else phase


def training_phases(init: str, own: dict) -> list[dict]:
    """Each phase of training (`phase_of`) behind weights that started from `init` (a shipped model's name or a run
    folder with a test.json, itself perhaps of several phases) and then trained for `own`: a row's cost is all its
    phases', each on the machine it ran on. The phase that made `init` keeps its validation curve, where `init` has
    one, for when a row's validation first reached the paper (`ram.results`). [own] when `init` is empty or says
    nothing."""
    base = manifest().get(init) or (run_info(Path(init)) if init and Path(init).is_dir() else None)
    if not base:
        return [own]
    before = [dict(p) for p in base.get("phases", [phase_of(base)])]
    if base.get("val_curve"):
        before[-1]["val_curve"] = base["val_curve"]
    return [*before, own]


def _shipped_as(init: str) -> str | None:
    """The shipped model whose tensors are those of run folder `init`'s best weights (or their float16 export, as
    `publish` writes it), or None. A run started from a folder that has since shipped (an earlier phase trained
    beside it) then names the shipped model, as `ram reproduce` does. Tensors, not file bytes, are compared: a
    safetensors header may list its metadata in any order."""
    if not init or not (Path(init) / "model.safetensors").is_file():
        return None
    model, _ = load_checkpoint(Path(init))
    digests = {ckpt.tensors_sha256(model.state_dict()), ckpt.tensors_sha256(model.half().state_dict())}
    for name, entry in manifest().items():
        path = PRETRAINED / entry["file"]
        if path.is_file():
            with safe_open(path, "pt") as f:
                if (f.metadata() or {}).get("sha256") in digests:
                    return name
    return None


def publish(folder: Path, name: str, *, float16: bool = False, init: str | None = None) -> dict:
    """Ship a run's best weights as pretrained model `name`: copy them into the package and record their SHA-256.

    float16 halves the file, for models whose float32 weights would pass the 5 MiB a committed file may weigh; loading
    casts them back to float32. Evaluate the shipped model (`ram eval --pretrained`), not the run, for its numbers.
    init: the start the row's recipe names (`runs/mnist-saccade-phase1`), recorded in place of the folder the run was
    started from when that was the same phase trained elsewhere (a run folder kept outside the work tree); the
    phases are still counted from the folder the run names.
    """
    folder = Path(folder)
    model, cfg = load_checkpoint(folder)  # proves the weights load before they are shipped
    if (shipped := _shipped_as(cfg.train.init)) is not None:
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, init=shipped))
    test = json.loads((folder / "test.json").read_text())
    own = phase_of(test)
    phases = training_phases(cfg.train.init, own)
    if init is not None:
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, init=init))
    PRETRAINED.mkdir(parents=True, exist_ok=True)
    target = PRETRAINED / f"{name}.safetensors"
    if float16 or init is not None:  # the file carries the config, so a recorded init is written into it too
        data = ckpt.weights_bytes(model.half() if float16 else model, cfg)
    else:
        data = (folder / "model.safetensors").read_bytes()
    entries = manifest()
    ckpt.atomic_write(target, data)
    entries[name] = {
        "file": target.name,
        "sha256": ckpt.sha256(target),
        "test_error": test["error"],
        # how test_error was measured (older runs' test.json averaged 10 sampled episodes and say so by mc_samples)
        "test_protocol": test.get("protocol", f"mean of {test.get('mc_samples', 0)} sampled episodes"),
        "epochs": sum(p["epochs"] or 0 for p in phases) if len(phases) > 1 else own["epochs"],
        "planned_epochs": test.get("planned_epochs"),  # set when the run was stopped before its schedule ended
        "train_seconds": sum(p["train_seconds"] or 0 for p in phases) if len(phases) > 1 else own["train_seconds"],
        **({"phases": phases} if len(phases) > 1 else {}),
        **({"machine": test["machine"]} if "machine" in test else {}),
        **({"val_curve": curve} if (curve := val_curve(folder)) else {}),
        "float16": float16,
        "config": cfg.to_dict(),
    }
    ckpt.atomic_write(PRETRAINED / "manifest.json", ckpt.json_text(entries, sort_keys=True).encode())
    return entries[name]
