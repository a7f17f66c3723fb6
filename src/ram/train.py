"""`fit`: one training loop for every task, and its run folder. It never asks which task it runs: the task
(`ram.tasks`) brings its batches, loss, validation and report; the model maths lives in model.py and losses.py.

A run folder holds:
  config.json        the resolved RunConfig (the model is rebuilt from it)
  metrics.csv        one row per epoch
  model.safetensors  the weights with the best validation error (the last epoch's with keep="last")
  last.pt            the full training state (weights, optimiser, step, RNG states), for --resume
  test.json          the final test result of the best weights, as `ram eval --json` prints it
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm.auto import tqdm

from . import checkpoint as ckpt
from . import fused
from .config import ConfigError, RunConfig, TrainConfig
from .data.tasks import stream_seed
from .losses import Losses
from .models import model_of
from .runlock import run_lock
from .speed import check_precision, machine, resolve_precision, tune_malloc
from .tasks import Task, make_task


class TrainingError(RuntimeError):
    """Training cannot go on (a non-finite loss, a resume that does not fit)."""


def seed_everything(seed: int) -> None:
    """The one place a run's randomness is fixed: python, numpy and torch."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device = {name!r}: not a device (use auto, cpu, cuda or cuda:N)") from None
    if device.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"device = {name!r}: cannot train there (use auto, cpu, cuda or cuda:N)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device = {name!r}: MPS is not available on this machine")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device = {name!r}: CUDA is not available on this machine")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ConfigError(f"device = {name!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return device


def learning_rate(cfg: TrainConfig, step: int, total_steps: int, val_errors: Sequence[float] = ()) -> float:
    """Cosine annealing from lr to lr_min over the whole run, a constant, lr * lr_decay**epoch (floored at
    lr_min), the epoch being step's of the run's equally long epochs, or lr * lr_decay**k after k plateaus of the
    validation errors so far (`plateaus`), floored at lr_min."""
    if cfg.schedule == "constant":
        return cfg.lr
    if cfg.schedule == "plateau":
        return max(cfg.lr * cfg.lr_decay ** min(plateaus(val_errors, cfg.patience), lowest_level(cfg)), cfg.lr_min)
    if cfg.schedule == "exponential":
        epoch = step * cfg.epochs // max(total_steps, 1)
        return max(cfg.lr * cfg.lr_decay**epoch, cfg.lr_min)
    progress = min(step / max(total_steps, 1), 1.0)
    return cfg.lr_min + (cfg.lr - cfg.lr_min) * 0.5 * (1 + math.cos(math.pi * progress))


def plateaus(val_errors: Sequence[float], patience: int) -> int:
    """How many plateaus the validation errors, in order, have come to: stretches of `patience` validations in a row
    none of which is better (strictly lower) than the best before them. A plateau's count starts after the best
    error or the plateau before, whichever is later."""
    best, since, found = math.inf, 0, 0
    for error in val_errors:
        if error < best:
            best, since = error, 0
        else:
            since += 1
            if since == patience:
                found, since = found + 1, 0
    return found


def lowest_level(cfg: TrainConfig) -> int:
    """The plateau schedule's plateaus until lr * lr_decay**k reaches lr_min (the last k whose lr is not below it,
    or one below it where lr_min lies between two levels)."""
    k = 0
    while cfg.lr * cfg.lr_decay**k > cfg.lr_min * (1 + 1e-9) and k < 1000:
        k += 1
    return k


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam or SGD with the fused kernel (one op for all parameters; the per-tensor default costs ~1.5 ms a step at
    batch 128 on a CPU, 10% of a RAM step), or PyTorch's default where this torch has no fused kernel for the device."""
    if cfg.optimizer == "sgd":
        kind, options = torch.optim.SGD, dict(lr=cfg.lr, momentum=cfg.momentum)
    else:
        kind, options = torch.optim.Adam, dict(lr=cfg.lr)
    params = list(model.parameters())
    try:
        return kind(params, fused=True, **options)
    except (RuntimeError, TypeError, ValueError):
        return kind(params, **options)


def train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, loss: Callable[[], Losses], cfg: TrainConfig):
    """One update: loss() computes the task's losses on a batch (`ram.tasks`). Returns (losses, gradient norm)."""
    losses = loss()
    optimizer.zero_grad(set_to_none=True)
    losses.total.backward()
    if cfg.clip_grad > 0:
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
    else:  # only the norm, for the caller's finiteness check: scaling every gradient by 1 costs a pass over them
        norm = _grad_norm(model)
    optimizer.step()
    return losses, norm


