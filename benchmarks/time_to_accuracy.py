"""Time to accuracy of a training run: its wall time, what it ran on, and when validation first reached a target.

    python benchmarks/time_to_accuracy.py ~/ram-runs/c100-g8                 # the row's paper number as the target
    python benchmarks/time_to_accuracy.py runs/tta --targets 1.5 1.2         # or targets of your own (val error, %)

Works on a finished run or one still training (it reads metrics.csv). The target defaults to the paper's number for
the results row whose recipe the run's config.json is (paper B, or A where B has none). Seconds are the training time
of the epochs (training and validation) summed over every piece of a run resumed across sessions (metrics.csv's
total_seconds, or the sum of its seconds column for runs written before that column). What it ran on comes from
test.json when the run has finished, else from this machine.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def row_of(folder: Path):
    """The results row whose `ram train` command gives this run's config (precision aside), or None."""
    from ram.checkpoint import read_config
    from ram.results import ROWS

    cfg = read_config(folder)
    for row in ROWS:
        if row.script:  # trained outside `ram train`: no config to match
            continue
        try:
            own = row.config()
        except Exception:  # noqa: BLE001 - a row whose data this machine lacks cannot be matched
            continue
        if [d for d in own.differences(cfg) if not d.startswith(("train.precision", "preset"))] == []:
            return row
    return None


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, help="a run folder written by ram train")
    p.add_argument("--targets", type=float, nargs="+", help="validation errors in %% (default: the row's paper number)")
    args = p.parse_args()
    metrics = args.run / "metrics.csv"
    if not metrics.is_file():
        print(f"run = {str(args.run)!r}: no metrics.csv there (is it a ram train run folder?)", file=sys.stderr)
        return 2
    from ram.hub import val_curve
    from ram.results import first_reached

    curve = val_curve(args.run)
    targets = args.targets
    if not targets:
        row = row_of(args.run)
        paper = None if row is None else row.target
        if paper is None:
            print(f"run = {str(args.run)!r}: its config is no results row's with a paper number; give --targets",
                  file=sys.stderr)
            return 2
        print(f"row {row.name}: paper {paper}%")
        targets = [paper]
    test = args.run / "test.json"
    if test.is_file():
        done = json.loads(test.read_text())
        machine, state = done.get("machine", {}), f"finished, test error {done['error']}%"
    else:
        import torch

        from ram.speed import machine as this_machine

        machine, state = this_machine(torch.device("cpu")), "still training (this machine shown)"
    precision = json.loads((args.run / "config.json").read_text())["train"]["precision"]
    total = curve[-1][2] if curve else 0.0
    print(f"{len(curve)} epochs, {total / 3600:.2f} h of training, {state}; {precision} on "
          f"{machine.get('cpu') or 'an unknown CPU'} ({', '.join(machine.get('cpu_flags', [])) or 'flags unknown'}), "
          f"{machine.get('threads', '?')} thread(s)")
    print("| validation error <= | first at epoch | wall time |\n|---|---|---|")
    for target in targets:
        hit = first_reached(curve, target)
        when = f"{hit[0]} | {hit[1]:.0f} s ({hit[1] / 3600:.2f} h)" if hit else f"not reached in {len(curve)} epochs | –"
        print(f"| {target:g}% | {when} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
