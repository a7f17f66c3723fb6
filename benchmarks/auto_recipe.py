"""The auto recipe against the paper's convnet: `ram train --data DIR` with no other recipe flag, and the same command
with `--model convnet`, on datasets of different sizes and image sizes, each tested at one episode along the policy
means (`ram eval`'s headline error, `--mc-samples 0`) and with 10 sampled episodes averaged.

Datasets (made under WORK/data the first time, from what packages ship offline):
  digits   scikit-learn's 8x8 handwritten digits as an .npz (examples/digits_npz.py: the first 80% train);
           needs `pip install scikit-learn`, for this script only
  shapes   generated 40x40 colour scenes of 3 shapes, 1,500 for training and 300 for testing (benchmarks/shapes.py)
  shapes-250  the same scenes, 250 for training (the same 300 for testing)
  shapes-plain  easier scenes: no specks, squares and triangles upright; 1,500 and 300
  fashion  Fashion-MNIST as PNG folders (`ram export-folder`, Debian's dataset-fashion-mnist), 60,000 + 10,000

    python benchmarks/auto_recipe.py --work runs/auto-recipe                      # all five, one run at a time
    python benchmarks/auto_recipe.py --work runs/auto-recipe --datasets digits shapes
    python benchmarks/auto_recipe.py --work runs/auto-recipe --datasets fashion --train-size 20000

Each run goes to WORK/<dataset>-ram and WORK/<dataset>-convnet; a finished run is not trained again (its test.json is
read), so the script can be stopped and rerun. The table it prints is in the README's measure: the target is the
convnet's error times 1.5, or 2%, whichever is larger. `--out-file results/auto-recipe.json` also writes the rows
(numbers, recipes, the machine) and the table, for `results/auto-recipe.md`. Wall times are the runs' own training seconds (metrics.csv),
which include slow-downs from other jobs on the machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ("digits", "shapes", "shapes-250", "shapes-plain", "fashion")


def prepare(name: str, data: Path) -> Path:
    """The dataset's folder or .npz under data/, made if missing."""
    data.mkdir(parents=True, exist_ok=True)
    if name == "digits":
        path = data / "digits.npz"
        if not path.exists():
            sys.path.insert(0, str(ROOT / "examples"))
            from digits_npz import main as write_digits

            write_digits(path)
        return path
    path = data / name
    if not path.exists():
        if name.startswith("shapes"):
            sys.path.insert(0, str(ROOT / "benchmarks"))
            from shapes import write

            write(path, train=250 if name == "shapes-250" else 1500, test=300, size=40, seed=0,
                  plain=name == "shapes-plain")
        else:
            ram("export-folder", "--dataset", "fashion", "--out", str(path), "--no-progress")
    return path


def ram(*args: str) -> str:
    """Run `python -m ram ARGS` (the ram this interpreter imports), echoing the command; its stdout."""
    command = [sys.executable, "-m", "ram", *args]
    print("$ ram " + " ".join(args), flush=True)
    done = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True)
    print(done.stdout, end="", flush=True)
    return done.stdout


def run(data: Path, out: Path, *, model: str, threads: int, extra: list[str]) -> dict:
    """Train (unless out holds a finished run) and evaluate one model; its numbers and recipe."""
    if not (out / "test.json").is_file():
        ram("train", "--data", str(data), "--model", model, "--threads", str(threads), "--out", str(out),
            "--no-progress", *(["--resume"] if (out / "last.pt").is_file() else []), *extra)
    result = json.loads(ram("eval", "--checkpoint", str(out), "--json").splitlines()[-1])
    cfg = json.loads((out / "config.json").read_text())
    return {"error": result["error"], "error_averaged": result.get("error_averaged"), "n_test": result["n"],
            "train_seconds": json.loads((out / "test.json").read_text())["train_seconds"], "config": cfg}


def measure(name: str, ram_run: dict, convnet: dict) -> dict:
    """One dataset's row: the auto recipe RAM chose, its errors, the convnet's, and the target (1.5x or 2%)."""
    from ram.auto import train_images
    from ram.data.images import inspect

    m, t, tc = (ram_run["config"][k] for k in ("model", "task", "train"))
    target = max(1.5 * convnet["error"], 2.0)
    return {"dataset": name, "side": t["canvas"], "channels": m["channels"], "n_test": ram_run["n_test"],
            "trained_on": train_images(inspect(t["source"], size=t["canvas"]).n_train, t["val_size"], t["train_size"]),
            "val_size": t["val_size"], "patch_size": m["patch_size"], "scales": m["scales"], "glimpses": m["glimpses"],
            "std": m["std"], "epochs": tc["epochs"], "ram_error": ram_run["error"],
            "ram_error_averaged": ram_run["error_averaged"], "convnet_error": convnet["error"], "target": target,
            "met": ram_run["error"] <= target, "ram_train_seconds": ram_run["train_seconds"],
            "convnet_train_seconds": convnet["train_seconds"]}


def row(r: dict) -> str:
    """A measured row as a line of the markdown table."""
    recipe = f"{r['patch_size']}x{r['patch_size']}, {r['scales']} scales, {r['glimpses']} glimpses, std {r['std']}, " \
             f"{r['epochs']} epochs"
    verdict = "met" if r["met"] else f"missed by {r['ram_error'] - r['target']:.2f} points"
    colour = "RGB" if r["channels"] == 3 else "grey"
    return (f"| {r['dataset']} | {r['side']}x{r['side']} {colour} | {r['trained_on']:,} (val {r['val_size']:,}) | "
            f"{recipe} | {r['ram_error']:.2f}% | {r['ram_error_averaged']:.2f}% | {r['convnet_error']:.2f}% | "
            f"{r['target']:.2f}%: {verdict} | {r['ram_train_seconds'] / 60:.0f} min / "
            f"{r['convnet_train_seconds'] / 60:.0f} min |")


HEADER = ("| dataset | images | trained on | auto recipe | RAM, one episode | RAM, 10 averaged | convnet | target | "
          "wall time RAM / convnet |\n|---|---|---|---|---|---|---|---|---|")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("runs/auto-recipe"))
    parser.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out-file", type=Path, help="also write the rows and the table here as JSON")
    parser.add_argument("--train-size", type=int, default=0,
                        help="fashion only: train both models on the first N training images (0: all)")
    args = parser.parse_args()
    rows = []
    for name in args.datasets:
        data = prepare(name, args.work / "data")
        extra = ["--train-size", str(args.train_size)] if name == "fashion" and args.train_size else []
        suffix = f"-{args.train_size}" if extra else ""
        runs = {model: run(data, args.work / f"{name}{suffix}-{model}", model=model, threads=args.threads, extra=extra)
                for model in ("ram", "convnet")}
        rows.append(measure(name + suffix, runs["ram"], runs["convnet"]))
    table = "\n".join([HEADER, *map(row, rows)])
    print(table)
    if args.out_file:
        import torch

        from ram.checkpoint import atomic_write
        from ram.speed import machine

        torch.set_num_threads(args.threads)
        record = {"command": " ".join(["python benchmarks/auto_recipe.py", *sys.argv[1:]]), "rows": rows, "table": table,
                  "machine": machine(torch.device("cpu"))}
        atomic_write(args.out_file, (json.dumps(record, indent=1) + "\n").encode())
        print(f"wrote {args.out_file}")


if __name__ == "__main__":
    main()