def _grad_norm(model: torch.nn.Module) -> torch.Tensor:
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if hasattr(torch.nn.utils, "get_total_norm"):  # torch >= 2.6
        return torch.nn.utils.get_total_norm(grads)
    return torch.nn.utils.clip_grad_norm_(model.parameters(), math.inf)


@dataclass
class Distributed:
    """Where this process sits in a torchrun job; (0, 1) for a plain run."""

    rank: int = 0
    world: int = 1

    @classmethod
    def from_env(cls) -> "Distributed":
        return cls(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)))

    @property
    def main(self) -> bool:
        return self.rank == 0


def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].copy()), *np_state[2:]],
        "python": _py_state_to_plain(random.getstate()),
    }


def _py_state_to_plain(state):
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, keys.numpy(), *rest))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


_LOOP_KEYS = ("epoch", "batch", "step", "best_val_error", "history", "sums", "elapsed")


def _resume_state(out: Path, cfg: RunConfig) -> dict[str, Any] | None:
    """The training state in out/last.pt, checked against cfg; None when the run never reached a checkpoint.

    Read before any data is loaded, so a resume that cannot work fails before work starts.
    """
    last = out / "last.pt"
    if not last.exists():
        if (out / "config.json").is_file():  # killed before its first checkpoint: start over, but only the same run
            _check_same_run(ckpt.read_config(out), cfg, out)
        ckpt.remove_stale_temps(out)  # a .config.json.*.tmp of a process killed while writing it
        return None
    saved = ckpt.load_state(last, required=("config", "model", "optimizer", "rng", "loop"))
    try:
        made_with = RunConfig.from_dict(saved["config"])
    except ConfigError as e:
        raise ckpt.CheckpointError(f"checkpoint {last} holds an invalid config: {e}") from None
    _check_same_run(made_with, cfg, out)
    if not _loop_state_ok(saved["loop"]):
        raise ckpt.CheckpointError(f"checkpoint {last} is not a training state written by ram train (bad loop state)")
    ckpt.remove_stale_temps(out)  # half-written files of the process that died
    _restore_config(out, made_with)
    return saved


def _loop_state_ok(loop: Any) -> bool:
    """The loop state's keys and their types: a damaged or hand-made last.pt fails here, not as a TypeError later."""
    def number(x):
        return isinstance(x, (int, float)) and not isinstance(x, bool)

    def count(x):
        return isinstance(x, int) and not isinstance(x, bool) and x >= 0

    return (isinstance(loop, dict) and all(k in loop for k in _LOOP_KEYS)
            and all(count(loop[k]) for k in ("epoch", "batch", "step"))
            and number(loop["best_val_error"]) and number(loop["elapsed"])
            and isinstance(loop["history"], list) and all(isinstance(row, dict) for row in loop["history"])
            and (loop["sums"] is None or (isinstance(loop["sums"], dict)
                                          and all(number(v) for v in loop["sums"].values()))))


def _restore_config(out: Path, made_with: RunConfig) -> None:
    """config.json as the checkpoint's own copy says: `ram eval` rebuilds the model from config.json, so a truncated
    or edited one is written again from last.pt, with a notice, never kept quietly."""
    try:
        on_disk = ckpt.read_config(out)
    except ckpt.CheckpointError as e:
        why = f"is damaged ({e})"
    else:
        if on_disk == made_with:
            return
        why = f"differs from the checkpoint's own config ({'; '.join(on_disk.differences(made_with))})"
    ckpt.atomic_write(out / "config.json", json.dumps(made_with.to_dict(), indent=2).encode())
    print(f"ram: notice: {out / 'config.json'} {why}; written again from {out / 'last.pt'}", file=sys.stderr)


def _check_same_run(made_with: RunConfig, cfg: RunConfig, out: Path) -> None:
    # Compared as configs, not dicts, so that a run saved before a field existed resumes with that field's default.
    if made_with != cfg:
        raise TrainingError(f"--resume: the run in {out} was made with another config "
                            f"({'; '.join(made_with.differences(cfg))}); resume it with its own settings")


def _kept(out: Path) -> str:
    last = out / "last.pt"
    return f"the last good checkpoint {last} is kept." if last.exists() else "no checkpoint had been written yet."


