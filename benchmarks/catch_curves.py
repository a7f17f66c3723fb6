"""Catch recipes side by side against games played: each run's validation catch rate along its modes and its
training games' rate with sampled moves, one colour per recipe (its seeds share it).

    python benchmarks/catch_curves.py --run catch ~/ram-runs/catch-s0 ~/ram-runs/catch-s1 ~/ram-runs/catch-s2 \\
        --run catch-002 ~/ram-runs/catch-002 --out results/catch-learning-curve.png

The numbers drawn go beside the PNG as CSV (recipe, run, epoch, games, both rates). Each run folder needs its
metrics.csv; the games of an epoch are its steps times the run's batch size (config.json).
It also prints each recipe's rates at the most games every run has reached (mean ± sd over its runs).
"""

from __future__ import annotations

import argparse
import csv
import io
import statistics
import sys
from pathlib import Path

from ram.checkpoint import atomic_write, read_config
from ram.viz import compare_learning_curves, read_metrics, save


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", nargs="+", action="append", required=True, metavar=("LABEL", "FOLDER"),
                   help="a label, then the run folders of that recipe (its seeds)")
    p.add_argument("--out", type=Path, required=True, help="the PNG to write; the numbers go beside it as .csv")
    args = p.parse_args()
    runs, sizes = [], set()
    for label, *folders in args.run:
        if not folders:
            p.error(f"--run {label}: give at least one run folder after the label")
        for folder in map(Path, folders):
            if not (folder / "metrics.csv").is_file():
                p.error(f"--run {label}: {folder} has no metrics.csv")
            sizes.add(read_config(folder).train.batch_size)
            runs.append((label, folder))
    if len(sizes) != 1:
        p.error(f"the runs were trained at different batch sizes ({sorted(sizes)}); games would not line up")
    batch_size = sizes.pop()
    save(compare_learning_curves([(label, folder / "metrics.csv") for label, folder in runs], batch_size=batch_size),
         args.out)
    numbers = io.StringIO()
    table = csv.writer(numbers, lineterminator="\n")
    table.writerow(["recipe", "run", "epoch", "games", "val_catch_rate", "train_catch_rate"])
    at = {(label, folder): {int(r["step"]) * batch_size: r for r in read_metrics(folder / "metrics.csv")}
          for label, folder in runs}  # each run's rows by the games played at their epoch's end
    for (label, folder), rows in at.items():
        table.writerows([label, folder.name, r["epoch"], games, f"{100 - float(r['val_error']):.1f}",
                         f"{100 - float(r['train_error']):.3f}"] for games, r in rows.items())
    atomic_write(args.out.with_suffix(".csv"), numbers.getvalue().encode())
    print(f"wrote {args.out} and {args.out.with_suffix('.csv')}")
    games = max(set.intersection(*(set(rows) for rows in at.values())), default=None)
    if games is None:
        print("the runs share no epoch's end at the same games: nothing to set side by side")
        return 0
    print(f"at {games:,} games, the most every run has reached (mean ± sd over a recipe's runs):")
    for label in dict.fromkeys(label for label, _ in runs):
        rows = [rows[games] for (name, _), rows in at.items() if name == label]
        for column, what in (("val_error", "validation, modes"), ("train_error", "training, sampled")):
            rates = [100.0 - float(r[column]) for r in rows]
            spread = f" ± {statistics.stdev(rates):.1f}" if len(rates) > 1 else ""
            runs_n = f"{len(rates)} run" + "s" * (len(rates) > 1)
            print(f"  {label}: {statistics.mean(rates):.1f}{spread}% caught ({what}; {runs_n})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
