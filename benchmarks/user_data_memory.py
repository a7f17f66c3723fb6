"""Memory of training on your own images read from the disk cache: does it grow with the dataset or with the batch?

Reads one epoch of training batches of a decoded `--data` folder or .npz (the way `fit` reads them: a random
permutation, one batch gathered from the memory map at a time, to float), then the validation and test splits in
evaluation batches, and prints the process's peak resident memory beside what it is made of at the end: anonymous
memory (what the process owns) and file-backed pages of the memory-mapped cache (the page cache, which the system
frees under pressure, so a dataset larger than the machine's memory still fits).

    python benchmarks/user_data_memory.py data/fashion-10k
    python benchmarks/user_data_memory.py data/fashion-images
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ram import presets
from ram.data import to_float
from ram.data.images import inspect
from ram.tasks import make_task
from ram.tasks.images import configure


def status() -> dict[str, int]:
    """VmHWM (peak RSS), VmRSS, RssAnon and RssFile of this process, in MB (Linux /proc)."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
            fields[key] = round(int(value.split()[0]) / 1024)
    return fields


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="a folder or .npz, as given to ram train --data")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--eval-batch-size", type=int, default=1000)
    args = parser.parse_args()
    before = status()
    cfg, source = configure(presets.get("mnist"), inspect(args.data))
    data = make_task(cfg, data=source).data
    total = 0.0
    for x, _ in data.train_batches(0, args.batch_size):
        total += float(x.sum())  # touch every pixel, as training does
    for split in (data.val(), data.test()):
        for i in range(0, split.images.shape[0], args.eval_batch_size):
            total += float(to_float(split.images[i : i + args.eval_batch_size]).sum())
    n = source.n_train + source.n_test
    mb = n * source.channels * source.size**2 / 2**20
    print(json.dumps({"data": args.data, "images": n, "cache_MB": round(mb), "batch_size": args.batch_size,
                      "at_start_MB": before, "after_one_epoch_MB": status()}))


if __name__ == "__main__":
    main()