def _all_finite(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> bool:
    tensors = [*model.parameters(), *(v for s in optimizer.state.values() for v in s.values() if torch.is_tensor(v))]
    return all(bool(torch.isfinite(t).all()) for t in tensors)


def _write_metrics(path: Path, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    buf = io.StringIO()
    # Every column any row has, in order: a run resumed by a newer version adds columns its first rows lack.
    writer = csv.DictWriter(buf, fieldnames=list(dict.fromkeys(key for row in rows for key in row)), restval="")
    writer.writeheader()
    writer.writerows(rows)
    ckpt.atomic_write(path, buf.getvalue().encode())


def fit(
    cfg: RunConfig,
    out: Path,
    *,
    resume: bool = False,
    device: str = "auto",
    threads: int | None = None,
    progress: bool = True,
    checkpoint_every: float = 10.0,
    detect_anomaly: bool = False,
    data: Any = None,
    hooks: list | None = None,
) -> dict[str, Any]:
    """Train a model as the config says, writing the run folder `out`. Returns the final test result.

    The task (`ram.tasks.make_task`: classification or Catch) brings the batches, the loss and the numbers; the rest
    is here, written once: the run folder, resume, the NaN stop, progress, metrics, DDP and the final report.
    checkpoint_every: minutes between mid-epoch checkpoints (the end of every epoch always writes one).
    data: what the task reads, when the caller has it already (`ram.tasks.Task`): the images of a classification task
    (a TaskData), or the Source that `ram train --data PATH` found.
    hooks: callables hook(event, **info) for epoch-end extras (pictures, TensorBoard); see ram.cli.
    """
    cfg.validate()
    out = Path(out)
    dist = Distributed.from_env()
    dev = _set_up(device, threads, dist)
    cfg = _arithmetic(cfg, out, resume, dev)
    if dist.main:
        check_precision(cfg.train.precision, dev)
    _check_out(out, resume)
    with run_lock(out) if dist.main else contextlib.nullcontext():  # one run at a time in a folder
        return _fit(cfg, out, dist, dev, resume=resume, progress=progress, checkpoint_every=checkpoint_every,
                    detect_anomaly=detect_anomaly, data=data, hooks=hooks)


def _fit(cfg: RunConfig, out: Path, dist: Distributed, dev: torch.device, *, resume: bool, progress: bool,
         checkpoint_every: float, detect_anomaly: bool, data: Any, hooks: list | None) -> dict[str, Any]:
    saved = _resume_state(out, cfg) if resume else None
    tc = cfg.train
    start_from = _initial_weights(cfg) if tc.init and saved is None else None

    seed_everything(tc.seed)  # the same initial weights on every rank
    task = make_task(cfg, data=data, progress=progress and dist.main)
    model = model_of(cfg).to(dev)
    if start_from is not None:
        fresh = model.load_state_dict(start_from, strict=False).missing_keys
        if fresh and dist.main:
            print(f"init: {len(fresh)} weights the init lacks, or has for other classes, start fresh "
                  f"({', '.join(fresh[:4])})", file=sys.stderr)
    optimizer = make_optimizer(model, tc)
    average = weight_average(model, tc.ema)
    steps_per_epoch = task.batches_per_epoch(tc.batch_size) // dist.world
    total_steps = steps_per_epoch * tc.epochs
    fused.configure_compile(total_steps, dev)  # RAM_COMPILE: compile the RAM loop for long CPU runs
    state = _start(out, cfg, saved, model, optimizer, dist, average)
    run = _Run(cfg=cfg, out=out, dist=dist, dev=dev, task=task, model=model, average=average, optimizer=optimizer,
               state=state, total_steps=total_steps, steps_per_epoch=steps_per_epoch, progress=progress,
               checkpoint_every=checkpoint_every, detect_anomaly=detect_anomaly, hooks=hooks or [])
    result: dict[str, Any] = {}
    with torch.autograd.set_detect_anomaly(detect_anomaly):
        while state["epoch"] < tc.epochs and not run.learned():
            sums = run.train_epoch()
            run.end_epoch(sums)
        stop = run.learned() if state["epoch"] < tc.epochs else ""
        if dist.main:
            if stop:
                print(stop, file=sys.stderr)
            result = run.final_report(stop)
    if dist.world > 1:
        import torch.distributed as td

        td.barrier()
        td.destroy_process_group()
    return result


def _initial_weights(cfg: RunConfig) -> dict[str, torch.Tensor]:
    """The weights `init` names (a shipped model or a run folder), checked against this run's network before any
    data is loaded. Every one must fit a weight of this network, but for the answer layer (`answer_layer`) of an
    init that answers other classes: a model of pairs of digits starts a model of their sums. This network's parts
    the init lacks (e.g. a context network for the first glimpse), or whose classes differ, start from their own
    initial values."""
    from .hub import load_named

    try:
        base, _ = load_named(cfg.train.init)
    except (ConfigError, ckpt.CheckpointError) as e:
        raise ConfigError(f"init = {cfg.train.init!r}: {e}") from None
    weights = base.state_dict()
    network = model_of(cfg)
    mine = network.state_dict()
    answers = f"{getattr(network, 'answer_layer', None)}."
    other_classes = {k for k, w in weights.items() if k.startswith(answers) and k in mine
                     and w.shape != mine[k].shape and w.shape[1:] == mine[k].shape[1:]}
    weights = {k: w for k, w in weights.items() if k not in other_classes}
    wrong = [k for k in weights if k not in mine or weights[k].shape != mine[k].shape]
    if wrong:
        raise ConfigError(f"init = {cfg.train.init!r}: its network does not have this config's shapes "
                          f"(differs at {', '.join(wrong[:3])})")
    return weights


def _set_up(device: str, threads: int | None, dist: "Distributed") -> torch.device:
    """The device, the thread count and, for torchrun, the process group."""
    dev = resolve_device(device)
    if threads:
        torch.set_num_threads(threads)
    elif dist.world > 1 and dev.type == "cpu" and "OMP_NUM_THREADS" not in os.environ:
        # Ranks sharing a machine must share its cores: oversubscribed OpenMP threads spin and collapse.
        local = int(os.environ.get("LOCAL_WORLD_SIZE", dist.world))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local))
    tune_malloc()
    if dist.world > 1:
        import torch.distributed as td

        td.init_process_group("nccl" if dev.type == "cuda" else "gloo")
        if dev.type == "cuda":
            dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
            torch.cuda.set_device(dev)
    return dev


