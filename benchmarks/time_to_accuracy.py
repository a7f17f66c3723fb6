"""Time to accuracy of a training run: its wall time, what it ran on, and when validation first reached a target.

    python benchmarks/time_to_accuracy.py ~/ram-runs/c100-g8                 # the row's paper number as the target
    python benchmarks/time_to_accuracy.py runs/tta --targets 1.5 1.2         # or targets of your own (val error, %)

Works on a finished run or one still training (it reads metrics.csv). The target defaults to the paper's number for
the results row whose recipe the run's config.json is (paper B, or A where B has none). Seconds are the training time
of the epochs (training and validation) summed over every piece of a run resumed across sessions (metrics.csv's
total_seconds, or the sum of its seconds column for runs written before that column). A later phase of a row, whose
config's init is the run folder of the phase before (runs/NAME-phase1, or any folder with a metrics.csv), counts
from the first phase's start: the wall times add each earlier phase's whole training, followed along init, and the
output gives each one's seconds. The target is looked for in this run's own curve: an earlier phase may have
validated on another task. What it ran on comes from test.json when the run has finished, else from this machine.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def row_of(folder: Path):
    """The results row whose `ram train` commands give this run's config (precision aside), or None. A later phase
    matches when it started from the folder its row names (runs/NAME-phase1) or from any folder holding a run of the
    row's phase before, itself matched so back to the first phase: runs trained by hand sit elsewhere."""
    from ram.results import ROWS

    for row in ROWS:
        if row.script:  # trained outside `ram train`: no config to match
            continue
        try:
            configs = row.configs()
        except Exception:  # noqa: BLE001 - a row whose data this machine lacks cannot be matched
            continue
        if _ran(folder, configs):
            return row
    return None


def _ran(folder: Path, configs: list) -> bool:
    """Whether the run in folder is of the last of configs (a row's phases, `Row.configs`), its precision and training
    seed aside: another seed of a row is a run of its recipe."""
    import dataclasses

    from ram.checkpoint import CheckpointError, read_config

    try:
        cfg = read_config(folder)
    except CheckpointError:
        return False
    own = configs[-1]
    same_start = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, init=own.train.init))
    if [d for d in own.differences(same_start) if not d.startswith(("train.precision", "train.seed", "preset"))]:
        return False
    return cfg.train.init == own.train.init or (len(configs) > 1 and _ran(Path(cfg.train.init), configs[:-1]))


def init_of(folder: Path) -> str:
    """The weights a run started from (its config's train.init): a run folder, a shipped model's name, or ""."""
    return json.loads((folder / "config.json").read_text())["train"]["init"]


def earlier_phases(folder: Path) -> list[tuple[Path, float, int]]:
    """(run folder, training seconds, epochs) of each phase before this run's, first first: the folder its init
    names where that holds a metrics.csv (a path as `ram train` read it, from the folder it ran in), then that one's,
    and so on."""
    from ram.hub import val_curve

    out, seen = [], {folder.resolve()}
    while (init := init_of(folder)) and (Path(init) / "metrics.csv").is_file() and Path(init).resolve() not in seen:
        folder = Path(init)
        seen.add(folder.resolve())
        curve = val_curve(folder)
        out.append((folder, curve[-1][2] if curve else 0.0, len(curve)))
    return out[::-1]


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
    before = earlier_phases(args.run)
    earlier = sum(seconds for _, seconds, _ in before)
    if before:
        each = ", ".join(f"{folder} {seconds:.0f} s ({epochs} epochs)" for folder, seconds, epochs in before)
        print(f"after {len(before)} earlier phase(s) along init: {each}; the wall times add their {earlier:.0f} s, "
              "the epochs are this run's")
    if start := init_of(before[0][0] if before else args.run):
        print(f"started from {start}: no run folder with a metrics.csv there, so its training is not counted")
    print("| validation error <= | first at epoch | wall time |\n|---|---|---|")
    for target in targets:
        hit = first_reached(curve, target)
        if hit:
            seconds = earlier + hit[1]
            when = f"{hit[0]} | {seconds:.0f} s ({seconds / 3600:.2f} h)"
        else:
            when = f"not reached in {len(curve)} epochs | –"
        print(f"| {target:g}% | {when} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
