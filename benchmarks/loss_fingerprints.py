"""Fingerprints of every shipped recipe's training loss: a digest of one training step's loss terms and gradients,
to prove that a refactor of the losses (or of how their settings reach them) changed nothing.

`fingerprints.py` proves what a model computes when it is evaluated; this proves what it is taught. For each model in
the manifest, and for a few variants of their recipes that switch on the loss terms no shipped recipe uses (the
"copies" baseline, step_weight, a classifier's entropy bonus, a discount), it loads the shipped weights and config,
takes the first training batch of 16 inputs, runs the task's own loss with torch's generator seeded, and hashes the
exact bytes of every loss term and every parameter's gradient. Compare digests made on one machine.

    python benchmarks/loss_fingerprints.py --out before.json      # on the old code
    python benchmarks/loss_fingerprints.py --compare before.json  # on the new code: exits 1 on any difference
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import sys

import torch
from fingerprints import missing_data, record  # this folder's: benchmarks/fingerprints.py

from ram.config import SECTIONS, RunConfig
from ram.hub import load_pretrained, manifest
from ram.tasks import make_task, seeded

BATCH = 16
# name -> (shipped model, config changes by field name, each made in the section that holds it): the loss terms no
# shipped recipe switches on.
VARIANTS = {
    "mnist-g6+step+entropy+discount": ("mnist-g6", dict(step_weight=0.5, entropy_weight=0.01, discount=0.9)),
    "mnist-saccade+copies": ("mnist-saccade", dict(mc_samples=2, distill_weight=0.5, baseline="copies")),
    "mnist-g6+sum": ("mnist-g6", dict(rl_reduction="sum", rl_weight=0.01, reward="prob")),
}


def changed(cfg: RunConfig, changes: dict) -> RunConfig:
    """cfg with each change made in the section that declares its field."""
    parts = {}
    for section in SECTIONS:
        names = {f.name for f in dataclasses.fields(getattr(cfg, section))}
        parts[section] = dataclasses.replace(getattr(cfg, section), **{k: v for k, v in changes.items() if k in names})
    return dataclasses.replace(cfg, **parts)


def _digest(tensors) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().float().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def fingerprint(name: str) -> dict:
    shipped, changes = VARIANTS.get(name, (name, {}))
    model, cfg = load_pretrained(shipped)
    cfg = changed(cfg, changes)
    model.train()
    task = make_task(cfg, progress=False)
    batch = next(iter(task.train_batches(0, BATCH)))
    with seeded(0):
        losses = task.loss(model, batch, torch.device("cpu"))
        losses.total.backward()
    grads = [p.grad if p.grad is not None else torch.zeros(0) for p in model.parameters()]
    if not any(g.numel() for g in grads):
        raise RuntimeError(f"{name}: the loss reached no weight; nothing to fingerprint")
    return {"losses": _digest(losses), "grads": _digest(grads), "total": round(float(losses.total.detach()), 6)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", help="write the fingerprints to this JSON file")
    parser.add_argument("--compare", help="compare with fingerprints written by --out; exit 1 on any difference")
    parser.add_argument("names", nargs="*", help="models or variants (default: every shipped model and variant)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    names = args.names or sorted(manifest()) + sorted(VARIANTS)
    if missing := missing_data([VARIANTS.get(n, (n,))[0] for n in names]):
        print("loss fingerprints: " + "; ".join(missing) + " (or name the models to fingerprint)", file=sys.stderr)
        return 2
    return record(names, fingerprint, out=args.out, compare=args.compare)


if __name__ == "__main__":
    sys.exit(main())