def _arithmetic(cfg: RunConfig, out: Path, resume: bool, dev: torch.device) -> RunConfig:
    """cfg with precision "auto" made concrete: a resumed run keeps the arithmetic it started in (recorded in its
    config.json), a new one takes bf16 where the device computes it natively, else fp32 (`resolve_precision`)."""
    if cfg.train.precision != "auto":
        return cfg
    precision = resolve_precision("auto", dev)
    if resume and (out / "config.json").is_file():
        try:
            precision = ckpt.read_config(out).train.precision
        except (ConfigError, ckpt.CheckpointError, OSError, ValueError):
            pass  # _resume_state names what is wrong with the run folder
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, precision=precision))


def _check_out(out: Path, resume: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ConfigError(f"out = {str(out)!r}: exists and is not a folder")
    if out.exists() and (out / "last.pt").exists() and not resume:
        raise ckpt.CheckpointError(f"out = {str(out)!r} already holds a run: pass --resume to continue it, or pick another --out")


def weight_average(model: torch.nn.Module, decay: float) -> AveragedModel | None:
    """An exponential moving average of the model's weights (a copy, updated by `update_parameters`); None for 0."""
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay)) if decay else None


def _start(out: Path, cfg: RunConfig, saved: dict[str, Any] | None, model: torch.nn.Module,
           optimizer: torch.optim.Optimizer, dist: "Distributed", average: AveragedModel | None) -> dict[str, Any]:
    """The loop state: restored from last.pt (weights, their average, optimiser, RNG streams) or new, with
    config.json written."""
    if saved is None:
        if dist.world > 1:
            seed_everything(rank_seed(cfg.train.seed, dist.rank))  # per-rank sampling noise
        if dist.main:
            out.mkdir(parents=True, exist_ok=True)
            ckpt.atomic_write(out / "config.json", json.dumps(cfg.to_dict(), indent=2).encode())
        return {"epoch": 0, "batch": 0, "step": 0, "best_val_error": math.inf, "history": [], "sums": None,
                "elapsed": 0.0}
    try:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        if average is not None:
            average.load_state_dict(saved["average"])
        _set_rng_state(saved["rng"][dist.rank] if dist.world > 1 else saved["rng"])
    except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as e:
        raise ckpt.CheckpointError(f"checkpoint {out / 'last.pt'} does not fit this run: {e}") from None
    state = saved["loop"]
    if dist.main:
        print(f"resuming {out} at step {state['step']} (epoch {state['epoch'] + 1}, batch {state['batch']})",
              file=sys.stderr)
    return state


