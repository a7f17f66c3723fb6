"""A/B, in one process: mnist-preset train steps with the glimpse loop compiled (A, what `ram train` runs) against
the same with the heads (`RAM._heads`) and the hybrid loss compiled as well (B). Rounds alternate A and B, so the
machine's drift hits both alike; the long runs (`ram train ...`) are paused while the rounds run.

    python benchmarks/ab_compiled_heads.py --precision bf16 --rounds 10 --steps 150
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from bench import paused_runs

from ram import fused, losses, train
from ram.data import TaskData
from ram.model import RAM
from ram.models import build_model
from ram.presets import resolve
from ram.speed import tune_malloc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--precision", default="bf16", choices=["fp32", "bf16"])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--steps", type=int, default=150)
    args = parser.parse_args()

    tune_malloc()
    cfg = resolve("mnist", train={"precision": args.precision})
    data = TaskData(cfg.task, seed=0, progress=False)
    batches = [b for _, b in zip(range(40), data.train_batches(1, 128))]
    fused.set_compile(True)
    plain = (RAM._heads, losses.hybrid)
    compiled = (torch.compile(RAM._heads, dynamic=False), torch.compile(losses.hybrid, dynamic=False))

    def rate(model, optimizer, variant, steps) -> float:
        RAM._heads, train.hybrid = variant
        start = time.perf_counter()
        for i in range(steps):
            images, labels = batches[i % len(batches)]
            train.train_step(model, optimizer, images, labels, cfg.train)[0].total.item()
        return steps * 128 / (time.perf_counter() - start)

    runs = {}
    for label, variant in (("A", plain), ("B", compiled)):
        torch.manual_seed(0)
        model = build_model(cfg.model)
        runs[label] = (model, train.make_optimizer(model, cfg.train), variant)
        rate(*runs[label], 30)  # compile and warm up
    rates = {"A": [], "B": []}
    with paused_runs():
        for _ in range(args.rounds):
            for label in rates:
                rates[label].append(rate(*runs[label], args.steps))
    RAM._heads, train.hybrid = plain
    gains = [b / a - 1 for a, b in zip(rates["A"], rates["B"])]
    for label, name in (("A", "loop compiled"), ("B", "+ heads and loss compiled")):
        print(f"{args.precision} {name}: median {statistics.median(rates[label]):,.0f} img/s", [round(r) for r in rates[label]])
    print(f"B against A, paired by round: median {statistics.median(gains):+.1%}", [f"{g:+.1%}" for g in gains])


if __name__ == "__main__":
    main()
