"""A shipped model's weights, unchanged, on another row's task: one episode along the policy means on the standard
test set and on the one `--seed 1` draws. It says whether a row's weights are a good start for another row's
(`ram train --init NAME`) before any training is spent on it.

    python benchmarks/cross_task.py mnist-cluttered-g6 mnist-translated-g6   # cluttered weights, translated digits

Both rows must build the same model (glimpses aside: the episode takes the weights' own number of glimpses).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

import torch

from ram import hub
from ram.tasks import make_task


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("weights", help="the shipped model whose weights are evaluated")
    p.add_argument("task", help="the shipped model whose task (data, canvas, clutter) they are evaluated on")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    known = hub.manifest()
    for name in (args.weights, args.task):
        if name not in known:
            p.error(f"{name!r} is not a shipped model; choose from {', '.join(sorted(known))}")
    torch.set_num_threads(args.threads)
    model, cfg = hub.load_pretrained(args.weights)
    other = hub.load_pretrained(args.task)[1]
    if (cfg.model.patch_size, cfg.model.scales) != (other.model.patch_size, other.model.scales):
        p.error(f"{args.weights} sees {cfg.model.patch_size}x{cfg.model.patch_size} glimpses at {cfg.model.scales} "
                f"scales, {args.task} at {other.model.scales}: the weights cannot read that task's glimpses")
    task = make_task(dataclasses.replace(cfg, task=other.task), progress=False)
    model.float().eval()
    for seed in (0, 1):
        m = task.report(model, split="test", seed=seed, device=torch.device("cpu"), progress=False, mc_samples=0,
                        episodes=1, batch_size=1000)
        print(f"{args.weights} on {args.task}'s test set (--seed {seed}): {m['error']:.2f}% one episode")
    return 0


if __name__ == "__main__":
    sys.exit(main())