ESTIMATE_AFTER = 20
"""Steps, after an epoch's first, timed for the estimate `ram train` prints before its first epoch ends."""

_SUMS = ("loss", "classify", "reinforce", "baseline", "reward", "success", "entropy")


def _means(sums: dict[str, Any]) -> dict[str, Any]:
    """An epoch's sums so far as the means of its steps: the losses, the mean reward, the train error (%) and the
    policies' entropy; a number a task or model does not have (nan: a game's cross-entropy, a convnet's entropy) is
    ""."""
    n = max(sums["n"], 1)
    means = {key: sums[key] / n for key in ("loss", "classify", "reinforce", "baseline", "reward")}
    means |= {"train_error": 100 * (1 - sums["success"] / n), "entropy": sums["entropy"] / n}
    return {key: "" if math.isnan(v) else round(v, 3 if key == "train_error" else 5) for key, v in means.items()}


def readable(row: dict[str, Any], *, reward: bool = True) -> str:
    """The numbers of a metrics row that tell learning from stalling, for the progress line: the cross-entropy (a
    game has none), the mean reward, the train error, the validation error when the row has one, and images per
    second. The hybrid total is not among them: REINFORCE's term makes it negative, and it says nothing to a reader
    (it stays in metrics.csv). reward False leaves out the reward of a model that takes no glimpses (fc, convnet),
    which nothing reinforces."""
    parts = [] if row.get("classify") in (None, "") else [f"cross-entropy {float(row['classify']):.3f}"]
    if reward:
        parts.append(f"reward {float(row['reward']):.3f}")
    parts.append(f"train error {float(row['train_error']):.2f}%")
    if row.get("val_error") not in (None, ""):
        parts.append(f"val error {float(row['val_error']):.2f}%")
    return "  ".join([*parts, f"{float(row['img_per_s']):,.0f} img/s"])


