"""Data-parallel speed-up on this machine: short `ram train` runs as 1 process and as `torchrun --nproc_per_node N`.

    python benchmarks/ddp.py --train-size 25600 --epochs 3 --runs 2

Each configuration trains the same preset on the first --train-size images and reports the training img/s of its
epoch rows after the first (metrics.csv counts every rank's images and excludes validation). One process per
thread count, and torchrun ranks with one thread each (torchrun sets OMP_NUM_THREADS=1). The `ram train --preset`
runs of the shared machine are paused meanwhile, as in bench.py; these runs put --preset later on their command line
so that nobody's pause matches them.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench import _busy_seconds, _children_cpu, _signal_runs  # noqa: E402


def run(cmd: list[str], env: dict[str, str], out: Path, pause: bool) -> tuple[float, float]:
    """(median img/s of the epochs after the first, CPU % of one core other processes took meanwhile)."""
    if pause:
        _signal_runs("STOP")
    try:
        busy0, own0, t0 = _busy_seconds(), _children_cpu(), time.monotonic()
        subprocess.run(cmd, check=True, env=env, capture_output=True, text=True)
        busy1, own1, t1 = _busy_seconds(), _children_cpu(), time.monotonic()
    finally:
        if pause:
            _signal_runs("CONT")
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    others = 100 * max(0.0, (busy1 - busy0) - (own1 - own0)) / (t1 - t0)
    return statistics.median(float(r["img_per_s"]) for r in rows[1:] or rows), others


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="mnist")
    p.add_argument("--train-size", type=int, default=25600)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--nproc", type=int, default=2)
    p.add_argument("--compile", choices=["0", "1"], default="0", help="RAM_COMPILE for every run")
    p.add_argument("--max-others", type=float, default=20.0,
                   help="repeat a run (up to 3 times) if other processes took more than this %% of one core")
    p.add_argument("--no-pause", dest="pause", action="store_false")
    args = p.parse_args()

    # --preset not first: other developers pause `ram train --preset` runs, and must not pause these
    base = ["--train-size", str(args.train_size), "--preset", args.preset, "--epochs", str(args.epochs),
            "--no-progress"]
    configs = {
        "1 process, 1 thread": [sys.executable, "-m", "ram", "train", *base, "--threads", "1"],
        "1 process, 2 threads": [sys.executable, "-m", "ram", "train", *base, "--threads", "2"],
        f"{args.nproc} processes (torchrun), 1 thread each": [
            sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(args.nproc),
            "-m", "ram", "train", *base],
    }
    rates: dict[str, list[float]] = {k: [] for k in configs}
    work = Path(tempfile.mkdtemp(prefix="ram-ddp-"))
    try:
        for _ in range(args.runs):
            for name, cmd in configs.items():
                out = work / f"{len(rates[name])}-{abs(hash(name))}"
                env = {**os.environ, "RAM_COMPILE": args.compile}
                for _attempt in range(3):  # another developer's load (or resume of the paused runs) spoils a run
                    shutil.rmtree(out, ignore_errors=True)
                    rate, others = run([*cmd, "--out", str(out)], env, out, args.pause)
                    if others <= args.max_others:
                        break
                rates[name].append(rate)
                print(f"{name}: {rate:.0f} img/s (others {others:.0f}% of a core)", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if args.pause:
            _signal_runs("CONT")
    one = statistics.median(rates["1 process, 2 threads"])
    print(f"\n| {args.preset}, train_size {args.train_size}, RAM_COMPILE={args.compile} | train img/s (median) | runs "
          "| vs 1 process, 2 threads |")
    print("|---|---|---|---|")
    for name, r in rates.items():
        print(f"| {name} | {statistics.median(r):.0f} | {', '.join(f'{x:.0f}' for x in r)} | "
              f"{statistics.median(r) / one:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
