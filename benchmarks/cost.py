"""What one image costs RAM and the convnet baseline on each canvas: parameters, FLOPs and measured latency.

    python benchmarks/cost.py                 # writes results/cost.md, results/cost.csv and results/cost.png
    python benchmarks/cost.py --no-pause --repeats 3 --seconds 0.1

The paper's argument is that RAM's cost is set by its glimpses and not by the image, while a convnet's grows with
the pixels it convolves. The models are the shipped RAM rows (`ram.hub`: mnist-g6, mnist-cluttered-g8,
mnist-cluttered-100-g8; mnist-translated-g8 has the same network as mnist-cluttered-g8) and the convnet rows of
`ram.results.ROWS` (mnist-convnet, mnist-cluttered-convnet, mnist-cluttered-100-convnet), built from their configs:
their weights are not shipped. FLOPs do not depend on weight values; times might (a trained RAM looks elsewhere, and
subnormal numbers are slow), so every RAM row keeps the shipped weights. Inputs are uniform random images.

FLOPs are those of one inference episode along the policy means (`model(images, sample=False)`), counted by torch's
`FlopCounterMode`, which counts matrix products and convolutions only (aten.mm/addmm/bmm/convolution, 2 FLOPs per
multiply-add, a Linear's bias add not included). The element-wise ops (ReLU, tanh, the LSTM's gates) are not
counted, nor is the sensor's 2x2-mean pyramid, given beside as `sensor_kflop` (`sensor_flops`, checked against an
op count in tests/test_cost.py); cropping and gathering patches is copying, not arithmetic. RAM is counted on its
plain autograd loop (`RAM.fused = False`), which computes the maths as written; the fused loop that runs by default,
and is timed, skips the products with the zero initial state (`fused_mflop`).

The "same network" rows take one RAM network (mnist-cluttered-100-g8's, with its weights) and one convnet (the 10x10
stride-5 one of the 60x60 and 100x100 rows) to other canvases, up to 400x400: none was trained there, they show what
the canvas alone does to the cost (timed up to 200x200).

Latency is eager PyTorch in eval mode under torch.no_grad(), as `ram eval` and `ram.load` run: per image at batch 1
(one image, the interactive case) and at batch 1000 (throughput), at 1 thread and at torch's default thread count.
Each figure is the median of --repeats timed blocks of about --seconds each, the models' blocks interleaved so that
a slow spell of the machine hits all of them. The long training runs on the machine (`ram train`) are paused while
the timed section runs (benchmarks/bench.py's `paused_runs`) and resumed however it ends; what other processes
took meanwhile is reported ("others", % of one core).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import signal
import statistics
import sys
import time
from pathlib import Path

import matplotlib
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter, NullLocator
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import _busy_seconds, paused_runs  # noqa: E402

from ram import hub, results  # noqa: E402
from ram.cost import count_flops, params  # noqa: E402
from ram.config import ModelConfig  # noqa: E402
from ram.model import RAM  # noqa: E402
from ram.models import build_model  # noqa: E402

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = [  # (canvas, RAM pretrained name, convnet row)
    (28, "mnist-g6", "mnist-convnet"),
    (60, "mnist-cluttered-g8", "mnist-cluttered-convnet"),
    (100, "mnist-cluttered-100-g8", "mnist-cluttered-100-convnet"),
]
SAME_NETWORK = {"RAM": "mnist-cluttered-100-g8", "convnet": "mnist-cluttered-100-convnet"}
WIDER = [60, 100, 200, 400]  # canvases the same networks are counted on
TIMED_UP_TO = 200  # and timed on, up to this side (a batch of 1000 400x400 images is 640 MB before padding)
BATCHES = (1, 1000)


@dataclasses.dataclass
class Entry:
    canvas: int
    family: str  # "RAM" or "convnet"
    name: str  # the shipped row whose network this is
    model: nn.Module
    shipped: bool = False  # the row's own canvas; else the network taken to another canvas
    same_network: bool = False  # on SAME_NETWORK's line
    timed: bool = True
    flops: dict = dataclasses.field(default_factory=dict)
    seconds: dict = dataclasses.field(default_factory=dict)  # (threads, batch) -> [seconds per image per repeat]

    @property
    def label(self) -> str:
        return f"{self.family} (`{self.name}`)" if self.shipped else f"{self.family}, `{self.name}`'s network"


def build(name: str, canvas: int | None = None) -> tuple[nn.Module, ModelConfig]:
    """A shipped RAM (its weights) or a baseline row's model (seeded initial weights), in eval mode; `canvas`
    rebuilds the same network for images of another side, with the shipped RAM's weights (whose shapes do not depend
    on the canvas; a convnet's fully connected layer does)."""
    shipped = None
    if name in hub.manifest():
        shipped, cfg = hub.load_pretrained(name)
        m = cfg.model
    else:
        m = results.BY_NAME[name].config().model
    if canvas is None or canvas == m.image_size:
        model = shipped
    else:
        m, model = dataclasses.replace(m, image_size=canvas), None
    if model is None:
        torch.manual_seed(0)
        model = build_model(m)
        if shipped is not None:
            model.load_state_dict(shipped.state_dict())
    return model.eval(), m


