"""Fingerprints of every shipped model's behaviour: a digest of what it computes, to prove a refactor changed nothing.

For each model in the manifest it runs the task's own evaluation on a slice of the standard test set (or a number of
test games), along the policy means and with seeded sampled episodes, and hashes the exact bytes of what came out:
class probabilities for a classifier, the moves, locations and rewards for a game. Two versions of the code that
print the same digests compute the same numbers, bit for bit, on this machine (a CPU with other vector units may
round differently, so compare digests made on one machine).

    python benchmarks/fingerprints.py --out before.json      # on the old code
    python benchmarks/fingerprints.py --compare before.json  # on the new code: exits 1 on any difference
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import torch

from ram.config import RunConfig
from ram.data import to_float
from ram.envs import CatchBatch
from ram.hub import load_pretrained, manifest
from ram.results import BY_NAME
from ram.tasks import make_task, seeded

IMAGES = 500  # test images per classifier
GAMES = 200  # test games per agent


def _digest(*tensors: torch.Tensor) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


@torch.no_grad()
def fingerprint(name: str) -> dict:
    model, cfg = load_pretrained(name)
    model.eval()
    task = make_task(cfg, progress=False)
    if hasattr(task, "data"):  # a classifier: its test images
        split = task.data.test(0)
        x = to_float(split.images[:IMAGES])
        means = model(x, sample=False)
        with seeded(0):
            sampled = model(x.repeat(2, 1, 1, 1), sample=True)
        report = task.report(model, split="test", seed=0, mc_samples=2, batch_size=250)
        # a model without episodes reports no average of M: it would be its one pass M times
        return {"means": _digest(means.logits, means.locations), "sampled": _digest(sampled.logits, sampled.locations),
                "error": report["error"], "error_averaged": report.get("error_averaged", report["error"])}
    out = {}
    for sample in (False, True):
        world = CatchBatch(GAMES, size=cfg.task.canvas, generator=torch.Generator().manual_seed(7))
        world.reset()
        with seeded(0):
            ep = model(world, sample=sample)
        out["sampled" if sample else "means"] = _digest(ep.moves, ep.locations, world.reward)
    report = task.report(model, split="test", seed=0, episodes=GAMES, batch_size=GAMES)
    return out | {"catch_rate": report["catch_rate"], "catch_rate_sampled": report["catch_rate_sampled"]}


def missing_data(names: list[str]) -> list[str]:
    """What is missing to fingerprint these models: a model of people's own images (fashion-g6) reads a folder
    relative to where this runs, which a fresh clone does not have."""
    missing = []
    for name in names:
        task = RunConfig.from_dict(manifest()[name]["config"]).task
        if task.dataset == "images" and not Path(task.source).exists():
            row = BY_NAME.get(name)
            make = (f": run `ram export-folder --dataset {row.export} --out {task.source}` here first"
                    if row is not None and row.export else "")
            missing.append(f"{name} reads {task.source}, which is not in {Path.cwd()}{make}")
    return missing


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", help="write the fingerprints to this JSON file")
    parser.add_argument("--compare", help="compare with fingerprints written by --out; exit 1 on any difference")
    parser.add_argument("names", nargs="*", help="models (default: every shipped one)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    names = args.names or sorted(manifest())
    if missing := missing_data(names):  # before minutes of work, not after: every model or none
        print("fingerprints: " + "; ".join(missing) + " (or name the models to fingerprint)", file=sys.stderr)
        return 2
    return record(names, fingerprint, out=args.out, compare=args.compare)


def record(names: list[str], digest, *, out: str | None, compare: str | None) -> int:
    """digest(name) for each name, printed as it comes; written to `out`, and compared with the digests in `compare`
    (exit code 1 on any difference)."""
    found = {}
    for name in names:
        start = time.perf_counter()
        found[name] = digest(name)
        print(f"{name:<32} {json.dumps(found[name])} ({time.perf_counter() - start:.0f} s)", flush=True)
    if out:
        with open(out, "w") as f:
            json.dump(found, f, indent=1)
    if compare:
        with open(compare) as f:
            before = json.load(f)
        differ = [n for n in names if before.get(n) != found[n]]
        print(f"{len(names) - len(differ)} of {len(names)} identical" + (f"; differ: {differ}" if differ else ""))
        return 1 if differ else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
