"""Throughput of a preset's model: training steps (data placement included) and evaluation, in images per second
(for Catch: games per second, each game 23 glimpses and moves).

FLOPs per image come from torch's FlopCounterMode on one eager training step, so the achieved GFLOP/s shows the gap
to the machine's matmul rate, measured in the same process on the RAM core's matmul shape (each model's
`matmul_shape`: batch x (glimpse + hidden) @ (glimpse + hidden) x hidden for the glimpse models, 256 x 256 for fc and
the convnet, in the training precision): FLOPs per image at that rate
is the floor no implementation of the same maths can beat on this machine. The RAM loop runs compiled when training
would compile it (see `ram.fused`): by default when the timed budget (seconds * repeats) is at least 10 s; the
one-off compile time is reported, not timed.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import time
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from . import fused
from .config import RunConfig
from .models import model_of
from .speed import resolve_precision, tune_malloc
from .tasks import make_task
from .train import make_optimizer, resolve_device, seed_everything, train_step


def _timed(fn, seconds: float) -> tuple[int, float]:
    """Call fn() (which returns images processed) repeatedly for about `seconds`; return (images, elapsed)."""
    images, start = 0, time.perf_counter()
    while True:
        images += fn()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return images, elapsed


def matmul_rate(rows: int, inner: int, cols: int, *, dtype: torch.dtype, device: torch.device,
                seconds: float = 1.0) -> float:
    """GFLOP/s of a [rows, inner] @ [inner, cols] matmul repeated for about `seconds` (after a warm-up)."""
    a = torch.randn(rows, inner, device=device, dtype=dtype)
    b = torch.randn(inner, cols, device=device, dtype=dtype)
    out = torch.empty(rows, cols, device=device, dtype=dtype)

    def call() -> int:
        for _ in range(50):
            torch.mm(a, b, out=out)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return 50

    _timed(call, min(0.2, seconds))
    calls, elapsed = _timed(call, seconds)
    return 2.0 * rows * inner * cols * calls / elapsed / 1e9


def _want_compile(compile: bool | None, seconds: float, repeats: int) -> bool:
    env = os.environ.get("RAM_COMPILE", "auto").lower()
    if compile is not None:
        return compile
    if env != "auto":
        return env in ("1", "true", "yes")
    return seconds * repeats >= 10


def run(
    cfg: RunConfig, *, device: str = "auto", threads: int | None = None, batch_size: int = 128, seconds: float = 10.0,
    repeats: int = 3, compile: bool | None = None,
) -> dict[str, Any]:
    """Images (or games of Catch) per second, trained and evaluated, with the FLOP floor beside them."""
    dev = resolve_device(device)
    if threads:
        torch.set_num_threads(threads)
    precision = resolve_precision(cfg.train.precision, dev)  # what a training run here would compute in
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, precision=precision))
    tune_malloc()
    seed_everything(0)
    task = make_task(cfg, progress=False)
    model = model_of(cfg).to(dev)
    optimizer = make_optimizer(model, cfg.train)
    tc = cfg.train

    batches = iter(())
    epoch = 0

    def next_batch():
        nonlocal batches, epoch
        batch = next(batches, None)
        if batch is None:
            epoch += 1
            batches = task.train_batches(epoch, batch_size)
            batch = next(batches)
        return batch

    def train_on(batch) -> int:
        losses, _ = train_step(model, optimizer, lambda: task.loss(model, batch, dev), tc)
        losses.total.item()  # wait for the step, as the training loop does
        return task.episodes(batch)

    def step() -> int:
        return train_on(next_batch())

    eval_step = task.probe(model, batch_size, dev)
    big_eval_step = task.probe(model, tc.eval_batch_size, dev)  # the batch evaluation runs at

    first, *other_shapes = task.warm_batches(batch_size)
    fused.set_compile(False)  # count FLOPs eagerly: a dispatch mode cannot see inside compiled code
    with FlopCounterMode(display=False) as counter:
        train_on(first)
    flops_per_image = counter.get_total_flops() / (task.episodes(first) * tc.mc_samples)

    compiled = fused.set_compile(_want_compile(compile, seconds, repeats)) and getattr(model, "uses_fused_loop", False)
    start = time.perf_counter()
    step()
    for batch in other_shapes:  # e.g. each epoch's ragged last batch: another shape to compile
        train_on(batch)
    model.eval()
    eval_step()
    big_n = big_eval_step()
    model.train()
    compile_seconds = time.perf_counter() - start

    _timed(step, min(2.0, seconds))  # warm-up: allocator, caches, lazy init
    train_rates = [n / t for n, t in (_timed(step, seconds) for _ in range(repeats))]
    model.eval()
    _timed(eval_step, min(1.0, seconds / 2))
    eval_rates = [n / t for n, t in (_timed(eval_step, seconds / 2) for _ in range(repeats))]
    big_rates = [n / t for n, t in (_timed(big_eval_step, seconds / 2) for _ in range(repeats))]
    train = statistics.median(train_rates)
    inner, cols = model.matmul_shape()
    rate = matmul_rate(batch_size, inner, cols, device=dev,
                       dtype=torch.bfloat16 if tc.precision == "bf16" else torch.float32)
    return {
        "preset": cfg.preset,
        "model": cfg.model.kind,
        "glimpses": cfg.model.glimpses if cfg.model.about.glimpses else 0,
        "batch_size": batch_size,
        "device": str(dev),
        "threads": torch.get_num_threads(),
        "compiled": compiled,
        "precision": tc.precision,
        "compile_seconds": round(compile_seconds, 1) if compiled else 0.0,
        "train_images_per_s": round(train, 1),
        "eval_images_per_s": round(statistics.median(eval_rates), 1),
        f"eval_images_per_s_batch_{big_n}": round(statistics.median(big_rates), 1),
        "train_runs": [round(r, 1) for r in train_rates],
        "train_mflop_per_image": round(flops_per_image / 1e6, 3),
        "train_gflop_per_s": round(train * flops_per_image / 1e9, 2),
        "matmul_gflop_per_s": round(rate, 1),
        "floor_images_per_s": round(rate * 1e9 / flops_per_image, 1),
        "torch": torch.__version__,
    }