def sensor_flops(m: ModelConfig) -> int:
    """Adds and multiplies per image of the sensor's 2x2-mean pyramid (`ram.sensor._pool2`), not matmuls and so not
    in FlopCounterMode's count: bringing an s x s square down to s/2 x s/2 is s*s/2 row sums, s*s/4 column sums and
    s*s/4 scalings, s*s in all, for each coarser scale, channel and glimpse (RAM's and DRAM's sensor alike). 0 for a
    model that takes no glimpses or a 1-scale sensor."""
    if not m.about.glimpses:
        return 0
    side = m.patch_size * 2 ** (m.scales - 1)
    per_glimpse = sum((side // 2**k) ** 2 for k in range(m.scales - 1))
    return per_glimpse * m.channels * m.glimpses


STRINGS = [  # (label, preset, --model): the rows of the strings of digits (issue 59), not trained here
    ("DRAM", "mnist-numbers", None),
    ("multi-head convnet", "mnist-numbers", "multihead"),
]
PAPER_SVHN = ("the DRAM paper's SVHN comparison on 54x54 crops as issue 59 quotes it, second-hand and unchecked here: "
              "DRAM about 0.2 GFLOPs per image, a 10-layer convnet about 2.1")


def strings_rows() -> list[dict]:
    """FLOPs and parameters per image of the models of the strings of digits, built from their presets (random
    weights: FLOPs do not depend on them): one episode along the means of DRAM, one pass of the convnet."""
    from ram.flags import parse

    out = []
    for label, preset, kind in STRINGS:
        cfg = parse(["--preset", preset, *(["--model", kind] if kind else [])]).config(progress=False)
        torch.manual_seed(0)
        model = build_model(cfg.model, cfg.policy).eval()
        flops = count_flops(model, cfg.model.image_size)
        out.append({"model": label, "preset": preset, "kind": cfg.model.kind, "canvas": cfg.model.image_size,
                    "params": params(model), "mflop": round(sum(flops.values()) / 1e6, 2),
                    "sensor_kflop": round(sensor_flops(cfg.model) / 1e3, 2),
                    "counted_ops": " ".join(f"{op}:{n}" for op, n in sorted(flops.items()))})
    return out


def strings_table(table: list[dict]) -> str:
    lines = ["| strings of digits | canvas | params | MFLOPs/image | sensor pyramid kFLOPs |", "|---|---|---|---|---|"]
    for r in table:
        lines.append(f"| {r['model']} (`{r['preset']}`{'' if r['kind'] == 'dram' else ', --model ' + r['kind']}) | "
                     f"{r['canvas']}x{r['canvas']} | {r['params']:,} | {r['mflop']} | {r['sensor_kflop']} |")
    return "\n".join(lines + ["", f"Beside: {PAPER_SVHN}."])


def time_block(model: nn.Module, images: torch.Tensor, seconds: float) -> float:
    """Seconds per image of back-to-back calls for about `seconds` (at least one call)."""
    calls, start = 0, time.perf_counter()
    while True:
        model(images, sample=False)
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return elapsed / (calls * images.shape[0])


def measure(entries: list[Entry], *, threads: list[int], repeats: int, seconds: float) -> tuple[float, float | None]:
    """Fill each timed entry's `seconds`; returns the wall time of the timed section and the CPU other processes
    took meanwhile, in % of one core (None where /proc/stat is not there)."""
    g = torch.Generator().manual_seed(0)
    inputs = {(e.canvas, b): torch.rand(b, 1, e.canvas, e.canvas, generator=g) for e in entries for b in BATCHES}
    start, busy, own = time.perf_counter(), _busy_seconds(), time.process_time()
    with torch.no_grad():
        for t in threads:  # warm-up: first calls allocate and initialise lazily
            torch.set_num_threads(t)
            for e in entries:
                for b in BATCHES:
                    time_block(e.model, inputs[e.canvas, b], 0.0)
        for _ in range(repeats):
            for t in threads:
                torch.set_num_threads(t)
                for b in BATCHES:
                    for e in entries:  # RAM and the convnet of each canvas one after the other
                        e.seconds.setdefault((t, b), []).append(time_block(e.model, inputs[e.canvas, b], seconds))
    wall = time.perf_counter() - start
    if busy is None:
        return wall, None
    others = (_busy_seconds() - busy) - (time.process_time() - own)
    return wall, max(0.0, 100 * others / wall)


def rows(entries: list[Entry], threads: list[int]) -> list[dict]:
    out = []
    for e in sorted(entries, key=lambda e: (not e.shipped, e.canvas, e.family)):
        m = e.model.cfg
        row = {
            "canvas": e.canvas, "model": e.family, "name": e.name, "shipped": e.shipped,
            "same_network": e.same_network, "params": params(e.model),
            "glimpses": m.glimpses if m.kind == "ram" else 0,
            "mflop": round(sum(e.flops["plain"].values()) / 1e6, 4),
            "fused_mflop": round(sum(e.flops["fused"].values()) / 1e6, 4) if "fused" in e.flops else "",
            "sensor_kflop": round(sensor_flops(m) / 1e3, 2),
            "label": e.label,
            "counted_ops": " ".join(f"{op}:{n}" for op, n in sorted(e.flops["plain"].items())),
        }
        for t in threads:
            for b in BATCHES:
                runs = e.seconds.get((t, b))
                unit, scale = ("ms", 1e3) if b == 1 else ("us", 1e6)
                row[f"batch{b}_{t}thr_{unit}"] = round(statistics.median(runs) * scale, 3) if runs else ""
        out.append(row)
    return out


def markdown(table: list[dict], threads: list[int]) -> str:
    lat = [(t, b) for b in BATCHES for t in threads]
    head = ["canvas", "model", "params", "MFLOPs/image"] + [
        f"batch 1, {t} thr (ms)" if b == 1 else f"batch {b}, {t} thr (µs/image)" for t, b in lat]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in table:
        if r[f"batch1_{threads[0]}thr_ms"] == "":
            continue
        cells = [f"{r['canvas']}x{r['canvas']}", r["label"], f"{r['params']:,}",
                 f"{r['mflop']:.2f}"]
        for t, b in lat:
            v = r[f"batch{b}_{t}thr_{'ms' if b == 1 else 'us'}"]
            cells.append(f"{v:.2f}" if b == 1 else f"{v:.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def flops_table(table: list[dict]) -> str:
    """Every row's count: the shipped models and the same networks on wider canvases, both RAM loops, the sensor."""
    lines = ["| canvas | model | MFLOPs (plain loop) | MFLOPs (fused loop) | sensor pyramid kFLOPs | counted ops |",
             "|---|---|---|---|---|---|"]
    for r in table:
        lines.append(f"| {r['canvas']}x{r['canvas']} | {r['label']} | {r['mflop']} | "
                     f"{r['fused_mflop'] or '–'} | {r['sensor_kflop']} | {r['counted_ops']} |")
    return "\n".join(lines)


def plot(table: list[dict], threads: list[int], path: Path) -> None:
    """FLOPs, batch-1 latency and batch-1000 time per image against the canvas side, log y: the shipped rows solid,
    one network on every canvas dashed; latency at the fewest threads measured (1 by default), the figure a shared
    machine disturbs least."""
    fig = Figure(figsize=(11, 4), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 3)
    t = min(threads)
    panels = (("mflop", "MFLOPs per image (matmuls + convolutions)", "MFLOPs"),
              (f"batch1_{t}thr_ms", f"latency, batch 1, {t} thread(s)", "ms per image"),
              (f"batch1000_{t}thr_us", f"throughput, batch 1000, {t} thread(s)", "µs per image"))
    for family, colour in (("RAM", "tab:blue"), ("convnet", "tab:orange")):
        for key, style, what in (("shipped", "o-", "shipped rows"), ("same_network", "s--", "one network")):
            line = sorted((r for r in table if r["model"] == family and r[key]), key=lambda r: r["canvas"])
            name = f" ({SAME_NETWORK[family]}'s)" if key == "same_network" else ""
            for ax, (col, _, _) in zip(axes, panels):
                points = [(r["canvas"], r[col]) for r in line if r[col] != ""]
                ax.plot(*zip(*points), style, color=colour, alpha=1.0 if key == "shipped" else 0.5,
                        label=f"{family}, {what}{name}")
    sides = sorted({r["canvas"] for r in table})
    for ax, (_, title, unit) in zip(axes, panels):
        ax.set(title=title, xlabel="canvas side (pixels)", ylabel=unit, xscale="log", yscale="log")
        ax.set_xticks(sides, [str(s) for s in sides])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.grid(True, which="both", alpha=0.3)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncol=4, fontsize=8)
    fig.savefig(path, dpi=110)


def network(m: ModelConfig) -> tuple:
    """What shapes a model's computation: a convnet's layers follow from its input alone (not the unused RAM
    settings its config also carries)."""
    if m.kind == "convnet":
        return m.kind, m.channels, m.classes, m.image_size
    return dataclasses.astuple(m)


def collect(*, count_fused: bool = True) -> list[Entry]:
    """The shipped pairs, and the same networks on wider canvases, with their FLOPs."""
    entries = []
    for canvas, ram_name, convnet_name in SHIPPED:
        for family, name in (("RAM", ram_name), ("convnet", convnet_name)):
            entries.append(Entry(canvas, family, name, build(name)[0], shipped=True))
    for family, name in SAME_NETWORK.items():
        for canvas in WIDER:
            model, m = build(name, canvas)
            twin = next((e for e in entries if network(e.model.cfg) == network(m)), None)
            if twin is None:
                twin = Entry(canvas, family, name, model, timed=canvas <= TIMED_UP_TO)
                entries.append(twin)
            twin.same_network = True
    for e in entries:
        e.flops["plain"] = count_flops(e.model, e.canvas)
        if count_fused and isinstance(e.model, RAM):
            e.flops["fused"] = count_flops(e.model, e.canvas, fused=True)
    return entries


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=5, help="timed blocks per model, batch and thread count")
    p.add_argument("--seconds", type=float, default=0.2, help="length of one timed block")
    p.add_argument("--threads", type=int, nargs="+", default=None, help="default: 1 and torch's default")
    p.add_argument("--out", type=Path, default=ROOT / "results", help="folder for cost.md, cost.csv, cost.png")
    p.add_argument("--no-pause", dest="pause", action="store_false", help="do not pause the `ram train` runs")
    p.add_argument("--strings-only", action="store_true",
                   help="print only the strings-of-digits table (DRAM and the multi-head convnet), untimed")
    args = p.parse_args()
    strings = strings_table(strings_rows())
    if args.strings_only:
        print(strings)
        return 0
    threads = args.threads or sorted({1, torch.get_num_threads()})

    def interrupted(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)  # so that paused_runs resumes the runs on a kill too
    entries = collect()
    timed = [e for e in entries if e.timed]
    with paused_runs(args.pause):
        wall, others = measure(timed, threads=threads, repeats=args.repeats, seconds=args.seconds)
    table = rows(entries, threads)
    text = markdown(table, threads)
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "cost.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)
    note = (f"torch {torch.__version__}, threads {threads}, median of {args.repeats} blocks of ~{args.seconds} s; "
            f"timed section {wall:.0f} s" + ("" if others is None else f", others {others:.0f}% of one core"))
    (args.out / "cost.md").write_text("\n\n".join((text, flops_table(table), strings, note)) + "\n")
    plot(table, threads, args.out / "cost.png")
    print(text, flops_table(table), strings, note, sep="\n\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
