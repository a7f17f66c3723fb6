"""Throughput of a preset's model: training steps (data placement included) and evaluation, in images per second.

FLOPs per image come from torch's FlopCounterMode on one training step, so the achieved GFLOP/s shows the gap to the
machine's matmul rate.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from .config import RunConfig
from .data import TaskData, to_float
from .model import build_model
from .train import make_optimizer, predict, resolve_device, seed_everything, train_step


def _timed(fn, seconds: float) -> tuple[int, float]:
    """Call fn() (which returns images processed) repeatedly for about `seconds`; return (images, elapsed)."""
    images, start = 0, time.perf_counter()
    while True:
        images += fn()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return images, elapsed


def run(
    cfg: RunConfig, *, device: str = "auto", threads: int | None = None, batch_size: int = 128, seconds: float = 10.0,
    repeats: int = 3,
) -> dict[str, Any]:
    dev = resolve_device(device)
    if threads:
        torch.set_num_threads(threads)
    seed_everything(0)
    data = TaskData(cfg.task, seed=0, progress=False)
    model = build_model(cfg.model).to(dev)
    optimizer = make_optimizer(model, cfg.train)
    tc = cfg.train

    batches = iter(())
    epoch = 0

    def step() -> int:
        nonlocal batches, epoch
        batch = next(batches, None)
        if batch is None:
            epoch += 1
            batches = data.train_batches(epoch, batch_size)
            batch = next(batches)
        images, labels = batch
        losses, _ = train_step(model, optimizer, images.to(dev), labels.to(dev), tc)
        losses.total.item()  # wait for the step, as the training loop does
        return images.shape[0]

    val = data.val()
    eval_images = to_float(val.images[:batch_size]).to(dev)

    def eval_step() -> int:
        predict(model, eval_images).sum().item()
        return batch_size

    images, labels = next(data.train_batches(0, batch_size))
    with FlopCounterMode(display=False) as counter:
        train_step(model, optimizer, images.to(dev), labels.to(dev), tc)
    flops_per_image = counter.get_total_flops() / (images.shape[0] * tc.mc_samples)

    _timed(step, min(2.0, seconds))  # warm-up: allocator, caches, lazy init
    train_rates = [n / t for n, t in (_timed(step, seconds) for _ in range(repeats))]
    model.eval()
    _timed(eval_step, min(1.0, seconds / 2))
    eval_rates = [n / t for n, t in (_timed(eval_step, seconds / 2) for _ in range(repeats))]
    train = statistics.median(train_rates)
    return {
        "preset": cfg.preset,
        "model": cfg.model.kind,
        "glimpses": cfg.model.glimpses,
        "batch_size": batch_size,
        "device": str(dev),
        "threads": torch.get_num_threads(),
        "train_images_per_s": round(train, 1),
        "eval_images_per_s": round(statistics.median(eval_rates), 1),
        "train_runs": [round(r, 1) for r in train_rates],
        "train_mflop_per_image": round(flops_per_image / 1e6, 3),
        "train_gflop_per_s": round(train * flops_per_image / 1e9, 2),
        "torch": torch.__version__,
    }
