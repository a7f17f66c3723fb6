"""The paper's tables, the rows this project reproduces, and the README table generated from results/*.json.

The paper's numbers circulate in two versions: set A (arXiv v1, quoted by most repositories) and set B (the NIPS
version). Test error in %; None where a version gives no number.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from . import flags
from .config import ModelConfig, RunConfig


@dataclass(frozen=True)
class Row:
    name: str
    preset: str
    model: str = "ram"
    glimpses: int = 0
    paper_a: float | None = None
    paper_b: float | None = None
    note: str = ""
    epochs: int = 0
    """The row's own schedule length; 0 trains for the preset's epochs."""
    precision: str = "fp32"
    """The arithmetic the row's weights were trained in (the presets' auto picks one by the machine)."""
    what_size: int = 0
    glimpse_size: int = 0
    """The row's own glimpse-network widths (h_g and g); 0 keeps the preset's (the paper's 128 and 256)."""
    core: str = ""
    """The row's own recurrent core; "" keeps the preset's (the paper's ReLU RNN)."""
    means_weight: float = 0.0
    """The row's own weight of the cross-entropy along the policy means (the one-episode recipe); 0 keeps the
    preset's (off)."""
    seed_repo: float | None = None
    """The founding repository's own number for the row (seed 000's hard attention, seed 002's Catch)."""
    data: str = ""
    """The folder of images the row trains on (`ram train --data`); "" for the preset's dataset."""
    export: str = ""
    """The built-in dataset `ram export-folder` writes into `data` when it is missing (a worked example of --data)."""
    title: str = ""
    """The task column; "" takes the preset's (TASK_TITLES)."""
    then: tuple[str, ...] = ()
    """A second phase: `ram train` flags, beside the first phase's, for a run that starts from the first phase's
    weights (`--init`); () trains in one phase."""
    script: tuple[str, ...] = ()
    """A row trained by a script of its own rather than `ram train` (an outside library's agent): the command that
    trains it and writes the results file given with `--out-file`, which `ram reproduce` runs; () for `ram train`."""

    def train_args(self) -> list[str]:
        """The `ram train` arguments that reproduce the row (`ram reproduce` runs them)."""
        args = ["--preset", self.preset]
        if self.data:
            args += ["--data", self.data]
        if self.model != "ram":
            args += ["--model", self.model]
        own = (("--glimpses", self.glimpses), ("--epochs", self.epochs), ("--precision", self.precision),
               ("--what-size", self.what_size), ("--glimpse-size", self.glimpse_size), ("--core", self.core),
               ("--means-weight", self.means_weight))
        for flag, value in own:  # 0 and "" leave the preset's value
            if value:
                args += [flag, str(value)]
        return args

    def phases(self, out_root: str = "runs") -> list[tuple[list[str], str]]:
        """(`ram train` arguments, run folder) of each phase; the last phase's folder holds the row's weights."""
        out = f"{out_root}/{self.name}"
        if not self.then:
            return [(self.train_args(), out)]
        first = f"{out}-phase1"
        return [(self.train_args(), first), ([*self.train_args(), *self.then, "--init", first], out)]

    def configs(self) -> list[RunConfig]:
        """The config `ram train` builds for each phase."""
        return [flags.parse(args).config() for args, _ in self.phases()]

    def config(self) -> RunConfig:
        """The last phase's config: the one the row's shipped weights must carry."""
        return self.configs()[-1]


BASELINE_EPOCHS = 30  # the baselines' first, short schedule; rows retrained on RAM's schedule say so with epochs=


def _base(name: str, preset: str, model: str, a: float | None, b: float | None, note: str, glimpses: int = 0,
          epochs: int = BASELINE_EPOCHS) -> Row:
    return Row(name, preset, model, glimpses, a, b, note, epochs=epochs)


WIDER = {"what_size": 256, "glimpse_size": 512}
"""The glimpse network twice the paper's width (session 8); the 4-glimpse 60x60 rows train it in fp32 (session 20)."""
WIDE = {"precision": "bf16", **WIDER}
"""Session 8's recipe for the other 60x60 and the 100x100 rows: the wider glimpse network, trained in bf16."""


def _ram(preset: str, g: int, a: float | None, b: float | None, note: str = "", **recipe) -> Row:
    return Row(f"{preset}-g{g}", preset, "ram", g, a, b, note, **recipe)


SEED_000 = 100 - 95.56
"""Seed 000's hard attention: 95.56% test accuracy with 20 glimpses of 4x4, after 10 epochs."""
ALONG_THE_MODES = ("--means-weight", "1", "--lr", "1e-4", "--lr-min", "1e-6", "--epochs", "3")
"""The saccade row's second phase: 3 epochs at a low lr that also train the reader on the path of the policies' modes,
the one episode it is tested on (results/NOTES.md, session 19)."""
SEED_002 = 100 - 89.0
"""Seed 002's Catch agent: about 89% of balls caught after 700 epochs of 22,400 games."""


# What each row's recipe gained over the one before it: results/NOTES.md.
ROWS: list[Row] = [
    _ram("mnist", 2, 6.27, 3.79),
    _ram("mnist", 3, None, 1.51, means_weight=1.0),
    _ram("mnist", 4, 1.73, 1.54, means_weight=1.0),
    _ram("mnist", 5, None, 1.34),
    _ram("mnist", 6, 1.29, 1.12),
    _ram("mnist", 7, None, 1.07),
    _base("mnist-fc", "mnist", "fc", 1.35, 1.69, "FC, 2 layers of 256"),
    _base("mnist-convnet", "mnist", "convnet", None, 1.21, "convnet, 2 layers"),
    _ram("mnist-translated", 4, 2.29, 1.54, epochs=80, core="lstm", means_weight=1.0, **WIDER),
    _ram("mnist-translated", 6, 1.86, 1.22, core="lstm", means_weight=1.0, **WIDE),
    _ram("mnist-translated", 8, 1.84, 1.20, core="lstm", **WIDE),
    _base("mnist-translated-fc", "mnist-translated", "fc", 2.63, 2.63, "FC, 2 layers of 256"),
    _base("mnist-translated-convnet", "mnist-translated", "convnet", 1.62, 1.62, "convnet, 2 layers", epochs=250),
    _ram("mnist-cluttered", 4, None, 4.96, epochs=80, core="lstm", means_weight=1.0, **WIDER),
    _ram("mnist-cluttered", 6, None, 4.08, core="lstm", means_weight=1.0, **WIDE),
    _ram("mnist-cluttered", 8, 5.23, 4.04, core="lstm", means_weight=1.0, **WIDE),
    _base("mnist-cluttered-random-g8", "mnist-cluttered", "random-glimpses", 14.4, 14.4, "8 random glimpses", glimpses=8),
    _base("mnist-cluttered-fc", "mnist-cluttered", "fc", 11.96, 11.96, "FC, 2 layers of 256"),
    _base("mnist-cluttered-convnet", "mnist-cluttered", "convnet", 8.09, 8.09, "convnet, 2 layers", epochs=250),
    _ram("mnist-cluttered-100", 4, 14.95, 9.4, "B is read off a figure: about 9.4", epochs=400, **WIDE),
    _ram("mnist-cluttered-100", 6, 11.58, None),
    _ram("mnist-cluttered-100", 8, None, 8.1, "B is read off a figure: about 8.1", epochs=400, core="lstm", **WIDE),
    _base("mnist-cluttered-100-convnet", "mnist-cluttered-100", "convnet", None, 15.0, "convnet: about 14-16"),
    Row("mnist-saccade-g10", "mnist-saccade", "ram", 10, epochs=10),
    Row("mnist-saccade", "mnist-saccade", "ram", 20, seed_repo=round(SEED_000, 2), then=ALONG_THE_MODES),
    Row("mnist-saccade-g30", "mnist-saccade", "ram", 30, epochs=10),
    Row("catch", "catch", "ram", 23, seed_repo=SEED_002),
    Row("catch-screen", "catch", "screen", 23, note="the whole screen every step, same core and move head", epochs=30),
    Row("catch-random", "catch", "random-agent", 23, note="random moves", epochs=1),
    Row("catch-sb3-ppo", "catch", "sb3-ppo", script=("python", "examples/catch_sb3.py"),
        note="stable-baselines3 PPO, MlpPolicy on the whole screen, SB3's defaults"),
    Row("fashion-g6", "mnist", "ram", 6, data="data/fashion-images", export="fashion",
        title="28x28 Fashion-MNIST from a folder of PNGs (`--data`)"),
]
BY_NAME = {r.name: r for r in ROWS}

TASK_TITLES = {
    "mnist": "28x28 MNIST",
    "mnist-saccade": "28x28 MNIST, hard attention",
    "catch": "Catch, 24x24 (% of balls missed)",
    "mnist-translated": "60x60 translated MNIST",
    "mnist-cluttered": "60x60 cluttered MNIST (4 pieces)",
    "mnist-cluttered-100": "100x100 cluttered MNIST (8 pieces)",
}


def load_results(folder: Path) -> dict[str, dict]:
    """results/ROW.json files, each the output of `ram eval --json`, keyed by row name."""
    out = {}
    for path in sorted(Path(folder).glob("*.json")):
        out[path.stem] = json.loads(path.read_text())
    return out


def _fmt(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"


def _train_time(r: dict) -> str:
    """The training wall time, and where the results file says so, the arithmetic and the CPU's fastest vector unit
    it ran on ("110 min, bf16 on AMX"): a number a reader can compare with their own machine."""
    time = _duration(r.get("train_seconds"))
    flags = (r.get("machine") or {}).get("cpu_flags")
    if flags is None:
        return time
    unit = next((name for flag, name in (("amx_bf16", "AMX"), ("avx512_bf16", "AVX512-BF16"), ("avx512f", "AVX-512"),
                                         ("avx2", "AVX2")) if flag in flags), "a CPU without AVX2")
    return f"{time}, {r.get('precision', '?')} on {unit}"


def _epochs(r: dict) -> str:
    """Epochs trained; "37 of 40" for a run stopped before its schedule ended; "250 + 20" for two phases; "50,000
    games" for an agent trained outside `ram train`, which counts games, not epochs."""
    if "phases" in r:
        return " + ".join(str(p["epochs"]) for p in r["phases"])
    if "epochs" not in r:
        return f"{r['train_games']:,} games" if "train_games" in r else "–"
    planned = r.get("planned_epochs")
    return f"{r['epochs']} of {planned}" if planned and planned != r["epochs"] else str(r["epochs"])


def _model(row: Row) -> str:
    """The model column: RAM with what its row changed, the saccade variant, or a baseline's note."""
    if row.model != "ram":
        return row.note or row.model
    if row.preset == "mnist-saccade":
        return f"seed 000's saccades: {row.glimpses} moves of a 4x4 patch, LSTM of 512{_second_phase(row, 'modes')}"
    if row.preset == "catch":
        return f"RAM, {row.glimpses} glimpses and moves, LSTM core"
    return f"RAM, {row.glimpses} glimpses{_architecture(row)}{_second_phase(row, 'means')}"


def _second_phase(row: Row, path: str) -> str:
    """", then 3 epochs at lr 0.0001 along its modes too" for a row trained in two phases; "" for one."""
    if not row.then:
        return ""
    first, last = (cfg.train for cfg in row.configs())
    along = f" along its {path} too" if last.means_weight and not first.means_weight else ""
    return f", then {last.epochs} epochs at lr {last.lr:g}{along}"


def _architecture(row: Row) -> str:
    """What a row changed in the paper's network: ", glimpse net 256/512" for a glimpse network wider than the paper's
    h_g 128 and g 256, ", LSTM core" for another core than its ReLU RNN, and ", trained along its means too" for the
    one-episode recipe (--means-weight); "" for the paper's own."""
    paper = ModelConfig()
    out = ""
    if row.what_size or row.glimpse_size:
        out += f", glimpse net {row.what_size or paper.what_size}/{row.glimpse_size or paper.glimpse_size}"
    if row.core and row.core != paper.core:
        out += f", {row.core.upper()} core"
    if row.means_weight:
        out += ", trained along its means too"
    return out


def table(results: dict[str, dict]) -> str:
    """A Markdown table: one line per row that has a result, beside paper A and B.

    "one episode" is the headline, the paper's protocol and cost: one episode of T glimpses per image along the
    policy means (`ram eval`'s "error"). The next column averages the class probabilities of M sampled episodes, M x T
    glimpses ("error_averaged"; "–" for the baselines without a policy). "seed repo" is the founding repository's own
    number where the row reproduces one of them. A Catch row's headline (balls missed along the policies' modes) has
    the rate with sampled moves beside it ("sampled").
    """
    lines = [
        "| task | model | this project, one episode | 10 episodes averaged (10×T glimpses) | paper A | paper B | "
        "seed repo | epochs | train time |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in ROWS:
        r = results.get(row.name)
        if r is None:
            continue
        model = _model(row)
        pretrained = f" (`{r['pretrained']}`)" if r.get("pretrained") else ""
        averaged = r.get("error_averaged") if row.model not in ("fc", "convnet") else None
        if averaged is not None and r.get("mc_samples") != 10:
            raise ValueError(f"results for {row.name}: averaged over {r.get('mc_samples')} episodes, the column says 10")
        sampled = f" (sampled: {100 - r['catch_rate_sampled']:.2f})" if "catch_rate_sampled" in r else ""
        lines.append(
            f"| {row.title or TASK_TITLES[row.preset]} | {model}{pretrained} | **{r['error']:.2f}**{sampled} | "
            f"{_fmt(averaged)} | {_fmt(row.paper_a)} | {_fmt(row.paper_b)} | "
            f"{_fmt(row.seed_repo)} | {_epochs(r)} | {_train_time(r)} |"
        )
    return "\n".join(lines)


START, END = "<!-- results:start -->", "<!-- results:end -->"


def update_readme(readme: Path, results_dir: Path) -> bool:
    """Rewrite the table between the markers; returns whether the file changed."""
    text = readme.read_text()
    block = f"{START}\n{table(load_results(results_dir))}\n{END}"
    new = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    if new != text:
        readme.write_text(new)
    return new != text


def reproduce_commands(row: Row, *, out_root: str = "runs", results_root: str = "results",
                       precision: str | None = None) -> list[list[str]]:
    """The commands that retrain the row and write its results file; precision overrides the row's arithmetic (fp32
    on a CPU that only emulates bf16)."""
    if row.script:
        return [[*row.script, "--out-file", f"{results_root}/{row.name}.json"]]
    phases = row.phases(out_root)
    if precision is not None:
        phases = [([*_without(args, "--precision"), "--precision", precision], out) for args, out in phases]
    train = [["ram", "train", *args, "--out", out] for args, out in phases]
    out = phases[-1][1]
    if row.export and not Path(row.data).exists():
        train.insert(0, ["ram", "export-folder", "--dataset", row.export, "--out", row.data])
    return [*train, ["ram", "eval", "--checkpoint", out, "--json", "--out-file", f"{results_root}/{row.name}.json"]]


def _without(args: list[str], flag: str) -> list[str]:
    """args with `flag VALUE` taken out."""
    i = args.index(flag) if flag in args else len(args)
    return args[:i] + args[i + 2:]
