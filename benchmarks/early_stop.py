"""Training that stops when it has learned: the auto recipe (`ram train --data DIR`, which validates about 50 times and
stops after 10 validations without a better error) against the same recipe run to its last epoch
(`--patience 0 --val-every 0`), on the datasets of benchmarks/auto_recipe.py.

    python benchmarks/early_stop.py --work ~/ram-runs/early-stop --datasets shapes-plain shapes digits
    python benchmarks/early_stop.py --work ~/ram-runs/early-stop --out-file results/early-stop.json

For each: the epochs and training seconds each ran, the stopped run's share of the full run's, its best validation
error, and its test errors at one episode along the means and with 10 episodes averaged (`ram eval`). A finished run
is read, not trained again. Seconds include slow-downs from other jobs on the machine, and the first run of a model
shape also compiles its loop (later runs read torch's compile cache); the share of epochs has neither.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch  # noqa: E402
from auto_recipe import DATASETS, prepare, run  # noqa: E402

from ram.checkpoint import json_text  # noqa: E402
from ram.speed import machine  # noqa: E402

VARIANTS = {"stops": [], "full": ["--patience", "0", "--val-every", "0"]}


def measure(folder: Path, result: dict) -> dict:
    test = json.loads((folder / "test.json").read_text())
    return {"epochs": test["epochs"], "planned_epochs": test.get("planned_epochs") or test["epochs"],
            "train_seconds": test["train_seconds"], "best_val_error": test["best_val_error"],
            "error": result["error"], "error_averaged": result["error_averaged"],
            "val_every": result["config"]["train"]["val_every"], "patience": result["config"]["train"]["patience"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", type=Path, default=Path("runs/early-stop"))
    p.add_argument("--datasets", nargs="+", choices=DATASETS, default=["shapes-plain", "shapes", "digits"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out-file", type=Path, help="also write the rows and the table here as JSON")
    args = p.parse_args()
    rows, lines = [], ["| dataset | epochs run / planned (share) | time, stopped / full | best val. error, stopped / "
                       "full | one episode, stopped / full | 10 averaged, stopped / full |",
                       "|---|---|---|---|---|---|"]
    for name in args.datasets:
        data = prepare(name, args.work / "data")
        got = {}
        for variant, extra in VARIANTS.items():
            folder = args.work / f"{name}-{variant}"
            got[variant] = measure(folder, run(data, folder, model="ram", threads=args.threads, extra=extra))
        s, f = got["stops"], got["full"]
        rows.append({"dataset": name, **{f"{k}_{v}": x for v, r in got.items() for k, x in r.items()}})
        lines.append(f"| {name} | {s['epochs']} / {s['planned_epochs']} ({s['epochs'] / s['planned_epochs']:.2f}) | "
                     f"{s['train_seconds'] / 60:.1f} / "
                     f"{f['train_seconds'] / 60:.1f} min ({s['train_seconds'] / f['train_seconds']:.2f}) | "
                     f"{s['best_val_error']:.2f} / {f['best_val_error']:.2f} | {s['error']:.2f} / {f['error']:.2f} | "
                     f"{s['error_averaged']:.2f} / {f['error_averaged']:.2f} |")
        print("\n".join(lines), flush=True)
    if args.out_file:
        args.out_file.write_text(json_text({"command": "python " + " ".join(sys.argv), "rows": rows,
                                            "table": "\n".join(lines), "machine": machine(torch.device("cpu")),
                                            "train_threads": args.threads}))


if __name__ == "__main__":
    main()
