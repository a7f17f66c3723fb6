"""Wall time for a training run to first reach given validation errors, read from its metrics.csv.

    ram train --preset mnist --out runs/tta          # the default recipe, on an otherwise idle machine
    python benchmarks/time_to_accuracy.py runs/tta --targets 1.5 1.2

The run may be stopped once the last target is reached: the schedule is the full run's either way, and `ram train
--resume` finishes it later. Seconds are the sum of the epoch rows' `seconds` (training and validation of each epoch).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path


def first_reached(rows: list[dict[str, str]], target: float) -> tuple[int, float] | None:
    """(epoch, cumulative seconds) of the first epoch whose validation error is <= target, or None."""
    elapsed = 0.0
    for row in rows:
        elapsed += float(row["seconds"])
        if float(row["val_error"]) <= target:
            return int(row["epoch"]), elapsed
    return None


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, help="a run folder written by ram train")
    p.add_argument("--targets", type=float, nargs="+", default=[1.5, 1.2], help="validation errors in %%")
    args = p.parse_args()
    metrics = args.run / "metrics.csv"
    if not metrics.is_file():
        print(f"run = {str(args.run)!r}: no metrics.csv there (is it a ram train run folder?)", file=sys.stderr)
        return 2
    rows = list(csv.DictReader(metrics.open()))
    print("| validation error <= | first at epoch | wall time |\n|---|---|---|")
    for target in args.targets:
        hit = first_reached(rows, target)
        when = f"{hit[0]} | {hit[1]:.0f} s ({hit[1] / 60:.1f} min)" if hit else f"not reached in {len(rows)} epochs | –"
        print(f"| {target:g}% | {when} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