@dataclass
class _Run:
    """One training run's parts, and its jobs: an epoch of steps, the epoch's bookkeeping, the final report."""

    cfg: RunConfig
    out: Path
    dist: "Distributed"
    dev: torch.device
    task: Task
    model: torch.nn.Module
    average: AveragedModel | None
    """The weights' moving average (--ema), or None."""
    optimizer: torch.optim.Optimizer
    state: dict[str, Any]
    total_steps: int
    steps_per_epoch: int
    progress: bool
    checkpoint_every: float
    detect_anomaly: bool
    hooks: list

    def __post_init__(self):
        self.net = self.model
        if self.dist.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            # Gradients are averaged over ranks in backward, so every rank takes the same optimiser step and the
            # weights stay equal (checked at every epoch end); the effective batch is world * batch_size.
            self.net = DistributedDataParallel(self.model, device_ids=[self.dev.index] if self.dev.type == "cuda" else None)
        self.last_save = time.monotonic()
        self.estimated = False

    def estimate(self, seconds: float, images: int, steps: int) -> None:
        """Print how long the epochs left will take at the speed of `steps` steps after the first (whose warm-up
        would make it look many times longer), before the first epoch line."""
        self.estimated = True
        if not (self.progress and self.dist.main) or seconds <= 0:
            return
        per_epoch = seconds / steps * self.steps_per_epoch
        left = self.cfg.train.epochs - self.state["epoch"]
        tqdm.write(f"estimate: {_hours(per_epoch)} an epoch at {images * self.dist.world / seconds:,.0f} img/s, "
                   f"{_hours(per_epoch * left)} for the {left} epoch(s) left, plus validation (timed over "
                   f"{steps} batches after the first)")

    @property
    def kept(self) -> torch.nn.Module:
        """The weights that are validated, kept as the best and tested: the average with --ema, else the model."""
        return self.model if self.average is None else self.average.module

    def save_last(self) -> None:
        state, dist = self.state, self.dist
        if not _all_finite(self.model, self.optimizer):  # never replace the last good checkpoint with a broken one
            raise TrainingError(f"non-finite weights or optimiser state after step {state['step']}: stopped; "
                                f"{_kept(self.out)} Try a lower --lr or --clip-grad.")
        rng = _rng_state()
        if dist.world > 1:
            import torch.distributed as td

            # As bytes: all_gather_object cannot carry tensors through pickle in torch 2.13 (UntypedStorage.dtype).
            buf = io.BytesIO()
            torch.save(rng, buf)
            gathered = [None] * dist.world
            td.all_gather_object(gathered, buf.getvalue())
            rng = [torch.load(stream, weights_only=True) for stream in map(io.BytesIO, gathered)]
        if dist.main:
            ckpt.save_state(self.out / "last.pt", {
                "config": self.cfg.to_dict(), "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(), "rng": rng, "loop": state,
                **({"average": self.average.state_dict()} if self.average is not None else {}),
            })
        self.last_save = time.monotonic()

    def step(self, batch: Any, epoch: int) -> list[float]:
        """One optimiser step; the step's numbers in _SUMS order, after the finiteness check."""
        state, tc = self.state, self.cfg.train
        lr = self.learning_rate(state["step"])
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        try:
            losses, norm = train_step(self.net, self.optimizer, lambda: self.task.loss(self.net, batch, self.dev), tc)
        except RuntimeError as e:  # anomaly mode raises in backward, naming the op that made the NaN
            if not (self.detect_anomaly and "nan" in str(e).lower()):
                raise
            raise TrainingError(f"anomaly detected at step {state['step']} (epoch {epoch + 1}, batch "
                                f"{state['batch'] + 1}): {e} {_kept(self.out)}") from None
        if self.average is not None:
            self.average.update_parameters(self.model)
        # One host sync for all the step's numbers (each .item() is one on a GPU).
        total, norm_value, *rest = torch.stack([
            losses.total, norm, losses.classify, losses.reinforce, losses.baseline, losses.reward.mean(),
            losses.success.mean(), losses.entropy,
        ]).detach().tolist()
        if not (math.isfinite(total) and math.isfinite(norm_value)):
            raise TrainingError(
                f"non-finite {'loss' if not math.isfinite(total) else 'gradient'} at step {state['step']} "
                f"(epoch {epoch + 1}, batch {state['batch'] + 1}): stopped; {_kept(self.out)} "
                "Try a lower --lr, or --detect-anomaly to find the op."
            )
        return [total, *rest]

    def train_epoch(self) -> dict[str, Any]:
        """The epoch's steps, from where a resumed run stopped; returns the epoch's sums."""
        state, dist, tc = self.state, self.dist, self.cfg.train
        epoch = state["epoch"]
        self.model.train()
        saved = state["sums"] or {}
        # A sum the saved ones lack (saved mid-epoch by a version without that column) is unknown for this epoch:
        # nan, so its row does not average a part of the epoch.
        unknown = math.nan if saved else 0.0
        sums = {**dict.fromkeys(_SUMS, unknown), "n": 0, "images": 0, "seconds": 0.0, **saved}
        bar = tqdm(total=self.steps_per_epoch, initial=state["batch"] // dist.world,
                   desc=f"epoch {epoch + 1}/{tc.epochs}", disable=not (self.progress and dist.main), leave=False,
                   unit="batch")
        t0 = time.perf_counter()
        warm = None  # (time, images) at the end of this epoch's first step, whose warm-up the ETA leaves out
        for batch in self.task.train_batches(epoch, tc.batch_size, start=state["batch"], shard=(dist.rank, dist.world)):
            for key, value in zip(_SUMS, self.step(batch, epoch)):
                sums[key] += value
            state["step"] += 1
            state["batch"] += dist.world
            sums["n"] += 1
            sums["images"] += self.task.episodes(batch)
            bar.update(1)
            if warm is None:
                warm = (time.perf_counter(), sums["images"])
                done = bar.n
                bar.reset()  # tqdm's rate and ETA timed from here
                bar.n = bar.last_print_n = bar.initial = done
                bar.refresh()
            elif not self.estimated and (sums["n"] == ESTIMATE_AFTER + 1 or bar.n == self.steps_per_epoch):
                self.estimate(time.perf_counter() - warm[0], sums["images"] - warm[1], sums["n"] - 1)
            if sums["n"] % 25 == 0:
                seconds = sums["seconds"] + time.perf_counter() - t0
                bar.set_postfix_str(readable({**_means(sums),
                                              "img_per_s": sums["images"] * dist.world / max(seconds, 1e-9)},
                                             reward=self.cfg.model.about.glimpses))
            if _agreed(time.monotonic() - self.last_save > self.checkpoint_every * 60, dist, state["step"]):
                state["sums"] = dict(sums, seconds=sums["seconds"] + time.perf_counter() - t0)
                self.save_last()
        bar.close()
        sums["seconds"] += time.perf_counter() - t0
        return sums

    def validates(self) -> bool:
        """Whether the epoch just trained ends in a validation: after every epoch without val_every, and after the
        last; with it, when a multiple of val_every fell among the steps since the last validation."""
        tc, state = self.cfg.train, self.state
        if tc.val_every == 0 or state["epoch"] + 1 >= tc.epochs:
            return True
        last = state["history"][-1]["step"] if state["history"] else 0
        return state["step"] // tc.val_every > last // tc.val_every

    def val_errors(self) -> list[float]:
        """The validation errors so far, in order."""
        return [float(row["val_error"]) for row in self.state["history"]]

    def learning_rate(self, step: int) -> float:
        """The schedule's lr at a step; only the plateau schedule reads the validation errors."""
        tc = self.cfg.train
        return learning_rate(tc, step, self.total_steps, self.val_errors() if tc.schedule == "plateau" else ())

    def learned(self) -> str:
        """Why the run stops before its last epoch: patience validations in a row without a better validation error
        than the best; with the plateau schedule, a plateau at its lowest lr. '' to go on."""
        tc, history = self.cfg.train, self.state["history"]
        if tc.patience == 0 or not history:
            return ""
        errors = self.val_errors()
        best = errors.index(min(errors))  # the first of equals: improving means strictly lower, as in end_epoch
        if tc.schedule == "plateau":
            if plateaus(errors, tc.patience) <= lowest_level(tc):
                return ""
            return (f"stopped after epoch {history[-1]['epoch']} of {tc.epochs}: the validation error came to a "
                    f"plateau of {tc.patience} validations at the lowest lr, {tc.lr_min:g} (best "
                    f"{errors[best]:.2f}%, epoch {history[best]['epoch']}); testing the best weights")
        if len(errors) - 1 - best < tc.patience:
            return ""
        return (f"stopped after epoch {history[-1]['epoch']} of {tc.epochs}: the validation error has not improved on "
                f"{errors[best]:.2f}% (epoch {history[best]['epoch']}) in {tc.patience} validations "
                f"(--patience {tc.patience}); testing the best weights")

    def end_epoch(self, sums: dict[str, Any]) -> None:
        """Validation, the metrics row, the best weights, the hooks and the checkpoint; or, between validations
        (val_every), the checkpoint alone, the epoch's sums carried into the next metrics row."""
        state, dist, tc = self.state, self.dist, self.cfg.train
        epoch = state["epoch"]
        if not self.validates():
            state.update(epoch=epoch + 1, batch=0, sums=sums)
            self.save_last()
            return
        if dist.world > 1:
            sums = _summed_over_ranks(sums)  # the epoch's row describes every rank's batches
            _check_in_sync(self.model, state["step"])
        val = self.task.validate(self.kept, self.dev)
        lr = self.learning_rate(state["step"] - 1)  # of the last step, even when resumed at the end
        row = {
            "epoch": epoch + 1, "step": state["step"], "lr": f"{lr:.3g}", **_means(sums),
            "val_error": val["error"], "seconds": round(sums["seconds"], 2),
            "img_per_s": round(sums["images"] / max(sums["seconds"], 1e-9), 1),
            # the run's training time so far, over every piece a run resumed across sessions was trained in
            "total_seconds": round(state["elapsed"] + sums["seconds"], 1),
        }
        state["history"].append(row)
        state["elapsed"] += sums["seconds"]
        state.update(epoch=epoch + 1, batch=0, sums=None)
        improved = val["error"] < state["best_val_error"]
        if improved:
            state["best_val_error"] = val["error"]
        if dist.main:
            if improved or tc.keep == "last":
                ckpt.export_model(self.out, self.kept, self.cfg)
            _write_metrics(self.out / "metrics.csv", state["history"])
            if self.progress:
                shown = readable(row, reward=self.cfg.model.about.glimpses)
                tqdm.write(f"epoch {epoch + 1}/{tc.epochs}: {shown}  {row['seconds']:.1f} s "
                           f"({_hours(row['total_seconds'])} in all)")
            for hook in self.hooks:
                hook("epoch", model=self.kept, task=self.task, row=row, out=self.out)
        self.save_last()

    def final_report(self, stopped: str = "") -> dict[str, Any]:
        """The best weights on the test set: test.json, and the hooks' end-of-run pictures. stopped: why the run
        ended before its last epoch, if it did."""
        cfg, out, state = self.cfg, self.out, self.state
        best = model_of(cfg).to(self.dev)
        ckpt.load_weights(best, out / "model.safetensors")
        test = self.task.report(best, split="test", seed=0, device=self.dev, progress=self.progress)
        result = describe(cfg, test, checkpoint=str(out), test_seed=0)
        result.update(epochs=state["epoch"], train_seconds=round(state["elapsed"], 1),
                      best_val_error=state["best_val_error"], machine=machine(self.dev))
        if stopped:
            result.update(planned_epochs=cfg.train.epochs, stopped=stopped)
        if cfg.train.init:  # a later phase: what the weights it started from cost as well
            from .hub import phase_of, training_phases

            phases = training_phases(cfg.train.init, phase_of(result))
            if len(phases) > 1:
                result["phases"] = phases
        ckpt.atomic_write(out / "test.json", ckpt.json_text(result).encode())
        for hook in self.hooks:
            hook("end", model=best, task=self.task, row=state["history"][-1], out=out)
        return result


def _hours(seconds: float) -> str:
    """12.3 s, 4.5 min or 6.7 h."""
    return f"{seconds:.1f} s" if seconds < 60 else f"{seconds / 60:.1f} min" if seconds < 3600 else f"{seconds / 3600:.1f} h"


def _agreed(flag: bool, dist: Distributed, step: int, every: int = 25) -> bool:
    """A time-based decision (a mid-epoch checkpoint) that all ranks take at the same step.

    Each rank's clock says something else, and a checkpoint gathers from every rank: one rank alone would hang. So
    with several ranks the flag is combined (any rank) every `every` steps and is False in between.
    """
    if dist.world == 1:
        return flag
    if step % every:
        return False
    import torch.distributed as td

    t = torch.tensor([int(flag)], dtype=torch.int64)
    td.all_reduce(t, op=td.ReduceOp.MAX)
    return bool(t.item())


def _summed_over_ranks(sums: dict[str, Any]) -> dict[str, Any]:
    """Per-rank epoch sums added over ranks; seconds is the slowest rank's."""
    import torch.distributed as td

    keys = [k for k in sums if k != "seconds"]
    t = torch.tensor([float(sums[k]) for k in keys], dtype=torch.float64)
    td.all_reduce(t)
    seconds = torch.tensor([sums["seconds"]], dtype=torch.float64)
    td.all_reduce(seconds, op=td.ReduceOp.MAX)
    out = {k: (int(v) if isinstance(sums[k], int) else v) for k, v in zip(keys, t.tolist())}
    return {**out, "seconds": seconds.item()}


def weights_digest(model: torch.nn.Module) -> str:
    """SHA-256 of the model's state_dict tensors (names, shapes and bytes), to compare weights across processes."""
    import hashlib

    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        h.update(f"{name}{tuple(t.shape)}{t.dtype}".encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _check_in_sync(model: torch.nn.Module, step: int) -> None:
    """Data-parallel ranks must hold identical weights; a silent divergence would make every result meaningless."""
    import torch.distributed as td

    digests = [None] * td.get_world_size()
    td.all_gather_object(digests, weights_digest(model))
    if len(set(digests)) > 1:
        raise TrainingError(f"data-parallel ranks hold different weights after step {step}: {digests}")


def rank_seed(seed: int, rank: int) -> int:
    """Each data-parallel rank samples its own locations."""
    return stream_seed(seed, 0xD15, rank)


def describe(cfg: RunConfig, metrics: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """The record `ram eval --json` prints and results/ stores."""
    return {
        **metrics,
        "preset": cfg.preset,
        "model": cfg.model.kind,
        "glimpses": cfg.model.glimpses if cfg.model.about.glimpses else 0,
        "task": cfg.task.name,
        "canvas": cfg.task.canvas,
        "dataset": cfg.task.dataset,
        "precision": cfg.train.precision,
        **extra,
    }
